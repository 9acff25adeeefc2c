//! Bulk writes of a start-up replay (issue 16 §6): a rebuild of the state from millions of
//! stored blobs runs with a large redb page cache ([`DaStore::set_cache_bytes`]) and writes
//! its state commits without syncing each one ([`DaStore::write_replayed`]); the node then
//! serves with the small cache ([`super::CACHE_BYTES`]).
//!
//! Why: the state's key-ordered tables (latest values by key, versions by key hash) take
//! random inserts. Once they outgrow the page cache, every insert reads its pages again
//! through `pread`, and every synced commit rewrites each leaf page it touched; at 10
//! million events the rebuild with the 32 MiB serving cache passed ~15 GB per minute
//! through `write()` and ~20 GB through `read()` and barely advanced. With a large cache
//! the pages stay in memory, and unsynced commits keep the pages they rewrite in redb's
//! write buffer, so a leaf changed by many commits reaches the file once.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dsdn_protocols::da::state::StateCommit;

use super::{DaStore, DaStoreError};

impl DaStore {
    /// redb's page cache of the open database, in bytes.
    pub fn cache_bytes(&self) -> usize {
        self.cache_bytes.load(Ordering::Relaxed)
    }

    /// Closes the file and opens it again with a redb page cache of `bytes` (a cache only
    /// grows as pages are read; closing the old handle frees all of its cache). Shrinking
    /// also hands the freed heap back to the system (glibc `malloc_trim`), so the node's
    /// RSS falls to its serving size after a large replay. Blocks like
    /// [`DaStore::reopen`]; call it when nothing else uses the store (at start).
    ///
    /// # Errors
    /// As [`DaStore::reopen`]; the store is then closed (the next reopen uses `bytes`).
    pub fn set_cache_bytes(&self, bytes: usize) -> Result<(), DaStoreError> {
        let before = self.cache_bytes.swap(bytes, Ordering::Relaxed);
        let reopened = self.reopen();
        if bytes < before {
            trim_heap();
        }
        reopened
    }

    /// Writes the state commits of a start-up replay (no blobs: they are stored already),
    /// as [`DaStore::append_with_state`] does, in one transaction. With `durable` false the
    /// transaction is not synced (redb `Durability::None`): it is visible at once and
    /// becomes durable with the next durable write; a crash before that loses only these
    /// state commits, and the file then holds an older state, never one ahead of the log
    /// or mixed (redb recovers the last durable commit), which the next start replays
    /// again. The last write of a replay must be durable.
    ///
    /// # Errors
    /// As [`DaStore::append_with_state`].
    pub(crate) fn write_replayed(
        &self,
        commits: &[Arc<StateCommit>],
        durable: bool,
    ) -> Result<(), DaStoreError> {
        let durability = if durable {
            redb::Durability::Immediate
        } else {
            redb::Durability::None
        };
        if durable && commits.is_empty() {
            return self.sync();
        }
        self.write(&[], commits, durability)
    }

    /// Makes every unsynced write durable: an empty transaction committed with redb's
    /// `Durability::Immediate`.
    ///
    /// # Errors
    /// [`DaStoreError::Db`] if the transaction fails.
    fn sync(&self) -> Result<(), DaStoreError> {
        let _tip = self.lock_tip();
        let db = self.write_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        txn.commit()?;
        Ok(())
    }
}

/// Returns the free pages of the heap to the system (glibc keeps freed memory mapped
/// until asked): redb's page cache is millions of 4 KiB allocations, freed when a large
/// cache is closed.
fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `malloc_trim` only walks glibc's own arenas; it takes no pointer and is
    // thread-safe (it locks each arena).
    unsafe {
        libc::malloc_trim(0);
    }
}
