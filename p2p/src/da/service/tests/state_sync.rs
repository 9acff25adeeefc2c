//! The service held for a state sync: it applies and asks for nothing while the driver
//! restores the log, then follows from the checkpoint + 1 to the same roots.

use dsdn_protocols::da::state::StateHeader;
use dsdn_protocols::da::state_sync::{StateChunkResponse, StateRestore};

use super::*;

#[test]
fn a_held_service_asks_for_nothing_then_follows_from_the_restored_base() {
    let (src_dir, dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let chain = Chain::new(20);
    let t0 = Instant::now();
    let p = peer();
    // A full node with 20 blobs, durable.
    let mut src = open(src_dir.path());
    src.svc.peer_connected(p, t0);
    let probe = sync_actions(&mut src.svc, t0);
    src.svc
        .on_sync_response(p, &probe[0].1, response(&chain, 20, 1..=20), t0);
    src.svc.flush();
    assert_eq!(src.svc.view().height, 20);
    assert!(
        src.svc.hold_for_state_sync().is_none(),
        "a log that is not empty is not held"
    );
    let source = src.svc.log_store().unwrap();

    // A new node, held: gossip is not applied, nothing is asked.
    let mut o = open(dir.path());
    let store = o.svc.hold_for_state_sync().unwrap();
    o.svc.peer_connected(p, t0);
    assert!(sync_actions(&mut o.svc, t0).is_empty());
    assert_eq!(o.svc.on_gossip(p, chain.blob(1)), MessageAcceptance::Ignore);
    assert_eq!(o.svc.view().height, 0);

    // The driver restores the state at 15 (blob 16 commits to it).
    let cp = StateHeader {
        height: 15,
        tip_hash: Bytes32(chain.hash(15)),
        root: Bytes32(chain.root(15)),
        ..StateHeader::genesis()
    };
    let mut r = StateRestore::new(cp).unwrap();
    store.restore_begin().unwrap();
    while let Some(request) = r.next_request(4) {
        let StateChunkResponse::Chunk(chunk) = source.state_chunk(&request) else {
            panic!("no chunk at 15");
        };
        store.restore_part(15, &r.add(&chunk).unwrap()).unwrap();
    }
    store.restore_finish(&r.header()).unwrap();
    o.svc.state_sync_done(true);
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (15, chain.root(15)));

    // Backfill from 16, never below, to the same root.
    let next = sync_actions(&mut o.svc, t0);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].1.from, 16);
    o.svc
        .on_sync_response(p, &next[0].1, response(&chain, 20, 16..=20), t0);
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (20, chain.root(20)));
}

#[test]
fn a_failed_state_sync_replays_from_height_1() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(5);
    let t0 = Instant::now();
    let p = peer();
    let mut o = open(dir.path());
    assert!(o.svc.hold_for_state_sync().is_some());
    o.svc.peer_connected(p, t0);
    assert!(sync_actions(&mut o.svc, t0).is_empty());
    o.svc.state_sync_done(false);
    let probe = sync_actions(&mut o.svc, t0);
    assert_eq!(probe[0].1.from, 1);
    o.svc
        .on_sync_response(p, &probe[0].1, response(&chain, 5, 1..=5), t0);
    assert_eq!(o.svc.view().height, 5);
}
