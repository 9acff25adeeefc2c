//! The coordinator committee over the network (Tahap 14A.2B.1, issue 6 §2–3): FROST DKG and
//! threshold signing between the configured members on `/dsdn/<network>/committee/1.0.0`.
//!
//! `CommitteeService` is a pure driver (every call takes `now`; it reads its files once at
//! start and otherwise does no I/O): it queues `CommitteeAction`s — send a request, answer
//! one, persist the signing guard — which the event loop (`event_loop/committee.rs`) carries
//! out over the committee component and the `GuardWriter` thread, handing back
//! responses, failures, inbound requests and guard writes.
//!
//! Data flow of a DKG (`NodeHandle::committee_dkg` on any member):
//! ```text
//! initiator ──DkgStart──▶ every member            (each checks the configuration is its own)
//! member    ──Dkg(Round1)──▶ every other member   (broadcast; retried until acknowledged)
//! member    ──Dkg(Round2)──▶ its one recipient    (secret; retried until acknowledged)
//! member    ──DkgConfirm{transcript, group key}──▶ every other member
//! member: all n−1 confirmations equal its own transcript → key-share-<epoch>.cbor (0600)
//! ```
//! Data flow of a signature (`NodeHandle::threshold_sign` on any member, the proposer):
//! ```text
//! proposer ──Commit{slot, sha256(msg)}──▶ every member (itself locally)
//! first t commitments ──▶ signing package ──Sign──▶ those t members
//! member: SignPolicy ok, SlotGuard ok → share held → slot-guard-<epoch>.cbor written
//!         (guard writer thread) → share sent
//! proposer: t shares → aggregate → verified against the group key → 64-byte signature
//! ```
//! Only configured members are answered; anything else is refused and counted in
//! `committee_requests_refused_total{reason}`.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use dsdn_protocols::committee::{MemberId, Slot};
use libp2p::PeerId;

pub mod config;
mod dkg;
pub(crate) mod epochs;
pub mod files;
mod guard;
mod metrics;
pub mod rotation;
mod service;
mod signing;

pub use config::{CommitteeConfig, DEFAULT_COMMITTEE_EPOCH, DEFAULT_COMMITTEE_THRESHOLD};
pub(crate) use guard::GuardWriter;
pub use metrics::CommitteeMetrics;
pub use service::CommitteeStartError;
pub(crate) use service::{tag_epoch, CommitteeAction, CommitteeService};

/// Most signing rounds a proposer keeps open at once ([`ThresholdSignError::Busy`] beyond).
pub const MAX_OPEN_ROUNDS: usize = 32;

/// Most requests a member answers from one other member per second (the rest are refused
/// as busy).
pub const MAX_REQUESTS_PER_PEER_PER_SEC: u32 = 2000;

/// Decides whether this member may sign `message` for `slot` (the hook the DA and receipt
/// flows plug their checks into).
///
/// It is asked on the member side when a signing package arrives — after the equivocation
/// guard allowed the commitment, before the share is computed — with the exact message the
/// package signs. An `Err` refuses the share ([`dsdn_protocols::committee::Refusal::Policy`]
/// to the proposer, with the text). The default ([`AcceptAll`]) accepts every DA-blob and
/// receipt slot; DA blob validation (the blob at that height extends our log) will be wired
/// here later.
pub trait SignPolicy: Send + Sync {
    /// `Ok(())` to sign, `Err(reason)` to refuse.
    ///
    /// # Errors
    /// The reason the message is not acceptable for the slot.
    fn check(&self, slot: &Slot, message: &[u8]) -> Result<(), String>;
}

/// The default [`SignPolicy`]: signs any message for any slot (the guard still prevents
/// equivocation).
#[derive(Debug, Clone, Copy, Default)]
pub struct AcceptAll;

impl SignPolicy for AcceptAll {
    fn check(&self, _: &Slot, _: &[u8]) -> Result<(), String> {
        Ok(())
    }
}

/// The result of a threshold signing round: the aggregate signature and the members whose
/// shares it combines (the [`dsdn_protocols::receipt::ThresholdReceipt::signers`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GroupSignature {
    /// The 64-byte Ed25519 signature under the group key.
    pub signature: [u8; 64],
    /// The t signers, in FROST identifier order.
    pub signers: Vec<PeerId>,
}

