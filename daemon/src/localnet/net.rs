//! [`LocalNet`]: a DNS seed server plus bootstrap, coordinator and storage daemons.

use std::collections::HashSet;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dsdn_bootstrap::seed_server::SeedServer;
use tempfile::TempDir;

use super::{
    find_dsdnd, init_node_with, port_is_free, reserve_port, ConfigSpec, LocalNetError, Node,
    NodeMode, NodeSpec, PortLease,
};

/// IP of the DNS seed server.
const SEED_SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// `inbound_per_ip_per_minute` of a local network (see [`LocalNet`]'s configuration).
pub(crate) const LOOPBACK_INBOUND_PER_IP: u32 = 1000;

/// IP of the first node; the others follow (`127.0.0.3`, `127.0.0.4`, …).
const FIRST_NODE_IP: u8 = 2;

/// Most nodes one [`LocalNet`] can hold (`127.0.0.2` … `127.0.0.254`).
const MAX_NODES: usize = 253;

/// Pause between two polls of the `wait_*` methods.
pub(super) const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Timeout of one API request made while polling.
pub(super) const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The shape and tuning of a [`LocalNet`]. [`LocalNetSpec::default`] is a 4-storage-node
/// devnet with one coordinator (the DA authority), 5 s PEX and retry intervals, temporary
/// directory, `RUST_LOG=info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNetSpec {
    /// Number of storage nodes (named `storage-1` … `storage-N`).
    pub storage_nodes: usize,
    /// Number of coordinators. 1 (the default; 0 counts as 1): one node named
    /// `coordinator` whose own key is the `da_authority`. n ≥ 2: nodes `coordinator-1` …
    /// `coordinator-n` forming a `committee_threshold`-of-n committee (Tahap 14A.2B) whose
    /// members are written to the `[committee]` section of the shared seeds.toml, in that
    /// order (which fixes the DA proposer rotation), and no `da_authority` until
    /// [`LocalNet::set_da_authority`] (after [`LocalNet::committee_dkg`]).
    pub coordinators: usize,
    /// With `coordinators` ≥ 2: the committee threshold t (2 ≤ t ≤ coordinators and
    /// 2t > coordinators: the DA proposer rotation needs a majority).
    pub committee_threshold: u16,
    /// With `coordinators` ≥ 2: the committee epoch.
    pub committee_epoch: u64,
    /// The network name.
    pub network: String,
    /// The DNS seed name; it resolves to the bootstrap node's IP.
    pub seed_name: String,
    /// `pex_interval_secs` of the shared config.
    pub pex_interval_secs: u64,
    /// `retry_interval_secs` of the shared config.
    pub retry_interval_secs: u64,
    /// `dns_resolve_timeout_secs` of the shared config.
    pub dns_resolve_timeout_secs: u64,
    /// `peer_connect_timeout_secs` of the shared config.
    pub peer_connect_timeout_secs: u64,
    /// `max_outbound_connections` of the shared config.
    pub max_outbound_connections: u32,
    /// `max_inbound_connections` of the shared config.
    pub max_inbound_connections: u32,
    /// `RUST_LOG` of every daemon.
    pub rust_log: String,
    /// Extra arguments for every daemon.
    pub extra_args: Vec<String>,
    /// Keep everything in this directory (created if missing, kept after drop) instead of a
    /// temporary directory.
    pub dir: Option<PathBuf>,
    /// The `dsdnd` binary; `None` = [`find_dsdnd`].
    pub dsdnd: Option<PathBuf>,
    /// How long [`LocalNet::start`] waits for each node's API to answer.
    pub ready_timeout: Duration,
}

impl Default for LocalNetSpec {
    fn default() -> Self {
        Self {
            storage_nodes: 4,
            coordinators: 1,
            committee_threshold: 2,
            committee_epoch: 0,
            network: "devnet".to_owned(),
            seed_name: "seed.devnet.dsdn".to_owned(),
            pex_interval_secs: 5,
            retry_interval_secs: 5,
            dns_resolve_timeout_secs: 3,
            peer_connect_timeout_secs: 3,
            max_outbound_connections: 8,
            max_inbound_connections: 125,
            rust_log: "info".to_owned(),
            extra_args: Vec::new(),
            dir: None,
            dsdnd: None,
            ready_timeout: Duration::from_secs(30),
        }
    }
}

