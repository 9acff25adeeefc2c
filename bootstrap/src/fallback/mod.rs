//! The bootstrap fallback chain of 28.1.A §4 as a pure state machine (no I/O, no clock).
//!
//! The caller owns the clock and the sockets, in the style of libp2p-kad's
//! `QueryPool::poll(now)`:
//!
//! 1. call [`FallbackChain::poll`] with the current time, the number of handshake-verified
//!    connected peers and the number the node wants; run the returned [`Action`];
//! 2. once every dial of that action has settled or timed out, report how many *new*
//!    handshake-verified peers it produced with [`FallbackChain::on_outcome`];
//! 3. sleep until [`FallbackChain::next_wakeup`] (or until the peer count changes) and repeat.
//!
//! A *run* walks the sources in order — peers.dat ([`Action::DialCached`]), then each static
//! peer ([`Action::DialStatic`]), then each DNS seed ([`Action::ResolveSeed`]) — and stops at
//! the first stage that produces a peer. DNS seeds are only queried while the node has no
//! peer at all (as Bitcoin Core does). When every source fails and the node has no peer it is
//! *isolated* and retries with exponential backoff; otherwise the next run is due after
//! `retry_interval` (28.1.A §4 step 4: "retry periodik setiap 30 detik").

use std::time::{Duration, Instant};

/// Shortest interval the chain schedules: zero durations in [`FallbackConfig`] are raised to
/// this so a misconfigured caller cannot spin.
pub const MIN_INTERVAL: Duration = Duration::from_millis(1);

/// Sizes of the source lists and the retry timing.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FallbackConfig {
    /// Number of static peers (`bootstrap.static_peers`); indices of [`Action::DialStatic`]
    /// are below it. Changed at run time with [`FallbackChain::set_sources`].
    pub static_peers: usize,
    /// Number of DNS seeds (`bootstrap.dns_seeds`); indices of [`Action::ResolveSeed`] are
    /// below it. Changed at run time with [`FallbackChain::set_sources`].
    pub dns_seeds: usize,
    /// Delay before the next run after a run ended while the node was not isolated (a stage
    /// produced a peer, or the node already had peers). Default 30 s.
    pub retry_interval: Duration,
    /// First backoff after a run in which every source failed with 0 peers. Default 1 s.
    pub backoff_initial: Duration,
    /// Cap of the doubling backoff. Default 30 s.
    pub backoff_max: Duration,
}

impl Default for FallbackConfig {
    fn default() -> Self {
        Self {
            static_peers: 0,
            dns_seeds: 0,
            retry_interval: Duration::from_secs(30),
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(30),
        }
    }
}

impl FallbackConfig {
    /// The chain configuration for a loaded `[bootstrap]` section: its list sizes and
    /// `retry_interval`, with the default backoff (1 s doubling up to 30 s).
    pub fn from_bootstrap(cfg: &crate::config::BootstrapConfig) -> Self {
        Self {
            static_peers: cfg.static_peers.len(),
            dns_seeds: cfg.dns_seeds.len(),
            retry_interval: cfg.retry_interval,
            ..Self::default()
        }
    }
}

/// What the caller should do next.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    /// Dial peers from the peers.dat cache (an empty cache produces 0 peers).
    DialCached,
    /// Dial static peer `i` (index into `bootstrap.static_peers`).
    DialStatic(usize),
    /// Resolve DNS seed `i` (index into `bootstrap.dns_seeds`) and dial the addresses it
    /// returns at `default_port`.
    ResolveSeed(usize),
}

