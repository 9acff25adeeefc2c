//! Network partition detection and recovery (28.1.C §4) as a pure state machine.
//!
//! The node is *partitioned* while it has fewer than `min_peers` handshake-verified
//! connected peers. Recovery is a *sweep*: resolve **every** DNS seed (not one), dial
//! **every** cached peer of peers.dat and **every** static peer. While the node stays below
//! `min_peers` the sweeps repeat with an exponential backoff (`backoff_initial` doubling up
//! to `backoff_max`) and each failed sweep is to be logged at error level (28.1.C §4 step 4,
//! "log critical alert, terus retry dengan exponential backoff").
//!
//! Like [`crate::FallbackChain`] it owns no clock and no sockets (the style of libp2p-kad's
//! `QueryPool::poll(now)`):
//!
//! 1. call [`PartitionRecovery::poll`] with the current time and the number of connected
//!    peers — on a timer at [`PartitionRecovery::next_wakeup`] and whenever the peer count
//!    drops;
//! 2. on [`RecoveryEvent::Sweep`] run the sweep, and once all of its resolutions and dials
//!    have settled or timed out call [`PartitionRecovery::on_sweep_done`];
//! 3. on [`RecoveryEvent::Recovered`] log that the partition is over.
//!
//! A node that has just started has no peers yet and reaches them through the normal
//! fallback chain; a grace period given to [`PartitionRecovery::new`] keeps that boot from
//! being mistaken for a partition.

use std::time::{Duration, Instant};

use crate::fallback::{later, MIN_INTERVAL};

/// Thresholds and timing of partition recovery.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveryConfig {
    /// Below this many connected peers the node is partitioned (`bootstrap.min_peers`).
    /// 0 disables detection. Default 3.
    pub min_peers: usize,
    /// Delay before the second sweep of a partition, doubled after every further failed
    /// sweep; also the shortest interval between the start of two sweeps. Default 5 s.
    pub backoff_initial: Duration,
    /// Cap of the doubling delay (`bootstrap.recovery_backoff_max_secs`). Default 300 s.
    pub backoff_max: Duration,
}

impl Default for RecoveryConfig {
    fn default() -> Self {
        Self {
            min_peers: 3,
            backoff_initial: Duration::from_secs(5),
            backoff_max: Duration::from_secs(300),
        }
    }
}

impl RecoveryConfig {
    /// The recovery configuration of a loaded `[bootstrap]` section: its `min_peers` and
    /// `recovery_backoff_max`, with the default `backoff_initial` (5 s; lowered to
    /// `recovery_backoff_max` when that is shorter).
    pub fn from_bootstrap(cfg: &crate::config::BootstrapConfig) -> Self {
        let d = Self::default();
        Self {
            min_peers: cfg.min_peers,
            backoff_initial: d.backoff_initial.min(cfg.recovery_backoff_max),
            backoff_max: cfg.recovery_backoff_max,
        }
    }
}

/// What the caller should do or log, returned by [`PartitionRecovery::poll`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RecoveryEvent {
    /// Run a recovery sweep: resolve every DNS seed (`bootstrap.dns_seeds`) and dial the
    /// addresses returned, dial every static peer and every cached peer of peers.dat that
    /// is not connected. Then report with [`PartitionRecovery::on_sweep_done`].
    Sweep {
        /// 1 for the first sweep of this partition (log "partition detected"), 2, 3, … for
        /// the retries.
        attempt: u32,
    },
    /// The node is back at `min_peers` or more after at least one sweep: the partition is
    /// over and the backoff has been reset.
    Recovered {
        /// Sweeps run during the partition.
        sweeps: u32,
        /// When the partition was detected (for "partitioned for N s" in the log).
        since: Instant,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// At or above `min_peers` (or not looked at yet).
    Healthy,
    /// Below `min_peers`; the next sweep is due at `next_sweep`.
    Partitioned { since: Instant, next_sweep: Instant },
    /// A sweep was handed out; waiting for [`PartitionRecovery::on_sweep_done`].
    Sweeping { since: Instant },
}

