//! The canonical key scheme of the DA state tree (issue 16 §2) and the encodings of its
//! values.
//!
//! Every entry of the 14A §2 maps (and `receipt_map`) is one key of the authenticated tree.
//! The raw key is one type byte followed by the id; the tree's key is its SHA-256 (jmt's
//! `KeyHash`):
//!
//! | map            | raw key                      | value (canonical CBOR)                               |
//! |----------------|------------------------------|------------------------------------------------------|
//! | `node_registry`| `0x01 ‖ node_id (UTF-8)`     | `[zone, capacity_bytes, class, registered_at]`       |
//! | `chunk_map`    | `0x02 ‖ chunk_id (32 bytes)` | `[size_bytes, owner (bytes32), declared_at]`         |
//! | `replica_map`  | `0x03 ‖ chunk_id (32 bytes)` | `[node_id, …]` strictly ascending, never empty       |
//! | `zone_map`     | `0x04 ‖ zone (UTF-8)`        | `node_count` (u64 ≥ 1): nodes whose record names it  |
//! | `receipt_map`  | `0x05 ‖ receipt_id (32)`     | `[receipt_hash, workload_id, node_key, height]`      |
//! | committee epoch| `0x06 ‖ epoch (u64 BE)`      | `[members, threshold, group_key, effective_height, sealed_at]` |
//! | last epoch     | `0x07`                       | `epoch` (u64) of the last recorded rotation          |
//! | coordinators   | `0x08 ‖ node_id (UTF-8)`     | `registered_at` (u64): height of its first registration |
//!
//! A zone's members are proved through their node records (each names its zone); the zone
//! entry carries the count only, so registering a node rewrites O(1) bytes, not the zone's
//! member list.
//!
//! The text form of a key ([`StateKey::parse`], [`std::fmt::Display`]) is `node:<id>`,
//! `chunk:<64 hex>`, `replicas:<64 hex>`, `zone:<name>`, `receipt:<64 hex>`,
//! `committee:<epoch>` (decimal), `committee:latest` and `coordinator:<id>`.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;

use super::{ChunkRecord, NodeRecord, RecordedReceipt};
use crate::codec;
use crate::da::epochs::EpochRecord;
use crate::da::event::MAX_TEXT_LEN;
use crate::da::{Bytes32, DaError};

/// Largest encoded value of one key, in bytes (4 MiB; a replica set is the only value that
/// grows, by one node id per replica).
pub const MAX_VALUE_BYTES: usize = 4 << 20;

/// One key of the DA state tree (module docs give the byte layout).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// `node_registry` entry of a node id.
    Node(String),
    /// `chunk_map` entry of a chunk id.
    Chunk(Bytes32),
    /// `replica_map` entry: the nodes holding replicas of a chunk.
    Replicas(Bytes32),
    /// `zone_map` entry: the number of nodes in a zone.
    Zone(String),
    /// `receipt_map` entry of a receipt id.
    Receipt(Bytes32),
    /// The recorded committee of an epoch (a `committee_rotated` event).
    Committee(u64),
    /// The epoch of the last recorded `committee_rotated` event.
    CommitteeLatest,
    /// The coordinator registry entry of a node id (a `coordinator_registered` event).
    Coordinator(String),
}

