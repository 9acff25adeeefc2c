//! Periodic peer rotation and refresh (28.1.B §6) as a pure schedule.
//!
//! A node that has been running for a long time keeps discovering new peers:
//!
//! - every `dns_refresh` (30 min): resolve one random DNS seed ([`Rotation::ResolveRandomSeed`]);
//! - every `pex` (15 min): send a PEX request to one random connected peer
//!   ([`Rotation::PexRandomPeer`]);
//! - every `feeler` (1 h): try [`FEELERS_PER_ROUND`] random peers of peers.dat that are not
//!   connected ([`Rotation::Feelers`]).
//!
//! The schedule owns no clock (the style of libp2p-kad's `QueryPool::poll(now)`): call
//! [`RotationSchedule::poll`] at [`RotationSchedule::next_wakeup`] and run what it returns.
//! Each task first fires one full period after construction (bootstrap itself covers the
//! start), then once per period. After a long gap between polls (a suspended machine, a
//! stalled event loop) each overdue task fires once, not once per missed period, and its
//! next occurrence is one period after that poll.

use std::time::{Duration, Instant};

use crate::fallback::{later, MIN_INTERVAL};

/// Cached peers tried per [`Rotation::Feelers`] round (28.1.B §6: "2 peer random dari
/// peers.dat yang belum terkoneksi").
pub const FEELERS_PER_ROUND: usize = 2;

/// Periods of the rotation tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RotationConfig {
    /// Period of [`Rotation::ResolveRandomSeed`] (`bootstrap.dns_refresh_interval_secs`).
    /// Default 30 min.
    pub dns_refresh: Duration,
    /// Period of [`Rotation::PexRandomPeer`] (`bootstrap.pex_interval_secs`). Default 15 min.
    pub pex: Duration,
    /// Period of [`Rotation::Feelers`] (`bootstrap.feeler_interval_secs`). Default 1 h.
    pub feeler: Duration,
}

impl Default for RotationConfig {
    fn default() -> Self {
        Self {
            dns_refresh: Duration::from_secs(30 * 60),
            pex: Duration::from_secs(15 * 60),
            feeler: Duration::from_secs(60 * 60),
        }
    }
}

impl RotationConfig {
    /// The periods of a loaded `[bootstrap]` section: `dns_refresh_interval`,
    /// `pex_interval` and `feeler_interval`.
    pub fn from_bootstrap(cfg: &crate::config::BootstrapConfig) -> Self {
        Self {
            dns_refresh: cfg.dns_refresh_interval,
            pex: cfg.pex_interval,
            feeler: cfg.feeler_interval,
        }
    }
}

/// A rotation task that is due. The caller does the I/O and skips a task that has nothing
/// to work on (no DNS seed, no connected peer, no unconnected cached peer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Rotation {
    /// Resolve one DNS seed chosen at random and add the addresses to peers.dat (dialling
    /// them if the node wants more peers).
    ResolveRandomSeed,
    /// Send a PEX request to one connected peer chosen at random.
    PexRandomPeer,
    /// Dial [`FEELERS_PER_ROUND`] random peers of peers.dat that are not connected, to check
    /// they are still reachable (feeler connections).
    Feelers,
}

impl Rotation {
    /// Every task, in the order [`RotationSchedule::poll`] returns them.
    pub const ALL: [Rotation; 3] = [
        Rotation::ResolveRandomSeed,
        Rotation::PexRandomPeer,
        Rotation::Feelers,
    ];

    fn index(self) -> usize {
        match self {
            Rotation::ResolveRandomSeed => 0,
            Rotation::PexRandomPeer => 1,
            Rotation::Feelers => 2,
        }
    }
}

/// The rotation schedule (28.1.B §6). See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct RotationSchedule {
    cfg: RotationConfig,
    /// When each task of [`Rotation::ALL`] is next due.
    due: [Instant; 3],
}

impl RotationSchedule {
    /// A schedule whose tasks are each first due one full period after `now`. Zero periods
    /// are raised to [`MIN_INTERVAL`].
    pub fn new(mut cfg: RotationConfig, now: Instant) -> Self {
        cfg.dns_refresh = cfg.dns_refresh.max(MIN_INTERVAL);
        cfg.pex = cfg.pex.max(MIN_INTERVAL);
        cfg.feeler = cfg.feeler.max(MIN_INTERVAL);
        let mut due = [now; 3];
        for task in Rotation::ALL {
            due[task.index()] = later(now, period(&cfg, task));
        }
        Self { cfg, due }
    }

    /// The configuration in use (after the adjustments of [`RotationSchedule::new`]).
    pub fn config(&self) -> &RotationConfig {
        &self.cfg
    }

    /// The tasks due at `now`, each at most once, in the order of [`Rotation::ALL`]; empty
    /// when none is due. Each returned task is rescheduled one period after its previous due
    /// time (keeping the cadence when polled a little late), or one period after `now` when
    /// that is already past (after a long gap: no burst of missed occurrences).
    pub fn poll(&mut self, now: Instant) -> Vec<Rotation> {
        let mut fired = Vec::new();
        for task in Rotation::ALL {
            let due = &mut self.due[task.index()];
            if now < *due {
                continue;
            }
            let step = period(&self.cfg, task);
            let next = later(*due, step);
            *due = if next > now { next } else { later(now, step) };
            fired.push(task);
        }
        fired
    }

    /// When the next task is due (the earliest of the three).
    pub fn next_wakeup(&self) -> Instant {
        let [a, b, c] = self.due;
        a.min(b).min(c)
    }

