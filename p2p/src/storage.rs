//! Degraded storage (issue 14 §2): what a node does when a write to one of its files fails
//! (disk full, read-only file system, I/O error).
//!
//! Each store that writes in the background (the DA log, peers.dat, the committee's
//! signing guard) keeps a [`Health`]: a plain state machine that takes `now` and never
//! touches the disk, so it is unit-tested without one.
//!
//! ```text
//!            fail(e)                       fail(e) (retry failed)
//!  Healthy ───────────▶ Degraded{error, retry_at = now + backoff} ◀──┐
//!     ▲                  │   backoff 1 s, 2 s, 4 s, … 60 s            │
//!     │   succeed()      │ retry_due(now)                              │
//!     └──────────────────┴──── the owner retries the write ───────────┘
//! ```
//!
//! [`Health::fail`] says [`Failed::Degraded`] only on the transition into the degraded
//! state, and [`Health::succeed`] returns the state it recovered from only on the way out,
//! so the owner logs the error once at error level and the recovery once at info level,
//! never per retry. A disk that is nearly full can *flap*: a write finds room, the next
//! one does not. A failure within [`RELAPSE_WINDOW`] of a recovery is a
//! [`Failed::Relapsed`] (logged at warn level) and keeps the backoff where it was, so a
//! flapping store retries (and logs) at most about once a minute; the backoff starts
//! again from [`RETRY_MIN`] only after a longer healthy period. The metrics `storage_degraded{store}` (0/1) and
//! `storage_write_errors_total{store}` and the `degraded_stores` field of the node status
//! show the state ([`StorageIssue`]).

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// First pause after a failed write, before the first retry.
pub const RETRY_MIN: Duration = Duration::from_secs(1);

/// Longest pause between two retries while writes keep failing.
pub const RETRY_MAX: Duration = Duration::from_secs(60);

/// A failure this soon after a recovery is a relapse: the backoff is not reset.
pub const RELAPSE_WINDOW: Duration = Duration::from_secs(60);

/// What a failed write did to the store's health ([`Health::fail`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failed {
    /// The store was healthy (for at least [`RELAPSE_WINDOW`]): it is degraded now. Log
    /// the error (once).
    Degraded,
    /// The store recovered less than [`RELAPSE_WINDOW`] ago and fails again (a flapping
    /// disk): degraded again, with the backoff continuing where it was.
    Relapsed,
    /// The store was degraded already (a retry failed).
    StillDegraded,
}
/// A store whose writes can fail; its name is the `store` label of the storage metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Store {
    /// The DA log (`da-log.redb`).
    DaLog,
    /// The address book (`peers.dat`).
    Peers,
    /// The committee files (key share, signing guard).
    Committee,
}

impl Store {
    /// Every store, in label order.
    pub const ALL: [Store; 3] = [Store::DaLog, Store::Peers, Store::Committee];

    /// The metric label and status name: `da_log`, `peers` or `committee`.
    pub fn as_str(self) -> &'static str {
        match self {
            Store::DaLog => "da_log",
            Store::Peers => "peers",
            Store::Committee => "committee",
        }
    }
}

/// Exponential backoff: [`RETRY_MIN`] doubling up to [`RETRY_MAX`], reset by
/// [`Backoff::reset`].
#[derive(Debug, Clone)]
pub struct Backoff {
    min: Duration,
    max: Duration,
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new(RETRY_MIN, RETRY_MAX)
    }
}

impl Backoff {
    /// A backoff from `min` doubling up to `max` (`max` is raised to `min` if lower).
    pub fn new(min: Duration, max: Duration) -> Backoff {
        Backoff {
            min,
            max: max.max(min),
            next: min,
        }
    }

    /// The next pause, and doubles the one after it (capped at the maximum).
    pub fn next_delay(&mut self) -> Duration {
        let d = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        d
    }

    /// Starts again from the minimum.
    pub fn reset(&mut self) {
        self.next = self.min;
    }
}

/// A degraded store: its writes fail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Degraded {
    /// The error of the first failed write.
    pub error: String,
    /// The error of the last failed write (the same as `error` until a retry fails
    /// differently).
    pub last_error: String,
    /// When the store became degraded.
    pub since: Instant,
    /// Failed writes since then (the first one included).
    pub failures: u64,
    /// When the owner should try again (`None`: the retry is under way).
    pub retry_at: Option<Instant>,
}

