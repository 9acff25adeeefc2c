//! Where a coordinator that runs the committee protocol but does not seal (a follower, a
//! retired member) sends the DA events posted to it (issue 13 §1): to the proposer of the
//! height it is deciding, like a member's forward, with the round estimated here since a
//! follower takes no part in the rounds.
//!
//! [`ForwardPlan`] is pure (every call takes `now`). For a new height the events go to the
//! proposer of round 0; while they wait at the same height, every `every` (the base round
//! timeout) they go to the proposer of the next round, so that within `n` intervals every
//! member of an `n`-member committee holds them (whoever proposes next seals them: members
//! include forwarded events in their proposals). A refusal or a failed request makes the
//! next round due after `every / 4`. New events (a new pool generation) go to the same
//! round's proposer at once.

use std::time::{Duration, Instant};

use dsdn_protocols::committee::rotation::RotationConfig;
use dsdn_protocols::committee::MemberId;

/// The last forward: the height and pool generation it carried, the round whose proposer
/// it went to, and when the next one is due even if nothing changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Sent {
    height: u64,
    generation: u64,
    round: u64,
    at: Instant,
    next_at: Instant,
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct ForwardPlan {
    every: Duration,
    last: Option<Sent>,
}

impl ForwardPlan {
    /// A plan that moves to the next round's proposer every `every` (at least 1 ms).
    pub(crate) fn new(every: Duration) -> Self {
        Self {
            every: every.max(Duration::from_millis(1)),
            last: None,
        }
    }

    /// The round whose proposer the pending events go to now, or `None` when nothing is
    /// due: `height` is the DA height this node decides (its tip + 1), `generation` the
    /// pool's generation of own events (`DaService::own_pending`), `pending` whether any
    /// own event waits (without, the plan resets).
    pub(crate) fn due(
        &mut self,
        height: u64,
        generation: u64,
        pending: bool,
        now: Instant,
    ) -> Option<u64> {
        if !pending {
            self.last = None;
            return None;
        }
        let round = match self.last {
            None => 0,
            Some(s) if s.height != height => 0,
            Some(s) if now >= s.next_at => s.round.saturating_add(1),
            Some(s) if s.generation != generation => s.round,
            Some(_) => return None,
        };
        self.last = Some(Sent {
            height,
            generation,
            round,
            at: now,
            next_at: now + self.every,
        });
        Some(round)
    }

    /// The last forward was refused or failed: the next round is due `every / 4` after
    /// it was sent (at once when that passed).
    pub(crate) fn refused(&mut self, now: Instant) {
        let quarter = self.every / 4;
        if let Some(s) = self.last.as_mut() {
            s.next_at = s.next_at.min((s.at + quarter).max(now));
        }
    }

    /// Forgets the last forward (this node seals now, or stops forwarding).
    pub(crate) fn reset(&mut self) {
        self.last = None;
    }

    /// When [`ForwardPlan::due`] next gives a round with nothing changed (only while events
    /// wait).
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.last.map(|s| s.next_at)
    }
}

