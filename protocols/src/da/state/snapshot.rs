//! Snapshots of a [`DaState`]: the CBOR array
//! `[version: u16 = 2, network: text, height: u64, tip_hash: bytes32, last_timestamp_ms: u64,
//! events: u64, ignored: u64,
//! node_registry: [[node_id, zone, capacity_bytes, class, registered_at]...],
//! chunk_map: [[chunk_id, size_bytes, owner, declared_at]...],
//! replica_map: [[chunk_id, [node_id...]]...], zone_map: [[zone, [node_id...]]...],
//! receipt_map: [[receipt_id, receipt_hash, workload_id, node_key, height]...],
//! state_root: bytes32]`, every list in strictly ascending key order.
//!
//! Version 1 (before `receipt_map`) is refused as [`DaError::UnsupportedVersion`]; a node
//! then rebuilds its state by replaying the log.

use std::collections::{BTreeMap, BTreeSet};

use serde::de::SeqAccess;
use serde::{Serialize, Serializer};

use super::{ChunkRecord, DaState, NodeRecord, RecordedReceipt};
use crate::da::blob::{next, Versioned, VersionedBody};
use crate::da::event::{MAX_TEXT_LEN, NODE_CLASSES};
use crate::da::{Bytes32, DaError};
use crate::{codec, NetworkId};

/// Snapshot format version this build writes and reads (2: with `receipt_map`).
pub const SNAPSHOT_VERSION: u16 = 2;

/// Largest snapshot written or read, in bytes (1 GiB).
pub const MAX_SNAPSHOT_BYTES: usize = 1 << 30;

fn bad(what: impl std::fmt::Display) -> DaError {
    DaError::Malformed(format!("snapshot {what}"))
}

struct Nodes<'a>(&'a BTreeMap<String, NodeRecord>);
struct Chunks<'a>(&'a BTreeMap<Bytes32, ChunkRecord>);
struct Sets<'a, K>(&'a BTreeMap<K, BTreeSet<String>>);
struct Receipts<'a>(&'a BTreeMap<Bytes32, RecordedReceipt>);

impl Serialize for Nodes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|(id, n)| (id, &n.zone, n.capacity_bytes, &n.class, n.registered_at)),
        )
    }
}

impl Serialize for Chunks<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|(id, c)| (id, c.size_bytes, &c.owner, c.declared_at)),
        )
    }
}

impl Serialize for Receipts<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(
            self.0
                .iter()
                .map(|(id, r)| (id, &r.receipt_hash, &r.workload_id, &r.node_key, r.height)),
        )
    }
}

impl<K: Serialize> Serialize for Sets<'_, K> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.0.iter())
    }
}

type NodeRow = (String, String, u64, String, u64);
type ChunkRow = (Bytes32, u64, Bytes32, u64);
type ReceiptRow = (Bytes32, Bytes32, Bytes32, Bytes32, u64);

/// The version-2 snapshot after its version element.
struct SnapshotV2 {
    network: String,
    height: u64,
    tip_hash: Bytes32,
    last_timestamp_ms: u64,
    events: u64,
    ignored: u64,
    nodes: Vec<NodeRow>,
    chunks: Vec<ChunkRow>,
    replicas: Vec<(Bytes32, Vec<String>)>,
    zones: Vec<(String, Vec<String>)>,
    receipts: Vec<ReceiptRow>,
    root: Bytes32,
}

impl VersionedBody for SnapshotV2 {
    const VERSION: u16 = SNAPSHOT_VERSION;
    fn from_seq<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Self, A::Error> {
        Ok(SnapshotV2 {
            network: next(seq, 1)?,
            height: next(seq, 2)?,
            tip_hash: next(seq, 3)?,
            last_timestamp_ms: next(seq, 4)?,
            events: next(seq, 5)?,
            ignored: next(seq, 6)?,
            nodes: next(seq, 7)?,
            chunks: next(seq, 8)?,
            replicas: next(seq, 9)?,
            zones: next(seq, 10)?,
            receipts: next(seq, 11)?,
            root: next(seq, 12)?,
        })
    }
}

/// Builds a map from rows whose keys must be strictly ascending (canonical, no duplicates).
fn ascending<K: Ord, V>(
    rows: impl IntoIterator<Item = (K, V)>,
    what: &str,
) -> Result<BTreeMap<K, V>, DaError> {
    let mut map = BTreeMap::new();
    for (k, v) in rows {
        if map.last_key_value().is_some_and(|(last, _)| *last >= k) {
            return Err(bad(format_args!("{what}: keys not strictly ascending")));
        }
        map.insert(k, v);
    }
    Ok(map)
}

/// A non-empty set of node ids, strictly ascending.
fn node_set(ids: Vec<String>, what: &str) -> Result<BTreeSet<String>, DaError> {
    if ids.is_empty() {
        return Err(bad(format_args!("{what}: empty set")));
    }
    let map = ascending(ids.into_iter().map(|id| (id, ())), what)?;
    Ok(map.into_keys().collect())
}

fn text_ok(s: &str) -> bool {
    !s.is_empty() && s.len() <= MAX_TEXT_LEN
}

