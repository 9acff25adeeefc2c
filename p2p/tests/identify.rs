//! Standard libp2p protocols on a real [`Node`] (issue 12 §1): a plain rust-libp2p swarm
//! that speaks only identify and ping — no DSDN handshake — connects to the node over TCP
//! and learns its agent version, listen addresses and protocols, and pings it.

use std::time::Duration;

use dsdn_p2p::node::listen_addrs;
use dsdn_p2p::{Node, NodeConfig};
use dsdn_protocols::{ServiceSet, ServiceType};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::swarm::{NetworkBehaviour, SwarmEvent};
use libp2p::{identify, ping, StreamProtocol};

mod common;
use common::{free_addr, net, tcp_swarm};

#[derive(NetworkBehaviour)]
#[behaviour(prelude = "libp2p::swarm::derive_prelude")]
struct Plain {
    identify: identify::Behaviour,
    ping: ping::Behaviour,
}

#[tokio::test]
async fn a_plain_libp2p_client_identifies_and_pings_a_node() {
    let dir = tempfile::tempdir().unwrap();
    let listen = free_addr("127.0.0.1");
    let cfg = NodeConfig {
        services: ServiceSet::from_types([ServiceType::Storage]),
        listen: vec![listen],
        ..NodeConfig::new(Keypair::generate_ed25519(), net(), dir.path())
    };
    let node_id = cfg.keypair.public().to_peer_id();
    let node = Node::start(cfg).unwrap();
    tokio::spawn(node.event_loop.run());

    let key = Keypair::generate_ed25519();
    let public = key.public();
    let mut client = tcp_swarm(
        key,
        Plain {
            identify: identify::Behaviour::new(identify::Config::new(
                "/other/1.0.0".into(),
                public,
            )),
            ping: ping::Behaviour::new(
                ping::Config::new().with_interval(Duration::from_millis(200)),
            ),
        },
    );
    let addr = listen_addrs(listen)
        .into_iter()
        .find(|a| a.to_string().contains("/tcp/"))
        .unwrap();
    client.dial(addr).unwrap();

    let mut info = None;
    let mut rtt = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while info.is_none() || rtt.is_none() {
        let event = tokio::time::timeout_at(deadline, client.select_next_some())
            .await
            .expect("no identify answer and ping from the node within 20 s");
        match event {
            SwarmEvent::Behaviour(PlainEvent::Identify(identify::Event::Received {
                peer_id,
                info: i,
                ..
            })) if peer_id == node_id => info = Some(i),
            SwarmEvent::Behaviour(PlainEvent::Ping(ping::Event {
                peer,
                result: Ok(d),
                ..
            })) if peer == node_id => rtt = Some(d),
            _ => {}
        }
    }
    let info = info.unwrap();
    assert_eq!(
        info.agent_version,
        format!("dsdnd/{}", env!("CARGO_PKG_VERSION"))
    );
    assert_eq!(info.protocol_version, "/dsdn/devnet/1.0.0");
    for p in [
        "/dsdn/handshake/1.0.0",
        "/dsdn/devnet/pex/1.0.0",
        "/dsdn/devnet/kad/1.0.0",
        "/ipfs/id/1.0.0",
        "/ipfs/ping/1.0.0",
    ] {
        assert!(
            info.protocols.contains(&StreamProtocol::new(p)),
            "{p} missing from {:?}",
            info.protocols
        );
    }
    assert!(
        info.listen_addrs
            .iter()
            .any(|a| a.to_string().starts_with("/ip4/127.0.0.1/tcp/")),
        "{:?}",
        info.listen_addrs
    );
    assert!(rtt.unwrap() < Duration::from_secs(5));
}
