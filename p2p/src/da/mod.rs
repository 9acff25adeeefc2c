//! The DA event log of a node (Tahap 14A; issue 5): gossip, storage, replay, backfill and
//! publishing.
//!
//! ```text
//!  gossipsub dsdn/<net>/da-events/1 ─┐                      ┌─▶ DaState (14A §2), gossip, serving
//!  /dsdn/<net>/da-sync/1.0.0 ────────┼─▶ verify ─▶ DaChain ─┼─▶ DaNotice subscribers, height watch
//!  POST /v1/da/blobs (submit) ───────┘   (Ed25519   (order, └─▶ unwritten buffer ─▶ writer thread ─▶
//!                                         against    hold,       da-log.redb: blobs + state commits
//!  POST /v1/da/events ─▶ Batcher ─▶ seal (authority)  hash chain) (group commits); durable height back
//!  /dsdn/<net>/da-register/1.0.0 ─┘                               ─▶ publishers/registrations answered
//! ```
//!
//! * **Blobs.** Every blob ([`dsdn_protocols::da::DaBlob`]) is decoded under its size cap and
//!   verified — network, bounds, event versions, Ed25519 signature by the network's DA
//!   authority — before anything else looks at it. A gossiped blob that fails is rejected
//!   (not forwarded; gossipsub peer scoring is not enabled, so gossipsub itself does not
//!   penalise the sender); one that fails in a backfill response gets the sender
//!   banned. A verified blob enters the [`DaChain`](dsdn_protocols::da::DaChain), which
//!   applies blobs strictly by height along the hash chain, holds out-of-order ones (bounded)
//!   and refuses blobs that break the chain (their sender is banned too). Nothing invalid is
//!   stored.
//! * **Storage** (issue 11: no disk write on the event loop). Applied blobs are forwarded
//!   and served at once and appended to `<data dir>/da-log.redb` ([`store`]) by a writer
//!   thread (`writer`) in group commits: the event loop hands them over with `try_send` and
//!   learns the durable height through a watch channel. The derived state (its maps and
//!   authenticated tree, issue 16) is written by the same thread in the same transactions
//!   ([`store::state`]); until then it is read through an in-memory overlay. A failed
//!   append rolls the state back to what the disk holds and the lost heights are fetched
//!   again from peers; too much unwritten stops new heights for a while. At start the stored
//!   state is opened and every stored blob above it is verified again and replayed; a
//!   corrupt file is moved aside and rebuilt (from peers), corrupt state tables are cleared
//!   and rebuilt from the log. A crash loses only applied-but-unwritten blobs (re-fetched), never
//!   anything a publisher was told.
//! * **Backfill.** A node that sees a height beyond its own (a held blob, a peer's reported
//!   tip) or that starts late asks its DA peers for the missing range over
//!   `/dsdn/<network>/da-sync/1.0.0`, in chunks, several peers at once, moving a range to
//!   another peer when one stalls ([`dsdn_protocols::da::sync::BackfillPlanner`]).
//! * **Publishing.** The node whose key is the DA authority batches posted events
//!   ([`dsdn_protocols::da::batch::Batcher`]) and seals a blob when the batch is large or old
//!   enough; a publisher is answered once the blob holding its events is durable. Storage
//!   nodes register through `/dsdn/<network>/da-register/1.0.0`; the authority answers once
//!   the blob holding their `NodeRegistered` event is sealed and durable.

use dsdn_protocols::da::{ChainError, DaError, DaEvent};
use serde::{Serialize, Serializer};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

pub mod config;
mod proof_server;
mod register;
mod service;
pub(crate) mod state_sync_driver;
pub mod store;
mod sync_tag;
mod writer;

