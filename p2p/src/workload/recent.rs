//! [`RecentReceipts`]: the receipts a node accepted recently, threshold and optimistic
//! (issue 13 §5), with the upgrade rule applied as they arrive; pure (times are passed in).

use std::collections::{HashMap, VecDeque};

use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::dispute::job_key;
use dsdn_protocols::receipt::optimistic::UpgradeError;
use dsdn_protocols::receipt::{OptimisticConflict, OptimisticReceipt, ReceiptV1, ThresholdReceipt};

/// A receipt as a node holds and serves it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeldReceipt {
    /// Signed by the committee (final as far as this layer goes).
    Threshold(ThresholdReceipt),
    /// Signed by one coordinator, waiting for its threshold receipt.
    Optimistic {
        /// The receipt.
        receipt: OptimisticReceipt,
        /// True once a threshold receipt of the same job with another commitment was seen
        /// (an [`OptimisticConflict`], served as a dispute).
        challenged: bool,
    },
}

/// What a [`HeldReceipt`] is worth at a given time (what `receipt show` says).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReceiptStatus {
    /// A threshold receipt.
    Threshold,
    /// An optimistic receipt within its challenge window (deadline in Unix ms).
    Optimistic {
        /// The end of the challenge window, milliseconds since the Unix epoch.
        deadline_ms: u64,
    },
    /// An optimistic receipt whose window ended with no threshold receipt: unconfirmed,
    /// not to be relied on.
    Expired {
        /// The end of the challenge window, milliseconds since the Unix epoch.
        deadline_ms: u64,
    },
    /// An optimistic receipt contradicted by a threshold receipt of its job.
    Challenged,
}

impl HeldReceipt {
    /// The receipt id.
    pub fn receipt_id(&self) -> Bytes32 {
        self.receipt().receipt_id
    }

    /// The node's receipt inside.
    pub fn receipt(&self) -> &ReceiptV1 {
        match self {
            HeldReceipt::Threshold(t) => &t.receipt,
            HeldReceipt::Optimistic { receipt, .. } => &receipt.receipt,
        }
    }

    /// The threshold receipt, if this is one.
    pub fn threshold(&self) -> Option<&ThresholdReceipt> {
        match self {
            HeldReceipt::Threshold(t) => Some(t),
            HeldReceipt::Optimistic { .. } => None,
        }
    }

    /// Its status at `now_ms` (milliseconds since the Unix epoch): an optimistic receipt is
    /// expired from its deadline on ([`OptimisticReceipt::is_challengeable`]).
    pub fn status(&self, now_ms: u64) -> ReceiptStatus {
        match self {
            HeldReceipt::Threshold(_) => ReceiptStatus::Threshold,
            HeldReceipt::Optimistic {
                challenged: true, ..
            } => ReceiptStatus::Challenged,
            HeldReceipt::Optimistic { receipt, .. } => {
                let deadline_ms = receipt.challenge_deadline_ms;
                if receipt.is_challengeable(now_ms) {
                    ReceiptStatus::Optimistic { deadline_ms }
                } else {
                    ReceiptStatus::Expired { deadline_ms }
                }
            }
        }
    }
}

/// What [`RecentReceipts::insert`] did with a threshold receipt.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ThresholdKept {
    /// Kept as a new receipt.
    New,
    /// It superseded the optimistic receipt of the same id (kept in its place).
    Upgraded,
    /// It contradicts the optimistic receipt of its job (marked challenged, or replaced
    /// when the ids are equal); kept, and here is the evidence.
    Conflict(Box<OptimisticConflict>),
    /// Held already.
    Known,
}

/// What [`RecentReceipts::insert_optimistic`] did with an optimistic receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OptimisticKept {
    /// Kept.
    New,
    /// The threshold receipt of that id is held: nothing to keep.
    Superseded,
    /// An optimistic receipt of that id is held already (the first is kept).
    Known,
}

/// The most recent accepted receipts, by id (at most `capacity`; oldest dropped first):
/// what `receipt show` finds before the DA log records it. A threshold receipt replaces the
/// optimistic receipt of the same id in place (the upgrade: one entry, never both).
#[derive(Debug)]
pub struct RecentReceipts {
    capacity: usize,
    receipts: HashMap<Bytes32, HeldReceipt>,
    order: VecDeque<Bytes32>,
    /// Job key ([`job_key`]) → id of the optimistic receipt held for it.
    optimistic_jobs: HashMap<Bytes32, Bytes32>,
}

