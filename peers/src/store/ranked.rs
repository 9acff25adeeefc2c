//! Dial candidates and PEX entries (28.1.B §3, §5), ranked on the in-memory index so that
//! only the records returned are read from the file.
//!
//! Both used to decode every record of peers.dat per call; a bootstrap node answering the PEX
//! requests of 1,000 joiners did O(n²) work. Now the filter and the [`dial_order`] ranking run
//! on the index ([`Standing::rank`], ties by PeerId, is exactly what [`dial_order`] compares),
//! and the chosen records are fetched in a read transaction begun while the index lock was
//! held, so that the file and the index agree (writers commit and update the index under that
//! lock).

use std::collections::{HashMap, HashSet};

use dsdn_protocols::pex::MAX_PEX_ENTRIES;
use dsdn_protocols::ServiceSet;
use libp2p_identity::PeerId;
use redb::{ReadTransaction, ReadableDatabase, ReadableTable};

use super::txn::{IndexEntry, PEERS};
use super::{PeerStore, StoreError, PEX_WINDOW_SECS};
use crate::record::{decode_record, PeerRecord};
use crate::score::Standing;

#[cfg(doc)]
use crate::score::dial_order;

impl PeerStore {
    /// Up to `limit` peers to dial: not banned at `now`, not in `exclude` (e.g. already
    /// connected), with at least one address; best first by [`dial_order`] (highest score,
    /// ties by most recent success, suspicious entries last).
    ///
    /// Chosen and ordered on the in-memory index; only the returned records are read. A
    /// record that turns out undecodable is purged and replaced by the next best peer, so
    /// the result equals that of filtering and sorting every record.
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
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
    /// least one of `services`; best first by [`dial_order`].
    ///
    /// Chosen and ordered on the in-memory index; only the returned records are read (a PEX
    /// request costs O(n log n) on the index plus at most 1,000 record reads, not a decode of
    /// the whole file). A record that turns out undecodable is purged and replaced by the
    /// next best peer, so the result equals that of filtering and sorting every record.
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
    pub fn pex_entries(
        &self,
        now: u64,
        requester: &PeerId,
        services: ServiceSet,
        limit: usize,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let offers = |s: ServiceSet| services.is_empty() || s.bits() & services.bits() != 0;
        self.ranked(
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
        )
    }

    /// The records of up to `limit` index entries that pass `eligible`, best first by
    /// [`Standing::rank`] then PeerId (= [`dial_order`] of their records).
    ///
    /// The eligible entries are collected and a read transaction begun under the index lock,
    /// so that the transaction sees exactly the state the index mirrored (writers commit and
    /// update the index under that lock); the ranking and the reads happen after the lock is
    /// released. Records are kept if they decode and pass `keep`, the record-level twin of
    /// `eligible` (a safety net); an undecodable one is purged and the next best entry takes
    /// its place.
    ///
    /// Only the best `limit` entries are sorted (the rest only if a record had to be
    /// skipped) and read by key. When they are a large share of the store (the role-aware
    /// top-up asks for all of them), one pass over the table is cheaper than a lookup per
    /// record: the table is scanned and only the eligible records are decoded.
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
        let (mut cands, txn, stored) = {
            let index = self.lock_index();
            let cands: Vec<(Standing, PeerId)> = index
                .iter()
                .filter(|(p, e)| eligible(p, e))
                .map(|(p, e)| (e.standing, *p))
                .collect();
            (cands, self.db.begin_read()?, index.len())
        };
        let cmp = |(sa, pa): &(Standing, PeerId), (sb, pb): &(Standing, PeerId)| {
            sa.rank(sb, now).then_with(|| pa.cmp(pb))
        };
        let ids = |c: &[(Standing, PeerId)]| c.iter().map(|(_, p)| *p).collect::<Vec<_>>();
        let reads = limit.min(cands.len());
        if reads < cands.len() {
            // The best `limit` first, then the rest if a record had to be skipped.
            cands.select_nth_unstable_by(limit - 1, cmp);
        }
        let (best, rest) = cands.split_at_mut(reads);
        best.sort_unstable_by(cmp);
        let mut out = if reads.saturating_mul(SCAN_DENOMINATOR) >= stored * SCAN_NUMERATOR {
            self.scan_in(&txn, &ids(best), limit, &keep)?
        } else {
            self.fetch_in(&txn, &ids(best), limit, &keep)?
        };
        if out.len() < limit && !rest.is_empty() {
            rest.sort_unstable_by(cmp);
            out.extend(self.fetch_in(&txn, &ids(rest), limit - out.len(), &keep)?);
        }
        Ok(out)
    }

    /// The records of `ids` in that order, read in one pass over the table of `txn`: the
    /// first `want` that decode and pass `keep`. Records not in `ids` are not decoded;
    /// undecodable ones in `ids` are purged afterwards.
    fn scan_in(
        &self,
        txn: &ReadTransaction,
        ids: &[PeerId],
        want: usize,
        keep: impl Fn(&PeerRecord) -> bool,
    ) -> Result<Vec<PeerRecord>, StoreError> {
        let position: HashMap<Vec<u8>, usize> = ids
            .iter()
            .enumerate()
            .map(|(i, p)| (p.to_bytes(), i))
            .collect();
        let mut slots: Vec<Option<PeerRecord>> = Vec::new();
        slots.resize_with(ids.len(), || None);
        let mut bad = Vec::new();
        {
            let table = txn.open_table(PEERS)?;
            for item in table.iter()? {
                let (k, v) = item?;
                let Some(&i) = position.get(k.value()) else {
                    continue;
                };
                match decode_record(k.value(), v.value(), &self.network) {
                    Ok(r) if keep(&r) => slots[i] = Some(r),
                    Ok(_) => {}
                    Err(_) => bad.push(k.value().to_vec()),
                }
            }
        }
        if !bad.is_empty() {
            self.purge(&bad)?;
        }
        Ok(slots.into_iter().flatten().take(want).collect())
    }
}

/// [`PeerStore::ranked`] scans the whole table instead of reading by key when it reads at
/// least `SCAN_NUMERATOR / SCAN_DENOMINATOR` of the stored records.
const SCAN_NUMERATOR: usize = 1;
const SCAN_DENOMINATOR: usize = 4;
