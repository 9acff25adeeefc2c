//! State sync at the store level (issue 16 §5): serving chunks of the state at a kept
//! height ([`DaStore::state_chunk`]) and restoring a state from verified chunks into an
//! empty log, which then starts after the checkpoint (its **base**).
//!
//! Table `log_base` (`&str → &[u8]`) in `da-log.redb`:
//!
//! * `header`: the [`StateHeader`] (CBOR) of the checkpoint the log starts after. A log
//!   with a base `b` stores the blobs `b + 1 ..= tip` only; its state is at least at `b`
//!   (the restored one, or later); heights `1..=b` are not stored: range requests for them
//!   get nothing and state chunks or proofs below `b` are unavailable. Replay at start goes
//!   from the stored state upwards, as for any log.
//! * `restoring`: present (empty) while a restore is under way. A file opened with it (the
//!   node stopped mid-restore) is emptied: blobs, state and base go, the restore starts
//!   again.
//!
//! A restore: [`DaStore::restore_begin`] on an empty log, [`DaStore::restore_part`] for each
//! verified chunk (one unsynced transaction each: nodes, values, versions at the checkpoint
//! height with their raw keys), [`DaStore::restore_finish`] (header, root, base; the tip
//! becomes the checkpoint height; synced). The caller may run it with a large page cache
//! ([`DaStore::set_cache_bytes`], set before the begin and reset after the finish or abort:
//! a reopen while `restoring` is marked empties the log). Verification is the caller's
//! ([`dsdn_protocols::da::state_sync::StateRestore`]); this module writes what it returns.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use dsdn_protocols::da::state::StateHeader;
use dsdn_protocols::da::state_sync::{
    build_chunk, RestoredPart, StateChunkRequest, StateChunkResponse,
};
use dsdn_protocols::da::{DaBlob, StateError};
use redb::{ReadableTable, TableDefinition, WriteTransaction};

use super::state::{
    self, node_key_bytes, version_key, RootRow, VersionRow, HEADER_KEY, OLDEST_KEY, STATE_META,
    STATE_NODES, STATE_ROOTS, STATE_VALUES, STATE_VERSIONS,
};
use super::{DaStore, DaStoreError, StoredState, BLOBS};

/// The base table (module docs).
pub(super) const LOG_BASE: TableDefinition<&str, &[u8]> = TableDefinition::new("log_base");

const RESTORING_KEY: &str = "restoring";

/// The base header and whether a restore was under way, read inside `txn`.
///
/// # Errors
/// [`DaStoreError::Db`] when the read fails or the stored header does not decode.
pub(super) fn read_base(
    txn: &WriteTransaction,
) -> Result<(Option<StateHeader>, bool), DaStoreError> {
    let t = txn.open_table(LOG_BASE)?;
    let header = match t.get(HEADER_KEY)? {
        Some(v) => {
            Some(StateHeader::decode(v.value()).map_err(|e| DaStoreError::Db(e.to_string()))?)
        }
        None => None,
    };
    let restoring = t.get(RESTORING_KEY)?.is_some();
    Ok((header, restoring))
}

/// Empties the log inside `txn`: blobs, state and base (an interrupted restore, or a
/// based log that lost its state).
pub(super) fn wipe(txn: &WriteTransaction) -> Result<(), DaStoreError> {
    state::clear(txn)?;
    txn.delete_table(LOG_BASE)?;
    txn.delete_table(BLOBS)?;
    txn.open_table(BLOBS)?;
    Ok(())
}

impl DaStore {
    /// The height the log starts after (0: it starts at height 1; `b`: it was restored
    /// from a checkpoint at `b` and stores blobs `b + 1 ..`). Cached; no I/O.
    pub fn base(&self) -> u64 {
        self.base.load(Ordering::Relaxed)
    }

    /// Answers a state-chunk request from the durable state (on a worker thread: it reads
    /// redb). Heights served: `max(oldest kept tree, base) ..= durable state height`.
    /// The chunk's header is the stored header at the newest height; at an older height
    /// its `events` and `ignored` are those recorded with the height's root (0 in rows
    /// written before they were recorded) and its `last_timestamp_ms` is the stored
    /// blob's.
    pub fn state_chunk(self: &Arc<Self>, request: &StateChunkRequest) -> StateChunkResponse {
        match self.build_state_chunk(request) {
            Ok(chunk) => StateChunkResponse::Chunk(chunk),
            Err(StateError::HeightUnavailable {
                height,
                oldest,
                newest,
            }) => StateChunkResponse::HeightUnavailable {
                height,
                oldest,
                newest,
            },
            Err(e) => StateChunkResponse::Failed(e.to_string()),
        }
    }

