//! The handshake component (28.1.A §3): `/dsdn/handshake/1.0.0`, one exchange of
//! [`Handshake`]s per connection.
//!
//! The peer manager asks for a handshake on each new connection ([`Component::send`]); the
//! dialer's request carries its handshake and the listener always answers with its own (so
//! that a peer of another network learns why it is refused), then both check what they got
//! with [`Handshake::check`]. The result is one [`HandshakeEvent`] per connection: verified
//! (with the decoded listen addresses and services) or failed (with the reason). This
//! component owns the outstanding requests (request id → connection) and the listen
//! addresses it advertises (tracked from the swarm's listen events).

use std::collections::HashMap;

use dsdn_protocols::handshake::{Handshake, HandshakeError, MAX_LISTEN_ADDRS};
use dsdn_protocols::{AddressPolicy, NetworkId, ServiceSet, PROTOCOL_VERSION};
use libp2p::request_response::{self, Message, OutboundFailure, OutboundRequestId};
use libp2p::swarm::{ConnectionId, FromSwarm};
use libp2p::{Multiaddr, PeerId};

use super::component::{Component, Inner, InnerEvent, Outbox, Protocol};
use super::{decode_addrs, encode_addrs};
use crate::codec::CborCodec;
use crate::net::peer_manager::VerifiedInfo;

/// The outcome of one connection's handshake.
#[derive(Debug)]
pub enum HandshakeEvent {
    /// The peer's handshake checked out (network, version, node id = noise PeerId).
    Verified {
        /// The peer.
        peer: PeerId,
        /// The connection the handshake ran on.
        connection: ConnectionId,
        /// Its advertised listen addresses (decoded and filtered) and service types.
        info: VerifiedInfo,
    },
    /// The handshake was refused (another network, an incompatible version, a node id that
    /// is not the connection's PeerId) or did not complete (timeout, unsupported protocol,
    /// I/O).
    Failed {
        /// The peer.
        peer: PeerId,
        /// The connection the handshake ran on.
        connection: ConnectionId,
        /// Why.
        error: HandshakeError,
    },
}

/// The handshake protocol's state; see the module documentation.
pub struct HandshakeProtocol {
    network: NetworkId,
    local: PeerId,
    /// Advertised service types (none on a light client).
    services: ServiceSet,
    /// False on a light client: it advertises no address and no service, so full nodes
    /// neither store nor share it.
    advertise: bool,
    /// Whether the listen addresses are advertised beside the confirmed external ones
    /// (false on public networks: confirmed addresses only).
    advertise_listen: bool,
    /// This node's listen addresses, in the order the swarm reported them.
    listen_addrs: Vec<Multiaddr>,
    /// This node's confirmed external addresses (AutoNAT, UPnP, the operator, relayed), in
    /// the order they were confirmed.
    external_addrs: Vec<Multiaddr>,
    /// Our outstanding requests: the connection each one runs on.
    pending: HashMap<OutboundRequestId, ConnectionId>,
    /// Which of a peer's announced addresses are kept (the others are dropped on receipt).
    policy: AddressPolicy,
}

impl HandshakeProtocol {
    /// The state of a node of `network` with identity `local` offering `services`;
    /// `advertise = false` for a light client; `advertise_listen`: whether listen addresses
    /// are advertised beside the confirmed external ones.
    pub fn new(
        network: NetworkId,
        local: PeerId,
        services: ServiceSet,
        advertise: bool,
        advertise_listen: bool,
    ) -> Self {
        Self {
            network,
            local,
            services,
            advertise,
            advertise_listen,
            listen_addrs: Vec::new(),
            external_addrs: Vec::new(),
            pending: HashMap::new(),
            policy: AddressPolicy::PERMISSIVE,
        }
    }

