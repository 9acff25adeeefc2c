//! Epoch timing and the deterministic selection of the next committee (issue 13 §3;
//! Tahap 14A.2B.2 "coordinator selection deterministic from a DA seed", `derive_epoch_seed`,
//! `select_committee`, `EpochManager::is_in_handoff`), as pure functions of their inputs
//! (`now` passed in).
//!
//! These are the rules the epoch rotation driver ([`super::epoch_driver`]) applies and the
//! members co-signing a `committee_rotated` event check (docs/ARCHITECTURE.md "Committee
//! epochs"). The seed is pinned to the log ([`find_anchor`]: the last blob dated before the
//! handoff window opened) and so are the candidates ([`selection_candidates`]: the
//! coordinators registered at or before that blob), so every member derives the same
//! committee whatever its tip.
//!
//! Weights: every registered coordinator has weight 1. Stake belongs to the chain: a
//! stake-weighted selection replaces [`select_committee`]'s sort key by a weighted one
//! (e.g. `hash / weight`), with the weights read from the chain at the seed's height —
//! this is the seam.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Domain separator of [`derive_epoch_seed`].
const SEED_DOMAIN: &[u8] = b"dsdn/epoch-seed/v1";

/// `SHA-256("dsdn/epoch-seed/v1" ‖ epoch (u64 big-endian) ‖ da_blob_hash ‖
/// prev_committee_hash)`: the seed of the selection for `epoch`, from the hash of the last
/// DA blob before the handoff (the [`SeedAnchor`]) and the hash of the committee that hands
/// over (e.g. [`crate::receipt::committee_hash`]). Anyone holding the log can recompute it.
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
/// in that order (the proposer order), except that when none of them is a member of
/// `current` the last seat goes to the current member with the smallest key among the
/// candidates (continuity: the initiator of the next DKG and of its rotation is a member of
/// both committees, [`super::epoch_driver::initiator`]; it still ranks last, so the order
/// stays sorted by key). When fewer than `size` distinct candidates are
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
    let mut members: Vec<String> = keyed
        .iter()
        .take(size)
        .map(|(_, id)| (*id).clone())
        .collect();
    // Continuity: a committee with no member of the one in force would have no initiator
    // to run its DKG and put its rotation on the log (the current committee seals it); the
    // last seat goes to the best-ranked current member that is a candidate.
    if !members.iter().any(|m| current.contains(m)) {
        if let Some((_, carried)) = keyed.iter().skip(size).find(|(_, id)| current.contains(id)) {
            if let Some(last) = members.last_mut() {
                *last = (*carried).clone();
            }
        }
    }
    members
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

/// How long after a handoff window opens a member selects over an unpinned anchor (its tip
/// is still dated before the window: an idle log), in milliseconds. Until then it waits for
/// a blob dated in the window, which pins the anchor for good (issue 13 §3).
pub const ANCHOR_SETTLE_MS: u64 = 2_000;

/// The blob a selection's seed is pinned to: the last blob dated (`timestamp_ms`) before
/// the handoff window opened (height 0 and zeros when there is none). Blob timestamps never
/// decrease along the log, so once a blob dated in the window is applied the anchor is
/// fixed: every member, whatever its tip beyond it, finds the same one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeedAnchor {
    /// Its height (0: no blob before the window).
    pub height: u64,
    /// Its hash ([`crate::da::VerifiedBlob::hash`]; zeros at height 0).
    pub hash: [u8; 32],
}

/// What [`find_anchor`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnchorLookup {
    /// A blob dated at or after the window's opening is applied: the anchor is final.
    Pinned(SeedAnchor),
    /// The tip is dated before the window: the anchor is the tip for now, and a later blob
    /// dated before the window would still move it.
    Unpinned(SeedAnchor),
}

