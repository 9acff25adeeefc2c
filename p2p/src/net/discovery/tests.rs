//! Unit tests of the discovery component (pure parts, `now` passed in).

use super::*;
use libp2p::identity::Keypair;

fn metrics() -> DiscoveryMetrics {
    let m = crate::Metrics::new().unwrap();
    m.discovery()
}

fn discovery(services: ServiceSet, required: Vec<(ServiceType, usize)>) -> Discovery {
    let cfg = DiscoveryConfig {
        always_server: true,
        network: NetworkId::new("testnet").unwrap(),
        services,
        required_roles: required,
        light: false,
        record_ttl: Duration::from_secs(60),
        address_policy: AddressPolicy::PERMISSIVE,
    };
    Discovery::discovery(
        Keypair::generate_ed25519().public().to_peer_id(),
        cfg,
        metrics(),
    )
    .unwrap()
}

fn peer() -> PeerId {
    Keypair::generate_ed25519().public().to_peer_id()
}

fn addr() -> Multiaddr {
    "/ip4/127.0.0.1/tcp/4001".parse().unwrap()
}

fn kad() -> StreamProtocol {
    StreamProtocol::new("/dsdn/testnet/kad/1.0.0")
}

/// `p` identifies as a Kademlia server, then verifies with `services`.
fn join(d: &mut Discovery, p: PeerId, services: ServiceSet, now: Instant) -> bool {
    d.peer_identified(p, &[addr()], &[kad()]);
    d.peer_verified(p, services, now)
}

fn in_table(d: &mut Discovery, p: &PeerId) -> bool {
    d.inner
        .kbuckets()
        .any(|b| b.iter().any(|e| e.node.key.preimage() == p))
}

#[test]
fn only_verified_kademlia_servers_enter_the_routing_table() {
    let mut d = discovery(ServiceSet::EMPTY, Vec::new());
    let now = Instant::now();
    let (a, b, c) = (peer(), peer(), peer());
    // Identified first, verified later (or never).
    d.peer_identified(a, &[addr()], &[kad()]);
    assert!(!in_table(&mut d, &a), "in the table before its handshake");
    assert!(d.peer_verified(a, ServiceSet::EMPTY, now));
    assert!(in_table(&mut d, &a));
    // Verified first, identified later.
    assert!(d.peer_verified(b, ServiceSet::EMPTY, now));
    assert!(!in_table(&mut d, &b), "in the table without identify");
    d.peer_identified(b, &[addr()], &[kad()]);
    assert!(in_table(&mut d, &b));
    // A verified peer without our Kademlia protocol (a light client, another network's
    // kad) stays out; one that stops speaking it leaves.
    assert!(d.peer_verified(c, ServiceSet::EMPTY, now));
    let other = StreamProtocol::new("/dsdn/othernet/kad/1.0.0");
    d.peer_identified(c, &[addr()], &[other]);
    assert!(!in_table(&mut d, &c));
    d.peer_identified(b, &[addr()], &[]);
    assert!(!in_table(&mut d, &b));
    // Unusable addresses are not kept.
    let d2 = peer();
    let unspecified: Multiaddr = "/ip4/0.0.0.0/tcp/1".parse().unwrap();
    d.peer_identified(d2, &[unspecified], &[kad()]);
    assert!(d.peer_verified(d2, ServiceSet::EMPTY, now));
    assert!(!in_table(&mut d, &d2));
    d.peer_disconnected(&a);
    assert!(!in_table(&mut d, &a));
}

#[test]
fn a_public_network_keeps_private_identify_addresses_out_of_the_routing_table() {
    let mut d = discovery(ServiceSet::EMPTY, Vec::new());
    d.state.cfg.address_policy = AddressPolicy::PUBLIC;
    let now = Instant::now();
    let (private, public) = (peer(), peer());
    d.peer_identified(private, &[addr()], &[kad()]);
    assert!(d.peer_verified(private, ServiceSet::EMPTY, now));
    assert!(!in_table(&mut d, &private));
    let mixed: [Multiaddr; 2] = [
        "/ip4/10.0.0.1/tcp/4001".parse().unwrap(),
        "/ip4/198.51.100.1/tcp/4001".parse().unwrap(),
    ];
    d.peer_identified(public, &mixed, &[kad()]);
    assert_eq!(d.state.identified[&public], [mixed[1].clone()]);
    assert!(d.peer_verified(public, ServiceSet::EMPTY, now));
    assert!(in_table(&mut d, &public));
}

