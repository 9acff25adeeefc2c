//! The background writer of peers.dat: the in-memory address book is authoritative, and the
//! file follows it in group commits on a thread of its own, so that no caller (the node's
//! event loop above all) ever waits for a redb commit or an fsync.
//!
//! Every successful store operation, while it still holds the address-book lock, marks the
//! PeerIds it changed (and whether the anchors changed) in the [`Queue`]. The writer thread
//! takes everything marked so far, copies the current records of those PeerIds (or learns
//! they are gone) under the address-book lock, and writes them in one redb transaction with
//! default durability (one fsync). Changes marked while a commit runs are written by the
//! next one: a burst of operations costs a few commits, not one each.
//!
//! The queue is a set of PeerIds, so repeated changes of one peer coalesce; it never holds
//! more than [`MAX_DIRTY`] of them: past that it collapses into "rewrite the whole peers
//! table from memory". Marking never blocks on the disk (it takes one short lock).
//!
//! A failed commit keeps everything it should have written in the queue, is logged once at
//! error level per run of failures, counted ([`WriterStatus`]), and retried with a backoff
//! from [`RETRY_MIN`] doubling to [`RETRY_MAX`]; the first success after failures is logged
//! too. After a failed commit the file is closed and opened again before the retry (redb
//! refuses every operation on a database that saw an I/O error, so without it a disk that
//! was full once would fail for ever). When the store is dropped the writer writes what is
//! left and stops.
//!
//! Crash semantics: a crash loses at most the changes marked since the last commit began
//! (in practice the last few milliseconds of handshakes, failures and PEX entries); the file
//! is never torn (redb commits are atomic) and always opens.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use dsdn_protocols::NetworkId;
use libp2p_identity::PeerId;
use redb::Database;

use super::txn::{Index, ANCHORS, PEERS};
use super::{StoreError, MAX_ENTRIES};
use crate::record::{encode_record, PeerRecord};

/// Most PeerIds the queue holds before it collapses into a rewrite of the whole table.
pub(super) const MAX_DIRTY: usize = 2 * MAX_ENTRIES;

/// First pause after a failed commit.
pub(super) const RETRY_MIN: Duration = Duration::from_millis(100);

/// Longest pause between two attempts while commits keep failing.
pub(super) const RETRY_MAX: Duration = Duration::from_secs(30);

/// The authoritative address book: the index (records included) and the saved anchors.
#[derive(Debug, Default)]
pub(super) struct Mem {
    /// Every record, with what the choices need of it.
    pub(super) index: Index,
    /// The anchors saved for the next start, in order (at most [`super::MAX_ANCHORS`]).
    pub(super) anchors: Vec<PeerId>,
}

/// What the file still lacks.
#[derive(Debug, Default)]
struct Queue {
    /// PeerIds whose record changed (or was removed) since it was last written.
    peers: HashSet<PeerId>,
    /// The anchors changed.
    anchors: bool,
    /// The peers table must be made equal to memory as a whole (after `clear`, or when
    /// `peers` would grow past [`MAX_DIRTY`]).
    rewrite: bool,
    /// Number of the newest change marked.
    marked: u64,
    /// Every change up to this number is durable.
    written: u64,
    /// Commits attempted, successful ones, failed ones.
    attempts: u64,
    commits: u64,
    failures: u64,
    /// The error of the last attempt, while commits fail.
    last_error: Option<String>,
    /// The store was dropped: write what is left and stop.
    shutdown: bool,
}

impl Queue {
    fn has_work(&self) -> bool {
        self.written < self.marked
    }

    /// Takes everything marked so far.
    fn take(&mut self) -> Batch {
        Batch {
            peers: std::mem::take(&mut self.peers),
            anchors: std::mem::take(&mut self.anchors),
            rewrite: std::mem::take(&mut self.rewrite),
            upto: self.marked,
        }
    }

    /// Puts a batch that could not be written back in front of what was marked since.
    fn restore(&mut self, batch: Batch) {
        self.anchors |= batch.anchors;
        self.rewrite |= batch.rewrite;
        if !self.rewrite {
            self.peers.extend(batch.peers);
            self.collapse_if_full();
        }
    }

