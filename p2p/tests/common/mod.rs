//! Helpers shared by the swarm-level tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use dsdn_protocols::NetworkId;

/// The network every test node runs on.
pub fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

/// A free loopback port on `ip` (TCP; QUIC binds the same number on UDP).
pub fn free_addr(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}

// ---------------------------------------------------------------------------------------
// DA log helpers (issue 5): offline-signed chains, nodes that keep the log, rogue DA peers.
// ---------------------------------------------------------------------------------------

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsdn_bootstrap::config::{BootstrapConfig, StaticPeer};
use dsdn_p2p::da::DaConfig;
use dsdn_p2p::net::behaviour::{
    da_sync_behaviour, handshake_behaviour, DaSyncBehaviour, HandshakeBehaviour,
};
use dsdn_p2p::{Metrics, Node, NodeConfig, NodeHandle};
use dsdn_protocols::da::register::RegisterRequest;
use dsdn_protocols::da::sync::{SyncRequest, SyncResponse};
use dsdn_protocols::da::{Bytes32, DaBlob, DaEvent, DaState};
use dsdn_protocols::handshake::Handshake;
use dsdn_protocols::{ServiceSet, ServiceType, PROTOCOL_VERSION};
use ed25519_dalek::SigningKey;
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message, ProtocolSupport, ResponseChannel};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm, SwarmBuilder};
use tokio::sync::mpsc;

/// The DA authority key the offline-signed test chains use.
pub fn authority_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

/// Its public key (`da_authority` of every test node that verifies offline-signed blobs).
pub fn authority() -> [u8; 32] {
    authority_key().verifying_key().to_bytes()
}

/// A PeerId (base58) made from `seed`: a valid `node_id` for DA events.
pub fn test_node_id(seed: u64) -> String {
    let mut secret = [0x5a; 32];
    secret[..8].copy_from_slice(&seed.to_be_bytes());
    libp2p::identity::Keypair::ed25519_from_bytes(secret)
        .expect("32 bytes")
        .public()
        .to_peer_id()
        .to_base58()
}

/// The events of blob `height`: a chunk, a node, a replica of the chunk on the node, so
/// every blob changes all four 14A §2 maps.
pub fn blob_events(height: u64) -> Vec<DaEvent> {
    let mut chunk = [0u8; 32];
    chunk[..8].copy_from_slice(&height.to_be_bytes());
    let node_id = test_node_id(height);
    vec![
        DaEvent::ChunkDeclared {
            chunk_id: Bytes32(chunk),
            size_bytes: 4096 + height,
            owner: Bytes32([7; 32]),
        },
        DaEvent::NodeRegistered {
            node_id: node_id.clone(),
            zone: format!("zone-{}", height % 5),
            capacity_bytes: 1 << 30,
            class: "regular".into(),
        },
        DaEvent::ReplicaAdded {
            chunk_id: Bytes32(chunk),
            node_id,
        },
    ]
}

/// A valid chain of `n` blobs (heights 1..=n) signed offline by `key`, with their encodings.
pub struct TestChain {
    /// The blobs, index `h - 1` for height `h`.
    pub blobs: Vec<DaBlob>,
    /// Their canonical encodings (what is gossiped, stored and served).
    pub encoded: Vec<Vec<u8>>,
    /// Their hashes.
    pub hashes: Vec<[u8; 32]>,
    /// The 14A §2 state root after all of them, computed offline.
    pub root: [u8; 32],
}

impl TestChain {
    /// The encoding of blob `height`.
    pub fn bytes(&self, height: u64) -> Vec<u8> {
        self.encoded[height as usize - 1].clone()
    }

    /// The hash of blob `height`.
    pub fn hash(&self, height: u64) -> [u8; 32] {
        self.hashes[height as usize - 1]
    }

    /// Number of blobs.
    pub fn len(&self) -> u64 {
        self.blobs.len() as u64
    }
}

/// Signs `n` consecutive blobs with [`authority_key`] ([`blob_events`] each).
pub fn test_chain(n: u64) -> TestChain {
    let key = authority_key();
    let auth = authority();
    let mut state = DaState::new(net());
    let (mut blobs, mut encoded, mut hashes) = (Vec::new(), Vec::new(), Vec::new());
    for h in 1..=n {
        let blob = state
            .seal_next(&key, 1_700_000_000_000 + h, blob_events(h))
            .unwrap();
        let verified = blob.clone().verify(&net(), &auth).unwrap();
        state.apply_blob(&verified).unwrap();
        hashes.push(verified.hash());
        encoded.push(verified.encoded().to_vec());
        blobs.push(blob);
    }
    TestChain {
        blobs,
        encoded,
        hashes,
        root: state.state_root(),
    }
}

