//! `dsdn-agent watch --from-checkpoint`: the light client that stays light (issue 16 §4).
//! It starts from a checkpoint `(height, blob hash, state root)` instead of height 1,
//! follows the DA log forward from there only, holds no DA state, and answers `--prove`
//! with proofs checked against the newest root it trusts (the one the last verified blob
//! committed to).
//!
//! Sources of the checkpoint (the trust each implies is documented in the README,
//! "Light client"); the flags override seeds.toml's `[light] checkpoint` and `trust_peer`:
//! * `--checkpoint HEIGHT:HASH:ROOT`: given by the operator; checked against the network
//!   (the committee key is proved against ROOT, the next blob must link to HASH and commit
//!   to ROOT), refused with an error otherwise;
//! * `--trust-peer MULTIADDR/p2p/PEERID` (without `--checkpoint`): the newest blob of that
//!   full node gives the checkpoint (its `prev_hash`, `prev_state_root`); with
//!   `--checkpoint` the peer is only dialled;
//! * neither, or `--newest`: the newest blob a full node has, accepted if the key in force
//!   at the base checkpoint (`--checkpoint`, else genesis under `da_authority`) signed it;
//!   otherwise the client follows forward from the base.
//!
//! On stderr: the checkpoint in use, `joined` with the time from start to the first
//! verified blob after it, and at exit a summary `checkpoint follower: checkpoint H,
//! lowest height fetched L, blobs verified N, trusted height T root R`.

use std::time::Instant;

use anyhow::{bail, Context};
use clap::Args;
use dsdn_bootstrap::config::{BootstrapConfig, StaticPeer};
use dsdn_p2p::light::{Checkpoint, CheckpointSource, FollowStatus};
use dsdn_p2p::seeds::light::LightSection;
use dsdn_p2p::LightClient;
use libp2p::multiaddr::Protocol;
use libp2p::PeerId;

/// The checkpoint options of `dsdn-agent watch`.
#[derive(Debug, Args, Default)]
pub(crate) struct CheckpointArgs {
    /// Stay light: start from a checkpoint, follow the log forward only, hold no DA state,
    /// prove state values with proofs from full nodes (see --checkpoint, --trust-peer,
    /// --newest; default source: the newest blob signed by the key in force at genesis).
    #[arg(long)]
    pub(crate) from_checkpoint: bool,
    /// The checkpoint `HEIGHT:HASH:ROOT` (blob hash and state root after it in 64 hex);
    /// with --newest, the base the newest blob is checked from.
    #[arg(long, value_name = "HEIGHT:HASH:ROOT", requires = "from_checkpoint")]
    pub(crate) checkpoint: Option<Checkpoint>,
    /// A full node trusted for its newest checkpoint (`/ip4/…/tcp/…/p2p/<peer id>`; it is
    /// dialled as a static peer). With --checkpoint it is only dialled.
    #[arg(long, value_name = "MULTIADDR", requires = "from_checkpoint")]
    pub(crate) trust_peer: Option<String>,
    /// Take the newest blob that verifies under the key in force at --checkpoint (or
    /// genesis) as the checkpoint.
    #[arg(long, requires = "from_checkpoint")]
    pub(crate) newest: bool,
}

impl CheckpointArgs {
    /// The checkpoint source, adding the trusted peer to `bootstrap`'s static peers;
    /// `None` without `--from-checkpoint`. `--checkpoint` and `--trust-peer` override
    /// seeds.toml's `[light] checkpoint` and `trust_peer`.
    ///
    /// # Errors
    /// A `--trust-peer` that is no multiaddr ending in `/p2p/<peer id>`.
    pub(crate) fn source(
        &self,
        section: &LightSection,
        bootstrap: &mut BootstrapConfig,
    ) -> anyhow::Result<Option<CheckpointSource>> {
        if !self.from_checkpoint {
            return Ok(None);
        }
        let trust_peer = self
            .trust_peer
            .clone()
            .or_else(|| section.trust_peer.as_ref().map(ToString::to_string));
        let checkpoint = self.checkpoint.or(section.checkpoint);
        let trusted = match &trust_peer {
            Some(text) => {
                let (peer, id) = parse_trusted(text)?;
                if !bootstrap.static_peers.contains(&peer) {
                    bootstrap.static_peers.push(peer);
                }
                Some(id)
            }
            None => None,
        };
        Ok(Some(match (checkpoint, trusted) {
            (base, _) if self.newest => CheckpointSource::Newest { base },
            (Some(cp), _) => CheckpointSource::Config(cp),
            (None, Some(peer)) => CheckpointSource::TrustedPeer(peer),
            (None, None) => CheckpointSource::Newest { base: None },
        }))
    }
}

