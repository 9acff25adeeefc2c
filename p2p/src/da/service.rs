//! [`DaService`]: the DA log of one node, without the swarm. The event loop feeds it what
//! arrives (gossip, backfill responses, posted events, registrations) and carries out the
//! [`DaAction`]s it returns.

use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dsdn_protocols::da::batch::{BatchConfig, Batcher};
use dsdn_protocols::da::register::{RegisterRequest, RegisterResponse};
use dsdn_protocols::da::sync::{
    BackfillPlanner, SyncAction, SyncConfig, SyncRequest, SyncResponse, MAX_SYNC_BLOBS,
    MAX_SYNC_PAYLOAD_BYTES,
};
use dsdn_protocols::da::{DaBlob, DaChain, DaError, DaEvent, DaState, Offer, VerifiedBlob};
use dsdn_protocols::pex::PexRateLimiter;
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;
use libp2p::gossipsub::MessageAcceptance;
use libp2p::PeerId;
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use super::config::DaConfig;
use super::store::{self, DaStore, DA_LOG_FILE};
use super::writer::{LogWriter, WriterMetrics};
use super::{hex32, DaNotice, PublishError, SubmitError, MAX_QUEUED_EVENTS};
use crate::metrics::Metrics;
use crate::net::rpc::Reply as RegisterReply;

mod committee;
mod confirm;
mod degraded;
mod doubt;
mod fork;
mod identity;
mod keys;
mod load;
mod log;
mod pool;
mod proof;
mod publish;
mod state_sync;
mod sync;
mod view;

pub use confirm::{CONFIRM_PEERS, CONFIRM_RETRY, CONFIRM_TIMEOUT};
pub use fork::{ForkEvidenceView, MAX_FORK_EVIDENCE};

pub(crate) use committee::Sealer;
#[cfg(test)]
use committee::MAX_PROPOSAL_FUTURE_MS;
pub use view::DaStateView;

use load::{load_state, replay};
use log::DaLog;

/// What [`DaService::open`] needs.
pub(crate) struct DaServiceConfig {
    pub network: NetworkId,
    pub authority: Option<[u8; 32]>,
    /// The node's own key; it signs only if its public key is `authority`.
    pub key: SigningKey,
    /// Where `da-log.redb` (blobs and state) lives; `None` keeps the log in memory only
    /// (a light client).
    pub dir: Option<PathBuf>,
    pub da: DaConfig,
}

