//! The DA state in the log's redb file (issue 16 §1-2): the maps and the Jellyfish Merkle
//! tree of [`dsdn_protocols::da::state`], written in the **same** transaction as the blobs
//! they derive from ([`DaStore::append_with_state`]), so the log and the state never
//! disagree after a crash: the state's height is at most the log's tip, and equal to it
//! after every commit of the normal path.
//!
//! Tables (all in `da-log.redb`):
//!
//! * `state_meta` (`&str → &[u8]`): `header` = the [`StateHeader`] (CBOR) of the state's
//!   height, `oldest` = the oldest height whose tree is kept (u64 big-endian);
//! * `state_values` (raw key → encoded value): the latest value of every key (the maps);
//! * `state_nodes` (`version (u64 BE) ‖ nibble path bytes ‖ nibble count (u8)` → borsh
//!   `Node`, see [`node_key_bytes`]): the tree's nodes of the kept heights. Keys sort by
//!   the height that created the node, so a height's new nodes are appended at the end of
//!   the B-tree rather than spread over its pages;
//! * `state_versions` (`key_hash ‖ height (u64 BE)` → `0x00` removed / `0x01 ‖ raw key
//!   length (u16 BE) ‖ raw key ‖ value`, see [`VersionRow`]): each key's value per height
//!   it changed at (proofs at older heights read these; serving state-sync chunks reads the
//!   raw key of each tree leaf from the row live at the chunk's height, see
//!   [`super::restore`]);
//! * `state_stale` (`since (u64 BE) ‖ 0x00 ‖ state_nodes key` or `since ‖ 0x01 ‖ key_hash
//!   ‖ height`): what stopped being part of the latest tree at height `since`;
//! * `state_roots` (`u64 → root (32 bytes) ‖ events ‖ ignored (u64 BE each)`): the state
//!   root after every height, and the header's event counters then (which are not in the
//!   tree: a state-sync server gives them with a checkpoint below its tip), kept for all
//!   heights (48 bytes each; rows written before the counters were 32 bytes, the root
//!   alone, see [`RootRow`]).
//!
//! Schema 3 (before [`super::SCHEMA_VERSION`] 4) keyed `state_nodes` by borsh `NodeKey`
//! (version little-endian first: every insert and prune at a random page) and kept the raw
//! keys in a `state_preimages` table (`key_hash → raw key`, one more random insert per new
//! key); such a file's state tables are dropped at open and rebuilt from the blobs.
//!
//! History: after committing height `h`, everything stale at or below `h −` history (the
//! store's [`DaStore::set_proof_history`], `da.proof_history_heights`) is deleted in the
//! same transaction (the stale index rows, the nodes and the superseded or removed values
//! they name), so the trees of the kept heights (and the roots of all heights) stay
//! provable; older heights answer [`StateError::HeightUnavailable`]. What a transaction
//! creates and already makes stale below that height is never written
//! ([`write_commits`]), so a rebuild writes about the final tree plus the kept history.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

use dsdn_protocols::da::state::{StateCommit, StateError, StateHeader, StateKey};
use jmt::storage::{Node, NodeKey};
use jmt::KeyHash;
use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle, WriteTransaction};

use super::{DaStore, DaStoreError};

mod rows;
#[cfg(test)]
pub(crate) use rows::node_key_from;
use rows::{db, stale_node_key, stale_version_key, version_height};
pub(crate) use rows::{node_key_bytes, version_key, RootRow, VersionRow};

/// Heights whose tree is kept for proofs by a store whose history was not set
/// ([`DaStore::set_proof_history`]; the DA service sets `da.proof_history_heights`). Older
/// heights keep their root only.
pub const STATE_HISTORY: u64 = crate::da::config::DEFAULT_PROOF_HISTORY_HEIGHTS;

pub(super) const STATE_META: TableDefinition<&str, &[u8]> = TableDefinition::new("state_meta");
pub(super) const STATE_VALUES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state_values");
pub(super) const STATE_NODES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state_nodes");
pub(super) const STATE_VERSIONS: TableDefinition<&[u8], &[u8]> =
    TableDefinition::new("state_versions");
const STATE_STALE: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state_stale");
pub(super) const STATE_ROOTS: TableDefinition<u64, &[u8]> = TableDefinition::new("state_roots");
/// Schema 3's `key_hash → raw key` table, now folded into the `state_versions` rows
/// ([`VersionRow`]): accepted at open and deleted with the other state tables.
const LEGACY_PREIMAGES: TableDefinition<&[u8], &[u8]> = TableDefinition::new("state_preimages");