pub use config::{
    DaConfig, StateSyncMode, DEFAULT_PROOF_HISTORY_HEIGHTS, DEFAULT_REBUILD_CACHE_MIB,
    MAX_BATCH_BYTES, MAX_BATCH_EVENTS, MAX_PROOF_HISTORY_HEIGHTS, MAX_SYNC_CHUNK,
};
pub(crate) use proof_server::{api_answer, ProofServer, StateServer};
pub use proof_server::{MAX_PENDING_PER_PEER, PROOF_QUEUE};
pub(crate) use register::Registrar;
pub use register::RegistrationView;
pub(crate) use service::{DaAction, DaService, DaServiceConfig};
pub use service::{
    DaStateView, ForkEvidenceView, Published, Submitted, CONFIRM_PEERS, CONFIRM_RETRY,
    CONFIRM_TIMEOUT, MAX_FORK_EVIDENCE,
};
pub use sync_tag::SyncTag;

/// True when a peer advertising `services` keeps the DA log (every role but a dedicated
/// bootstrap node; light clients advertise nothing).
pub(crate) fn keeps_da_log(services: dsdn_protocols::ServiceSet) -> bool {
    services
        .iter()
        .any(|s| s != dsdn_protocols::ServiceType::Bootstrap)
}

/// Capacity of one DA subscriber's channel, in notices (blobs).
pub const DA_NOTICE_QUEUE: usize = 1024;

/// Most simultaneous DA subscribers of one node.
pub const MAX_DA_SUBSCRIBERS: usize = 16;

/// Most events waiting to be sealed into blobs on the DA authority (posted events and
/// registrations together); a publish that does not fit is refused with
/// [`PublishError::QueueFull`].
pub const MAX_QUEUED_EVENTS: usize = 65_536;

/// One DA blob as applied by this node, in height order (14A §1 events).
///
/// JSON form (`serde_json`): `{"height": 3, "hash": "<64 hex>", "prev_hash": "<64 hex>",
/// "timestamp_ms": 1700000000000, "events": [<DaEvent>…], "state_root": "<64 hex>"}`, each
/// event in the [`DaEvent`] JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaNotice {
    /// The blob's height (1, 2, 3, …). Consecutive notices of one subscriber have
    /// consecutive heights unless the subscriber fell more than [`DA_NOTICE_QUEUE`] notices
    /// behind (the dropped ones are counted in `da_notices_dropped_total`).
    pub height: u64,
    /// The blob's hash (SHA-256 of its signed bytes and signature).
    #[serde(serialize_with = "hex32")]
    pub hash: [u8; 32],
    /// The hash of the blob before it (zeros for height 1).
    #[serde(serialize_with = "hex32")]
    pub prev_hash: [u8; 32],
    /// When the DA authority sealed it, UNIX milliseconds.
    pub timestamp_ms: u64,
    /// The blob's events, in order.
    pub events: Vec<DaEvent>,
    /// The 14A §2 state root once this blob was applied. When a blob releases held ones
    /// (a gap filled), the whole run is applied at once and each of its notices carries the
    /// root after the run; the last notice of a run always has the exact root at its height.
    #[serde(serialize_with = "hex32")]
    pub state_root: [u8; 32],
}

pub(crate) fn hex32<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// Reads what [`hex32`] writes: 64 hex characters.
pub(crate) fn from_hex32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<[u8; 32], D::Error> {
    let text = <String as serde::Deserialize>::deserialize(d)?;
    let mut out = [0u8; 32];
    hex::decode_to_slice(&text, &mut out).map_err(|e| {
        serde::de::Error::custom(format!("expected 64 hex characters, got {text:?}: {e}"))
    })?;
    Ok(out)
}

/// Refused [`crate::NodeHandle::subscribe_da`]: [`MAX_DA_SUBSCRIBERS`] are subscribed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("too many DA subscribers (max {MAX_DA_SUBSCRIBERS})")]
pub struct TooManySubscribers;

/// The bounded senders of the DA subscribers, owned by the event loop.
///
/// Sending never blocks: a notice for a subscriber whose channel is full is dropped (and
/// counted in `da_notices_dropped_total`); a closed subscriber is removed.
pub(crate) struct DaSubscribers {
    senders: Vec<mpsc::Sender<DaNotice>>,
    dropped: prometheus::IntCounter,
}

