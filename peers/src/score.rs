//! Peer scoring and ranking (28.1.B §5). Pure functions of a record and `now` (UNIX seconds).
//!
//! ```text
//! score = 100
//!       + 2 * success_count
//!       - 3 * failure_count
//!       + recency bonus      (last success < 1 h ago: +10, < 24 h ago: +5)
//!       - staleness penalty  (last success > 7 days ago: -5, > 30 days ago: -10)
//! ```
//!
//! A never-successful peer gets neither bonus nor penalty. A last success in the future
//! (clock skew) counts as "just now". Suspicious entries (≥ 10 consecutive failures,
//! 28.1.B §4) are ranked after all others by [`dial_order`], whatever their score.

use std::cmp::Ordering;

use crate::record::{PeerRecord, SUSPICIOUS_CONSECUTIVE_FAILURES};

/// Score of a peer with no history.
pub const BASE_SCORE: i64 = 100;
/// Added per successful handshake.
pub const SUCCESS_POINTS: i64 = 2;
/// Subtracted per failed attempt.
pub const FAILURE_POINTS: i64 = 3;

const HOUR: u64 = 60 * 60;
const DAY: u64 = 24 * HOUR;

/// The part of a record that scoring and ranking look at (also kept in the store's
/// in-memory eviction index).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Standing {
    pub(crate) success_count: u32,
    pub(crate) failure_count: u32,
    pub(crate) consecutive_failures: u32,
    pub(crate) last_success: Option<u64>,
    pub(crate) banned_until: Option<u64>,
}

impl From<&PeerRecord> for Standing {
    fn from(r: &PeerRecord) -> Self {
        Self {
            success_count: r.success_count,
            failure_count: r.failure_count,
            consecutive_failures: r.consecutive_failures,
            last_success: r.last_success,
            banned_until: r.banned_until,
        }
    }
}

impl Standing {
    pub(crate) fn score(&self, now: u64) -> i64 {
        let mut s = BASE_SCORE + SUCCESS_POINTS * i64::from(self.success_count)
            - FAILURE_POINTS * i64::from(self.failure_count);
        if let Some(t) = self.last_success {
            let age = now.saturating_sub(t);
            s += if age < HOUR {
                10
            } else if age < DAY {
                5
            } else if age > 30 * DAY {
                -10
            } else if age > 7 * DAY {
                -5
            } else {
                0
            };
        }
        s
    }

    /// True while a ban is in force at `now` (`now < banned_until`).
    pub(crate) fn is_banned(&self, now: u64) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    pub(crate) fn is_suspicious(&self) -> bool {
        self.consecutive_failures >= SUSPICIOUS_CONSECUTIVE_FAILURES
    }

    /// Best first: non-suspicious, higher score, more recent last success (never last).
    pub(crate) fn rank(&self, other: &Standing, now: u64) -> Ordering {
        self.is_suspicious()
            .cmp(&other.is_suspicious())
            .then_with(|| other.score(now).cmp(&self.score(now)))
            .then_with(|| other.last_success.cmp(&self.last_success))
    }
}

/// The 28.1.B §5 score of `r` at `now` (UNIX seconds); higher is better.
///
/// Never overflows: the counters are `u32`, so the result lies within about ±1.3·10¹⁰.
pub fn score(r: &PeerRecord, now: u64) -> i64 {
    Standing::from(r).score(now)
}

