//! Identity clashes (issue 14 §4): two processes running with one node key, typically a
//! copied data directory. The data directory's lock only stops a second process on the same
//! host; across hosts (or with a copy) the clash shows on the network instead:
//!
//! * **PeerId:** a dial reaches a node whose PeerId is ours ([`IdentityGuard::on_dial_local`])
//!   at an address that is not one of our own (dialling our own listen address, e.g. when
//!   the seeds list this node, is harmless and ignored), or a dial to another peer is
//!   answered with our PeerId ([`IdentityGuard::on_wrong_peer`]); an inbound connection from
//!   our own PeerId ([`IdentityGuard::on_inbound_local`]) is a clash unless it is the other
//!   end of one of our own self-dials, which is checked [`SELF_DIAL_WINDOW`] later.
//! * **DA authority:** a blob signed with this node's authority key that this node did not
//!   seal (see `DaService::own_key_conflict`).
//!
//! A clash is logged at error level once (and again at most every [`REPORT_EVERY`]), shown in
//! `status` and as `node_identity_clash{kind}` = 1, and stays until the restart: the
//! operator must find and stop the copy. A DA authority also stops sealing.
//!
//! Pure: every method takes `now`.

use std::time::{Duration, Instant};

use libp2p::Multiaddr;

/// How long after an inbound connection from our own PeerId a self-dial of ours may explain
/// it (the two ends of one self-dial fail at about the same time, in either order).
pub const SELF_DIAL_WINDOW: Duration = Duration::from_secs(10);

/// Least time between two error logs of an ongoing clash.
pub const REPORT_EVERY: Duration = Duration::from_secs(600);

/// Most unexplained inbound connections from our own PeerId remembered at once.
const MAX_PENDING: usize = 16;

/// The PeerId-level clash detector and the verdict shown in `status`.
#[derive(Debug, Default)]
pub struct IdentityGuard {
    /// The clash found, if any: what was seen.
    clash: Option<String>,
    /// When it was last logged.
    logged: Option<Instant>,
    /// When one of our dials last reached ourselves at one of our own addresses.
    last_self_dial: Option<Instant>,
    /// Inbound connections from our own PeerId not yet explained by a self-dial.
    pending: Vec<(Multiaddr, Instant)>,
}

impl IdentityGuard {
    /// No clash seen yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The clash found, if any (one sentence naming what was seen).
    pub fn clash(&self) -> Option<&str> {
        self.clash.as_deref()
    }

    /// A dial of ours to `address` reached a node with our own PeerId; `own_address` tells
    /// whether `address` is one of this node's listen or external addresses. Returns a
    /// message to log when this is a (newly reported) clash.
    pub fn on_dial_local(
        &mut self,
        address: &Multiaddr,
        own_address: bool,
        now: Instant,
    ) -> Option<String> {
        if own_address {
            self.last_self_dial = Some(now);
            self.pending
                .retain(|(_, at)| now.saturating_duration_since(*at) > SELF_DIAL_WINDOW);
            return None;
        }
        self.found(
            format!("a node at {address} has this node's PeerId (a copy of its node key?)"),
            now,
        )
    }

    /// A dial to another peer at `address` was answered by a node with our own PeerId.
    pub fn on_wrong_peer(&mut self, address: &Multiaddr, now: Instant) -> Option<String> {
        self.found(
            format!(
                "a node at {address} answered with this node's PeerId (a copy of its node key?)"
            ),
            now,
        )
    }

    /// An inbound connection from `send_back` authenticated with our own PeerId.
    pub fn on_inbound_local(&mut self, send_back: &Multiaddr, now: Instant) {
        if self
            .last_self_dial
            .is_some_and(|t| now.saturating_duration_since(t) <= SELF_DIAL_WINDOW)
        {
            return;
        }
        if self.pending.len() < MAX_PENDING {
            self.pending.push((send_back.clone(), now));
        }
    }

