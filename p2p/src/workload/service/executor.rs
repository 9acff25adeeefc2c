//! The serving side of [`WorkloadService`]: inbound `/dsdn/<net>/workload/1.0.0` requests
//! (`FetchModule` from a node this coordinator asked, `Execute` from a coordinator), the
//! module fetch of a job, and executions on tokio's blocking pool.

use std::sync::Arc;
use std::time::Instant;

use dsdn_protocols::receipt::{sha256, ReceiptDraft, ReceiptV1};
use dsdn_protocols::workload::{
    WorkloadRefusal, WorkloadRequest, WorkloadResponse, MAX_INPUT_BYTES,
};
use dsdn_protocols::ServiceType;
use libp2p::PeerId;
use serde_bytes::ByteBuf;

use super::coordinator::not_asked;
use super::{unix_ms, Internal, Job, WorkloadAction, WorkloadService};
use crate::net::rpc::Reply;
use crate::net::PeerView;
use crate::workload::{execute_refusal, ExecOutput, WorkloadTag};

impl WorkloadService {
    /// A peer's workload request, answered with [`WorkloadAction::Respond`] (at once, or
    /// once a job ran). `FetchModule` is served only to a node this coordinator is waiting
    /// for on an `Execute` of that module (a module is up to 4 MiB: nobody else may make
    /// us send it); `Execute` is taken only from a peer whose handshake (in `peers`)
    /// advertised [`ServiceType::Coordinator`]. `now`: when a job starts.
    pub(crate) fn on_request(
        &mut self,
        peer: PeerId,
        request: WorkloadRequest,
        reply: Reply,
        peers: &dyn PeerView,
        now: Instant,
    ) {
        match request {
            WorkloadRequest::FetchModule { workload_id } => {
                let asked = self.asked_to_run(&peer, &workload_id);
                let response = match self.modules.get(&workload_id) {
                    Some(_) if !asked => WorkloadResponse::Refused(not_asked()),
                    Some(m) => WorkloadResponse::Module(ByteBuf::from(m.as_ref().clone())),
                    None => WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable),
                };
                self.push(WorkloadAction::Respond(reply, response));
            }
            WorkloadRequest::Execute(request) => {
                // Only coordinators hand out work (their handshake said so): anybody else
                // could keep this node's runtime busy.
                let coordinator = peers
                    .services_of(&peer)
                    .is_some_and(|s| s.contains(ServiceType::Coordinator));
                let refusal = if !coordinator {
                    Some(WorkloadRefusal::NotAllowed(
                        "execute requests are taken from coordinators only".into(),
                    ))
                } else if request.input.len() > MAX_INPUT_BYTES {
                    Some(WorkloadRefusal::Malformed("input too large".into()))
                } else {
                    execute_refusal(
                        self.cfg.executor.is_some(),
                        self.jobs.len(),
                        self.cfg.max_jobs,
                        &request.submitter,
                        &self.my_key,
                    )
                };
                if let Some(refusal) = refusal {
                    self.metrics
                        .executions
                        .with_label_values(&[refusal.label()])
                        .inc();
                    self.push(WorkloadAction::Respond(
                        reply,
                        WorkloadResponse::Refused(refusal),
                    ));
                    return;
                }
                let id = self.next_id();
                let module = self.modules.get(&request.workload_id);
                let workload_id = request.workload_id;
                self.jobs.insert(
                    id,
                    Job {
                        reply,
                        request,
                        started: now,
                    },
                );
                match module {
                    Some(m) => self.run_job(id, m),
                    None => self.push(WorkloadAction::Send(
                        peer,
                        WorkloadRequest::FetchModule { workload_id },
                        WorkloadTag::Fetch(id),
                    )),
                }
            }
        }
    }

    /// The response to (or failure of) a request sent with [`WorkloadAction::Send`],
    /// with its tag.
    pub(crate) fn on_response(
        &mut self,
        peer: PeerId,
        tag: WorkloadTag,
        response: Result<WorkloadResponse, String>,
    ) {
        match tag {
            WorkloadTag::Execute(id, asked) => self.on_execute_response(id, asked, response),
            WorkloadTag::Fetch(job) => match response {
                Ok(response) => self.on_module(job, peer, response),
                Err(_) => self.answer_job(
                    job,
                    WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable),
                ),
            },
        }
    }

    /// The module a job asked for arrived (or did not).
    fn on_module(&mut self, job: u64, peer: PeerId, response: WorkloadResponse) {
        let Some(expected) = self.jobs.get(&job).map(|j| j.request.workload_id) else {
            return;
        };
        let stored = match response {
            WorkloadResponse::Module(bytes) => self
                .modules
                .insert(bytes.into_vec(), Some(&expected))
                .map_err(|e| {
                    tracing::warn!(%peer, error = %e, "module fetched does not match its id");
                }),
            _ => Err(()),
        };
        self.count_module_bytes();
        match stored.ok().and_then(|id| self.modules.get(&id)) {
            Some(m) => self.run_job(job, m),
            None => self.answer_job(
                job,
                WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable),
            ),
        }
    }

    /// Runs job `id` on the blocking pool; the result comes back as [`Internal::Ran`].
    fn run_job(&mut self, id: u64, module: Arc<Vec<u8>>) {
        let (Some(executor), Some(job)) = (self.cfg.executor.clone(), self.jobs.get(&id)) else {
            return;
        };
        let input = job.request.input.clone().into_vec();
        let tx = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || executor.execute(&module, &input))
                .await
                .unwrap_or_else(|e| Err(format!("the execution task failed: {e}")));
            let _ = tx.send(Internal::Ran(id, result)).await;
        });
    }

    /// Answers job `id`, counts the outcome and forgets the job.
    fn answer_job(&mut self, id: u64, response: WorkloadResponse) {
        let Some(job) = self.jobs.remove(&id) else {
            return;
        };
        let label = match &response {
            WorkloadResponse::Refused(r) => r.label(),
            _ => "ok",
        };
        self.metrics.executions.with_label_values(&[label]).inc();
        self.push(WorkloadAction::Respond(job.reply, response));
    }

    /// An execution finished at `now`: sign the receipt with the node key and answer.
    pub(super) fn on_ran(&mut self, id: u64, result: Result<ExecOutput, String>, now: Instant) {
        let Some(job) = self.jobs.get(&id) else {
            return;
        };
        self.metrics
            .execution_ms
            .observe(now.saturating_duration_since(job.started).as_secs_f64() * 1000.0);
        let response = match result {
            Err(e) => WorkloadResponse::Refused(WorkloadRefusal::failed(&e)),
            Ok(mut out) => {
                if self.cfg.test_lie_output {
                    out.output = b"a made-up output".to_vec();
                    out.commitment.output_hash = sha256(&out.output);
                }
                let draft = ReceiptDraft {
                    submitter: job.request.submitter,
                    nonce: job.request.nonce,
                    commitment: out.commitment,
                    usage: out.usage,
                    executed_at_ms: unix_ms(),
                };
                match ReceiptV1::sign(&self.key, draft) {
                    Ok(receipt) => WorkloadResponse::Executed {
                        receipt: Box::new(receipt),
                        output: ByteBuf::from(out.output),
                    },
                    Err(e) => WorkloadResponse::Refused(WorkloadRefusal::failed(&e.to_string())),
                }
            }
        };
        self.answer_job(id, response);
    }
}
