//! The handshake's outcome on a connection and addresses learned by PEX (28.1.B §2–§3):
//! a verified peer is recorded and announced, a failed handshake closes its connection.

use std::time::Instant;

use dsdn_peers::NetGroup;
use dsdn_protocols::handshake::HandshakeError;
use libp2p::swarm::{CloseConnection, ConnectionId, ToSwarm};
use libp2p::{Multiaddr, PeerId};

use super::*;

impl PeerManager {
    /// Records a verified handshake on `connection` (called by the event loop).
    pub fn on_handshake_ok(&mut self, peer: PeerId, connection: ConnectionId, info: VerifiedInfo) {
        let Some(conn) = self.conns.get_mut(&connection) else {
            return;
        };
        if conn.verified {
            return;
        }
        conn.verified = true;
        self.added_peers.verified(peer, connection);
        let (outbound, source, in_action, kind) =
            (conn.outbound, conn.source, conn.in_action, conn.kind);
        let remote = conn.remote.clone();
        let ours = conn.ours;
        let netgroup = NetGroup::of_addr(&remote);
        let newly = !self.verified.contains_key(&peer);
        if outbound {
            self.metrics.peer_connect_success.inc();
        }
        if in_action {
            self.settle_one(newly);
        }
        // Outbound: tried at the reached address; inbound: announced addresses untested
        // until an address test reaches them (`address_test.rs`).
        self.record_handshake(peer, outbound, ours, &remote, source, &info);
        if !newly {
            return;
        }
        // A feeler is promoted to a full outbound peer when a slot is free; otherwise it has
        // done its job (peers.dat now knows the address works) and is closed.
        let feeler = kind == DialKind::Feeler
            && self.outbound_verified() >= self.cfg.max_outbound_connections;
        if feeler {
            tracing::debug!(%peer, "feeler verified; closing");
            self.events.push_back(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::All,
            });
        }
        self.verified.insert(
            peer,
            ConnectedPeer {
                outbound,
                feeler,
                services: info.services,
                listen_addrs: info.listen_addrs.clone(),
                source,
                netgroup,
                since: Instant::now(),
            },
        );
        tracing::info!(%peer, outbound, source = source.as_str(), services = %info.services, "peer verified");
        self.events
            .push_back(ToSwarm::GenerateEvent(PeerManagerEvent::PeerVerified {
                peer,
                listen_addrs: info.listen_addrs,
                services: info.services,
                outbound,
            }));
    }

    /// Records a failed or refused handshake on `connection` and closes it.
    pub fn on_handshake_failed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        error: &HandshakeError,
    ) {
        self.added_peers
            .dial_failed(connection, &format!("handshake: {error}"), Instant::now());
        self.metrics
            .handshake_failure
            .with_label_values(&[error.reason()])
            .inc();
        tracing::warn!(%peer, %error, "handshake failed; disconnecting");
        let mut settle = false;
        if let Some(conn) = self.conns.get_mut(&connection) {
            if !conn.verified && conn.in_action {
                conn.in_action = false;
                settle = true;
            }
            if conn.outbound {
                let _ = self.store.record_failure(&peer, unix_now());
            }
        }
        if settle {
            self.settle_one(false);
        }
        self.events.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::One(connection),
        });
    }

    /// A peer learned through PEX (already stored in peers.dat): dial it if an outbound slot
    /// is free and its netgroup has no outbound peer yet. It counts as a good peer only once
    /// its handshake verifies.
    pub fn discovered(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if self.free_outbound_slots() == 0 || self.busy_peers().contains(&peer) {
            return;
        }
        if let Some(g) = addrs.first().and_then(NetGroup::of_addr) {
            if self.outbound_netgroups().contains(&g) {
                return;
            }
        }
        if self.store.is_banned(&peer, unix_now()).unwrap_or(false) {
            return;
        }
        self.dial(
            Some(peer),
            addrs,
            PeerSource::PeerExchange,
            DialKind::Outbound,
            false,
        );
    }
}
