//! Publishing and sealing on the DA authority.

use super::*;

// ---- publishing -----------------------------------------------------------------------

#[test]
fn publish_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = open(dir.path());
    let mut rx = publish(&mut o.svc, vec![chunk_event(1)], Instant::now());
    assert!(matches!(rx.try_recv(), Ok(Err(PublishError::NotAuthority(n))) if n == "devnet"));
    assert!(!o.svc.is_authority());

    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut a = open_authority(dir.path(), da(|_| {}), now);
    assert!(a.svc.is_authority());
    let mut rx = publish(&mut a.svc, vec![], now);
    assert!(matches!(rx.try_recv(), Ok(Err(PublishError::Empty))));
    let bad = DaEvent::NodeRegistered {
        node_id: "n".into(),
        zone: "z".into(),
        capacity_bytes: 1,
        class: "mainframe".into(),
    };
    let mut rx = publish(&mut a.svc, vec![chunk_event(1), bad], now);
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(PublishError::Invalid { index: 1, .. }))
    ));
    assert_eq!(
        a.svc.view().queued_events,
        0,
        "a refused request queues nothing"
    );

    // Issue 14 §6: a node_id must be a PeerId to be sealed; the error names the field.
    for bad in [
        DaEvent::ReplicaAdded {
            chunk_id: Bytes32([1; 32]),
            node_id: "12D3KooWnotreally".into(),
        },
        DaEvent::NodeRegistered {
            node_id: "12D3KooWnotreally".into(),
            zone: "z".into(),
            capacity_bytes: 1,
            class: "regular".into(),
        },
    ] {
        let mut rx = publish(&mut a.svc, vec![chunk_event(1), bad], now);
        match rx.try_recv() {
            Ok(Err(e @ PublishError::Invalid { index: 1, .. })) => assert!(
                e.to_string()
                    .contains("node_id \"12D3KooWnotreally\" is not a PeerId"),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(a.svc.view().queued_events, 0);

    // The queue holds MAX_QUEUED_EVENTS events; one more is refused.
    let all: Vec<DaEvent> = (0..MAX_QUEUED_EVENTS as u64).map(chunk_event).collect();
    let mut rx_full = publish(&mut a.svc, all, now);
    assert!(rx_full.try_recv().is_err(), "queued, not answered yet");
    assert_eq!(a.svc.view().queued_events, MAX_QUEUED_EVENTS);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], now);
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(PublishError::QueueFull { queued })) if queued == MAX_QUEUED_EVENTS
    ));
}

#[test]
fn sealing_waits_for_the_publish_grace_when_no_peer_answered() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let grace = Duration::from_secs(5);
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = grace), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1), chunk_event(2)], t0);
    a.svc.poll(t0 + Duration::from_secs(1));
    assert_eq!(a.svc.view().height, 0, "sealed during the start grace");
    assert!(rx.try_recv().is_err());
    assert!(gossiped(&a.svc.take_actions()).is_empty());
    // During the grace the batch sets no deadline (the housekeeping tick polls again).
    assert_eq!(a.svc.next_deadline(t0 + Duration::from_secs(1)), None);

    a.svc.poll(t0 + grace);
    // Answered once the blob is durable (the writer thread commits it).
    a.svc.flush();
    let published = rx.try_recv().unwrap().unwrap();
    assert_eq!((published.events, published.heights), (2, vec![1]));
    let blobs = gossiped(&a.svc.take_actions());
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].height(), 1);
    assert_eq!(blobs[0].blob().events, vec![chunk_event(1), chunk_event(2)]);
    let v = a.svc.view();
    assert_eq!((v.height, v.tip_hash, v.chunks), (1, blobs[0].hash(), 2));
    assert_eq!(*a.height.borrow(), 1);
    assert_eq!(a.metrics.da_blobs_published.get(), 1);
    // Sealed blobs are stored like any other.
    assert_eq!(a.svc.blobs(1, 1)[0], *blobs[0].blob());
}

