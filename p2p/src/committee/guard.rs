//! The signing guard is durable before a share leaves (issue 11 §3), without a disk write
//! on the event loop.
//!
//! A member that signs updates its [`dsdn_protocols::committee::SlotGuard`] in memory at
//! once (a second package for the slot is refused from then on), queues a
//! [`CommitteeAction::PersistGuard`] with the whole guard and the change's number, and
//! holds the share. The event loop hands the write to the [`GuardWriter`] thread, which
//! writes the newest guard atomically (0600, fsync, rename) and reports the number it made
//! durable; [`CommitteeService::on_guard_persisted`] then releases every share held under
//! that number or an earlier one: to the proposer that asked (a member's share) or into the
//! round (the proposer's own share). When the write fails the held shares are withheld —
//! the requester gets [`Refusal::Invalid`], the own round ends refused — exactly as when
//! the synchronous write failed before: a share never leaves a member whose guard might
//! forget it after a crash.

use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use dsdn_protocols::committee::{CommitteeResponse, Refusal, SignatureShareMsg};
use tokio::sync::mpsc;

use super::files::{guard_path, write_private};
use super::service::{CommitteeAction, CommitteeService};
use super::signing::RoundEvent;
use crate::net::rpc::Reply;
use crate::storage::Failed;

/// Where a held share goes once its guard change is durable.
#[derive(Debug)]
pub(crate) enum HeldFor {
    /// The answer to a proposer's `Sign` request.
    Member(Reply),
    /// This node's own share in its round with this id.
    Round(u64),
}

/// A share waiting for its guard change to be durable.
#[derive(Debug)]
pub(crate) struct HeldShare {
    seq: u64,
    share: SignatureShareMsg,
    to: HeldFor,
}

impl CommitteeService {
    /// Holds `share`, signed under guard change `seq`, until that change is durable.
    pub(super) fn hold(&mut self, seq: u64, share: SignatureShareMsg, to: HeldFor) {
        self.held.push(HeldShare { seq, share, to });
    }

    /// The guard write of change `seq` ended: `Ok` releases every share held under `seq` or
    /// earlier (the write held all those changes), `Err` withholds them.
    pub(crate) fn on_guard_persisted(
        &mut self,
        seq: u64,
        result: Result<(), String>,
        now: Instant,
    ) {
        self.guard_health(&result, now);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|h| h.seq <= seq);
        self.held = later;
        if let Err(e) = &result {
            if !due.is_empty() {
                tracing::debug!(error = %e, shares = due.len(), "cannot persist the signing guard: shares withheld");
            }
        }
        for h in due {
            match (&result, h.to) {
                (Ok(()), HeldFor::Member(reply)) => self.actions.push(CommitteeAction::Respond(
                    reply,
                    CommitteeResponse::Share(h.share),
                )),
                (Ok(()), HeldFor::Round(id)) => self.step(id, RoundEvent::OwnShare(h.share), now),
                (Err(e), to) => {
                    let refusal = Refusal::Invalid(Refusal::text(format!(
                        "cannot persist the signing guard: {e}"
                    )));
                    match to {
                        HeldFor::Member(reply) => {
                            let response = self.refusal(self.me, refusal);
                            self.actions.push(CommitteeAction::Respond(reply, response));
                        }
                        HeldFor::Round(id) => self.step(id, RoundEvent::OwnWithheld(refusal), now),
                    }
                }
            }
        }
    }

    /// Follows the guard writes: a failure degrades the member (logged once, signs nothing,
    /// retried with backoff by [`CommitteeService::poll`]), a success ends it.
    fn guard_health(&mut self, result: &Result<(), String>, now: Instant) {
        match result {
            Err(e) => {
                self.metrics.storage_errors.inc();
                self.metrics.storage_degraded.set(1);
                match self.health.fail(e, now) {
                    Failed::Degraded => {
                        tracing::error!(error = %e, "cannot write the signing guard: storage degraded; this member signs nothing until the guard is written again (retried with backoff)")
                    }
                    Failed::Relapsed => {
                        tracing::warn!(error = %e, "the signing guard cannot be written again soon after recovering: this member signs nothing; the retries keep their backoff")
                    }
                    Failed::StillDegraded => {
                        tracing::debug!(error = %e, "signing guard retry failed")
                    }
                }
            }
            Ok(()) => {
                if let Some(was) = self.health.succeed(now) {
                    self.metrics.storage_degraded.set(0);
                    tracing::info!(
                        failures = was.failures,
                        degraded_secs = now.saturating_duration_since(was.since).as_secs(),
                        "signing guard written again: this member signs again"
                    );
                }
            }
        }
    }

    /// Writes the current guard again once the backoff after a failed write ended.
    pub(super) fn retry_guard(&mut self, now: Instant) {
        if !self.health.retry_due(now) {
            return;
        }
        self.health.retry_started();
        let Some(signer) = self.signer.as_ref() else {
            return;
        };
        match signer.guard().to_bytes() {
            Ok(bytes) => self.actions.push(CommitteeAction::PersistGuard {
                seq: self.guard_seq,
                path: guard_path(&self.cfg.dir, self.config.epoch),
                bytes,
            }),
            Err(e) => tracing::warn!(error = %e, "cannot encode the signing guard"),
        }
    }

    /// Refuses to sign while the guard cannot be written: a share must never leave a
    /// member whose guard might forget it.
    pub(super) fn refuse_if_degraded(&self) -> Result<(), Refusal> {
        match self.health.degraded() {
            Some(d) => Err(Refusal::Busy(format!(
                "this member's signing guard cannot be written ({}); it signs nothing until it can",
                d.last_error
            ))),
            None => Ok(()),
        }
    }

    /// The committee store's issue at `now`, `None` while guard writes succeed.
    pub(crate) fn storage_issue(&self, now: Instant) -> Option<crate::storage::StorageIssue> {
        self.health.issue(crate::storage::Store::Committee, now)
    }

    /// Shares held for their guard write (for tests and status).
    #[cfg(test)]
    pub(crate) fn held_shares(&self) -> usize {
        self.held.len()
    }
}

