//! Dial candidates and PEX entries (28.1.B §3, §5), ranked on the in-memory index.
//!
//! Both used to decode every record of peers.dat per call; a bootstrap node answering the PEX
//! requests of 1,000 joiners did O(n²) work. Now the filter and the [`dial_order`] ranking run
//! on the index ([`Standing::rank`], ties by PeerId, is exactly what [`dial_order`] compares),
//! and only the chosen records are cloned.

use std::collections::HashSet;

use super::txn::IndexEntry;
use super::{PeerStore, StoreError, PEX_WINDOW_SECS};
use crate::record::PeerRecord;
use crate::score::Standing;
use dsdn_protocols::pex::MAX_PEX_ENTRIES;
use dsdn_protocols::ServiceSet;
use libp2p_identity::PeerId;

#[cfg(doc)]
use crate::score::dial_order;

impl PeerStore {
    /// Up to `limit` peers to dial: not banned at `now`, not in `exclude` (e.g. already
    /// connected), with at least one address; best first by [`dial_order`] (highest score,
    /// ties by most recent success, suspicious entries last).
    ///
    /// Chosen and ordered on the in-memory index; equal to filtering and sorting every
    /// record.
    ///
    /// # Errors
    /// None today (no I/O); the `Result` is kept for callers.
    pub fn dial_candidates(
        &self,
        now: u64,
        exclude: &HashSet<PeerId>,
        limit: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        self.ranked(
            now,
            limit,
            |p, e| !e.standing.is_banned(now) && !exclude.contains(p) && e.has_addrs,
            |r| !r.is_banned(now) && !exclude.contains(&r.peer_id) && !r.addrs.is_empty(),
        )
    }

    /// Up to `min(limit, 1000)` peers to share in a PEX response (28.1.B §3): contacted
    /// successfully within [`PEX_WINDOW_SECS`] (24 h) before `now`, not banned, not
    /// `requester`, with at least one address and, if `services` is non-empty, offering at
    /// least one of `services`; best first by [`dial_order`]. With an address policy
    /// ([`PeerStore::with_address_policy`]) only the addresses it admits are returned, and
    /// records left without one are left out.
    ///
    /// An inbound peer's self-announced addresses ([`PeerStore::record_untested`]) carry no
    /// successful contact, so they are never shared before this node reached the peer.
    ///
    /// Chosen and ordered on the in-memory index (a PEX request costs O(n) to filter plus
    /// O(k log k) to order the k returned entries, and no decoding); equal to filtering and
    /// sorting every record.
    ///
    /// # Errors
    /// None today (no I/O); the `Result` is kept for callers.
    pub fn pex_entries(
        &self,
        now: u64,
        requester: &PeerId,
        services: ServiceSet,
        limit: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let offers = |s: ServiceSet| services.is_empty() || s.bits() & services.bits() != 0;
        let entries = self.ranked(
            now,
            limit.min(MAX_PEX_ENTRIES),
            |p, e| {
                e.standing
                    .last_success
                    .is_some_and(|t| now.saturating_sub(t) <= PEX_WINDOW_SECS)
                    && !e.standing.is_banned(now)
                    && p != requester
                    && e.has_addrs
                    && offers(e.services)
            },
            |r| {
                r.contacted_within(now, PEX_WINDOW_SECS)
                    && !r.is_banned(now)
                    && r.peer_id != *requester
                    && !r.addrs.is_empty()
                    && offers(r.services)
            },
        )?;
        // Records written before the address policy was set may hold addresses it refuses.
        let Some(policy) = self.policy else {
            return Ok(entries);
        };
        Ok(entries
            .into_iter()
            .filter_map(|mut r| {
                r.addrs.retain(|a| policy.admits(a));
                (!r.addrs.is_empty()).then_some(r)
            })
            .collect())
    }

    /// The records of up to `limit` index entries that pass `eligible`, best first by
    /// [`Standing::rank`] then PeerId (= [`dial_order`] of their records). `keep` is the
    /// record-level twin of `eligible`, checked in debug builds.
    ///
    /// Only the best `limit` entries are sorted and cloned.
    fn ranked(
        &self,
        now: u64,
        limit: usize,
        eligible: impl Fn(&PeerId, &IndexEntry) -> bool,
        keep: impl Fn(&PeerRecord) -> bool,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let mem = self.lock_index();
        let mut cands: Vec<(Standing, &PeerId, &PeerRecord)> = mem
            .index
            .iter()
            .filter(|(p, e)| eligible(p, e))
            .map(|(p, e)| (e.standing, p, &e.record))
            .collect();
        let cmp = |(sa, pa, _): &(Standing, &PeerId, &PeerRecord),
                   (sb, pb, _): &(Standing, &PeerId, &PeerRecord)| {
            sa.rank(sb, now).then_with(|| pa.cmp(pb))
        };
        let n = limit.min(cands.len());
        if n < cands.len() {
            cands.select_nth_unstable_by(limit - 1, cmp);
            cands.truncate(n);
        }
        cands.sort_unstable_by(cmp);
        debug_assert!(cands.iter().all(|(_, _, r)| keep(r)));
        Ok(cands.into_iter().map(|(_, _, r)| r.clone()).collect())
    }
}
