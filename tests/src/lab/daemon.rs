//! `dsdnd` processes in the lab: [`DaemonSpec`] says how to start one, [`Lab::spawn`]
//! starts it inside a host's namespace, and [`Lab::agent`], [`Lab::peers`] and
//! [`Lab::status`] ask its control API by running `dsdn-agent` in the same namespace (the
//! API listens on `127.0.0.1` there, unreachable from the test's own namespace).

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dsdn_daemon::api::{PeerInfo, StatusResponse};
use dsdn_daemon::localnet::{find_dsdnd, ConfigSpec};

use super::{run, Lab, LabError, LabResult};

/// First control API port of the daemons of one host (`127.0.0.1:8645`, `:8646`, …).
const FIRST_API_PORT: u16 = 8645;

/// Environment variable: `RUST_LOG` of the lab's daemons (default `info`).
pub const LAB_RUST_LOG_ENV: &str = "DSDN_TEST_RUST_LOG";

/// How to start one `dsdnd`: mode, `--listen` addresses, seeds.toml and extra arguments.
/// The lab adds `--data-dir` and `--api`.
#[derive(Clone, Debug)]
pub struct DaemonSpec {
    /// `--mode`.
    pub mode: String,
    /// One `--listen` each; none: the daemon's default (`0.0.0.0` and `[::]` at
    /// `default_port`).
    pub listen: Vec<String>,
    /// The seeds.toml written for it: by default a devnet with no bootstrap source and the
    /// short test timings of [`ConfigSpec::fast`].
    pub config: ConfigSpec,
    /// Further arguments.
    pub args: Vec<String>,
}

impl DaemonSpec {
    /// A daemon in `mode` (`bootstrap`, `storage`, `coordinator`, …) with the defaults
    /// above.
    pub fn new(mode: &str) -> DaemonSpec {
        DaemonSpec {
            mode: mode.to_owned(),
            listen: Vec::new(),
            config: ConfigSpec::default().with_network("devnet").fast(),
            args: Vec::new(),
        }
    }

    /// Adds a `--listen IP:PORT` (`[IPv6]:PORT` for IPv6).
    pub fn listen(mut self, addr: impl Into<String>) -> DaemonSpec {
        self.listen.push(addr.into());
        self
    }

    /// Adds a static peer to its seeds.toml (`IP:PORT`, `[IPv6]:PORT` or a multiaddr).
    pub fn static_peer(mut self, peer: impl AsRef<str>) -> DaemonSpec {
        self.config = self.config.with_static_peer(peer);
        self
    }

    /// Replaces its seeds.toml.
    pub fn config(mut self, config: ConfigSpec) -> DaemonSpec {
        self.config = config;
        self
    }

    /// Adds a further command-line argument.
    pub fn arg(mut self, arg: impl Into<String>) -> DaemonSpec {
        self.args.push(arg.into());
        self
    }
}

/// A daemon the lab started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Daemon {
    /// The name the test gave.
    pub name: String,
    /// The host it runs on.
    pub host: String,
    /// Its PeerId (base58), from `dsdnd init`.
    pub peer_id: String,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// Its control API, inside the host's namespace.
    pub api: SocketAddr,
    /// Its log (stdout and stderr; a restart appends).
    pub log: PathBuf,
    /// Its process id.
    pub pid: u32,
}

fn path_str(p: &std::path::Path) -> LabResult<&str> {
    p.to_str()
        .ok_or_else(|| LabError(format!("{} is not UTF-8", p.display())))
}

fn agent_bin() -> LabResult<PathBuf> {
    let dsdnd = find_dsdnd().map_err(|e| LabError(e.to_string()))?;
    Ok(dsdnd.with_file_name(format!("dsdn-agent{}", std::env::consts::EXE_SUFFIX)))
}

