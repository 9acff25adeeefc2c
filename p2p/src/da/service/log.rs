//! The service's side of the DA log writer (issue 11: no disk write on the event loop).
//!
//! Applied blobs enter an in-memory *unwritten* buffer and are handed to the
//! [`LogWriter`] thread with `try_send` (never waiting); the writer's [`Progress`] reports
//! come back through a watch channel the event loop selects on
//! ([`DaService::writer_changed`], then [`DaService::on_writer_progress`]). What the
//! service does with them:
//!
//! * **durable up to h**: the buffer drops heights ≤ h; publishers and registrations
//!   waiting for blobs ≤ h are answered (never before);
//! * **a failed append**: the DA log is *degraded* (issue 14 §2, see [`super::degraded`]):
//!   the chain and state are rebuilt from the disk (stored state + log, the start-up path), so
//!   the node no longer claims, serves or announces the lost heights; their blobs are kept
//!   aside (not served) and the append is retried with a backoff (1 s doubling to 60 s);
//!   waiters above the durable height get an error; no new height is applied until a
//!   retry succeeds; then the kept blobs are applied again and the [`BackfillPlanner`]
//!   fetches the rest from peers.
//!
//! Reads (sync serving, `blobs`, recorded receipts) combine the durable log with the
//! buffer, so every height up to the advertised tip can be served. The buffer is bounded:
//! while it holds [`MAX_UNWRITTEN_BLOBS`] blobs or [`MAX_UNWRITTEN_BYTES`] bytes, the node
//! applies no new height from gossip or submissions, sends no new backfill request and
//! seals nothing ([`DaService::accepting`]); blobs already held by the chain or already
//! requested may still be applied, so the buffer never exceeds the bound by more than the
//! chain's hold bound plus the requests in flight.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::da::store::{overlay_lock, DaStoreError, SharedOverlay};
use crate::da::writer::{Job, LogWriter, Progress};
use crate::storage::Health;
use dsdn_protocols::da::state::StateCommit;

/// Most applied-but-unwritten blobs before the node stops taking new heights.
pub(crate) const MAX_UNWRITTEN_BLOBS: usize = 1024;

/// Most applied-but-unwritten bytes (encoded blobs) before the node stops taking new
/// heights.
pub(crate) const MAX_UNWRITTEN_BYTES: usize = 64 * 1024 * 1024;

/// Longest [`DaService::flush`] wait.
const FLUSH_TIMEOUT: Duration = Duration::from_secs(60);

/// The durable log, the writer and what is not written yet.
pub(super) struct DaLog {
    /// The log (reads here; the writer thread appends).
    pub(super) store: Arc<DaStore>,
    /// The state commits not durable yet (shared with the chain's state store).
    pub(super) overlay: Option<SharedOverlay>,
    pub(super) writer: LogWriter,
    /// Applied blobs above `durable`, consecutive, ascending.
    pub(super) unwritten: VecDeque<(u64, Arc<[u8]>)>,
    pub(super) unwritten_bytes: usize,
    /// Highest height handed to the writer.
    pub(super) sent: u64,
    /// Highest durable height the writer reported.
    pub(super) durable: u64,
    /// Height of the state durable on disk the writer reported.
    pub(super) state_durable: u64,
    /// Failed appends seen (the generation of the jobs sent).
    pub(super) generation: u64,
    commits_seen: u64,
    pub(super) jobs_sent: u64,
    jobs_done: u64,
    /// Degraded while appends fail: the retry schedule (issue 14 §2).
    pub(super) health: Health,
    /// Verified blobs above `durable` whose append failed, consecutive, ascending: retried
    /// as they are, never served or claimed; applied again once durable.
    pub(super) held: VecDeque<(u64, Arc<[u8]>)>,
    /// The state commits of the kept blobs, consecutive from `durable + 1`: retried with
    /// them, so that the retry is the transaction that failed (log and state together).
    pub(super) held_state: Vec<Arc<StateCommit>>,
    /// State commits handed to the writer and not reported durable yet (the overlay's
    /// own `Arc`s): a failed append keeps those of its kept blobs.
    pub(super) in_flight: Vec<Arc<StateCommit>>,
    /// Replies waiting for their blob to be durable: (height, replies), ascending.
    pub(super) waiters: VecDeque<(u64, Vec<Reply>)>,
    /// The writer thread is gone (logged once).
    gone: bool,
}

