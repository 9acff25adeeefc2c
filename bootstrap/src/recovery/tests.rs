use super::*;

use crate::config::BootstrapConfig;

const GRACE: Duration = Duration::from_secs(5);
/// How long a simulated sweep takes.
const SWEEP: Duration = Duration::from_secs(2);

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn cfg(min_peers: usize, initial: u64, max: u64) -> RecoveryConfig {
    RecoveryConfig {
        min_peers,
        backoff_initial: secs(initial),
        backoff_max: secs(max),
    }
}

/// A detector whose grace period is over and which has seen a healthy node, at `t0 + GRACE`.
fn healthy(config: RecoveryConfig) -> (PartitionRecovery, Instant) {
    let t0 = Instant::now();
    let mut r = PartitionRecovery::new(config, GRACE, t0);
    let now = t0 + GRACE;
    assert_eq!(r.poll(now, 10), None);
    (r, now)
}

fn sweep(attempt: u32) -> Option<RecoveryEvent> {
    Some(RecoveryEvent::Sweep { attempt })
}

#[test]
fn grace_period_after_start() {
    let t0 = Instant::now();
    let mut r = PartitionRecovery::new(cfg(3, 5, 300), GRACE, t0);
    assert!(!r.is_partitioned());
    assert_eq!(r.next_wakeup(), Some(t0 + GRACE));
    // Booting with no peers is not a partition yet.
    assert_eq!(r.poll(t0, 0), None);
    assert_eq!(r.poll(t0 + GRACE - Duration::from_millis(1), 0), None);
    assert!(!r.is_partitioned());
    assert_eq!(r.sweeps(), 0);
    // Still below min_peers when the grace period ends: sweep at once.
    assert_eq!(r.poll(t0 + GRACE, 1), sweep(1));
    assert!(r.is_partitioned());
    assert_eq!(r.partitioned_since(), Some(t0 + GRACE));
    assert_eq!(r.sweeps(), 1);
}

#[test]
fn healthy_node_sleeps_and_detects_a_drop_at_once() {
    let t0 = Instant::now();
    let mut r = PartitionRecovery::new(cfg(3, 5, 300), GRACE, t0);
    // The boot reached enough peers during the grace period.
    assert_eq!(r.poll(t0 + GRACE, 3), None);
    assert!(!r.is_partitioned());
    assert_eq!(r.next_wakeup(), None, "nothing timed while healthy");
    assert_eq!(r.poll(t0 + secs(3600), 8), None);
    // The peer count drops below min_peers: the first sweep is immediate.
    let now = t0 + secs(3601);
    assert_eq!(r.poll(now, 2), sweep(1));
    assert!(r.is_partitioned());
    assert_eq!(r.partitioned_since(), Some(now));
    assert_eq!(r.next_wakeup(), None, "sweep outstanding");
    assert_eq!(r.poll(now + secs(1000), 0), None, "waits for on_sweep_done");
    assert_eq!(r.sweeps(), 1);
}

#[test]
fn backoff_doubles_up_to_the_cap() {
    let (mut r, mut now) = healthy(cfg(3, 5, 60));
    let mut waits = Vec::new();
    for attempt in 1..=8 {
        assert_eq!(r.poll(now, 1), sweep(attempt));
        now += SWEEP;
        r.on_sweep_done(now, 1);
        assert_eq!(r.consecutive_failed_sweeps(), attempt);
        assert!(r.is_partitioned());
        let next = r.next_wakeup().unwrap();
        waits.push((next - now).as_secs());
        assert_eq!(r.poll(next - Duration::from_millis(1), 1), None, "early");
        now = next;
    }
    assert_eq!(waits, [5, 10, 20, 40, 60, 60, 60, 60]);
    assert_eq!(r.sweeps(), 8);
}

#[test]
fn recovery_resets_the_state_and_the_backoff() {
    let (mut r, mut now) = healthy(cfg(3, 5, 300));
    let since = now;
    for attempt in 1..=3 {
        assert_eq!(r.poll(now, 0), sweep(attempt));
        now += SWEEP;
        r.on_sweep_done(now, 0);
        now = r.next_wakeup().unwrap();
    }
    assert_eq!(r.consecutive_failed_sweeps(), 3);
    // The fourth sweep reaches min_peers.
    assert_eq!(r.poll(now, 0), sweep(4));
    now += SWEEP;
    r.on_sweep_done(now, 3);
    assert_eq!(
        r.consecutive_failed_sweeps(),
        3,
        "a sweep that worked is no failure"
    );
    assert_eq!(
        r.poll(now, 3),
        Some(RecoveryEvent::Recovered { sweeps: 4, since })
    );
    assert!(!r.is_partitioned());
    assert_eq!(r.partitioned_since(), None);
    assert_eq!(r.consecutive_failed_sweeps(), 0);
    assert_eq!(r.next_wakeup(), None);
    assert_eq!(r.poll(now, 3), None, "recovered is reported once");
    assert_eq!(r.sweeps(), 4, "the metric counts across partitions");

    // A later partition starts over: attempt 1, and the backoff is 5 s again.
    now += secs(600);
    assert_eq!(r.poll(now, 2), sweep(1));
    now += SWEEP;
    r.on_sweep_done(now, 2);
    assert_eq!(r.consecutive_failed_sweeps(), 1);
    assert_eq!(r.next_wakeup(), Some(now + secs(5)));
    assert_eq!(r.sweeps(), 5);
}

