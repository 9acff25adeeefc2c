//! Bootstrap benchmark on loopback (issue: "median time to the first verified peer").
//!
//! Prints:
//! * the median time from process start to the first handshake-verified peer through a DNS
//!   seed (cold start, empty peers.dat);
//! * the same from a warm peers.dat (restart, no DNS query);
//! * the time until ten nodes that only know the DNS seed all know each other.
//!
//! Run: `cargo build --release --bins && target/release/dsdn-bench [--runs N]`

use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::{Duration, Instant};

use dsdn_bootstrap::seed_server::SeedServer;
use dsdn_daemon::localnet::{reserve_port, ConfigSpec, Node, NodeMode, NodeSpec};

const T: Duration = Duration::from_secs(60);

fn ip(last: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, last)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

async fn until_first_peer(node: &Node, started: Instant) -> anyhow::Result<Duration> {
    loop {
        if let Ok(st) = node.client().status().await {
            if st.connected_peers >= 1 {
                return Ok(started.elapsed());
            }
        }
        if started.elapsed() > T {
            anyhow::bail!(
                "{} found no peer in {T:?}:\n{}",
                node.name(),
                node.log_tail(30)
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn spawn(
    name: &str,
    mode: NodeMode,
    last: u8,
    port: u16,
    cfg: &Path,
    dir: &Path,
) -> anyhow::Result<Node> {
    let mut spec = NodeSpec::new(name, mode, ip(last), port, cfg, dir.join(name));
    spec.rust_log = "info".into();
    Ok(Node::spawn(spec).await?)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .skip_while(|a| a != "--runs")
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(7);
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let ips: Vec<Ipv4Addr> = (2..=20).map(ip).collect();
    let lease = reserve_port(&ips)?;
    let port = lease.port();
    let dns = SeedServer::spawn("127.0.0.1:0".parse()?).await?;
    dns.set_records("seed.dsdn.test", vec![IpAddr::V4(ip(2))]);
    let cfg = dir.join("seeds.toml");
    ConfigSpec::default()
        .with_dns_seed("seed.dsdn.test")
        .with_dns_server(dns.local_addr())
        .with_default_port(port)
        .with_intervals(2, 2)
        // One peer is all a joiner gets here: no partition recovery (it resolves DNS).
        .with_min_peers(1)
        // Every node's TCP dials leave from 127.0.0.1 on loopback.
        .with_inbound_per_ip_per_minute(1000)
        .write(&cfg)?;

    let bootstrap = spawn("bootstrap", NodeMode::Bootstrap, 2, port, &cfg, dir).await?;
    bootstrap.wait_ready(T).await?;

    let (mut cold, mut warm) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let name = format!("joiner-{run}");
        let started = Instant::now();
        let mut node = spawn(&name, NodeMode::Storage, 3, port, &cfg, dir).await?;
        cold.push(until_first_peer(&node, started).await?);
        node.stop().await?;
        let started = Instant::now();
        node.restart().await?;
        warm.push(until_first_peer(&node, started).await?);
        let dns_queries = node
            .client()
            .metric("bootstrap_dns_resolve_total", &[])
            .await?;
        anyhow::ensure!(
            dns_queries == Some(0.0),
            "warm start queried DNS; log tail:\n{}",
            node.log_tail(40)
        );
        node.stop().await?;
    }
    println!("runs: {runs}");
    println!(
        "cold start via DNS seed -> first verified peer, median: {:?}",
        median(cold)
    );
    println!(
        "warm start from peers.dat -> first verified peer, median: {:?}",
        median(warm)
    );

    // Ten nodes that only know the DNS seed (the bootstrap node is the tenth).
    let started = Instant::now();
    let mut nodes = Vec::new();
    for i in 0..9u8 {
        nodes.push(
            spawn(
                &format!("node-{i}"),
                NodeMode::Storage,
                4 + i,
                port,
                &cfg,
                dir,
            )
            .await?,
        );
    }
    let mut ids: Vec<String> = nodes.iter().map(|n| n.peer_id().to_owned()).collect();
    ids.push(bootstrap.peer_id().to_owned());
    let mut everyone: Vec<&Node> = nodes.iter().collect();
    everyone.push(&bootstrap);
    loop {
        let mut done = true;
        for n in &everyone {
            let known: Vec<String> = n
                .client()
                .peers()
                .await
                .map(|p| p.into_iter().map(|p| p.peer_id).collect())
                .unwrap_or_default();
            if ids
                .iter()
                .any(|id| id != n.peer_id() && !known.contains(id))
            {
                done = false;
                break;
            }
        }
        if done {
            break;
        }
        anyhow::ensure!(started.elapsed() < T * 3, "ten nodes did not converge");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "ten nodes from DNS seed -> all know each other: {:?}",
        started.elapsed()
    );
    Ok(())
}