impl RecentReceipts {
    /// An empty set of at most `capacity` receipts (at least 1).
    pub fn new(capacity: usize) -> Self {
        RecentReceipts {
            capacity: capacity.max(1),
            receipts: HashMap::new(),
            order: VecDeque::new(),
            optimistic_jobs: HashMap::new(),
        }
    }

    /// Keeps a (verified) threshold receipt, applying the upgrade rule
    /// ([`OptimisticReceipt::upgrade_to_threshold`]) to the optimistic receipt held for its
    /// job, if any.
    pub fn insert(&mut self, receipt: ThresholdReceipt) -> ThresholdKept {
        let id = receipt.receipt_id();
        if matches!(self.receipts.get(&id), Some(HeldReceipt::Threshold(_))) {
            return ThresholdKept::Known;
        }
        let optimistic = job_key(&receipt.receipt)
            .ok()
            .and_then(|job| self.optimistic_jobs.get(&job).copied())
            .and_then(|oid| match self.receipts.get(&oid) {
                Some(HeldReceipt::Optimistic { receipt, .. }) => Some((oid, receipt.clone())),
                _ => None,
            });
        let mut kept = ThresholdKept::New;
        if let Some((oid, o)) = optimistic {
            match o.upgrade_to_threshold(receipt.clone()) {
                Ok(_) => kept = ThresholdKept::Upgraded,
                Err(UpgradeError::Conflict(c)) => {
                    if let Some(HeldReceipt::Optimistic { challenged, .. }) =
                        self.receipts.get_mut(&oid)
                    {
                        *challenged = true;
                    }
                    kept = ThresholdKept::Conflict(c);
                }
                Err(UpgradeError::NotThisReceipt) => {}
            }
        }
        if self.receipts.contains_key(&id) {
            // The optimistic receipt of this id: superseded in place.
            self.forget_job(&id);
            self.receipts.insert(id, HeldReceipt::Threshold(receipt));
            return kept;
        }
        self.push(id, HeldReceipt::Threshold(receipt));
        kept
    }

    /// Keeps a (verified) optimistic receipt, unless a receipt of that id is held.
    pub fn insert_optimistic(&mut self, receipt: OptimisticReceipt) -> OptimisticKept {
        let id = receipt.receipt_id();
        match self.receipts.get(&id) {
            Some(HeldReceipt::Threshold(_)) => return OptimisticKept::Superseded,
            Some(HeldReceipt::Optimistic { .. }) => return OptimisticKept::Known,
            None => {}
        }
        if let Ok(job) = job_key(&receipt.receipt) {
            self.optimistic_jobs.insert(job, id);
        }
        self.push(
            id,
            HeldReceipt::Optimistic {
                receipt,
                challenged: false,
            },
        );
        OptimisticKept::New
    }

