//! Memory per relayed circuit on a relay server (issue 12 §9).
//!
//! Starts a real `dsdnd --mode bootstrap` process on loopback (a circuit relay v2 server,
//! serving at once thanks to `--external-address`, with relay limits and per-IP rate
//! limits raised so that N circuits fit), then, in this process, N "listener" peers and N
//! "dialer" peers: each its own libp2p identity and swarm (TCP + noise + yamux and the
//! relay client transport, no DCUtR so circuits stay relayed) that connects to the node and
//! passes the DSDN handshake. Every listener reserves a slot on the relay; once all have,
//! and every dialer is connected, it reads the node's RSS (`/proc/<pid>/status` `VmRSS`),
//! then each dialer opens a relayed connection to one listener through the node
//! (`<relay>/p2p-circuit/p2p/<listener>`) and keeps it open. When the node's
//! `p2p_relay_circuits` reaches N it reads the RSS again. Prints the RSS idle, with N
//! reservations, with N reservations + N connected dialers (the baseline), with N circuits,
//! KiB per circuit and the time to open them all.
//!
//! Run (the bench finds `dsdnd` next to itself, or takes `DSDND_BIN`):
//! `cargo build --release --bins && target/release/dsdn-bench-relay [--circuits N]
//! [--concurrency C]`

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
use dsdn_protocols::NetworkId;
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, relay, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};

/// How long the node gets to start, and every phase (reservations, connections, circuits).
const WAIT: Duration = Duration::from_secs(120);
/// Pause before each RSS reading, so in-flight work ends.
const SETTLE: Duration = Duration::from_secs(3);

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Peer {
    relay: relay::client::Behaviour,
    handshake: HandshakeBehaviour,
    pex: PexBehaviour,
}

struct Args {
    circuits: usize,
    concurrency: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let mut args = Args {
        circuits: 200,
        concurrency: 64,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--circuits" => args.circuits = it.next().context("--circuits N")?.parse()?,
            "--concurrency" => args.concurrency = it.next().context("--concurrency C")?.parse()?,
            other => bail!("unknown argument {other:?} (--circuits N, --concurrency C)"),
        }
    }
    anyhow::ensure!(
        args.circuits > 0 && args.concurrency > 0,
        "N and C must be positive"
    );
    Ok(args)
}

fn peer_swarm(key: Keypair, network: &NetworkId) -> anyhow::Result<Swarm<Peer>> {
    let timeout = Duration::from_secs(30);
    let handshake = handshake_behaviour(timeout);
    let pex = pex_behaviour(network, timeout)?;
    Ok(SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_relay_client(noise::Config::new, yamux::Config::default)?
        .with_behaviour(|_, relay| Peer {
            relay,
            handshake,
            pex,
        })?
        .with_swarm_config(|c| c.with_idle_connection_timeout(PEER_IDLE_TIMEOUT))
        .build())
}

/// What a bench peer does once connected to the relay and handshaken.
enum Role {
    /// Reserves a slot on the relay and accepts circuits.
    Listener,
    /// Opens a circuit to `target` through the relay once `go` brings a permit (released
    /// when the circuit is up or has failed).
    Dialer {
        target: PeerId,
        go: oneshot::Receiver<OwnedSemaphorePermit>,
    },
}

/// What the peers tell the benchmark.
enum Report {
    /// Listener: reservation accepted; dialer: handshake passed (or why not).
    Ready(Result<(), String>),
    /// Dialer: relayed connection to its listener established (or why not).
    Circuit(Result<(), String>),
}

/// Connections closed while they should stay open (relay connections after the
/// handshake, circuits once established).
struct Dropped {
    relay: AtomicUsize,
    circuits: AtomicUsize,
}

/// One step of a peer's loop.
enum Step {
    Swarm(Box<SwarmEvent<PeerEvent>>),
    Go(Option<OwnedSemaphorePermit>),
    Stop,
}

