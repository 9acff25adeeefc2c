//! Helpers for the service-discovery and light-client scenarios (28.1.C §1–§3, integration
//! scenarios 8, 9, 11): modes by name, the required-role table of the contract, starting
//! several daemons at once, role-deficit waits, `dsdn-agent peers list --type`, DA
//! publication through the real agent, and a `dsdn-agent watch` child process.

use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::{find_dsdnd, ConfigSpec, Node, NodeMode, NodeSpec};
use dsdn_protocols::da::DaEvent;
use tokio::io::AsyncBufReadExt;

use crate::{agent, ip, metric_opt, TestNet, RUST_LOG_ENV, TEST_IPS, WAIT};

/// `NodeMode` of a `--mode` name (`bootstrap`, `storage`, `coordinator`, `validator`,
/// `chain`, `ingress`). Parsed at run time, so a scenario compiles before localnet knows
/// every mode and fails with a message naming the missing one.
///
/// # Errors
/// When localnet's `NodeMode` does not know `name`.
pub fn mode(name: &str) -> anyhow::Result<NodeMode> {
    name.parse::<NodeMode>()
        .map_err(|e| anyhow::anyhow!("localnet NodeMode has no `{name}` mode yet: {e}"))
}

/// The roles a daemon of `mode` must keep connected, with their minimums (the 28.1.C
/// contract): validator → chain 1, coordinator 1, validator 1; storage → coordinator 1,
/// chain 1, storage 2; coordinator → coordinator 2, chain 1, storage 1; chain → chain 2;
/// ingress → coordinator 1, storage 1; bootstrap → none.
pub fn required_roles(mode: &str) -> &'static [(&'static str, usize)] {
    match mode {
        "validator" => &[("chain", 1), ("coordinator", 1), ("validator", 1)],
        "storage" | "storage-dc" => &[("coordinator", 1), ("chain", 1), ("storage", 2)],
        "coordinator" => &[("coordinator", 2), ("chain", 1), ("storage", 1)],
        "chain" => &[("chain", 2)],
        "ingress" => &[("coordinator", 1), ("storage", 1)],
        _ => &[],
    }
}

/// The deficit a node of `mode` must settle at for `service` in a network holding
/// `available` *other* nodes offering `service`: `max(0, required - available)`.
pub fn expected_deficit(mode: &str, service: &str, available: usize) -> usize {
    required_roles(mode)
        .iter()
        .find(|(s, _)| *s == service)
        .map_or(0, |(_, min)| min.saturating_sub(available))
}

/// One daemon to start with [`TestNet::spawn_all`].
#[derive(Clone, Debug)]
pub struct Launch {
    /// Node name (data directory `<dir>/<name>`).
    pub name: String,
    /// `--mode` name.
    pub mode: String,
    /// Last octet of its IP.
    pub last: u8,
    /// Its config.
    pub cfg: ConfigSpec,
}

impl Launch {
    /// A daemon `name` of mode `mode` on `127.0.0.<last>` with `cfg`.
    pub fn new(name: impl Into<String>, mode: &str, last: u8, cfg: ConfigSpec) -> Self {
        Self {
            name: name.into(),
            mode: mode.to_owned(),
            last,
            cfg,
        }
    }
}

impl TestNet {
    /// Starts every daemon of `launches` before waiting for any (a network whose
    /// components start at once), then waits for every API.
    ///
    /// # Errors
    /// An unknown mode, a daemon that cannot start, or an API that does not answer within
    /// [`WAIT`].
    pub async fn spawn_all(&mut self, launches: &[Launch]) -> anyhow::Result<()> {
        for l in launches {
            anyhow::ensure!(
                TEST_IPS.contains(&l.last),
                "node IP 127.0.0.{} is outside TEST_IPS",
                l.last
            );
            anyhow::ensure!(
                self.get(&l.name).is_none(),
                "node {} exists already",
                l.name
            );
            let m = mode(&l.mode)?;
            self.write_config(&l.name, &l.cfg)?;
            let mut spec = NodeSpec::new(
                &l.name,
                m,
                ip(l.last),
                self.port(),
                self.config_path(&l.name),
                self.data_dir(&l.name),
            );
            if let Ok(filter) = std::env::var(RUST_LOG_ENV) {
                spec.rust_log = filter;
            }
            self.nodes.push(Node::spawn(spec).await?);
        }
        for l in launches {
            self.node(&l.name).wait_ready(WAIT).await?;
        }
        Ok(())
    }

    /// As [`TestNet::spawn`], with the mode by name ([`mode`]).
    ///
    /// # Errors
    /// As [`TestNet::spawn`], or an unknown mode.
    pub async fn spawn_mode(
        &mut self,
        name: &str,
        mode_name: &str,
        last: u8,
        cfg: &ConfigSpec,
    ) -> anyhow::Result<()> {
        self.spawn(name, mode(mode_name)?, last, cfg).await
    }

    /// Runs `dsdnd init` for a node that is not started yet (`<dir>/<name>`): its
    /// `(peer_id, public_key)`, e.g. to name a coordinator the DA authority before any
    /// config is written.
    ///
    /// # Errors
    /// When `dsdnd init` fails.
    pub fn init_identity(&self, name: &str) -> anyhow::Result<(String, String)> {
        Ok(dsdn_daemon::localnet::init_node(&self.data_dir(name))?)
    }
}

