//! The one event loop of a node: a `tokio::select!` over the bounded command channel, the
//! PEX and housekeeping timers, and the swarm.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsdn_peers::score::score;
use dsdn_peers::store::PeerStore;
use dsdn_protocols::{PeerSource, ServiceType};
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::swarm::SwarmEvent;
use libp2p::Swarm;
use libp2p::{identify, ping};
use tokio::sync::mpsc;

use crate::config::NodeConfig;
use crate::da::{DaService, DaSubscribers, PublishError, Registrar};
use crate::handle::{Command, NodeStatus, PeerView};
use crate::metrics::Metrics;
use crate::net::behaviour::{Behaviour, BehaviourEvent};
use crate::net::discovery::{DiscoveryEvent, MAX_DIALS_PER_ANSWER};
use crate::net::handshake::HandshakeEvent;
use crate::net::nat::NatEvent;
use crate::net::peer_manager::{unix_now, PeerManagerEvent};
use crate::net::pex::PexEvent;

mod committee;
mod control;
mod da;
mod epochs;
mod identity;
mod rotation;
mod storage;
mod views;
mod workload;

pub use crate::net::discovery::service_key;
pub(crate) use committee::CommitteeLoop;
pub(crate) use workload::WorkloadLoop;

/// Netgroups exported one by one in `bootstrap_peers_dat_entries_by_netgroup`.
const TOP_NETGROUPS: usize = 16;

/// The DA parts of a node, built by [`crate::Node::start`].
pub(crate) struct DaParts {
    /// The log, backfill and publishing.
    pub(crate) service: DaService,
    /// A storage node's registration.
    pub(crate) registrar: Option<Registrar>,
    /// The DA gossip topic.
    pub(crate) topic: IdentTopic,
}

/// The committee and workload parts of a node, built by [`crate::Node::start`].
pub(crate) struct Services {
    /// The committee protocol, on committee members.
    pub(crate) committee: Option<CommitteeLoop>,
    /// Workload execution, receipt signing and the receipts topic.
    pub(crate) workload: WorkloadLoop,
    /// Bytes per peer, counted by the transport.
    pub(crate) traffic: crate::net::traffic::PeerTraffic,
}

/// The DA state of the event loop: [`DaParts`] and the requests in flight.
struct DaLoop {
    service: DaService,
    registrar: Option<Registrar>,
    topic: IdentTopic,
    /// The newest blob gossipsub could not send because no peer was known to subscribe yet
    /// (e.g. sealed right after a restart); sent again at the next DA subscription.
    unannounced: Option<Vec<u8>>,
    /// Serves `/dsdn/<net>/da-proof/1.0.0` from the log's state (nodes with a log on disk).
    proofs: Option<crate::da::ProofServer>,
    /// Serves `/dsdn/<net>/da-state/1.0.0` (state sync) from the log's state.
    states: Option<crate::da::StateServer>,
    /// A light client that stays light (issue 16 §4): gossiped DA blobs go here raw
    /// (`try_send`, bounded) instead of to the service, which then neither applies nor
    /// backfills anything.
    raw: Option<mpsc::Sender<Vec<u8>>>,
}

/// Owns the swarm; see the module documentation.
pub struct EventLoop {
    swarm: Swarm<Behaviour>,
    commands: mpsc::Receiver<Command>,
    store: Arc<PeerStore>,
    metrics: Metrics,
    da: DaLoop,
    cfg: NodeConfig,
    started: Instant,
    /// Receivers of [`crate::da::DaNotice`]s (`NodeHandle::subscribe_da`).
    da_subscribers: DaSubscribers,
    /// The committee protocol, on committee members.
    committee: Option<CommitteeLoop>,
    /// Workload execution, receipt signing and the receipts topic.
    workload: workload::WorkloadLoop,
    /// Open connections: address, age, ping, identify (for `peers list`).
    connections: crate::net::connections::ConnectionBook,
    /// Bytes per peer, counted by the transport.
    traffic: crate::net::traffic::PeerTraffic,
    /// Detects another process running with this node's key.
    identity: crate::net::identity::IdentityGuard,
    /// Rate limit of listener error logs (e.g. `Too many open files`, once per accept).
    listener_errors: views::LogLimit,
    /// Since when peers.dat's writes fail (issue 14 §2).
    peers_degraded_since: Option<Instant>,
    /// peers.dat's failed commits before the current run of failures, and at the last
    /// look.
    peers_failures_before: u64,
    peers_last_failures: u64,
}

