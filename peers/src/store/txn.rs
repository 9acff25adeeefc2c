//! The in-memory address book and the write context shared by every mutating operation.
//!
//! The index maps every stored PeerId to an [`IndexEntry`]: the record itself plus what the
//! choices need of it (its [`Standing`], source, services, primary netgroup and whether it
//! has addresses), so that the store's length, its statistics, the eviction victim, the
//! outbound and feeler choices, the dial candidates and the PEX entries cost no I/O and no
//! decoding. The index is authoritative: it is loaded from the file at open, an operation's
//! changes are staged in an overlay and applied to it at once when the operation succeeds,
//! and the changed PeerIds are handed to the background writer ([`super::writer`]), which
//! makes the file follow in group commits.

use std::collections::HashMap;

use dsdn_protocols::{PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use redb::TableDefinition;

use super::evict::{allows, EvictionQueue};
use super::StoreError;
use crate::netgroup::NetGroup;
use crate::record::PeerRecord;
use crate::score::Standing;

/// peers table: PeerId bytes → encoded record.
pub(super) const PEERS: TableDefinition<&[u8], &[u8]> = TableDefinition::new("peers");

/// anchors table: position (0, 1, …) → PeerId bytes of a saved anchor.
pub(super) const ANCHORS: TableDefinition<u32, &[u8]> = TableDefinition::new("anchors");

/// One record of the address book and what the choices need of it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IndexEntry {
    /// The record (authoritative; the file follows it).
    pub(crate) record: PeerRecord,
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

impl From<PeerRecord> for IndexEntry {
    fn from(r: PeerRecord) -> Self {
        Self {
            standing: Standing::from(&r),
            source: r.source,
            services: r.services,
            netgroup: r.netgroup(),
            has_addrs: !r.addrs.is_empty(),
            record: r,
        }
    }
}

impl From<&PeerRecord> for IndexEntry {
    fn from(r: &PeerRecord) -> Self {
        Self::from(r.clone())
    }
}

/// PeerId → index entry of every record of the store.
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

/// One store operation: the index as it was, plus the staged changes.
///
/// The overlay is only changed through [`WriteCtx::put`] and [`WriteCtx::remove`], which
/// keep the entry count and the eviction queue in step. An operation that fails leaves the
/// index unchanged (its overlay is dropped).
pub(super) struct WriteCtx<'a> {
    base: &'a Index,
    /// `Some` = upserted, `None` = removed, in this transaction.
    overlay: HashMap<PeerId, Option<IndexEntry>>,
    /// Number of entries as of this transaction.
    len: usize,
    /// The (eviction, now) of the last eviction found by a full scan.
    scanned: Option<(Eviction, u64)>,
    /// Eviction order, built on the second eviction for the same (eviction, now).
    queue: Option<EvictionQueue>,
}

impl<'a> WriteCtx<'a> {
    /// A context over `base`, the index as of the start of the operation.
    pub(super) fn new(base: &'a Index) -> Self {
        Self {
            base,
            overlay: HashMap::new(),
            len: base.len(),
            scanned: None,
            queue: None,
        }
    }
}

impl WriteCtx<'_> {
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

    /// The record of `peer` as of this operation.
    pub(super) fn get(&self, peer: &PeerId) -> Result<Option<PeerRecord>, StoreError> {
        Ok(self.entry(peer).map(|e| e.record.clone()))
    }

    /// Writes (inserts or replaces) a record, without any capacity check.
    pub(super) fn put(&mut self, r: &PeerRecord) -> Result<(), StoreError> {
        self.stage(r.peer_id, Some(IndexEntry::from(r)));
        Ok(())
    }

    /// Deletes a record; true if it existed.
    pub(super) fn remove(&mut self, peer: &PeerId) -> Result<bool, StoreError> {
        let existed = self.entry(peer).is_some();
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

/// Applies the staged changes of a successful operation to the index.
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
