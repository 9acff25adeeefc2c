//! Double receipts (issue 13 §6): two validly signed threshold receipts of one job (see
//! [`dsdn_protocols::receipt::dispute`]). Every accepted receipt's job is remembered (at
//! most [`MAX_JOBS`], oldest forgotten) with the first receipt seen for it; a second,
//! different receipt of a remembered job whose first receipt is still among the recent
//! receipts becomes a [`DoubleReceipt`] (at most [`MAX_DISPUTES`] kept, oldest dropped),
//! logged at error level, counted in `receipt_disputes_total` and served by
//! `GET /v1/disputes`. Both receipts stay accepted: each is valid on its own, and judging
//! them is the chain's business.
//!
//! Conflicting optimistic receipts (issue 13 §5, the challenge): a threshold receipt of a
//! job whose execution commitment differs from the one a coordinator vouched for in an
//! optimistic receipt of that job. Kept the same way ([`MAX_DISPUTES`], oldest dropped),
//! logged, counted in `receipt_disputes_total` and served by `GET /v1/disputes`.
//!
//! Signer disputes (issue 13 §6): a receipt validly signed by an unauthorised key
//! ([`UnauthorizedSigner`]: a threshold receipt under another group key; on a committee
//! member, an optimistic receipt by a non-member) and a receipt naming the group key whose
//! signature does not verify ([`InvalidSignature`]). Kept the same way, each kind at most
//! [`MAX_DISPUTES`], a repeat of a kept one ignored.

use std::collections::{HashMap, VecDeque};

use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::dispute::{
    job_key, DoubleReceipt, InvalidSignature, SignedReceipt, UnauthorizedSigner,
};
use dsdn_protocols::receipt::{OptimisticConflict, ThresholdReceipt};

use super::WorkloadService;

/// Jobs remembered for the comparison.
pub(crate) const MAX_JOBS: usize = 4096;

/// Double receipts kept.
pub(crate) const MAX_DISPUTES: usize = 32;

/// The jobs seen and the double receipts found; see the module documentation.
#[derive(Debug, Default)]
pub(crate) struct ReceiptDisputes {
    first: HashMap<Bytes32, Bytes32>,
    order: VecDeque<Bytes32>,
    found: VecDeque<DoubleReceipt>,
    conflicts: VecDeque<OptimisticConflict>,
    unauthorized: VecDeque<UnauthorizedSigner>,
    invalid: VecDeque<InvalidSignature>,
}

/// Pushes `item` onto `list` unless kept already; drops the oldest beyond [`MAX_DISPUTES`].
/// True when it was new.
fn keep<T: PartialEq>(list: &mut VecDeque<T>, item: T) -> bool {
    if list.contains(&item) {
        return false;
    }
    if list.len() >= MAX_DISPUTES {
        list.pop_front();
    }
    list.push_back(item);
    true
}

impl ReceiptDisputes {
    /// The double receipts found, oldest first.
    pub(crate) fn found(&self) -> impl Iterator<Item = &DoubleReceipt> {
        self.found.iter()
    }

    /// The id of the first threshold receipt accepted for `job`, if remembered.
    pub(crate) fn first_receipt(&self, job: &Bytes32) -> Option<Bytes32> {
        self.first.get(job).copied()
    }
}

impl WorkloadService {
    /// An accepted (verified, new) receipt: remembered by job, and compared with the first
    /// receipt of its job.
    pub(super) fn check_double_receipt(&mut self, receipt: &ThresholdReceipt) {
        let Ok(job) = job_key(&receipt.receipt) else {
            return;
        };
        let id = receipt.receipt_id();
        let d = &mut self.disputes;
        let Some(first_id) = d.first.get(&job).copied() else {
            if d.order.len() >= MAX_JOBS {
                if let Some(old) = d.order.pop_front() {
                    d.first.remove(&old);
                }
            }
            d.first.insert(job, id);
            d.order.push_back(job);
            return;
        };
        if first_id == id {
            return;
        }
        let Some(first) = self.recent.threshold(&first_id).cloned() else {
            return;
        };
        if first == *receipt {
            return;
        }
        tracing::error!(
            job = %hex::encode(job.0),
            first = %hex::encode(first_id.0),
            second = %hex::encode(id.0),
            "DOUBLE RECEIPT: the committee signed two different receipts of one job (GET /v1/disputes)"
        );
        self.metrics.disputes.inc();
        if d.found.len() >= MAX_DISPUTES {
            d.found.pop_front();
        }
        d.found.push_back(DoubleReceipt {
            receipt_a: first,
            receipt_b: receipt.clone(),
        });
    }

    /// The double receipts found, oldest first.
    pub(crate) fn double_receipts(&self) -> Vec<DoubleReceipt> {
        self.disputes.found().cloned().collect()
    }

    /// A threshold receipt contradicting an optimistic receipt of its job: kept as
    /// evidence, logged and counted (both receipts were verified before).
    pub(super) fn record_conflict(&mut self, conflict: OptimisticConflict) {
        if self.disputes.conflicts.contains(&conflict) {
            return;
        }
        tracing::error!(
            receipt = %hex::encode(conflict.optimistic.receipt_id().0),
            coordinator = %hex::encode(conflict.optimistic.coordinator_key.0),
            "OPTIMISTIC RECEIPT CHALLENGED: the committee signed another execution commitment for the job (GET /v1/disputes)"
        );
        self.metrics.disputes.inc();
        keep(&mut self.disputes.conflicts, conflict);
    }

    /// A receipt validly signed by a key not authorised for the committee: kept as
    /// evidence, logged and counted.
    pub(super) fn record_unauthorized(&mut self, evidence: UnauthorizedSigner) {
        let (kind, signer) = (evidence.receipt.kind(), evidence.receipt.signer());
        if keep(&mut self.disputes.unauthorized, evidence) {
            tracing::error!(
                kind,
                signer = %hex::encode(signer.0),
                "UNAUTHORIZED SIGNER: a receipt signed by a key that is not the committee's (GET /v1/disputes)"
            );
            self.metrics.disputes.inc();
        }
    }

    /// A receipt naming the committee's group key `group_key` whose signature does not
    /// verify: kept as evidence and counted (nothing when it is no such receipt).
    pub(super) fn record_invalid_signature(
        &mut self,
        receipt: SignedReceipt,
        group_key: dsdn_protocols::committee::GroupKey,
    ) {
        let evidence = InvalidSignature { receipt, group_key };
        if evidence.verify().is_ok() && keep(&mut self.disputes.invalid, evidence) {
            self.metrics.disputes.inc();
        }
    }

    /// The signer disputes found, oldest first: unauthorised signers, invalid signatures.
    pub(crate) fn signer_disputes(&self) -> (Vec<UnauthorizedSigner>, Vec<InvalidSignature>) {
        (
            self.disputes.unauthorized.iter().cloned().collect(),
            self.disputes.invalid.iter().cloned().collect(),
        )
    }

    /// The optimistic receipts contradicted by a threshold receipt, oldest first.
    pub(crate) fn optimistic_conflicts(&self) -> Vec<OptimisticConflict> {
        self.disputes.conflicts.iter().cloned().collect()
    }
}
