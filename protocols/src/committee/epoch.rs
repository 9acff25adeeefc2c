//! Epoch timing and the deterministic selection of the next committee (issue 13 §3;
//! Tahap 14A.2B.2 "coordinator selection deterministic from a DA seed", `derive_epoch_seed`,
//! `select_committee`, `EpochManager::is_in_handoff`), as pure functions of their inputs
//! (`now` passed in).
//!
//! These are the rules the epoch rotation driver is to apply; the driver itself (DKG of
//! the selected members during the handoff, proposing `committee_rotated`) is not built
//! yet (docs/ARCHITECTURE.md "Committee epochs").
//!
//! Weights: every registered coordinator has weight 1. Stake belongs to the chain: a
//! stake-weighted selection replaces [`select_committee`]'s sort key by a weighted one
//! (e.g. `hash / weight`), with the weights read from the chain at the seed's height —
//! this is the seam.

use sha2::{Digest, Sha256};

/// Domain separator of [`derive_epoch_seed`].
const SEED_DOMAIN: &[u8] = b"dsdn/epoch-seed/v1";

/// `SHA-256("dsdn/epoch-seed/v1" ‖ epoch (u64 big-endian) ‖ da_blob_hash ‖
/// prev_committee_hash)`: the seed of the selection for `epoch`, from the hash of the last
/// DA blob before the handoff and the hash of the committee that hands over (e.g.
/// [`crate::receipt::committee_hash`]). Anyone holding the log can recompute it.
pub fn derive_epoch_seed(
    epoch: u64,
    da_blob_hash: &[u8; 32],
    prev_committee_hash: &[u8; 32],
) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(SEED_DOMAIN);
    h.update(epoch.to_be_bytes());
    h.update(da_blob_hash);
    h.update(prev_committee_hash);
    h.finalize().into()
}

/// The next committee: the `size` candidates with the smallest `SHA-256(seed ‖ id)`
/// (candidates deduplicated; ties impossible for distinct ids short of a hash collision),
/// in that order (the proposer order). When fewer than `size` distinct candidates are
/// registered, the current committee is kept (`current`, unchanged).
pub fn select_committee(
    candidates: &[String],
    current: &[String],
    size: usize,
    seed: &[u8; 32],
) -> Vec<String> {
    let mut distinct: Vec<&String> = candidates.iter().collect();
    distinct.sort();
    distinct.dedup();
    if size == 0 || distinct.len() < size {
        return current.to_vec();
    }
    let mut keyed: Vec<([u8; 32], &String)> = distinct
        .into_iter()
        .map(|id| {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(id.as_bytes());
            (h.finalize().into(), id)
        })
        .collect();
    keyed.sort();
    keyed
        .into_iter()
        .take(size)
        .map(|(_, id)| id.clone())
        .collect()
}

/// True when `proposed` is exactly [`select_committee`] of the same inputs (what a member
/// of the current committee checks before co-signing a rotation).
pub fn verify_selection(
    proposed: &[String],
    candidates: &[String],
    current: &[String],
    size: usize,
    seed: &[u8; 32],
) -> bool {
    select_committee(candidates, current, size, seed) == proposed
}

/// Epoch length and handoff window, in milliseconds; epoch `e` covers
/// `[start + e·epoch_ms, start + (e+1)·epoch_ms)` and its handoff window is its last
/// `handoff_ms` (issue 13 §3 defaults: 6 h and 15 min).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochSchedule {
    /// UNIX milliseconds at which epoch 0 starts.
    pub start_ms: u64,
    /// Epoch length, ≥ 1 ms.
    pub epoch_ms: u64,
    /// Handoff window at the end of each epoch, ≤ `epoch_ms`.
    pub handoff_ms: u64,
}

/// Where `now` falls in an [`EpochSchedule`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EpochPhase {
    /// The epoch `now` is in (0 before `start_ms`).
    pub epoch: u64,
    /// True inside the epoch's handoff window (the next committee is selected and runs its
    /// DKG; both keys are valid for receipts).
    pub in_handoff: bool,
    /// UNIX milliseconds at which the handoff window of `epoch` opens.
    pub handoff_opens_ms: u64,
    /// UNIX milliseconds at which `epoch` ends (the next one starts).
    pub ends_ms: u64,
}

