//! Workloads and receipts in the event loop: `/dsdn/<net>/workload/1.0.0` requests in and
//! out, executions on the blocking pool, the committee signature of a receipt, and the
//! receipts gossip topic (see [`crate::workload`]).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::da::{Bytes32, Bytes64, DaEvent};
use dsdn_protocols::receipt::{
    committee_signing_bytes, sha256, ReceiptDedup, ReceiptDraft, ReceiptError, ReceiptV1,
    ThresholdReceipt,
};
use dsdn_protocols::workload::{
    ExecuteRequest, WorkloadRefusal, WorkloadRequest, WorkloadResponse, WorkloadSubmission,
};
use dsdn_protocols::ServiceType;
use ed25519_dalek::SigningKey;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance};
use libp2p::PeerId;
use serde_bytes::ByteBuf;
use tokio::sync::{mpsc, oneshot};

use super::EventLoop;
use crate::committee::{member_id, GroupSignature, ThresholdSignError};
use crate::net::rpc::{Reply, RpcEvent};
use crate::workload::{
    choose_executors, execute_refusal, ExecOutput, ModuleStore, RecentReceipts, WorkloadConfig,
    WorkloadError, WorkloadMetrics, WorkloadResult, WorkloadTag,
};

/// Submissions a coordinator handles at once.
const MAX_SUBMISSIONS: usize = 16;
/// Receipt ids remembered for duplicate rejection.
const DEDUP_CAPACITY: usize = 65_536;
/// Receipts kept in memory for `receipt show` before the DA log has them.
const RECENT_RECEIPTS: usize = 1024;
/// Results of executions and signing rounds waiting for the loop.
const INTERNAL_QUEUE: usize = 64;

/// Where a submission's result goes.
type SubmitReply = oneshot::Sender<Result<WorkloadResult, WorkloadError>>;

/// A submission this coordinator handles.
struct Submission {
    request: ExecuteRequest,
    /// Nodes still to try, best first.
    candidates: VecDeque<PeerId>,
    /// Nodes tried, with why they did not serve.
    tried: Vec<(PeerId, String)>,
    /// The executing node's receipt and output, once it answered.
    executed: Option<(ReceiptV1, Vec<u8>, PeerId)>,
    /// The committee's epoch, hash and group key the receipt is signed under.
    committee: (u64, Bytes32, GroupKey),
    reply: SubmitReply,
}

/// An `Execute` this node serves.
struct Job {
    reply: Reply,
    request: ExecuteRequest,
    started: Instant,
}

/// What the spawned tasks hand back to the loop.
pub(crate) enum Internal {
    /// An execution finished.
    Ran(u64, Result<ExecOutput, String>),
    /// A receipt's signing round finished.
    Signed(u64, Result<GroupSignature, ThresholdSignError>),
}

/// The workload state of the event loop.
pub(crate) struct WorkloadLoop {
    cfg: WorkloadConfig,
    metrics: WorkloadMetrics,
    key: SigningKey,
    my_key: Bytes32,
    topic: IdentTopic,
    modules: ModuleStore,
    recent: RecentReceipts,
    dedup: ReceiptDedup,
    turn: usize,
    next_id: u64,
    submissions: HashMap<u64, Submission>,
    jobs: HashMap<u64, Job>,
    internal_tx: mpsc::Sender<Internal>,
    pub(super) internal_rx: mpsc::Receiver<Internal>,
}

