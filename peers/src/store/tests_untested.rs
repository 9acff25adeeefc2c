//! Tests of new and tried addresses and of the address policy in the store.

use dsdn_protocols::{AddressPolicy, PeerSource, ServiceSet};
use multiaddr::Multiaddr;

use super::tests_ops::{store, HOUR, NOW};
use super::*;
use crate::record::tests::{net, peer};

fn a(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn public_store() -> (tempfile::TempDir, PeerStore) {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = PeerStore::open(&dir.path().join("peers.dat"), &net()).unwrap();
    (dir, s.with_address_policy(AddressPolicy::PUBLIC))
}

#[test]
fn announced_addresses_are_stored_untested_and_never_shared() {
    let (_d, s) = store();
    let inbound = peer(1);
    let announced = [a("/ip4/198.51.100.1/tcp/4001")];
    assert!(s
        .record_untested(inbound, &announced, ServiceSet::EMPTY, NOW)
        .unwrap());
    let r = s.get(&inbound).unwrap().unwrap();
    assert_eq!(r.addrs, announced);
    assert_eq!(r.last_success, None);
    assert_eq!(r.success_count, 0);
    assert_eq!(r.source, PeerSource::Inbound);
    assert!(s
        .pex_entries(NOW, &peer(9), ServiceSet::EMPTY, 100)
        .unwrap()
        .is_empty());
    assert_eq!(s.untested_addrs(&inbound, &announced).unwrap(), announced);
    // Announcing again replaces untested addresses.
    let other = [a("/ip4/198.51.100.2/tcp/4001")];
    assert!(s
        .record_untested(inbound, &other, ServiceSet::EMPTY, NOW + 1)
        .unwrap());
    assert_eq!(s.get(&inbound).unwrap().unwrap().addrs, other);
}

#[test]
fn a_tested_address_is_tried_and_shared() {
    let (_d, s) = store();
    let p = peer(1);
    let announced = [a("/ip4/198.51.100.1/tcp/4001")];
    s.record_untested(p, &announced, ServiceSet::EMPTY, NOW)
        .unwrap();
    // The address test reached it.
    s.record_success(
        p,
        &announced,
        ServiceSet::EMPTY,
        PeerSource::Inbound,
        NOW + 1,
    )
    .unwrap();
    let shared = s
        .pex_entries(NOW + 2, &peer(9), ServiceSet::EMPTY, 100)
        .unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].addrs, announced);
    assert!(s.untested_addrs(&p, &announced).unwrap().is_empty());
}

#[test]
fn announced_addresses_never_replace_tried_ones() {
    let (_d, s) = store();
    let p = peer(1);
    let tried = [a("/ip4/198.51.100.1/tcp/4001")];
    s.record_success(p, &tried, ServiceSet::EMPTY, PeerSource::PeerExchange, NOW)
        .unwrap();
    let before = s.get(&p).unwrap().unwrap();
    // The same peer dials in and announces someone else's address.
    let lie = [a("/ip4/203.0.113.9/tcp/4001")];
    assert!(!s
        .record_untested(p, &lie, ServiceSet::EMPTY, NOW + HOUR)
        .unwrap());
    assert_eq!(s.get(&p).unwrap().unwrap(), before);
    assert_eq!(s.untested_addrs(&p, &lie).unwrap(), lie);
    let shared = s
        .pex_entries(NOW + HOUR, &peer(9), ServiceSet::EMPTY, 100)
        .unwrap();
    assert_eq!(shared[0].addrs, tried);
}

#[test]
fn a_public_network_stores_and_shares_no_private_address() {
    let (_d, s) = public_store();
    let private = [a("/ip4/10.0.0.1/tcp/4001"), a("/ip4/127.0.0.1/tcp/4001")];
    let public = a("/ip4/203.0.113.1/tcp/4001");
    // Nothing admitted: nothing stored.
    assert!(!s
        .record_untested(peer(1), &private, ServiceSet::EMPTY, NOW)
        .unwrap());
    assert!(!s
        .learn(
            peer(2),
            &private,
            ServiceSet::EMPTY,
            PeerSource::PeerExchange,
            NOW
        )
        .unwrap());
    assert!(s.untested_addrs(&peer(1), &private).unwrap().is_empty());
    assert_eq!(s.len(), 0);
    // Mixed: only the public address is kept.
    let mixed = [private[0].clone(), public.clone()];
    s.record_success(
        peer(3),
        &mixed,
        ServiceSet::EMPTY,
        PeerSource::StaticConfig,
        NOW,
    )
    .unwrap();
    assert_eq!(s.get(&peer(3)).unwrap().unwrap().addrs, [public]);
}

#[test]
fn pex_answers_drop_private_addresses_written_before_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    {
        let (s, _) = PeerStore::open(&path, &net()).unwrap();
        let private = a("/ip4/192.168.1.1/tcp/4001");
        let public = a("/ip4/198.51.100.1/tcp/4001");
        s.record_success(
            peer(1),
            std::slice::from_ref(&private),
            ServiceSet::EMPTY,
            PeerSource::Inbound,
            NOW,
        )
        .unwrap();
        s.record_success(
            peer(2),
            &[private, public],
            ServiceSet::EMPTY,
            PeerSource::Inbound,
            NOW,
        )
        .unwrap();
        assert_eq!(
            s.pex_entries(NOW, &peer(9), ServiceSet::EMPTY, 100)
                .unwrap()
                .len(),
            2
        );
        s.flush().unwrap();
    }
    let (s, _) = PeerStore::open(&path, &net()).unwrap();
    let s = s.with_address_policy(AddressPolicy::PUBLIC);
    let shared = s
        .pex_entries(NOW, &peer(9), ServiceSet::EMPTY, 100)
        .unwrap();
    assert_eq!(shared.len(), 1);
    assert_eq!(shared[0].peer_id, peer(2));
    assert_eq!(shared[0].addrs, [a("/ip4/198.51.100.1/tcp/4001")]);
}