/// Blob `height` of `chain` re-signed by another key: a bad signature for the authority.
pub fn forged_signature(chain: &TestChain, height: u64) -> Vec<u8> {
    let b = &chain.blobs[height as usize - 1];
    DaBlob::sign(
        &SigningKey::from_bytes(&[9; 32]),
        &net(),
        height,
        b.prev_hash.0,
        b.prev_state_root.0,
        b.timestamp_ms,
        b.events.clone(),
    )
    .unwrap()
    .to_bytes()
    .unwrap()
}

/// A blob at `height`, validly signed by the authority, that does not link to blob
/// `height - 1` of `chain` (its prev_hash is wrong): it breaks the hash chain.
pub fn chain_break(chain: &TestChain, height: u64) -> Vec<u8> {
    let b = &chain.blobs[height as usize - 1];
    DaBlob::sign(
        &authority_key(),
        &net(),
        height,
        [0xEE; 32],
        b.prev_state_root.0,
        b.timestamp_ms,
        b.events.clone(),
    )
    .unwrap()
    .to_bytes()
    .unwrap()
}

/// `[da]` settings for fast tests: 10 ms batches, 1 s sync timeout, 1 s publish grace.
pub fn quick_da() -> DaConfig {
    DaConfig {
        batch_interval: Duration::from_millis(10),
        sync_request_timeout: Duration::from_secs(1),
        publish_grace: Duration::from_secs(1),
        ..DaConfig::default()
    }
}

/// Bootstrap settings for fast loopback tests.
pub fn quick_bootstrap(static_peers: Vec<StaticPeer>) -> BootstrapConfig {
    BootstrapConfig {
        static_peers,
        peer_connect_timeout: Duration::from_secs(2),
        dns_resolve_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_secs(1),
        min_peers: 1,
        inbound_per_ip_per_minute: 1000,
        ..BootstrapConfig::default()
    }
}

/// What [`start_da_node`] starts.
pub struct DaNodeSpec {
    /// The node key (fresh by default).
    pub key: Keypair,
    /// `da_authority` ([`authority`] by default).
    pub authority: [u8; 32],
    /// Advertised service.
    pub service: ServiceType,
    /// `[da]`.
    pub da: DaConfig,
    /// Static peers.
    pub static_peers: Vec<StaticPeer>,
    /// A storage node's registration.
    pub registration: Option<RegisterRequest>,
}

impl Default for DaNodeSpec {
    fn default() -> Self {
        Self {
            key: Keypair::generate_ed25519(),
            authority: authority(),
            service: ServiceType::Storage,
            da: quick_da(),
            static_peers: Vec::new(),
            registration: None,
        }
    }
}

/// A running node that keeps the DA log in its own temporary data directory.
pub struct DaNode {
    /// Its handle.
    pub handle: NodeHandle,
    /// Its metrics.
    pub metrics: Metrics,
    /// Its PeerId.
    pub peer_id: PeerId,
    /// `IP:PORT` it listens on (QUIC and TCP).
    pub listen: SocketAddr,
    /// Its data directory (removed on drop).
    pub dir: tempfile::TempDir,
}

impl DaNode {
    /// The node as a static peer of another.
    pub fn as_static(&self) -> StaticPeer {
        StaticPeer::Socket(self.listen)
    }

    /// Its TCP multiaddr (for rogue peers, which speak TCP only).
    pub fn tcp_addr(&self) -> Multiaddr {
        dsdn_p2p::node::listen_addrs(self.listen)[1].clone()
    }

    /// One metric sample, e.g. `da_sync_requests_total{result="stalled"}`; 0 when absent.
    pub fn metric(&self, sample: &str) -> f64 {
        metric(&self.metrics, sample)
    }
}

