//! Where a [`super::DaState`] keeps its maps and its authenticated tree (issue 16 §1-2):
//! the [`StateStore`] trait, the in-memory [`MemStore`] (light client, tests, tools), the
//! tree update of one blob ([`tree_update`]) and proofs ([`StateProof`]).
//!
//! The tree is a Jellyfish Merkle tree (crate `jmt`, SHA-256) whose version is the DA
//! height: version 0 is the empty state, version `h` the state after blob `h`. Its root is
//! the state root. A full node's store is redb (`dsdn_p2p::da::store`); this crate only
//! defines what a store must answer.

use std::collections::BTreeMap;
use std::fmt;

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader, TreeUpdateBatch};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, RootHash, Version};
use serde::{Deserialize, Serialize};

use super::keys::{StateKey, StateValue};
use crate::codec;
use crate::da::{Bytes32, DaError};

type Sha = sha2_010::Sha256;

/// Errors of a [`StateStore`] (I/O of a disk store, or a missing tree version).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StateError {
    /// The store could not answer (disk read failed, data undecodable, tree node missing).
    #[error("DA state store: {0}")]
    Store(String),
    /// The tree version of this height is not kept any more (see the store's history
    /// bound) or is above the store's height.
    #[error("DA state at height {height} is not available (kept: {oldest}..={newest})")]
    HeightUnavailable {
        /// The height asked for.
        height: u64,
        /// The oldest height whose tree is kept.
        oldest: u64,
        /// The newest height.
        newest: u64,
    },
}

impl StateError {
    /// A [`StateError::Store`] with `e`'s message.
    pub fn store(e: impl fmt::Display) -> StateError {
        StateError::Store(e.to_string())
    }
}

/// The scalar part of a state at one height: what `da state` answers without reading a
/// map. Stored with the maps (CBOR array of these fields in this order).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateHeader {
    /// Height of the last applied blob (0: empty).
    pub height: u64,
    /// Its hash (zeros at height 0).
    pub tip_hash: Bytes32,
    /// Its `timestamp_ms` (0 at height 0).
    pub last_timestamp_ms: u64,
    /// Events in all applied blobs.
    pub events: u64,
    /// Of which ignored.
    pub ignored: u64,
    /// Entries of `node_registry`.
    pub nodes: u64,
    /// Entries of `chunk_map`.
    pub chunks: u64,
    /// Replicas over all chunks.
    pub replicas: u64,
    /// Entries of `zone_map`.
    pub zones: u64,
    /// Entries of `receipt_map`.
    pub receipts: u64,
    /// The tree's root at `height` (the state root).
    pub root: Bytes32,
}

impl StateHeader {
    /// The header of the empty state (height 0, root of the empty tree).
    pub fn genesis() -> StateHeader {
        StateHeader {
            height: 0,
            tip_hash: Bytes32([0; 32]),
            last_timestamp_ms: 0,
            events: 0,
            ignored: 0,
            nodes: 0,
            chunks: 0,
            replicas: 0,
            zones: 0,
            receipts: 0,
            root: Bytes32(empty_root()),
        }
    }

    /// CBOR encoding.
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self, 1024).unwrap_or_default()
    }

    /// Decodes [`StateHeader::encode`] bytes.
    ///
    /// # Errors
    /// [`DaError::Malformed`] for other bytes.
    pub fn decode(bytes: &[u8]) -> Result<StateHeader, DaError> {
        codec::decode(bytes, 1024).map_err(|e| DaError::Malformed(format!("state header: {e}")))
    }
}

/// The root of the empty tree (jmt's placeholder hash, the bytes
/// `SPARSE_MERKLE_PLACEHOLDER_HASH__`): the state root at height 0.
pub fn empty_root() -> [u8; 32] {
    *b"SPARSE_MERKLE_PLACEHOLDER_HASH__"
}

/// One applied blob's change to a store: the new header, the changed keys (raw key, new
/// value or `None` for a removal) and the tree's new nodes and stale nodes.
#[derive(Debug, Clone)]
pub struct StateCommit {
    /// The header after the blob (its `root` is the tree's new root).
    pub header: StateHeader,
    /// Changed keys in ascending raw-key order: `(key, value)`, `None` = removed.
    pub changes: Vec<(StateKey, Option<Vec<u8>>)>,
    /// The tree's update at version `header.height`.
    pub tree: TreeUpdateBatch,
}