impl WorkloadLoop {
    /// The workload state of a node with node key `key`, gossiping receipts on `topic`.
    pub(crate) fn new(
        cfg: WorkloadConfig,
        metrics: WorkloadMetrics,
        key: SigningKey,
        topic: IdentTopic,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_QUEUE);
        Self {
            modules: ModuleStore::new(cfg.module_cache_bytes),
            cfg,
            metrics,
            my_key: Bytes32(key.verifying_key().to_bytes()),
            key,
            topic,
            recent: RecentReceipts::new(RECENT_RECEIPTS),
            dedup: ReceiptDedup::new(DEDUP_CAPACITY),
            turn: 0,
            next_id: 0,
            submissions: HashMap::new(),
            jobs: HashMap::new(),
            internal_tx,
            internal_rx,
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

/// The Ed25519 key behind an Ed25519 PeerId.
fn key_of_peer(peer: &PeerId) -> Option<Bytes32> {
    let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    Some(Bytes32(key.try_into_ed25519().ok()?.to_bytes()))
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EventLoop {
    /// `NodeHandle::submit_workload`: checks the submission, keeps the module and asks the
    /// first chosen storage node to execute it.
    pub(super) fn submit_workload(&mut self, submission: WorkloadSubmission, reply: SubmitReply) {
        let w = &mut self.workload;
        if let Err(e) = submission.verify(self.cfg.network.as_str()) {
            return finish(w, reply, Err(WorkloadError::Invalid(e.to_string())));
        }
        let Some(committee) = self.committee.as_ref().and_then(|c| c.receipt_context()) else {
            return finish(w, reply, Err(WorkloadError::NotCommittee));
        };
        if w.submissions.len() >= MAX_SUBMISSIONS {
            return finish(w, reply, Err(WorkloadError::Busy(MAX_SUBMISSIONS)));
        }
        let workload_id = match w.modules.insert(submission.module.into_vec(), None) {
            Ok(id) => id,
            Err(e) => return finish(w, reply, Err(WorkloadError::Invalid(e.to_string()))),
        };
        w.metrics.module_cache_bytes.set(w.modules.bytes() as i64);
        let connected: Vec<_> = self
            .swarm
            .behaviour()
            .peer_manager
            .connected()
            .iter()
            .map(|(p, c)| (*p, c.services))
            .collect();
        let me = *self.swarm.local_peer_id();
        w.turn = w.turn.wrapping_add(1);
        let candidates = choose_executors(
            &connected,
            &submission.submitter,
            &me,
            w.turn,
            w.cfg.max_attempts,
        );
        if candidates.is_empty() {
            return finish(w, reply, Err(WorkloadError::NoExecutor));
        }
        let id = w.next_id();
        w.submissions.insert(
            id,
            Submission {
                request: ExecuteRequest {
                    workload_id,
                    input: submission.input,
                    submitter: submission.submitter,
                    nonce: submission.nonce,
                },
                candidates: candidates.into(),
                tried: Vec::new(),
                executed: None,
                committee,
                reply,
            },
        );
        self.try_next_executor(id);
    }

    /// Sends the submission's `Execute` to its next candidate, or fails it when none is
    /// left.
    fn try_next_executor(&mut self, id: u64) {
        let Some(s) = self.workload.submissions.get_mut(&id) else {
            return;
        };
        let Some(peer) = s.candidates.pop_front() else {
            let s = self.workload.submissions.remove(&id);
            if let Some(s) = s {
                finish(&self.workload, s.reply, Err(WorkloadError::Failed(s.tried)));
            }
            return;
        };
        let request = WorkloadRequest::Execute(s.request.clone());
        if let Some(b) = self.swarm.behaviour_mut().workload.as_mut() {
            b.send(peer, request, WorkloadTag::Execute(id, peer));
        }
    }

    /// `/dsdn/<net>/workload/1.0.0` events.
    pub(super) fn on_workload(
        &mut self,
        event: RpcEvent<WorkloadRequest, WorkloadResponse, WorkloadTag>,
    ) {
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => self.on_workload_request(peer, request, reply),
            RpcEvent::Response {
                peer,
                tag,
                response: Ok(response),
            } => match tag {
                WorkloadTag::Execute(id, asked) => self.on_executed(id, asked, response),
                WorkloadTag::Fetch(job) => self.on_module(job, peer, response),
            },
            RpcEvent::Response {
                tag,
                response: Err(error),
                ..
            } => match tag {
                WorkloadTag::Execute(id, peer) => {
                    if let Some(s) = self.workload.submissions.get_mut(&id) {
                        s.tried.push((peer, error));
                    }
                    self.try_next_executor(id);
                }
                WorkloadTag::Fetch(job) => {
                    self.answer_job(
                        job,
                        WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable),
                    );
                }
            },
        }
    }

    fn on_workload_request(&mut self, peer: PeerId, request: WorkloadRequest, reply: Reply) {
        let w = &mut self.workload;
        match request {
            WorkloadRequest::FetchModule { workload_id } => {
                // Served only to a node we asked to run this module (a module is up to
                // 4 MiB: nobody else may make us send it).
                let asked = self.swarm.behaviour().workload.as_ref().is_some_and(|b| {
                    b.outstanding().any(|(_, tag)| match tag {
                        WorkloadTag::Execute(id, p) => {
                            *p == peer
                                && w.submissions
                                    .get(id)
                                    .is_some_and(|s| s.request.workload_id == workload_id)
                        }
                        WorkloadTag::Fetch(_) => false,
                    })
                });
                let response = match w.modules.get(&workload_id) {
                    Some(_) if !asked => WorkloadResponse::Refused(WorkloadRefusal::NotAllowed(
                        "no execution of this module was asked of you".into(),
                    )),
                    Some(m) => WorkloadResponse::Module(ByteBuf::from(m.as_ref().clone())),
                    None => WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable),
                };
                self.send_workload_response(reply, response);
            }
            WorkloadRequest::Execute(request) => {
                // Only coordinators hand out work (their handshake said so): anybody else
                // could keep this node's runtime busy.
                let coordinator = self
                    .swarm
                    .behaviour()
                    .peer_manager
                    .connected()
                    .get(&peer)
                    .is_some_and(|c| c.services.contains(ServiceType::Coordinator));
                let w = &mut self.workload;
                let refusal = if !coordinator {
                    Some(WorkloadRefusal::NotAllowed(
                        "execute requests are taken from coordinators only".into(),
                    ))
                } else if request.input.len() > dsdn_protocols::workload::MAX_INPUT_BYTES {
                    Some(WorkloadRefusal::Malformed("input too large".into()))
                } else {
                    execute_refusal(
                        w.cfg.executor.is_some(),
                        w.jobs.len(),
                        w.cfg.max_jobs,
                        &request.submitter,
                        &w.my_key,
                    )
                };
                if let Some(refusal) = refusal {
                    w.metrics
                        .executions
                        .with_label_values(&[refusal.label()])
                        .inc();
                    self.send_workload_response(reply, WorkloadResponse::Refused(refusal));
                    return;
                }
                let id = w.next_id();
                let module = w.modules.get(&request.workload_id);
                let workload_id = request.workload_id;
                w.jobs.insert(
                    id,
                    Job {
                        reply,
                        request,
                        started: Instant::now(),
                    },
                );
                match module {
                    Some(m) => self.run_job(id, m),
                    None => {
                        if let Some(b) = self.swarm.behaviour_mut().workload.as_mut() {
                            b.send(
                                peer,
                                WorkloadRequest::FetchModule { workload_id },
                                WorkloadTag::Fetch(id),
                            );
                        }
                    }
                }
            }
        }
    }

