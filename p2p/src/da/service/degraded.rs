//! A degraded DA log (issue 14 §2): appends fail (disk full, I/O error) and are retried.
//!
//! The state machine is [`crate::storage::Health`]; this module is what the service does
//! on its transitions:
//!
//! * **first failed append** (healthy → degraded): logged once at error level,
//!   `storage_degraded{store="da_log"}` = 1. The blobs above the durable height are taken
//!   out of the unwritten buffer and *kept* ([`DaLog::held`]): not served, not announced,
//!   not counted in the height. If the chain had applied heights above the durable tip,
//!   or its state is ahead of the durable state (the failed job took state commits along,
//!   which exist nowhere else now), it is rebuilt from the disk (the start-up path), so the
//!   height, `da blobs`, backfill answers and the height watch all stop at the durable tip
//!   and the state commits of the stored blobs are computed again; waiters above it get
//!   an error. `da state` reports `synced: false` and the error in `degraded`.
//! * **while degraded**: no new height is applied (gossip, backfill responses, submitted
//!   blobs, sealing), no backfill request goes out and nothing is handed to the writer;
//!   when the backoff (1 s doubling to 60 s) ends, the kept blobs are appended again in
//!   one job with the state commits not durable yet (the retry). A retry that fails only
//!   reschedules (logged at debug level, counted in
//!   `storage_write_errors_total{store="da_log"}`).
//! * **a commit succeeds** (degraded → healthy): logged once at info level, the gauge goes
//!   back to 0, the kept blobs — now durable — are applied again (catch-up from the disk's
//!   new tip, no second write), and the backfill planner fetches the rest from peers.
//!
//! A failure with nothing to keep (it cannot normally happen: the failed rows are above
//! the durable tip) falls back to a retry through the next applied height.

use super::*;
use crate::da::store::overlay_lock;
use crate::da::writer::Job;
use crate::storage::{Failed, StorageIssue, Store};
use dsdn_protocols::da::state::StateCommit;

impl DaService {
    /// The writer reported a failed append; the log is durable up to `durable`.
    pub(super) fn append_failed(&mut self, error: &str, durable: u64, now: Instant) {
        let applied = self.chain.height();
        let Some(log) = self.log.as_mut() else {
            return;
        };
        // Keep every verified blob above the durable tip, as one consecutive run.
        let mut kept: Vec<(u64, Arc<[u8]>)> = log
            .held
            .drain(..)
            .chain(log.unwritten.drain(..))
            .filter(|(h, _)| *h > durable)
            .collect();
        kept.sort_by_key(|(h, _)| *h);
        kept.dedup_by_key(|(h, _)| *h);
        let run = kept
            .iter()
            .zip(durable.saturating_add(1)..)
            .take_while(|((h, _), want)| h == want)
            .count();
        kept.truncate(run);
        let kept_count = kept.len();
        // Every job sent before this failure is skipped by the writer from now on.
        let commits: Vec<Arc<StateCommit>> = log
            .held_state
            .drain(..)
            .chain(log.in_flight.drain(..))
            .collect();
        log.held_state = state_of_kept(&kept, commits);
        log.held = kept.into();
        let label = [Store::DaLog.as_str()];
        self.metrics
            .storage_degraded
            .with_label_values(&label)
            .set(1);
        match log.health.fail(error, now) {
            Failed::Degraded => tracing::error!(
                %error,
                durable,
                applied,
                kept = kept_count,
                "cannot write the DA log: storage degraded; the node serves and claims only \
                 the durable heights and retries the write with backoff (1 s to 60 s)"
            ),
            Failed::Relapsed => tracing::warn!(
                %error,
                durable,
                kept = kept_count,
                "DA log writes fail again soon after recovering: storage degraded; the retries \
                 keep their backoff"
            ),
            Failed::StillDegraded => tracing::debug!(%error, durable, "DA log retry failed"),
        }
        // The state commits handed to the writer since the durable state went with the
        // failed job, or with jobs the writer now skips (an older generation): the overlay
        // no longer holds them for a later job. Whenever the applied state is ahead of the
        // durable one the state is rebuilt from the disk, which computes them again from
        // the stored blobs; otherwise the next commit would leave a gap in the stored state
        // and every later append would fail.
        let state_behind = log.overlay.is_some() && log.store.state_tip() < applied;
        if applied > durable || state_behind || !log.waiters.is_empty() {
            self.rebuild(error);
        } else {
            log.reset(durable);
        }
    }

