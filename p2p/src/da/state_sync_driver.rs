//! State sync of a new full node (issue 16 §5, PROTOCOL.md §5.3b): with `[da] state_sync =
//! "auto"` and an empty DA log, the node restores the DA state at a checkpoint from a
//! full-node peer instead of replaying the log from height 1, then follows the log from the
//! checkpoint + 1 (verify forward).
//!
//! The driver is a task of its own; the event loop only routes its requests
//! (`/dsdn/<net>/da-sync/1.0.0` for the newest blob, `/dsdn/<net>/da-state/1.0.0` for the
//! chunks) and, at the end, tells the DA service (held meanwhile: it applies and asks for
//! no height) to read the restored state from the disk. One attempt:
//!
//! 1. a connected full node (a peer advertising a service that keeps the log) is asked for
//!    its newest blob `N`; it must be signed by the genesis authority or, after committee
//!    rotations, by the key of its epoch learnt through the rotation blobs recorded since
//!    genesis (each verified under the key before it, [`crate::light::keys_at_newest`]), and
//!    it commits to the checkpoint `(N − 1, prev_hash, prev_state_root)`
//!    ([`crate::light::checkpoint_from_newest`], as a light client's `newest` source);
//! 2. the state at `N − 1` is asked for in chunks of up to [`MAX_CHUNK_ENTRIES`] entries;
//!    each is verified by [`StateRestore`] against the checkpoint's root before it is
//!    written ([`DaStore::restore_part`], on the blocking pool, never on the event loop);
//! 3. [`DaStore::restore_finish`] makes the log start at the checkpoint (its base).
//!
//! A failed attempt (the peer left, a refused chunk, a store error) discards what was
//! written ([`DaStore::restore_abort`]) and the next one asks another full node if there
//! is one; after [`MAX_ATTEMPTS`] failures, or with no full node within [`PEER_PATIENCE`],
//! the node replays from height 1 as with `state_sync = "off"` (logged). A network whose
//! log has fewer than 2 blobs has nothing worth syncing: replay too.
//!
//! Metrics: `da_state_sync_entries_total` (entries restored and verified, progress),
//! `da_state_sync_checkpoint_height` and `da_state_sync_seconds` (of the state sync that
//! completed), `da_state_sync_failures_total` (failed attempts).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dsdn_protocols::da::state::StateHeader;
use dsdn_protocols::da::state_sync::{
    RestoredPart, StateChunk, StateChunkRequest, StateChunkResponse, StateRestore,
    MAX_CHUNK_ENTRIES,
};
use dsdn_protocols::da::sync::SyncRequest;
use dsdn_protocols::da::{Bytes32, DaBlob};
use dsdn_protocols::{NetworkId, ServiceType};
use libp2p::PeerId;
use prometheus::{Gauge, IntCounter, IntGauge, Opts, Registry};
use tokio::sync::mpsc;

use super::store::{DaStore, DaStoreError};
use super::{DaService, StateSyncMode};
use crate::handle::NodeHandle;
use crate::light::{checkpoint_from_newest, keys_at_newest, Checkpoint, EpochKeys, PeerSource};
use crate::metrics::Metrics;

/// How long the driver waits for a connected full node (per attempt).
pub(crate) const PEER_PATIENCE: Duration = Duration::from_secs(30);

/// Attempts (each with another full node when there is one) before the replay from height
/// 1.
pub(crate) const MAX_ATTEMPTS: usize = 3;

/// How long a chunk may stay unavailable (`Busy`, or the peer's durable state not yet at
/// the checkpoint height) before the attempt fails.
const CHUNK_PATIENCE: Duration = Duration::from_secs(10);

/// Pause between two asks while waiting (for a peer, for a busy or lagging responder).
const RETRY_PAUSE: Duration = Duration::from_millis(20);

/// The state sync metrics (module docs), registered in the node's registry.
#[derive(Clone)]
struct StateSyncMetrics {
    entries: IntCounter,
    checkpoint: IntGauge,
    seconds: Gauge,
    failures: IntCounter,
}

