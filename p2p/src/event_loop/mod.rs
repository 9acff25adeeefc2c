//! The one event loop of a node: a `tokio::select!` over the bounded command channel, the
//! PEX and housekeeping timers, and the swarm.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsdn_peers::score::score;
use dsdn_peers::store::{LearnedPeer, PeerStore};
use dsdn_protocols::handshake::{Handshake, HandshakeError, MAX_ADDR_BYTES, MAX_LISTEN_ADDRS};
use dsdn_protocols::pex::{PexRateLimiter, PexRequest, PexResponse, MAX_PEX_ENTRIES};
use dsdn_protocols::{PeerSource, ServiceSet, PROTOCOL_VERSION};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::multiaddr::Protocol;
use libp2p::request_response::{self, Message, OutboundFailure, OutboundRequestId};
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};
use tokio::sync::mpsc;

use crate::behaviour::{Behaviour, BehaviourEvent};
use crate::config::NodeConfig;
use crate::da::{DaGossip, PublishError};
use crate::handle::{Command, DaStateView, NodeStatus, PeerView, Published};
use crate::metrics::Metrics;
use crate::peer_manager::{unix_now, PeerManagerEvent, VerifiedInfo};

mod control;

/// Owns the swarm; see the module documentation.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    store: Arc<PeerStore>,
    metrics: Metrics,
    da: DaGossip,
    topic: IdentTopic,
    cfg: NodeConfig,
    started: Instant,
    handshakes: HashMap<OutboundRequestId, ConnectionId>,
    pex_out: PexRateLimiter<PeerId>,
    pex_in: PexRateLimiter<PeerId>,
}

/// Decodes and filters advertised addresses: well-formed, IP-based, not unspecified.
fn decode_addrs(raw: &[serde_bytes::ByteBuf]) -> Vec<Multiaddr> {
    raw.iter()
        .take(MAX_LISTEN_ADDRS)
        .filter_map(|b| Multiaddr::try_from(b.to_vec()).ok())
        .filter(|a| {
            a.iter().next().is_some_and(|p| match p {
                Protocol::Ip4(ip) => !ip.is_unspecified(),
                Protocol::Ip6(ip) => !ip.is_unspecified(),
                _ => false,
            })
        })
        .collect()
}

