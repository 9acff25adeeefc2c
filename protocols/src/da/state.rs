//! The state rebuilt from the DA log (14A §2): `node_registry`, `chunk_map`, `replica_map`
//! and `zone_map`, plus `receipt_map` (the committee-signed receipts recorded in the log,
//! 14C), its state root, and snapshots of it.
//!
//! The state is only ever derived: apply the log's blobs in order from genesis (or from a
//! snapshot) and every node holds the same maps and the same [`DaState::state_root`].
//! Every map is a `BTreeMap`/`BTreeSet`, so iteration, the root and snapshots are
//! deterministic.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Bytes32, ChainError, DaEvent, VerifiedBlob};
use crate::NetworkId;

mod snapshot;

pub use snapshot::{MAX_SNAPSHOT_BYTES, SNAPSHOT_VERSION};

/// Domain separator hashed first into the state root (v2: `receipt_map` was added).
const ROOT_DOMAIN: &str = "dsdn/da-state/v2";

/// A storage node in the `node_registry` (14A §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeRecord {
    /// Placement zone.
    pub zone: String,
    /// Offered capacity, in bytes.
    pub capacity_bytes: u64,
    /// Node class: `regular` or `datacenter`.
    pub class: String,
    /// Height of the blob that last registered the node.
    pub registered_at: u64,
}

/// A chunk in the `chunk_map` (14A §2).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkRecord {
    /// Chunk size, in bytes.
    pub size_bytes: u64,
    /// Owner's Ed25519 public key.
    pub owner: Bytes32,
    /// Height of the blob that declared the chunk.
    pub declared_at: u64,
}

/// A receipt in the `receipt_map` (keyed by its receipt id), recorded by a
/// `receipt_recorded` event (14C receipts in the 14A log).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct RecordedReceipt {
    /// [`crate::receipt::ThresholdReceipt::receipt_hash`] of the recorded receipt (hash of
    /// its committee-signed bytes and group signature).
    pub receipt_hash: Bytes32,
    /// The workload the receipt is for (`SHA-256` of the WASM module).
    pub workload_id: Bytes32,
    /// The executing node's Ed25519 public key.
    pub node_key: Bytes32,
    /// Height of the blob that recorded the receipt (≥ 1).
    pub height: u64,
}

/// What applying one event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventOutcome {
    /// The event changed (or re-wrote) the state.
    Applied,
    /// The event was a deterministic no-op; the label says why: `invalid`,
    /// `chunk_already_declared`, `unknown_chunk`, `unknown_node`, `duplicate_replica`,
    /// `absent_replica`, `bad_owner_signature`, `duplicate_receipt`.
    Ignored(&'static str),
}

/// Counts of one applied blob's events.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ApplySummary {
    /// Events that changed the state.
    pub applied: usize,
    /// Events that were deterministic no-ops ([`EventOutcome::Ignored`]).
    pub ignored: usize,
}

/// The DA state of one network (14A §2), rebuilt by applying blobs in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaState {
    network: NetworkId,
    height: u64,
    tip_hash: [u8; 32],
    last_timestamp_ms: u64,
    events: u64,
    ignored: u64,
    nodes: BTreeMap<String, NodeRecord>,
    chunks: BTreeMap<Bytes32, ChunkRecord>,
    replicas: BTreeMap<Bytes32, BTreeSet<String>>,
    zones: BTreeMap<String, BTreeSet<String>>,
    receipts: BTreeMap<Bytes32, RecordedReceipt>,
}

impl DaState {
    /// The empty state at height 0 (tip hash zeros) of `network`.
    pub fn new(network: NetworkId) -> DaState {
        DaState {
            network,
            height: 0,
            tip_hash: [0; 32],
            last_timestamp_ms: 0,
            events: 0,
            ignored: 0,
            nodes: BTreeMap::new(),
            chunks: BTreeMap::new(),
            replicas: BTreeMap::new(),
            zones: BTreeMap::new(),
            receipts: BTreeMap::new(),
        }
    }