pub(super) const HEADER_KEY: &str = "header";
pub(super) const OLDEST_KEY: &str = "oldest";

/// True for the names of the state tables (the open check accepts them).
pub(super) fn is_state_table(name: &str) -> bool {
    [
        STATE_META.name(),
        STATE_VALUES.name(),
        STATE_NODES.name(),
        STATE_VERSIONS.name(),
        STATE_STALE.name(),
        STATE_ROOTS.name(),
        LEGACY_PREIMAGES.name(),
    ]
    .contains(&name)
}

/// Writes `commits` (those above the stored state height, which must follow it without a
/// gap) inside `txn`; returns the new state height (`state_tip` if nothing was written).
///
/// `log_tip` is the log's tip after this transaction and `history` the heights whose tree
/// is kept ([`DaStore::set_proof_history`]). Everything no kept height needs once this
/// transaction commits goes: the pruning height is `last − history` where `last` is the
/// last commit's height, or, while the state is being rebuilt behind the log, up to
/// `min(log_tip − history, last)` (those heights would be pruned before the state reached
/// the tip). Tree nodes and values that are created **and** become stale at or below the
/// pruning height within this transaction are never written (a rebuild in large
/// transactions writes little more than the final tree), stale ones written earlier are
/// deleted at once instead of being indexed.
pub(super) fn write_commits(
    txn: &WriteTransaction,
    state_tip: u64,
    commits: &[Arc<StateCommit>],
    log_tip: u64,
    history: u64,
) -> Result<u64, DaStoreError> {
    let fresh: Vec<&StateCommit> = commits
        .iter()
        .map(|c| &**c)
        .filter(|c| c.header.height > state_tip)
        .collect();
    for (expected, c) in (state_tip + 1..).zip(&fresh) {
        if c.header.height != expected {
            return Err(DaStoreError::StateNotConsecutive {
                expected,
                got: c.header.height,
            });
        }
    }
    let Some(last) = fresh.last().map(|c| c.header.height) else {
        return Ok(state_tip);
    };
    let first = state_tip + 1;
    let limit = last
        .saturating_sub(history)
        .max(log_tip.saturating_sub(history).min(last));
    let stale_nodes: Vec<Vec<(u64, NodeKey)>> = fresh.iter().map(|c| stale_of(c)).collect();
    // Nodes created in this transaction that are stale at or below the pruning height.
    let dead: HashSet<&NodeKey> = stale_nodes
        .iter()
        .flatten()
        .filter(|(since, k)| *since <= limit && k.version() >= first)
        .map(|(_, k)| k)
        .collect();
    // For each change, the next height in this transaction that changes the same key.
    let mut next_change: HashMap<(KeyHash, u64), u64> = HashMap::new();
    {
        let mut seen: HashMap<KeyHash, u64> = HashMap::new();
        for c in fresh.iter().rev() {
            let h = c.header.height;
            for (key, _) in &c.changes {
                let kh = key.key_hash();
                if let Some(next) = seen.insert(kh, h) {
                    next_change.insert((kh, h), next);
                }
            }
        }
    }
    let mut values = txn.open_table(STATE_VALUES)?;
    let mut nodes = txn.open_table(STATE_NODES)?;
    let mut versions = txn.open_table(STATE_VERSIONS)?;
    let mut stale = txn.open_table(STATE_STALE)?;
    let mut roots = txn.open_table(STATE_ROOTS)?;
    let mut meta = txn.open_table(STATE_META)?;
    // The latest value of each key changed here, written once at the end (in key order).
    let mut latest: BTreeMap<Vec<u8>, Option<&Vec<u8>>> = BTreeMap::new();
    // Per key changed here: its latest height in this transaction and whether that version
    // was written.
    let mut in_batch: HashMap<KeyHash, (u64, bool)> = HashMap::new();
    for (c, stale_here) in fresh.iter().zip(&stale_nodes) {
        let h = c.header.height;
        for (key, value) in &c.changes {
            let kh = key.key_hash();
            let raw = key.to_bytes();
            let previous = match in_batch.get(&kh) {
                Some(&(ph, written)) => written.then_some(ph),
                None => versions
                    .range(version_key(&kh, 0).as_slice()..version_key(&kh, h).as_slice())?
                    .next_back()
                    .transpose()?
                    .map(|(k, _)| version_height(k.value())),
            };
            // The value it replaces becomes stale at h.
            if let Some(ph) = previous {
                if h <= limit {
                    versions.remove(version_key(&kh, ph).as_slice())?;
                } else {
                    stale.insert(stale_version_key(h, &kh, ph).as_slice(), [].as_slice())?;
                }
            }
            let superseded = next_change.get(&(kh, h)).is_some_and(|&n| n <= limit);
            // A removal only hides older values, which are gone once h is pruned.
            let written = !superseded && (value.is_some() || h > limit);
            if written {
                let row = match value {
                    Some(v) => VersionRow::Set {
                        raw: &raw,
                        value: v,
                    },
                    None => {
                        stale.insert(stale_version_key(h, &kh, h).as_slice(), [].as_slice())?;
                        VersionRow::Removed
                    }
                };
                versions.insert(version_key(&kh, h).as_slice(), row.encode()?.as_slice())?;
            }
            in_batch.insert(kh, (h, written));
            latest.insert(raw, value.as_ref());
        }
        for (key, node) in c.tree.node_batch.nodes() {
            if dead.contains(key) {
                continue;
            }
            let node = borsh::to_vec(node).map_err(db)?;
            nodes.insert(node_key_bytes(key)?.as_slice(), node.as_slice())?;
        }
        for (since, key) in stale_here {
            if *since <= limit {
                if key.version() < first {
                    nodes.remove(node_key_bytes(key)?.as_slice())?;
                }
            } else {
                stale.insert(stale_node_key(*since, key)?.as_slice(), [].as_slice())?;
            }
        }
        roots.insert(h, RootRow::of(&c.header).encode().as_slice())?;
    }
    for (raw, value) in latest {
        match value {
            Some(v) => values.insert(raw.as_slice(), v.as_slice())?,
            None => values.remove(raw.as_slice())?,
        };
    }
    if let Some(c) = fresh.last() {
        meta.insert(HEADER_KEY, c.header.encode().as_slice())?;
    }
    // Prune what earlier transactions indexed as stale at or below the pruning height.
    let end = (limit + 1).to_be_bytes();
    let gone: Vec<Vec<u8>> = stale
        .range(..end.as_slice())?
        .map(|r| r.map(|(k, _)| k.value().to_vec()))
        .collect::<Result<_, _>>()?;
    for k in &gone {
        match k.get(8) {
            Some(0) => {
                nodes.remove(&k[9..])?;
            }
            Some(1) => {
                versions.remove(&k[9..])?;
            }
            _ => {}
        }
        stale.remove(k.as_slice())?;
    }
    let oldest = meta
        .get(OLDEST_KEY)?
        .and_then(|v| <[u8; 8]>::try_from(v.value()).ok())
        .map_or(0, u64::from_be_bytes);
    if limit > oldest {
        meta.insert(OLDEST_KEY, limit.to_be_bytes().as_slice())?;
    }
    Ok(last)
}

