//! The committee keys in force at a newer blob, learnt through the rotation blobs since a
//! base (issue 16 §4 and §5, issue 13 §3): what lets a light client take the newest blob as
//! its checkpoint, and a new full node sync the state at it, after rotations.
//!
//! The newest blob `N` a node hears is signed by the key of its epoch, which a node holding
//! only the keys in force at a base (genesis: the configured `da_authority`) does not
//! know. The walk learns it from the log without trusting the peer:
//!
//! 1. the peer proves `committee:latest` and each `committee:<e>` after the base's epoch
//!    against the state root `N` commits to (`prev_state_root`, the root at `N − 1`). That
//!    root is **not trusted yet**: the records only say where to look (`sealed_at`);
//! 2. for each epoch in order, the blob at `sealed_at` is fetched and verified under the key
//!    in force at that height (known from the step before: a rotation is sealed by the
//!    committee it replaces, [`dsdn_protocols::da::epochs::admit_rotation`]); the rotation
//!    it carries is admitted by the same rule the DA state applies
//!    ([`EpochKeys::follow`]) and must be the proved record's;
//! 3. the caller then verifies `N` itself under the keys learnt
//!    ([`super::checkpoint_from_newest`]), which makes its `prev_state_root` trusted.
//!
//! A peer that lies about a record gives a blob that does not verify or carries no such
//! rotation; one that hides a later rotation leaves `N` unverifiable: the walk or the
//! caller's check fails, and the caller falls back (another peer, or following the log
//! forward from the base). Cost: 1 + 2 requests per epoch since the base, at most
//! [`MAX_WALK_EPOCHS`] epochs (about four years at the default 6 h epochs); memory O(1).

use dsdn_protocols::da::prove::{ProofRequest, ProofResponse};
use dsdn_protocols::da::sync::SyncRequest;
use dsdn_protocols::da::{DaBlob, EpochRecord, StateKey, StateValue};
use dsdn_protocols::NetworkId;
use libp2p::PeerId;

use super::checkpoint::{Checkpoint, EpochKeys};
use crate::handle::NodeHandle;

/// Most epochs one walk goes through; a base further behind gives
/// [`WalkError::TooManyEpochs`] (take a newer base checkpoint).
pub const MAX_WALK_EPOCHS: u64 = 8192;

/// Where the walk reads the log: a full node (or several).
pub(crate) trait RotationSource {
    /// The value of `key` at `height`, proved against `root` (the proof is checked by the
    /// source; an error when no proof is had or it does not verify).
    async fn proved(
        &mut self,
        height: u64,
        root: [u8; 32],
        key: &StateKey,
    ) -> Result<Option<StateValue>, String>;

    /// The encoded blob at `height` (unverified).
    async fn blob(&mut self, height: u64) -> Result<Vec<u8>, String>;
}

/// A [`RotationSource`] over the network: proofs (`/dsdn/<net>/da-proof/1.0.0`) and blobs
/// (`/dsdn/<net>/da-sync/1.0.0`) asked of `peer`, or of a connected full node the node picks
/// when `None`.
pub(crate) struct PeerSource<'a> {
    /// The node's handle.
    pub(crate) handle: &'a NodeHandle,
    /// The full node to ask.
    pub(crate) peer: Option<PeerId>,
}

impl RotationSource for PeerSource<'_> {
    async fn proved(
        &mut self,
        height: u64,
        root: [u8; 32],
        key: &StateKey,
    ) -> Result<Option<StateValue>, String> {
        let request = ProofRequest::new(key, Some(height));
        match self.handle.da_prove_remote_at(self.peer, request).await {
            Err(_) => Err("the node stopped".into()),
            Ok(Err(e)) => Err(format!("proof of {key} at {height}: {e}")),
            Ok(Ok(ProofResponse::Proof(proof))) => super::prove::check(key, height, root, &proof)
                .map(|p| p.value)
                .map_err(|e| format!("proof of {key} at {height}: {e}")),
            Ok(Ok(other)) => Err(format!("proof of {key} at {height}: {other:?}")),
        }
    }

    async fn blob(&mut self, height: u64) -> Result<Vec<u8>, String> {
        let request = SyncRequest {
            from: height,
            count: 1,
        };
        match self.handle.da_sync_raw(self.peer, request).await {
            Err(_) => Err("the node stopped".into()),
            Ok(Err(e)) => Err(format!("blob {height}: {e}")),
            Ok(Ok((peer, r))) => r
                .blobs
                .into_iter()
                .next()
                .map(|b| b.to_vec())
                .ok_or_else(|| format!("{peer} has no blob at height {height}")),
        }
    }
}