/// One sample of `metrics` (the exact text before the value in the exposition format, e.g.
/// `da_height` or `da_blobs_rejected_total{reason="bad_signature"}`); 0 when absent.
pub fn metric(metrics: &Metrics, sample: &str) -> f64 {
    metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Starts a node on `127.0.0.1` that keeps the DA log (data directory of its own) and spawns
/// its event loop.
pub fn start_da_node(spec: DaNodeSpec) -> DaNode {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr("127.0.0.1");
    let peer_id = spec.key.public().to_peer_id();
    let cfg = NodeConfig {
        da_authority: Some(spec.authority),
        services: ServiceSet::from_types([spec.service]),
        da: spec.da,
        registration: spec.registration,
        listen: vec![listen],
        bootstrap: quick_bootstrap(spec.static_peers),
        agent_version: "test".into(),
        mode: spec.service.as_str().into(),
        ..NodeConfig::new(spec.key, net(), dir.path())
    };
    let node = Node::start(cfg).unwrap();
    let started = DaNode {
        handle: node.handle.clone(),
        metrics: node.metrics.clone(),
        peer_id,
        listen,
        dir,
    };
    tokio::spawn(node.event_loop.run());
    started
}

/// Submits blobs `1..=upto` of `chain` to `node` in order; each must be applied.
pub async fn load_chain(node: &NodeHandle, chain: &TestChain, upto: u64) {
    for h in 1..=upto {
        let s = node.submit_blob(chain.bytes(h)).await.unwrap().unwrap();
        assert_eq!((s.height, s.outcome), (h, "applied"));
    }
}

/// Polls `check` every 50 ms until it holds; panics with `what` after `limit`.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < end, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// True when `handle` has a verified connection to `peer`.
pub async fn is_connected(handle: &NodeHandle, peer: PeerId) -> bool {
    handle
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer_id == peer && p.connected_outbound.is_some())
}

/// A rogue DA peer: the DSDN handshake (advertising the storage service, so nodes count it
/// as a peer that keeps the DA log) and `/dsdn/<net>/da-sync/1.0.0`, nothing else.
#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
pub struct RogueDa {
    /// `/dsdn/handshake/1.0.0`.
    pub handshake: HandshakeBehaviour,
    /// `/dsdn/<net>/da-sync/1.0.0`, full support (it is asked).
    pub da_sync: DaSyncBehaviour,
}

/// How a rogue answers a sync request: `Some(response)` is sent, `None` keeps the request
/// open forever (the channel is held, never answered: a stall).
pub type RogueAnswer = Box<dyn FnMut(&SyncRequest) -> Option<SyncResponse> + Send>;

/// What a running rogue saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RogueSaw {
    /// The node answered the handshake.
    Verified(PeerId),
    /// A sync request arrived.
    Sync(SyncRequest),
    /// Every connection to the node is closed.
    Closed(PeerId),
}

/// A rogue DA peer running on its own task.
pub struct Rogue {
    /// Its PeerId.
    pub peer_id: PeerId,
    /// What it saw, in order.
    pub saw: mpsc::UnboundedReceiver<RogueSaw>,
    /// Set to stop the task.
    stop: Arc<AtomicBool>,
}

impl Rogue {
    /// The next thing it saw, within `limit`.
    pub async fn next(&mut self, limit: Duration) -> Option<RogueSaw> {
        tokio::time::timeout(limit, self.saw.recv())
            .await
            .ok()
            .flatten()
    }

    /// Waits (up to `limit`) for what `pick` selects.
    pub async fn wait_for(
        &mut self,
        limit: Duration,
        mut pick: impl FnMut(&RogueSaw) -> bool,
    ) -> Option<RogueSaw> {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let left = end.saturating_duration_since(tokio::time::Instant::now());
            let saw = self.next(left).await?;
            if pick(&saw) {
                return Some(saw);
            }
        }
    }
}

