//! Receipts in [`WorkloadService`]: verification against the group key, duplicate
//! rejection, recent receipts (threshold and optimistic, with the upgrade rule), the DA log
//! record, gossip and its verdicts.

use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::dispute::{job_key, SignedReceipt, UnauthorizedSigner};
use dsdn_protocols::receipt::optimistic::UpgradeError;
use dsdn_protocols::receipt::{GossipReceipt, OptimisticReceipt, ReceiptError, ThresholdReceipt};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

use super::{unix_ms, ReceiptCheck, WorkloadAction, WorkloadService};
use crate::workload::{HeldReceipt, OptimisticKept, ThresholdKept};

/// What became of an optimistic receipt that verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OptimisticOutcome {
    /// Kept, or evidence of a challenge (recorded): to be forwarded.
    Kept,
    /// Not kept: its threshold receipt is held, it is held already, or its window is over.
    Ignored,
}

impl WorkloadService {
    /// Verifies a receipt against `check.group_key` and records it (dedup, recent
    /// receipts, [`WorkloadAction::RecordReceipt`] when `check.record`). `source`: the
    /// gossip peer, if any (only for logs).
    ///
    /// # Errors
    /// [`ReceiptError::WrongGroupKey`] without a group key, [`ReceiptError::Duplicate`]
    /// for a receipt accepted already, else why it does not verify.
    pub(super) fn accept_receipt(
        &mut self,
        receipt: &ThresholdReceipt,
        source: Option<PeerId>,
        check: ReceiptCheck,
    ) -> Result<(), ReceiptError> {
        let Some(group_key) = check.key_for(&receipt.group_key) else {
            self.count_receipt("unverifiable");
            return Err(ReceiptError::WrongGroupKey);
        };
        // Verified before the duplicate check, so that a forgery of a known job is refused
        // as invalid (and its sender blamed), not ignored as a duplicate.
        let checked = receipt
            .verify(&group_key)
            .and_then(|()| self.dedup.insert(receipt.receipt_id()));
        match checked {
            Ok(()) => {
                self.count_receipt("accepted");
                self.check_double_receipt(receipt);
                match self.recent.insert(receipt.clone()) {
                    ThresholdKept::Upgraded => self.count_receipt("upgraded"),
                    ThresholdKept::Conflict(c) => self.record_conflict(*c),
                    ThresholdKept::New | ThresholdKept::Known => {}
                }
                if check.record {
                    self.push(WorkloadAction::RecordReceipt(Box::new(receipt.clone())));
                }
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
                let signed = SignedReceipt::Threshold(receipt.clone());
                match e {
                    ReceiptError::BadGroupSignature => {
                        self.record_invalid_signature(signed, group_key)
                    }
                    // Validly signed under another group key: an unauthorised signer.
                    ReceiptError::WrongGroupKey if receipt.verify(&receipt.group_key).is_ok() => {
                        self.record_unauthorized(UnauthorizedSigner {
                            receipt: signed,
                            group_key,
                            committee: None,
                        })
                    }
                    _ => {}
                }
                Err(e)
            }
        }
    }

    /// Counts a receipt seen under `receipts_total{result}`.
    fn count_receipt(&self, result: &str) {
        self.metrics.receipts.with_label_values(&[result]).inc();
    }

    /// Queues the gossip of `receipt` (nothing if it does not encode).
    pub(super) fn gossip_receipt(&mut self, receipt: &ThresholdReceipt) {
        if let Ok(bytes) = receipt.to_bytes() {
            self.gossip(bytes);
        }
    }

    /// Queues the gossip of an encoded receipt.
    pub(super) fn gossip(&mut self, bytes: Vec<u8>) {
        self.push(WorkloadAction::Gossip(bytes));
    }

    /// Verifies an optimistic receipt against `check.group_key` and keeps it at `now_ms`
    /// unless superseded, held already or past its deadline. A threshold receipt of its
    /// job with another commitment, accepted earlier, makes it a conflict (recorded; the
    /// receipt is not kept then).
    ///
    /// # Errors
    /// [`ReceiptError::WrongGroupKey`] without a group key, else why it does not verify.
    pub(crate) fn accept_optimistic(
        &mut self,
        receipt: &OptimisticReceipt,
        source: Option<PeerId>,
        check: ReceiptCheck,
        now_ms: u64,
    ) -> Result<OptimisticOutcome, ReceiptError> {
        let Some(group_key) = check.key_for(&receipt.group_key) else {
            self.count_receipt("unverifiable");
            return Err(ReceiptError::WrongGroupKey);
        };
        if let Err(e) = receipt.verify(&group_key) {
            self.count_receipt("invalid");
            if let Some(peer) = source {
                tracing::warn!(%peer, error = %e, "invalid optimistic receipt refused");
            }
            if matches!(
                e,
                ReceiptError::BadCoordinatorSignature | ReceiptError::BadCoordinatorKey
            ) {
                self.record_invalid_signature(
                    SignedReceipt::Optimistic(receipt.clone()),
                    group_key,
                );
            }
            return Err(e);
        }
        // A committee member knows the members: a non-member's receipt is refused, and kept
        // as evidence.
        if let Some(committee) = &self.committee {
            let evidence = UnauthorizedSigner {
                receipt: SignedReceipt::Optimistic(receipt.clone()),
                group_key,
                committee: Some(committee.clone()),
            };
            if evidence.verify().is_ok() {
                self.count_receipt("invalid");
                self.record_unauthorized(evidence);
                return Err(ReceiptError::UnauthorizedSigner);
            }
        }
        // The threshold receipt of its job may have come first (gossip keeps no order).
        let first = job_key(&receipt.receipt)
            .ok()
            .and_then(|job| self.disputes.first_receipt(&job))
            .and_then(|id| self.recent.threshold(&id).cloned());
        if let Some(t) = first {
            match receipt.upgrade_to_threshold(t) {
                Ok(_) => {
                    self.count_receipt("superseded");
                    return Ok(OptimisticOutcome::Ignored);
                }
                Err(UpgradeError::Conflict(c)) => {
                    self.record_conflict(*c);
                    return Ok(OptimisticOutcome::Kept);
                }
                Err(UpgradeError::NotThisReceipt) => {}
            }
        }
        if !receipt.is_challengeable(now_ms) {
            self.count_receipt("expired");
            return Ok(OptimisticOutcome::Ignored);
        }
        Ok(self.keep_optimistic(receipt))
    }