/// Why the walk did not learn the keys of the newest blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkError {
    /// The newest blob commits to no state root (version 1) or is at height 0/1.
    #[error("the newest blob (height {0}) commits to no earlier state")]
    NoCheckpoint(u64),
    /// The peer's state at the candidate checkpoint records no epoch after the base's.
    #[error("no committee rotation after epoch {base} is recorded at height {height}")]
    NoRotation {
        /// The base's last epoch (0: genesis).
        base: u64,
        /// The candidate checkpoint height.
        height: u64,
    },
    /// More than [`MAX_WALK_EPOCHS`] epochs since the base.
    #[error("{0} epochs since the base checkpoint (at most {MAX_WALK_EPOCHS}): take a newer base")]
    TooManyEpochs(u64),
    /// A source request failed, or a proved value is not what the walk needs.
    #[error("{0}")]
    Source(String),
    /// The blob named by a record is not a verified rotation to that record.
    #[error("epoch {epoch}: the blob at height {height} {why}")]
    BadRotation {
        /// The epoch walked to.
        epoch: u64,
        /// The record's `sealed_at`.
        height: u64,
        /// What is wrong with it.
        why: String,
    },
}

/// The keys in force at `newest` (decoded, unverified), learnt from `base_keys` through the
/// rotation blobs recorded since (module docs). Returns `base_keys` unchanged when the
/// candidate state records no epoch after the base's (the caller's verification of `newest`
/// then decides).
///
/// # Errors
/// [`WalkError`]; nothing learnt is kept.
pub(crate) async fn keys_at_newest<S: RotationSource>(
    source: &mut S,
    network: &NetworkId,
    base_keys: &EpochKeys,
    newest: &DaBlob,
) -> Result<EpochKeys, WalkError> {
    let candidate =
        Checkpoint::committed_by(newest).ok_or(WalkError::NoCheckpoint(newest.height))?;
    let base_epoch = base_keys.latest().map_or(0, |r| r.epoch);
    let latest = match source
        .proved(
            candidate.height,
            candidate.state_root,
            &StateKey::CommitteeLatest,
        )
        .await
        .map_err(WalkError::Source)?
    {
        Some(StateValue::CommitteeLatest { epoch }) => epoch,
        None => base_epoch,
        Some(other) => {
            return Err(WalkError::Source(format!(
                "committee:latest proved as {other:?}"
            )))
        }
    };
    if latest <= base_epoch {
        return Ok(base_keys.clone());
    }
    if latest - base_epoch > MAX_WALK_EPOCHS {
        return Err(WalkError::TooManyEpochs(latest - base_epoch));
    }
    let mut keys = base_keys.clone();
    for epoch in base_epoch + 1..=latest {
        let record = match source
            .proved(
                candidate.height,
                candidate.state_root,
                &StateKey::Committee(epoch),
            )
            .await
            .map_err(WalkError::Source)?
        {
            Some(StateValue::Committee(r)) if r.epoch == epoch => r,
            other => {
                return Err(WalkError::Source(format!(
                    "committee:{epoch} proved as {other:?}"
                )))
            }
        };
        let bytes = source
            .blob(record.sealed_at)
            .await
            .map_err(WalkError::Source)?;
        keys = through(network, keys, &record, &bytes)?;
    }
    Ok(keys)
}

/// `keys` after the rotation blob `bytes` that `record` names: verified under the key in
/// force at its height, carrying the rotation to exactly `record`'s committee.
fn through(
    network: &NetworkId,
    mut keys: EpochKeys,
    record: &EpochRecord,
    bytes: &[u8],
) -> Result<EpochKeys, WalkError> {
    let bad = |why: String| WalkError::BadRotation {
        epoch: record.epoch,
        height: record.sealed_at,
        why,
    };
    let blob = DaBlob::from_bytes(bytes).map_err(|e| bad(format!("does not decode: {e}")))?;
    if blob.height != record.sealed_at {
        return Err(bad(format!("claims height {}", blob.height)));
    }
    let verified = keys
        .verify_blob(blob, network)
        .map_err(|e| bad(format!("is not signed by the key in force there: {e}")))?;
    let recorded = keys.follow(network, verified.blob());
    let matches = keys.latest().is_some_and(|l| {
        l.epoch == record.epoch
            && l.group_key == record.group_key
            && l.effective_height == record.effective_height
            && l.members == record.members
            && l.threshold == record.threshold
    });
    if !recorded.contains(&record.epoch) || !matches {
        return Err(bad(
            "carries no admitted rotation to the proved record".into()
        ));
    }
    Ok(keys)
}

#[cfg(test)]
#[path = "rotations_tests.rs"]
mod tests;
