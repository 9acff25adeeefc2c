//! [`StoredState`]: the [`StateStore`] of a full node — the state tables of
//! [`super::state`] in `da-log.redb`, read through an in-memory overlay of the commits not
//! yet durable.
//!
//! Applying a blob (on the event loop) reads the keys its events touch and the tree nodes
//! on their paths: first from the overlay, then from redb (read transactions, no write on
//! the event loop). Its [`StateCommit`] goes into the overlay and into an outbox the DA
//! service hands to the writer thread together with the blob ([`Overlay::take_outbox`]);
//! the writer commits both in one transaction. When the writer reports the state durable
//! up to `h`, [`Overlay::release`] drops what redb now holds.
//!
//! Memory: the overlay holds only commits not yet durable, bounded by the service's
//! unwritten-blob bound (`MAX_UNWRITTEN_BLOBS` blobs of at most `MAX_EVENTS_PER_BLOB`
//! events, each event changing at most 3 keys and O(log n) tree nodes); everything else is
//! read from redb, whose page cache is capped at 32 MiB, through a cache of decoded internal
//! tree nodes ([`super::cache`], at most ~20 MiB). Nothing grows with the number of chunks.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dsdn_protocols::da::state::{StateCommit, StateError, StateHeader, StateKey, StateStore};
use jmt::storage::{Node, NodeKey};
use jmt::KeyHash;

use super::cache::NodeCache;
use super::DaStore;

/// Commits applied but not durable yet (see the module docs).
#[derive(Debug, Default)]
pub(crate) struct Overlay {
    /// Latest value per key: (height written, value).
    values: BTreeMap<StateKey, (u64, Option<Vec<u8>>)>,
    /// The commits not durable yet by height: a tree node is found in the commit of its
    /// key's version (not copied).
    pending: BTreeMap<u64, Arc<StateCommit>>,
    /// Version 0 of the tree (the empty root) until the first commit is durable.
    nodes: BTreeMap<NodeKey, Node>,
    versions: BTreeMap<(KeyHash, u64), Option<Vec<u8>>>,
    /// Commits not handed to the writer yet, ascending.
    outbox: VecDeque<Arc<StateCommit>>,
}

impl Overlay {
    fn add(&mut self, commit: StateCommit) {
        let h = commit.header.height;
        for (key, value) in &commit.changes {
            self.versions.insert((key.key_hash(), h), value.clone());
            self.values.insert(key.clone(), (h, value.clone()));
        }
        let commit = Arc::new(commit);
        self.pending.insert(h, commit.clone());
        self.outbox.push_back(commit);
    }

    fn node(&self, key: &NodeKey) -> Option<&Node> {
        match self.pending.get(&key.version()) {
            Some(c) => c.tree.node_batch.nodes().get(key),
            None => self.nodes.get(key),
        }
    }

    /// The commits not handed to the writer yet (they stay readable until released).
    pub(crate) fn take_outbox(&mut self) -> Vec<Arc<StateCommit>> {
        self.outbox.drain(..).collect()
    }

    /// True when every commit was handed to the writer.
    pub(crate) fn outbox_is_empty(&self) -> bool {
        self.outbox.is_empty()
    }

    /// Puts commits taken with [`Overlay::take_outbox`] back in front (not written).
    pub(crate) fn put_back(&mut self, commits: Vec<Arc<StateCommit>>) {
        for c in commits.into_iter().rev() {
            self.outbox.push_front(c);
        }
    }

    /// Drops what is durable in redb (heights ≤ `durable`).
    pub(crate) fn release(&mut self, durable: u64) {
        self.values.retain(|_, (h, _)| *h > durable);
        self.pending = self.pending.split_off(&durable.saturating_add(1));
        self.nodes.retain(|k, _| k.version() > durable);
        self.versions.retain(|(_, h), _| *h > durable);
    }
}

/// The overlay shared by the [`StoredState`] (inside the chain's state) and the DA
/// service's log side (which drains the outbox and releases durable heights). Only the
/// event loop's thread locks it.
pub(crate) type SharedOverlay = Arc<Mutex<Overlay>>;

