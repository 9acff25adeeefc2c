//! [`PeerStore`]: peers.dat as a redb database (28.1.B §3–§5, 28.1.C §6–§8).
//!
//! Every mutating call is one redb write transaction (crash-safe, default durability: a
//! committed call survives a crash, an interrupted one leaves no trace). Every read goes
//! through a redb read transaction. An in-memory index of each entry's score inputs, source,
//! services and primary netgroup mirrors the file so that [`PeerStore::len`],
//! [`PeerStore::stats`], the choice of the entry to evict, the outbound and feeler choices,
//! the dial candidates and the PEX entries are cheap (only the chosen records are read).
//!
//! Besides the peers, the file keeps the anchors ([`PeerStore::save_anchors`],
//! [`PeerStore::take_anchors`]): the outbound peers of the last run, redialled first at the
//! next start, as Bitcoin Core's anchors.dat.
//!
//! 28.1.B §4 asks for atomic writes (temp file, then rename); redb's checksummed
//! copy-on-write commits give the same guarantee for every transaction, without rewriting
//! the whole file.
//!
//! All `now` and time arguments are UNIX seconds.

mod anchors;
mod evict;
mod open;
mod outbound;
mod ranked;
mod stats;
mod txn;
mod types;

#[cfg(test)]
mod tests_anchors;
#[cfg(test)]
mod tests_evict;
#[cfg(test)]
mod tests_fuzz;
#[cfg(test)]
mod tests_open;
#[cfg(test)]
mod tests_ops;
#[cfg(test)]
mod tests_outbound;
#[cfg(test)]
mod tests_ranked;
#[cfg(test)]
mod tests_select;
#[cfg(test)]
mod tests_upgrade;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use dsdn_protocols::pex::PEX_FRESHNESS;
use dsdn_protocols::{NetworkId, PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use redb::{Database, ReadableDatabase, ReadableTable, WriteTransaction};

pub use anchors::MAX_ANCHORS;
pub use open::SCHEMA_VERSION;
pub use stats::StoreStats;
pub use types::{LearnedPeer, OpenReport, StoreError};

use crate::record::{decode_record, sanitize_addrs, PeerRecord};
use txn::{apply, Eviction, Index, WriteCtx, ANCHORS, PEERS};

/// Most entries peers.dat holds (28.1.B §4).
pub const MAX_ENTRIES: usize = 10_000;

/// Entries never successfully contacted for longer than this are garbage-collected
/// (30 days, in seconds; 28.1.B §4).
pub const GC_AFTER_SECS: u64 = 30 * 24 * 60 * 60;

/// Only peers contacted successfully within this window are shared through PEX (24 hours,
/// in seconds; 28.1.B §3).
pub const PEX_WINDOW_SECS: u64 = PEX_FRESHNESS.as_secs();

/// The persistent peer cache, peers.dat (28.1.B §4): a redb database of at most
/// [`MAX_ENTRIES`] [`PeerRecord`]s of one network.
///
/// Thread-safe (`Send + Sync`); share it behind an `Arc`. Only one `PeerStore` may have a
/// file open at a time (redb takes a file lock).
pub struct PeerStore {
    db: Database,
    path: PathBuf,
    network: NetworkId,
    index: Mutex<Index>,
    /// Number of saved anchors; only changed while the index lock is held, after a commit.
    anchors: AtomicUsize,
}

impl fmt::Debug for PeerStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PeerStore")
            .field("path", &self.path)
            .field("network", &self.network)
            .field("len", &self.len())
            .finish()
    }
}

