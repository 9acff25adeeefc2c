//! `[light]` of seeds.toml: where a light client that stays light takes its checkpoint from
//! (issue 16 §4). Read by `dsdn-agent watch --from-checkpoint` only (its `--checkpoint` and
//! `--trust-peer` override these); full nodes ignore the section.
//!
//! ```toml
//! [light]
//! # checkpoint = "HEIGHT:HASH:ROOT"            # default unset: the newest signed blob
//! # trust_peer = "/ip4/203.0.113.50/tcp/30303/p2p/12D3KooW…"   # default unset
//! ```

use dsdn_bootstrap::config::KeyErrors;
use libp2p::multiaddr::Protocol;
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::light::Checkpoint;

/// `[light]`, validated.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LightSection {
    /// `checkpoint`: `HEIGHT:HASH:ROOT` (blob hash and state root in 64 hex) [default:
    /// unset, meaning the newest blob signed by the key in force at genesis, or the trusted
    /// peer's newest blob when `trust_peer` is set].
    pub checkpoint: Option<Checkpoint>,
    /// `trust_peer`: a full node trusted for its newest checkpoint, a multiaddr ending in
    /// `/p2p/<peer id>` (dialled as a static peer) [default: unset].
    pub trust_peer: Option<Multiaddr>,
}

impl LightSection {
    /// The PeerId of `trust_peer`.
    pub fn trusted_peer_id(&self) -> Option<PeerId> {
        peer_of(self.trust_peer.as_ref()?)
    }

    pub(crate) fn to_raw(&self) -> RawLight {
        RawLight {
            checkpoint: self.checkpoint.map(|c| c.to_string()),
            trust_peer: self.trust_peer.as_ref().map(ToString::to_string),
        }
    }
}

/// The PeerId a multiaddr's last `/p2p/` component names.
pub fn peer_of(addr: &Multiaddr) -> Option<PeerId> {
    match addr.iter().last() {
        Some(Protocol::P2p(id)) => Some(id),
        _ => None,
    }
}

/// `[light]` as written.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawLight {
    #[serde(skip_serializing_if = "Option::is_none")]
    checkpoint: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    trust_peer: Option<String>,
}

impl RawLight {
    pub(crate) fn is_default(&self) -> bool {
        self.checkpoint.is_none() && self.trust_peer.is_none()
    }
}

/// Validates `[light]`, recording `light.checkpoint` / `light.trust_peer` errors.
pub(crate) fn validate(raw: RawLight, errs: &mut KeyErrors) -> LightSection {
    let checkpoint = raw
        .checkpoint
        .and_then(|text| match text.parse::<Checkpoint>() {
            Ok(c) => Some(c),
            Err(e) => {
                errs.push("light.checkpoint", e);
                None
            }
        });
    let trust_peer = raw
        .trust_peer
        .and_then(|text| match text.parse::<Multiaddr>() {
            Ok(a) if peer_of(&a).is_some() => Some(a),
            Ok(_) => {
                errs.push(
                    "light.trust_peer",
                    format!("{text:?} does not end in /p2p/<peer id>"),
                );
                None
            }
            Err(e) => {
                errs.push("light.trust_peer", format!("{text:?}: {e}"));
                None
            }
        });
    LightSection {
        checkpoint,
        trust_peer,
    }
}