impl DaState {
    /// Encodes the state as a snapshot (format in the module docs), with its
    /// [`DaState::state_root`] recorded for [`DaState::from_snapshot`] to check.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when the snapshot would exceed [`MAX_SNAPSHOT_BYTES`].
    pub fn to_snapshot(&self) -> Result<Vec<u8>, DaError> {
        let value = (
            SNAPSHOT_VERSION,
            self.network.as_str(),
            self.height,
            Bytes32(self.tip_hash),
            self.last_timestamp_ms,
            self.events,
            self.ignored,
            Nodes(&self.nodes),
            Chunks(&self.chunks),
            Sets(&self.replicas),
            Sets(&self.zones),
            Receipts(&self.receipts),
            Bytes32(self.state_root()),
        );
        codec::encode(&value, MAX_SNAPSHOT_BYTES).map_err(bad)
    }

    /// Restores a state written by [`DaState::to_snapshot`] for `network`.
    ///
    /// Checks, in order: the size cap, the version, the network, canonical order and
    /// bounds of every entry, that `zone_map` is exactly the nodes' zones, that every
    /// replica names a declared chunk and a registered node, that every receipt was
    /// recorded at a height in `1..=height`, and that the recorded state root equals the
    /// recomputed one.
    ///
    /// # Errors
    /// [`DaError::UnsupportedVersion`] for another snapshot version (including version 1,
    /// written before `receipt_map` existed: the caller replays the log instead);
    /// [`DaError::WrongNetwork`] for another network; [`DaError::Malformed`]
    /// (`"snapshot ..."`) for oversized, truncated or undecodable input, a broken
    /// invariant, or a root mismatch.
    pub fn from_snapshot(bytes: &[u8], network: &NetworkId) -> Result<DaState, DaError> {
        let s =
            match codec::decode::<Versioned<SnapshotV2>>(bytes, MAX_SNAPSHOT_BYTES).map_err(bad)? {
                Versioned::Known(s) => s,
                Versioned::Unknown(v) => return Err(DaError::UnsupportedVersion(v)),
            };
        if s.network != network.as_str() {
            return Err(DaError::WrongNetwork {
                ours: network.to_string(),
                theirs: s.network.chars().take(64).collect(),
            });
        }
        if s.height == 0 && (s.tip_hash.0 != [0; 32] || s.events != 0) {
            return Err(bad("at height 0 has a tip or events"));
        }
        if s.ignored > s.events {
            return Err(bad("counts more ignored events than events"));
        }
        let nodes = ascending(
            s.nodes.into_iter().map(|(id, zone, cap, class, at)| {
                let record = NodeRecord {
                    zone,
                    capacity_bytes: cap,
                    class,
                    registered_at: at,
                };
                (id, record)
            }),
            "node_registry",
        )?;
        for (id, n) in &nodes {
            if !text_ok(id) || !text_ok(&n.zone) || !NODE_CLASSES.contains(&n.class.as_str()) {
                return Err(bad("node_registry: field out of bounds"));
            }
        }
        let chunks = ascending(
            s.chunks.into_iter().map(|(id, size, owner, at)| {
                let record = ChunkRecord {
                    size_bytes: size,
                    owner,
                    declared_at: at,
                };
                (id, record)
            }),
            "chunk_map",
        )?;
        let mut replicas = BTreeMap::new();
        for (id, set) in ascending(s.replicas, "replica_map")? {
            let set = node_set(set, "replica_map")?;
            if !chunks.contains_key(&id) || !set.iter().all(|n| nodes.contains_key(n)) {
                return Err(bad("replica_map: names an unknown chunk or node"));
            }
            replicas.insert(id, set);
        }
        let mut zones = BTreeMap::new();
        for (zone, set) in ascending(s.zones, "zone_map")? {
            zones.insert(zone, node_set(set, "zone_map")?);
        }
        let mut derived: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for (id, n) in &nodes {
            derived
                .entry(n.zone.clone())
                .or_default()
                .insert(id.clone());
        }
        if derived != zones {
            return Err(bad("zone_map: differs from the nodes' zones"));
        }
        let receipts = ascending(
            s.receipts
                .into_iter()
                .map(|(id, hash, workload, node, at)| {
                    let record = RecordedReceipt {
                        receipt_hash: hash,
                        workload_id: workload,
                        node_key: node,
                        height: at,
                    };
                    (id, record)
                }),
            "receipt_map",
        )?;
        if receipts
            .values()
            .any(|r| r.height == 0 || r.height > s.height)
        {
            return Err(bad("receipt_map: recorded at a height outside the log"));
        }
        let state = DaState {
            network: network.clone(),
            height: s.height,
            tip_hash: s.tip_hash.0,
            last_timestamp_ms: s.last_timestamp_ms,
            events: s.events,
            ignored: s.ignored,
            nodes,
            chunks,
            replicas,
            zones,
            receipts,
        };
        if state.state_root() != s.root.0 {
            return Err(bad("state root mismatch"));
        }
        Ok(state)
    }
}
