//! DA events, the signed envelope that carries them over gossip, and the pure DA log.
//!
//! Spec: Tahap 14A §1 (`DAEvent`: NodeRegistered, ChunkDeclared, ReplicaAdded,
//! ReplicaRemoved, DeleteRequested — deterministic, ordered, versioned).
//!
//! Only the network's DA authority (an Ed25519 key named in seeds.toml) publishes. Every node
//! checks an envelope's network and signature before accepting or forwarding it
//! ([`DaEnvelope::verify`]) and applies accepted envelopes strictly in sequence order
//! ([`DaLog`]), so every node that accepted the same envelopes holds the same
//! [`DaLog::state_root`] whatever order gossip delivered them in.

use std::collections::BTreeMap;

use ed25519_dalek::{Signer, SigningKey, Verifier, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::{codec, NetworkId};

mod bytes;
pub use bytes::{Bytes32, Bytes64};

pub mod batch;
pub mod register;
pub mod sync;

/// Envelope format version this build writes and accepts.
pub const DA_ENVELOPE_VERSION: u16 = 1;

/// Most events in one envelope.
pub const MAX_EVENTS_PER_ENVELOPE: usize = 256;

/// Largest encoded envelope accepted, in bytes (also the gossipsub max transmit size).
pub const MAX_ENVELOPE_BYTES: usize = 256 * 1024;

/// Longest text field (node id, zone, class) in an event, in bytes.
pub const MAX_TEXT_LEN: usize = 128;

/// Most envelopes held while waiting for a gap in the sequence to fill.
pub const MAX_PENDING_ENVELOPES: usize = 4096;

/// Domain separator of the signed bytes.
const SIGNING_DOMAIN: &str = "dsdn/da-envelope/v1";

/// One DA event (14A §1). JSON form: an object with `"type"` set to the snake_case variant
/// name, e.g. `{"type": "replica_added", "chunk_id": "<64 hex>", "node_id": "12D3Koo..."}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DaEvent {
    /// A storage node joined the registry.
    NodeRegistered {
        /// The node's PeerId (base58 text).
        node_id: String,
        /// Placement zone, e.g. `id-jkt-1`.
        zone: String,
        /// Offered capacity, in bytes.
        capacity_bytes: u64,
        /// Node class, e.g. `regular` or `datacenter`.
        class: String,
    },
    /// A chunk exists and belongs to `owner`.
    ChunkDeclared {
        /// Content hash of the chunk (32 bytes; hex in JSON).
        chunk_id: Bytes32,
        /// Chunk size, in bytes.
        size_bytes: u64,
        /// Owner's Ed25519 public key (32 bytes; hex in JSON).
        owner: Bytes32,
    },
    /// `node_id` now holds a replica of `chunk_id`.
    ReplicaAdded {
        /// The chunk.
        chunk_id: Bytes32,
        /// The storage node's PeerId.
        node_id: String,
    },
    /// `node_id` no longer holds a replica of `chunk_id`.
    ReplicaRemoved {
        /// The chunk.
        chunk_id: Bytes32,
        /// The storage node's PeerId.
        node_id: String,
    },
    /// The owner asked for the chunk to be deleted.
    DeleteRequested {
        /// The chunk.
        chunk_id: Bytes32,
        /// The owner's Ed25519 signature over the chunk id (64 bytes; hex in JSON).
        owner_signature: Bytes64,
    },
}

impl DaEvent {
    /// The snake_case name of the variant (`node_registered`, …).
    pub fn kind(&self) -> &'static str {
        match self {
            DaEvent::NodeRegistered { .. } => "node_registered",
            DaEvent::ChunkDeclared { .. } => "chunk_declared",
            DaEvent::ReplicaAdded { .. } => "replica_added",
            DaEvent::ReplicaRemoved { .. } => "replica_removed",
            DaEvent::DeleteRequested { .. } => "delete_requested",
        }
    }

    /// Checks the length bounds of text fields.
    ///
    /// # Errors
    /// [`DaError::Malformed`] naming the field that is empty or longer than [`MAX_TEXT_LEN`].
    pub fn validate(&self) -> Result<(), DaError> {
        let texts: Vec<(&str, &str)> = match self {
            DaEvent::NodeRegistered {
                node_id,
                zone,
                class,
                ..
            } => vec![("node_id", node_id), ("zone", zone), ("class", class)],
            DaEvent::ReplicaAdded { node_id, .. } | DaEvent::ReplicaRemoved { node_id, .. } => {
                vec![("node_id", node_id)]
            }
            DaEvent::ChunkDeclared { .. } | DaEvent::DeleteRequested { .. } => vec![],
        };
        for (name, value) in texts {
            if value.is_empty() || value.len() > MAX_TEXT_LEN {
                return Err(DaError::Malformed(format!(
                    "{}: field {name} must be 1-{MAX_TEXT_LEN} bytes",
                    self.kind()
                )));
            }
        }
        Ok(())
    }
}

