//! The DA event log on disk: [`DaStore`], a redb database of encoded blobs by height (issue
//! 5 §3: the log lives in redb in the data directory, append-only, indexed by height), and
//! the DA state derived from it ([`state`], issue 16), written in the same transactions.
//!
//! The store keeps bytes only: every blob is verified by the caller before
//! [`DaStore::append`]; the blobs above the stored state's height are re-verified when they
//! are replayed at start, and a stored blob that fails re-verification is dropped with
//! everything after it ([`DaStore::truncate_from`], which also drops a state derived from
//! it).
//!
//! The log file ([`DA_LOG_FILE`]) is a redb database with the tables of [`state`] and:
//!
//! * `meta` (`&str → &[u8]`): `schema_version` = [`SCHEMA_VERSION`] as 4 big-endian bytes,
//!   `network_id` = the network id as UTF-8;
//! * `blobs` (`u64 → &[u8]`): height (1, 2, 3, …, without gaps; `b + 1, …` for a log
//!   restored by a state sync at `b`, its base: [`restore`]) → the blob's canonical
//!   encoding.
//!
//! Opening follows peers.dat: a file of another network or of a newer schema is refused and
//! left byte-for-byte unchanged (both are checked through a read-only handle first); a file
//! redb refuses (random bytes, truncated, zero-length, failed recovery, a panic inside
//! redb), a redb file without our meta table or with wrongly typed tables, an unknown older
//! schema (0), or a blobs table whose heights are not exactly `base + 1..=N` is renamed to
//! `<name>.corrupt-<unix-seconds>` and a fresh log is created.
//!
//! After a write error the writer calls [`DaStore::reopen`] (the same checks, nothing
//! moved aside): redb refuses every further operation on a database that saw an I/O error.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock, RwLockReadGuard, TryLockError};

use dsdn_protocols::da::state::StateCommit;
use dsdn_protocols::NetworkId;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

mod bulk;
mod cache;
mod files;
mod offline;
mod open;
mod overlay;
pub mod restore;
pub mod state;

pub use files::move_aside;
pub use offline::{OfflineError, OfflineState};
use open::try_open;
pub(crate) use overlay::{lock as overlay_lock, SharedOverlay, StoredState};

#[cfg(test)]
mod full_disk_tests;
#[cfg(test)]
mod tests;

/// File name of the DA log in the data directory.
pub const DA_LOG_FILE: &str = "da-log.redb";

/// The DA log schema this build reads and writes (4: with the state tables of [`state`] in
/// their append-friendly layout, tree nodes keyed by version first and raw keys in the
/// version rows, and the base of [`restore`]; a schema-1, -2 or -3 file is upgraded in
/// place: its derived state tables are dropped and rebuilt from its blobs, or, for a log
/// restored by a state sync, which cannot be rebuilt, the log is emptied to sync again).
/// A file with a newer schema is refused ([`DaStoreError::NewerSchema`]), so an older
/// build never misreads this layout.
pub const SCHEMA_VERSION: u32 = 4;

/// blobs table: height → encoded blob.
const BLOBS: TableDefinition<u64, &[u8]> = TableDefinition::new("blobs");

