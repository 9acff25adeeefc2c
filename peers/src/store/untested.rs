//! New and tried addresses (issue 12 §3), as Bitcoin Core keeps them apart: an inbound
//! peer's self-announced addresses are recorded untested ([`PeerStore::record_untested`]);
//! they become tried, and shareable by PEX, only when this node reaches one of them itself
//! ([`PeerStore::record_success`] after an outbound dial, a feeler or an address test).

use dsdn_protocols::{PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use super::txn::Eviction;
use super::{PeerStore, StoreError, MAX_ENTRIES};
use crate::record::PeerRecord;

impl PeerStore {
    /// Records the addresses an inbound `peer` announced about itself at `now`, untested:
    /// no successful contact is recorded (`last_success` stays unset), so
    /// [`PeerStore::pex_entries`] does not share them.
    ///
    /// * An unknown peer is inserted with source `inbound` (in a full store it only evicts
    ///   an entry never contacted successfully, as [`PeerStore::learn`]).
    /// * A known peer never contacted successfully gets `addrs` and `services` in place of
    ///   its stored ones, and `last_seen = now`.
    /// * A peer with a successful contact keeps its (tried) addresses and is not changed.
    ///
    /// `addrs` are sanitised and filtered by the address policy; with none left nothing is
    /// recorded. Returns whether the address book changed.
    ///
    /// # Errors
    /// [`StoreError::Database`] if the transaction fails.
    pub fn record_untested(
        &self,
        peer: PeerId,
        addrs: &[Multiaddr],
        services: ServiceSet,
        now: u64,
    ) -> Result<bool, StoreError> {
        let addrs = self.clean_addrs(addrs);
        if addrs.is_empty() {
            return Ok(false);
        }
        let network = self.network.clone();
        self.write(|ctx| match ctx.get(&peer)? {
            Some(r) if r.last_success.is_some() => Ok(false),
            Some(mut r) => {
                if r.addrs == addrs && r.services == services && r.last_seen == now {
                    return Ok(false);
                }
                r.addrs = addrs;
                r.services = services;
                r.last_seen = now;
                ctx.put(&r)?;
                Ok(true)
            }
            None => {
                let r = PeerRecord::new(peer, addrs, network, services, PeerSource::Inbound, now);
                ctx.insert_new(&r, Eviction::UntestedOnly, MAX_ENTRIES, now)
            }
        })
    }

    /// The addresses of `announced` (sanitised, filtered by the address policy) that are not
    /// tried yet: all of them unless `peer` has a successful contact, otherwise those not
    /// among its stored addresses.
    ///
    /// # Errors
    /// None today (no I/O); the `Result` is kept for callers.
    pub fn untested_addrs(
        &self,
        peer: &PeerId,
        announced: &[Multiaddr],
    ) -> Result<Vec<Multiaddr>, StoreError> {
        let announced = self.clean_addrs(announced);
        let mem = self.lock_index();
        Ok(match mem.index.get(peer).map(|e| &e.record) {
            Some(r) if r.last_success.is_some() => announced
                .into_iter()
                .filter(|a| !r.addrs.contains(a))
                .collect(),
            _ => announced,
        })
    }
}
