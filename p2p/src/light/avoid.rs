//! The full nodes a checkpoint follower stays away from (issue 16 §4): a peer whose
//! catch-up answer held a blob the [`super::Follower`] refused (a bad signature, a broken
//! hash link, a wrong root) is not asked again for [`AVOID_FOR`] while another full node is
//! connected. Without it the follower asked the same first full node again and again, and
//! one peer serving a false chain stalled it for good. Pure: `now` is passed in.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::PeerId;

/// How long a peer that served a refused blob is passed over.
pub const AVOID_FOR: Duration = Duration::from_secs(300);

/// Most peers remembered (the one closest to its end is forgotten first).
pub const MAX_AVOIDED: usize = 64;

/// See the module docs.
#[derive(Debug, Default)]
pub(super) struct Avoided {
    until: HashMap<PeerId, Instant>,
}

impl Avoided {
    /// True when no peer is passed over (the follower then lets the node pick, and lists no
    /// peers).
    pub(super) fn is_empty(&self) -> bool {
        self.until.is_empty()
    }

    /// `peer` served a refused blob at `now`.
    pub(super) fn add(&mut self, peer: PeerId, now: Instant) {
        if !self.until.contains_key(&peer) && self.until.len() >= MAX_AVOIDED {
            if let Some(first) = self.until.iter().min_by_key(|(_, t)| **t).map(|(p, _)| *p) {
                self.until.remove(&first);
            }
        }
        self.until.insert(peer, now + AVOID_FOR);
    }

    /// The first of `candidates` (connected full nodes) not passed over at `now`; `None`
    /// when every candidate is (the node then picks, as without this). Expired entries are
    /// forgotten.
    pub(super) fn pick(
        &mut self,
        candidates: impl IntoIterator<Item = PeerId>,
        now: Instant,
    ) -> Option<PeerId> {
        self.until.retain(|_, t| *t > now);
        candidates.into_iter().find(|p| !self.until.contains_key(p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_peer_is_passed_over_until_its_time_is_up() {
        let now = Instant::now();
        let (bad, good) = (PeerId::random(), PeerId::random());
        let mut a = Avoided::default();
        assert!(a.is_empty());
        assert_eq!(a.pick([bad, good], now), Some(bad));
        a.add(bad, now);
        assert!(!a.is_empty());
        assert_eq!(a.pick([bad, good], now), Some(good));
        // Only the bad one connected: the node picks.
        assert_eq!(a.pick([bad], now + Duration::from_secs(1)), None);
        // Its time is up: asked again, and forgotten.
        assert_eq!(a.pick([bad, good], now + AVOID_FOR), Some(bad));
        assert!(a.is_empty());
    }

    #[test]
    fn the_memory_is_capped() {
        let now = Instant::now();
        let mut a = Avoided::default();
        let first = PeerId::random();
        a.add(first, now);
        for i in 1..=MAX_AVOIDED as u64 {
            a.add(PeerId::random(), now + Duration::from_millis(i));
        }
        assert_eq!(a.until.len(), MAX_AVOIDED);
        // The oldest entry went first.
        assert_eq!(a.pick([first], now), Some(first));
    }
}