/// A running local network:
///
/// | node          | mode        | IP          | source of peers |
/// |---------------|-------------|-------------|-----------------|
/// | —             | DNS seed server | `127.0.0.1:<random>` | answers `seed_name` → `127.0.0.2` |
/// | `bootstrap`   | bootstrap   | `127.0.0.2` | DNS seed |
/// | `coordinator` | coordinator (the DA authority) | `127.0.0.3` | DNS seed |
/// | `storage-i`   | storage     | `127.0.0.(3+i)` | DNS seed |
///
/// With a committee ([`LocalNetSpec::coordinators`] = n ≥ 2) the coordinators are
/// `coordinator-1` … `coordinator-n` on `127.0.0.3` … `127.0.0.(2+n)` and the storage nodes
/// follow them.
///
/// Every node listens on the same P2P port P (TCP and QUIC) and serves its API on P + 1.
/// All share one `seeds.toml` (`<dir>/seeds.toml`) whose only bootstrap source is the DNS
/// seed, resolved through the seed server. Data directories are `<dir>/<node name>`, logs
/// `<dir>/<node name>/dsdnd.log`.
///
/// Dropping it kills every process, stops the seed server and removes the directory if it
/// is a temporary one (see [`LocalNet::persist`]).
pub struct LocalNet {
    // Field order is drop order: processes first, the directory last.
    pub(super) nodes: Vec<Node>,
    seed: SeedServer,
    pub(super) spec: LocalNetSpec,
    bin: PathBuf,
    pub(super) config: ConfigSpec,
    pub(super) config_path: PathBuf,
    port: u16,
    /// Keeps `port` from other local networks (parallel tests) while the nodes run.
    _lease: PortLease,
    dir: PathBuf,
    tempdir: Option<TempDir>,
}

impl fmt::Debug for LocalNet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalNet")
            .field("dir", &self.dir)
            .field("port", &self.port)
            .field("seed_server", &self.seed.local_addr())
            .field(
                "nodes",
                &self.nodes.iter().map(Node::name).collect::<Vec<_>>(),
            )
            .finish()
    }
}

impl LocalNet {
    /// Starts the network and waits until every node's API answers (not until they are
    /// connected: see [`LocalNet::wait_all_connected`]).
    ///
    /// # Errors
    /// Any [`LocalNetError`]; a node that fails to come up is reported with its log tail.
    pub async fn start(spec: LocalNetSpec) -> Result<LocalNet, LocalNetError> {
        Self::start_with_progress(spec, |_| {}).await
    }

