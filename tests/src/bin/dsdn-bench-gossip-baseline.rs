//! Plain rust-libp2p gossipsub baseline of `dsdn-bench-da`'s latency (issue 11): the
//! same network shape, transports and gossipsub parameters as `dsdnd`, with no `dsdnd`
//! code on the message path.
//!
//! * **Processes**: `--nodes` separate OS processes (this binary with the hidden `--node`
//!   role), node `i` on `127.0.0.<10 + i>` like the `dsdnd` benchmark, each with its own
//!   tokio runtime. Node 0 is the publisher (the coordinator's place).
//! * **Swarm**: as `p2p/src/node.rs`: the `libp2p` of the workspace, TCP (`nodelay`) +
//!   noise + yamux and QUIC v1 on one `IP:PORT`, 24 h idle timeout, gossipsub alone.
//! * **Gossipsub**: `dsdnd`'s own configuration (`dsdn_p2p::net::behaviour::gossipsub_config`):
//!   protocol prefix `/dsdn/devnet/meshsub`, `validate_messages`,
//!   `Strict` validation (signed messages), `max_transmit_size` = `MAX_BLOB_BYTES` + 4096,
//!   1 s heartbeat, SHA-256 message ids, the library's other defaults (D = 6, flood
//!   publish); every node subscribes to the DA and receipts topics of `devnet`.
//! * **Topology and transport**: as a `dsdnd` devnet, where every storage node has the
//!   coordinator as static peer and fills its outbound slots with PEX-learned peers: every
//!   node but 0 dials node 0 the way a static `IP:PORT` peer is dialled (no PeerId, the TCP
//!   address only: TCP), then random other nodes until it has `--degree` neighbours, the
//!   way PEX-learned peers are dialled (PeerId with the QUIC and TCP addresses, which
//!   libp2p dials concurrently: the first to complete wins, QUIC or TCP). So the publisher
//!   reaches every node over TCP, as the coordinator does (its storage nodes dial it as a
//!   static peer), and that is the path of every first copy (flood publish). Between the
//!   other nodes both transports occur, mostly TCP: in `dsdn-bench-da`'s 20-node network
//!   `ss` counts about 150 TCP connections for about 180 connected pairs; this topology
//!   gets about 130 TCP and 60 QUIC connections for its 190 pairs. The default degree, 19 (capped
//!   at `--nodes` − 1), is what the nodes of `dsdn-bench-da`'s 20-node network reach
//!   (median of their connected peers; `dsdn-bench-da --baseline` passes its measured
//!   median). `--transport tcp|quic` makes every dial use one transport instead.
//! * **Messages**: `--posts` messages, one every round after a 15 ms pause (as the `dsdnd`
//!   benchmark before each POST); message `k` has `--bytes` bytes, or the `k`-th of the
//!   comma-separated `--sizes` (cycled; `dsdn-bench-da --baseline` passes the encoded sizes
//!   of the blobs it sealed). It starts with its sequence number and the publisher's send
//!   time (UNIX ns, `SystemTime` = `CLOCK_REALTIME`, read just before `publish`).
//! * **Receivers** do no verification work (pure transport baseline): each one reads
//!   `SystemTime` when gossipsub hands it the message, accepts it (so it is forwarded) and
//!   reports both times to the parent over its loopback TCP control connection. All
//!   processes run on one machine, so they share `CLOCK_REALTIME`.
//!
//! Prints the latency (receive − send) to the last node per message and over every
//! node (median, p99, max), the degree of the nodes and the connections per transport,
//! and a `RESULT key=value…` line (microseconds) for `dsdn-bench-da --baseline`. Exits
//! non-zero when a node has not received a message within `--timeout-secs` (default 15).
//!
//! Run: `target/release/dsdn-bench-gossip-baseline [--nodes 20] [--posts 200]
//! [--bytes 214 | --sizes 199,227,…] [--degree 19] [--transport dsdnd|tcp|quic]
//! [--seed 1] [--timeout-secs 15]`