/// Locks `overlay` (a poisoned lock is taken over: the overlay holds plain data).
pub(crate) fn lock(overlay: &SharedOverlay) -> MutexGuard<'_, Overlay> {
    overlay.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A full node's [`StateStore`] (module docs).
#[derive(Debug)]
pub(crate) struct StoredState {
    store: Arc<DaStore>,
    header: StateHeader,
    overlay: SharedOverlay,
    /// Internal tree nodes read from redb (bounded: [`super::cache::NODE_CACHE_ENTRIES`]).
    cache: Mutex<NodeCache>,
}

impl StoredState {
    /// The state stored in `store` (its header, or the genesis header when none is stored),
    /// with an empty overlay.
    ///
    /// # Errors
    /// [`StateError`] when the header cannot be read.
    pub(crate) fn open(store: Arc<DaStore>) -> Result<(StoredState, SharedOverlay), StateError> {
        let header = store.state_header()?.unwrap_or_else(StateHeader::genesis);
        let overlay = SharedOverlay::default();
        if header.height == 0 {
            // Version 0 of the tree (the empty root) lives in the overlay until the first
            // commit is written with it.
            let genesis = dsdn_protocols::da::state::store::genesis_tree();
            lock(&overlay).nodes.extend(
                genesis
                    .node_batch
                    .nodes()
                    .iter()
                    .map(|(k, n)| (k.clone(), n.clone())),
            );
        }
        let state = StoredState {
            store,
            header,
            overlay: overlay.clone(),
            cache: Mutex::default(),
        };
        Ok((state, overlay))
    }
}

impl StoredState {
    /// A store a failed reopen left closed is reopened before a read (as the writer does
    /// before an append); if that fails too, the read fails.
    fn ensure_open(&self) {
        if !self.store.is_open() {
            if let Err(e) = self.store.reopen() {
                tracing::debug!(error = %e, "cannot reopen the DA log for a state read");
            }
        }
    }
}

impl StateStore for StoredState {
    fn header(&self) -> StateHeader {
        self.header
    }

    fn get(&self, key: &StateKey) -> Result<Option<Vec<u8>>, StateError> {
        if let Some((_, v)) = lock(&self.overlay).values.get(key) {
            return Ok(v.clone());
        }
        self.ensure_open();
        self.store.state_get(key)
    }

    fn node(&self, key: &NodeKey) -> Result<Option<Node>, StateError> {
        if let Some(n) = lock(&self.overlay).node(key) {
            return Ok(Some(n.clone()));
        }
        let mut cache = self.cache.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = cache.get(key) {
            return Ok(Some(n));
        }
        self.ensure_open();
        let node = self.store.state_node(key)?;
        if let Some(n) = &node {
            cache.insert(key, n);
        }
        Ok(node)
    }

    fn value_at(&self, max_version: u64, key_hash: KeyHash) -> Result<Option<Vec<u8>>, StateError> {
        {
            let o = lock(&self.overlay);
            let newest = o
                .versions
                .range((key_hash, 0)..=(key_hash, max_version))
                .next_back();
            if let Some((_, v)) = newest {
                return Ok(v.clone());
            }
        }
        self.ensure_open();
        self.store.state_value_at(max_version, key_hash)
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
        let o = lock(&self.overlay);
        let pending: BTreeMap<&StateKey, bool> = o
            .values
            .range(from.clone()..=to.clone())
            .map(|(k, (_, v))| (k, v.is_some()))
            .collect();
        let removed = pending.values().filter(|present| !**present).count();
        let mut keys: std::collections::BTreeSet<StateKey> = self
            .store
            .state_keys_in(from, to, limit.saturating_add(removed))?
            .into_iter()
            .filter(|k| pending.get(k) != Some(&false))
            .collect();
        keys.extend(
            pending
                .iter()
                .filter(|(_, present)| **present)
                .map(|(k, _)| (*k).clone()),
        );
        Ok(keys.into_iter().take(limit).collect())
    }

    fn commit(&mut self, commit: StateCommit) -> Result<(), StateError> {
        self.header = commit.header;
        lock(&self.overlay).add(commit);
        Ok(())
    }
}