#[test]
fn an_answered_probe_lets_the_authority_seal_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(
        dir.path(),
        da(|c| c.publish_grace = Duration::from_secs(60)),
        t0,
    );
    let p = peer();
    a.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut a.svc, t0);
    assert_eq!(probes, vec![(p, SyncRequest { from: 1, count: 64 })]);
    a.svc
        .on_sync_response(p, &probes[0].1, SyncResponse::default(), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + Duration::from_millis(10));
    a.svc.flush();
    // Answered once the connected peer confirms it holds the blob (issue 13 §4).
    assert!(rx.try_recv().is_err(), "answered before the peer confirmed");
    confirm_own(&mut a.svc, t0 + Duration::from_millis(10));
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![1]);
}

#[test]
fn the_authority_does_not_seal_while_a_peer_reports_a_higher_tip() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(3);
    let t0 = Instant::now();
    let mut a = open_authority(
        dir.path(),
        da(|c| c.publish_grace = Duration::from_secs(1)),
        t0,
    );
    let p = peer();
    a.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut a.svc, t0);
    assert_eq!(probes.len(), 1);
    // The peer has blobs 1..=3 and proves it with the first one (a claimed tip without a
    // delivered blob is not believed).
    a.svc
        .on_sync_response(p, &probes[0].1, response(&chain, 3, 1..=1), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    let later = t0 + Duration::from_secs(30);
    a.svc.poll(later);
    let v = a.svc.view();
    assert_eq!(v.height, 1, "the authority forked its own log");
    assert_eq!(v.target_height, 3);
    assert!(!v.synced);
    assert!(rx.try_recv().is_err());
    assert!(gossiped(&a.svc.take_actions()).is_empty());

    // Once it has caught up, the queued event is sealed on top of the peer's blobs.
    let req = SyncRequest { from: 2, count: 2 };
    a.svc
        .on_sync_response(p, &req, response(&chain, 3, 2..=3), later);
    assert_eq!(a.svc.view().height, 3);
    a.svc.poll(later);
    a.svc.flush();
    let actions = confirm_own(&mut a.svc, later);
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![4]);
    let blobs = gossiped(&actions);
    assert_eq!(blobs.len(), 1);
    assert_eq!(
        (blobs[0].height(), blobs[0].prev_hash()),
        (4, chain.hash(3))
    );
}

#[test]
fn a_publish_spanning_several_blobs_is_answered_with_every_height() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(
        dir.path(),
        da(|c| {
            c.batch_max_events = 2;
            c.publish_grace = Duration::ZERO;
        }),
        t0,
    );
    let mut rx = publish(&mut a.svc, (0..5).map(chunk_event).collect(), t0);
    // Full batches are sealed at once; the remainder waits for batch_interval.
    a.svc.poll(t0);
    assert_eq!(a.svc.view().height, 2);
    a.svc.flush();
    assert!(
        rx.try_recv().is_err(),
        "answered before all events were sealed"
    );
    a.svc.poll(t0 + Duration::from_millis(10));
    a.svc.flush();
    let published = rx.try_recv().unwrap().unwrap();
    assert_eq!((published.events, published.heights), (5, vec![1, 2, 3]));
    // Two requests sharing a blob both get its height.
    let t1 = t0 + Duration::from_secs(1);
    let mut rx1 = publish(&mut a.svc, vec![chunk_event(7)], t1);
    let mut rx2 = publish(&mut a.svc, vec![chunk_event(8)], t1);
    a.svc.poll(t1);
    a.svc.flush();
    assert_eq!(rx1.try_recv().unwrap().unwrap().heights, vec![4]);
    assert_eq!(rx2.try_recv().unwrap().unwrap().heights, vec![4]);
    let heights: Vec<u64> = gossiped(&a.svc.take_actions())
        .iter()
        .map(VerifiedBlob::height)
        .collect();
    assert_eq!(heights, vec![1, 2, 3, 4]);
    assert_eq!(a.svc.view().queued_events, 0);
}

