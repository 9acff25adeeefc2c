//! Graduated peer reputation for misbehaviour, in the manner of Lighthouse's `PeerAction`
//! (issue 14 §3; 28.1.C §6 asks misbehaving peers to be penalised, not how).
//!
//! Each offence is a [`PeerAction`] of a given tolerance that lowers the peer's reputation;
//! the reputation decays back towards 0 exponentially with a half-life of
//! [`HALF_LIFE`] (10 min), so occasional faults (a lost race, a bug in another
//! implementation) are forgiven while a stream of them is not:
//!
//! ```text
//! action                  points   offences to disconnect (≤ -20)   to ban (≤ -50)
//! Fatal                   -100     1                                 1
//! LowToleranceError       -10      2                                 5
//! MidToleranceError       -5       4                                 10
//! HighToleranceError      -1       20                                50
//! ```
//!
//! (counts for offences in quick succession; spread over time, decay absorbs them). The
//! reputation lives in memory only and is bounded to [`MAX_TRACKED`] peers; what persists is
//! the ban it leads to (peers.dat, with its [`crate::record::BanCause`]). It is separate from
//! the connection-history [`crate::score`] that ranks dial candidates.
//!
//! Pure: every method takes `now` (an [`Instant`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p_identity::PeerId;

/// The lowest reputation; a [`PeerAction::Fatal`] offence sets it.
pub const MIN_REPUTATION: f64 = -100.0;

/// At or below this the peer is disconnected (not banned).
pub const DISCONNECT_THRESHOLD: f64 = -20.0;

/// At or below this the peer is banned.
pub const BAN_THRESHOLD: f64 = -50.0;

/// Time for a reputation to decay halfway back to 0 (10 minutes, as Lighthouse).
pub const HALF_LIFE: Duration = Duration::from_secs(600);

/// Most peers whose reputation is tracked; past that the one closest to 0 is forgotten.
pub const MAX_TRACKED: usize = 4096;

/// Below this magnitude a reputation counts as 0 and its entry is dropped.
const NEGLIGIBLE: f64 = 0.5;

/// How bad one offence is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PeerAction {
    /// Provably malicious or unrecoverable: banned at once.
    Fatal,
    /// Clearly against the protocol (an oversized or undecodable message): a few in a
    /// short time lead to a ban.
    LowToleranceError,
    /// Wrong, but possibly from a bug, a race or this node's own view (an invalid blob):
    /// about ten in a short time lead to a ban.
    MidToleranceError,
    /// Common, usually innocent faults: only a long stream of them leads to a ban.
    HighToleranceError,
}

impl PeerAction {
    /// The reputation points the action takes away (positive).
    pub fn points(self) -> f64 {
        match self {
            PeerAction::Fatal => -MIN_REPUTATION,
            PeerAction::LowToleranceError => 10.0,
            PeerAction::MidToleranceError => 5.0,
            PeerAction::HighToleranceError => 1.0,
        }
    }
}

/// What to do with a peer after an offence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Keep the connection: the reputation is above [`DISCONNECT_THRESHOLD`].
    Keep,
    /// Close its connections; it may come back.
    Disconnect,
    /// Ban it (the reputation reached [`BAN_THRESHOLD`]); its entry is reset, the ban now
    /// carries the punishment.
    Ban,
}

#[derive(Clone, Copy, Debug)]
struct Entry {
    value: f64,
    at: Instant,
}

impl Entry {
    fn decayed(&self, now: Instant) -> f64 {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.value * 0.5f64.powf(dt / HALF_LIFE.as_secs_f64())
    }
}

/// The reputations of misbehaving peers (see the module documentation).
#[derive(Debug, Default)]
pub struct Reputations {
    entries: HashMap<PeerId, Entry>,
}

impl Reputations {
    /// An empty table: every peer starts at 0.
    pub fn new() -> Self {
        Self::default()
    }

    /// The reputation of `peer` at `now`, in [[`MIN_REPUTATION`], 0].
    pub fn get(&self, peer: &PeerId, now: Instant) -> f64 {
        self.entries.get(peer).map_or(0.0, |e| e.decayed(now))
    }

    /// Number of peers tracked (at most [`MAX_TRACKED`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when no peer is tracked.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Charges `peer` with `action` at `now`; returns its new reputation and the verdict.
    pub fn apply(&mut self, peer: PeerId, action: PeerAction, now: Instant) -> (f64, Verdict) {
        let value = (self.get(&peer, now) - action.points()).max(MIN_REPUTATION);
        let verdict = if value <= BAN_THRESHOLD {
            Verdict::Ban
        } else if value <= DISCONNECT_THRESHOLD {
            Verdict::Disconnect
        } else {
            Verdict::Keep
        };
        if verdict == Verdict::Ban {
            self.entries.remove(&peer);
        } else {
            if !self.entries.contains_key(&peer) && self.entries.len() >= MAX_TRACKED {
                self.forget_one(now);
            }
            self.entries.insert(peer, Entry { value, at: now });
        }
        (value, verdict)
    }

    /// Forgets `peer` (e.g. the operator lifted its ban).
    pub fn forget(&mut self, peer: &PeerId) {
        self.entries.remove(peer);
    }

