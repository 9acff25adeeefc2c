//! DA events (14A §1) and their versioned wire form.
//!
//! An event has two encodings:
//! - **JSON** (operator tools, HTTP API): an object with `"type"` set to the snake_case
//!   variant name, hashes and signatures as lowercase hex.
//! - **Wire** (inside DA blobs, signed and hashed): a [`WireEvent`], the CBOR array
//!   `[kind: u8, version: u16, body: bytes]`. Every event is versioned on its own, so a later
//!   build can add kinds or versions while this build refuses what it does not know
//!   ([`DaError::UnknownEventKind`], [`DaError::UnsupportedEventVersion`]) instead of guessing.
//!
//! Besides the 14A §1 storage events there is `receipt_recorded` (Tahap 14C receipts): a
//! committee-signed [`ThresholdReceipt`] entered into the log, whose JSON form and wire form
//! are described on [`DaEvent::ReceiptRecorded`] and [`WireEvent`].

use ed25519_dalek::{Signer, SigningKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::epochs::{CommitteeRotation, MAX_ROTATION_EVENT_BODY_BYTES};
use super::{Bytes32, Bytes64, DaError};
use crate::receipt::{ThresholdReceipt, MAX_THRESHOLD_RECEIPT_BYTES};
use crate::{codec, NetworkId};

mod receipt_json;

/// Longest text field (node id, zone, class) of an event, in bytes; text fields hold
/// 1..=`MAX_TEXT_LEN` bytes.
pub const MAX_TEXT_LEN: usize = 128;

/// The event version this build writes and reads (every kind is at version 1).
pub const EVENT_VERSION: u16 = 1;

/// Largest CBOR body of one wire event of every kind but `receipt_recorded`, in bytes. The
/// largest valid such event (a `node_registered` with three 128-byte texts) encodes to about
/// 400 bytes.
pub const MAX_EVENT_BODY_BYTES: usize = 512;

/// Largest CBOR body of one `receipt_recorded` wire event, in bytes: the receipt's CBOR (at
/// most [`MAX_THRESHOLD_RECEIPT_BYTES`]) as one CBOR byte string, plus at most 9 bytes of
/// byte-string header. A receipt signed by a committee of a few members encodes to about
/// 1 KB; the cap allows the largest committee.
pub const MAX_RECEIPT_EVENT_BODY_BYTES: usize = MAX_THRESHOLD_RECEIPT_BYTES + 9;

/// The node classes a `node_registered` event may name.
pub const NODE_CLASSES: [&str; 2] = ["regular", "datacenter"];

/// Domain separator of the bytes a chunk owner signs to request a deletion.
const DELETE_DOMAIN: &str = "dsdn/delete-request/v1";

/// Wire kind numbers (the first element of a [`WireEvent`]).
const KIND_NODE_REGISTERED: u8 = 1;
const KIND_CHUNK_DECLARED: u8 = 2;
const KIND_REPLICA_ADDED: u8 = 3;
const KIND_REPLICA_REMOVED: u8 = 4;
const KIND_DELETE_REQUESTED: u8 = 5;
const KIND_RECEIPT_RECORDED: u8 = 6;
const KIND_COMMITTEE_ROTATED: u8 = 7;
const KIND_COORDINATOR_REGISTERED: u8 = 8;

/// One DA event (14A §1: deterministic, ordered, versioned).
///
/// JSON form: an object with `"type"` set to the snake_case variant name, e.g.
/// `{"type": "replica_added", "chunk_id": "<64 hex>", "node_id": "12D3Koo..."}`; unknown
/// fields are refused. Wire form: [`DaEvent::to_wire`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum DaEvent {
    /// A storage node joined (or re-registered in) the `node_registry` (14A §2).
    NodeRegistered {
        /// The node's PeerId (base58 text, 1..=128 bytes).
        node_id: String,
        /// Placement zone, e.g. `id-jkt-1` (1..=128 bytes).
        zone: String,
        /// Offered capacity, in bytes.
        capacity_bytes: u64,
        /// Node class: `regular` or `datacenter`.
        class: String,
    },
    /// A chunk exists and belongs to `owner` (`chunk_map`, 14A §2).
    ChunkDeclared {
        /// Content hash of the chunk (32 bytes; hex in JSON).
        chunk_id: Bytes32,
        /// Chunk size, in bytes.
        size_bytes: u64,
        /// Owner's Ed25519 public key (32 bytes; hex in JSON).
        owner: Bytes32,
    },
    /// `node_id` now holds a replica of `chunk_id` (`replica_map`, 14A §2).
    ReplicaAdded {
        /// The chunk.
        chunk_id: Bytes32,
        /// The storage node's PeerId (1..=128 bytes).
        node_id: String,
    },
    /// `node_id` no longer holds a replica of `chunk_id`.
    ReplicaRemoved {
        /// The chunk.
        chunk_id: Bytes32,
        /// The storage node's PeerId (1..=128 bytes).
        node_id: String,
    },
    /// The owner asked for the chunk to be deleted.
    DeleteRequested {
        /// The chunk.
        chunk_id: Bytes32,
        /// The owner's Ed25519 signature over [`DaEvent::delete_message`] (64 bytes; hex in
        /// JSON).
        owner_signature: Bytes64,
    },
    /// A committee-signed execution receipt is recorded (Tahap 14C receipts, entered into
    /// the DA log per 14A); keyed in the state by its receipt id, recorded at most once.
    ///
    /// The receipt is boxed: it is several times larger than every other event.
    ///
    /// JSON form (all 32-byte values as 64 hex characters):
    /// `{"type": "receipt_recorded", "receipt_id", "receipt_hash", "workload_id",
    /// "node_key", "submitter", "epoch": u64, "receipt_cbor": "<hex of the receipt's CBOR>"}`.
    /// `receipt_cbor` carries the whole receipt; the other fields are derived from it for
    /// readers ([`ThresholdReceipt::receipt_hash`] for `receipt_hash`) and, when parsing,
    /// must equal what `receipt_cbor` holds.
    #[serde(
        serialize_with = "receipt_json::serialize",
        deserialize_with = "receipt_json::deserialize"
    )]
    ReceiptRecorded {
        /// The committee-signed receipt.
        receipt: Box<ThresholdReceipt>,
    },
    /// The committee of the next epoch and its group key, in force from
    /// `effective_height` on (issue 13 §3; rules in [`super::epochs`]). Sealed only by the
    /// committee's epoch rotation, never taken from the publish API. JSON: the fields of
    /// [`CommitteeRotation`] next to `"type": "committee_rotated"`.
    CommitteeRotated(Box<CommitteeRotation>),
    /// A coordinator joined the registry the next committees are selected from (issue 13
    /// §3, `coordinator:<node_id>` in the state). Recorded only through the registration
    /// protocol, whose requester's authenticated PeerId is `node_id` (the publish API
    /// refuses it). The PeerId is all the next committee's DKG needs: its messages go over
    /// the committee protocol to connected peers, whose addresses the peer manager holds.
    CoordinatorRegistered {
        /// The coordinator's PeerId (base58 text; unlike the older kinds, checked to be a
        /// PeerId by [`DaEvent::validate`], so the registry holds PeerIds only).
        node_id: String,
    },
}

