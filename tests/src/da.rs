//! Helpers for the DA event log scenarios and benchmark (issue 5; Tahap 14A): short `[da]`
//! timings, a node's DA tip and waits for every node to reach one, sample chunk events,
//! publishing in POSTs, blobs signed offline by a test-owned authority key, SIGSTOP/SIGCONT,
//! and [`TestNet`] methods to start a coordinator with registered storage nodes and to
//! restart a node with other command-line arguments.

use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::{ConfigSpec, Node, NodeMode, NodeSpec};

use crate::{
    eventually, ip, log_lines_since, roles, unix_now, TestNet, RUST_LOG_ENV, TEST_IPS, WAIT,
};

/// Short `[da]` timings for tests: seal every 20 ms, a backfill request unanswered for 2 s is
/// moved to another peer, and the authority seals 1 s after start even if no peer told it
/// the tip yet. Everything else is the daemon's default.
pub fn fast_da() -> dsdn_p2p::da::DaConfig {
    dsdn_p2p::da::DaConfig {
        batch_interval: Duration::from_millis(20),
        sync_request_timeout: Duration::from_secs(2),
        publish_grace: Duration::from_secs(1),
        ..dsdn_p2p::da::DaConfig::default()
    }
}

/// The part of a node's DA state that must be equal everywhere at the same height.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaTip {
    /// Height of the last applied blob.
    pub height: u64,
    /// Its hash (64 hex).
    pub tip_hash: String,
    /// The 14A §2 state root (64 hex).
    pub state_root: String,
    /// Events in the applied blobs.
    pub events: u64,
}

impl DaTip {
    /// The tip of a `GET /v1/da/state` answer.
    pub fn of(st: &dsdn_daemon::api::DaStateView) -> DaTip {
        DaTip {
            height: st.height,
            tip_hash: hex::encode(st.tip_hash),
            state_root: hex::encode(st.state_root),
            events: st.events,
        }
    }

    /// The tip of a state computed offline.
    pub fn of_state(st: &dsdn_protocols::da::DaState) -> DaTip {
        DaTip {
            height: st.height(),
            tip_hash: hex::encode(st.tip_hash()),
            state_root: hex::encode(st.state_root()),
            events: st.events(),
        }
    }
}

impl std::fmt::Display for DaTip {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "height {} events {} tip {}… root {}…",
            self.height,
            self.events,
            self.tip_hash.get(..12).unwrap_or(&self.tip_hash),
            self.state_root.get(..12).unwrap_or(&self.state_root)
        )
    }
}

/// `node`'s DA tip.
///
/// # Errors
/// When the API does not answer.
pub async fn da_tip(node: &Node) -> anyhow::Result<DaTip> {
    let st = node
        .client()
        .da_state()
        .await
        .with_context(|| format!("GET /v1/da/state on {}", node.name()))?;
    Ok(DaTip::of(&st))
}

/// Waits up to `wait` until every node of `names` reports one DA tip and state root (while
/// the log may still grow).
///
/// # Errors
/// When they do not agree in time.
pub async fn converge<S: AsRef<str>>(
    net: &TestNet,
    names: &[S],
    wait: Duration,
) -> anyhow::Result<()> {
    eventually(wait, "one tip and root on every node", || async {
        let mut tips = Vec::new();
        for n in names {
            tips.push(da_tip(net.node(n.as_ref())).await.ok()?);
        }
        tips.windows(2).all(|w| w[0] == w[1]).then_some(())
    })
    .await
}

/// The last `n` lines of `node`'s log that concern the DA log (`DA`, `da_`, `backfill`,
/// `registration`, `snapshot`, errors and warnings), for failure messages.
pub fn da_log_lines(node: &Node, n: usize) -> String {
    let lines: Vec<String> = log_lines_since(node, 0)
        .into_iter()
        .filter(|l| {
            let low = l.to_lowercase();
            l.contains("DA")
                || low.contains("da_")
                || low.contains("backfill")
                || low.contains("regist")
                || low.contains("snapshot")
                || low.contains("localnet: start")
                || l.contains(" WARN ")
                || l.contains(" ERROR ")
        })
        .collect();
    let from = lines.len().saturating_sub(n);
    format!(
        "--- {} ({}), last {} DA lines ---\n{}",
        node.name(),
        node.peer_id(),
        lines.len() - from,
        lines[from..].join("\n")
    )
}

