//! One `dsdnd` process.

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::process::{Child, Command};

use super::{file_tail, find_dsdnd, init_node_with, LocalNetError, LOG_TAIL_LINES};
use crate::api::StatusResponse;
use crate::client::ApiClient;

/// How long [`Node::stop`] waits after SIGTERM before it sends SIGKILL.
pub const STOP_GRACE: Duration = Duration::from_secs(10);

/// Pause between two polls of [`Node::wait_until`].
const POLL_INTERVAL: Duration = Duration::from_millis(200);

/// Timeout of one API request made while polling.
const POLL_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The mode a daemon runs in (`--mode`): the daemon's own [`crate::roles::Mode`], so a
/// local network can run every mode `dsdnd` has.
pub use crate::roles::Mode as NodeMode;

/// How to run one daemon:
/// `dsdnd --mode MODE --config CONFIG --data-dir DATA_DIR --listen IP:PORT --api IP:API_PORT
/// EXTRA_ARGS…` with `RUST_LOG=rust_log`, working directory `data_dir`, stdout and stderr
/// appended to `<data_dir>/dsdnd.log`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeSpec {
    /// A name for messages and lookups, e.g. `storage-1`.
    pub name: String,
    /// `--mode`.
    pub mode: NodeMode,
    /// The loopback IP the node listens on (P2P and API).
    pub ip: Ipv4Addr,
    /// P2P port (QUIC/UDP and TCP).
    pub port: u16,
    /// Control API port.
    pub api_port: u16,
    /// The seeds.toml.
    pub config: PathBuf,
    /// The data directory (key, peers.dat, log).
    pub data_dir: PathBuf,
    /// Extra command-line arguments, appended.
    pub extra_args: Vec<String>,
    /// `RUST_LOG` of the process.
    pub rust_log: String,
    /// The process' soft and hard `RLIMIT_NOFILE` (the open-files limit, in descriptors),
    /// as `prlimit --nofile=N:N` would set it; `None`: inherited.
    pub nofile: Option<u64>,
}

impl NodeSpec {
    /// A spec with the API on `port + 1`, no extra arguments and `RUST_LOG=info`.
    pub fn new(
        name: impl Into<String>,
        mode: NodeMode,
        ip: Ipv4Addr,
        port: u16,
        config: impl Into<PathBuf>,
        data_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            mode,
            ip,
            port,
            api_port: port.wrapping_add(1),
            config: config.into(),
            data_dir: data_dir.into(),
            extra_args: Vec::new(),
            rust_log: "info".to_owned(),
            nofile: None,
        }
    }

    /// This spec with `--dc` appended (a data-centre storage node; `dsdnd` refuses it
    /// with any mode but [`NodeMode::Storage`]).
    pub fn with_dc(mut self) -> Self {
        self.extra_args.push("--dc".to_owned());
        self
    }

    /// `ip:port`, the P2P listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.port))
    }

    /// `ip:api_port`, the control API address.
    pub fn api_addr(&self) -> SocketAddr {
        SocketAddr::from((self.ip, self.api_port))
    }

    /// `<data_dir>/dsdnd.log`.
    pub fn log_path(&self) -> PathBuf {
        self.data_dir.join("dsdnd.log")
    }

    /// The daemon's arguments (without the program).
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--mode".to_owned(),
            self.mode.as_str().to_owned(),
            "--config".to_owned(),
            self.config.display().to_string(),
            "--data-dir".to_owned(),
            self.data_dir.display().to_string(),
            "--listen".to_owned(),
            self.listen_addr().to_string(),
            "--api".to_owned(),
            self.api_addr().to_string(),
        ];
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// A running (or stopped) `dsdnd` process. Dropping it kills the process (SIGKILL).
#[derive(Debug)]
pub struct Node {
    spec: NodeSpec,
    bin: PathBuf,
    peer_id: String,
    public_key: String,
    /// Always holds the latest process; the mutex lets `&self` methods poll for its exit.
    child: Mutex<Child>,
    starts: u32,
}

impl Node {
    /// Runs `dsdnd init` on the spec's data directory (creating the key if missing) and
    /// starts the daemon, with the binary [`find_dsdnd`] finds. Does not wait for it to be
    /// ready (see [`Node::wait_ready`]).
    ///
    /// # Errors
    /// [`LocalNetError`] when the binary is missing, `init` fails or the process cannot be
    /// started.
    pub async fn spawn(spec: NodeSpec) -> Result<Node, LocalNetError> {
        Self::spawn_with(&find_dsdnd()?, spec).await
    }