impl DaSubscribers {
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Self {
            senders: Vec::new(),
            dropped: metrics.da_notices_dropped.clone(),
        }
    }

    /// True when at least one subscriber is listening (notices are worth building).
    pub(crate) fn wanted(&mut self) -> bool {
        self.senders.retain(|tx| !tx.is_closed());
        !self.senders.is_empty()
    }

    /// A new subscriber's receiver.
    pub(crate) fn subscribe(&mut self) -> Result<mpsc::Receiver<DaNotice>, TooManySubscribers> {
        self.senders.retain(|tx| !tx.is_closed());
        if self.senders.len() >= MAX_DA_SUBSCRIBERS {
            return Err(TooManySubscribers);
        }
        let (tx, rx) = mpsc::channel(DA_NOTICE_QUEUE);
        self.senders.push(tx);
        Ok(rx)
    }

    /// Offers each notice, in order, to every subscriber.
    pub(crate) fn notify(&mut self, notices: Vec<DaNotice>) {
        if self.senders.is_empty() {
            return;
        }
        for notice in notices {
            let dropped = &self.dropped;
            self.senders.retain(|tx| match tx.try_send(notice.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.inc();
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }
}

/// Why a publish request (`POST /v1/da/events`) is refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// This node does not seal (its key, or its share of the committee in force, is not the
    /// network's DA authority) and does not forward to the committee (issue 13 §1).
    #[error("this node is not the DA authority of network {0}: only the coordinator whose key is da_authority, a member of the committee in force, or a coordinator admitted to the committee selection publishes")]
    NotAuthority(String),
    /// This node does not carry DA events (dedicated bootstrap node).
    #[error("this node does not keep the DA log")]
    NotSubscribed,
    /// The request was empty.
    #[error("no events to publish")]
    Empty,
    /// An event is invalid (the whole request is refused; nothing is queued).
    #[error("event {index}: {error}")]
    Invalid {
        /// Position of the event in the request (0-based).
        index: usize,
        /// What is wrong with it.
        error: DaError,
    },
    /// [`MAX_QUEUED_EVENTS`] events already wait to be sealed.
    #[error("{queued} events already wait to be sealed (max {MAX_QUEUED_EVENTS}); retry later")]
    QueueFull {
        /// Events waiting.
        queued: usize,
    },
    /// Signing or storing the blob failed.
    #[error("sealing failed: {0}")]
    Seal(String),
    /// This node stopped sealing (another process seals with its key, issue 14 §4).
    #[error("this node stopped sealing: {0}")]
    Halted(String),
}

/// Why a submitted blob (`POST /v1/da/blobs`) is refused.
#[derive(Debug, thiserror::Error)]
pub enum SubmitError {
    /// This node does not carry DA events (dedicated bootstrap node).
    #[error("this node does not keep the DA log")]
    NotSubscribed,
    /// No DA authority is configured: no blob can be verified.
    #[error("no DA authority is configured for this network")]
    NoAuthority,
    /// The blob does not decode or does not verify.
    #[error(transparent)]
    Invalid(#[from] DaError),
    /// The blob is validly signed but does not extend the log.
    #[error(transparent)]
    Chain(#[from] ChainError),
    /// The log takes no new height for now: too many applied blobs are not written yet,
    /// or an append just failed. Retry later.
    #[error("the DA log is busy (height {height} not taken now); retry later")]
    LogBusy {
        /// The blob's height.
        height: u64,
    },
    /// The blob applied but the log failed to store it: the node rolled back to what its
    /// disk holds and fetches the height again from peers. Retry later.
    #[error("blob {height} applied but the DA log could not store it: {reason}")]
    NotStored {
        /// The blob's height.
        height: u64,
        /// The append error.
        reason: String,
    },
    /// The blob is too far ahead of the log to be held; sync first.
    #[error("blob is too far ahead of the local log (height {height}, local {local})")]
    TooFarAhead {
        /// The blob's height.
        height: u64,
        /// The local log height.
        local: u64,
    },
}