    fn build_state_chunk(
        self: &Arc<Self>,
        request: &StateChunkRequest,
    ) -> Result<dsdn_protocols::da::state_sync::StateChunk, StateError> {
        let height = request.height;
        let newest = self.state_tip();
        let oldest = self.state_oldest()?.max(self.base());
        let unavailable = StateError::HeightUnavailable {
            height,
            oldest,
            newest,
        };
        if height > newest || height < oldest || newest == 0 {
            return Err(unavailable);
        }
        let Some(row) = self.state_root_row(height)? else {
            return Err(unavailable);
        };
        let root = row.root;
        let (reader, _) = StoredState::open(Arc::clone(self))?;
        let mut header = self
            .state_header()?
            .ok_or_else(|| StateError::Store("no stored state header".into()))?;
        if header.height != height {
            let ts = match self.get(height).map_err(StateError::store)? {
                Some(bytes) => {
                    DaBlob::from_bytes(&bytes)
                        .map_err(StateError::store)?
                        .timestamp_ms
                }
                None => 0,
            };
            header = StateHeader {
                height,
                root: dsdn_protocols::da::Bytes32(root),
                events: row.counters.map_or(0, |c| c.0),
                ignored: row.counters.map_or(0, |c| c.1),
                last_timestamp_ms: ts,
                ..header
            };
        }
        let preimage = |kh: &jmt::KeyHash| self.state_preimage(height, kh);
        build_chunk(&reader, &preimage, request, root, header)
    }

    /// Starts a restore into this log, which must be empty (no blob, no state): marks the
    /// file as restoring (module docs).
    ///
    /// # Errors
    /// [`DaStoreError::NotConsecutive`] when the log is not empty (nothing written);
    /// [`DaStoreError::Db`] when the transaction fails.
    pub fn restore_begin(&self) -> Result<(), DaStoreError> {
        let tip = self.lock_tip();
        let state_tip = self.lock_state_tip();
        if *tip != 0 || *state_tip != 0 {
            return Err(DaStoreError::NotConsecutive {
                expected: 0,
                got: *tip,
            });
        }
        let db = self.write_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        state::clear(&txn)?;
        txn.open_table(LOG_BASE)?
            .insert(RESTORING_KEY, [].as_slice())?;
        txn.commit()?;
        Ok(())
    }

    /// Writes one verified chunk's nodes and entries of the state at `height` (one
    /// transaction, not synced: redb `Durability::None`). A crash before
    /// [`DaStore::restore_finish`] finds the synced `restoring` mark and empties the log
    /// anyway, and the finish's synced commit makes every part durable; so a part needs no
    /// sync of its own (issue 16 §5/§6: at 10 M entries the syncs of thousands of parts
    /// would be the restore's cost).
    ///
    /// # Errors
    /// [`DaStoreError::Db`] when no restore is under way or the transaction fails.
    pub fn restore_part(&self, height: u64, part: &RestoredPart) -> Result<(), DaStoreError> {
        let _tip = self.lock_tip();
        let db = self.write_db()?;
        let mut txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        txn.set_durability(redb::Durability::None)
            .map_err(|e| DaStoreError::Db(e.to_string()))?;
        if !read_base(&txn)?.1 {
            return Err(DaStoreError::Db("no state restore under way".into()));
        }
        {
            let mut nodes = txn.open_table(STATE_NODES)?;
            for (key, node) in &part.nodes {
                let node = borsh::to_vec(node).map_err(|e| DaStoreError::Db(e.to_string()))?;
                nodes.insert(node_key_bytes(key)?.as_slice(), node.as_slice())?;
            }
            let mut values = txn.open_table(STATE_VALUES)?;
            let mut versions = txn.open_table(STATE_VERSIONS)?;
            for (key, value) in &part.entries {
                let raw = key.to_bytes();
                let kh = key.key_hash();
                values.insert(raw.as_slice(), value.as_slice())?;
                let row = VersionRow::Set { raw: &raw, value };
                versions.insert(
                    version_key(&kh, height).as_slice(),
                    row.encode()?.as_slice(),
                )?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Ends a restore: records `header` (the restored state's, from
    /// `StateRestore::header` once done) as the state's header and the log's base, its
    /// root at its height, and that height as the tip and the oldest kept tree.
    ///
    /// # Errors
    /// [`DaStoreError::Db`] when no restore is under way or the transaction fails.
    pub fn restore_finish(&self, header: &StateHeader) -> Result<(), DaStoreError> {
        let mut tip = self.lock_tip();
        let mut state_tip = self.lock_state_tip();
        let db = self.write_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        if !read_base(&txn)?.1 {
            return Err(DaStoreError::Db("no state restore under way".into()));
        }
        let h = header.height;
        {
            let mut base = txn.open_table(LOG_BASE)?;
            base.remove(RESTORING_KEY)?;
            base.insert(HEADER_KEY, header.encode().as_slice())?;
            let mut meta = txn.open_table(STATE_META)?;
            meta.insert(HEADER_KEY, header.encode().as_slice())?;
            meta.insert(OLDEST_KEY, h.to_be_bytes().as_slice())?;
            txn.open_table(STATE_ROOTS)?
                .insert(h, RootRow::of(header).encode().as_slice())?;
        }
        txn.commit()?;
        *tip = h;
        *state_tip = h;
        self.base.store(h, Ordering::Relaxed);
        Ok(())
    }

    /// Abandons a restore under way: empties the log (blobs, state, base).
    ///
    /// # Errors
    /// [`DaStoreError::Db`] when the transaction fails.
    pub fn restore_abort(&self) -> Result<(), DaStoreError> {
        let mut tip = self.lock_tip();
        let mut state_tip = self.lock_state_tip();
        let db = self.write_db()?;
        let txn = db.as_ref().ok_or_else(|| self.closed())?.begin_write()?;
        wipe(&txn)?;
        txn.commit()?;
        *tip = 0;
        *state_tip = 0;
        self.base.store(0, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(test)]
#[path = "restore_tests.rs"]
mod tests;