    /// A commit succeeded: a degraded log recovers and applies its kept blobs again.
    pub(super) fn append_succeeded(&mut self, now: Instant) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        let Some(was) = log.health.succeed(now) else {
            return;
        };
        self.metrics
            .storage_degraded
            .with_label_values(&[Store::DaLog.as_str()])
            .set(0);
        let durable = log.durable;
        let kept: Vec<(u64, Arc<[u8]>)> = log.held.drain(..).collect();
        log.held_state.clear();
        tracing::info!(
            durable,
            failures = was.failures,
            degraded_secs = now.saturating_duration_since(was.since).as_secs(),
            "DA log writes recovered: the node catches up"
        );
        if self.keys.is_none() {
            return;
        }
        if log.store.state_tip() > self.chain.height() {
            self.applied_from_disk(kept);
            return;
        }
        for (height, bytes) in kept {
            if height <= self.chain.height() {
                continue;
            }
            // Kept blobs above the new durable tip (none normally) are fetched again.
            if height > durable {
                break;
            }
            match self.verify_blob(&bytes) {
                Ok(blob) => {
                    if !matches!(self.offer(blob), Offer::Applied(_)) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, height, "a kept DA blob no longer verifies");
                    break;
                }
            }
        }
        if self.chain.height() < durable {
            self.catch_up_from_disk(durable);
        }
    }

    /// The retry stored the kept blobs with their state: the in-memory state cannot apply
    /// them over a stored state already past them, so the chain is read again from the
    /// disk, the kept blobs count as applied (the pool, the fork record, the notices) and
    /// the blobs the chain held ahead of its tip are offered again.
    fn applied_from_disk(&mut self, kept: Vec<(u64, Arc<[u8]>)>) {
        let from = self.chain.height();
        let ahead: Vec<VerifiedBlob> = (from + 1..=self.chain.highest_held())
            .filter_map(|h| self.chain.held(h).cloned())
            .collect();
        let mut applied = Vec::new();
        for (height, bytes) in kept.iter().filter(|(h, _)| *h > from) {
            match self.verify_blob(bytes) {
                Ok(blob) if blob.height() == *height => applied.push(blob),
                _ => {
                    tracing::warn!(height, "a kept DA blob no longer verifies");
                    break;
                }
            }
        }
        let Some(height) = self.reload() else {
            return;
        };
        applied.retain(|b| b.height() <= height);
        self.on_applied(&applied);
        for blob in ahead.into_iter().filter(|b| b.height() > height) {
            self.offer(blob);
        }
    }

    /// Applies the stored blobs between the chain's height and `durable` (what the kept
    /// blobs did not cover), verified like at start.
    fn catch_up_from_disk(&mut self, durable: u64) {
        let Some(store) = self.log.as_ref().map(|l| l.store.clone()) else {
            return;
        };
        let Some(mut keys) = self.keys.clone() else {
            return;
        };
        let mut stored = Vec::new();
        let read = store.for_each_from(self.chain.height() + 1, |height, bytes| {
            if height > durable {
                return false;
            }
            match keys::verify_with(Some(&keys), &self.network, bytes) {
                Ok(b) if b.height() == height => {
                    keys::follow(&mut keys, &self.network, &b);
                    stored.push(b);
                    true
                }
                _ => false,
            }
        });
        if let Err(e) = read {
            tracing::warn!(error = %e, "cannot read the DA log");
        }
        for blob in stored {
            if !matches!(self.offer(blob), Offer::Applied(_)) {
                break;
            }
        }
    }

    /// Starts the retry of a failed append once its backoff ended at `now`.
    pub(super) fn retry_due(&mut self, now: Instant) {
        let Some(log) = self.log.as_mut() else {
            return;
        };
        if !log.health.retry_due(now) {
            return;
        }
        // The state commits not durable yet go along: those of stored blobs (computed again
        // by the rebuild), then those of the kept blobs when they follow on, so that the
        // retry stores log and state together, as the failed append would have.
        let mut state = match &log.overlay {
            Some(o) => overlay_lock(o).take_outbox(),
            None => Vec::new(),
        };
        let next = state
            .last()
            .map_or(log.store.state_tip(), |c| c.header.height)
            .saturating_add(1);
        if log
            .held_state
            .first()
            .is_some_and(|c| c.header.height == next)
        {
            state.extend(log.held_state.iter().cloned());
        }
        let sent_state = state.clone();
        if log.held.is_empty() && state.is_empty() {
            // Nothing kept: the next applied height is the retry.
            log.health.retry_started();
            return;
        }
        let blobs: Vec<(u64, Arc<[u8]>)> = log.held.iter().cloned().collect();
        let last = blobs.last().map_or(log.durable, |(h, _)| *h);
        let job = Job::Append {
            generation: log.generation,
            blobs,
            state,
        };
        match log.writer.try_send(job) {
            Ok(()) => {
                log.health.retry_started();
                log.in_flight.extend(sent_state);
                log.sent = log.sent.max(last);
                log.jobs_sent += 1;
                tracing::debug!(
                    from = log.durable + 1,
                    to = last,
                    "retrying the DA log append"
                );
            }
            // Full: the next poll tries again.
            Err(Some(Job::Append { state, .. })) => log.put_back(state),
            Err(None) => log.writer_gone(),
        }
    }

    /// When the next retry of a failed append is due.
    pub(super) fn retry_at(&self) -> Option<Instant> {
        self.log.as_ref().and_then(|l| l.health.retry_at())
    }

    /// True while a degraded log holds new heights back (see [`DaLog::holding`]).
    pub(super) fn holding(&self) -> bool {
        self.log.as_ref().is_some_and(DaLog::holding)
    }

    /// The DA log's storage issue at `now`, `None` while its writes succeed.
    pub(crate) fn storage_issue(&self, now: Instant) -> Option<StorageIssue> {
        self.log
            .as_ref()
            .and_then(|l| l.health.issue(Store::DaLog, now))
    }
}

/// The state commits among `commits` of the `kept` blobs (consecutive heights, ascending):
/// one per kept blob, from the first, each naming that blob's hash as its tip; stops at the
/// first kept blob without one.
fn state_of_kept(
    kept: &[(u64, Arc<[u8]>)],
    commits: Vec<Arc<StateCommit>>,
) -> Vec<Arc<StateCommit>> {
    let mut by_height: std::collections::BTreeMap<u64, Arc<StateCommit>> =
        commits.into_iter().map(|c| (c.header.height, c)).collect();
    let mut out = Vec::new();
    for (height, bytes) in kept {
        let Some(commit) = by_height.remove(height) else {
            break;
        };
        let hash = DaBlob::from_bytes(bytes).ok().and_then(|b| b.hash().ok());
        if hash != Some(commit.header.tip_hash.0) {
            break;
        }
        out.push(commit);
    }
    out
}
