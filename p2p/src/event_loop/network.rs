//! The routing of swarm events: each behaviour's event to its handler, and the network
//! layer's own (peer manager, handshake, PEX, discovery, identify, ping, NAT, connections).

use std::time::Instant;

use libp2p::swarm::SwarmEvent;
use libp2p::{identify, ping};

use super::EventLoop;
use crate::net::behaviour::BehaviourEvent;
use crate::net::discovery::{DiscoveryEvent, MAX_DIALS_PER_ANSWER};
use crate::net::handshake::HandshakeEvent;
use crate::net::nat::NatEvent;
use crate::net::peer_manager::PeerManagerEvent;
use crate::net::pex::PexEvent;

impl EventLoop {
    /// Routes one swarm event to its handler.
    pub(super) fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::PeerManager(e)) => self.on_peer_manager(e),
            SwarmEvent::Behaviour(BehaviourEvent::Handshake(e)) => self.on_handshake(e),
            SwarmEvent::Behaviour(BehaviourEvent::Pex(e)) => self.on_pex(e),
            SwarmEvent::Behaviour(BehaviourEvent::Discovery(e)) => self.on_discovery(e),
            SwarmEvent::Behaviour(BehaviourEvent::Identify(identify::Event::Received {
                peer_id,
                info,
                ..
            })) => {
                let protocols: Vec<String> =
                    info.protocols.iter().map(ToString::to_string).collect();
                self.connections
                    .identified(&peer_id, &info.agent_version, &protocols);
                let b = self.swarm.behaviour_mut();
                b.discovery
                    .peer_identified(peer_id, &info.listen_addrs, &info.protocols);
                b.nat.peer_identified(peer_id, &info.protocols);
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(_)) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Ping(e)) => self.on_ping(e),
            SwarmEvent::Behaviour(BehaviourEvent::Nat(e)) => self.on_nat(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(e)) => self.on_gossip(e),
            SwarmEvent::Behaviour(BehaviourEvent::DaSync(e)) => self.on_da_sync(e),
            SwarmEvent::Behaviour(BehaviourEvent::DaProof(e)) => self.on_da_proof(e),
            SwarmEvent::Behaviour(BehaviourEvent::DaState(e)) => self.on_da_state(e),
            SwarmEvent::Behaviour(BehaviourEvent::DaRegister(e)) => self.on_da_register(e),
            SwarmEvent::Behaviour(BehaviourEvent::DaEvidence(e)) => self.on_da_evidence(e),
            SwarmEvent::Behaviour(BehaviourEvent::Committee(e)) => self.on_committee(e),
            SwarmEvent::Behaviour(BehaviourEvent::DaRotation(e)) => self.on_da_rotation(e),
            SwarmEvent::Behaviour(BehaviourEvent::Workload(e)) => self.on_workload(e),
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?connection_id, ?endpoint, "connection established");
                self.connections
                    .established(peer_id, connection_id, &endpoint, Instant::now());
            }
            SwarmEvent::ConnectionClosed {
                peer_id,
                connection_id,
                cause,
                ..
            } => {
                tracing::debug!(peer = %peer_id, ?connection_id, ?cause, "connection closed");
                self.connections.closed(&peer_id, connection_id);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ListenerError { error, .. } => self.on_listener_error(&error),
            SwarmEvent::OutgoingConnectionError { error, .. } => self.on_dial_error(&error),
            SwarmEvent::IncomingConnectionError {
                error,
                send_back_addr,
                ..
            } => self.on_listen_error(&error, &send_back_addr),
            _ => {}
        }
    }

    fn on_peer_manager(&mut self, event: PeerManagerEvent) {
        match event {
            PeerManagerEvent::SendHandshake { peer, connection } => {
                self.swarm.behaviour_mut().handshake.send(peer, connection);
            }
            PeerManagerEvent::PeerVerified { peer, services, .. } => {
                let b = self.swarm.behaviour_mut();
                let now = Instant::now();
                if !b.discovery.peer_verified(peer, services, now) {
                    b.peer_manager.penalize(peer, "provider_mismatch");
                    return;
                }
                b.pex.peer_verified(peer);
                b.pex.request(peer);
                self.da_peer_connected(peer, services);
            }
            PeerManagerEvent::RequestPex { peer } => self.swarm.behaviour_mut().pex.request(peer),
            PeerManagerEvent::PeerDisconnected { peer } => {
                self.swarm.behaviour_mut().pex.peer_disconnected(&peer);
                self.swarm
                    .behaviour_mut()
                    .discovery
                    .peer_disconnected(&peer);
                self.da_peer_disconnected(&peer);
                self.committee_peer_disconnected(&peer);
            }
        }
    }

    /// What reachability and NAT traversal ask of the swarm.
    fn on_nat(&mut self, event: NatEvent) {
        match event {
            NatEvent::Reserve { relay, addr } => match self.swarm.listen_on(addr.clone()) {
                Ok(id) => self
                    .swarm
                    .behaviour_mut()
                    .nat
                    .reservation_listener(relay, id),
                Err(e) => {
                    tracing::warn!(%relay, %addr, error = %e, "cannot listen through relay");
                    self.swarm.behaviour_mut().nat.reservation_failed(&relay);
                }
            },
            NatEvent::Advertise(addr) => {
                tracing::info!(%addr, "advertising relayed address");
                self.swarm.add_external_address(addr);
            }
            NatEvent::Withdraw(addr) => {
                tracing::info!(%addr, "external address withdrawn");
                self.swarm.remove_external_address(&addr);
            }
            NatEvent::Reachability(r) => {
                let external: Vec<String> = self
                    .swarm
                    .external_addresses()
                    .map(ToString::to_string)
                    .collect();
                tracing::info!(reachability = r.as_str(), ?external, "reachability changed");
            }
        }
    }

    /// A ping: its round trip is observed in `p2p_ping_rtt_ms`; a connection that stops
    /// answering is closed as dead ([`crate::net::connections::ConnectionBook::ping_failed`]: libp2p's ping only
    /// reports the failure, and a TCP connection whose far end vanished would otherwise
    /// stay open for the kernel's ~15 minutes of retransmissions).
    fn on_ping(&mut self, event: ping::Event) {
        match event.result {
            Ok(rtt) => {
                self.metrics.ping_rtt_ms.observe(rtt.as_secs_f64() * 1000.0);
                self.connections.ping(&event.peer, event.connection, rtt);
            }
            Err(e) => {
                if self.connections.ping_failed(&event.peer, event.connection) {
                    tracing::info!(peer = %event.peer, error = %e, "closing a connection that stopped answering pings");
                    self.swarm.close_connection(event.connection);
                } else {
                    tracing::debug!(peer = %event.peer, error = %e, "ping failed");
                }
            }
        }
    }

    fn on_discovery(&mut self, event: DiscoveryEvent) {
        let b = self.swarm.behaviour_mut();
        match event {
            DiscoveryEvent::RoleShort { service, deficit } => {
                b.peer_manager.dial_role(service, deficit);
            }
            DiscoveryEvent::ProvidersFound { service, providers } => {
                let dialled = b
                    .peer_manager
                    .dial_providers(&providers, MAX_DIALS_PER_ANSWER);
                b.discovery.expect(dialled, service, Instant::now());
            }
        }
    }

    fn on_handshake(&mut self, event: HandshakeEvent) {
        let pm = &mut self.swarm.behaviour_mut().peer_manager;
        match event {
            HandshakeEvent::Verified {
                peer,
                connection,
                info,
            } => pm.on_handshake_ok(peer, connection, info),
            HandshakeEvent::Failed {
                peer,
                connection,
                error,
            } => pm.on_handshake_failed(peer, connection, &error),
        }
    }

    fn on_pex(&mut self, event: PexEvent) {
        let pm = &mut self.swarm.behaviour_mut().peer_manager;
        match event {
            PexEvent::Discovered { peer, addrs } => pm.discovered(peer, addrs),
            PexEvent::Misbehaved { peer, reason } => pm.penalize(peer, reason),
        }
    }
}
