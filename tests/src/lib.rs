//! Shared helpers for the multi-process tests and the bootstrap benchmark: small waits over
//! the control API of real `dsdnd` processes started with `dsdn_daemon::localnet`, and
//! [`TestNet`], one test's set of daemons, DNS seed server, port and directory.
#![deny(missing_docs)]

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dsdn_bootstrap::seed_server::SeedServer;
use dsdn_daemon::client::metric_value;
use dsdn_daemon::localnet::{find_dsdnd, reserve_port, ConfigSpec, Node, NodeMode, PortLease};

pub mod bench;
pub mod committee;
pub mod lab;
mod logs;
pub mod roles;
pub mod rotation;
pub mod scale;

pub use logs::{log_lines_since, log_matches, log_offset, logs, wait_log};

/// Default timeout of the waits in the scenarios: generous for 2 loaded cores, far below
/// what a hang would take.
pub const WAIT: Duration = Duration::from_secs(25);

/// Environment variable: `RUST_LOG` of the daemons a [`TestNet`] starts (default `info`),
/// e.g. `DSDN_TEST_RUST_LOG=info,dsdn_p2p=debug` to see every dial.
pub const RUST_LOG_ENV: &str = "DSDN_TEST_RUST_LOG";

/// Lines of each node's log printed when a test fails.
const FAILURE_LOG_LINES: usize = 60;

/// Lowest and highest last octet of the node IPs tests use (`127.0.0.10` … `127.0.0.99`).
/// Every test reserves its own port on all of them, so tests running in parallel (threads
/// of one binary or several binaries) never share an `IP:port`.
pub const TEST_IPS: std::ops::RangeInclusive<u8> = 10..=99;

