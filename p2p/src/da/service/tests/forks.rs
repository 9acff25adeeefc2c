//! Fork evidence and publisher confirmation (issue 13 §4).

use super::*;
use dsdn_protocols::da::evidence::ForkEvidence;

/// The batch interval of the tests' DA config (`da(..)`).
const BATCH: Duration = Duration::from_millis(10);

/// The evidence files the service asked the event loop to write, written as it would.
fn persist(actions: &[DaAction]) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for a in actions {
        if let DaAction::PersistEvidence { path, bytes } = a {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
            out.push(path.clone());
        }
    }
    out
}

#[test]
fn a_follower_keeps_its_blob_and_stores_both_as_evidence() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(3);
    let other = Chain::build(3, |h| events(h, 7));
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=3);
    o.svc.take_actions();

    // A second, validly signed blob 2 (another branch), below the tip.
    assert_eq!(
        o.svc.on_gossip(peer(), other.blob(2)),
        MessageAcceptance::Accept,
        "forwarded so every node sees the fork"
    );
    let v = o.svc.view();
    assert_eq!(
        (v.height, v.tip_hash),
        (3, chain.hash(3)),
        "kept its own log"
    );
    let ev = o.svc.fork_evidence();
    assert_eq!(ev.len(), 1);
    assert_eq!(ev[0].height, 2);
    assert_eq!(ev[0].applied_hash, hex::encode(chain.hash(2)));
    assert_eq!(ev[0].conflicting_hash, hex::encode(other.hash(2)));
    let e = ForkEvidence::from_bytes(&hex::decode(&ev[0].evidence_cbor).unwrap()).unwrap();
    assert_eq!(
        e.verify(&net(), &auth()).unwrap(),
        (chain.hash(2), other.hash(2))
    );
    assert!(o.svc.fork_warning().is_some());
    assert!(o.svc.identity_clash().is_none(), "a follower seals nothing");
    let actions = o.svc.take_actions();
    assert!(
        penalized(&actions).is_empty(),
        "the relaying peer is not penalized"
    );
    let files = persist(&actions);
    assert_eq!(files.len(), 1);
    assert!(files[0].starts_with(dir.path().join("fork-evidence")));
    // The same conflicting blob again: known, not forwarded again, nothing new to write.
    assert_eq!(
        o.svc.on_gossip(peer(), other.blob(2)),
        MessageAcceptance::Ignore
    );
    assert!(persist(&o.svc.take_actions()).is_empty());

    // A conflict at the tip (3) too.
    assert_eq!(
        o.svc.on_gossip(peer(), other.blob(3)),
        MessageAcceptance::Accept
    );
    assert_eq!(o.svc.fork_evidence().len(), 2);
    persist(&o.svc.take_actions());

    // After a restart the evidence is loaded and verified; a file that is not evidence is
    // moved aside.
    std::fs::write(
        dir.path().join("fork-evidence/000000000009-bad.cbor"),
        b"junk",
    )
    .unwrap();
    drop(o);
    let o = open(dir.path());
    let heights: Vec<u64> = o.svc.fork_evidence().iter().map(|e| e.height).collect();
    assert_eq!(heights, vec![2, 3]);
    assert!(dir
        .path()
        .join("fork-evidence/000000000009-bad.cbor.corrupt")
        .exists());
}

#[test]
fn a_conflict_with_a_held_blob_is_evidence_too() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(3);
    let other = Chain::build(3, |h| events(h, 7));
    let mut o = open(dir.path());
    // Blob 3 is held (1 and 2 missing); another blob 3 arrives.
    assert_eq!(
        o.svc.on_gossip(peer(), chain.blob(3)),
        MessageAcceptance::Accept
    );
    assert_eq!(
        o.svc.on_gossip(peer(), other.blob(3)),
        MessageAcceptance::Accept
    );
    assert_eq!(o.svc.fork_evidence()[0].height, 3);
}