    /// The addresses this node advertises: its confirmed external addresses, then (where
    /// listen addresses are advertised) its listen addresses; none on a light client.
    pub fn advertised(&self) -> Vec<Multiaddr> {
        if !self.advertise {
            return Vec::new();
        }
        let mut out: Vec<Multiaddr> = self
            .external_addrs
            .iter()
            .filter(|a| self.policy.admits(a))
            .cloned()
            .collect();
        if self.advertise_listen {
            for a in &self.listen_addrs {
                if !out.contains(a) {
                    out.push(a.clone());
                }
            }
        }
        out
    }

    /// This state keeping only the announced addresses `policy` admits (the default,
    /// [`AddressPolicy::PERMISSIVE`], drops unspecified ones only).
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The address policy announced addresses are filtered with (also the one for this
    /// node's own advertised addresses).
    pub fn address_policy(&self) -> AddressPolicy {
        self.policy
    }

    /// The handshake this node sends and answers with.
    pub fn ours(&self) -> Handshake {
        let addrs = self.advertised();
        let services = if self.advertise {
            self.services
        } else {
            ServiceSet::EMPTY
        };
        Handshake {
            protocol_version: PROTOCOL_VERSION,
            network_id: self.network.to_string(),
            node_id: self.local.to_bytes(),
            listen_addrs: encode_addrs(&addrs, MAX_LISTEN_ADDRS),
            services,
        }
    }

    /// Handshakes waiting for an answer.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    fn check(&self, peer: PeerId, connection: ConnectionId, hs: &Handshake) -> HandshakeEvent {
        match hs.check(&self.network, PROTOCOL_VERSION, &peer.to_bytes()) {
            Ok(()) => HandshakeEvent::Verified {
                peer,
                connection,
                info: VerifiedInfo {
                    listen_addrs: decode_addrs(&hs.listen_addrs, self.policy),
                    services: hs.services,
                },
            },
            Err(error) => HandshakeEvent::Failed {
                peer,
                connection,
                error,
            },
        }
    }
}

impl Protocol for HandshakeProtocol {
    type Inner = request_response::Behaviour<CborCodec<Handshake, Handshake>>;
    type Event = HandshakeEvent;