use std::collections::BTreeSet;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use dsdn_daemon::localnet::reserve_port;
use dsdn_integration_tests::{fmt_ms, ip, percentile};
use futures::StreamExt;
use libp2p::gossipsub::{self, IdentTopic, MessageAcceptance, MessageAuthenticity, TopicHash};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::SwarmEvent;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::OwnedWriteHalf;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

/// The network id of the `dsdnd` benchmark (`ConfigSpec`'s default).
const NETWORK: &str = "devnet";
/// Node `i` listens on `127.0.0.<FIRST_IP + i>` (the `dsdnd` benchmark's coordinator IP).
const FIRST_IP: u8 = 10;
/// Sequence number and send time at the start of every message.
const HEADER: usize = 16;
/// Pause before each message, as the `dsdnd` benchmark's before each POST.
const PAUSE: Duration = Duration::from_millis(15);

/// Value of flag `name` (`--name VALUE`).
fn flag<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|s| s.parse().ok())
}

/// How nodes dial each other.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Transport {
    /// As `dsdnd`: TCP to node 0 (static peer), QUIC and TCP raced to the others (PEX).
    Dsdnd,
    /// TCP only.
    Tcp,
    /// QUIC only.
    Quic,
}

impl std::str::FromStr for Transport {
    type Err = anyhow::Error;
    fn from_str(s: &str) -> anyhow::Result<Self> {
        match s {
            "dsdnd" => Ok(Self::Dsdnd),
            "tcp" => Ok(Self::Tcp),
            "quic" => Ok(Self::Quic),
            _ => anyhow::bail!("--transport must be dsdnd, tcp or quic"),
        }
    }
}

/// Node `i`'s identity: fixed per index, so every process knows every PeerId.
fn node_key(i: usize) -> anyhow::Result<libp2p::identity::Keypair> {
    let mut seed = [0x5b_u8; 32];
    seed[..8].copy_from_slice(&(i as u64).to_le_bytes());
    libp2p::identity::Keypair::ed25519_from_bytes(seed).context("node key")
}

fn peer(i: usize) -> anyhow::Result<PeerId> {
    Ok(node_key(i)?.public().to_peer_id())
}

/// `(QUIC, TCP)` multiaddrs of node `i`.
fn addrs(i: usize, port: u16) -> (Multiaddr, Multiaddr) {
    let base = Multiaddr::empty().with(Protocol::Ip4(ip(FIRST_IP + i as u8)));
    (
        base.clone()
            .with(Protocol::Udp(port))
            .with(Protocol::QuicV1),
        base.with(Protocol::Tcp(port)),
    )
}

fn unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// Message `seq` of `size` bytes (at least [`HEADER`]) stamped `sent`.
fn payload(seq: u64, sent: u64, size: usize) -> Vec<u8> {
    let mut data = vec![0xa5; size.max(HEADER)];
    data[..8].copy_from_slice(&seq.to_le_bytes());
    data[8..HEADER].copy_from_slice(&sent.to_le_bytes());
    data
}

fn header(data: &[u8]) -> Option<(u64, u64)> {
    let seq = u64::from_le_bytes(data.get(..8)?.try_into().ok()?);
    let sent = u64::from_le_bytes(data.get(8..HEADER)?.try_into().ok()?);
    Some((seq, sent))
}

/// The swarm and gossipsub of `p2p/src/node.rs`, gossipsub alone.
fn swarm(key: libp2p::identity::Keypair) -> anyhow::Result<Swarm<gossipsub::Behaviour>> {
    // dsdnd's own configuration, by construction the same parameters.
    let network = dsdn_protocols::NetworkId::new(NETWORK).map_err(|e| anyhow::anyhow!("{e}"))?;
    let cfg = dsdn_p2p::net::behaviour::gossipsub_config(&network)
        .map_err(|e| anyhow::anyhow!("gossipsub config: {e}"))?;
    let gossipsub = gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), cfg)
        .map_err(|e| anyhow::anyhow!("gossipsub: {e}"))?;
    Ok(SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default().nodelay(true),
            noise::Config::new,
            yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|_| gossipsub)?
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(24 * 3600)))
        .build())
}

