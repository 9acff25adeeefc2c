//! The one event loop of a node: a `tokio::select!` over the bounded command channel, the
//! PEX and housekeeping timers, and the swarm.
//!
//! This module holds the loop's state and its `select!`; the handlers are grouped in
//! submodules: `commands` (the [`crate::NodeHandle`]'s commands), `network` (swarm events
//! and the network layer's own), `housekeeping` (the one-second timer), and one per service
//! or concern (`da`, `committee`, `rotation`, `epochs`, `workload`, `control`, `identity`,
//! `storage`, `views`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsdn_peers::score::score;
use dsdn_peers::store::PeerStore;
use futures::StreamExt;
use libp2p::gossipsub::IdentTopic;
use libp2p::Swarm;
use tokio::sync::mpsc;

use crate::config::NodeConfig;
use crate::da::{DaService, DaSubscribers, Registrar};
use crate::handle::{Command, NodeStatus, PeerView};
use crate::metrics::Metrics;
use crate::net::behaviour::Behaviour;
use crate::net::peer_manager::unix_now;

mod commands;
mod committee;
mod control;
mod da;
mod epochs;
mod forward;
mod housekeeping;
mod identity;
mod network;
mod rotation;
mod storage;
mod views;
mod workload;

pub use crate::net::discovery::service_key;
pub(crate) use committee::CommitteeLoop;
pub(crate) use workload::WorkloadLoop;

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
            let rotation_deadline = self
                .rotation_deadline()
                .into_iter()
                .chain(self.forward_deadline())
                .min();
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
}
