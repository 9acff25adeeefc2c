//! The in-memory eviction index and the write context shared by every mutating operation.
//!
//! The index maps every stored PeerId to an [`IndexEntry`] (its [`Standing`], source,
//! services, primary netgroup and whether it has addresses) so that the store's length, its
//! statistics, the eviction victim, the outbound and feeler choices, the dial candidates and
//! the PEX entries are found without decoding 10 000 records. It is only a mirror: it is
//! rebuilt from the file at open, and changes made inside a write transaction are staged in
//! an overlay and applied to it only after the transaction committed.

use std::collections::HashMap;

use dsdn_protocols::{NetworkId, PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use redb::{ReadableTable, Table, TableDefinition};

use super::evict::{allows, EvictionQueue};
use super::StoreError;
use crate::netgroup::NetGroup;
use crate::record::{decode_record, encode_record, PeerRecord};
use crate::score::Standing;

/// peers table: PeerId bytes → encoded record.
pub(super) const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// anchors table: position (0, 1, …) → PeerId bytes of a saved anchor.
pub(super) const ANCHORS: TableDefinition<u32, &[u8]> = TableDefinition::new("anchors");

/// What the index keeps of one record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// Score and ranking inputs, including `banned_until`.
    pub(crate) standing: Standing,
    /// Where the peer was first learned.
    pub(crate) source: PeerSource,
    /// Its advertised services.
    pub(crate) services: ServiceSet,
    /// The netgroup of its first address.
    pub(crate) netgroup: Option<NetGroup>,
    /// True if it has at least one address (it can be dialled).
    pub(crate) has_addrs: bool,
}

impl From<&PeerRecord> for IndexEntry {
    fn from(r: &PeerRecord) -> Self {
        Self {
            standing: Standing::from(r),
            source: r.source,
            services: r.services,
            netgroup: r.netgroup(),
            has_addrs: !r.addrs.is_empty(),
        }
    }
}

/// PeerId → index entry of every record in the file.
pub(super) type Index = HashMap<PeerId, IndexEntry>;

/// Which entries an insertion into a full store may evict.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Eviction {
    /// A verified peer (handshake) or a ban: the worst entry not under a ban (the worst
    /// overall if every entry is banned).
    Any,
    /// An untested newcomer (test-before-evict): only the worst entry that never had a
    /// successful contact and is not banned; with no such entry the newcomer is dropped.
    UntestedOnly,
}

/// One open write transaction on the peers table plus the staged index changes.
///
/// The overlay is only changed through [`WriteCtx::put`], [`WriteCtx::remove`] and the
/// purge of undecodable records, which keep the entry count and the eviction queue in step.
pub(super) struct WriteCtx<'a, 't> {
    table: Table<'t, &'static [u8], &'static [u8]>,
    base: &'a Index,
    /// `Some` = upserted, `None` = removed, in this transaction.
    overlay: HashMap<PeerId, Option<IndexEntry>>,
    network: &'a NetworkId,
    /// Number of entries as of this transaction.
    len: usize,
    /// The (eviction, now) of the last eviction found by a full scan.
    scanned: Option<(Eviction, u64)>,
    /// Eviction order, built on the second eviction for the same (eviction, now).
    queue: Option<EvictionQueue>,
}

impl<'a, 't> WriteCtx<'a, 't> {
    /// A context on `table` whose committed state is mirrored by `base`.
    pub(super) fn new(
        table: Table<'t, &'static [u8], &'static [u8]>,
        base: &'a Index,
        network: &'a NetworkId,
    ) -> Self {
        Self {
            table,
            base,
            overlay: HashMap::new(),
            network,
            len: base.len(),
            scanned: None,
            queue: None,
        }
    }
}

impl WriteCtx<'_, '_> {
    /// Number of entries as of this transaction.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The index as of the start of this transaction.
    pub(super) fn base(&self) -> &Index {
        self.base
    }

    /// True if this transaction upserted or removed `peer`.
    pub(super) fn touched(&self, peer: &PeerId) -> bool {
        self.overlay.contains_key(peer)
    }

    /// The staged index changes, to [`apply`] once the transaction committed.
    pub(super) fn into_overlay(self) -> HashMap<PeerId, Option<IndexEntry>> {
        self.overlay
    }

    /// The index entry of `peer` as of this transaction.
    fn entry(&self, peer: &PeerId) -> Option<&IndexEntry> {
        match self.overlay.get(peer) {
            Some(change) => change.as_ref(),
            None => self.base.get(peer),
        }
    }

    /// Every entry as of this transaction, with its standing.
    pub(super) fn live(&self) -> impl Iterator<Item = (&PeerId, &Standing)> + Clone {
        self.base
            .iter()
            .filter(|(p, _)| !self.overlay.contains_key(*p))
            .map(|(p, e)| (p, &e.standing))
            .chain(
                self.overlay
                    .iter()
                    .filter_map(|(p, s)| s.as_ref().map(|s| (p, &s.standing))),
            )
    }

    /// Stages `change` for `peer`, keeping the count and the eviction queue in step.
    fn stage(&mut self, peer: PeerId, change: Option<IndexEntry>) {
        match (self.entry(&peer).is_some(), change.is_some()) {
            (false, true) => self.len += 1,
            (true, false) => self.len -= 1,
            _ => {}
        }
        if let (Some(queue), Some(e)) = (self.queue.as_mut(), change.as_ref()) {
            queue.offer(peer, e.standing);
        }
        self.overlay.insert(peer, change);
    }