impl StateKey {
    /// The raw key: type byte then id (module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let epoch;
        let (tag, id): (u8, &[u8]) = match self {
            StateKey::Committee(e) => {
                epoch = e.to_be_bytes();
                (6, &epoch)
            }
            StateKey::CommitteeLatest => (7, &[]),
            StateKey::Coordinator(id) => (8, id.as_bytes()),
            StateKey::Node(id) => (1, id.as_bytes()),
            StateKey::Chunk(id) => (2, &id.0),
            StateKey::Replicas(id) => (3, &id.0),
            StateKey::Zone(zone) => (4, zone.as_bytes()),
            StateKey::Receipt(id) => (5, &id.0),
        };
        let mut out = Vec::with_capacity(1 + id.len());
        out.push(tag);
        out.extend_from_slice(id);
        out
    }

    /// Parses [`StateKey::to_bytes`] output.
    ///
    /// # Errors
    /// [`DaError::Malformed`] for an unknown type byte, a wrong id length or non-UTF-8 text.
    pub fn from_bytes(raw: &[u8]) -> Result<StateKey, DaError> {
        let bad = || DaError::Malformed("raw state key".into());
        let (&tag, id) = raw.split_first().ok_or_else(bad)?;
        let text = || String::from_utf8(id.to_vec()).map_err(|_| bad());
        let b32 = || <[u8; 32]>::try_from(id).map(Bytes32).map_err(|_| bad());
        Ok(match tag {
            1 => StateKey::Node(text()?),
            2 => StateKey::Chunk(b32()?),
            3 => StateKey::Replicas(b32()?),
            4 => StateKey::Zone(text()?),
            5 => StateKey::Receipt(b32()?),
            6 => StateKey::Committee(u64::from_be_bytes(
                <[u8; 8]>::try_from(id).map_err(|_| bad())?,
            )),
            7 if id.is_empty() => StateKey::CommitteeLatest,
            8 => StateKey::Coordinator(text()?),
            _ => return Err(bad()),
        })
    }

    /// The tree's key: SHA-256 of [`StateKey::to_bytes`].
    pub fn key_hash(&self) -> jmt::KeyHash {
        jmt::KeyHash::with::<sha2_010::Sha256>(self.to_bytes())
    }

    /// Parses the text form (`node:<id>`, `chunk:<hex>`, `replicas:<hex>`, `zone:<name>`,
    /// `receipt:<hex>`, `committee:<epoch>`, `committee:latest`, `coordinator:<id>`).
    ///
    /// # Errors
    /// [`DaError::Malformed`] for an unknown type, a bad hex id, or an empty or too long
    /// (> [`MAX_TEXT_LEN`] bytes) name.
    pub fn parse(text: &str) -> Result<StateKey, DaError> {
        let bad = |why: &str| DaError::Malformed(format!("state key {why}"));
        let (kind, id) = text
            .split_once(':')
            .ok_or_else(|| bad("must be <type>:<id>"))?;
        let hex32 = |id: &str| -> Result<Bytes32, DaError> {
            let mut out = [0u8; 32];
            hex::decode_to_slice(id, &mut out).map_err(|_| bad("id must be 64 hex digits"))?;
            Ok(Bytes32(out))
        };
        let name = |id: &str| -> Result<String, DaError> {
            if id.is_empty() || id.len() > MAX_TEXT_LEN {
                return Err(bad("name empty or too long"));
            }
            Ok(id.to_owned())
        };
        Ok(match kind {
            "node" => StateKey::Node(name(id)?),
            "chunk" => StateKey::Chunk(hex32(id)?),
            "replicas" => StateKey::Replicas(hex32(id)?),
            "zone" => StateKey::Zone(name(id)?),
            "receipt" => StateKey::Receipt(hex32(id)?),
            "coordinator" => StateKey::Coordinator(name(id)?),
            "committee" if id == "latest" => StateKey::CommitteeLatest,
            "committee" => StateKey::Committee(
                id.parse()
                    .map_err(|_| bad("committee id must be an epoch number or latest"))?,
            ),
            _ => {
                return Err(bad(
                    "type must be node, chunk, replicas, zone, receipt, committee or coordinator",
                ))
            }
        })
    }
}

impl fmt::Display for StateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StateKey::Node(id) => write!(f, "node:{id}"),
            StateKey::Chunk(id) => write!(f, "chunk:{}", hex::encode(id.0)),
            StateKey::Replicas(id) => write!(f, "replicas:{}", hex::encode(id.0)),
            StateKey::Zone(zone) => write!(f, "zone:{zone}"),
            StateKey::Receipt(id) => write!(f, "receipt:{}", hex::encode(id.0)),
            StateKey::Committee(epoch) => write!(f, "committee:{epoch}"),
            StateKey::CommitteeLatest => write!(f, "committee:latest"),
            StateKey::Coordinator(id) => write!(f, "coordinator:{id}"),
        }
    }
}

/// A decoded value of one key.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum StateValue {
    /// A node record.
    Node(NodeRecord),
    /// A chunk record.
    Chunk(ChunkRecord),
    /// The nodes holding replicas of a chunk.
    Replicas {
        /// Node ids, ascending.
        nodes: BTreeSet<String>,
    },
    /// The number of nodes in a zone.
    Zone {
        /// Nodes whose record names the zone (≥ 1).
        nodes: u64,
    },
    /// A recorded receipt.
    Receipt(RecordedReceipt),
    /// A recorded committee epoch.
    Committee(EpochRecord),
    /// The last recorded epoch.
    CommitteeLatest {
        /// Its number.
        epoch: u64,
    },
    /// A registered coordinator.
    Coordinator {
        /// Height of the blob that first registered it (≥ 1).
        registered_at: u64,
    },
}