/// `--trust-peer`: a static peer and the PeerId its last `/p2p/` component names.
fn parse_trusted(text: &str) -> anyhow::Result<(StaticPeer, PeerId)> {
    let addr: libp2p::Multiaddr = text
        .parse()
        .with_context(|| format!("--trust-peer {text}: not a multiaddr"))?;
    let Some(Protocol::P2p(id)) = addr.iter().last() else {
        bail!("--trust-peer {text}: must end in /p2p/<peer id> (the full node trusted)");
    };
    let peer = StaticPeer::parse(text).with_context(|| format!("--trust-peer {text}"))?;
    Ok((peer, id))
}

/// Reports the follower's progress on stderr: the checkpoint once resolved, `joined` at
/// the first verified blob after it.
#[derive(Debug)]
pub(crate) struct FollowLog {
    started: Instant,
    announced: bool,
    joined: bool,
}

impl FollowLog {
    pub(crate) fn new(started: Instant) -> FollowLog {
        FollowLog {
            started,
            announced: false,
            joined: false,
        }
    }

    /// Looks at the newest status.
    pub(crate) fn update(&mut self, client: &LightClient) {
        let Some(status) = client.follow_status() else {
            return;
        };
        if let (Some(cp), false) = (status.checkpoint, self.announced) {
            self.announced = true;
            eprintln!("watch: from checkpoint {cp}");
        }
        if let (Some(head), Some(cp), false) = (status.head, status.checkpoint, self.joined) {
            if head.tip > cp.height {
                self.joined = true;
                eprintln!(
                    "watch: joined in {} ms: tip {}, trusted height {} root {}",
                    self.started.elapsed().as_millis(),
                    head.tip,
                    head.header.height,
                    hex::encode(head.header.state_root)
                );
            }
        }
    }
}

/// The summary line at exit.
pub(crate) fn summary(status: &FollowStatus) -> String {
    format!(
        "watch: checkpoint follower: checkpoint {}, lowest height fetched {}, blobs verified {}, trusted height {} root {}",
        status.checkpoint.map_or("-".to_owned(), |c| c.height.to_string()),
        status.lowest_fetched.map_or("-".to_owned(), |l| l.to_string()),
        status.blobs_taken,
        status.head.map_or("-".to_owned(), |h| h.header.height.to_string()),
        status.head.map_or("-".to_owned(), |h| hex::encode(h.header.state_root)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_follow_the_flags() {
        let cp = Checkpoint {
            height: 7,
            blob_hash: [1; 32],
            state_root: [2; 32],
        };
        let id = PeerId::random();
        let addr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{id}");
        let mut boot = BootstrapConfig::default();
        let off = CheckpointArgs::default();
        assert_eq!(
            off.source(&LightSection::default(), &mut boot).unwrap(),
            None
        );
        let on = |checkpoint, trust_peer: Option<&str>, newest| CheckpointArgs {
            from_checkpoint: true,
            checkpoint,
            trust_peer: trust_peer.map(str::to_owned),
            newest,
        };
        assert_eq!(
            on(None, None, false)
                .source(&LightSection::default(), &mut boot)
                .unwrap(),
            Some(CheckpointSource::Newest { base: None })
        );
        assert_eq!(
            on(Some(cp), None, false)
                .source(&LightSection::default(), &mut boot)
                .unwrap(),
            Some(CheckpointSource::Config(cp))
        );
        assert_eq!(
            on(Some(cp), None, true)
                .source(&LightSection::default(), &mut boot)
                .unwrap(),
            Some(CheckpointSource::Newest { base: Some(cp) })
        );
        assert_eq!(
            on(None, Some(&addr), false)
                .source(&LightSection::default(), &mut boot)
                .unwrap(),
            Some(CheckpointSource::TrustedPeer(id))
        );
        assert_eq!(boot.static_peers.len(), 1, "the trusted peer is dialled");
        assert!(on(None, Some("/ip4/127.0.0.1/tcp/4001"), false)
            .source(&LightSection::default(), &mut boot)
            .is_err());
        // seeds.toml's [light] gives the defaults; the flags override them.
        let section = LightSection {
            checkpoint: Some(cp),
            trust_peer: None,
        };
        assert_eq!(
            on(None, None, false).source(&section, &mut boot).unwrap(),
            Some(CheckpointSource::Config(cp))
        );
        let other = Checkpoint { height: 9, ..cp };
        assert_eq!(
            on(Some(other), None, false)
                .source(&section, &mut boot)
                .unwrap(),
            Some(CheckpointSource::Config(other))
        );
    }
}