    /// As [`Node::spawn`] with an explicit `dsdnd` binary.
    ///
    /// # Errors
    /// As [`Node::spawn`].
    pub(crate) async fn spawn_with(bin: &Path, mut spec: NodeSpec) -> Result<Node, LocalNetError> {
        // The process runs in its data directory: make every path absolute first.
        spec.config = absolute(&spec.config)?;
        spec.data_dir = absolute(&spec.data_dir)?;
        let (peer_id, public_key) = init_node_with(bin, &spec.data_dir)?;
        let child = start_process(bin, &spec, 1)?;
        Ok(Node {
            spec,
            bin: bin.to_path_buf(),
            peer_id,
            public_key,
            child: Mutex::new(child),
            starts: 1,
        })
    }

    /// The spec the node runs with (paths made absolute).
    pub fn spec(&self) -> &NodeSpec {
        &self.spec
    }

    /// The node's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }

    /// The node's mode.
    pub fn mode(&self) -> NodeMode {
        self.spec.mode
    }

    /// The node's loopback IP.
    pub fn ip(&self) -> Ipv4Addr {
        self.spec.ip
    }

    /// The node's PeerId (from `dsdnd init`).
    pub fn peer_id(&self) -> &str {
        &self.peer_id
    }

    /// The node's Ed25519 public key, 64 hex (from `dsdnd init`).
    pub fn public_key(&self) -> &str {
        &self.public_key
    }

