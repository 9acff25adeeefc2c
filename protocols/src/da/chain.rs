//! In-order application of verified blobs with a bounded hold for blobs that arrive early
//! (14A validation: "delay / reorder blob — state tetap konsisten").
//!
//! Gossip and sync deliver blobs in any order and more than once. [`DaChain::offer`] applies
//! the blob that extends the tip, holds blobs further ahead (at most [`MAX_PENDING_BLOBS`]
//! heights ahead and [`MAX_PENDING_BYTES`] of encoded blobs) and releases them, in height
//! order, once the gap before them fills. Whatever the arrival order, the same blobs give
//! the same [`DaState`].

use std::collections::BTreeMap;

use super::{DaState, VerifiedBlob};

/// How far ahead of the tip a blob may be held: heights `tip + 2 ..= tip + MAX_PENDING_BLOBS`.
pub const MAX_PENDING_BLOBS: usize = 1024;

/// Most bytes of held blobs (sum of their [`VerifiedBlob::encoded`] lengths).
pub const MAX_PENDING_BYTES: usize = 64 * 1024 * 1024;

/// Why a verified blob does not fit the chain. The sender of such a blob is to be
/// penalised: a correctly signed blob that breaks the chain is equivocation or tampering
/// upstream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    /// The blob does not extend the tip: its `prev_hash` is not the tip's hash (or its
    /// height or network is not the next of this chain).
    #[error("DA blob {height} does not extend the applied tip")]
    PrevHashMismatch {
        /// The blob's height.
        height: u64,
    },
    /// The blob's `timestamp_ms` is below the previous blob's.
    #[error("DA blob {height} has a timestamp before its predecessor's")]
    TimestampRegression {
        /// The blob's height.
        height: u64,
    },
    /// The blob's `prev_state_root` is not this node's state root after blob `height - 1`:
    /// the sealer (authority or committee) committed to another state. A signed blob with a
    /// wrong root is a fault of its signers; it is refused and counted
    /// (`da_blobs_rejected_total{reason="state_root_mismatch"}`).
    #[error(
        "DA blob {height} commits to state root {} after height {}, this node's is {}",
        hex::encode(.found), .height.saturating_sub(1), hex::encode(.expected)
    )]
    StateRootMismatch {
        /// The blob's height (≥ 1).
        height: u64,
        /// This node's root after `height - 1`.
        expected: [u8; 32],
        /// The blob's `prev_state_root`.
        found: [u8; 32],
    },
    /// A different blob at the tip height, or at a height already held.
    #[error("a different DA blob {height} is already applied or held")]
    Conflict {
        /// The blob's height.
        height: u64,
    },
    /// A recorded committee epoch is in force at the blob's height and the blob is not
    /// signed by its group key (issue 13 §3 key history).
    #[error("DA blob {height} is not signed by the group key of committee epoch {epoch}")]
    WrongEpochKey {
        /// The blob's height.
        height: u64,
        /// The epoch in force at that height.
        epoch: u64,
    },
    /// The node's state store failed while applying the blob (a local fault, not the
    /// blob's: the state is unchanged and the blob may be offered again).
    #[error("DA state store failed: {0}")]
    Storage(String),
}

impl ChainError {
    /// A stable metric label: `prev_hash_mismatch`, `timestamp_regression`,
    /// `state_root_mismatch`, `conflict`, `wrong_epoch_key`, `storage`.
    pub fn reason(&self) -> &'static str {
        match self {
            ChainError::PrevHashMismatch { .. } => "prev_hash_mismatch",
            ChainError::TimestampRegression { .. } => "timestamp_regression",
            ChainError::StateRootMismatch { .. } => "state_root_mismatch",
            ChainError::Conflict { .. } => "conflict",
            ChainError::WrongEpochKey { .. } => "wrong_epoch_key",
            ChainError::Storage(_) => "storage",
        }
    }
}

/// What [`DaChain::offer`] did with a blob.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Offer {
    /// Applied: this blob and the held blobs it released, in height order (to store).
    Applied(Vec<VerifiedBlob>),
    /// Ahead of the tip: held until the gap before it fills.
    Held,
    /// Already applied (a height below the tip, or the tip's hash) or held with the same
    /// hash.
    Duplicate,
    /// Beyond `tip + MAX_PENDING_BLOBS`, or the held bytes would exceed
    /// [`MAX_PENDING_BYTES`]: dropped, offer it again later.
    TooFarAhead,
    /// Breaks the chain: not stored.
    Rejected(ChainError),
}

/// The DA log follower of one node: a [`DaState`] plus the blobs held ahead of its tip.
#[derive(Debug)]
pub struct DaChain {
    state: DaState,
    pending: BTreeMap<u64, VerifiedBlob>,
    pending_bytes: usize,
    max_pending_blobs: usize,
    max_pending_bytes: usize,
}

impl DaChain {
    /// A chain continuing from `state` (empty, opened from a store, or replayed).
    pub fn new(state: DaState) -> DaChain {
        Self::with_limits(state, MAX_PENDING_BLOBS, MAX_PENDING_BYTES)
    }