/// The nodes `c` makes stale, with the height they are stale since: jmt's stale index, and
/// for a blob that changed no key the previous root (jmt copies it to the new version
/// without marking the old one stale).
fn stale_of(c: &StateCommit) -> Vec<(u64, NodeKey)> {
    let h = c.header.height;
    let mut out: Vec<(u64, NodeKey)> = c
        .tree
        .stale_node_index_batch
        .iter()
        .map(|s| (s.stale_since_version, s.node_key.clone()))
        .collect();
    if c.changes.is_empty() && h > 0 {
        let root = c
            .tree
            .node_batch
            .nodes()
            .keys()
            .find(|k| k.nibble_path().num_nibbles() == 0);
        if let Some(root) = root {
            out.push((h, NodeKey::new(h - 1, root.nibble_path().clone())));
        }
    }
    out
}

/// Deletes every state table inside `txn` (the state is then rebuilt from the blobs).
pub(super) fn clear(txn: &WriteTransaction) -> Result<(), DaStoreError> {
    txn.delete_table(STATE_META)?;
    txn.delete_table(STATE_VALUES)?;
    txn.delete_table(STATE_NODES)?;
    txn.delete_table(STATE_VERSIONS)?;
    txn.delete_table(STATE_STALE)?;
    txn.delete_table(STATE_ROOTS)?;
    txn.delete_table(LEGACY_PREIMAGES)?;
    Ok(())
}

