//! The in-memory eviction index and the write context shared by every mutating operation.
//!
//! The index maps every stored PeerId to an [`IndexEntry`] (its [`Standing`], source,
//! services, primary netgroup and whether it has addresses) so that the store's length, its
//! statistics, the eviction victim and the outbound and feeler choices are found without
//! decoding 10 000 records. It is only a mirror: it is rebuilt from the file at open, and
//! changes made inside a write transaction are staged in an overlay and applied to it only
//! after the transaction committed.

use std::collections::HashMap;

use dsdn_protocols::{NetworkId, PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use redb::{ReadableTable, Table, TableDefinition};

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
pub(super) struct WriteCtx<'a, 't> {
    pub(super) table: Table<'t, &'static [u8], &'static [u8]>,
    pub(super) base: &'a Index,
    /// `Some` = upserted, `None` = removed, in this transaction.
    pub(super) overlay: HashMap<PeerId, Option<IndexEntry>>,
    pub(super) network: &'a NetworkId,
}

impl WriteCtx<'_, '_> {
    /// Number of entries as of this transaction.
    pub(super) fn len(&self) -> usize {
        let mut n = self.base.len();
        for (peer, change) in &self.overlay {
            match (self.base.contains_key(peer), change.is_some()) {
                (false, true) => n += 1,
                (true, false) => n -= 1,
                _ => {}
            }
        }
        n
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
                    self.overlay.insert(peer, None);
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
        self.overlay.insert(r.peer_id, Some(IndexEntry::from(r)));
        Ok(())
    }

    /// Deletes a record; true if it existed.
    pub(super) fn remove(&mut self, peer: &PeerId) -> Result<bool, StoreError> {
        let key = peer.to_bytes();
        let existed = self.table.remove(key.as_slice())?.is_some();
        self.overlay.insert(*peer, None);
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
            let Some(victim) = self.worst(eviction, now) else {
                return Ok(false);
            };
            tracing::debug!(evicted = %victim, newcomer = %r.peer_id, "peers.dat full, evicting");
            self.remove(&victim)?;
        }
        self.put(r)?;
        Ok(true)
    }

    /// The lowest-ranked entry `eviction` allows to evict, if any.
    pub(super) fn worst(&self, eviction: Eviction, now: u64) -> Option<PeerId> {
        let live = self
            .base
            .iter()
            .filter(|(p, _)| !self.overlay.contains_key(*p))
            .map(|(p, e)| (p, &e.standing))
            .chain(
                self.overlay
                    .iter()
                    .filter_map(|(p, s)| s.as_ref().map(|s| (p, &s.standing))),
            );
        let unbanned = |s: &Standing| s.banned_until.is_none_or(|u| now >= u);
        let allowed: Box<dyn Fn(&Standing) -> bool> = match eviction {
            Eviction::Any => Box::new(unbanned),
            Eviction::UntestedOnly => Box::new(move |s| s.last_success.is_none() && unbanned(s)),
        };
        let pick = |candidates: &mut dyn Iterator<Item = (&PeerId, &Standing)>| {
            candidates
                .max_by(|(pa, a), (pb, b)| a.rank(b, now).then_with(|| pa.cmp(pb)))
                .map(|(p, _)| *p)
        };
        let best = pick(&mut live.clone().filter(|(_, s)| allowed(s)));
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