    /// Settles inbound connections older than [`SELF_DIAL_WINDOW`] that no self-dial
    /// explained; returns a message to log when that is a (newly reported) clash.
    pub fn poll(&mut self, now: Instant) -> Option<String> {
        let explained_at = self.last_self_dial;
        let mut unexplained = None;
        self.pending.retain(|(addr, at)| {
            if now.saturating_duration_since(*at) < SELF_DIAL_WINDOW {
                return true;
            }
            let explained = explained_at.is_some_and(|t| {
                t.max(*at).saturating_duration_since(t.min(*at)) <= SELF_DIAL_WINDOW
            });
            if !explained && unexplained.is_none() {
                unexplained = Some(addr.clone());
            }
            false
        });
        let addr = unexplained?;
        self.found(
            format!(
                "a node connecting from {addr} has this node's PeerId (a copy of its node key?)"
            ),
            now,
        )
    }

    /// Records a clash; returns the message when it is due to be logged.
    pub fn found(&mut self, what: String, now: Instant) -> Option<String> {
        self.clash.get_or_insert(what.clone());
        if self
            .logged
            .is_some_and(|t| now.saturating_duration_since(t) < REPORT_EVERY)
        {
            return None;
        }
        self.logged = Some(now);
        Some(what)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_self_dial_is_not_a_clash_in_either_order() {
        let t = Instant::now();
        let mut g = IdentityGuard::new();
        assert_eq!(g.on_dial_local(&a("/ip4/127.0.0.1/tcp/1"), true, t), None);
        g.on_inbound_local(&a("/ip4/127.0.0.1/tcp/50000"), t + Duration::from_secs(1));
        assert_eq!(g.poll(t + Duration::from_secs(30)), None);
        // Inbound first, then the outbound end.
        let mut g = IdentityGuard::new();
        g.on_inbound_local(&a("/ip4/127.0.0.1/tcp/50001"), t);
        assert_eq!(
            g.on_dial_local(&a("/ip4/127.0.0.1/tcp/1"), true, t + Duration::from_secs(2)),
            None
        );
        assert_eq!(g.poll(t + Duration::from_secs(30)), None);
        assert_eq!(g.clash(), None);
    }

    #[test]
    fn an_unexplained_inbound_connection_is_a_clash_after_the_window() {
        let t = Instant::now();
        let mut g = IdentityGuard::new();
        g.on_inbound_local(&a("/ip4/198.51.100.7/tcp/4000"), t);
        assert_eq!(
            g.poll(t + Duration::from_secs(5)),
            None,
            "still in the window"
        );
        let m = g.poll(t + SELF_DIAL_WINDOW).expect("clash");
        assert!(m.contains("198.51.100.7"), "{m}");
        assert!(g.clash().is_some());
    }

    #[test]
    fn a_dial_to_another_address_is_a_clash_logged_once_per_period() {
        let t = Instant::now();
        let mut g = IdentityGuard::new();
        let m = g
            .on_dial_local(&a("/ip4/127.0.0.2/tcp/2"), false, t)
            .expect("clash");
        assert!(m.contains("127.0.0.2"));
        assert_eq!(
            g.on_wrong_peer(&a("/ip4/127.0.0.2/tcp/2"), t + Duration::from_secs(1)),
            None
        );
        assert!(g
            .on_wrong_peer(&a("/ip4/127.0.0.2/tcp/2"), t + REPORT_EVERY)
            .is_some());
        assert!(
            g.clash().unwrap().contains("127.0.0.2/tcp/2"),
            "the first one is kept"
        );
    }

    #[test]
    fn pending_is_bounded() {
        let t = Instant::now();
        let mut g = IdentityGuard::new();
        for i in 0..100 {
            g.on_inbound_local(&a(&format!("/ip4/127.0.0.1/tcp/{}", 1000 + i)), t);
        }
        assert!(g.pending.len() <= MAX_PENDING);
    }
}
