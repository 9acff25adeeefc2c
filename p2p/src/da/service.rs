//! [`DaService`]: the DA log of one node, without the swarm. The event loop feeds it what
//! arrives (gossip, backfill responses, posted events, registrations) and carries out the
//! [`DaAction`]s it returns.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dsdn_bootstrap::config::DaConfig;
use dsdn_protocols::da::batch::{BatchConfig, Batcher};
use dsdn_protocols::da::register::{RegisterRequest, RegisterResponse};
use dsdn_protocols::da::sync::{
    BackfillPlanner, SyncAction, SyncConfig, SyncRequest, SyncResponse, MAX_SYNC_BLOBS,
    MAX_SYNC_PAYLOAD_BYTES,
};
use dsdn_protocols::da::{
    DaBlob, DaChain, DaError, DaEvent, DaState, Offer, VerifiedBlob, MAX_SNAPSHOT_BYTES,
};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::request_response::ResponseChannel;
use libp2p::PeerId;
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::store::{self, DaStore, DA_LOG_FILE, DA_STATE_FILE};
use super::{hex32, DaNotice, PublishError, SubmitError, MAX_QUEUED_EVENTS};
use crate::metrics::Metrics;

/// What [`DaService::open`] needs.
pub(crate) struct DaServiceConfig {
    pub network: NetworkId,
    pub authority: Option<[u8; 32]>,
    /// The node's own key; it signs only if its public key is `authority`.
    pub key: SigningKey,
    /// Where `da-log.redb` and `da-state.cbor` live; `None` keeps the log in memory only
    /// (a light client).
    pub dir: Option<PathBuf>,
    pub da: DaConfig,
}

/// Who waits for a sealed event.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Part of the publish request with this id.
    Publish(u64),
    /// A storage node's registration: answer it once the event is sealed.
    Register(ResponseChannel<RegisterResponse>),
}

/// One event waiting to be sealed.
#[derive(Debug)]
pub(crate) struct Queued {
    event: DaEvent,
    reply: Reply,
}

/// A publish request waiting for all its events to be sealed.
struct PublishWaiter {
    tx: oneshot::Sender<Result<Published, PublishError>>,
    events: usize,
    remaining: usize,
    heights: BTreeSet<u64>,
}

