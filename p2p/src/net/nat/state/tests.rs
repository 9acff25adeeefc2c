//! Unit tests of [`super::NatState`] (`now` passed in).

use super::*;

fn addr(s: &str) -> Multiaddr {
    s.parse().unwrap()
}

fn drain(s: &mut NatState) -> Vec<NatEvent> {
    std::iter::from_fn(|| s.pop_event()).collect()
}

#[test]
fn unknown_until_a_verdict_then_public_or_private() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 2, AddressPolicy::PERMISSIVE);
    assert_eq!(s.reachability(), Reachability::Unknown);
    s.on_probe(
        &addr("/ip4/203.0.113.1/tcp/4001"),
        false,
        t0 + Duration::from_secs(3),
    );
    assert_eq!(s.reachability(), Reachability::Private);
    assert_eq!(s.milestones().reachability_known_ms, Some(3000));
    s.on_confirmed(
        &addr("/ip4/203.0.113.1/udp/4001/quic-v1"),
        t0 + Duration::from_secs(4),
    );
    assert_eq!(s.reachability(), Reachability::Public);
    assert_eq!(
        drain(&mut s),
        vec![
            NatEvent::Reachability(Reachability::Private),
            NatEvent::Reachability(Reachability::Public)
        ]
    );
    // The milestone is the first verdict.
    assert_eq!(s.milestones().reachability_known_ms, Some(3000));
    // Expired: unknown until AutoNAT finds otherwise (the earlier failure is forgotten).
    s.on_expired(&addr("/ip4/203.0.113.1/udp/4001/quic-v1"), t0);
    assert_eq!(s.reachability(), Reachability::Unknown);
    s.on_probe(&addr("/ip4/203.0.113.1/tcp/4001"), false, t0);
    assert_eq!(s.reachability(), Reachability::Private);
}

#[test]
fn a_private_address_confirmed_on_a_public_network_is_withdrawn() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 2, AddressPolicy::PUBLIC);
    let lan = addr("/ip4/10.0.0.2/tcp/4001");
    s.on_confirmed(&lan, t0);
    assert_eq!(s.reachability(), Reachability::Unknown);
    assert_eq!(drain(&mut s), vec![NatEvent::Withdraw(lan)]);
}

#[test]
fn a_relayed_address_does_not_make_a_node_public() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 2, AddressPolicy::PERMISSIVE);
    let relay = PeerId::random();
    s.on_confirmed(&circuit_addr(&addr("/ip4/198.51.100.1/tcp/1"), relay), t0);
    assert_eq!(s.reachability(), Reachability::Unknown);
}

#[test]
fn a_private_node_reserves_on_up_to_max_relays_it_dialled() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 2, AddressPolicy::PERMISSIVE);
    let relays: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let hop = vec![RELAY_HOP_PROTOCOL.to_owned()];
    for (i, r) in relays.iter().enumerate() {
        s.on_connected(
            *r,
            Some(&addr(&format!("/ip4/198.51.100.{}/tcp/7", i + 1))),
            t0,
        );
        s.on_identified(*r, &hop, t0);
    }
    // A peer without the hop protocol, and one only connected inbound.
    let plain = PeerId::random();
    s.on_connected(plain, Some(&addr("/ip4/198.51.100.9/tcp/7")), t0);
    s.on_identified(plain, &["/ipfs/id/1.0.0".to_owned()], t0);
    let inbound = PeerId::random();
    s.on_connected(inbound, None, t0);
    s.on_identified(inbound, &hop, t0);
    assert!(drain(&mut s).is_empty(), "no reservation while unknown");

    s.on_probe(&addr("/ip4/203.0.113.1/tcp/4001"), false, t0);
    let ev = drain(&mut s);
    let reserves: Vec<&NatEvent> = ev
        .iter()
        .filter(|e| matches!(e, NatEvent::Reserve { .. }))
        .collect();
    assert_eq!(reserves.len(), 2, "{ev:?}");
    for e in reserves {
        let NatEvent::Reserve { relay, addr } = e else {
            unreachable!()
        };
        assert!(relays.contains(relay));
        assert!(is_relayed(addr));
        assert!(addr
            .to_string()
            .ends_with(&format!("/p2p/{relay}/p2p-circuit")));
    }

    // One relay leaves before its listener was reported: the third one is asked.
    let first = *s.reservations.keys().next().unwrap();
    s.on_disconnected(&first, t0);
    let ev = drain(&mut s);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert!(matches!(&ev[0], NatEvent::Reserve { relay, .. } if *relay != first));
}