/// redb's page cache while the node serves, in bytes (32 MiB). A start-up replay of many
/// blobs runs with a larger one ([`DaStore::set_cache_bytes`], `[da] rebuild_cache_mib`).
pub const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// Errors of [`DaStore`].
#[derive(Debug, thiserror::Error)]
pub enum DaStoreError {
    /// The log belongs to another network. It is left untouched: point the node at another
    /// data directory or remove the file deliberately.
    #[error("{}: the DA log belongs to network {found}, but this node runs on {expected}", file.display())]
    WrongNetwork {
        /// The log path.
        file: PathBuf,
        /// The network of this node.
        expected: NetworkId,
        /// The network recorded in the file.
        found: NetworkId,
    },
    /// The log was written by a newer build (schema above [`SCHEMA_VERSION`]). It is left
    /// untouched so that the newer build can still use it.
    #[error(
        "{}: the DA log has schema version {found}, but this dsdnd only understands schema \
         versions up to {supported} (the file was written by a newer dsdnd). The file was left \
         untouched: run the newer dsdnd, or move the file away to resync the log",
        file.display()
    )]
    NewerSchema {
        /// The log path.
        file: PathBuf,
        /// The schema version recorded in the file.
        found: u32,
        /// The newest schema this build reads ([`SCHEMA_VERSION`]).
        supported: u32,
    },
    /// A file-system operation failed (missing directory, permissions, the path is a
    /// directory, the rename when moving a corrupt file aside, …). The message names the
    /// file; the kind is the original one.
    #[error("DA log I/O error: {0}")]
    Io(#[source] io::Error),
    /// redb failed (including: the file is already open elsewhere, or is unusable even after
    /// moving the old one aside). The message says what failed.
    #[error("DA log database error: {0}")]
    Db(String),
    /// [`DaStore::append`] was given a height other than the next one.
    #[error("DA log append out of order: expected height {expected}, got {got}")]
    NotConsecutive {
        /// The height the log needs next (tip + 1, or the previous given height + 1).
        expected: u64,
        /// The height given.
        got: u64,
    },
    /// [`DaStore::append_with_state`] was given state commits that do not follow the
    /// stored state (the blobs are not concerned; nothing written).
    #[error(
        "DA state commit out of order: the stored state needs height {expected} next, got \
         {got} (no blob was lost: a state commit is missing)"
    )]
    StateNotConsecutive {
        /// The stored state's height + 1 (or the previous given commit's + 1).
        expected: u64,
        /// The commit height given.
        got: u64,
    },
    /// [`DaStore::append_with_state`] was given a state commit above the log's new tip
    /// (nothing written).
    #[error("DA state commit for height {got} above the DA log's tip {tip}")]
    StateAboveTip {
        /// The log's tip after the append.
        tip: u64,
        /// The commit height given.
        got: u64,
    },
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for DaStoreError {
            fn from(e: $t) -> Self {
                DaStoreError::Db(e.to_string())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError,
    redb::Error
);

/// An I/O error with the file name in its message and its kind kept.
fn io_at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The result of [`DaStore::open`].
#[derive(Debug)]
pub struct StoreOpen {
    /// The opened log.
    pub store: DaStore,
    /// Where an unusable log file was moved (`<name>.corrupt-<unix-seconds>` in the same
    /// directory); `None` if the file was usable or absent.
    pub moved_aside: Option<PathBuf>,
}

/// The DA log (issue 5 §3): encoded blobs of one network by height, append-only, in a redb
/// database in the data directory. Heights start at 1 and have no gaps.
///
/// Thread-safe (`Send + Sync`); writes are serialised. Every write is one redb transaction
/// (crash-safe: a committed call survives a crash, an interrupted one leaves no trace).
/// Only one `DaStore` may have a file open at a time (redb takes a file lock).
///
/// After an I/O error redb refuses every further operation on the open database
/// (`PreviousIo`), so a failed write is followed by [`DaStore::reopen`] (the writer does it
/// before its retry); reads made while the file is being reopened, or while it cannot be,
/// fail instead of waiting.
pub struct DaStore {
    /// `None` while being reopened or after a failed reopen.
    db: RwLock<Option<Database>>,
    path: PathBuf,
    network: NetworkId,
    /// The highest stored height (0 when empty); the lock is held across each write.
    tip: Mutex<u64>,
    /// The stored state's height (≤ `tip`); locked after `tip` in every write.
    state_tip: Mutex<u64>,
    /// Heights whose state tree is kept ([`DaStore::set_proof_history`]).
    history: AtomicU64,
    /// The height the log starts after ([`DaStore::base`]); changed under the tip lock.
    base: AtomicU64,
    /// redb's page cache of the open database, in bytes ([`DaStore::set_cache_bytes`]).
    cache_bytes: AtomicUsize,
}

impl std::fmt::Debug for DaStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DaStore")
            .field("path", &self.path)
            .field("tip", &self.tip())
            .finish()
    }
}

