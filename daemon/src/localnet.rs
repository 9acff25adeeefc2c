//! Launcher for local networks of real `dsdnd` processes on loopback addresses.
//!
//! Used by `dsdn-agent devnet`, by the multi-process integration tests and by benchmarks.
//! It is a set of building blocks:
//!
//! - [`find_dsdnd`] locates the daemon binary, [`reserve_port`] reserves a port usable on
//!   several loopback IPs (held against parallel tests until dropped; [`free_port`] only
//!   checks), [`init_node`] runs `dsdnd init`;
//! - [`ConfigSpec`] writes a seeds.toml;
//! - [`NodeSpec`] / [`Node`] run one daemon process (log in `<data_dir>/dsdnd.log`);
//! - [`LocalNet`] starts the common shape: a real DNS seed server, one bootstrap node,
//!   one coordinator (the DA authority) — or a t-of-n coordinator committee
//!   ([`LocalNetSpec::coordinators`] ≥ 2, Tahap 14A.2B) — and N storage nodes that find
//!   each other through the DNS seed only;
//! - [`sample_da_events`] makes a valid DA event sequence covering every variant.
//!
//! Every node of a [`LocalNet`] listens on its own loopback IP (`127.0.0.2`, `127.0.0.3`, …)
//! but on the same port, because a DNS seed answers IPs that are dialled at the network's
//! `default_port`. Linux routes all of `127.0.0.0/8` to `lo`, so no setup is needed.
//!
//! Processes are killed when their [`Node`] is dropped; a [`LocalNet`] also removes its
//! temporary directory on drop unless it was given a directory to keep.

use std::io;
use std::net::{Ipv4Addr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;

mod committee;
mod config;
mod events;
mod net;
mod node;
mod wait;

pub use config::ConfigSpec;
pub use events::sample_da_events;
pub use net::{LocalNet, LocalNetSpec};
pub use node::{Node, NodeMode, NodeSpec, STOP_GRACE};
pub use wait::{MeshReport, NodeMesh};

use crate::client::ClientError;

/// Environment variable naming the `dsdnd` binary to run (overrides the lookup next to the
/// current executable).
pub const DSDND_BIN_ENV: &str = "DSDND_BIN";

/// Lines of a node's log quoted in error messages.
pub(crate) const LOG_TAIL_LINES: usize = 30;

/// Why a local network operation failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalNetError {
    /// The `dsdnd` binary could not be found.
    #[error("{0}")]
    DsdndNotFound(String),
    /// A file system or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, e.g. `cannot create /tmp/x`.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `dsdnd init` failed or printed something unexpected.
    #[error("`dsdnd init --data-dir {}` failed: {message}", dir.display())]
    Init {
        /// The data directory.
        dir: PathBuf,
        /// Exit status, stderr or parse error.
        message: String,
    },
    /// A node process misbehaved (exited early, could not be signalled, …). The message
    /// includes the tail of its log.
    #[error("node {node}: {message}")]
    Node {
        /// The node's name.
        node: String,
        /// What happened (may span several lines: it quotes the log tail).
        message: String,
    },
    /// A wait did not complete in time.
    #[error("timed out after {secs} s waiting for {what}")]
    Timeout {
        /// What was awaited, including the state seen last.
        what: String,
        /// The timeout, in seconds.
        secs: u64,
    },
    /// A control API call failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Bad input (a spec that cannot work, a config that cannot be encoded, …).
    #[error("{0}")]
    Invalid(String),
    /// The DNS seed server could not be started.
    #[error("cannot start the DNS seed server: {0}")]
    SeedServer(io::Error),
}

