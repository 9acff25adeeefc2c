//! What the node knows of each open connection, for `dsdn-agent peers list` (issue 15 §6):
//! remote address, age, whether it is relayed, the last ping's round trip, and the peer's
//! identify agent version and protocols.
//!
//! [`ConnectionBook`] is plain state fed by the event loop (connection established and
//! closed, ping, identify) and read when the control API lists peers. It holds entries for
//! open connections only, so it is bounded by the swarm's connection limits; identify's
//! strings come from the network and are capped ([`MAX_AGENT_CHARS`], [`MAX_PROTOCOLS`],
//! [`MAX_PROTOCOL_CHARS`]).
//!
//! It also decides when a connection is dead ([`ConnectionBook::ping_failed`]): libp2p's
//! ping reports a failure but keeps the connection, and a TCP connection whose far end
//! vanished without a FIN (a NAT that dropped the mapping, a host that lost power, a peer
//! whose old connection outlived its restart under the same PeerId) otherwise stays open
//! for as long as the kernel retransmits, around 15 minutes, while request-response and
//! gossipsub keep sending on it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use libp2p::core::ConnectedPoint;
use libp2p::swarm::ConnectionId;
use libp2p::{Multiaddr, PeerId};

use crate::net::nat::is_relayed;

/// Longest agent version kept, in characters (longer ones are cut).
pub const MAX_AGENT_CHARS: usize = 128;

/// Consecutive unanswered pings after which a connection is closed as dead. With libp2p's
/// ping defaults (every 15 s, 20 s to answer) that is about 70 s of silence.
pub const MAX_PING_FAILURES: u32 = 2;

/// Most protocols kept per peer.
pub const MAX_PROTOCOLS: usize = 64;

/// Longest protocol name kept, in characters (longer ones are left out).
pub const MAX_PROTOCOL_CHARS: usize = 128;

/// One peer's open connections and what identify and ping told of it.
#[derive(Debug, Default)]
struct PeerConnections {
    /// Open connections.
    conns: Vec<Conn>,
    rtt: Option<Duration>,
    agent: Option<String>,
    protocols: Vec<String>,
}

/// One open connection.
#[derive(Debug)]
struct Conn {
    id: ConnectionId,
    remote: Multiaddr,
    relayed: bool,
    since: Instant,
    /// Consecutive pings on this connection that were not answered.
    ping_failures: u32,
}

/// A connected peer's connection details, as [`ConnectionBook::get`] returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionDetails {
    /// The remote address of the connection the peer is reached by: the oldest direct
    /// one, else the oldest relayed one.
    pub remote_addr: Multiaddr,
    /// True when that connection runs through a relay (`/p2p-circuit`): no direct
    /// connection is open.
    pub relayed: bool,
    /// Age of that connection.
    pub age: Duration,
    /// The last ping's round trip, if any answered.
    pub rtt: Option<Duration>,
    /// The identify agent version, once received.
    pub agent_version: Option<String>,
    /// The protocols from identify, sorted.
    pub protocols: Vec<String>,
    /// Open connections to the peer.
    pub connections: u32,
}

/// Open connections by peer; see the module documentation.
#[derive(Debug, Default)]
pub struct ConnectionBook {
    peers: HashMap<PeerId, PeerConnections>,
}

impl ConnectionBook {
    /// A connection to `peer` was established at `now`: `endpoint` as the swarm reports it
    /// (a dialled `/p2p-circuit` address, or a relayed listen address, marks it relayed).
    pub fn established(
        &mut self,
        peer: PeerId,
        id: ConnectionId,
        endpoint: &ConnectedPoint,
        now: Instant,
    ) {
        let relayed = match endpoint {
            ConnectedPoint::Dialer { address, .. } => is_relayed(address),
            ConnectedPoint::Listener { local_addr, .. } => is_relayed(local_addr),
        };
        self.peers.entry(peer).or_default().conns.push(Conn {
            id,
            remote: endpoint.get_remote_address().clone(),
            relayed,
            since: now,
            ping_failures: 0,
        });
    }