/// Dials node `j` from a node, the way `dsdnd` would (see the module docs).
fn dial(
    swarm: &mut Swarm<gossipsub::Behaviour>,
    j: usize,
    port: u16,
    transport: Transport,
) -> anyhow::Result<()> {
    let (quic, tcp) = addrs(j, port);
    let opts = match transport {
        // A static `IP:PORT` peer: no PeerId, the TCP address.
        Transport::Dsdnd if j == 0 => DialOpts::unknown_peer_id().address(tcp).build(),
        Transport::Dsdnd => DialOpts::peer_id(peer(j)?)
            .addresses(vec![quic, tcp])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build(),
        Transport::Tcp => DialOpts::peer_id(peer(j)?)
            .addresses(vec![tcp])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build(),
        Transport::Quic => DialOpts::peer_id(peer(j)?)
            .addresses(vec![quic])
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build(),
    };
    swarm.dial(opts).with_context(|| format!("dial node {j}"))
}

/// What a node reports about its connections: `peers CONNECTED TOPIC_PEERS MESH TCP QUIC`.
fn peers_line(swarm: &Swarm<gossipsub::Behaviour>, topic: &TopicHash, conns: [usize; 2]) -> String {
    let g = swarm.behaviour();
    format!(
        "peers {} {} {} {} {}\n",
        swarm.connected_peers().count(),
        g.all_peers().filter(|(_, t)| t.contains(&topic)).count(),
        g.mesh_peers(topic).count(),
        conns[0],
        conns[1]
    )
}

/// The `--node` role: one gossipsub node, driven over its control connection (`dial J…`,
/// `pub SEQ SIZE`); exits when the parent closes it.
async fn node(
    i: usize,
    port: u16,
    control: SocketAddr,
    transport: Transport,
) -> anyhow::Result<()> {
    let mut swarm = swarm(node_key(i)?)?;
    let (quic, tcp) = addrs(i, port);
    swarm.listen_on(quic)?;
    swarm.listen_on(tcp)?;
    let topic = IdentTopic::new(format!("dsdn/{NETWORK}/da-events/1"));
    swarm.behaviour_mut().subscribe(&topic)?;
    swarm
        .behaviour_mut()
        .subscribe(&IdentTopic::new(format!("dsdn/{NETWORK}/receipts/1")))?;
    let hash = topic.hash();
    let (r, mut w) = TcpStream::connect(control).await?.into_split();
    w.write_all(format!("hello {i}\n").as_bytes()).await?;
    let mut lines = BufReader::new(r).lines();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut conns = [0usize; 2];
    let mut reported = String::new();
    loop {
        let mut out = String::new();
        tokio::select! {
            line = lines.next_line() => {
                let Some(line) = line? else { return Ok(()) };
                let mut words = line.split_whitespace();
                match words.next() {
                    Some("dial") => {
                        for j in words.filter_map(|w| w.parse().ok()) {
                            dial(&mut swarm, j, port, transport)?;
                        }
                    }
                    Some("pub") => {
                        let seq: u64 = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                        let size: usize = words.next().and_then(|w| w.parse().ok()).unwrap_or(0);
                        let sent = unix_nanos();
                        let data = payload(seq, sent, size);
                        match swarm.behaviour_mut().publish(topic.clone(), data) {
                            Ok(_) => out = format!("sent {seq} {sent}\n"),
                            Err(e) => out = format!("error publish {seq}: {e}\n"),
                        }
                    }
                    _ => {}
                }
            }
            ev = swarm.select_next_some() => match ev {
                SwarmEvent::Behaviour(gossipsub::Event::Message {
                    propagation_source,
                    message_id,
                    message,
                    ..
                }) => {
                    let at = unix_nanos();
                    swarm.behaviour_mut().report_message_validation_result(
                        &message_id,
                        &propagation_source,
                        MessageAcceptance::Accept,
                    );
                    if let Some((seq, sent)) = header(&message.data) {
                        out = format!("recv {seq} {sent} {at}\n");
                    }
                }
                SwarmEvent::ConnectionEstablished { endpoint, .. } => {
                    let quic = endpoint
                        .get_remote_address()
                        .iter()
                        .any(|p| matches!(p, Protocol::QuicV1));
                    conns[usize::from(quic)] += 1;
                }
                SwarmEvent::ConnectionClosed { endpoint, .. } => {
                    let quic = endpoint
                        .get_remote_address()
                        .iter()
                        .any(|p| matches!(p, Protocol::QuicV1));
                    conns[usize::from(quic)] = conns[usize::from(quic)].saturating_sub(1);
                }
                SwarmEvent::OutgoingConnectionError { peer_id, error, .. } => {
                    eprintln!("node {i}: dial {peer_id:?} failed: {error}");
                }
                _ => {}
            },
            _ = tick.tick() => {
                let line = peers_line(&swarm, &hash, conns);
                if line != reported {
                    out = line.clone();
                    reported = line;
                }
            }
        }
        if !out.is_empty() {
            w.write_all(out.as_bytes()).await?;
        }
    }
}

