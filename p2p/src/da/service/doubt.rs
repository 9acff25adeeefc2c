//! A hint for the operator when the configured DA authority is probably wrong (issue 14 §3):
//! blobs from several peers fail the signature check and none verified, which is what a
//! mistyped `da_authority` looks like (the honest network is not forging blobs together).

use std::collections::HashSet;

use super::*;

/// Distinct peers whose blobs failed the signature check before the hint is given.
pub(super) const DOUBT_PEERS: usize = 2;

/// Most peers remembered.
const MAX_REMEMBERED: usize = 64;

/// Peers whose blobs failed the signature check, while no blob from the network verified.
#[derive(Debug, Default)]
pub(crate) struct AuthorityDoubt {
    peers: HashSet<PeerId>,
    verified: u64,
    logged: bool,
}

impl AuthorityDoubt {
    /// A blob from `peer` failed the signature check; true when the hint is now due (once).
    fn bad_signature(&mut self, peer: PeerId) -> bool {
        if self.peers.len() < MAX_REMEMBERED {
            self.peers.insert(peer);
        }
        if self.verified == 0 && self.peers.len() >= DOUBT_PEERS && !self.logged {
            self.logged = true;
            return true;
        }
        false
    }

    /// A blob from the network verified against the authority.
    fn verified(&mut self) {
        self.verified += 1;
    }

    fn holds(&self) -> bool {
        self.verified == 0 && self.peers.len() >= DOUBT_PEERS
    }
}

impl DaService {
    /// Notes a blob of `peer` that failed verification with `reason`.
    pub(super) fn note_invalid(&mut self, peer: PeerId, reason: &str) {
        if reason != "bad_signature" || !self.doubt.bad_signature(peer) {
            return;
        }
        tracing::error!(
            peers = self.doubt.peers.len(),
            da_authority = %self.authority.map(hex::encode).unwrap_or_default(),
            "DA blobs from several peers fail the signature check against this node's \
             [network] da_authority and none verified: if every peer is wrong, the configured \
             da_authority probably is; fix it and restart (bans that rested on it are lifted)"
        );
    }

    /// Notes a blob from the network that verified.
    pub(super) fn note_verified(&mut self) {
        self.doubt.verified();
    }

    /// The `status` warning while the configured authority looks wrong.
    pub(crate) fn authority_warning(&self) -> Option<String> {
        self.doubt.holds().then(|| {
            format!(
                "DA blobs from {} peers fail the signature check against the configured \
                 da_authority and none verified: check [network] da_authority",
                self.doubt.peers.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hint_needs_two_peers_and_no_verified_blob() {
        let mut d = AuthorityDoubt::default();
        let a = PeerId::random();
        assert!(!d.bad_signature(a));
        assert!(!d.bad_signature(a), "one peer is a rogue, not a doubt");
        assert!(d.bad_signature(PeerId::random()));
        assert!(d.holds());
        assert!(!d.bad_signature(PeerId::random()), "logged once");
        d.verified();
        assert!(!d.holds());
        let mut d = AuthorityDoubt::default();
        d.verified();
        assert!(!d.bad_signature(PeerId::random()));
        assert!(!d.bad_signature(PeerId::random()));
    }
}
