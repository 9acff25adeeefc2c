//! New and tried addresses (issue 12 §3), as Bitcoin Core keeps them apart.
//!
//! * An **outbound** peer (we dialled it: full outbound, feeler, Kademlia or gossipsub
//!   dial) is recorded as contacted ("tried") at the address we reached plus the addresses
//!   it announced on that same IP ([`reached_addrs`]); its other announced addresses are
//!   not believed.
//! * An **inbound** peer's announced addresses are recorded untested
//!   ([`dsdn_peers::store::PeerStore::record_untested`]): PEX does not share them, so no
//!   peer can make the network advertise an address that is not its own.
//! * An **address test** makes them tried: for an inbound peer with untested announced
//!   addresses one test dial is queued ([`AddressTests`]: at most [`ADDRESS_TEST_QUEUE`]
//!   queued, one peer once, each peer at most once per [`ADDRESS_TEST_PER_PEER`], one dial
//!   per [`ADDRESS_TEST_GAP`]). It dials one announced address with the peer's PeerId (noise
//!   authenticates it, so a liar's dial of someone else's address fails), on a new port
//!   and even though the peer is connected; once connected the address (and the announced
//!   ones on the same IP) is recorded as a success and the extra connection is closed. A
//!   failed test leaves the addresses untested and charges the peer nothing.
//!
//! [`AddressTests`] and [`reached_addrs`] are pure; the dials are in [`PeerManager`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use dsdn_protocols::{PeerSource, ServiceSet};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{CloseConnection, ConnectionId, ToSwarm};
use libp2p::{Multiaddr, PeerId};

use super::dialing::preferred_dial_addrs;
use super::{unix_now, Dial, DialKind, PeerManager, VerifiedInfo};

/// Address tests waiting to be dialled, at most.
pub const ADDRESS_TEST_QUEUE: usize = 256;

/// Least time between two address-test dials.
pub const ADDRESS_TEST_GAP: Duration = Duration::from_secs(1);

/// Least time between two address tests of one peer.
pub const ADDRESS_TEST_PER_PEER: Duration = Duration::from_secs(600);

/// A connected inbound peer whose last successful contact is older than this (UNIX
/// seconds; half the 24 h PEX window) is tested again at the next feeler round, so peers
/// that only ever dial in keep being shared.
pub(crate) const RETEST_AFTER_SECS: u64 = 12 * 3600;

/// The rate-limited queue of address tests; see the module documentation.
#[derive(Debug)]
pub(crate) struct AddressTests {
    queue: VecDeque<(PeerId, Multiaddr)>,
    queued: HashSet<PeerId>,
    /// When each peer was last queued (entries older than [`ADDRESS_TEST_PER_PEER`] are
    /// pruned when the map grows).
    last: HashMap<PeerId, Instant>,
    next_dial: Instant,
}

impl AddressTests {
    /// An empty queue whose first dial may run at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Self {
            queue: VecDeque::new(),
            queued: HashSet::new(),
            last: HashMap::new(),
            next_dial: now,
        }
    }

    /// Queues a test of `peer` at `addr`; false when the queue is full, the peer is queued
    /// already or was queued less than [`ADDRESS_TEST_PER_PEER`] ago.
    pub(crate) fn offer(&mut self, peer: PeerId, addr: Multiaddr, now: Instant) -> bool {
        if self.queue.len() >= ADDRESS_TEST_QUEUE || self.queued.contains(&peer) {
            return false;
        }
        if self
            .last
            .get(&peer)
            .is_some_and(|t| now.saturating_duration_since(*t) < ADDRESS_TEST_PER_PEER)
        {
            return false;
        }
        if self.last.len() >= 4 * ADDRESS_TEST_QUEUE {
            self.last
                .retain(|_, t| now.saturating_duration_since(*t) < ADDRESS_TEST_PER_PEER);
        }
        self.last.insert(peer, now);
        self.queued.insert(peer);
        self.queue.push_back((peer, addr));
        true
    }

    /// The next test to dial at `now`, at most one per [`ADDRESS_TEST_GAP`].
    pub(crate) fn pop(&mut self, now: Instant) -> Option<(PeerId, Multiaddr)> {
        if now < self.next_dial {
            return None;
        }
        let (peer, addr) = self.queue.pop_front()?;
        self.queued.remove(&peer);
        self.next_dial = now + ADDRESS_TEST_GAP;
        Some((peer, addr))
    }

    /// When [`AddressTests::pop`] next has something to give, if anything is queued.
    pub(crate) fn next_wakeup(&self) -> Option<Instant> {
        (!self.queue.is_empty()).then_some(self.next_dial)
    }

    /// Tests waiting.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// The transport IP of `addr` (its first component), if any.
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(IpAddr::V4(ip)),
        Protocol::Ip6(ip) => Some(IpAddr::V6(ip)),
        _ => None,
    }
}

