//! The log writer thread (issue 11): group commits, answers only once durable, a failed
//! append rolls the state back to the disk and the lost heights are fetched again, the
//! unwritten bound, a clean shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::super::log::MAX_UNWRITTEN_BLOBS;
use super::*;
use crate::da::writer::Hooks;

fn hooks(o: &Opened) -> Arc<Hooks> {
    o.svc.writer().unwrap().hooks.clone()
}

/// Submits `heights` without waiting for the writer.
fn submit_each(svc: &mut DaService, chain: &Chain, heights: impl IntoIterator<Item = u64>) {
    for h in heights {
        assert_eq!(svc.submit(chain.blob(h)).unwrap().outcome, "applied", "{h}");
    }
}

#[test]
fn blobs_applied_during_a_commit_go_into_few_transactions() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(200);
    let mut o = open(dir.path());
    let hooks = hooks(&o);
    // The writer takes its first job and then "commits" for as long as it is held.
    hooks.hold(true);
    submit_each(&mut o.svc, &chain, 1..=200);
    // Applied (and servable) at once, nothing durable yet.
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (200, 0));
    assert_eq!(o.metrics.da_log_unwritten.get(), 200);
    assert_eq!(o.metrics.da_log_commits.get(), 0);
    let r = o.svc.serve_sync(&SyncRequest { from: 1, count: 64 });
    assert_eq!((r.tip, r.blobs.len()), (200, 64));
    assert_eq!(r.blobs[63].as_ref(), chain.blob(64));
    assert_eq!(o.svc.blobs(190, 64).len(), 11);
    hooks.hold(false);
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (200, 200));
    assert_eq!(o.metrics.da_log_unwritten.get(), 0);
    // 200 jobs' worth of blobs (the channel holds 64 jobs, the rest waited in the buffer):
    // the first group, the jobs queued behind it, the blobs that did not fit.
    let commits = o.metrics.da_log_commits.get();
    assert!(
        (1..=3).contains(&commits),
        "{commits} commits for 200 blobs"
    );
    assert_eq!(o.svc.writer().unwrap().progress_now().commits, commits);
    drop(o);
    let o = open(dir.path());
    assert_eq!(o.svc.view().state_root, chain.root(200));
}

#[test]
fn publishers_are_answered_only_once_their_blob_is_durable() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = Duration::ZERO), t0);
    let hooks = hooks(&a);
    hooks.hold(true);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + Duration::from_millis(10));
    // Sealed, applied and gossiped at once...
    assert_eq!(a.svc.view().height, 1);
    assert_eq!(gossiped(&a.svc.take_actions()).len(), 1);
    // ...but not answered while the commit has not finished.
    std::thread::sleep(Duration::from_millis(50));
    a.svc.on_writer_progress(Instant::now());
    assert!(
        rx.try_recv().is_err(),
        "answered before the blob was durable"
    );
    assert_eq!(a.svc.view().durable_height, 0);
    hooks.hold(false);
    a.svc.flush();
    assert_eq!(a.svc.view().durable_height, 1);
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![1]);
}

#[test]
fn a_failed_append_rolls_the_state_back_to_the_disk_and_the_kept_heights_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(8);
    let t0 = Instant::now();
    let mut o = open(dir.path());
    let p = peer();
    o.svc.peer_connected(p, t0);
    submit_all(&mut o.svc, &chain, 1..=3);
    let hooks = hooks(&o);
    hooks.fail_appends.store(1, Ordering::SeqCst);
    submit_each(&mut o.svc, &chain, 4..=6);
    assert_eq!(o.svc.view().height, 6);
    o.svc.flush();
    // The node no longer claims what the disk does not hold.
    assert_eq!(o.metrics.da_log_write_errors.get(), 1);
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (3, 3));
    assert_eq!((v.tip_hash, v.state_root), (chain.hash(3), chain.root(3)));
    assert_eq!(*o.height.borrow(), 3);
    assert_eq!(o.metrics.da_height.get(), 3);
    assert_eq!(o.metrics.da_log_unwritten.get(), 0);
    let r = o.svc.serve_sync(&SyncRequest { from: 1, count: 64 });
    assert_eq!((r.tip, r.blobs.len()), (3, 3));
    // During the backoff no new height is taken.
    assert!(matches!(
        o.svc.submit(chain.blob(4)),
        Err(SubmitError::LogBusy { height: 4 })
    ));
    assert_eq!(o.svc.on_gossip(p, chain.blob(4)), MessageAcceptance::Ignore);
    assert!(sync_actions(&mut o.svc, Instant::now()).is_empty());
    assert!(
        o.svc.next_deadline(Instant::now()).is_some(),
        "the backoff ends"
    );
    // Then the kept blobs are appended again (the retry) and applied once durable...
    let later = Instant::now() + Duration::from_secs(2);
    assert!(
        sync_actions(&mut o.svc, later).is_empty(),
        "the retry first"
    );
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (6, 6));
    assert!(v.degraded.is_none());
    // ...and the planner fetches the rest from peers.
    let reqs = sync_actions(&mut o.svc, later);
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!((reqs[0].0, reqs[0].1.from), (p, 7));
    o.svc
        .on_sync_response(p, &reqs[0].1, response(&chain, 8, 7..=8), later);
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (8, 8));
    assert_eq!(v.state_root, chain.root(8));
    assert_eq!(o.metrics.da_log_write_errors.get(), 1);
    drop(o);
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (8, chain.root(8)));
}