    /// As [`LocalNet::start`], calling `progress` with one human-readable line per step
    /// (seed server up, each node up with its peer id, …).
    ///
    /// Order: the seed server; `dsdnd init` of every coordinator (a single coordinator's
    /// public key becomes the config's `da_authority`; with a committee their PeerIds, in
    /// order, become `[committee] members` and there is no `da_authority` yet); the
    /// config; the bootstrap node, waited for; then the coordinators and the storage nodes,
    /// all spawned, then waited for in turn.
    ///
    /// # Errors
    /// As [`LocalNet::start`]; [`LocalNetError::Invalid`] for a committee threshold outside
    /// 2..=coordinators (checked before anything starts).
    pub async fn start_with_progress(
        spec: LocalNetSpec,
        mut progress: impl FnMut(&str),
    ) -> Result<LocalNet, LocalNetError> {
        let coordinators = spec.coordinators.max(1);
        let total = spec.storage_nodes + 1 + coordinators;
        if total > MAX_NODES {
            return Err(LocalNetError::Invalid(format!(
                "at most {} coordinators and storage nodes fit on 127.0.0.0/24",
                MAX_NODES - 1
            )));
        }
        let t = usize::from(spec.committee_threshold);
        if coordinators >= 2 && (!(2..=coordinators).contains(&t) || 2 * t <= coordinators) {
            return Err(LocalNetError::Invalid(format!(
                "a committee of {coordinators} needs a threshold between 2 and {coordinators} \
                 with 2t > {coordinators} (its group key becomes the DA authority, whose \
                 proposer rotation needs a majority), got {t}"
            )));
        }
        let (dir, tempdir) = prepare_dir(spec.dir.as_deref())?;
        let bin = match &spec.dsdnd {
            Some(bin) => bin.clone(),
            None => find_dsdnd()?,
        };
        let ips: Vec<Ipv4Addr> = (0..total).map(node_ip).collect();
        let lease = reserve_port(&ips)
            .map_err(|e| LocalNetError::io(format!("no P2P port is free on all of {ips:?}"), e))?;
        let port = lease.port();

        let seed = SeedServer::spawn(SocketAddr::from((SEED_SERVER_IP, 0)))
            .await
            .map_err(LocalNetError::SeedServer)?;
        seed.set_records(&spec.seed_name, vec![IpAddr::V4(ips[0])]);
        progress(&format!(
            "DNS seed server on {}: {} -> {}",
            seed.local_addr(),
            spec.seed_name,
            ips[0]
        ));

        let mut names = vec!["bootstrap".to_owned()];
        if coordinators == 1 {
            names.push("coordinator".to_owned());
        } else {
            names.extend((1..=coordinators).map(|i| format!("coordinator-{i}")));
        }
        names.extend((1..=spec.storage_nodes).map(|i| format!("storage-{i}")));
        // The coordinators' identities are needed in the config: create their keys first.
        let mut coordinator_ids = Vec::with_capacity(coordinators);
        for name in &names[1..=coordinators] {
            coordinator_ids.push(init_node_with(&bin, &dir.join(name))?);
        }
        let mut config = ConfigSpec::default()
            .with_network(&spec.network)
            .with_dns_seed(&spec.seed_name)
            .with_dns_server(seed.local_addr())
            .with_default_port(port)
            .with_connection_limits(spec.max_outbound_connections, spec.max_inbound_connections)
            .with_timeouts(
                spec.dns_resolve_timeout_secs,
                spec.peer_connect_timeout_secs,
            )
            .with_intervals(spec.pex_interval_secs, spec.retry_interval_secs)
            // libp2p dials TCP from 0.0.0.0:<listen port>, so on loopback every node's TCP
            // connections come from 127.0.0.1: the per-IP limit would count the whole devnet
            // as one host.
            .with_inbound_per_ip_per_minute(LOOPBACK_INBOUND_PER_IP);
        // Every node of a local network listens on loopback: whatever its name, the network
        // must keep private addresses.
        if spec.network != "devnet" {
            config = config.with_allow_private_addresses(true);
        }
        let authority = if coordinators == 1 {
            let key = coordinator_ids[0].1.clone();
            config = config.with_da_authority(&key);
            Some(key)
        } else {
            let members = coordinator_ids.iter().map(|(id, _)| id.clone()).collect();
            config = config.with_committee(members, spec.committee_threshold, spec.committee_epoch);
            None
        };
        let config_path = dir.join("seeds.toml");
        config.write(&config_path)?;
        let committee = &config.seeds.committee;
        let authority_note = match (&authority, committee.is_configured()) {
            (Some(key), _) => format!("DA authority {}…", &key[..key.len().min(12)]),
            (None, true) => format!(
                "{}-of-{} committee, epoch {}, no DA authority until its DKG",
                committee.threshold,
                committee.members.len(),
                committee.epoch
            ),
            (None, false) => "no DA authority".to_owned(),
        };
        progress(&format!(
            "config {} (network {}, port {port}, {authority_note})",
            config_path.display(),
            spec.network,
        ));

        let mut net = LocalNet {
            nodes: Vec::with_capacity(total),
            seed,
            spec,
            bin,
            config,
            config_path,
            port,
            _lease: lease,
            dir,
            tempdir,
        };
        for (i, name) in names.iter().enumerate() {
            let mode = match i {
                0 => NodeMode::Bootstrap,
                i if i <= coordinators => NodeMode::Coordinator,
                _ => NodeMode::Storage,
            };
            let node = Node::spawn_with(&net.bin, net.node_spec(name, mode, ips[i])).await?;
            net.nodes.push(node);
            // Let the bootstrap node come up first: the others dial it right away.
            if i == 0 {
                net.wait_node_ready(0, &mut progress).await?;
            }
        }
        for i in 1..net.nodes.len() {
            net.wait_node_ready(i, &mut progress).await?;
        }
        Ok(net)
    }