fn malformed(e: impl fmt::Display) -> DaError {
    DaError::Malformed(format!("state value: {e}"))
}

fn enc<T: Serialize>(v: &T) -> Vec<u8> {
    // Every value is a small fixed tuple or a set of node ids bounded by the blob caps;
    // CBOR encoding of such values into a Vec cannot fail.
    codec::encode(v, usize::MAX).unwrap_or_default()
}

impl StateValue {
    /// The canonical encoding (module docs).
    pub fn encode(&self) -> Vec<u8> {
        match self {
            StateValue::Node(n) => enc(&(&n.zone, n.capacity_bytes, &n.class, n.registered_at)),
            StateValue::Chunk(c) => enc(&(c.size_bytes, &c.owner, c.declared_at)),
            StateValue::Replicas { nodes } => enc(nodes),
            StateValue::Zone { nodes } => enc(nodes),
            StateValue::Receipt(r) => {
                enc(&(&r.receipt_hash, &r.workload_id, &r.node_key, r.height))
            }
            StateValue::Committee(e) => enc(&(
                &e.members,
                e.threshold,
                &e.group_key,
                e.effective_height,
                e.sealed_at,
            )),
            StateValue::CommitteeLatest { epoch } => enc(epoch),
            StateValue::Coordinator { registered_at } => enc(registered_at),
        }
    }

    /// Decodes the value stored under `key`.
    ///
    /// # Errors
    /// [`DaError::Malformed`] for bytes that are not the key type's encoding (or exceed
    /// [`MAX_VALUE_BYTES`]).
    pub fn decode(key: &StateKey, bytes: &[u8]) -> Result<StateValue, DaError> {
        Ok(match key {
            StateKey::Node(_) => {
                let (zone, capacity_bytes, class, registered_at) =
                    codec::decode::<(String, u64, String, u64)>(bytes, MAX_VALUE_BYTES)
                        .map_err(malformed)?;
                StateValue::Node(NodeRecord {
                    zone,
                    capacity_bytes,
                    class,
                    registered_at,
                })
            }
            StateKey::Chunk(_) => {
                let (size_bytes, owner, declared_at) =
                    codec::decode::<(u64, Bytes32, u64)>(bytes, MAX_VALUE_BYTES)
                        .map_err(malformed)?;
                StateValue::Chunk(ChunkRecord {
                    size_bytes,
                    owner,
                    declared_at,
                })
            }
            StateKey::Replicas(_) => StateValue::Replicas {
                nodes: codec::decode(bytes, MAX_VALUE_BYTES).map_err(malformed)?,
            },
            StateKey::Zone(_) => StateValue::Zone {
                nodes: codec::decode(bytes, MAX_VALUE_BYTES).map_err(malformed)?,
            },
            StateKey::Receipt(_) => {
                let (receipt_hash, workload_id, node_key, height) =
                    codec::decode::<(Bytes32, Bytes32, Bytes32, u64)>(bytes, MAX_VALUE_BYTES)
                        .map_err(malformed)?;
                StateValue::Receipt(RecordedReceipt {
                    receipt_hash,
                    workload_id,
                    node_key,
                    height,
                })
            }
            StateKey::Committee(epoch) => {
                let (members, threshold, group_key, effective_height, sealed_at) =
                    codec::decode::<(Vec<String>, u16, Bytes32, u64, u64)>(bytes, MAX_VALUE_BYTES)
                        .map_err(malformed)?;
                StateValue::Committee(EpochRecord {
                    epoch: *epoch,
                    members,
                    threshold,
                    group_key,
                    effective_height,
                    sealed_at,
                })
            }
            StateKey::CommitteeLatest => StateValue::CommitteeLatest {
                epoch: codec::decode(bytes, MAX_VALUE_BYTES).map_err(malformed)?,
            },
            StateKey::Coordinator(_) => StateValue::Coordinator {
                registered_at: codec::decode(bytes, MAX_VALUE_BYTES).map_err(malformed)?,
            },
        })
    }
}
