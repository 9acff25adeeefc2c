//! Opening and replay: snapshots, corrupt and mismatching files, blobs that fail re-verification.

use super::*;

// ---- open and replay ------------------------------------------------------------------

#[test]
fn a_reopened_log_replays_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(20);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=20);
    let before = o.svc.view();
    assert_eq!((before.height, before.state_root), (20, chain.root(20)));
    assert_eq!(*o.height.borrow(), 20);
    assert_eq!(before.events, 60);
    assert_eq!((before.nodes, before.chunks, before.replicas), (20, 20, 20));
    drop(o);

    let o = open(dir.path());
    let after = o.svc.view();
    assert_eq!(after.height, 20);
    assert_eq!(after.tip_hash, chain.hash(20));
    assert_eq!(after.state_root, before.state_root);
    assert_eq!(after.events, before.events);
    assert_eq!(*o.height.borrow(), 20);
    assert_eq!(o.metrics.da_height.get(), 20);
    assert_eq!(o.metrics.da_events_accepted.get(), 60);
    // The snapshot interval (1000) was not reached: the state came from the log alone.
    assert_eq!(snapshot_height(dir.path()), None);
}

#[test]
fn snapshots_are_written_every_interval_and_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(12);
    let cfg = da(|c| c.snapshot_interval_blobs = 5);
    let mut o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        cfg.clone(),
        Instant::now(),
    );
    submit_all(&mut o.svc, &chain, 1..=4);
    assert_eq!(snapshot_height(dir.path()), None);
    submit_all(&mut o.svc, &chain, 5..=7);
    assert_eq!(snapshot_height(dir.path()), Some(5));
    submit_all(&mut o.svc, &chain, 8..=10);
    assert_eq!(snapshot_height(dir.path()), Some(10));
    submit_all(&mut o.svc, &chain, 11..=12);
    assert_eq!(snapshot_height(dir.path()), Some(10));
    o.svc.save_snapshot();
    assert_eq!(snapshot_height(dir.path()), Some(12));
    drop(o);

    let o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        cfg,
        Instant::now(),
    );
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (12, chain.root(12)));
}

#[test]
fn a_matching_snapshot_is_used_and_a_bad_stored_blob_truncates_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(10);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=7);
    o.svc.save_snapshot();
    submit_all(&mut o.svc, &chain, 8..=10);
    drop(o);
    // Blob 3, below the snapshot, no longer verifies.
    tamper(dir.path(), &chain, 3, &chain.forged(3));

    // The snapshot matches the log at height 7: only 8..=10 are re-verified.
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (10, chain.root(10)));
    drop(o);

    // Without the snapshot the whole log is replayed: it stops at blob 3 and the log is
    // truncated there.
    std::fs::remove_file(dir.path().join(DA_STATE_FILE)).unwrap();
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (2, chain.root(2)));
    assert_eq!(o.svc.blobs(1, 64).len(), 2);
    drop(o);
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!(st.tip(), 2, "the blobs from the bad one on were removed");
}

#[test]
fn a_stored_blob_stored_at_the_wrong_height_truncates_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(6);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=6);
    drop(o);
    // A validly signed blob, but of height 5, stored at height 4.
    tamper(dir.path(), &chain, 4, chain.blob(5));
    let o = open(dir.path());
    assert_eq!(o.svc.view().height, 3);
    assert_eq!(o.svc.blobs(1, 64).len(), 3);
}

#[test]
fn a_log_of_another_authority_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(5);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=5);
    drop(o);
    let stranger = SigningKey::from_bytes(&[77; 32]).verifying_key().to_bytes();
    let o = open_with(
        Some(dir.path()),
        other_key(),
        Some(stranger),
        da(|_| {}),
        Instant::now(),
    );
    assert_eq!(o.svc.view().height, 0);
    assert!(o.svc.blobs(1, 64).is_empty());
    drop(o);
    // Truncated for good: the rightful authority finds an empty log too.
    let o = open(dir.path());
    assert_eq!(o.svc.view().height, 0);
}

#[test]
fn a_snapshot_that_does_not_match_the_log_is_ignored() {
    // The log was deleted: the snapshot (height 7) is ahead of the empty log.
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(7);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=7);
    o.svc.save_snapshot();
    drop(o);
    std::fs::remove_file(dir.path().join(DA_LOG_FILE)).unwrap();
    let mut o = open(dir.path());
    let v = o.svc.view();
    assert_eq!(v.height, 0);
    assert_eq!(v.state_root, DaState::new(net()).state_root());
    assert_eq!(
        o.metrics.da_store_corrupt.get(),
        0,
        "a stale snapshot is not corrupt"
    );
    // The log starts again from height 1.
    submit_all(&mut o.svc, &chain, 1..=2);
    assert_eq!(o.svc.view().state_root, chain.root(2));
    drop(o);

    // Another chain's snapshot at a height the log has: ignored, the log is replayed.
    let other = Chain::build(5, |h| events(h, 9));
    let dir_x = tempfile::tempdir().unwrap();
    let mut x = open(dir_x.path());
    submit_all(&mut x.svc, &other, 1..=5);
    x.svc.save_snapshot();
    drop(x);
    let dir_y = tempfile::tempdir().unwrap();
    let mut y = open(dir_y.path());
    submit_all(&mut y.svc, &chain, 1..=7);
    drop(y);
    std::fs::copy(
        dir_x.path().join(DA_STATE_FILE),
        dir_y.path().join(DA_STATE_FILE),
    )
    .unwrap();
    let y = open(dir_y.path());
    let v = y.svc.view();
    assert_eq!((v.height, v.state_root), (7, chain.root(7)));
    assert_ne!(v.state_root, other.root(5));
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_and_the_log_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(4);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=4);
    drop(o);
    std::fs::write(dir.path().join(DA_STATE_FILE), b"\xff\x00 not a snapshot").unwrap();
    let o = open(dir.path());
    assert_eq!(o.metrics.da_store_corrupt.get(), 1);
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (4, chain.root(4)));
    assert!(!dir.path().join(DA_STATE_FILE).exists());
    let aside = files_starting_with(dir.path(), &format!("{DA_STATE_FILE}.corrupt-"));
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        b"\xff\x00 not a snapshot"
    );
}

#[test]
fn without_a_data_directory_the_log_is_in_memory() {
    let chain = Chain::new(3);
    let mut o = open_with(None, other_key(), Some(auth()), da(|_| {}), Instant::now());
    submit_all(&mut o.svc, &chain, 1..=3);
    assert_eq!(o.svc.view().state_root, chain.root(3));
    // Nothing to serve or read back, but the tip is still told.
    assert!(o.svc.blobs(1, 64).is_empty());
    let r = o.svc.serve_sync(&SyncRequest { from: 1, count: 64 });
    assert_eq!((r.tip, r.blobs.len()), (3, 0));
    o.svc.save_snapshot();
}
