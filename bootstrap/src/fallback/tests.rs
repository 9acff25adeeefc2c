use super::*;

use Action::{DialCached, DialStatic, ResolveSeed};

/// How long every simulated action takes before its outcome is reported.
const DIAL: Duration = Duration::from_millis(100);
const RETRY: Duration = Duration::from_secs(30);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// A simulated network: which sources yield a peer.
struct World {
    cached: bool,
    statics: Vec<bool>,
    seeds: Vec<bool>,
    connected: usize,
    wanted: usize,
}

impl World {
    fn new(cached: bool, statics: &[bool], seeds: &[bool]) -> Self {
        Self {
            cached,
            statics: statics.to_vec(),
            seeds: seeds.to_vec(),
            connected: 0,
            wanted: 8,
        }
    }

    fn chain(&self, now: Instant) -> FallbackChain {
        let cfg = FallbackConfig {
            static_peers: self.statics.len(),
            dns_seeds: self.seeds.len(),
            ..FallbackConfig::default()
        };
        FallbackChain::new(cfg, now)
    }

    fn produced(&self, action: Action) -> usize {
        usize::from(match action {
            DialCached => self.cached,
            DialStatic(i) => self.statics[i],
            ResolveSeed(i) => self.seeds[i],
        })
    }

    /// Polls at `now` and executes actions until the chain has nothing due; `now` advances
    /// by [`DIAL`] per action. Returns the actions in order.
    fn run(&mut self, chain: &mut FallbackChain, now: &mut Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        while let Some(action) = chain.poll(*now, self.connected, self.wanted) {
            assert_eq!(chain.poll(*now, self.connected, self.wanted), None);
            assert_eq!(chain.next_wakeup(), None, "awaiting an outcome");
            let produced = self.produced(action);
            *now += DIAL;
            self.connected += produced;
            chain.on_outcome(*now, produced, self.connected);
            actions.push(action);
            assert!(actions.len() < 100, "runaway chain");
        }
        actions
    }
}

#[test]
fn exact_order_of_actions() {
    let t0 = Instant::now();
    let mut w = World::new(false, &[false, false, false], &[false, false]);
    let mut chain = w.chain(t0);
    assert_eq!(chain.stage(), Stage::Idle);
    assert_eq!(chain.next_wakeup(), Some(t0));

    let mut now = t0;
    assert_eq!(chain.poll(now, 0, 8), Some(DialCached));
    assert_eq!(chain.stage(), Stage::PeersDat);
    now += DIAL;
    chain.on_outcome(now, 0, 0);
    assert_eq!(chain.stage(), Stage::Static(0));
    assert_eq!(chain.next_wakeup(), Some(now), "next stage due at once");
    let rest = w.run(&mut chain, &mut now);
    assert_eq!(
        rest,
        [
            DialStatic(0),
            DialStatic(1),
            DialStatic(2),
            ResolveSeed(0),
            ResolveSeed(1)
        ]
    );
    assert_eq!(chain.fallbacks_triggered(), 5);
    assert!(chain.is_isolated());
    assert_eq!(
        chain.stage(),
        Stage::Backoff {
            until: now + secs(1)
        }
    );
}

