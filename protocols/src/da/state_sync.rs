//! State sync between full nodes: protocol `/dsdn/<network>/da-state/1.0.0` (issue 16 §5).
//!
//! A new full node can restore the DA state at a checkpoint height `H` (whose root it
//! trusts: blob `H + 1`, signed by the key in force, commits to it in `prev_state_root`)
//! instead of replaying the log from height 1, then follow blobs `H + 1, …` as usual.
//!
//! The state is fetched in chunks: a [`StateChunkRequest`] asks for the entries of the tree
//! at `H` whose key hash follows `after` (all entries from the smallest when `after` is
//! `None`), in key-hash order; the answer [`StateChunkResponse::Chunk`] carries at most
//! [`MAX_CHUNK_ENTRIES`] `(raw key, value)` pairs (the raw key is the preimage of the
//! tree's key hash: the node's values table is keyed by it) and a jmt range proof of the
//! chunk's last key against the root at `H`. The asker verifies every chunk with a
//! [`StateRestore`] (jmt's `JellyfishMerkleRestore`, which rebuilds the tree's nodes from
//! the leaves received so far and checks the proof against the expected root) before
//! writing anything; after the last chunk the rebuilt tree's root must equal the expected
//! root, so a responder can neither change, add, skip nor hold back an entry. The
//! responder is not trusted.
//!
//! CBOR through [`crate::codec`] with the caps below (checked before decoding).

use std::sync::{Arc, Mutex, PoisonError};

use jmt::restore::{JellyfishMerkleRestore, StateSnapshotReceiver};
use jmt::storage::{Node, NodeBatch, NodeKey, TreeWriter};
use jmt::{JellyfishMerkleIterator, JellyfishMerkleTree, KeyHash, RootHash};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::state::store::{empty_tree, Reader};
use super::state::{empty_root, StateError, StateHeader, StateKey, StateStore, StateValue};
use super::{Bytes32, DaError};
use crate::codec;

type Sha = sha2_010::Sha256;

/// Most entries in one chunk (a responder may send fewer; an asker's `max_entries` above
/// it is lowered to it).
pub const MAX_CHUNK_ENTRIES: u32 = 4096;

/// Soft cap on the keys and values of one chunk, in bytes: a responder stops adding
/// entries before exceeding it, but always sends at least one (a value may be up to
/// [`super::state::MAX_VALUE_BYTES`]).
pub const CHUNK_SOFT_BYTES: usize = 1 << 20;

/// Largest encoded [`StateChunkRequest`], in bytes.
pub const MAX_STATE_REQUEST_BYTES: usize = 256;

/// Largest encoded [`StateChunkResponse`], in bytes: one entry over the soft cap (a key of
/// at most a few hundred bytes and a value of at most `MAX_VALUE_BYTES`), plus CBOR
/// framing of [`MAX_CHUNK_ENTRIES`] entries and a proof of at most 256 siblings.
pub const MAX_STATE_RESPONSE_BYTES: usize =
    CHUNK_SOFT_BYTES + super::state::MAX_VALUE_BYTES + 256 * 1024;

/// A request for one chunk of the state at `height`. CBOR map `{height: u64, after:
/// bytes32 / null, max_entries: u32}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateChunkRequest {
    /// The checkpoint height (the tree version).
    pub height: u64,
    /// The key hash of the last entry already received; `None` for the first chunk.
    pub after: Option<Bytes32>,
    /// Most entries wanted (1..=[`MAX_CHUNK_ENTRIES`]; 0 is treated as 1).
    pub max_entries: u32,
}

impl StateChunkRequest {
    /// CBOR encoding (at most [`MAX_STATE_REQUEST_BYTES`]).
    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self, MAX_STATE_REQUEST_BYTES).unwrap_or_default()
    }

    /// Decodes [`StateChunkRequest::encode`] bytes.
    ///
    /// # Errors
    /// [`DaError::Malformed`] for other or oversized bytes.
    pub fn decode(bytes: &[u8]) -> Result<StateChunkRequest, DaError> {
        codec::decode(bytes, MAX_STATE_REQUEST_BYTES)
            .map_err(|e| DaError::Malformed(format!("state chunk request: {e}")))
    }
}

/// One entry of a chunk: the raw key ([`StateKey::to_bytes`]) and its encoded value.
/// CBOR array `[key: bytes, value: bytes]`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChunkEntry {
    /// The raw key (the preimage of the tree's key hash).
    pub key: ByteBuf,
    /// The encoded value ([`StateValue::encode`]).
    pub value: ByteBuf,
}