/// A signed batch of DA events as gossiped on the network's DA topic.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaEnvelope {
    /// Format version; only [`DA_ENVELOPE_VERSION`] is accepted.
    pub version: u16,
    /// The network id the envelope belongs to.
    pub network: String,
    /// Sequence number, starting at 1 and increasing by one per envelope.
    pub seq: u64,
    /// The publisher's Ed25519 public key.
    pub publisher: Bytes32,
    /// The events, in order (1 to [`MAX_EVENTS_PER_ENVELOPE`]).
    pub events: Vec<DaEvent>,
    /// Ed25519 signature by `publisher` over the canonical signing bytes.
    pub signature: Bytes64,
}

/// Why an envelope is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaError {
    /// Not decodable, or a field out of bounds.
    #[error("malformed DA envelope: {0}")]
    Malformed(String),
    /// Written in a version this build does not know.
    #[error("unsupported DA envelope version {0} (this build accepts {DA_ENVELOPE_VERSION})")]
    UnsupportedVersion(u16),
    /// Belongs to another network.
    #[error("DA envelope for network {theirs:?}, this node is on {ours}")]
    WrongNetwork {
        /// Our network.
        ours: String,
        /// The envelope's network.
        theirs: String,
    },
    /// Published by a key that is not the network's DA authority.
    #[error("DA envelope published by {0}, which is not the network's DA authority")]
    NotAuthority(String),
    /// The signature does not verify.
    #[error("DA envelope signature does not verify")]
    BadSignature,
    /// This node has no DA authority configured and accepts no DA events.
    #[error("no DA authority is configured for this network")]
    NoAuthority,
}

impl DaEnvelope {
    fn signing_bytes(
        version: u16,
        network: &str,
        seq: u64,
        publisher: &Bytes32,
        events: &[DaEvent],
    ) -> Result<Vec<u8>, DaError> {
        codec::encode(
            &(SIGNING_DOMAIN, version, network, seq, publisher, events),
            MAX_ENVELOPE_BYTES,
        )
        .map_err(|e| DaError::Malformed(e.to_string()))
    }

    /// Builds and signs an envelope.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when `events` is empty, has more than
    /// [`MAX_EVENTS_PER_ENVELOPE`] entries, has an invalid event, or encodes larger than
    /// [`MAX_ENVELOPE_BYTES`].
    pub fn sign(
        key: &SigningKey,
        network: &NetworkId,
        seq: u64,
        events: Vec<DaEvent>,
    ) -> Result<Self, DaError> {
        check_events(&events)?;
        let publisher = Bytes32(key.verifying_key().to_bytes());
        let msg = Self::signing_bytes(
            DA_ENVELOPE_VERSION,
            network.as_str(),
            seq,
            &publisher,
            &events,
        )?;
        let signature = Bytes64(key.sign(&msg).to_bytes());
        let env = DaEnvelope {
            version: DA_ENVELOPE_VERSION,
            network: network.to_string(),
            seq,
            publisher,
            events,
            signature,
        };
        env.to_bytes()?;
        Ok(env)
    }