    /// Applies the events of `blob` in order (rules in [`DaState::check_event`]).
    ///
    /// The caller ([`super::DaChain`]) offers the blob that extends the tip; anything else
    /// is refused without changing the state.
    ///
    /// # Errors
    /// - [`ChainError::PrevHashMismatch`] when the blob's height is not `height() + 1`, its
    ///   `prev_hash` is not `tip_hash()`, or it belongs to another network;
    /// - [`ChainError::TimestampRegression`] when its `timestamp_ms` is below
    ///   [`DaState::last_timestamp_ms`].
    pub fn apply_blob(&mut self, blob: &VerifiedBlob) -> Result<ApplySummary, ChainError> {
        let b = blob.blob();
        let height = blob.height();
        if Some(height) != self.height.checked_add(1)
            || blob.prev_hash() != self.tip_hash
            || b.network != self.network.as_str()
        {
            return Err(ChainError::PrevHashMismatch { height });
        }
        if b.timestamp_ms < self.last_timestamp_ms {
            return Err(ChainError::TimestampRegression { height });
        }
        let mut summary = ApplySummary::default();
        for event in &b.events {
            match self.check_event(event) {
                EventOutcome::Applied => {
                    self.mutate(event, height);
                    summary.applied += 1;
                }
                EventOutcome::Ignored(_) => summary.ignored += 1,
            }
        }
        self.height = height;
        self.tip_hash = blob.hash();
        self.last_timestamp_ms = b.timestamp_ms;
        self.events += b.events.len() as u64;
        self.ignored += summary.ignored as u64;
        Ok(summary)
    }

    /// What applying `event` now would do, without applying it (e.g. for a publisher to
    /// drop no-ops). Rules (14A §2, deterministic):
    /// - an event failing [`DaEvent::validate`] → `Ignored("invalid")`;
    /// - `node_registered` inserts or replaces the node (moving it between zones);
    /// - `chunk_declared` of a declared chunk → `Ignored("chunk_already_declared")`;
    /// - `replica_added` needs a declared chunk (`unknown_chunk`) and a registered node
    ///   (`unknown_node`); an existing replica → `Ignored("duplicate_replica")`;
    /// - `replica_removed` of an absent replica → `Ignored("absent_replica")`;
    /// - `delete_requested` needs a declared chunk (`unknown_chunk`) and a valid
    ///   (`verify_strict`) signature of the chunk's owner over [`DaEvent::delete_message`]
    ///   (`bad_owner_signature`); it removes the chunk and its replicas;
    /// - `receipt_recorded` of a receipt id already in `receipt_map` →
    ///   `Ignored("duplicate_receipt")` (the first recording stays); otherwise it inserts a
    ///   [`RecordedReceipt`] at the blob's height. The group signature is not verified (the
    ///   blob's signature is the committee's).
    pub fn check_event(&self, event: &DaEvent) -> EventOutcome {
        if event.validate().is_err() {
            return EventOutcome::Ignored("invalid");
        }
        match event {
            DaEvent::NodeRegistered { .. } => EventOutcome::Applied,
            DaEvent::ChunkDeclared { chunk_id, .. } => {
                if self.chunks.contains_key(chunk_id) {
                    EventOutcome::Ignored("chunk_already_declared")
                } else {
                    EventOutcome::Applied
                }
            }
            DaEvent::ReplicaAdded { chunk_id, node_id } => {
                if !self.chunks.contains_key(chunk_id) {
                    EventOutcome::Ignored("unknown_chunk")
                } else if !self.nodes.contains_key(node_id) {
                    EventOutcome::Ignored("unknown_node")
                } else if self.has_replica(chunk_id, node_id) {
                    EventOutcome::Ignored("duplicate_replica")
                } else {
                    EventOutcome::Applied
                }
            }
            DaEvent::ReplicaRemoved { chunk_id, node_id } => {
                if self.has_replica(chunk_id, node_id) {
                    EventOutcome::Applied
                } else {
                    EventOutcome::Ignored("absent_replica")
                }
            }
            DaEvent::DeleteRequested {
                chunk_id,
                owner_signature,
            } => {
                let Some(chunk) = self.chunks.get(chunk_id) else {
                    return EventOutcome::Ignored("unknown_chunk");
                };
                let message = DaEvent::delete_message(&self.network, chunk_id);
                let signature = Signature::from_bytes(&owner_signature.0);
                let valid = VerifyingKey::from_bytes(&chunk.owner.0)
                    .is_ok_and(|key| key.verify_strict(&message, &signature).is_ok());
                if valid {
                    EventOutcome::Applied
                } else {
                    EventOutcome::Ignored("bad_owner_signature")
                }
            }
            DaEvent::ReceiptRecorded { receipt } => {
                if self.receipts.contains_key(&receipt.receipt_id()) {
                    EventOutcome::Ignored("duplicate_receipt")
                } else if receipt.receipt_hash().is_err() {
                    // Unreachable after `validate` (the receipt encodes within its cap);
                    // checked so `mutate` can rely on it.
                    EventOutcome::Ignored("invalid")
                } else {
                    EventOutcome::Applied
                }
            }
        }
    }

