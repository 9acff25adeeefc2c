//! Outbound and feeler candidates (28.1.C §6), chosen on the in-memory index.

use std::collections::HashSet;

use super::txn::Index;
use super::{PeerStore, StoreError};
use crate::record::PeerRecord;
use crate::select::{select, Candidate, OutboundView};
use libp2p_identity::PeerId;
use rand::seq::SliceRandom;

#[cfg(doc)]
use crate::select::select_outbound;

impl PeerStore {
    /// Up to `slots` peers to dial as outbound peers at `now` (UNIX seconds): the
    /// [`select_outbound`] choice (never banned, never without address, one per netgroup,
    /// source diversity; 28.1.C §6) among the stored peers not in `exclude` (the connected and
    /// dialling ones), given the current outbound peers `view`. Best first.
    ///
    /// Equal to `select_outbound(all() minus exclude, view, slots, now)`, computed on the
    /// in-memory index: only the chosen records are cloned.
    ///
    /// # Errors
    /// None today (no I/O); the `Result` is kept for callers.
    pub fn outbound_candidates(
        &self,
        now: u64,
        exclude: &HashSet<PeerId>,
        view: &OutboundView,
        slots: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let mem = self.lock_index();
        let chosen: Vec<PeerId> = {
            let cands: Vec<Candidate<'_>> = mem
                .index
                .iter()
                .filter(|(p, _)| !exclude.contains(*p))
                .map(|(p, e)| Candidate {
                    peer_id: *p,
                    standing: e.standing,
                    source: e.source,
                    netgroup: e.netgroup.as_ref(),
                    dialable: e.has_addrs,
                })
                .collect();
            select(&cands, view, slots, now)
                .into_iter()
                .map(|i| cands[i].peer_id)
                .collect()
        };
        Ok(Self::records_of(&mem.index, &chosen, chosen.len(), |r| {
            !r.is_banned(now) && !r.addrs.is_empty()
        }))
    }

    /// `n` peers picked uniformly at random among the stored peers not in `exclude`, not
    /// banned at `now` (UNIX seconds) and with at least one address (fewer if there are not
    /// that many): feeler connections that test address-book entries (28.1.B §6 "every hour,
    /// try 2 random peers from peers.dat that are not connected"), whatever their score.
    ///
    /// # Errors
    /// None today (no I/O); the `Result` is kept for callers.
    pub fn feeler_candidates(
        &self,
        now: u64,
        exclude: &HashSet<PeerId>,
        n: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let mem = self.lock_index();
        let mut ids: Vec<PeerId> = mem
            .index
            .iter()
            .filter(|(p, e)| e.has_addrs && !e.standing.is_banned(now) && !exclude.contains(*p))
            .map(|(p, _)| *p)
            .collect();
        ids.shuffle(&mut rand::rng());
        Ok(Self::records_of(&mem.index, &ids, n, |r| {
            !r.is_banned(now) && !r.addrs.is_empty()
        }))
    }

    /// The records of `ids` in that order, the first `want` that pass `keep`.
    fn records_of(
        index: &Index,
        ids: &[PeerId],
        want: usize,
        keep: impl Fn(&PeerRecord) -> bool,
    ) -> Vec<PeerRecord> {
        ids.iter()
            .filter_map(|p| index.get(p))
            .map(|e| &e.record)
            .filter(|r| keep(r))
            .take(want)
            .cloned()
            .collect()
    }
}