impl DaLog {
    pub(super) fn new(
        store: Arc<DaStore>,
        overlay: Option<SharedOverlay>,
        writer: LogWriter,
    ) -> DaLog {
        let tip = store.tip();
        DaLog {
            store,
            overlay,
            writer,
            unwritten: VecDeque::new(),
            unwritten_bytes: 0,
            sent: tip,
            durable: tip,
            state_durable: 0,
            generation: 0,
            commits_seen: 0,
            jobs_sent: 0,
            jobs_done: 0,
            health: Health::new(),
            held: VecDeque::new(),
            held_state: Vec::new(),
            in_flight: Vec::new(),
            waiters: VecDeque::new(),
            gone: false,
        }
    }

    /// Hands every blob not handed over yet to the writer, with the state commits not
    /// handed over yet, in one job; keeps them for a later call when the channel is full.
    /// Sends nothing while a failed append is backed off from ([`DaLog::holding`]): the
    /// retry takes the state commits along ([`DaService::retry_due`]).
    fn pump(&mut self) {
        if self.holding() {
            return;
        }
        let blobs: Vec<(u64, Arc<[u8]>)> = self
            .unwritten
            .iter()
            .filter(|(h, _)| *h > self.sent)
            .cloned()
            .collect();
        let state = match &self.overlay {
            Some(o) => overlay_lock(o).take_outbox(),
            None => Vec::new(),
        };
        if blobs.is_empty() && state.is_empty() {
            return;
        }
        let last = blobs.last().map(|(h, _)| *h);
        let sent_state = state.clone();
        let job = Job::Append {
            generation: self.generation,
            blobs,
            state,
        };
        match self.writer.try_send(job) {
            Ok(()) => {
                if let Some(last) = last {
                    self.sent = last;
                }
                self.in_flight.extend(sent_state);
                self.jobs_sent += 1;
            }
            Err(Some(Job::Append { state, .. })) => self.put_back(state),
            Err(None) => self.writer_gone(),
        }
    }

    pub(super) fn put_back(&self, state: Vec<Arc<StateCommit>>) {
        if let Some(o) = &self.overlay {
            overlay_lock(o).put_back(state);
        }
    }

    pub(super) fn writer_gone(&mut self) {
        if !self.gone {
            self.gone = true;
            tracing::error!("the DA log writer stopped: nothing more is written; restart the node");
        }
    }

    /// Up to `count` encoded blobs from `from`, from the durable log and then the buffer
    /// (the rules of [`DaStore::range`]).
    fn range(&self, from: u64, count: u32, max_bytes: usize) -> Result<Vec<Vec<u8>>, DaStoreError> {
        if from == 0 || count == 0 {
            return Ok(Vec::new());
        }
        let mut out = if from <= self.durable {
            self.store.range(from, count, max_bytes)?
        } else {
            Vec::new()
        };
        let mut total: usize = out.iter().map(Vec::len).sum();
        let start = from.saturating_add(out.len() as u64);
        let buffered = self.unwritten.iter().skip_while(|(h, _)| *h < start);
        for (next, (height, bytes)) in (start..).zip(buffered) {
            if *height != next
                || out.len() >= count as usize
                || (!out.is_empty() && total.saturating_add(bytes.len()) > max_bytes)
            {
                break;
            }
            total += bytes.len();
            out.push(bytes.to_vec());
        }
        Ok(out)
    }

    /// The encoded blob at `height`, from the buffer or the durable log.
    fn get(&self, height: u64) -> Result<Option<Vec<u8>>, DaStoreError> {
        if let Some((_, bytes)) = self.unwritten.iter().find(|(h, _)| *h == height) {
            return Ok(Some(bytes.to_vec()));
        }
        self.store.get(height)
    }

    /// True while a failed append holds new heights back: degraded, unless the retry is
    /// due and there is no kept blob to retry with (then the next applied height is the
    /// retry).
    pub(super) fn holding(&self) -> bool {
        self.health.is_degraded() && !(self.health.retry_at().is_none() && self.held.is_empty())
    }

