//! Start-up: the state stored in the log's file and the replay of the blobs above it
//! (issue 5 §3, issue 16 §1).

use super::*;
use crate::da::store::{SharedOverlay, StoredState};

/// Most commits written in one transaction while replaying at start (before the writer
/// runs).
const REPLAY_WRITE_BATCH: usize = 256;

/// Tree nodes of the commits waiting in the overlay above which the replay writes them
/// (before [`REPLAY_WRITE_BATCH`] commits): bounds the replay's memory, the overlay's
/// decoded nodes (~1 KiB each) and redb's dirty pages of one transaction, to tens of MiB.
const REPLAY_WRITE_NODES: usize = 64 * 1024;

/// Longest time the replay's writes stay unsynced ([`DaStore::write_replayed`]): a crash
/// during a long rebuild loses at most this much of its work.
const REPLAY_SYNC_INTERVAL: std::time::Duration = std::time::Duration::from_secs(30);

/// Blobs read from the log at once while replaying (each chunk in its own read
/// transaction), and their most bytes.
const REPLAY_READ_BLOBS: u32 = 64;
const REPLAY_READ_BYTES: usize = 16 << 20;

/// The state to resume from: the state stored in `store` (at its height, ≤ the log's tip),
/// read through a fresh overlay; an in-memory empty state without a store. A stored state
/// that cannot be read is cleared (reported, counted in `da_store_corrupt_total`) and
/// rebuilt from the log.
pub(super) fn load_state(
    network: &NetworkId,
    authority: Option<&[u8; 32]>,
    store: Option<&Arc<DaStore>>,
    metrics: &Metrics,
) -> (DaState, Option<SharedOverlay>) {
    let Some(store) = store else {
        return (DaState::new(network.clone()), None);
    };
    check_tip(network, authority, store);
    let opened = StoredState::open(store.clone()).or_else(|e| {
        metrics.da_store_corrupt.inc();
        tracing::error!(error = %e, "the DA state is unreadable: cleared, rebuilt from the log");
        if let Err(e) = store.clear_state() {
            tracing::error!(error = %e, "cannot clear the DA state");
        }
        StoredState::open(store.clone())
    });
    match opened {
        Ok((state, overlay)) => (
            DaState::with_store(network.clone(), Box::new(state)),
            Some(overlay),
        ),
        Err(e) => {
            // The file reads no more (it is being reopened after a write error): an empty
            // state in memory; the node rebuilds from the disk when the log recovers.
            tracing::error!(error = %e, "cannot read the DA state: starting empty");
            (DaState::new(network.clone()), None)
        }
    }
}

/// Re-verifies the blob at the stored state's height (one signature): when it does not
/// verify under `authority` nor under a group key recorded in the stored state (the
/// node's configured authority changed) or is not the state's tip, the state is cleared, so that the replay re-verifies the whole log and
/// truncates it at the first blob that fails.
fn check_tip(network: &NetworkId, authority: Option<&[u8; 32]>, store: &Arc<DaStore>) {
    let Ok(Some(header)) = store.state_header() else {
        return;
    };
    // A state restored by a state sync at the log's base has no blob at its height: its
    // checkpoint was verified against blob base + 1 when it was restored.
    if header.height == 0 || header.height == store.base() {
        return;
    }
    // The key of the tip's epoch is in the stored state, which is not open yet: any key
    // the state records will do here; the replay checks each blob against its epoch's key.
    let recorded = StoredState::open(store.clone())
        .ok()
        .map(|(s, _)| DaState::with_store(network.clone(), Box::new(s)))
        .and_then(|s| s.committee_epochs().ok())
        .unwrap_or_default();
    let ok = authority.is_some_and(|authority| {
        store
            .get(header.height)
            .ok()
            .flatten()
            .and_then(|b| {
                std::iter::once(*authority)
                    .chain(recorded.iter().map(|e| e.group_key.0))
                    .find_map(|k| DaBlob::decode_verified(&b, network, &k).ok())
            })
            .is_some_and(|b| b.hash() == header.tip_hash.0)
    });
    if !ok {
        tracing::warn!(
            height = header.height,
            "the stored DA state's tip blob does not verify under the configured authority: \
             the state is rebuilt and the log re-verified"
        );
        if let Err(e) = store.clear_state() {
            tracing::error!(error = %e, "cannot clear the DA state");
        }
    }
}