#[test]
fn peers_returning_on_their_own_end_the_partition() {
    let (mut r, mut now) = healthy(cfg(3, 5, 300));
    let since = now;
    assert_eq!(r.poll(now, 0), sweep(1));
    now += SWEEP;
    r.on_sweep_done(now, 0);
    // During the backoff wait, inbound peers arrive.
    now += secs(1);
    assert_eq!(
        r.poll(now, 5),
        Some(RecoveryEvent::Recovered { sweeps: 1, since })
    );
    assert!(!r.is_partitioned());
}

#[test]
fn sweep_that_reached_min_but_lost_it_again_keeps_the_backoff() {
    let (mut r, mut now) = healthy(cfg(3, 5, 300));
    assert_eq!(r.poll(now, 0), sweep(1));
    now += SWEEP;
    r.on_sweep_done(now, 3);
    assert_eq!(r.consecutive_failed_sweeps(), 0);
    // The peers dropped before the next poll: still partitioned, no "recovered", and the
    // next sweep waits for the backoff instead of starting at once.
    assert_eq!(r.poll(now, 1), None);
    assert!(r.is_partitioned());
    assert_eq!(r.next_wakeup(), Some(now + secs(5)));
    assert_eq!(r.poll(now + secs(5), 1), sweep(2));
}

#[test]
fn flapping_peer_count_cannot_sweep_more_often_than_backoff_initial() {
    let (mut r, mut now) = healthy(cfg(3, 5, 300));
    let first = now;
    assert_eq!(r.poll(now, 0), sweep(1));
    now += SWEEP;
    r.on_sweep_done(now, 3);
    assert!(matches!(
        r.poll(now, 3),
        Some(RecoveryEvent::Recovered { .. })
    ));
    // Drops again 1 s later: detected, but the sweep waits until 5 s after the last one.
    now += secs(1);
    assert_eq!(r.poll(now, 2), None);
    assert!(r.is_partitioned());
    assert_eq!(r.next_wakeup(), Some(first + secs(5)));
    // Healed before that sweep: silent reset, no Recovered for a partition without sweeps.
    assert_eq!(r.poll(now + secs(1), 3), None);
    assert!(!r.is_partitioned());
    // A drop long after the last sweep is swept at once again.
    now += secs(60);
    assert_eq!(r.poll(now, 0), sweep(1));
}

#[test]
fn outcome_without_sweep_is_ignored() {
    let (mut r, now) = healthy(cfg(3, 5, 300));
    r.on_sweep_done(now, 0);
    assert!(!r.is_partitioned());
    assert_eq!(r.consecutive_failed_sweeps(), 0);
    assert_eq!(r.poll(now, 0), sweep(1));
    r.on_sweep_done(now + SWEEP, 0);
    // A second report for the same sweep changes nothing.
    let wake = r.next_wakeup();
    r.on_sweep_done(now + SWEEP * 2, 0);
    assert_eq!(r.next_wakeup(), wake);
    assert_eq!(r.consecutive_failed_sweeps(), 1);
}

#[test]
fn min_peers_zero_disables_detection() {
    let (mut r, now) = healthy(cfg(0, 5, 300));
    assert_eq!(r.poll(now, 0), None);
    assert!(!r.is_partitioned());
    assert_eq!(r.next_wakeup(), None);
}

#[test]
fn degenerate_durations_are_clamped() {
    let t0 = Instant::now();
    let r = PartitionRecovery::new(cfg(3, 0, 0), Duration::ZERO, t0);
    assert_eq!(r.config().backoff_initial, MIN_INTERVAL);
    assert_eq!(r.config().backoff_max, MIN_INTERVAL);
    let r = PartitionRecovery::new(cfg(3, 10, 2), Duration::MAX, t0);
    assert_eq!(r.config().backoff_max, secs(10));
    assert!(r.next_wakeup().unwrap() > t0, "huge grace saturates");

    let (mut r, mut now) = healthy(cfg(1, 0, 0));
    for attempt in 1..=3 {
        assert_eq!(r.poll(now, 0), sweep(attempt));
        r.on_sweep_done(now, 0);
        let next = r.next_wakeup().unwrap();
        assert_eq!(next - now, MIN_INTERVAL, "never a zero wait");
        now = next;
    }
}

#[test]
fn from_bootstrap_config() {
    let c = RecoveryConfig::from_bootstrap(&BootstrapConfig::default());
    assert_eq!(c, RecoveryConfig::default());
    assert_eq!(c.min_peers, 3);
    assert_eq!(c.backoff_initial, secs(5));
    assert_eq!(c.backoff_max, secs(300));
    let b = BootstrapConfig {
        min_peers: 1,
        recovery_backoff_max: secs(2),
        ..BootstrapConfig::default()
    };
    let c = RecoveryConfig::from_bootstrap(&b);
    assert_eq!(c, cfg(1, 2, 2));
}

/// A network smaller than `min_peers` (issue 15 §7): a node connected to every peer it could
/// reach keeps looking for more (sweeps) but raises no alarm; it does once it loses one.
#[test]
fn a_small_network_is_no_partition() {
    let (mut r, now) = healthy(cfg(3, 5, 300));
    // Two peers known and verified, both connected: below min_peers, so a sweep looks for
    // more, but no alarm.
    r.set_reachable(2);
    assert_eq!(r.threshold(), 2);
    assert_eq!(r.poll(now, 2), sweep(1));
    assert!(r.is_partitioned());
    assert!(!r.alarm(2));
    // One of them gone: the alarm.
    assert!(r.alarm(1));
    // Knowing more peers raises the threshold up to min_peers only.
    r.set_reachable(50);
    assert_eq!(r.threshold(), 3);
    // Knowing none: one connected peer is enough not to be partitioned.
    r.set_reachable(0);
    assert_eq!(r.threshold(), 1);
}