/// An event on the wire: the CBOR array `[kind: u8, version: u16, body: bytes]`.
///
/// `body` is the CBOR array of the kind's version-1 fields, in declaration order:
/// - kind 1 `node_registered`: `[node_id: text, zone: text, capacity_bytes: u64, class: text]`
/// - kind 2 `chunk_declared`: `[chunk_id: bytes32, size_bytes: u64, owner: bytes32]`
/// - kind 3 `replica_added`: `[chunk_id: bytes32, node_id: text]`
/// - kind 4 `replica_removed`: `[chunk_id: bytes32, node_id: text]`
/// - kind 5 `delete_requested`: `[chunk_id: bytes32, owner_signature: bytes64]`
/// - kind 6 `receipt_recorded`: not an array but one byte string holding the receipt's CBOR
///   ([`ThresholdReceipt::to_bytes`]), so its size is known before the receipt is decoded
/// - kind 7 `committee_rotated`: `[epoch: u64, members: [text...], threshold: u16,
///   group_key: bytes32, effective_height: u64, key_proof: bytes64]`
/// - kind 8 `coordinator_registered`: `[node_id: text]`
///
/// The body is at most [`MAX_EVENT_BODY_BYTES`] bytes ([`MAX_RECEIPT_EVENT_BODY_BYTES`] for
/// kind 6, [`MAX_ROTATION_EVENT_BODY_BYTES`] for kind 7).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireEvent(pub u8, pub u16, pub ByteBuf);

fn malformed(kind: &str, e: impl std::fmt::Display) -> DaError {
    DaError::Malformed(format!("{kind} event: {e}"))
}