    fn has_replica(&self, chunk_id: &Bytes32, node_id: &str) -> bool {
        self.replicas
            .get(chunk_id)
            .is_some_and(|set| set.contains(node_id))
    }

    /// Applies an event that [`DaState::check_event`] found applicable.
    fn mutate(&mut self, event: &DaEvent, height: u64) {
        match event {
            DaEvent::NodeRegistered {
                node_id,
                zone,
                capacity_bytes,
                class,
            } => {
                let record = NodeRecord {
                    zone: zone.clone(),
                    capacity_bytes: *capacity_bytes,
                    class: class.clone(),
                    registered_at: height,
                };
                if let Some(old) = self.nodes.insert(node_id.clone(), record) {
                    remove_from(&mut self.zones, &old.zone, node_id);
                }
                self.zones
                    .entry(zone.clone())
                    .or_default()
                    .insert(node_id.clone());
            }
            DaEvent::ChunkDeclared {
                chunk_id,
                size_bytes,
                owner,
            } => {
                let record = ChunkRecord {
                    size_bytes: *size_bytes,
                    owner: *owner,
                    declared_at: height,
                };
                self.chunks.insert(*chunk_id, record);
            }
            DaEvent::ReplicaAdded { chunk_id, node_id } => {
                self.replicas
                    .entry(*chunk_id)
                    .or_default()
                    .insert(node_id.clone());
            }
            DaEvent::ReplicaRemoved { chunk_id, node_id } => {
                remove_from(&mut self.replicas, chunk_id, node_id);
            }
            DaEvent::DeleteRequested { chunk_id, .. } => {
                self.chunks.remove(chunk_id);
                self.replicas.remove(chunk_id);
            }
            DaEvent::ReceiptRecorded { receipt } => {
                // `check_event` found the hash computable; it is a pure function of the
                // receipt, so this never skips.
                if let Ok(receipt_hash) = receipt.receipt_hash() {
                    let record = RecordedReceipt {
                        receipt_hash,
                        workload_id: receipt.receipt.workload_id,
                        node_key: receipt.receipt.node_key,
                        height,
                    };
                    self.receipts.insert(receipt.receipt_id(), record);
                }
            }
        }
    }

    /// The network this state belongs to.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// Height of the last applied blob (0 before genesis).
    pub fn height(&self) -> u64 {
        self.height
    }

    /// Hash of the last applied blob ([`VerifiedBlob::hash`]; zeros at height 0).
    pub fn tip_hash(&self) -> [u8; 32] {
        self.tip_hash
    }