/// Entries of the tree at `height` in key-hash order with a range proof of the last one.
/// CBOR map `{height, root, entries: [ChunkEntry…], proof: jmt SparseMerkleRangeProof
/// (serde form) / null, last: bool, header: StateHeader}`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct StateChunk {
    /// The tree version (the checkpoint height).
    pub height: u64,
    /// The responder's root at `height` (the asker checks it against its trusted root).
    pub root: Bytes32,
    /// The entries after the request's `after`, ascending by key hash.
    pub entries: Vec<ChunkEntry>,
    /// The range proof of the last entry; `None` only when `entries` is empty (the tree
    /// is empty, or nothing follows `after`).
    pub proof: Option<jmt::proof::SparseMerkleRangeProof<Sha>>,
    /// True when no entry follows the last one (the asker checks it: the rebuilt root).
    pub last: bool,
    /// The responder's header at `height`. Only its `events`, `ignored` and
    /// `last_timestamp_ms` are used by the asker, as information: they are not in the
    /// tree, so not proved (the map counts are recounted from the entries; the root, the
    /// height and the tip hash come from the trusted checkpoint).
    pub header: StateHeader,
}

/// The answer to a [`StateChunkRequest`]. CBOR: an externally tagged enum (`{"Chunk": …}`,
/// `{"HeightUnavailable": {height, oldest, newest}}`, `"Busy"`, `{"Failed": text}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[allow(clippy::large_enum_variant)]
pub enum StateChunkResponse {
    /// The chunk.
    Chunk(StateChunk),
    /// The responder keeps no tree at that height (pruned, not durable yet, above its tip,
    /// or below the base of a state-synced log): it serves heights `oldest..=newest`.
    HeightUnavailable {
        /// The height asked for.
        height: u64,
        /// The oldest height it serves.
        oldest: u64,
        /// Its newest durable height.
        newest: u64,
    },
    /// The responder's queue is full (or this peer has too many requests pending).
    Busy,
    /// The responder's store failed; the text says how.
    Failed(String),
}

impl StateChunkResponse {
    /// CBOR encoding (at most [`MAX_STATE_RESPONSE_BYTES`]).
    ///
    /// # Errors
    /// [`DaError::Malformed`] when it would exceed the cap.
    pub fn encode(&self) -> Result<Vec<u8>, DaError> {
        codec::encode(self, MAX_STATE_RESPONSE_BYTES)
            .map_err(|e| DaError::Malformed(format!("state chunk: {e}")))
    }

    /// Decodes [`StateChunkResponse::encode`] bytes.
    ///
    /// # Errors
    /// [`DaError::Malformed`] for other or oversized bytes.
    pub fn decode(bytes: &[u8]) -> Result<StateChunkResponse, DaError> {
        codec::decode(bytes, MAX_STATE_RESPONSE_BYTES)
            .map_err(|e| DaError::Malformed(format!("state chunk: {e}")))
    }
}

/// The key hash following `after` (`None` after the largest one).
fn successor(after: &KeyHash) -> Option<KeyHash> {
    let mut k = after.0;
    for b in k.iter_mut().rev() {
        if *b == u8::MAX {
            *b = 0;
        } else {
            *b += 1;
            return Some(KeyHash(k));
        }
    }
    None
}

/// Builds the chunk answering `request` from `store`, whose tree keeps version
/// `request.height` with root `root`; `preimage` gives the raw key of a key hash (the
/// node's preimage table). Stops after `min(max_entries, MAX_CHUNK_ENTRIES)` entries or
/// before the entries exceed [`CHUNK_SOFT_BYTES`] (at least one entry when one follows).
/// `header` is the store's header at that height (see [`StateChunk::header`]).
///
/// # Errors
/// [`StateError::Store`] when a tree node or value cannot be read, or a key hash has no
/// preimage.
pub fn build_chunk(
    store: &dyn StateStore,
    preimage: &dyn Fn(&KeyHash) -> Result<Option<StateKey>, StateError>,
    request: &StateChunkRequest,
    root: [u8; 32],
    header: StateHeader,
) -> Result<StateChunk, StateError> {
    let height = request.height;
    let max = request.max_entries.clamp(1, MAX_CHUNK_ENTRIES) as usize;
    let start = match &request.after {
        None => Some(KeyHash([0; 32])),
        Some(a) => successor(&KeyHash(a.0)),
    };
    let mut entries = Vec::new();
    let mut last_key = None;
    let mut more = false;
    if let (Some(start), false) = (start, root == empty_root()) {
        let reader = Arc::new(Reader(store));
        let iter = JellyfishMerkleIterator::new(Arc::clone(&reader), height, start)
            .map_err(StateError::store)?;
        let mut bytes = 0usize;
        for item in iter {
            let (kh, value) = item.map_err(StateError::store)?;
            let size = value.len() + 64;
            if entries.len() >= max || (!entries.is_empty() && bytes + size > CHUNK_SOFT_BYTES) {
                more = true;
                break;
            }
            let key = preimage(&kh)?
                .ok_or_else(|| StateError::Store(format!("no preimage of key hash {kh:?}")))?;
            bytes += size;
            entries.push(ChunkEntry {
                key: ByteBuf::from(key.to_bytes()),
                value: ByteBuf::from(value),
            });
            last_key = Some(kh);
        }
    }
    let proof = match last_key {
        Some(kh) => {
            let reader = Reader(store);
            let tree = JellyfishMerkleTree::<_, Sha>::new(&reader);
            Some(
                tree.get_range_proof(kh, height)
                    .map_err(StateError::store)?,
            )
        }
        None => None,
    };
    Ok(StateChunk {
        height,
        root: Bytes32(root),
        entries,
        proof,
        last: !more,
        header,
    })
}