    /// When `task` is next due.
    pub fn next_due(&self, task: Rotation) -> Instant {
        self.due[task.index()]
    }
}

fn period(cfg: &RotationConfig, task: Rotation) -> Duration {
    match task {
        Rotation::ResolveRandomSeed => cfg.dns_refresh,
        Rotation::PexRandomPeer => cfg.pex,
        Rotation::Feelers => cfg.feeler,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BootstrapConfig;
    use Rotation::{Feelers, PexRandomPeer, ResolveRandomSeed};

    const MIN: Duration = Duration::from_secs(60);

    fn mins(m: u32) -> Duration {
        MIN * m
    }

    #[test]
    fn nothing_at_start_then_each_once_per_period() {
        let t0 = Instant::now();
        let mut s = RotationSchedule::new(RotationConfig::default(), t0);
        assert!(s.poll(t0).is_empty(), "bootstrap covers the start");
        assert_eq!(s.next_wakeup(), t0 + mins(15));
        assert_eq!(s.next_due(ResolveRandomSeed), t0 + mins(30));
        assert_eq!(s.next_due(Feelers), t0 + mins(60));

        // Step through two hours minute by minute and record what fires when.
        let mut fired = Vec::new();
        for m in 1..=120 {
            for task in s.poll(t0 + mins(m)) {
                fired.push((m, task));
            }
        }
        assert_eq!(
            fired,
            [
                (15, PexRandomPeer),
                (30, ResolveRandomSeed),
                (30, PexRandomPeer),
                (45, PexRandomPeer),
                (60, ResolveRandomSeed),
                (60, PexRandomPeer),
                (60, Feelers),
                (75, PexRandomPeer),
                (90, ResolveRandomSeed),
                (90, PexRandomPeer),
                (105, PexRandomPeer),
                (120, ResolveRandomSeed),
                (120, PexRandomPeer),
                (120, Feelers),
            ]
        );
        assert_eq!(s.next_wakeup(), t0 + mins(135));
    }

    #[test]
    fn polling_twice_at_the_same_instant_fires_once() {
        let t0 = Instant::now();
        let mut s = RotationSchedule::new(RotationConfig::default(), t0);
        let at = s.next_wakeup();
        assert_eq!(s.poll(at), [PexRandomPeer]);
        assert!(s.poll(at).is_empty());
        assert!(s.poll(at + Duration::from_secs(1)).is_empty());
    }

    #[test]
    fn late_poll_keeps_the_cadence() {
        let t0 = Instant::now();
        let mut s = RotationSchedule::new(RotationConfig::default(), t0);
        // Polled 40 s late: next PEX still at 30 min, not 30 min 40 s.
        assert_eq!(
            s.poll(t0 + mins(15) + Duration::from_secs(40)),
            [PexRandomPeer]
        );
        assert_eq!(s.next_due(PexRandomPeer), t0 + mins(30));
    }

    #[test]
    fn long_jump_fires_each_task_once() {
        let t0 = Instant::now();
        let mut s = RotationSchedule::new(RotationConfig::default(), t0);
        // A day without polls (machine suspended): 96 PEX periods missed.
        let back = t0 + mins(24 * 60) + Duration::from_secs(7);
        assert_eq!(s.poll(back), [ResolveRandomSeed, PexRandomPeer, Feelers]);
        assert!(s.poll(back).is_empty(), "no backlog");
        // The next occurrences are one period after the poll.
        assert_eq!(s.next_due(PexRandomPeer), back + mins(15));
        assert_eq!(s.next_due(ResolveRandomSeed), back + mins(30));
        assert_eq!(s.next_due(Feelers), back + mins(60));
        assert!(s
            .poll(back + mins(15) - Duration::from_millis(1))
            .is_empty());
        assert_eq!(s.poll(back + mins(15)), [PexRandomPeer]);
    }

    #[test]
    fn zero_periods_are_clamped_and_never_spin() {
        let t0 = Instant::now();
        let zero = RotationConfig {
            dns_refresh: Duration::ZERO,
            pex: Duration::ZERO,
            feeler: Duration::ZERO,
        };
        let mut s = RotationSchedule::new(zero, t0);
        assert_eq!(s.config().pex, MIN_INTERVAL);
        assert_eq!(s.next_wakeup(), t0 + MIN_INTERVAL);
        let at = t0 + MIN_INTERVAL;
        assert_eq!(s.poll(at).len(), 3);
        assert!(s.poll(at).is_empty());
        assert!(s.next_wakeup() > at);

        // A huge period saturates instead of overflowing.
        let huge = RotationConfig {
            feeler: Duration::MAX,
            ..RotationConfig::default()
        };
        let s = RotationSchedule::new(huge, t0);
        assert!(s.next_due(Feelers) > t0 + mins(60));
    }

    #[test]
    fn from_bootstrap_config() {
        let d = RotationConfig::from_bootstrap(&BootstrapConfig::default());
        assert_eq!(d, RotationConfig::default());
        let b = BootstrapConfig {
            dns_refresh_interval: Duration::from_secs(1),
            pex_interval: Duration::from_secs(2),
            feeler_interval: Duration::from_secs(3),
            ..BootstrapConfig::default()
        };
        let c = RotationConfig::from_bootstrap(&b);
        assert_eq!(
            (c.dns_refresh, c.pex, c.feeler),
            (
                Duration::from_secs(1),
                Duration::from_secs(2),
                Duration::from_secs(3)
            )
        );
    }
}