    fn on_event(
        &mut self,
        event: InnerEvent<Self>,
        inner: &mut Inner<Self>,
        out: &mut Outbox<Self>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                connection_id,
                message:
                    Message::Request {
                        request, channel, ..
                    },
            } => {
                // Always answer, so a peer of another network learns why it is refused.
                let _ = inner.send_response(channel, self.ours());
                out.push_back(self.check(peer, connection_id, &request));
            }
            request_response::Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(connection) = self.pending.remove(&request_id) {
                    out.push_back(self.check(peer, connection, &response));
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(connection) = self.pending.remove(&request_id) {
                    let error = match error {
                        OutboundFailure::Timeout => HandshakeError::Timeout,
                        OutboundFailure::UnsupportedProtocols => {
                            HandshakeError::UnsupportedProtocol
                        }
                        other => HandshakeError::Io(other.to_string()),
                    };
                    out.push_back(HandshakeEvent::Failed {
                        peer,
                        connection,
                        error,
                    });
                }
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn on_swarm_event(&mut self, event: &FromSwarm<'_>) {
        match event {
            FromSwarm::NewListenAddr(e) if !self.listen_addrs.contains(e.addr) => {
                self.listen_addrs.push(e.addr.clone());
            }
            FromSwarm::ExpiredListenAddr(e) => self.listen_addrs.retain(|a| a != e.addr),
            FromSwarm::ExternalAddrConfirmed(e) if !self.external_addrs.contains(e.addr) => {
                self.external_addrs.push(e.addr.clone());
            }
            FromSwarm::ExternalAddrExpired(e) => self.external_addrs.retain(|a| a != e.addr),
            _ => {}
        }
    }
}

impl Component<HandshakeProtocol> {
    /// Sends our handshake to `peer` on the new `connection` (the peer manager asks for it
    /// on every connection); the outcome comes back as a [`HandshakeEvent`].
    pub fn send(&mut self, peer: PeerId, connection: ConnectionId) {
        let ours = self.state.ours();
        let id = self.inner.send_request(&peer, ours);
        self.state.pending.insert(id, connection);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(name: &str) -> NetworkId {
        NetworkId::new(name).expect("valid network id")
    }

    #[test]
    fn a_light_client_advertises_nothing() {
        let local = PeerId::random();
        let mut full = HandshakeProtocol::new(net("devnet"), local, ServiceSet::EMPTY, true, true);
        full.listen_addrs
            .push("/ip4/127.0.0.1/tcp/1".parse().expect("addr"));
        assert_eq!(full.ours().listen_addrs.len(), 1);
        let mut light =
            HandshakeProtocol::new(net("devnet"), local, ServiceSet::EMPTY, false, true);
        light.listen_addrs = full.listen_addrs.clone();
        assert!(light.ours().listen_addrs.is_empty());
        assert_eq!(light.ours().node_id, local.to_bytes());
    }

    #[test]
    fn a_public_network_node_advertises_confirmed_addresses_only() {
        let local = PeerId::random();
        let listen: Multiaddr = "/ip4/10.0.0.2/tcp/1".parse().expect("addr");
        let public: Multiaddr = "/ip4/198.51.100.2/tcp/1".parse().expect("addr");
        let mut p = HandshakeProtocol::new(net("testnet"), local, ServiceSet::EMPTY, true, false);
        p.listen_addrs.push(listen.clone());
        assert!(p.advertised().is_empty(), "nothing confirmed yet");
        p.external_addrs.push(public.clone());
        assert_eq!(p.advertised(), vec![public.clone()]);
        let mut d = HandshakeProtocol::new(net("devnet"), local, ServiceSet::EMPTY, true, true);
        d.listen_addrs.push(listen.clone());
        d.external_addrs.push(public.clone());
        assert_eq!(d.advertised(), vec![public, listen]);
    }

    #[test]
    fn a_public_network_drops_private_announced_addresses() {
        let (a, b) = (PeerId::random(), PeerId::random());
        let mut theirs = HandshakeProtocol::new(net("testnet"), b, ServiceSet::EMPTY, true, true);
        for s in [
            "/ip4/10.0.0.2/tcp/1",
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/203.0.113.2/tcp/1",
        ] {
            theirs.listen_addrs.push(s.parse().expect("addr"));
        }
        let theirs = theirs.ours();
        let conn = ConnectionId::new_unchecked(1);
        let kept = |ours: &HandshakeProtocol| match ours.check(b, conn, &theirs) {
            HandshakeEvent::Verified { info, .. } => info.listen_addrs,
            other => panic!("{other:?}"),
        };
        let public = HandshakeProtocol::new(net("testnet"), a, ServiceSet::EMPTY, true, true)
            .with_address_policy(AddressPolicy::PUBLIC);
        let public_addr: Multiaddr = "/ip4/203.0.113.2/tcp/1".parse().expect("addr");
        assert_eq!(kept(&public), [public_addr]);
        let devnet = HandshakeProtocol::new(net("testnet"), a, ServiceSet::EMPTY, true, true);
        assert_eq!(kept(&devnet).len(), 3);
    }

    #[test]
    fn checks_network_and_node_id() {
        let a = PeerId::random();
        let b = PeerId::random();
        let ours = HandshakeProtocol::new(net("devnet"), a, ServiceSet::EMPTY, true, true);
        let theirs = HandshakeProtocol::new(net("devnet"), b, ServiceSet::EMPTY, true, true).ours();
        let conn = ConnectionId::new_unchecked(1);
        assert!(matches!(
            ours.check(b, conn, &theirs),
            HandshakeEvent::Verified { .. }
        ));
        // Claims to be b on a connection authenticated as someone else.
        assert!(matches!(
            ours.check(PeerId::random(), conn, &theirs),
            HandshakeEvent::Failed { .. }
        ));
        let other = HandshakeProtocol::new(net("testnet"), b, ServiceSet::EMPTY, true, true).ours();
        assert!(matches!(
            ours.check(b, conn, &other),
            HandshakeEvent::Failed {
                error: HandshakeError::NetworkMismatch { .. },
                ..
            }
        ));
    }
}