    fn node_spec(&self, name: &str, mode: NodeMode, ip: Ipv4Addr) -> NodeSpec {
        let mut spec = NodeSpec::new(
            name,
            mode,
            ip,
            self.port,
            self.config_path.clone(),
            self.dir.join(name),
        );
        spec.extra_args = self.spec.extra_args.clone();
        spec.rust_log = self.spec.rust_log.clone();
        spec
    }

    pub(super) async fn wait_node_ready(
        &self,
        i: usize,
        progress: &mut impl FnMut(&str),
    ) -> Result<(), LocalNetError> {
        let node = &self.nodes[i];
        let status = node.wait_ready(self.spec.ready_timeout).await?;
        progress(&format!(
            "{} up: {} on {} (peer {}, {} peers connected)",
            node.name(),
            status.mode,
            node.listen_addr(),
            status.peer_id,
            status.connected_peers
        ));
        Ok(())
    }

    /// Starts one more node (named `name`, on the next free loopback IP, same port and
    /// config) and waits for its API. For late joiners, e.g. to watch peer exchange.
    ///
    /// # Errors
    /// [`LocalNetError::Invalid`] for a duplicate name or a full net; an I/O error when
    /// the shared port is taken on the new IP; as [`Node::wait_ready`].
    pub async fn add_node(&mut self, name: &str, mode: NodeMode) -> Result<&Node, LocalNetError> {
        if self.node(name).is_some() {
            return Err(LocalNetError::Invalid(format!(
                "node {name} already exists"
            )));
        }
        let used: HashSet<Ipv4Addr> = self.nodes.iter().map(Node::ip).collect();
        let ip = (0..MAX_NODES)
            .map(node_ip)
            .find(|ip| !used.contains(ip))
            .ok_or_else(|| LocalNetError::Invalid("no loopback IP left".to_owned()))?;
        port_is_free(&[ip], self.port)
            .map_err(|e| LocalNetError::io(format!("port {} on {ip}", self.port), e))?;
        let node = Node::spawn_with(&self.bin, self.node_spec(name, mode, ip)).await?;
        self.nodes.push(node);
        let i = self.nodes.len() - 1;
        self.nodes[i].wait_ready(self.spec.ready_timeout).await?;
        Ok(&self.nodes[i])
    }

    /// Every node, in start order: `bootstrap`, `coordinator` (or `coordinator-1` …
    /// `coordinator-n`), `storage-1`, ….
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Every node, mutable (to stop, kill or restart one).
    pub fn nodes_mut(&mut self) -> &mut [Node] {
        &mut self.nodes
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// The node called `name`, mutable.
    pub fn node_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.nodes.iter_mut().find(|n| n.name() == name)
    }

    /// The bootstrap node.
    pub fn bootstrap(&self) -> &Node {
        &self.nodes[0]
    }

    /// The coordinator (the DA authority); with a committee, `coordinator-1`: the first
    /// member (any member takes DA events).
    pub fn coordinator(&self) -> &Node {
        &self.nodes[1]
    }

    /// Every coordinator, in member order (one unless the net has a committee).
    pub fn coordinators(&self) -> impl Iterator<Item = &Node> {
        self.nodes
            .iter()
            .filter(|n| n.mode() == NodeMode::Coordinator)
    }

    /// The storage nodes.
    pub fn storage_nodes(&self) -> impl Iterator<Item = &Node> {
        self.nodes.iter().filter(|n| n.mode() == NodeMode::Storage)
    }

