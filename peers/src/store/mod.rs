//! [`PeerStore`]: peers.dat as a redb database (28.1.B §3–§5, 28.1.C §6–§8).
//!
//! The address book lives in memory and is authoritative: every call reads and changes it
//! under one short lock and never touches the disk, so the node's event loop never waits for
//! a redb commit or an fsync. Each record is kept with its score inputs, source, services and
//! primary netgroup, so that [`PeerStore::len`], [`PeerStore::stats`], the choice of the
//! entry to evict, the outbound and feeler choices, the dial candidates and the PEX entries
//! cost no I/O. The file follows through a background writer thread in group commits
//! (`writer`): one redb transaction (default durability: one fsync) writes every record
//! changed since the previous one. [`PeerStore::flush`] waits for it; dropping the store
//! writes what is left. A crash loses at most the changes of the last few milliseconds and
//! never tears the file (redb commits are atomic). A failing disk keeps the changes in
//! memory, is reported in [`PeerStore::writer_status`] and is retried with backoff.
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
mod untested;
mod writer;

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
mod tests_untested;
#[cfg(test)]
mod tests_upgrade;
#[cfg(test)]
mod tests_writer;

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, MutexGuard};
use std::thread::JoinHandle;

use dsdn_protocols::pex::PEX_FRESHNESS;
use dsdn_protocols::{AddressPolicy, NetworkId, PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::record::BanCause;

pub use anchors::MAX_ANCHORS;
pub use open::SCHEMA_VERSION;
pub use stats::StoreStats;
pub use types::{LearnedPeer, OpenReport, StoreError};
pub use writer::WriterStatus;

use crate::record::{sanitize_addrs, PeerRecord};
use txn::{apply, Eviction, WriteCtx};
use writer::{Mem, Shared};

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
/// file open at a time (redb takes a file lock); dropping it writes the last changes, stops
/// its writer thread and closes the file.
pub struct PeerStore {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
    path: PathBuf,
    network: NetworkId,
    /// Addresses outside it are never stored nor shared (`None`: every address is kept).
    policy: Option<AddressPolicy>,
}

impl Drop for PeerStore {
    fn drop(&mut self) {
        self.shared.shut_down();
        if let Some(writer) = self.writer.take() {
            if writer.join().is_err() {
                tracing::error!(file = %self.path.display(), "the peers.dat writer panicked");
            }
        }
    }
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
    /// A schema-1 or schema-2 file is upgraded in place to [`SCHEMA_VERSION`] (records
    /// rewritten in the compact v3 layout with their netgroups, anchors table added if
    /// absent; reported in [`OpenReport::upgraded_from`]).
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
        let mem = Mem {
            index: opened.index,
            anchors: opened.anchors,
        };
        let shared = Arc::new(Shared::new(
            opened.db,
            mem,
            path.to_owned(),
            network.clone(),
        ));
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("peers.dat writer".into())
                .spawn(move || shared.run())
                .map_err(|source| StoreError::Io {
                    file: path.to_owned(),
                    source,
                })?
        };
        let store = PeerStore {
            shared,
            writer: Some(writer),
            path: path.to_owned(),
            network: network.clone(),
            policy: None,
        };
        let report = OpenReport {
            moved_aside,
            purged_records: opened.purged,
            upgraded_from: opened.upgraded_from,
        };
        Ok((store, report))
    }

    /// This store with the address `policy` of its network: from now on addresses it does
    /// not admit are dropped from what is stored ([`PeerStore::record_success`],
    /// [`PeerStore::record_untested`], [`PeerStore::learn_many`]) and from the PEX entries
    /// served ([`PeerStore::pex_entries`]). Without it every address is kept.
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Self {
        self.policy = Some(policy);
        self
    }

    /// The address policy set with [`PeerStore::with_address_policy`], if any.
    pub fn address_policy(&self) -> Option<AddressPolicy> {
        self.policy
    }

    /// `addrs` sanitised (at most 16, each at most 128 bytes, deduplicated) and filtered by
    /// the address policy.
    fn clean_addrs(&self, addrs: &[Multiaddr]) -> Vec<Multiaddr> {
        match self.policy {
            Some(p) => sanitize_addrs(&p.filter(addrs)),
            None => sanitize_addrs(addrs),
        }
    }

    /// The file this store was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The network of every record in this store.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Waits until every change made before the call is durable in the file (the writer
    /// commits continuously; this only waits for it). For shutdown paths and tests.
    ///
    /// # Errors
    /// [`StoreError::WriteFailed`] when a commit attempted after the call failed; the
    /// changes stay in memory and the writer keeps retrying.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.shared.flush()
    }

    /// What the background writer has done: unwritten changes, commits, failures and the
    /// last error while commits fail (a degraded state: the address book works from memory
    /// and the file lags behind until a commit succeeds).
    pub fn writer_status(&self) -> WriterStatus {
        self.shared.status()
    }

    /// Number of entries (from the in-memory index; no I/O).
    pub fn len(&self) -> usize {
        self.lock_index().index.len()
    }

    /// True when the store has no entries.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Records a successful contact with `peer` at `now`: this node reached it at `addrs`
    /// (an outbound connection or an address test; the "tried" table of Bitcoin Core).
    /// An inbound peer's self-announced addresses go to [`PeerStore::record_untested`].
    ///
    /// Inserts the peer if unknown (`source` is kept only from that first insert; a full
    /// store evicts its worst-ranked unbanned entry). `addrs` (sanitised: at most 16, each at
    /// most 128 bytes, deduplicated, filtered by the address policy) and `services` replace
    /// the stored ones;
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
        let addrs = self.clean_addrs(addrs);
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
    /// known peer). A peer with no valid address (none the address policy admits) is not
    /// inserted. In a full store the
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
                let addrs = self.clean_addrs(&p.addrs);
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
        Ok(self.lock_index().index.get(peer).map(|e| e.record.clone()))
    }

    /// Every record, most recent successful contact first (never-contacted last), as the
    /// node loads peers.dat at startup (28.1.B §4).
    ///
    /// # Errors
    /// [`StoreError::Database`] if reading fails.
    pub fn all(&self) -> Result<Vec<PeerRecord>, StoreError> {
        let mem = self.lock_index();
        // Sorting references moves 8 bytes per swap instead of a whole record; PeerIds are
        // distinct, so the unstable sort gives the one order.
        let mut entries: Vec<&PeerRecord> = mem.index.values().map(|e| &e.record).collect();
        entries.sort_unstable_by(|a, b| {
            b.last_success
                .cmp(&a.last_success)
                .then_with(|| a.peer_id.cmp(&b.peer_id))
        });
        Ok(entries.into_iter().cloned().collect())
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
        let mut mem = self.lock_index();
        mem.index.clear();
        mem.anchors.clear();
        self.shared.mark([], true, true);
        Ok(())
    }

    /// Bans `peer` until `until` (exclusive) for `cause`, kept with the ban. An unknown peer
    /// gets a placeholder record (no addresses, no services, source `inbound`, first seen
    /// `now`) so the ban persists and [`PeerStore::learn`] cannot re-add it; in a full store
    /// that may evict the worst unbanned entry.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn ban(
        &self,
        peer: &PeerId,
        until: u64,
        now: u64,
        cause: BanCause,
    ) -> Result<(), StoreError> {
        let network = self.network.clone();
        self.write(|ctx| {
            match ctx.get(peer)? {
                Some(mut r) => {
                    r.banned_until = Some(until);
                    r.ban_cause = Some(cause);
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
                    r.ban_cause = Some(cause);
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
                r.ban_cause = None;
                ctx.put(&r)?;
                Ok(true)
            }
            _ => Ok(false),
        })
    }

    /// Lifts the bans selected by `lift` (given each banned record); returns how many were
    /// lifted.
    fn unban_where(&self, lift: impl Fn(&PeerRecord) -> bool) -> Result<usize, StoreError> {
        let banned: Vec<PeerId> = {
            let mem = self.lock_index();
            mem.index
                .values()
                .filter(|e| e.record.banned_until.is_some() && lift(&e.record))
                .map(|e| e.record.peer_id)
                .collect()
        };
        self.write(|ctx| {
            let mut n = 0;
            for p in &banned {
                if let Some(mut r) = ctx.get(p)? {
                    if r.banned_until.is_some() && lift(&r) {
                        r.banned_until = None;
                        r.ban_cause = None;
                        ctx.put(&r)?;
                        n += 1;
                    }
                }
            }
            Ok(n)
        })
    }

    /// Lifts every ban (`dsdn-agent peers unban --all`); returns how many peers had one.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn unban_all(&self) -> Result<usize, StoreError> {
        self.unban_where(|_| true)
    }

    /// Lifts the bans whose cause depends on a configuration of this node other than
    /// `fingerprint` ([`BanCause::config`]): after the operator fixed a mistyped DA authority
    /// or committee, the honest peers it made look bad are trusted again. Called at start;
    /// returns how many bans were lifted.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn lift_config_bans(&self, fingerprint: u64) -> Result<usize, StoreError> {
        self.unban_where(|r| {
            r.ban_cause
                .as_ref()
                .and_then(|c| c.config)
                .is_some_and(|f| f != fingerprint)
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

    fn lock_index(&self) -> MutexGuard<'_, Mem> {
        self.shared.mem()
    }

    /// Runs `f` on the address book and, if it succeeds, applies its changes and hands the
    /// changed PeerIds to the writer. A failing `f` changes nothing.
    fn write<T>(
        &self,
        f: impl FnOnce(&mut WriteCtx<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut mem = self.lock_index();
        let (out, overlay) = {
            let mut ctx = WriteCtx::new(&mem.index);
            let out = f(&mut ctx)?;
            (out, ctx.into_overlay())
        };
        if !overlay.is_empty() {
            let changed: Vec<PeerId> = overlay.keys().copied().collect();
            apply(&mut mem.index, overlay);
            self.shared.mark(changed, false, false);
        }
        Ok(out)
    }
}
