//! Outbound and feeler candidates (28.1.C §6), chosen on the in-memory index so that only
//! the chosen records are read from the file.

use std::collections::HashSet;

use libp2p_identity::PeerId;
use rand::seq::SliceRandom;
use redb::{ReadTransaction, ReadableDatabase};

use super::txn::PEERS;
use super::{PeerStore, StoreError};
use crate::record::{decode_record, PeerRecord};
use crate::select::{select, Candidate, OutboundView};

#[cfg(doc)]
use crate::select::select_outbound;

impl PeerStore {
    /// Up to `slots` peers to dial as outbound peers at `now` (UNIX seconds): the
    /// [`select_outbound`] choice (never banned, never without address, one per netgroup,
    /// source diversity; 28.1.C §6) among the stored peers not in `exclude` (the connected and
    /// dialling ones), given the current outbound peers `view`. Best first.
    ///
    /// Equal to `select_outbound(all() minus exclude, view, slots, now)`, but computed on the
    /// in-memory index: only the chosen records are read. A chosen record that turns out
    /// undecodable is purged and left out (the result is then one shorter).
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
    pub fn outbound_candidates(
        &self,
        now: u64,
        exclude: &HashSet<PeerId>,
        view: &OutboundView,
        slots: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let chosen: Vec<PeerId> = {
            let index = self.lock_index();
            let cands: Vec<Candidate<'_>> = index
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
        self.fetch(&chosen, chosen.len(), |r| {
            !r.is_banned(now) && !r.addrs.is_empty()
        })
    }

    /// `n` peers picked uniformly at random among the stored peers not in `exclude`, not
    /// banned at `now` (UNIX seconds) and with at least one address (fewer if there are not
    /// that many): feeler connections that test address-book entries (28.1.B §6 "every hour,
    /// try 2 random peers from peers.dat that are not connected"), whatever their score.
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
    pub fn feeler_candidates(
        &self,
        now: u64,
        exclude: &HashSet<PeerId>,
        n: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let mut ids: Vec<PeerId> = self
            .lock_index()
            .iter()
            .filter(|(p, e)| e.has_addrs && !e.standing.is_banned(now) && !exclude.contains(*p))
            .map(|(p, _)| *p)
            .collect();
        ids.shuffle(&mut rand::rng());
        self.fetch(&ids, n, |r| !r.is_banned(now) && !r.addrs.is_empty())
    }

    /// Reads the records of `ids` in order, in one read transaction, keeping the first `want`
    /// that pass `keep`; undecodable records are purged afterwards.
    fn fetch(
        &self,
        ids: &[PeerId],
        want: usize,
        keep: impl Fn(&PeerRecord) -> bool,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        self.fetch_in(&self.db.begin_read()?, ids, want, keep)
    }

    /// [`PeerStore::fetch`] in the read transaction `txn` (e.g. one begun while the index lock
    /// was held, so that it sees exactly the state the index mirrored).
    pub(super) fn fetch_in(
        &self,
        txn: &ReadTransaction,
        ids: &[PeerId],
        want: usize,
        keep: impl Fn(&PeerRecord) -> bool,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let mut out = Vec::with_capacity(want.min(ids.len()));
        let mut bad = Vec::new();
        {
            let table = txn.open_table(PEERS)?;
            for p in ids {
                if out.len() == want {
                    break;
                }
                let key = p.to_bytes();
                let Some(v) = table.get(key.as_slice())? else {
                    continue;
                };
                match decode_record(&key, v.value(), &self.network) {
                    Ok(r) if keep(&r) => out.push(r),
                    Ok(_) => {}
                    Err(_) => bad.push(key),
                }
            }
        }
        if !bad.is_empty() {
            self.purge(&bad)?;
        }
        Ok(out)
    }
}