#[test]
fn publishers_of_a_blob_that_failed_to_append_get_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = Duration::ZERO), t0);
    hooks(&a).fail_appends.store(1, Ordering::SeqCst);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + Duration::from_millis(10));
    assert_eq!(gossiped(&a.svc.take_actions()).len(), 1);
    a.svc.flush();
    assert!(
        matches!(rx.try_recv(), Ok(Err(PublishError::Seal(e))) if e.contains("could not store blob 1"))
    );
    assert_eq!(a.svc.view().height, 0);
    // Nothing is sealed during the backoff; afterwards the kept blob is stored (it was
    // gossiped: it is part of the network's log) and the next publish is sealed after it.
    let mut rx = publish(&mut a.svc, vec![chunk_event(2)], t0);
    a.svc.poll(Instant::now());
    assert_eq!(a.svc.view().height, 0);
    a.svc.poll(Instant::now() + Duration::from_secs(2));
    a.svc.flush();
    assert_eq!(a.svc.view().height, 1);
    a.svc.poll(Instant::now() + Duration::from_secs(2));
    a.svc.flush();
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![2]);
}

#[test]
fn the_state_is_written_with_its_blobs_and_never_apart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(DA_LOG_FILE);
    let chain = Chain::new(10);
    let mut o = open(dir.path());
    let hooks = hooks(&o);
    hooks.hold(true);
    submit_each(&mut o.svc, &chain, 1..=5);
    std::thread::sleep(Duration::from_millis(50));
    // Applied, readable through the overlay, not on disk yet.
    assert_eq!(o.svc.view().state_root, chain.root(5));
    assert_eq!(o.svc.durable_height(), 0);
    hooks.hold(false);
    o.svc.flush();
    assert_eq!(o.svc.durable_height(), 5);
    // A group whose append fails writes neither blobs nor state.
    hooks.fail_appends.store(1, Ordering::SeqCst);
    submit_each(&mut o.svc, &chain, 6..=10);
    o.svc.flush();
    assert_eq!(o.svc.view().height, 5);
    assert_eq!(o.svc.view().state_root, chain.root(5));
    drop(o);
    let st = DaStore::open(&path, &net()).unwrap().store;
    assert_eq!((st.tip(), st.state_tip()), (5, 5));
    assert_eq!(st.state_root_at(5).unwrap(), Some(chain.root(5)));
}

#[test]
fn too_much_unwritten_stops_new_heights_until_the_writer_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let n = MAX_UNWRITTEN_BLOBS as u64 + 1;
    let chain = Chain::build(n, |h| vec![chunk_event(h)]);
    let mut o = open(dir.path());
    let hooks = hooks(&o);
    hooks.hold(true);
    submit_each(&mut o.svc, &chain, 1..n);
    assert!(!o.svc.accepting());
    assert!(matches!(
        o.svc.submit(chain.blob(n)),
        Err(SubmitError::LogBusy { .. })
    ));
    assert_eq!(
        o.svc.on_gossip(peer(), chain.blob(n)),
        MessageAcceptance::Ignore
    );
    assert_eq!(o.svc.view().height, n - 1);
    hooks.hold(false);
    o.svc.flush();
    assert!(o.svc.accepting());
    submit_all(&mut o.svc, &chain, [n]);
    assert_eq!(o.svc.view().state_root, chain.root(n));
}

#[test]
fn a_clean_shutdown_writes_everything_and_the_state() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(30);
    let mut o = open(dir.path());
    submit_each(&mut o.svc, &chain, 1..=30);
    o.svc.shutdown();
    drop(o);
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!((st.tip(), st.state_tip()), (30, 30));
    drop(st);
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!(
        (v.height, v.durable_height, v.state_root),
        (30, 30, chain.root(30))
    );
}

#[test]
fn a_submitted_blob_is_answered_once_durable_or_told_it_was_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(3);
    let mut o = open(dir.path());
    let hooks = hooks(&o);
    hooks.hold(true);
    // Nothing to store: answered at once.
    let (tx, mut rx) = oneshot::channel();
    o.svc.submit_reply(chain.blob(2), tx);
    assert_eq!(rx.try_recv().unwrap().unwrap().outcome, "held");
    // Applied: answered once durable.
    let (tx, mut rx) = oneshot::channel();
    o.svc.submit_reply(chain.blob(1), tx);
    assert_eq!(o.svc.view().height, 2);
    std::thread::sleep(Duration::from_millis(50));
    o.svc.on_writer_progress(Instant::now());
    assert!(
        rx.try_recv().is_err(),
        "answered before the blob was durable"
    );
    hooks.hold(false);
    o.svc.flush();
    let s = rx.try_recv().unwrap().unwrap();
    assert_eq!((s.height, s.outcome), (1, "applied"));
    // A failed append: the submitter learns it was not stored.
    hooks.fail_appends.store(1, Ordering::SeqCst);
    let (tx, mut rx) = oneshot::channel();
    o.svc.submit_reply(chain.blob(3), tx);
    o.svc.flush();
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(SubmitError::NotStored { height: 3, .. }))
    ));
    assert_eq!(o.svc.view().height, 2);
}
