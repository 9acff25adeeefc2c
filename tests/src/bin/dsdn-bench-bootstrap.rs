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
use dsdn_daemon::localnet::{reserve_port, Node};
use dsdn_integration_tests::bench::{
    self, clock_ticks, cpu_secs, memory_kib, mib, node_config, on_handshake_event, on_pex_event,
    spawn_node, HandshakeStep, NETWORK, NODE_IP, PEER_IDLE_TIMEOUT,
};
use dsdn_p2p::net::behaviour::{
    handshake_behaviour, pex_behaviour, HandshakeBehaviour, PexBehaviour,
};
use dsdn_protocols::pex::PexRequest;
use dsdn_protocols::{NetworkId, ServiceSet};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, Swarm, SwarmBuilder};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

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
            .with_swarm_config(|c| c.with_idle_connection_timeout(PEER_IDLE_TIMEOUT))
            .build(),
    )
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
                let hs = bench::handshake(swarm.local_peer_id());
                swarm.behaviour_mut().handshake.send_request(&peer_id, hs);
            }
            SwarmEvent::Behaviour(PeerEvent::Handshake(ev)) => {
                let local = *swarm.local_peer_id();
                match on_handshake_event(&mut swarm.behaviour_mut().handshake, &local, ev) {
                    HandshakeStep::Verified(peer) => {
                        if permit.take().is_some() {
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
                    HandshakeStep::Failed(why) => fail(&mut permit, why),
                    HandshakeStep::Other => {}
                }
            }
            SwarmEvent::Behaviour(PeerEvent::Pex(ev)) => {
                let answer = on_pex_event(&mut swarm.behaviour_mut().pex, ev);
                counters
                    .pex_answers
                    .fetch_add(usize::from(answer), Ordering::Relaxed);
            }
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
    let ip = NODE_IP;
    let lease = reserve_port(&[ip])?;
    let cfg = node_config(lease.port(), n);
    let mut node = spawn_node(dir.path(), lease.port(), &cfg, Vec::new(), WAIT).await?;
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