/// `addr` without a trailing `/p2p/<id>` (the swarm appends it to the addresses it dials).
fn without_peer_id(addr: &Multiaddr) -> Multiaddr {
    let mut addr = addr.clone();
    if matches!(addr.iter().last(), Some(Protocol::P2p(_))) {
        addr.pop();
    }
    addr
}

/// The addresses a connection we opened to a peer shows to work: `remote`, the address we
/// reached (without its `/p2p` suffix), then the `announced` ones on the same IP. Announced
/// addresses on other IPs are not believed.
pub(crate) fn reached_addrs(remote: &Multiaddr, announced: &[Multiaddr]) -> Vec<Multiaddr> {
    let remote = without_peer_id(remote);
    let ip = ip_of(&remote);
    let mut out = vec![remote.clone()];
    out.extend(
        announced
            .iter()
            .filter(|a| **a != remote && ip.is_some() && ip_of(a) == ip)
            .cloned(),
    );
    out
}

impl PeerManager {
    /// The network's address policy: the addresses this node may store, advertise and share
    /// (for choosing the node's own advertised addresses too).
    pub fn address_policy(&self) -> dsdn_protocols::AddressPolicy {
        self.address_policy
    }

    /// Records what a verified handshake on a connection to `remote` shows: for an
    /// outbound connection a success at the reached addresses; for an inbound one the
    /// announced addresses, untested, and an address test queued when some are untested.
    ///
    /// An outbound connection this peer manager did not dial (`ours = false`) proves its
    /// address only when the peer announced that address: a DCUtR hole punch reaches the
    /// peer at its NAT's mapping (`<router>:<port>`), which nobody can dial cold, so such a
    /// connection counts as inbound here.
    pub(super) fn record_handshake(
        &mut self,
        peer: PeerId,
        outbound: bool,
        ours: bool,
        remote: &Multiaddr,
        source: PeerSource,
        info: &VerifiedInfo,
    ) {
        let now = unix_now();
        let announced = || {
            let r = without_peer_id(remote);
            info.listen_addrs.iter().any(|a| without_peer_id(a) == r)
        };
        if outbound && (ours || announced()) {
            let addrs = reached_addrs(remote, &info.listen_addrs);
            if let Err(e) = self
                .store
                .record_success(peer, &addrs, info.services, source, now)
            {
                tracing::warn!(error = %e, "cannot write peers.dat");
            }
            return;
        }
        // An inbound peer that advertises no address (a light client) can be neither dialled
        // nor shared: peers.dat keeps nothing about it.
        if info.listen_addrs.is_empty() {
            return;
        }
        if let Err(e) = self
            .store
            .record_untested(peer, &info.listen_addrs, info.services, now)
        {
            tracing::warn!(error = %e, "cannot write peers.dat");
        }
        let untested = self
            .store
            .untested_addrs(&peer, &info.listen_addrs)
            .unwrap_or_default();
        let candidate = preferred_dial_addrs(untested)
            .into_iter()
            .find(|a| !self.is_self(a));
        if let Some(addr) = candidate {
            if self.address_tests.offer(peer, addr.clone(), Instant::now()) {
                tracing::debug!(%peer, %addr, "address test queued");
            }
        }
    }

    /// Queues a new test of every connected inbound peer whose record's last successful
    /// contact is older than [`RETEST_AFTER_SECS`] at `now_unix` (run with the feeler
    /// round, hourly): a long-lived inbound connection never runs a handshake again, and
    /// without a fresh success PEX would stop sharing the peer after 24 h.
    pub(super) fn offer_retests(&mut self, now_unix: u64, now: Instant) {
        let inbound: Vec<PeerId> = self
            .verified
            .iter()
            .filter(|(_, p)| !p.outbound)
            .map(|(id, _)| *id)
            .collect();
        for peer in inbound {
            let Some(rec) = self.store.get(&peer).ok().flatten() else {
                continue;
            };
            if rec
                .last_success
                .is_some_and(|t| now_unix.saturating_sub(t) < RETEST_AFTER_SECS)
            {
                continue;
            }
            let addr = preferred_dial_addrs(rec.addrs)
                .into_iter()
                .find(|a| !self.is_self(a));
            if let Some(addr) = addr {
                if self.address_tests.offer(peer, addr.clone(), now) {
                    tracing::debug!(%peer, %addr, "address re-test queued");
                }
            }
        }
    }