/// `127.0.0.<last>`.
pub fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout` with `what`.
///
/// # Errors
/// When `timeout` passes first.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The `p`-th percentile (nearest rank, `p` in 0..=100) of the sorted durations `v`; zero
/// for an empty slice (the benchmarks' medians and 99th percentiles).
pub fn percentile(v: &[Duration], p: f64) -> Duration {
    if v.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * v.len() as f64).ceil() as usize;
    v[rank.clamp(1, v.len()) - 1]
}

/// `12.3 ms`.
pub fn fmt_ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// The value of metric `name` (with `labels`) on `node`, 0 when absent.
pub async fn metric(node: &Node, name: &str, labels: &[(&str, &str)]) -> f64 {
    match node.client().metrics_text().await {
        Ok(text) => metric_value(&text, name, labels).unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

/// The value of metric `name` (with `labels`) on `node`; `None` when the metric is absent
/// (not implemented yet) or the API does not answer.
pub async fn metric_opt(node: &Node, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let text = node.client().metrics_text().await.ok()?;
    metric_value(&text, name, labels)
}

/// Waits until metric `name{labels}` of `node` satisfies `pred`; returns the value. The
/// error names the metric, the last value seen (`absent` when the daemon does not expose
/// it) and the node.
///
/// # Errors
/// When `timeout` passes first.
pub async fn wait_metric(
    node: &Node,
    name: &str,
    labels: &[(&str, &str)],
    timeout: Duration,
    pred: impl Fn(f64) -> bool,
) -> anyhow::Result<f64> {
    let start = Instant::now();
    loop {
        let v = metric_opt(node, name, labels).await;
        if let Some(v) = v.filter(|v| pred(*v)) {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            let last = v.map_or_else(|| "absent".to_owned(), |v| v.to_string());
            anyhow::bail!(
                "{}: timed out after {timeout:?} waiting on metric {name}{labels:?} (last value: {last})",
                node.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Peer ids `node` lists as connected.
pub async fn connected_ids(node: &Node) -> Vec<String> {
    node.client()
        .peers()
        .await
        .map(|peers| {
            peers
                .into_iter()
                .filter(|p| p.connected)
                .map(|p| p.peer_id)
                .collect()
        })
        .unwrap_or_default()
}

/// Peer ids `node` knows (peers.dat ∪ connected).
pub async fn known_ids(node: &Node) -> Vec<String> {
    node.client()
        .peers()
        .await
        .map(|peers| peers.into_iter().map(|p| p.peer_id).collect())
        .unwrap_or_default()
}

/// True when `node` lists `other` as connected.
pub async fn is_connected_to(node: &Node, other: &Node) -> bool {
    connected_ids(node)
        .await
        .iter()
        .any(|id| id == other.peer_id())
}

/// Waits until `node` is connected to at least `n` peers; returns the status' count.
///
/// # Errors
/// When `timeout` passes first (the error quotes the node's last status and log tail).
pub async fn wait_connected(node: &Node, n: usize, timeout: Duration) -> anyhow::Result<usize> {
    let st = node.wait_until(timeout, |s| s.connected_peers >= n).await?;
    Ok(st.connected_peers)
}

/// True when every node lists every other node as connected.
pub async fn full_mesh(nodes: &[&Node]) -> bool {
    for n in nodes {
        let ids = connected_ids(n).await;
        if nodes
            .iter()
            .any(|o| o.peer_id() != n.peer_id() && !ids.iter().any(|id| id == o.peer_id()))
        {
            return false;
        }
    }
    true
}

/// UNIX seconds now.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Writes a peers.dat at `path` for network `network` holding one verified-looking entry
/// per address of `addrs` (each `IP:PORT`, stored as `/ip4/IP/tcp/PORT` and `/udp/PORT/quic-v1`
/// under a fresh PeerId), learned from `source`. Returns the PeerIds. The file must not be
/// open elsewhere (write it before the node starts).
///
/// # Errors
/// When the store cannot be opened or written.
pub fn write_peers_dat(
    path: &Path,
    network: &str,
    addrs: &[SocketAddr],
    source: dsdn_protocols::PeerSource,
) -> anyhow::Result<Vec<String>> {
    let network = dsdn_protocols::NetworkId::new(network).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (store, _) = dsdn_peers::PeerStore::open(path, &network)
        .map_err(|e| anyhow::anyhow!("open {}: {e}", path.display()))?;
    let now = unix_now();
    let mut ids = Vec::new();
    for (i, a) in addrs.iter().enumerate() {
        let mut seed = [0u8; 32];
        seed[..8].copy_from_slice(&now.to_le_bytes());
        seed[8..16].copy_from_slice(&(i as u64).to_le_bytes());
        seed[16..18].copy_from_slice(&a.port().to_le_bytes());
        if let IpAddr::V4(v4) = a.ip() {
            seed[18..22].copy_from_slice(&v4.octets());
        }
        let key = libp2p_identity::Keypair::ed25519_from_bytes(seed)
            .map_err(|e| anyhow::anyhow!("key: {e}"))?;
        let peer = key.public().to_peer_id();
        let ip = a.ip();
        let port = a.port();
        let maddrs: Vec<multiaddr::Multiaddr> = [
            format!("/ip4/{ip}/udp/{port}/quic-v1"),
            format!("/ip4/{ip}/tcp/{port}"),
        ]
        .iter()
        .map(|s| s.parse())
        .collect::<Result<_, _>>()?;
        let services =
            dsdn_protocols::ServiceSet::from_types([dsdn_protocols::ServiceType::Storage]);
        store
            .record_success(peer, &maddrs, services, source, now.saturating_sub(60))
            .map_err(|e| anyhow::anyhow!("write {}: {e}", path.display()))?;
        ids.push(peer.to_string());
    }
    Ok(ids)
}

/// The output of one `dsdn-agent` run.
#[derive(Debug)]
pub struct AgentRun {
    /// Exit status was success.
    pub ok: bool,
    /// Stdout.
    pub stdout: String,
    /// Stderr.
    pub stderr: String,
}

impl AgentRun {
    fn from_output(out: Output) -> Self {
        Self {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Fails (with both streams quoted) unless the run succeeded; returns stdout.
    ///
    /// # Errors
    /// A non-zero exit.
    pub fn success(self, what: &str) -> anyhow::Result<String> {
        if self.ok {
            Ok(self.stdout)
        } else {
            anyhow::bail!(
                "`dsdn-agent {what}` failed\nstdout: {}\nstderr: {}",
                self.stdout,
                self.stderr
            )
        }
    }
}

/// Runs the real `dsdn-agent` binary (next to `dsdnd`) against `node`:
/// `dsdn-agent --api <api> --data-dir <data dir> ARGS…` (the data directory gives it the
/// bearer token in `.cookie`), with a 30 s limit.
///
/// # Errors
/// When the binary cannot be run or does not finish in time (a non-zero exit is not an
/// error: see [`AgentRun::ok`]).
pub async fn agent(node: &Node, args: &[&str]) -> anyhow::Result<AgentRun> {
    let bin = find_dsdnd()?.with_file_name(format!("dsdn-agent{}", std::env::consts::EXE_SUFFIX));
    let mut cmd = tokio::process::Command::new(&bin);
    cmd.arg("--api")
        .arg(node.api_addr().to_string())
        .arg("--data-dir")
        .arg(&node.spec().data_dir)
        .args(args)
        .env_remove("DSDN_API")
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(30), cmd.output())
        .await
        .with_context(|| format!("dsdn-agent {args:?} did not finish in 30 s"))?
        .with_context(|| format!("cannot run {}", bin.display()))?;
    Ok(AgentRun::from_output(out))
}

/// One test's network: a temporary directory, a reserved port (the P2P port of every node;
/// the API is on port + 1), a DNS seed server on 127.0.0.1 and the daemons started with
/// [`TestNet::spawn`] on `127.0.0.<last>`.
///
/// Every daemon is killed when the `TestNet` is dropped. Unless [`TestNet::pass`] was
/// called first (a failed assertion, a `?` error or a panic), the drop prints the last
/// lines of every node's log and keeps the directory (its path is printed).
pub struct TestNet {
    name: String,
    nodes: Vec<Node>,
    dns: SeedServer,
    started: Instant,
    passed: bool,
    lease: PortLease,
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl TestNet {
    /// Reserves a port on every IP of [`TEST_IPS`], starts the DNS seed server (no
    /// records) and creates the directory.
    ///
    /// # Errors
    /// When the port, the server or the directory cannot be had.
    pub async fn new(name: &str) -> anyhow::Result<TestNet> {
        let ips: Vec<Ipv4Addr> = TEST_IPS.map(ip).collect();
        let lease = reserve_port(&ips).context("reserve a port")?;
        let dns = SeedServer::spawn("127.0.0.1:0".parse()?).await?;
        let dir = tempfile::Builder::new()
            .prefix(&format!("dsdn-{name}-"))
            .tempdir()?;
        let path = dir.path().to_path_buf();
        eprintln!(
            "[{name}] dir {}, port {}, DNS seed server {}",
            path.display(),
            lease.port(),
            dns.local_addr()
        );
        Ok(TestNet {
            name: name.to_owned(),
            nodes: Vec::new(),
            dns,
            started: Instant::now(),
            passed: false,
            lease,
            dir: Some(dir),
            path,
        })
    }

    /// The P2P port of every node (DNS seed answers are dialled there).
    pub fn port(&self) -> u16 {
        self.lease.port()
    }

    /// The DNS seed server.
    pub fn dns(&self) -> &SeedServer {
        &self.dns
    }

    /// Points DNS seed `name` at the nodes `127.0.0.<last>` of `lasts`.
    pub fn set_dns(&self, name: &str, lasts: &[u8]) {
        self.dns
            .set_records(name, lasts.iter().map(|l| IpAddr::V4(ip(*l))).collect());
    }

    /// `127.0.0.<last>:<port>`, the address of a node (or of nothing) on this net.
    pub fn addr(&self, last: u8) -> String {
        format!("{}:{}", ip(last), self.port())
    }

    /// The test's directory.
    pub fn dir(&self) -> &Path {
        &self.path
    }

    /// The data directory of node `name`.
    pub fn data_dir(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// The config of node `name` (`<dir>/<name>.toml`).
    pub fn config_path(&self, name: &str) -> PathBuf {
        self.path.join(format!("{name}.toml"))
    }

    /// The base config for this net: [`ConfigSpec::fast`] timings, `default_port` = the
    /// reserved port, this net's DNS seed server, `min_peers = 1`, no source, and
    /// `inbound_per_ip_per_minute = 1000`: TCP dials with port reuse leave from
    /// `0.0.0.0:<port>`, so on loopback every node's TCP connections come from 127.0.0.1
    /// and the default limit would throttle a test's own nodes. The committee's automatic
    /// epoch rotation is pushed out of reach (`epoch_secs` ≈ 68 years: its windows are
    /// aligned on the UNIX epoch, so the 6 h default would rotate a test committee that
    /// runs in the last 15 minutes of a 6 h period); tests of the rotation set their own.
    pub fn config(&self) -> ConfigSpec {
        let mut cfg = ConfigSpec::default()
            .fast()
            .with_default_port(self.port())
            .with_dns_server(self.dns.local_addr())
            .with_min_peers(1)
            .with_inbound_per_ip_per_minute(1000);
        cfg.seeds.committee.epoch_length = Duration::from_secs(1 << 31);
        cfg
    }

    /// Writes `cfg` as node `name`'s config (used at its next start).
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_config(&self, name: &str, cfg: &ConfigSpec) -> anyhow::Result<()> {
        cfg.write(&self.config_path(name))?;
        Ok(())
    }

    /// Writes `cfg` for `name`, starts `dsdnd` on `127.0.0.<last>` with it (data directory
    /// `<dir>/<name>`) and waits for its API.
    ///
    /// # Errors
    /// When the daemon cannot start or its API does not answer within [`WAIT`].
    pub async fn spawn(
        &mut self,
        name: &str,
        mode: NodeMode,
        last: u8,
        cfg: &ConfigSpec,
    ) -> anyhow::Result<()> {
        self.spawn_with_args(name, mode, last, cfg, &[]).await
    }

    /// Node `name`, if started.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.nodes.iter().find(|n| n.name() == name)
    }

    /// Node `name`.
    ///
    /// # Panics
    /// When there is no such node (a bug in the test).
    pub fn node(&self, name: &str) -> &Node {
        self.get(name).unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Node `name`, mutable (stop, kill, restart).
    ///
    /// # Panics
    /// When there is no such node.
    pub fn node_mut(&mut self, name: &str) -> &mut Node {
        self.nodes
            .iter_mut()
            .find(|n| n.name() == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    }

    /// Every node, in start order.
    pub fn nodes(&self) -> Vec<&Node> {
        self.nodes.iter().collect()
    }

    /// Seconds since [`TestNet::new`].
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Marks the test as passed: the drop stays quiet and removes the directory. Prints
    /// the test's wall time.
    pub fn pass(mut self) {
        self.passed = true;
        eprintln!(
            "[{}] passed in {:.1} s",
            self.name,
            self.started.elapsed().as_secs_f64()
        );
    }

    /// The last `lines` lines of every node's log.
    pub fn log_dump(&self, lines: usize) -> String {
        self.nodes
            .iter()
            .map(|n| {
                format!(
                    "----- {} ({}) {} -----\n{}",
                    n.name(),
                    n.listen_addr(),
                    n.peer_id(),
                    n.log_tail(lines)
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for TestNet {
    fn drop(&mut self) {
        if self.passed {
            return;
        }
        let kept = self.dir.take().map(tempfile::TempDir::keep);
        eprintln!(
            "\n===== [{}] FAILED after {:.1} s; data and logs kept in {} =====\n{}\n===== end of [{}] logs =====",
            self.name,
            self.started.elapsed().as_secs_f64(),
            kept.unwrap_or_else(|| self.path.clone()).display(),
            self.log_dump(FAILURE_LOG_LINES),
            self.name
        );
    }
}

/// Soft checks: records failures and goes on, so that one run of a scenario reports every
/// part of the contract it misses, not only the first. [`Checks::finish`] fails with all
/// of them.
#[derive(Debug, Default)]
pub struct Checks {
    failures: Vec<String>,
}

impl Checks {
    /// No failure yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps `r`'s value, or records its error (prefixed with `what`) and returns `None`.
    pub fn check<T>(&mut self, what: &str, r: anyhow::Result<T>) -> Option<T> {
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                let msg = format!("{what}: {}", dsdn_p2p::node::error_chain(e.as_ref()));
                eprintln!("CHECK FAILED: {msg}");
                self.failures.push(msg);
                None
            }
        }
    }

    /// Records a failure unless `cond` holds.
    pub fn ensure(&mut self, cond: bool, msg: impl Into<String>) {
        if !cond {
            let msg = msg.into();
            eprintln!("CHECK FAILED: {msg}");
            self.failures.push(msg);
        }
    }

    /// Fails with every recorded failure, one per line.
    ///
    /// # Errors
    /// When any check failed.
    pub fn finish(self) -> anyhow::Result<()> {
        if self.failures.is_empty() {
            return Ok(());
        }
        anyhow::bail!(
            "{} check(s) failed:\n- {}",
            self.failures.len(),
            self.failures.join("\n- ")
        )
    }
}

pub mod da;
pub use da::{
    chunk_events, converge, da_log_lines, da_publish_all, da_tip, fast_da, sign_chain, signal,
    wait_da_equal, DaTip, Frozen,
};
