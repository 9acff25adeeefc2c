//! Backfill responses and the bounds of served ranges.

use super::*;

// ---- backfill -------------------------------------------------------------------------

#[test]
fn a_sync_response_is_applied_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(100);
    let t0 = Instant::now();
    let mut o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        da(|c| c.sync_chunk_blobs = 40),
        t0,
    );
    let p = peer();
    o.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut o.svc, t0);
    assert_eq!(probes, vec![(p, SyncRequest { from: 1, count: 40 })]);
    o.svc
        .on_sync_response(p, &probes[0].1, response(&chain, 100, 1..=40), t0);
    assert_eq!(o.svc.view().height, 40);
    assert_eq!(o.svc.view().target_height, 100);
    assert_eq!(sync_requests(&o.metrics, "ok"), 1);
    assert_eq!(o.metrics.da_sync_blobs_received.get(), 40);
    // The rest is asked in chunks.
    let next = sync_actions(&mut o.svc, t0);
    assert_eq!(
        next,
        vec![(
            p,
            SyncRequest {
                from: 41,
                count: 40
            }
        )]
    );
}

#[test]
fn an_invalid_blob_in_a_sync_response_penalises_the_peer_and_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(8);
    let t0 = Instant::now();
    let mut o = open(dir.path());
    let (p1, p2, p3) = (peer(), peer(), peer());
    let req = SyncRequest { from: 1, count: 5 };

    // Bad signature at height 3: 1 and 2 are kept.
    let mut r = response(&chain, 8, 1..=2);
    r.blobs.push(serde_bytes::ByteBuf::from(chain.forged(3)));
    r.blobs.extend(response(&chain, 8, 4..=5).blobs);
    o.svc.on_sync_response(p1, &req, r, t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p1]);
    assert_eq!(rejected(&o.metrics, "bad_signature"), 1);
    let v = o.svc.view();
    assert_eq!((v.height, v.pending), (2, 0));

    // A blob breaking the chain.
    let req = SyncRequest { from: 3, count: 2 };
    let mut r = response(&chain, 8, []);
    r.blobs.push(serde_bytes::ByteBuf::from(chain.unlinked(3)));
    o.svc.on_sync_response(p2, &req, r, t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p2]);
    assert_eq!(rejected(&o.metrics, "prev_hash_mismatch"), 1);

    // Valid blobs at heights other than the ones asked for.
    o.svc
        .on_sync_response(p3, &req, response(&chain, 8, 4..=5), t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p3]);
    assert_eq!(rejected(&o.metrics, "wrong_height"), 1);

    // More blobs than asked for (fails SyncResponse::validated).
    let p4 = peer();
    o.svc
        .on_sync_response(p4, &req, response(&chain, 8, 3..=5), t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p4]);
    assert_eq!(rejected(&o.metrics, "malformed"), 1);

    assert_eq!(sync_requests(&o.metrics, "invalid"), 4);
    assert_eq!(o.svc.view().height, 2);
    assert_eq!(o.svc.blobs(1, 64).len(), 2, "nothing invalid was stored");
    // An honest answer still completes the log.
    let p5 = peer();
    o.svc.on_sync_response(
        p5,
        &SyncRequest { from: 3, count: 6 },
        response(&chain, 8, 3..=8),
        t0,
    );
    assert!(penalized(&o.svc.take_actions()).is_empty());
    assert_eq!(o.svc.view().state_root, chain.root(8));
}

