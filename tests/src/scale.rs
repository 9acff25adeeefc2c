//! The parts of the DA scale benchmark (`dsdn-bench-da-scale`, issue 16 §6): a deterministic
//! generator that writes the DA log of a large storage network straight into a node's
//! `da-log.redb` (blobs signed offline by a benchmark-owned authority key), the sizes on
//! disk, and the plot of the figures against the log size.
//!
//! The generated network looks like the one measured in issue 16 (220,101 events: 10,911
//! nodes, 104,873 chunks, 102,477 replicas): per group of 21 events, one `NodeRegistered`
//! and ten chunks, each a `ChunkDeclared` followed by one `ReplicaAdded` on a registered
//! node. Registrations are new nodes up to [`MAX_NODES`], then re-registrations (a new
//! capacity) of existing ones, so the node registry stops growing like a real network's
//! while the chunk and replica maps grow with the log.

pub mod fixture;
pub mod light;
pub mod order;
pub mod plot;

use std::path::Path;

use anyhow::Context;
use dsdn_p2p::da::store::{DaStore, OfflineState};
use dsdn_protocols::da::{Bytes32, DaEvent, MAX_EVENTS_PER_BLOB};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;

/// Distinct storage nodes of the generated network.
pub const MAX_NODES: u64 = 100_000;

/// Events per generated blob (the protocol's cap, [`MAX_EVENTS_PER_BLOB`]).
pub const EVENTS_PER_BLOB: usize = MAX_EVENTS_PER_BLOB;

/// Blobs appended per redb transaction while generating.
const BLOBS_PER_APPEND: usize = 64;

/// redb page cache of the generator's own state (as a full node's rebuild uses,
/// `[da] rebuild_cache_mib`): with the serving 32 MiB, generating 10 million events is
/// dominated by re-reading evicted pages.
const GENERATOR_CACHE_BYTES: usize = 1 << 30;

/// Zones of the generated nodes.
const ZONES: [&str; 4] = ["id-jkt-1", "id-sby-1", "sg-sin-1", "jp-tyo-1"];

/// Writes a growing, valid, hash-chained DA log of one network, signed by one key.
///
/// The generator is deterministic: the same key and sizes give the same blobs (the
/// timestamps are `start_ms + height`). Each blob commits to the state root before it
/// (`prev_state_root`, issue 16 §3): the generator applies its blobs to a state of its own
/// through the full node's store code ([`OfflineState`]), in a temporary directory beside
/// nothing of the node's (removed when the generator is dropped), so the node's log holds
/// blobs only and the node still rebuilds its state from them.
pub struct LogGenerator {
    key: SigningKey,
    network: NetworkId,
    height: u64,
    /// The generator's own state (opened by the first [`LogGenerator::grow_to`]).
    roots: Option<(tempfile::TempDir, OfflineState)>,
    events: u64,
    chunks: u64,
    registrations: u64,
    start_ms: u64,
    /// PeerIds of the registered nodes (at most [`MAX_NODES`]).
    node_ids: Vec<String>,
    owner: Bytes32,
    /// Most events per blob ([`EVENTS_PER_BLOB`] unless [`LogGenerator::with_events_per_blob`]).
    per_blob: usize,
    /// [`LogGenerator::drop_state`] was called.
    dropped: bool,
}

impl LogGenerator {
    /// A generator of an empty log of `network`, signing with `key`; blob timestamps start
    /// at `start_ms` (Unix milliseconds).
    pub fn new(key: SigningKey, network: NetworkId, start_ms: u64) -> LogGenerator {
        let owner = Bytes32(
            SigningKey::from_bytes(&[0x42; 32])
                .verifying_key()
                .to_bytes(),
        );
        LogGenerator {
            key,
            network,
            height: 0,
            roots: None,
            events: 0,
            chunks: 0,
            registrations: 0,
            start_ms,
            node_ids: Vec::new(),
            owner,
            per_blob: EVENTS_PER_BLOB,
            dropped: false,
        }
    }

    /// The same generator with at most `n` events per blob (1..=[`EVENTS_PER_BLOB`]): many
    /// small blobs, as a test of a long replay wants.
    pub fn with_events_per_blob(mut self, n: usize) -> LogGenerator {
        self.per_blob = n.clamp(1, EVENTS_PER_BLOB);
        self
    }

    /// Deletes the generator's own state (its temporary redb file, as large as the full
    /// node's log): call it once the log is grown to its last size. A later
    /// [`LogGenerator::grow_to`] fails (the roots to continue from are gone).
    pub fn drop_state(&mut self) {
        self.roots = None;
        self.dropped = true;
    }

