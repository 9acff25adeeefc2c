//! Tests of the rate limiters.

use super::*;
use proptest::prelude::*;

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

#[test]
fn inbound_sliding_window() {
    let t0 = Instant::now();
    let mut l = InboundRateLimiter::new(10);
    let a = ip("203.0.113.1");
    for i in 0..10 {
        assert!(l.allow(a, t0 + secs(i)), "attempt {i}");
    }
    assert!(!l.allow(a, t0 + secs(10)), "11th within the minute");
    assert!(!l.allow(a, t0 + secs(59)));
    // Another IP is independent.
    assert!(l.allow(ip("203.0.113.2"), t0 + secs(10)));
    // Sliding: at t0+60 the attempt of t0 leaves the window, one more is allowed ...
    assert!(l.allow(a, t0 + secs(60)));
    assert!(!l.allow(a, t0 + secs(60)), "... but only one");
    assert!(l.allow(a, t0 + secs(61)));
    // Refused attempts do not count: after a quiet minute the full budget is back.
    let later = t0 + secs(200);
    for _ in 0..10 {
        assert!(l.allow(a, later));
    }
    assert!(!l.allow(a, later));
    // IPv4-mapped IPv6 is the same IP.
    assert!(!l.allow(ip("::ffff:203.0.113.1"), later));
}

#[test]
fn inbound_zero_refuses_all() {
    let mut l = InboundRateLimiter::new(0);
    assert!(!l.allow(ip("1.2.3.4"), Instant::now()));
    assert_eq!(l.tracked(), 0);
    assert_eq!(l.per_minute(), 0);
}

#[test]
fn inbound_memory_is_bounded() {
    let t0 = Instant::now();
    let mut l = InboundRateLimiter::new(1);
    let nth = |n: u32| IpAddr::from(n.to_be_bytes());
    for n in 0..MAX_TRACKED_IPS as u32 {
        assert!(l.allow(nth(n), t0 + Duration::from_millis(u64::from(n))));
    }
    assert_eq!(l.tracked(), MAX_TRACKED_IPS);
    // Full, nothing expired: the oldest IP (0) makes room, then the next oldest (1).
    assert!(l.allow(nth(1_000_000), t0 + secs(10)));
    assert_eq!(l.tracked(), MAX_TRACKED_IPS);
    assert!(l.allow(nth(0), t0 + secs(10)), "0 was forgotten");
    assert_eq!(l.tracked(), MAX_TRACKED_IPS);
    assert!(!l.allow(nth(2), t0 + secs(10)), "2 still tracked");
    // Full again, the first 4096 attempts have expired: pruned in one go.
    assert!(l.allow(nth(2_000_000), t0 + secs(65)));
    assert_eq!(l.tracked(), 3, "1_000_000, 0 (both t0+10 s) and 2_000_000");
    l.prune(t0 + secs(70));
    assert_eq!(l.tracked(), 1);
    l.prune(t0 + secs(200));
    assert_eq!(l.tracked(), 0);
}

proptest! {
    #[test]
    fn inbound_never_more_than_the_limit_per_window(
        limit in 1u32..6,
        steps in prop::collection::vec((0u8..3, 0u64..30_000), 1..200),
    ) {
        let t0 = Instant::now();
        let mut l = InboundRateLimiter::new(limit);
        let mut now = t0;
        let mut accepted: Vec<(u8, Instant)> = Vec::new();
        for (who, dt) in steps {
            now += Duration::from_millis(dt);
            let a = IpAddr::from([10, 0, 0, who]);
            let ok = l.allow(a, now);
            let in_window = accepted
                .iter()
                .filter(|(w, t)| *w == who && now.duration_since(*t) < WINDOW)
                .count();
            // Exact: accepted iff fewer than `limit` accepted in the last 60 s.
            prop_assert_eq!(ok, in_window < limit as usize);
            if ok {
                accepted.push((who, now));
            }
            prop_assert!(l.tracked() <= 3);
        }
    }
}

/// Bitcoin Core's `test/functional/p2p_addr_relay.py`, `rate_limit_tests`, for an outbound
/// peer we sent a GETADDR (here: a PEX request) and for an inbound peer we never asked.
#[test]
fn bitcoin_core_addr_relay_rate_limit() {
    // (peer we asked?, expected processed totals after each step)
    for (asked, totals) in [
        (true, [600, 1001, 1001, 1011, 1111]),
        (false, [1, 1, 1, 11, 111]),
    ] {
        let mut now = Instant::now();
        let mut bucket = AddrTokenBucket::new(now);
        if asked {
            bucket.on_request_sent();
            assert_eq!(bucket.tokens(now), 1001.0);
        }
        let mut processed = 0;
        // Send 600 addresses.
        processed += bucket.take(600, now);
        assert_eq!(processed, totals[0], "asked={asked}: 600");
        // 600 more.
        processed += bucket.take(600, now);
        assert_eq!(processed, totals[1], "asked={asked}: 1200");
        // 10 more: the bucket is empty.
        processed += bucket.take(10, now);
        assert_eq!(processed, totals[2], "asked={asked}: 1210");
        // +100 s: 10 more tokens; 200 sent, 10 processed.
        now += secs(100);
        processed += bucket.take(200, now);
        assert_eq!(processed, totals[3], "asked={asked}: +100 s");
        // +1000 s: refilled by 100 (the test's expectation); 200 sent, 100 processed.
        now += secs(1000);
        processed += bucket.take(200, now);
        assert_eq!(processed, totals[4], "asked={asked}: +1000 s");
    }
}

#[test]
fn addr_bucket_refill_is_capped_and_only_below_the_cap() {
    let t0 = Instant::now();
    let mut b = AddrTokenBucket::new(t0);
    assert_eq!(b.tokens(t0), 1.0);
    assert_eq!(b.tokens(t0 + secs(10)), 2.0);
    // A day later: capped at 1000.
    assert_eq!(b.tokens(t0 + secs(86_400)), 1000.0);
    assert_eq!(b.take(5000, t0 + secs(86_400)), 1000);
    assert_eq!(b.take(1, t0 + secs(86_400)), 0);
    // Above the cap (two requests): no time refill, and requests stack.
    b.on_request_sent();
    b.on_request_sent();
    assert_eq!(b.tokens(t0 + secs(90_000)), 2000.0);
    assert_eq!(b.take(1500, t0 + secs(90_000)), 1500);
    // Below the cap again: the refill resumes from the last update.
    assert_eq!(b.tokens(t0 + secs(90_010)), 501.0);
    // Time going backwards adds nothing.
    assert_eq!(b.take(0, t0), 0);
    assert_eq!(b.tokens(t0 + secs(90_000)), 500.0);
}

proptest! {
    #[test]
    fn addr_bucket_bounds(
        steps in prop::collection::vec((any::<bool>(), 0usize..3000, 0u64..5000), 1..60),
    ) {
        let t0 = Instant::now();
        let mut now = t0;
        let mut b = AddrTokenBucket::new(now);
        let mut requests = 0u64;
        let mut processed = 0u64;
        for (ask, n, dt) in steps {
            now += secs(dt);
            if ask {
                b.on_request_sent();
                requests += 1;
            }
            let got = b.take(n, now);
            prop_assert!(got <= n);
            prop_assert!(b.tokens(now) >= 0.0);
            processed += got as u64;
        }
        // Never more than the initial token, the requests' bonuses and the time refill.
        let elapsed = now.duration_since(t0).as_secs();
        prop_assert!(processed as f64 <= 1.0 + 1000.0 * requests as f64 + 0.1 * elapsed as f64 + 1e-6);
    }
}
