//! Address hygiene (issue 12 §3), swarm level: real nodes on loopback and a rogue libp2p
//! peer speaking the DSDN handshake and PEX.
//!
//! * A liar that announces an honest node's address as its own never gets it into the
//!   bootstrap node's address book as tried, nor into a PEX answer; the honest inbound node
//!   is shared once the bootstrap node's address test reached it.
//! * A network that does not allow private addresses drops them from handshakes and PEX.

use std::net::SocketAddr;
use std::time::Duration;

use dsdn_bootstrap::config::{BootstrapConfig, StaticPeer};
use dsdn_p2p::net::behaviour::{
    handshake_behaviour, pex_behaviour, HandshakeBehaviour, PexBehaviour,
};
use dsdn_p2p::node::listen_addrs;
use dsdn_p2p::{Node, NodeConfig, NodeHandle};
use dsdn_protocols::handshake::Handshake;
use dsdn_protocols::pex::{PexEntry, PexRequest, PexResponse};
use dsdn_protocols::{AddressPolicy, NetworkId, ServiceSet, ServiceType, PROTOCOL_VERSION};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message};
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Swarm};

mod common;
use common::{free_addr, tcp_swarm};

fn start(
    dir: &std::path::Path,
    network: &NetworkId,
    policy: AddressPolicy,
    static_peer: Option<SocketAddr>,
) -> (NodeHandle, SocketAddr, PeerId) {
    let listen = free_addr("127.0.0.1");
    let key = Keypair::generate_ed25519();
    let id = key.public().to_peer_id();
    let bootstrap = BootstrapConfig {
        static_peers: static_peer
            .map(|a| vec![StaticPeer::parse(&a.to_string()).unwrap()])
            .unwrap_or_default(),
        peer_connect_timeout: Duration::from_secs(2),
        retry_interval: Duration::from_secs(1),
        pex_interval: Duration::from_secs(1),
        min_peers: 1,
        inbound_per_ip_per_minute: 1000,
        ..BootstrapConfig::default()
    };
    let cfg = NodeConfig {
        address_policy: policy,
        services: ServiceSet::from_types([ServiceType::Storage]),
        subscribe_da: false,
        da_dir: None,
        listen: vec![listen],
        bootstrap,
        ..NodeConfig::new(key, network.clone(), dir)
    };
    let node = Node::start(cfg).unwrap();
    let handle = node.handle.clone();
    tokio::spawn(node.event_loop.run());
    (handle, listen, id)
}

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Rogue {
    handshake: HandshakeBehaviour,
    pex: PexBehaviour,
}

fn rogue_swarm(key: Keypair, network: &NetworkId) -> Swarm<Rogue> {
    let handshake = handshake_behaviour(Duration::from_secs(10));
    let pex = pex_behaviour(network, Duration::from_secs(10)).unwrap();
    tcp_swarm(key, Rogue { handshake, pex })
}

fn handshake(network: &NetworkId, me: &PeerId, addrs: &[Multiaddr]) -> Handshake {
    Handshake {
        protocol_version: PROTOCOL_VERSION,
        network_id: network.to_string(),
        node_id: me.to_bytes(),
        listen_addrs: addrs
            .iter()
            .map(|a| serde_bytes::ByteBuf::from(a.to_vec()))
            .collect(),
        services: ServiceSet::from_types([ServiceType::Storage]),
    }
}