/// The member the events of `(height, round)` go to: its proposer, or, when that is `me`
/// (a retired member whose service still names its old committee), the proposer of the
/// next round that is not. `None` only for a committee of `me` alone.
pub(crate) fn forward_target<'a>(
    config: &'a RotationConfig,
    me: &MemberId,
    height: u64,
    round: u64,
) -> Option<&'a MemberId> {
    (0..config.members().len() as u64)
        .map(|i| config.proposer(height, round.saturating_add(i)))
        .find(|p| *p != me)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsdn_protocols::committee::CommitteeConfig;

    const EVERY: Duration = Duration::from_millis(400);

    fn config(n: u8) -> RotationConfig {
        let members = (1..=n)
            .map(|i| MemberId::new(vec![i; 8]).unwrap())
            .collect::<Vec<_>>();
        let committee = CommitteeConfig {
            epoch: 1,
            threshold: u16::from(n / 2 + 1),
            members,
        };
        RotationConfig::new(&committee, EVERY).unwrap()
    }

    #[test]
    fn round_zero_first_then_the_next_round_each_interval() {
        let t0 = Instant::now();
        let mut p = ForwardPlan::new(EVERY);
        assert_eq!(p.due(5, 1, true, t0), Some(0));
        // Nothing changed: nothing due before the interval.
        assert_eq!(p.due(5, 1, true, t0 + EVERY / 2), None);
        assert_eq!(p.next_deadline(), Some(t0 + EVERY));
        assert_eq!(p.due(5, 1, true, t0 + EVERY), Some(1));
        assert_eq!(p.due(5, 1, true, t0 + EVERY * 2), Some(2));
    }

    #[test]
    fn new_events_go_to_the_same_round_and_a_new_height_to_round_zero() {
        let t0 = Instant::now();
        let mut p = ForwardPlan::new(EVERY);
        assert_eq!(p.due(5, 1, true, t0), Some(0));
        assert_eq!(p.due(5, 1, true, t0 + EVERY), Some(1));
        let t1 = t0 + EVERY + Duration::from_millis(10);
        assert_eq!(p.due(5, 2, true, t1), Some(1));
        assert_eq!(p.due(5, 2, true, t1), None);
        assert_eq!(p.due(6, 2, true, t1), Some(0));
    }

    #[test]
    fn nothing_pending_resets_and_sends_nothing() {
        let t0 = Instant::now();
        let mut p = ForwardPlan::new(EVERY);
        assert_eq!(p.due(5, 1, false, t0), None);
        assert_eq!(p.next_deadline(), None);
        assert_eq!(p.due(5, 1, true, t0), Some(0));
        assert_eq!(p.due(5, 1, true, t0 + EVERY), Some(1));
        assert_eq!(p.due(5, 1, false, t0 + EVERY), None);
        assert_eq!(p.next_deadline(), None);
        // Back to round 0 when events wait again.
        assert_eq!(p.due(5, 2, true, t0 + EVERY), Some(0));
        p.reset();
        assert_eq!(p.due(5, 2, true, t0 + EVERY), Some(0));
    }

    #[test]
    fn a_refusal_moves_on_after_a_quarter_interval_not_in_a_loop() {
        let t0 = Instant::now();
        let mut p = ForwardPlan::new(EVERY);
        assert_eq!(p.due(5, 1, true, t0), Some(0));
        p.refused(t0 + Duration::from_millis(1));
        assert_eq!(p.next_deadline(), Some(t0 + EVERY / 4));
        assert_eq!(p.due(5, 1, true, t0 + Duration::from_millis(50)), None);
        assert_eq!(p.due(5, 1, true, t0 + EVERY / 4), Some(1));
        // A late refusal (after the quarter) makes the next round due at once.
        let t1 = t0 + EVERY / 4;
        p.refused(t1 + EVERY / 2);
        assert_eq!(p.next_deadline(), Some(t1 + EVERY / 2));
        // A refusal never delays what is due.
        let mut q = ForwardPlan::new(EVERY);
        assert_eq!(q.due(5, 1, true, t0), Some(0));
        q.refused(t0 + EVERY * 3);
        assert_eq!(q.next_deadline(), Some(t0 + EVERY));
    }

    #[test]
    fn the_rounds_reach_every_member_and_never_this_node() {
        let c = config(3);
        let me = c.members()[1].clone();
        let mut seen = Vec::new();
        for round in 0..3 {
            let t = forward_target(&c, &me, 7, round).unwrap();
            assert_ne!(*t, me);
            seen.push(t.clone());
        }
        for m in c.members().iter().filter(|m| **m != me) {
            assert!(seen.contains(m), "{m:?} never targeted");
        }
        // A follower (not in the committee) targets exactly the proposer of the round.
        let outsider = MemberId::new(vec![9; 8]).unwrap();
        for round in 0..6 {
            assert_eq!(
                forward_target(&c, &outsider, 7, round),
                Some(c.proposer(7, round))
            );
        }
    }
}
