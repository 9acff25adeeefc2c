//! Start-up: the snapshot to resume from and the replay of the stored log (issue 5 §3).

use super::*;

/// The state to resume from: the snapshot when it decodes, verifies and matches the stored
/// log at its height; otherwise an empty state (the log is replayed from height 1).
pub(super) fn load_state(
    network: &NetworkId,
    authority: Option<&[u8; 32]>,
    store: Option<&DaStore>,
    path: Option<&std::path::Path>,
    metrics: &Metrics,
) -> DaState {
    let fresh = DaState::new(network.clone());
    let (Some(store), Some(path), Some(authority)) = (store, path, authority) else {
        return fresh;
    };
    let bytes = match store::load_snapshot(path, MAX_SNAPSHOT_BYTES) {
        Ok(Some(bytes)) => bytes,
        Ok(None) => return fresh,
        Err(e) => {
            corrupt_snapshot(path, &e, metrics);
            return fresh;
        }
    };
    let state = match DaState::from_snapshot(&bytes, network) {
        Ok(s) => s,
        // An older (or newer) snapshot format is not damage: it is a cache, rebuilt by
        // replaying the log, and overwritten by the next snapshot.
        Err(DaError::UnsupportedVersion(v)) => {
            tracing::info!(
                version = v,
                "the DA state snapshot has another format version: replaying the log"
            );
            return fresh;
        }
        Err(e) => {
            corrupt_snapshot(path, &e, metrics);
            return fresh;
        }
    };
    if state.height() == 0 {
        return fresh;
    }
    let matches = state.height() <= store.tip()
        && store
            .get(state.height())
            .ok()
            .flatten()
            .and_then(|b| DaBlob::decode_verified(&b, network, authority).ok())
            .is_some_and(|b| b.hash() == state.tip_hash());
    if matches {
        tracing::info!(height = state.height(), "DA state snapshot loaded");
        state
    } else {
        tracing::warn!(
            snapshot_height = state.height(),
            log_height = store.tip(),
            "the DA state snapshot does not match the log: replaying the log"
        );
        fresh
    }
}

fn corrupt_snapshot(path: &std::path::Path, error: &dyn std::fmt::Display, metrics: &Metrics) {
    metrics.da_store_corrupt.inc();
    match store::move_aside(path) {
        Ok(to) => {
            tracing::error!(%error, moved_to = %to.display(), "the DA state snapshot was corrupt: moved aside; replaying the log")
        }
        Err(e) => {
            tracing::error!(%error, move_error = %e, "the DA state snapshot is corrupt and cannot be moved aside; replaying the log")
        }
    }
}

/// Verifies and applies every stored blob after the chain's height. The first blob that
/// fails (undecodable, bad signature, broken chain) is dropped from the log with everything
/// after it; peers backfill the rest.
pub(super) fn replay(
    chain: &mut DaChain,
    store: &DaStore,
    network: &NetworkId,
    authority: &[u8; 32],
) {
    let mut bad: Option<(u64, String)> = None;
    let from = chain.height() + 1;
    let result = store.for_each_from(from, |height, bytes| {
        let verified = DaBlob::decode_verified(bytes, network, authority)
            .map_err(|e| e.to_string())
            .and_then(|b| {
                if b.height() == height {
                    Ok(b)
                } else {
                    Err(format!("stored at height {height}, claims {}", b.height()))
                }
            });
        match verified.map(|b| chain.offer(b)) {
            Ok(Offer::Applied(_)) => true,
            Ok(other) => {
                bad = Some((height, format!("{other:?}")));
                false
            }
            Err(e) => {
                bad = Some((height, e));
                false
            }
        }
    });
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot read the DA log");
    }
    if let Some((height, error)) = bad {
        tracing::error!(height, %error, "a stored DA blob failed verification: the log is truncated there and backfilled from peers");
        if let Err(e) = store.truncate_from(height) {
            tracing::error!(error = %e, "cannot truncate the DA log");
        }
    }
}