impl Lab {
    /// Starts `dsdnd` as `spec` says inside `host`, as daemon `name`: creates its data
    /// directory and key (`dsdnd init`), writes its seeds.toml, and runs it with its API on
    /// the next free `127.0.0.1` port of that host, its output to `<lab dir>/<name>.log`.
    /// It does not wait for the daemon to be up: see [`Lab::wait_until`].
    ///
    /// # Errors
    /// No such host, the name is taken, `dsdnd` is not built, or a file or the process
    /// cannot be created.
    pub fn spawn(&mut self, host: &str, name: &str, spec: DaemonSpec) -> LabResult<Daemon> {
        let ns = self.host(host)?.ns.clone();
        if self.daemons.contains_key(name) {
            return Err(LabError(format!("the lab has a daemon {name} already")));
        }
        let bin = find_dsdnd().map_err(|e| LabError(e.to_string()))?;
        let data_dir = self.dir().join(name);
        let init = run(
            path_str(&bin)?,
            &["init", "--data-dir", path_str(&data_dir)?],
        )?;
        let peer_id = serde_json::from_str::<serde_json::Value>(&init)
            .ok()
            .and_then(|v| v["peer_id"].as_str().map(str::to_owned))
            .ok_or_else(|| LabError(format!("dsdnd init printed no peer id: {init}")))?;
        let config = self.dir().join(format!("{name}.toml"));
        spec.config
            .write(&config)
            .map_err(|e| LabError(e.to_string()))?;
        let on_host = self.daemons.values().filter(|d| d.host == host).count();
        let port = FIRST_API_PORT + u16::try_from(on_host).unwrap_or(0);
        let api = SocketAddr::from(([127, 0, 0, 1], port));
        let log = self.dir().join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| LabError(format!("cannot create {}: {e}", log.display())))?;
        let err_file = file
            .try_clone()
            .map_err(|e| LabError(format!("cannot duplicate {}: {e}", log.display())))?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &ns])
            .arg(&bin)
            .args(["--mode", &spec.mode, "--config", path_str(&config)?])
            .args(["--data-dir", path_str(&data_dir)?])
            .args(["--api", &api.to_string()]);
        for l in &spec.listen {
            cmd.args(["--listen", l]);
        }
        let rust_log = std::env::var(LAB_RUST_LOG_ENV).unwrap_or_else(|_| "info".into());
        let child = cmd
            .args(&spec.args)
            .env("NO_COLOR", "1")
            .env("RUST_LOG", rust_log)
            .stdin(Stdio::null())
            .stdout(Stdio::from(file))
            .stderr(Stdio::from(err_file))
            .spawn()
            .map_err(|e| LabError(format!("cannot start dsdnd in {ns}: {e}")))?;
        let pid = child.id();
        self.children.push(child);
        let daemon = Daemon {
            name: name.to_owned(),
            host: host.to_owned(),
            peer_id,
            data_dir,
            api,
            log,
            pid,
        };
        self.daemons.insert(name.to_owned(), daemon.clone());
        Ok(daemon)
    }

    /// Stops daemon `name` (SIGKILL) and forgets it, so that [`Lab::spawn`] can start it
    /// again under the same name with its data directory (a restart with a new spec).
    ///
    /// # Errors
    /// No such daemon.
    pub fn stop(&mut self, name: &str) -> LabResult<()> {
        let pid = self.daemon(name)?.pid;
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.swap_remove(i);
            let _ = child.kill();
            let _ = child.wait();
        }
        self.daemons.remove(name);
        Ok(())
    }

    /// A `dsdn-agent --api <its API> --data-dir <its data dir> ARGS…` command in daemon
    /// `name`'s namespace, not started (for agent calls that run in the background).
    ///
    /// # Errors
    /// No such daemon, or `dsdn-agent` is not built.
    pub fn agent_command(&self, name: &str, args: &[&str]) -> LabResult<Command> {
        let d = self.daemon(name)?;
        let ns = &self.host(&d.host)?.ns;
        let agent = agent_bin()?;
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns])
            .arg(agent)
            .arg("--api")
            .arg(d.api.to_string())
            .arg("--data-dir")
            .arg(&d.data_dir)
            .args(args);
        Ok(cmd)
    }

    /// Creates the node key of daemon `name` before it is spawned (`dsdnd init` in its
    /// data directory; [`Lab::spawn`] then keeps it): its PeerId and its Ed25519 public key
    /// as 64 hex characters (e.g. for `da_authority`).
    ///
    /// # Errors
    /// `dsdnd` is not built or prints no key.
    pub fn init_key(&self, name: &str) -> LabResult<(String, String)> {
        let bin = find_dsdnd().map_err(|e| LabError(e.to_string()))?;
        let data_dir = self.dir().join(name);
        let out = run(
            path_str(&bin)?,
            &["init", "--data-dir", path_str(&data_dir)?],
        )?;
        let v: serde_json::Value = serde_json::from_str(&out)
            .map_err(|e| LabError(format!("dsdnd init printed {out:?}: {e}")))?;
        match (v["peer_id"].as_str(), v["public_key"].as_str()) {
            (Some(id), Some(key)) => Ok((id.to_owned(), key.to_owned())),
            _ => Err(LabError(format!("dsdnd init printed no key: {out}"))),
        }
    }

    /// The daemon called `name`.
    ///
    /// # Errors
    /// No such daemon.
    pub fn daemon(&self, name: &str) -> LabResult<&Daemon> {
        self.daemons
            .get(name)
            .ok_or_else(|| LabError(format!("the lab has no daemon {name}")))
    }

    /// Runs `dsdn-agent --api <its API> --data-dir <its data dir> ARGS…` in daemon
    /// `name`'s namespace; its stdout.
    ///
    /// # Errors
    /// No such daemon, or the agent fails (e.g. the API is not up yet).
    pub fn agent(&self, name: &str, args: &[&str]) -> LabResult<String> {
        let d = self.daemon(name)?;
        let ns = &self.host(&d.host)?.ns;
        let agent = agent_bin()?;
        let api = d.api.to_string();
        let mut all = vec![
            "netns",
            "exec",
            ns,
            path_str(&agent)?,
            "--api",
            &api,
            "--data-dir",
            path_str(&d.data_dir)?,
        ];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// `dsdn-agent peers list --json` of daemon `name`: every known peer.
    ///
    /// # Errors
    /// As [`Lab::agent`], or output that is not the expected JSON.
    pub fn peers(&self, name: &str) -> LabResult<Vec<PeerInfo>> {
        let out = self.agent(name, &["peers", "list", "--json"])?;
        serde_json::from_str(&out)
            .map_err(|e| LabError(format!("`peers list --json` of {name}: {e}: {out}")))
    }

    /// `dsdn-agent status --json` of daemon `name`.
    ///
    /// # Errors
    /// As [`Lab::agent`], or output that is not the expected JSON.
    pub fn status(&self, name: &str) -> LabResult<StatusResponse> {
        let out = self.agent(name, &["status", "--json"])?;
        serde_json::from_str(&out)
            .map_err(|e| LabError(format!("`status --json` of {name}: {e}: {out}")))
    }

    /// Whether daemon `name` has a verified connection to daemon `other` (false while its
    /// API is not up).
    pub fn connected(&self, name: &str, other: &str) -> bool {
        let Ok(other) = self.daemon(other) else {
            return false;
        };
        self.peers(name).is_ok_and(|peers| {
            peers
                .iter()
                .any(|p| p.connected && p.peer_id == other.peer_id)
        })
    }

    /// The remote addresses of the established TCP connections to local port `port` in
    /// `host` (`ss -Htn state established sport = :PORT`): who the host sees connecting.
    ///
    /// # Errors
    /// No such host, or `ss` cannot be run.
    pub fn tcp_remotes(&self, host: &str, port: u16) -> LabResult<Vec<IpAddr>> {
        let filter = format!("sport = :{port}");
        let out = self.exec(host, &["ss", "-Htn", "state", "established", &filter])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_whitespace().last())
            .filter_map(|peer| peer.parse::<SocketAddr>().ok())
            .map(|s| s.ip())
            .collect())
    }

    /// Starts counting, in `host`, the packets it receives from each of `sources` (IPv4 or
    /// IPv6 addresses or prefixes, e.g. `10.0.0.0/8`, `2001:db8::12`): an nftables table
    /// `lab_seen` with one counter per source, read by [`Lab::source_counts`]. Unlike
    /// [`Lab::tcp_remotes`] it sees QUIC and closed connections too.
    ///
    /// # Errors
    /// No such host, or nft refuses the rules.
    pub fn count_sources(&self, host: &str, sources: &[&str]) -> LabResult<()> {
        let rules: String = sources
            .iter()
            .map(|s| {
                let family = if s.contains(':') { "ip6" } else { "ip" };
                format!("{family} saddr {s} counter; ")
            })
            .collect();
        self.nft(
            host,
            &format!(
                "table inet lab_seen {{ chain input {{ type filter hook input priority -10; \
                 policy accept; {rules}}}; }}"
            ),
        )
    }

    /// The packets `host` received from each source given to [`Lab::count_sources`], as
    /// `(source as nft prints it, packets)`.
    ///
    /// # Errors
    /// No such host, or no counters there.
    pub fn source_counts(&self, host: &str) -> LabResult<Vec<(String, u64)>> {
        let out = self.exec(host, &["nft", "list", "table", "inet", "lab_seen"])?;
        Ok(out
            .lines()
            .filter_map(|l| {
                let words: Vec<&str> = l.split_whitespace().collect();
                let at = |w: &str| words.iter().position(|x| *x == w);
                let source = words.get(at("saddr")? + 1)?;
                let packets = words.get(at("packets")? + 1)?.parse().ok()?;
                Some(((*source).to_owned(), packets))
            })
            .collect())
    }

    /// Packets `host` received from `source` (as given to [`Lab::count_sources`]; an
    /// address, or a prefix as nft prints it); 0 when not counted.
    ///
    /// # Errors
    /// As [`Lab::source_counts`].
    pub fn packets_from(&self, host: &str, source: &str) -> LabResult<u64> {
        Ok(self
            .source_counts(host)?
            .into_iter()
            .find(|(s, _)| s == source)
            .map_or(0, |(_, n)| n))
    }

    /// Polls `check` every 250 ms until it returns `Some`, for at most `timeout`.
    ///
    /// # Errors
    /// The timeout passed: the error names `what` and holds the end of every daemon's log.
    pub fn wait_until<T>(
        &self,
        what: &str,
        timeout: Duration,
        mut check: impl FnMut() -> Option<T>,
    ) -> LabResult<T> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = check() {
                return Ok(v);
            }
            if Instant::now() >= deadline {
                return Err(LabError(format!(
                    "timed out after {timeout:?} waiting for: {what}\n{}",
                    self.log_dump(40)
                )));
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The last `lines` lines of every daemon's log, each under a header.
    pub fn log_dump(&self, lines: usize) -> String {
        let mut out = String::new();
        for d in self.daemons.values() {
            let text = std::fs::read_to_string(&d.log).unwrap_or_default();
            let all: Vec<&str> = text.lines().collect();
            let tail = &all[all.len().saturating_sub(lines)..];
            out.push_str(&format!(
                "--- {} on {} ({}), last {} lines\n{}\n",
                d.name,
                d.host,
                d.peer_id,
                tail.len(),
                tail.join("\n")
            ));
        }
        out
    }

    /// Whether daemon `name`'s log contains `needle`.
    pub fn log_has(&self, name: &str, needle: &str) -> bool {
        self.daemon(name)
            .ok()
            .and_then(|d| std::fs::read_to_string(&d.log).ok())
            .is_some_and(|t| t.contains(needle))
    }
}