impl StateSyncMetrics {
    fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let entries = IntCounter::with_opts(Opts::new(
            "da_state_sync_entries_total",
            "DA state entries restored by state sync, each verified against the checkpoint root.",
        ))?;
        let checkpoint = IntGauge::with_opts(Opts::new(
            "da_state_sync_checkpoint_height",
            "Checkpoint height of the completed DA state sync (0: none; the log starts after it).",
        ))?;
        let seconds = Gauge::with_opts(Opts::new(
            "da_state_sync_seconds",
            "Duration of the completed DA state sync, from the node's start to the restored state.",
        ))?;
        let failures = IntCounter::with_opts(Opts::new(
            "da_state_sync_failures_total",
            "Failed DA state sync attempts (peer gone, refused chunk, store error).",
        ))?;
        registry.register(Box::new(entries.clone()))?;
        registry.register(Box::new(checkpoint.clone()))?;
        registry.register(Box::new(seconds.clone()))?;
        registry.register(Box::new(failures.clone()))?;
        Ok(Self {
            entries,
            checkpoint,
            seconds,
            failures,
        })
    }
}

/// Starts the state sync of a node at start when `mode` is `auto` (the restore's page cache
/// is `rebuild_cache_mib`), the node has a genesis
/// authority, a tokio runtime runs, and its DA log on disk is empty (a light client has
/// none: nothing happens): holds `service` (it
/// applies and asks for no height until the driver reports) and spawns the driver, which
/// talks to the event loop through `handle`. Otherwise does nothing (logged when `auto`).
pub(crate) fn start(
    service: &mut DaService,
    (mode, rebuild_cache_mib): (StateSyncMode, usize),
    network: NetworkId,
    handle: NodeHandle,
    metrics: &Metrics,
) {
    // A light client (no log on disk) has nothing to restore into.
    if mode == StateSyncMode::Off || service.log_store().is_none() {
        return;
    }
    let Some(authority) = service.authority() else {
        tracing::warn!("da.state_sync = \"auto\" needs network.da_authority: no state sync");
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::warn!("no tokio runtime: no DA state sync, the log is replayed");
        return;
    };
    let Some(store) = service.hold_for_state_sync() else {
        tracing::info!("the DA log is not empty: no state sync, the log is replayed from it");
        return;
    };
    let metrics = match StateSyncMetrics::new(metrics.registry()) {
        Ok(m) => Some(m),
        Err(e) => {
            tracing::warn!(error = %e, "cannot register the state sync metrics");
            None
        }
    };
    tracing::info!("DA state sync: the log is empty, waiting for a full node");
    let driver = Driver {
        handle,
        network,
        authority,
        store,
        metrics,
        started: Instant::now(),
        cache_bytes: rebuild_cache_mib << 20,
    };
    runtime.spawn(driver.run());
}

/// What a completed state sync did.
struct Done {
    checkpoint: Checkpoint,
    peer: PeerId,
    chunks: u64,
    entries: u64,
}

struct Driver {
    handle: NodeHandle,
    network: NetworkId,
    authority: [u8; 32],
    store: Arc<DaStore>,
    metrics: Option<StateSyncMetrics>,
    started: Instant,
    /// The restore's page cache (`[da] rebuild_cache_mib`), in bytes.
    cache_bytes: usize,
}

impl Driver {
    async fn run(self) {
        let restored = match self.sync().await {
            Ok(Some(done)) => {
                let took = self.started.elapsed();
                if let Some(m) = &self.metrics {
                    m.checkpoint.set(done.checkpoint.height as i64);
                    m.seconds.set(took.as_secs_f64());
                }
                tracing::info!(
                    checkpoint = %done.checkpoint,
                    peer = %done.peer,
                    chunks = done.chunks,
                    entries = done.entries,
                    ms = took.as_millis() as u64,
                    "DA state sync done: state at height {} restored and verified, no blob \
                     at or below it fetched",
                    done.checkpoint.height
                );
                true
            }
            Ok(None) => {
                tracing::info!(
                    "DA state sync: the network's log has fewer than 2 blobs, nothing to \
                     sync: replaying from height 1"
                );
                false
            }
            Err(error) => {
                tracing::warn!(%error, "DA state sync failed: falling back to the replay from height 1");
                false
            }
        };
        // The event loop may have stopped meanwhile: nothing more to do then.
        let _ = self.handle.da_state_synced(restored).await;
    }

