//! The light client (issue "Light clients"): a node that only consumes the network.
//!
//! A [`LightClient`] joins through the same bootstrap fallback chain as a full node
//! (anchors and peers.dat → static peers → DNS seeds, then PEX; 28.1.A §4), but:
//!
//! * it does not listen: it only dials out, so nobody can connect to it;
//! * it runs Kademlia in client mode: it may query the DHT but never answers, and never
//!   enters another node's routing table;
//! * its handshake advertises no listen address and an empty service set, so peers store no
//!   dialable address for it and never hand it out in PEX
//!   ([`dsdn_peers::store::PeerStore::pex_entries`] skips address-less entries);
//! * it answers every PEX request with an empty response.
//!
//! It subscribes to the network's DA events topic and verifies every blob exactly as a full
//! node does (network, event versions, Ed25519 signature by the DA authority key of the
//! blob's height: the configured genesis authority, then the group keys that
//! `committee_rotated` events record in the log, issue 13 §3;
//! height and hash chain) before accepting or relaying it. It keeps the chain in memory
//! (no log on disk), backfills the heights it missed from its DA peers over
//! `/dsdn/<network>/da-sync/1.0.0` (it asks, never serves), and hands each applied blob to
//! the program as a [`DaNotice`], in height order from height 1. [`LightClient::range`]
//! asks a peer for any range and returns it verified. [`LightClient::prove`] asks a full
//! node for a state value over `/dsdn/<network>/da-proof/1.0.0` and verifies its proof
//! against the client's own state root.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use dsdn_p2p::seeds::SeedsConfig;
//! use dsdn_p2p::light::{LightClient, LightConfig};
//!
//! let seeds = SeedsConfig::load("seeds.toml")?;
//! let mut client = LightClient::start(LightConfig::from_seeds(&seeds))?;
//! while let Some(notice) = client.next().await {
//!     println!("height {}: {} events", notice.height, notice.events.len());
//! }
//! # Ok(()) }
//! ```

mod avoid;
mod checkpoint;
mod driver;
mod follow;
mod prove;
mod rotations;

pub use avoid::{AVOID_FOR, MAX_AVOIDED};
pub use checkpoint::{Checkpoint, CheckpointParseError, CheckpointSource, EpochKeys};
pub use driver::{FollowStatus, FOLLOW_POLL, SETUP_PATIENCE};
pub use follow::{checkpoint_from_newest, FollowError, Follower, TrustedHead};
pub use prove::{check as check_proof, ProveError, ProvedValue, PROVE_PATIENCE};
pub(crate) use rotations::{keys_at_newest, PeerSource};
pub use rotations::{WalkError, MAX_WALK_EPOCHS};

use std::path::{Path, PathBuf};
use std::time::Duration;

use dsdn_bootstrap::config::BootstrapConfig;

use crate::seeds::SeedsConfig;
use dsdn_protocols::{AddressPolicy, NetworkId};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::config::NodeConfig;
use crate::da::DaNotice;
use crate::handle::{NodeHandle, NodeStatus, Stopped};
use crate::metrics::Metrics;
use crate::node::{Node, StartError};

/// File name of the light client's peer cache inside its data directory.
pub(crate) const LIGHT_PEERS_FILE: &str = "peers.dat";

/// File name of the operator additions (`NodeHandle::add_peer`, `add_seed`) inside the
/// light client's data directory.
pub(crate) const LIGHT_ADDED_FILE: &str = "added-peers.toml";

/// Gossiped DA blobs queued for the checkpoint follower; more are dropped (fetched over
/// da-sync instead).
const RAW_GOSSIP_QUEUE: usize = 64;

