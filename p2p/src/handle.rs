//! The cloneable handle through which the daemon talks to the event loop.
//!
//! Every request is a [`Command`] on a bounded channel with a oneshot reply, as in
//! rust-libp2p's `file-sharing` example.

use std::time::Duration;

use dsdn_bootstrap::config::{DnsSeed, StaticPeer};
use dsdn_protocols::committee::Slot;
use dsdn_protocols::da::{DaBlob, DaEvent};
use libp2p::PeerId;
use tokio::sync::{mpsc, oneshot, watch};

use crate::committee::{CommitteeStatus, DkgRunError, GroupSignature, ThresholdSignError};
use crate::da::{DaNotice, PublishError, SubmitError, TooManySubscribers};
pub use crate::da::{DaStateView, Published, RegistrationView, Submitted};
use crate::workload::{HeldReceipt, WorkloadError, WorkloadResult};
use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::{GossipReceipt, ReceiptError, ThresholdReceipt};
use dsdn_protocols::workload::WorkloadSubmission;

mod da;
mod views;
pub use views::{success_rate, NodeStatus, PeerStatsView, PeerView};

/// Capacity of the command channel.
pub(crate) const COMMAND_QUEUE: usize = 64;

/// Why a peer-management command failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ControlError {
    /// The static peer or DNS seed is configured already.
    #[error("{0} is already configured")]
    AlreadyPresent(String),
    /// The list of additions is full.
    #[error("too many additions (max {0})")]
    TooMany(usize),
    /// The addition could not be written to the data directory.
    #[error("cannot save the addition: {0}")]
    Persist(String),
    /// peers.dat could not be read or written.
    #[error("peers.dat: {0}")]
    Store(String),
    /// The request names our own PeerId.
    #[error("that is this node's own peer id")]
    OwnPeer,
    /// `peers remove` of a peer that was not added with `peers add`.
    #[error("{0} was not added with `peers add` (static peers of seeds.toml are removed there)")]
    NotAdded(String),
}

/// What `peers reset` did.
#[derive(Debug, Clone)]
pub struct ResetReport {
    /// Entries removed from peers.dat.
    pub removed: usize,
    /// Connections closed.
    pub disconnected: usize,
}

/// Why [`NodeHandle::da_range`] returned no blobs.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RangeError {
    /// No connected peer keeps the DA log.
    #[error("no connected peer keeps the DA log")]
    NoPeer,
    /// No DA authority is configured: blobs cannot be verified.
    #[error("no DA authority is configured for this network")]
    NoAuthority,
    /// The peer's answer failed verification (its blobs are not returned).
    #[error("the peer's blobs failed verification: {0}")]
    Invalid(String),
    /// The request failed (timeout, connection closed, protocol not supported).
    #[error("the request failed: {0}")]
    Peer(String),
}

