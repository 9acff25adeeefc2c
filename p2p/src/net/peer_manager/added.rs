//! The state of the peers the operator added (`dsdn-agent peers add`, issue 15 §6), like
//! Bitcoin Core's `addnode` list: each is kept connected, re-dialled after a failure with a
//! backoff, and shows whether it is connected, being dialled or waiting, with its last
//! error and the time of the next retry.
//!
//! [`AddedPeers`] is plain state: the peer manager tells it which dials it started for an
//! entry and how they ended, which verified connection belongs to it, and when that peer
//! disconnected; [`AddedPeers::due`] says which entries to dial at `now`. It holds at most
//! one entry per added peer ([`dsdn_bootstrap::added::MAX_ADDED`] at most).

use std::time::{Duration, Instant};

use dsdn_bootstrap::config::StaticPeer;
use libp2p::swarm::ConnectionId;
use libp2p::PeerId;

use super::dialing::static_peer_id;

/// First retry after a failed dial; doubled per consecutive failure up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_secs(30);

/// Longest wait between two dials of an added peer.
pub const MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Longest last-error text kept, in characters.
const MAX_ERROR_CHARS: usize = 200;

/// Where an added peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddedState {
    /// A verified connection is open.
    Connected,
    /// A dial is in flight.
    Dialing,
    /// Not connected; dialled again at the next retry.
    Waiting,
}

impl AddedState {
    /// `connected`, `dialing` or `waiting`.
    pub fn as_str(self) -> &'static str {
        match self {
            AddedState::Connected => "connected",
            AddedState::Dialing => "dialing",
            AddedState::Waiting => "waiting",
        }
    }
}

/// One added peer as [`AddedPeers::view`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddedPeerView {
    /// The peer as the operator gave it.
    pub peer: StaticPeer,
    /// Its PeerId, when the address names one or a connection verified it.
    pub peer_id: Option<PeerId>,
    /// Where it stands.
    pub state: AddedState,
    /// The last dial's error, when it failed.
    pub last_error: Option<String>,
    /// Time until the next dial, while waiting.
    pub next_retry: Option<Duration>,
}

#[derive(Debug)]
struct Entry {
    peer: StaticPeer,
    peer_id: Option<PeerId>,
    connected: bool,
    dials: Vec<ConnectionId>,
    last_error: Option<String>,
    failures: u32,
    next_retry: Instant,
}

/// The operator's added peers and their state; see the module documentation.
#[derive(Debug, Default)]
pub struct AddedPeers {
    entries: Vec<Entry>,
}

fn backoff(failures: u32) -> Duration {
    FIRST_BACKOFF
        .saturating_mul(1u32 << failures.saturating_sub(1).min(10))
        .min(MAX_BACKOFF)
}

impl AddedPeers {
    /// Tracks `peer` (added now, or loaded from the additions file), to be dialled at once.
    pub fn add(&mut self, peer: StaticPeer, now: Instant) {
        if self.entries.iter().any(|e| e.peer == peer) {
            return;
        }
        self.entries.push(Entry {
            peer_id: static_peer_id(&peer),
            peer,
            connected: false,
            dials: Vec::new(),
            last_error: None,
            failures: 0,
            next_retry: now,
        });
    }

    /// Stops tracking `peer`; false when it was not tracked.
    pub fn remove(&mut self, peer: &StaticPeer) -> bool {
        let before = self.entries.len();
        self.entries.retain(|e| e.peer != *peer);
        self.entries.len() != before
    }

    /// The entries to dial at `now`: not connected, no dial in flight, retry time reached.
    /// Each is moved to its next retry time, so it is returned once per backoff.
    pub fn due(&mut self, now: Instant) -> Vec<StaticPeer> {
        let mut out = Vec::new();
        for e in &mut self.entries {
            if !e.connected && e.dials.is_empty() && e.next_retry <= now {
                e.next_retry = now + backoff(e.failures.max(1));
                out.push(e.peer.clone());
            }
        }
        out
    }

    /// The peer manager started dial `id` for `peer` (an added one or not: others are
    /// ignored).
    pub fn dial_started(&mut self, peer: &StaticPeer, id: ConnectionId) {
        if let Some(e) = self.entries.iter_mut().find(|e| e.peer == *peer) {
            e.dials.push(id);
        }
    }

    /// A dial of an added peer went on as dial `new` (the QUIC fallback of a TCP dial).
    pub fn dial_replaced(&mut self, old: ConnectionId, new: ConnectionId) {
        for e in &mut self.entries {
            for d in &mut e.dials {
                if *d == old {
                    *d = new;
                }
            }
        }
    }

    /// Dial (or its connection before the handshake verified) `id` failed with `error`.
    /// When it was the entry's last dial in flight (the operator's, the fallback chain's
    /// and a recovery sweep's may overlap), that counts as one failure for the backoff.
    pub fn dial_failed(&mut self, id: ConnectionId, error: &str, now: Instant) {
        for e in &mut self.entries {
            if let Some(i) = e.dials.iter().position(|d| *d == id) {
                e.dials.swap_remove(i);
                if e.connected {
                    continue;
                }
                e.last_error = Some(error.chars().take(MAX_ERROR_CHARS).collect());
                if e.dials.is_empty() {
                    e.failures = e.failures.saturating_add(1);
                    e.next_retry = now + backoff(e.failures);
                }
            }
        }
    }

