//! One blob being applied to the DA state (14A §2): [`BlobTx`] holds the blob's reads and
//! writes (later events see earlier ones), checks each event against the state
//! ([`BlobTx::check`]: applied, ignored with a reason) and applies it ([`BlobTx::mutate`]).

use std::collections::{BTreeMap, BTreeSet};

use super::store::decode_opt;
use super::*;

/// The reads and writes of one blob being applied: later events see earlier ones.
pub(super) struct BlobTx<'a> {
    pub(super) state: &'a DaState,
    pub(super) network: &'a NetworkId,
    /// Written keys: new value (`None` = removed).
    pub(super) writes: BTreeMap<StateKey, Option<Vec<u8>>>,
    /// The value each written key had before the blob.
    pub(super) before: BTreeMap<StateKey, Option<Vec<u8>>>,
    pub(super) header: StateHeader,
    /// Height of the blob being applied (the tip + 1).
    pub(super) height: u64,
}

impl BlobTx<'_> {
    pub(super) fn raw(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError> {
        match self.writes.get(key) {
            Some(v) => Ok(v.clone()),
            None => self.state.store.get(key),
        }
    }

    pub(super) fn get(&self, key: &StateKey) -> Result<Option<StateValue>, StateError> {
        decode_opt(key, self.raw(key)?)
    }

    pub(super) fn put(
        &mut self,
        key: StateKey,
        value: Option<StateValue>,
    ) -> Result<(), StateError> {
        if !self.before.contains_key(&key) {
            let old = self.state.store.get(&key)?;
            self.before.insert(key.clone(), old);
        }
        self.writes.insert(key, value.map(|v| v.encode()));
        Ok(())
    }

    pub(super) fn node(&self, id: &str) -> Result<Option<NodeRecord>, StateError> {
        Ok(match self.get(&StateKey::Node(id.to_owned()))? {
            Some(StateValue::Node(n)) => Some(n),
            _ => None,
        })
    }

    pub(super) fn chunk(&self, id: &Bytes32) -> Result<Option<ChunkRecord>, StateError> {
        Ok(match self.get(&StateKey::Chunk(*id))? {
            Some(StateValue::Chunk(c)) => Some(c),
            _ => None,
        })
    }

    pub(super) fn replicas(&self, id: &Bytes32) -> Result<BTreeSet<String>, StateError> {
        Ok(match self.get(&StateKey::Replicas(*id))? {
            Some(StateValue::Replicas { nodes }) => nodes,
            _ => BTreeSet::new(),
        })
    }

    pub(super) fn zone_size(&self, zone: &str) -> Result<u64, StateError> {
        Ok(match self.get(&StateKey::Zone(zone.to_owned()))? {
            Some(StateValue::Zone { nodes }) => nodes,
            _ => 0,
        })
    }

    pub(super) fn set_replicas(
        &mut self,
        id: Bytes32,
        nodes: BTreeSet<String>,
    ) -> Result<(), StateError> {
        let value = (!nodes.is_empty()).then_some(StateValue::Replicas { nodes });
        self.put(StateKey::Replicas(id), value)
    }

    pub(super) fn add_to_zone(&mut self, zone: &str, delta: i64) -> Result<(), StateError> {
        let old = self.zone_size(zone)?;
        let new = old.saturating_add_signed(delta);
        if old == 0 && new > 0 {
            self.header.zones += 1;
        } else if old > 0 && new == 0 {
            self.header.zones = self.header.zones.saturating_sub(1);
        }
        let value = (new > 0).then_some(StateValue::Zone { nodes: new });
        self.put(StateKey::Zone(zone.to_owned()), value)
    }

    /// See [`DaState::check_event`].
    pub(super) fn check(&self, event: &DaEvent) -> Result<EventOutcome, StateError> {
        if event.validate().is_err() {
            return Ok(EventOutcome::Ignored("invalid"));
        }
        Ok(match event {
            DaEvent::NodeRegistered { .. } => EventOutcome::Applied,
            DaEvent::ChunkDeclared { chunk_id, .. } => {
                if self.chunk(chunk_id)?.is_some() {
                    EventOutcome::Ignored("chunk_already_declared")
                } else {
                    EventOutcome::Applied
                }
            }
            DaEvent::ReplicaAdded { chunk_id, node_id } => {
                if self.chunk(chunk_id)?.is_none() {
                    EventOutcome::Ignored("unknown_chunk")
                } else if self.node(node_id)?.is_none() {
                    EventOutcome::Ignored("unknown_node")
                } else if self.replicas(chunk_id)?.contains(node_id) {
                    EventOutcome::Ignored("duplicate_replica")
                } else {
                    EventOutcome::Applied
                }
            }
            DaEvent::ReplicaRemoved { chunk_id, node_id } => {
                if self.replicas(chunk_id)?.contains(node_id) {
                    EventOutcome::Applied
                } else {
                    EventOutcome::Ignored("absent_replica")
                }
            }
            DaEvent::DeleteRequested {
                chunk_id,
                owner_signature,
            } => {
                let Some(chunk) = self.chunk(chunk_id)? else {
                    return Ok(EventOutcome::Ignored("unknown_chunk"));
                };
                let message = DaEvent::delete_message(self.network, chunk_id);
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
                if self
                    .get(&StateKey::Receipt(receipt.receipt_id()))?
                    .is_some()
                {
                    EventOutcome::Ignored("duplicate_receipt")
                } else if receipt.receipt_hash().is_err() {
                    // Unreachable after `validate` (the receipt encodes within its cap);
                    // checked so `mutate` can rely on it.
                    EventOutcome::Ignored("invalid")
                } else {
                    EventOutcome::Applied
                }
            }
            DaEvent::CommitteeRotated(rotation) => self.check_rotation(rotation)?,
            DaEvent::CoordinatorRegistered { node_id } => {
                if self.get(&StateKey::Coordinator(node_id.clone()))?.is_some() {
                    EventOutcome::Ignored("duplicate_coordinator")
                } else {
                    EventOutcome::Applied
                }
            }
        })
    }

    /// Applies an event that [`BlobTx::check`] found applicable.
    pub(super) fn mutate(&mut self, event: &DaEvent, height: u64) -> Result<(), StateError> {
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
                match self.node(node_id)? {
                    Some(old) => self.add_to_zone(&old.zone, -1)?,
                    None => self.header.nodes += 1,
                }
                self.add_to_zone(zone, 1)?;
                self.put(
                    StateKey::Node(node_id.clone()),
                    Some(StateValue::Node(record)),
                )?;
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
                self.header.chunks += 1;
                self.put(StateKey::Chunk(*chunk_id), Some(StateValue::Chunk(record)))?;
            }
            DaEvent::ReplicaAdded { chunk_id, node_id } => {
                let mut set = self.replicas(chunk_id)?;
                set.insert(node_id.clone());
                self.header.replicas += 1;
                self.set_replicas(*chunk_id, set)?;
            }
            DaEvent::ReplicaRemoved { chunk_id, node_id } => {
                let mut set = self.replicas(chunk_id)?;
                set.remove(node_id);
                self.header.replicas = self.header.replicas.saturating_sub(1);
                self.set_replicas(*chunk_id, set)?;
            }
            DaEvent::DeleteRequested { chunk_id, .. } => {
                let set = self.replicas(chunk_id)?;
                self.header.replicas = self.header.replicas.saturating_sub(set.len() as u64);
                self.header.chunks = self.header.chunks.saturating_sub(1);
                self.put(StateKey::Chunk(*chunk_id), None)?;
                self.set_replicas(*chunk_id, BTreeSet::new())?;
            }
            DaEvent::ReceiptRecorded { receipt } => {
                // `check` found the hash computable; it is a pure function of the receipt,
                // so this never skips.
                if let Ok(receipt_hash) = receipt.receipt_hash() {
                    let record = RecordedReceipt {
                        receipt_hash,
                        workload_id: receipt.receipt.workload_id,
                        node_key: receipt.receipt.node_key,
                        height,
                    };
                    self.header.receipts += 1;
                    self.put(
                        StateKey::Receipt(receipt.receipt_id()),
                        Some(StateValue::Receipt(record)),
                    )?;
                }
            }
            DaEvent::CommitteeRotated(rotation) => self.record_rotation(rotation, height)?,
            DaEvent::CoordinatorRegistered { node_id } => self.put(
                StateKey::Coordinator(node_id.clone()),
                Some(StateValue::Coordinator {
                    registered_at: height,
                }),
            )?,
        }
        Ok(())
    }
}