// ---- identity clash (issue 14 §4) -------------------------------------------------------

/// A second process with the authority's key seals its own blob 1: the original sees a blob
/// of its own key at its tip with another hash, stops sealing and fails what waits.
#[test]
fn a_blob_of_our_key_that_we_did_not_seal_halts_sealing() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let grace = Duration::from_secs(1);
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = grace), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + grace);
    a.svc.flush();
    assert!(rx.try_recv().unwrap().is_ok());
    assert_eq!(a.svc.identity_clash(), None);
    // The original's own blob coming back is no clash.
    let own = gossiped(&a.svc.take_actions());
    assert_eq!(
        a.svc.on_gossip(peer(), own[0].encoded()),
        MessageAcceptance::Ignore
    );
    assert_eq!(a.svc.identity_clash(), None);

    // The copy's blob 1: same key, other events.
    let theirs = DaBlob::sign(
        &auth_key(),
        &net(),
        1,
        [0; 32],
        empty_root(),
        5,
        vec![chunk_event(99)],
    )
    .unwrap()
    .to_bytes()
    .unwrap();
    let queued = publish(&mut a.svc, vec![chunk_event(2)], t0 + grace);
    let verdict = a.svc.on_gossip(peer(), &theirs);
    assert_eq!(
        verdict,
        MessageAcceptance::Accept,
        "not the relaying peer's fault: forwarded so every node sees the fork"
    );
    assert!(a.svc.identity_clash().unwrap().contains("height 1"));
    // Both blobs are kept as evidence that anyone can verify (issue 13 §4).
    let evidence = a.svc.fork_evidence();
    assert_eq!(evidence.len(), 1);
    assert_eq!(evidence[0].height, 1);
    let e = dsdn_protocols::da::evidence::ForkEvidence::from_bytes(
        &hex::decode(&evidence[0].evidence_cbor).unwrap(),
    )
    .unwrap();
    assert_eq!(e.verify(&net(), &auth()).unwrap().1, evidence_hash(&theirs));
    assert!(a
        .svc
        .fork_warning()
        .unwrap()
        .contains("FORK at height(s) [1]"));
    // Seen again (another peer relays it): nothing new, not forwarded again.
    assert_eq!(a.svc.on_gossip(peer(), &theirs), MessageAcceptance::Ignore);
    assert_eq!(a.svc.fork_evidence().len(), 1);
    assert_eq!(
        a.metrics
            .identity_clash
            .with_label_values(&["da_authority"])
            .get(),
        1
    );
    // What waited to be sealed fails; new publications are refused; nothing is sealed.
    let mut queued = queued;
    assert!(
        matches!(queued.try_recv(), Ok(Err(PublishError::Seal(e))) if e.contains("identity clash"))
    );
    let mut rx = publish(&mut a.svc, vec![chunk_event(3)], t0 + grace);
    assert!(matches!(rx.try_recv(), Ok(Err(PublishError::Halted(_)))));
    a.svc.poll(t0 + grace * 10);
    assert_eq!(a.svc.view().height, 1);
    // Only the two blobs of the evidence go on gossip (so every node finds the fork);
    // nothing new is sealed.
    assert!(gossiped(&a.svc.take_actions())
        .iter()
        .all(|b| b.height() == 1));
}

fn evidence_hash(bytes: &[u8]) -> [u8; 32] {
    DaBlob::decode_verified(bytes, &net(), &auth())
        .unwrap()
        .hash()
}

/// Before it sealed anything in this run, a blob of its key beyond its tip may be one it
/// sealed before a crash: applied, no clash.
#[test]
fn a_blob_beyond_the_tip_before_the_first_seal_is_no_clash() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(dir.path(), da(|_| {}), t0);
    let chain = Chain::new(1);
    assert_eq!(
        a.svc.on_gossip(peer(), chain.blob(1)),
        MessageAcceptance::Accept
    );
    assert_eq!(a.svc.identity_clash(), None);
    assert_eq!(a.svc.view().height, 1);
}