impl DaStore {
    /// Opens or creates the DA log at `path` (normally `<data dir>/`[`DA_LOG_FILE`]) for
    /// `network`. A file closed cleanly is trusted (no integrity check: the check reads the
    /// whole file, seconds per GB at every start); one that was not (a crash) is recovered
    /// by redb, which reads it whole once
    /// ([`dsdn_peers::redb_file::open_db_trusting_clean`]).
    ///
    /// An unusable file (see the module docs) is renamed to `<name>.corrupt-<unix-seconds>`,
    /// logged with `tracing::warn!`, replaced by an empty log and reported in
    /// [`StoreOpen::moved_aside`].
    ///
    /// # Errors
    /// * [`DaStoreError::WrongNetwork`] for a log of another network and
    ///   [`DaStoreError::NewerSchema`] for a schema above [`SCHEMA_VERSION`] (both checked
    ///   read-only first; the file is left byte-for-byte unchanged);
    /// * [`DaStoreError::Io`] for file-system failures (missing directory, permissions,
    ///   `path` is a directory or has no file name, the rename fails);
    /// * [`DaStoreError::Db`] if the file is open elsewhere or even a fresh file fails.
    pub fn open(path: &Path, network: &NetworkId) -> Result<StoreOpen, DaStoreError> {
        let ((db, tips), moved_aside) =
            dsdn_peers::redb_file::open_or_recover(path, "the DA log", || {
                try_open(path, network, CACHE_BYTES)
            })?;
        Ok(StoreOpen {
            store: DaStore::new(db, path, network, tips),
            moved_aside,
        })
    }

    fn new(
        db: Database,
        path: &Path,
        network: &NetworkId,
        (tip, state_tip, base): (u64, u64, u64),
    ) -> DaStore {
        DaStore {
            db: RwLock::new(Some(db)),
            path: path.to_owned(),
            network: network.clone(),
            tip: Mutex::new(tip),
            state_tip: Mutex::new(state_tip),
            history: AtomicU64::new(state::STATE_HISTORY),
            base: AtomicU64::new(base),
            cache_bytes: AtomicUsize::new(CACHE_BYTES),
        }
    }

    fn lock_tip(&self) -> MutexGuard<'_, u64> {
        self.tip.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn lock_state_tip(&self) -> MutexGuard<'_, u64> {
        self.state_tip
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The open database for a read: never waits for a reopen under way.
    fn read_db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>, DaStoreError> {
        let guard = match self.db.try_read() {
            Ok(g) => g,
            Err(TryLockError::Poisoned(p)) => p.into_inner(),
            Err(TryLockError::WouldBlock) => {
                return Err(DaStoreError::Db(format!(
                    "{}: the DA log is being reopened",
                    self.path.display()
                )))
            }
        };
        if guard.is_none() {
            return Err(self.closed());
        }
        Ok(guard)
    }