    /// The P2P listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.spec.listen_addr()
    }

    /// The control API address.
    pub fn api_addr(&self) -> SocketAddr {
        self.spec.api_addr()
    }

    /// A control API client for this node. It reads the node's cookie
    /// (`<data_dir>/.cookie`) at each request, so it works before the process has written
    /// it and across restarts.
    pub fn client(&self) -> ApiClient {
        self.client_with_timeout(crate::client::DEFAULT_TIMEOUT)
    }

    /// As [`Node::client`], with requests failing after `timeout`.
    pub fn client_with_timeout(&self, timeout: Duration) -> ApiClient {
        ApiClient::with_timeout(self.api_addr(), timeout)
            .with_cookie_file(crate::cookie::cookie_path(&self.spec.data_dir))
    }

    /// The node's log file.
    pub fn log_path(&self) -> PathBuf {
        self.spec.log_path()
    }

    /// The last `n` lines of the node's log (for failure messages).
    pub fn log_tail(&self, n: usize) -> String {
        file_tail(&self.log_path(), n)
    }

    /// How many times the process was started (1 + restarts).
    pub fn starts(&self) -> u32 {
        self.starts
    }

    /// The OS process id while the process runs.
    pub fn pid(&self) -> Option<u32> {
        let mut child = self.lock();
        match child.try_wait() {
            Ok(None) => child.id(),
            _ => None,
        }
    }

    /// The exit status once the process has exited (`None` while it runs).
    pub(crate) fn exit_status(&self) -> Option<ExitStatus> {
        self.lock().try_wait().ok().flatten()
    }

    /// True while the process runs.
    pub fn is_running(&self) -> bool {
        self.exit_status().is_none()
    }

    /// Sends SIGTERM (on non-Unix: kills) without waiting; nothing if it has exited.
    ///
    /// # Errors
    /// [`LocalNetError::Node`] when the signal cannot be sent.
    pub fn terminate(&self) -> Result<(), LocalNetError> {
        let Some(pid) = self.pid() else {
            return Ok(());
        };
        send_sigterm(pid, &self.child).map_err(|e| self.node_err(format!("cannot SIGTERM: {e}")))
    }

    /// Waits up to `timeout` for the process to exit; its status, or `None` if it still runs.
    pub async fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        tokio::time::timeout(timeout, child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    }

    /// Kills the process (SIGKILL) and reaps it; returns its exit status.
    ///
    /// # Errors
    /// [`LocalNetError::Node`] when it cannot be killed or reaped.
    pub async fn kill(&mut self) -> Result<ExitStatus, LocalNetError> {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(Some(status)) = child.try_wait() {
            return Ok(status);
        }
        // Ignore a kill error: the process may have exited in between; `wait` tells.
        let _ = child.start_kill();
        child
            .wait()
            .await
            .map_err(|e| self.node_err(format!("cannot reap the killed process: {e}")))
    }

    /// Stops the process: SIGTERM, then up to [`STOP_GRACE`] for it to exit, then SIGKILL.
    /// Returns its exit status (a signal status when it had to be killed).
    ///
    /// # Errors
    /// [`LocalNetError::Node`] when it cannot be signalled or reaped.
    pub async fn stop(&mut self) -> Result<ExitStatus, LocalNetError> {
        if let Some(status) = self.exit_status() {
            return Ok(status);
        }
        self.terminate()?;
        if let Some(status) = self.wait_exit(STOP_GRACE).await {
            return Ok(status);
        }
        self.kill().await
    }

    /// Stops the process if it runs ([`Node::stop`]) and starts it again with the same spec
    /// (same key, data directory and addresses). Does not wait for it to be ready.
    ///
    /// # Errors
    /// As [`Node::stop`], or when the new process cannot be started.
    pub async fn restart(&mut self) -> Result<(), LocalNetError> {
        self.stop().await?;
        let child = start_process(&self.bin, &self.spec, self.starts + 1)?;
        *self.child.get_mut().unwrap_or_else(|e| e.into_inner()) = child;
        self.starts += 1;
        Ok(())
    }

    /// Waits until `GET /v1/status` answers; returns that status.
    ///
    /// # Errors
    /// [`LocalNetError::Node`] when the process exits first, [`LocalNetError::Timeout`]
    /// after `timeout`; both quote the log tail.
    pub async fn wait_ready(&self, timeout: Duration) -> Result<StatusResponse, LocalNetError> {
        self.wait_until(timeout, |_| true).await
    }

    /// Polls `GET /v1/status` until `pred` holds; returns the status that satisfied it.
    ///
    /// # Errors
    /// [`LocalNetError::Node`] when the process exits first, [`LocalNetError::Timeout`]
    /// after `timeout` (with the last status or error seen); both quote the log tail.
    pub async fn wait_until(
        &self,
        timeout: Duration,
        mut pred: impl FnMut(&StatusResponse) -> bool,
    ) -> Result<StatusResponse, LocalNetError> {
        let deadline = Instant::now() + timeout;
        let client = self.client_with_timeout(POLL_REQUEST_TIMEOUT);
        loop {
            if let Some(status) = self.exit_status() {
                return Err(self.node_err(format!(
                    "exited ({status}) while waiting for its API at {}{}",
                    self.api_addr(),
                    self.log_excerpt()
                )));
            }
            let last = match client.status().await {
                Ok(s) if pred(&s) => return Ok(s),
                Ok(s) => format!(
                    "connected_peers={} known_peers={} stage={} isolated={}",
                    s.connected_peers, s.known_peers, s.bootstrap_stage, s.isolated
                ),
                Err(e) => e.to_string(),
            };
            let now = Instant::now();
            if now >= deadline {
                return Err(LocalNetError::Timeout {
                    what: format!(
                        "node {} at {} (last seen: {last}){}",
                        self.name(),
                        self.api_addr(),
                        self.log_excerpt()
                    ),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL.min(deadline - now)).await;
        }
    }

    /// `\n--- last lines of <log> ---\n<tail>` for error messages.
    pub(crate) fn log_excerpt(&self) -> String {
        format!(
            "\n--- last {LOG_TAIL_LINES} lines of {} ---\n{}",
            self.log_path().display(),
            self.log_tail(LOG_TAIL_LINES)
        )
    }

    fn node_err(&self, message: String) -> LocalNetError {
        LocalNetError::Node {
            node: self.spec.name.clone(),
            message,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        if let Ok(None) = child.try_wait() {
            let _ = child.start_kill();
            // Reap it so no zombie outlives the test (SIGKILL takes effect at once).
            for _ in 0..100 {
                if !matches!(child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

fn absolute(path: &Path) -> Result<PathBuf, LocalNetError> {
    std::path::absolute(path)
        .map_err(|e| LocalNetError::io(format!("bad path {}", path.display()), e))
}

/// Starts the daemon process for `spec` (the `start`-th time), appending to its log.
fn start_process(bin: &Path, spec: &NodeSpec, start: u32) -> Result<Child, LocalNetError> {
    let log_path = spec.log_path();
    let io_err = |what: &str, e| LocalNetError::io(format!("{what} {}", log_path.display()), e);
    let mut log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(|e| io_err("cannot open", e))?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    writeln!(
        log,
        "==== localnet: start #{start} of {} at unix {now}: {} {} ====",
        spec.name,
        bin.display(),
        spec.args().join(" ")
    )
    .map_err(|e| io_err("cannot write", e))?;
    let stderr = log.try_clone().map_err(|e| io_err("cannot reopen", e))?;
    let mut cmd = Command::new(bin);
    cmd.args(spec.args())
        .current_dir(&spec.data_dir)
        .env("RUST_LOG", &spec.rust_log)
        .env("RUST_BACKTRACE", "1")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true);
    #[cfg(unix)]
    if let Some(n) = spec.nofile {
        use nix::sys::resource::{setrlimit, Resource};
        // SAFETY: the closure runs in the forked child before exec; it only makes the
        // setrlimit system call (async-signal-safe) and allocates nothing.
        unsafe {
            cmd.pre_exec(move || {
                setrlimit(Resource::RLIMIT_NOFILE, n, n).map_err(std::io::Error::from)
            });
        }
    }
    cmd.spawn().map_err(|e| LocalNetError::Node {
        node: spec.name.clone(),
        message: format!("cannot start {}: {e}", bin.display()),
    })
}

#[cfg(unix)]
fn send_sigterm(pid: u32, _child: &Mutex<Child>) -> std::io::Result<()> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let pid = i32::try_from(pid).map_err(std::io::Error::other)?;
    kill(Pid::from_raw(pid), Signal::SIGTERM).map_err(std::io::Error::from)
}

#[cfg(not(unix))]
fn send_sigterm(_pid: u32, child: &Mutex<Child>) -> std::io::Result<()> {
    child.lock().unwrap_or_else(|e| e.into_inner()).start_kill()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_command_line() {
        let mut spec = NodeSpec::new(
            "storage-1",
            NodeMode::Storage,
            Ipv4Addr::new(127, 0, 0, 4),
            31000,
            "/x/seeds.toml",
            "/x/storage-1",
        );
        spec.extra_args.push("--verbose".to_owned());
        assert_eq!(spec.api_addr().to_string(), "127.0.0.4:31001");
        assert_eq!(
            spec.args().join(" "),
            "--mode storage --config /x/seeds.toml --data-dir /x/storage-1 \
             --listen 127.0.0.4:31000 --api 127.0.0.4:31001 --verbose"
        );
        assert_eq!(spec.log_path(), PathBuf::from("/x/storage-1/dsdnd.log"));
    }

    #[test]
    fn modes_round_trip() {
        for m in NodeMode::ALL {
            assert_eq!(m.as_str().parse::<NodeMode>().expect("parse"), m);
        }
        assert!("miner".parse::<NodeMode>().is_err());
    }

    /// Drives the process plumbing (log file, SIGTERM, kill, restart, exit detection) with
    /// a shell script standing in for dsdnd.
    #[cfg(unix)]
    #[tokio::test]
    async fn process_lifecycle_with_a_fake_daemon() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let bin = dir.path().join("fake-dsdnd");
        let key = "cd".repeat(32);
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\nif [ \"$1\" = init ]; then echo '{{\"peer_id\":\"12D3KooWfake\",\"public_key\":\"{key}\"}}'; exit 0; fi\n\
                 echo \"fake daemon $*\"\ntrap 'echo got TERM; exit 0' TERM\nwhile true; do sleep 0.05; done\n"
            ),
        )
        .expect("write script");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let spec = NodeSpec::new(
            "fake",
            NodeMode::Storage,
            Ipv4Addr::LOCALHOST,
            40000,
            dir.path().join("seeds.toml"),
            dir.path().join("data"),
        );
        std::fs::create_dir_all(&spec.data_dir).expect("data dir");
        let mut node = Node::spawn_with(&bin, spec).await.expect("spawn");
        assert_eq!(node.peer_id(), "12D3KooWfake");
        assert_eq!(node.public_key(), key);
        assert!(node.is_running());
        assert!(node.pid().is_some());

        // Nothing answers on the API: wait_ready times out and quotes the log.
        let err = node
            .wait_ready(Duration::from_millis(500))
            .await
            .expect_err("no API");
        let msg = err.to_string();
        assert!(msg.contains("timed out"), "{msg}");
        assert!(msg.contains("fake daemon --mode storage"), "{msg}");

        let status = node.stop().await.expect("stop");
        assert!(status.success(), "{status}");
        assert!(!node.is_running());
        assert!(node.log_tail(5).contains("got TERM"));

        node.restart().await.expect("restart");
        assert_eq!(node.starts(), 2);
        assert!(node.is_running());
        let status = node.kill().await.expect("kill");
        assert!(!status.success());

        // A process that exits on its own is reported by wait_ready at once.
        node.restart().await.expect("restart");
        let pid = node.pid().expect("pid");
        assert!(std::process::Command::new("kill")
            .arg("-9")
            .arg(pid.to_string())
            .status()
            .expect("kill")
            .success());
        let err = node
            .wait_ready(Duration::from_secs(10))
            .await
            .expect_err("exited");
        assert!(err.to_string().contains("exited"), "{err}");
        let log = std::fs::read_to_string(node.log_path()).expect("log");
        assert_eq!(log.matches("==== localnet: start #").count(), 3, "{log}");
    }
}
