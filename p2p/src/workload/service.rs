//! [`WorkloadService`]: workloads and receipts of one node, without the swarm. The event
//! loop feeds it what arrives (`/dsdn/<net>/workload/1.0.0` requests and responses,
//! receipts gossip, handle commands, finished executions and signing rounds) and carries
//! out the [`WorkloadAction`]s it queues (see [`WorkloadService::take_actions`]).
//!
//! * the coordinator side (submissions, executor choice, the committee signature):
//!   [`coordinator`];
//! * the executing side (`Execute` and `FetchModule` requests, jobs on the blocking pool):
//!   [`executor`];
//! * receipts (verification, dedup, gossip verdicts, the DA log record): [`receipts`].
//!
//! What it reads of the network comes as a [`crate::net::PeerView`] argument; what it needs of the
//! node's other services (the committee's receipt context, the group key, whether this
//! node records receipts in the DA log) comes as plain values.

use std::collections::HashMap;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dsdn_protocols::committee::{GroupKey, Slot};
use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::{ReceiptDedup, ReceiptV1};
use dsdn_protocols::workload::{ExecuteRequest, WorkloadRequest, WorkloadResponse};
use ed25519_dalek::SigningKey;
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot};

use super::{
    ExecOutput, ModuleStore, RecentReceipts, WorkloadConfig, WorkloadError, WorkloadMetrics,
    WorkloadResult, WorkloadTag,
};
use crate::committee::{GroupSignature, ThresholdSignError};
use crate::net::rpc::Reply;

mod coordinator;
mod disputes;
mod executor;
mod receipts;
mod resign;
#[cfg(test)]
pub(crate) use receipts::OptimisticOutcome;
#[cfg(test)]
pub(crate) use resign::{resign_plan, Resign, MAX_RESIGNS, RESIGN_DELAY};

/// Submissions a coordinator handles at once.
pub(crate) const MAX_SUBMISSIONS: usize = 16;
/// Receipt ids remembered for duplicate rejection.
const DEDUP_CAPACITY: usize = 65_536;
/// Receipts kept in memory for `receipt show` before the DA log has them.
const RECENT_RECEIPTS: usize = 1024;
/// Results of executions and signing rounds waiting for the loop.
const INTERNAL_QUEUE: usize = 64;

/// Where a submission's result goes.
pub(crate) type SubmitReply = oneshot::Sender<Result<WorkloadResult, WorkloadError>>;

/// What the event loop must do on behalf of the workload service: the narrow network
/// verbs, and asks of the node's other services.
#[derive(Debug)]
pub(crate) enum WorkloadAction {
    /// Send a `/dsdn/<net>/workload/1.0.0` request to a peer; its response (or failure)
    /// goes back to [`WorkloadService::on_response`] with the tag.
    Send(PeerId, WorkloadRequest, WorkloadTag),
    /// Answer an inbound workload request.
    Respond(Reply, WorkloadResponse),
    /// Gossip this encoded `ThresholdReceipt` or `OptimisticReceipt` on the receipts topic.
    Gossip(Vec<u8>),
    /// Report the validation result of a receipts gossip message (message id, propagation
    /// source, verdict).
    Verdict(MessageId, PeerId, MessageAcceptance),
    /// Penalize (ban) this peer for the given reason (a metrics label).
    Penalize(PeerId, &'static str),
    /// Have the committee threshold-sign `message` under `slot`; hand the result to the
    /// sender from [`WorkloadService::signature_sender`] with this `id`, or call
    /// [`WorkloadService::signing_unavailable`] when this node has no committee.
    ThresholdSign {
        /// The submission the signature is for.
        id: u64,
        /// The committee slot (`Slot::Receipt(receipt id)`).
        slot: Slot,
        /// `committee_signing_bytes` of the node's receipt.
        message: Vec<u8>,
        /// The epoch, committee hash and group key `message` names: the committee service
        /// in force must be that one, else the round is not started and the submission is
        /// re-signed under the one in force (issue 13 §3, a switch between execution and
        /// signing; see [`WorkloadService::on_internal`]).
        committee: (u64, Bytes32, GroupKey),
    },
    /// Record this accepted receipt in the DA log (a `ReceiptRecorded` event), unless the
    /// log holds it already. Queued only when [`ReceiptCheck::record`] is set.
    RecordReceipt(Box<dsdn_protocols::receipt::ThresholdReceipt>),
}

/// What the service needs to know of the node's other services to judge a receipt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ReceiptCheck {
    /// The group key receipts are verified against: the committee's on a member holding a
    /// share, else the network's DA authority; `None` when neither is known (receipts are
    /// then counted `unverifiable` and gossip is neither forwarded nor blamed).
    pub(crate) group_key: Option<GroupKey>,
    /// The other key valid for receipts around a committee rotation (issue 13 §3: the next
    /// epoch's key once its rotation is recorded, the previous one for a while after it
    /// took effect; `KeyHistory::receipt_keys`), `None` outside a handoff. A receipt naming
    /// it is verified against it instead of `group_key`.
    pub(crate) handoff_key: Option<GroupKey>,
    /// On a committee member holding a share: the epoch, committee hash and group key
    /// receipts are signed under now (the epoch service in force); `None` elsewhere. A
    /// submission whose signing round failed re-signs under it when it is a later epoch
    /// than the one its message named.
    pub(crate) committee: Option<(u64, Bytes32, GroupKey)>,
    /// True when this node seals DA blobs (the committee's DA proposer): accepted receipts
    /// are then recorded in the DA log ([`WorkloadAction::RecordReceipt`]).
    pub(crate) record: bool,
}