impl Drop for Rogue {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn rogue_handshake(me: &PeerId) -> Handshake {
    Handshake {
        protocol_version: PROTOCOL_VERSION,
        network_id: net().to_string(),
        node_id: me.to_bytes(),
        listen_addrs: vec![],
        services: ServiceSet::from_types([ServiceType::Storage]),
    }
}

/// Starts a rogue DA peer that dials `target` (TCP), passes the handshake and answers sync
/// requests with `answer`.
pub fn spawn_rogue(target: Multiaddr, answer: RogueAnswer) -> Rogue {
    spawn_rogue_at(Some(target), None, answer)
}

/// Starts a rogue DA peer listening on `listen` (TCP, e.g. `/ip4/127.0.0.1/tcp/<port>`) for
/// nodes that do not listen themselves (light clients).
pub fn spawn_listening_rogue(listen: Multiaddr, answer: RogueAnswer) -> Rogue {
    spawn_rogue_at(None, Some(listen), answer)
}

fn spawn_rogue_at(
    target: Option<Multiaddr>,
    listen: Option<Multiaddr>,
    mut answer: RogueAnswer,
) -> Rogue {
    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
    let handshake = handshake_behaviour(Duration::from_secs(10));
    let da_sync =
        da_sync_behaviour(&net(), Duration::from_secs(30), ProtocolSupport::Full).unwrap();
    let mut swarm: Swarm<RogueDa> = tcp_swarm(key, RogueDa { handshake, da_sync });
    if let Some(listen) = listen {
        swarm.listen_on(listen).unwrap();
    }
    if let Some(target) = target {
        swarm.dial(target).unwrap();
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    tokio::spawn(async move {
        // Held, never answered (dropping a channel would fail the request at once).
        let mut held: Vec<ResponseChannel<SyncResponse>> = Vec::new();
        while !stopped.load(Ordering::Relaxed) {
            let ev = tokio::select! {
                ev = swarm.select_next_some() => ev,
                _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
            };
            match ev {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm
                        .behaviour_mut()
                        .handshake
                        .send_request(&peer_id, rogue_handshake(&me));
                }
                SwarmEvent::Behaviour(RogueDaEvent::Handshake(
                    request_response::Event::Message {
                        message: Message::Request { channel, .. },
                        ..
                    },
                )) => {
                    let _ = swarm
                        .behaviour_mut()
                        .handshake
                        .send_response(channel, rogue_handshake(&me));
                }
                SwarmEvent::Behaviour(RogueDaEvent::Handshake(
                    request_response::Event::Message {
                        peer,
                        message: Message::Response { .. },
                        ..
                    },
                )) => {
                    let _ = tx.send(RogueSaw::Verified(peer));
                }
                SwarmEvent::Behaviour(RogueDaEvent::DaSync(request_response::Event::Message {
                    message:
                        Message::Request {
                            request, channel, ..
                        },
                    ..
                })) => {
                    let _ = tx.send(RogueSaw::Sync(request));
                    match answer(&request) {
                        Some(response) => {
                            let _ = swarm
                                .behaviour_mut()
                                .da_sync
                                .send_response(channel, response);
                        }
                        None => held.push(channel),
                    }
                }
                SwarmEvent::ConnectionClosed {
                    peer_id,
                    num_established: 0,
                    ..
                } => {
                    held.clear();
                    let _ = tx.send(RogueSaw::Closed(peer_id));
                }
                _ => {}
            }
        }
    });
    Rogue {
        peer_id: me,
        saw: rx,
        stop,
    }
}

/// A [`RogueAnswer`] that serves `chain` honestly (up to `tip`) except that blob `bad` is
/// replaced by `forged`.
pub fn serve_with_forgery(chain: &TestChain, tip: u64, bad: u64, forged: Vec<u8>) -> RogueAnswer {
    let blobs: Vec<Vec<u8>> = (1..=tip).map(|h| chain.bytes(h)).collect();
    Box::new(move |req: &SyncRequest| {
        let count = u64::from(req.count.min(64));
        let last = req.from.saturating_add(count).saturating_sub(1).min(tip);
        let blobs = (req.from.max(1)..=last)
            .map(|h| {
                let bytes = if h == bad {
                    forged.clone()
                } else {
                    blobs[h as usize - 1].clone()
                };
                serde_bytes::ByteBuf::from(bytes)
            })
            .collect();
        Some(SyncResponse { tip, blobs })
    })
}

/// A plain libp2p swarm of `behaviour` over TCP + noise + yamux (connections kept 120 s
/// when idle): the other side of swarm-level tests.
pub fn tcp_swarm<B: libp2p::swarm::NetworkBehaviour>(key: Keypair, behaviour: B) -> Swarm<B> {
    SwarmBuilder::with_existing_identity(key)
        .with_tokio()
        .with_tcp(
            tcp::Config::default(),
            noise::Config::new,
            yamux::Config::default,
        )
        .unwrap()
        .with_behaviour(|_| behaviour)
        .unwrap()
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(120)))
        .build()
}