    /// Up to [`MAX_ATTEMPTS`] attempts, each with a full node not tried yet when there is
    /// one. `Ok(None)`: the network's log is too short to sync.
    async fn sync(&self) -> Result<Option<Done>, String> {
        let mut tried: Vec<PeerId> = Vec::new();
        let mut last = String::new();
        for attempt in 1..=MAX_ATTEMPTS {
            let peer = self.pick_peer(&tried).await?;
            tried.push(peer);
            match self.attempt(peer).await {
                Ok(done) => return Ok(done),
                Err(error) => {
                    if let Some(m) = &self.metrics {
                        m.failures.inc();
                    }
                    tracing::warn!(attempt, %peer, %error, "DA state sync attempt failed: what it wrote is discarded");
                    last = error;
                    self.blocking(DaStore::restore_abort)
                        .await
                        .map_err(|e| format!("cannot empty the DA log: {e}"))?;
                }
            }
        }
        Err(format!("{MAX_ATTEMPTS} attempts failed, the last: {last}"))
    }

    /// A connected full node not in `tried` (one of `tried` when every connected one was);
    /// waits up to [`PEER_PATIENCE`].
    async fn pick_peer(&self, tried: &[PeerId]) -> Result<PeerId, String> {
        let deadline = Instant::now() + PEER_PATIENCE;
        loop {
            let peers = self
                .handle
                .peers()
                .await
                .map_err(|_| "the node stopped".to_owned())?;
            let full: Vec<PeerId> = peers
                .iter()
                .filter(|p| p.connected_outbound.is_some())
                .filter(|p| p.services.iter().any(|s| s != ServiceType::Bootstrap))
                .map(|p| p.peer_id)
                .collect();
            if let Some(p) = full.iter().find(|p| !tried.contains(p)).or(full.first()) {
                return Ok(*p);
            }
            if Instant::now() >= deadline {
                return Err(format!("no full node connected within {PEER_PATIENCE:?}"));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// One attempt with `peer` (module docs).
    async fn attempt(&self, peer: PeerId) -> Result<Option<Done>, String> {
        let Some(newest) = self.newest(peer).await? else {
            return Ok(None);
        };
        let Some(height) = newest_height(&newest) else {
            return Err(format!("{peer}'s newest blob does not decode"));
        };
        if height < 2 {
            return Ok(None);
        }
        let checkpoint = self.checkpoint(peer, height, &newest).await?;
        tracing::info!(%peer, %checkpoint, "DA state sync: checkpoint taken from the newest signed blob");
        let header = StateHeader {
            height: checkpoint.height,
            tip_hash: Bytes32(checkpoint.blob_hash),
            root: Bytes32(checkpoint.state_root),
            ..StateHeader::genesis()
        };
        let (chunk_tx, chunk_rx) = mpsc::channel(1);
        let (step_tx, mut step_rx) = mpsc::channel(1);
        let store = Arc::clone(&self.store);
        let cache_bytes = self.cache_bytes;
        let progress = self.metrics.as_ref().map(|m| m.entries.clone());
        let worker = tokio::task::spawn_blocking(move || {
            restorer(
                &store,
                header,
                (chunk_rx, &step_tx),
                progress.as_ref(),
                (MAX_CHUNK_ENTRIES, cache_bytes),
            );
        });
        let mut chunks = 0u64;
        let fetched = async {
            loop {
                match step_rx.recv().await {
                    Some(Step::Next(request)) => {
                        let chunk = self.chunk(peer, request).await?;
                        chunks += 1;
                        chunk_tx
                            .send(chunk)
                            .await
                            .map_err(|_| "the restore worker stopped".to_owned())?;
                    }
                    Some(Step::Done(entries)) => return Ok(entries),
                    Some(Step::Failed(e)) => return Err(format!("{e} (chunks of {peer})")),
                    None => return Err("the restore worker stopped".to_owned()),
                }
            }
        }
        .await;
        // The worker ends once its channels close: nothing is written after this.
        drop((chunk_tx, step_rx));
        let _ = worker.await;
        let entries = fetched?;
        Ok(Some(Done {
            checkpoint,
            peer,
            chunks,
            entries,
        }))
    }

    /// The checkpoint `newest` (the newest blob of `peer`, at `height`) commits to: verified
    /// under the genesis authority, or under the keys learnt through the committee
    /// rotations recorded since genesis ([`crate::light::keys_at_newest`]).
    async fn checkpoint(
        &self,
        peer: PeerId,
        height: u64,
        newest: &[u8],
    ) -> Result<Checkpoint, String> {
        let genesis = EpochKeys::genesis(self.authority);
        let base = Checkpoint::genesis();
        if let Ok(cp) = checkpoint_from_newest(&self.network, base, &genesis, newest) {
            return Ok(cp);
        }
        let blob = DaBlob::from_bytes(newest)
            .map_err(|e| format!("{peer}'s newest blob {height}: {e}"))?;
        let mut source = PeerSource {
            handle: &self.handle,
            peer: Some(peer),
        };
        let keys = keys_at_newest(&mut source, &self.network, &genesis, &blob)
            .await
            .map_err(|e| {
                format!("{peer}'s newest blob {height}: the rotations since genesis: {e}")
            })?;
        checkpoint_from_newest(&self.network, base, &keys, newest).map_err(|e| {
            format!("{peer}'s newest blob {height} gives no checkpoint under the genesis authority nor the keys of the rotations recorded since: {e}")
        })
    }

    /// The newest blob of `peer` (its tip, then the blob there); `None` for an empty log.
    async fn newest(&self, peer: PeerId) -> Result<Option<Vec<u8>>, String> {
        let ask = |request| async move {
            match self.handle.da_sync_raw(Some(peer), request).await {
                Err(_) => Err("the node stopped".to_owned()),
                Ok(Err(e)) => Err(format!("{peer}: {e}")),
                Ok(Ok((_, r))) => Ok(r),
            }
        };
        let tip = ask(SyncRequest { from: 1, count: 0 }).await?.tip;
        if tip == 0 {
            return Ok(None);
        }
        let response = ask(SyncRequest {
            from: tip,
            count: 1,
        })
        .await?;
        let bytes = response
            .blobs
            .into_iter()
            .next()
            .ok_or_else(|| format!("{peer} has no blob at its tip {tip}"))?;
        if newest_height(&bytes) != Some(tip) {
            return Err(format!("{peer} sent another height for its tip {tip}"));
        }
        Ok(Some(bytes.to_vec()))
    }

    /// The chunk answering `request` from `peer`, waiting while it is busy or its durable
    /// state is not at the height yet (at most [`CHUNK_PATIENCE`]).
    async fn chunk(&self, peer: PeerId, request: StateChunkRequest) -> Result<StateChunk, String> {
        let deadline = Instant::now() + CHUNK_PATIENCE;
        loop {
            let response = match self.handle.da_state_remote(peer, request.clone()).await {
                Err(_) => return Err("the node stopped".into()),
                Ok(Err(e)) => return Err(format!("state chunk request to {peer}: {e}")),
                Ok(Ok(r)) => r,
            };
            let wait = match response {
                StateChunkResponse::Chunk(chunk) => return Ok(chunk),
                StateChunkResponse::Busy => "busy".to_owned(),
                StateChunkResponse::HeightUnavailable { newest, .. } if newest < request.height => {
                    format!("its durable state is at {newest}")
                }
                StateChunkResponse::HeightUnavailable { oldest, newest, .. } => {
                    return Err(format!(
                        "{peer} keeps no state at {} (it serves {oldest}..={newest})",
                        request.height
                    ));
                }
                StateChunkResponse::Failed(e) => return Err(format!("{peer} failed: {e}")),
            };
            if Instant::now() >= deadline {
                return Err(format!(
                    "{peer} gave no chunk within {CHUNK_PATIENCE:?}: {wait}"
                ));
            }
            tokio::time::sleep(RETRY_PAUSE).await;
        }
    }

    /// Runs a store operation on the blocking pool (the driver's own writes, never on the
    /// event loop).
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&DaStore) -> Result<T, DaStoreError> + Send + 'static,
    ) -> Result<T, DaStoreError> {
        let store = Arc::clone(&self.store);
        tokio::task::spawn_blocking(move || op(&store))
            .await
            .map_err(|e| DaStoreError::Db(format!("the restore task failed: {e}")))?
    }
}

/// What the restore worker asks of the driver.
enum Step {
    /// Fetch this chunk and send it.
    Next(StateChunkRequest),
    /// The state is restored and the log starts at the checkpoint: the entries restored.
    Done(u64),
    /// The restore failed (a refused chunk, a store error): the log must be emptied.
    Failed(String),
}

/// The restore worker (on the blocking pool: jmt's restore is not `Send` across awaits and
/// the writes are disk I/O): verifies each chunk received on `chunks` with a
/// [`StateRestore`] of `header`, writes it, and asks for the next one on `steps` before
/// writing (the next fetch overlaps the write), at most `per` entries a chunk; `progress`
/// counts the entries written. The restore runs with a redb page cache of `cache_bytes`
/// (`[da] rebuild_cache_mib`: the restore inserts millions of entries in key-hash order,
/// random for the table of latest values by key); the serving cache is set again once the
/// restore is finished or abandoned (a failure is abandoned here, before the reopen: a
/// reopen while a restore is marked empties the log).
fn restorer(
    store: &DaStore,
    header: StateHeader,
    (mut chunks, steps): (mpsc::Receiver<StateChunk>, &mpsc::Sender<Step>),
    progress: Option<&IntCounter>,
    (per, cache_bytes): (u32, usize),
) {
    let set_cache = |bytes: usize| {
        if let Err(e) = store.set_cache_bytes(bytes) {
            tracing::warn!(error = %e, "DA state sync: cannot reopen the DA log with another page cache");
        }
    };
    set_cache(cache_bytes);
    let height = header.height;
    let mut run = || -> Result<u64, String> {
        let mut restore = StateRestore::new(header).map_err(|e| e.to_string())?;
        store
            .restore_begin()
            .map_err(|e| format!("cannot start the restore: {e}"))?;
        let mut entries = 0u64;
        let mut next = restore.next_request(per);
        let mut written: Option<RestoredPart> = None;
        loop {
            let Some(request) = next.take() else {
                if let Some(part) = written.take() {
                    write(store, height, &part, &mut entries, progress)?;
                }
                break;
            };
            steps
                .blocking_send(Step::Next(request))
                .map_err(|_| "the driver stopped".to_owned())?;
            // The previous chunk is written while the driver fetches this one.
            if let Some(part) = written.take() {
                write(store, height, &part, &mut entries, progress)?;
            }
            let chunk = chunks
                .blocking_recv()
                .ok_or_else(|| "the driver stopped".to_owned())?;
            let part = restore
                .add(&chunk)
                .map_err(|e| format!("a chunk refused: {e}"))?;
            next = restore.next_request(per);
            written = Some(part);
        }
        store
            .restore_finish(&restore.header())
            .map_err(|e| format!("cannot finish the restore: {e}"))?;
        Ok(entries)
    };
    let step = match run() {
        Ok(entries) => Step::Done(entries),
        Err(e) => {
            if let Err(abort) = store.restore_abort() {
                tracing::warn!(error = %abort, "DA state sync: cannot empty the DA log");
            }
            Step::Failed(e)
        }
    };
    set_cache(super::store::CACHE_BYTES);
    let _ = steps.blocking_send(step);
}

/// Writes one verified part and counts its entries.
fn write(
    store: &DaStore,
    height: u64,
    part: &RestoredPart,
    entries: &mut u64,
    progress: Option<&IntCounter>,
) -> Result<(), String> {
    store
        .restore_part(height, part)
        .map_err(|e| format!("cannot write a restored chunk: {e}"))?;
    *entries += part.entries.len() as u64;
    if let Some(p) = progress {
        p.inc_by(part.entries.len() as u64);
    }
    tracing::debug!(entries = *entries, "DA state sync progress");
    Ok(())
}

/// The height of an encoded blob (`None` when it does not decode).
fn newest_height(bytes: &[u8]) -> Option<u64> {
    DaBlob::from_bytes(bytes).ok().map(|b| b.height)
}

#[cfg(test)]
#[path = "state_sync_driver_tests.rs"]
mod tests;