/// Waits until every node of `nodes` has exactly `want` (height, tip hash, root, events).
/// The error lists each node's last tip and its DA log lines.
///
/// # Errors
/// When `timeout` passes first.
pub async fn wait_da_equal(nodes: &[&Node], want: &DaTip, timeout: Duration) -> anyhow::Result<()> {
    let start = Instant::now();
    loop {
        let mut last = Vec::new();
        for n in nodes {
            let tip = da_tip(n).await;
            let ok = tip.as_ref().is_ok_and(|t| t == want);
            last.push((n, tip, ok));
        }
        if last.iter().all(|(_, _, ok)| *ok) {
            return Ok(());
        }
        if start.elapsed() > timeout {
            let mut msg = format!("timed out after {timeout:?} waiting for every node at {want}:");
            for (n, tip, ok) in &last {
                let tip = match tip {
                    Ok(t) => t.to_string(),
                    Err(e) => dsdn_p2p::node::error_chain(e.as_ref()),
                };
                msg.push_str(&format!(
                    "\n  {} {}: {tip}",
                    if *ok { "  ok" } else { "DIFF" },
                    n.name()
                ));
            }
            for (n, _, ok) in &last {
                if !ok {
                    msg.push('\n');
                    msg.push_str(&da_log_lines(n, 30));
                }
            }
            anyhow::bail!(msg);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `count` valid sample events about chunks on the nodes `ids` (no `NodeRegistered`: the
/// nodes registered themselves, and a sample registration with another zone or capacity
/// would make theirs flap). Every other sample chunk keeps living (its `DeleteRequested` is
/// left out), so the state root changes with every few events.
pub fn chunk_events(ids: &[String], count: usize) -> Vec<dsdn_protocols::da::DaEvent> {
    use dsdn_protocols::da::DaEvent;
    let mut deletes = 0u64;
    dsdn_daemon::localnet::sample_da_events(ids, 2 * count + ids.len().max(1))
        .into_iter()
        .filter(|e| match e {
            DaEvent::NodeRegistered { .. } => false,
            DaEvent::DeleteRequested { .. } => {
                deletes += 1;
                deletes.is_multiple_of(2)
            }
            _ => true,
        })
        .take(count)
        .collect()
}

/// Publishes `events` on the DA authority `node` in POSTs of at most `per_post` events;
/// returns every blob height the answers named (ascending, deduplicated).
///
/// # Errors
/// When a POST fails (the error names the node and the POST).
pub async fn da_publish_all(
    node: &Node,
    events: &[dsdn_protocols::da::DaEvent],
    per_post: usize,
) -> anyhow::Result<Vec<u64>> {
    let client = node.client_with_timeout(Duration::from_secs(60));
    let mut heights = Vec::new();
    for (i, part) in events.chunks(per_post.max(1)).enumerate() {
        let r = client.da_publish(part).await.with_context(|| {
            format!(
                "POST /v1/da/events #{i} ({} events) on {}",
                part.len(),
                node.name()
            )
        })?;
        anyhow::ensure!(
            r.events == part.len(),
            "published {} of {}",
            r.events,
            part.len()
        );
        heights.extend(r.heights);
    }
    heights.sort_unstable();
    heights.dedup();
    Ok(heights)
}

/// Signs `batches` offline as blobs 1, 2, … of network `network` with `key`, hash-chained,
/// and applies them in order to a [`dsdn_protocols::da::DaChain`]. Returns the encoded blobs
/// (what `POST /v1/da/blobs` takes) and the final chain.
///
/// # Errors
/// When a batch is not a valid blob, or the chain refuses a blob.
pub fn sign_chain(
    key: &ed25519_dalek::SigningKey,
    network: &str,
    batches: Vec<Vec<dsdn_protocols::da::DaEvent>>,
) -> anyhow::Result<(Vec<Vec<u8>>, dsdn_protocols::da::DaChain)> {
    use dsdn_protocols::da::{DaBlob, DaChain, DaState, Offer};
    let network = dsdn_protocols::NetworkId::new(network).map_err(|e| anyhow::anyhow!("{e}"))?;
    let authority = key.verifying_key().to_bytes();
    let mut chain = DaChain::new(DaState::new(network.clone()));
    let mut blobs = Vec::new();
    let start_ms = unix_now() * 1000;
    for (i, events) in batches.into_iter().enumerate() {
        let height = i as u64 + 1;
        let blob = DaBlob::sign(
            key,
            &network,
            height,
            chain.tip_hash(),
            chain.state_root(),
            start_ms + i as u64,
            events,
        )?;
        let bytes = blob.to_bytes()?;
        let verified = DaBlob::decode_verified(&bytes, &network, &authority)?;
        match chain.offer(verified) {
            Offer::Applied(_) => blobs.push(bytes),
            other => anyhow::bail!("offline chain refused blob {height}: {other:?}"),
        }
    }
    Ok((blobs, chain))
}

/// Sends `signal` (`STOP`, `CONT`, …) to `node`'s process with `kill -SIGNAL PID`.
///
/// # Errors
/// When the node does not run or `kill` fails.
pub fn signal(node: &Node, signal: &str) -> anyhow::Result<()> {
    let pid = node
        .pid()
        .with_context(|| format!("{} does not run", node.name()))?;
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .context("run kill")?;
    anyhow::ensure!(status.success(), "kill -{signal} {pid} failed: {status}");
    Ok(())
}

/// A process stopped with SIGSTOP; sends SIGCONT when dropped (also on a failed test).
pub struct Frozen {
    pid: u32,
    name: String,
}

impl Frozen {
    /// SIGSTOPs `node`.
    ///
    /// # Errors
    /// As [`signal`].
    pub fn freeze(node: &Node) -> anyhow::Result<Frozen> {
        signal(node, "STOP")?;
        Ok(Frozen {
            pid: node.pid().unwrap_or_default(),
            name: node.name().to_owned(),
        })
    }

    /// Sends SIGCONT now.
    pub fn thaw(self) {}
}

impl Drop for Frozen {
    fn drop(&mut self) {
        let ok = std::process::Command::new("kill")
            .arg("-CONT")
            .arg(self.pid.to_string())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot SIGCONT {} (pid {})", self.name, self.pid);
        }
    }
}

impl TestNet {
    /// As [`TestNet::spawn`], with `args` appended to the daemon's command line (e.g.
    /// `--zone z1 --capacity-bytes 1000`).
    ///
    /// # Errors
    /// As [`TestNet::spawn`].
    pub async fn spawn_with_args(
        &mut self,
        name: &str,
        mode: NodeMode,
        last: u8,
        cfg: &ConfigSpec,
        args: &[&str],
    ) -> anyhow::Result<()> {
        self.spawn_limited(name, mode, last, cfg, args, None).await
    }

    /// As [`TestNet::spawn`], with the daemon's open-files limit (`RLIMIT_NOFILE`, soft
    /// and hard) set to `nofile` descriptors, as `prlimit --nofile=N:N` would.
    ///
    /// # Errors
    /// As [`TestNet::spawn`].
    pub async fn spawn_with_nofile(
        &mut self,
        name: &str,
        mode: NodeMode,
        last: u8,
        cfg: &ConfigSpec,
        nofile: u64,
    ) -> anyhow::Result<()> {
        self.spawn_limited(name, mode, last, cfg, &[], Some(nofile))
            .await
    }

    async fn spawn_limited(
        &mut self,
        name: &str,
        mode: NodeMode,
        last: u8,
        cfg: &ConfigSpec,
        args: &[&str],
        nofile: Option<u64>,
    ) -> anyhow::Result<()> {
        anyhow::ensure!(
            TEST_IPS.contains(&last),
            "node IP 127.0.0.{last} is outside TEST_IPS"
        );
        anyhow::ensure!(self.get(name).is_none(), "node {name} exists already");
        self.write_config(name, cfg)?;
        let mut spec = NodeSpec::new(
            name,
            mode,
            ip(last),
            self.port(),
            self.config_path(name),
            self.data_dir(name),
        );
        spec.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
        if let Ok(filter) = std::env::var(RUST_LOG_ENV) {
            spec.rust_log = filter;
        }
        spec.nofile = nofile;
        let node = Node::spawn(spec).await?;
        self.nodes.push(node);
        self.node(name).wait_ready(WAIT).await?;
        Ok(())
    }

    /// Stops node `name` (SIGTERM) if it runs and starts it again — same key, data
    /// directory, addresses and config — with `args` as its extra arguments (replacing the
    /// previous ones); waits for its API.
    ///
    /// # Errors
    /// When the node cannot be stopped or started, or its API does not answer in [`WAIT`].
    pub async fn respawn_with_args(&mut self, name: &str, args: &[&str]) -> anyhow::Result<()> {
        let idx = self
            .nodes
            .iter()
            .position(|n| n.name() == name)
            .with_context(|| format!("no node {name}"))?;
        self.nodes[idx].stop().await?;
        let mut spec = self.nodes[idx].spec().clone();
        spec.extra_args = args.iter().map(|a| (*a).to_owned()).collect();
        let node = Node::spawn(spec).await?;
        self.nodes[idx] = node;
        self.nodes[idx].wait_ready(WAIT).await?;
        Ok(())
    }

    /// The config of a DA network whose authority is node `authority_name`'s key (created
    /// with `dsdnd init` if needed): this net's [`TestNet::config`], [`fast_da`] timings and
    /// `da`'s changes applied by the caller, static peer `127.0.0.<first>`.
    ///
    /// # Errors
    /// When `dsdnd init` fails.
    pub fn da_config(&self, authority_name: &str, static_last: u8) -> anyhow::Result<ConfigSpec> {
        let (_, key) = self.init_identity(authority_name)?;
        Ok(self
            .config()
            .with_da_authority(key)
            .with_da(fast_da())
            .with_static_peer(self.addr(static_last)))
    }

    /// Starts `coordinator` (the DA authority, on `127.0.0.<first>`) and `storage` storage
    /// nodes `storage-1`, `storage-2`, … on the next IPs, all with `cfg` (which must name the
    /// coordinator as static peer and DA authority, see [`TestNet::da_config`]), then waits
    /// until every storage node is registered: the coordinator's state holds them all and
    /// each one's status says `registered`.
    ///
    /// # Errors
    /// When a node does not start or a registration does not complete within [`WAIT`].
    pub async fn start_da_net(
        &mut self,
        first: u8,
        storage: usize,
        cfg: &ConfigSpec,
    ) -> anyhow::Result<Vec<String>> {
        let coordinator_cfg = cfg.clone().without_static_peer(self.addr(first));
        self.spawn(
            "coordinator",
            NodeMode::Coordinator,
            first,
            &coordinator_cfg,
        )
        .await?;
        let mut names = Vec::new();
        let mut launches = Vec::new();
        for i in 1..=storage {
            let name = format!("storage-{i}");
            launches.push(roles::Launch::new(
                name.clone(),
                "storage",
                first + i as u8,
                cfg.clone(),
            ));
            names.push(name);
        }
        self.spawn_all(&launches).await?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        self.wait_registered(&refs).await?;
        Ok(names)
    }

    /// Waits until every node of `names` is registered with the DA authority `coordinator`:
    /// the coordinator's state holds at least that many nodes, each one is in it, and each
    /// node's status says `registered`.
    ///
    /// # Errors
    /// After [`WAIT`], with the registration status and DA log lines of each node.
    pub async fn wait_registered(&self, names: &[&str]) -> anyhow::Result<()> {
        for name in names {
            let node = self.node(name);
            let r = eventually(WAIT, &format!("{name} to be registered"), || async {
                let st = node.client().status().await.ok()?;
                let reg = st.registration?;
                (reg["state"] == "registered").then_some(())
            })
            .await;
            if let Err(e) = r {
                let status = node
                    .client()
                    .status()
                    .await
                    .ok()
                    .and_then(|s| s.registration);
                anyhow::bail!(
                    "{e}; registration: {status:?}\n{}\n{}",
                    da_log_lines(node, 30),
                    da_log_lines(self.node("coordinator"), 30)
                );
            }
        }
        Ok(())
    }

    /// The peer ids of the nodes `names`.
    pub fn peer_ids(&self, names: &[String]) -> Vec<String> {
        names
            .iter()
            .map(|n| self.node(n).peer_id().to_owned())
            .collect()
    }
}
