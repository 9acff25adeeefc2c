//! [`Follower`]: the pure part of a light client that stays light (issue 16 §4). From a
//! [`Checkpoint`] it takes blobs forward, one height at a time, and keeps O(1) state: the
//! checkpoint, the tip header, the newest trusted header and the committee keys
//! ([`EpochKeys`]). It holds no DA state; questions about the state are answered with
//! proofs against [`Follower::trusted`].
//!
//! Each blob `h = tip + 1` is checked: it decodes, is of this network and is signed by the
//! key of its height ([`EpochKeys::key_for`]); its `prev_hash` is the tip's hash; its
//! timestamp does not go back. The first blob after the checkpoint must also commit to the
//! checkpoint's root (`prev_state_root`): a checkpoint whose hash or root is not the
//! network's is refused ([`FollowError::CheckpointMismatch`]). A version-2 blob `h`
//! commits to the root after `h - 1`, so once `h` is verified the header `h - 1` (height,
//! hash, root) is trusted: the trusted root is always one blob behind the tip, as a
//! Tendermint light client trusts the AppHash of `H` from the header of `H + 1`.
//! `committee_rotated` events in the followed blobs are admitted by the state's own rule and
//! change the key from their `effective_height` on.

use dsdn_protocols::da::{DaBlob, DaError, VerifiedBlob};
use dsdn_protocols::NetworkId;

use super::checkpoint::{Checkpoint, EpochKeys};

/// Why a blob was not taken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FollowError {
    /// Not the next height (duplicates and blobs ahead are not errors of the sender: the
    /// caller fetches the gap).
    #[error("blob at height {got}, the follower expects {expected}")]
    NotNext {
        /// `tip + 1`.
        expected: u64,
        /// The blob's height.
        got: u64,
    },
    /// The blob does not decode or verify (network, bounds, signature by the key of its
    /// height).
    #[error("blob at height {height} refused: {error}")]
    Invalid {
        /// The blob's height (0 when it did not decode).
        height: u64,
        /// Why.
        error: DaError,
    },
    /// The first blob after the checkpoint, validly signed, does not link to the
    /// checkpoint's hash or does not commit to its root: the checkpoint is not on the
    /// network's chain.
    #[error("checkpoint {checkpoint} refused: the network's signed blob {} commits to {what} {}, the checkpoint says {}",
        checkpoint.height + 1, hex::encode(network), hex::encode(ours))]
    CheckpointMismatch {
        /// The checkpoint.
        checkpoint: Box<Checkpoint>,
        /// `blob hash` or `state root`.
        what: &'static str,
        /// What the signed blob commits to.
        network: [u8; 32],
        /// What the checkpoint says.
        ours: [u8; 32],
    },
    /// The first blob after the checkpoint is a version-1 blob: it commits to no state root,
    /// so the checkpoint's root cannot be checked.
    #[error(
        "checkpoint at height {0} cannot be checked: the next blob is of version 1 (no state root)"
    )]
    Unverifiable(u64),
    /// A later blob does not link to the tip's hash (another chain).
    #[error("blob at height {height} does not link to the tip's hash")]
    PrevHash {
        /// The blob's height.
        height: u64,
    },
    /// Its timestamp is before the tip's.
    #[error("blob at height {height}: timestamp goes back")]
    TimestampRegression {
        /// The blob's height.
        height: u64,
    },
}

impl FollowError {
    /// True when the error refutes the checkpoint itself (fatal: the client stops) rather
    /// than one blob of one peer.
    pub fn refutes_checkpoint(&self) -> bool {
        matches!(
            self,
            FollowError::CheckpointMismatch { .. } | FollowError::Unverifiable(_)
        )
    }
}

/// The newest header the follower trusts with its state root: usable for proofs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TrustedHead {
    /// The header (height, blob hash, state root after it).
    pub header: Checkpoint,
    /// The follower's tip (the verified blob that committed to `header`; equal to
    /// `header.height` right after start).
    pub tip: u64,
}

/// See the module documentation.
#[derive(Clone, Debug)]
pub struct Follower {
    network: NetworkId,
    checkpoint: Checkpoint,
    keys: EpochKeys,
    tip_height: u64,
    tip_hash: [u8; 32],
    tip_timestamp_ms: Option<u64>,
    trusted: Checkpoint,
    taken: u64,
}

impl Follower {
    /// A follower at `checkpoint` verifying with `keys` (the keys in force at the
    /// checkpoint: proved against its root, or the genesis authority at height 0).
    pub fn new(network: NetworkId, checkpoint: Checkpoint, keys: EpochKeys) -> Follower {
        Follower {
            network,
            checkpoint,
            keys,
            tip_height: checkpoint.height,
            tip_hash: checkpoint.blob_hash,
            tip_timestamp_ms: None,
            trusted: checkpoint,
            taken: 0,
        }
    }