/// A request to the event loop.
#[derive(Debug)]
pub enum Command {
    /// Report the node's status.
    Status(oneshot::Sender<NodeStatus>),
    /// List known peers.
    Peers(oneshot::Sender<Vec<PeerView>>),
    /// Queue DA events for the next blobs (DA authority only); answered once sealed.
    PublishDa(
        Vec<DaEvent>,
        oneshot::Sender<Result<Published, PublishError>>,
    ),
    /// Verify, apply and gossip a blob signed elsewhere.
    SubmitBlob(Vec<u8>, oneshot::Sender<Result<Submitted, SubmitError>>),
    /// Report the DA state.
    DaState(oneshot::Sender<DaStateView>),
    /// The value of a DA state key with its proof at a height (issue 16 §3).
    DaProof(
        dsdn_protocols::da::StateKey,
        Option<u64>,
        oneshot::Sender<Result<dsdn_protocols::da::StateProof, dsdn_protocols::da::StateError>>,
    ),
    /// The fork evidence held (issue 13 §4).
    DaEvidence(oneshot::Sender<Vec<crate::da::ForkEvidenceView>>),
    /// Up to `count` verified blobs from height `from`.
    DaRange(u64, u32, oneshot::Sender<Result<Vec<DaBlob>, RangeError>>),
    /// A sync request sent to this peer (or the first connected DA peer), answered
    /// unverified with the peer asked.
    DaSyncRaw(
        Option<PeerId>,
        dsdn_protocols::da::sync::SyncRequest,
        oneshot::Sender<Result<(PeerId, dsdn_protocols::da::sync::SyncResponse), String>>,
    ),
    /// A proof asked of a peer over `/dsdn/<net>/da-proof/1.0.0` (unverified answer).
    DaProveRemote(
        Option<PeerId>,
        dsdn_protocols::da::prove::ProofRequest,
        oneshot::Sender<Result<dsdn_protocols::da::prove::ProofResponse, String>>,
    ),
    /// A state-chunk request sent over `/dsdn/<net>/da-state/1.0.0` to this connected peer
    /// (unverified answer; the state sync driver verifies it, issue 16 §5).
    DaStateRemote(
        PeerId,
        dsdn_protocols::da::state_sync::StateChunkRequest,
        oneshot::Sender<Result<dsdn_protocols::da::state_sync::StateChunkResponse, String>>,
    ),
    /// The state sync driver finished (`true`: the state was restored into the log).
    DaStateSynced(bool),
    /// Address-book and connection statistics.
    PeerStats(oneshot::Sender<PeerStatsView>),
    /// Add a static peer (persisted in the data directory) and dial it now.
    AddPeer(StaticPeer, oneshot::Sender<Result<(), ControlError>>),
    /// Remove a peer added with `AddPeer` (persisted).
    RemovePeer(StaticPeer, oneshot::Sender<Result<(), ControlError>>),
    /// The added peers and their state.
    AddedPeers(oneshot::Sender<Vec<crate::net::peer_manager::added::AddedPeerView>>),
    /// Add a DNS seed (persisted in the data directory) and resolve it now.
    AddSeed(DnsSeed, oneshot::Sender<Result<(), ControlError>>),
    /// Clear peers.dat, drop every connection and bootstrap again from the seeds.
    ResetPeers(oneshot::Sender<Result<ResetReport, ControlError>>),
    /// Ban a peer for a duration (`None`: `ban_duration_secs`; persisted, disconnected now);
    /// replies the UNIX second the ban ends.
    Ban(
        PeerId,
        Option<Duration>,
        oneshot::Sender<Result<u64, ControlError>>,
    ),
    /// Lift a ban; replies whether the peer had one.
    Unban(PeerId, oneshot::Sender<Result<bool, ControlError>>),
    /// Apply the reloadable part of a re-read `[bootstrap]` section; replies what changed.
    Reload(
        Box<dsdn_bootstrap::config::BootstrapConfig>,
        oneshot::Sender<Vec<String>>,
    ),
    /// Lift every ban; replies how many peers had one.
    UnbanAll(oneshot::Sender<Result<usize, ControlError>>),
    /// Subscribe to the DA blobs this node applies, from now on.
    SubscribeDa(oneshot::Sender<Result<mpsc::Receiver<DaNotice>, TooManySubscribers>>),
    /// Start (or join) the committee DKG; answered when this member adopted the key.
    CommitteeDkg(oneshot::Sender<Result<CommitteeStatus, DkgRunError>>),
    /// The committee status (`None` when this node is not a member).
    CommitteeStatus(oneshot::Sender<Option<CommitteeStatus>>),
    /// Threshold-sign a message for a slot, as proposer.
    ThresholdSign(
        Slot,
        Vec<u8>,
        oneshot::Sender<Result<GroupSignature, ThresholdSignError>>,
    ),
    /// Execute a submitted workload and have the committee sign its receipt (optimistic
    /// answer: `Some(true)`; `None`: the node's default).
    SubmitWorkload(
        Box<WorkloadSubmission>,
        Option<bool>,
        oneshot::Sender<Result<WorkloadResult, WorkloadError>>,
    ),
    /// Verify, record and gossip a threshold receipt.
    PublishReceipt(
        Box<GossipReceipt>,
        oneshot::Sender<Result<(), ReceiptError>>,
    ),
    /// A receipt this node accepted, by id.
    Receipt(Bytes32, oneshot::Sender<Option<HeldReceipt>>),
    /// The group key of a committee epoch as the DA log records it.
    EpochKey(u64, oneshot::Sender<Option<[u8; 32]>>),
    /// The disputes this node found (issue 13 §6).
    Disputes(oneshot::Sender<Disputes>),
    /// Receipts by id prefix, or the most recent ones.
    Receipts(
        crate::workload::ReceiptQuery,
        oneshot::Sender<Vec<HeldReceipt>>,
    ),
}

/// The event loop stopped; no more requests can be served.
#[derive(Debug, thiserror::Error)]
#[error("the network event loop has stopped")]
pub struct Stopped;