fn encode_addrs(addrs: &[Multiaddr], max: usize) -> Vec<serde_bytes::ByteBuf> {
    addrs
        .iter()
        .map(|a| a.to_vec())
        .filter(|b| b.len() <= MAX_ADDR_BYTES)
        .take(max)
        .map(serde_bytes::ByteBuf::from)
        .collect()
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        store: Arc<PeerStore>,
        metrics: Metrics,
        da: DaGossip,
        topic: IdentTopic,
        cfg: NodeConfig,
    ) -> Self {
        let interval = cfg.bootstrap.pex_interval;
        Self {
            swarm,
            commands,
            store,
            metrics,
            da,
            topic,
            cfg,
            started: Instant::now(),
            handshakes: HashMap::new(),
            pex_out: PexRateLimiter::new(interval),
            pex_in: PexRateLimiter::new(interval),
        }
    }

    /// Runs until every [`crate::NodeHandle`] is dropped.
    pub async fn run(mut self) {
        let pex_tick = (self.cfg.bootstrap.pex_interval / 4).max(Duration::from_secs(1));
        let mut pex_timer = tokio::time::interval(pex_tick);
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        let mut gc = tokio::time::interval(Duration::from_secs(3600));
        loop {
            tokio::select! {
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                _ = pex_timer.tick() => self.pex_round(),
                _ = housekeeping.tick() => self.housekeeping(),
                _ = gc.tick() => match self.store.gc(unix_now()) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "peers.dat garbage-collected"),
                    Err(e) => tracing::warn!(error = %e, "peers.dat garbage collection failed"),
                },
            }
        }
        tracing::info!("network event loop stopped");
    }

    fn our_handshake(&self) -> Handshake {
        let addrs: Vec<Multiaddr> = self.swarm.listeners().cloned().collect();
        Handshake {
            protocol_version: PROTOCOL_VERSION,
            network_id: self.cfg.network.to_string(),
            node_id: self.swarm.local_peer_id().to_bytes(),
            listen_addrs: encode_addrs(&addrs, MAX_LISTEN_ADDRS),
            services: self.cfg.services,
        }
    }

    fn housekeeping(&mut self) {
        self.metrics.peers_dat_size.set(self.store.len() as i64);
        let connected = self.swarm.behaviour().peer_manager.connected().len();
        self.metrics.active_peers.set(connected as i64);
    }

    fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(tx) => {
                let _ = tx.send(self.status());
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.peer_views());
            }
            Command::PublishDa(events, tx) => {
                let _ = tx.send(self.publish(events));
            }
            Command::DaState(tx) => {
                let log = self.da.log();
                let _ = tx.send(DaStateView {
                    events: log.events(),
                    applied_seq: log.applied_seq(),
                    pending: log.pending(),
                    rejected: self.da.rejected(),
                    state_root: log.state_root(),
                });
            }
            Command::PeerStats(tx) => {
                let _ = tx.send(self.peer_stats());
            }
            Command::AddPeer(peer, tx) => {
                let _ = tx.send(self.add_peer(peer));
            }
            Command::AddSeed(seed, tx) => {
                let _ = tx.send(self.add_seed(seed));
            }
            Command::ResetPeers(tx) => {
                let _ = tx.send(self.reset_peers());
            }
            Command::Ban(peer, duration, tx) => {
                let _ = tx.send(self.ban(peer, duration));
            }
            Command::Unban(peer, tx) => {
                let _ = tx.send(self.unban(peer));
            }
        }
    }

    fn status(&self) -> NodeStatus {
        let pm = &self.swarm.behaviour().peer_manager;
        NodeStatus {
            peer_id: *self.swarm.local_peer_id(),
            listen_addrs: self.swarm.listeners().cloned().collect(),
            connected_peers: pm.connected().len(),
            known_peers: self.store.len(),
            bootstrap_stage: pm.stage(),
            isolated: pm.is_isolated(),
            is_da_authority: self.da.is_authority(),
            da_authority: self.da.authority(),
            uptime: self.started.elapsed(),
        }
    }

    fn peer_views(&self) -> Vec<PeerView> {
        let now = unix_now();
        let connected = self.swarm.behaviour().peer_manager.connected();
        let mut out: Vec<PeerView> = self
            .store
            .all()
            .unwrap_or_default()
            .into_iter()
            .map(|r| PeerView {
                peer_id: r.peer_id,
                connected_outbound: connected.get(&r.peer_id).map(|p| p.outbound),
                score: score(&r, now),
                netgroup: r
                    .addrs
                    .first()
                    .and_then(dsdn_peers::netgroup_of)
                    .map(|g| g.to_string()),
                suspicious: r.is_suspicious(),
                banned_until: r.banned_until.filter(|_| r.is_banned(now)),
                addrs: r.addrs,
                services: r.services,
                source: r.source,
                last_seen: Some(r.last_seen),
                last_success: r.last_success,
                success_count: r.success_count,
                failure_count: r.failure_count,
            })
            .collect();
        for (peer, p) in connected {
            if !out.iter().any(|v| v.peer_id == *peer) {
                out.push(PeerView {
                    peer_id: *peer,
                    addrs: p.listen_addrs.clone(),
                    services: p.services,
                    source: p.source,
                    connected_outbound: Some(p.outbound),
                    last_seen: None,
                    last_success: None,
                    success_count: 0,
                    failure_count: 0,
                    score: 0,
                    netgroup: p
                        .listen_addrs
                        .first()
                        .and_then(dsdn_peers::netgroup_of)
                        .map(|g| g.to_string()),
                    suspicious: false,
                    banned_until: None,
                });
            }
        }
        out.sort_by(|a, b| {
            b.connected_outbound
                .is_some()
                .cmp(&a.connected_outbound.is_some())
                .then(b.score.cmp(&a.score))
        });
        out
    }

    fn publish(
        &mut self,
        events: Vec<dsdn_protocols::da::DaEvent>,
    ) -> Result<Published, PublishError> {
        if !self.cfg.subscribe_da {
            return Err(PublishError::NotSubscribed);
        }
        let count = events.len();
        let envelopes = self.da.prepare(events)?;
        let mut seqs = Vec::new();
        for (env, bytes) in envelopes {
            self.swarm
                .behaviour_mut()
                .gossipsub
                .publish(self.topic.clone(), bytes)
                .map_err(|e| PublishError::Gossip(e.to_string()))?;
            self.da.on_published(&env);
            seqs.push(env.seq);
        }
        tracing::info!(
            events = count,
            envelopes = seqs.len(),
            "published DA events"
        );
        Ok(Published {
            events: count,
            seqs,
        })
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
        match event {
            SwarmEvent::Behaviour(BehaviourEvent::PeerManager(e)) => self.on_peer_manager(e),
            SwarmEvent::Behaviour(BehaviourEvent::Handshake(e)) => self.on_handshake(e),
            SwarmEvent::Behaviour(BehaviourEvent::Pex(e)) => self.on_pex(e),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(gossipsub::Event::Message {
                propagation_source,
                message_id,
                message,
            })) => {
                let verdict = self.da.on_message(&message.data);
                self.swarm
                    .behaviour_mut()
                    .gossipsub
                    .report_message_validation_result(&message_id, &propagation_source, verdict);
            }
            SwarmEvent::NewListenAddr { address, .. } => {
                tracing::info!(%address, "listening");
            }
            SwarmEvent::ListenerError { error, .. } => {
                tracing::error!(%error, "listener error");
            }
            _ => {}
        }
    }

    fn on_peer_manager(&mut self, event: PeerManagerEvent) {
        match event {
            PeerManagerEvent::SendHandshake { peer, connection } => {
                let hs = self.our_handshake();
                let id = self.swarm.behaviour_mut().handshake.send_request(&peer, hs);
                self.handshakes.insert(id, connection);
            }
            PeerManagerEvent::PeerVerified {
                peer, listen_addrs, ..
            } => {
                for addr in listen_addrs {
                    self.swarm.behaviour_mut().kad.add_address(&peer, addr);
                }
                self.request_pex(peer);
            }
            PeerManagerEvent::PeerDisconnected { peer } => {
                self.pex_out.forget(&peer);
                self.pex_in.forget(&peer);
                self.swarm.behaviour_mut().kad.remove_peer(&peer);
            }
        }
    }

    fn check_handshake(&mut self, peer: PeerId, connection: ConnectionId, hs: &Handshake) {
        match hs.check(&self.cfg.network, PROTOCOL_VERSION, &peer.to_bytes()) {
            Ok(()) => {
                let info = VerifiedInfo {
                    listen_addrs: decode_addrs(&hs.listen_addrs),
                    services: hs.services,
                };
                self.swarm
                    .behaviour_mut()
                    .peer_manager
                    .on_handshake_ok(peer, connection, info);
            }
            Err(e) => self
                .swarm
                .behaviour_mut()
                .peer_manager
                .on_handshake_failed(peer, connection, &e),
        }
    }

    fn on_handshake(&mut self, event: request_response::Event<Handshake, Handshake>) {
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
                let ours = self.our_handshake();
                let _ = self
                    .swarm
                    .behaviour_mut()
                    .handshake
                    .send_response(channel, ours);
                self.check_handshake(peer, connection_id, &request);
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
                if let Some(conn) = self.handshakes.remove(&request_id) {
                    self.check_handshake(peer, conn, &response);
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(conn) = self.handshakes.remove(&request_id) {
                    let err = match error {
                        OutboundFailure::Timeout => HandshakeError::Timeout,
                        OutboundFailure::UnsupportedProtocols => {
                            HandshakeError::UnsupportedProtocol
                        }
                        other => HandshakeError::Io(other.to_string()),
                    };
                    self.swarm
                        .behaviour_mut()
                        .peer_manager
                        .on_handshake_failed(peer, conn, &err);
                }
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }

    fn request_pex(&mut self, peer: PeerId) {
        if !self.pex_out.allow(&peer, Instant::now()) {
            return;
        }
        self.metrics
            .pex_requests_total
            .with_label_values(&["sent"])
            .inc();
        let req = PexRequest {
            max_entries: MAX_PEX_ENTRIES as u16,
            services: ServiceSet::EMPTY,
        };
        self.swarm.behaviour_mut().pex.send_request(&peer, req);
    }

    fn pex_round(&mut self) {
        let now = Instant::now();
        let due: Vec<PeerId> = self
            .swarm
            .behaviour()
            .peer_manager
            .connected()
            .keys()
            .filter(|p| self.pex_out.would_allow(p, now))
            .copied()
            .collect();
        for peer in due {
            self.request_pex(peer);
        }
    }

    fn pex_answer(&mut self, peer: PeerId, req: &PexRequest) -> PexResponse {
        if !self.swarm.behaviour().peer_manager.is_verified(&peer)
            || !self.pex_in.allow(&peer, Instant::now())
        {
            tracing::debug!(%peer, "PEX request refused (unverified or too frequent)");
            return PexResponse::default();
        }
        let limit = usize::from(req.max_entries).min(MAX_PEX_ENTRIES);
        let records = self
            .store
            .pex_entries(unix_now(), &peer, req.services, limit)
            .unwrap_or_default();
        PexResponse {
            entries: records
                .iter()
                .filter(|r| !r.addrs.is_empty())
                .map(|r| r.to_pex_entry())
                .collect(),
        }
    }

    fn on_pex(&mut self, event: request_response::Event<PexRequest, PexResponse>) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.metrics
                    .pex_requests_total
                    .with_label_values(&["received"])
                    .inc();
                let resp = self.pex_answer(peer, &request);
                let _ = self.swarm.behaviour_mut().pex.send_response(channel, resp);
            }
            request_response::Event::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => self.on_pex_response(peer, response),
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "PEX request failed");
            }
            _ => {}
        }
    }

    fn on_pex_response(&mut self, from: PeerId, response: PexResponse) {
        let entries = match response.validated() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "invalid PEX response; disconnecting");
                let _ = self.swarm.disconnect_peer_id(from);
                return;
            }
        };
        let local = *self.swarm.local_peer_id();
        let learned: Vec<LearnedPeer> = entries
            .iter()
            .filter_map(|e| {
                let peer_id = PeerId::from_bytes(&e.node_id).ok()?;
                let addrs = decode_addrs(&e.addrs);
                (peer_id != local && !addrs.is_empty()).then_some(LearnedPeer {
                    peer_id,
                    addrs,
                    services: e.services,
                })
            })
            .collect();
        let inserted = self
            .store
            .learn_many(&learned, PeerSource::PeerExchange, unix_now())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot write peers.dat");
                0
            });
        for p in learned {
            self.swarm
                .behaviour_mut()
                .peer_manager
                .discovered(p.peer_id, p.addrs);
        }
        tracing::debug!(peer = %from, inserted, "PEX response");
    }
}