/// What the spawned tasks hand back to the loop (through [`WorkloadService::next_internal`]).
#[derive(Debug)]
pub(crate) enum Internal {
    /// The execution of the job with this id finished: its output, or why not.
    Ran(u64, Result<ExecOutput, String>),
    /// The signing round of the submission with this id finished.
    Signed(u64, Result<GroupSignature, ThresholdSignError>),
    /// The submission with this id signs again, after its round failed around a
    /// committee switch (`service/resign.rs`).
    Resign(u64),
}

impl ReceiptCheck {
    /// The key a receipt naming `named` is verified against: `handoff_key` when it is that
    /// key, else `group_key`.
    pub(crate) fn key_for(&self, named: &GroupKey) -> Option<GroupKey> {
        match self.handoff_key {
            Some(k) if k == *named => Some(k),
            _ => self.group_key,
        }
    }
}

/// A submission this coordinator handles.
struct Submission {
    request: ExecuteRequest,
    /// Nodes still to try, best first.
    candidates: std::collections::VecDeque<PeerId>,
    /// The node whose `Execute` answer is awaited, if any: the only node allowed to fetch
    /// this submission's module.
    asked: Option<PeerId>,
    /// Nodes tried, with why they did not serve.
    tried: Vec<(PeerId, String)>,
    /// The executing node's receipt and output, once it answered.
    executed: Option<(ReceiptV1, Vec<u8>, PeerId)>,
    /// The committee's epoch, hash and group key the receipt is signed under.
    committee: (u64, Bytes32, GroupKey),
    /// Answer with an optimistic receipt as soon as a node executed it (issue 13 §5).
    optimistic: bool,
    /// Where the result goes; `None` once answered (optimistically) while the committee
    /// still signs.
    reply: Option<SubmitReply>,
    /// Signing rounds started again after a failure around a committee switch (at most
    /// `resign::MAX_RESIGNS`).
    resigns: u8,
}

/// An `Execute` this node serves.
struct Job {
    reply: Reply,
    request: ExecuteRequest,
    started: Instant,
}

/// Workloads and receipts of one node; see the module documentation.
pub(crate) struct WorkloadService {
    cfg: WorkloadConfig,
    metrics: WorkloadMetrics,
    /// The node key: signs the receipts of the executions this node runs.
    key: SigningKey,
    /// Its public half.
    my_key: Bytes32,
    /// This node's PeerId (never chosen as an executor).
    me: PeerId,
    /// The network id submissions are signed for.
    network: String,
    modules: ModuleStore,
    recent: RecentReceipts,
    dedup: ReceiptDedup,
    /// Jobs seen and disputes found (issue 13 §5, §6).
    disputes: disputes::ReceiptDisputes,
    /// The committee as this node knows it (members only: a committee member's own
    /// configuration); `None` elsewhere. Optimistic receipts by non-members are then
    /// refused as `UnauthorizedSigner` evidence.
    committee: Option<dsdn_protocols::committee::CommitteeConfig>,
    /// Rotates the executor choice over consecutive submissions.
    turn: usize,
    next_id: u64,
    submissions: HashMap<u64, Submission>,
    jobs: HashMap<u64, Job>,
    actions: Vec<WorkloadAction>,
    internal_tx: mpsc::Sender<Internal>,
    internal_rx: mpsc::Receiver<Internal>,
}