/// Who waits for a sealed (or durable) event.
#[derive(Debug)]
pub(crate) enum Reply {
    /// Part of the publish request with this id.
    Publish(u64),
    /// A storage node's registration: answer it once the event is sealed (and durable).
    Register(RegisterReply),
    /// A registration already in the state: answer it once its blob is durable.
    Known(RegisterReply),
    /// A submitted blob that applied (`POST /v1/da/blobs`): answer it once durable.
    Submit(oneshot::Sender<Result<Submitted, SubmitError>>, Submitted),
    /// An event of the node itself with nobody to answer (the epoch rotation driver's
    /// `committee_rotated`, [`DaService::propose_rotation`]: the driver reads the log).
    Internal,
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
    /// Ask a peer for its blob at `request.from` to confirm a sealed blob (answer with
    /// [`DaService::on_confirm_response`]).
    Confirm(PeerId, SyncRequest),
    /// Hand fork evidence to this DA peer (`/dsdn/<net>/da-evidence/1.0.0`).
    PushEvidence(PeerId, Box<dsdn_protocols::da::evidence::ForkEvidence>),
    /// Write fork evidence to `path` (atomically, off the event loop).
    PersistEvidence {
        /// `<da dir>/fork-evidence/<height>-<hash>.cbor`.
        path: PathBuf,
        /// The `ForkEvidence` CBOR.
        bytes: Vec<u8>,
    },
    /// Answer a registration request.
    Respond(RegisterReply, RegisterResponse),
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

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The DA log of one node; see the module documentation of [`crate::da`].
pub(crate) struct DaService {
    network: NetworkId,
    /// The genesis authority (`[network] da_authority`).
    authority: Option<[u8; 32]>,
    /// The key of every height: `authority` then the epochs recorded in the log
    /// ([`keys`]); `None` without a genesis authority.
    keys: Option<dsdn_protocols::da::KeyHistory>,
    sealer: Sealer,
    /// This node's own Ed25519 key (its libp2p identity): signs the blobs it proposes as a
    /// committee member (version 4, issue 13 §6).
    node_key: SigningKey,
    /// This node sealed a blob since it started (see [`identity`]).
    sealed_this_run: bool,
    /// Another process seals with this node's key: sealing stopped (issue 14 §4).
    identity_clash: Option<String>,
    /// Peers whose blobs failed the signature check (a hint at a wrong `da_authority`).
    doubt: doubt::AuthorityDoubt,
    chain: DaChain,
    /// The log on disk and its writer; `None` keeps the log in memory only (light client).
    log: Option<DaLog>,
    planner: BackfillPlanner<PeerId>,
    batcher: Batcher<Queued>,
    /// Events waiting for the proposer rotation (committee members only).
    pool: pool::Pool,
    waiters: HashMap<u64, PublishWaiter>,
    next_publish: u64,
    cfg: DaConfig,
    started: Instant,
    rejected: u64,
    metrics: Metrics,
    height_tx: watch::Sender<u64>,
    notices: Vec<DaNotice>,
    want_notices: bool,
    actions: Vec<DaAction>,
    /// Registration requests of one peer: at most one per 5 s.
    register_limiter: PexRateLimiter<PeerId>,
    /// Fork evidence and what it is compared with (issue 13 §4).
    forks: fork::ForkWatch,
    /// Sealed blobs whose waiters wait for the network's confirmation.
    confirming: confirm::Confirmations,
    /// A state sync is under way (issue 16 §5): no height is applied or asked for.
    state_sync_hold: bool,
    /// The selection rule a `committee_rotated` event must follow to be queued or
    /// co-signed (issue 13 §3); set on a member running the epoch rotation.
    selection: Option<crate::committee::epochs::SelectionRule>,
    /// This coordinator does not seal but forwards posted events to the committee in force
    /// (issue 13 §1, [`DaService::set_forwarding`]).
    forwarding: bool,
}

/// Stored blobs above the state from which a start replays them with the large page cache
/// of `[da] rebuild_cache_mib` (issue 16 §6). A normal restart replays none (the state is
/// written with its blobs); a few are replayed after a crash of the writer; many after
/// `--reindex-da`, an upgrade or a cleared state, where a blob may carry 1 to 1,024 events.
const BULK_REPLAY_BLOBS: u64 = 64;

/// Reopens the log with the `what` ("rebuild" or "serving") page cache of `bytes`; a
/// failure is logged (the writer reopens the store when it next writes).
fn rebuild_cache(store: &DaStore, bytes: usize, what: &str) {
    match store.set_cache_bytes(bytes) {
        Ok(()) => tracing::info!(
            cache_mib = bytes >> 20,
            blobs = store.tip(),
            "DA log reopened with the {what} page cache"
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot reopen the DA log with the {what} page cache")
        }
    }
}

impl DaService {
    /// Opens the log and its stored state in `cfg.dir`, verifies and replays the blobs
    /// above the state's height (all of them when the state is missing).
    ///
    /// # Errors
    /// The log file belongs to another network or a newer schema, or cannot be created.
    pub(crate) fn open(
        cfg: DaServiceConfig,
        metrics: Metrics,
        now: Instant,
    ) -> Result<(DaService, watch::Receiver<u64>), store::DaStoreError> {
        let node_key = cfg.key.clone();
        let sealer = if cfg.authority == Some(cfg.key.verifying_key().to_bytes()) {
            Sealer::Key(Box::new(cfg.key))
        } else {
            Sealer::None
        };
        let store = match &cfg.dir {
            Some(dir) => {
                let opened = DaStore::open(&dir.join(DA_LOG_FILE), &cfg.network)?;
                if let Some(path) = &opened.moved_aside {
                    metrics.da_store_corrupt.inc();
                    tracing::error!(path = %path.display(), "the DA log was corrupt: moved aside; the log is rebuilt from peers");
                }
                opened.store.set_proof_history(cfg.da.proof_history_heights);
                Some(Arc::new(opened.store))
            }
            None => None,
        };
        let (state, overlay) = load_state(
            &cfg.network,
            cfg.authority.as_ref(),
            store.as_ref(),
            &metrics,
        );
        let mut chain = DaChain::new(state);
        if let Some(store) = &store {
            let bulk = store.tip().saturating_sub(chain.height()) >= BULK_REPLAY_BLOBS;
            if bulk {
                rebuild_cache(store, cfg.da.rebuild_cache_mib << 20, "rebuild");
            }
            replay(
                &mut chain,
                store,
                overlay.as_ref(),
                true,
                &cfg.network,
                cfg.authority,
            );
            if bulk {
                rebuild_cache(store, store::CACHE_BYTES, "serving");
            }
        }
        let keys = keys::history_of(cfg.authority, chain.state());
        let height = chain.height();
        // The writer starts after the replay, which may have truncated the log.
        let log = match store {
            Some(store) => {
                let writer = LogWriter::spawn(
                    store.clone(),
                    WriterMetrics {
                        commits: metrics.da_log_commits.clone(),
                        errors: metrics.da_log_write_errors.clone(),
                        storage_errors: metrics
                            .storage_write_errors
                            .with_label_values(&[crate::storage::Store::DaLog.as_str()]),
                    },
                )?;
                Some(DaLog::new(store, overlay, writer))
            }
            None => None,
        };
        metrics.da_log_unwritten.set(0);
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
        let forks = fork::ForkWatch::load(
            cfg.dir.as_deref(),
            &cfg.network,
            keys.as_ref(),
            fork::ForkMetrics::new(metrics.registry()).ok(),
        );
        let service = DaService {
            network: cfg.network,
            authority: cfg.authority,
            keys,
            sealer,
            node_key,
            selection: None,
            forwarding: false,
            sealed_this_run: false,
            identity_clash: None,
            doubt: doubt::AuthorityDoubt::default(),
            chain,
            log,
            planner: BackfillPlanner::new(sync, height),
            batcher: Batcher::new(batch, MAX_QUEUED_EVENTS),
            pool: pool::Pool::default(),
            waiters: HashMap::new(),
            next_publish: 0,
            cfg: cfg.da,
            started: now,
            rejected: 0,
            metrics,
            height_tx,
            notices: Vec::new(),
            want_notices: false,
            actions: Vec::new(),
            register_limiter: PexRateLimiter::new(Duration::from_secs(5)),
            forks,
            confirming: confirm::Confirmations::default(),
            state_sync_hold: false,
        };
        Ok((service, height_rx))
    }