/// What the event loop must do on behalf of the DA service.
#[derive(Debug)]
pub(crate) enum DaAction {
    /// Gossip this encoded blob on the DA topic.
    Gossip(Vec<u8>),
    /// Send a backfill request.
    Sync(PeerId, SyncRequest),
    /// Answer a registration request.
    Respond(ResponseChannel<RegisterResponse>, RegisterResponse),
    /// Ban this peer (it sent a blob that breaks the signature or the chain).
    Penalize(PeerId, &'static str),
}

/// What a publish did (`POST /v1/da/events`).
#[derive(Debug, Clone, Serialize)]
pub struct Published {
    /// Events published.
    pub events: usize,
    /// Heights of the blobs that carry them, ascending.
    pub heights: Vec<u64>,
}

/// What a submitted blob did (`POST /v1/da/blobs`).
#[derive(Debug, Clone, Serialize)]
pub struct Submitted {
    /// The blob's height.
    pub height: u64,
    /// `applied`, `held` (waiting for earlier heights) or `duplicate`.
    pub outcome: &'static str,
}

/// The DA state of a node (`GET /v1/da/state`).
#[derive(Debug, Clone, Serialize)]
pub struct DaStateView {
    /// Height of the last applied blob (0: empty log).
    pub height: u64,
    /// Hash of that blob (zeros for an empty log).
    #[serde(serialize_with = "hex32")]
    pub tip_hash: [u8; 32],
    /// Events in the applied blobs.
    pub events: u64,
    /// Events that changed nothing under the 14A §2 rules (e.g. a replica of an unknown
    /// chunk).
    pub ignored_events: u64,
    /// The 14A §2 state root.
    #[serde(serialize_with = "hex32")]
    pub state_root: [u8; 32],
    /// Registered storage nodes.
    pub nodes: usize,
    /// Declared chunks.
    pub chunks: usize,
    /// Replicas over all chunks.
    pub replicas: usize,
    /// Zones with at least one node.
    pub zones: usize,
    /// Verified blobs held until the gap before them fills.
    pub pending: usize,
    /// The highest tip any peer reported.
    pub target_height: u64,
    /// Blobs rejected since start.
    pub rejected: u64,
    /// True when no peer reported a higher tip.
    pub synced: bool,
    /// True when this node is the DA authority (it seals blobs).
    pub is_authority: bool,
    /// Events waiting to be sealed (authority only).
    pub queued_events: usize,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The DA log of one node; see the module documentation of [`crate::da`].
pub(crate) struct DaService {
    network: NetworkId,
    authority: Option<[u8; 32]>,
    signer: Option<SigningKey>,
    chain: DaChain,
    store: Option<DaStore>,
    snapshot_path: Option<PathBuf>,
    planner: BackfillPlanner<PeerId>,
    batcher: Batcher<Queued>,
    waiters: HashMap<u64, PublishWaiter>,
    next_publish: u64,
    cfg: DaConfig,
    started: Instant,
    snapshot_height: u64,
    rejected: u64,
    metrics: Metrics,
    height_tx: watch::Sender<u64>,
    notices: Vec<DaNotice>,
    want_notices: bool,
    actions: Vec<DaAction>,
}

impl DaService {
    /// Opens the log (and snapshot) in `cfg.dir`, verifies and replays it.
    ///
    /// # Errors
    /// The log file belongs to another network or a newer schema, or cannot be created.
    pub(crate) fn open(
        cfg: DaServiceConfig,
        metrics: Metrics,
        now: Instant,
    ) -> Result<(DaService, watch::Receiver<u64>), store::DaStoreError> {
        let signer = (cfg.authority == Some(cfg.key.verifying_key().to_bytes())).then_some(cfg.key);
        let (store, snapshot_path) = match &cfg.dir {
            Some(dir) => {
                let opened = DaStore::open(&dir.join(DA_LOG_FILE), &cfg.network)?;
                if let Some(path) = &opened.moved_aside {
                    metrics.da_store_corrupt.inc();
                    tracing::error!(path = %path.display(), "the DA log was corrupt: moved aside; the log is rebuilt from peers");
                }
                (Some(opened.store), Some(dir.join(DA_STATE_FILE)))
            }
            None => (None, None),
        };
        let state = load_state(
            &cfg.network,
            cfg.authority.as_ref(),
            store.as_ref(),
            snapshot_path.as_deref(),
            &metrics,
        );
        let snapshot_height = state.height();
        let mut chain = DaChain::new(state);
        if let (Some(store), Some(authority)) = (&store, cfg.authority) {
            replay(&mut chain, store, &cfg.network, &authority);
        }
        let height = chain.height();
        let sync = SyncConfig {
            chunk: cfg.da.sync_chunk_blobs.clamp(1, MAX_SYNC_BLOBS),
            request_timeout: cfg.da.sync_request_timeout,
            ..SyncConfig::default()
        };
        let batch = BatchConfig {
            max_bytes: cfg.da.batch_max_bytes,
            max_items: cfg.da.batch_max_events,
            max_delay: cfg.da.batch_interval,
        };
        let (height_tx, height_rx) = watch::channel(height);
        metrics.da_height.set(height as i64);
        metrics.da_events_accepted.inc_by(chain.state().events());
        if height > 0 {
            tracing::info!(
                height,
                events = chain.state().events(),
                state_root = %hex::encode(chain.state().state_root()),
                "DA log replayed"
            );
        }
        let service = DaService {
            network: cfg.network,
            authority: cfg.authority,
            signer,
            chain,
            store,
            snapshot_path,
            planner: BackfillPlanner::new(sync, height),
            batcher: Batcher::new(batch, MAX_QUEUED_EVENTS),
            waiters: HashMap::new(),
            next_publish: 0,
            cfg: cfg.da,
            started: now,
            snapshot_height,
            rejected: 0,
            metrics,
            height_tx,
            notices: Vec::new(),
            want_notices: false,
            actions: Vec::new(),
        };
        Ok((service, height_rx))
    }

    /// True when this node may seal blobs.
    pub(crate) fn is_authority(&self) -> bool {
        self.signer.is_some()
    }

    /// The configured DA authority.
    pub(crate) fn authority(&self) -> Option<[u8; 32]> {
        self.authority
    }

    /// The applied state.
    pub(crate) fn state(&self) -> &DaState {
        self.chain.state()
    }

    /// Whether notices should be built for applied blobs (someone subscribed).
    pub(crate) fn set_want_notices(&mut self, want: bool) {
        self.want_notices = want;
    }