/// What a [`super::DaState`] reads and writes. Reads see every commit made so far (a disk
/// store keeps commits not yet durable in memory until its writer has them on disk).
pub trait StateStore: Send + Sync + fmt::Debug {
    /// The header of the latest commit ([`StateHeader::genesis`] for an empty store).
    fn header(&self) -> StateHeader;
    /// The latest value of `key`.
    ///
    /// # Errors
    /// [`StateError::Store`] when the store cannot be read.
    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError>;
    /// A tree node (jmt `TreeReader::get_node_option`).
    ///
    /// # Errors
    /// [`StateError::Store`] when the store cannot be read.
    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError>;
    /// The value of `key_hash` at the newest version ≤ `max_version` (jmt
    /// `TreeReader::get_value_option`); `None` when absent or removed.
    ///
    /// # Errors
    /// [`StateError::Store`] when the store cannot be read.
    fn value_at(&self, max_version: u64, key_hash: KeyHash) -> Result<Option<Vec<u8>>, StateError>;
    /// Up to `limit` present keys in `from..=to` (the order of [`StateKey`]: by type, then
    /// id bytes), ascending.
    ///
    /// # Errors
    /// [`StateError::Store`] when the store cannot be read.
    fn keys_in(
        &self,
        from: &StateKey,
        to: &StateKey,
        limit: usize,
    ) -> Result<Vec<StateKey>, StateError>;
    /// Records `commit` (its height is `header().height + 1`).
    ///
    /// # Errors
    /// [`StateError::Store`] when it cannot be recorded; the store is then unchanged.
    fn commit(&mut self, commit: StateCommit) -> Result<(), StateError>;
}

/// Adapts a [`StateStore`] to jmt's `TreeReader`.
pub(crate) struct Reader<'a>(pub(crate) &'a dyn StateStore);

impl TreeReader for Reader<'_> {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.0.node(node_key)?)
    }

    fn get_value_option(
        &self,
        max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        Ok(self.0.value_at(max_version, key_hash)?)
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        // Only jmt's restore and migration paths ask; neither is used.
        Err(anyhow::anyhow!("get_rightmost_leaf is not supported"))
    }
}

/// Computes the tree update of `changes` at `version` over `store`: the new root and the
/// nodes to write. O(changes · log n) node reads.
///
/// # Errors
/// [`StateError::Store`] when a read fails or the tree is inconsistent.
pub fn tree_update(
    store: &dyn StateStore,
    changes: &[(StateKey, Option<Vec<u8>>)],
    version: u64,
) -> Result<([u8; 32], TreeUpdateBatch), StateError> {
    let reader = Reader(store);
    let tree = JellyfishMerkleTree::<_, Sha>::new(&reader);
    let set = changes.iter().map(|(k, v)| (k.key_hash(), v.clone()));
    let (root, batch) = tree
        .put_value_set(set, version)
        .map_err(StateError::store)?;
    Ok((root.0, batch))
}

/// The tree update that creates version 0 (the empty tree) in an empty store.
pub fn genesis_tree() -> TreeUpdateBatch {
    empty_tree(0)
}

/// The tree update that creates an empty tree at `version` in an empty store (its only
/// node is the null root).
pub fn empty_tree(version: u64) -> TreeUpdateBatch {
    struct Empty;
    impl TreeReader for Empty {
        fn get_node_option(&self, _: &NodeKey) -> anyhow::Result<Option<Node>> {
            Ok(None)
        }
        fn get_value_option(&self, _: Version, _: KeyHash) -> anyhow::Result<Option<OwnedValue>> {
            Ok(None)
        }
        fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
            Ok(None)
        }
    }
    let tree = JellyfishMerkleTree::<_, Sha>::new(&Empty);
    let empty: Vec<(KeyHash, Option<OwnedValue>)> = Vec::new();
    tree.put_value_set(empty, version)
        .map(|(_, batch)| batch)
        .unwrap_or_default()
}