impl DaEvent {
    /// The snake_case name of the variant (`node_registered`, `chunk_declared`,
    /// `replica_added`, `replica_removed`, `delete_requested`, `receipt_recorded`,
    /// `committee_rotated`, `coordinator_registered`), as in the JSON `"type"`.
    pub fn kind(&self) -> &'static str {
        match self {
            DaEvent::NodeRegistered { .. } => "node_registered",
            DaEvent::ChunkDeclared { .. } => "chunk_declared",
            DaEvent::ReplicaAdded { .. } => "replica_added",
            DaEvent::ReplicaRemoved { .. } => "replica_removed",
            DaEvent::DeleteRequested { .. } => "delete_requested",
            DaEvent::ReceiptRecorded { .. } => "receipt_recorded",
            DaEvent::CommitteeRotated(_) => "committee_rotated",
            DaEvent::CoordinatorRegistered { .. } => "coordinator_registered",
        }
    }

    /// A `receipt_recorded` event for `receipt` (boxes it); does not validate.
    pub fn receipt_recorded(receipt: ThresholdReceipt) -> DaEvent {
        DaEvent::ReceiptRecorded {
            receipt: Box::new(receipt),
        }
    }

    /// Checks the field bounds: every text field is 1..=[`MAX_TEXT_LEN`] bytes, and a
    /// `node_registered` class is one of [`NODE_CLASSES`]. A `receipt_recorded` receipt must
    /// encode within [`MAX_THRESHOLD_RECEIPT_BYTES`] and pass
    /// [`crate::receipt::ReceiptV1::check_consistency`] (derived ids and hashes,
    /// anti-self-dealing). Signatures are not checked here: the group signature is the
    /// committee's and the blob carrying the event is already signed by it.
    ///
    /// # Errors
    /// [`DaError::Malformed`] naming the kind and the offending field.
    pub fn validate(&self) -> Result<(), DaError> {
        let texts: &[(&str, &String)] = match self {
            DaEvent::NodeRegistered {
                node_id,
                zone,
                class,
                ..
            } => {
                if !NODE_CLASSES.contains(&class.as_str()) {
                    return Err(malformed(
                        self.kind(),
                        "field class must be \"regular\" or \"datacenter\"",
                    ));
                }
                &[("node_id", node_id), ("zone", zone)]
            }
            DaEvent::ReplicaAdded { node_id, .. } | DaEvent::ReplicaRemoved { node_id, .. } => {
                &[("node_id", node_id)]
            }
            DaEvent::ReceiptRecorded { receipt } => {
                receipt
                    .to_bytes()
                    .map_err(|e| malformed(self.kind(), format_args!("field receipt: {e}")))?;
                receipt
                    .receipt
                    .check_consistency()
                    .map_err(|e| malformed(self.kind(), format_args!("field receipt: {e}")))?;
                &[]
            }
            DaEvent::CommitteeRotated(rotation) => {
                rotation.validate()?;
                &[]
            }
            DaEvent::CoordinatorRegistered { node_id } => {
                // A kind without legacy blobs: the PeerId form is part of its validity.
                if node_id.len() <= MAX_TEXT_LEN && node_id.parse::<multiaddr::PeerId>().is_err() {
                    return Err(malformed(
                        self.kind(),
                        format_args!("field node_id {node_id:?} is not a PeerId"),
                    ));
                }
                &[("node_id", node_id)]
            }
            DaEvent::ChunkDeclared { .. } | DaEvent::DeleteRequested { .. } => &[],
        };
        for (name, value) in texts {
            if value.is_empty() || value.len() > MAX_TEXT_LEN {
                return Err(malformed(
                    self.kind(),
                    format_args!("field {name} must be 1-{MAX_TEXT_LEN} bytes"),
                ));
            }
        }
        Ok(())
    }

    /// The `node_id` fields of the event (none for kinds that name no node).
    fn node_ids(&self) -> &[String] {
        match self {
            DaEvent::NodeRegistered { node_id, .. }
            | DaEvent::ReplicaAdded { node_id, .. }
            | DaEvent::ReplicaRemoved { node_id, .. }
            | DaEvent::CoordinatorRegistered { node_id } => std::slice::from_ref(node_id),
            DaEvent::ChunkDeclared { .. }
            | DaEvent::DeleteRequested { .. }
            | DaEvent::ReceiptRecorded { .. }
            | DaEvent::CommitteeRotated(_) => &[],
        }
    }

    /// Checks that every `node_id` of the event is a libp2p PeerId in its base58 text form
    /// (`12D3KooW…`, as [`multiaddr::PeerId`] parses and prints it). Part of
    /// [`DaEvent::validate_for_sealing`], not of [`DaEvent::validate`]: an event sealed
    /// before this check existed must keep its blob verifiable and its log replayable.
    ///
    /// # Errors
    /// [`DaError::Malformed`] naming the kind, the field and the value.
    pub fn check_node_ids(&self) -> Result<(), DaError> {
        for node_id in self.node_ids() {
            if node_id.parse::<multiaddr::PeerId>().is_err() {
                return Err(malformed(
                    self.kind(),
                    format_args!("field node_id {node_id:?} is not a PeerId (base58, 12D3KooW…)"),
                ));
            }
        }
        Ok(())
    }

    /// The admission check of an event that is about to be sealed into a new blob (the
    /// publish API, the DA authority's batcher, a committee member asked to co-sign):
    /// [`DaEvent::validate`], then [`DaEvent::check_node_ids`]; a `committee_rotated`
    /// event is refused (the epoch rotation seals it, not a publisher). Blob verification and the
    /// apply rules use [`DaEvent::validate`] only, so a blob sealed by an older build with
    /// a `node_id` that is no PeerId still verifies and replays.
    ///
    /// # Errors
    /// [`DaError::Malformed`] naming the kind and the offending field.
    pub fn validate_for_sealing(&self) -> Result<(), DaError> {
        self.validate()?;
        if let DaEvent::CommitteeRotated(_) = self {
            return Err(malformed(
                self.kind(),
                "only the committee's epoch rotation proposes it",
            ));
        }
        self.check_node_ids()
    }

    /// The versioned wire form of the event (see [`WireEvent`]); does not validate.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when the body would exceed [`MAX_EVENT_BODY_BYTES`] (a text
    /// field far beyond [`MAX_TEXT_LEN`]), or a receipt's CBOR would exceed
    /// [`MAX_THRESHOLD_RECEIPT_BYTES`].
    pub fn to_wire(&self) -> Result<WireEvent, DaError> {
        let cap = MAX_EVENT_BODY_BYTES;
        let (kind, body) = match self {
            DaEvent::NodeRegistered {
                node_id,
                zone,
                capacity_bytes,
                class,
            } => (
                KIND_NODE_REGISTERED,
                codec::encode(&(node_id, zone, capacity_bytes, class), cap),
            ),
            DaEvent::ChunkDeclared {
                chunk_id,
                size_bytes,
                owner,
            } => (
                KIND_CHUNK_DECLARED,
                codec::encode(&(chunk_id, size_bytes, owner), cap),
            ),
            DaEvent::ReplicaAdded { chunk_id, node_id } => {
                (KIND_REPLICA_ADDED, codec::encode(&(chunk_id, node_id), cap))
            }
            DaEvent::ReplicaRemoved { chunk_id, node_id } => (
                KIND_REPLICA_REMOVED,
                codec::encode(&(chunk_id, node_id), cap),
            ),
            DaEvent::DeleteRequested {
                chunk_id,
                owner_signature,
            } => (
                KIND_DELETE_REQUESTED,
                codec::encode(&(chunk_id, owner_signature), cap),
            ),
            DaEvent::ReceiptRecorded { receipt } => {
                let inner = receipt.to_bytes().map_err(|e| malformed(self.kind(), e))?;
                (
                    KIND_RECEIPT_RECORDED,
                    codec::encode(&ByteBuf::from(inner), MAX_RECEIPT_EVENT_BODY_BYTES),
                )
            }
            DaEvent::CommitteeRotated(r) => (
                KIND_COMMITTEE_ROTATED,
                codec::encode(
                    &(
                        r.epoch,
                        &r.members,
                        r.threshold,
                        &r.group_key,
                        r.effective_height,
                        &r.key_proof,
                    ),
                    MAX_ROTATION_EVENT_BODY_BYTES,
                ),
            ),
            DaEvent::CoordinatorRegistered { node_id } => {
                (KIND_COORDINATOR_REGISTERED, codec::encode(&(node_id,), cap))
            }
        };
        let body = body.map_err(|e| malformed(self.kind(), e))?;
        Ok(WireEvent(kind, EVENT_VERSION, ByteBuf::from(body)))
    }

    /// Decodes a wire event. The kind is checked first, then the version, then the body;
    /// nothing is guessed. Does not validate (see [`DaEvent::validate`]).
    ///
    /// # Errors
    /// - [`DaError::UnknownEventKind`] for a kind other than 1..=8;
    /// - [`DaError::UnsupportedEventVersion`] for a version other than [`EVENT_VERSION`];
    /// - [`DaError::Malformed`] for a body that is not the kind's version-1 form or is
    ///   larger than [`MAX_EVENT_BODY_BYTES`] ([`MAX_RECEIPT_EVENT_BODY_BYTES`] for kind 6,
    ///   whose receipt must also decode within [`MAX_THRESHOLD_RECEIPT_BYTES`];
    ///   [`MAX_ROTATION_EVENT_BODY_BYTES`] for kind 7).
    pub fn from_wire(w: &WireEvent) -> Result<DaEvent, DaError> {
        let WireEvent(kind, version, body) = w;
        let name = match *kind {
            KIND_NODE_REGISTERED => "node_registered",
            KIND_CHUNK_DECLARED => "chunk_declared",
            KIND_REPLICA_ADDED => "replica_added",
            KIND_REPLICA_REMOVED => "replica_removed",
            KIND_DELETE_REQUESTED => "delete_requested",
            KIND_RECEIPT_RECORDED => "receipt_recorded",
            KIND_COMMITTEE_ROTATED => "committee_rotated",
            KIND_COORDINATOR_REGISTERED => "coordinator_registered",
            other => return Err(DaError::UnknownEventKind(other)),
        };
        if *version != EVENT_VERSION {
            return Err(DaError::UnsupportedEventVersion {
                kind: name,
                version: *version,
            });
        }
        let cap = MAX_EVENT_BODY_BYTES;
        let bad = |e| malformed(name, e);
        Ok(match *kind {
            KIND_NODE_REGISTERED => {
                let (node_id, zone, capacity_bytes, class) =
                    codec::decode(body, cap).map_err(bad)?;
                DaEvent::NodeRegistered {
                    node_id,
                    zone,
                    capacity_bytes,
                    class,
                }
            }
            KIND_CHUNK_DECLARED => {
                let (chunk_id, size_bytes, owner) = codec::decode(body, cap).map_err(bad)?;
                DaEvent::ChunkDeclared {
                    chunk_id,
                    size_bytes,
                    owner,
                }
            }
            KIND_REPLICA_ADDED => {
                let (chunk_id, node_id) = codec::decode(body, cap).map_err(bad)?;
                DaEvent::ReplicaAdded { chunk_id, node_id }
            }
            KIND_REPLICA_REMOVED => {
                let (chunk_id, node_id) = codec::decode(body, cap).map_err(bad)?;
                DaEvent::ReplicaRemoved { chunk_id, node_id }
            }
            KIND_RECEIPT_RECORDED => {
                let inner: ByteBuf =
                    codec::decode(body, MAX_RECEIPT_EVENT_BODY_BYTES).map_err(bad)?;
                let receipt = ThresholdReceipt::from_bytes(&inner).map_err(bad)?;
                DaEvent::receipt_recorded(receipt)
            }
            KIND_COMMITTEE_ROTATED => {
                let (epoch, members, threshold, group_key, effective_height, key_proof) =
                    codec::decode(body, MAX_ROTATION_EVENT_BODY_BYTES).map_err(bad)?;
                DaEvent::CommitteeRotated(Box::new(CommitteeRotation {
                    epoch,
                    members,
                    threshold,
                    group_key,
                    effective_height,
                    key_proof,
                }))
            }
            KIND_COORDINATOR_REGISTERED => {
                let (node_id,): (String,) = codec::decode(body, cap).map_err(bad)?;
                DaEvent::CoordinatorRegistered { node_id }
            }
            _ => {
                let (chunk_id, owner_signature) = codec::decode(body, cap).map_err(bad)?;
                DaEvent::DeleteRequested {
                    chunk_id,
                    owner_signature,
                }
            }
        })
    }

    /// The bytes a chunk owner signs to request a deletion: the CBOR array
    /// `["dsdn/delete-request/v1", network name, chunk_id: bytes32]` (at most 100 bytes).
    /// Binding the network keeps a request of one network from being replayed on another.
    pub fn delete_message(network: &NetworkId, chunk_id: &Bytes32) -> Vec<u8> {
        // A 22-byte domain, a network id of at most 32 bytes and 32 bytes of chunk id always
        // fit the cap, so the fallback is unreachable.
        codec::encode(&(DELETE_DOMAIN, network.as_str(), chunk_id), 256).unwrap_or_default()
    }

    /// A `delete_requested` event for `chunk_id`, signed by the chunk's `owner` over
    /// [`DaEvent::delete_message`].
    pub fn delete_requested(owner: &SigningKey, network: &NetworkId, chunk_id: Bytes32) -> DaEvent {
        let signature = owner.sign(&Self::delete_message(network, &chunk_id));
        DaEvent::DeleteRequested {
            chunk_id,
            owner_signature: Bytes64(signature.to_bytes()),
        }
    }
}
