//! A full node on a generated DA log, and a light client's config that names it: the set-up
//! the scale benchmark (`dsdn-bench-da-scale`) and the light client's code order
//! (`dsdn-light-order`) share.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::{ConfigSpec, Node, NodeMode, NodeSpec, PortLease};

use crate::bench::{clock_ticks, cpu_secs};

/// The network of the generated logs.
pub const NETWORK: &str = "devnet";

/// A storage node serving a log in `dir/full`, and the light client's seeds.toml.
pub struct FullNodeSetup {
    /// The node (`dsdnd --mode storage`, RUST_LOG `warn`).
    pub spec: NodeSpec,
    /// Its data directory (`dir/full`).
    pub data: PathBuf,
    /// seeds.toml of a light client: the node as its only static peer.
    pub light_config: PathBuf,
}

impl FullNodeSetup {
    /// Writes `dir/seeds.toml` (network [`NETWORK`], a port reserved on `ip`, `authority`
    /// — 64 hex — as DA authority) and `dir/light.toml`; the node's data directory is
    /// `dir/full`. Keep the lease while the node runs.
    ///
    /// # Errors
    /// When no port can be reserved or a file cannot be written.
    pub fn new(dir: &Path, ip: Ipv4Addr, authority: &str) -> anyhow::Result<(Self, PortLease)> {
        let data = dir.join("full");
        let lease = dsdn_daemon::localnet::reserve_port(&[ip]).context("reserve a port")?;
        let cfg = ConfigSpec::default()
            .with_network(NETWORK)
            .with_default_port(lease.port())
            .with_da_authority(authority);
        let config = dir.join("seeds.toml");
        cfg.write(&config)?;
        let mut spec = NodeSpec::new(
            "full",
            NodeMode::Storage,
            ip,
            lease.port(),
            &config,
            data.clone(),
        );
        spec.rust_log = "warn".into();
        let light_config = dir.join("light.toml");
        cfg.with_static_peer(format!("{ip}:{}", lease.port()))
            .write(&light_config)?;
        Ok((
            FullNodeSetup {
                spec,
                data,
                light_config,
            },
            lease,
        ))
    }
}

/// Starts the node of `spec` and waits until `GET /v1/da/state` answers at `height` (at
/// most `patience`); returns the node, the wall time from the start and the process's CPU
/// seconds by then.
///
/// # Errors
/// When the node cannot start, exits, or is not at `height` in time.
pub async fn start_at_tip(
    spec: &NodeSpec,
    height: u64,
    patience: Duration,
) -> anyhow::Result<(Node, Duration, f64)> {
    let started = Instant::now();
    let node = Node::spawn(spec.clone()).await?;
    let client = node.client();
    let pid = node.pid().context("the node does not run")?;
    loop {
        if let Ok(st) = client.da_state().await {
            if st.height >= height {
                break;
            }
        }
        anyhow::ensure!(
            started.elapsed() < patience,
            "the node did not reach height {height} within {patience:?}"
        );
        anyhow::ensure!(node.pid().is_some(), "the node exited while starting");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed();
    let cpu = cpu_secs(pid, clock_ticks())?;
    Ok((node, elapsed, cpu))
}