/// Where the chain is, for status output and logs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// No run in progress; the next one is due at [`FallbackChain::next_wakeup`].
    Idle,
    /// Dialling peers.dat entries.
    PeersDat,
    /// Dialling static peer `i`.
    Static(usize),
    /// Resolving DNS seed `i` and dialling its addresses.
    DnsSeed(usize),
    /// Isolated (every source failed with 0 peers): the next run starts at `until`.
    Backoff {
        /// When the next run is due.
        until: Instant,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Step {
    Cached,
    Static(usize),
    Seed(usize),
}

impl Step {
    fn action(self) -> Action {
        match self {
            Step::Cached => Action::DialCached,
            Step::Static(i) => Action::DialStatic(i),
            Step::Seed(i) => Action::ResolveSeed(i),
        }
    }

    fn stage(self) -> Stage {
        match self {
            Step::Cached => Stage::PeersDat,
            Step::Static(i) => Stage::Static(i),
            Step::Seed(i) => Stage::DnsSeed(i),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Between runs; the next run is due at `next_run`.
    Idle,
    /// In a run: `Step` is due since the `Instant`.
    Ready(Step, Instant),
    /// In a run: the action of `Step` was handed out; waiting for [`FallbackChain::on_outcome`].
    Awaiting(Step),
}

/// The bootstrap fallback chain (28.1.A §4). See the [module documentation](self).
#[derive(Clone, Debug)]
pub struct FallbackChain {
    cfg: FallbackConfig,
    phase: Phase,
    next_run: Instant,
    backoff: Duration,
    isolated: bool,
    fallbacks: u64,
    /// Verified peers in either direction, as last reported by [`FallbackChain::note_peers`].
    any_peers: usize,
}

/// `now + d`, saturating at a far-future instant instead of panicking on overflow.
pub(crate) fn later(now: Instant, d: Duration) -> Instant {
    const YEAR: Duration = Duration::from_secs(365 * 24 * 3600);
    now.checked_add(d)
        .or_else(|| now.checked_add(YEAR))
        .unwrap_or(now)
}

impl FallbackChain {
    /// A chain whose first run is due at `now`. Zero durations in `cfg` are raised to
    /// [`MIN_INTERVAL`]; a `backoff_max` below `backoff_initial` is raised to it.
    pub fn new(mut cfg: FallbackConfig, now: Instant) -> Self {
        cfg.retry_interval = cfg.retry_interval.max(MIN_INTERVAL);
        cfg.backoff_initial = cfg.backoff_initial.max(MIN_INTERVAL);
        cfg.backoff_max = cfg.backoff_max.max(cfg.backoff_initial);
        Self {
            cfg,
            phase: Phase::Idle,
            next_run: now,
            backoff: cfg.backoff_initial,
            isolated: false,
            fallbacks: 0,
            any_peers: 0,
        }
    }

    /// The configuration in use (after the adjustments of [`FallbackChain::new`]).
    pub fn config(&self) -> &FallbackConfig {
        &self.cfg
    }

    /// The next action due at `now`, given the current number of handshake-verified
    /// connected peers and how many the node wants (`max_outbound_connections`).
    ///
    /// Returns `None` while an outcome is awaited, while nothing is due, and when a due run
    /// is not needed because `connected >= wanted` (the check is repeated after
    /// `retry_interval`). A run in progress ends early, without an action, when
    /// `connected >= wanted`, or when its next stage is a DNS seed and `connected > 0`.
    pub fn poll(&mut self, now: Instant, connected: usize, wanted: usize) -> Option<Action> {
        if connected > 0 {
            self.isolated = false;
        }
        match self.phase {
            Phase::Awaiting(_) => None,
            Phase::Idle => {
                if now < self.next_run {
                    return None;
                }
                if connected >= wanted {
                    self.satisfied(now);
                    return None;
                }
                self.issue(Step::Cached)
            }
            Phase::Ready(step, _) => {
                let Some(step) = self.first_valid(step) else {
                    // The sources shrank under a run; nothing is left to try in it.
                    self.end_run(now, connected);
                    return None;
                };
                let dns_needless =
                    matches!(step, Step::Seed(_)) && connected.max(self.any_peers) > 0;
                if connected >= wanted {
                    self.satisfied(now);
                    return None;
                }
                if dns_needless {
                    self.end_run(now, connected);
                    return None;
                }
                self.issue(step)
            }
        }
    }

    fn issue(&mut self, step: Step) -> Option<Action> {
        self.phase = Phase::Awaiting(step);
        Some(step.action())
    }

    /// Reports the outcome of the action last returned by [`FallbackChain::poll`]: how many
    /// *new* handshake-verified peers it produced (0 = it failed, resolved nothing, or had
    /// nothing to dial), and the number of connected peers now. Call it once all dials of the
    /// action have settled or timed out. Ignored when no action is outstanding.
    ///
    /// `produced > 0` ends the run successfully (backoff reset, not isolated, next run after
    /// `retry_interval`). `produced == 0` moves to the next source, counting one fallback,
    /// unless that source is a DNS seed while `connected > 0` (the run then ends, next run
    /// after `retry_interval`) or there is no next source (the run ends; with `connected == 0`
    /// the node is isolated and the next run is due after the current backoff, which then
    /// doubles up to `backoff_max`).
    pub fn on_outcome(&mut self, now: Instant, produced: usize, connected: usize) {
        let Phase::Awaiting(step) = self.phase else {
            tracing::debug!("bootstrap outcome reported with no action outstanding; ignored");
            return;
        };
        if produced > 0 {
            self.isolated = false;
            self.backoff = self.cfg.backoff_initial;
            self.next_run = later(now, self.cfg.retry_interval);
            self.phase = Phase::Idle;
            return;
        }
        match self.successor(step) {
            Some(Step::Seed(_)) if connected.max(self.any_peers) > 0 => {
                self.end_run(now, connected)
            }
            Some(next) => {
                self.fallbacks += 1;
                self.phase = Phase::Ready(next, now);
            }
            None => self.end_run(now, connected),
        }
    }

    /// The node has the peers it wants: no run; look again after `retry_interval`.
    fn satisfied(&mut self, now: Instant) {
        self.phase = Phase::Idle;
        self.isolated = false;
        self.backoff = self.cfg.backoff_initial;
        self.next_run = later(now, self.cfg.retry_interval);
    }

    /// Ends the current run without a successful stage.
    fn end_run(&mut self, now: Instant, connected: usize) {
        self.phase = Phase::Idle;
        if connected.max(self.any_peers) == 0 {
            self.isolated = true;
            self.next_run = later(now, self.backoff);
            self.backoff = self.backoff.saturating_mul(2).min(self.cfg.backoff_max);
        } else {
            self.isolated = false;
            self.backoff = self.cfg.backoff_initial;
            self.next_run = later(now, self.cfg.retry_interval);
        }
    }

    /// Changes the sizes of the source lists, e.g. after `dsdn-agent peers add` or
    /// `peers add-seed` appended an entry (28.1.C §7). Appended entries keep the indices of
    /// the existing ones valid; a run in progress reaches them if it has not passed their
    /// list yet, otherwise the next run does.
    ///
    /// Lists are only expected to grow, but shrinking is safe: a pending stage whose index
    /// is now past the end is skipped (not counted as a fallback) and [`FallbackChain::poll`]
    /// never returns an index outside the new sizes. An outstanding action whose index is
    /// past the end is still reported with [`FallbackChain::on_outcome`] as usual.
    pub fn set_sources(&mut self, static_peers: usize, dns_seeds: usize) {
        self.cfg.static_peers = static_peers;
        self.cfg.dns_seeds = dns_seeds;
        if let Phase::Ready(step, since) = self.phase {
            if let Some(valid) = self.first_valid(step) {
                self.phase = Phase::Ready(valid, since);
            }
        }
    }

    /// Whether `step` indexes an existing source.
    fn is_valid(&self, step: Step) -> bool {
        match step {
            Step::Cached => true,
            Step::Static(i) => i < self.cfg.static_peers,
            Step::Seed(i) => i < self.cfg.dns_seeds,
        }
    }

    /// `step` if it is valid, else the first valid source after it, if any.
    fn first_valid(&self, step: Step) -> Option<Step> {
        let mut step = step;
        while !self.is_valid(step) {
            step = self.successor(step)?;
        }
        Some(step)
    }

    /// The source after `step`, skipping empty lists. `Static(i)` and `Seed(i)` past the
    /// end of their list are handled like the last entry.
    fn successor(&self, step: Step) -> Option<Step> {
        let first_seed = (self.cfg.dns_seeds > 0).then_some(Step::Seed(0));
        match step {
            Step::Cached if self.cfg.static_peers > 0 => Some(Step::Static(0)),
            Step::Cached => first_seed,
            Step::Static(i) if i + 1 < self.cfg.static_peers => Some(Step::Static(i + 1)),
            Step::Static(_) => first_seed,
            Step::Seed(i) if i + 1 < self.cfg.dns_seeds => Some(Step::Seed(i + 1)),
            Step::Seed(_) => None,
        }
    }

    /// When [`FallbackChain::poll`] may next return an action: the due time of the next
    /// run, or the time the next stage of the current run became due (already past).
    /// `None` while an outcome is awaited.
    pub fn next_wakeup(&self) -> Option<Instant> {
        match self.phase {
            Phase::Idle => Some(self.next_run),
            Phase::Ready(_, since) => Some(since),
            Phase::Awaiting(_) => None,
        }
    }

    /// Reports how many verified peers the node has in either direction (inbound included).
    /// The `connected` arguments of [`FallbackChain::poll`] and
    /// [`FallbackChain::on_outcome`] count the peers the node dialled, which decide whether
    /// it has enough; this count only decides whether it has *any*: DNS seeds are not queried
    /// and the node is not isolated while some peer, even one that dialled us, is connected.
    pub fn note_peers(&mut self, total: usize) {
        self.any_peers = total;
        if total > 0 {
            self.isolated = false;
        }
    }

    /// Cumulative number of moves from one source to the next because a source produced no
    /// peer (peers.dat → static peer 0, static peer i → i+1, last static peer → DNS seed 0,
    /// seed i → i+1). Ending a run is not a move. Exported as
    /// `bootstrap_fallback_triggered` (28.1.C §8).
    pub fn fallbacks_triggered(&self) -> u64 {
        self.fallbacks
    }

    /// True when the last run ended with every source failed and 0 connected peers; false
    /// again once a stage produces a peer or a poll/outcome sees a connected peer.
    pub fn is_isolated(&self) -> bool {
        self.isolated
    }

    /// Makes a new run due at `now` (e.g. every peer just disconnected), cutting short the
    /// wait for the retry interval or backoff. No effect while a run is in progress.
    pub fn trigger_now(&mut self, now: Instant) {
        if self.phase == Phase::Idle {
            self.next_run = self.next_run.min(now);
        }
    }

    /// The current stage, for status output and logs.
    pub fn stage(&self) -> Stage {
        match self.phase {
            Phase::Idle if self.isolated => Stage::Backoff {
                until: self.next_run,
            },
            Phase::Idle => Stage::Idle,
            Phase::Ready(step, _) | Phase::Awaiting(step) => step.stage(),
        }
    }
}

#[cfg(test)]
mod tests;
