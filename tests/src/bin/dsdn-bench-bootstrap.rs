//! Memory of a dedicated bootstrap node with 1,000 inbound peers (issue: "Its memory with
//! 1,000 inbound peers connected is measured in a benchmark and reported"; 28.1.C §3).
//!
//! Starts a real `dsdnd --mode bootstrap` process on loopback, reads its RSS
//! (`/proc/<pid>/status` `VmRSS`, `VmHWM`) idle, then connects N inbound peers from this
//! process: each its own libp2p identity and swarm (TCP + noise + yamux, all on one tokio
//! runtime) that completes the DSDN handshake, answers the node's PEX request and, unless
//! `--no-pex`, asks the node for peers once as a joining node does. When the node's
//! `bootstrap_active_peers` reaches N it reads the RSS again, and once more after every
//! peer has left. Prints idle RSS, RSS with N peers, KiB per peer, the time to connect all
//! and the daemon's CPU time (`/proc/<pid>/stat` utime + stime).
//!
//! Run (the bench finds `dsdnd` next to itself, or takes `DSDND_BIN`):
//! `cargo build --release --bins && target/release/dsdn-bench-bootstrap [--peers N]
//! [--concurrency C] [--no-pex]`

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dsdn_daemon::localnet::{reserve_port, ConfigSpec, Node, NodeMode, NodeSpec};
use dsdn_p2p::net::behaviour::{
    handshake_behaviour, pex_behaviour, HandshakeBehaviour, PexBehaviour,
};
use dsdn_protocols::handshake::Handshake;
use dsdn_protocols::pex::{PexRequest, PexResponse};
use dsdn_protocols::{NetworkId, ServiceSet, ServiceType, PROTOCOL_VERSION};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, Swarm, SwarmBuilder};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// Network of the benchmark's seeds.toml.
const NETWORK: &str = "devnet";
/// How long the node gets to start, and to count every peer after the last handshake.
const WAIT: Duration = Duration::from_secs(120);
/// Pause before each RSS reading, so in-flight work (PEX answers, peers.dat writes) ends.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Peer {
    handshake: HandshakeBehaviour,
    pex: PexBehaviour,
}

struct Args {
    peers: usize,
    concurrency: usize,
    pex: bool,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        peers: 1000,
        concurrency: 64,
        pex: true,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--peers" => args.peers = it.next().context("--peers N")?.parse()?,
            "--concurrency" => args.concurrency = it.next().context("--concurrency C")?.parse()?,
            "--no-pex" => args.pex = false,
            other => bail!("unknown argument {other:?} (--peers N, --concurrency C, --no-pex)"),
        }
    }
    anyhow::ensure!(
        args.peers > 0 && args.concurrency > 0,
        "N and C must be positive"
    );
    Ok(args)
}

/// `VmRSS` and `VmHWM` of a process, in KiB.
fn memory_kib(pid: u32) -> anyhow::Result<(u64, u64)> {
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
fn clock_ticks() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// utime + stime of a process, in seconds.
fn cpu_secs(pid: u32, ticks: f64) -> anyhow::Result<f64> {
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

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn peer_swarm(network: &NetworkId) -> anyhow::Result<Swarm<Peer>> {
    let timeout = Duration::from_secs(30);
    let handshake = handshake_behaviour(timeout);
    let pex = pex_behaviour(network, timeout)?;
    Ok(
        SwarmBuilder::with_existing_identity(Keypair::generate_ed25519())
            .with_tokio()
            .with_tcp(
                tcp::Config::default().nodelay(true),
                noise::Config::new,
                yamux::Config::default,
            )?
            .with_behaviour(|_| Peer { handshake, pex })?
            .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(3600)))
            .build(),
    )
}

fn our_handshake(swarm: &Swarm<Peer>) -> Handshake {
    Handshake {
        protocol_version: PROTOCOL_VERSION,
        network_id: NETWORK.to_owned(),
        node_id: swarm.local_peer_id().to_bytes(),
        // Like a node behind NAT: nothing to advertise, so the node never dials back.
        listen_addrs: Vec::new(),
        services: ServiceSet::from_types([ServiceType::Storage]),
    }
}