/// Reads the stored state height inside an open transaction (0 when there is no state).
///
/// # Errors
/// [`DaStoreError::Db`] when the read fails or the stored header does not decode.
pub(super) fn stored_height(txn: &WriteTransaction) -> Result<u64, DaStoreError> {
    let meta = txn.open_table(STATE_META)?;
    let header = meta.get(HEADER_KEY)?;
    match header {
        Some(v) => StateHeader::decode(v.value()).map(|h| h.height).map_err(db),
        None => Ok(0),
    }
}

pub(super) fn store_err(e: DaStoreError) -> StateError {
    StateError::Store(e.to_string())
}

fn malformed_version(key_hash: &KeyHash) -> StateError {
    StateError::Store(format!("malformed state_versions row of {key_hash:?}"))
}

/// Opens `$table` in a read transaction of `$self` (`None` when it does not exist).
macro_rules! read_table {
    ($self:ident, $table:expr) => {{
        let db = $self.read_db().map_err(store_err)?;
        let db = db.as_ref().ok_or_else(|| store_err($self.closed()))?;
        let txn = db.begin_read().map_err(|e| store_err(e.into()))?;
        match txn.open_table($table) {
            Ok(t) => Some(t),
            Err(redb::TableError::TableDoesNotExist(_)) => None,
            Err(e) => return Err(store_err(e.into())),
        }
    }};
}

impl DaStore {
    /// The stored state's header (`None`: no state stored yet).
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails or the header does not decode.
    pub fn state_header(&self) -> Result<Option<StateHeader>, StateError> {
        let Some(t) = read_table!(self, STATE_META) else {
            return Ok(None);
        };
        let v = t.get(HEADER_KEY).map_err(|e| store_err(e.into()))?;
        v.map(|v| StateHeader::decode(v.value()).map_err(StateError::store))
            .transpose()
    }

    /// The stored latest value of `key`.
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails.
    pub fn state_get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError> {
        let Some(t) = read_table!(self, STATE_VALUES) else {
            return Ok(None);
        };
        let v = t
            .get(key.to_bytes().as_slice())
            .map_err(|e| store_err(e.into()))?;
        Ok(v.map(|v| v.value().to_vec()))
    }

    /// Up to `limit` stored keys in `from..=to` (raw-key order, which is [`StateKey`]'s
    /// order), ascending.
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails or a stored key does not parse.
    pub fn state_keys_in(
        &self,
        from: &StateKey,
        to: &StateKey,
        limit: usize,
    ) -> Result<Vec<StateKey>, StateError> {
        let Some(t) = read_table!(self, STATE_VALUES) else {
            return Ok(Vec::new());
        };
        let (a, b) = (from.to_bytes(), to.to_bytes());
        let mut out = Vec::new();
        for item in t
            .range(a.as_slice()..=b.as_slice())
            .map_err(|e| store_err(e.into()))?
            .take(limit)
        {
            let (k, _) = item.map_err(|e| store_err(e.into()))?;
            out.push(StateKey::from_bytes(k.value()).map_err(StateError::store)?);
        }
        Ok(out)
    }

    /// The raw key of `key_hash` if it is set at `height` (a leaf of that height's tree;
    /// read from its version row, [`VersionRow`]), `None` when it is not or the height's
    /// rows are pruned.
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails or the stored row or key does not parse.
    pub fn state_preimage(
        &self,
        height: u64,
        key_hash: &KeyHash,
    ) -> Result<Option<StateKey>, StateError> {
        let Some(row) = self.version_row(height, key_hash)? else {
            return Ok(None);
        };
        match VersionRow::decode(&row) {
            Some(VersionRow::Set { raw, .. }) => StateKey::from_bytes(raw)
                .map(Some)
                .map_err(StateError::store),
            Some(VersionRow::Removed) => Ok(None),
            None => Err(malformed_version(key_hash)),
        }
    }