    fn push(&mut self, id: Bytes32, held: HeldReceipt) {
        self.receipts.insert(id, held);
        self.order.push_back(id);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.forget_job(&old);
                self.receipts.remove(&old);
            }
        }
    }

    /// Drops the job index entry of the optimistic receipt `id`, if it is one.
    fn forget_job(&mut self, id: &Bytes32) {
        if let Some(HeldReceipt::Optimistic { receipt, .. }) = self.receipts.get(id) {
            if let Ok(job) = job_key(&receipt.receipt) {
                if self.optimistic_jobs.get(&job) == Some(id) {
                    self.optimistic_jobs.remove(&job);
                }
            }
        }
    }

    /// The receipt with id `id`.
    pub fn get(&self, id: &Bytes32) -> Option<&HeldReceipt> {
        self.receipts.get(id)
    }

    /// The threshold receipt with id `id`.
    pub fn threshold(&self, id: &Bytes32) -> Option<&ThresholdReceipt> {
        self.receipts.get(id).and_then(HeldReceipt::threshold)
    }

    /// The receipts kept, newest first (an upgraded receipt keeps its place).
    pub fn newest(&self) -> impl Iterator<Item = &HeldReceipt> {
        self.order
            .iter()
            .rev()
            .filter_map(|id| self.receipts.get(id))
    }

    /// Receipts kept.
    pub fn len(&self) -> usize {
        self.receipts.len()
    }

    /// True when none is kept.
    pub fn is_empty(&self) -> bool {
        self.receipts.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsdn_protocols::committee::GroupKey;
    use dsdn_protocols::da::Bytes64;
    use dsdn_protocols::receipt::{sha256, ExecutionCommitment, ReceiptDraft, ResourceUsage};
    use ed25519_dalek::{Signer as _, SigningKey};

    const NOW: u64 = 1_700_000_000_000;
    const WINDOW: u64 = 10_000;

    fn node_receipt(node: u8, nonce: u64, output: &[u8]) -> ReceiptV1 {
        let commitment = ExecutionCommitment {
            workload_id: sha256(b"module"),
            input_hash: sha256(b"input"),
            output_hash: sha256(output),
            state_root_before: sha256(b"b"),
            state_root_after: sha256(b"a"),
            trace_root: sha256(b"t"),
            checkpoints: 1,
            fuel_used: 10,
        };
        let draft = ReceiptDraft {
            submitter: Bytes32([0xaa; 32]),
            nonce,
            commitment,
            usage: ResourceUsage {
                fuel_used: 10,
                memory_peak_bytes: 65_536,
                wall_time_ms: 1,
            },
            executed_at_ms: NOW,
        };
        ReceiptV1::sign(&SigningKey::from_bytes(&[node; 32]), draft).unwrap()
    }

    fn group() -> SigningKey {
        SigningKey::from_bytes(&[50; 32])
    }

    fn threshold(r: ReceiptV1) -> ThresholdReceipt {
        let mut t = ThresholdReceipt {
            receipt: r,
            epoch: 1,
            committee_hash: Bytes32([9; 32]),
            group_key: GroupKey(group().verifying_key().to_bytes()),
            signers: vec![crate::committee::member_id(&libp2p::PeerId::random()).unwrap()],
            aggregate_signature: Bytes64([0; 64]),
        };
        t.aggregate_signature = Bytes64(group().sign(&t.signing_bytes().unwrap()).to_bytes());
        t
    }

    fn optimistic(r: ReceiptV1) -> OptimisticReceipt {
        let gk = GroupKey(group().verifying_key().to_bytes());
        OptimisticReceipt::sign(
            &SigningKey::from_bytes(&[30; 32]),
            r,
            (1, Bytes32([9; 32]), gk),
            NOW,
            WINDOW,
        )
        .unwrap()
    }

    #[test]
    fn recent_receipts_are_bounded() {
        let mut recent = RecentReceipts::new(2);
        let (r1, r2, r3) = (
            threshold(node_receipt(1, 1, b"o")),
            threshold(node_receipt(1, 2, b"o")),
            threshold(node_receipt(1, 3, b"o")),
        );
        assert_eq!(recent.insert(r1.clone()), ThresholdKept::New);
        recent.insert(r2.clone());
        assert_eq!(recent.insert(r1.clone()), ThresholdKept::Known);
        assert_eq!(recent.len(), 2);
        recent.insert(r3.clone());
        assert_eq!(recent.len(), 2);
        assert!(recent.get(&r1.receipt_id()).is_none());
        assert_eq!(recent.threshold(&r3.receipt_id()), Some(&r3));
        let newest: Vec<_> = recent.newest().map(HeldReceipt::receipt_id).collect();
        assert_eq!(newest, vec![r3.receipt_id(), r2.receipt_id()]);
        // An evicted optimistic receipt leaves no job entry behind.
        let o = optimistic(node_receipt(2, 9, b"o"));
        recent.insert_optimistic(o.clone());
        recent.insert(threshold(node_receipt(1, 4, b"o")));
        recent.insert(threshold(node_receipt(1, 5, b"o")));
        assert!(recent.get(&o.receipt_id()).is_none());
        assert!(recent.optimistic_jobs.is_empty());
    }

    #[test]
    fn the_threshold_receipt_supersedes_the_optimistic_one_in_place() {
        let mut recent = RecentReceipts::new(8);
        let r = node_receipt(1, 1, b"out");
        let o = optimistic(r);
        assert_eq!(recent.insert_optimistic(o.clone()), OptimisticKept::New);
        assert_eq!(recent.insert_optimistic(o.clone()), OptimisticKept::Known);
        let later = threshold(node_receipt(1, 2, b"out"));
        recent.insert(later.clone());
        let held = recent.get(&o.receipt_id()).unwrap().clone();
        assert_eq!(
            held.status(NOW),
            ReceiptStatus::Optimistic {
                deadline_ms: NOW + WINDOW
            }
        );
        assert_eq!(recent.insert(threshold(r)), ThresholdKept::Upgraded);
        assert_eq!(recent.len(), 2, "superseded, not duplicated");
        assert_eq!(
            recent.get(&o.receipt_id()).unwrap().status(NOW),
            ReceiptStatus::Threshold
        );
        // Upgraded in place: still older than `later`.
        let newest: Vec<_> = recent.newest().map(HeldReceipt::receipt_id).collect();
        assert_eq!(newest, vec![later.receipt_id(), o.receipt_id()]);
        // A late optimistic copy does not come back.
        assert_eq!(recent.insert_optimistic(o), OptimisticKept::Superseded);
        assert!(recent.optimistic_jobs.is_empty());
    }

    #[test]
    fn an_unconfirmed_optimistic_receipt_expires_at_its_deadline() {
        let mut recent = RecentReceipts::new(8);
        let o = optimistic(node_receipt(1, 1, b"out"));
        recent.insert_optimistic(o.clone());
        let held = recent.get(&o.receipt_id()).unwrap();
        let deadline_ms = NOW + WINDOW;
        assert_eq!(
            held.status(deadline_ms - 1),
            ReceiptStatus::Optimistic { deadline_ms }
        );
        assert_eq!(
            held.status(deadline_ms),
            ReceiptStatus::Expired { deadline_ms }
        );
        assert_eq!(held.threshold(), None);
        // A threshold receipt arriving after the window still confirms it.
        assert_eq!(recent.insert(threshold(o.receipt)), ThresholdKept::Upgraded);
        assert_eq!(
            recent.get(&o.receipt_id()).unwrap().status(deadline_ms + 1),
            ReceiptStatus::Threshold
        );
    }

    #[test]
    fn a_threshold_receipt_with_another_commitment_is_a_conflict() {
        // Same job and node (same id), another output: the threshold receipt replaces the
        // optimistic one, which lives on in the evidence.
        let mut recent = RecentReceipts::new(8);
        let o = optimistic(node_receipt(1, 1, b"out"));
        recent.insert_optimistic(o.clone());
        let t = threshold(node_receipt(1, 1, b"another output"));
        assert_eq!(t.receipt_id(), o.receipt_id());
        let ThresholdKept::Conflict(c) = recent.insert(t.clone()) else {
            panic!("no conflict");
        };
        assert_eq!((c.optimistic.clone(), c.threshold.clone()), (o, t.clone()));
        c.verify(&t.group_key).unwrap();
        assert_eq!(recent.len(), 1);
        assert_eq!(recent.threshold(&t.receipt_id()), Some(&t));

        // Same job, another node (another id): both are kept, the optimistic one challenged.
        let mut recent = RecentReceipts::new(8);
        let o = optimistic(node_receipt(1, 1, b"out"));
        recent.insert_optimistic(o.clone());
        let t = threshold(node_receipt(2, 1, b"another output"));
        assert!(matches!(recent.insert(t), ThresholdKept::Conflict(_)));
        assert_eq!(recent.len(), 2);
        assert_eq!(
            recent.get(&o.receipt_id()).unwrap().status(NOW),
            ReceiptStatus::Challenged
        );

        // Same job, another node, the same result: it confirms that run, not this one.
        let mut recent = RecentReceipts::new(8);
        recent.insert_optimistic(o.clone());
        assert_eq!(
            recent.insert(threshold(node_receipt(2, 1, b"out"))),
            ThresholdKept::New
        );
        assert!(matches!(
            recent.get(&o.receipt_id()).unwrap().status(NOW),
            ReceiptStatus::Optimistic { .. }
        ));
    }
}
