//! The DA log in the event loop (issue 5): gossiped blobs, the backfill protocol
//! `/dsdn/<net>/da-sync/1.0.0`, registrations over `/dsdn/<net>/da-register/1.0.0`, and the
//! [`DaAction`]s of the [`crate::da::DaService`].

use std::time::Instant;

use dsdn_protocols::da::evidence::ForkEvidence;
use dsdn_protocols::da::prove::{ProofRequest, ProofResponse};
use dsdn_protocols::da::register::{RegisterRequest, RegisterResponse};
use dsdn_protocols::da::state_sync::{StateChunkRequest, StateChunkResponse};
use dsdn_protocols::da::sync::{SyncRequest, SyncResponse, MAX_SYNC_BLOBS};
use dsdn_protocols::da::DaBlob;
use dsdn_protocols::{ServiceSet, ServiceType};
use libp2p::gossipsub::{self, PublishError as GossipPublishError};
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::EventLoop;
use crate::da::DaAction;
use crate::da::SyncTag;
use crate::handle::RangeError;
use crate::net::rpc::RpcEvent;

use crate::da::keeps_da_log;

/// Writes fork evidence on the blocking pool (never on the event loop); a failure is
/// logged (the evidence stays in memory and in the API).
fn persist_evidence(path: std::path::PathBuf, bytes: Vec<u8>) {
    tokio::task::spawn_blocking(move || {
        let written = path
            .parent()
            .map_or(Ok(()), std::fs::create_dir_all)
            .and_then(|()| dsdn_peers::files::write_atomic(&path, &bytes, false));
        if let Err(error) = written {
            tracing::warn!(path = %path.display(), %error, "cannot write the fork evidence");
        }
    });
}

impl EventLoop {
    /// Runs the DA service's timers and carries out what it asks.
    pub(super) fn da_poll(&mut self) {
        let now = Instant::now();
        self.rotation_ensure(now);
        // At effective_height the epoch rotation switches the share before sealing on.
        self.epochs_tick();
        let rotation_key = self.rotation_key();
        self.da.service.set_committee_key(rotation_key);
        self.forward_sync();
        self.da.service.poll(now);
        self.poll_registration(now);
        self.after_da();
    }

    /// The DA log writer reported: what became durable is released (publishers,
    /// registrations), a failed append rebuilds the state; then the service's timers run
    /// (a freed log may take backfill again).
    pub(super) fn da_writer_progress(&mut self) {
        self.da.service.on_writer_progress(Instant::now());
        self.da_poll();
    }

    /// Carries out the DA service's actions, hands notices to subscribers and lets the
    /// registrar look at the new state.
    pub(super) fn after_da(&mut self) {
        for action in self.da.service.take_actions() {
            match action {
                DaAction::Gossip(bytes) => self.gossip_blob(bytes),
                DaAction::Sync(peer, request) => {
                    if let Some(sync) = self.swarm.behaviour_mut().da_sync.as_mut() {
                        sync.send(peer, request, SyncTag::Backfill(request));
                    }
                }
                DaAction::Confirm(peer, request) => {
                    if let Some(sync) = self.swarm.behaviour_mut().da_sync.as_mut() {
                        sync.send(peer, request, SyncTag::Confirm(request));
                    }
                }
                DaAction::PersistEvidence { path, bytes } => persist_evidence(path, bytes),
                DaAction::PushEvidence(peer, evidence) => {
                    if let Some(c) = self.swarm.behaviour_mut().da_evidence.as_mut() {
                        c.send(peer, *evidence, ());
                    }
                }
                DaAction::Respond(reply, response) => {
                    if let Some(reg) = self.swarm.behaviour_mut().da_register.as_mut() {
                        reg.respond(reply, response);
                    }
                }
                DaAction::Penalize(peer, reason) => self
                    .swarm
                    .behaviour_mut()
                    .peer_manager
                    .penalize(peer, reason),
            }
        }
        self.da_subscribers.notify(self.da.service.take_notices());
        let wanted = self.da_subscribers.wanted();
        self.da.service.set_want_notices(wanted);
        if let Some(r) = self.da.registrar.as_mut() {
            r.observe(self.da.service.state());
        }
        self.rotation_after_da();
        self.forward_pending();
    }