    /// The state root after the last written blob (hex), as a full node replaying the log
    /// must find it; `None` before the first blob.
    pub fn state_root_hex(&self) -> Option<String> {
        self.roots
            .as_ref()
            .map(|(_, state)| hex::encode(state.state().state_root()))
    }

    /// Events written so far.
    pub fn events(&self) -> u64 {
        self.events
    }

    /// Chunks declared so far (chunk `i` for `i` in `1..=chunks()` has id [`chunk_id`]`(i)`).
    pub fn chunks(&self) -> u64 {
        self.chunks
    }

    /// Height of the last written blob.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The DA authority key (64 hex) of the generated log.
    pub fn authority_hex(&self) -> String {
        hex::encode(self.key.verifying_key().to_bytes())
    }

    /// Node `i`'s PeerId (an Ed25519 identity derived from `i`).
    fn node_id(i: u64) -> anyhow::Result<String> {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&i.to_le_bytes());
        seed[8] = 0x5c;
        let key = libp2p_identity::Keypair::ed25519_from_bytes(seed)
            .map_err(|e| anyhow::anyhow!("node key {i}: {e}"))?;
        Ok(key.public().to_peer_id().to_base58())
    }

    /// The next event of the sequence.
    fn next_event(&mut self) -> anyhow::Result<DaEvent> {
        let slot = self.events % 21;
        let event = if slot == 0 || self.node_ids.is_empty() {
            let i = self.registrations;
            self.registrations += 1;
            let n = i % MAX_NODES;
            if n as usize == self.node_ids.len() {
                self.node_ids.push(Self::node_id(n)?);
            }
            DaEvent::NodeRegistered {
                node_id: self.node_ids[n as usize].clone(),
                zone: ZONES[(n % ZONES.len() as u64) as usize].to_owned(),
                capacity_bytes: (1 + i / MAX_NODES) * (64 << 30) + n * (1 << 30),
                class: if n % 5 == 4 { "datacenter" } else { "regular" }.to_owned(),
            }
        } else if slot % 2 == 1 {
            self.chunks += 1;
            DaEvent::ChunkDeclared {
                chunk_id: Bytes32(chunk_id(self.chunks)),
                size_bytes: 1 << (16 + self.chunks % 8),
                owner: self.owner,
            }
        } else {
            let node = (self.chunks.wrapping_mul(7919)) % self.node_ids.len() as u64;
            DaEvent::ReplicaAdded {
                chunk_id: Bytes32(chunk_id(self.chunks)),
                node_id: self.node_ids[node as usize].clone(),
            }
        };
        self.events += 1;
        Ok(event)
    }

    /// The next signed blob, encoded (at most the generator's events per blob, fewer when
    /// `max_events` is smaller).
    fn next_blob(&mut self, max_events: u64) -> anyhow::Result<(u64, Vec<u8>)> {
        let n = max_events.min(self.per_blob as u64) as usize;
        let mut events = Vec::with_capacity(n);
        for _ in 0..n {
            events.push(self.next_event()?);
        }
        let height = self.height + 1;
        let authority = self.key.verifying_key().to_bytes();
        let (key, network, ts) = (
            self.key.clone(),
            self.network.clone(),
            self.start_ms + height,
        );
        let roots = self.roots()?;
        let blob = roots
            .state()
            .seal_next(&key, ts, events)
            .and_then(|b| b.verify(&network, &authority))
            .with_context(|| format!("sign blob {height}"))?;
        roots
            .apply(&blob)
            .with_context(|| format!("apply blob {height}"))?;
        self.height = height;
        Ok((height, blob.encoded().to_vec()))
    }

    /// The generator's own state, opened on first use.
    fn roots(&mut self) -> anyhow::Result<&mut OfflineState> {
        anyhow::ensure!(!self.dropped, "the generator's state was dropped");
        if self.roots.is_none() {
            let dir = tempfile::tempdir().context("temporary directory for the state")?;
            let mut state = OfflineState::open(&dir.path().join("state.redb"), &self.network)
                .context("open the generator's state")?;
            state
                .set_cache_bytes(GENERATOR_CACHE_BYTES)
                .context("reopen the generator's state")?;
            self.roots = Some((dir, state));
        }
        match &mut self.roots {
            Some((_, state)) => Ok(state),
            None => anyhow::bail!("the generator's state is not open"),
        }
    }

    /// Appends blobs to the log at `path` (created for the generator's network if missing)
    /// until it holds `target` events; returns the number of blobs written. `progress` is
    /// called after each transaction with the events written so far.
    ///
    /// # Errors
    /// When the log cannot be opened, is not this generator's (its tip differs), or a write
    /// fails.
    pub fn grow_to(
        &mut self,
        path: &Path,
        target: u64,
        mut progress: impl FnMut(u64),
    ) -> anyhow::Result<u64> {
        let opened = DaStore::open(path, &self.network)
            .with_context(|| format!("open {}", path.display()))?;
        anyhow::ensure!(
            opened.moved_aside.is_none(),
            "{} was corrupt and moved aside",
            path.display()
        );
        let store = opened.store;
        anyhow::ensure!(
            store.tip() == self.height,
            "{} holds {} blobs, the generator wrote {}",
            path.display(),
            store.tip(),
            self.height
        );
        let mut written = 0;
        while self.events < target {
            let mut batch = Vec::with_capacity(BLOBS_PER_APPEND);
            while batch.len() < BLOBS_PER_APPEND && self.events < target {
                batch.push(self.next_blob(target - self.events)?);
            }
            let refs: Vec<(u64, &[u8])> = batch.iter().map(|(h, b)| (*h, b.as_slice())).collect();
            store
                .append(&refs)
                .with_context(|| format!("append to {}", path.display()))?;
            self.roots()?
                .flush()
                .context("write the generator's state")?;
            written += batch.len() as u64;
            progress(self.events);
        }
        Ok(written)
    }
}