/// The anchor of the handoff window opening at `opens_ms` (UNIX ms) over the applied blobs
/// `1..=tip`: the tip when it is dated before `opens_ms` (no read), else a binary search by
/// timestamp with `header(h) = (timestamp_ms, hash)` of blob `h` (⌈log₂ tip⌉ + 1 reads).
///
/// # Errors
/// The height whose header `header` could not give (e.g. a blob before a state-sync
/// checkpoint, not held by this node).
pub fn find_anchor(
    tip: u64,
    tip_hash: [u8; 32],
    tip_timestamp_ms: u64,
    opens_ms: u64,
    header: impl Fn(u64) -> Option<(u64, [u8; 32])>,
) -> Result<AnchorLookup, u64> {
    if tip == 0 || tip_timestamp_ms < opens_ms {
        return Ok(AnchorLookup::Unpinned(SeedAnchor {
            height: tip,
            hash: if tip == 0 { [0; 32] } else { tip_hash },
        }));
    }
    // Invariant: blob `lo` is dated before the window (0: none), blob `hi` not.
    let (mut lo, mut hi) = (0u64, tip);
    let mut lo_hash = [0u8; 32];
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        let (ts, hash) = header(mid).ok_or(mid)?;
        if ts < opens_ms {
            (lo, lo_hash) = (mid, hash);
        } else {
            hi = mid;
        }
    }
    Ok(AnchorLookup::Pinned(SeedAnchor {
        height: lo,
        hash: lo_hash,
    }))
}

/// The anchor a member selects over at `now_ms`: a pinned one, or an unpinned one once
/// [`ANCHOR_SETTLE_MS`] have passed since the window opened at `opens_ms` (an idle log);
/// `None`: wait.
pub fn usable_anchor(lookup: AnchorLookup, now_ms: u64, opens_ms: u64) -> Option<SeedAnchor> {
    match lookup {
        AnchorLookup::Pinned(a) => Some(a),
        AnchorLookup::Unpinned(a) => {
            (now_ms >= opens_ms.saturating_add(ANCHOR_SETTLE_MS)).then_some(a)
        }
    }
}

/// The candidates of a selection over the coordinator `registry` (`(node_id,
/// registered_at)`, as [`crate::da::DaState::coordinators`]) as of the anchor height: the
/// coordinators registered at or before it that `eligible` admits (the node side admits
/// only those able to take part in the next DKG). When they are fewer than the `current`
/// committee's size, the current members are the candidates: the committee is kept and
/// re-keyed (a new DKG, the members in the seed's order).
pub fn selection_candidates(
    registry: &[(String, u64)],
    anchor_height: u64,
    current: &[String],
    eligible: impl Fn(&str) -> bool,
) -> Vec<String> {
    let mut registered: Vec<String> = registry
        .iter()
        .filter(|(id, at)| *at <= anchor_height && eligible(id))
        .map(|(id, _)| id.clone())
        .collect();
    registered.sort();
    registered.dedup();
    if registered.len() < current.len() {
        return current.to_vec();
    }
    registered
}

/// The selection rule of this build (`PROTOCOL.md` §7.6a): `2`, the registered
/// coordinators the network admits are the candidates ([`admitted_candidates`]: the genesis
/// committee's members and `[committee] candidates`, members of the committee in force or
/// followers). Rule 1 admitted only the members of the committee in force, the only
/// coordinators that ran the committee protocol then.
pub const SELECTION_RULE_VERSION: u16 = 2;