#[test]
fn a_closed_reservation_listener_withdraws_its_address_and_reserves_again() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 1, AddressPolicy::PERMISSIVE);
    let (r1, r2) = (PeerId::random(), PeerId::random());
    let hop = vec![RELAY_HOP_PROTOCOL.to_owned()];
    s.on_connected(r1, Some(&addr("/ip4/198.51.100.1/tcp/7")), t0);
    s.on_identified(r1, &hop, t0);
    s.on_connected(r2, Some(&addr("/ip4/198.51.100.2/tcp/7")), t0);
    s.on_identified(r2, &hop, t0);
    s.on_probe(&addr("/ip4/203.0.113.1/tcp/4001"), false, t0);
    let ev = drain(&mut s);
    let Some(NatEvent::Reserve {
        relay,
        addr: listen,
    }) = ev
        .iter()
        .find(|e| matches!(e, NatEvent::Reserve { .. }))
        .cloned()
    else {
        panic!("{ev:?}")
    };
    let id = ListenerId::next();
    s.reservation_listener(relay, id);
    s.on_reservation_accepted(relay, t0 + Duration::from_millis(1500));
    assert_eq!(s.milestones().first_reservation_ms, Some(1500));
    s.on_new_listen_addr(&listen);
    assert_eq!(drain(&mut s), vec![NatEvent::Advertise(listen.clone())]);
    assert_eq!(s.reserved_relays().collect::<Vec<_>>(), vec![&relay]);

    s.on_listener_closed(id, std::slice::from_ref(&listen), t0);
    let ev = drain(&mut s);
    assert_eq!(ev[0], NatEvent::Withdraw(listen));
    assert!(matches!(&ev[1], NatEvent::Reserve { .. }), "{ev:?}");
}

#[test]
fn a_relay_that_ends_a_reservation_is_paused_doubling_and_not_asked_in_a_loop() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 1, AddressPolicy::PERMISSIVE);
    let relay = PeerId::random();
    s.on_connected(relay, Some(&addr("/ip4/198.51.100.1/tcp/7")), t0);
    s.on_identified(relay, &[RELAY_HOP_PROTOCOL.to_owned()], t0);
    s.on_probe(&addr("/ip4/203.0.113.1/tcp/4001"), false, t0);
    let reserves = |ev: &[NatEvent]| {
        ev.iter()
            .filter(|e| matches!(e, NatEvent::Reserve { .. }))
            .count()
    };
    assert_eq!(reserves(&drain(&mut s)), 1);
    // Refused at once (the listener closes without an accepted reservation): paused.
    let mut t = t0;
    for pause in [10, 20, 40] {
        let id = ListenerId::next();
        s.reservation_listener(relay, id);
        s.on_listener_closed(id, &[], t);
        assert_eq!(reserves(&drain(&mut s)), 0, "asked again at once");
        s.tick(t + Duration::from_secs(pause - 1));
        assert_eq!(reserves(&drain(&mut s)), 0, "asked before the pause ended");
        t += Duration::from_secs(pause);
        s.tick(t);
        assert_eq!(reserves(&drain(&mut s)), 1, "not asked after {pause} s");
    }
}

#[test]
fn becoming_public_asks_no_more_reservations_and_failures_are_forgotten() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 2, AddressPolicy::PERMISSIVE);
    let relay = PeerId::random();
    s.on_connected(relay, Some(&addr("/ip4/198.51.100.1/tcp/7")), t0);
    s.on_identified(relay, &[RELAY_HOP_PROTOCOL.to_owned()], t0);
    s.on_probe(&addr("/ip4/203.0.113.1/tcp/4001"), false, t0);
    drain(&mut s);
    let id = ListenerId::next();
    s.reservation_listener(relay, id);
    s.on_reservation_accepted(relay, t0);
    let public = addr("/ip4/203.0.113.1/udp/4001/quic-v1");
    s.on_confirmed(&public, t0);
    let other = PeerId::random();
    s.on_connected(other, Some(&addr("/ip4/198.51.100.2/tcp/7")), t0);
    s.on_identified(other, &[RELAY_HOP_PROTOCOL.to_owned()], t0);
    let ev = drain(&mut s);
    assert!(
        !ev.iter().any(|e| matches!(e, NatEvent::Reserve { .. })),
        "{ev:?}"
    );
    // The old failure does not make the node private again when the address expires.
    s.on_expired(&public, t0);
    assert_eq!(s.reachability(), Reachability::Unknown);
}

#[test]
fn refuted_candidates_and_identify_answers_stay_bounded() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 2, AddressPolicy::PERMISSIVE);
    for port in 1..=1000u16 {
        s.on_probe(&addr(&format!("/ip4/203.0.113.1/tcp/{port}")), false, t0);
    }
    assert_eq!(s.refuted.len(), MAX_REFUTED);
    // identify of a peer that is no longer (or never was) connected is ignored.
    for _ in 0..100 {
        s.on_identified(PeerId::random(), &[RELAY_HOP_PROTOCOL.to_owned()], t0);
    }
    assert!(s.relays_without_addr.is_empty() && s.relays.is_empty());
}

#[test]
fn dcutr_outcomes_are_counted_and_the_first_success_timed() {
    let t0 = Instant::now();
    let mut s = NatState::new(t0, 1, AddressPolicy::PERMISSIVE);
    s.on_dcutr(false, t0);
    s.on_dcutr(true, t0 + Duration::from_millis(2500));
    s.on_dcutr(true, t0 + Duration::from_secs(9));
    assert_eq!(s.counters().dcutr_ok, 2);
    assert_eq!(s.counters().dcutr_failed, 1);
    assert_eq!(s.milestones().first_direct_upgrade_ms, Some(2500));
}
