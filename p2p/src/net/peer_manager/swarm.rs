//! [`NetworkBehaviour`] for [`PeerManager`]: admission control (28.1.C §6), swarm events and
//! `poll`.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Instant;

use dsdn_protocols::PeerSource;
use futures::StreamExt;
use libp2p::core::transport::PortUse;
use libp2p::core::{ConnectedPoint, Endpoint};

use crate::net::nat::is_relayed;
use libp2p::swarm::{
    dummy, ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

use super::{
    socket_of, unix_now, Conn, DialKind, LimitExceeded, PeerManager, PeerManagerEvent,
    EXTRA_OUTBOUND,
};

impl PeerManager {
    fn deny(&self, reason: &'static str, err: LimitExceeded) -> ConnectionDenied {
        self.metrics
            .connections_denied
            .with_label_values(&[reason])
            .inc();
        tracing::debug!(%err, "connection denied");
        ConnectionDenied::new(err)
    }

    /// At most [`MAX_RELAYED_CONNECTIONS`] relayed connections.
    fn check_relayed(&self) -> Result<(), ConnectionDenied> {
        let n = self.conns.values().filter(|c| c.relayed).count();
        if n >= MAX_RELAYED_CONNECTIONS {
            return Err(self.deny(
                "relayed_limit",
                LimitExceeded::Relayed(MAX_RELAYED_CONNECTIONS),
            ));
        }
        Ok(())
    }

    /// `max_connections_per_peer`, plus [`PROBE_SLACK`] for a connection this peer manager
    /// did not dial for itself (`ours = false`): every inbound connection (it may be an
    /// AutoNAT dial-back), an outbound one another behaviour opened (a dial-back, a hole
    /// punch) and an address test, beside the peer's regular connections (two peers that
    /// dialled each other at once already hold two).
    fn check_per_peer(&self, peer: &PeerId, ours: bool) -> Result<(), ConnectionDenied> {
        let n = self.conns.values().filter(|c| c.peer == *peer).count();
        let cap = self.cfg.max_connections_per_peer + if ours { 0 } else { PROBE_SLACK };
        if n >= cap {
            return Err(self.deny(
                "per_peer",
                LimitExceeded::PerPeer(self.cfg.max_connections_per_peer),
            ));
        }
        Ok(())
    }
}

/// Inbound connections in their security handshake at once (as libp2p's
/// `connection_limits::max_pending_incoming`): a flood of connections that never finish noise,
/// from many addresses, holds at most this many descriptors; the rest are refused at accept.
/// Within the descriptor budget's P2P reserve for pending connections (32, `dsdnd`'s fds).
pub const MAX_PENDING_INBOUND: usize = 24;

/// Relayed connections (circuit relay v2, either direction) open at once.
const MAX_RELAYED_CONNECTIONS: usize = 16;

/// Connections allowed with one peer beyond `max_connections_per_peer` when this node did
/// not dial them through the peer manager (see `check_per_peer`).
const PROBE_SLACK: usize = 1;

impl NetworkBehaviour for PeerManager {
    type ConnectionHandler = dummy::ConnectionHandler;
    type ToSwarm = PeerManagerEvent;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        _local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        // Refused before the security handshake costs anything (28.1.C §6, spam connection).
        if let Some(sock) = socket_of(remote_addr) {
            if !self.inbound_limiter.allow(sock.ip(), Instant::now()) {
                self.metrics.inbound_rate_limited.inc();
                return Err(self.deny("rate_limited", LimitExceeded::RateLimited(sock.ip())));
            }
        }
        if self.pending_inbound.len() >= MAX_PENDING_INBOUND {
            return Err(self.deny(
                "pending_limit",
                LimitExceeded::PendingInbound(MAX_PENDING_INBOUND),
            ));
        }
        self.pending_inbound.insert(connection_id);
        Ok(())
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        _remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.pending_inbound.remove(&connection_id);
        self.deny_if_banned(&peer)?;
        // Relayed connections count against their own limit, not the inbound one.
        if is_relayed(local_addr) {
            self.check_relayed()?;
            self.check_per_peer(&peer, false)?;
            return Ok(dummy::ConnectionHandler);
        }
        let inbound = self
            .conns
            .values()
            .filter(|c| !c.outbound && !c.relayed)
            .count();
        if inbound >= self.cfg.max_inbound_connections {
            return Err(self.deny(
                "inbound_limit",
                LimitExceeded::Inbound(self.cfg.max_inbound_connections),
            ));
        }
        self.check_per_peer(&peer, false)?;
        Ok(dummy::ConnectionHandler)
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        _role_override: Endpoint,
        _port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.deny_if_banned(&peer)?;
        if is_relayed(addr) {
            self.check_relayed()?;
        }
        // An address test dials a peer that is connected already: like the probes of other
        // behaviours it may use the one-connection slack.
        let ours = self
            .dials
            .get(&connection_id)
            .is_some_and(|d| d.kind != DialKind::AddressTest);
        self.check_per_peer(&peer, ours)?;
        // Our own dials are budgeted already; connections opened by other behaviours
        // (Kademlia, gossipsub) are held to the hard cap, except a second connection to a
        // peer we are connected to (an AutoNAT dial-back, a DCUtR hole punch): refusing it
        // would make AutoNAT call the peer unreachable, or keep a relayed connection.
        let connected = self.conns.values().any(|c| c.peer == peer);
        if !self.dials.contains_key(&connection_id) && !connected {
            let cap = self.cfg.max_outbound_connections + EXTRA_OUTBOUND;
            let outbound = self.conns.values().filter(|c| c.outbound).count();
            if outbound >= cap {
                return Err(self.deny("outbound_limit", LimitExceeded::Outbound(cap)));
            }
        }
        Ok(dummy::ConnectionHandler)
    }

    fn on_swarm_event(&mut self, event: FromSwarm) {
        match event {
            // A pending inbound connection failed its handshake, or a behaviour refused it.
            FromSwarm::ListenFailure(e) => {
                self.pending_inbound.remove(&e.connection_id);
            }
            FromSwarm::ConnectionEstablished(e) => {
                self.pending_inbound.remove(&e.connection_id);
                let outbound = e.endpoint.is_dialer();
                let dial = self.dials.remove(&e.connection_id);
                if dial
                    .as_ref()
                    .is_some_and(|d| d.kind == DialKind::AddressTest)
                {
                    let remote = e.endpoint.get_remote_address().clone();
                    self.address_test_connected(e.peer_id, e.connection_id, &remote);
                    return;
                }
                let (source, in_action, kind) = match (&dial, outbound) {
                    (Some(d), _) => (d.source, d.in_action, d.kind),
                    // Dialled by another behaviour (Kademlia, gossipsub): a discovered peer.
                    (None, true) => (PeerSource::PeerExchange, false, DialKind::Outbound),
                    (None, false) => (PeerSource::Inbound, false, DialKind::Outbound),
                };
                self.conns.insert(
                    e.connection_id,
                    Conn {
                        peer: e.peer_id,
                        outbound,
                        source,
                        kind,
                        in_action,
                        opened: Instant::now(),
                        verified: false,
                        remote: e.endpoint.get_remote_address().clone(),
                        ours: dial.is_some(),
                        relayed: match e.endpoint {
                            ConnectedPoint::Dialer { address, .. } => is_relayed(address),
                            ConnectedPoint::Listener { local_addr, .. } => is_relayed(local_addr),
                        },
                    },
                );
                if outbound {
                    self.events.push_back(ToSwarm::GenerateEvent(
                        PeerManagerEvent::SendHandshake {
                            peer: e.peer_id,
                            connection: e.connection_id,
                        },
                    ));
                }
            }
            FromSwarm::DialFailure(e) => {
                if let Some(mut dial) = self.dials.remove(&e.connection_id) {
                    tracing::debug!(peer = ?dial.peer, error = %e.error, "dial failed");
                    if dial.kind == DialKind::AddressTest {
                        // The announced address stays untested; the peer is not charged.
                        self.metrics
                            .address_tests
                            .with_label_values(&["failed"])
                            .inc();
                        return;
                    }
                    if let Some(quic) = dial.fallback.take() {
                        // The fallback chain's action settles with the QUIC dial.
                        self.dial_fallback(e.connection_id, dial, quic);
                        return;
                    }
                    self.added_peers.dial_failed(
                        e.connection_id,
                        &crate::node::error_chain(e.error),
                        Instant::now(),
                    );
                    if dial.in_action {
                        self.settle_one(false);
                    }
                    if let Some(peer) = dial.peer.or(e.peer_id) {
                        let _ = self.store.record_failure(&peer, unix_now());
                    }
                }
            }
            FromSwarm::ConnectionClosed(e) => {
                if let Some(conn) = self.conns.remove(&e.connection_id) {
                    if !conn.verified && conn.in_action {
                        self.settle_one(false);
                    }
                    if !conn.verified {
                        self.added_peers.dial_failed(
                            e.connection_id,
                            "connection closed before the handshake verified",
                            Instant::now(),
                        );
                    }
                }
                let still_verified = self
                    .conns
                    .values()
                    .any(|c| c.peer == e.peer_id && c.verified);
                if !still_verified && self.verified.remove(&e.peer_id).is_some() {
                    tracing::info!(peer = %e.peer_id, "peer disconnected");
                    self.added_peers.disconnected(&e.peer_id, Instant::now());
                    self.events.push_back(ToSwarm::GenerateEvent(
                        PeerManagerEvent::PeerDisconnected { peer: e.peer_id },
                    ));
                    if self.verified.is_empty() {
                        self.chain.trigger_now(Instant::now());
                    }
                }
            }
            // A relayed listen address holds the relay's socket, not ours.
            FromSwarm::NewListenAddr(e) if !is_relayed(e.addr) => {
                if let Some(s) = socket_of(e.addr) {
                    self.listen_sockets.insert(s);
                }
            }
            FromSwarm::ExpiredListenAddr(e) if !is_relayed(e.addr) => {
                if let Some(s) = socket_of(e.addr) {
                    self.listen_sockets.remove(&s);
                }
            }
            _ => {}
        }
    }

    fn on_connection_handler_event(
        &mut self,
        _peer_id: PeerId,
        _connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        match event {}
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Poll::Ready(ev);
            }
            if let Poll::Ready(Some((purpose, result))) = self.dns.poll_next_unpin(cx) {
                self.on_dns_result(purpose, result);
                continue;
            }
            let now = Instant::now();
            self.expire(now);
            self.drive_chain(now);
            self.drive_recovery(now);
            self.drive_rotation(now);
            self.check_diversity(now);
            self.drive_address_tests(now);
            for peer in self.added_peers.due(now) {
                self.dial_static(&peer, false);
            }
            if !self.events.is_empty() {
                continue;
            }
            let deadline = self.next_deadline(now);
            self.timer
                .as_mut()
                .reset(tokio::time::Instant::from_std(deadline));
            if self.timer.as_mut().poll(cx).is_ready() {
                continue;
            }
            return Poll::Pending;
        }
    }
}