/// The newest guard write asked for, and whether the writer should stop.
#[derive(Default)]
struct Queue {
    newest: Option<(u64, PathBuf, Vec<u8>)>,
    stop: bool,
}

/// Writes guard files on a thread of its own (`committee guard writer`): the event loop
/// hands it [`CommitteeAction::PersistGuard`]s with [`GuardWriter::persist`] (never
/// blocks: a newer guard replaces one not yet written) and gets `(seq, result)` back from
/// [`GuardWriter::done`]. Dropping it writes what is queued and joins the thread.
pub(crate) struct GuardWriter {
    queue: Arc<(Mutex<Queue>, Condvar)>,
    done: mpsc::Receiver<(u64, Result<(), String>)>,
    thread: Option<JoinHandle<()>>,
}

/// Results the writer may have waiting for the event loop.
const DONE_QUEUE: usize = 64;

impl GuardWriter {
    /// Starts the writer thread.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn start() -> std::io::Result<Self> {
        let queue = Arc::new((Mutex::new(Queue::default()), Condvar::new()));
        let (tx, done) = mpsc::channel(DONE_QUEUE);
        let q = Arc::clone(&queue);
        let thread = std::thread::Builder::new()
            .name("committee guard writer".into())
            .spawn(move || run(&q, &tx))?;
        Ok(Self {
            queue,
            done,
            thread: Some(thread),
        })
    }

    /// Asks for `bytes` to be written to `path` as guard change `seq`.
    pub(crate) fn persist(&self, seq: u64, path: PathBuf, bytes: Vec<u8>) {
        let (lock, cv) = &*self.queue;
        let mut q = lock.lock().unwrap_or_else(PoisonError::into_inner);
        q.newest = Some((seq, path, bytes));
        cv.notify_one();
    }

    /// The next write result: the newest change written (or failed) so far.
    pub(crate) async fn done(&mut self) -> Option<(u64, Result<(), String>)> {
        self.done.recv().await
    }
}

impl Drop for GuardWriter {
    fn drop(&mut self) {
        {
            let (lock, cv) = &*self.queue;
            let mut q = lock.lock().unwrap_or_else(PoisonError::into_inner);
            q.stop = true;
            cv.notify_one();
        }
        // The receiver goes first, so a writer blocked on a full result queue wakes.
        self.done.close();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The writer thread: the newest queued guard, written atomically, its result reported.
fn run(queue: &(Mutex<Queue>, Condvar), tx: &mpsc::Sender<(u64, Result<(), String>)>) {
    let (lock, cv) = queue;
    loop {
        let job = {
            let mut q = lock.lock().unwrap_or_else(PoisonError::into_inner);
            while q.newest.is_none() && !q.stop {
                q = cv.wait(q).unwrap_or_else(PoisonError::into_inner);
            }
            match q.newest.take() {
                Some(job) => job,
                None => return,
            }
        };
        let (seq, path, bytes) = job;
        let result = write_private(&path, &bytes).map_err(|e| e.to_string());
        if tx.blocking_send((seq, result)).is_err() {
            // The event loop is gone; still write what is queued before stopping.
            let mut q = lock.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some((_, path, bytes)) = q.newest.take() {
                let _ = write_private(&path, &bytes);
            }
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_writer_writes_the_newest_guard_and_reports_failures() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("slot-guard-1.cbor");
        let mut w = GuardWriter::start().unwrap();
        w.persist(1, path.clone(), b"one".to_vec());
        w.persist(2, path.clone(), b"two".to_vec());
        // Change 1 may have been skipped (2 holds it); the last result is change 2.
        let mut last = w.done().await.unwrap();
        if last.0 == 1 {
            last = w.done().await.unwrap();
        }
        assert_eq!(last, (2, Ok(())));
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let missing = dir.path().join("no-such-dir").join("slot-guard-1.cbor");
        w.persist(3, missing, b"three".to_vec());
        let (seq, result) = w.done().await.unwrap();
        assert_eq!(seq, 3);
        assert!(result.is_err());
        drop(w);
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }
}
