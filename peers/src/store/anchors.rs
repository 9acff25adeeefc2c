//! Anchors: the outbound peers of the last run, redialled first at the next start (Bitcoin
//! Core's anchors.dat, here the `anchors` table of peers.dat; 28.1.C §6 eclipse protection:
//! an attacker who fills the address book while the node is down still has to displace the
//! known-good peers the node reconnects to first).

use std::sync::atomic::Ordering;

use libp2p_identity::PeerId;
use redb::ReadableTable;

use super::txn::ANCHORS;
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
    /// [`StoreError::Database`] if the transaction fails (the previous set is kept then).
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
        self.write_with(
            |txn, _| {
                let mut table = txn.open_table(ANCHORS)?;
                table.retain(|_, _| false)?;
                for (pos, p) in (0u32..).zip(&ids) {
                    table.insert(pos, p.to_bytes().as_slice())?;
                }
                Ok(ids.len())
            },
            |n| self.anchors.store(*n, Ordering::Relaxed),
        )
        .map(drop)
    }

    /// Takes the saved anchors: returns those still stored, not banned at `now` (UNIX
    /// seconds) and with at least one address, in saved order, and clears the saved set in
    /// the same transaction — as Bitcoin Core deletes anchors.dat after reading it, so that a
    /// crash loop does not keep dialling the same peers.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails (the anchors are kept then).
    pub fn take_anchors(&self, now: u64) -> Result<Vec<PeerRecord>, StoreError> {
        self.write_with(
            |txn, ctx| {
                let mut table = txn.open_table(ANCHORS)?;
                let mut saved: Vec<Vec<u8>> = Vec::with_capacity(MAX_ANCHORS);
                for item in table.iter()?.take(MAX_ANCHORS) {
                    let (_, v) = item?;
                    saved.push(v.value().to_vec());
                }
                table.retain(|_, _| false)?;
                let mut out: Vec<PeerRecord> = Vec::with_capacity(saved.len());
                for raw in saved {
                    let Ok(peer) = PeerId::from_bytes(&raw) else {
                        continue;
                    };
                    if out.iter().any(|r| r.peer_id == peer) {
                        continue;
                    }
                    if let Some(r) = ctx.get(&peer)? {
                        if !r.is_banned(now) && !r.addrs.is_empty() {
                            out.push(r);
                        }
                    }
                }
                Ok(out)
            },
            |_| self.anchors.store(0, Ordering::Relaxed),
        )
    }
}