/// The write health of one store: healthy, or [`Degraded`] with a retry schedule.
#[derive(Debug, Clone, Default)]
pub struct Health {
    degraded: Option<Degraded>,
    backoff: Backoff,
    /// When the store last recovered.
    recovered_at: Option<Instant>,
}

impl Health {
    /// A healthy store with the default backoff ([`RETRY_MIN`] to [`RETRY_MAX`]).
    pub fn new() -> Health {
        Health::default()
    }

    /// A healthy store whose retries back off from `min` to `max`.
    pub fn with_backoff(min: Duration, max: Duration) -> Health {
        Health {
            degraded: None,
            backoff: Backoff::new(min, max),
            recovered_at: None,
        }
    }

    /// A write failed at `now` with `error`: the store is degraded and the next retry is
    /// scheduled after the backoff (see [`Failed`] for what to log).
    pub fn fail(&mut self, error: &str, now: Instant) -> Failed {
        if let Some(d) = &mut self.degraded {
            d.failures += 1;
            d.last_error = error.to_owned();
            d.retry_at = Some(now + self.backoff.next_delay());
            return Failed::StillDegraded;
        }
        let relapse = self
            .recovered_at
            .is_some_and(|t| now.saturating_duration_since(t) < RELAPSE_WINDOW);
        if !relapse {
            self.backoff.reset();
        }
        self.degraded = Some(Degraded {
            error: error.to_owned(),
            last_error: error.to_owned(),
            since: now,
            failures: 1,
            retry_at: Some(now + self.backoff.next_delay()),
        });
        if relapse {
            Failed::Relapsed
        } else {
            Failed::Degraded
        }
    }

    /// A write succeeded at `now`: the store is healthy. Returns the degraded state it left
    /// (log the recovery once), `None` if it was healthy. The backoff starts again from
    /// the minimum only if the store stays healthy for [`RELAPSE_WINDOW`].
    pub fn succeed(&mut self, now: Instant) -> Option<Degraded> {
        let was = self.degraded.take();
        if was.is_some() {
            self.recovered_at = Some(now);
        }
        was
    }

    /// True when degraded and the retry is due at `now` (and not started yet).
    pub fn retry_due(&self, now: Instant) -> bool {
        self.retry_at().is_some_and(|t| now >= t)
    }

    /// Marks the retry as under way (no further [`Health::retry_due`] until the next
    /// [`Health::fail`]).
    pub fn retry_started(&mut self) {
        if let Some(d) = &mut self.degraded {
            d.retry_at = None;
        }
    }

    /// When the next retry is due (`None` when healthy or while a retry is under way).
    pub fn retry_at(&self) -> Option<Instant> {
        self.degraded.as_ref().and_then(|d| d.retry_at)
    }

    /// True while writes fail.
    pub fn is_degraded(&self) -> bool {
        self.degraded.is_some()
    }

    /// The degraded state, if any.
    pub fn degraded(&self) -> Option<&Degraded> {
        self.degraded.as_ref()
    }

    /// The status entry of `store` at `now`, `None` when healthy.
    pub fn issue(&self, store: Store, now: Instant) -> Option<StorageIssue> {
        self.degraded.as_ref().map(|d| StorageIssue {
            store: store.as_str().to_owned(),
            error: d.last_error.clone(),
            degraded_secs: now.saturating_duration_since(d.since).as_secs(),
            failures: d.failures,
            next_retry_ms: d
                .retry_at
                .map(|t| t.saturating_duration_since(now).as_millis() as u64),
        })
    }
}

