//! The eviction queue: the order in which a write transaction evicts entries from a full
//! store, computed once per transaction instead of once per eviction.
//!
//! [`WriteCtx::worst_by_scan`](super::txn::WriteCtx::worst_by_scan) ranks every entry to pick
//! one victim, which made a 1000-entry PEX response into a full 10 000-entry store cost 1000
//! full scans. The queue ranks the entries once per transaction (from its second eviction;
//! the first is still one scan) in a max-heap keyed on the same order ([`Standing::rank`] at
//! `now`, ties by the higher PeerId); every later eviction pops from it.
//!
//! The heap is never edited in place. Entries written later in the transaction are pushed
//! ([`EvictionQueue::offer`]); entries changed or removed since they were pushed stay in it
//! as stale copies and are skipped when they reach the top, because their standing no longer
//! matches the transaction's current view ([`EvictionQueue::pop`]). So the entry popped is
//! always the one a full scan would pick at that moment.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

use libp2p_identity::PeerId;

use super::txn::Eviction;
use crate::score::Standing;

/// One entry as it stood when pushed; the greatest candidate is the first to evict.
#[derive(Debug)]
struct Candidate {
    standing: Standing,
    peer: PeerId,
    /// The time the ranking is taken at (the same for every candidate of one queue).
    now: u64,
}

impl Ord for Candidate {
    /// The order of `worst_by_scan`'s `max_by`: worse rank is greater, ties by PeerId.
    fn cmp(&self, other: &Self) -> Ordering {
        self.standing
            .rank(&other.standing, self.now)
            .then_with(|| self.peer.cmp(&other.peer))
    }
}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

/// True if `eviction` at `now` lets `s` be evicted (before the all-banned fallback of
/// [`Eviction::Any`]): never a ban in force, and for [`Eviction::UntestedOnly`] never an
/// entry that had a successful contact.
pub(super) fn allows(eviction: Eviction, s: &Standing, now: u64) -> bool {
    let unbanned = s.banned_until.is_none_or(|until| now >= until);
    match eviction {
        Eviction::Any => unbanned,
        Eviction::UntestedOnly => unbanned && s.last_success.is_none(),
    }
}

/// The evictable entries of one write transaction for one ([`Eviction`], `now`), worst first.
#[derive(Debug)]
pub(super) struct EvictionQueue {
    eviction: Eviction,
    now: u64,
    heap: BinaryHeap<Candidate>,
}

impl EvictionQueue {
    /// Ranks the entries of `live` (every entry of the transaction's current view) that
    /// `eviction` allows to evict at `now`.
    pub(super) fn build<'a>(
        eviction: Eviction,
        now: u64,
        live: impl Iterator<Item = (&'a PeerId, &'a Standing)>,
    ) -> Self {
        let candidates: Vec<Candidate> = live
            .filter(|(_, s)| allows(eviction, s, now))
            .map(|(peer, standing)| Candidate {
                standing: *standing,
                peer: *peer,
                now,
            })
            .collect();
        Self {
            eviction,
            now,
            heap: BinaryHeap::from(candidates),
        }
    }

    /// True if this queue ranks for `eviction` at `now`.
    pub(super) fn is_for(&self, eviction: Eviction, now: u64) -> bool {
        self.eviction == eviction && self.now == now
    }

    /// Records that `peer` now stands at `standing` (it was written in the transaction).
    pub(super) fn offer(&mut self, peer: PeerId, standing: Standing) {
        if allows(self.eviction, &standing, self.now) {
            self.heap.push(Candidate {
                standing,
                peer,
                now: self.now,
            });
        }
    }

    /// Removes and returns the worst candidate still current: `current(peer)` is the
    /// standing of `peer` in the transaction's view (`None` if removed), and candidates that
    /// no longer match it are dropped. `None` when no evictable entry is left.
    pub(super) fn pop(&mut self, current: impl Fn(&PeerId) -> Option<Standing>) -> Option<PeerId> {
        while let Some(c) = self.heap.pop() {
            if current(&c.peer) == Some(c.standing) {
                return Some(c.peer);
            }
        }
        None
    }
}