/// Every combination of peers.dat / static peers / DNS seeds working or failing. In each
/// working list only the last entry works, so the earlier ones are seen to be skipped.
#[test]
fn all_eight_source_combinations() {
    for mask in 0..8u8 {
        let (cached, statics, dns) = (mask & 1 != 0, mask & 2 != 0, mask & 4 != 0);
        let t0 = Instant::now();
        let mut w = World::new(cached, &[false, statics], &[false, dns]);
        let mut chain = w.chain(t0);
        let mut now = t0;
        let actions = w.run(&mut chain, &mut now);
        let label = format!("cached={cached} static={statics} dns={dns}");

        let (expected, fallbacks): (&[Action], u64) = if cached {
            (&[DialCached], 0)
        } else if statics {
            (&[DialCached, DialStatic(0), DialStatic(1)], 2)
        } else {
            let all = &[
                DialCached,
                DialStatic(0),
                DialStatic(1),
                ResolveSeed(0),
                ResolveSeed(1),
            ];
            (all, 4)
        };
        assert_eq!(actions, expected, "{label}");
        assert_eq!(chain.fallbacks_triggered(), fallbacks, "{label}");
        let any = cached || statics || dns;
        assert_eq!(w.connected, usize::from(any), "{label}");
        assert_eq!(chain.is_isolated(), !any, "{label}");
        let wait = if any { RETRY } else { secs(1) };
        assert_eq!(chain.next_wakeup(), Some(now + wait), "{label}");
        let stage = if any {
            Stage::Idle
        } else {
            Stage::Backoff { until: now + wait }
        };
        assert_eq!(chain.stage(), stage, "{label}");
    }
}