#[test]
fn a_stalled_request_is_counted_and_moved_to_another_peer() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let timeout = Duration::from_secs(2);
    let mut o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        da(|c| c.sync_request_timeout = timeout),
        t0,
    );
    let (slow, fast) = (peer(), peer());
    o.svc.peer_connected(slow, t0);
    let first = sync_actions(&mut o.svc, t0);
    assert_eq!(first, vec![(slow, SyncRequest { from: 1, count: 64 })]);
    o.svc.peer_connected(fast, t0);
    let second = sync_actions(&mut o.svc, t0);
    assert_eq!(
        second,
        vec![(
            fast,
            SyncRequest {
                from: 65,
                count: 64
            }
        )]
    );
    // The fast peer answers; its blobs are held behind the slow peer's range.
    let chain = Chain::new(100);
    o.svc
        .on_sync_response(fast, &second[0].1, response(&chain, 100, 65..=100), t0);
    assert_eq!(o.svc.view().pending, 36);
    assert!(
        sync_actions(&mut o.svc, t0).is_empty(),
        "nothing else to ask"
    );
    assert_eq!(sync_requests(&o.metrics, "stalled"), 0);
    let later = sync_actions(&mut o.svc, t0 + timeout);
    assert_eq!(sync_requests(&o.metrics, "stalled"), 1);
    assert_eq!(later, vec![(fast, SyncRequest { from: 1, count: 64 })]);
    o.svc.on_sync_response(
        fast,
        &later[0].1,
        response(&chain, 100, 1..=64),
        t0 + timeout,
    );
    let v = o.svc.view();
    assert_eq!((v.height, v.pending, v.synced), (100, 0, true));
    assert_eq!(v.state_root, chain.root(100));
    // A failed request (the stream broke) is counted apart.
    o.svc
        .on_sync_failure(slow, &SyncRequest { from: 1, count: 64 }, t0 + timeout);
    assert_eq!(sync_requests(&o.metrics, "failed"), 1);
}

// ---- serving ranges -------------------------------------------------------------------

#[test]
fn served_ranges_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(100);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=100);
    let serve = |from, count| o.svc.serve_sync(&SyncRequest { from, count });

    let r = serve(1, 1000);
    assert_eq!((r.tip, r.blobs.len()), (100, MAX_SYNC_BLOBS as usize));
    assert!(r
        .blobs
        .iter()
        .zip(&chain.encoded)
        .all(|(a, b)| a.as_ref() == b.as_slice()));
    let r = serve(90, 64);
    assert_eq!(r.blobs.len(), 11);
    assert_eq!(r.blobs[0].as_ref(), chain.blob(90));
    for (from, count) in [(101, 5), (u64::MAX, 64), (0, 5), (1, 0)] {
        let r = serve(from, count);
        assert_eq!(
            (r.tip, r.blobs.len()),
            (100, 0),
            "from {from} count {count}"
        );
    }
    assert_eq!(o.metrics.da_sync_blobs_served.get(), 64 + 11);
}

#[test]
fn served_ranges_stay_under_the_response_cap() {
    // Blobs of about 200 KB: 24 of them exceed the 4 MiB response payload.
    let big = |h: u64| -> Vec<DaEvent> {
        (0..640)
            .map(|i| DaEvent::NodeRegistered {
                node_id: format!("{h:08}-{i:04}-{}", "n".repeat(110)),
                zone: "z".repeat(128),
                capacity_bytes: u64::MAX,
                class: "datacenter".into(),
            })
            .collect()
    };
    let chain = Chain::build(24, big);
    let total: usize = chain.encoded.iter().map(Vec::len).sum();
    assert!(total > MAX_SYNC_PAYLOAD_BYTES, "{total}");
    let dir = tempfile::tempdir().unwrap();
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=24);
    let req = SyncRequest { from: 1, count: 64 };
    let r = o.svc.serve_sync(&req);
    let bytes: usize = r.blobs.iter().map(|b| b.len()).sum();
    assert!(
        !r.blobs.is_empty() && r.blobs.len() < 24,
        "{}",
        r.blobs.len()
    );
    assert!(bytes <= MAX_SYNC_PAYLOAD_BYTES, "{bytes}");
    // The next blob would not have fitted, and the whole answer encodes under the cap.
    assert!(bytes + chain.blob(r.blobs.len() as u64 + 1).len() > MAX_SYNC_PAYLOAD_BYTES);
    assert!(r.to_bytes().is_ok());
    let n = r.blobs.len();
    let r = r.validated(&req).unwrap();
    assert_eq!(r.blobs.len(), n);
    // A requester applies it.
    let dir2 = tempfile::tempdir().unwrap();
    let mut j = open(dir2.path());
    j.svc.on_sync_response(peer(), &req, r, Instant::now());
    assert_eq!(j.svc.view().height, n as u64);
    assert_eq!(j.svc.view().state_root, chain.root(n as u64));
}
