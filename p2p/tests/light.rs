//! Swarm-level test of the light client (issue "Light clients"): real nodes on loopback, real
//! sockets and a real DNS seed server. The light client knows nothing but a DNS seed that
//! resolves to a bootstrap node; through it (PEX) it finds the coordinator and receives the
//! coordinator's DA events, verified and in order, without ever being advertised.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::time::Duration;

use dsdn_bootstrap::config::{BootstrapConfig, DnsSeed, StaticPeer};
use dsdn_bootstrap::seed_server::SeedServer;
use dsdn_p2p::net::behaviour::{
    handshake_behaviour, pex_behaviour, HandshakeBehaviour, PexBehaviour,
};
use dsdn_p2p::node::{listen_addrs, signing_key};
use dsdn_p2p::{DaNotice, LightClient, LightConfig, Node, NodeConfig, NodeHandle};
use dsdn_protocols::da::{Bytes32, DaEvent};
use dsdn_protocols::handshake::Handshake;
use dsdn_protocols::pex::{PexEntry, PexRequest, MAX_PEX_ENTRIES};
use dsdn_protocols::{PeerSource, ServiceSet, ServiceType, PROTOCOL_VERSION};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId};

mod common;
use common::{free_addr, net, tcp_swarm};

const SEED: &str = "seed.devnet.test";

fn quick_bootstrap() -> BootstrapConfig {
    BootstrapConfig {
        peer_connect_timeout: Duration::from_secs(2),
        dns_resolve_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_secs(1),
        min_peers: 1,
        ..BootstrapConfig::default()
    }
}

struct Started {
    handle: NodeHandle,
    peer_id: PeerId,
}

fn start_node(
    dir: &Path,
    key: Keypair,
    listen: SocketAddr,
    service: ServiceType,
    authority: [u8; 32],
    static_peers: Vec<StaticPeer>,
) -> Started {
    let peer_id = key.public().to_peer_id();
    let cfg = NodeConfig {
        keypair: key,
        network: net(),
        address_policy: dsdn_protocols::AddressPolicy::PERMISSIVE,
        da_authority: Some(authority),
        services: ServiceSet::from_types([service]),
        // A dedicated bootstrap node carries no DA events (as dsdnd --mode bootstrap).
        subscribe_da: service != ServiceType::Bootstrap,
        da: dsdn_p2p::da::DaConfig::default(),
        da_dir: None,
        registration: None,
        nat: Default::default(),
        listen: vec![listen],
        listen_ipv6_optional: false,
        bootstrap: BootstrapConfig {
            static_peers,
            ..quick_bootstrap()
        },
        peers_file: dir.join("peers.dat"),
        added_file: dir.join("added-peers.toml"),
        agent_version: "test".into(),
        mode: service.as_str().into(),
        required_roles: Vec::new(),
        light: false,
        committee: None,
        workload: Default::default(),
    };
    let node = Node::start(cfg).unwrap();
    tokio::spawn(node.event_loop.run());
    Started {
        handle: node.handle,
        peer_id,
    }
}