    /// True when this node may seal blobs.
    pub(crate) fn is_authority(&self) -> bool {
        !matches!(self.sealer, Sealer::None)
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
        if self.keys.is_none() {
            self.reject("no_authority", &DaError::NoAuthority);
            return MessageAcceptance::Reject;
        }
        match self.verify_blob(data) {
            Ok(blob) => {
                self.note_verified();
                let height = blob.height();
                // A blob of our own key we did not seal is not the sender's fault.
                let clash = self.own_key_conflict(&blob);
                // A second validly signed blob at a height: evidence, forwarded so that
                // every node sees it (the relaying peer did nothing wrong).
                match self.check_fork(&blob) {
                    Some(true) => return MessageAcceptance::Accept,
                    Some(false) => return MessageAcceptance::Ignore,
                    None => {}
                }
                if height == self.chain.height() + 1 && !self.accepting() {
                    // Too much is unwritten, or an append just failed: not applied (nor
                    // forwarded) now; backfill fetches it later.
                    self.planner.observe_tip(&source, height);
                    return MessageAcceptance::Ignore;
                }
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
                    Offer::Rejected(_) if clash => MessageAcceptance::Ignore,
                    Offer::Rejected(e) => {
                        self.reject(e.reason(), &e);
                        MessageAcceptance::Reject
                    }
                }
            }
            Err(e) if self.key_pending(data, &e) => {
                // Perhaps signed by the key of a rotation not applied yet: not forwarded,
                // not penalised; backfill fetches the height in order.
                self.planner.observe_tip(&source, self.chain.height() + 1);
                MessageAcceptance::Ignore
            }
            Err(e) => {
                self.note_invalid(source, e.reason());
                self.reject(e.reason(), &e);
                MessageAcceptance::Reject
            }
        }
    }