/// Verifies and applies every stored blob after the chain's height. The first blob that
/// fails (undecodable, bad signature, broken chain) is dropped from the log with everything
/// after it; peers backfill the rest. With `write_now` (at start, before the writer
/// runs), the state commits are written to `store` in batches as the replay goes;
/// otherwise they stay in the overlay's outbox for the writer; the batches are written
/// unsynced, synced every [`REPLAY_SYNC_INTERVAL`] and at the end
/// ([`DaStore::write_replayed`]).
pub(super) fn replay(
    chain: &mut DaChain,
    store: &DaStore,
    overlay: Option<&SharedOverlay>,
    write_now: bool,
    network: &NetworkId,
    authority: Option<[u8; 32]>,
) {
    let Some(mut keys) = super::keys::history_of(authority, chain.state()) else {
        return;
    };
    let mut bad: Option<(u64, String)> = None;
    let from = chain.height() + 1;
    let mut applied = 0usize;
    let mut write_error = None;
    let mut unsynced = false;
    let mut synced_at = std::time::Instant::now();
    let mut write = |force: bool| {
        let Some(overlay) = overlay.filter(|_| write_now) else {
            return true;
        };
        let mut o = crate::da::store::overlay_lock(overlay);
        let commits = o.take_outbox();
        let nodes: usize = commits
            .iter()
            .map(|c| c.tree.node_batch.nodes().len())
            .sum();
        let small = commits.len() < REPLAY_WRITE_BATCH && nodes < REPLAY_WRITE_NODES;
        let nothing = commits.is_empty() && !(force && unsynced);
        if nothing || (!force && small) {
            o.put_back(commits);
            return true;
        }
        // Unsynced but every REPLAY_SYNC_INTERVAL and at the end (a synced write makes the
        // ones before it durable too): a crash meanwhile leaves an older state, which the
        // next start replays on from.
        let sync = force || synced_at.elapsed() >= REPLAY_SYNC_INTERVAL;
        match store.write_replayed(&commits, sync) {
            Ok(()) => {
                unsynced = !sync;
                if sync {
                    synced_at = std::time::Instant::now();
                }
                o.release(store.state_tip());
                true
            }
            Err(e) => {
                o.put_back(commits);
                write_error = Some(e.to_string());
                false
            }
        }
    };
    // Blobs are read in chunks, each from its own read transaction: a read transaction
    // held across the replay's write transactions would keep redb from reusing any page
    // they free, and the file would grow by every page the rebuild rewrites.
    let mut next = from;
    let mut result = Ok(());
    'chunks: loop {
        let chunk = match store.range(next, REPLAY_READ_BLOBS, REPLAY_READ_BYTES) {
            Ok(chunk) if !chunk.is_empty() => chunk,
            Ok(_) => break,
            Err(e) => {
                result = Err(e);
                break;
            }
        };
        for bytes in chunk {
            let height = next;
            next += 1;
            let verified = super::keys::verify_with(Some(&keys), network, &bytes)
                .map_err(|e| e.to_string())
                .and_then(|b| {
                    if b.height() == height {
                        Ok(b)
                    } else {
                        Err(format!("stored at height {height}, claims {}", b.height()))
                    }
                });
            let go_on = match verified.map(|b| chain.offer(b)) {
                Ok(Offer::Applied(blobs)) => {
                    applied += 1;
                    if super::keys::rotates(&blobs) {
                        if let Some(k) = super::keys::history_of(authority, chain.state()) {
                            keys = k;
                        }
                    }
                    write(false)
                }
                Ok(other) => {
                    bad = Some((height, format!("{other:?}")));
                    false
                }
                Err(e) => {
                    bad = Some((height, e));
                    false
                }
            };
            if !go_on {
                break 'chunks;
            }
        }
    }
    write(true);
    if let Err(e) = result {
        tracing::error!(error = %e, "cannot read the DA log");
    }
    if let Some(e) = write_error {
        tracing::error!(error = %e, "cannot write the rebuilt DA state: the writer retries");
    }
    if applied > 0 {
        tracing::info!(
            from,
            applied,
            "DA state rebuilt from the stored blobs above it"
        );
    }
    if let Some((height, error)) = bad {
        tracing::error!(height, %error, "a stored DA blob failed verification: the log is truncated there and backfilled from peers");
        if let Err(e) = store.truncate_from(height) {
            tracing::error!(error = %e, "cannot truncate the DA log");
        }
    }
}