    /// A chain with other hold bounds (tests exercise the bounds with small values).
    pub(crate) fn with_limits(state: DaState, max_blobs: usize, max_bytes: usize) -> DaChain {
        DaChain {
            state,
            pending: BTreeMap::new(),
            pending_bytes: 0,
            max_pending_blobs: max_blobs,
            max_pending_bytes: max_bytes,
        }
    }

    /// Offers a verified blob (of this chain's network).
    ///
    /// Heights at or below the tip: `Duplicate` when it is the tip's hash or below the tip
    /// (applied hashes of older heights are not kept), `Rejected(Conflict)` for another
    /// blob at the tip height. The next height is applied at once (or `Rejected` with
    /// [`DaState::apply_blob`]'s error) and releases the held blobs after it; a released
    /// blob that breaks the chain is dropped together with every blob held after it (they
    /// can only descend from it; sync fetches them again). Heights further ahead are held
    /// within the bounds, `Duplicate` when the same blob is held, `Rejected(Conflict)` when
    /// a different one is.
    pub fn offer(&mut self, blob: VerifiedBlob) -> Offer {
        let tip = self.state.height();
        let height = blob.height();
        if height <= tip {
            return if height == tip && blob.hash() != self.state.tip_hash() {
                Offer::Rejected(ChainError::Conflict { height })
            } else {
                Offer::Duplicate
            };
        }
        if height == tip + 1 {
            if let Err(e) = self.state.apply_blob(&blob) {
                return Offer::Rejected(e);
            }
            let mut applied = vec![blob];
            self.release(&mut applied);
            return Offer::Applied(applied);
        }
        if let Some(held) = self.pending.get(&height) {
            return if held.hash() == blob.hash() {
                Offer::Duplicate
            } else {
                Offer::Rejected(ChainError::Conflict { height })
            };
        }
        let size = blob.encoded().len();
        if height - tip > self.max_pending_blobs as u64
            || self.pending.len() >= self.max_pending_blobs
            || self.pending_bytes + size > self.max_pending_bytes
        {
            return Offer::TooFarAhead;
        }
        self.pending_bytes += size;
        self.pending.insert(height, blob);
        Offer::Held
    }

    fn take(&mut self, height: u64) -> Option<VerifiedBlob> {
        let blob = self.pending.remove(&height)?;
        self.pending_bytes = self.pending_bytes.saturating_sub(blob.encoded().len());
        Some(blob)
    }

    /// Applies held blobs that now extend the tip; on the first that breaks the chain, drops
    /// it and everything held.
    fn release(&mut self, applied: &mut Vec<VerifiedBlob>) {
        // Nothing at or below the tip may stay held.
        while let Some((&h, _)) = self.pending.first_key_value() {
            if h > self.state.height() {
                break;
            }
            self.take(h);
        }
        while let Some(next) = self.take(self.state.height() + 1) {
            if self.state.apply_blob(&next).is_err() {
                self.pending.clear();
                self.pending_bytes = 0;
                return;
            }
            applied.push(next);
        }
    }

    /// The state built so far.
    pub fn state(&self) -> &DaState {
        &self.state
    }

    /// The chain's state, giving up the held blobs.
    pub fn into_state(self) -> DaState {
        self.state
    }

    /// Height of the last applied blob (0 before genesis).
    pub fn height(&self) -> u64 {
        self.state.height()
    }

    /// Hash of the last applied blob (zeros before genesis).
    pub fn tip_hash(&self) -> [u8; 32] {
        self.state.tip_hash()
    }

    /// The state root after the last applied blob (the empty tree's root before genesis):
    /// the `prev_state_root` of the next blob.
    pub fn state_root(&self) -> [u8; 32] {
        self.state.state_root()
    }

    /// The blob held (verified, not applied yet) at `height`, if any.
    pub fn held(&self, height: u64) -> Option<&VerifiedBlob> {
        self.pending.get(&height)
    }

    /// Number of blobs held ahead of the tip (≤ [`MAX_PENDING_BLOBS`]).
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Encoded bytes of the held blobs (≤ [`MAX_PENDING_BYTES`]).
    pub fn pending_bytes(&self) -> usize {
        self.pending_bytes
    }

    /// `timestamp_ms` of the last applied blob, UNIX milliseconds (0 before genesis).
    pub fn last_timestamp_ms(&self) -> u64 {
        self.state.last_timestamp_ms()
    }

    /// The first missing range of heights, `[tip + 1, first held height)` (end exclusive),
    /// when blobs are held; `None` otherwise.
    pub fn gap(&self) -> Option<(u64, u64)> {
        let (&first, _) = self.pending.first_key_value()?;
        Some((self.state.height() + 1, first))
    }

    /// Highest held height (0 when none is held).
    pub fn highest_held(&self) -> u64 {
        self.pending.last_key_value().map_or(0, |(&h, _)| h)
    }
}
