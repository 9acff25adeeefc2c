//! [`LogWriter`]: the thread that owns the write side of the DA log (issue 11: no disk
//! write on the event loop).
//!
//! The event loop hands it [`Job`]s through a bounded channel ([`JOB_QUEUE`] jobs) with
//! `try_send` only, so it never waits for the disk. The thread takes the first job, then
//! every job already queued behind it, and appends all their blobs in **one** redb
//! transaction (group commit): while one commit (and its fsync) runs, further blobs
//! accumulate in the channel and go into the next transaction together. The state commits
//! of the applied blobs (issue 16 §1) go into the same transaction, so the log and the
//! state on disk never disagree.
//!
//! The thread reports back through a `watch` channel ([`Progress`]): the durable height,
//! the commits and the failed appends so far. A watch never blocks the writer and
//! coalesces reports the loop has not read yet. A failed append bumps
//! [`Progress::failures`]; the jobs of older *generations* (sent before the event loop
//! learned of the failure, tagged with the failure count it had seen) are then skipped, so
//! nothing is written on top of a log the loop is about to rebuild from. After a failed
//! append the writer closes and reopens the redb file (redb refuses every operation on a
//! database that saw an I/O error), and a store a failed reopen left closed is reopened
//! before the next append: the loop's retry (issue 14 §2, `service/degraded.rs`) then
//! starts from a fresh handle.
//!
//! Dropping (or [`LogWriter::close`]) closes the channel and joins the thread: every job
//! already sent is written first.

use std::sync::Arc;

use dsdn_protocols::da::state::StateCommit;
use std::thread::JoinHandle;

use tokio::sync::{mpsc, watch};

use super::store::{DaStore, DaStoreError};

/// Capacity of the channel to the writer, in jobs. A job carries every blob not yet handed
/// over, so a full channel only delays the hand-over: the blobs stay in the service's
/// unwritten buffer and go in the next job.
pub(crate) const JOB_QUEUE: usize = 64;

/// Work for the writer thread.
#[derive(Debug)]
pub(crate) enum Job {
    /// Append these `(height, encoded blob)` rows (heights consecutive from the log's tip
    /// plus one, verified by the caller) and these state commits (consecutive from the
    /// stored state's height plus one, at most the new tip) in one transaction.
    Append {
        /// The failure count the sender had seen ([`Progress::failures`]).
        generation: u64,
        /// The rows, ascending by height.
        blobs: Vec<(u64, Arc<[u8]>)>,
        /// The state commits, ascending by height.
        state: Vec<Arc<StateCommit>>,
    },
}

impl Job {
    fn generation(&self) -> u64 {
        match self {
            Job::Append { generation, .. } => *generation,
        }
    }
}

/// What the writer reports after each group of jobs.
#[derive(Debug, Clone, Default)]
pub(crate) struct Progress {
    /// The highest height durable in the log (committed and fsynced).
    pub(crate) durable: u64,
    /// Failed appends so far; also the generation of the jobs the writer accepts.
    pub(crate) failures: u64,
    /// The error of the last failed append.
    pub(crate) last_error: Option<String>,
    /// Jobs taken from the channel so far (written, skipped as stale, or failed).
    pub(crate) jobs_done: u64,
    /// Append transactions committed so far.
    pub(crate) commits: u64,
    /// The height of the state durable on disk (≤ `durable`).
    pub(crate) state_durable: u64,
}

/// Metrics the writer updates (shared with [`crate::metrics::Metrics`]).
#[derive(Clone)]
pub(crate) struct WriterMetrics {
    /// `da_log_commits_total`.
    pub(crate) commits: prometheus::IntCounter,
    /// `da_log_write_errors_total`.
    pub(crate) errors: prometheus::IntCounter,
    /// `storage_write_errors_total{store="da_log"}`: failed appends.
    pub(crate) storage_errors: prometheus::IntCounter,
}

/// Test hooks: hold the writer before its next commit, make commits fail.
#[cfg(test)]
#[derive(Default)]
pub(crate) struct Hooks {
    /// While true, the writer waits after taking a group of jobs, before committing it.
    held: std::sync::Mutex<bool>,
    cond: std::sync::Condvar,
    /// Appends to fail (each failure decrements it).
    pub(crate) fail_appends: std::sync::atomic::AtomicU32,
    /// Appends to let through before the failures of `fail_appends` (each decrements it).
    pub(crate) pass_appends: std::sync::atomic::AtomicU32,
}

#[cfg(test)]
impl Hooks {
    /// Holds (`true`) or releases (`false`) the writer before its next commit.
    pub(crate) fn hold(&self, held: bool) {
        *self.held.lock().unwrap() = held;
        self.cond.notify_all();
    }

    fn wait(&self) {
        let mut held = self.held.lock().unwrap();
        while *held {
            held = self.cond.wait(held).unwrap();
        }
    }

