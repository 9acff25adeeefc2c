//! Swarm-level anti-abuse tests (28.1.C §6): a real [`Node`] on loopback against a rogue
//! libp2p peer that speaks the DSDN handshake and PEX protocols but misbehaves.

use std::net::SocketAddr;
use std::time::Duration;

use dsdn_bootstrap::config::BootstrapConfig;
use dsdn_p2p::net::behaviour::{
    handshake_behaviour, pex_behaviour, HandshakeBehaviour, PexBehaviour,
};
use dsdn_p2p::node::listen_addrs;
use dsdn_p2p::{Node, NodeConfig, NodeHandle};
use dsdn_protocols::handshake::Handshake;
use dsdn_protocols::pex::{PexEntry, PexResponse, MAX_PEX_ENTRIES};
use dsdn_protocols::{ServiceSet, ServiceType, PROTOCOL_VERSION};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};

mod common;
use common::{free_addr, net, tcp_swarm};

fn start_node(dir: &std::path::Path, listen: SocketAddr) -> (NodeHandle, Node) {
    let bootstrap = BootstrapConfig {
        peer_connect_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_secs(1),
        min_peers: 1,
        ..BootstrapConfig::default()
    };
    let cfg = NodeConfig {
        keypair: Keypair::generate_ed25519(),
        network: net(),
        address_policy: dsdn_protocols::AddressPolicy::PERMISSIVE,
        da_authority: None,
        services: ServiceSet::from_types([ServiceType::Storage]),
        subscribe_da: true,
        da: dsdn_p2p::da::DaConfig::default(),
        da_dir: None,
        registration: None,
        nat: Default::default(),
        listen: vec![listen],
        listen_ipv6_optional: false,
        bootstrap,
        peers_file: dir.join("peers.dat"),
        added_file: dir.join("added-peers.toml"),
        agent_version: "test".into(),
        mode: "storage".into(),
        required_roles: Vec::new(),
        light: false,
        committee: None,
        workload: Default::default(),
    };
    let node = Node::start(cfg).unwrap();
    (node.handle.clone(), node)
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Rogue {
    handshake: HandshakeBehaviour,
    pex: PexBehaviour,
}

fn rogue_swarm(key: Keypair) -> Swarm<Rogue> {
    let handshake = handshake_behaviour(Duration::from_secs(10));
    let pex = pex_behaviour(&net(), Duration::from_secs(10)).unwrap();
    tcp_swarm(key, Rogue { handshake, pex })
}

fn rogue_handshake(peer: &PeerId) -> Handshake {
    Handshake {
        protocol_version: PROTOCOL_VERSION,
        network_id: "devnet".into(),
        node_id: peer.to_bytes(),
        listen_addrs: vec![],
        services: ServiceSet::from_types([ServiceType::Storage]),
    }
}

fn entry(i: u32) -> PexEntry {
    let peer = Keypair::generate_ed25519().public().to_peer_id();
    // Loopback only: the node may dial what it learns.
    let [_, _, c, d] = i.to_be_bytes();
    let addr: Multiaddr = format!("/ip4/127.100.{c}.{d}/tcp/30303").parse().unwrap();
    PexEntry {
        node_id: peer.to_bytes(),
        addrs: vec![serde_bytes::ByteBuf::from(addr.to_vec())],
        services: ServiceSet::from_types([ServiceType::Storage]),
        last_success_unix: 1,
    }
}

/// Drives the rogue until the node asks it for PEX, answers with `entries` entries, and
/// returns once the node closed the connection or `deadline` passed; returns whether the
/// connection was closed.
async fn serve_pex(swarm: &mut Swarm<Rogue>, entries: usize, deadline: Duration) -> bool {
    let me = *swarm.local_peer_id();
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = tokio::time::sleep_until(end) => return false,
        };
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                swarm
                    .behaviour_mut()
                    .handshake
                    .send_request(&peer_id, rogue_handshake(&me));
            }
            SwarmEvent::Behaviour(RogueEvent::Handshake(request_response::Event::Message {
                message: Message::Request { channel, .. },
                ..
            })) => {
                let _ = swarm
                    .behaviour_mut()
                    .handshake
                    .send_response(channel, rogue_handshake(&me));
            }
            SwarmEvent::Behaviour(RogueEvent::Pex(request_response::Event::Message {
                message: Message::Request { channel, .. },
                ..
            })) => {
                let resp = PexResponse {
                    entries: (0..entries as u32).map(entry).collect(),
                };
                let _ = swarm.behaviour_mut().pex.send_response(channel, resp);
            }
            SwarmEvent::ConnectionClosed {
                num_established: 0, ..
            } => return true,
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_pex_response_bans_the_sender() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr("127.0.0.1");
    let (handle, node) = start_node(dir.path(), listen);
    let metrics = node.metrics.clone();
    tokio::spawn(node.event_loop.run());

    let key = Keypair::generate_ed25519();
    let rogue_id = key.public().to_peer_id();
    let mut rogue = rogue_swarm(key);
    let target = listen_addrs(listen)[1].clone();
    rogue.dial(target.clone()).unwrap();
    assert!(
        serve_pex(&mut rogue, MAX_PEX_ENTRIES + 1, Duration::from_secs(20)).await,
        "the node did not disconnect a peer that sent {} PEX entries",
        MAX_PEX_ENTRIES + 1
    );

    let text = metrics.encode();
    assert!(
        text.contains("bootstrap_misbehaving_total{reason=\"pex_oversized\"} 1"),
        "{text}"
    );
    let peers = handle.peers().await.unwrap();
    let rogue_view = peers.iter().find(|p| p.peer_id == rogue_id).unwrap();
    assert!(
        rogue_view.banned_until.is_some(),
        "rogue not banned: {rogue_view:?}"
    );
    assert!(
        !peers.iter().any(|p| p
            .addrs
            .iter()
            .any(|a| a.to_string().starts_with("/ip4/127.100."))),
        "entries of an oversized response were stored"
    );

    // A banned peer is refused when it comes back.
    rogue.dial(target).unwrap();
    let refused = serve_pex(&mut rogue, 1, Duration::from_secs(5)).await;
    assert!(refused, "a banned peer was accepted again");
    let text = metrics.encode();
    assert!(
        text.lines()
            .any(|l| l.starts_with("bootstrap_connections_denied_total{reason=\"banned\"}")),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_pex_response_is_learned() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr("127.0.0.1");
    let (handle, node) = start_node(dir.path(), listen);
    let metrics = node.metrics.clone();
    tokio::spawn(node.event_loop.run());

    let mut rogue = rogue_swarm(Keypair::generate_ed25519());
    rogue.dial(listen_addrs(listen)[1].clone()).unwrap();
    // The honest-but-large answer: exactly 1000 entries, all processed (we asked, so the
    // token bucket holds 1 + 1000 tokens).
    let closed = serve_pex(&mut rogue, MAX_PEX_ENTRIES, Duration::from_secs(3)).await;
    assert!(
        !closed,
        "a well-formed 1000-entry response cost the connection"
    );
    let mut learned = 0;
    for _ in 0..50 {
        learned = handle
            .peers()
            .await
            .unwrap()
            .iter()
            .filter(|p| {
                p.addrs
                    .iter()
                    .any(|a| a.to_string().starts_with("/ip4/127.100."))
            })
            .count();
        if learned == MAX_PEX_ENTRIES {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(learned, MAX_PEX_ENTRIES);
    let text = metrics.encode();
    assert!(
        text.contains("bootstrap_pex_addrs_received_total 1000"),
        "{text}"
    );
    assert!(
        text.contains("bootstrap_pex_addrs_rate_limited_total 0"),
        "{text}"
    );
}

/// Connections that never start their handshake, from many addresses, take at most
/// `MAX_PENDING_INBOUND` slots: the rest are refused at accept (counted), and once they are
/// gone an honest peer connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_hold_at_most_the_pending_inbound_slots() {
    use dsdn_p2p::net::peer_manager::MAX_PENDING_INBOUND;
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr("127.0.0.1");
    let (_handle, node) = start_node(dir.path(), listen);
    let metrics = node.metrics.clone();
    tokio::spawn(node.event_loop.run());
    tokio::time::sleep(Duration::from_millis(300)).await;

    // One connection from each of 3 × MAX_PENDING_INBOUND loopback addresses (the per-IP
    // rate limit does not apply), each silent.
    let mut silent = Vec::new();
    for i in 0..(3 * MAX_PENDING_INBOUND) as u8 {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(SocketAddr::from(([127, 0, 3, 1 + i], 0)))
            .unwrap();
        if let Ok(s) = socket.connect(listen).await {
            silent.push(s);
        }
    }
    let denied = "bootstrap_connections_denied_total{reason=\"pending_limit\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let value = |text: &str| -> f64 {
        text.lines()
            .find_map(|l| l.strip_prefix(denied))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    while value(&metrics.encode()) < MAX_PENDING_INBOUND as f64 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "silent connections were not refused beyond the pending limit:\n{}",
            metrics.encode()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(silent);

    // Once they are gone, an honest peer connects.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut peer = rogue_swarm(Keypair::generate_ed25519());
    peer.dial(listen_addrs(listen)[1].clone()).unwrap();
    let connected = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            if let SwarmEvent::ConnectionEstablished { .. } = peer.select_next_some().await {
                return;
            }
        }
    })
    .await;
    assert!(
        connected.is_ok(),
        "an honest peer could not connect after the flood"
    );
}