impl EventLoop {
    pub(crate) fn new(
        swarm: Swarm<Behaviour>,
        commands: mpsc::Receiver<Command>,
        store: Arc<PeerStore>,
        metrics: Metrics,
        da: DaParts,
        services: Services,
        cfg: NodeConfig,
    ) -> Self {
        let Services {
            committee,
            workload,
            traffic,
        } = services;
        let da_subscribers = DaSubscribers::new(&metrics);
        let proofs = match da.service.log_store() {
            Some(store) if !cfg.light => match crate::da::ProofServer::start(store) {
                Ok(server) => Some(server),
                Err(error) => {
                    tracing::warn!(%error, "cannot start the DA proof worker: proofs are not served");
                    None
                }
            },
            _ => None,
        };
        let states = match da.service.log_store() {
            Some(store) if !cfg.light => match crate::da::StateServer::start(store) {
                Ok(server) => Some(server),
                Err(error) => {
                    tracing::warn!(%error, "cannot start the DA state-sync worker: state is not served");
                    None
                }
            },
            _ => None,
        };
        Self {
            swarm,
            commands,
            store,
            metrics,
            da: DaLoop {
                service: da.service,
                registrar: da.registrar,
                topic: da.topic,
                unannounced: None,
                proofs,
                states,
                raw: None,
            },
            cfg,
            started: Instant::now(),
            da_subscribers,
            committee,
            workload,
            connections: crate::net::connections::ConnectionBook::default(),
            traffic,
            identity: crate::net::identity::IdentityGuard::new(),
            listener_errors: views::LogLimit::default(),
            peers_degraded_since: None,
            peers_failures_before: 0,
            peers_last_failures: 0,
        }
    }

    /// Subscribes to DA notices before the loop runs (as [`crate::NodeHandle::subscribe_da`],
    /// without the round trip; the light client's own feed).
    pub(crate) fn subscribe_da(
        &mut self,
    ) -> Result<mpsc::Receiver<crate::da::DaNotice>, crate::da::TooManySubscribers> {
        let rx = self.da_subscribers.subscribe();
        self.da.service.set_want_notices(true);
        rx
    }