fn a(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn entry_addrs(e: &PexEntry) -> Vec<Multiaddr> {
    e.addrs
        .iter()
        .filter_map(|b| Multiaddr::try_from(b.to_vec()).ok())
        .collect()
}

/// Drives the rogue connected to `target`: it announces `announced` in its handshake,
/// answers the node's PEX requests with `serve`, and asks the node for PEX every 500 ms.
/// Every PEX answer is passed to `check`; returns when `check` returns true or after
/// `limit` (false).
async fn drive(
    swarm: &mut Swarm<Rogue>,
    network: &NetworkId,
    announced: &[Multiaddr],
    serve: &[PexEntry],
    limit: Duration,
    mut check: impl FnMut(&PexResponse) -> bool,
) -> bool {
    let me = *swarm.local_peer_id();
    let end = tokio::time::Instant::now() + limit;
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut node = None;
    loop {
        let ev = tokio::select! {
            ev = swarm.select_next_some() => ev,
            _ = tick.tick() => {
                if let Some(peer) = node {
                    swarm.behaviour_mut().pex.send_request(
                        &peer,
                        PexRequest { max_entries: 1000, services: ServiceSet::EMPTY },
                    );
                }
                continue;
            }
            _ = tokio::time::sleep_until(end) => return false,
        };
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } => {
                swarm
                    .behaviour_mut()
                    .handshake
                    .send_request(&peer_id, handshake(network, &me, announced));
            }
            SwarmEvent::Behaviour(RogueEvent::Handshake(request_response::Event::Message {
                peer,
                message,
                ..
            })) => match message {
                Message::Request { channel, .. } => {
                    let _ = swarm
                        .behaviour_mut()
                        .handshake
                        .send_response(channel, handshake(network, &me, announced));
                }
                Message::Response { .. } => node = Some(peer),
            },
            SwarmEvent::Behaviour(RogueEvent::Pex(request_response::Event::Message {
                message,
                ..
            })) => match message {
                Message::Request { channel, .. } => {
                    let resp = PexResponse {
                        entries: serve.to_vec(),
                    };
                    let _ = swarm.behaviour_mut().pex.send_response(channel, resp);
                }
                Message::Response { response, .. } => {
                    if check(&response) {
                        return true;
                    }
                }
            },
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_liars_address_is_never_tried_nor_shared_and_an_honest_inbound_peer_is() {
    let net = NetworkId::new("devnet").unwrap();
    let (bd, hd) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (boot, boot_addr, _) = start(bd.path(), &net, AddressPolicy::PERMISSIVE, None);
    // The honest node dials the bootstrap node: it is the bootstrap node's inbound peer.
    let (honest, honest_addr, honest_id) =
        start(hd.path(), &net, AddressPolicy::PERMISSIVE, Some(boot_addr));
    let honest_tcp = listen_addrs(honest_addr)[1].clone();

    // The liar dials in too and announces the honest node's address as its own.
    let key = Keypair::generate_ed25519();
    let liar_id = key.public().to_peer_id();
    let mut liar = rogue_swarm(key, &net);
    liar.dial(listen_addrs(boot_addr)[1].clone()).unwrap();
    let lie = std::slice::from_ref(&honest_tcp);
    drive(&mut liar, &net, lie, &[], Duration::from_secs(3), |_| false).await;

    // A third peer (announcing nothing) asks the bootstrap node for addresses.
    let mut observer = rogue_swarm(Keypair::generate_ed25519(), &net);
    observer.dial(listen_addrs(boot_addr)[1].clone()).unwrap();
    let mut answers = 0;
    let mut lie_shared = false;
    let mut saw = |resp: &PexResponse| {
        answers += 1;
        lie_shared |= resp.entries.iter().any(|e| e.node_id == liar_id.to_bytes());
        resp.entries
            .iter()
            .any(|e| e.node_id == honest_id.to_bytes() && entry_addrs(e).contains(&honest_tcp))
    };
    let shared = drive(
        &mut observer,
        &net,
        &[],
        &[],
        Duration::from_secs(30),
        &mut saw,
    )
    .await;
    // Keep asking a little longer: the liar's address test has long failed by now.
    drive(&mut observer, &net, &[], &[], Duration::from_secs(3), |r| {
        saw(r);
        false
    })
    .await;
    assert!(!lie_shared, "the liar was shared by PEX");
    assert!(
        shared,
        "the honest inbound peer was never shared by PEX ({answers} answers)"
    );

    for (name, node) in [("bootstrap", &boot), ("honest", &honest)] {
        let peers = node.peers().await.unwrap();
        if let Some(v) = peers.iter().find(|p| p.peer_id == liar_id) {
            assert_eq!(
                v.last_success, None,
                "{name} holds the liar as tried: {v:?}"
            );
        }
    }
    let peers = boot.peers().await.unwrap();
    let h = peers.iter().find(|p| p.peer_id == honest_id).unwrap();
    assert!(h.last_success.is_some(), "{h:?}");
    assert!(h.addrs.contains(&honest_tcp), "{h:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_public_network_drops_private_addresses_from_handshakes_and_pex() {
    let net = NetworkId::new("testnet").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let policy = AddressPolicy::default_for(&net);
    assert_eq!(policy, AddressPolicy::PUBLIC);
    let (boot, boot_addr, _) = start(dir.path(), &net, policy, None);

    let key = Keypair::generate_ed25519();
    let rogue_id = key.public().to_peer_id();
    let mut rogue = rogue_swarm(key, &net);
    rogue.dial(listen_addrs(boot_addr)[1].clone()).unwrap();
    let announced = [a("/ip4/10.0.0.5/tcp/4001"), a("/ip4/198.51.100.5/tcp/4001")];
    let pex_entry = |addrs: &[Multiaddr]| PexEntry {
        node_id: Keypair::generate_ed25519().public().to_peer_id().to_bytes(),
        addrs: addrs
            .iter()
            .map(|a| serde_bytes::ByteBuf::from(a.to_vec()))
            .collect(),
        services: ServiceSet::from_types([ServiceType::Storage]),
        last_success_unix: 1,
    };
    let private_only = pex_entry(&[a("/ip4/192.168.1.7/tcp/4001"), a("/ip4/127.0.0.1/tcp/9")]);
    let public_addr = a("/ip4/203.0.113.7/tcp/4001");
    let mixed = pex_entry(&[a("/ip4/100.64.0.7/tcp/4001"), public_addr.clone()]);
    let private_id = PeerId::from_bytes(&private_only.node_id).unwrap();
    let mixed_id = PeerId::from_bytes(&mixed.node_id).unwrap();
    let mut served_private = false;
    let _ = drive(
        &mut rogue,
        &net,
        &announced,
        &[private_only, mixed],
        Duration::from_secs(6),
        |resp| {
            served_private |= resp.entries.iter().any(|e| {
                entry_addrs(e)
                    .iter()
                    .any(|a| !AddressPolicy::PUBLIC.admits(a))
            });
            false
        },
    )
    .await;
    assert!(!served_private, "a PEX answer held a private address");
    let peers = boot.peers().await.unwrap();
    for p in &peers {
        for addr in &p.addrs {
            assert!(
                AddressPolicy::PUBLIC.admits(addr),
                "stored private address {addr} of {}",
                p.peer_id
            );
        }
    }
    assert!(
        !peers.iter().any(|p| p.peer_id == private_id),
        "a peer with private addresses only was stored"
    );
    let m = peers
        .iter()
        .find(|p| p.peer_id == mixed_id)
        .expect("the PEX entry with a public address was learned");
    assert_eq!(m.addrs, [public_addr]);
    let r = peers
        .iter()
        .find(|p| p.peer_id == rogue_id)
        .expect("the rogue's announced public address was stored");
    assert_eq!(r.addrs, [a("/ip4/198.51.100.5/tcp/4001")]);
    assert_eq!(
        r.last_success, None,
        "an inbound peer's address was tried untested"
    );
}