/// What the peers tell the benchmark.
struct Counters {
    /// Connections closed after the handshake (should stay 0 while measuring).
    dropped: AtomicUsize,
    /// PEX responses received from the node.
    pex_answers: AtomicUsize,
}

/// One inbound peer: dials, handshakes (reporting the result on `done` and releasing
/// `permit`), then keeps the connection open, answering PEX, until `stop`.
async fn run_peer(
    target: Multiaddr,
    network: NetworkId,
    ask_pex: bool,
    permit: OwnedSemaphorePermit,
    done: mpsc::UnboundedSender<Result<(), String>>,
    counters: Arc<Counters>,
    mut stop: watch::Receiver<bool>,
) {
    let mut swarm = match peer_swarm(&network) {
        Ok(s) => s,
        Err(e) => {
            let _ = done.send(Err(format!("cannot build a swarm: {e}")));
            return;
        }
    };
    if let Err(e) = swarm.dial(target) {
        let _ = done.send(Err(format!("dial: {e}")));
        return;
    }
    let mut permit = Some(permit);
    let fail = |permit: &mut Option<OwnedSemaphorePermit>, why: String| {
        if permit.take().is_some() {
            let _ = done.send(Err(why));
        }
    };
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = stop.changed() => return,
        };
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                let hs = our_handshake(&swarm);
                swarm.behaviour_mut().handshake.send_request(&peer_id, hs);
            }
            SwarmEvent::Behaviour(PeerEvent::Handshake(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                Message::Response { response, .. } => {
                    if response.network_id != NETWORK {
                        fail(
                            &mut permit,
                            format!("node answered network {}", response.network_id),
                        );
                    } else if permit.take().is_some() {
                        // The node verified our handshake before it answered.
                        let _ = done.send(Ok(()));
                        if ask_pex {
                            let req = PexRequest {
                                max_entries: 1000,
                                services: ServiceSet::EMPTY,
                            };
                            swarm.behaviour_mut().pex.send_request(&peer, req);
                        }
                    }
                }
                Message::Request { channel, .. } => {
                    let hs = our_handshake(&swarm);
                    let _ = swarm.behaviour_mut().handshake.send_response(channel, hs);
                }
            },
            SwarmEvent::Behaviour(PeerEvent::Handshake(
                request_response::Event::OutboundFailure { error, .. },
            )) => fail(&mut permit, format!("handshake: {error}")),
            SwarmEvent::Behaviour(PeerEvent::Pex(request_response::Event::Message {
                message,
                ..
            })) => match message {
                Message::Request { channel, .. } => {
                    let _ = swarm
                        .behaviour_mut()
                        .pex
                        .send_response(channel, PexResponse::default());
                }
                Message::Response { .. } => {
                    counters.pex_answers.fetch_add(1, Ordering::Relaxed);
                }
            },
            SwarmEvent::OutgoingConnectionError { error, .. } => {
                fail(&mut permit, format!("connect: {error}"));
            }
            SwarmEvent::ConnectionClosed { cause, .. } => {
                if permit.is_some() {
                    fail(
                        &mut permit,
                        format!("closed before the handshake: {cause:?}"),
                    );
                } else {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

async fn active_peers(node: &Node) -> Option<f64> {
    node.client()
        .metric("bootstrap_active_peers", &[])
        .await
        .ok()
        .flatten()
}

/// Waits until `bootstrap_active_peers` satisfies `ok`; returns the last value.
async fn wait_active(node: &Node, what: &str, ok: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
    let started = Instant::now();
    let mut last = None;
    while started.elapsed() < WAIT {
        last = active_peers(node).await;
        if last.is_some_and(&ok) {
            return Ok(last.unwrap_or_default());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    bail!(
        "bootstrap_active_peers never reached {what} in {WAIT:?} (last {last:?}):\n{}",
        node.log_tail(30)
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let n = args.peers;
    let dir = tempfile::tempdir()?;
    let ip = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let lease = reserve_port(&[ip])?;
    let cfg = dir.path().join("seeds.toml");
    // Every peer dials from 127.0.0.1, so the per-IP limit must let all of them in.
    ConfigSpec::default()
        .with_network(NETWORK)
        .with_default_port(lease.port())
        .with_connection_limits(8, (2 * n).max(2000) as u32)
        .with_inbound_per_ip_per_minute(1_000_000)
        .with_min_peers(1)
        .write(&cfg)?;
    let mut spec = NodeSpec::new(
        "bootstrap",
        NodeMode::Bootstrap,
        ip,
        lease.port(),
        &cfg,
        dir.path().join("bootstrap"),
    );
    spec.rust_log = "warn".into();
    let mut node = Node::spawn(spec).await?;
    node.wait_ready(WAIT).await?;
    let pid = node.pid().context("the node has no pid")?;
    let ticks = clock_ticks();
    tokio::time::sleep(SETTLE).await;
    let (idle_rss, idle_hwm) = memory_kib(pid)?;
    let idle_cpu = cpu_secs(pid, ticks)?;

    let network = NetworkId::new(NETWORK)?;
    let target: Multiaddr = format!("/ip4/{ip}/tcp/{}", lease.port()).parse()?;
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let counters = Arc::new(Counters {
        dropped: AtomicUsize::new(0),
        pex_answers: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (done_tx, mut done_rx) = mpsc::unbounded_channel();
    let started = Instant::now();
    let mut peers = Vec::with_capacity(n);
    let mut failures = Vec::new();
    let mut verified = 0;
    for _ in 0..n {
        let permit = limit.clone().acquire_owned().await?;
        peers.push(tokio::spawn(run_peer(
            target.clone(),
            network.clone(),
            args.pex,
            permit,
            done_tx.clone(),
            counters.clone(),
            stop_rx.clone(),
        )));
        while let Ok(r) = done_rx.try_recv() {
            match r {
                Ok(()) => verified += 1,
                Err(e) => failures.push(e),
            }
        }
    }
    while verified + failures.len() < n {
        match tokio::time::timeout(WAIT, done_rx.recv()).await {
            Ok(Some(Ok(()))) => verified += 1,
            Ok(Some(Err(e))) => failures.push(e),
            Ok(None) | Err(_) => break,
        }
    }
    let handshaken_in = started.elapsed();
    if !failures.is_empty() {
        eprintln!(
            "{} peers failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
    anyhow::ensure!(
        verified == n,
        "only {verified} of {n} peers completed the handshake"
    );
    let counted = wait_active(&node, &n.to_string(), |v| v >= n as f64).await?;
    let counted_in = started.elapsed();
    let connect_cpu = cpu_secs(pid, ticks)?;
    tokio::time::sleep(SETTLE).await;
    let (full_rss, full_hwm) = memory_kib(pid)?;
    let still = active_peers(&node).await.unwrap_or_default();
    let dropped = counters.dropped.load(Ordering::Relaxed);

    // Every peer leaves: how much does the node give back?
    let _ = stop_tx.send(true);
    for p in peers {
        let _ = p.await;
    }
    wait_active(&node, "0", |v| v == 0.0).await?;
    tokio::time::sleep(SETTLE).await;
    let (after_rss, _) = memory_kib(pid)?;
    let total_cpu = cpu_secs(pid, ticks)?;
    node.stop().await?;

    let per_peer = (full_rss.saturating_sub(idle_rss)) as f64 / n as f64;
    println!("dsdnd --mode bootstrap, {n} inbound peers over TCP (noise + yamux) on loopback");
    println!("peers: {n} handshaken, {} counted by bootstrap_active_peers ({still} after settling), {dropped} dropped, {} PEX answers",
        counted, counters.pex_answers.load(Ordering::Relaxed));
    println!(
        "idle RSS:                 {:8.1} MiB (VmHWM {:.1} MiB)",
        mib(idle_rss),
        mib(idle_hwm)
    );
    println!(
        "RSS with {n} peers:      {:8.1} MiB (VmHWM {:.1} MiB)",
        mib(full_rss),
        mib(full_hwm)
    );
    println!("per peer:                 {per_peer:8.1} KiB");
    println!("RSS after all left:       {:8.1} MiB", mib(after_rss));
    println!("time to connect all:      {handshaken_in:.2?} (handshakes, {} in flight at most); counted by the node after {counted_in:.2?}", args.concurrency);
    println!("daemon CPU time (utime+stime): idle start {idle_cpu:.2} s, connecting {:.2} s, total {total_cpu:.2} s",
        connect_cpu - idle_cpu);
    Ok(())
}