    /// Connection `id` to `peer` verified: the entry whose dial it was, or whose PeerId it
    /// is, is connected.
    pub fn verified(&mut self, peer: PeerId, id: ConnectionId) {
        for e in &mut self.entries {
            let ours = e.dials.contains(&id);
            if ours || e.peer_id == Some(peer) {
                e.dials.retain(|d| *d != id);
                e.peer_id = Some(peer);
                e.connected = true;
                e.failures = 0;
                e.last_error = None;
            }
        }
    }

    /// `peer`'s last verified connection closed: its entries wait [`FIRST_BACKOFF`].
    pub fn disconnected(&mut self, peer: &PeerId, now: Instant) {
        for e in &mut self.entries {
            if e.connected && e.peer_id == Some(*peer) {
                e.connected = false;
                e.next_retry = now + FIRST_BACKOFF;
            }
        }
    }

    /// Every added peer's state at `now`, in the order added.
    pub fn view(&self, now: Instant) -> Vec<AddedPeerView> {
        self.entries
            .iter()
            .map(|e| {
                let state = if e.connected {
                    AddedState::Connected
                } else if !e.dials.is_empty() {
                    AddedState::Dialing
                } else {
                    AddedState::Waiting
                };
                AddedPeerView {
                    peer: e.peer.clone(),
                    peer_id: e.peer_id,
                    state,
                    last_error: e.last_error.clone().filter(|_| !e.connected),
                    next_retry: (state == AddedState::Waiting)
                        .then(|| e.next_retry.saturating_duration_since(now)),
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(s: &str) -> StaticPeer {
        StaticPeer::parse(s).expect("static peer")
    }

    #[test]
    fn a_failing_peer_backs_off_and_a_verified_one_is_connected() {
        let t0 = Instant::now();
        let mut a = AddedPeers::default();
        let p = peer("198.51.100.7:4001");
        a.add(p.clone(), t0);
        a.add(p.clone(), t0);
        assert_eq!(a.due(t0), vec![p.clone()]);
        assert!(a.due(t0).is_empty(), "returned once per backoff");
        let c1 = ConnectionId::new_unchecked(1);
        a.dial_started(&p, c1);
        assert_eq!(a.view(t0)[0].state, AddedState::Dialing);
        // The TCP dial fails and goes on over QUIC, which fails too.
        let c2 = ConnectionId::new_unchecked(2);
        a.dial_replaced(c1, c2);
        a.dial_failed(c2, "Connection refused (os error 111)", t0);
        let v = &a.view(t0)[0];
        assert_eq!(v.state, AddedState::Waiting);
        assert_eq!(
            v.last_error.as_deref(),
            Some("Connection refused (os error 111)")
        );
        assert_eq!(v.next_retry, Some(FIRST_BACKOFF));
        assert!(a.due(t0 + Duration::from_secs(29)).is_empty());
        assert_eq!(a.due(t0 + FIRST_BACKOFF), vec![p.clone()]);
        let c3 = ConnectionId::new_unchecked(3);
        a.dial_started(&p, c3);
        a.dial_failed(c3, "timeout", t0 + FIRST_BACKOFF);
        assert_eq!(
            a.view(t0 + FIRST_BACKOFF)[0].next_retry,
            Some(2 * FIRST_BACKOFF)
        );
        // Overlapping dials (the operator's and a recovery sweep's) count once.
        let t2 = t0 + 3 * FIRST_BACKOFF;
        let (c5, c6) = (
            ConnectionId::new_unchecked(5),
            ConnectionId::new_unchecked(6),
        );
        a.dial_started(&p, c5);
        a.dial_started(&p, c6);
        a.dial_failed(c5, "refused", t2);
        assert_eq!(a.view(t2)[0].state, AddedState::Dialing);
        a.dial_failed(c6, "refused", t2);
        assert_eq!(a.view(t2)[0].next_retry, Some(4 * FIRST_BACKOFF));
        // Backoff is capped.
        assert_eq!(backoff(30), MAX_BACKOFF);

        // Verified through a later dial: connected, the error cleared, the PeerId learned.
        let c4 = ConnectionId::new_unchecked(4);
        a.dial_started(&p, c4);
        let id = PeerId::random();
        a.verified(id, c4);
        let v = &a.view(t0)[0];
        assert_eq!(v.state, AddedState::Connected);
        assert_eq!(v.peer_id, Some(id));
        assert_eq!(v.last_error, None);
        assert!(a.due(t0 + MAX_BACKOFF * 2).is_empty());
        // Disconnected: waits FIRST_BACKOFF, then is dialled again.
        let t1 = t0 + Duration::from_secs(1000);
        a.disconnected(&id, t1);
        assert_eq!(a.view(t1)[0].next_retry, Some(FIRST_BACKOFF));
        assert_eq!(a.due(t1 + FIRST_BACKOFF), vec![p.clone()]);
        assert!(a.remove(&p));
        assert!(!a.remove(&p));
        assert!(a.view(t1).is_empty());
    }

    #[test]
    fn a_peer_id_in_the_address_matches_an_inbound_connection() {
        let t0 = Instant::now();
        let mut a = AddedPeers::default();
        let id = PeerId::random();
        let p = peer(&format!("/ip4/198.51.100.7/tcp/4001/p2p/{id}"));
        a.add(p, t0);
        a.verified(id, ConnectionId::new_unchecked(9));
        assert_eq!(a.view(t0)[0].state, AddedState::Connected);
    }
}