    fn collapse_if_full(&mut self) {
        if self.peers.len() > MAX_DIRTY {
            self.rewrite = true;
        }
        if self.rewrite {
            self.peers = HashSet::new();
        }
    }
}

/// One group commit's worth of changes.
struct Batch {
    peers: HashSet<PeerId>,
    anchors: bool,
    rewrite: bool,
    /// The change number this batch makes durable.
    upto: u64,
}

/// What the writer has done, for status and metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WriterStatus {
    /// PeerIds changed in memory and not yet written (0 while the whole table waits for a
    /// rewrite: see `rewrite_pending`).
    pub unwritten: usize,
    /// The whole peers table waits to be rewritten from memory.
    pub rewrite_pending: bool,
    /// Successful group commits since the store was opened.
    pub commits: u64,
    /// Failed commits since the store was opened.
    pub failures: u64,
    /// The error of the last commit while commits fail (`None` once one succeeded).
    pub last_error: Option<String>,
}

/// State shared by the store and its writer thread.
pub(super) struct Shared {
    /// The open file; `None` after a failed reopen (the next attempt opens it again).
    db: Mutex<Option<Database>>,
    /// The file, for logs and reopening.
    path: PathBuf,
    network: NetworkId,
    mem: Mutex<Mem>,
    queue: Mutex<Queue>,
    /// Wakes the writer: new changes, or shutdown.
    wake: Condvar,
    /// Wakes flushers: a commit attempt ended.
    progress: Condvar,
    /// Test hook: every commit fails while set.
    #[cfg(test)]
    pub(super) fail_writes: std::sync::atomic::AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Both locks guard plain data changed in small, non-panicking steps.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Shared {
    pub(super) fn new(db: Database, mem: Mem, path: PathBuf, network: NetworkId) -> Self {
        Self {
            db: Mutex::new(Some(db)),
            path,
            network,
            mem: Mutex::new(mem),
            queue: Mutex::new(Queue::default()),
            wake: Condvar::new(),
            progress: Condvar::new(),
            #[cfg(test)]
            fail_writes: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The address book. Callers that change it call [`Shared::mark`] before releasing it.
    pub(super) fn mem(&self) -> MutexGuard<'_, Mem> {
        lock(&self.mem)
    }

    /// Marks `peers` (and the anchors, the whole table) as changed. Call with the
    /// address-book lock held, after the change, so the writer sees it.
    pub(super) fn mark(&self, peers: impl IntoIterator<Item = PeerId>, anchors: bool, all: bool) {
        let mut q = lock(&self.queue);
        q.anchors |= anchors;
        q.rewrite |= all;
        if !q.rewrite {
            q.peers.extend(peers);
        }
        q.collapse_if_full();
        q.marked += 1;
        drop(q);
        self.wake.notify_one();
    }

    /// Waits until every change marked before the call is durable.
    ///
    /// # Errors
    /// [`StoreError::WriteFailed`] when a commit attempted after the call failed (the
    /// changes stay queued and are retried).
    pub(super) fn flush(&self) -> Result<(), StoreError> {
        let mut q = lock(&self.queue);
        let target = q.marked;
        let attempts = q.attempts;
        while q.written < target {
            if q.attempts > attempts {
                if let Some(e) = &q.last_error {
                    return Err(StoreError::WriteFailed(e.clone()));
                }
            }
            q = self
                .progress
                .wait(q)
                .unwrap_or_else(PoisonError::into_inner);
        }
        Ok(())
    }

    pub(super) fn status(&self) -> WriterStatus {
        let q = lock(&self.queue);
        WriterStatus {
            unwritten: q.peers.len(),
            rewrite_pending: q.rewrite,
            commits: q.commits,
            failures: q.failures,
            last_error: q.last_error.clone(),
        }
    }

    /// Tells the writer to write what is left and stop.
    pub(super) fn shut_down(&self) {
        lock(&self.queue).shutdown = true;
        self.wake.notify_one();
    }

    /// The writer thread's loop; returns after [`Shared::shut_down`] once the queue is empty
    /// (or the last attempt at shutdown failed).
    pub(super) fn run(self: Arc<Self>) {
        let mut backoff = RETRY_MIN;
        loop {
            let batch = {
                let mut q = lock(&self.queue);
                while !q.has_work() && !q.shutdown {
                    q = self.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
                }
                if !q.has_work() {
                    return;
                }
                q.take()
            };
            let upto = batch.upto;
            // redb can panic on a damaged file; a panic here must not kill the writer (a
            // flush would then wait for ever): it counts as a failed commit.
            let result =
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.write(&batch)))
                    .unwrap_or_else(|_| Err(StoreError::WriteFailed("redb panicked".into())));
            if result.is_err() {
                // Off the queue lock: marking changes never waits for the disk.
                self.reopen();
            }
            let mut q = lock(&self.queue);
            q.attempts += 1;
            match result {
                Ok(()) => {
                    q.written = q.written.max(upto);
                    q.commits += 1;
                    if q.last_error.take().is_some() {
                        tracing::info!(file = %self.path.display(), "peers.dat writes recovered");
                    }
                    backoff = RETRY_MIN;
                    drop(q);
                    self.progress.notify_all();
                }
                Err(e) => {
                    if q.last_error.is_none() {
                        tracing::error!(file = %self.path.display(), error = %e, "cannot write peers.dat; the address book is kept in memory and the write retried");
                    }
                    q.failures += 1;
                    q.last_error = Some(e.to_string());
                    q.restore(batch);
                    self.progress.notify_all();
                    if q.shutdown {
                        tracing::error!(file = %self.path.display(), error = %e, "peers.dat: changes since the last successful write are lost at shutdown");
                        return;
                    }
                    let (q, _) = self
                        .wake
                        .wait_timeout_while(q, backoff, |q| !q.shutdown)
                        .unwrap_or_else(PoisonError::into_inner);
                    drop(q);
                    backoff = (backoff * 2).min(RETRY_MAX);
                }
            }
        }
    }