/// A tiny xorshift generator (the topology's random choices; reproducible with `--seed`).
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}

/// Who dials whom (`dials[i]`: the nodes node `i` dials). Every node but 0 dials node 0
/// (the publisher is every node's static peer, as the coordinator in a `dsdnd` devnet);
/// then, in random order, each node dials random others until it has at least `degree`
/// neighbours (or all of them).
fn topology(nodes: usize, degree: usize, rng: &mut Rng) -> Vec<Vec<usize>> {
    let mut adj = vec![BTreeSet::new(); nodes];
    let mut dials = vec![Vec::new(); nodes];
    for i in 1..nodes {
        adj[0].insert(i);
        adj[i].insert(0);
        dials[i].push(0);
    }
    let want = degree.min(nodes - 1);
    let mut order: Vec<usize> = (1..nodes).collect();
    for k in (1..order.len()).rev() {
        order.swap(k, rng.below(k + 1));
    }
    for i in order {
        let mut candidates: Vec<usize> = (1..nodes)
            .filter(|j| *j != i && !adj[i].contains(j))
            .collect();
        while adj[i].len() < want && !candidates.is_empty() {
            let j = candidates.swap_remove(rng.below(candidates.len()));
            adj[i].insert(j);
            adj[j].insert(i);
            dials[i].push(j);
        }
    }
    dials
}

/// A node's last `peers` report.
#[derive(Clone, Copy, Default)]
struct Peers {
    connected: usize,
    topic: usize,
    mesh: usize,
    tcp: usize,
    quic: usize,
}

/// The children's control lines, `(node, line)`; `(node, "eof")` when one goes away.
type Lines = mpsc::UnboundedReceiver<(usize, String)>;

/// Parses a `peers` line into `state[i]`; fails on `error` and `eof`.
fn note(state: &mut [Peers], i: usize, line: &str) -> anyhow::Result<()> {
    let w: Vec<&str> = line.split_whitespace().collect();
    match w.first().copied() {
        Some("peers") => {
            let n: Vec<usize> = w[1..].iter().filter_map(|s| s.parse().ok()).collect();
            if let [connected, topic, mesh, tcp, quic] = n[..] {
                state[i] = Peers {
                    connected,
                    topic,
                    mesh,
                    tcp,
                    quic,
                };
            }
            Ok(())
        }
        Some("error") => anyhow::bail!("node {i}: {line}"),
        Some("eof") => anyhow::bail!("node {i} exited"),
        _ => Ok(()),
    }
}

fn median(mut v: Vec<usize>) -> usize {
    v.sort_unstable();
    v.get(v.len() / 2).copied().unwrap_or(0)
}