    /// Notices of the blobs applied since the last call, in height order.
    pub(crate) fn take_notices(&mut self) -> Vec<DaNotice> {
        std::mem::take(&mut self.notices)
    }

    /// Actions for the event loop, in order.
    pub(crate) fn take_actions(&mut self) -> Vec<DaAction> {
        std::mem::take(&mut self.actions)
    }

    fn reject(&mut self, reason: &'static str, error: &dyn std::fmt::Display) {
        self.rejected += 1;
        self.metrics
            .da_blobs_rejected
            .with_label_values(&[reason])
            .inc();
        tracing::warn!(%error, reason, "DA blob rejected");
    }

    /// A gossiped blob. The answer is what to report to gossipsub: `Accept` (forward),
    /// `Ignore` (duplicate, or too far ahead: not forwarded, not penalised) or `Reject`
    /// (invalid or breaking the chain: gossipsub penalises the sender).
    pub(crate) fn on_gossip(&mut self, source: PeerId, data: &[u8]) -> MessageAcceptance {
        let Some(authority) = self.authority else {
            self.reject("no_authority", &DaError::NoAuthority);
            return MessageAcceptance::Reject;
        };
        match DaBlob::decode_verified(data, &self.network, &authority) {
            Ok(blob) => {
                let height = blob.height();
                match self.offer(blob) {
                    Offer::Applied(_) => MessageAcceptance::Accept,
                    Offer::Held => {
                        // The sender has this height, so presumably the ones before it.
                        self.planner.observe_tip(&source, height);
                        MessageAcceptance::Accept
                    }
                    Offer::Duplicate | Offer::TooFarAhead => {
                        self.planner.observe_tip(&source, height);
                        MessageAcceptance::Ignore
                    }
                    Offer::Rejected(e) => {
                        self.reject(e.reason(), &e);
                        MessageAcceptance::Reject
                    }
                }
            }
            Err(e) => {
                self.reject(e.reason(), &e);
                MessageAcceptance::Reject
            }
        }
    }

    /// Offers a verified blob to the chain and persists whatever it applied.
    fn offer(&mut self, blob: VerifiedBlob) -> Offer {
        let outcome = self.chain.offer(blob);
        if let Offer::Applied(applied) = &outcome {
            self.on_applied(applied);
        }
        self.metrics
            .da_pending_blobs
            .set(self.chain.pending() as i64);
        outcome
    }

    fn on_applied(&mut self, applied: &[VerifiedBlob]) {
        if let Some(store) = &self.store {
            let rows: Vec<(u64, &[u8])> =
                applied.iter().map(|b| (b.height(), b.encoded())).collect();
            if let Err(e) = store.append(&rows) {
                tracing::error!(error = %e, "cannot append to the DA log");
            }
        }
        let events: usize = applied.iter().map(|b| b.blob().events.len()).sum();
        self.metrics.da_events_accepted.inc_by(events as u64);
        self.metrics.da_blobs_applied.inc_by(applied.len() as u64);
        let height = self.chain.height();
        self.metrics.da_height.set(height as i64);
        self.planner.set_local_height(height);
        self.height_tx.send_replace(height);
        if self.want_notices {
            // The chain releases a run of held blobs at once: every notice of the run
            // carries the root after the whole run (documented on DaNotice::state_root).
            let root = self.chain.state().state_root();
            for b in applied {
                self.notices.push(DaNotice {
                    height: b.height(),
                    hash: b.hash(),
                    prev_hash: b.prev_hash(),
                    timestamp_ms: b.blob().timestamp_ms,
                    events: b.blob().events.clone(),
                    state_root: root,
                });
            }
        }
        if height >= self.snapshot_height + self.cfg.snapshot_interval_blobs {
            self.save_snapshot();
        }
    }

    /// Writes the derived state to `da-state.cbor` (no-op without a data directory).
    pub(crate) fn save_snapshot(&mut self) {
        let Some(path) = &self.snapshot_path else {
            return;
        };
        match self.chain.state().to_snapshot() {
            Ok(bytes) => match store::save_snapshot(path, &bytes) {
                Ok(()) => {
                    self.snapshot_height = self.chain.height();
                    tracing::debug!(height = self.snapshot_height, "DA state snapshot saved");
                }
                Err(e) => tracing::warn!(error = %e, "cannot save the DA state snapshot"),
            },
            Err(e) => tracing::warn!(error = %e, "cannot encode the DA state snapshot"),
        }
    }