impl LocalNetError {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        LocalNetError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Finds the `dsdnd` binary: `$DSDND_BIN` if set, else `dsdnd` next to the current
/// executable, else in its parent directory (test binaries live in `target/debug/deps`,
/// the daemon in `target/debug`).
///
/// # Errors
/// [`LocalNetError::DsdndNotFound`] telling to run `cargo build --bins` (or naming the
/// missing `$DSDND_BIN` file).
pub fn find_dsdnd() -> Result<PathBuf, LocalNetError> {
    if let Some(bin) = std::env::var_os(DSDND_BIN_ENV) {
        let bin = PathBuf::from(bin);
        if bin.is_file() {
            return Ok(bin);
        }
        return Err(LocalNetError::DsdndNotFound(format!(
            "{DSDND_BIN_ENV}={} does not name a file",
            bin.display()
        )));
    }
    let exe = std::env::current_exe()
        .map_err(|e| LocalNetError::io("cannot locate the current executable", e))?;
    let name = format!("dsdnd{}", std::env::consts::EXE_SUFFIX);
    let mut tried = Vec::new();
    let mut dir = exe.parent();
    for _ in 0..2 {
        let Some(d) = dir else { break };
        let candidate = d.join(&name);
        if candidate.is_file() {
            return Ok(candidate);
        }
        tried.push(candidate.display().to_string());
        dir = d.parent();
    }
    Err(LocalNetError::DsdndNotFound(format!(
        "cannot find the dsdnd binary (looked for {}); run `cargo build --bins` first or set {DSDND_BIN_ENV}",
        tried.join(" and ")
    )))
}

/// Ports [`free_port`] picks from.
/// Below Linux's ephemeral range (32768-60999), so an outgoing connection cannot take a
/// port between the check and the daemon binding it.
const PORT_RANGE: std::ops::Range<u16> = 20000..32000;

/// Attempts [`try_free_port`] makes before giving up.
const PORT_ATTEMPTS: usize = 500;

/// The loopback IP on which [`PortLease`]s hold their lock sockets (UDP). No node ever
/// binds it, and nodes bind UDP on their own IP only, so holding `UDP LOCK_IP:p` never gets
/// in a node's way. (TCP would: libp2p's TCP transport binds `0.0.0.0:<listen port>` to
/// dial with port reuse, which a TCP socket on any IP with that port blocks.)
pub const PORT_LOCK_IP: Ipv4Addr = Ipv4Addr::new(127, 255, 255, 254);

/// A port reserved for one local network (one test) until dropped: TCP `p`, UDP `p` and
/// TCP `p + 1` (the control API) were bindable on every requested IP when it was taken,
/// and no other [`PortLease`] — in this process or any other (parallel test binaries) —
/// can get `p` or `p + 1` while it lives.
///
/// The reservation is a pair of UDP sockets on [`PORT_LOCK_IP`]`:p` and `:p + 1`: the
/// kernel arbitrates between processes, and the lock disappears with the process, so a
/// crashed test leaves nothing behind. [`try_free_port`] skips leased ports too.
#[derive(Debug)]
pub struct PortLease {
    port: u16,
    _locks: [UdpSocket; 2],
}

impl PortLease {
    /// The reserved port (`p`; the API port of nodes on it is `p + 1`).
    pub fn port(&self) -> u16 {
        self.port
    }
}

/// Takes the lock of `port` (and `port + 1`), if no lease holds either.
fn lock_port(port: u16) -> io::Result<[UdpSocket; 2]> {
    let next = port
        .checked_add(1)
        .ok_or_else(|| io::Error::other("port overflow"))?;
    Ok([
        UdpSocket::bind((PORT_LOCK_IP, port))?,
        UdpSocket::bind((PORT_LOCK_IP, next))?,
    ])
}

/// Reserves a port for a local network whose nodes listen on `ips`: as [`try_free_port`],
/// and held against every other [`reserve_port`] / [`try_free_port`] caller until the
/// [`PortLease`] is dropped. Keep the lease alive as long as the nodes run.
///
/// # Errors
/// The last bind error when no port was found after many attempts.
pub fn reserve_port(ips: &[Ipv4Addr]) -> io::Result<PortLease> {
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let port = rand::random_range(PORT_RANGE);
        // The lock first: a port another test uses is skipped without probing its IPs.
        let locks = match lock_port(port) {
            Ok(locks) => locks,
            Err(e) => {
                last_err = Some(e);
                continue;
            }
        };
        match port_is_free(ips, port) {
            Ok(()) => {
                return Ok(PortLease {
                    port,
                    _locks: locks,
                })
            }
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free port found")))
}

/// A random port in 20000..32000 such that TCP `p`, UDP `p` and TCP `p + 1` (the control
/// API) are bindable on every IP of `ips` (at the moment of the check), and neither `p` nor
/// `p + 1` is held by a [`PortLease`]. Prefer [`reserve_port`], which also keeps the port
/// from other callers until the nodes have bound it.
///
/// # Errors
/// The last bind error when no such port was found after many attempts (e.g. an IP that
/// is not local).
pub fn try_free_port(ips: &[Ipv4Addr]) -> io::Result<u16> {
    let mut last_err = None;
    for _ in 0..PORT_ATTEMPTS {
        let port = rand::random_range(PORT_RANGE);
        let check = lock_port(port).and_then(|locks| {
            port_is_free(ips, port)?;
            drop(locks);
            Ok(())
        });
        match check {
            Ok(()) => return Ok(port),
            Err(e) => last_err = Some(e),
        }
    }
    Err(last_err.unwrap_or_else(|| io::Error::other("no free port found")))
}

/// As [`try_free_port`], for tests and tools that cannot go on without a port.
///
/// # Panics
/// When no port is free on every IP of `ips` (see [`try_free_port`]).
pub fn free_port(ips: &[Ipv4Addr]) -> u16 {
    match try_free_port(ips) {
        Ok(port) => port,
        Err(e) => panic!("no port in 20000..32000 is free on all of {ips:?}: {e}"),
    }
}

fn port_is_free(ips: &[Ipv4Addr], port: u16) -> io::Result<()> {
    let api_port = port
        .checked_add(1)
        .ok_or_else(|| io::Error::other("port overflow"))?;
    // Hold every socket until all are bound, so two checks cannot pass on one port.
    let mut held_tcp = Vec::new();
    let mut held_udp = Vec::new();
    for ip in ips {
        held_tcp.push(TcpListener::bind((*ip, port))?);
        held_tcp.push(TcpListener::bind((*ip, api_port))?);
        held_udp.push(UdpSocket::bind((*ip, port))?);
    }
    Ok(())
}

/// Runs `dsdnd init --data-dir DIR` with the binary [`find_dsdnd`] finds; returns the node's
/// `(peer_id, public_key_hex)`. Creates the directory and key if missing; idempotent.
///
/// # Errors
/// [`LocalNetError::DsdndNotFound`] or [`LocalNetError::Init`].
pub fn init_node(data_dir: &Path) -> Result<(String, String), LocalNetError> {
    init_node_with(&find_dsdnd()?, data_dir)
}

/// As [`init_node`] with an explicit `dsdnd` binary.
///
/// # Errors
/// [`LocalNetError::Init`] when the command fails or its output is not the expected JSON.
pub(crate) fn init_node_with(
    dsdnd: &Path,
    data_dir: &Path,
) -> Result<(String, String), LocalNetError> {
    let init_err = |message: String| LocalNetError::Init {
        dir: data_dir.to_path_buf(),
        message,
    };
    let out = Command::new(dsdnd)
        .arg("init")
        .arg("--data-dir")
        .arg(data_dir)
        .env("RUST_LOG", "warn")
        .output()
        .map_err(|e| init_err(format!("cannot run {}: {e}", dsdnd.display())))?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        return Err(init_err(format!("{}: {}", out.status, stderr.trim())));
    }
    parse_init_output(&String::from_utf8_lossy(&out.stdout)).map_err(init_err)
}

/// Reads `{"peer_id": …, "public_key": …}` from `dsdnd init` output: the whole output, or
/// else its last line that is such an object.
fn parse_init_output(stdout: &str) -> Result<(String, String), String> {
    fn from_value(v: &serde_json::Value) -> Option<(String, String)> {
        let peer_id = v.get("peer_id")?.as_str()?.to_owned();
        let key = v.get("public_key")?.as_str()?.to_owned();
        Some((peer_id, key))
    }
    let whole = serde_json::from_str::<serde_json::Value>(stdout.trim())
        .ok()
        .and_then(|v| from_value(&v));
    let found = whole.or_else(|| {
        stdout.lines().rev().find_map(|line| {
            serde_json::from_str::<serde_json::Value>(line.trim())
                .ok()
                .and_then(|v| from_value(&v))
        })
    });
    let (peer_id, key) = found.ok_or_else(|| {
        format!(
            "expected a JSON object with \"peer_id\" and \"public_key\" on stdout, got {:?}",
            stdout.chars().take(200).collect::<String>()
        )
    })?;
    let key_ok = key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit());
    if peer_id.is_empty() || !key_ok {
        return Err(format!(
            "unexpected identity: peer_id {peer_id:?}, public_key {key:?} (want 64 hex characters)"
        ));
    }
    Ok((peer_id, key))
}

