//! Shared parts of the benchmarks that measure a real `dsdnd --mode bootstrap` process
//! (`dsdn-bench-bootstrap`, `dsdn-bench-relay`): the node on loopback, its memory and CPU
//! time from `/proc`, and what an in-process bench peer needs to pass its DSDN handshake
//! (and answer its PEX requests) so that the node keeps the connection open.

use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use anyhow::Context;
use dsdn_daemon::localnet::{ConfigSpec, Node, NodeMode, NodeSpec};
use dsdn_p2p::net::behaviour::{HandshakeBehaviour, PexBehaviour};
use dsdn_protocols::handshake::Handshake;
use dsdn_protocols::pex::{PexRequest, PexResponse};
use dsdn_protocols::{ServiceSet, ServiceType, PROTOCOL_VERSION};
use libp2p::request_response::{self, Message};
use libp2p::PeerId;

/// Network of the benchmarks' seeds.toml.
pub const NETWORK: &str = "devnet";

/// Loopback IP the benchmarks' node listens on (bench peers dial from `127.0.0.1`).
pub const NODE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);

/// Idle timeout of the bench peers' swarms: connections stay open while measuring.
pub const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(3600);

/// `VmRSS` and `VmHWM` of a process, in KiB.
///
/// # Errors
/// When `/proc/<pid>/status` cannot be read or lacks the fields.
pub fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        let line = status
            .lines()
            .find(|l| l.starts_with(name))
            .with_context(|| format!("no {name} in /proc/{pid}/status"))?;
        let kib = line
            .split_whitespace()
            .nth(1)
            .with_context(|| format!("malformed {line:?}"))?;
        Ok(kib.parse()?)
    };
    Ok((field("VmRSS:")?, field("VmHWM:")?))
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 when it cannot be asked).
pub fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds (`ticks`: [`clock_ticks`]).
///
/// # Errors
/// When `/proc/<pid>/stat` cannot be read or parsed.
pub fn cpu_secs(pid: u32, ticks: f64) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // The command name (field 2) may hold spaces: count fields after its closing paren.
    let rest = stat
        .rsplit_once(')')
        .context("malformed /proc/<pid>/stat")?
        .1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime and stime are fields 14 and 15.
    let utime: f64 = f.get(11).context("no utime")?.parse()?;
    let stime: f64 = f.get(12).context("no stime")?.parse()?;
    Ok((utime + stime) / ticks)
}

/// KiB to MiB.
pub fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The benchmarks' seeds.toml: [`NETWORK`], `port`, room for `peers` inbound connections
/// (at least 2,000), and no per-IP inbound rate limit (every bench peer dials from
/// `127.0.0.1`).
pub fn node_config(port: u16, peers: usize) -> ConfigSpec {
    ConfigSpec::default()
        .with_network(NETWORK)
        .with_default_port(port)
        .with_connection_limits(8, (2 * peers).max(2000) as u32)
        .with_inbound_per_ip_per_minute(1_000_000)
        .with_min_peers(1)
}

/// Writes `cfg` to `dir/seeds.toml`, starts `dsdnd --mode bootstrap` on
/// [`NODE_IP`]`:port` (data in `dir/bootstrap`, `RUST_LOG=warn`, `extra_args` appended)
/// and waits until it is ready.
///
/// # Errors
/// When the config cannot be written or the node does not become ready within `wait`.
pub async fn spawn_node(
    dir: &Path,
    port: u16,
    cfg: &ConfigSpec,
    extra_args: Vec<String>,
    wait: Duration,
) -> anyhow::Result<Node> {
    let path = dir.join("seeds.toml");
    cfg.write(&path)?;
    let mut spec = NodeSpec::new(
        "bootstrap",
        NodeMode::Bootstrap,
        NODE_IP,
        port,
        &path,
        dir.join("bootstrap"),
    );
    spec.rust_log = "warn".into();
    spec.extra_args = extra_args;
    let node = Node::spawn(spec).await?;
    node.wait_ready(wait).await?;
    Ok(node)
}

/// The handshake of bench peer `local`: [`NETWORK`], a storage node that, like a node
/// behind a NAT, advertises no address (so the node never dials back).
pub fn handshake(local: &PeerId) -> Handshake {
    Handshake {
        protocol_version: PROTOCOL_VERSION,
        network_id: NETWORK.to_owned(),
        node_id: local.to_bytes(),
        listen_addrs: Vec::new(),
        services: ServiceSet::from_types([ServiceType::Storage]),
    }
}

/// What a handshake event means to a bench peer.
pub enum HandshakeStep {
    /// The node answered our handshake (it verified ours before it answered).
    Verified(PeerId),
    /// The handshake failed.
    Failed(String),
    /// Nothing for the bench (e.g. the node's own handshake request, answered here).
    Other,
}

/// Handles a handshake event of bench peer `local`: answers the node's requests.
pub fn on_handshake_event(
    hs: &mut HandshakeBehaviour,
    local: &PeerId,
    ev: request_response::Event<Handshake, Handshake>,
) -> HandshakeStep {
    match ev {
        request_response::Event::Message { peer, message, .. } => match message {
            Message::Response { response, .. } if response.network_id != NETWORK => {
                HandshakeStep::Failed(format!("node answered network {}", response.network_id))
            }
            Message::Response { .. } => HandshakeStep::Verified(peer),
            Message::Request { channel, .. } => {
                let _ = hs.send_response(channel, handshake(local));
                HandshakeStep::Other
            }
        },
        request_response::Event::OutboundFailure { error, .. } => {
            HandshakeStep::Failed(format!("handshake: {error}"))
        }
        _ => HandshakeStep::Other,
    }
}

/// Handles a PEX event of a bench peer: answers the node's requests with no peers; true
/// for a response of the node.
pub fn on_pex_event(
    pex: &mut PexBehaviour,
    ev: request_response::Event<PexRequest, PexResponse>,
) -> bool {
    match ev {
        request_response::Event::Message {
            message: Message::Request { channel, .. },
            ..
        } => {
            let _ = pex.send_response(channel, PexResponse::default());
            false
        }
        request_response::Event::Message {
            message: Message::Response { .. },
            ..
        } => true,
        _ => false,
    }
}