    fn fail(&self) -> bool {
        use std::sync::atomic::Ordering;
        let dec = |n: u32| n.checked_sub(1);
        if self.fail_appends.load(Ordering::SeqCst) > 0
            && self
                .pass_appends
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, dec)
                .is_ok()
        {
            return false;
        }
        self.fail_appends
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The handle of the writer thread, owned by the DA service.
pub(crate) struct LogWriter {
    jobs: Option<mpsc::Sender<Job>>,
    progress: watch::Receiver<Progress>,
    thread: Option<JoinHandle<()>>,
    #[cfg(test)]
    pub(crate) hooks: Arc<Hooks>,
}

impl LogWriter {
    /// Starts the writer thread over `store` (whose tip is the durable height).
    ///
    /// # Errors
    /// [`DaStoreError::Io`] when the thread cannot be spawned.
    pub(crate) fn spawn(
        store: Arc<DaStore>,
        metrics: WriterMetrics,
    ) -> Result<LogWriter, DaStoreError> {
        let (jobs, rx) = mpsc::channel(JOB_QUEUE);
        let (tx, progress) = watch::channel(Progress {
            durable: store.tip(),
            state_durable: store.state_tip(),
            ..Progress::default()
        });
        #[cfg(test)]
        let hooks = Arc::new(Hooks::default());
        let worker = Worker {
            store,
            metrics,
            tx,
            #[cfg(test)]
            hooks: hooks.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("da-log-writer".into())
            .spawn(move || worker.run(rx))
            .map_err(DaStoreError::Io)?;
        Ok(LogWriter {
            jobs: Some(jobs),
            progress,
            thread: Some(thread),
            #[cfg(test)]
            hooks,
        })
    }

    /// Hands `job` over without waiting. Gives it back when the channel is full
    /// (`Err(Some(job))`) or the writer is gone (`Err(None)`: it stopped or panicked).
    pub(crate) fn try_send(&self, job: Job) -> Result<(), Option<Job>> {
        let Some(jobs) = &self.jobs else {
            return Err(None);
        };
        jobs.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(job) => Some(job),
            mpsc::error::TrySendError::Closed(_) => None,
        })
    }

    /// The latest report, marking it seen.
    pub(crate) fn progress(&mut self) -> Progress {
        self.progress.borrow_and_update().clone()
    }

    /// The latest report without marking it seen (tests).
    #[cfg(test)]
    pub(crate) fn progress_now(&self) -> Progress {
        self.progress.borrow().clone()
    }

    /// Resolves when the writer reported something not seen yet; `None` when the thread
    /// is gone.
    pub(crate) async fn changed(&mut self) -> Option<()> {
        self.progress.changed().await.ok()
    }

    /// True when the writer thread has ended (closed, or panicked).
    pub(crate) fn is_gone(&self) -> bool {
        self.thread.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Closes the channel and joins the thread: every job sent is processed first.
    /// Blocks the calling thread for as long as that takes.
    pub(crate) fn close(&mut self) {
        self.jobs = None;
        // A test that held the writer and failed must not hang here.
        #[cfg(test)]
        self.hooks.hold(false);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the DA log writer panicked");
            }
        }
    }
}

impl Drop for LogWriter {
    fn drop(&mut self) {
        self.close();
    }
}

/// The thread side.
struct Worker {
    store: Arc<DaStore>,
    metrics: WriterMetrics,
    tx: watch::Sender<Progress>,
    #[cfg(test)]
    hooks: Arc<Hooks>,
}

impl Worker {
    fn run(self, mut rx: mpsc::Receiver<Job>) {
        let mut failures = 0u64;
        while let Some(first) = rx.blocking_recv() {
            let mut group = vec![first];
            while let Ok(job) = rx.try_recv() {
                group.push(job);
            }
            // A test holds the writer here, as if this group's commit took long.
            #[cfg(test)]
            self.hooks.wait();
            let taken = group.len() as u64;
            let mut rows: Vec<(u64, Arc<[u8]>)> = Vec::new();
            let mut commits: Vec<Arc<StateCommit>> = Vec::new();
            for job in group {
                if job.generation() != failures {
                    // Sent before the loop learned of a failure: it rebuilds and resends.
                    continue;
                }
                match job {
                    Job::Append { blobs, state, .. } => {
                        rows.extend(blobs);
                        commits.extend(state);
                    }
                }
            }
            let result = self.append(&rows, &commits);
            let committed = (!rows.is_empty() || !commits.is_empty()) && result.is_ok();
            if committed {
                self.metrics.commits.inc();
            }
            let error = result.err().map(|e| {
                failures += 1;
                self.metrics.errors.inc();
                self.metrics.storage_errors.inc();
                // The service logs the first failure of a run at error level (issue 14 §2:
                // once, not per retry).
                tracing::debug!(error = %e, blobs = rows.len(), "cannot append to the DA log");
                e.to_string()
            });
            let durable = self.store.tip();
            let state_durable = self.store.state_tip();
            self.tx.send_modify(|p| {
                p.durable = durable;
                p.state_durable = state_durable;
                p.failures = failures;
                p.jobs_done += taken;
                p.commits += u64::from(committed);
                if let Some(e) = error {
                    p.last_error = Some(e);
                }
            });
        }
    }

    /// Appends `rows`. A store left closed by a failed reopen is reopened first; after a
    /// failed append the file is reopened at once (redb refuses every operation on a
    /// database that saw an I/O error, reads included), so that the durable heights can be
    /// read and served while the disk is full, and the retry starts from a fresh handle.
    fn append(
        &self,
        rows: &[(u64, Arc<[u8]>)],
        commits: &[Arc<StateCommit>],
    ) -> Result<(), DaStoreError> {
        if rows.is_empty() && commits.is_empty() {
            return Ok(());
        }
        if !self.store.is_open() {
            self.store.reopen()?;
        }
        #[cfg(test)]
        if self.hooks.fail() {
            return Err(DaStoreError::Db("injected append failure".into()));
        }
        let rows: Vec<(u64, &[u8])> = rows.iter().map(|(h, b)| (*h, &b[..])).collect();
        let result = self.store.append_with_state(&rows, commits);
        if result.is_err() {
            if let Err(e) = self.store.reopen() {
                tracing::debug!(error = %e, "cannot reopen the DA log after a failed append");
            }
        }
        result
    }
}