/// Collects the tree nodes jmt's restore freezes (it writes through a [`TreeWriter`]).
#[derive(Default)]
struct Sink(Mutex<Vec<(NodeKey, Node)>>);

impl TreeWriter for Sink {
    fn write_node_batch(&self, batch: &NodeBatch) -> anyhow::Result<()> {
        let mut nodes = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        nodes.extend(batch.nodes().iter().map(|(k, n)| (k.clone(), n.clone())));
        Ok(())
    }
}

impl Sink {
    fn take(&self) -> Vec<(NodeKey, Node)> {
        std::mem::take(&mut *self.0.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What one verified chunk adds to the restored store: tree nodes (all at the checkpoint
/// version) and entries (parsed key, encoded value), ascending by key hash.
#[derive(Debug, Default)]
pub struct RestoredPart {
    /// Tree nodes to write.
    pub nodes: Vec<(NodeKey, Node)>,
    /// Entries to write (values table, versions at the checkpoint height, preimages).
    pub entries: Vec<(StateKey, Vec<u8>)>,
}

/// Verifies the chunks of a state sync against a trusted checkpoint, one after the other
/// (module docs). Memory: jmt's partial nodes (at most 64 internal nodes of the path of
/// the last key) plus one chunk's nodes until they are handed back.
pub struct StateRestore {
    checkpoint: StateHeader,
    /// `None` once finished (or for the empty tree).
    restore: Option<JellyfishMerkleRestore<Sha>>,
    sink: Arc<Sink>,
    last_key: Option<KeyHash>,
    /// Map counts of the entries received so far.
    counts: StateHeader,
    done: bool,
}

impl std::fmt::Debug for StateRestore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateRestore")
            .field("height", &self.checkpoint.height)
            .field("done", &self.done)
            .finish()
    }
}

fn bad(what: impl std::fmt::Display) -> DaError {
    DaError::Malformed(format!("state chunk refused: {what}"))
}

impl StateRestore {
    /// Starts restoring the state whose height, tip hash and root are those of
    /// `checkpoint` (trusted: from a verified blob `height + 1`); its other fields are
    /// replaced as the chunks arrive.
    ///
    /// # Errors
    /// [`DaError::Malformed`] if jmt refuses to start (it does not for a fresh sink).
    pub fn new(checkpoint: StateHeader) -> Result<StateRestore, DaError> {
        let sink = Arc::new(Sink::default());
        let restore = JellyfishMerkleRestore::new_overwrite(
            Arc::clone(&sink),
            checkpoint.height,
            RootHash(checkpoint.root.0),
        )
        .map_err(bad)?;
        Ok(StateRestore {
            checkpoint,
            restore: Some(restore),
            sink,
            last_key: None,
            counts: StateHeader::genesis(),
            done: false,
        })
    }

    /// The request for the next chunk (`None` once the last chunk was verified).
    pub fn next_request(&self, max_entries: u32) -> Option<StateChunkRequest> {
        (!self.done).then(|| StateChunkRequest {
            height: self.checkpoint.height,
            after: self.last_key.map(|k| Bytes32(k.0)),
            max_entries,
        })
    }

    /// True once the last chunk was verified ([`StateRestore::header`] is then final).
    pub fn is_done(&self) -> bool {
        self.done
    }

    /// The header of the restored state: the checkpoint's height, tip hash and root, the
    /// map counts recounted from the entries, and `events`, `ignored`,
    /// `last_timestamp_ms` from the last chunk's (unproved) header.
    pub fn header(&self) -> StateHeader {
        StateHeader {
            root: self.checkpoint.root,
            height: self.checkpoint.height,
            tip_hash: self.checkpoint.tip_hash,
            last_timestamp_ms: self.counts.last_timestamp_ms,
            events: self.counts.events,
            ignored: self.counts.ignored,
            ..self.counts
        }
    }

    /// Verifies `chunk` (the answer to [`StateRestore::next_request`]) and returns what to
    /// write. Nothing is returned for a refused chunk, and the restore cannot go on: jmt's
    /// restore has already taken in the refused leaves, so every later chunk is refused
    /// too; the caller starts a new restore (discarding what it wrote) with another
    /// responder. A chunk refused before jmt saw it (wrong height or root, a key or value
    /// that does not parse, keys out of order) leaves the restore usable.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when the chunk is for another height or root, a key does not
    /// parse, a value does not decode for its key, keys are not ascending after the last
    /// one received, the range proof does not verify against the checkpoint's root, an
    /// empty chunk is not the last of an empty tree, or (last chunk) the rebuilt tree's
    /// root differs. After a refused last chunk (whose entries verified but whose root
    /// did not) the restore must start again.
    pub fn add(&mut self, chunk: &StateChunk) -> Result<RestoredPart, DaError> {
        if self.done {
            return Err(bad("the restore is finished"));
        }
        if chunk.height != self.checkpoint.height || chunk.root != self.checkpoint.root {
            return Err(bad(format!(
                "chunk for height {} root {:?}, expected height {} root {:?}",
                chunk.height, chunk.root, self.checkpoint.height, self.checkpoint.root
            )));
        }
        let mut entries = Vec::with_capacity(chunk.entries.len());
        let mut kvs = Vec::with_capacity(chunk.entries.len());
        let mut counts = self.counts;
        let mut prev = self.last_key;
        for e in &chunk.entries {
            let key = StateKey::from_bytes(&e.key)?;
            let value = StateValue::decode(&key, &e.value)?;
            let kh = key.key_hash();
            if prev.is_some_and(|p| kh <= p) {
                return Err(bad("keys not in ascending key-hash order"));
            }
            prev = Some(kh);
            count(&mut counts, &key, &value);
            kvs.push((kh, e.value.to_vec()));
            entries.push((key, e.value.to_vec()));
        }
        let Some(restore) = self.restore.as_mut() else {
            return Err(bad("the restore is finished"));
        };
        match &chunk.proof {
            None if kvs.is_empty() => {
                if !(chunk.last && self.last_key.is_none() && chunk.root.0 == empty_root()) {
                    return Err(bad("an empty chunk that is not the whole of an empty tree"));
                }
            }
            Some(proof) if !kvs.is_empty() => {
                if let Err(e) = restore.add_chunk(kvs, proof.clone()) {
                    self.restore = None;
                    return Err(bad(format!("{e} (the restore must start again)")));
                }
            }
            _ => return Err(bad("a proof without entries or entries without a proof")),
        }
        counts.events = chunk.header.events;
        counts.ignored = chunk.header.ignored;
        counts.last_timestamp_ms = chunk.header.last_timestamp_ms;
        self.counts = counts;
        self.last_key = prev;
        let mut nodes = self.sink.take();
        if chunk.last {
            nodes.extend(self.finish()?);
        }
        Ok(RestoredPart { nodes, entries })
    }

    /// Freezes the rightmost path and checks the rebuilt root.
    fn finish(&mut self) -> Result<Vec<(NodeKey, Node)>, DaError> {
        let restore = self.restore.take().ok_or_else(|| bad("finished twice"))?;
        let nodes: Vec<(NodeKey, Node)> = if self.last_key.is_none() {
            let empty = empty_tree(self.checkpoint.height);
            empty
                .node_batch
                .nodes()
                .iter()
                .map(|(k, n)| (k.clone(), n.clone()))
                .collect()
        } else {
            restore.finish().map_err(bad)?;
            self.sink.take()
        };
        let root = nodes
            .iter()
            .find(|(k, _)| {
                k.version() == self.checkpoint.height && k.nibble_path().num_nibbles() == 0
            })
            .map(|(_, n)| node_hash(n));
        if root != Some(self.checkpoint.root.0) {
            return Err(bad("the rebuilt tree's root differs from the checkpoint's"));
        }
        self.done = true;
        Ok(nodes)
    }
}

/// The hash of a tree node (jmt's `Node::hash` is crate-private).
fn node_hash(node: &Node) -> [u8; 32] {
    match node {
        Node::Internal(n) => n.hash::<Sha>(),
        Node::Leaf(n) => n.hash::<Sha>(),
        Node::Null => empty_root(),
    }
}

/// Adds one entry to the map counts of a header.
fn count(h: &mut StateHeader, key: &StateKey, value: &StateValue) {
    match (key, value) {
        (StateKey::Node(_), _) => h.nodes += 1,
        (StateKey::Chunk(_), _) => h.chunks += 1,
        (StateKey::Replicas(_), StateValue::Replicas { nodes }) => h.replicas += nodes.len() as u64,
        (StateKey::Zone(_), _) => h.zones += 1,
        (StateKey::Receipt(_), _) => h.receipts += 1,
        _ => {}
    }
}

#[cfg(test)]
#[path = "tests/state_sync.rs"]
mod tests;