impl EpochSchedule {
    /// The phase at `now_ms` (UNIX milliseconds). A zero `epoch_ms` counts as 1 ms and a
    /// `handoff_ms` above `epoch_ms` as `epoch_ms`.
    pub fn phase(&self, now_ms: u64) -> EpochPhase {
        let len = self.epoch_ms.max(1);
        let handoff = self.handoff_ms.min(len);
        let since = now_ms.saturating_sub(self.start_ms);
        let epoch = since / len;
        let starts = self.start_ms.saturating_add(epoch.saturating_mul(len));
        let ends_ms = starts.saturating_add(len);
        let handoff_opens_ms = ends_ms - handoff;
        EpochPhase {
            epoch,
            in_handoff: now_ms >= self.start_ms && now_ms >= handoff_opens_ms,
            handoff_opens_ms,
            ends_ms,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("12D3KooWcoord{i:02}")).collect()
    }

    #[test]
    fn selection_is_deterministic_and_depends_on_the_seed() {
        let c = ids(10);
        let cur = ids(3);
        let s1 = derive_epoch_seed(5, &[1; 32], &[2; 32]);
        let a = select_committee(&c, &cur, 4, &s1);
        assert_eq!(a.len(), 4);
        // Same inputs in another order and with duplicates: same committee.
        let mut shuffled: Vec<String> = c.iter().rev().cloned().collect();
        shuffled.push(c[0].clone());
        assert_eq!(select_committee(&shuffled, &cur, 4, &s1), a);
        assert!(verify_selection(&a, &c, &cur, 4, &s1));
        let mut other = a.clone();
        other.swap(0, 1);
        assert!(!verify_selection(&other, &c, &cur, 4, &s1));
        // Each input of the seed matters; over a few seeds the committee changes.
        assert_ne!(s1, derive_epoch_seed(6, &[1; 32], &[2; 32]));
        assert_ne!(s1, derive_epoch_seed(5, &[3; 32], &[2; 32]));
        assert_ne!(s1, derive_epoch_seed(5, &[1; 32], &[3; 32]));
        let differs = (0..8u8)
            .any(|b| select_committee(&c, &cur, 4, &derive_epoch_seed(5, &[b; 32], &[2; 32])) != a);
        assert!(differs);
    }

    #[test]
    fn too_few_registered_coordinators_keep_the_current_committee() {
        let cur = ids(3);
        let seed = [7; 32];
        assert_eq!(select_committee(&ids(2), &cur, 3, &seed), cur);
        let dup = vec![ids(1)[0].clone(); 5];
        assert_eq!(select_committee(&dup, &cur, 3, &seed), cur);
        assert_eq!(select_committee(&ids(3), &cur, 3, &seed).len(), 3);
    }

    #[test]
    fn epoch_and_handoff_timing() {
        // Seconds-long epochs as in the tests: 10 s epochs, 3 s handoff, from t = 1000 s.
        let s = EpochSchedule {
            start_ms: 1_000_000,
            epoch_ms: 10_000,
            handoff_ms: 3_000,
        };
        let p = s.phase(1_000_000);
        assert_eq!((p.epoch, p.in_handoff), (0, false));
        assert_eq!((p.handoff_opens_ms, p.ends_ms), (1_007_000, 1_010_000));
        assert!(!s.phase(1_006_999).in_handoff);
        assert!(s.phase(1_007_000).in_handoff);
        assert!(s.phase(1_009_999).in_handoff);
        let p = s.phase(1_010_000);
        assert_eq!((p.epoch, p.in_handoff), (1, false));
        assert_eq!(s.phase(1_025_500).epoch, 2);
        // Before the start: epoch 0, not in handoff.
        assert!(!s.phase(0).in_handoff);
        // The defaults: 6 h epochs, 15 min handoff.
        let d = EpochSchedule {
            start_ms: 0,
            epoch_ms: 6 * 3600 * 1000,
            handoff_ms: 15 * 60 * 1000,
        };
        assert!(!d.phase(5 * 3600 * 1000 + 44 * 60 * 1000).in_handoff);
        assert!(d.phase(5 * 3600 * 1000 + 45 * 60 * 1000).in_handoff);
        // Degenerate values are clamped, never panic.
        let z = EpochSchedule {
            start_ms: 0,
            epoch_ms: 0,
            handoff_ms: u64::MAX,
        };
        assert_eq!(z.phase(u64::MAX).epoch, u64::MAX);
    }
}