    /// A DA peer connected (it advertises a service that keeps the log).
    pub(crate) fn peer_connected(&mut self, peer: PeerId, now: Instant) {
        self.planner.peer_connected(peer, now);
    }

    /// A peer disconnected.
    pub(crate) fn peer_disconnected(&mut self, peer: &PeerId) {
        self.planner.peer_disconnected(peer);
    }

    /// Answers a backfill request from the local log.
    pub(crate) fn serve_sync(&self, request: &SyncRequest) -> SyncResponse {
        let tip = self.chain.height();
        let mut blobs = Vec::new();
        if let Some(store) = &self.store {
            let count = request.count.min(MAX_SYNC_BLOBS);
            if count > 0 && request.from >= 1 && request.from <= tip {
                match store.range(request.from, count, MAX_SYNC_PAYLOAD_BYTES) {
                    Ok(found) => blobs = found,
                    Err(e) => tracing::warn!(error = %e, "cannot read the DA log"),
                }
            }
        }
        self.metrics.da_sync_blobs_served.inc_by(blobs.len() as u64);
        SyncResponse {
            tip,
            blobs: blobs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        }
    }

    /// A backfill response. Every blob is verified and offered in order; the first one that
    /// fails stops the processing and gets the peer banned.
    pub(crate) fn on_sync_response(
        &mut self,
        peer: PeerId,
        request: &SyncRequest,
        response: SyncResponse,
        now: Instant,
    ) {
        let Some(authority) = self.authority else {
            return;
        };
        let response = match response.validated(request) {
            Ok(r) => r,
            Err(e) => {
                self.sync_invalid(peer, request, now, "malformed", &e);
                return;
            }
        };
        let delivered = response.blobs.len() as u32;
        self.metrics
            .da_sync_blobs_received
            .inc_by(u64::from(delivered));
        for (i, bytes) in response.blobs.iter().enumerate() {
            let expected = request.from + i as u64;
            let blob = match DaBlob::decode_verified(bytes, &self.network, &authority) {
                Ok(b) if b.height() == expected => b,
                Ok(b) => {
                    let e = format!("asked for height {expected}, got {}", b.height());
                    self.sync_invalid(peer, request, now, "wrong_height", &e);
                    return;
                }
                Err(e) => {
                    self.sync_invalid(peer, request, now, e.reason(), &e);
                    return;
                }
            };
            if let Offer::Rejected(e) = self.offer(blob) {
                self.sync_invalid(peer, request, now, e.reason(), &e);
                return;
            }
        }
        self.metrics
            .da_sync_requests
            .with_label_values(&["ok"])
            .inc();
        self.planner
            .on_response(&peer, request, response.tip, delivered, now);
        self.metrics
            .da_target_height
            .set(self.planner.target() as i64);
    }

    fn sync_invalid(
        &mut self,
        peer: PeerId,
        request: &SyncRequest,
        now: Instant,
        reason: &'static str,
        error: &dyn std::fmt::Display,
    ) {
        self.reject(reason, error);
        self.metrics
            .da_sync_requests
            .with_label_values(&["invalid"])
            .inc();
        self.planner.on_invalid(&peer, request, now);
        self.actions
            .push(DaAction::Penalize(peer, "da_invalid_blob"));
    }

    /// A backfill request failed (timeout, connection closed, unsupported protocol).
    pub(crate) fn on_sync_failure(&mut self, peer: PeerId, request: &SyncRequest, now: Instant) {
        self.metrics
            .da_sync_requests
            .with_label_values(&["failed"])
            .inc();
        self.planner.on_failure(&peer, request, now);
    }

    /// A blob handed to the node directly (signed elsewhere, e.g. by the coordinator
    /// committee). Applied or held like a gossiped one, then gossiped.
    ///
    /// # Errors
    /// [`SubmitError`] when it does not verify, breaks the chain or is too far ahead.
    pub(crate) fn submit(&mut self, bytes: &[u8]) -> Result<Submitted, SubmitError> {
        let authority = self.authority.ok_or(SubmitError::NoAuthority)?;
        let blob = DaBlob::decode_verified(bytes, &self.network, &authority).map_err(|e| {
            self.reject(e.reason(), &e);
            SubmitError::Invalid(e)
        })?;
        let height = blob.height();
        let encoded = blob.encoded().to_vec();
        let outcome = match self.offer(blob) {
            Offer::Applied(_) => "applied",
            Offer::Held => "held",
            Offer::Duplicate => "duplicate",
            Offer::TooFarAhead => {
                return Err(SubmitError::TooFarAhead {
                    height,
                    local: self.chain.height(),
                })
            }
            Offer::Rejected(e) => {
                self.reject(e.reason(), &e);
                return Err(SubmitError::Chain(e));
            }
        };
        if outcome != "duplicate" {
            self.actions.push(DaAction::Gossip(encoded));
        }
        Ok(Submitted { height, outcome })
    }