    /// The DNS seed server (change its records to simulate seed changes or outages).
    pub fn seed_server(&self) -> &SeedServer {
        &self.seed
    }

    /// The DNS seed name.
    pub fn seed_name(&self) -> &str {
        &self.spec.seed_name
    }

    /// The shared P2P port (the API is on port + 1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the config and every node's data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The shared seeds.toml.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// What the shared seeds.toml holds.
    pub fn config(&self) -> &ConfigSpec {
        &self.config
    }

    /// The `dsdnd` binary the nodes run.
    pub fn dsdnd(&self) -> &Path {
        &self.bin
    }

    /// True when the directory is a temporary one, removed on drop.
    pub fn is_temporary(&self) -> bool {
        self.tempdir.is_some()
    }

    /// Keeps the directory after drop (e.g. to read logs after a failure); returns it.
    pub fn persist(&mut self) -> PathBuf {
        if let Some(t) = self.tempdir.take() {
            let _ = t.keep();
        }
        self.dir.clone()
    }

    /// The last `n` log lines of every node, each under a header, for failure messages.
    pub fn log_tails(&self, n: usize) -> String {
        let mut out = String::new();
        for node in &self.nodes {
            out.push_str(&format!(
                "--- {} ({}) ---\n{}\n",
                node.name(),
                node.log_path().display(),
                node.log_tail(n)
            ));
        }
        out
    }

    /// An error for the first node whose process has exited, with its log tail.
    ///
    /// # Errors
    /// [`LocalNetError::Node`] naming the dead node.
    pub fn check_alive(&self) -> Result<(), LocalNetError> {
        for node in &self.nodes {
            if let Some(status) = node.exit_status() {
                return Err(LocalNetError::Node {
                    node: node.name().to_owned(),
                    message: format!("exited ({status}){}", node.log_excerpt()),
                });
            }
        }
        Ok(())
    }

    /// Stops every node: SIGTERM to all at once, then up to [`STOP_GRACE`](super::STOP_GRACE)
    /// for them to exit, then SIGKILL for the rest. Returns each node's name and whether
    /// it exited by itself (`false` = it had to be killed).
    ///
    /// # Errors
    /// [`LocalNetError::Node`] when a process cannot be signalled or reaped.
    pub async fn stop_all(&mut self) -> Result<Vec<(String, bool)>, LocalNetError> {
        for node in &self.nodes {
            node.terminate()?;
        }
        let deadline = Instant::now() + super::STOP_GRACE;
        let mut out = Vec::with_capacity(self.nodes.len());
        for node in &mut self.nodes {
            let left = deadline.saturating_duration_since(Instant::now());
            let clean = node.wait_exit(left).await.is_some();
            if !clean {
                node.kill().await?;
            }
            out.push((node.name().to_owned(), clean));
        }
        Ok(out)
    }
}

/// The IP of the `i`-th node (`127.0.0.2` for `i = 0`).
fn node_ip(i: usize) -> Ipv4Addr {
    let last = u8::try_from(i + usize::from(FIRST_NODE_IP)).unwrap_or(u8::MAX);
    Ipv4Addr::new(127, 0, 0, last)
}

/// The net's directory: `dir` (created, made absolute) or a new temporary one.
fn prepare_dir(dir: Option<&Path>) -> Result<(PathBuf, Option<TempDir>), LocalNetError> {
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .map_err(|e| LocalNetError::io(format!("cannot create {}", dir.display()), e))?;
            let abs = std::path::absolute(dir)
                .map_err(|e| LocalNetError::io(format!("bad path {}", dir.display()), e))?;
            Ok((abs, None))
        }
        None => {
            let t = tempfile::Builder::new()
                .prefix("dsdn-localnet-")
                .tempdir()
                .map_err(|e| LocalNetError::io("cannot create a temporary directory", e))?;
            Ok((t.path().to_path_buf(), Some(t)))
        }
    }
}

#[cfg(test)]
mod tests;