    /// Keeps a verified optimistic receipt (see [`crate::workload::RecentReceipts`]).
    pub(super) fn keep_optimistic(&mut self, receipt: &OptimisticReceipt) -> OptimisticOutcome {
        match self.recent.insert_optimistic(receipt.clone()) {
            OptimisticKept::New => {
                self.count_receipt("optimistic");
                OptimisticOutcome::Kept
            }
            OptimisticKept::Superseded => {
                self.count_receipt("superseded");
                OptimisticOutcome::Ignored
            }
            OptimisticKept::Known => {
                self.count_receipt("duplicate");
                OptimisticOutcome::Ignored
            }
        }
    }

    /// A gossipsub message `id` on the receipts topic from `source` (a threshold or an
    /// optimistic receipt): the verdict ([`WorkloadAction::Verdict`]) forwards it only once
    /// verified and new; a duplicate (or a superseded or expired optimistic receipt) is
    /// ignored, an undecodable or invalid one rejected, and without a group key it is
    /// ignored (this node cannot judge: neither forward nor blame).
    pub(crate) fn on_receipt_gossip(
        &mut self,
        source: PeerId,
        id: MessageId,
        data: &[u8],
        check: ReceiptCheck,
    ) {
        let verdict = match GossipReceipt::from_bytes(data) {
            Err(_) => {
                self.count_receipt("invalid");
                MessageAcceptance::Reject
            }
            Ok(GossipReceipt::Threshold(receipt)) => {
                match self.accept_receipt(&receipt, Some(source), check) {
                    Ok(()) => MessageAcceptance::Accept,
                    Err(ReceiptError::Duplicate(_)) => MessageAcceptance::Ignore,
                    Err(_) if check.group_key.is_none() => MessageAcceptance::Ignore,
                    Err(_) => MessageAcceptance::Reject,
                }
            }
            Ok(GossipReceipt::Optimistic(receipt)) => {
                match self.accept_optimistic(&receipt, Some(source), check, unix_ms()) {
                    Ok(OptimisticOutcome::Kept) => MessageAcceptance::Accept,
                    Ok(OptimisticOutcome::Ignored) => MessageAcceptance::Ignore,
                    Err(_) if check.group_key.is_none() => MessageAcceptance::Ignore,
                    Err(_) => MessageAcceptance::Reject,
                }
            }
        };
        self.push(WorkloadAction::Verdict(id, source, verdict));
    }

    /// `NodeHandle::publish_receipt`: verify, record and gossip a receipt (threshold or
    /// optimistic) handed in by an operator or client.
    ///
    /// # Errors
    /// As [`WorkloadService::accept_receipt`] and [`WorkloadService::accept_optimistic`]
    /// (an optimistic receipt not kept: [`ReceiptError::Duplicate`]); nothing is gossiped
    /// then.
    pub(crate) fn publish_receipt(
        &mut self,
        receipt: GossipReceipt,
        check: ReceiptCheck,
    ) -> Result<(), ReceiptError> {
        match receipt {
            GossipReceipt::Threshold(t) => {
                self.accept_receipt(&t, None, check)?;
                self.gossip_receipt(&t);
            }
            GossipReceipt::Optimistic(o) => {
                match self.accept_optimistic(&o, None, check, unix_ms())? {
                    OptimisticOutcome::Kept => self.gossip(o.to_bytes()?),
                    OptimisticOutcome::Ignored => {
                        return Err(ReceiptError::Duplicate(o.receipt_id()))
                    }
                }
            }
        }
        Ok(())
    }

    /// The receipts this node accepted recently, newest first.
    pub(crate) fn recent_receipts(&self) -> impl Iterator<Item = &HeldReceipt> {
        self.recent.newest()
    }

    /// A receipt this node accepted recently (the DA log holds the older threshold ones).
    pub(crate) fn recent_receipt(&self, id: &Bytes32) -> Option<HeldReceipt> {
        self.recent.get(id).cloned()
    }
}
