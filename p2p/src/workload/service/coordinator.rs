//! The coordinator side of [`WorkloadService`]: a submission is checked, its module kept,
//! `Execute` sent to one chosen storage node after the other until one answers a valid
//! receipt, which the committee then threshold-signs.

use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::da::{Bytes32, Bytes64};
use dsdn_protocols::receipt::{
    committee_signing_bytes, OptimisticReceipt, ReceiptError, ReceiptV1, ThresholdReceipt,
};
use dsdn_protocols::workload::{
    ExecuteRequest, WorkloadRefusal, WorkloadRequest, WorkloadResponse, WorkloadSubmission,
};
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::{
    key_of_peer, unix_ms, Internal, ReceiptCheck, Submission, SubmitReply, WorkloadAction,
    WorkloadService, MAX_SUBMISSIONS,
};
use crate::committee::{member_id, GroupSignature, ThresholdSignError};
use crate::net::PeerView;
use crate::workload::{choose_executors, HeldReceipt, WorkloadError, WorkloadResult, WorkloadTag};

impl WorkloadService {
    /// `NodeHandle::submit_workload`: checks the submission, keeps the module and asks the
    /// first chosen storage node to execute it ([`WorkloadAction::Send`]). `committee`:
    /// the epoch, committee hash and group key receipts are signed under (`None` on a
    /// node that is not a committee member holding a share); `peers`: where executors are
    /// chosen from; `optimistic`: the submitter's choice of an optimistic receipt (`None`:
    /// [`crate::workload::ReceiptsConfig::optimistic`]). The result goes to `reply` once a
    /// receipt is signed (optimistic: once this coordinator signed the node's receipt) or
    /// every chosen node failed ([`WorkloadError`]).
    pub(crate) fn submit(
        &mut self,
        submission: WorkloadSubmission,
        optimistic: Option<bool>,
        reply: SubmitReply,
        committee: Option<(u64, Bytes32, GroupKey)>,
        peers: &dyn PeerView,
    ) {
        let reply = Some(reply);
        if let Err(e) = submission.verify(&self.network) {
            return self.finish(reply, Err(WorkloadError::Invalid(e.to_string())));
        }
        let Some(committee) = committee else {
            return self.finish(reply, Err(WorkloadError::NotCommittee));
        };
        if self.submissions.len() >= MAX_SUBMISSIONS {
            return self.finish(reply, Err(WorkloadError::Busy(MAX_SUBMISSIONS)));
        }
        let workload_id = match self.modules.insert(submission.module.into_vec(), None) {
            Ok(id) => id,
            Err(e) => return self.finish(reply, Err(WorkloadError::Invalid(e.to_string()))),
        };
        self.count_module_bytes();
        let connected = peers.connected_services();
        self.turn = self.turn.wrapping_add(1);
        let candidates = choose_executors(
            &connected,
            &submission.submitter,
            &self.me,
            self.turn,
            self.cfg.max_attempts,
        );
        if candidates.is_empty() {
            return self.finish(reply, Err(WorkloadError::NoExecutor));
        }
        let id = self.next_id();
        self.submissions.insert(
            id,
            Submission {
                request: ExecuteRequest {
                    workload_id,
                    input: submission.input,
                    submitter: submission.submitter,
                    nonce: submission.nonce,
                },
                candidates: candidates.into(),
                asked: None,
                tried: Vec::new(),
                executed: None,
                committee,
                optimistic: optimistic.unwrap_or(self.cfg.receipts.optimistic),
                reply,
                resigns: 0,
            },
        );
        self.try_next_executor(id);
    }

    /// Sends the submission's `Execute` to its next candidate, or fails it with the nodes
    /// tried when none is left.
    fn try_next_executor(&mut self, id: u64) {
        let Some(s) = self.submissions.get_mut(&id) else {
            return;
        };
        let Some(peer) = s.candidates.pop_front() else {
            if let Some(s) = self.submissions.remove(&id) {
                self.finish(s.reply, Err(WorkloadError::Failed(s.tried)));
            }
            return;
        };
        s.asked = Some(peer);
        let request = WorkloadRequest::Execute(s.request.clone());
        self.push(WorkloadAction::Send(
            peer,
            request,
            WorkloadTag::Execute(id, peer),
        ));
    }

    /// True when a submission waits for `peer`'s answer to an `Execute` of the module
    /// `workload_id`: only then may `peer` fetch it.
    pub(super) fn asked_to_run(&self, peer: &PeerId, workload_id: &Bytes32) -> bool {
        self.submissions
            .values()
            .any(|s| s.asked.as_ref() == Some(peer) && s.request.workload_id == *workload_id)
    }

    /// The answer (or failure) of the `Execute` of submission `id` sent to `peer`.
    pub(super) fn on_execute_response(
        &mut self,
        id: u64,
        peer: PeerId,
        response: Result<WorkloadResponse, String>,
    ) {
        let Some(s) = self.submissions.get_mut(&id) else {
            return;
        };
        if s.asked == Some(peer) {
            s.asked = None;
        }
        match response {
            Ok(response) => self.on_executed(id, peer, response),
            Err(error) => {
                s.tried.push((peer, error));
                self.try_next_executor(id);
            }
        }
    }