#[test]
fn the_publisher_is_answered_once_a_peer_holds_the_blob_and_told_when_another_does() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = Duration::ZERO), t0);
    let p = peer();
    a.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut a.svc, t0);
    a.svc
        .on_sync_response(p, &probes[0].1, SyncResponse::default(), t0);

    // Blob 1: the peer is behind at first (asked again after CONFIRM_RETRY), then holds it.
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + BATCH);
    a.svc.flush();
    let asks: Vec<(PeerId, SyncRequest)> = a
        .svc
        .take_actions()
        .into_iter()
        .filter_map(|a| match a {
            DaAction::Confirm(peer, r) => Some((peer, r)),
            _ => None,
        })
        .collect();
    assert_eq!(asks, vec![(p, SyncRequest { from: 1, count: 1 })]);
    let t = t0 + BATCH;
    a.svc
        .on_confirm_response(p, &asks[0].1, Some(SyncResponse::default()), t);
    assert!(
        rx.try_recv().is_err(),
        "answered before the peer held the blob"
    );
    assert_eq!(a.svc.next_deadline(t), Some(t + CONFIRM_RETRY));
    a.svc.poll(t + CONFIRM_RETRY);
    confirm_own(&mut a.svc, t + CONFIRM_RETRY);
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![1]);

    // Blob 2: the peer holds another validly signed blob 2 (a copy of this key sealed it).
    let t1 = t0 + Duration::from_secs(1);
    let prev = a.svc.view().tip_hash;
    let root = a.svc.view().state_root;
    let mut rx = publish(&mut a.svc, vec![chunk_event(2)], t1);
    a.svc.poll(t1 + BATCH);
    a.svc.flush();
    let theirs = DaBlob::sign(
        &auth_key(),
        &net(),
        2,
        prev,
        root,
        5_000,
        vec![chunk_event(99)],
    )
    .unwrap()
    .to_bytes()
    .unwrap();
    let request = SyncRequest { from: 2, count: 1 };
    a.svc.on_confirm_response(
        p,
        &request,
        Some(SyncResponse {
            tip: 2,
            blobs: vec![serde_bytes::ByteBuf::from(theirs)],
        }),
        t1,
    );
    match rx.try_recv() {
        Ok(Err(PublishError::Seal(e))) => assert!(e.contains("NOT published"), "{e}"),
        other => panic!("{other:?}"),
    }
    assert_eq!(a.svc.fork_evidence().len(), 1);
    assert!(a.svc.identity_clash().is_some(), "the sealer stops sealing");
}

#[test]
fn without_any_confirmation_the_publisher_gets_an_error_that_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = Duration::ZERO), t0);
    let p = peer();
    a.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut a.svc, t0);
    a.svc
        .on_sync_response(p, &probes[0].1, SyncResponse::default(), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + BATCH);
    a.svc.flush();
    a.svc.take_actions();
    a.svc.poll(t0 + BATCH);
    assert!(rx.try_recv().is_err());
    a.svc.poll(t0 + BATCH + CONFIRM_TIMEOUT);
    match rx.try_recv() {
        Ok(Err(PublishError::Seal(e))) => {
            assert!(e.contains("no DA peer confirmed"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // A lone node (no DA peer) is answered at once.
    let dir = tempfile::tempdir().unwrap();
    let mut lone = open_authority(dir.path(), da(|c| c.publish_grace = Duration::ZERO), t0);
    let mut rx = publish(&mut lone.svc, vec![chunk_event(1)], t0);
    lone.svc.poll(t0 + BATCH);
    lone.svc.flush();
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![1]);
}

#[test]
fn a_burst_of_sealed_blobs_is_confirmed_by_one_probe_of_the_highest() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(
        dir.path(),
        da(|c| {
            c.publish_grace = Duration::ZERO;
            c.batch_max_events = 1;
        }),
        t0,
    );
    let p = peer();
    a.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut a.svc, t0);
    a.svc
        .on_sync_response(p, &probes[0].1, SyncResponse::default(), t0);
    let mut rx = publish(&mut a.svc, (0..5).map(chunk_event).collect(), t0);
    a.svc.poll(t0 + BATCH);
    a.svc.flush();
    assert_eq!(a.svc.view().height, 5);
    let actions = a.svc.take_actions();
    let asked: Vec<u64> = actions
        .iter()
        .filter_map(|a| match a {
            DaAction::Confirm(_, r) => Some(r.from),
            _ => None,
        })
        .collect();
    // Every durable blob may start a probe as it becomes durable, but the answer comes
    // from the probe of the highest: it covers the blobs below it.
    assert_eq!(asked.last(), Some(&5), "{asked:?}");
    let bytes = a.svc.read_blob(5).unwrap();
    a.svc.on_confirm_response(
        p,
        &SyncRequest { from: 5, count: 1 },
        Some(SyncResponse {
            tip: 5,
            blobs: vec![serde_bytes::ByteBuf::from(bytes)],
        }),
        t0 + BATCH,
    );
    let published = rx.try_recv().unwrap().unwrap();
    assert_eq!(published.heights, vec![1, 2, 3, 4, 5]);
}