    /// Queues `events` for sealing; `tx` is answered once all of them are in blobs.
    pub(crate) fn publish(
        &mut self,
        events: Vec<DaEvent>,
        tx: oneshot::Sender<Result<Published, PublishError>>,
        now: Instant,
    ) {
        if let Err(e) = self.check_publish(&events) {
            let _ = tx.send(Err(e));
            return;
        }
        let id = self.next_publish;
        self.next_publish += 1;
        self.waiters.insert(
            id,
            PublishWaiter {
                tx,
                events: events.len(),
                remaining: events.len(),
                heights: BTreeSet::new(),
            },
        );
        for event in events {
            let size = event_size(&event);
            // check_publish made room for every event.
            let _ = self.batcher.push(
                Queued {
                    event,
                    reply: Reply::Publish(id),
                },
                size,
                now,
            );
        }
    }

    fn check_publish(&self, events: &[DaEvent]) -> Result<(), PublishError> {
        if self.signer.is_none() {
            return Err(PublishError::NotAuthority(self.network.to_string()));
        }
        if events.is_empty() {
            return Err(PublishError::Empty);
        }
        for (index, event) in events.iter().enumerate() {
            event
                .validate()
                .and_then(|()| event.to_wire().map(drop))
                .map_err(|error| PublishError::Invalid { index, error })?;
        }
        let queued = self.batcher.len();
        if queued + events.len() > MAX_QUEUED_EVENTS {
            return Err(PublishError::QueueFull { queued });
        }
        Ok(())
    }

    /// A storage node asks to be registered (coordinator side).
    pub(crate) fn on_register(
        &mut self,
        peer: PeerId,
        request: RegisterRequest,
        channel: ResponseChannel<RegisterResponse>,
        now: Instant,
    ) {
        let refuse = |reason: String| RegisterResponse::Refused { reason };
        let answer = if self.signer.is_none() {
            Some(refuse(
                "this coordinator is not the DA authority of the network".into(),
            ))
        } else if let Err(e) = request.validate() {
            Some(refuse(e.to_string()))
        } else {
            let node_id = peer.to_base58();
            match self.chain.state().nodes().get(&node_id) {
                Some(r)
                    if r.zone == request.zone
                        && r.capacity_bytes == request.capacity_bytes
                        && r.class == request.class =>
                {
                    self.metrics
                        .da_registrations
                        .with_label_values(&["known"])
                        .inc();
                    Some(RegisterResponse::Registered {
                        height: r.registered_at,
                    })
                }
                _ => {
                    let event = DaEvent::NodeRegistered {
                        node_id,
                        zone: request.zone,
                        capacity_bytes: request.capacity_bytes,
                        class: request.class,
                    };
                    let size = event_size(&event);
                    match self.batcher.push(
                        Queued {
                            event,
                            reply: Reply::Register(channel),
                        },
                        size,
                        now,
                    ) {
                        Ok(()) => {
                            tracing::info!(%peer, "storage node registration queued");
                            return;
                        }
                        Err(full) => {
                            let Queued { reply, .. } = full.0;
                            if let Reply::Register(channel) = reply {
                                self.metrics
                                    .da_registrations
                                    .with_label_values(&["refused"])
                                    .inc();
                                self.actions.push(DaAction::Respond(
                                    channel,
                                    refuse("the coordinator's queue is full; retry later".into()),
                                ));
                            }
                            return;
                        }
                    }
                }
            }
        };
        if let Some(answer) = answer {
            if matches!(answer, RegisterResponse::Refused { .. }) {
                self.metrics
                    .da_registrations
                    .with_label_values(&["refused"])
                    .inc();
            }
            self.actions.push(DaAction::Respond(channel, answer));
        }
    }