/// How long [`LightClient::shutdown`] waits for the event loop to save its anchors.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// What [`LightClient::start`] needs.
#[derive(Clone)]
pub struct LightConfig {
    /// The network to join (`[network] name` of seeds.toml).
    pub network: NetworkId,
    /// Which peer addresses are kept (`[network] allow_private_addresses`).
    pub address_policy: AddressPolicy,
    /// The Ed25519 public key whose signature makes a DA blob valid
    /// (`[network] da_authority`). With `None` every blob is rejected and the client
    /// receives nothing.
    pub da_authority: Option<[u8; 32]>,
    /// Bootstrap sources, limits and timeouts (`[bootstrap]` of seeds.toml).
    /// `peers_file` is not used: the cache is always `<data_dir>/peers.dat`.
    pub bootstrap: BootstrapConfig,
    /// Where the client keeps `peers.dat` (and `added-peers.toml`); created if missing. With
    /// a directory, the next start is warm: the anchors and cached peers of this run are
    /// dialled before the static peers and DNS seeds. `None`: a fresh private temporary
    /// directory, removed when the client is dropped, so every start is cold.
    pub data_dir: Option<PathBuf>,
    /// The client's identity. `None`: a fresh Ed25519 key for this run only (a light client
    /// has no reputation to keep, and a new PeerId per run links fewer sessions).
    pub keypair: Option<Keypair>,
    /// Stay light (issue 16 §4): start from this checkpoint source, follow the log forward
    /// only and hold no DA state ([`Follower`]); answers about the state come from proofs
    /// ([`LightClient::prove`]). `None`: the full replay from height 1 with the state in
    /// memory.
    pub checkpoint: Option<CheckpointSource>,
}

impl LightConfig {
    /// The network, DA authority and bootstrap settings of seeds.toml; no data directory and
    /// no fixed key (set [`LightConfig::data_dir`] and [`LightConfig::keypair`] to change
    /// that).
    pub fn from_seeds(seeds: &SeedsConfig) -> Self {
        Self {
            network: seeds.network.name.clone(),
            address_policy: seeds.network.address_policy(),
            da_authority: seeds.network.da_authority,
            bootstrap: seeds.bootstrap.clone(),
            data_dir: None,
            keypair: None,
            checkpoint: None,
        }
    }
}

/// A running light client; see the module documentation.
///
/// The node runs on a task of the tokio runtime that started it. It stops when the client
/// and every clone of its [`NodeHandle`] are dropped, or at [`LightClient::shutdown`].
pub struct LightClient {
    handle: NodeHandle,
    notices: mpsc::Receiver<DaNotice>,
    metrics: Metrics,
    peer_id: PeerId,
    data_dir: PathBuf,
    task: JoinHandle<()>,
    /// The checkpoint follower's status (light mode from a checkpoint only).
    follow: Option<tokio::sync::watch::Receiver<FollowStatus>>,
    /// Keeps the temporary data directory alive (removed on drop) when none was given.
    _temp: Option<tempfile::TempDir>,
}