/// Waits until node 0 knows every other node as a subscriber and every mesh has at
/// least `min(nodes - 1, 4)` peers (as `dsdn-bench-da` waits for 4 connections), then 3 s
/// for the mesh to settle, as `dsdn-bench-da` does.
async fn settle(rx: &mut Lines, state: &mut [Peers]) -> anyhow::Result<()> {
    let n = state.len();
    let deadline = Instant::now() + Duration::from_secs(60);
    let ready = |s: &[Peers]| s[0].topic == n - 1 && s.iter().all(|p| p.mesh >= (n - 1).min(4));
    while !ready(state) {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(Some((i, line))) = tokio::time::timeout(left, rx.recv()).await else {
            let meshes: Vec<usize> = state.iter().map(|p| p.mesh).collect();
            anyhow::bail!(
                "no mesh in 60 s: node 0 knows {} subscribers, meshes {meshes:?}",
                state[0].topic
            );
        };
        note(state, i, &line)?;
    }
    let end = Instant::now() + Duration::from_secs(3);
    while let Ok(Some((i, line))) = tokio::time::timeout_at(end.into(), rx.recv()).await {
        note(state, i, &line)?;
    }
    Ok(())
}

async fn run() -> anyhow::Result<()> {
    let nodes: usize = flag("--nodes").unwrap_or(20);
    let posts: usize = flag("--posts").unwrap_or(200);
    let degree: usize = flag("--degree").unwrap_or(19);
    let transport: Transport = flag("--transport").unwrap_or(Transport::Dsdnd);
    let seed: u64 = flag("--seed").unwrap_or(1);
    let timeout = Duration::from_secs(flag("--timeout-secs").unwrap_or(15));
    let sizes: Vec<usize> = match flag::<String>("--sizes") {
        Some(s) => s.split(',').filter_map(|w| w.parse().ok()).collect(),
        None => vec![flag("--bytes").unwrap_or(214)],
    };
    anyhow::ensure!((2..=80).contains(&nodes), "--nodes must be 2..=80");
    anyhow::ensure!(
        degree >= 1 && posts >= 1,
        "--degree and --posts must be ≥ 1"
    );
    anyhow::ensure!(!sizes.is_empty(), "--sizes names no size");
    let ips: Vec<Ipv4Addr> = (0..nodes).map(|i| ip(FIRST_IP + i as u8)).collect();
    let lease = reserve_port(&ips).context("reserve a port")?;
    let port = lease.port();
    let control = TcpListener::bind("127.0.0.1:0").await?;
    let control_addr = control.local_addr()?;
    let exe = std::env::current_exe()?;
    let (tx, mut rx) = mpsc::unbounded_channel();
    let (mut children, mut writers): (Vec<_>, Vec<OwnedWriteHalf>) = (Vec::new(), Vec::new());
    for i in 0..nodes {
        let child = tokio::process::Command::new(&exe)
            .args(["--node", &i.to_string(), "--port", &port.to_string()])
            .args(["--control", &control_addr.to_string()])
            .args(["--transport", &format!("{transport:?}").to_lowercase()])
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("spawn node {i}"))?;
        children.push(child);
        let (stream, _) = tokio::time::timeout(Duration::from_secs(30), control.accept())
            .await
            .with_context(|| format!("node {i} did not start in 30 s"))??;
        let (r, w) = stream.into_split();
        let mut lines = BufReader::new(r).lines();
        let hello = lines.next_line().await?.unwrap_or_default();
        anyhow::ensure!(hello == format!("hello {i}"), "node {i} said {hello:?}");
        writers.push(w);
        let tx = tx.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let _ = tx.send((i, line));
            }
            let _ = tx.send((i, "eof".to_owned()));
        });
    }
    let plan = topology(nodes, degree, &mut Rng(seed.max(1)));
    for (w, to) in writers.iter_mut().zip(&plan) {
        let list: Vec<String> = to.iter().map(usize::to_string).collect();
        w.write_all(format!("dial {}\n", list.join(" ")).as_bytes())
            .await?;
    }
    let mut state = vec![Peers::default(); nodes];
    settle(&mut rx, &mut state).await?;

    let (mut every, mut last) = (Vec::new(), Vec::new());
    for k in 0..posts {
        let seq = k as u64 + 1;
        tokio::time::sleep(PAUSE).await;
        writers[0]
            .write_all(format!("pub {seq} {}\n", sizes[k % sizes.len()]).as_bytes())
            .await?;
        let mut got: Vec<Option<Duration>> = vec![None; nodes];
        let deadline = Instant::now() + timeout;
        while got[1..].iter().any(Option::is_none) {
            let left = deadline.saturating_duration_since(Instant::now());
            let Ok(Some((i, line))) = tokio::time::timeout(left, rx.recv()).await else {
                let missing: Vec<usize> = (1..nodes).filter(|i| got[*i].is_none()).collect();
                anyhow::bail!("message {seq}: nodes {missing:?} did not receive it in {timeout:?}");
            };
            let w: Vec<u64> = line
                .strip_prefix("recv ")
                .map(|r| r.split(' ').filter_map(|s| s.parse().ok()).collect())
                .unwrap_or_default();
            match w[..] {
                [s, sent, at] if s == seq => {
                    got[i] = Some(Duration::from_nanos(at.saturating_sub(sent)));
                }
                [_, _, _] => {}
                _ => note(&mut state, i, &line)?,
            }
        }
        let lat: Vec<Duration> = got.iter().flatten().copied().collect();
        last.push(lat.iter().copied().max().unwrap_or_default());
        every.extend(lat);
    }
    every.sort();
    last.sort();
    let degrees: Vec<usize> = state.iter().map(|p| p.connected).collect();
    let (tcp, quic) = state
        .iter()
        .fold((0, 0), |(t, q), p| (t + p.tcp, q + p.quic));
    let (lo, hi) = (
        sizes.iter().min().copied().unwrap_or(0),
        sizes.iter().max().copied().unwrap_or(0),
    );
    println!(
        "plain rust-libp2p gossipsub baseline, {nodes} nodes (processes) on 127.0.0.{FIRST_IP}.. \
         port {port}, transport {transport:?}, every node dials node 0, then random \
         others up to degree {}; degree min/median/max {}/{}/{} (node 0: {}), connections TCP {} / QUIC {} (counted \
         at both ends); {posts} messages of {lo}..{hi} bytes:",
        degree.min(nodes - 1),
        degrees.iter().min().copied().unwrap_or(0),
        median(degrees.clone()),
        degrees.iter().max().copied().unwrap_or(0),
        state[0].connected,
        tcp,
        quic
    );
    println!(
        "  last node per message ({} samples): median {}, p99 {}, max {}",
        last.len(),
        fmt_ms(percentile(&last, 50.0)),
        fmt_ms(percentile(&last, 99.0)),
        fmt_ms(percentile(&last, 100.0))
    );
    println!(
        "  every node ({} samples):            median {}, p99 {}, max {}",
        every.len(),
        fmt_ms(percentile(&every, 50.0)),
        fmt_ms(percentile(&every, 99.0)),
        fmt_ms(percentile(&every, 100.0))
    );
    let us = |d: Duration| d.as_micros();
    println!(
        "RESULT last_median_us={} last_p99_us={} all_median_us={} all_p99_us={}",
        us(percentile(&last, 50.0)),
        us(percentile(&last, 99.0)),
        us(percentile(&every, 50.0)),
        us(percentile(&every, 99.0))
    );
    drop(writers);
    for mut c in children {
        let _ = tokio::time::timeout(Duration::from_secs(5), c.wait()).await;
    }
    drop(lease);
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    if let Some(i) = flag::<usize>("--node") {
        let port = flag("--port").context("--node needs --port")?;
        let control = flag("--control").context("--node needs --control")?;
        let transport = flag("--transport").unwrap_or(Transport::Dsdnd);
        return node(i, port, control, transport).await;
    }
    run().await
}