/// A cloneable handle to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Command>,
    da_height: watch::Receiver<u64>,
}

impl NodeHandle {
    pub(crate) fn new(tx: mpsc::Sender<Command>, da_height: watch::Receiver<u64>) -> Self {
        Self { tx, da_height }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// The node's status.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn status(&self) -> Result<NodeStatus, Stopped> {
        self.ask(Command::Status).await
    }

    /// Every known peer.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn peers(&self) -> Result<Vec<PeerView>, Stopped> {
        self.ask(Command::Peers).await
    }

    /// Address-book and connection statistics.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn peer_stats(&self) -> Result<PeerStatsView, Stopped> {
        self.ask(Command::PeerStats).await
    }

    /// Adds a static peer, persisted across restarts, and dials it.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner [`ControlError`] when it is
    /// configured already or cannot be saved.
    pub async fn add_peer(&self, peer: StaticPeer) -> Result<Result<(), ControlError>, Stopped> {
        self.ask(|tx| Command::AddPeer(peer, tx)).await
    }

    /// Removes a peer added with [`NodeHandle::add_peer`] (persisted); an open connection
    /// stays open.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner [`ControlError::NotAdded`] for
    /// a peer that was not added, [`ControlError::Persist`] when the removal cannot be saved.
    pub async fn remove_peer(&self, peer: StaticPeer) -> Result<Result<(), ControlError>, Stopped> {
        self.ask(|tx| Command::RemovePeer(peer, tx)).await
    }

    /// The peers added with [`NodeHandle::add_peer`] and their state: connected, dialing or
    /// waiting, the last error and the time to the next retry.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn added_peers(
        &self,
    ) -> Result<Vec<crate::net::peer_manager::added::AddedPeerView>, Stopped> {
        self.ask(Command::AddedPeers).await
    }

    /// Adds a DNS seed, persisted across restarts, and resolves it.
    ///
    /// # Errors
    /// As [`NodeHandle::add_peer`].
    pub async fn add_seed(&self, seed: DnsSeed) -> Result<Result<(), ControlError>, Stopped> {
        self.ask(|tx| Command::AddSeed(seed, tx)).await
    }

    /// Clears peers.dat, closes every connection and bootstraps again from the seeds.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; [`ControlError::Store`] if peers.dat
    /// cannot be cleared.
    pub async fn reset_peers(&self) -> Result<Result<ResetReport, ControlError>, Stopped> {
        self.ask(Command::ResetPeers).await
    }

    /// Bans `peer` for `duration` (`None`: the `ban_duration_secs` in force, which a
    /// SIGHUP may have changed); returns the UNIX second the ban ends.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; [`ControlError::OwnPeer`] or
    /// [`ControlError::Store`].
    pub async fn ban(
        &self,
        peer: PeerId,
        duration: Option<Duration>,
    ) -> Result<Result<u64, ControlError>, Stopped> {
        self.ask(|tx| Command::Ban(peer, duration, tx)).await
    }

    /// Lifts a ban on `peer`; returns whether it had one.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; [`ControlError::Store`].
    pub async fn unban(&self, peer: PeerId) -> Result<Result<bool, ControlError>, Stopped> {
        self.ask(|tx| Command::Unban(peer, tx)).await
    }

    /// Applies the reloadable part of a re-read seeds.toml `[bootstrap]` section (SIGHUP,
    /// issue 14 §5): connection limits, `inbound_per_ip_per_minute`, `ban_duration_secs`,
    /// added static peers and DNS seeds. Returns what changed, one line each.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn reload_bootstrap(
        &self,
        cfg: dsdn_bootstrap::config::BootstrapConfig,
    ) -> Result<Vec<String>, Stopped> {
        self.ask(|tx| Command::Reload(Box::new(cfg), tx)).await
    }

    /// Lifts every ban (`dsdn-agent peers unban --all`); returns how many peers had one.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; [`ControlError::Store`].
    pub async fn unban_all(&self) -> Result<Result<usize, ControlError>, Stopped> {
        self.ask(Command::UnbanAll).await
    }

    /// Subscribes to the DA blobs this node verifies and applies from now on (its own
    /// publications and backfilled blobs included): one [`DaNotice`] per blob, in height
    /// order, each with the state root after it. Nothing before the subscription is
    /// replayed (use [`NodeHandle::da_range`] for history).
    ///
    /// The channel holds [`crate::da::DA_NOTICE_QUEUE`] notices; the event loop never waits
    /// for a slow subscriber: notices that do not fit are dropped (a gap in `height`, counted in
    /// `da_notices_dropped_total`). Dropping the receiver unsubscribes.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner [`TooManySubscribers`] when
    /// [`crate::da::MAX_DA_SUBSCRIBERS`] receivers are open already.
    pub async fn subscribe_da(
        &self,
    ) -> Result<Result<mpsc::Receiver<DaNotice>, TooManySubscribers>, Stopped> {
        self.ask(Command::SubscribeDa).await
    }

    /// Starts the committee DKG for the configured t-of-n and epoch (or joins the one
    /// running) and waits until this member adopted the group key: every member received
    /// `DkgStart`, broadcast its round-1 package, sent each round-2 package to its recipient
    /// only, and every member confirmed the same transcript. The key share is then stored in
    /// `<committee dir>/key-share-<epoch>.cbor` (mode 0600). Returns the new status.
    ///
    /// # Errors
    /// [`DkgRunError::NotConfigured`] on a non-member, [`DkgRunError::AlreadyHaveKey`] when
    /// a key share for the epoch exists, [`DkgRunError::Failed`] (naming the members
    /// concerned) when a member misbehaved, refused, or did not answer within the DKG
    /// timeout; [`DkgRunError::Stopped`].
    pub async fn committee_dkg(&self) -> Result<CommitteeStatus, DkgRunError> {
        self.ask(Command::CommitteeDkg)
            .await
            .map_err(|_| DkgRunError::Stopped)?
    }

    /// The committee status: members, threshold, epoch, group key and this node's state;
    /// `None` when this node is not a committee member.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn committee_status(&self) -> Result<Option<CommitteeStatus>, Stopped> {
        self.ask(Command::CommitteeStatus).await
    }

    /// Threshold-signs `message` for `slot` with this member as proposer: commitments from
    /// the first t members to answer (this one included), the signing package to exactly
    /// those, their shares verified and aggregated into a 64-byte Ed25519 signature that
    /// verifies against the group key. Each phase waits at most the configured phase
    /// timeout (2 s by default).
    ///
    /// # Errors
    /// [`ThresholdSignError::BelowThreshold`] (naming who did not answer and who refused),
    /// [`ThresholdSignError::InvalidShare`] (naming the member),
    /// [`ThresholdSignError::Equivocation`] (a member signed another message for the slot),
    /// and the other [`ThresholdSignError`] variants.
    pub async fn threshold_sign(
        &self,
        slot: Slot,
        message: Vec<u8>,
    ) -> Result<[u8; 64], ThresholdSignError> {
        self.threshold_sign_with_signers(slot, message)
            .await
            .map(|s| s.signature)
    }

    /// [`NodeHandle::threshold_sign`], also naming the t members whose shares were
    /// aggregated.
    ///
    /// # Errors
    /// As [`NodeHandle::threshold_sign`].
    pub async fn threshold_sign_with_signers(
        &self,
        slot: Slot,
        message: Vec<u8>,
    ) -> Result<GroupSignature, ThresholdSignError> {
        self.ask(|tx| Command::ThresholdSign(slot, message, tx))
            .await
            .map_err(|_| ThresholdSignError::Stopped)?
    }

    /// Hands a signed workload submission to this coordinator: the module is kept by its
    /// hash, a connected storage node not operated by the submitter executes it (the node
    /// fetches the module by hash), the committee threshold-signs the node's receipt, and
    /// the [`ThresholdReceipt`] is gossiped on `dsdn/<net>/receipts/1`. Waits for all of
    /// it (each node tried waits at most `WorkloadConfig::execute_timeout`). Whether the
    /// answer is optimistic is the node's default (`[receipts] optimistic`).
    ///
    /// # Errors
    /// [`WorkloadError`]: invalid submission, not a committee member, no storage node, every
    /// node refused (each named with its reason), the committee did not sign.
    pub async fn submit_workload(
        &self,
        submission: WorkloadSubmission,
    ) -> Result<WorkloadResult, WorkloadError> {
        self.submit_workload_with(submission, None).await
    }

    /// [`NodeHandle::submit_workload`], choosing the answer: `Some(true)` answers with an
    /// optimistic receipt (issue 13 §5) signed by this coordinator as soon as the storage
    /// node's receipt checks out (the threshold receipt follows on gossip and supersedes
    /// it); `Some(false)` waits for the threshold receipt; `None` takes the node's default.
    ///
    /// # Errors
    /// As [`NodeHandle::submit_workload`] (an optimistic submission is answered before the
    /// committee signs, so never with [`WorkloadError::Signing`]).
    pub async fn submit_workload_with(
        &self,
        submission: WorkloadSubmission,
        optimistic: Option<bool>,
    ) -> Result<WorkloadResult, WorkloadError> {
        self.ask(|tx| Command::SubmitWorkload(Box::new(submission), optimistic, tx))
            .await
            .map_err(|_| WorkloadError::Stopped)?
    }

    /// Verifies a threshold receipt (group key, node signature, commitment consistency, not
    /// seen before), records it and gossips it.
    ///
    /// # Errors
    /// The [`ReceiptError`] that refused it ([`ReceiptError::Duplicate`] for a receipt
    /// already accepted); [`Stopped`] as `Ok(Err(ReceiptError::Codec))` is never used: a
    /// stopped loop gives `Err(Stopped)`.
    pub async fn publish_receipt(
        &self,
        receipt: ThresholdReceipt,
    ) -> Result<Result<(), ReceiptError>, Stopped> {
        self.publish_any_receipt(GossipReceipt::Threshold(receipt))
            .await
    }

    /// [`NodeHandle::publish_receipt`] for a receipt of either kind: an optimistic receipt
    /// is verified against the coordinator's key (and, on a committee member, refused when
    /// the coordinator is no member), kept and gossiped.
    ///
    /// # Errors
    /// As [`NodeHandle::publish_receipt`]; an optimistic receipt that is superseded, held
    /// already or past its deadline is refused as [`ReceiptError::Duplicate`].
    pub async fn publish_any_receipt(
        &self,
        receipt: GossipReceipt,
    ) -> Result<Result<(), ReceiptError>, Stopped> {
        self.ask(|tx| Command::PublishReceipt(Box::new(receipt), tx))
            .await
    }

    /// A receipt this node accepted (from gossip, a submission, the API or the DA log):
    /// the threshold receipt when it has one, else the optimistic receipt of that id.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn receipt(&self, id: Bytes32) -> Result<Option<HeldReceipt>, Stopped> {
        self.ask(|tx| Command::Receipt(id, tx)).await
    }

    /// The group key of committee epoch `epoch` as this node's DA log records it (the
    /// genesis `da_authority` before the first recorded rotation; `None` without a DA
    /// authority or for an epoch not recorded yet): what a threshold receipt naming `epoch`
    /// verifies under (issue 13 §3).
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn epoch_key(&self, epoch: u64) -> Result<Option<[u8; 32]>, Stopped> {
        self.ask(|tx| Command::EpochKey(epoch, tx)).await
    }

    /// The receipts `query` selects (see [`crate::workload::ReceiptQuery`]).
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn receipts(
        &self,
        query: crate::workload::ReceiptQuery,
    ) -> Result<Vec<HeldReceipt>, Stopped> {
        self.ask(|tx| Command::Receipts(query, tx)).await
    }

    /// The coordinator disputes this node found (issue 13 §6): DA forks and double
    /// receipts, each verifiable on its own.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn disputes(&self) -> Result<Disputes, Stopped> {
        self.ask(Command::Disputes).await
    }
}

/// The disputes a node found (issue 13 §6), oldest first in each list.
#[derive(Debug, Clone, Default)]
pub struct Disputes {
    /// Two validly signed DA blobs at one height.
    pub da_forks: Vec<crate::da::ForkEvidenceView>,
    /// Two validly signed threshold receipts of one job.
    pub double_receipts: Vec<dsdn_protocols::receipt::dispute::DoubleReceipt>,
    /// Optimistic receipts contradicted by their job's threshold receipt (issue 13 §5).
    pub optimistic_conflicts: Vec<dsdn_protocols::receipt::OptimisticConflict>,
    /// Receipts validly signed by a key not authorised for the committee.
    pub unauthorized_signers: Vec<dsdn_protocols::receipt::dispute::UnauthorizedSigner>,
    /// Receipts naming the committee's group key whose signature does not verify.
    pub invalid_signatures: Vec<dsdn_protocols::receipt::dispute::InvalidSignature>,
}

#[cfg(test)]
mod tests;