    /// A connection closed; the peer's entry goes with its last connection.
    pub fn closed(&mut self, peer: &PeerId, id: ConnectionId) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.conns.retain(|c| c.id != id);
            if p.conns.is_empty() {
                self.peers.remove(peer);
            }
        }
    }

    /// A ping to `peer` on connection `id` came back after `rtt` (ignored for a peer
    /// without connections).
    pub fn ping(&mut self, peer: &PeerId, id: ConnectionId, rtt: Duration) {
        if let Some(p) = self.peers.get_mut(peer) {
            p.rtt = Some(rtt);
            if let Some(c) = p.conns.iter_mut().find(|c| c.id == id) {
                c.ping_failures = 0;
            }
        }
    }

    /// A ping to `peer` on connection `id` failed (timed out or the stream broke). Returns
    /// true when the connection is to be closed as dead: after [`MAX_PING_FAILURES`]
    /// failures in a row, or after the first one when the peer has another open connection
    /// (the usual sign of a peer that restarted under the same PeerId and dialled again
    /// while its old connection has not noticed yet).
    pub fn ping_failed(&mut self, peer: &PeerId, id: ConnectionId) -> bool {
        let Some(p) = self.peers.get_mut(peer) else {
            return false;
        };
        let others = p.conns.len().saturating_sub(1);
        let Some(c) = p.conns.iter_mut().find(|c| c.id == id) else {
            return false;
        };
        c.ping_failures = c.ping_failures.saturating_add(1);
        c.ping_failures >= MAX_PING_FAILURES || others > 0
    }

    /// Identify told `peer`'s agent version and protocols (capped; see the module docs).
    pub fn identified(&mut self, peer: &PeerId, agent: &str, protocols: &[String]) {
        let Some(p) = self.peers.get_mut(peer) else {
            return;
        };
        p.agent = Some(agent.chars().take(MAX_AGENT_CHARS).collect());
        let mut protocols: Vec<String> = protocols
            .iter()
            .filter(|s| s.chars().count() <= MAX_PROTOCOL_CHARS)
            .take(MAX_PROTOCOLS)
            .cloned()
            .collect();
        protocols.sort();
        protocols.dedup();
        p.protocols = protocols;
    }

    /// `peer`'s connection details at `now`; `None` without an open connection.
    pub fn get(&self, peer: &PeerId, now: Instant) -> Option<ConnectionDetails> {
        let p = self.peers.get(peer)?;
        // The connection the peer is reached by: the oldest direct one, else the oldest
        // relayed one (after a DCUtR upgrade the relayed one may stay open a while).
        let c = p.conns.iter().min_by_key(|c| (c.relayed, c.since))?;
        Some(ConnectionDetails {
            remote_addr: c.remote.clone(),
            relayed: c.relayed,
            age: now.saturating_duration_since(c.since),
            rtt: p.rtt,
            agent_version: p.agent.clone(),
            protocols: p.protocols.clone(),
            connections: u32::try_from(p.conns.len()).unwrap_or(u32::MAX),
        })
    }

    /// Peers with an open connection.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// True when no connection is open.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn details_follow_connections_and_are_capped() {
        let mut book = ConnectionBook::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        let direct: Multiaddr = "/ip4/198.51.100.1/tcp/4001".parse().expect("addr");
        let relayed: Multiaddr = "/ip4/198.51.100.2/tcp/4001/p2p/12D3KooWDpJ7As7BWAwRMfu1VU2WCqNjvq387JEYKDBj4kx6nXTN/p2p-circuit"
            .parse()
            .expect("addr");
        // Nothing is kept for a peer without a connection.
        book.ping(&p, ConnectionId::new_unchecked(9), Duration::from_millis(5));
        assert!(!book.ping_failed(&p, ConnectionId::new_unchecked(9)));
        book.identified(&p, "x", &[]);
        assert!(book.is_empty());

        let c1 = ConnectionId::new_unchecked(1);
        let c2 = ConnectionId::new_unchecked(2);
        let dialer = |address: &Multiaddr| ConnectedPoint::Dialer {
            address: address.clone(),
            role_override: libp2p::core::Endpoint::Dialer,
            port_use: libp2p::core::transport::PortUse::New,
        };
        book.established(p, c1, &dialer(&relayed), t0);
        let d = book.get(&p, t0 + Duration::from_secs(2)).expect("details");
        assert!(d.relayed, "only the relayed connection is open");
        assert_eq!(d.remote_addr, relayed);
        book.established(p, c2, &dialer(&direct), t0 + Duration::from_secs(3));
        book.ping(&p, c2, Duration::from_millis(12));
        let long_agent = "a".repeat(500);
        let mut protocols: Vec<String> = (0..100).map(|i| format!("/p/{i:03}")).collect();
        protocols.push("/x/".to_owned() + &"y".repeat(300));
        book.identified(&p, &long_agent, &protocols);
        // A direct connection (a DCUtR upgrade) is preferred over the older relayed one.
        let d = book.get(&p, t0 + Duration::from_secs(10)).expect("details");
        assert!(!d.relayed);
        assert_eq!(d.remote_addr, direct);
        assert_eq!(d.age, Duration::from_secs(7));
        assert_eq!(d.rtt, Some(Duration::from_millis(12)));
        assert_eq!(d.connections, 2);
        assert_eq!(d.agent_version.expect("agent").len(), MAX_AGENT_CHARS);
        assert_eq!(d.protocols.len(), MAX_PROTOCOLS);

        // The direct connection closes: the relayed one is what is left.
        book.closed(&p, c2);
        let d = book.get(&p, t0 + Duration::from_secs(10)).expect("details");
        assert!(d.relayed);
        assert_eq!(d.age, Duration::from_secs(10));
        book.closed(&p, c1);
        assert!(book.get(&p, t0).is_none());
        assert!(book.is_empty());
    }

    #[test]
    fn a_connection_that_stops_answering_pings_is_closed() {
        let mut book = ConnectionBook::default();
        let p = PeerId::random();
        let t0 = Instant::now();
        let addr: Multiaddr = "/ip4/198.51.100.1/tcp/4001".parse().expect("addr");
        let listener = ConnectedPoint::Listener {
            local_addr: addr.clone(),
            send_back_addr: addr,
        };
        let old = ConnectionId::new_unchecked(1);
        book.established(p, old, &listener, t0);
        // One lost ping on the only connection is not enough; an answer resets the count.
        assert!(!book.ping_failed(&p, old));
        book.ping(&p, old, Duration::from_millis(3));
        assert!(!book.ping_failed(&p, old));
        assert!(book.ping_failed(&p, old), "two in a row: dead");
        // The peer restarted and dialled again: the old connection is closed at its first
        // failure, the new one is kept.
        let mut book = ConnectionBook::default();
        book.established(p, old, &listener, t0);
        let new = ConnectionId::new_unchecked(2);
        book.established(p, new, &listener, t0 + Duration::from_secs(30));
        assert!(book.ping_failed(&p, old));
        book.closed(&p, old);
        assert!(
            !book.ping_failed(&p, new),
            "the only connection left gets a second chance"
        );
        // Unknown connections and peers are never closed from here.
        assert!(!book.ping_failed(&p, ConnectionId::new_unchecked(7)));
        assert!(!book.ping_failed(&PeerId::random(), new));
    }
}