/// One degraded store, as the node status and `GET /v1/da/state` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageIssue {
    /// `da_log`, `peers` or `committee` ([`Store::as_str`]).
    pub store: String,
    /// The error of the last failed write.
    pub error: String,
    /// Seconds since the store became degraded.
    pub degraded_secs: u64,
    /// Failed writes since then.
    pub failures: u64,
    /// Milliseconds until the next retry; `None` while one is under way (or unknown).
    #[serde(default)]
    pub next_retry_ms: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_up_to_its_maximum_and_resets() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(5));
        let got: Vec<u64> = (0..5).map(|_| b.next_delay().as_secs()).collect();
        assert_eq!(got, vec![1, 2, 4, 5, 5]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_secs(1));
        let mut b = Backoff::default();
        let last = (0..10).map(|_| b.next_delay()).last().unwrap();
        assert_eq!(last, RETRY_MAX);
    }

    #[test]
    fn the_error_is_reported_once_per_degraded_run_and_the_recovery_once() {
        let t0 = Instant::now();
        let mut h = Health::new();
        assert!(h.succeed(t0).is_none(), "healthy: no recovery to report");
        assert_eq!(h.fail("disk full", t0), Failed::Degraded);
        let t1 = t0 + Duration::from_secs(1);
        assert_eq!(h.fail("disk full", t1), Failed::StillDegraded);
        let t3 = t0 + Duration::from_secs(3);
        assert_eq!(h.fail("No space left", t3), Failed::StillDegraded);
        let d = h.degraded().unwrap().clone();
        assert_eq!((d.failures, d.error.as_str()), (3, "disk full"));
        assert_eq!(d.last_error, "No space left");
        let issue = h.issue(Store::DaLog, t0 + Duration::from_secs(4)).unwrap();
        assert_eq!(issue.store, "da_log");
        assert_eq!(issue.error, "No space left");
        assert_eq!((issue.degraded_secs, issue.failures), (4, 3));
        let left = h.succeed(t3).unwrap();
        assert_eq!(left.failures, 3);
        assert!(!h.is_degraded());
        assert!(h.issue(Store::DaLog, t3).is_none());
        assert!(h.succeed(t3).is_none());
        // A new run of failures long after is reported again, with the backoff from the
        // start.
        let later = t3 + RELAPSE_WINDOW;
        assert_eq!(h.fail("disk full", later), Failed::Degraded);
        assert_eq!(h.retry_at(), Some(later + RETRY_MIN));
    }

    #[test]
    fn a_flapping_store_relapses_without_resetting_its_backoff() {
        let t0 = Instant::now();
        let mut h = Health::new();
        assert_eq!(h.fail("full", t0), Failed::Degraded);
        assert_eq!(h.retry_at(), Some(t0 + Duration::from_secs(1)));
        h.fail("full", t0);
        assert_eq!(h.retry_at(), Some(t0 + Duration::from_secs(2)));
        // A retry finds room; the next write does not.
        let t1 = t0 + Duration::from_secs(3);
        assert!(h.succeed(t1).is_some());
        assert_eq!(h.fail("full", t1), Failed::Relapsed);
        assert_eq!(h.retry_at(), Some(t1 + Duration::from_secs(4)));
        assert_eq!(h.degraded().map(|d| d.failures), Some(1));
        let t2 = t1 + Duration::from_secs(4);
        assert!(h.succeed(t2).is_some());
        assert_eq!(h.fail("full", t2), Failed::Relapsed);
        assert_eq!(h.retry_at(), Some(t2 + Duration::from_secs(8)));
    }

    #[test]
    fn retries_are_due_after_a_doubling_backoff() {
        let t0 = Instant::now();
        let mut h = Health::new();
        assert!(!h.retry_due(t0 + Duration::from_secs(3600)), "healthy");
        h.fail("e", t0);
        assert!(!h.retry_due(t0 + Duration::from_millis(999)));
        assert!(h.retry_due(t0 + Duration::from_secs(1)));
        h.retry_started();
        assert!(!h.retry_due(t0 + Duration::from_secs(3600)), "under way");
        assert_eq!(h.retry_at(), None);
        assert!(h.is_degraded());
        let t1 = t0 + Duration::from_secs(1);
        h.fail("e", t1);
        assert_eq!(h.retry_at(), Some(t1 + Duration::from_secs(2)));
        h.fail("e", t1);
        assert_eq!(h.retry_at(), Some(t1 + Duration::from_secs(4)));
        for _ in 0..10 {
            h.fail("e", t1);
        }
        assert_eq!(h.retry_at(), Some(t1 + RETRY_MAX));
        h.succeed(t1);
        let t2 = t1 + RELAPSE_WINDOW;
        h.fail("e", t2);
        assert_eq!(h.retry_at(), Some(t2 + RETRY_MIN));
    }
}
