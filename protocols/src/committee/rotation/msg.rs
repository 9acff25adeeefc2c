//! The rotation's messages between members, the actions it asks of its driver, the threshold
//! scheme it is generic over, and its errors.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::record::{Lock, MemberRecord};
use crate::committee::signing::MAX_SIGNING_PACKAGE_MSG_BYTES;
use crate::committee::types::{cbor_wire, MemberId};

/// Largest commitment accepted in a [`RotationMsg::Promise`], in bytes (a FROST commitment
/// is about 70).
pub const MAX_COMMITMENT_BYTES: usize = 256;

/// Largest signature share accepted in a [`RotationMsg::Share`], in bytes (FROST: 32).
pub const MAX_SHARE_BYTES: usize = 128;

/// Largest encoded [`RotationMsg`], in bytes: a `Sign` of the largest message with up to 64
/// signer commitments, or a `Promise` reporting a lock on the largest message.
pub const MAX_ROTATION_MSG_BYTES: usize = MAX_SIGNING_PACKAGE_MSG_BYTES + 32 * 1024;

/// One signer of a round's package and the commitment it promised with.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerCommitment {
    /// The signer.
    pub member: MemberId,
    /// Its commitment for the round (at most [`MAX_COMMITMENT_BYTES`]).
    #[serde(with = "serde_bytes")]
    pub commitment: Vec<u8>,
}

impl fmt::Debug for SignerCommitment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}B", self.member, self.commitment.len())
    }
}

/// A message between committee members about the DA height `height` and its round `round`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationMsg {
    /// Proposer → every member: round `round` starts; promise it.
    Prepare {
        /// The DA height.
        height: u64,
        /// The round.
        round: u64,
    },
    /// Member → proposer: the member entered `round` (durably) and will sign no lower
    /// round; its fresh commitment and its lock, if any (`lock.round < round`).
    Promise {
        /// The DA height.
        height: u64,
        /// The round promised.
        round: u64,
        /// The member's commitment for this round (at most [`MAX_COMMITMENT_BYTES`]).
        #[serde(with = "serde_bytes")]
        commitment: Vec<u8>,
        /// The member's lock at this height.
        lock: Option<Lock>,
    },
    /// Reply to a message of a lower round: the sender is at `round`.
    Stale {
        /// The DA height.
        height: u64,
        /// The sender's round, higher than the one it was asked about.
        round: u64,
    },
    /// Broadcast by a member that timed out into `round` (and does not propose it).
    NewRound {
        /// The DA height.
        height: u64,
        /// The round entered.
        round: u64,
    },
    /// Proposer → each signer: sign `message` with exactly these `t` signers.
    Sign {
        /// The DA height.
        height: u64,
        /// The round.
        round: u64,
        /// The message (at most [`MAX_SIGNED_MESSAGE_BYTES`](crate::committee::MAX_SIGNED_MESSAGE_BYTES)).
        #[serde(with = "serde_bytes")]
        message: Vec<u8>,
        /// The `t` signers and their commitments, in promise order.
        package: Vec<SignerCommitment>,
    },
    /// Signer → proposer: its signature share, released after its lock is durable.
    Share {
        /// The DA height.
        height: u64,
        /// The round.
        round: u64,
        /// The share (at most [`MAX_SHARE_BYTES`]).
        #[serde(with = "serde_bytes")]
        share: Vec<u8>,
    },
}

cbor_wire!(RotationMsg, MAX_ROTATION_MSG_BYTES);

impl RotationMsg {
    /// The DA height the message is about.
    pub fn height(&self) -> u64 {
        match self {
            RotationMsg::Prepare { height, .. }
            | RotationMsg::Promise { height, .. }
            | RotationMsg::Stale { height, .. }
            | RotationMsg::NewRound { height, .. }
            | RotationMsg::Sign { height, .. }
            | RotationMsg::Share { height, .. } => *height,
        }
    }

    /// The round the message is about.
    pub fn round(&self) -> u64 {
        match self {
            RotationMsg::Prepare { round, .. }
            | RotationMsg::Promise { round, .. }
            | RotationMsg::Stale { round, .. }
            | RotationMsg::NewRound { round, .. }
            | RotationMsg::Sign { round, .. }
            | RotationMsg::Share { round, .. } => *round,
        }
    }

    /// The variant's name, for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            RotationMsg::Prepare { .. } => "prepare",
            RotationMsg::Promise { .. } => "promise",
            RotationMsg::Stale { .. } => "stale",
            RotationMsg::NewRound { .. } => "new_round",
            RotationMsg::Sign { .. } => "sign",
            RotationMsg::Share { .. } => "share",
        }
    }
}

