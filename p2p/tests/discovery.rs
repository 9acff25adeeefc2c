//! Swarm-level service discovery (28.1.C §1–§2): a role found through a Kademlia provider
//! record when peer exchange cannot deliver it. Real nodes on loopback.

use std::net::SocketAddr;
use std::time::Duration;

use dsdn_bootstrap::config::{BootstrapConfig, StaticPeer};
use dsdn_p2p::{Node, NodeConfig, NodeHandle};
use dsdn_protocols::{PeerSource, ServiceSet, ServiceType};
use libp2p::identity::Keypair;
use libp2p::PeerId;

mod common;
use common::{free_addr, net};

struct Started {
    handle: NodeHandle,
    metrics: dsdn_p2p::Metrics,
    peer_id: PeerId,
    listen: SocketAddr,
    _dir: tempfile::TempDir,
}

fn start(
    service: ServiceType,
    static_peer: Option<SocketAddr>,
    required: Vec<(ServiceType, usize)>,
    max_outbound: usize,
) -> Started {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr("127.0.0.1");
    let keypair = Keypair::generate_ed25519();
    let peer_id = keypair.public().to_peer_id();
    let bootstrap = BootstrapConfig {
        static_peers: static_peer
            .map(|a| vec![StaticPeer::parse(&a.to_string()).unwrap()])
            .unwrap_or_default(),
        peer_connect_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_secs(1),
        min_peers: 1,
        inbound_per_ip_per_minute: 1000,
        max_outbound_connections: max_outbound,
        ..BootstrapConfig::default()
    };
    let cfg = NodeConfig {
        keypair,
        network: net(),
        address_policy: dsdn_protocols::AddressPolicy::PERMISSIVE,
        da_authority: None,
        services: ServiceSet::from_types([service]),
        subscribe_da: false,
        da: dsdn_p2p::da::DaConfig::default(),
        da_dir: None,
        registration: None,
        nat: Default::default(),
        listen: vec![listen],
        listen_ipv6_optional: false,
        bootstrap,
        peers_file: dir.path().join("peers.dat"),
        added_file: dir.path().join("added-peers.toml"),
        agent_version: "test".into(),
        mode: service.as_str().into(),
        required_roles: required,
        light: false,
        committee: None,
        workload: Default::default(),
    };
    let node = Node::start(cfg).unwrap();
    let started = Started {
        handle: node.handle.clone(),
        metrics: node.metrics.clone(),
        peer_id,
        listen,
        _dir: dir,
    };
    tokio::spawn(node.event_loop.run());
    started
}

async fn connected_to(node: &NodeHandle, peer: PeerId) -> Option<PeerSource> {
    node.peers()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.peer_id == peer && p.connected_outbound.is_some())
        .map(|p| p.source)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_role_is_found_through_a_provider_record() {
    let boot = start(ServiceType::Bootstrap, None, vec![], 8);
    let validator = start(
        ServiceType::Validator,
        Some(boot.listen),
        vec![(ServiceType::Coordinator, 1)],
        8,
    );
    // The validator joins first and exchanges PEX with the bootstrap node while no
    // coordinator exists; its next PEX request is 15 minutes away.
    for _ in 0..100 {
        if connected_to(&validator.handle, boot.peer_id)
            .await
            .is_some()
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(connected_to(&validator.handle, boot.peer_id)
        .await
        .is_some());
    // Short of a coordinator, it looks the role up (and finds no provider yet).
    let looked_up = |text: &str| {
        text.lines().any(|l| {
            l.starts_with("discovery_lookups_total{service=\"coordinator\"}") && !l.ends_with(" 0")
        })
    };
    for _ in 0..50 {
        if looked_up(&validator.metrics.encode()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let text = validator.metrics.encode();
    assert!(
        looked_up(&text),
        "no lookup while short of a coordinator:\n{text}"
    );
    assert!(text.contains("discovery_role_deficit{service=\"coordinator\"} 1"));

    // A coordinator joins through the bootstrap node and publishes its provider record. With
    // one outbound slot (taken by the bootstrap node) its peer manager does not dial the
    // validator it learns through PEX, and the validator's next PEX request is 15 minutes
    // away: only Kademlia can bring the two together (the validator's provider lookup, or
    // the coordinator's record publication reaching the validator as a close peer).
    let coordinator = start(ServiceType::Coordinator, Some(boot.listen), vec![], 1);
    let mut source = None;
    for _ in 0..300 {
        source = connected_to(&validator.handle, coordinator.peer_id).await;
        if source.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        matches!(source, Some(PeerSource::Kademlia | PeerSource::Inbound)),
        "the validator did not reach the coordinator through Kademlia ({source:?}):\n{}",
        validator.metrics.encode()
    );
    for _ in 0..30 {
        if validator
            .metrics
            .encode()
            .contains("discovery_role_deficit{service=\"coordinator\"} 0")
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("role deficit not cleared:\n{}", validator.metrics.encode());
}
