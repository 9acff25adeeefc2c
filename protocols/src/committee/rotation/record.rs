//! The member's durable per-height state: [`MemberRecord`] and its [`Lock`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};
use crate::committee::guard::message_hash;
use crate::committee::signing::MAX_SIGNED_MESSAGE_BYTES;

/// Record format version this build writes and accepts.
pub const MEMBER_RECORD_VERSION: u16 = 1;

/// Largest encoded [`MemberRecord`], in bytes: a lock on the largest signable message plus
/// the fixed fields.
pub const MAX_MEMBER_RECORD_BYTES: usize = MAX_SIGNED_MESSAGE_BYTES + 1024;

/// A member's lock at a height: it released a signature share for `message` in `round`.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lock {
    /// The round of the share (the highest round this member signed in at the height).
    pub round: u64,
    /// SHA-256 of `message` ([`message_hash`]).
    #[serde(with = "serde_bytes")]
    pub message_hash: [u8; 32],
    /// The signed message (at most [`MAX_SIGNED_MESSAGE_BYTES`]): a new proposer must be able
    /// to re-propose it.
    #[serde(with = "serde_bytes")]
    pub message: Vec<u8>,
}

impl Lock {
    /// A lock on `message` at `round` (its hash computed here).
    pub fn new(round: u64, message: Vec<u8>) -> Self {
        Self {
            round,
            message_hash: message_hash(&message),
            message,
        }
    }

    /// True when the message is within [`MAX_SIGNED_MESSAGE_BYTES`] and matches its hash.
    pub fn is_consistent(&self) -> bool {
        self.message.len() <= MAX_SIGNED_MESSAGE_BYTES
            && message_hash(&self.message) == self.message_hash
    }
}

impl fmt::Debug for Lock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Lock")
            .field("round", &self.round)
            .field("message_hash", &hex::encode(&self.message_hash[..8]))
            .field("message_len", &self.message.len())
            .finish()
    }
}

/// One member's durable rotation state for its current height (see the module
/// documentation of [`super`]). The daemon persists it (tmp + fsync + rename, beside the
/// slot guard) when [`super::Action::Persist`] asks, and before any later action.
///
/// Encoded as the CBOR map `{version, height, round, lock}`, at most
/// [`MAX_MEMBER_RECORD_BYTES`]; the version is read first.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberRecord {
    /// The height this record is for (the member's DA tip + 1).
    pub height: u64,
    /// The highest round the member entered at `height`: it never signs a package of a
    /// lower round there.
    pub round: u64,
    /// The member's lock at `height`, if it released a share there (`lock.round ≤ round`).
    pub lock: Option<Lock>,
}

/// Why record bytes are refused.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// Oversized or not CBOR of the right shape.
    #[error("rotation record: {0}")]
    Codec(#[from] CodecError),
    /// Another format version.
    #[error("unsupported rotation record version {0} (this build reads {MEMBER_RECORD_VERSION})")]
    UnsupportedVersion(u16),
    /// A lock above the round, or a lock whose message does not match its hash.
    #[error("malformed rotation record: {0}")]
    Malformed(&'static str),
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u16,
}

#[derive(Serialize, Deserialize)]
struct RecordWire {
    version: u16,
    height: u64,
    round: u64,
    lock: Option<Lock>,
}

impl MemberRecord {
    /// A fresh record for `height`: round 0, no lock.
    pub fn new(height: u64) -> Self {
        Self {
            height,
            round: 0,
            lock: None,
        }
    }

    /// Checks `lock.round ≤ round` and the lock's message against its hash and the cap.
    ///
    /// # Errors
    /// [`RecordError::Malformed`] naming what is wrong.
    pub fn validate(&self) -> Result<(), RecordError> {
        if let Some(lock) = &self.lock {
            if lock.round > self.round {
                return Err(RecordError::Malformed("lock of a round above the record's"));
            }
            if !lock.is_consistent() {
                return Err(RecordError::Malformed(
                    "locked message does not match its hash",
                ));
            }
        }
        Ok(())
    }

    /// Encodes the record (at most [`MAX_MEMBER_RECORD_BYTES`]).
    ///
    /// # Errors
    /// [`CodecError`] only for a lock over [`MAX_SIGNED_MESSAGE_BYTES`] (not produced by
    /// [`super::HeightConsensus`]).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(
            &RecordWire {
                version: MEMBER_RECORD_VERSION,
                height: self.height,
                round: self.round,
                lock: self.lock.clone(),
            },
            MAX_MEMBER_RECORD_BYTES,
        )
    }

    /// Decodes and validates a record written by [`MemberRecord::to_bytes`].
    ///
    /// # Errors
    /// [`RecordError`] for oversized, malformed or inconsistent input, or another version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, RecordError> {
        let VersionOnly { version } = codec::decode(bytes, MAX_MEMBER_RECORD_BYTES)?;
        if version != MEMBER_RECORD_VERSION {
            return Err(RecordError::UnsupportedVersion(version));
        }
        let wire: RecordWire = codec::decode(bytes, MAX_MEMBER_RECORD_BYTES)?;
        let record = Self {
            height: wire.height,
            round: wire.round,
            lock: wire.lock,
        };
        record.validate()?;
        Ok(record)
    }
}