/// Waits until `discovery_role_deficit{service}` of `node` is `expected`, and stays so for
/// one more poll a second later (a gauge passing through the value does not count).
///
/// # Errors
/// When `timeout` passes first; the error names the last value (`absent` when the daemon
/// does not export it).
pub async fn wait_deficit(
    node: &Node,
    service: &str,
    expected: usize,
    timeout: Duration,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let labels = [("service", service)];
    loop {
        let v = metric_opt(node, "discovery_role_deficit", &labels).await;
        if v == Some(expected as f64) {
            tokio::time::sleep(Duration::from_secs(1)).await;
            if metric_opt(node, "discovery_role_deficit", &labels).await == Some(expected as f64) {
                return Ok(());
            }
            continue;
        }
        if start.elapsed() > timeout {
            let last = v.map_or_else(|| "absent".to_owned(), |v| v.to_string());
            anyhow::bail!(
                "{}: discovery_role_deficit{{service=\"{service}\"}} not {expected} after {timeout:?} (last value: {last})",
                node.name()
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// `dsdn-agent peers list [--type SERVICE] --json` on `node`, parsed.
///
/// # Errors
/// When the agent fails or prints something else than a JSON array.
pub async fn agent_peers_json(
    node: &Node,
    service: Option<&str>,
) -> anyhow::Result<Vec<serde_json::Value>> {
    let mut args = vec!["peers", "list", "--json"];
    if let Some(s) = service {
        args.extend(["--type", s]);
    }
    let what = args.join(" ");
    let out = agent(node, &args).await?.success(&what)?;
    serde_json::from_str(&out).with_context(|| format!("`{what}` printed no JSON array: {out}"))
}

/// The `services` of a `/v1/peers` / `peers list --json` entry.
pub fn services_of(entry: &serde_json::Value) -> Vec<String> {
    entry["services"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Writes `events` as a JSON file in `dir` and publishes them on `node` with
/// `dsdn-agent da publish --file`; returns the agent's stdout.
///
/// # Errors
/// When the file cannot be written or the agent fails.
pub async fn agent_da_publish(
    node: &Node,
    dir: &Path,
    events: &[DaEvent],
) -> anyhow::Result<String> {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    std::fs::create_dir_all(dir)?;
    let file = dir.join(format!(
        "events-{}-{}.json",
        node.name(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::write(&file, serde_json::to_vec(events)?)?;
    let path = file.display().to_string();
    agent(node, &["da", "publish", "--file", &path])
        .await?
        .success("da publish --file")
}

/// The `dsdn-agent` binary (next to `dsdnd`).
///
/// # Errors
/// When `dsdnd` cannot be found.
pub fn agent_bin() -> anyhow::Result<PathBuf> {
    Ok(find_dsdnd()?.with_file_name(format!("dsdn-agent{}", std::env::consts::EXE_SUFFIX)))
}

/// A `dsdn-agent watch` child process (the light client): its stdout lines are collected
/// as they come, stderr goes to a file. Killed when dropped.
pub struct Watch {
    child: tokio::process::Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<tokio::task::JoinHandle<()>>,
    stderr_path: PathBuf,
    status: Option<ExitStatus>,
}

impl Watch {
    /// Starts `dsdn-agent watch ARGS…` with stderr in `stderr_path`, no control-API
    /// variables in its environment and `RUST_LOG` from [`RUST_LOG_ENV`] (default `info`).
    ///
    /// # Errors
    /// When the binary cannot be started.
    pub fn spawn(args: &[String], stderr_path: &Path) -> anyhow::Result<Watch> {
        let bin = agent_bin()?;
        let stderr = std::fs::File::create(stderr_path)
            .with_context(|| format!("create {}", stderr_path.display()))?;
        let mut cmd = tokio::process::Command::new(&bin);
        cmd.arg("watch")
            .args(args)
            .env_remove("DSDN_API")
            .env(
                "RUST_LOG",
                std::env::var(RUST_LOG_ENV).unwrap_or_else(|_| "info".to_owned()),
            )
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .with_context(|| format!("cannot run {} watch", bin.display()))?;
        let stdout = child.stdout.take().context("no stdout pipe")?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        let reader = tokio::spawn(async move {
            let mut r = tokio::io::BufReader::new(stdout).lines();
            while let Ok(Some(line)) = r.next_line().await {
                sink.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        Ok(Watch {
            child,
            lines,
            reader: Some(reader),
            stderr_path: stderr_path.to_path_buf(),
            status: None,
        })
    }

    /// The process id while it runs (for its RSS).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Stdout lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Its exit status once it has exited.
    pub fn try_status(&mut self) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = self.child.try_wait().ok().flatten();
        }
        self.status
    }

    /// Waits up to `timeout` for it to exit (and for its stdout to be read to the end).
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        if self.status.is_none() {
            self.status = tokio::time::timeout(timeout, self.child.wait())
                .await
                .ok()
                .and_then(Result::ok);
        }
        if self.status.is_some() {
            if let Some(reader) = self.reader.take() {
                let _ = tokio::time::timeout(Duration::from_secs(5), reader).await;
            }
        }
        self.status
    }

    /// Its stderr so far (the last `n` lines).
    pub fn stderr_tail(&self, n: usize) -> String {
        dsdn_daemon::localnet::file_tail(&self.stderr_path, n)
    }

    /// Kills it (if it runs) and reaps it.
    pub async fn kill(&mut self) {
        if self.try_status().is_none() {
            let _ = self.child.start_kill();
            self.status = self.child.wait().await.ok();
        }
    }

    /// Status, stdout and stderr tail, for failure messages.
    pub fn report(&mut self) -> String {
        let status = self
            .try_status()
            .map_or_else(|| "still running".to_owned(), |s| s.to_string());
        format!(
            "dsdn-agent watch: {status}\n--- stdout ({} lines) ---\n{}\n--- stderr (tail) ---\n{}",
            self.lines().len(),
            self.lines().join("\n"),
            self.stderr_tail(60)
        )
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.start_kill();
            for _ in 0..100 {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        if let Some(r) = self.reader.take() {
            r.abort();
        }
    }
}
