//! The DA log (Tahap 14A): events, signed hash-linked blobs, the state they build, and
//! in-order application.
//!
//! Spec: 14A §1 (`DAEvent`: NodeRegistered, ChunkDeclared, ReplicaAdded, ReplicaRemoved,
//! DeleteRequested — deterministic, ordered, versioned) and 14A §2 (state: `node_registry`,
//! `chunk_map`, `replica_map`, `zone_map`, rebuilt only by replaying the log); plus
//! ReceiptRecorded and the `receipt_map` it builds, recording committee-signed receipts
//! (14C).
//!
//! Only the network's DA authority (an Ed25519 key named in seeds.toml) publishes blobs.
//! Every node checks a blob's version, network, bounds and signature before storing or
//! forwarding it ([`DaBlob::verify`] → [`VerifiedBlob`]) and applies verified blobs strictly
//! in height order, each naming its predecessor's hash ([`DaChain`]), so every node holding
//! the same log holds the same [`DaState::state_root`] whatever order the blobs arrived in.
//!
//! Modules:
//! - [`event`] — [`DaEvent`] and its versioned wire form [`WireEvent`];
//! - [`blob`] — [`DaBlob`], [`VerifiedBlob`], [`DaError`];
//! - [`state`] — [`DaState`], its key scheme, stores, authenticated tree and proofs;
//! - [`chain`] — [`DaChain`];
//! - [`epochs`] — committee rotations on the log and the [`KeyHistory`] of DA authority keys;
//! - [`sync`], [`batch`], [`register`] — sync, batching and registration wire types.

pub mod batch;
pub mod blob;
mod bytes;
pub mod chain;
pub mod epochs;
pub mod event;
pub mod evidence;
pub mod prove;
pub mod register;
pub mod state;
pub mod state_sync;
pub mod sync;

pub use blob::{
    authority_key, DaBlob, DaError, VerifiedBlob, DA_BLOB_VERSION, DA_BLOB_VERSION_V1,
    DA_BLOB_VERSION_V2, DA_BLOB_VERSION_V4, GENESIS_PREV_HASH, MAX_BLOB_BYTES, MAX_EVENTS_PER_BLOB,
};
pub use bytes::{Bytes32, Bytes64};
pub use chain::{ChainError, DaChain, Offer, MAX_PENDING_BLOBS, MAX_PENDING_BYTES};
pub use epochs::{CommitteeRotation, EpochRecord, KeyHistory, MAX_ROTATION_LEAD};
pub use event::{
    DaEvent, WireEvent, EVENT_VERSION, MAX_EVENT_BODY_BYTES, MAX_RECEIPT_EVENT_BODY_BYTES,
    MAX_TEXT_LEN, NODE_CLASSES,
};
pub use state::{
    check_prev_state_root, empty_root, ApplySummary, ChunkRecord, DaState, EventOutcome, MemStore,
    NodeRecord, RecordedReceipt, StateError, StateHeader, StateKey, StateProof, StateStore,
    StateValue,
};

#[cfg(test)]
mod tests;