    /// Reads one record; an undecodable one is deleted (and logged) and reported as absent.
    pub(super) fn get(&mut self, peer: &PeerId) -> Result<Option<PeerRecord>, StoreError> {
        self.get_key(&peer.to_bytes())
    }

    /// Deletes the record under `key` if it fails to decode.
    pub(super) fn purge_if_bad(&mut self, key: &[u8]) -> Result<(), StoreError> {
        self.get_key(key).map(drop)
    }

    fn get_key(&mut self, key: &[u8]) -> Result<Option<PeerRecord>, StoreError> {
        let decoded = match self.table.get(key)? {
            None => return Ok(None),
            Some(v) => decode_record(key, v.value(), self.network),
        };
        match decoded {
            Ok(r) => Ok(Some(r)),
            Err(e) => {
                tracing::warn!(error = %e, "deleting undecodable peers.dat record");
                self.table.remove(key)?;
                if let Ok(peer) = PeerId::from_bytes(key) {
                    self.stage(peer, None);
                }
                Ok(None)
            }
        }
    }

    /// Writes (inserts or replaces) a record, without any capacity check.
    pub(super) fn put(&mut self, r: &PeerRecord) -> Result<(), StoreError> {
        let bytes = encode_record(r)?;
        let key = r.peer_id.to_bytes();
        self.table.insert(key.as_slice(), bytes.as_slice())?;
        self.stage(r.peer_id, Some(IndexEntry::from(r)));
        Ok(())
    }

    /// Deletes a record; true if it existed.
    pub(super) fn remove(&mut self, peer: &PeerId) -> Result<bool, StoreError> {
        let key = peer.to_bytes();
        let existed = self.table.remove(key.as_slice())?.is_some();
        self.stage(*peer, None);
        Ok(existed)
    }

    /// Inserts a record for a peer known to be absent, evicting one entry first if the
    /// store holds `capacity` entries. Returns false (nothing written) when `eviction`
    /// finds no victim.
    pub(super) fn insert_new(
        &mut self,
        r: &PeerRecord,
        eviction: Eviction,
        capacity: usize,
        now: u64,
    ) -> Result<bool, StoreError> {
        while self.len() >= capacity {
            let Some(victim) = self.evict(eviction, now)? else {
                return Ok(false);
            };
            tracing::debug!(evicted = %victim, newcomer = %r.peer_id, "peers.dat full, evicting");
        }
        self.put(r)?;
        Ok(true)
    }

    /// Removes the lowest-ranked entry `eviction` allows to evict at `now`, if any, and
    /// returns it: the entry [`WriteCtx::worst_by_scan`] would pick.
    ///
    /// The first eviction for an (`eviction`, `now`) in the transaction is one scan (a
    /// single insertion, such as `record_success` of a new peer, costs no more); the second
    /// ranks the entries once into an [`EvictionQueue`] and every later one pops from it.
    pub(super) fn evict(
        &mut self,
        eviction: Eviction,
        now: u64,
    ) -> Result<Option<PeerId>, StoreError> {
        let queued = self.queue.as_ref().is_some_and(|q| q.is_for(eviction, now));
        let victim = if !queued && self.scanned != Some((eviction, now)) {
            self.scanned = Some((eviction, now));
            self.worst_by_scan(eviction, now)
        } else {
            if !queued {
                self.queue = Some(EvictionQueue::build(eviction, now, self.live()));
            }
            let popped = self.queue.as_mut().and_then(|queue| {
                let (base, overlay) = (self.base, &self.overlay);
                queue.pop(|p| {
                    match overlay.get(p) {
                        Some(change) => change.as_ref(),
                        None => base.get(p),
                    }
                    .map(|e| e.standing)
                })
            });
            // With nothing evictable left, `Any` falls back to the worst entry overall
            // (every entry is under a ban); the scan finds it.
            match (popped, eviction) {
                (Some(p), _) => Some(p),
                (None, Eviction::Any) => self.worst_by_scan(eviction, now),
                (None, Eviction::UntestedOnly) => None,
            }
        };
        if let Some(p) = &victim {
            self.remove(p)?;
        }
        Ok(victim)
    }

    /// The lowest-ranked entry `eviction` allows to evict, if any, by ranking every entry
    /// (the reference for [`WriteCtx::evict`], and its fallback when every entry is banned).
    pub(super) fn worst_by_scan(&self, eviction: Eviction, now: u64) -> Option<PeerId> {
        let live = self.live();
        let pick = |candidates: &mut dyn Iterator<Item = (&PeerId, &Standing)>| {
            candidates
                .max_by(|(pa, a), (pb, b)| a.rank(b, now).then_with(|| pa.cmp(pb)))
                .map(|(p, _)| *p)
        };
        let best = pick(&mut live.clone().filter(|(_, s)| allows(eviction, s, now)));
        match (best, eviction) {
            (Some(p), _) => Some(p),
            (None, Eviction::Any) => pick(&mut live.clone()),
            (None, Eviction::UntestedOnly) => None,
        }
    }
}

/// Applies the staged changes of a committed transaction to the index.
pub(super) fn apply(index: &mut Index, overlay: HashMap<PeerId, Option<IndexEntry>>) {
    for (peer, change) in overlay {
        match change {
            Some(s) => {
                index.insert(peer, s);
            }
            None => {
                index.remove(&peer);
            }
        }
    }
}