/// A node's committee membership: who the members are and where its key material lives.
#[derive(Clone)]
pub struct CommitteeNodeConfig {
    /// The members' PeerIds, in FROST identifier order (identical on every member); this
    /// node must be one of them.
    pub members: Vec<PeerId>,
    /// Signatures need shares of `threshold` members (2 ≤ t ≤ n).
    pub threshold: u16,
    /// The committee epoch (one DKG, one group key per epoch).
    pub epoch: u64,
    /// Directory of `key-share-<epoch>.cbor` and `slot-guard-<epoch>.cbor` (normally
    /// `<data dir>/committee`); created with mode 0700.
    pub dir: PathBuf,
    /// How long each signing phase (commitments, shares) waits; default 2 s.
    pub phase_timeout: Duration,
    /// How long a DKG may take from start to adopted key; default 30 s.
    pub dkg_timeout: Duration,
    /// The DA proposer rotation's base round timeout (`[committee] round_timeout_ms`);
    /// default 1 s.
    pub round_timeout: Duration,
    /// `[committee] epoch_secs`: the schedule epoch of the automatic committee rotation
    /// (issue 13 §3); default 6 h.
    pub epoch_length: Duration,
    /// `[committee] handoff_secs`: the handoff window at the end of each schedule epoch, in
    /// which the next committee runs its DKG; default 15 min.
    pub handoff: Duration,
    /// `[committee] candidates`: coordinators besides the genesis `members` that later
    /// committees may be selected from once registered in the DA state (issue 13 §3; the
    /// same list on every coordinator, see [`config::CommitteeConfig::candidates`]);
    /// default empty (re-keying among the genesis members).
    pub candidates: Vec<PeerId>,
    /// What this member agrees to sign; default [`AcceptAll`].
    pub policy: Arc<dyn SignPolicy>,
    /// **Tests only**: this member answers signing packages with a corrupted share (so that
    /// the proposer's detection can be exercised). Never set it in production.
    pub test_corrupt_shares: bool,
}

impl CommitteeNodeConfig {
    /// A membership with the default timeouts (2 s per signing phase, 30 s per DKG, 1 s DA
    /// rotation round), the
    /// [`AcceptAll`] policy and honest shares.
    pub fn new(members: Vec<PeerId>, threshold: u16, epoch: u64, dir: PathBuf) -> Self {
        Self {
            members,
            threshold,
            epoch,
            dir,
            phase_timeout: Duration::from_secs(2),
            dkg_timeout: Duration::from_secs(30),
            round_timeout: Duration::from_millis(config::DEFAULT_ROUND_TIMEOUT_MS),
            epoch_length: Duration::from_secs(config::DEFAULT_EPOCH_SECS),
            handoff: Duration::from_secs(config::DEFAULT_HANDOFF_SECS),
            candidates: Vec::new(),
            policy: Arc::new(AcceptAll),
            test_corrupt_shares: false,
        }
    }
}

impl fmt::Debug for CommitteeNodeConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CommitteeNodeConfig")
            .field("members", &self.members)
            .field("threshold", &self.threshold)
            .field("epoch", &self.epoch)
            .field("candidates", &self.candidates.len())
            .field("dir", &self.dir)
            .field("phase_timeout", &self.phase_timeout)
            .field("dkg_timeout", &self.dkg_timeout)
            .field("round_timeout", &self.round_timeout)
            .field("epoch_length", &self.epoch_length)
            .field("handoff", &self.handoff)
            .field("test_corrupt_shares", &self.test_corrupt_shares)
            .finish()
    }
}

/// This node's committee state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommitteeState {
    /// No key share for the epoch: run a DKG.
    NoShare,
    /// A DKG is running: round 1 (commitments), 2 (secret shares) or 3 (transcript
    /// confirmations).
    Dkg {
        /// 1, 2 or 3.
        round: u8,
    },
    /// The key share is loaded: this member signs.
    Ready,
    /// Not a member of the committee in force (issue 13 §3): this coordinator follows the
    /// log's epochs, signs nothing, and joins a later committee it is selected into.
    Following,
    /// The last DKG failed, or the key material on disk was unusable (moved aside), for
    /// this reason. A new DKG may be started.
    Failed(String),
}

impl fmt::Display for CommitteeState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CommitteeState::NoShare => f.write_str("no_share"),
            CommitteeState::Dkg { round } => write!(f, "dkg_round_{round}"),
            CommitteeState::Ready => f.write_str("ready"),
            CommitteeState::Following => f.write_str("following"),
            CommitteeState::Failed(r) => write!(f, "failed: {r}"),
        }
    }
}