    /// A storage node answered a submission's `Execute`: check it, answer an optimistic
    /// submission with this node's optimistic receipt, then have the committee sign the
    /// receipt ([`WorkloadAction::ThresholdSign`]).
    fn on_executed(&mut self, id: u64, peer: PeerId, response: WorkloadResponse) {
        let Some(s) = self.submissions.get_mut(&id) else {
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
                        s.tried.push((peer, e));
                        self.push(WorkloadAction::Penalize(peer, "bad_receipt"));
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
        let (optimistic, committee) = (s.optimistic, s.committee);
        s.executed = Some((receipt, output, peer));
        if optimistic {
            match self.issue_optimistic(receipt, committee) {
                // Answered now; the signing round still runs and its receipt supersedes
                // this one.
                Ok(o) => {
                    if let Some(s) = self.submissions.get_mut(&id) {
                        let output = s.executed.as_ref().map(|e| e.1.clone()).unwrap_or_default();
                        let answer = WorkloadResult {
                            receipt: HeldReceipt::Optimistic {
                                receipt: o,
                                challenged: false,
                            },
                            output,
                            node: peer,
                        };
                        if let Some(reply) = s.reply.take() {
                            let _ = reply.send(Ok(answer));
                        }
                    }
                }
                Err(e) => tracing::warn!(
                    error = %e,
                    "no optimistic receipt: the submitter is answered once the committee signed"
                ),
            }
        }
        self.push(WorkloadAction::ThresholdSign {
            id,
            slot,
            message,
            committee,
        });
    }

    /// Signs `receipt` optimistically with this node's key (challenge window
    /// [`crate::workload::ReceiptsConfig::challenge_window`] from now), keeps it as any
    /// accepted receipt and gossips it.
    fn issue_optimistic(
        &mut self,
        receipt: ReceiptV1,
        committee: (u64, Bytes32, GroupKey),
    ) -> Result<OptimisticReceipt, ReceiptError> {
        let window_ms =
            u64::try_from(self.cfg.receipts.challenge_window.as_millis()).unwrap_or(u64::MAX);
        let o = OptimisticReceipt::sign(&self.key, receipt, committee, unix_ms(), window_ms)?;
        self.keep_optimistic(&o);
        self.gossip(o.to_bytes()?);
        Ok(o)
    }

    /// Where the committee's signing round for submission `id` (its
    /// [`WorkloadAction::ThresholdSign`]) reports: the result comes back through
    /// [`WorkloadService::next_internal`] as [`Internal::Signed`] (a dropped sender
    /// counts as [`ThresholdSignError::Stopped`]). Spawns a forwarding task: call it within
    /// the tokio runtime.
    pub(crate) fn signature_sender(
        &self,
        id: u64,
    ) -> oneshot::Sender<Result<GroupSignature, ThresholdSignError>> {
        let (tx, rx) = oneshot::channel();
        let internal = self.internal_tx.clone();
        tokio::spawn(async move {
            let result = rx.await.unwrap_or(Err(ThresholdSignError::Stopped));
            let _ = internal.send(Internal::Signed(id, result)).await;
        });
        tx
    }

    /// The [`WorkloadAction::ThresholdSign`] of submission `id` cannot be carried out:
    /// this node has no committee. Cannot happen (a submission is taken only by a
    /// committee member); the submission fails with [`WorkloadError::NotCommittee`].
    pub(crate) fn signing_unavailable(&mut self, id: u64) {
        if let Some(s) = self.submissions.remove(&id) {
            self.finish(s.reply, Err(WorkloadError::NotCommittee));
        }
    }

    /// The committee signed (or did not sign) submission `id`'s receipt: the aggregate is
    /// verified and recorded as any receipt (judged with `check`), gossiped, and handed to
    /// the submitter.
    pub(super) fn on_receipt_signed(
        &mut self,
        id: u64,
        result: Result<GroupSignature, ThresholdSignError>,
        check: ReceiptCheck,
    ) {
        let Some(s) = self.submissions.remove(&id) else {
            return;
        };
        let (epoch, committee_hash, group_key) = s.committee;
        let Some((receipt, output, node)) = s.executed else {
            // Cannot happen: signing starts once a node executed it.
            let e = ThresholdSignError::Frost("signed before any node executed it".into());
            return self.finish(s.reply, Err(WorkloadError::Signing(e)));
        };
        let signature = match result {
            Ok(sig) => sig,
            Err(e) => {
                let s = Submission {
                    executed: Some((receipt, output, node)),
                    ..s
                };
                return self.signing_failed(id, s, e, check);
            }
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
        if let Err(e) = self.accept_receipt(&signed, None, check) {
            let e = ThresholdSignError::Frost(format!("the aggregate receipt is refused: {e}"));
            let s = Submission {
                executed: Some((receipt, output, node)),
                ..s
            };
            return self.signing_failed(id, s, e, check);
        }
        self.gossip_receipt(&signed);
        self.finish(
            s.reply,
            Ok(WorkloadResult {
                receipt: HeldReceipt::Threshold(signed),
                output,
                node,
            }),
        );
    }
}

/// Refusal a coordinator answers to a `FetchModule` of a module nobody was asked to run.
pub(super) fn not_asked() -> WorkloadRefusal {
    WorkloadRefusal::NotAllowed("no execution of this module was asked of you".into())
}