    /// Forgets every peer.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Drops entries that decayed to (about) 0 by `now`.
    pub fn prune(&mut self, now: Instant) {
        self.entries
            .retain(|_, e| e.decayed(now).abs() >= NEGLIGIBLE);
    }

    /// Makes room for one entry: drops the decayed ones, else the one closest to 0.
    fn forget_one(&mut self, now: Instant) {
        self.prune(now);
        if self.entries.len() < MAX_TRACKED {
            return;
        }
        if let Some(p) = self
            .entries
            .iter()
            .map(|(p, e)| (*p, e.decayed(now)))
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(p, _)| p)
        {
            self.entries.remove(&p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn peer(n: u64) -> PeerId {
        let mut bytes = vec![0x00, 8];
        bytes.extend_from_slice(&n.to_be_bytes());
        PeerId::from_bytes(&bytes).unwrap()
    }

    /// Offences of `action` in quick succession until the verdict is not `Keep`/`Disconnect`.
    fn offences_to(action: PeerAction, verdict: Verdict) -> usize {
        let mut r = Reputations::new();
        let now = Instant::now();
        for n in 1..=1000 {
            let (_, v) = r.apply(peer(1), action, now);
            if v == verdict || (verdict == Verdict::Disconnect && v == Verdict::Ban) {
                return n;
            }
        }
        panic!("never reached {verdict:?}");
    }

    #[test]
    fn the_tolerance_table_holds() {
        use PeerAction::*;
        for (action, disconnect, ban) in [
            (Fatal, 1, 1),
            (LowToleranceError, 2, 5),
            (MidToleranceError, 4, 10),
            (HighToleranceError, 20, 50),
        ] {
            assert_eq!(
                offences_to(action, Verdict::Disconnect),
                disconnect,
                "{action:?}"
            );
            assert_eq!(offences_to(action, Verdict::Ban), ban, "{action:?}");
        }
    }

    #[test]
    fn reputations_decay_with_the_half_life() {
        let mut r = Reputations::new();
        let t0 = Instant::now();
        r.apply(peer(1), PeerAction::LowToleranceError, t0);
        r.apply(peer(1), PeerAction::LowToleranceError, t0);
        assert!((r.get(&peer(1), t0) + 20.0).abs() < 1e-9);
        assert!((r.get(&peer(1), t0 + HALF_LIFE) + 10.0).abs() < 1e-9);
        // Offences spread out by a half-life never reach a ban.
        let mut t = t0 + HALF_LIFE;
        for _ in 0..100 {
            let (_, v) = r.apply(peer(1), PeerAction::LowToleranceError, t);
            assert_ne!(v, Verdict::Ban);
            t += HALF_LIFE;
        }
        r.prune(t + HALF_LIFE * 20);
        assert!(r.is_empty());
    }

    #[test]
    fn a_ban_resets_and_forget_clears() {
        let mut r = Reputations::new();
        let now = Instant::now();
        assert_eq!(r.apply(peer(2), PeerAction::Fatal, now).1, Verdict::Ban);
        assert_eq!(r.get(&peer(2), now), 0.0);
        r.apply(peer(3), PeerAction::MidToleranceError, now);
        r.forget(&peer(3));
        assert_eq!(r.get(&peer(3), now), 0.0);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut r = Reputations::new();
        let now = Instant::now();
        for n in 0..(MAX_TRACKED as u64 + 100) {
            r.apply(peer(n), PeerAction::HighToleranceError, now);
        }
        assert_eq!(r.len(), MAX_TRACKED);
        // A worse peer displaces one closest to 0, never the worst ones.
        r.apply(peer(1), PeerAction::LowToleranceError, now);
        let worst = peer(u64::MAX);
        r.apply(worst, PeerAction::LowToleranceError, now);
        r.apply(worst, PeerAction::LowToleranceError, now);
        assert!(r.len() <= MAX_TRACKED);
        assert!(r.get(&worst, now) <= -20.0);
        assert!(r.get(&peer(1), now) <= -10.0);
    }

    proptest! {
        /// Whatever the schedule, a reputation stays within [MIN, 0], a ban comes only at
        /// the threshold, and the table stays bounded.
        #[test]
        fn reputations_stay_in_range(
            ops in proptest::collection::vec((0u64..8, 0u8..4, 0u64..2000), 1..300)
        ) {
            let mut r = Reputations::new();
            let mut now = Instant::now();
            for (p, a, dt) in ops {
                now += Duration::from_secs(dt);
                let action = [
                    PeerAction::Fatal,
                    PeerAction::LowToleranceError,
                    PeerAction::MidToleranceError,
                    PeerAction::HighToleranceError,
                ][usize::from(a)];
                let before = r.get(&peer(p), now);
                let (value, verdict) = r.apply(peer(p), action, now);
                prop_assert!((MIN_REPUTATION..=0.0).contains(&value));
                prop_assert!(value <= before);
                prop_assert_eq!(verdict == Verdict::Ban, value <= BAN_THRESHOLD);
                prop_assert!(r.len() <= 8);
            }
        }
    }
}