    /// The checkpoint it started from.
    pub fn checkpoint(&self) -> Checkpoint {
        self.checkpoint
    }

    /// The height of the last blob taken (the checkpoint's before any).
    pub fn tip(&self) -> u64 {
        self.tip_height
    }

    /// Blobs taken since the checkpoint.
    pub fn taken(&self) -> u64 {
        self.taken
    }

    /// The committee keys.
    pub fn keys(&self) -> &EpochKeys {
        &self.keys
    }

    /// The newest trusted header and the tip.
    pub fn trusted(&self) -> TrustedHead {
        TrustedHead {
            header: self.trusted,
            tip: self.tip_height,
        }
    }

    /// The height of an encoded blob, if it decodes (to route gossip: next, gap or old).
    pub fn height_of(bytes: &[u8]) -> Option<u64> {
        DaBlob::from_bytes(bytes).ok().map(|b| b.height)
    }

    /// Takes the blob `bytes` if it is the valid next one (see the module documentation);
    /// returns it verified. The trusted header moves to `height - 1` (version-2 blobs).
    ///
    /// # Errors
    /// [`FollowError`]; nothing changes on error.
    pub fn offer(&mut self, bytes: &[u8]) -> Result<VerifiedBlob, FollowError> {
        let blob =
            DaBlob::from_bytes(bytes).map_err(|error| FollowError::Invalid { height: 0, error })?;
        let height = blob.height;
        if height != self.tip_height + 1 {
            return Err(FollowError::NotNext {
                expected: self.tip_height + 1,
                got: height,
            });
        }
        let verified = self
            .keys
            .verify_blob(blob, &self.network)
            .map_err(|error| FollowError::Invalid { height, error })?;
        let first = self.tip_height == self.checkpoint.height;
        if verified.prev_hash() != self.tip_hash {
            return Err(if first {
                FollowError::CheckpointMismatch {
                    checkpoint: Box::new(self.checkpoint),
                    what: "blob hash",
                    network: verified.prev_hash(),
                    ours: self.checkpoint.blob_hash,
                }
            } else {
                FollowError::PrevHash { height }
            });
        }
        match verified.prev_state_root() {
            Some(root) if first && root != self.checkpoint.state_root => {
                return Err(FollowError::CheckpointMismatch {
                    checkpoint: Box::new(self.checkpoint),
                    what: "state root",
                    network: root,
                    ours: self.checkpoint.state_root,
                })
            }
            None if first && self.checkpoint.height > 0 => {
                return Err(FollowError::Unverifiable(self.checkpoint.height))
            }
            _ => {}
        }
        let ts = verified.blob().timestamp_ms;
        if self.tip_timestamp_ms.is_some_and(|t| ts < t) {
            return Err(FollowError::TimestampRegression { height });
        }
        if let Some(root) = verified.prev_state_root() {
            self.trusted = Checkpoint {
                height: height - 1,
                blob_hash: self.tip_hash,
                state_root: root,
            };
        }
        for epoch in self.keys.follow(&self.network, verified.blob()) {
            tracing::info!(
                epoch,
                height,
                "committee rotation recorded: the light client follows the new key from its effective height"
            );
        }
        self.tip_height = height;
        self.tip_hash = verified.hash();
        self.tip_timestamp_ms = Some(ts);
        self.taken += 1;
        Ok(verified)
    }
}

/// Whether `bytes`, a blob the client heard (the newest it knows), may replace `base` as
/// the checkpoint ([`super::CheckpointSource::Newest`]): it must be ahead of `base + 1`,
/// of this network, signed by the key `keys` (the keys in force at `base`) give its
/// height, and commit to a root. Returns the checkpoint it commits to (its height − 1).
///
/// # Errors
/// [`FollowError::Invalid`] when it does not decode or verify (e.g. a rotation took effect
/// since `base`), [`FollowError::NotNext`] when it is not ahead of `base + 1`,
/// [`FollowError::Unverifiable`] for a version-1 blob.
pub fn checkpoint_from_newest(
    network: &NetworkId,
    base: Checkpoint,
    keys: &EpochKeys,
    bytes: &[u8],
) -> Result<Checkpoint, FollowError> {
    let blob =
        DaBlob::from_bytes(bytes).map_err(|error| FollowError::Invalid { height: 0, error })?;
    let height = blob.height;
    if height <= base.height + 1 {
        return Err(FollowError::NotNext {
            expected: base.height + 2,
            got: height,
        });
    }
    let verified = keys
        .verify_blob(blob, network)
        .map_err(|error| FollowError::Invalid { height, error })?;
    Checkpoint::committed_by(verified.blob()).ok_or(FollowError::Unverifiable(height - 1))
}

#[cfg(test)]
#[path = "follow_tests.rs"]
mod tests;