#[allow(clippy::too_many_arguments)]
async fn run_peer(
    key: Keypair,
    role: Role,
    relay_addr: Multiaddr,
    relay_id: PeerId,
    network: NetworkId,
    permit: OwnedSemaphorePermit,
    report: mpsc::UnboundedSender<Report>,
    dropped: Arc<Dropped>,
    mut stop: watch::Receiver<bool>,
) {
    let mut swarm = match peer_swarm(key, &network) {
        Ok(s) => s,
        Err(e) => {
            let _ = report.send(Report::Ready(Err(format!("cannot build a swarm: {e}"))));
            return;
        }
    };
    if let Err(e) = swarm.dial(relay_addr.clone()) {
        let _ = report.send(Report::Ready(Err(format!("dial: {e}"))));
        return;
    }
    let (listener, target, mut go) = match role {
        Role::Listener => (true, None, None),
        Role::Dialer { target, go } => (false, Some(target), Some(go)),
    };
    // Held until this peer is ready (the main loop bounds peers in flight).
    let mut ready_permit = Some(permit);
    let ready = |permit: &mut Option<OwnedSemaphorePermit>, r: Result<(), String>| {
        if permit.take().is_some() {
            let _ = report.send(Report::Ready(r));
        }
    };
    let mut circuit_permit: Option<OwnedSemaphorePermit> = None;
    let mut circuit_up = false;
    loop {
        let step = tokio::select! {
            ev = swarm.select_next_some() => Step::Swarm(Box::new(ev)),
            p = async { go.as_mut().expect("checked").await }, if go.is_some() => Step::Go(p.ok()),
            _ = stop.changed() => Step::Stop,
        };
        let ev = match step {
            Step::Stop => return,
            Step::Go(permit) => {
                go = None;
                let Some(permit) = permit else { return };
                let addr = relay_addr
                    .clone()
                    .with(Protocol::P2pCircuit)
                    .with(Protocol::P2p(target.expect("a dialer has a target")));
                if let Err(e) = swarm.dial(addr) {
                    let _ = report.send(Report::Circuit(Err(format!("dial: {e}"))));
                } else {
                    circuit_permit = Some(permit);
                }
                continue;
            }
            Step::Swarm(ev) => *ev,
        };
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == relay_id => {
                let hs = bench::handshake(swarm.local_peer_id());
                swarm.behaviour_mut().handshake.send_request(&peer_id, hs);
            }
            SwarmEvent::ConnectionEstablished { peer_id, .. }
                if Some(peer_id) == target && circuit_permit.is_some() =>
            {
                circuit_permit = None;
                circuit_up = true;
                let _ = report.send(Report::Circuit(Ok(())));
            }
            SwarmEvent::Behaviour(PeerEvent::Handshake(ev)) => {
                let local = *swarm.local_peer_id();
                match on_handshake_event(&mut swarm.behaviour_mut().handshake, &local, ev) {
                    HandshakeStep::Verified(_) if listener => {
                        let circuit = relay_addr.clone().with(Protocol::P2pCircuit);
                        if let Err(e) = swarm.listen_on(circuit) {
                            ready(&mut ready_permit, Err(format!("listen: {e}")));
                        }
                    }
                    HandshakeStep::Verified(_) => ready(&mut ready_permit, Ok(())),
                    HandshakeStep::Failed(why) => ready(&mut ready_permit, Err(why)),
                    HandshakeStep::Other => {}
                }
            }
            SwarmEvent::Behaviour(PeerEvent::Pex(ev)) => {
                on_pex_event(&mut swarm.behaviour_mut().pex, ev);
            }
            SwarmEvent::Behaviour(PeerEvent::Relay(
                relay::client::Event::ReservationReqAccepted { .. },
            )) => ready(&mut ready_permit, Ok(())),
            SwarmEvent::ListenerClosed { reason, .. } => {
                ready(&mut ready_permit, Err(format!("reservation: {reason:?}")));
            }
            SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                if peer_id == Some(relay_id) {
                    ready(&mut ready_permit, Err(format!("connect: {error}")));
                } else if circuit_permit.take().is_some() {
                    let _ = report.send(Report::Circuit(Err(format!("circuit: {error}"))));
                }
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                if peer_id == relay_id {
                    if ready_permit.is_some() {
                        let why = format!("closed before ready: {cause:?}");
                        ready(&mut ready_permit, Err(why));
                    } else {
                        dropped.relay.fetch_add(1, Ordering::Relaxed);
                    }
                } else if circuit_up || listener {
                    dropped.circuits.fetch_add(1, Ordering::Relaxed);
                }
            }
            _ => {}
        }
    }
}

