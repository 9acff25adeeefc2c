//! [`PeerView`]: the read-only view of the connected peers a node service is handed, so
//! that it can be unit-tested without a swarm.

use dsdn_protocols::ServiceSet;
use libp2p::PeerId;

use crate::net::peer_manager::PeerManager;

/// The verified connected peers and the services their handshake advertised.
pub(crate) trait PeerView {
    /// The services `peer` advertised, if it is connected and verified; `None` otherwise.
    fn services_of(&self, peer: &PeerId) -> Option<ServiceSet>;

    /// Every verified connected peer with its advertised services, in no particular order.
    fn connected_services(&self) -> Vec<(PeerId, ServiceSet)>;
}

impl PeerView for PeerManager {
    fn services_of(&self, peer: &PeerId) -> Option<ServiceSet> {
        self.connected().get(peer).map(|c| c.services)
    }

    fn connected_services(&self) -> Vec<(PeerId, ServiceSet)> {
        self.connected()
            .iter()
            .map(|(p, c)| (*p, c.services))
            .collect()
    }
}
