//! The state rebuilt from the DA log (14A §2): `node_registry`, `chunk_map`, `replica_map`
//! and `zone_map`, plus `receipt_map` (the committee-signed receipts recorded in the log,
//! 14C), kept in a [`StateStore`] as the keys of an authenticated tree (issue 16).
//!
//! The state is only ever derived: apply the log's blobs in order from genesis and every
//! node holds the same maps and the same [`DaState::state_root`], the root of a Jellyfish
//! Merkle tree over the keys of [`keys`] at version = height. Applying a blob reads the
//! keys its events touch and writes the changed ones: O(changes · log n), nothing
//! proportional to the state.

use std::collections::{BTreeMap, BTreeSet};

use ed25519_dalek::{Signature, VerifyingKey};
use serde::{Deserialize, Serialize};

use super::{Bytes32, ChainError, DaEvent, VerifiedBlob};
use crate::NetworkId;

mod blob_tx;
mod committee;
pub use committee::MAX_COORDINATORS;
pub mod keys;
pub mod store;

use blob_tx::BlobTx;
pub use keys::{StateKey, StateValue, MAX_VALUE_BYTES};
pub use store::{
    empty_root, MemStore, StateCommit, StateError, StateHeader, StateProof, StateStore,
    MAX_PROOF_BYTES,
};

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
    /// `absent_replica`, `bad_owner_signature`, `duplicate_receipt`, `duplicate_coordinator`
    /// and the rotation labels of [`DaState::check_event`].
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

/// Checks that `blob` commits to the state `header` describes: a blob of version 2 must
/// carry `header.root` (the root after blob `height - 1`) as its `prev_state_root`. A
/// version-1 blob commits to no root and passes (logs written before issue 16 §3).
///
/// # Errors
/// [`ChainError::StateRootMismatch`] with both roots.
pub fn check_prev_state_root(header: &StateHeader, blob: &VerifiedBlob) -> Result<(), ChainError> {
    match blob.prev_state_root() {
        Some(found) if found != header.root.0 => Err(ChainError::StateRootMismatch {
            height: blob.height(),
            expected: header.root.0,
            found,
        }),
        _ => Ok(()),
    }
}

/// The DA state of one network (14A §2), rebuilt by applying blobs in order: the header
/// (height, tip, counters, root) in memory and the maps in a [`StateStore`].
#[derive(Debug)]
pub struct DaState {
    network: NetworkId,
    header: StateHeader,
    store: Box<dyn StateStore>,
}

/// Two states are equal when they are of the same network and have the same header: the
/// header's root authenticates every key of the maps.
impl PartialEq for DaState {
    fn eq(&self, other: &DaState) -> bool {
        self.network == other.network && self.header == other.header
    }
}

impl Eq for DaState {}

impl DaState {
    /// The empty state at height 0 (tip hash zeros) of `network`, in a [`MemStore`].
    pub fn new(network: NetworkId) -> DaState {
        DaState::with_store(network, Box::new(MemStore::new()))
    }

    /// The state held by `store` (at the store's height, e.g. a node's redb state).
    pub fn with_store(network: NetworkId, store: Box<dyn StateStore>) -> DaState {
        DaState {
            network,
            header: store.header(),
            store,
        }
    }

    /// The store (proofs read the tree through it).
    pub fn store(&self) -> &dyn StateStore {
        &*self.store
    }

    /// Gives the store back (e.g. to rebuild a node's state from its disk).
    pub fn into_store(self) -> Box<dyn StateStore> {
        self.store
    }

