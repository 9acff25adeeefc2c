//! Graduated penalties (issue 14 §3): each misbehaviour label is an offence of a tolerance
//! ([`PeerAction`]) charged to the peer's in-memory reputation ([`Reputations`]); the peer is
//! disconnected, then banned, only when its reputation falls past the thresholds of
//! [`dsdn_peers::reputation`]. A ban records its cause in peers.dat ([`BanCause`]); when the
//! offence can come from this node's own configuration (a blob that fails against a mistyped
//! DA authority looks exactly like a forged one), the ban carries the configuration
//! fingerprint and is lifted at the next start with a different configuration
//! ([`dsdn_peers::PeerStore::lift_config_bans`]).

use std::time::Instant;

use dsdn_peers::{BanCause, PeerAction, Verdict};
use libp2p::swarm::{CloseConnection, ToSwarm};
use libp2p::PeerId;

use super::{unix_now, PeerManager};

/// How an offence is judged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Offence {
    /// Its tolerance.
    pub action: PeerAction,
    /// True when this node's configuration (network id, DA authority, committee) decides
    /// whether the peer is at fault.
    pub depends_on_config: bool,
}

/// Every misbehaviour label the node charges (`bootstrap_misbehaving_total{reason}`,
/// `bootstrap_peer_bans_total{reason}`).
pub const OFFENCES: [&str; 6] = [
    "pex_oversized",
    "pex_malformed",
    "bad_receipt",
    "provider_mismatch",
    "da_invalid_blob",
    "da_bad_evidence",
];

/// The offence of a misbehaviour label (`bootstrap_misbehaving_total{reason}`).
///
/// | label              | tolerance | on own config |
/// |--------------------|-----------|---------------|
/// | `pex_oversized`    | fatal     | no            |
/// | `pex_malformed`    | low       | no            |
/// | `bad_receipt`      | low       | no            |
/// | `provider_mismatch`| mid       | no            |
/// | `da_invalid_blob`  | mid       | yes (DA authority, committee, network) |
/// | `da_bad_evidence`  | mid       | yes (DA authority, network) |
/// | anything else      | mid       | no            |
pub fn offence(reason: &str) -> Offence {
    let (action, depends_on_config) = match reason {
        // More entries than the protocol's hard cap: no conforming implementation sends it,
        // and the bytes came authenticated from that peer: a provable act, banned at once.
        "pex_oversized" => (PeerAction::Fatal, false),
        // Undecodable (perhaps another version) or a receipt that does not check out.
        "pex_malformed" | "bad_receipt" => (PeerAction::LowToleranceError, false),
        "da_invalid_blob" | "da_bad_evidence" => (PeerAction::MidToleranceError, true),
        _ => (PeerAction::MidToleranceError, false),
    };
    Offence {
        action,
        depends_on_config,
    }
}

/// The warning for a node that banned most of the peers it knows (more than half of the
/// `known` entries of peers.dat): typically its own configuration made
/// honest peers look bad. Logged at start and shown in `status`.
pub fn banned_majority_warning(banned: usize, known: usize) -> Option<String> {
    (banned > 0 && banned * 2 > known).then(|| {
        format!(
            "{banned} of the {known} known peers are banned; if that followed a configuration \
             error of this node (DA authority, committee, network id), lift the bans with \
             `dsdn-agent peers unban --all`"
        )
    })
}

impl PeerManager {
    /// Misbehaviour (e.g. an oversized or malformed PEX response, 28.1.C §6; an invalid
    /// blob): the peer is charged a failure in peers.dat and the [`offence`] of `reason` in
    /// its reputation; past the disconnect threshold its connections are closed, past the ban
    /// threshold it is also banned for `ban_duration_secs` (persisted with the cause).
    /// `reason` labels `bootstrap_misbehaving_total`.
    pub fn penalize(&mut self, peer: PeerId, reason: &'static str) {
        self.penalize_at(peer, reason, Instant::now());
    }

    pub(super) fn penalize_at(&mut self, peer: PeerId, reason: &'static str, now: Instant) {
        self.metrics.misbehaving.with_label_values(&[reason]).inc();
        let unix = unix_now();
        let _ = self.store.record_failure(&peer, unix);
        let o = offence(reason);
        let (reputation, verdict) = self.reputations.apply(peer, o.action, now);
        match verdict {
            Verdict::Keep => {
                tracing::info!(%peer, reason, reputation, "peer misbehaved");
                return;
            }
            Verdict::Disconnect => {
                tracing::warn!(%peer, reason, reputation, "peer misbehaved: disconnected");
            }
            Verdict::Ban => {
                let until = unix.saturating_add(self.cfg.ban_duration.as_secs());
                let cause = BanCause::new(
                    reason,
                    o.depends_on_config.then_some(self.config_fingerprint),
                );
                if let Err(e) = self.store.ban(&peer, until, unix, cause) {
                    tracing::warn!(error = %e, "cannot write peers.dat");
                }
                self.metrics.bans.with_label_values(&[reason]).inc();
                if o.depends_on_config {
                    tracing::warn!(
                        %peer,
                        reason,
                        ban_secs = self.cfg.ban_duration.as_secs(),
                        "peer banned and disconnected; the offence is judged against this \
                         node's configuration (DA authority, committee, network id): if that \
                         is wrong, fix it and restart, which lifts such bans"
                    );
                } else {
                    tracing::warn!(%peer, reason, ban_secs = self.cfg.ban_duration.as_secs(), "peer banned and disconnected");
                }
            }
        }
        self.events.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::All,
        });
    }

    /// The operator lifted `peer`'s ban (or every ban): its reputation starts afresh.
    pub(crate) fn forgive(&mut self, peer: Option<PeerId>) {
        match peer {
            Some(p) => self.reputations.forget(&p),
            None => self.reputations.clear(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_banned_majority_warning() {
        assert!(banned_majority_warning(0, 0).is_none());
        assert!(banned_majority_warning(3, 6).is_none());
        assert!(banned_majority_warning(1, 1).is_some());
        let w = banned_majority_warning(4, 6).unwrap();
        assert!(
            w.contains("4 of the 6") && w.contains("peers unban --all"),
            "{w}"
        );
    }

    #[test]
    fn only_blob_verification_depends_on_the_configuration() {
        assert!(offence("da_invalid_blob").depends_on_config);
        for r in [
            "pex_oversized",
            "pex_malformed",
            "bad_receipt",
            "provider_mismatch",
            "x",
        ] {
            assert!(!offence(r).depends_on_config, "{r}");
        }
        assert_eq!(
            offence("pex_malformed").action,
            PeerAction::LowToleranceError
        );
        assert_eq!(offence("pex_oversized").action, PeerAction::Fatal);
    }
}