impl PeerStore {
    /// Opens or creates peers.dat at `path` for `network`.
    ///
    /// A schema-1 file is upgraded in place to [`SCHEMA_VERSION`] (records rewritten with
    /// their netgroups, anchors table added; reported in [`OpenReport::upgraded_from`]).
    /// An unusable file (redb refuses it: random bytes, truncated, zero-length, failed
    /// integrity check; a redb file that is not a peers.dat; an unknown older schema such as
    /// 0) is renamed to `<name>.corrupt-<unix-seconds>` in the same
    /// directory, logged once with `tracing::warn!`, replaced by an empty store and reported
    /// in [`OpenReport::moved_aside`]. Records that fail to decode are deleted and counted in
    /// [`OpenReport::purged_records`].
    ///
    /// # Errors
    /// * [`StoreError::NetworkMismatch`] for a store of another network (the file is left
    ///   untouched);
    /// * [`StoreError::NewerSchema`] for a file of a schema newer than [`SCHEMA_VERSION`]
    ///   (the file is left untouched);
    /// * [`StoreError::AlreadyOpen`] if the file is open elsewhere;
    /// * [`StoreError::Io`] for file-system failures (missing directory, permissions,
    ///   `path` is a directory, the rename fails);
    /// * [`StoreError::Unusable`] / [`StoreError::Database`] if even a fresh file fails.
    pub fn open(path: &Path, network: &NetworkId) -> Result<(PeerStore, OpenReport), StoreError> {
        let (opened, moved_aside) = open::open_or_recover(path, network)?;
        let store = PeerStore {
            db: opened.db,
            path: path.to_owned(),
            network: network.clone(),
            index: Mutex::new(opened.index),
            anchors: AtomicUsize::new(opened.anchors),
        };
        let report = OpenReport {
            moved_aside,
            purged_records: opened.purged,
            upgraded_from: opened.upgraded_from,
        };
        Ok((store, report))
    }

    /// The file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The network of every record in this store.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Number of entries (from the in-memory index; no I/O).
    pub fn len(&self) -> usize {
        self.lock_index().len()
    }

    /// True when the store has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a verified handshake with `peer` at `now`.
    ///
    /// Inserts the peer if unknown (`source` is kept only from that first insert; a full
    /// store evicts its worst-ranked unbanned entry). `addrs` (sanitised: at most 16, each at
    /// most 128 bytes, deduplicated) and `services` replace the stored ones;
    /// `success_count += 1`, `consecutive_failures = 0`, `last_success = last_seen = now`.
    /// A ban in force is kept.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails (nothing is changed then).
    pub fn record_success(
        &self,
        peer: PeerId,
        addrs: &[Multiaddr],
        services: ServiceSet,
        source: PeerSource,
        now: u64,
    ) -> Result<(), StoreError> {
        let addrs = sanitize_addrs(addrs);
        let network = self.network.clone();
        self.write(|ctx| {
            let (mut r, known) = match ctx.get(&peer)? {
                Some(r) => (r, true),
                None => (
                    PeerRecord::new(peer, Vec::new(), network, services, source, now),
                    false,
                ),
            };
            r.addrs = addrs;
            r.services = services;
            r.success_count = r.success_count.saturating_add(1);
            r.consecutive_failures = 0;
            r.last_success = Some(now);
            r.last_seen = now;
            if known {
                ctx.put(&r)?;
            } else {
                ctx.insert_new(&r, Eviction::Any, MAX_ENTRIES, now)?;
            }
            Ok(())
        })
    }