    /// `timestamp_ms` of the last applied blob, UNIX milliseconds (0 at height 0).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.last_timestamp_ms
    }

    /// Events in all applied blobs (applied and ignored).
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Events of applied blobs that were ignored ([`EventOutcome::Ignored`]).
    pub fn ignored_events(&self) -> u64 {
        self.ignored
    }

    /// `node_registry`: node id → record.
    pub fn nodes(&self) -> &BTreeMap<String, NodeRecord> {
        &self.nodes
    }

    /// `chunk_map`: chunk id → record.
    pub fn chunks(&self) -> &BTreeMap<Bytes32, ChunkRecord> {
        &self.chunks
    }

    /// `replica_map`: chunk id → ids of the nodes holding a replica (never an empty set).
    pub fn replicas(&self) -> &BTreeMap<Bytes32, BTreeSet<String>> {
        &self.replicas
    }

    /// `zone_map`: zone → ids of the registered nodes in it (never an empty set).
    pub fn zones(&self) -> &BTreeMap<String, BTreeSet<String>> {
        &self.zones
    }

    /// `receipt_map`: receipt id → record.
    pub fn receipts(&self) -> &BTreeMap<Bytes32, RecordedReceipt> {
        &self.receipts
    }

    /// The recorded receipt with id `receipt_id`, if a `receipt_recorded` event recorded it.
    pub fn receipt(&self, receipt_id: &Bytes32) -> Option<&RecordedReceipt> {
        self.receipts.get(receipt_id)
    }

    /// SHA-256 over a canonical serialisation of the five maps only (not height, tip,
    /// counters). Every integer is u64 big-endian, every text or byte string is its u64
    /// length then its bytes, and each map is its entry count then its entries in key
    /// order:
    /// `str("dsdn/da-state/v2")`,
    /// `node_registry: n, (str node_id, str zone, capacity_bytes, str class, registered_at)*`,
    /// `chunk_map: n, (bytes chunk_id, size_bytes, bytes owner, declared_at)*`,
    /// `replica_map: n, (bytes chunk_id, m, (str node_id)*)*`,
    /// `zone_map: n, (str zone, m, (str node_id)*)*`,
    /// `receipt_map: n, (bytes receipt_id, bytes receipt_hash, bytes workload_id,
    /// bytes node_key, height)*`.
    /// Streamed into the hasher: no allocation proportional to the state.
    pub fn state_root(&self) -> [u8; 32] {
        let mut h = RootHasher(Sha256::new());
        h.bytes(ROOT_DOMAIN.as_bytes());
        h.int(self.nodes.len() as u64);
        for (id, n) in &self.nodes {
            h.bytes(id.as_bytes());
            h.bytes(n.zone.as_bytes());
            h.int(n.capacity_bytes);
            h.bytes(n.class.as_bytes());
            h.int(n.registered_at);
        }
        h.int(self.chunks.len() as u64);
        for (id, c) in &self.chunks {
            h.bytes(&id.0);
            h.int(c.size_bytes);
            h.bytes(&c.owner.0);
            h.int(c.declared_at);
        }
        h.int(self.replicas.len() as u64);
        for (id, set) in &self.replicas {
            h.bytes(&id.0);
            h.set(set);
        }
        h.int(self.zones.len() as u64);
        for (zone, set) in &self.zones {
            h.bytes(zone.as_bytes());
            h.set(set);
        }
        h.int(self.receipts.len() as u64);
        for (id, r) in &self.receipts {
            h.bytes(&id.0);
            h.bytes(&r.receipt_hash.0);
            h.bytes(&r.workload_id.0);
            h.bytes(&r.node_key.0);
            h.int(r.height);
        }
        h.0.finalize().into()
    }
}

/// Removes `node` from the set under `key`, and the set when it becomes empty.
fn remove_from<K, Q>(map: &mut BTreeMap<Q, BTreeSet<String>>, key: &K, node: &str)
where
    K: Ord + ?Sized,
    Q: Ord + std::borrow::Borrow<K>,
{
    if let Some(set) = map.get_mut(key) {
        set.remove(node);
        if set.is_empty() {
            map.remove(key);
        }
    }
}

struct RootHasher(Sha256);

impl RootHasher {
    fn int(&mut self, v: u64) {
        self.0.update(v.to_be_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.int(b.len() as u64);
        self.0.update(b);
    }
    fn set(&mut self, set: &BTreeSet<String>) {
        self.int(set.len() as u64);
        for s in set {
            self.bytes(s.as_bytes());
        }
    }
}
