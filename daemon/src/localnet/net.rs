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
use crate::api::DaStateResponse;
use crate::client::ClientError;

/// IP of the DNS seed server.
const SEED_SERVER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);

/// `inbound_per_ip_per_minute` of a local network (see [`LocalNet`]'s configuration).
pub const LOOPBACK_INBOUND_PER_IP: u32 = 1000;

/// IP of the first node; the others follow (`127.0.0.3`, `127.0.0.4`, …).
const FIRST_NODE_IP: u8 = 2;

/// Most nodes one [`LocalNet`] can hold (`127.0.0.2` … `127.0.0.254`).
const MAX_NODES: usize = 253;

/// Pause between two polls of the `wait_*` methods.
const POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Timeout of one API request made while polling.
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The shape and tuning of a [`LocalNet`]. [`LocalNetSpec::default`] is a 4-storage-node
/// devnet with 5 s PEX and retry intervals, temporary directory, `RUST_LOG=info`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalNetSpec {
    /// Number of storage nodes (named `storage-1` … `storage-N`).
    pub storage_nodes: usize,
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
/// Every node listens on the same P2P port P (TCP and QUIC) and serves its API on P + 1.
/// All share one `seeds.toml` (`<dir>/seeds.toml`) whose only bootstrap source is the DNS
/// seed, resolved through the seed server. Data directories are `<dir>/<node name>`, logs
/// `<dir>/<node name>/dsdnd.log`.
///
/// Dropping it kills every process, stops the seed server and removes the directory if it
/// is a temporary one (see [`LocalNet::persist`]).
pub struct LocalNet {
    // Field order is drop order: processes first, the directory last.
    nodes: Vec<Node>,
    seed: SeedServer,
    spec: LocalNetSpec,
    bin: PathBuf,
    config: ConfigSpec,
    config_path: PathBuf,
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
    /// Order: the seed server; `dsdnd init` of the coordinator (its public key becomes the
    /// config's `da_authority`); the config; the bootstrap node, waited for; then the
    /// coordinator and the storage nodes, all spawned, then waited for in turn.
    ///
    /// # Errors
    /// As [`LocalNet::start`].
    pub async fn start_with_progress(
        spec: LocalNetSpec,
        mut progress: impl FnMut(&str),
    ) -> Result<LocalNet, LocalNetError> {
        let total = spec.storage_nodes + 2;
        if total > MAX_NODES {
            return Err(LocalNetError::Invalid(format!(
                "at most {} storage nodes fit on 127.0.0.0/24",
                MAX_NODES - 2
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

        let mut names = vec!["bootstrap".to_owned(), "coordinator".to_owned()];
        names.extend((1..=spec.storage_nodes).map(|i| format!("storage-{i}")));
        let (_, authority) = init_node_with(&bin, &dir.join(&names[1]))?;

        let config = ConfigSpec {
            network: spec.network.clone(),
            da_authority: Some(authority.clone()),
            dns_seeds: vec![spec.seed_name.clone()],
            static_peers: Vec::new(),
            peers_file: "peers.dat".to_owned(),
            dns_servers: vec![seed.local_addr().to_string()],
            default_port: port,
            max_outbound_connections: spec.max_outbound_connections,
            max_inbound_connections: spec.max_inbound_connections,
            dns_resolve_timeout_secs: spec.dns_resolve_timeout_secs,
            peer_connect_timeout_secs: spec.peer_connect_timeout_secs,
            pex_interval_secs: spec.pex_interval_secs,
            retry_interval_secs: spec.retry_interval_secs,
            // libp2p dials TCP from 0.0.0.0:<listen port>, so on loopback every node's TCP
            // connections come from 127.0.0.1: the per-IP limit would count the whole devnet
            // as one host.
            inbound_per_ip_per_minute: LOOPBACK_INBOUND_PER_IP,
            ..ConfigSpec::default()
        };
        let config_path = dir.join("seeds.toml");
        config.write(&config_path)?;
        progress(&format!(
            "config {} (network {}, port {port}, DA authority {}…)",
            config_path.display(),
            spec.network,
            &authority[..authority.len().min(12)]
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
                1 => NodeMode::Coordinator,
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

    async fn wait_node_ready(
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

    /// Every node, in start order: `bootstrap`, `coordinator`, `storage-1`, ….
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

    /// The coordinator (the DA authority).
    pub fn coordinator(&self) -> &Node {
        &self.nodes[1]
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

    /// Who is connected to whom, from every node's `GET /v1/peers`.
    pub async fn mesh_report(&self) -> MeshReport {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
            let entry = match client.peers().await {
                Ok(peers) => {
                    let connected: HashSet<&str> = peers
                        .iter()
                        .filter(|p| p.connected)
                        .map(|p| p.peer_id.as_str())
                        .collect();
                    let missing = self
                        .nodes
                        .iter()
                        .filter(|o| o.name() != node.name() && !connected.contains(o.peer_id()))
                        .map(|o| o.name().to_owned())
                        .collect();
                    NodeMesh {
                        name: node.name().to_owned(),
                        connected: Some(connected.len()),
                        missing,
                        error: None,
                    }
                }
                Err(e) => NodeMesh {
                    name: node.name().to_owned(),
                    connected: None,
                    missing: Vec::new(),
                    error: Some(e.to_string()),
                },
            };
            nodes.push(entry);
        }
        MeshReport { nodes }
    }

    /// Waits until the net is fully connected: **every node's `GET /v1/peers` lists every
    /// other node of the net, by peer id, with `connected: true`** (see
    /// [`MeshReport::complete`]). Returns the final report.
    ///
    /// # Errors
    /// [`LocalNetError::Timeout`] with the last report (who misses whom); a node whose
    /// process exited is reported at once as [`LocalNetError::Node`] with its log tail.
    pub async fn wait_all_connected(&self, timeout: Duration) -> Result<MeshReport, LocalNetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let report = self.mesh_report().await;
            if report.complete() {
                return Ok(report);
            }
            if Instant::now() >= deadline {
                return Err(LocalNetError::Timeout {
                    what: format!("a fully connected net; last: {report}"),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every node reports at least `min_peers` connected peers in
    /// `GET /v1/status` (a weaker condition than [`LocalNet::wait_all_connected`], for nets
    /// larger than the outbound connection limit).
    ///
    /// # Errors
    /// As [`LocalNet::wait_all_connected`].
    pub async fn wait_min_peers(
        &self,
        min_peers: usize,
        timeout: Duration,
    ) -> Result<(), LocalNetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let mut short = Vec::new();
            for node in &self.nodes {
                let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
                match client.status().await {
                    Ok(s) if s.connected_peers >= min_peers => {}
                    Ok(s) => short.push(format!("{}={}", node.name(), s.connected_peers)),
                    Err(e) => short.push(format!("{}: {e}", node.name())),
                }
            }
            if short.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LocalNetError::Timeout {
                    what: format!(
                        "every node to have {min_peers} peers; short: {}",
                        short.join(", ")
                    ),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Every node's `GET /v1/da/state`, in node order.
    pub async fn da_states(&self) -> Vec<(String, Result<DaStateResponse, ClientError>)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
            out.push((node.name().to_owned(), client.da_state().await));
        }
        out
    }

    /// Waits until every node that carries DA events (storage and coordinator nodes; a
    /// dedicated bootstrap node never subscribes to the DA topic) has applied `events` DA
    /// events and all report the same state root; returns that root.
    ///
    /// # Errors
    /// [`LocalNetError::Timeout`] listing each node's event count and root prefix; a dead
    /// node as in [`LocalNet::wait_all_connected`].
    pub async fn wait_da_converged(
        &self,
        events: u64,
        timeout: Duration,
    ) -> Result<String, LocalNetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let states: Vec<_> = self
                .da_states()
                .await
                .into_iter()
                .zip(&self.nodes)
                .filter(|(_, node)| node.mode() != NodeMode::Bootstrap)
                .map(|(state, _)| state)
                .collect();
            let roots: HashSet<&str> = states
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .filter(|s| s.events == events)
                .map(|s| s.state_root.as_str())
                .collect();
            let all_there = states
                .iter()
                .all(|(_, s)| s.as_ref().is_ok_and(|s| s.events == events));
            if all_there && roots.len() == 1 {
                if let Some(root) = roots.into_iter().next() {
                    return Ok(root.to_owned());
                }
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = states
                    .iter()
                    .map(|(name, s)| match s {
                        Ok(s) => format!(
                            "{name}: {} events root {}",
                            s.events,
                            &s.state_root[..s.state_root.len().min(12)]
                        ),
                        Err(e) => format!("{name}: {e}"),
                    })
                    .collect();
                return Err(LocalNetError::Timeout {
                    what: format!(
                        "every node to apply {events} DA events with one state root; last: {}",
                        seen.join("; ")
                    ),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
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

/// Connectivity of a [`LocalNet`], from every node's `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshReport {
    /// One entry per node, in node order.
    pub nodes: Vec<NodeMesh>,
}

/// One node's view in a [`MeshReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeMesh {
    /// The node's name.
    pub name: String,
    /// Peers it reports as connected (any peer, not only nodes of the net); `None` when its
    /// API did not answer.
    pub connected: Option<usize>,
    /// Names of the other nodes of the net it is not connected to.
    pub missing: Vec<String>,
    /// The API error, when it did not answer.
    pub error: Option<String>,
}

impl MeshReport {
    /// True when every node answered and misses no other node.
    pub fn complete(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.connected.is_some() && n.missing.is_empty())
    }
}

impl fmt::Display for MeshReport {
    /// `bootstrap=5 coordinator=4(missing storage-3) storage-1=? (error)` on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match (&n.connected, &n.error) {
                (Some(c), _) if n.missing.is_empty() => format!("{}={c}", n.name),
                (Some(c), _) => format!("{}={c}(missing {})", n.name, n.missing.join(",")),
                (None, Some(e)) => format!("{}=?({e})", n.name),
                (None, None) => format!("{}=?", n.name),
            })
            .collect();
        f.write_str(&parts.join(" "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ips() {
        assert_eq!(node_ip(0), Ipv4Addr::new(127, 0, 0, 2));
        assert_eq!(node_ip(1), Ipv4Addr::new(127, 0, 0, 3));
        assert_eq!(node_ip(5), Ipv4Addr::new(127, 0, 0, 7));
        assert_eq!(node_ip(MAX_NODES - 1), Ipv4Addr::new(127, 0, 0, 254));
    }

    #[test]
    fn mesh_report_summary() {
        let report = MeshReport {
            nodes: vec![
                NodeMesh {
                    name: "bootstrap".into(),
                    connected: Some(2),
                    missing: vec![],
                    error: None,
                },
                NodeMesh {
                    name: "storage-1".into(),
                    connected: Some(1),
                    missing: vec!["coordinator".into()],
                    error: None,
                },
                NodeMesh {
                    name: "coordinator".into(),
                    connected: None,
                    missing: vec![],
                    error: Some("down".into()),
                },
            ],
        };
        assert!(!report.complete());
        assert_eq!(
            report.to_string(),
            "bootstrap=2 storage-1=1(missing coordinator) coordinator=?(down)"
        );
        let full = MeshReport {
            nodes: vec![report.nodes[0].clone()],
        };
        assert!(full.complete());
    }

    /// End to end with the real daemon: `cargo build --bins` first, then
    /// `cargo test -p dsdn-daemon --lib real_localnet -- --ignored --nocapture`.
    #[tokio::test]
    #[ignore = "needs the dsdnd binary (cargo build --bins)"]
    async fn real_localnet_smoke() {
        let mut net = LocalNet::start_with_progress(LocalNetSpec::default(), |l| println!("{l}"))
            .await
            .expect("start");
        let report = net
            .wait_all_connected(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        println!("mesh: {report}");

        let ids: Vec<String> = net
            .storage_nodes()
            .map(|n| n.peer_id().to_owned())
            .collect();
        // The storage nodes register themselves; the sample's own registrations are left out.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while net
            .coordinator()
            .client()
            .da_state()
            .await
            .expect("state")
            .nodes
            < ids.len()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "storage nodes did not register\n{}",
                net.log_tails(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let events: Vec<_> = super::super::sample_da_events(&ids, 20 + ids.len())
            .into_iter()
            .filter(|e| !matches!(e, dsdn_protocols::da::DaEvent::NodeRegistered { .. }))
            .collect();
        let resp = net
            .coordinator()
            .client()
            .da_publish(&events)
            .await
            .expect("publish");
        assert_eq!(resp.events, 20);
        let total = net
            .coordinator()
            .client()
            .da_state()
            .await
            .expect("state")
            .events;
        let err = net
            .node("storage-1")
            .expect("node")
            .client()
            .da_publish(&events)
            .await
            .expect_err("not the authority");
        assert!(matches!(err, ClientError::Api { .. }), "{err}");
        let root = net
            .wait_da_converged(total, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        println!("state root {root}");

        let metrics = net
            .node("storage-2")
            .expect("node")
            .client()
            .metrics_text()
            .await
            .expect("metrics");
        let resolves = crate::client::metric_value(&metrics, "bootstrap_dns_resolve_total", &[]);
        assert!(resolves.is_some_and(|v| v >= 1.0), "{metrics}");

        let node = net.node_mut("storage-3").expect("node");
        node.restart().await.expect("restart");
        node.wait_until(Duration::from_secs(60), |s| s.connected_peers >= 1)
            .await
            .expect("reconnects");
        net.add_node("storage-late", NodeMode::Storage)
            .await
            .expect("late joiner");
        net.wait_all_connected(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        let stopped = net.stop_all().await.expect("stop");
        assert!(stopped.iter().all(|(_, clean)| *clean), "{stopped:?}");
    }

    #[test]
    fn default_spec_is_a_devnet() {
        let spec = LocalNetSpec::default();
        assert_eq!(spec.storage_nodes, 4);
        assert_eq!(spec.pex_interval_secs, 5);
        assert!(spec.dir.is_none());
    }
}