    /// True when the authority may seal: it holds no out-of-order blob, no peer reported a
    /// higher tip, and a peer told it the tip (or the start grace passed).
    fn may_seal(&self, now: Instant) -> bool {
        self.signer.is_some()
            && self.chain.pending() == 0
            && self.planner.target() <= self.chain.height()
            && (self.planner.probes_answered() > 0
                || now.duration_since(self.started) >= self.cfg.publish_grace)
    }

    /// Timers: backfill requests and stalls, sealing of batches (authority).
    pub(crate) fn poll(&mut self, now: Instant) {
        let stalls = self.planner.stalls();
        let actions = self.planner.poll(now);
        self.metrics
            .da_sync_requests
            .with_label_values(&["stalled"])
            .inc_by(self.planner.stalls() - stalls);
        for action in actions {
            match action {
                SyncAction::Request { peer, request } => {
                    self.actions.push(DaAction::Sync(peer, request));
                }
            }
        }
        self.metrics
            .da_target_height
            .set(self.planner.target() as i64);
        while self.may_seal(now) {
            let Some(batch) = self.batcher.poll(now) else {
                break;
            };
            self.seal(batch);
        }
    }

    /// When [`DaService::poll`] next has something to do.
    /// A batch counts only while the node may seal: during the start grace the housekeeping
    /// tick polls again within a second.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let batch = if self.may_seal(now) {
            self.batcher.next_deadline()
        } else {
            None
        };
        match (batch, self.planner.next_deadline()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn seal(&mut self, batch: Vec<Queued>) {
        let Some(signer) = &self.signer else {
            return;
        };
        let Some(authority) = self.authority else {
            return;
        };
        let (events, replies): (Vec<DaEvent>, Vec<Reply>) =
            batch.into_iter().map(|q| (q.event, q.reply)).unzip();
        let height = self.chain.height() + 1;
        let timestamp_ms = unix_ms().max(self.chain.last_timestamp_ms());
        let sealed = DaBlob::sign(
            signer,
            &self.network,
            height,
            self.chain.tip_hash(),
            timestamp_ms,
            events,
        )
        .and_then(|b| b.verify(&self.network, &authority));
        let blob = match sealed {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot seal a DA blob");
                self.fail_replies(replies, &e.to_string());
                return;
            }
        };
        let encoded = blob.encoded().to_vec();
        let events = blob.blob().events.len();
        match self.offer(blob) {
            Offer::Applied(_) => {}
            other => {
                let e = format!("the local chain refused the sealed blob: {other:?}");
                tracing::error!(error = %e, "cannot seal a DA blob");
                self.fail_replies(replies, &e);
                return;
            }
        }
        self.metrics.da_blobs_published.inc();
        tracing::info!(height, events, "DA blob sealed");
        self.actions.push(DaAction::Gossip(encoded));
        for reply in replies {
            match reply {
                Reply::Publish(id) => self.publish_sealed(id, height),
                Reply::Register(channel) => {
                    self.metrics
                        .da_registrations
                        .with_label_values(&["published"])
                        .inc();
                    self.actions.push(DaAction::Respond(
                        channel,
                        RegisterResponse::Registered { height },
                    ));
                }
            }
        }
    }

    fn publish_sealed(&mut self, id: u64, height: u64) {
        let Some(w) = self.waiters.get_mut(&id) else {
            return;
        };
        w.remaining -= 1;
        w.heights.insert(height);
        if w.remaining == 0 {
            if let Some(w) = self.waiters.remove(&id) {
                let _ = w.tx.send(Ok(Published {
                    events: w.events,
                    heights: w.heights.into_iter().collect(),
                }));
            }
        }
    }

    fn fail_replies(&mut self, replies: Vec<Reply>, error: &str) {
        for reply in replies {
            match reply {
                Reply::Publish(id) => {
                    if let Some(w) = self.waiters.remove(&id) {
                        let _ = w.tx.send(Err(PublishError::Seal(error.to_owned())));
                    }
                }
                Reply::Register(channel) => self.actions.push(DaAction::Respond(
                    channel,
                    RegisterResponse::Refused {
                        reason: "sealing failed".into(),
                    },
                )),
            }
        }
    }

    /// Up to `count` stored blobs from height `from`, decoded (for the control API).
    pub(crate) fn blobs(&self, from: u64, count: u32) -> Vec<DaBlob> {
        let Some(store) = &self.store else {
            return Vec::new();
        };
        store
            .range(
                from.max(1),
                count.min(MAX_SYNC_BLOBS),
                MAX_SYNC_PAYLOAD_BYTES,
            )
            .unwrap_or_default()
            .iter()
            .filter_map(|b| DaBlob::from_bytes(b).ok())
            .collect()
    }

