//! [`StoreStats`]: the address-book health, computed from the in-memory index without I/O.

use std::collections::BTreeMap;

use dsdn_protocols::{PeerSource, ServiceType};

use super::txn::Index;
use super::PeerStore;
use crate::netgroup::NetGroup;

/// The health of the address book at one instant: what `dsdn-agent peers stats` shows
/// (28.1.C §7) and what the `bootstrap_peers_dat_*` metrics export (28.1.C §8).
///
/// Returned by [`PeerStore::stats`]. Counts are numbers of entries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// Number of entries (`bootstrap_peers_dat_size`).
    pub entries: usize,
    /// Entries per [`PeerSource`]; every source is present, with 0 if it has no entry.
    pub by_source: BTreeMap<PeerSource, usize>,
    /// Entries per [`ServiceType`]: an entry counts under each service it offers; every
    /// known service type is present, with 0 if no entry offers it.
    pub by_service: BTreeMap<ServiceType, usize>,
    /// Entries per primary netgroup (that of the first address, see
    /// [`crate::PeerRecord::netgroup`]); entries without one (no address, `/memory`) are not
    /// counted here.
    pub by_netgroup: BTreeMap<NetGroup, usize>,
    /// Entries that were ever successfully contacted (`last_success` set).
    pub tried: usize,
    /// Suspicious entries (≥ 10 consecutive failures, 28.1.B §4).
    pub suspicious: usize,
    /// Entries banned at the `now` given to [`PeerStore::stats`].
    pub banned: usize,
    /// Sum of every entry's `success_count`.
    pub success_count: u64,
    /// Sum of every entry's `failure_count`.
    pub failure_count: u64,
    /// Number of saved anchors (see [`PeerStore::save_anchors`]), whether or not they are
    /// still stored.
    pub anchors: usize,
}

impl PeerStore {
    /// The address-book statistics at `now` (UNIX seconds, for the bans), from the in-memory
    /// index: no I/O, a single pass over at most [`super::MAX_ENTRIES`] entries.
    pub fn stats(&self, now: u64) -> StoreStats {
        let mem = self.lock_index();
        let mut stats = compute(&mem.index, now);
        stats.anchors = mem.anchors.len();
        stats
    }

    /// Entries verified at least once (`tried`) and not banned at `now`: the peers this node
    /// could reach. One pass over the in-memory index, no allocation.
    pub fn tried_unbanned(&self, now: u64) -> usize {
        let mem = self.lock_index();
        mem.index
            .values()
            .filter(|e| e.standing.last_success.is_some() && !e.standing.is_banned(now))
            .count()
    }
}

/// [`PeerStore::stats`] of an index, without the anchors.
fn compute(index: &Index, now: u64) -> StoreStats {
    let mut s = StoreStats {
        entries: index.len(),
        by_source: PeerSource::ALL.into_iter().map(|p| (p, 0)).collect(),
        by_service: ServiceType::ALL.into_iter().map(|t| (t, 0)).collect(),
        ..StoreStats::default()
    };
    for e in index.values() {
        *s.by_source.entry(e.source).or_default() += 1;
        for t in e.services.iter() {
            *s.by_service.entry(t).or_default() += 1;
        }
        if let Some(g) = &e.netgroup {
            *s.by_netgroup.entry(g.clone()).or_default() += 1;
        }
        let st = &e.standing;
        s.tried += usize::from(st.last_success.is_some());
        s.suspicious += usize::from(st.is_suspicious());
        s.banned += usize::from(st.is_banned(now));
        s.success_count += u64::from(st.success_count);
        s.failure_count += u64::from(st.failure_count);
    }
    s
}