    /// The open database for a write (waits for a reopen under way).
    fn write_db(&self) -> Result<RwLockReadGuard<'_, Option<Database>>, DaStoreError> {
        let guard = self.db.read().unwrap_or_else(PoisonError::into_inner);
        if guard.is_none() {
            return Err(self.closed());
        }
        Ok(guard)
    }

    fn closed(&self) -> DaStoreError {
        DaStoreError::Db(format!(
            "{}: the DA log is not open (a reopen after a write error failed)",
            self.path.display()
        ))
    }

    /// True when the database is open (false after a failed [`DaStore::reopen`]).
    pub fn is_open(&self) -> bool {
        self.db
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// Closes and opens the file again, after a write error: redb refuses every operation
    /// on a database that saw an I/O error. Nothing is moved aside here (unlike
    /// [`DaStore::open`]): a file that does not open is left as it is and the store stays
    /// closed until a later reopen succeeds. The tip is read again from the file.
    /// Blocks for as long as redb's recovery of the file takes; call it off the event loop.
    ///
    /// # Errors
    /// [`DaStoreError::Io`] or [`DaStoreError::Db`] when the file cannot be opened (e.g. the
    /// disk is still full); the store is then closed: reads and appends fail.
    pub fn reopen(&self) -> Result<(), DaStoreError> {
        let mut tip = self.lock_tip();
        let mut db = self.db.write().unwrap_or_else(PoisonError::into_inner);
        // The old handle must be closed first: redb locks the file.
        *db = None;
        let mut state_tip = self.lock_state_tip();
        let (opened, (new_tip, new_state_tip, new_base)) =
            try_open(&self.path, &self.network, self.cache_bytes()).map_err(|f| match f {
                open::Failure::Fatal(e) => e,
                open::Failure::Corrupt(reason) => {
                    DaStoreError::Db(format!("{}: {reason}", self.path.display()))
                }
            })?;
        *db = Some(opened);
        *tip = new_tip;
        *state_tip = new_state_tip;
        self.base.store(new_base, Ordering::Relaxed);
        Ok(())
    }

    /// Test hook: closes the database as a failed reopen leaves it.
    #[cfg(test)]
    pub(crate) fn close_for_test(&self) {
        *self.db.write().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// Sets how many of the latest heights keep their whole state tree (for proofs at
    /// those heights; `da.proof_history_heights`, at least 1; default
    /// [`state::STATE_HISTORY`]). Takes effect at the next write: a smaller value prunes
    /// the heights now outside it, a larger one keeps more from then on (heights already
    /// pruned stay pruned).
    pub fn set_proof_history(&self, heights: u64) {
        self.history.store(heights.max(1), Ordering::Relaxed);
    }

    /// The file this log was opened from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The highest stored height, 0 when the log is empty (cached; no I/O).
    pub fn tip(&self) -> u64 {
        *self.lock_tip()
    }

    /// Appends `blobs` as `(height, encoded blob)` pairs in one transaction: all of them or
    /// none. Heights must be `tip + 1, tip + 2, …`; an empty slice does nothing. The bytes
    /// are stored as given (the caller verified them; each must be under redb's 3 GiB value
    /// limit, blobs are at most 256 KiB).
    ///
    /// # Errors
    /// [`DaStoreError::NotConsecutive`] for the first height out of order (nothing written);
    /// [`DaStoreError::Db`] if the transaction fails (nothing written).
    pub fn append(&self, blobs: &[(u64, &[u8])]) -> Result<(), DaStoreError> {
        self.append_with_state(blobs, &[])
    }

    /// [`DaStore::append`] and the state commits of applied blobs in the **same**
    /// transaction (issue 16 §1): all or nothing. The commits above the stored state height
    /// must follow it without a gap and end at or below the new tip; commits at or below
    /// the stored state height are skipped.
    ///
    /// # Errors
    /// [`DaStoreError::NotConsecutive`] for a blob height out of order,
    /// [`DaStoreError::StateNotConsecutive`] for a commit that does not follow the stored
    /// state, [`DaStoreError::StateAboveTip`] for a commit above the new tip (nothing
    /// written in each case); [`DaStoreError::Db`] if the transaction fails (nothing
    /// written).
    pub fn append_with_state(
        &self,
        blobs: &[(u64, &[u8])],
        commits: &[Arc<StateCommit>],
    ) -> Result<(), DaStoreError> {
        self.write(blobs, commits, redb::Durability::Immediate)
    }

    /// [`DaStore::append_with_state`] with redb's `durability` for the transaction.
    fn write(
        &self,
        blobs: &[(u64, &[u8])],
        commits: &[Arc<StateCommit>],
        durability: redb::Durability,
    ) -> Result<(), DaStoreError> {
        let mut tip = self.lock_tip();
        let mut state_tip = self.lock_state_tip();
        let mut expected = tip.saturating_add(1);
        for &(got, _) in blobs {
            if got != expected {
                return Err(DaStoreError::NotConsecutive { expected, got });
            }
            expected = expected.saturating_add(1);
        }
        let last = blobs.last().map_or(*tip, |&(h, _)| h);
        if let Some(c) = commits.iter().map(|c| c.header.height).find(|h| *h > last) {
            return Err(DaStoreError::StateAboveTip { tip: last, got: c });
        }
        if blobs.is_empty() && commits.iter().all(|c| c.header.height <= *state_tip) {
            return Ok(());
        }
        let db = self.write_db()?;
        let mut txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        txn.set_durability(durability)
            .map_err(|e| DaStoreError::Db(e.to_string()))?;
        {
            let mut table = txn.open_table(BLOBS)?;
            for &(height, bytes) in blobs {
                table.insert(height, bytes)?;
            }
        }
        let history = self.history.load(Ordering::Relaxed);
        let new_state_tip = state::write_commits(&txn, *state_tip, commits, last, history)?;
        txn.commit()?;
        *tip = last;
        *state_tip = new_state_tip;
        Ok(())
    }

    /// The encoded blob at `height`, `None` if not stored (0 or above the tip).
    ///
    /// # Errors
    /// [`DaStoreError::Db`] if the read fails.
    pub fn get(&self, height: u64) -> Result<Option<Vec<u8>>, DaStoreError> {
        let db = self.read_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_read()?;
        let table = txn.open_table(BLOBS)?;
        let value = table.get(height)?;
        Ok(value.map(|v| v.value().to_vec()))
    }

    /// Up to `max_count` encoded blobs at consecutive heights `from, from + 1, …` (for
    /// serving sync requests). Stops before the total encoded size would exceed `max_bytes`,
    /// but returns at least one blob when one is stored at `from` and `max_count ≥ 1`.
    /// Empty when nothing is stored at `from` (including `from == 0`, and heights at or
    /// below the [`DaStore::base`] of a state-synced log).
    ///
    /// # Errors
    /// [`DaStoreError::Db`] if the read fails.
    pub fn range(
        &self,
        from: u64,
        max_count: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, DaStoreError> {
        let mut out: Vec<Vec<u8>> = Vec::new();
        if from == 0 || max_count == 0 {
            return Ok(out);
        }
        let mut total = 0usize;
        let db = self.read_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_read()?;
        let table = txn.open_table(BLOBS)?;
        for (i, item) in table.range(from..)?.enumerate() {
            let (height, value) = item?;
            let bytes = value.value();
            let next = total.saturating_add(bytes.len());
            let wanted = from.saturating_add(u64::try_from(i).unwrap_or(u64::MAX));
            if height.value() != wanted
                || out.len() >= max_count as usize
                || (!out.is_empty() && next > max_bytes)
            {
                break;
            }
            out.push(bytes.to_vec());
            total = next;
        }
        Ok(out)
    }

    /// Calls `f(height, encoded blob)` for every stored blob from `from` upwards, in height
    /// order, streaming one blob at a time from a read snapshot (replay at start). Stops
    /// early when `f` returns `false`.
    ///
    /// # Errors
    /// [`DaStoreError::Db`] if a read fails (blobs before it were already passed to `f`).
    pub fn for_each_from(
        &self,
        from: u64,
        mut f: impl FnMut(u64, &[u8]) -> bool,
    ) -> Result<(), DaStoreError> {
        let db = self.read_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_read()?;
        let table = txn.open_table(BLOBS)?;
        for item in table.range(from..)? {
            let (height, value) = item?;
            if !f(height.value(), value.value()) {
                break;
            }
        }
        Ok(())
    }

    /// Removes the blob at `height` and every later one in one transaction (a stored blob
    /// failed re-verification); the tip becomes `height - 1` (or stays, if it was lower;
    /// `height` 0 is treated as 1: everything is removed). In a state-synced log (base
    /// `b`), a height at or below `b`, or a removal that drops the state (derived from a
    /// removed blob) empties the log: without its restored state it cannot be replayed.
    /// Returns how many blobs were removed.
    ///
    /// # Errors
    /// [`DaStoreError::Db`] if the transaction fails (nothing removed).
    pub fn truncate_from(&self, height: u64) -> Result<u64, DaStoreError> {
        let height = height.max(1);
        let mut tip = self.lock_tip();
        let mut state_tip = self.lock_state_tip();
        if height > *tip {
            return Ok(0);
        }
        let db = self.write_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        let base = self.base();
        if base > 0 && (height <= base || *state_tip >= height) {
            restore::wipe(&txn)?;
            txn.commit()?;
            let removed = tip.saturating_sub(base);
            *tip = 0;
            *state_tip = 0;
            self.base.store(0, Ordering::Relaxed);
            return Ok(removed);
        }
        // A state derived from a removed blob goes too (rebuilt from the blobs left).
        let clear_state = *state_tip >= height;
        if clear_state {
            state::clear(&txn)?;
        }
        let mut removed = 0u64;
        let new_tip = {
            let mut table = txn.open_table(BLOBS)?;
            while let Some((key, _)) = table.pop_last()? {
                let key = key.value();
                if key < height.max(base + 1) {
                    // Cannot happen while the heights have no gaps (`height <= tip`); the
                    // dropped transaction restores what was popped.
                    return Err(DaStoreError::Db(format!(
                        "{}: height {height} not stored below the tip",
                        self.path.display()
                    )));
                }
                removed += 1;
                if key == height {
                    break;
                }
            }
            let last = table.last()?.map(|(k, _)| k.value()).unwrap_or(base);
            last
        };
        txn.commit()?;
        *tip = new_tip;
        if clear_state {
            *state_tip = 0;
        }
        Ok(removed)
    }
}