/// A value (or its absence) at one height with its proof against that height's root.
///
/// CBOR form: `[key: text, height: u64, root: bytes32, value: bytes / null, proof: jmt
/// SparseMerkleProof (serde form)]`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateProof {
    /// The key in text form ([`StateKey::parse`]).
    pub key: String,
    /// The height of the state proved against.
    pub height: u64,
    /// The state root at that height (as recorded by the serving node).
    pub root: Bytes32,
    /// The encoded value, or `None` when the key is absent.
    pub value: Option<serde_bytes::ByteBuf>,
    /// The inclusion (value present) or exclusion (absent) proof.
    pub proof: jmt::proof::SparseMerkleProof<Sha>,
}

/// Largest encoded [`StateProof`], in bytes (a proof holds at most 256 sibling hashes plus
/// one value of at most [`super::keys::MAX_VALUE_BYTES`]).
pub const MAX_PROOF_BYTES: usize = super::keys::MAX_VALUE_BYTES + 64 * 1024;

impl StateProof {
    /// Builds the proof of `key` at `height` from `store` (whose tree keeps that version).
    ///
    /// # Errors
    /// [`StateError::Store`] when the tree cannot be read at that version.
    pub fn build(
        store: &dyn StateStore,
        key: &StateKey,
        height: u64,
        root: [u8; 32],
    ) -> Result<StateProof, StateError> {
        let reader = Reader(store);
        let tree = JellyfishMerkleTree::<_, Sha>::new(&reader);
        let (value, proof) = tree
            .get_with_proof(key.key_hash(), height)
            .map_err(StateError::store)?;
        Ok(StateProof {
            key: key.to_string(),
            height,
            root: Bytes32(root),
            value: value.map(serde_bytes::ByteBuf::from),
            proof,
        })
    }

    /// Verifies the proof against `root` (the caller's trusted root at [`Self::height`]):
    /// the value is what the tree holds under the key, or the key is absent. Returns the
    /// parsed key and the decoded value.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when the key does not parse, the value does not decode, or
    /// the proof does not verify against `root`.
    pub fn verify(&self, root: [u8; 32]) -> Result<(StateKey, Option<StateValue>), DaError> {
        let key = StateKey::parse(&self.key)?;
        self.proof
            .verify(
                RootHash(root),
                key.key_hash(),
                self.value.as_ref().map(|v| v.as_slice()),
            )
            .map_err(|e| DaError::Malformed(format!("state proof does not verify: {e}")))?;
        let value = match &self.value {
            Some(bytes) => Some(StateValue::decode(&key, bytes)?),
            None => None,
        };
        Ok((key, value))
    }

    /// CBOR encoding (at most [`MAX_PROOF_BYTES`]).
    ///
    /// # Errors
    /// [`DaError::Malformed`] when it would exceed the cap.
    pub fn encode(&self) -> Result<Vec<u8>, DaError> {
        codec::encode(self, MAX_PROOF_BYTES).map_err(|e| DaError::Malformed(format!("proof: {e}")))
    }

    /// Decodes [`StateProof::encode`] bytes.
    ///
    /// # Errors
    /// [`DaError::Malformed`] for other or oversized bytes.
    pub fn decode(bytes: &[u8]) -> Result<StateProof, DaError> {
        codec::decode(bytes, MAX_PROOF_BYTES).map_err(|e| DaError::Malformed(format!("proof: {e}")))
    }
}

/// An in-memory [`StateStore`]: the latest values and the latest tree only (stale nodes and
/// superseded values are dropped at each commit), so its size follows the state, not the
/// log. Proofs are available at its latest height only. Used by the light client (no data
/// directory), tests and tools.
#[derive(Debug, Clone)]
pub struct MemStore {
    header: StateHeader,
    values: BTreeMap<StateKey, Vec<u8>>,
    nodes: BTreeMap<NodeKey, Node>,
    /// key hash → (version, value) of the latest write.
    versioned: BTreeMap<KeyHash, (u64, Option<Vec<u8>>)>,
    /// The key of the latest root node.
    root_key: Option<NodeKey>,
}