/// Polls `check` every 100 ms until it holds; panics with `what` after `limit`.
async fn wait_until<F, Fut>(limit: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + limit;
    while !check().await {
        assert!(tokio::time::Instant::now() < end, "timed out: {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn connected_to(handle: &NodeHandle, peer: PeerId) -> bool {
    handle
        .peers()
        .await
        .unwrap()
        .iter()
        .any(|p| p.peer_id == peer && p.connected_outbound.is_some())
}

fn events(batch: u8, n: usize) -> Vec<DaEvent> {
    (0..n)
        .map(|i| {
            let chunk_id = Bytes32([batch ^ i as u8; 32]);
            match i % 3 {
                0 => DaEvent::ChunkDeclared {
                    chunk_id,
                    size_bytes: 4096 + i as u64,
                    owner: Bytes32([7; 32]),
                },
                1 => DaEvent::ReplicaAdded {
                    chunk_id,
                    node_id: common::test_node_id(u64::from(batch) << 32 | i as u64),
                },
                _ => DaEvent::ReplicaRemoved {
                    chunk_id,
                    node_id: common::test_node_id(u64::from(batch) << 32 | i as u64),
                },
            }
        })
        .collect()
}

/// Publishes through the coordinator, retrying while gossipsub knows no subscriber yet.
async fn publish(coord: &NodeHandle, batch: Vec<DaEvent>) -> Vec<u64> {
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        match coord.publish_da(batch.clone()).await.unwrap() {
            Ok(p) => return p.heights,
            Err(e) => {
                assert!(tokio::time::Instant::now() < end, "publish failed: {e}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Probe {
    handshake: HandshakeBehaviour,
    pex: PexBehaviour,
}

/// Connects to `target` as an ordinary peer, passes the handshake, asks for PEX and returns
/// the entries of the answer.
async fn pex_answer_of(target: Multiaddr) -> Vec<PexEntry> {
    let key = Keypair::generate_ed25519();
    let me = key.public().to_peer_id();
    let handshake = handshake_behaviour(Duration::from_secs(10));
    let pex = pex_behaviour(&net(), Duration::from_secs(10)).unwrap();
    let mut swarm = tcp_swarm(key, Probe { handshake, pex });
    swarm.dial(target).unwrap();
    let hs = Handshake {
        protocol_version: PROTOCOL_VERSION,
        network_id: net().to_string(),
        node_id: me.to_bytes(),
        listen_addrs: vec![],
        services: ServiceSet::from_types([ServiceType::Storage]),
    };
    let run = async {
        loop {
            match swarm.select_next_some().await {
                SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                    swarm
                        .behaviour_mut()
                        .handshake
                        .send_request(&peer_id, hs.clone());
                }
                SwarmEvent::Behaviour(ProbeEvent::Handshake(
                    request_response::Event::Message {
                        peer,
                        message: Message::Response { .. },
                        ..
                    },
                )) => {
                    let req = PexRequest {
                        max_entries: MAX_PEX_ENTRIES as u16,
                        services: ServiceSet::EMPTY,
                    };
                    swarm.behaviour_mut().pex.send_request(&peer, req);
                }
                SwarmEvent::Behaviour(ProbeEvent::Pex(request_response::Event::Message {
                    message: Message::Response { response, .. },
                    ..
                })) => return response.entries,
                _ => {}
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), run)
        .await
        .expect("no PEX answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_receives_the_coordinators_events_through_a_dns_seeded_bootstrap_node() {
    let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let coord_key = Keypair::generate_ed25519();
    let authority = signing_key(&coord_key).unwrap().verifying_key().to_bytes();

    // A bootstrap node and a coordinator (the DA authority) that knows it as a static peer.
    // Different loopback IPs: different netgroups, so the light client dials both.
    let boot_listen = free_addr("127.0.0.1");
    let boot = start_node(
        dirs[0].path(),
        Keypair::generate_ed25519(),
        boot_listen,
        ServiceType::Bootstrap,
        authority,
        vec![],
    );
    let coord = start_node(
        dirs[1].path(),
        coord_key,
        free_addr("127.0.0.2"),
        ServiceType::Coordinator,
        authority,
        vec![StaticPeer::Socket(boot_listen)],
    );
    wait_until(
        Duration::from_secs(20),
        "coordinator connected to the bootstrap node",
        || connected_to(&boot.handle, coord.peer_id),
    )
    .await;

    // The light client's only source: a DNS seed resolving to the bootstrap node's IP.
    let dns = SeedServer::spawn(SocketAddr::from((Ipv4Addr::LOCALHOST, 0)))
        .await
        .unwrap();
    dns.set_records(SEED, vec![IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    let light_bootstrap = BootstrapConfig {
        dns_seeds: vec![DnsSeed::new(SEED).unwrap()],
        dns_servers: vec![dns.local_addr()],
        default_port: boot_listen.port(),
        ..quick_bootstrap()
    };
    let light_cfg = LightConfig {
        network: net(),
        address_policy: dsdn_protocols::AddressPolicy::PERMISSIVE,
        da_authority: Some(authority),
        bootstrap: light_bootstrap,
        data_dir: Some(dirs[2].path().join("light")),
        keypair: None,
        checkpoint: None,
    };
    let mut client = LightClient::start(light_cfg.clone()).unwrap();
    let light_id = client.peer_id();
    wait_until(
        Duration::from_secs(30),
        "light client connected to the coordinator",
        || connected_to(client.handle(), coord.peer_id),
    )
    .await;
    let peers = client.handle().peers().await.unwrap();
    let via = peers.iter().find(|p| p.peer_id == boot.peer_id).unwrap();
    assert_eq!(via.source, PeerSource::DnsSeed, "{via:?}");
    assert!(dns.query_count() > 0);

    // Three publishes of 5, 70 and 1 events: one blob each (each publish waits for its
    // blob to be sealed; a blob holds up to 256 events by default).
    let batches = [events(1, 5), events(2, 70), events(3, 1)];
    let mut seqs = Vec::new();
    for b in &batches {
        seqs.extend(publish(&coord.handle, b.clone()).await);
    }
    assert_eq!(seqs, [1, 2, 3]);
    let mut got: Vec<DaNotice> = Vec::new();
    while got.len() < seqs.len() {
        let n = tokio::time::timeout(Duration::from_secs(20), client.next())
            .await
            .expect("light client: DA envelope not received")
            .expect("light client stopped");
        got.push(n);
    }
    assert_eq!(got.iter().map(|n| n.height).collect::<Vec<_>>(), seqs);
    let all: Vec<DaEvent> = got.iter().flat_map(|n| n.events.clone()).collect();
    assert_eq!(all, batches.concat(), "every event, in order");
    assert_eq!(got[0].prev_hash, [0; 32]);
    assert!(
        got.windows(2).all(|w| w[1].prev_hash == w[0].hash),
        "hash chain"
    );
    let coord_state = coord.handle.da_state().await.unwrap();
    assert_eq!(got[2].state_root, coord_state.state_root);
    assert_eq!(got[2].hash, coord_state.tip_hash);
    let light_state = client.handle().da_state().await.unwrap();
    assert_eq!(light_state.state_root, coord_state.state_root);
    assert_eq!(light_state.events, 76);
    assert_eq!(light_state.rejected, 0);

    // The light client listens nowhere and is never advertised with an address.
    let status = client.status().await.unwrap();
    assert!(status.listen_addrs.is_empty(), "{:?}", status.listen_addrs);
    for (name, node) in [("bootstrap", &boot.handle), ("coordinator", &coord.handle)] {
        let views = node.peers().await.unwrap();
        let light = views.iter().find(|p| p.peer_id == light_id);
        assert!(
            light.is_some_and(|p| p.addrs.is_empty() && p.services.is_empty()),
            "{name} knows the light client with an address or services: {light:?}"
        );
    }
    let answer = pex_answer_of(listen_addrs(boot_listen)[1].clone()).await;
    let ids: Vec<PeerId> = answer
        .iter()
        .filter_map(|e| PeerId::from_bytes(&e.node_id).ok())
        .collect();
    assert!(ids.contains(&coord.peer_id), "PEX answer: {ids:?}");
    assert!(
        !ids.contains(&light_id),
        "the light client was shared in PEX"
    );

    // Warm start: with the DNS seed gone, the second start finds the network from its
    // peers.dat (the anchors saved at shutdown).
    client.shutdown().await;
    assert!(dns.remove(SEED));
    let client = LightClient::start(light_cfg).unwrap();
    wait_until(
        Duration::from_secs(30),
        "warm-started light client connected to the coordinator",
        || connected_to(client.handle(), coord.peer_id),
    )
    .await;
    client.shutdown().await;
}