    fn send_workload_response(&mut self, reply: Reply, response: WorkloadResponse) {
        if let Some(b) = self.swarm.behaviour_mut().workload.as_mut() {
            b.respond(reply, response);
        }
    }

    /// The module a job asked for arrived (or did not).
    fn on_module(&mut self, job: u64, peer: PeerId, response: WorkloadResponse) {
        let Some(expected) = self.workload.jobs.get(&job).map(|j| j.request.workload_id) else {
            return;
        };
        let stored = match response {
            WorkloadResponse::Module(bytes) => self
                .workload
                .modules
                .insert(bytes.into_vec(), Some(&expected))
                .map_err(|e| {
                    tracing::warn!(%peer, error = %e, "module fetched does not match its id");
                }),
            _ => Err(()),
        };
        self.workload
            .metrics
            .module_cache_bytes
            .set(self.workload.modules.bytes() as i64);
        match stored.ok().and_then(|id| self.workload.modules.get(&id)) {
            Some(m) => self.run_job(job, m),
            None => self.answer_job(
                job,
                WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable),
            ),
        }
    }

    /// Runs job `id` on the blocking pool; the result comes back as [`Internal::Ran`].
    fn run_job(&mut self, id: u64, module: Arc<Vec<u8>>) {
        let w = &self.workload;
        let (Some(executor), Some(job)) = (w.cfg.executor.clone(), w.jobs.get(&id)) else {
            return;
        };
        let input = job.request.input.clone().into_vec();
        let tx = w.internal_tx.clone();
        tokio::spawn(async move {
            let result = tokio::task::spawn_blocking(move || executor.execute(&module, &input))
                .await
                .unwrap_or_else(|e| Err(format!("the execution task failed: {e}")));
            let _ = tx.send(Internal::Ran(id, result)).await;
        });
    }

    /// Answers job `id` and forgets it.
    fn answer_job(&mut self, id: u64, response: WorkloadResponse) {
        let Some(job) = self.workload.jobs.remove(&id) else {
            return;
        };
        let label = match &response {
            WorkloadResponse::Refused(r) => r.label(),
            _ => "ok",
        };
        self.workload
            .metrics
            .executions
            .with_label_values(&[label])
            .inc();
        self.send_workload_response(job.reply, response);
    }

    /// Results of spawned executions and signing rounds.
    pub(super) fn on_workload_internal(&mut self, event: Internal) {
        match event {
            Internal::Ran(id, result) => self.on_ran(id, result),
            Internal::Signed(id, result) => self.on_receipt_signed(id, result),
        }
    }

    /// An execution finished: sign the receipt with the node key and answer.
    fn on_ran(&mut self, id: u64, result: Result<ExecOutput, String>) {
        let Some(job) = self.workload.jobs.get(&id) else {
            return;
        };
        self.workload
            .metrics
            .execution_ms
            .observe(job.started.elapsed().as_secs_f64() * 1000.0);
        let response = match result {
            Err(e) => WorkloadResponse::Refused(WorkloadRefusal::failed(&e)),
            Ok(mut out) => {
                if self.workload.cfg.test_lie_output {
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
                match ReceiptV1::sign(&self.workload.key, draft) {
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

    /// A storage node answered a submission's `Execute`: check it, then have the committee
    /// sign the receipt.
    fn on_executed(&mut self, id: u64, peer: PeerId, response: WorkloadResponse) {
        let Some(s) = self.workload.submissions.get_mut(&id) else {
            return;
        };
        let (receipt, output) = match response {
            WorkloadResponse::Executed { receipt, output } => {
                let checked = key_of_peer(&peer)
                    .ok_or_else(|| "the node's PeerId is not an Ed25519 key".to_owned())
                    .and_then(|key| {
                        WorkloadResponse::check_executed(&receipt, &output, &s.request, &key)
                    });
                match checked {
                    Ok(()) => (*receipt, output.into_vec()),
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "a storage node answered a bad receipt");
                        self.swarm
                            .behaviour_mut()
                            .peer_manager
                            .penalize(peer, "bad_receipt");
                        s.tried.push((peer, e));
                        return self.try_next_executor(id);
                    }
                }
            }
            WorkloadResponse::Refused(r) => {
                s.tried.push((peer, r.to_string()));
                return self.try_next_executor(id);
            }
            WorkloadResponse::Module(_) => {
                s.tried
                    .push((peer, "answered a module to an execute request".into()));
                return self.try_next_executor(id);
            }
        };
        let (epoch, hash, group_key) = s.committee;
        let message = match committee_signing_bytes(&receipt, epoch, &hash, &group_key) {
            Ok(m) => m,
            Err(e) => {
                s.tried.push((peer, e.to_string()));
                return self.try_next_executor(id);
            }
        };
        let slot = receipt.slot();
        s.executed = Some((receipt, output, peer));
        let Some(c) = self.committee.as_mut() else {
            // Cannot happen: a submission is taken only by a committee member.
            if let Some(s) = self.workload.submissions.remove(&id) {
                finish(&self.workload, s.reply, Err(WorkloadError::NotCommittee));
            }
            return;
        };
        let (tx, rx) = oneshot::channel();
        c.start_sign(slot, message, tx, Instant::now());
        let internal = self.workload.internal_tx.clone();
        tokio::spawn(async move {
            let result = rx.await.unwrap_or(Err(ThresholdSignError::Stopped));
            let _ = internal.send(Internal::Signed(id, result)).await;
        });
        self.committee_flush();
    }

    /// The committee signed (or did not sign) a submission's receipt.
    fn on_receipt_signed(&mut self, id: u64, result: Result<GroupSignature, ThresholdSignError>) {
        let Some(s) = self.workload.submissions.remove(&id) else {
            return;
        };
        let (epoch, committee_hash, group_key) = s.committee;
        let Some((receipt, output, node)) = s.executed else {
            // Cannot happen: signing starts once a node executed it.
            let e = ThresholdSignError::Frost("signed before any node executed it".into());
            return finish(&self.workload, s.reply, Err(WorkloadError::Signing(e)));
        };
        let signature = match result {
            Ok(sig) => sig,
            Err(e) => return finish(&self.workload, s.reply, Err(WorkloadError::Signing(e))),
        };
        let signers = signature
            .signers
            .iter()
            .filter_map(|p| member_id(p).ok())
            .collect();
        let signed = ThresholdReceipt {
            receipt,
            epoch,
            committee_hash,
            group_key,
            signers,
            aggregate_signature: Bytes64(signature.signature),
        };
        if let Err(e) = self.accept_receipt(&signed, None) {
            let e = ThresholdSignError::Frost(format!("the aggregate receipt is refused: {e}"));
            return finish(&self.workload, s.reply, Err(WorkloadError::Signing(e)));
        }
        self.gossip_receipt(&signed);
        finish(
            &self.workload,
            s.reply,
            Ok(WorkloadResult {
                receipt: signed,
                output,
                node,
            }),
        );
    }

    /// The group key receipts are verified against: the committee's, on a member holding a
    /// share, else the network's DA authority (the group key once published).
    fn receipt_group_key(&self) -> Option<GroupKey> {
        self.committee
            .as_ref()
            .and_then(|c| c.group_key())
            .or(self.cfg.da_authority)
            .map(GroupKey)
    }

    /// Verifies a receipt and records it (dedup, recent receipts, the DA log on the DA
    /// proposer). `source`: the gossip peer, if any (only for logs).
    fn accept_receipt(
        &mut self,
        receipt: &ThresholdReceipt,
        source: Option<PeerId>,
    ) -> Result<(), ReceiptError> {
        let Some(group_key) = self.receipt_group_key() else {
            self.count_receipt("unverifiable");
            return Err(ReceiptError::WrongGroupKey);
        };
        // Verified before the duplicate check, so that a forgery of a known job is refused
        // as invalid (and its sender blamed), not ignored as a duplicate.
        let checked = receipt
            .verify(&group_key)
            .and_then(|()| self.workload.dedup.insert(receipt.receipt_id()));
        match checked {
            Ok(()) => {
                self.count_receipt("accepted");
                self.workload.recent.insert(receipt.clone());
                self.record_receipt(receipt);
                Ok(())
            }
            Err(e @ ReceiptError::Duplicate(_)) => {
                self.count_receipt("duplicate");
                Err(e)
            }
            Err(e) => {
                self.count_receipt("invalid");
                if let Some(peer) = source {
                    tracing::warn!(%peer, error = %e, "invalid receipt refused");
                }
                Err(e)
            }
        }
    }

    fn count_receipt(&self, result: &str) {
        self.workload
            .metrics
            .receipts
            .with_label_values(&[result])
            .inc();
    }

    fn gossip_receipt(&mut self, receipt: &ThresholdReceipt) {
        let Ok(bytes) = receipt.to_bytes() else {
            return;
        };
        let topic = self.workload.topic.clone();
        if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
            if let Err(e) = g.publish(topic, bytes) {
                tracing::debug!(error = %e, "receipt not gossiped");
            }
        }
    }

    /// Whether `topic` is the receipts topic.
    pub(super) fn is_receipts_topic(&self, topic: &gossipsub::TopicHash) -> bool {
        *topic == self.workload.topic.hash()
    }

    /// A gossipsub message on the receipts topic: forwarded only once verified and new.
    pub(super) fn on_receipt_gossip(
        &mut self,
        source: PeerId,
        id: &gossipsub::MessageId,
        data: &[u8],
    ) {
        let verdict = match ThresholdReceipt::from_bytes(data) {
            Err(_) => {
                self.count_receipt("invalid");
                MessageAcceptance::Reject
            }
            Ok(receipt) => match self.accept_receipt(&receipt, Some(source)) {
                Ok(()) => MessageAcceptance::Accept,
                Err(ReceiptError::Duplicate(_)) => MessageAcceptance::Ignore,
                // Without a group key this node cannot judge: neither forward nor blame.
                Err(_) if self.receipt_group_key().is_none() => MessageAcceptance::Ignore,
                Err(_) => MessageAcceptance::Reject,
            },
        };
        if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
            g.report_message_validation_result(id, &source, verdict);
        }
    }

    /// `NodeHandle::publish_receipt`: verify, record and gossip a receipt handed in by an
    /// operator or client.
    pub(super) fn publish_receipt(
        &mut self,
        receipt: ThresholdReceipt,
    ) -> Result<(), ReceiptError> {
        self.accept_receipt(&receipt, None)?;
        self.gossip_receipt(&receipt);
        Ok(())
    }

    /// `NodeHandle::receipt`: a receipt this node accepted recently, else one the DA log
    /// recorded.
    pub(super) fn receipt(&self, id: &Bytes32) -> Option<ThresholdReceipt> {
        self.workload
            .recent
            .get(id)
            .cloned()
            .or_else(|| self.da.service.recorded_receipt(id))
    }

    /// Records an accepted receipt in the DA log (a `ReceiptRecorded` event) when this node
    /// seals DA blobs — the committee's DA proposer — and the log does not hold it yet.
    fn record_receipt(&mut self, receipt: &ThresholdReceipt) {
        if !self.cfg.subscribe_da
            || !self.da.service.is_authority()
            || self
                .da
                .service
                .state()
                .receipt(&receipt.receipt_id())
                .is_some()
        {
            return;
        }
        // The result arrives once sealed; nobody waits for it (the receipt is already
        // gossiped, the log is its durable record), but a refusal is reported.
        let (tx, rx) = oneshot::channel();
        let id = receipt.receipt_id();
        tokio::spawn(async move {
            if let Ok(Err(e)) = rx.await {
                tracing::warn!(receipt = %hex::encode(id.0), error = %e, "receipt not recorded in the DA log");
            }
        });
        self.da.service.publish(
            vec![DaEvent::receipt_recorded(receipt.clone())],
            tx,
            Instant::now(),
        );
        self.da_poll();
    }
}

/// Counts a submission's outcome and answers it.
fn finish(w: &WorkloadLoop, reply: SubmitReply, result: Result<WorkloadResult, WorkloadError>) {
    let label = match &result {
        Ok(_) => "ok",
        Err(WorkloadError::Invalid(_)) => "invalid",
        Err(WorkloadError::NotCommittee) => "not_committee",
        Err(WorkloadError::NoExecutor) => "no_executor",
        Err(WorkloadError::Failed(_)) => "failed",
        Err(WorkloadError::Signing(_)) => "signing",
        Err(WorkloadError::Busy(_)) | Err(WorkloadError::Stopped) => "busy",
    };
    w.metrics.submissions.with_label_values(&[label]).inc();
    let _ = reply.send(result);
}