    /// Offers a verified blob to the chain and persists whatever it applied.
    /// While a failed append holds new heights back (issue 14 §2), the next height is not
    /// applied (answered `TooFarAhead`: not forwarded, not penalised, fetched again later).
    fn offer(&mut self, blob: VerifiedBlob) -> Offer {
        if blob.height() == self.chain.height() + 1 && (self.holding() || self.state_sync_hold) {
            return Offer::TooFarAhead;
        }
        let outcome = self.chain.offer(blob);
        if let Offer::Applied(applied) = &outcome {
            self.refresh_keys(applied);
            self.on_applied(applied);
        }
        self.metrics
            .da_pending_blobs
            .set(self.chain.pending() as i64);
        outcome
    }

    /// Applied blobs: handed to the log writer with their state commits (never written
    /// here), told to the height watch and the notice subscribers.
    fn on_applied(&mut self, applied: &[VerifiedBlob]) {
        self.record(applied);
        self.pool_applied(applied);
        let keep_bytes = self.log.is_none();
        for b in applied {
            self.forks.applied(b, keep_bytes);
        }
        warn_bad_node_ids(applied);
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
    }

    /// A DA peer connected (it advertises a service that keeps the log).
    pub(crate) fn peer_connected(&mut self, peer: PeerId, now: Instant) {
        self.planner.peer_connected(peer, now);
    }

    /// A peer disconnected.
    pub(crate) fn peer_disconnected(&mut self, peer: &PeerId) {
        self.planner.peer_disconnected(peer);
        self.confirm_peer_gone(peer);
        self.forks.peer_gone(peer);
        self.register_limiter.forget(peer);
    }

    /// Up to `count` applied blobs from height `from`, decoded (for the control API): from
    /// the log, including the blobs not written yet.
    pub(crate) fn blobs(&self, from: u64, count: u32) -> Vec<DaBlob> {
        self.read_range(
            from.max(1),
            count.min(MAX_SYNC_BLOBS),
            MAX_SYNC_PAYLOAD_BYTES,
        )
        .unwrap_or_default()
        .iter()
        .filter_map(|b| DaBlob::from_bytes(b).ok())
        .collect()
    }

    /// The threshold receipt with id `id` if the applied log recorded it: the
    /// `ReceiptRecorded` event of the blob at the height the state remembers (Tahap 14C:
    /// receipts written to the DA log).
    pub(crate) fn recorded_receipt(
        &self,
        id: &dsdn_protocols::da::Bytes32,
    ) -> Option<dsdn_protocols::receipt::ThresholdReceipt> {
        let height = self.chain.state().receipt(id).ok()??.height;
        let bytes = self.read_blob(height)?;
        let blob = DaBlob::from_bytes(&bytes).ok()?;
        blob.events.into_iter().find_map(|e| match e {
            DaEvent::ReceiptRecorded { receipt } if receipt.receipt_id() == *id => Some(*receipt),
            _ => None,
        })
    }
}

/// Warns about every event of `applied` (blobs from the network or this node's own) whose
/// `node_id` is not a PeerId. Such an event is applied as sealed, never refused: the blob
/// verifies, a signed blob is history, and refusing it would stall this node's chain and
/// make old logs unreplayable. Only an older build of the DA authority can have sealed it
/// (this one refuses it at admission, [`DaEvent::validate_for_sealing`]).
fn warn_bad_node_ids(applied: &[VerifiedBlob]) {
    for b in applied {
        for (index, event) in b.blob().events.iter().enumerate() {
            if let Err(e) = event.check_node_ids() {
                tracing::warn!(
                    height = b.height(),
                    index,
                    error = %e,
                    "a DA blob holds an event naming no PeerId: applied as sealed; the DA \
                     authority runs a build that does not refuse such events"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests;