#[test]
fn all_fail_backs_off_exponentially_then_recovers() {
    let t0 = Instant::now();
    let mut w = World::new(false, &[false], &[false]);
    let mut chain = w.chain(t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..8 {
        let actions = w.run(&mut chain, &mut now);
        assert_eq!(actions, [DialCached, DialStatic(0), ResolveSeed(0)]);
        assert!(chain.is_isolated());
        let next = chain.next_wakeup().unwrap();
        waits.push((next - now).as_secs());
        // Nothing happens before the backoff expires.
        assert_eq!(chain.poll(next - Duration::from_millis(1), 0, 8), None);
        now = next;
    }
    assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    assert_eq!(chain.fallbacks_triggered(), 16);

    // The DNS seed comes back: the next run recovers through it.
    w.seeds[0] = true;
    let actions = w.run(&mut chain, &mut now);
    assert_eq!(actions, [DialCached, DialStatic(0), ResolveSeed(0)]);
    assert!(!chain.is_isolated());
    assert_eq!(w.connected, 1);
    assert_eq!(chain.next_wakeup(), Some(now + RETRY));

    // Everything disappears again: the backoff starts over at 1 s.
    w.seeds[0] = false;
    w.connected = 0;
    chain.trigger_now(now);
    w.run(&mut chain, &mut now);
    assert!(chain.is_isolated());
    assert_eq!(chain.next_wakeup(), Some(now + secs(1)));
}

#[test]
fn dns_is_skipped_while_connected() {
    let t0 = Instant::now();
    let mut w = World::new(false, &[false, false], &[true]);
    w.connected = 1;
    let mut chain = w.chain(t0);
    let mut now = t0;
    let actions = w.run(&mut chain, &mut now);
    assert_eq!(actions, [DialCached, DialStatic(0), DialStatic(1)]);
    assert_eq!(
        chain.fallbacks_triggered(),
        2,
        "ending the run is not a fallback"
    );
    assert!(!chain.is_isolated());
    assert_eq!(chain.stage(), Stage::Idle);
    assert_eq!(chain.next_wakeup(), Some(now + RETRY));

    // A peer that connects between the move to DNS and the poll also stops the query.
    let mut w = World::new(false, &[], &[true, true]);
    let mut chain = w.chain(t0);
    let mut now = t0;
    assert_eq!(chain.poll(now, 0, 8), Some(DialCached));
    now += DIAL;
    chain.on_outcome(now, 0, 0);
    assert_eq!(chain.stage(), Stage::DnsSeed(0));
    w.connected = 1; // an inbound peer arrived
    assert_eq!(chain.poll(now, w.connected, 8), None);
    assert_eq!(chain.stage(), Stage::Idle);
    assert_eq!(chain.next_wakeup(), Some(now + RETRY));

    // Between two seeds as well.
    let mut chain = w.chain(t0);
    assert_eq!(chain.poll(t0, 0, 8), Some(DialCached));
    chain.on_outcome(t0, 0, 0);
    assert_eq!(chain.poll(t0, 0, 8), Some(ResolveSeed(0)));
    chain.on_outcome(t0, 0, 1);
    assert_eq!(chain.stage(), Stage::Idle);
    assert_eq!(chain.fallbacks_triggered(), 1);
}

#[test]
fn periodic_retry_while_below_wanted_and_none_when_satisfied() {
    let t0 = Instant::now();
    let mut w = World::new(true, &[true], &[true]);
    w.wanted = 3;
    let mut chain = w.chain(t0);
    let mut now = t0;
    let mut starts = Vec::new();
    for _ in 0..6 {
        let run_start = now;
        let actions = w.run(&mut chain, &mut now);
        if !actions.is_empty() {
            assert_eq!(actions, [DialCached]);
            starts.push((run_start - t0).as_millis());
        }
        let next = chain.next_wakeup().unwrap();
        assert_eq!(
            chain.poll(next - Duration::from_millis(1), w.connected, 3),
            None
        );
        now = next;
    }
    // Three runs 30 s apart bring the node to 3 peers; afterwards nothing is dialled.
    assert_eq!(starts, [0, 30_100, 60_200]);
    assert_eq!(w.connected, 3);
    assert_eq!(chain.fallbacks_triggered(), 0);
    // While satisfied the chain keeps looking every retry_interval.
    let t = chain.next_wakeup().unwrap();
    assert_eq!(chain.poll(t, 3, 3), None);
    assert_eq!(chain.next_wakeup(), Some(t + RETRY));
    // A lost peer makes the next check start a run.
    assert_eq!(chain.poll(t + RETRY, 2, 3), Some(DialCached));
}

#[test]
fn no_run_when_satisfied_from_the_start() {
    let t0 = Instant::now();
    let mut chain = FallbackChain::new(FallbackConfig::default(), t0);
    assert_eq!(chain.poll(t0, 8, 8), None);
    assert_eq!(chain.next_wakeup(), Some(t0 + RETRY));
    assert_eq!(chain.stage(), Stage::Idle);
    assert_eq!(chain.poll(t0 + RETRY, 5, 8), Some(DialCached));
}

#[test]
fn empty_lists_are_skipped_without_actions() {
    let t0 = Instant::now();
    // Nothing but peers.dat.
    let mut w = World::new(false, &[], &[]);
    let mut chain = w.chain(t0);
    let mut now = t0;
    assert_eq!(w.run(&mut chain, &mut now), [DialCached]);
    assert_eq!(chain.fallbacks_triggered(), 0);
    assert!(chain.is_isolated());

    // No static peers: straight from peers.dat to the seeds.
    let mut w = World::new(false, &[], &[false, true]);
    let mut chain = w.chain(t0);
    let mut now = t0;
    let actions = w.run(&mut chain, &mut now);
    assert_eq!(actions, [DialCached, ResolveSeed(0), ResolveSeed(1)]);
    assert_eq!(chain.fallbacks_triggered(), 2);

    // No seeds: the run ends after the last static peer.
    let mut w = World::new(false, &[false], &[]);
    let mut chain = w.chain(t0);
    let mut now = t0;
    assert_eq!(w.run(&mut chain, &mut now), [DialCached, DialStatic(0)]);
    assert_eq!(chain.fallbacks_triggered(), 1);
    assert!(chain.is_isolated());
}

#[test]
fn a_run_stops_when_the_node_becomes_satisfied() {
    let t0 = Instant::now();
    let mut chain = World::new(false, &[false, false], &[]).chain(t0);
    assert_eq!(chain.poll(t0, 7, 8), Some(DialCached));
    chain.on_outcome(t0, 0, 8); // inbound peers filled the slots meanwhile
    assert_eq!(chain.stage(), Stage::Static(0));
    assert_eq!(chain.poll(t0, 8, 8), None);
    assert_eq!(chain.stage(), Stage::Idle);
    assert_eq!(chain.next_wakeup(), Some(t0 + RETRY));
}

#[test]
fn trigger_now_starts_a_run_early() {
    let t0 = Instant::now();
    let mut w = World::new(true, &[], &[]);
    let mut chain = w.chain(t0);
    let mut now = t0;
    assert_eq!(w.run(&mut chain, &mut now), [DialCached]);
    assert_eq!(chain.next_wakeup(), Some(now + RETRY));
    // All peers disconnect 5 s later.
    let t = now + secs(5);
    assert_eq!(chain.poll(t, 0, 8), None);
    chain.trigger_now(t);
    assert_eq!(chain.next_wakeup(), Some(t));
    assert_eq!(chain.poll(t, 0, 8), Some(DialCached));
    // No effect while a run is in progress.
    chain.trigger_now(t);
    assert_eq!(chain.poll(t, 0, 8), None);
    assert_eq!(chain.stage(), Stage::PeersDat);
}

#[test]
fn outcome_without_action_is_ignored() {
    let t0 = Instant::now();
    let mut chain = FallbackChain::new(FallbackConfig::default(), t0);
    chain.on_outcome(t0, 0, 0);
    assert_eq!(chain.stage(), Stage::Idle);
    assert_eq!(chain.fallbacks_triggered(), 0);
    assert!(!chain.is_isolated());
    assert_eq!(chain.poll(t0, 0, 8), Some(DialCached));
}

#[test]
fn isolation_clears_when_a_peer_connects_on_its_own() {
    let t0 = Instant::now();
    let mut w = World::new(false, &[], &[]);
    let mut chain = w.chain(t0);
    let mut now = t0;
    w.run(&mut chain, &mut now);
    assert!(chain.is_isolated());
    assert_eq!(chain.poll(now, 1, 8), None, "backoff not over yet");
    assert!(!chain.is_isolated());
}

#[test]
fn degenerate_durations_are_clamped() {
    let t0 = Instant::now();
    let cfg = FallbackConfig {
        static_peers: 0,
        dns_seeds: 0,
        retry_interval: Duration::ZERO,
        backoff_initial: Duration::ZERO,
        backoff_max: Duration::ZERO,
    };
    let mut chain = FallbackChain::new(cfg, t0);
    assert_eq!(chain.config().retry_interval, MIN_INTERVAL);
    assert_eq!(chain.config().backoff_max, MIN_INTERVAL);
    assert_eq!(chain.poll(t0, 0, 1), Some(DialCached));
    chain.on_outcome(t0, 0, 0);
    assert_eq!(chain.next_wakeup(), Some(t0 + MIN_INTERVAL));
    // Huge durations do not overflow.
    let cfg = FallbackConfig {
        retry_interval: Duration::MAX,
        ..FallbackConfig::default()
    };
    let mut chain = FallbackChain::new(cfg, t0);
    assert_eq!(chain.poll(t0, 1, 1), None);
    assert!(chain.next_wakeup().unwrap() > t0);
}

#[test]
fn from_bootstrap_config() {
    let b = crate::config::BootstrapConfig {
        static_peers: vec![
            "127.0.0.1:1".parse().unwrap(),
            "127.0.0.1:2".parse().unwrap(),
        ],
        dns_seeds: vec!["seed.example".parse().unwrap()],
        retry_interval: secs(7),
        ..Default::default()
    };
    let cfg = FallbackConfig::from_bootstrap(&b);
    assert_eq!((cfg.static_peers, cfg.dns_seeds), (2, 1));
    assert_eq!(cfg.retry_interval, secs(7));
    assert_eq!((cfg.backoff_initial, cfg.backoff_max), (secs(1), secs(30)));
}

/// Reports a failed action (0 new peers, 0 connected) `DIAL` later.
fn fail(chain: &mut FallbackChain, now: &mut Instant) {
    *now += DIAL;
    chain.on_outcome(*now, 0, 0);
}

#[test]
fn sources_added_during_a_run_are_reached_by_it() {
    let t0 = Instant::now();
    let mut now = t0;
    // Only one DNS seed in seeds.toml; the operator adds two static peers while peers.dat
    // is being dialled.
    let mut chain = World::new(false, &[], &[false]).chain(t0);
    assert_eq!(chain.poll(now, 0, 8), Some(DialCached));
    chain.set_sources(2, 1);
    assert_eq!(chain.config().static_peers, 2);
    let mut w = World::new(false, &[false, true], &[false]);
    fail(&mut chain, &mut now);
    assert_eq!(
        w.run(&mut chain, &mut now),
        [DialStatic(0), DialStatic(1)],
        "the added peers come before the seeds"
    );
    assert_eq!(w.connected, 1);
    assert!(!chain.is_isolated());
}

#[test]
fn sources_added_after_a_run_are_used_by_the_next() {
    let t0 = Instant::now();
    let mut now = t0;
    // No source but peers.dat: the node is isolated.
    let mut w = World::new(false, &[], &[]);
    let mut chain = w.chain(t0);
    assert_eq!(w.run(&mut chain, &mut now), [DialCached]);
    assert!(chain.is_isolated());
    // `peers add-seed` and `peers add`: the caller grows the lists and triggers a run.
    chain.set_sources(1, 1);
    chain.trigger_now(now);
    let mut w = World::new(false, &[false], &[true]);
    assert_eq!(
        w.run(&mut chain, &mut now),
        [DialCached, DialStatic(0), ResolveSeed(0)]
    );
    assert!(!chain.is_isolated());

    // A static peer added while the last seed is outstanding waits for the next run.
    let mut chain = World::new(false, &[false], &[false]).chain(t0);
    let mut now = t0;
    assert_eq!(chain.poll(now, 0, 8), Some(DialCached));
    fail(&mut chain, &mut now);
    assert_eq!(chain.poll(now, 0, 8), Some(DialStatic(0)));
    fail(&mut chain, &mut now);
    assert_eq!(chain.poll(now, 0, 8), Some(ResolveSeed(0)));
    chain.set_sources(2, 1);
    fail(&mut chain, &mut now);
    assert!(chain.is_isolated(), "this run is over");
    let next = chain.next_wakeup().unwrap();
    let mut w = World::new(false, &[false, true], &[false]);
    let mut now = next;
    assert_eq!(
        w.run(&mut chain, &mut now),
        [DialCached, DialStatic(0), DialStatic(1)]
    );
}

#[test]
fn shrinking_skips_indices_past_the_end() {
    let t0 = Instant::now();
    let mut now = t0;
    // Pending static peer 2 of 3; the list shrinks to 1: straight to the seed.
    let mut chain = World::new(false, &[false; 3], &[false]).chain(t0);
    for expected in [DialCached, DialStatic(0), DialStatic(1)] {
        assert_eq!(chain.poll(now, 0, 8), Some(expected));
        fail(&mut chain, &mut now);
    }
    assert_eq!(chain.stage(), Stage::Static(2));
    let fallbacks = chain.fallbacks_triggered();
    chain.set_sources(1, 1);
    assert_eq!(chain.stage(), Stage::DnsSeed(0));
    assert_eq!(chain.poll(now, 0, 8), Some(ResolveSeed(0)));
    assert_eq!(
        chain.fallbacks_triggered(),
        fallbacks,
        "a skip is no fallback"
    );

    // Pending static peer 2, and both lists shrink to nothing past it: the run ends on
    // the next poll, isolated, with no out-of-range action.
    let mut chain = World::new(false, &[false; 3], &[false]).chain(t0);
    let mut now = t0;
    for expected in [DialCached, DialStatic(0), DialStatic(1)] {
        assert_eq!(chain.poll(now, 0, 8), Some(expected));
        fail(&mut chain, &mut now);
    }
    chain.set_sources(1, 0);
    assert_eq!(chain.poll(now, 0, 8), None);
    assert!(chain.is_isolated());
    assert_eq!(chain.next_wakeup(), Some(now + secs(1)));

    // The same with a peer connected: the run ends without isolation.
    let mut chain = World::new(false, &[false; 3], &[]).chain(t0);
    let mut now = t0;
    assert_eq!(chain.poll(now, 1, 8), Some(DialCached));
    now += DIAL;
    chain.on_outcome(now, 0, 1);
    chain.set_sources(0, 0);
    assert_eq!(chain.poll(now, 1, 8), None);
    assert!(!chain.is_isolated());
    assert_eq!(chain.next_wakeup(), Some(now + RETRY));

    // An outstanding action past the new end is still reported; the chain moves on.
    let mut chain = World::new(false, &[false; 3], &[false; 2]).chain(t0);
    let mut now = t0;
    assert_eq!(chain.poll(now, 0, 8), Some(DialCached));
    fail(&mut chain, &mut now);
    assert_eq!(chain.poll(now, 0, 8), Some(DialStatic(0)));
    chain.set_sources(0, 1);
    fail(&mut chain, &mut now);
    assert_eq!(chain.poll(now, 0, 8), Some(ResolveSeed(0)));
    chain.set_sources(0, 0);
    fail(&mut chain, &mut now);
    assert_eq!(
        chain.stage(),
        Stage::Backoff {
            until: now + secs(1)
        }
    );
}

/// For every point of a run and every new pair of sizes, the chain only returns indices
/// inside the current sizes and every run terminates.
#[test]
fn no_action_outside_the_sources_whatever_the_resize() {
    let t0 = Instant::now();
    for steps in 0..6 {
        for statics in 0..4 {
            for seeds in 0..4 {
                let label = format!("after {steps} actions, resize to ({statics}, {seeds})");
                let mut chain = World::new(false, &[false; 3], &[false; 3]).chain(t0);
                let mut now = t0;
                let mut resized = false;
                let mut count = 0;
                loop {
                    if count == steps && !resized {
                        chain.set_sources(statics, seeds);
                        resized = true;
                    }
                    let Some(action) = chain.poll(now, 0, 8) else {
                        break;
                    };
                    let (s, d) = if resized { (statics, seeds) } else { (3, 3) };
                    match action {
                        DialCached => {}
                        DialStatic(i) => assert!(i < s, "{label}: {action:?}"),
                        ResolveSeed(i) => assert!(i < d, "{label}: {action:?}"),
                    }
                    fail(&mut chain, &mut now);
                    count += 1;
                    assert!(count < 20, "{label}: runaway");
                }
                assert!(chain.is_isolated(), "{label}");
                // The next run covers exactly the new lists.
                let next = chain.next_wakeup().unwrap();
                let (s, d) = if resized { (statics, seeds) } else { (3, 3) };
                let mut w = World::new(false, &vec![false; s], &vec![false; d]);
                let mut now = next;
                assert_eq!(w.run(&mut chain, &mut now).len(), 1 + s + d, "{label}");
            }
        }
    }
}

#[test]
fn an_inbound_peer_keeps_dns_seeds_quiet() {
    let t0 = Instant::now();
    let mut c = FallbackChain::new(
        FallbackConfig {
            static_peers: 0,
            dns_seeds: 2,
            ..FallbackConfig::default()
        },
        t0,
    );
    // peers.dat yields nothing, but a peer dialled us meanwhile: no DNS query, not isolated.
    assert_eq!(c.poll(t0, 0, 8), Some(Action::DialCached));
    c.note_peers(1);
    c.on_outcome(t0, 0, 0);
    assert_eq!(c.poll(t0, 0, 8), None);
    assert!(!c.is_isolated());
    // Without it, the same outcome moves on to the first DNS seed.
    let mut d = FallbackChain::new(
        FallbackConfig {
            static_peers: 0,
            dns_seeds: 2,
            ..FallbackConfig::default()
        },
        t0,
    );
    assert_eq!(d.poll(t0, 0, 8), Some(Action::DialCached));
    d.on_outcome(t0, 0, 0);
    assert_eq!(d.poll(t0, 0, 8), Some(Action::ResolveSeed(0)));
}