    /// Dials the next queued address test, if its time has come.
    pub(super) fn drive_address_tests(&mut self, now: Instant) {
        let Some((peer, addr)) = self.address_tests.pop(now) else {
            return;
        };
        if self.is_self(&addr) || self.store.is_banned(&peer, unix_now()).unwrap_or(false) {
            return;
        }
        tracing::debug!(%peer, %addr, "address test: dialling an inbound peer's announced address");
        let opts = DialOpts::peer_id(peer)
            .addresses(vec![addr])
            .condition(PeerCondition::Always)
            .allocate_new_port()
            .build();
        self.dials.insert(
            opts.connection_id(),
            Dial {
                source: PeerSource::Inbound,
                peer: Some(peer),
                kind: DialKind::AddressTest,
                in_action: false,
                netgroup: None,
                started: now,
                fallback: None,
            },
        );
        self.metrics
            .address_tests
            .with_label_values(&["dialled"])
            .inc();
        self.events.push_back(ToSwarm::Dial { opts });
    }

    /// An address test connected to `peer` at `remote` (noise authenticated the PeerId): the
    /// address is tried now; the extra connection is closed.
    pub(super) fn address_test_connected(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        remote: &Multiaddr,
    ) {
        let (announced, services) = match self.verified.get(&peer) {
            Some(p) => (p.listen_addrs.clone(), p.services),
            None => {
                let rec = self.store.get(&peer).ok().flatten();
                let services = rec.as_ref().map_or(ServiceSet::EMPTY, |r| r.services);
                (rec.map(|r| r.addrs).unwrap_or_default(), services)
            }
        };
        let addrs = reached_addrs(remote, &announced);
        tracing::info!(%peer, addr = %addrs[0], "address test succeeded: address tried");
        self.metrics
            .address_tests
            .with_label_values(&["succeeded"])
            .inc();
        if let Err(e) =
            self.store
                .record_success(peer, &addrs, services, PeerSource::Inbound, unix_now())
        {
            tracing::warn!(error = %e, "cannot write peers.dat");
        }
        self.events.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::One(connection),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn an_outbound_peer_is_believed_on_the_reached_ip_only() {
        let peer = PeerId::random();
        let remote = a(&format!("/ip4/198.51.100.1/tcp/4001/p2p/{peer}"));
        let announced = [
            a("/ip4/198.51.100.1/udp/4001/quic-v1"),
            a("/ip4/203.0.113.9/tcp/4001"),
            a("/ip4/198.51.100.1/tcp/4001"),
            a("/ip4/10.0.0.1/tcp/4001"),
        ];
        assert_eq!(
            reached_addrs(&remote, &announced),
            [
                a("/ip4/198.51.100.1/tcp/4001"),
                a("/ip4/198.51.100.1/udp/4001/quic-v1"),
            ]
        );
        // A DNS address has no IP to compare: only it is kept.
        let dns = a("/dns4/seed.example.org/tcp/4001");
        assert_eq!(reached_addrs(&dns, &announced), [dns]);
    }

    #[test]
    fn address_tests_are_bounded_deduplicated_and_rate_limited() {
        let t0 = Instant::now();
        let mut q = AddressTests::new(t0);
        let addr = a("/ip4/198.51.100.1/tcp/4001");
        let p = PeerId::random();
        assert!(q.offer(p, addr.clone(), t0));
        assert!(!q.offer(p, addr.clone(), t0), "queued twice");
        let q2 = PeerId::random();
        assert!(q.offer(q2, addr.clone(), t0));
        // One dial per gap.
        assert_eq!(q.pop(t0).map(|(x, _)| x), Some(p));
        assert_eq!(q.pop(t0 + Duration::from_millis(500)), None);
        assert_eq!(q.next_wakeup(), Some(t0 + ADDRESS_TEST_GAP));
        assert_eq!(q.pop(t0 + ADDRESS_TEST_GAP).map(|(x, _)| x), Some(q2));
        assert_eq!(q.next_wakeup(), None);
        // A peer tested once waits for the per-peer interval.
        assert!(!q.offer(p, addr.clone(), t0 + Duration::from_secs(60)));
        assert!(q.offer(p, addr.clone(), t0 + ADDRESS_TEST_PER_PEER));
        // Bounded.
        let mut q = AddressTests::new(t0);
        for _ in 0..ADDRESS_TEST_QUEUE {
            assert!(q.offer(PeerId::random(), addr.clone(), t0));
        }
        assert!(!q.offer(PeerId::random(), addr, t0));
        assert_eq!(q.len(), ADDRESS_TEST_QUEUE);
    }
}
