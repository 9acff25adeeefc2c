//! Receipts around a committee switch (issue 13 §3, §7: no receipt lost or refused during
//! the handoff). A submission names the committee (epoch, committee hash, group key) in
//! force when it was taken; at the switch of `effective_height` the member's committee
//! service is replaced by the next epoch's, so a signing round can fail for reasons that
//! last only a moment: the round was open on the retired service (`Stopped`), the message
//! names the old epoch while the new service signs (refused before signing, or an aggregate
//! that does not verify under the named key), or members switched a little earlier or later
//! than the coordinator (their refusals: below the threshold). Such a round is signed again
//! instead of failing the submission:
//!
//! * at once, under the committee in force, when that is a later epoch than the one the
//!   message named (the receipt then names the new epoch and key; an optimistic receipt
//!   already answered is upgraded all the same, upgrades go by receipt id);
//! * after [`RESIGN_DELAY`], under the same committee, while the node is in a handoff
//!   (`ReceiptCheck::handoff_key` is set), giving the other members time to switch;
//!
//! at most [`MAX_RESIGNS`] times per submission. Outside a handoff a failure fails the
//! submission as before.

use std::time::Duration;

use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::committee_signing_bytes;

use super::{Internal, ReceiptCheck, Submission, WorkloadAction, WorkloadService};
use crate::committee::ThresholdSignError;
use crate::workload::WorkloadError;

/// Signing rounds started again per submission, at most.
pub(crate) const MAX_RESIGNS: u8 = 4;
/// Wait before signing again under the same committee in a handoff.
pub(crate) const RESIGN_DELAY: Duration = Duration::from_millis(250);

/// What to do with a submission whose signing round failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Resign {
    /// Sign again now under this committee (a later epoch is in force).
    Now((u64, Bytes32, GroupKey)),
    /// Sign again after [`RESIGN_DELAY`] under the committee in force then.
    Later,
    /// Fail the submission.
    No,
}

/// The decision for a submission whose message names `named`, signed `resigns` times
/// again already, judged with `check` (the committee in force, whether in a handoff).
/// Pure: see the module documentation for the rule.
pub(crate) fn resign_plan(
    named: &(u64, Bytes32, GroupKey),
    resigns: u8,
    check: &ReceiptCheck,
) -> Resign {
    if resigns >= MAX_RESIGNS {
        return Resign::No;
    }
    match check.committee {
        Some(now) if now.0 > named.0 => Resign::Now(now),
        _ if check.handoff_key.is_some() => Resign::Later,
        _ => Resign::No,
    }
}

impl WorkloadService {
    /// The signing round of submission `id` (taken out of the map as `s`) failed with
    /// `error`: signs again per [`resign_plan`], else fails the submission.
    pub(super) fn signing_failed(
        &mut self,
        id: u64,
        mut s: Submission,
        error: ThresholdSignError,
        check: ReceiptCheck,
    ) {
        match resign_plan(&s.committee, s.resigns, &check) {
            Resign::Now(committee) => {
                tracing::info!(
                    from_epoch = s.committee.0,
                    to_epoch = committee.0,
                    error = %error,
                    "receipt signing failed across a committee switch: signing under the epoch in force"
                );
                s.resigns += 1;
                s.committee = committee;
                self.start_signing(id, s);
            }
            Resign::Later => {
                tracing::info!(error = %error, attempt = s.resigns + 1, "receipt signing failed in a committee handoff: signing again shortly");
                s.resigns += 1;
                self.submissions.insert(id, s);
                let internal = self.internal_tx.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(RESIGN_DELAY).await;
                    let _ = internal.send(Internal::Resign(id)).await;
                });
            }
            Resign::No => {
                if s.reply.is_none() {
                    tracing::warn!(
                        receipt = ?s.executed.as_ref().map(|e| hex::encode(e.0.receipt_id.0)),
                        error = %error,
                        "the committee did not sign: the optimistic receipt stays unconfirmed and expires at the end of its challenge window"
                    );
                }
                self.finish(s.reply, Err(WorkloadError::Signing(error)));
            }
        }
    }

    /// [`Internal::Resign`]: submission `id` signs again, under the committee in force when
    /// it is a later epoch than the one it named.
    pub(super) fn resign(&mut self, id: u64, check: ReceiptCheck) {
        let Some(mut s) = self.submissions.remove(&id) else {
            return;
        };
        if let Some(now) = check.committee.filter(|c| c.0 > s.committee.0) {
            s.committee = now;
        }
        self.start_signing(id, s);
    }

    /// Queues the signing round of executed submission `s` under its committee
    /// ([`WorkloadAction::ThresholdSign`]) and keeps it.
    fn start_signing(&mut self, id: u64, s: Submission) {
        let Some((receipt, _, _)) = &s.executed else {
            let e = ThresholdSignError::Frost("signed before any node executed it".into());
            return self.finish(s.reply, Err(WorkloadError::Signing(e)));
        };
        let (epoch, hash, group_key) = s.committee;
        let message = match committee_signing_bytes(receipt, epoch, &hash, &group_key) {
            Ok(m) => m,
            Err(e) => {
                let e = ThresholdSignError::Frost(e.to_string());
                return self.finish(s.reply, Err(WorkloadError::Signing(e)));
            }
        };
        let (slot, committee) = (receipt.slot(), s.committee);
        self.submissions.insert(id, s);
        self.push(WorkloadAction::ThresholdSign {
            id,
            slot,
            message,
            committee,
        });
    }
}