    /// Applies the events of `blob` in order (rules in [`DaState::check_event`]), then
    /// records the changed keys and the tree's new version `height` in the store. All or
    /// nothing: on an error the state is unchanged.
    ///
    /// The caller ([`super::DaChain`]) offers the blob that extends the tip; anything else
    /// is refused without changing the state.
    ///
    /// # Errors
    /// - [`ChainError::PrevHashMismatch`] when the blob's height is not `height() + 1`, its
    ///   `prev_hash` is not `tip_hash()`, or it belongs to another network;
    /// - [`ChainError::TimestampRegression`] when its `timestamp_ms` is below
    ///   [`DaState::last_timestamp_ms`];
    /// - [`ChainError::WrongEpochKey`] when a recorded epoch is in force at its height
    ///   ([`super::epochs`]) and the blob was not verified against that epoch's group key
    ///   (before the first rotation takes effect the caller's genesis authority is the key);
    /// - [`ChainError::StateRootMismatch`] as [`check_prev_state_root`];
    /// - [`ChainError::Storage`] when the store cannot be read or written.
    pub fn apply_blob(&mut self, blob: &VerifiedBlob) -> Result<ApplySummary, ChainError> {
        let b = blob.blob();
        let height = blob.height();
        if Some(height) != self.header.height.checked_add(1)
            || blob.prev_hash() != self.header.tip_hash.0
            || b.network != self.network.as_str()
        {
            return Err(ChainError::PrevHashMismatch { height });
        }
        if b.timestamp_ms < self.header.last_timestamp_ms {
            return Err(ChainError::TimestampRegression { height });
        }
        check_prev_state_root(&self.header, blob)?;
        let storage = |e: StateError| ChainError::Storage(e.to_string());
        let mut tx = self.tx();
        if let Some(epoch) = tx.epoch_at(height).map_err(storage)? {
            if epoch.group_key.0 != blob.signer() {
                return Err(ChainError::WrongEpochKey {
                    height,
                    epoch: epoch.epoch,
                });
            }
        }
        let mut summary = ApplySummary::default();
        for event in &b.events {
            match tx.check(event).map_err(storage)? {
                EventOutcome::Applied => {
                    tx.mutate(event, height).map_err(storage)?;
                    summary.applied += 1;
                }
                EventOutcome::Ignored(_) => summary.ignored += 1,
            }
        }
        // Keys written back to what they were are no change of the tree.
        let changes: Vec<(StateKey, Option<Vec<u8>>)> = tx
            .writes
            .into_iter()
            .filter(|(k, v)| tx.before.get(k) != Some(v))
            .collect();
        let mut header = tx.header;
        let (root, tree) = store::tree_update(&*self.store, &changes, height).map_err(storage)?;
        header.height = height;
        header.tip_hash = Bytes32(blob.hash());
        header.last_timestamp_ms = b.timestamp_ms;
        header.events += b.events.len() as u64;
        header.ignored += summary.ignored as u64;
        header.root = Bytes32(root);
        self.store
            .commit(StateCommit {
                header,
                changes,
                tree,
            })
            .map_err(storage)?;
        self.header = header;
        Ok(summary)
    }

    /// The next blob of this state signed by `key`: height `height() + 1`, `prev_hash` the
    /// tip's hash, `prev_state_root` the current root — what an authority seals (tools,
    /// generators and tests; the daemon's sealers fill the same fields from their chain).
    ///
    /// # Errors
    /// As [`super::DaBlob::sign`].
    pub fn seal_next(
        &self,
        key: &ed25519_dalek::SigningKey,
        timestamp_ms: u64,
        events: Vec<DaEvent>,
    ) -> Result<super::DaBlob, super::DaError> {
        super::DaBlob::sign(
            key,
            &self.network,
            self.header.height.saturating_add(1),
            self.header.tip_hash.0,
            self.header.root.0,
            timestamp_ms,
            events,
        )
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
    ///   blob's signature is the committee's);
    /// - `committee_rotated` is admitted by [`super::epochs::admit_rotation`] (labels
    ///   `rotation_pending`, `epoch_out_of_order`, `bad_effective_height`, `bad_key_proof`)
    ///   at height `height() + 1`; it writes `committee:<epoch>` and `committee:latest`;
    /// - `coordinator_registered` of a registered coordinator →
    ///   `Ignored("duplicate_coordinator")` (the first registration height stays, so the
    ///   registry as of a height never changes later); otherwise it writes
    ///   `coordinator:<node_id>` = the blob's height.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn check_event(&self, event: &DaEvent) -> Result<EventOutcome, StateError> {
        self.tx().check(event)
    }

