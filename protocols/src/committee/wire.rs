//! The committee protocol `/dsdn/<network>/committee/1.0.0`: one request/response pair per
//! exchange between two committee members (Tahap 14A.2B.1: DKG and threshold signing over
//! the network).
//!
//! Requests ([`CommitteeRequest`]):
//! - [`CommitteeRequest::DkgStart`] — the initiator tells every member to start the ceremony
//!   of a configuration (each member checks it equals its own);
//! - [`CommitteeRequest::Dkg`] — a round-1 package (sent to every other member) or a round-2
//!   package (secret: sent to its recipient only);
//! - [`CommitteeRequest::DkgConfirm`] — a member's transcript hash and group key once its
//!   session finished: a member adopts the key only when every other member confirmed the
//!   same transcript (so a member that sent different round-1 packages to different members
//!   is detected);
//! - [`CommitteeRequest::Commit`] — the proposer asks for a signing commitment for a slot and
//!   the SHA-256 of the message (the member refuses a slot it signed for another message);
//! - [`CommitteeRequest::Sign`] — the signing package; the member answers its share.
//!
//! Responses ([`CommitteeResponse`]): `Ack`, a commitment, a share, or a typed
//! [`Refusal`]. Requests are at most [`MAX_COMMITTEE_REQUEST_BYTES`] of CBOR (a signing
//! package of the largest message), responses at most [`MAX_COMMITTEE_RESPONSE_BYTES`].

use serde::{Deserialize, Serialize};

use super::dkg::{DkgMessage, MAX_DKG_MESSAGE_BYTES};
use super::guard::Slot;
use super::signing::{
    CommitmentMsg, SignatureShareMsg, SigningPackageMsg, MAX_SIGNING_PACKAGE_MSG_BYTES,
};
use super::types::{cbor_wire, CommitteeConfig, GroupKey};

/// Largest encoded [`CommitteeRequest`], in bytes: a signing package of the largest message
/// plus the enum framing.
pub const MAX_COMMITTEE_REQUEST_BYTES: usize = MAX_SIGNING_PACKAGE_MSG_BYTES + 1024;

/// Largest encoded [`CommitteeResponse`], in bytes.
pub const MAX_COMMITTEE_RESPONSE_BYTES: usize = 4 * 1024;

/// Longest reason text in a [`Refusal`], in bytes (longer ones are cut by [`Refusal::text`]).
pub const MAX_REFUSAL_TEXT_BYTES: usize = 512;

/// A request from one committee member to another.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitteeRequest {
    /// Start the DKG of this configuration (must equal the receiver's own).
    DkgStart(CommitteeConfig),
    /// A DKG round-1 or round-2 message.
    Dkg(DkgMessage),
    /// The sender finished its DKG session with this transcript and group key.
    DkgConfirm {
        /// The committee epoch.
        epoch: u64,
        /// [`super::DkgOutput::transcript`] of the sender.
        #[serde(with = "serde_bytes")]
        transcript: [u8; 32],
        /// The group key the sender derived.
        group_key: GroupKey,
    },
    /// Asks for a signing commitment for `slot`, to sign the message with SHA-256
    /// `message_hash`.
    Commit {
        /// The committee epoch.
        epoch: u64,
        /// The slot.
        slot: Slot,
        /// SHA-256 of the message to be signed ([`super::message_hash`]).
        #[serde(with = "serde_bytes")]
        message_hash: [u8; 32],
    },
    /// The signing package: answer with a signature share.
    Sign(SigningPackageMsg),
}

/// Why a member refused a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    /// The requester is not a member of the receiver's committee.
    #[error("not a committee member")]
    NotAMember,
    /// The receiver is not configured as a committee member.
    #[error("this node is not a committee member")]
    NotConfigured,
    /// The request is for another committee configuration or epoch.
    #[error("another committee configuration or epoch: {0}")]
    WrongCommittee(String),
    /// The receiver has no key share for the epoch (no DKG completed).
    #[error("no key share for this epoch")]
    NoKeyShare,
    /// The receiver holds a key share for the epoch already (no second DKG of an epoch).
    #[error("a key share for this epoch exists already")]
    AlreadyHaveKey,
    /// Too many requests from the requester, or too many rounds open.
    #[error("busy: {0}")]
    Busy(String),
    /// The receiver signed a different message for this slot already.
    #[error("equivocation refused: another message was signed for {0}")]
    Equivocation(Slot),
    /// The receiver's signing policy refuses the message.
    #[error("refused by the signing policy: {0}")]
    Policy(String),
    /// The request is malformed or does not fit the receiver's state.
    #[error("invalid request: {0}")]
    Invalid(String),
}

impl Refusal {
    /// Cuts `text` to at most [`MAX_REFUSAL_TEXT_BYTES`] bytes (at a character boundary), so a
    /// refusal always fits [`MAX_COMMITTEE_RESPONSE_BYTES`].
    pub fn text(text: impl std::fmt::Display) -> String {
        let mut s = text.to_string();
        if s.len() > MAX_REFUSAL_TEXT_BYTES {
            let mut cut = MAX_REFUSAL_TEXT_BYTES;
            while !s.is_char_boundary(cut) {
                cut -= 1;
            }
            s.truncate(cut);
        }
        s
    }
}

/// A member's answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CommitteeResponse {
    /// Accepted (`DkgStart`, `Dkg`, `DkgConfirm`).
    Ack,
    /// The signing commitment (`Commit`).
    Commitment(CommitmentMsg),
    /// The signature share (`Sign`).
    Share(SignatureShareMsg),
    /// Refused.
    Refused(Refusal),
}

cbor_wire!(CommitteeRequest, MAX_COMMITTEE_REQUEST_BYTES);
cbor_wire!(CommitteeResponse, MAX_COMMITTEE_RESPONSE_BYTES);

// A DKG message always fits a request.
const _: () = assert!(MAX_DKG_MESSAGE_BYTES + 64 <= MAX_COMMITTEE_REQUEST_BYTES);
