//! Routing of identity-clash signals (issue 14 §4) to the [`IdentityGuard`] and the DA
//! service, and their report (log, `node_identity_clash{kind}`, `status`).

use std::time::Instant;

use libp2p::multiaddr::Protocol;
use libp2p::swarm::{DialError, ListenError};
use libp2p::Multiaddr;

use super::EventLoop;

/// `addr` without a trailing `/p2p/<PeerId>`.
fn without_p2p(addr: &Multiaddr) -> Multiaddr {
    addr.iter()
        .filter(|p| !matches!(p, Protocol::P2p(_)))
        .collect()
}

impl EventLoop {
    /// A failed dial: our own PeerId at the other end is a clash unless the address is ours.
    pub(super) fn on_dial_error(&mut self, error: &DialError) {
        let now = Instant::now();
        let found = match error {
            DialError::LocalPeerId { address } => {
                let a = without_p2p(address);
                let own = self
                    .swarm
                    .listeners()
                    .chain(self.swarm.external_addresses())
                    .any(|l| without_p2p(l) == a);
                self.identity.on_dial_local(&a, own, now)
            }
            DialError::WrongPeerId { obtained, address }
                if obtained == self.swarm.local_peer_id() =>
            {
                self.identity.on_wrong_peer(&without_p2p(address), now)
            }
            _ => None,
        };
        self.report_peer_id_clash(found);
    }

    /// A failed inbound connection: our own PeerId dialled in.
    pub(super) fn on_listen_error(&mut self, error: &ListenError, send_back: &Multiaddr) {
        if let ListenError::LocalPeerId { .. } = error {
            self.identity.on_inbound_local(send_back, Instant::now());
        }
    }

    /// Housekeeping: settles inbound connections from our own PeerId.
    pub(super) fn identity_poll(&mut self) {
        let found = self.identity.poll(Instant::now());
        self.report_peer_id_clash(found);
    }

    fn report_peer_id_clash(&mut self, found: Option<String>) {
        if self.identity.clash().is_some() {
            self.metrics
                .identity_clash
                .with_label_values(&["peer_id"])
                .set(1);
        }
        if let Some(what) = found {
            tracing::error!(
                clash = %what,
                "IDENTITY CLASH: another process runs with this node's key; stop the copy \
                 (a copied data directory?) or give one of them a new key (delete its \
                 <data dir>/node.key)"
            );
        }
    }

    /// The `status` warning while the configured DA authority looks wrong.
    pub(super) fn authority_warning(&self) -> Option<String> {
        self.da.service.authority_warning()
    }

    /// The `status` warning for a clash, if one was found (PeerId or DA authority).
    pub(super) fn identity_clash_warning(&self) -> Option<String> {
        self.identity
            .clash()
            .map(|c| format!("identity clash: {c}"))
            .or_else(|| {
                self.da
                    .service
                    .identity_clash()
                    .map(|c| format!("identity clash: {c}; this node stopped sealing DA blobs"))
            })
    }
}