    /// Encodes the envelope for gossip.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when the encoding exceeds [`MAX_ENVELOPE_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, DaError> {
        codec::encode(self, MAX_ENVELOPE_BYTES).map_err(|e| DaError::Malformed(e.to_string()))
    }

    /// Decodes an envelope received from the network (no signature check: see
    /// [`DaEnvelope::verify`]).
    ///
    /// # Errors
    /// [`DaError::Malformed`] for oversized or undecodable input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DaError> {
        codec::decode(bytes, MAX_ENVELOPE_BYTES).map_err(|e| DaError::Malformed(e.to_string()))
    }

    /// Checks everything a node must check before accepting or forwarding the envelope:
    /// version, network, bounds, publisher == `authority`, and the signature.
    ///
    /// # Errors
    /// The first applicable [`DaError`].
    pub fn verify(&self, network: &NetworkId, authority: Option<&[u8; 32]>) -> Result<(), DaError> {
        if self.version != DA_ENVELOPE_VERSION {
            return Err(DaError::UnsupportedVersion(self.version));
        }
        if self.network != network.as_str() {
            return Err(DaError::WrongNetwork {
                ours: network.to_string(),
                theirs: self.network.chars().take(64).collect(),
            });
        }
        check_events(&self.events)?;
        if self.seq == 0 {
            return Err(DaError::Malformed("sequence numbers start at 1".into()));
        }
        let authority = authority.ok_or(DaError::NoAuthority)?;
        if &self.publisher.0 != authority {
            return Err(DaError::NotAuthority(hex::encode(self.publisher.0)));
        }
        let key = VerifyingKey::from_bytes(authority).map_err(|_| DaError::BadSignature)?;
        let msg = Self::signing_bytes(
            self.version,
            &self.network,
            self.seq,
            &self.publisher,
            &self.events,
        )?;
        let sig = ed25519_dalek::Signature::from_bytes(&self.signature.0);
        key.verify(&msg, &sig).map_err(|_| DaError::BadSignature)
    }

    /// SHA-256 of the encoded envelope: its identity in the DA log.
    ///
    /// # Errors
    /// As [`DaEnvelope::to_bytes`].
    pub fn hash(&self) -> Result<[u8; 32], DaError> {
        Ok(Sha256::digest(self.to_bytes()?).into())
    }
}

fn check_events(events: &[DaEvent]) -> Result<(), DaError> {
    if events.is_empty() || events.len() > MAX_EVENTS_PER_ENVELOPE {
        return Err(DaError::Malformed(format!(
            "{} events (expected 1-{MAX_EVENTS_PER_ENVELOPE})",
            events.len()
        )));
    }
    events.iter().try_for_each(DaEvent::validate)
}

/// What [`DaLog::insert`] did with an envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InsertOutcome {
    /// Applied, together with this many envelopes that were waiting behind it (≥ 1).
    Applied(usize),
    /// Held until the envelopes before it arrive.
    Buffered,
    /// Already applied or already buffered.
    Duplicate,
    /// Too far ahead of the applied height (more than [`MAX_PENDING_ENVELOPES`]); dropped.
    TooFarAhead,
}

/// The pure, in-order DA log of one node: applies verified envelopes strictly by sequence
/// number and folds each into a running SHA-256 state root:
/// `root_n = SHA-256(root_{n-1} ‖ seq_n as u64 big-endian ‖ envelope_hash_n)`, `root_0 = 0³²`.
///
/// Out-of-order envelopes are held (at most [`MAX_PENDING_ENVELOPES`]) until the gap fills.
#[derive(Debug, Clone, Default)]
pub struct DaLog {
    applied_seq: u64,
    events: u64,
    root: [u8; 32],
    pending: BTreeMap<u64, ([u8; 32], usize)>,
}

impl DaLog {
    /// An empty log.
    pub fn new() -> Self {
        Self::default()
    }

    /// Inserts a *verified* envelope given its sequence number, hash and event count.
    pub fn insert(&mut self, seq: u64, hash: [u8; 32], events: usize) -> InsertOutcome {
        if seq <= self.applied_seq || self.pending.contains_key(&seq) {
            return InsertOutcome::Duplicate;
        }
        if seq - self.applied_seq > MAX_PENDING_ENVELOPES as u64 {
            return InsertOutcome::TooFarAhead;
        }
        self.pending.insert(seq, (hash, events));
        let mut applied = 0;
        while let Some((hash, n)) = self.pending.remove(&(self.applied_seq + 1)) {
            self.applied_seq += 1;
            self.events += n as u64;
            let mut h = Sha256::new();
            h.update(self.root);
            h.update(self.applied_seq.to_be_bytes());
            h.update(hash);
            self.root = h.finalize().into();
            applied += 1;
        }
        if applied > 0 {
            InsertOutcome::Applied(applied)
        } else {
            InsertOutcome::Buffered
        }
    }

    /// Sequence number of the last applied envelope (0 when none).
    pub fn applied_seq(&self) -> u64 {
        self.applied_seq
    }

    /// Number of events applied.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Envelopes held out of order.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// The running state root.
    pub fn state_root(&self) -> [u8; 32] {
        self.root
    }
}

#[cfg(test)]
mod tests;