/// Partition detection and recovery (28.1.C §4). See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct PartitionRecovery {
    cfg: RecoveryConfig,
    grace_until: Instant,
    /// A poll has seen the end of the grace period.
    watching: bool,
    phase: Phase,
    /// Wait after the next failed sweep.
    backoff: Duration,
    /// Sweeps of the current partition (handed out).
    attempts: u32,
    /// Sweeps of the current partition after which the node was still below `min_peers`.
    failed: u32,
    /// Sweeps handed out since construction.
    total: u64,
    /// When the last sweep was handed out.
    last_sweep: Option<Instant>,
    /// Peers this node could reach: those it verified at least once (not banned), if told.
    reachable: Option<usize>,
}

impl PartitionRecovery {
    /// A detector that looks at the peer count from `now + grace` on (pass e.g. the peer
    /// connect timeout, or the time the fallback chain needs to reach its first peers).
    /// Zero backoffs are raised to [`MIN_INTERVAL`]; a `backoff_max` below
    /// `backoff_initial` is raised to it.
    pub fn new(mut cfg: RecoveryConfig, grace: Duration, now: Instant) -> Self {
        cfg.backoff_initial = cfg.backoff_initial.max(MIN_INTERVAL);
        cfg.backoff_max = cfg.backoff_max.max(cfg.backoff_initial);
        Self {
            cfg,
            grace_until: later(now, grace),
            watching: false,
            phase: Phase::Healthy,
            backoff: cfg.backoff_initial,
            attempts: 0,
            failed: 0,
            total: 0,
            last_sweep: None,
            reachable: None,
        }
    }

    /// Tells how many peers this node could reach: the distinct peers it verified at least
    /// once and has not banned (issue 15 §7). Below `min_peers` the sweeps run (they are how
    /// the node finds more peers), but a network smaller than `min_peers` raises no alarm:
    /// see [`PartitionRecovery::alarm`].
    pub fn set_reachable(&mut self, peers: usize) {
        self.reachable = Some(peers);
    }

    /// True when the shortage is a partition worth an alarm: the sweeps run (below
    /// `min_peers`) and `connected` is also below [`PartitionRecovery::threshold`], i.e. the
    /// node lost peers it could reach. A node connected to every peer it knows, in a
    /// network smaller than `min_peers`, is only looking for more.
    pub fn alarm(&self, connected: usize) -> bool {
        self.is_partitioned() && connected < self.threshold()
    }

    /// The connected peers below which a shortage is an alarm: `min_peers`, or fewer when
    /// the node could reach fewer ([`PartitionRecovery::set_reachable`]), but at least 1.
    pub fn threshold(&self) -> usize {
        match self.reachable {
            Some(r) => self.cfg.min_peers.min(r.max(1)),
            None => self.cfg.min_peers,
        }
    }

    /// The configuration in use (after the adjustments of [`PartitionRecovery::new`]).
    pub fn config(&self) -> &RecoveryConfig {
        &self.cfg
    }