    /// Test hook: closes the file as a failed reopen leaves it.
    #[cfg(test)]
    pub(super) fn close_for_test(&self) {
        *lock(&self.db) = None;
    }

    /// Closes the file and opens it again after a failed commit; a failed reopen leaves it
    /// closed and the next attempt tries again.
    fn reopen(&self) {
        let mut db = lock(&self.db);
        // The old handle must be closed first: redb locks the file.
        *db = None;
        match super::open::reopen(&self.path, &self.network) {
            Ok(opened) => *db = Some(opened),
            Err(e) => {
                tracing::debug!(file = %self.path.display(), error = %e, "cannot reopen peers.dat")
            }
        }
    }

    /// Writes one batch in one transaction: the current records of its PeerIds (removed if
    /// gone), or every record for a rewrite, and the anchors if they changed.
    fn write(&self, batch: &Batch) -> Result<(), StoreError> {
        #[cfg(test)]
        if self.fail_writes.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(StoreError::WriteFailed("injected write failure".into()));
        }
        type Rows = Vec<(PeerId, Option<PeerRecord>)>;
        let (rows, anchors): (Rows, Option<Vec<PeerId>>) = {
            let mem = self.mem();
            let rows = if batch.rewrite {
                mem.index
                    .iter()
                    .map(|(p, e)| (*p, Some(e.record.clone())))
                    .collect()
            } else {
                batch
                    .peers
                    .iter()
                    .map(|p| (*p, mem.index.get(p).map(|e| e.record.clone())))
                    .collect()
            };
            (rows, batch.anchors.then(|| mem.anchors.clone()))
        };
        let mut db = lock(&self.db);
        if db.is_none() {
            *db = Some(super::open::reopen(&self.path, &self.network)?);
        }
        let Some(db) = db.as_ref() else {
            return Err(StoreError::WriteFailed("peers.dat is not open".into()));
        };
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(PEERS)?;
            if batch.rewrite {
                table.retain(|_, _| false)?;
            }
            for (peer, record) in &rows {
                let key = peer.to_bytes();
                match record {
                    Some(r) => {
                        table.insert(key.as_slice(), encode_record(r)?.as_slice())?;
                    }
                    None => {
                        table.remove(key.as_slice())?;
                    }
                }
            }
        }
        if let Some(anchors) = anchors {
            let mut table = txn.open_table(ANCHORS)?;
            table.retain(|_, _| false)?;
            for (pos, p) in (0u32..).zip(&anchors) {
                table.insert(pos, p.to_bytes().as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}