/// What [`state_sync`] measured.
#[derive(Debug, Clone, Copy)]
pub struct SyncFigures {
    /// Wall time of the whole restore.
    pub elapsed: std::time::Duration,
    /// The checkpoint height.
    pub height: u64,
    /// Chunks fetched.
    pub chunks: u64,
    /// Entries restored.
    pub entries: u64,
}

/// A new full node's state sync at the store level (issue 16 §5): restores the state of the
/// log at `source` at its checkpoint `tip − 1` (learnt from the tip blob's `prev_hash` and
/// `prev_state_root`, as a new node learns it) into a new log at `target`, through the
/// code a full node serves and verifies chunks with (`DaStore::state_chunk`,
/// `StateRestore`, `DaStore::restore_part`), chunks of [`MAX_CHUNK_ENTRIES`]. No network:
/// building, encoding, decoding, verifying and writing the chunks are measured, not the
/// transfer. Checks that the restored root is the source's.
///
/// # Errors
/// When a log cannot be opened, the source holds fewer than 2 blobs, a chunk is not
/// served or refused, or a write fails.
pub fn state_sync(
    source: &Path,
    target: &Path,
    network: &NetworkId,
) -> anyhow::Result<SyncFigures> {
    use dsdn_protocols::da::state::StateHeader;
    use dsdn_protocols::da::state_sync::{StateChunkResponse, StateRestore, MAX_CHUNK_ENTRIES};
    use dsdn_protocols::da::DaBlob;
    let source = std::sync::Arc::new(
        DaStore::open(source, network)
            .with_context(|| format!("open {}", source.display()))?
            .store,
    );
    let target = DaStore::open(target, network)
        .with_context(|| format!("open {}", target.display()))?
        .store;
    let start = std::time::Instant::now();
    let tip = source.tip();
    anyhow::ensure!(tip >= 2, "the source log holds {tip} blobs");
    let next = source.get(tip)?.context("the tip blob is not stored")?;
    let next = DaBlob::from_bytes(&next)?;
    let checkpoint = StateHeader {
        height: tip - 1,
        tip_hash: next.prev_hash,
        root: next.prev_state_root,
        ..StateHeader::genesis()
    };
    let mut restore = StateRestore::new(checkpoint)?;
    // As the daemon's state sync: the restore runs with the default rebuild cache.
    target.set_cache_bytes(dsdn_p2p::da::DEFAULT_REBUILD_CACHE_MIB << 20)?;
    target.restore_begin()?;
    let (mut chunks, mut entries) = (0u64, 0u64);
    while let Some(request) = restore.next_request(MAX_CHUNK_ENTRIES) {
        let bytes = source.state_chunk(&request).encode()?;
        let chunk = match StateChunkResponse::decode(&bytes)? {
            StateChunkResponse::Chunk(c) => c,
            other => anyhow::bail!("chunk {chunks} not served: {other:?}"),
        };
        let part = restore.add(&chunk)?;
        entries += part.entries.len() as u64;
        target.restore_part(checkpoint.height, &part)?;
        chunks += 1;
    }
    target.restore_finish(&restore.header())?;
    target.set_cache_bytes(dsdn_p2p::da::store::CACHE_BYTES)?;
    let elapsed = start.elapsed();
    anyhow::ensure!(
        target.state_root_at(checkpoint.height)? == Some(checkpoint.root.0),
        "the restored root differs"
    );
    Ok(SyncFigures {
        elapsed,
        height: checkpoint.height,
        chunks,
        entries,
    })
}