/// The order in which peers are dialled and shared: `Less` means `a` goes first.
///
/// Non-suspicious before suspicious, then higher [`score`] first, then the more recent
/// `last_success` first (never-contacted last), then by PeerId so the order is total.
pub fn dial_order(a: &PeerRecord, b: &PeerRecord, now: u64) -> Ordering {
    Standing::from(a)
        .rank(&Standing::from(b), now)
        .then_with(|| a.peer_id.cmp(&b.peer_id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::{net, peer};
    use dsdn_protocols::{PeerSource, ServiceSet};
    use proptest::prelude::*;

    const NOW: u64 = 1_700_000_000;

    fn rec(success: u32, failure: u32, last_success: Option<u64>) -> PeerRecord {
        let mut r = PeerRecord::new(
            peer(1),
            vec![],
            net(),
            ServiceSet::EMPTY,
            PeerSource::DnsSeed,
            0,
        );
        r.success_count = success;
        r.failure_count = failure;
        r.last_success = last_success;
        r
    }

    #[test]
    fn spec_table() {
        assert_eq!(score(&rec(0, 0, None), NOW), 100);
        assert_eq!(score(&rec(5, 2, None), NOW), 100 + 10 - 6);
        // Recency bonus.
        assert_eq!(score(&rec(1, 0, Some(NOW)), NOW), 112);
        assert_eq!(score(&rec(1, 0, Some(NOW - HOUR + 1)), NOW), 112);
        assert_eq!(score(&rec(1, 0, Some(NOW - HOUR)), NOW), 107);
        assert_eq!(score(&rec(1, 0, Some(NOW - DAY + 1)), NOW), 107);
        // Between 24 h and 7 days: nothing.
        assert_eq!(score(&rec(1, 0, Some(NOW - DAY)), NOW), 102);
        assert_eq!(score(&rec(1, 0, Some(NOW - 7 * DAY)), NOW), 102);
        // Staleness penalty.
        assert_eq!(score(&rec(1, 0, Some(NOW - 7 * DAY - 1)), NOW), 97);
        assert_eq!(score(&rec(1, 0, Some(NOW - 30 * DAY)), NOW), 97);
        assert_eq!(score(&rec(1, 0, Some(NOW - 30 * DAY - 1)), NOW), 92);
        // Future timestamps count as now.
        assert_eq!(score(&rec(1, 0, Some(NOW + 50)), NOW), 112);
        // Extremes do not overflow.
        assert_eq!(
            score(&rec(u32::MAX, 0, None), NOW),
            100 + 2 * i64::from(u32::MAX)
        );
        assert_eq!(
            score(&rec(0, u32::MAX, None), NOW),
            100 - 3 * i64::from(u32::MAX)
        );
    }

    #[test]
    fn suspicious_sorts_last_whatever_the_score() {
        let mut good = rec(1000, 9, Some(NOW));
        good.peer_id = peer(1);
        good.consecutive_failures = 10;
        let mut poor = rec(0, 50, None);
        poor.peer_id = peer(2);
        poor.consecutive_failures = 9;
        assert!(score(&good, NOW) > score(&poor, NOW));
        assert_eq!(dial_order(&poor, &good, NOW), Ordering::Less);
        assert_eq!(dial_order(&good, &poor, NOW), Ordering::Greater);
    }

    #[test]
    fn ties_prefer_recent_success() {
        // Both score 107 (1 success, < 24 h ago) but one is more recent.
        let mut a = rec(1, 0, Some(NOW - 2 * HOUR));
        a.peer_id = peer(9);
        let mut b = rec(1, 0, Some(NOW - 3 * HOUR));
        b.peer_id = peer(1);
        assert_eq!(score(&a, NOW), score(&b, NOW));
        assert_eq!(dial_order(&a, &b, NOW), Ordering::Less);
        // Same score, one never contacted: the contacted one first.
        let c = rec(0, 0, None); // 100
        let mut d = rec(0, 0, Some(NOW - 2 * DAY)); // 100
        d.peer_id = peer(3);
        assert_eq!(dial_order(&d, &c, NOW), Ordering::Less);
    }

    fn any_record() -> impl Strategy<Value = PeerRecord> {
        (
            0u32..100_000,
            0u32..100_000,
            0u32..30,
            proptest::option::of(0u64..NOW + 10 * DAY),
        )
            .prop_map(|(s, f, c, ls)| {
                let mut r = rec(s, f, ls);
                r.consecutive_failures = c;
                r
            })
    }

    proptest! {
        #[test]
        fn monotonic_in_successes(r in any_record(), extra in 1u32..1000) {
            let mut more = r.clone();
            more.success_count += extra;
            prop_assert!(score(&more, NOW) > score(&r, NOW));
        }

        #[test]
        fn antitone_in_failures(r in any_record(), extra in 1u32..1000) {
            let mut more = r.clone();
            more.failure_count += extra;
            prop_assert!(score(&more, NOW) < score(&r, NOW));
        }

        #[test]
        fn bonus_and_penalty_are_bounded(r in any_record(), now in 0u64..NOW * 2) {
            let plain = BASE_SCORE + 2 * i64::from(r.success_count) - 3 * i64::from(r.failure_count);
            let d = score(&r, now) - plain;
            prop_assert!((-10..=10).contains(&d));
            if r.last_success.is_none() {
                prop_assert_eq!(d, 0);
            }
        }

        #[test]
        fn dial_order_is_a_total_order(a in any_record(), b in any_record(), pa in 0u64..4, pb in 0u64..4) {
            let mut a = a;
            a.peer_id = peer(pa);
            let mut b = b;
            b.peer_id = peer(pb);
            prop_assert_eq!(dial_order(&a, &b, NOW), dial_order(&b, &a, NOW).reverse());
            if a.is_suspicious() != b.is_suspicious() {
                let expected = if a.is_suspicious() { Ordering::Greater } else { Ordering::Less };
                prop_assert_eq!(dial_order(&a, &b, NOW), expected);
            }
        }
    }
}