    fn accepting(&self) -> bool {
        !self.holding()
            && !self.gone
            && self.unwritten.len() < MAX_UNWRITTEN_BLOBS
            && self.unwritten_bytes < MAX_UNWRITTEN_BYTES
    }

    /// Forgets the buffer after a rebuild at `height` (the log's tip).
    pub(super) fn reset(&mut self, height: u64) {
        self.unwritten.clear();
        self.unwritten_bytes = 0;
        self.sent = height;
        self.durable = height;
    }
}

impl DaService {
    /// Records applied blobs for the writer and hands them over.
    pub(super) fn record(&mut self, applied: &[VerifiedBlob]) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        // Heights already durable (kept blobs applied again after a retry) are not written
        // twice.
        for b in applied.iter().filter(|b| b.height() > log.durable) {
            let bytes: Arc<[u8]> = Arc::from(b.encoded());
            log.unwritten_bytes += bytes.len();
            log.unwritten.push_back((b.height(), bytes));
        }
        log.pump();
        self.metrics
            .da_log_unwritten
            .set(log.unwritten.len() as i64);
    }

    /// True when new heights may be applied: no state sync is under way, the log has no
    /// failed append being backed off from and the unwritten buffer is under its bounds
    /// (always true without a log and state sync).
    pub(crate) fn accepting(&self) -> bool {
        !self.state_sync_hold && self.log.as_ref().is_none_or(DaLog::accepting)
    }

    /// Answers `replies` (publishers and registrations of the events of the blob at
    /// `height`, a known registration, a submitted blob) once that blob is durable; at once
    /// when it already is or without a log on disk.
    pub(super) fn when_durable(&mut self, height: u64, replies: Vec<Reply>) {
        if let Some(log) = self.log.as_mut().filter(|l| l.durable < height) {
            log.waiters.push_back((height, replies));
        } else {
            self.answer_sealed(height, replies);
        }
    }

    /// Resolves when the writer reported something the service has not seen yet (never
    /// without a log on disk; `None` when the writer thread is gone).
    pub(crate) async fn writer_changed(&mut self) -> Option<()> {
        match self.log.as_mut() {
            Some(log) => log.writer.changed().await,
            None => std::future::pending().await,
        }
    }

    /// Takes the writer's latest report: releases what became durable, or rebuilds from
    /// the disk after a failed append (see the module documentation).
    pub(crate) fn on_writer_progress(&mut self, now: Instant) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let p: Progress = log.writer.progress();
        log.jobs_done = p.jobs_done;
        let committed = p.commits > log.commits_seen;
        log.commits_seen = p.commits;
        let failed = p.failures > log.generation;
        if failed {
            log.generation = p.failures;
            let error = p.last_error.unwrap_or_default();
            self.append_failed(&error, p.durable, now);
        } else if p.durable > log.durable || p.state_durable > log.state_durable {
            if let Some(o) = &log.overlay {
                overlay_lock(o).release(p.state_durable);
            }
            log.state_durable = p.state_durable;
            log.durable = p.durable;
            log.in_flight.retain(|c| c.header.height > p.state_durable);
            log.held_state.retain(|c| c.header.height > p.state_durable);
            while log.unwritten.front().is_some_and(|(h, _)| *h <= p.durable) {
                if let Some((_, bytes)) = log.unwritten.pop_front() {
                    log.unwritten_bytes = log.unwritten_bytes.saturating_sub(bytes.len());
                }
            }
            let mut ready = Vec::new();
            while log.waiters.front().is_some_and(|(h, _)| *h <= p.durable) {
                ready.extend(log.waiters.pop_front());
            }
            log.pump();
            for (height, replies) in ready {
                self.answer_sealed(height, replies);
            }
        }
        if committed && !failed {
            self.append_succeeded(now);
        }
        if let Some(log) = self.log.as_mut() {
            log.pump();
            if log.writer.is_gone() && !log.unwritten.is_empty() {
                log.writer_gone();
            }
            self.metrics
                .da_log_unwritten
                .set(log.unwritten.len() as i64);
        }
    }

    /// A failed append: the state goes back to what the disk holds (stored state + log).
    pub(super) fn rebuild(&mut self, error: &str) {
        let applied = self.chain.height();
        let Some(height) = self.reload() else {
            return;
        };
        tracing::info!(
            applied,
            durable = height,
            "the DA state is rebuilt from the disk: the heights not stored are no longer claimed"
        );
        let Some(log) = self.log.as_mut() else {
            return;
        };
        // Blobs committed before the failure are durable: their waiters are answered.
        let (durable, lost): (Vec<_>, Vec<_>) =
            log.waiters.drain(..).partition(|(h, _)| *h <= height);
        for (h, replies) in durable {
            self.answer_sealed(h, replies);
        }
        for (h, replies) in lost {
            let e = format!(
                "the DA log could not store blob {h}: {error} (the blob is kept and its write \
                 retried; it is stored once the disk takes writes again)"
            );
            self.fail_replies(replies, &e);
        }
    }

    /// Reads the chain and its state again from the disk (the stored state, then the
    /// stored blobs above it, as at start); the unwritten buffer is forgotten. Returns the
    /// new height (`None` without a log).
    pub(super) fn reload(&mut self) -> Option<u64> {
        let log = self.log.as_mut()?;
        let store = log.store.clone();
        let (state, overlay) = load_state(
            &self.network,
            self.authority.as_ref(),
            Some(&store),
            &self.metrics,
        );
        let mut chain = DaChain::new(state);
        replay(
            &mut chain,
            &store,
            overlay.as_ref(),
            false,
            &self.network,
            self.authority,
        );
        self.keys = super::keys::history_of(self.authority, chain.state());
        log.overlay = overlay;
        log.state_durable = store.state_tip();
        let height = chain.height();
        self.chain = chain;
        self.forks.rolled_back(height);
        log.reset(height);
        self.planner.set_local_height(height);
        self.height_tx.send_replace(height);
        self.metrics.da_height.set(height as i64);
        self.metrics
            .da_pending_blobs
            .set(self.chain.pending() as i64);
        Some(height)
    }

    /// Blocks until every applied blob is durable and every job sent was processed (or a
    /// failure was handled, or 60 s passed, or the writer is gone), taking the writer's
    /// reports meanwhile. For shutdown and tests only: the event loop never waits.
    pub(crate) fn flush(&mut self) {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            self.on_writer_progress(Instant::now());
            let height = self.chain.height();
            let Some(log) = self.log.as_mut() else {
                return;
            };
            log.pump();
            let state_sent = log
                .overlay
                .as_ref()
                .is_none_or(|o| overlay_lock(o).outbox_is_empty());
            // A degraded log sends nothing until its retry is due.
            let handed = (log.sent >= height && state_sent) || log.holding();
            let idle = handed && log.jobs_done >= log.jobs_sent;
            if idle || log.gone || log.writer.is_gone() || Instant::now() >= deadline {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Clean stop: everything applied is written (blobs and state), the writer joined.
    pub(crate) fn shutdown(&mut self) {
        self.flush();
        if let Some(log) = self.log.as_mut() {
            log.writer.close();
        }
    }

    /// The highest height durable in the log (the chain height without a log on disk).
    pub(crate) fn durable_height(&self) -> u64 {
        self.log.as_ref().map_or(self.chain.height(), |l| l.durable)
    }

    /// Encoded blobs from the durable log and the unwritten buffer.
    pub(super) fn read_range(
        &self,
        from: u64,
        count: u32,
        max_bytes: usize,
    ) -> Result<Vec<Vec<u8>>, DaStoreError> {
        match &self.log {
            Some(log) => log.range(from, count, max_bytes),
            None => Ok(Vec::new()),
        }
    }

    /// One encoded blob from the unwritten buffer or the durable log.
    pub(super) fn read_blob(&self, height: u64) -> Option<Vec<u8>> {
        self.log.as_ref()?.get(height).ok().flatten()
    }

    /// The writer (tests: its hooks).
    #[cfg(test)]
    pub(crate) fn writer(&self) -> Option<&LogWriter> {
        self.log.as_ref().map(|l| &l.writer)
    }
}

impl Drop for DaLog {
    /// Hands over what is still buffered (bounded wait), then joins the writer.
    fn drop(&mut self) {
        let deadline = Instant::now() + FLUSH_TIMEOUT;
        loop {
            self.pump();
            let handed = self.unwritten.back().is_none_or(|(h, _)| *h <= self.sent);
            if handed || self.gone || self.writer.is_gone() || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        self.writer.close();
    }
}