    /// Records a failed connection attempt to `peer` at `now`: `failure_count += 1`,
    /// `consecutive_failures += 1`, `last_attempt = now`. Returns false (and changes
    /// nothing) for an unknown peer.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn record_failure(&self, peer: &PeerId, now: u64) -> Result<bool, StoreError> {
        self.write(|ctx| {
            let Some(mut r) = ctx.get(peer)? else {
                return Ok(false);
            };
            r.failure_count = r.failure_count.saturating_add(1);
            r.consecutive_failures = r.consecutive_failures.saturating_add(1);
            r.last_attempt = Some(now);
            ctx.put(&r)?;
            Ok(true)
        })
    }

    /// Adds a peer learned second-hand (PEX, DNS, static config) at `now`; returns whether it
    /// was inserted.
    ///
    /// Known peers are never changed (verified data is never overwritten; a banned peer is a
    /// known peer). A peer with no valid address is not inserted. In a full store the
    /// newcomer only evicts the worst entry that never had a successful contact and is not
    /// banned, and is dropped if there is none (test-before-evict, as Bitcoin Core).
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn learn(
        &self,
        peer: PeerId,
        addrs: &[Multiaddr],
        services: ServiceSet,
        source: PeerSource,
        now: u64,
    ) -> Result<bool, StoreError> {
        let learned = LearnedPeer {
            peer_id: peer,
            addrs: addrs.to_vec(),
            services,
        };
        Ok(self.learn_many(std::slice::from_ref(&learned), source, now)? == 1)
    }

    /// [`PeerStore::learn`] for many peers (e.g. one PEX response) in a single transaction;
    /// returns how many were inserted.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails (then none is inserted).
    pub fn learn_many(
        &self,
        peers: &[LearnedPeer],
        source: PeerSource,
        now: u64,
    ) -> Result<usize, StoreError> {
        let network = &self.network;
        self.write(|ctx| {
            let mut inserted = 0;
            for p in peers {
                let addrs = sanitize_addrs(&p.addrs);
                if addrs.is_empty() || ctx.get(&p.peer_id)?.is_some() {
                    continue;
                }
                let r = PeerRecord::new(p.peer_id, addrs, network.clone(), p.services, source, now);
                if ctx.insert_new(&r, Eviction::UntestedOnly, MAX_ENTRIES, now)? {
                    inserted += 1;
                }
            }
            Ok(inserted)
        })
    }

    /// The record of `peer`, if any.
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
    pub fn get(&self, peer: &PeerId) -> Result<Option<PeerRecord>, StoreError> {
        let key = peer.to_bytes();
        let decoded = {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(PEERS)?;
            let value = table.get(key.as_slice())?;
            match value {
                None => return Ok(None),
                Some(v) => decode_record(&key, v.value(), &self.network),
            }
        };
        match decoded {
            Ok(r) => Ok(Some(r)),
            Err(_) => {
                self.purge(&[key])?;
                Ok(None)
            }
        }
    }

    /// Every record, most recent successful contact first (never-contacted last), as the
    /// node loads peers.dat at startup (28.1.B §4).
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
    pub fn all(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let mut all = self.read_all()?;
        all.sort_by(|a, b| {
            b.last_success
                .cmp(&a.last_success)
                .then_with(|| a.peer_id.cmp(&b.peer_id))
        });
        Ok(all)
    }

    /// Deletes the record of `peer`; true if it existed.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn remove(&self, peer: &PeerId) -> Result<bool, StoreError> {
        self.write(|ctx| ctx.remove(peer))
    }

    /// Deletes every record and the saved anchors (the meta table is kept); the 28.1.C §7
    /// `dsdn-agent peers reset`.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn clear(&self) -> Result<(), StoreError> {
        let mut index = self.lock_index();
        let txn = self.db.begin_write()?;
        txn.open_table(PEERS)?.retain(|_, _| false)?;
        txn.open_table(ANCHORS)?.retain(|_, _| false)?;
        txn.commit()?;
        index.clear();
        self.anchors.store(0, Ordering::Relaxed);
        Ok(())
    }

    /// Bans `peer` until `until` (exclusive). An unknown peer gets a placeholder record (no
    /// addresses, no services, source `inbound`, first seen `now`) so the ban persists and
    /// [`PeerStore::learn`] cannot re-add it; in a full store that may evict the worst
    /// unbanned entry.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn ban(&self, peer: &PeerId, until: u64, now: u64) -> Result<(), StoreError> {
        let network = self.network.clone();
        self.write(|ctx| {
            match ctx.get(peer)? {
                Some(mut r) => {
                    r.banned_until = Some(until);
                    ctx.put(&r)?;
                }
                None => {
                    let mut r = PeerRecord::new(
                        *peer,
                        Vec::new(),
                        network,
                        ServiceSet::EMPTY,
                        PeerSource::Inbound,
                        now,
                    );
                    r.banned_until = Some(until);
                    ctx.insert_new(&r, Eviction::Any, MAX_ENTRIES, now)?;
                }
            }
            Ok(())
        })
    }

    /// Lifts a ban; true if `peer` had a ban flag (expired or not).
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn unban(&self, peer: &PeerId) -> Result<bool, StoreError> {
        self.write(|ctx| match ctx.get(peer)? {
            Some(mut r) if r.banned_until.is_some() => {
                r.banned_until = None;
                ctx.put(&r)?;
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// True while a ban on `peer` is in force at `now`.
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
    pub fn is_banned(&self, peer: &PeerId, now: u64) -> Result<bool, StoreError> {
        Ok(self.get(peer)?.is_some_and(|r| r.is_banned(now)))
    }

    /// Garbage collection (28.1.B §4): deletes every entry not banned at `now` whose
    /// `first_seen` and `last_success` (if any) are both more than [`GC_AFTER_SECS`]
    /// (30 days) before `now`, and clears expired ban flags. Returns how many entries were
    /// deleted.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails (nothing is changed then).
    pub fn gc(&self, now: u64) -> Result<usize, StoreError> {
        let old = |t: u64| now.saturating_sub(t) > GC_AFTER_SECS;
        self.write(|ctx| {
            let peers: Vec<PeerId> = ctx
                .base()
                .keys()
                .filter(|p| !ctx.touched(p))
                .copied()
                .collect();
            let mut removed = 0;
            for peer in peers {
                let Some(mut r) = ctx.get(&peer)? else {
                    continue;
                };
                if !r.is_banned(now) && old(r.first_seen) && r.last_success.is_none_or(old) {
                    ctx.remove(&peer)?;
                    removed += 1;
                } else if r.banned_until.is_some() && !r.is_banned(now) {
                    r.banned_until = None;
                    ctx.put(&r)?;
                }
            }
            Ok(removed)
        })
    }

    fn lock_index(&self) -> MutexGuard<'_, Index> {
        // The index is only modified after a commit, by plain map inserts and removes, so a
        // panic elsewhere cannot leave it inconsistent.
        self.index.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` in one write transaction and, once it committed, applies its index changes.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteCtx<'_, '_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.write_with(|_, ctx| f(ctx), |_| {})
    }

    /// [`PeerStore::write`] where `f` may also open other tables of the transaction, and
    /// `after` runs with `f`'s result once the transaction committed, under the index lock.
    fn write_with<T>(
        &self,
        f: impl FnOnce(&WriteTransaction, &mut WriteCtx<'_, '_>) -> Result<T, StoreError>,
        after: impl FnOnce(&T),
    ) -> Result<T, StoreError> {
        let mut index = self.lock_index();
        let txn = self.db.begin_write()?;
        let (out, overlay) = {
            let mut ctx = WriteCtx::new(txn.open_table(PEERS)?, &index, &self.network);
            let out = f(&txn, &mut ctx)?;
            (out, ctx.into_overlay())
        };
        txn.commit()?;
        apply(&mut index, overlay);
        after(&out);
        Ok(out)
    }

    /// Reads and decodes every record in one read transaction; undecodable ones are then
    /// deleted (and logged) and left out.
    fn read_all(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let mut records = Vec::with_capacity(self.len());
        let mut bad = Vec::new();
        {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(PEERS)?;
            for item in table.iter()? {
                let (k, v) = item?;
                match decode_record(k.value(), v.value(), &self.network) {
                    Ok(r) => records.push(r),
                    Err(_) => bad.push(k.value().to_vec()),
                }
            }
        }
        if !bad.is_empty() {
            self.purge(&bad)?;
        }
        Ok(records)
    }

    /// Deletes the given records if they still fail to decode (the check is repeated inside
    /// the write transaction, which logs each deletion).
    fn purge(&self, keys: &[Vec<u8>]) -> Result<(), StoreError> {
        self.write(|ctx| {
            for key in keys {
                ctx.purge_if_bad(key)?;
            }
            Ok(())
        })
    }
}