/// What [`super::HeightConsensus`] asks its driver to do, **in order**: a
/// [`Action::Persist`] must be durable before any later action of the same list is carried
/// out (a crash may lose the later actions, never reorder them).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Write the record durably (replacing the previous one) before the next action.
    Persist(MemberRecord),
    /// Send `msg` to the member `to`.
    Send {
        /// The recipient.
        to: MemberId,
        /// The message.
        msg: RotationMsg,
    },
    /// Send `msg` to every other member.
    Broadcast(RotationMsg),
    /// The proposer needs a new blob for `height` (nothing is locked): answer with
    /// [`super::HeightConsensus::on_new_blob`] for the same height and round.
    ProposeNew {
        /// The DA height.
        height: u64,
        /// The round.
        round: u64,
    },
    /// `message` is threshold-signed for `height`: apply it as the blob of `height`, gossip
    /// it, then call [`super::HeightConsensus::on_sealed`].
    Sealed {
        /// The DA height.
        height: u64,
        /// The round that signed it.
        round: u64,
        /// The signed message (the blob's signing bytes).
        message: Vec<u8>,
        /// The aggregate signature, as [`RoundCrypto::aggregate`] made it.
        signature: Vec<u8>,
    },
    /// Member `to` is behind: send it the sealed blobs from `from_height` up to our tip.
    SendSealed {
        /// The member that is behind.
        to: MemberId,
        /// Its height (its tip + 1).
        from_height: u64,
    },
    /// We are behind member `from`: fetch the sealed blobs from `height` (our height) on.
    Fetch {
        /// A member at a higher height.
        from: MemberId,
        /// Our height.
        height: u64,
    },
    /// Something failed after the state changed (the other actions still stand): log it.
    Failed(RotationError),
}

/// Why the threshold scheme refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CryptoError {
    /// A member's signature share does not verify.
    #[error("invalid signature share from {0}")]
    InvalidShare(MemberId),
    /// Anything else (no nonces, a package the scheme refuses, …).
    #[error("threshold scheme: {0}")]
    Failed(String),
}

/// The threshold scheme behind the rotation: FROST (`Signer`/`SigningRound`) in the daemon,
/// an opaque model in tests. A [`super::HeightConsensus`] calls [`RoundCrypto::commit`] at
/// most once per `(height, round)` of its lifetime.
pub trait RoundCrypto {
    /// Fresh nonces for `(height, round)`, kept in memory only; returns their commitment
    /// (at most [`MAX_COMMITMENT_BYTES`]).
    ///
    /// # Errors
    /// [`CryptoError`] when no commitment can be made.
    fn commit(&mut self, height: u64, round: u64) -> Result<Vec<u8>, CryptoError>;

    /// This member's signature share over `message` for the package `signers`, with the
    /// nonces of `(height, round)`, which are consumed.
    ///
    /// # Errors
    /// [`CryptoError`] without nonces or for a package without this member's commitment.
    fn sign(
        &mut self,
        height: u64,
        round: u64,
        message: &[u8],
        signers: &[SignerCommitment],
    ) -> Result<Vec<u8>, CryptoError>;

    /// Aggregates the `t` shares (in the order of `signers`) into the threshold signature.
    ///
    /// # Errors
    /// [`CryptoError::InvalidShare`] naming a member whose share does not verify.
    fn aggregate(
        &mut self,
        height: u64,
        round: u64,
        message: &[u8],
        signers: &[SignerCommitment],
        shares: &[Vec<u8>],
    ) -> Result<Vec<u8>, CryptoError>;
}

/// Why a rotation input is refused (then nothing changed), or what failed after the state
/// changed ([`Action::Failed`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationError {
    /// The sender is not a member of the committee.
    #[error("rotation message from non-member {0}")]
    NotAMember(MemberId),
    /// A message from ourselves (the driver never delivers those).
    #[error("rotation message from ourselves")]
    FromSelf,
    /// A `Prepare` or `Sign` from a member that is not the proposer of its round.
    #[error("{from} is not the proposer of height {height} round {round}")]
    NotProposer {
        /// The sender.
        from: MemberId,
        /// The height.
        height: u64,
        /// The round.
        round: u64,
    },
    /// A message, commitment, share or package out of bounds or inconsistent.
    #[error("malformed rotation message from {from}: {what}")]
    Malformed {
        /// The sender.
        from: MemberId,
        /// What is wrong.
        what: &'static str,
    },
    /// A `Sign` this member refuses because it is locked on another message at a round not
    /// below the package's.
    #[error("locked at round {lock_round} on another message; refusing round {round}")]
    Locked {
        /// The round of our lock.
        lock_round: u64,
        /// The round of the refused package.
        round: u64,
    },
    /// Two different messages locked at the highest lock round among a round's promises:
    /// cannot happen with honest members (one proposal per round); the round is abandoned.
    #[error("two different messages locked at round {lock_round} (height {height}): round {round} abandoned")]
    ConflictingLocks {
        /// The height.
        height: u64,
        /// Our round.
        round: u64,
        /// The lock round on which the promises disagree.
        lock_round: u64,
    },
    /// The record on disk is for a height above the DA tip + 1: sync the DA log first.
    #[error("rotation record for height {record}, but the DA tip is {tip}: sync the log first")]
    RecordAhead {
        /// The record's height.
        record: u64,
        /// The DA tip.
        tip: u64,
    },
    /// The record on disk is inconsistent (see [`MemberRecord::validate`]).
    #[error("rotation record: {0}")]
    BadRecord(&'static str),
    /// The height or round counter would overflow.
    #[error("height or round counter exhausted")]
    Exhausted,
    /// The threshold scheme failed.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
    /// A message larger than [`MAX_SIGNED_MESSAGE_BYTES`](crate::committee::MAX_SIGNED_MESSAGE_BYTES) offered as a new blob.
    #[error("blob of {0} bytes is over the signing cap")]
    MessageTooLarge(usize),
}