/// Chunk `i`'s id: SHA-256 of `i` (little-endian), unique per `i` (not a content hash).
pub fn chunk_id(i: u64) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(i.to_le_bytes()).into()
}

/// Bytes of the files under `dir` (recursively; symlinks not followed).
///
/// # Errors
/// When the directory cannot be read.
pub fn dir_bytes(dir: &Path) -> anyhow::Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let entry = entry?;
        let meta = entry.metadata()?;
        if meta.is_dir() {
            total += dir_bytes(&entry.path())?;
        } else {
            total += meta.len();
        }
    }
    Ok(total)
}

/// Free bytes on the file system holding `dir` (`df --output=avail`).
///
/// # Errors
/// When `df` fails or prints something else.
pub fn free_bytes(dir: &Path) -> anyhow::Result<u64> {
    let out = std::process::Command::new("df")
        .args(["--output=avail", "-B1"])
        .arg(dir)
        .output()
        .context("run df")?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .nth(1)
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("df printed {text:?}"))
}

/// `MemAvailable` of `/proc/meminfo`, in bytes.
///
/// # Errors
/// When the file cannot be read or lacks the field.
pub fn mem_available() -> anyhow::Result<u64> {
    let info = std::fs::read_to_string("/proc/meminfo")?;
    let kib: u64 = info
        .lines()
        .find_map(|l| l.strip_prefix("MemAvailable:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .context("no MemAvailable in /proc/meminfo")?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsdn_protocols::da::{DaBlob, DaChain, DaState, Offer};

    #[test]
    fn the_generated_log_is_valid_and_applies_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("da-log.redb");
        let network = NetworkId::new("devnet").unwrap();
        let key = SigningKey::from_bytes(&[7; 32]);
        let authority = key.verifying_key().to_bytes();
        let mut g = LogGenerator::new(key, network.clone(), 1_700_000_000_000);
        g.grow_to(&path, 3_000, |_| {}).unwrap();
        g.grow_to(&path, 5_000, |_| {}).unwrap();
        assert_eq!(g.events(), 5_000);
        let store = DaStore::open(&path, &network).unwrap().store;
        assert_eq!(store.tip(), g.height());
        let mut chain = DaChain::new(DaState::new(network.clone()));
        for h in 1..=store.tip() {
            let bytes = store.get(h).unwrap().unwrap();
            let blob = DaBlob::decode_verified(&bytes, &network, &authority).unwrap();
            assert!(matches!(chain.offer(blob), Offer::Applied(_)), "blob {h}");
        }
        assert_eq!(chain.state().events(), 5_000);
        assert_eq!(chain.state().ignored_events(), 0);
    }

    #[test]
    fn a_state_sync_of_a_generated_log_restores_its_root() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("da-log.redb");
        let network = NetworkId::new("devnet").unwrap();
        let mut g = LogGenerator::new(
            SigningKey::from_bytes(&[7; 32]),
            network.clone(),
            1_700_000_000_000,
        );
        g.grow_to(&path, 20_000, |_| {}).unwrap();
        // The generator writes blobs only; a full node derives the state: replay the log
        // into a log with its state, as the node does at start.
        let full = dir.path().join("full.redb");
        {
            let log = DaStore::open(&path, &network).unwrap().store;
            let mut s = OfflineState::open(&full, &network).unwrap();
            let authority = SigningKey::from_bytes(&[7; 32]).verifying_key().to_bytes();
            for h in 1..=log.tip() {
                let bytes = log.get(h).unwrap().unwrap();
                s.apply(&DaBlob::decode_verified(&bytes, &network, &authority).unwrap())
                    .unwrap();
                if h % 64 == 0 {
                    s.flush().unwrap();
                }
            }
            s.flush().unwrap();
        }
        let f = state_sync(&full, &dir.path().join("synced.redb"), &network).unwrap();
        assert_eq!(f.height, g.height() - 1);
        assert!(f.chunks >= 2 && f.entries > 10_000, "{f:?}");
        eprintln!("state sync of 20,000 events: {f:?}");
    }
}