/// The root node's key in a tree update (the node with the empty nibble path).
fn root_key(tree: &TreeUpdateBatch) -> Option<NodeKey> {
    tree.node_batch
        .nodes()
        .keys()
        .find(|k| k.nibble_path().num_nibbles() == 0)
        .cloned()
}

impl Default for MemStore {
    fn default() -> Self {
        MemStore::new()
    }
}

impl MemStore {
    /// The empty store (height 0).
    pub fn new() -> MemStore {
        let genesis = genesis_tree();
        let mut nodes = BTreeMap::new();
        nodes.extend(
            genesis
                .node_batch
                .nodes()
                .iter()
                .map(|(k, n)| (k.clone(), n.clone())),
        );
        MemStore {
            header: StateHeader::genesis(),
            values: BTreeMap::new(),
            nodes,
            versioned: BTreeMap::new(),
            root_key: root_key(&genesis),
        }
    }

    /// The store of a state restored at `header.height` by a state sync
    /// ([`crate::da::state_sync::StateRestore`]): its verified tree `nodes` (all at that
    /// version) and `entries`. Blobs above that height apply to it as to any store.
    pub fn restored(
        header: StateHeader,
        nodes: impl IntoIterator<Item = (NodeKey, Node)>,
        entries: impl IntoIterator<Item = (StateKey, Vec<u8>)>,
    ) -> MemStore {
        let mut values = BTreeMap::new();
        let mut versioned = BTreeMap::new();
        for (key, value) in entries {
            versioned.insert(key.key_hash(), (header.height, Some(value.clone())));
            values.insert(key, value);
        }
        let nodes: BTreeMap<NodeKey, Node> = nodes.into_iter().collect();
        let root_key = nodes
            .keys()
            .find(|k| k.version() == header.height && k.nibble_path().num_nibbles() == 0)
            .cloned();
        MemStore {
            header,
            values,
            nodes,
            versioned,
            root_key,
        }
    }

    /// Every `(key, encoded value)` held, in key order (tests compare stores with it).
    pub fn entries(&self) -> impl Iterator<Item = (&StateKey, &Vec<u8>)> {
        self.values.iter()
    }
}

impl StateStore for MemStore {
    fn header(&self) -> StateHeader {
        self.header
    }

    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError> {
        Ok(self.values.get(key).cloned())
    }

    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        Ok(self.nodes.get(key).cloned())
    }

    fn value_at(&self, max_version: u64, key_hash: KeyHash) -> Result<Option<Vec<u8>>, StateError> {
        Ok(match self.versioned.get(&key_hash) {
            Some((v, value)) if *v <= max_version => value.clone(),
            _ => None,
        })
    }

    fn keys_in(
        &self,
        from: &StateKey,
        to: &StateKey,
        limit: usize,
    ) -> Result<Vec<StateKey>, StateError> {
        if from > to {
            return Ok(Vec::new());
        }
        Ok(self
            .values
            .range(from.clone()..=to.clone())
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect())
    }

    fn commit(&mut self, commit: StateCommit) -> Result<(), StateError> {
        let version = commit.header.height;
        if commit.changes.is_empty() {
            // jmt copied the previous root to this version without marking it stale.
            if let Some(old_root) = &self.root_key {
                self.nodes.remove(old_root);
            }
        }
        for (key, value) in commit.changes {
            self.versioned
                .insert(key.key_hash(), (version, value.clone()));
            match value {
                Some(v) => self.values.insert(key, v),
                None => self.values.remove(&key),
            };
        }
        self.versioned.retain(|_, (_, v)| v.is_some());
        for stale in &commit.tree.stale_node_index_batch {
            self.nodes.remove(&stale.node_key);
        }
        self.nodes.extend(
            commit
                .tree
                .node_batch
                .nodes()
                .iter()
                .map(|(k, n)| (k.clone(), n.clone())),
        );
        self.root_key = root_key(&commit.tree);
        self.header = commit.header;
        Ok(())
    }
}

/// Decodes the value under `key` from a store read.
pub(crate) fn decode_opt(
    key: &StateKey,
    bytes: Option<Vec<u8>>,
) -> Result<Option<StateValue>, StateError> {
    bytes
        .map(|b| StateValue::decode(key, &b).map_err(StateError::store))
        .transpose()
}