/// The last `n` lines of the file at `path` (empty when it cannot be read).
pub fn file_tail(path: &Path, n: usize) -> String {
    let Ok(bytes) = std::fs::read(path) else {
        return String::new();
    };
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.len().saturating_sub(n);
    lines[start..].join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_port_is_bindable_on_every_ip() {
        let ips = [
            Ipv4Addr::new(127, 0, 0, 2),
            Ipv4Addr::new(127, 0, 0, 3),
            Ipv4Addr::new(127, 0, 0, 9),
        ];
        let port = free_port(&ips);
        assert!(PORT_RANGE.contains(&port));
        // A process another test of this binary forks holds copies of the check's sockets
        // until it execs (CLOEXEC), so the binds are retried for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let bind_all = || -> io::Result<()> {
            let mut held = Vec::new();
            for ip in ips {
                held.push(TcpListener::bind((ip, port))?);
                let _u = UdpSocket::bind((ip, port))?;
                held.push(TcpListener::bind((ip, port + 1))?);
            }
            Ok(())
        };
        loop {
            match bind_all() {
                Ok(()) => break,
                Err(e) if std::time::Instant::now() > deadline => {
                    panic!("port {port} is not bindable on every IP: {e}")
                }
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(10)),
            }
        }
    }

    #[test]
    fn leases_never_overlap_and_are_released_on_drop() {
        let ips = [Ipv4Addr::new(127, 0, 0, 2)];
        let leases: Vec<PortLease> = (0..20)
            .map(|_| reserve_port(&ips).expect("lease"))
            .collect();
        for (i, a) in leases.iter().enumerate() {
            assert!(PORT_RANGE.contains(&a.port()));
            for b in &leases[i + 1..] {
                // p and p + 1 of one lease are never p or p + 1 of another.
                assert!(
                    a.port().abs_diff(b.port()) >= 2,
                    "{} {}",
                    a.port(),
                    b.port()
                );
            }
            // A leased port is not "free" for try_free_port's check either.
            assert!(lock_port(a.port()).is_err());
            assert!(lock_port(a.port() - 1).is_err());
        }
        let ports: Vec<u16> = leases.iter().map(PortLease::port).collect();
        drop(leases);
        // Other tests of this binary lease ports concurrently and may take one of these
        // (or its neighbour) the moment it is released; and a process another test forks
        // holds copies of every socket until it execs (CLOEXEC), so each port is retried
        // for a while. Were the locks not released, all twenty would stay taken.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let relocked = ports
            .iter()
            .filter(|&&p| loop {
                if lock_port(p).is_ok() {
                    break true;
                }
                if std::time::Instant::now() > deadline {
                    break false;
                }
                std::thread::sleep(std::time::Duration::from_millis(10));
            })
            .count();
        assert!(
            relocked >= 10,
            "only {relocked} of 20 released ports could be locked"
        );
    }

    #[test]
    fn busy_port_is_not_free() {
        let ip = Ipv4Addr::LOCALHOST;
        let held = TcpListener::bind((ip, 0)).expect("bind");
        let port = held.local_addr().expect("addr").port();
        assert!(port_is_free(&[ip], port).is_err());
        if port > 0 {
            // p + 1 busy makes p unusable too.
            assert!(port_is_free(&[ip], port - 1).is_err());
        }
    }

    #[test]
    fn non_local_ip_fails_cleanly() {
        // TEST-NET-1 is never a local address.
        assert!(try_free_port(&[Ipv4Addr::new(192, 0, 2, 1)]).is_err());
    }

    #[test]
    fn init_output_parsing() {
        let key = "ab".repeat(32);
        let json = format!("{{\"peer_id\": \"12D3KooWabc\", \"public_key\": \"{key}\"}}");
        assert_eq!(
            parse_init_output(&json),
            Ok(("12D3KooWabc".to_owned(), key.clone()))
        );
        let noisy = format!("created key in /tmp/x\n{json}\n");
        assert!(parse_init_output(&noisy).is_ok());
        assert!(parse_init_output("nothing").is_err());
        let short = "{\"peer_id\": \"p\", \"public_key\": \"abcd\"}";
        assert!(parse_init_output(short).is_err());
    }

    #[test]
    fn tail_of_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log");
        std::fs::write(&path, "a\nb\nc\nd\n").expect("write");
        assert_eq!(file_tail(&path, 2), "c\nd");
        assert_eq!(file_tail(&path, 10), "a\nb\nc\nd");
        assert_eq!(file_tail(&dir.path().join("missing"), 3), "");
    }
}