    fn gossip_blob(&mut self, bytes: Vec<u8>) {
        let topic = self.da.topic.clone();
        let Some(gossipsub) = self.swarm.behaviour_mut().gossipsub.as_mut() else {
            return;
        };
        // gossipsub refuses before caching the message id, so the same bytes can be sent
        // again later. Only the newest unsent blob is kept: a peer that receives it
        // backfills the heights before it.
        match gossipsub.publish(topic, bytes.clone()) {
            Ok(_) | Err(GossipPublishError::Duplicate) => self.da.unannounced = None,
            Err(GossipPublishError::NoPeersSubscribedToTopic) => {
                tracing::debug!(
                    "no DA subscriber known yet: the blob is sent at the next subscription"
                );
                self.da.unannounced = Some(bytes);
            }
            Err(e) => tracing::warn!(error = %e, "cannot gossip a DA blob"),
        }
    }

    /// A gossipsub message on the DA topic.
    pub(super) fn on_gossip(&mut self, event: gossipsub::Event) {
        if let gossipsub::Event::Subscribed { topic, .. } = &event {
            // A blob sealed before any peer's subscription was known (the peers' own tip
            // polls would find it only every `tip_poll_interval`, 5 s by default).
            if *topic == self.da.topic.hash() {
                if let Some(bytes) = self.da.unannounced.take() {
                    self.gossip_blob(bytes);
                }
            }
            return;
        }
        if let gossipsub::Event::Message {
            propagation_source,
            message_id,
            message,
        } = event
        {
            if self.is_receipts_topic(&message.topic) {
                self.on_receipt_gossip(propagation_source, &message_id, &message.data);
                return;
            }
            if let Some(raw) = &self.da.raw {
                // Verified by the light client's follower, not here: not forwarded (a leaf
                // relays nothing), not penalised.
                let _ = raw.try_send(message.data);
                if let Some(gossipsub) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                    gossipsub.report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        libp2p::gossipsub::MessageAcceptance::Ignore,
                    );
                }
                return;
            }
            let verdict = self.da.service.on_gossip(propagation_source, &message.data);
            tracing::debug!(peer = %propagation_source, ?verdict, tip = self.da.service.state().height(), "DA gossip");
            if let Some(gossipsub) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                gossipsub.report_message_validation_result(
                    &message_id,
                    &propagation_source,
                    verdict,
                );
            }
            self.after_da();
        }
    }

    /// A verified peer connected or left.
    pub(super) fn da_peer_connected(&mut self, peer: PeerId, services: ServiceSet) {
        self.rotation_peer_connected(&peer);
        if self.cfg.subscribe_da && keeps_da_log(services) && self.da.raw.is_none() {
            self.da.service.peer_connected(peer, Instant::now());
            self.da_poll();
        }
    }

    pub(super) fn da_peer_disconnected(&mut self, peer: &PeerId) {
        self.da.service.peer_disconnected(peer);
    }

    /// `/dsdn/<net>/da-sync/1.0.0` events.
    pub(super) fn on_da_sync(&mut self, event: RpcEvent<SyncRequest, SyncResponse, SyncTag>) {
        let now = Instant::now();
        match event {
            RpcEvent::Request { request, reply, .. } => {
                // The log is public and the protocol id is network-scoped, so a peer whose
                // handshake this node has not finished verifying yet is answered too: an
                // empty answer would tell it a wrong tip (0), and it may be a DA authority
                // deciding whether it may seal.
                let response = self.da.service.serve_sync(&request);
                if let Some(sync) = self.swarm.behaviour_mut().da_sync.as_mut() {
                    sync.respond(reply, response);
                }
            }
            RpcEvent::Response {
                tag: SyncTag::Range(request, tx),
                response,
                ..
            } => {
                let result = response
                    .map_err(RangeError::Peer)
                    .and_then(|r| self.da.service.verify_range(&request, r));
                let _ = tx.send(result);
            }
            RpcEvent::Response {
                peer,
                tag: SyncTag::Raw(tx),
                response,
            } => {
                let _ = tx.send(response.map(|r| (peer, r)));
            }
            RpcEvent::Response {
                peer,
                tag: SyncTag::Confirm(request),
                response,
            } => {
                self.da
                    .service
                    .on_confirm_response(peer, &request, response.ok(), now);
                self.after_da();
            }
            RpcEvent::Response {
                peer,
                tag: SyncTag::Backfill(request),
                response: Ok(response),
            } => {
                self.da
                    .service
                    .on_sync_response(peer, &request, response, now);
                // The next range goes out now, not at the next timer tick: backfill is
                // paced by responses.
                self.da_poll();
            }
            RpcEvent::Response {
                peer,
                tag: SyncTag::Backfill(request),
                response: Err(error),
            } => {
                tracing::debug!(%peer, %error, from = request.from, "DA backfill request failed");
                self.da.service.on_sync_failure(peer, &request, now);
                self.da_poll();
            }
        }
    }

    /// `NodeHandle::da_range`: from the local log when it has the range, otherwise asked of
    /// the connected DA peer with the highest known tip.
    pub(super) fn da_range(
        &mut self,
        from: u64,
        count: u32,
        tx: oneshot::Sender<Result<Vec<DaBlob>, RangeError>>,
    ) {
        let count = count.clamp(1, MAX_SYNC_BLOBS);
        let local = self.da.service.blobs(from, count);
        if !local.is_empty() || (self.cfg.da_dir.is_some() && !self.cfg.light) {
            let _ = tx.send(Ok(local));
            return;
        }
        let Some(peer) = self.da_log_peer() else {
            let _ = tx.send(Err(RangeError::NoPeer));
            return;
        };
        let request = SyncRequest { from, count };
        match self.swarm.behaviour_mut().da_sync.as_mut() {
            Some(sync) => sync.send(peer, request, SyncTag::Range(request, tx)),
            None => {
                let _ = tx.send(Err(RangeError::NoPeer));
            }
        }
    }

    /// `NodeHandle::da_sync_raw`: the request goes to `peer` if connected (or the first
    /// connected DA peer with `None`); the unverified answer to `tx`.
    pub(super) fn da_sync_raw(
        &mut self,
        peer: Option<PeerId>,
        request: SyncRequest,
        tx: oneshot::Sender<Result<(PeerId, SyncResponse), String>>,
    ) {
        let peer = match self.asked_peer(peer) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        match self.swarm.behaviour_mut().da_sync.as_mut() {
            Some(sync) => sync.send(peer, request, SyncTag::Raw(tx)),
            None => {
                let _ = tx.send(Err("this node does not speak the DA sync protocol".into()));
            }
        }
    }

    /// `/dsdn/<net>/da-proof/1.0.0` events: a peer's request goes to the proof server
    /// (answered later from its worker, or at once when busy); our requests' answers go to
    /// their callers.
    pub(super) fn on_da_proof(
        &mut self,
        event: RpcEvent<ProofRequest, ProofResponse, crate::net::behaviour::ProofTag>,
    ) {
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => {
                let now =
                    crate::da::ProofServer::offer(self.da.proofs.as_mut(), peer, request, reply);
                if let Some((reply, response)) = now {
                    self.answer_proof(reply, response);
                }
            }
            RpcEvent::Response { tag, response, .. } => {
                let _ = tag.send(response);
            }
        }
    }

    /// `GET /v1/da/proof`: a durable height is proved by the proof worker (the event loop
    /// reads no tree node for it); the current height while it is not durable yet (the
    /// group commit's few milliseconds) is proved here from the in-memory overlay and the
    /// store, as is any height on a node without a proof worker.
    pub(super) fn da_proof_local(
        &mut self,
        key: dsdn_protocols::da::StateKey,
        height: Option<u64>,
        tx: oneshot::Sender<Result<dsdn_protocols::da::StateProof, dsdn_protocols::da::StateError>>,
    ) {
        match (
            self.da.service.durable_proof_height(height),
            self.da.proofs.as_mut(),
        ) {
            (Some(at), Some(server)) => server.submit_local(
                ProofRequest::new(&key, Some(at)),
                Box::new(move |response| {
                    let _ = tx.send(crate::da::api_answer(response));
                }),
            ),
            _ => {
                let _ = tx.send(self.da.service.proof(&key, height));
            }
        }
    }

    /// Sends a proof answer on its reply handle.
    pub(super) fn answer_proof(&mut self, reply: crate::net::rpc::Reply, response: ProofResponse) {
        if let Some(c) = self.swarm.behaviour_mut().da_proof.as_mut() {
            c.respond(reply, response);
        }
    }

    /// `/dsdn/<net>/da-state/1.0.0` events: a peer's state-chunk request goes to the
    /// state-sync server (answered later from its worker, or at once when busy); our
    /// requests' answers go to their callers.
    pub(super) fn on_da_state(
        &mut self,
        event: RpcEvent<StateChunkRequest, StateChunkResponse, crate::net::behaviour::StateTag>,
    ) {
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => {
                let now =
                    crate::da::StateServer::offer(self.da.states.as_mut(), peer, request, reply);
                if let Some((reply, response)) = now {
                    self.answer_state(reply, response);
                }
            }
            RpcEvent::Response { tag, response, .. } => {
                let _ = tag.send(response);
            }
        }
    }

    /// Sends a state-chunk answer on its reply handle.
    pub(super) fn answer_state(
        &mut self,
        reply: crate::net::rpc::Reply,
        response: StateChunkResponse,
    ) {
        if let Some(c) = self.swarm.behaviour_mut().da_state.as_mut() {
            c.respond(reply, response);
        }
    }

    /// `NodeHandle::da_state_remote`: the request goes to `peer` if connected; the
    /// unverified answer to `tx`.
    pub(super) fn da_state_remote(
        &mut self,
        peer: PeerId,
        request: StateChunkRequest,
        tx: oneshot::Sender<Result<StateChunkResponse, String>>,
    ) {
        if let Err(e) = self.asked_peer(Some(peer)) {
            let _ = tx.send(Err(e));
            return;
        }
        match self.swarm.behaviour_mut().da_state.as_mut() {
            Some(c) => c.send(peer, request, tx),
            None => {
                let _ = tx.send(Err("this node does not speak the DA state protocol".into()));
            }
        }
    }

    /// The state sync driver finished: the DA service takes new heights again.
    pub(super) fn da_state_synced(&mut self, restored: bool) {
        self.da.service.state_sync_done(restored);
        self.da_poll();
    }

    /// The peer a request to a full node goes to: `peer` if it is connected, with `None`
    /// the first connected peer that keeps the DA log; the error to answer otherwise.
    fn asked_peer(&self, peer: Option<PeerId>) -> Result<PeerId, String> {
        match peer {
            Some(p) if self.swarm.is_connected(&p) => Ok(p),
            Some(p) => Err(format!("peer {p} is not connected")),
            None => self
                .da_log_peer()
                .ok_or_else(|| "no connected peer keeps the DA log".to_owned()),
        }
    }

    /// The first connected peer that keeps the DA log (a full node), if any.
    fn da_log_peer(&self) -> Option<PeerId> {
        self.swarm
            .behaviour()
            .peer_manager
            .connected()
            .iter()
            .filter(|(_, p)| keeps_da_log(p.services))
            .map(|(id, _)| *id)
            .next()
    }

    /// `NodeHandle::da_prove_remote(_at)`: asks `peer` (if connected) or the first
    /// connected peer that keeps the DA log for a proof; the unverified answer goes to `tx`.
    pub(super) fn da_prove_remote(
        &mut self,
        peer: Option<PeerId>,
        request: ProofRequest,
        tx: oneshot::Sender<Result<ProofResponse, String>>,
    ) {
        let peer = match self.asked_peer(peer) {
            Ok(p) => p,
            Err(e) => {
                let _ = tx.send(Err(e));
                return;
            }
        };
        match self.swarm.behaviour_mut().da_proof.as_mut() {
            Some(c) => c.send(peer, request, tx),
            None => {
                let _ = tx.send(Err("this node does not speak the DA proof protocol".into()));
            }
        }
    }

    /// `/dsdn/<net>/da-evidence/1.0.0` events: evidence handed over by a peer is checked
    /// and kept by the DA service (which hands it on); answers to ours are only logged.
    pub(super) fn on_da_evidence(&mut self, event: RpcEvent<ForkEvidence, bool, ()>) {
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => {
                let new = self.da.service.on_evidence(peer, request, Instant::now());
                if let Some(c) = self.swarm.behaviour_mut().da_evidence.as_mut() {
                    c.respond(reply, new);
                }
                self.after_da();
            }
            RpcEvent::Response { peer, response, .. } => {
                tracing::debug!(%peer, ?response, "fork evidence handed over");
            }
        }
    }

    /// `/dsdn/<net>/da-register/1.0.0` events.
    pub(super) fn on_da_register(
        &mut self,
        event: RpcEvent<RegisterRequest, RegisterResponse, ()>,
    ) {
        let now = Instant::now();
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => {
                self.da.service.on_register(peer, request, reply, now);
                self.da_poll();
            }
            RpcEvent::Response { peer, response, .. } => {
                if let Some(r) = self.da.registrar.as_mut() {
                    match response {
                        Ok(response) => r.on_response(peer, response, now),
                        Err(error) => r.on_failure(peer, error, now),
                    }
                }
            }
        }
    }

    /// Sends the storage node's registration when it is due.
    fn poll_registration(&mut self, now: Instant) {
        let Some(registrar) = self.da.registrar.as_mut() else {
            return;
        };
        let coordinators: Vec<PeerId> = self
            .swarm
            .behaviour()
            .peer_manager
            .connected()
            .iter()
            .filter(|(_, p)| p.services.contains(ServiceType::Coordinator))
            .map(|(id, _)| *id)
            .collect();
        if let Some((peer, request)) = registrar.poll(now, &coordinators) {
            if let Some(reg) = self.swarm.behaviour_mut().da_register.as_mut() {
                tracing::info!(%peer, zone = %request.zone, "registering with the DA authority");
                reg.send(peer, request, ());
            }
        }
    }
}
