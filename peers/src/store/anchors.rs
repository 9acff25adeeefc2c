//! Anchors: the outbound peers of the last run, redialled first at the next start (Bitcoin
//! Core's anchors.dat, here the `anchors` table of peers.dat; 28.1.C §6 eclipse protection:
//! an attacker who fills the address book while the node is down still has to displace the
//! known-good peers the node reconnects to first).

use libp2p_identity::PeerId;

use super::{PeerStore, StoreError};
use crate::record::PeerRecord;

/// Most anchors saved (8, as Bitcoin Core's two block-relay-only anchors scaled to our
/// outbound set).
pub const MAX_ANCHORS: usize = 8;

impl PeerStore {
    /// Replaces the saved anchors by the first [`MAX_ANCHORS`] distinct peers of `peers` (in
    /// that order; the rest is ignored), typically the outbound peers at shutdown. The peers
    /// need not be in the store: [`PeerStore::take_anchors`] skips those that are not.
    ///
    /// # Errors
    /// None today (the address book is in memory; the writer stores the anchors); the
    /// `Result` is kept for callers.
    pub fn save_anchors(&self, peers: &[PeerId]) -> Result<(), StoreError> {
        let mut ids: Vec<PeerId> = Vec::with_capacity(MAX_ANCHORS);
        for p in peers {
            if ids.len() == MAX_ANCHORS {
                break;
            }
            if !ids.contains(p) {
                ids.push(*p);
            }
        }
        let mut mem = self.lock_index();
        mem.anchors = ids;
        self.shared.mark([], true, false);
        Ok(())
    }

    /// Takes the saved anchors: returns those still stored, not banned at `now` (UNIX
    /// seconds) and with at least one address, in saved order, and clears the saved set —
    /// as Bitcoin Core deletes anchors.dat after reading it, so that a crash loop does not
    /// keep dialling the same peers.
    ///
    /// # Errors
    /// None today (see [`PeerStore::save_anchors`]).
    pub fn take_anchors(&self, now: u64) -> Result<Vec<PeerRecord>, StoreError> {
        let mut mem = self.lock_index();
        let saved = std::mem::take(&mut mem.anchors);
        let out: Vec<PeerRecord> = saved
            .iter()
            .filter_map(|p| mem.index.get(p))
            .map(|e| &e.record)
            .filter(|r| !r.is_banned(now) && !r.addrs.is_empty())
            .cloned()
            .collect();
        self.shared.mark([], true, false);
        Ok(out)
    }
}