    /// Hands gossiped DA blobs to the returned channel (at most `capacity` queued; more are
    /// dropped: the caller fetches gaps over da-sync) instead of the DA service, and stops
    /// the service's backfill: the light client that stays light verifies blobs itself and
    /// holds no DA state (issue 16 §4). Call before [`EventLoop::run`].
    pub(crate) fn feed_da_raw(&mut self, capacity: usize) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        self.da.raw = Some(tx);
        rx
    }

    /// Runs until every [`crate::NodeHandle`] is dropped.
    pub async fn run(mut self) {
        let mut housekeeping = tokio::time::interval(Duration::from_secs(1));
        let mut gc = tokio::time::interval(Duration::from_secs(3600));
        loop {
            // The DA service's next timer (a batch to seal, a backfill request to time out),
            // never sooner than 5 ms from now so an overdue timer cannot spin the loop.
            let now = Instant::now();
            // The committee's timers (DKG retries, signing phase deadlines) share the sleep.
            let committee_deadline = self.committee.as_ref().and_then(|c| c.next_deadline());
            let rotation_deadline = self.rotation_deadline();
            let da_deadline = self
                .da
                .service
                .next_deadline(now)
                .into_iter()
                .chain(committee_deadline)
                .chain(rotation_deadline)
                .min()
                .map_or(now + Duration::from_secs(1), |d| {
                    d.clamp(now + Duration::from_millis(5), now + Duration::from_secs(1))
                });
            tokio::select! {
                _ = tokio::time::sleep_until(da_deadline.into()) => {
                    self.da_poll();
                    self.committee_poll();
                }
                command = self.commands.recv() => match command {
                    Some(c) => self.on_command(c),
                    None => break,
                },
                event = self.swarm.select_next_some() => self.on_swarm_event(event),
                Some(event) = self.workload.service.next_internal() => self.on_workload_internal(event),
                // A member's signing guard or rotation record is durable (or failed): held
                // shares and rotation messages go out.
                Some(written) = committee::written(&mut self.committee) => self.on_written(written),
                // The DA log writer committed (or failed): release the waiters, rebuild.
                Some(()) = self.da.service.writer_changed() => self.da_writer_progress(),
                Some((reply, response)) = crate::da::ProofServer::next_done(&mut self.da.proofs) => {
                    self.answer_proof(reply, response);
                }
                Some((reply, response)) = crate::da::StateServer::next_done(&mut self.da.states) => {
                    self.answer_state(reply, response);
                }
                _ = housekeeping.tick() => self.housekeeping(),
                _ = gc.tick() => match self.store.gc(unix_now()) {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "peers.dat garbage-collected"),
                    Err(e) => tracing::warn!(error = %e, "peers.dat garbage collection failed"),
                },
            }
        }
        // Drains and joins the DA log writer: a clean stop loses nothing.
        self.da.service.shutdown();
        let anchors = self.swarm.behaviour().peer_manager.anchor_peers();
        match self.store.save_anchors(&anchors) {
            Ok(()) => tracing::info!(anchors = anchors.len(), "anchors saved for the next start"),
            Err(e) => tracing::warn!(error = %e, "cannot save the anchors"),
        }
        // The address book is written by a background writer; wait for its last commit.
        if let Err(e) = self.store.flush() {
            tracing::error!(error = %e, "peers.dat: the last changes could not be written");
        }
        tracing::info!("network event loop stopped");
    }

    fn housekeeping(&mut self) {
        self.metrics.peers_dat_size.set(self.store.len() as i64);
        let connected = self.swarm.behaviour().peer_manager.connected();
        self.metrics.active_peers.set(connected.len() as i64);
        for service in ServiceType::ALL {
            let n = connected
                .values()
                .filter(|p| p.services.contains(service))
                .count();
            self.metrics
                .active_peers_by_type
                .with_label_values(&[service.as_str()])
                .set(n as i64);
        }
        let b = self.swarm.behaviour_mut();
        let pm = &b.peer_manager;
        b.discovery.check_roles(
            |service| {
                pm.connected()
                    .values()
                    .filter(|p| p.services.contains(service))
                    .count()
            },
            Instant::now(),
        );
        self.da_poll();
        self.identity_poll();
        // The store's in-memory index makes this one pass over at most 10,000 entries
        // (about 2 ms for a full peers.dat, see peers_bench).
        self.export_store_stats();
    }

    /// Exports the address-book health gauges (28.1.C §8) from the store's in-memory index.
    fn export_store_stats(&mut self) {
        let st = self.store.stats(unix_now());
        let w = self.store.writer_status();
        let m = &self.metrics;
        let unwritten = if w.rewrite_pending {
            st.entries
        } else {
            w.unwritten
        };
        m.peers_dat_unwritten.set(unwritten as i64);
        m.peers_dat_commits
            .inc_by(w.commits.saturating_sub(m.peers_dat_commits.get()));
        m.peers_dat_write_failures
            .inc_by(w.failures.saturating_sub(m.peers_dat_write_failures.get()));
        m.peers_dat_write_degraded
            .set(i64::from(w.last_error.is_some()));
        self.export_peers_health(w.last_error.is_some(), w.failures);
        let m = &self.metrics;
        for source in PeerSource::ALL {
            let n = st.by_source.get(&source).copied().unwrap_or(0);
            m.peers_dat_by_source
                .with_label_values(&[source.as_str()])
                .set(n as i64);
        }
        let mut groups: Vec<(String, usize)> = st
            .by_netgroup
            .iter()
            .map(|(g, n)| (g.to_string(), *n))
            .collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        m.peers_dat_by_netgroup.reset();
        let other: usize = groups.iter().skip(TOP_NETGROUPS).map(|(_, n)| n).sum();
        for (g, n) in groups.iter().take(TOP_NETGROUPS) {
            m.peers_dat_by_netgroup
                .with_label_values(&[g])
                .set(*n as i64);
        }
        if other > 0 {
            m.peers_dat_by_netgroup
                .with_label_values(&["other"])
                .set(other as i64);
        }
        m.peers_dat_netgroups.set(st.by_netgroup.len() as i64);
        m.peers_dat_tried.set(st.tried as i64);
        m.peers_dat_suspicious.set(st.suspicious as i64);
        m.peers_dat_banned.set(st.banned as i64);
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
                if self.cfg.subscribe_da {
                    self.da.service.publish(events, tx, Instant::now());
                    self.da_poll();
                } else {
                    let _ = tx.send(Err(PublishError::NotSubscribed));
                }
            }
            Command::SubmitBlob(bytes, tx) => {
                if self.cfg.subscribe_da {
                    // Answered once the blob is durable (or at once when it did not apply).
                    self.da.service.submit_reply(&bytes, tx);
                    self.after_da();
                } else {
                    let _ = tx.send(Err(crate::da::SubmitError::NotSubscribed));
                }
            }
            Command::DaState(tx) => {
                let _ = tx.send(self.da.service.view());
            }
            Command::DaProof(key, height, tx) => self.da_proof_local(key, height, tx),
            Command::DaEvidence(tx) => {
                let _ = tx.send(self.da.service.fork_evidence());
            }
            Command::DaRange(from, count, tx) => self.da_range(from, count, tx),
            Command::DaProveRemote(peer, request, tx) => self.da_prove_remote(peer, request, tx),
            Command::DaSyncRaw(peer, request, tx) => self.da_sync_raw(peer, request, tx),
            Command::DaStateRemote(peer, request, tx) => self.da_state_remote(peer, request, tx),
            Command::DaStateSynced(restored) => self.da_state_synced(restored),
            Command::PeerStats(tx) => {
                let _ = tx.send(self.peer_stats());
            }
            Command::RemovePeer(peer, tx) => {
                let pm = &mut self.swarm.behaviour_mut().peer_manager;
                let _ = tx.send(pm.remove_static_peer(&peer));
            }
            Command::AddedPeers(tx) => {
                let _ = tx.send(self.swarm.behaviour().peer_manager.added_peers());
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
            Command::Reload(cfg, tx) => {
                let _ = tx.send(self.swarm.behaviour_mut().peer_manager.reload(&cfg));
            }
            Command::UnbanAll(tx) => {
                let _ = tx.send(self.unban_all());
            }
            Command::SubscribeDa(tx) => {
                let _ = tx.send(self.subscribe_da());
            }
            Command::CommitteeDkg(tx) => self.committee_dkg(tx),
            Command::CommitteeStatus(tx) => {
                let _ = tx.send(self.committee_status());
            }
            Command::ThresholdSign(slot, message, tx) => self.threshold_sign(slot, message, tx),
            Command::SubmitWorkload(submission, optimistic, tx) => {
                self.submit_workload(*submission, optimistic, tx)
            }
            Command::PublishReceipt(receipt, tx) => {
                let _ = tx.send(self.publish_receipt(*receipt));
            }
            Command::Receipt(id, tx) => {
                let _ = tx.send(self.receipt(&id));
            }
            Command::EpochKey(epoch, tx) => {
                let _ = tx.send(self.da.service.epoch_key(epoch));
            }
            Command::Receipts(query, tx) => {
                let _ = tx.send(self.receipts(&query));
            }
            Command::Disputes(tx) => {
                let (unauthorized_signers, invalid_signatures) =
                    self.workload.service.signer_disputes();
                let _ = tx.send(crate::handle::Disputes {
                    da_forks: self.da.service.fork_evidence(),
                    double_receipts: self.workload.service.double_receipts(),
                    optimistic_conflicts: self.workload.service.optimistic_conflicts(),
                    unauthorized_signers,
                    invalid_signatures,
                });
            }
        }
    }

    fn on_swarm_event(&mut self, event: SwarmEvent<BehaviourEvent>) {
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