    /// The state for `GET /v1/da/state`.
    pub(crate) fn view(&self) -> DaStateView {
        let st = self.chain.state();
        DaStateView {
            height: st.height(),
            tip_hash: st.tip_hash(),
            events: st.events(),
            ignored_events: st.ignored_events(),
            state_root: st.state_root(),
            nodes: st.nodes().len(),
            chunks: st.chunks().len(),
            replicas: st.replicas().values().map(BTreeSet::len).sum(),
            zones: st.zones().len(),
            pending: self.chain.pending(),
            target_height: self.planner.target().max(st.height()),
            rejected: self.rejected,
            synced: self.planner.target() <= st.height() && self.chain.pending() == 0,
            is_authority: self.is_authority(),
            queued_events: self.batcher.len(),
        }
    }
}

/// Encoded size of an event (its wire body), for batching by size.
fn event_size(event: &DaEvent) -> usize {
    event.to_wire().map_or(256, |w| w.2.len() + 8)
}

/// The state to resume from: the snapshot when it decodes, verifies and matches the stored
/// log at its height; otherwise an empty state (the log is replayed from height 1).
fn load_state(
    network: &NetworkId,
    authority: Option<&[u8; 32]>,
    store: Option<&DaStore>,
    path: Option<&std::path::Path>,
    metrics: &Metrics,
) -> DaState {
    let fresh = DaState::new(network.clone());
    let (Some(store), Some(path), Some(authority)) = (store, path, authority) else {
        return fresh;
    };
    let bytes = match store::load_snapshot(path, MAX_SNAPSHOT_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return fresh,
        Err(e) => {
            corrupt_snapshot(path, &e, metrics);
            return fresh;
        }
    };
    let state = match DaState::from_snapshot(&bytes, network) {
        Ok(s) => s,
        Err(e) => {
            corrupt_snapshot(path, &e, metrics);
            return fresh;
        }
    };
    if state.height() == 0 {
        return fresh;
    }
    let matches = state.height() <= store.tip()
        && store
            .get(state.height())
            .ok()
            .flatten()
            .and_then(|b| DaBlob::decode_verified(&b, network, authority).ok())
            .is_some_and(|b| b.hash() == state.tip_hash());
    if matches {
        tracing::info!(height = state.height(), "DA state snapshot loaded");
        state
    } else {
        tracing::warn!(
            snapshot_height = state.height(),
            log_height = store.tip(),
            "the DA state snapshot does not match the log: replaying the log"
        );
        fresh
    }
}

fn corrupt_snapshot(path: &std::path::Path, error: &dyn std::fmt::Display, metrics: &Metrics) {
    metrics.da_store_corrupt.inc();
    match store::move_aside(path) {
        Ok(to) => {
            tracing::error!(%error, moved_to = %to.display(), "the DA state snapshot was corrupt: moved aside; replaying the log")
        }
        Err(e) => {
            tracing::error!(%error, move_error = %e, "the DA state snapshot is corrupt and cannot be moved aside; replaying the log")
        }
    }
}

/// Verifies and applies every stored blob after the chain's height. The first blob that
/// fails (undecodable, bad signature, broken chain) is dropped from the log with everything
/// after it; peers backfill the rest.
fn replay(chain: &mut DaChain, store: &DaStore, network: &NetworkId, authority: &[u8; 32]) {
    let mut bad: Option<(u64, String)> = None;
    let from = chain.height() + 1;
    let result = store.for_each_from(from, |height, bytes| {
        let verified = DaBlob::decode_verified(bytes, network, authority)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                if b.height() == height {
                    Ok(b)
                } else {
                    Err(format!("stored at height {height}, claims {}", b.height()))
                }
            });
        match verified.map(|b| chain.offer(b)) {
            Ok(Offer::Applied(_)) => true,
            Ok(other) => {
                bad = Some((height, format!("{other:?}")));
                false
            }
            Err(e) => {
                bad = Some((height, e));
                false
            }
        }
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot read the DA log");
    }
    if let Some((height, error)) = bad {
        tracing::error!(height, %error, "a stored DA blob failed verification: the log is truncated there and backfilled from peers");
        if let Err(e) = store.truncate_from(height) {
            tracing::error!(error = %e, "cannot truncate the DA log");
        }
    }
}

#[cfg(test)]
mod tests;