#[test]
fn service_keys_are_sha2_256_multihashes_of_the_key_string() {
    use sha2::{Digest, Sha256};
    let net = NetworkId::new("testnet").unwrap();
    let key = service_key(&net, ServiceType::Storage);
    let s = service_key_string(&net, ServiceType::Storage);
    assert_eq!(s, "/dsdn/testnet/service/storage");
    let mut want = vec![0x12, 0x20];
    want.extend_from_slice(&Sha256::digest(s.as_bytes()));
    assert_eq!(key.to_vec(), want);
    assert_ne!(key, service_key(&net, ServiceType::Coordinator));
}

#[test]
fn a_short_role_is_looked_up_with_a_doubling_pause() {
    let mut d = discovery(ServiceSet::EMPTY, vec![(ServiceType::Storage, 2)]);
    let t0 = Instant::now();
    // No peer in the routing table: nobody to ask.
    d.check_roles(|_| 0, t0);
    assert_eq!(d.lookups_in_flight(), 0);
    assert!(join(&mut d, peer(), ServiceSet::EMPTY, t0));
    d.check_roles(|_| 1, t0);
    assert_eq!(d.lookups_in_flight(), 1);
    assert_eq!(
        d.out.pop_front(),
        Some(DiscoveryEvent::RoleShort {
            service: ServiceType::Storage,
            deficit: 1
        })
    );
    // One lookup per type at a time; after it ends, the pause doubles.
    d.state.lookups.clear();
    d.check_roles(|_| 1, t0 + Duration::from_secs(1));
    assert_eq!(
        d.lookups_in_flight(),
        0,
        "started within the first 2 s pause"
    );
    d.check_roles(|_| 1, t0 + Duration::from_secs(2));
    assert_eq!(d.lookups_in_flight(), 1);
    d.state.lookups.clear();
    d.check_roles(|_| 1, t0 + Duration::from_secs(5));
    assert_eq!(
        d.lookups_in_flight(),
        0,
        "started within the doubled 4 s pause"
    );
    d.check_roles(|_| 1, t0 + Duration::from_secs(6));
    assert_eq!(d.lookups_in_flight(), 1);
    // Satisfied: the deficit is 0 and the pause is forgotten.
    d.state.lookups.clear();
    d.out.clear();
    d.check_roles(|_| 2, t0 + Duration::from_secs(7));
    assert_eq!(d.lookups_in_flight(), 0);
    assert!(d.out.is_empty());
    assert!(!d.state.next_lookup.contains_key(&ServiceType::Storage));
}

#[test]
fn a_provider_that_does_not_advertise_its_type_is_refused() {
    let mut d = discovery(ServiceSet::EMPTY, Vec::new());
    let now = Instant::now();
    let (liar, honest) = (peer(), peer());
    d.expect([liar, honest], ServiceType::Coordinator, now);
    assert!(!join(
        &mut d,
        liar,
        ServiceSet::from_types([ServiceType::Storage]),
        now
    ));
    assert!(join(
        &mut d,
        honest,
        ServiceSet::from_types([ServiceType::Coordinator]),
        now
    ));
    // Checked once: the same peer verifying again later is not judged again.
    assert!(join(&mut d, liar, ServiceSet::EMPTY, now));
    // Expectations of dials that never verified expire.
    let late = peer();
    d.expect([late], ServiceType::Coordinator, now);
    d.check_roles(|_| 0, now + EXPECT_FOR);
    assert!(join(&mut d, late, ServiceSet::EMPTY, now + EXPECT_FOR));
}

#[test]
fn records_are_pushed_at_the_first_peers_at_most_every_two_seconds() {
    let mut d = discovery(ServiceSet::from_types([ServiceType::Storage]), Vec::new());
    let t0 = Instant::now();
    join(&mut d, peer(), ServiceSet::EMPTY, t0);
    join(
        &mut d,
        peer(),
        ServiceSet::EMPTY,
        t0 + Duration::from_secs(1),
    );
    assert_eq!(d.state.provides, 1);
    for i in 1..20 {
        join(&mut d, peer(), ServiceSet::EMPTY, t0 + REPROVIDE_MIN * i);
    }
    assert_eq!(d.state.provides, EARLY_PROVIDES);
}
