//! Checkpoints of the DA log for a light client that stays light (issue 16 §4): a trusted
//! `(height, blob hash, state root)` to follow the log forward from, where it comes from, and
//! the committee keys in force there.
//!
//! **Trust each source implies** (documented in README "Light client" and PROTOCOL.md
//! §5.3c):
//! * [`CheckpointSource::Config`]: the operator vouches for the three values (taken from a
//!   node they trust, a block explorer, a release note). The client checks them against
//!   the network at once: the first blob after the checkpoint must link to its hash and
//!   commit to its root, and the committee key is proved against its root; a wrong value
//!   is refused.
//! * [`CheckpointSource::TrustedPeer`]: the named full node is trusted for its newest
//!   blob's `prev_hash` and `prev_state_root` (one request over `da-sync`). A lying peer
//!   can put the client on a false chain; everything after is verified as usual, so the
//!   lie is exposed as soon as the client hears the real log's next blob (its hash does not
//!   link).
//! * [`CheckpointSource::Newest`]: no party is trusted beyond the committee: the newest
//!   blob the client hears is accepted if it is signed by the key in force at a base
//!   checkpoint (the configured one, or genesis with the configured `da_authority`); the
//!   blobs between the base and it are skipped. This assumes the key in force signs one
//!   chain only (no equivocation; weak subjectivity: an old key that leaked could sign a
//!   false newest blob). When a rotation took effect since the base, the key of the newest
//!   blob is learnt through the rotation blobs recorded since ([`super::rotations`], each
//!   verified under the key before it); when that fails too, the client follows forward
//!   from the base instead.

use std::fmt;
use std::str::FromStr;

use dsdn_protocols::da::blob::proposer::check_member;
use dsdn_protocols::da::epochs::{admit_rotation, EpochRecord};
use dsdn_protocols::da::{empty_root, DaBlob, DaError, DaEvent, VerifiedBlob, GENESIS_PREV_HASH};
use dsdn_protocols::NetworkId;
use libp2p::PeerId;

/// A trusted point of the DA log: the blob at `height` has hash `blob_hash` and the state
/// after it has root `state_root`. Height 0 is genesis: zero hash, the empty tree's root.
///
/// Text form (`--checkpoint`, seeds.toml `[light] checkpoint`): `HEIGHT:HASH:ROOT`, the
/// two hashes in 64 lower-case hex digits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The height (0 = before the first blob).
    pub height: u64,
    /// The identity of the blob at `height` ([`dsdn_protocols::da::VerifiedBlob::hash`]);
    /// zeros at height 0.
    pub blob_hash: [u8; 32],
    /// The state root after the blob at `height`.
    pub state_root: [u8; 32],
}

impl Checkpoint {
    /// Height 0: no blob, the empty tree's root.
    pub fn genesis() -> Checkpoint {
        Checkpoint {
            height: 0,
            blob_hash: GENESIS_PREV_HASH,
            state_root: empty_root(),
        }
    }

    /// The checkpoint blob `blob` commits to: its height − 1, `prev_hash` and
    /// `prev_state_root`. `None` for a version-1 blob (it commits to no root).
    pub fn committed_by(blob: &DaBlob) -> Option<Checkpoint> {
        (blob.version != dsdn_protocols::da::DA_BLOB_VERSION_V1 && blob.height >= 1).then_some(
            Checkpoint {
                height: blob.height - 1,
                blob_hash: blob.prev_hash.0,
                state_root: blob.prev_state_root.0,
            },
        )
    }
}

impl fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.height,
            hex::encode(self.blob_hash),
            hex::encode(self.state_root)
        )
    }
}

/// Why a checkpoint's text form does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid checkpoint {input:?}: {reason} (expected HEIGHT:HASH:ROOT, hashes in 64 hex digits)"
)]
pub struct CheckpointParseError {
    /// The input as given.
    pub input: String,
    /// What is wrong.
    pub reason: String,
}

impl FromStr for Checkpoint {
    type Err = CheckpointParseError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = |reason: String| CheckpointParseError {
            input: s.to_owned(),
            reason,
        };
        let parts: Vec<&str> = s.trim().split(':').collect();
        let [height, hash, root] = parts.as_slice() else {
            return Err(err(format!("{} fields", parts.len())));
        };
        let height: u64 = height
            .parse()
            .map_err(|e| err(format!("height {height:?}: {e}")))?;
        let hex32 = |name: &str, text: &str| {
            let mut out = [0u8; 32];
            hex::decode_to_slice(text, &mut out)
                .map_err(|e| err(format!("{name} {text:?}: {e}")))?;
            Ok(out)
        };
        let checkpoint = Checkpoint {
            height,
            blob_hash: hex32("hash", hash)?,
            state_root: hex32("root", root)?,
        };
        if height == 0 && checkpoint != Checkpoint::genesis() {
            return Err(err(
                "height 0 is genesis: zero hash and the empty tree's root".into(),
            ));
        }
        Ok(checkpoint)
    }
}