/// The candidates of selection rule 2 ([`SELECTION_RULE_VERSION`]): the coordinators of
/// `registry` registered at or before `anchor_height` that `admitted` names (the genesis
/// members and the configured candidates: the admission list while stake is not on the
/// chain, so registrations of PeerIds made up by the thousand select nobody); the
/// `current` members when those are fewer than its size.
pub fn admitted_candidates(
    registry: &[(String, u64)],
    anchor_height: u64,
    current: &[String],
    admitted: &[String],
) -> Vec<String> {
    selection_candidates(registry, anchor_height, current, |id| {
        admitted.iter().any(|a| a == id)
    })
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
    fn a_committee_of_outsiders_carries_one_current_member_over() {
        let c = ids(12);
        let cur = ids(3);
        let key = |seed: &[u8; 32], id: &String| -> [u8; 32] {
            let mut h = Sha256::new();
            h.update(seed);
            h.update(id.as_bytes());
            h.finalize().into()
        };
        let (mut carried, mut plain) = (0, 0);
        for b in 0..=255u8 {
            let seed = derive_epoch_seed(9, &[b; 32], &[1; 32]);
            let picked = select_committee(&c, &cur, 3, &seed);
            let mut ranked: Vec<&String> = c.iter().collect();
            ranked.sort_by_key(|id| key(&seed, id));
            let top: Vec<String> = ranked.iter().take(3).map(|id| (*id).clone()).collect();
            assert_eq!(picked.len(), 3);
            assert!(
                picked.iter().any(|m| cur.contains(m)),
                "no current member: {picked:?}"
            );
            if top.iter().any(|m| cur.contains(m)) {
                assert_eq!(picked, top, "with a current member the plain rule stands");
                plain += 1;
            } else {
                // The two best outsiders keep their seats; the best-ranked current member
                // takes the last one, and the order stays sorted by key.
                let best_current = ranked.iter().find(|id| cur.contains(id)).unwrap();
                assert_eq!(picked[..2], top[..2]);
                assert_eq!(&picked[2], *best_current);
                assert!(key(&seed, &picked[1]) < key(&seed, &picked[2]));
                carried += 1;
            }
            assert!(verify_selection(&picked, &c, &cur, 3, &seed));
        }
        // Both cases occur over these seeds (3 of 12 candidates: ~38 % have no current member).
        assert!(carried > 0 && plain > 0, "{carried} {plain}");
        // No current member among the candidates: nothing to carry over.
        let outsiders: Vec<String> = c[3..].to_vec();
        let seed = derive_epoch_seed(9, &[0; 32], &[1; 32]);
        let picked = select_committee(&outsiders, &cur, 3, &seed);
        assert!(!picked.iter().any(|m| cur.contains(m)));
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

    /// A log of `n` blobs: blob `h` dated `ts(h)`, hash `[h; 32]`.
    fn log(ts: &[u64]) -> impl Fn(u64) -> Option<(u64, [u8; 32])> + '_ {
        move |h| {
            let i = usize::try_from(h).ok()?.checked_sub(1)?;
            ts.get(i).map(|t| (*t, [h as u8; 32]))
        }
    }

    fn anchor_at(ts: &[u64], tip: u64, opens: u64) -> Result<AnchorLookup, u64> {
        let head = log(ts);
        let (tip_ts, tip_hash) = if tip == 0 {
            (0, [0; 32])
        } else {
            head(tip).unwrap()
        };
        find_anchor(tip, tip_hash, tip_ts, opens, head)
    }

    #[test]
    fn the_anchor_is_the_last_blob_before_the_window_whatever_the_tip() {
        // Blobs 1..=9 dated 100, 200, …; a window opening at 450: blob 4 is the anchor.
        let ts: Vec<u64> = (1..=9).map(|h| h * 100).collect();
        let want = SeedAnchor {
            height: 4,
            hash: [4; 32],
        };
        for tip in 5..=9 {
            assert_eq!(
                anchor_at(&ts, tip, 450),
                Ok(AnchorLookup::Pinned(want)),
                "tip {tip}"
            );
        }
        // A blob dated exactly at the opening is in the window.
        assert_eq!(
            anchor_at(&ts, 9, 400),
            Ok(AnchorLookup::Pinned(SeedAnchor {
                height: 3,
                hash: [3; 32]
            }))
        );
        // Behind the window: unpinned, the tip for now.
        assert_eq!(
            anchor_at(&ts, 3, 450),
            Ok(AnchorLookup::Unpinned(SeedAnchor {
                height: 3,
                hash: [3; 32]
            }))
        );
        // No blob before the window: height 0, zeros.
        let zero = SeedAnchor {
            height: 0,
            hash: [0; 32],
        };
        assert_eq!(anchor_at(&ts, 9, 50), Ok(AnchorLookup::Pinned(zero)));
        assert_eq!(anchor_at(&[], 0, 50), Ok(AnchorLookup::Unpinned(zero)));
        // Equal timestamps around the opening; every tip, every opening agrees with a scan.
        let ts = [10, 10, 20, 20, 20, 30, 40, 40];
        for opens in 0..50 {
            let last = (1..=8u64)
                .filter(|h| ts[*h as usize - 1] < opens)
                .max()
                .unwrap_or(0);
            for tip in 1..=8u64 {
                let got = anchor_at(&ts, tip, opens).unwrap();
                if ts[tip as usize - 1] >= opens {
                    assert_eq!(
                        got,
                        AnchorLookup::Pinned(SeedAnchor {
                            height: last,
                            hash: if last == 0 { [0; 32] } else { [last as u8; 32] }
                        })
                    );
                } else {
                    assert!(matches!(got, AnchorLookup::Unpinned(a) if a.height == tip));
                }
            }
        }
        // A blob this node does not hold is reported, never guessed.
        let holes = |h: u64| (h != 2).then_some((h * 100, [h as u8; 32]));
        assert_eq!(find_anchor(4, [4; 32], 400, 250, holes), Err(2));
    }

    #[test]
    fn an_unpinned_anchor_is_used_only_after_the_settle_delay() {
        let a = SeedAnchor {
            height: 3,
            hash: [3; 32],
        };
        assert_eq!(usable_anchor(AnchorLookup::Pinned(a), 0, 1_000), Some(a));
        let u = AnchorLookup::Unpinned(a);
        assert_eq!(usable_anchor(u, 1_000 + ANCHOR_SETTLE_MS - 1, 1_000), None);
        assert_eq!(usable_anchor(u, 1_000 + ANCHOR_SETTLE_MS, 1_000), Some(a));
    }

    #[test]
    fn candidates_are_the_registry_as_of_the_anchor() {
        let cur = ids(3);
        let reg: Vec<(String, u64)> = ids(6)
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as u64 + 1))
            .collect();
        let all = |_: &str| true;
        // Registered at heights 1..=6; at anchor 4, the first four.
        assert_eq!(selection_candidates(&reg, 4, &cur, all), ids(4));
        assert_eq!(selection_candidates(&reg, 100, &cur, all), ids(6));
        // Fewer than the committee's size: the current members.
        assert_eq!(selection_candidates(&reg, 2, &cur, all), cur);
        assert_eq!(selection_candidates(&[], 9, &cur, all), cur);
        // Only the eligible ones count.
        let even = |id: &str| id.ends_with('0') || id.ends_with('2') || id.ends_with('4');
        assert_eq!(
            selection_candidates(&reg, 100, &cur, even),
            vec![ids(6)[0].clone(), ids(6)[2].clone(), ids(6)[4].clone()]
        );
        assert_eq!(selection_candidates(&reg, 4, &cur, even), cur);
    }

    #[test]
    fn rule_2_admits_the_listed_registered_coordinators_and_keeps_a_thin_committee() {
        assert_eq!(SELECTION_RULE_VERSION, 2);
        let cur = ids(3);
        // ids 3 is admitted but no member of the committee in force; id 4 registered
        // without being admitted (a made-up PeerId): never a candidate.
        let reg: Vec<(String, u64)> = ids(5)
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as u64 + 1))
            .collect();
        let admitted = ids(4);
        assert_eq!(admitted_candidates(&reg, 5, &cur, &admitted), ids(4));
        assert_eq!(admitted_candidates(&reg, 4, &cur, &admitted), ids(4));
        assert_eq!(admitted_candidates(&reg, 5, &cur, &cur), cur);
        // Two admitted registered (one of them outside the committee) for three seats: the
        // members.
        let thin = vec![
            (ids(5)[0].clone(), 1),
            (ids(5)[3].clone(), 1),
            (ids(5)[4].clone(), 1),
        ];
        assert_eq!(admitted_candidates(&thin, 9, &cur, &admitted), cur);
    }

    #[test]
    fn the_selection_is_the_same_at_every_tip_and_follows_the_registry() {
        // Blobs dated 1..=40 s; registrations at heights 1..=8; the window opens at 20.5 s.
        let ts: Vec<u64> = (1..=40).map(|h| h * 1_000).collect();
        let reg: Vec<(String, u64)> = ids(8)
            .into_iter()
            .enumerate()
            .map(|(i, id)| (id, i as u64 + 1))
            .collect();
        let cur = ids(3);
        let select_at = |tip: u64, registry: &[(String, u64)]| {
            let Ok(AnchorLookup::Pinned(a)) = anchor_at(&ts, tip, 20_500) else {
                panic!("pinned at tip {tip}");
            };
            let c = selection_candidates(registry, a.height, &cur, |_| true);
            select_committee(&c, &cur, 3, &derive_epoch_seed(1, &a.hash, &[7; 32]))
        };
        let at_21 = select_at(21, &reg);
        for tip in 22..=40 {
            assert_eq!(select_at(tip, &reg), at_21, "tip {tip}");
        }
        // Registrations after the anchor do not count, whenever they are seen.
        let mut later = reg.clone();
        later.extend(ids(12).into_iter().skip(8).map(|id| (id, 30)));
        assert_eq!(select_at(40, &later), at_21);
        // A different registry (before the anchor) changes the selection for some seed.
        let fewer: Vec<(String, u64)> = reg[..4].to_vec();
        let differs = (0..8u8).any(|b| {
            let seed = derive_epoch_seed(1, &[b; 32], &[7; 32]);
            let a = selection_candidates(&reg, 20, &cur, |_| true);
            let f = selection_candidates(&fewer, 20, &cur, |_| true);
            select_committee(&a, &cur, 3, &seed) != select_committee(&f, &cur, 3, &seed)
        });
        assert!(differs);
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