impl std::fmt::Debug for LightClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LightClient")
            .field("peer_id", &self.peer_id)
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl LightClient {
    /// Opens (or creates) the data directory and its peers.dat, builds the swarm without
    /// listening, subscribes to the DA topic and spawns the event loop on the current tokio
    /// runtime. Returns at once; peers are found in the background (see
    /// [`LightClient::status`]).
    ///
    /// # Errors
    /// [`StartError::NoRuntime`] outside a tokio runtime; [`StartError::DataDir`] when the
    /// data directory cannot be created; otherwise as [`Node::start`] (peers.dat of another
    /// network, resolver or swarm errors).
    pub fn start(cfg: LightConfig) -> Result<LightClient, StartError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| StartError::NoRuntime)?;
        let (data_dir, temp) = match cfg.data_dir {
            Some(dir) => {
                std::fs::create_dir_all(&dir).map_err(|source| StartError::DataDir {
                    path: dir.clone(),
                    source,
                })?;
                (dir, None)
            }
            None => {
                let temp = tempfile::Builder::new()
                    .prefix("dsdn-light-")
                    .tempdir()
                    .map_err(|source| StartError::DataDir {
                        path: std::env::temp_dir(),
                        source,
                    })?;
                (temp.path().to_path_buf(), Some(temp))
            }
        };
        if cfg.da_authority.is_none() {
            tracing::warn!(
                "no DA authority configured: the light client cannot verify, and so receives, no DA event"
            );
        }
        let keypair = cfg.keypair.unwrap_or_else(Keypair::generate_ed25519);
        let peer_id = keypair.public().to_peer_id();
        let network = cfg.network.clone();
        let node_cfg = NodeConfig {
            da_authority: cfg.da_authority,
            da_dir: None,
            // Unused: a light node does not listen.
            listen: Vec::new(),
            bootstrap: cfg.bootstrap,
            peers_file: data_dir.join(LIGHT_PEERS_FILE),
            added_file: data_dir.join(LIGHT_ADDED_FILE),
            agent_version: format!("dsdn-light/{}", env!("CARGO_PKG_VERSION")),
            mode: "light".to_owned(),
            light: true,
            address_policy: cfg.address_policy,
            ..NodeConfig::new(keypair, cfg.network, &data_dir)
        };
        let mut node = Node::start(node_cfg)?;
        if let Some(path) = &node.store_report.moved_aside {
            tracing::warn!(path = %path.display(), "peers.dat was corrupt: moved aside");
        }
        let (notices, driver) = match cfg.checkpoint {
            Some(source) => {
                let raw = node.event_loop.feed_da_raw(RAW_GOSSIP_QUEUE);
                let (tx, rx) = mpsc::channel(crate::da::DA_NOTICE_QUEUE);
                let (status, status_rx) = tokio::sync::watch::channel(FollowStatus::default());
                let driver = driver::Driver {
                    handle: node.handle.clone(),
                    network: network.clone(),
                    authority: cfg.da_authority.unwrap_or_default(),
                    source,
                    raw,
                    notices: tx,
                    status,
                    avoided: avoid::Avoided::default(),
                };
                (rx, Some((driver, status_rx)))
            }
            // The loop has no subscriber yet: this cannot fail.
            None => (
                node.event_loop
                    .subscribe_da()
                    .map_err(|e| StartError::Swarm(e.to_string()))?,
                None,
            ),
        };
        let task = runtime.spawn(node.event_loop.run());
        let follow = driver.map(|(driver, status)| {
            runtime.spawn(driver.run());
            status
        });
        tracing::info!(%peer_id, data_dir = %data_dir.display(), "light client started");
        Ok(LightClient {
            handle: node.handle,
            notices,
            metrics: node.metrics,
            peer_id,
            data_dir,
            task,
            follow,
            _temp: temp,
        })
    }

    /// The next applied DA blob, in height order; `None` once the node has stopped.
    /// Cancel-safe (usable in `tokio::select!`).
    ///
    /// Notices are queued up to [`crate::da::DA_NOTICE_QUEUE`]; a consumer that falls further
    /// behind sees a gap in `height` (counted in `da_notices_dropped_total`).
    pub async fn next(&mut self) -> Option<DaNotice> {
        self.notices.recv().await
    }

    /// Up to `count` (at most 64) blobs from height `from`, asked of a connected DA peer and
    /// verified (signature by the DA authority, consecutive heights, hash links) before
    /// they are returned.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner
    /// [`crate::handle::RangeError`] when no DA peer is connected or its answer fails
    /// verification.
    pub async fn range(
        &self,
        from: u64,
        count: u32,
    ) -> Result<Result<Vec<dsdn_protocols::da::DaBlob>, crate::handle::RangeError>, Stopped> {
        self.handle.da_range(from, count).await
    }

    /// The checkpoint follower's status (checkpoint, trusted head, lowest height fetched,
    /// error); `None` in the replay-from-height-1 mode.
    pub fn follow_status(&self) -> Option<FollowStatus> {
        self.follow.as_ref().map(|s| s.borrow().clone())
    }

    /// A receiver of the checkpoint follower's status, for a caller that waits for its
    /// changes while it also waits on [`LightClient::next`]; `None` in the replay mode.
    pub fn follow_watch(&self) -> Option<tokio::sync::watch::Receiver<FollowStatus>> {
        self.follow.clone()
    }

    /// Waits until the checkpoint follower reports a change (for a caller waiting for the
    /// first verified tip); `None` in the replay mode or once the follower ended.
    pub async fn follow_changed(&mut self) -> Option<FollowStatus> {
        let rx = self.follow.as_mut()?;
        rx.changed().await.ok()?;
        let status = rx.borrow_and_update().clone();
        Some(status)
    }

    /// The node's handle, for peers, statistics and DA state (publishing is refused: a light
    /// client is never the DA authority in practice).
    pub fn handle(&self) -> &NodeHandle {
        &self.handle
    }

    /// The node's status (connected peers, bootstrap stage; no listen address).
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn status(&self) -> Result<NodeStatus, Stopped> {
        self.handle.status().await
    }

    /// The client's PeerId.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The data directory in use (the temporary one when none was configured).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The node's metrics (`bootstrap_*`, `da_*`).
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops the node: drops this client's handle and waits up to 5 s for the event loop to
    /// save its anchors to peers.dat (for a warm next start); it is aborted if clones of the
    /// handle keep it running longer.
    pub async fn shutdown(self) {
        let LightClient {
            handle,
            notices,
            mut task,
            _temp,
            ..
        } = self;
        drop(handle);
        drop(notices);
        if tokio::time::timeout(SHUTDOWN_GRACE, &mut task)
            .await
            .is_err()
        {
            task.abort();
        }
    }
}