/// Collects `n` reports of the kind `pick` selects; returns the failures.
async fn collect(
    rx: &mut mpsc::UnboundedReceiver<Report>,
    n: usize,
    what: &str,
    pick: fn(Report) -> Option<Result<(), String>>,
) -> anyhow::Result<()> {
    let mut ok = 0;
    let mut failures = Vec::new();
    while ok + failures.len() < n {
        match tokio::time::timeout(WAIT, rx.recv()).await {
            Ok(Some(r)) => match pick(r) {
                Some(Ok(())) => ok += 1,
                Some(Err(e)) => failures.push(e),
                None => {}
            },
            Ok(None) | Err(_) => break,
        }
    }
    if !failures.is_empty() {
        eprintln!(
            "{} {what} failed, e.g. {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
    anyhow::ensure!(ok == n, "only {ok} of {n} {what} succeeded");
    Ok(())
}

fn ready(r: Report) -> Option<Result<(), String>> {
    match r {
        Report::Ready(r) => Some(r),
        Report::Circuit(_) => None,
    }
}

fn circuit(r: Report) -> Option<Result<(), String>> {
    match r {
        Report::Circuit(r) => Some(r),
        Report::Ready(_) => None,
    }
}

async fn relay_circuits(node: &Node) -> Option<f64> {
    node.client()
        .metric("p2p_relay_circuits", &[])
        .await
        .ok()
        .flatten()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = parse_args()?;
    let n = args.circuits;
    let dir = tempfile::tempdir()?;
    let lease = reserve_port(&[NODE_IP])?;
    let port = lease.port();
    // 2N bench peers, all from 127.0.0.1: room for them, and for N reservations and N
    // circuits within the relay's limits and per-IP rate limits.
    let mut cfg = node_config(port, 2 * n);
    let relay = &mut cfg.seeds.nat.relay;
    relay.max_reservations = 4 * n;
    relay.max_circuits = 4 * n;
    relay.max_circuit_duration = Duration::from_secs(600);
    relay.reservation_rate_per_ip = (4 * n) as u32;
    relay.circuit_rate_per_ip = (4 * n) as u32;
    let tcp_addr: Multiaddr = format!("/ip4/{NODE_IP}/tcp/{port}").parse()?;
    let external = vec!["--external-address".to_owned(), tcp_addr.to_string()];
    let mut node = spawn_node(dir.path(), port, &cfg, external, WAIT).await?;
    let pid = node.pid().context("the node has no pid")?;
    let relay_id: PeerId = node.peer_id().parse()?;
    let relay_addr = tcp_addr.with(Protocol::P2p(relay_id));
    let ticks = clock_ticks();
    tokio::time::sleep(SETTLE).await;
    let (idle_rss, _) = memory_kib(pid)?;

    let network = NetworkId::new(NETWORK)?;
    let limit = Arc::new(Semaphore::new(args.concurrency));
    let dropped = Arc::new(Dropped {
        relay: AtomicUsize::new(0),
        circuits: AtomicUsize::new(0),
    });
    let (stop_tx, stop_rx) = watch::channel(false);
    let (report_tx, mut report_rx) = mpsc::unbounded_channel();
    let mut tasks = Vec::with_capacity(2 * n);
    let mut spawn = |key: Keypair, role: Role, permit: OwnedSemaphorePermit| {
        tasks.push(tokio::spawn(run_peer(
            key,
            role,
            relay_addr.clone(),
            relay_id,
            network.clone(),
            permit,
            report_tx.clone(),
            dropped.clone(),
            stop_rx.clone(),
        )));
    };

    // N listeners, each with a reservation.
    let started = Instant::now();
    let listeners: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
    for key in &listeners {
        spawn(
            key.clone(),
            Role::Listener,
            limit.clone().acquire_owned().await?,
        );
    }
    collect(&mut report_rx, n, "reservations", ready).await?;
    let reserved_in = started.elapsed();
    tokio::time::sleep(SETTLE).await;
    let (reserved_rss, _) = memory_kib(pid)?;

    // N dialers, connected and handshaken.
    let mut gos = Vec::with_capacity(n);
    for key in &listeners {
        let (go_tx, go) = oneshot::channel();
        gos.push(go_tx);
        let role = Role::Dialer {
            target: key.public().to_peer_id(),
            go,
        };
        spawn(
            Keypair::generate_ed25519(),
            role,
            limit.clone().acquire_owned().await?,
        );
    }
    collect(&mut report_rx, n, "dialer handshakes", ready).await?;
    tokio::time::sleep(SETTLE).await;
    let (base_rss, base_hwm) = memory_kib(pid)?;
    let base_cpu = cpu_secs(pid, ticks)?;

    // N circuits.
    let started = Instant::now();
    for go in gos {
        let permit = limit.clone().acquire_owned().await?;
        let _ = go.send(permit);
    }
    collect(&mut report_rx, n, "circuits", circuit).await?;
    let opened_in = started.elapsed();
    let counted_started = Instant::now();
    let mut counted = None;
    while counted_started.elapsed() < WAIT {
        counted = relay_circuits(&node).await;
        if counted.is_some_and(|c| c >= n as f64) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    anyhow::ensure!(
        counted.is_some_and(|c| c >= n as f64),
        "p2p_relay_circuits never reached {n} (last {counted:?}):\n{}",
        node.log_tail(30)
    );
    let counted_in = started.elapsed();
    let circuits_cpu = cpu_secs(pid, ticks)? - base_cpu;
    tokio::time::sleep(SETTLE).await;
    let (full_rss, full_hwm) = memory_kib(pid)?;
    let still = relay_circuits(&node).await.unwrap_or_default();
    let status = node.client().status().await.ok();
    let relayed_total = status
        .and_then(|s| s.nat)
        .and_then(|nat| nat.pointer("/counters/circuits_relayed").cloned());
    // Before the peers leave (their own departures close circuits).
    let dropped_relay = dropped.relay.load(Ordering::Relaxed);
    let dropped_circuits = dropped.circuits.load(Ordering::Relaxed);

    let _ = stop_tx.send(true);
    for t in tasks {
        let _ = t.await;
    }
    node.stop().await?;

    let per_circuit = full_rss as f64 - base_rss as f64;
    let per_circuit = per_circuit / n as f64;
    let per_reservation = (reserved_rss as f64 - idle_rss as f64) / n as f64;
    println!(
        "dsdnd --mode bootstrap as circuit relay v2 server, {n} circuits over TCP (noise + yamux) on loopback"
    );
    println!(
        "circuits: {n} opened, p2p_relay_circuits {still} after settling, circuits_relayed {}, \
         dropped: {} relay connections, {} circuits",
        relayed_total.map_or("?".to_owned(), |v| v.to_string()),
        dropped_relay,
        dropped_circuits
    );
    println!(
        "idle RSS:                          {:8.1} MiB",
        mib(idle_rss)
    );
    println!(
        "RSS with {n} reservations:         {:8.1} MiB ({per_reservation:.1} KiB per reserved listener, in {reserved_in:.2?})",
        mib(reserved_rss)
    );
    println!(
        "baseline: + {n} connected dialers: {:8.1} MiB (VmHWM {:.1} MiB)",
        mib(base_rss),
        mib(base_hwm)
    );
    println!(
        "RSS with {n} circuits:             {:8.1} MiB (VmHWM {:.1} MiB)",
        mib(full_rss),
        mib(full_hwm)
    );
    println!("per circuit:                       {per_circuit:8.1} KiB");
    println!(
        "time to open all circuits:         {opened_in:.2?} ({} in flight at most); counted by the node after {counted_in:.2?}",
        args.concurrency
    );
    println!("daemon CPU time opening circuits:  {circuits_cpu:.2} s");
    Ok(())
}