/// What `NodeHandle::committee_status` reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitteeStatus {
    /// This node.
    pub me: PeerId,
    /// The members, in identifier order.
    pub members: Vec<PeerId>,
    /// The threshold t.
    pub threshold: u16,
    /// The epoch.
    pub epoch: u64,
    /// The group public key (lower-case hex), once a key share is held.
    pub group_key: Option<String>,
    /// This node's state.
    pub state: CommitteeState,
    /// The DA proposer rotation of this member, when the group key is the DA authority
    /// (`Err`: why it cannot run, e.g. a threshold without a majority).
    pub rotation: Option<Result<rotation::RotationView, String>>,
    /// The automatic epoch rotation (issue 13 §3), while this member's committee seals the
    /// DA log.
    pub epochs: Option<EpochView>,
}

/// The epoch rotation of a member, in [`CommitteeStatus`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EpochView {
    /// The epoch of the committee in force (this node seals with or follows it).
    pub epoch: u64,
    /// `sealing`, `handoff`, `dkg`, `switching` or `fallback`
    /// ([`dsdn_protocols::committee::epoch_driver::Step::phase`]).
    pub phase: String,
    /// The DA height from which the next committee's key signs, once its rotation is in
    /// the log and not in force yet.
    pub next_switch_height: Option<u64>,
    /// The epoch of the next committee being prepared (handoff, DKG, key proof).
    pub next_epoch: Option<u64>,
    /// UNIX ms the next schedule epoch starts.
    pub next_epoch_start_ms: u64,
    /// UNIX ms the next handoff window opens (the current one while open).
    pub handoff_opens_ms: u64,
    /// Rotations this node saw take effect.
    pub rotations: u64,
    /// Handoff windows that ended in fallback.
    pub failures: u64,
    /// Why the last window fell back, while in fallback.
    pub fallback_reason: Option<String>,
}

/// Why `NodeHandle::committee_dkg` failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkgRunError {
    /// This node is not configured as a committee member.
    #[error("this node is not a committee member")]
    NotConfigured,
    /// A key share for the configured epoch exists already (configure a new epoch).
    #[error("a key share for epoch {0} exists already")]
    AlreadyHaveKey(u64),
    /// The ceremony failed (a member misbehaved, transcripts differ, a member refused, or
    /// it timed out); the reason names the members concerned.
    #[error("DKG failed: {0}")]
    Failed(String),
    /// The event loop stopped.
    #[error("the network event loop has stopped")]
    Stopped,
}

/// Why `NodeHandle::threshold_sign` produced no signature.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdSignError {
    /// This node is not configured as a committee member.
    #[error("this node is not a committee member")]
    NotConfigured,
    /// This node holds no key share (run a DKG first).
    #[error("no key share: run the DKG first")]
    NoKeyShare,
    /// The message is over the signing cap.
    #[error("message of {0} bytes is over the signing cap")]
    MessageTooLarge(usize),
    /// Too many rounds open, or a round for this slot is open already.
    #[error("busy: {0}")]
    Busy(String),
    /// Fewer than t members took part in time.
    #[error("{have} of the {need} needed members answered; no answer from {missing:?}; refused by {refused:?}")]
    BelowThreshold {
        /// Members that answered the current phase.
        have: usize,
        /// The threshold.
        need: usize,
        /// Members that did not answer (unreachable or timed out).
        missing: Vec<PeerId>,
        /// Members that refused, with their reason.
        refused: Vec<(PeerId, String)>,
    },
    /// Members (possibly this node) refused because they signed another message for the
    /// slot already.
    #[error("equivocation refused for {slot} by {members:?}")]
    Equivocation {
        /// The slot.
        slot: Slot,
        /// The members that refused.
        members: Vec<PeerId>,
    },
    /// A member's signature share (or share message) is invalid: the member is named.
    #[error("invalid signature share from {member}")]
    InvalidShare {
        /// The culprit.
        member: PeerId,
    },
    /// This node refused to take part (its own policy, a guard it cannot persist, …).
    #[error("this node refused: {0}")]
    Refused(String),
    /// FROST failed for a reason that names no member.
    #[error("threshold signing failed: {0}")]
    Frost(String),
    /// The event loop stopped.
    #[error("the network event loop has stopped")]
    Stopped,
}

/// The [`MemberId`] of a PeerId (its bytes).
///
/// # Errors
/// Never for a real PeerId (at most 64 bytes); the [`dsdn_protocols::committee::ConfigError`]
/// otherwise.
pub fn member_id(peer: &PeerId) -> Result<MemberId, dsdn_protocols::committee::ConfigError> {
    MemberId::new(peer.to_bytes())
}

/// The PeerId of a [`MemberId`], if its bytes are one.
pub fn member_peer(member: &MemberId) -> Option<PeerId> {
    PeerId::from_bytes(member.as_bytes()).ok()
}

#[cfg(test)]
mod tests;