/// Where a light client that stays light takes its checkpoint from (see the module
/// documentation for the trust each implies).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CheckpointSource {
    /// Given by the operator (`--checkpoint`, seeds.toml `[light] checkpoint`).
    Config(Checkpoint),
    /// The newest blob of this full node (it must be reachable: add its address to the
    /// bootstrap sources).
    TrustedPeer(PeerId),
    /// The newest blob heard, verified under the key in force at `base` (genesis when
    /// `None`).
    Newest {
        /// The base checkpoint; `None`: genesis under the configured `da_authority`.
        base: Option<Checkpoint>,
    },
}

/// The DA authority keys a checkpoint follower needs: the key in force before the last
/// recorded epoch takes effect, and that epoch (O(1): older epochs are forgotten once a
/// newer one is recorded, which [`admit_rotation`] allows only after the last took
/// effect).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochKeys {
    /// The key of heights below `latest.effective_height` (all heights without `latest`).
    before: [u8; 32],
    /// The last recorded epoch.
    latest: Option<EpochRecord>,
}

impl EpochKeys {
    /// The keys at a point where `latest` is the last recorded epoch and `before` the key
    /// in force before it takes effect (the genesis authority, or the group key of the
    /// epoch before it).
    pub fn new(before: [u8; 32], latest: Option<EpochRecord>) -> EpochKeys {
        EpochKeys { before, latest }
    }

    /// The genesis authority alone (no rotation recorded).
    pub fn genesis(authority: [u8; 32]) -> EpochKeys {
        EpochKeys::new(authority, None)
    }

    /// The last recorded epoch.
    pub fn latest(&self) -> Option<&EpochRecord> {
        self.latest.as_ref()
    }

    /// The key that must sign the blob at `height` (final for heights up to the follower's
    /// tip + 1, as [`dsdn_protocols::da::KeyHistory::key_for`]).
    pub fn key_for(&self, height: u64) -> [u8; 32] {
        match &self.latest {
            Some(l) if l.effective_height <= height => l.group_key.0,
            _ => self.before,
        }
    }

    /// Verifies `blob` against the key of its height ([`EpochKeys::key_for`]) and, for a
    /// version-4 blob of the last recorded epoch, that its proposer is a member of it
    /// (issue 13 §6; the members of earlier epochs are not kept here, their blobs get the
    /// proposer-signature check of [`DaBlob::verify`]).
    ///
    /// # Errors
    /// As [`DaBlob::verify`]; [`DaError::BadProposer`] for a proposer outside the epoch.
    pub fn verify_blob(&self, blob: DaBlob, network: &NetworkId) -> Result<VerifiedBlob, DaError> {
        let key = self.key_for(blob.height);
        let verified = blob.verify(network, &key)?;
        if let (Some(proposer), Some(latest)) = (verified.proposer(), &self.latest) {
            if latest.effective_height <= verified.height() {
                check_member(proposer, &latest.members)?;
            }
        }
        Ok(verified)
    }

    /// Records the rotations `blob` (verified, at `blob.height`) carries that the DA state
    /// admits ([`admit_rotation`], the rule `DaState::apply_blob` applies); returns the
    /// epochs recorded.
    pub fn follow(&mut self, network: &NetworkId, blob: &DaBlob) -> Vec<u64> {
        let mut recorded = Vec::new();
        for event in &blob.events {
            if let DaEvent::CommitteeRotated(rotation) = event {
                if admit_rotation(self.latest.as_ref(), rotation, network, blob.height).is_ok() {
                    // Admitted only once `latest` is in force at this height.
                    self.before = self.key_for(blob.height);
                    self.latest = Some(EpochRecord::of(rotation, blob.height));
                    recorded.push(rotation.epoch);
                }
            }
        }
        recorded
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_parse_and_print_their_text_form() {
        let cp = Checkpoint {
            height: 42,
            blob_hash: [0xab; 32],
            state_root: [0x01; 32],
        };
        let text = cp.to_string();
        assert_eq!(text.parse::<Checkpoint>(), Ok(cp));
        assert_eq!(
            Checkpoint::genesis().to_string().parse::<Checkpoint>(),
            Ok(Checkpoint::genesis())
        );
        for bad in [
            "42",
            "42:ab",
            "x:00:00",
            &format!("42:{}:{}", "ab".repeat(31), "01".repeat(32)),
            &format!("42:{}:{}", "zz".repeat(32), "01".repeat(32)),
            &format!("0:{}:{}", "ab".repeat(32), "01".repeat(32)),
        ] {
            let e = bad.parse::<Checkpoint>().unwrap_err();
            assert!(e.to_string().contains("HEIGHT:HASH:ROOT"), "{e}");
        }
    }
}