impl WorkloadService {
    /// The workload service of the node with node key `key` and PeerId `me` on network
    /// `network` (the id submissions are signed for).
    pub(crate) fn new(
        cfg: WorkloadConfig,
        metrics: WorkloadMetrics,
        key: SigningKey,
        me: PeerId,
        network: String,
    ) -> Self {
        let (internal_tx, internal_rx) = mpsc::channel(INTERNAL_QUEUE);
        Self {
            modules: ModuleStore::new(cfg.module_cache_bytes),
            cfg,
            metrics,
            my_key: Bytes32(key.verifying_key().to_bytes()),
            key,
            me,
            network,
            recent: RecentReceipts::new(RECENT_RECEIPTS),
            dedup: ReceiptDedup::new(DEDUP_CAPACITY),
            disputes: disputes::ReceiptDisputes::default(),
            committee: None,
            turn: 0,
            next_id: 0,
            submissions: HashMap::new(),
            jobs: HashMap::new(),
            actions: Vec::new(),
            internal_tx,
            internal_rx,
        }
    }

    /// The service of a committee member: `committee` is its committee (epoch, threshold,
    /// members), against which optimistic receipts' signers are checked.
    pub(crate) fn with_committee(
        mut self,
        committee: Option<dsdn_protocols::committee::CommitteeConfig>,
    ) -> Self {
        self.committee = committee;
        self
    }

    /// The committee optimistic receipts' signers are checked against from now on (the
    /// next epoch's, at a committee switch: issue 13 §3).
    pub(crate) fn set_committee(
        &mut self,
        committee: Option<dsdn_protocols::committee::CommitteeConfig>,
    ) {
        self.committee = committee;
    }

    /// The actions queued since the last call, oldest first.
    pub(crate) fn take_actions(&mut self) -> Vec<WorkloadAction> {
        std::mem::take(&mut self.actions)
    }

    /// The next finished execution or signing round (cancel-safe; `None` never happens
    /// while the service lives, as it holds a sender).
    pub(crate) async fn next_internal(&mut self) -> Option<Internal> {
        self.internal_rx.recv().await
    }

    /// A finished execution or signing round: answers the job, or completes the
    /// submission (`check` judges the committee-signed receipt). `now`: for the execution
    /// time metric.
    pub(crate) fn on_internal(&mut self, event: Internal, check: ReceiptCheck, now: Instant) {
        match event {
            Internal::Ran(id, result) => self.on_ran(id, result, now),
            Internal::Signed(id, result) => self.on_receipt_signed(id, result, check),
            Internal::Resign(id) => self.resign(id, check),
        }
    }

    fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn push(&mut self, action: WorkloadAction) {
        self.actions.push(action);
    }

    fn count_module_bytes(&self) {
        self.metrics
            .module_cache_bytes
            .set(self.modules.bytes() as i64);
    }

    /// Counts a submission's outcome and answers it (nothing to answer when `reply` is
    /// `None`: an optimistic submission answered already; the outcome is still counted).
    fn finish(&self, reply: Option<SubmitReply>, result: Result<WorkloadResult, WorkloadError>) {
        let label = match &result {
            Ok(_) => "ok",
            Err(WorkloadError::Invalid(_)) => "invalid",
            Err(WorkloadError::NotCommittee) => "not_committee",
            Err(WorkloadError::NoExecutor) => "no_executor",
            Err(WorkloadError::Failed(_)) => "failed",
            Err(WorkloadError::Signing(_)) => "signing",
            Err(WorkloadError::Busy(_)) | Err(WorkloadError::Stopped) => "busy",
        };
        self.metrics.submissions.with_label_values(&[label]).inc();
        if let Some(reply) = reply {
            let _ = reply.send(result);
        }
    }
}

/// The Ed25519 key behind an Ed25519 PeerId.
fn key_of_peer(peer: &PeerId) -> Option<Bytes32> {
    let key = libp2p::identity::PublicKey::try_decode_protobuf(peer.as_ref().digest()).ok()?;
    Some(Bytes32(key.try_into_ed25519().ok()?.to_bytes()))
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub(crate) fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