    /// A stored tree node.
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails or the node does not decode.
    pub fn state_node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        let Some(t) = read_table!(self, STATE_NODES) else {
            return Ok(None);
        };
        let k = node_key_bytes(key).map_err(store_err)?;
        let v = t.get(k.as_slice()).map_err(|e| store_err(e.into()))?;
        v.map(|v| borsh::from_slice::<Node>(v.value()).map_err(StateError::store))
            .transpose()
    }

    /// The stored value of `key_hash` at the newest height ≤ `max_version`.
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails.
    pub fn state_value_at(
        &self,
        max_version: u64,
        key_hash: KeyHash,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let Some(row) = self.version_row(max_version, &key_hash)? else {
            return Ok(None);
        };
        match VersionRow::decode(&row) {
            Some(VersionRow::Set { value, .. }) => Ok(Some(value.to_vec())),
            Some(VersionRow::Removed) => Ok(None),
            None => Err(malformed_version(&key_hash)),
        }
    }

    /// The stored `state_versions` value of `key_hash` at the newest height ≤
    /// `max_version` (`None`: no such row).
    fn version_row(
        &self,
        max_version: u64,
        key_hash: &KeyHash,
    ) -> Result<Option<Vec<u8>>, StateError> {
        let Some(t) = read_table!(self, STATE_VERSIONS) else {
            return Ok(None);
        };
        let from = version_key(key_hash, 0);
        let to = version_key(key_hash, max_version);
        let last = t
            .range(from.as_slice()..=to.as_slice())
            .map_err(|e| store_err(e.into()))?
            .next_back()
            .transpose()
            .map_err(|e| store_err(e.into()))?;
        Ok(last.map(|(_, v)| v.value().to_vec()))
    }

    /// The recorded state root after `height` (`None`: not stored).
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails.
    pub fn state_root_at(&self, height: u64) -> Result<Option<[u8; 32]>, StateError> {
        Ok(self.state_root_row(height)?.map(|r| r.root))
    }

    /// The recorded root row of `height`: its root, and its event counters when recorded
    /// (`None`: not stored).
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails.
    pub(crate) fn state_root_row(&self, height: u64) -> Result<Option<RootRow>, StateError> {
        let Some(t) = read_table!(self, STATE_ROOTS) else {
            return Ok(None);
        };
        let v = t.get(height).map_err(|e| store_err(e.into()))?;
        Ok(v.and_then(|v| RootRow::decode(v.value())))
    }

    /// The oldest height whose tree is kept (0 until more heights than the history exist).
    ///
    /// # Errors
    /// [`StateError::Store`] when the read fails.
    pub fn state_oldest(&self) -> Result<u64, StateError> {
        let Some(t) = read_table!(self, STATE_META) else {
            return Ok(0);
        };
        let v = t.get(OLDEST_KEY).map_err(|e| store_err(e.into()))?;
        Ok(v.and_then(|v| v.value().try_into().ok())
            .map_or(0, u64::from_be_bytes))
    }

    /// Deletes the stored state (every state table) in one transaction; the next start
    /// rebuilds it from the blobs. Returns the state height that was stored. A log restored
    /// by a state sync ([`DaStore::base`] > 0) cannot be rebuilt from its blobs: it is
    /// emptied (blobs and base too; the node syncs again).
    ///
    /// # Errors
    /// [`DaStoreError::Db`] if the transaction fails (nothing deleted).
    pub fn clear_state(&self) -> Result<u64, DaStoreError> {
        let mut tip = self.lock_tip();
        let mut state_tip = self.lock_state_tip();
        let db = self.write_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        let old = stored_height(&txn)?;
        let based = self.base() > 0;
        if based {
            super::restore::wipe(&txn)?;
        } else {
            clear(&txn)?;
        }
        txn.commit()?;
        *state_tip = 0;
        if based {
            *tip = 0;
            self.base.store(0, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(old)
    }

    /// The stored state's height (cached; no I/O).
    pub fn state_tip(&self) -> u64 {
        *self.lock_state_tip()
    }
}

#[cfg(test)]
impl DaStore {
    /// Rows of the `state_nodes`, `state_versions` and `state_stale` tables.
    pub(crate) fn state_rows(&self) -> [u64; 3] {
        use redb::ReadableTableMetadata;
        let db = self.read_db().expect("open");
        let txn = db.as_ref().expect("open").begin_read().expect("read");
        let len = |t: TableDefinition<&[u8], &[u8]>| {
            txn.open_table(t).map_or(0, |t| t.len().expect("len"))
        };
        [len(STATE_NODES), len(STATE_VERSIONS), len(STATE_STALE)]
    }
}