    fn tx(&self) -> BlobTx<'_> {
        BlobTx {
            state: self,
            network: &self.network,
            writes: BTreeMap::new(),
            before: BTreeMap::new(),
            header: self.header,
            height: self.header.height.saturating_add(1),
        }
    }

    /// The network this state belongs to.
    pub fn network(&self) -> &NetworkId {
        &self.network
    }

    /// The header: height, tip, counters and root.
    pub fn header(&self) -> &StateHeader {
        &self.header
    }

    /// Height of the last applied blob (0 before genesis).
    pub fn height(&self) -> u64 {
        self.header.height
    }

    /// Hash of the last applied blob ([`VerifiedBlob::hash`]; zeros at height 0).
    pub fn tip_hash(&self) -> [u8; 32] {
        self.header.tip_hash.0
    }

    /// `timestamp_ms` of the last applied blob, UNIX milliseconds (0 at height 0).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.header.last_timestamp_ms
    }

    /// Events in all applied blobs (applied and ignored).
    pub fn events(&self) -> u64 {
        self.header.events
    }

    /// Events of applied blobs that were ignored ([`EventOutcome::Ignored`]).
    pub fn ignored_events(&self) -> u64 {
        self.header.ignored
    }

    /// The decoded value of `key` (`None`: absent).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError> {
        self.tx().get(key)
    }

    /// The `node_registry` record of `node_id`.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn node(&self, node_id: &str) -> Result<Option<NodeRecord>, StateError> {
        self.tx().node(node_id)
    }

    /// The `chunk_map` record of `chunk_id`.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn chunk(&self, chunk_id: &Bytes32) -> Result<Option<ChunkRecord>, StateError> {
        self.tx().chunk(chunk_id)
    }

    /// The `replica_map` entry of `chunk_id`: the nodes holding a replica (empty: none).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn replicas(&self, chunk_id: &Bytes32) -> Result<BTreeSet<String>, StateError> {
        self.tx().replicas(chunk_id)
    }

    /// The `zone_map` entry of `zone`: how many registered nodes it has (0: none).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn zone_size(&self, zone: &str) -> Result<u64, StateError> {
        self.tx().zone_size(zone)
    }

    /// The recorded receipt with id `receipt_id`, if a `receipt_recorded` event recorded it.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn receipt(&self, receipt_id: &Bytes32) -> Result<Option<RecordedReceipt>, StateError> {
        Ok(match self.get(&StateKey::Receipt(*receipt_id))? {
            Some(StateValue::Receipt(r)) => Some(r),
            _ => None,
        })
    }

    /// Up to `limit` ids of recorded receipts in `lo..=hi`, ascending (receipt lookup by id
    /// prefix).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn receipt_ids(
        &self,
        lo: Bytes32,
        hi: Bytes32,
        limit: usize,
    ) -> Result<Vec<Bytes32>, StateError> {
        let keys = self
            .store
            .keys_in(&StateKey::Receipt(lo), &StateKey::Receipt(hi), limit)?;
        Ok(keys
            .into_iter()
            .filter_map(|k| match k {
                StateKey::Receipt(id) => Some(id),
                _ => None,
            })
            .collect())
    }

    /// The state root: the root of the authenticated tree (issue 16 §2) over the keys of
    /// [`keys`] at this height; [`empty_root`] at height 0. Read from the header (no
    /// computation).
    pub fn state_root(&self) -> [u8; 32] {
        self.header.root.0
    }

    /// The proof of `key` at the current height against [`DaState::state_root`].
    ///
    /// # Errors
    /// [`StateError`] when the tree cannot be read.
    pub fn prove(&self, key: &StateKey) -> Result<StateProof, StateError> {
        StateProof::build(&*self.store, key, self.header.height, self.header.root.0)
    }
}