    /// Looks at the number of handshake-verified connected peers at `now`.
    ///
    /// - Before the grace period ends, and while a sweep is outstanding: `None`.
    /// - Healthy and `connected < min_peers`: the partition is detected and the first
    ///   [`RecoveryEvent::Sweep`] is returned at once — unless the previous sweep (of an
    ///   earlier partition) started less than `backoff_initial` ago, in which case it is due
    ///   at that point (a flapping peer count cannot make the node hammer the DNS seeds).
    /// - Partitioned and `connected < min_peers`: the next sweep once it is due.
    /// - Partitioned and `connected >= min_peers`: the state resets (backoff back to
    ///   `backoff_initial`, [`PartitionRecovery::consecutive_failed_sweeps`] to 0) and
    ///   [`RecoveryEvent::Recovered`] is returned if at least one sweep ran (a dip that
    ///   healed before any sweep resets silently).
    pub fn poll(&mut self, now: Instant, connected: usize) -> Option<RecoveryEvent> {
        let below = connected < self.cfg.min_peers;
        match self.phase {
            Phase::Sweeping { .. } => None,
            Phase::Healthy => {
                if now < self.grace_until {
                    return None;
                }
                self.watching = true;
                if !below {
                    return None;
                }
                let next_sweep = match self.last_sweep {
                    Some(last) => later(last, self.cfg.backoff_initial).max(now),
                    None => now,
                };
                self.phase = Phase::Partitioned {
                    since: now,
                    next_sweep,
                };
                self.poll(now, connected)
            }
            Phase::Partitioned { since, next_sweep } => {
                if !below {
                    let sweeps = self.attempts;
                    self.reset();
                    return (sweeps > 0).then_some(RecoveryEvent::Recovered { sweeps, since });
                }
                if now < next_sweep {
                    return None;
                }
                self.phase = Phase::Sweeping { since };
                self.attempts = self.attempts.saturating_add(1);
                self.total += 1;
                self.last_sweep = Some(now);
                Some(RecoveryEvent::Sweep {
                    attempt: self.attempts,
                })
            }
        }
    }

    fn reset(&mut self) {
        self.phase = Phase::Healthy;
        self.backoff = self.cfg.backoff_initial;
        self.attempts = 0;
        self.failed = 0;
    }

    /// Reports that the sweep last returned by [`PartitionRecovery::poll`] has settled, and
    /// the number of connected peers now. Ignored when no sweep is outstanding.
    ///
    /// With `connected < min_peers` the sweep failed:
    /// [`PartitionRecovery::consecutive_failed_sweeps`] grows by one (log it at error
    /// level) and the next sweep is due after the current backoff, which then doubles up to
    /// `backoff_max`. Otherwise the next [`PartitionRecovery::poll`] that still sees
    /// `min_peers` reports [`RecoveryEvent::Recovered`].
    pub fn on_sweep_done(&mut self, now: Instant, connected: usize) {
        let Phase::Sweeping { since } = self.phase else {
            tracing::debug!("partition sweep reported with no sweep outstanding; ignored");
            return;
        };
        if connected < self.cfg.min_peers {
            self.failed = self.failed.saturating_add(1);
        }
        self.phase = Phase::Partitioned {
            since,
            next_sweep: later(now, self.backoff),
        };
        self.backoff = self.backoff.saturating_mul(2).min(self.cfg.backoff_max);
    }

    /// True from the detection of a partition (a poll below `min_peers` after the grace
    /// period) until the poll that sees `min_peers` again.
    pub fn is_partitioned(&self) -> bool {
        self.phase != Phase::Healthy
    }

    /// When the current partition was detected; `None` while healthy.
    pub fn partitioned_since(&self) -> Option<Instant> {
        match self.phase {
            Phase::Healthy => None,
            Phase::Partitioned { since, .. } | Phase::Sweeping { since } => Some(since),
        }
    }

    /// Sweeps handed out since construction, across partitions. Exported as the counter
    /// `bootstrap_partition_recovery_total` (28.1.C §8).
    pub fn sweeps(&self) -> u64 {
        self.total
    }

    /// Sweeps of the current partition after which the node was still below `min_peers`;
    /// 0 while healthy.
    pub fn consecutive_failed_sweeps(&self) -> u32 {
        self.failed
    }

    /// When [`PartitionRecovery::poll`] may next return an event on its own: the end of the
    /// grace period, or the time the next sweep is due (possibly past). `None` while a sweep
    /// is outstanding, and while healthy after the grace period: then only a drop of the
    /// peer count (which the caller polls on) can start a sweep.
    pub fn next_wakeup(&self) -> Option<Instant> {
        match self.phase {
            Phase::Healthy if !self.watching => Some(self.grace_until),
            Phase::Healthy | Phase::Sweeping { .. } => None,
            Phase::Partitioned { next_sweep, .. } => Some(next_sweep),
        }
    }
}

#[cfg(test)]
mod tests;
