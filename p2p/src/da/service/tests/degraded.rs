//! A degraded DA log (issue 14 §2): a failed append puts the log in a visible degraded
//! state, the node claims and serves only the durable heights, the write is retried with
//! backoff and the node recovers by itself.

use std::sync::atomic::Ordering;

use super::*;

fn degraded_gauge(m: &Metrics) -> i64 {
    m.storage_degraded.with_label_values(&["da_log"]).get()
}

fn write_errors(m: &Metrics) -> u64 {
    m.storage_write_errors.with_label_values(&["da_log"]).get()
}

#[test]
fn a_failing_log_is_degraded_claims_only_the_durable_tip_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(10);
    let mut o = open(dir.path());
    let p = peer();
    o.svc.peer_connected(p, Instant::now());
    submit_all(&mut o.svc, &chain, 1..=3);
    o.svc.flush();
    assert_eq!(degraded_gauge(&o.metrics), 0);
    assert!(o.svc.view().degraded.is_none());
    let hooks = o.svc.writer().unwrap().hooks.clone();

    // The disk fails: blobs 4..=6 were applied but cannot be written.
    hooks.fail_appends.store(1, Ordering::SeqCst);
    for h in 4..=6 {
        o.svc.submit(chain.blob(h)).unwrap();
    }
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (3, 3));
    assert!(!v.synced, "a degraded log is not synced");
    let issue = v.degraded.expect("degraded");
    assert_eq!((issue.store.as_str(), issue.failures), ("da_log", 1));
    assert!(issue.error.contains("injected"), "{}", issue.error);
    assert_eq!(degraded_gauge(&o.metrics), 1);
    assert_eq!(write_errors(&o.metrics), 1);
    assert_eq!(*o.height.borrow(), 3);
    // Served and listed: only what is stored.
    let r = o.svc.serve_sync(&SyncRequest { from: 1, count: 64 });
    assert_eq!((r.tip, r.blobs.len()), (3, 3));
    assert_eq!(o.svc.blobs(1, 64).len(), 3);
    assert!(o.svc.blobs(4, 64).is_empty());
    // No new height is taken from gossip, backfill answers or submissions.
    assert_eq!(o.svc.on_gossip(p, chain.blob(4)), MessageAcceptance::Ignore);
    let req = SyncRequest { from: 4, count: 4 };
    o.svc
        .on_sync_response(p, &req, response(&chain, 10, 4..=7), Instant::now());
    assert_eq!(o.svc.view().height, 3);
    assert!(matches!(
        o.svc.submit(chain.blob(4)),
        Err(SubmitError::LogBusy { height: 4 })
    ));
    assert!(sync_actions(&mut o.svc, Instant::now()).is_empty());

    // The first retry (after 1 s) fails too: still degraded, counted, not claimed.
    hooks.fail_appends.store(1, Ordering::SeqCst);
    let due = o
        .svc
        .next_deadline(Instant::now())
        .expect("a retry is scheduled");
    assert!(due <= Instant::now() + Duration::from_secs(1));
    assert!(sync_actions(&mut o.svc, due).is_empty());
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (3, 3));
    assert_eq!(v.degraded.as_ref().map(|d| d.failures), Some(2));
    assert_eq!(write_errors(&o.metrics), 2);
    assert_eq!(degraded_gauge(&o.metrics), 1);
    // The backoff doubled: nothing is tried 1.5 s later.
    let now = Instant::now();
    let next = o.svc.next_deadline(now).unwrap();
    assert!(next >= now + Duration::from_millis(1500), "backoff doubles");
    o.svc.poll(now + Duration::from_millis(1500));
    assert_eq!(o.svc.writer().unwrap().progress_now().failures, 2);

    // The disk takes writes again: the kept blobs 4..=6 are stored and applied, which
    // releases 7 (held by the chain from the backfill answer above), the rest is fetched
    // from peers.
    let reqs = sync_actions(&mut o.svc, next);
    assert!(reqs.is_empty(), "the retry goes first: {reqs:?}");
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (7, 7));
    assert_eq!(v.state_root, chain.root(7));
    assert!(v.degraded.is_none());
    assert_eq!(degraded_gauge(&o.metrics), 0);
    assert_eq!(*o.height.borrow(), 7);
    let reqs = sync_actions(&mut o.svc, Instant::now());
    assert_eq!(reqs.len(), 1, "{reqs:?}");
    assert_eq!(reqs[0].1.from, 8);
    o.svc
        .on_sync_response(p, &reqs[0].1, response(&chain, 10, 8..=10), Instant::now());
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (10, 10));
    assert!(v.synced);
    assert_eq!(write_errors(&o.metrics), 2);
    drop(o);
    let o = open(dir.path());
    assert_eq!(o.svc.view().state_root, chain.root(10));
}

#[test]
fn the_authority_seals_nothing_while_degraded_and_resumes_after_its_own_retry() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = Duration::ZERO), t0);
    let hooks = a.svc.writer().unwrap().hooks.clone();
    hooks.fail_appends.store(3, Ordering::SeqCst);
    let _first = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + Duration::from_millis(10));
    a.svc.flush();
    assert_eq!(a.svc.view().height, 0);
    assert_eq!(
        gossiped(&a.svc.take_actions()).len(),
        1,
        "sealed and gossiped once"
    );
    let _second = publish(&mut a.svc, vec![chunk_event(2)], t0);
    // Two failed retries: nothing sealed meanwhile.
    for _ in 0..2 {
        let due = a.svc.next_deadline(Instant::now()).unwrap();
        a.svc.poll(due);
        a.svc.flush();
        assert_eq!(a.svc.view().height, 0);
        assert!(
            gossiped(&a.svc.take_actions()).is_empty(),
            "sealed while degraded"
        );
    }
    assert_eq!(a.svc.view().degraded.map(|d| d.failures), Some(3));
    let due = a.svc.next_deadline(Instant::now()).unwrap();
    a.svc.poll(due);
    a.svc.flush();
    assert_eq!(a.svc.view().height, 1, "the kept blob is stored");
    a.svc.poll(Instant::now() + Duration::from_millis(20));
    a.svc.flush();
    let v = a.svc.view();
    assert_eq!((v.height, v.durable_height), (2, 2));
    assert!(v.degraded.is_none());
}

#[test]
fn the_writer_reopens_a_store_a_failed_reopen_left_closed() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(4);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=2);
    o.svc.flush();
    let store = o.svc.log.as_ref().unwrap().store.clone();
    store.close_for_test();
    // Reads of a closed store fail: nothing is served rather than a wrong answer.
    assert!(o.svc.blobs(1, 64).is_empty());
    submit_all(&mut o.svc, &chain, 3..=4);
    o.svc.flush();
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (4, 4));
    assert!(v.degraded.is_none());
    assert_eq!(o.svc.blobs(1, 64).len(), 4);
}

/// The retry of a failed append stores the kept blobs with their state commits, in one
/// transaction (issue 16 §1), as the failed append would have: it is not a smaller
/// transaction than the one the disk refused.
#[test]
fn the_retry_stores_the_kept_blobs_with_their_state() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(5);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=3);
    let store = o.svc.log.as_ref().unwrap().store.clone();
    let hooks = o.svc.writer().unwrap().hooks.clone();
    hooks.fail_appends.store(1, Ordering::SeqCst);
    o.svc.submit(chain.blob(4)).unwrap();
    o.svc.flush();
    assert_eq!((store.tip(), store.state_tip()), (3, 3));
    let due = o.svc.next_deadline(Instant::now()).expect("a retry");
    let done = o.svc.writer().unwrap().progress_now().jobs_done;
    o.svc.poll(due);
    // The retry alone, before the service hands anything else over.
    let deadline = Instant::now() + Duration::from_secs(10);
    while o.svc.writer().unwrap().progress_now().jobs_done == done {
        assert!(Instant::now() < deadline, "the retry was not written");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!((store.tip(), store.state_tip()), (4, 4));
    o.svc.flush();
    submit_all(&mut o.svc, &chain, 5..=5);
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (5, 5));
    assert_eq!(v.state_root, chain.root(5));
    assert!(v.degraded.is_none());
}

/// The state commits of a failed job are not lost when every blob is already durable: a
/// retry that stored a kept blob alone (its state commit unknown) is followed by a job with
/// that commit (the blob applied again); when that job fails, the state is rebuilt from
/// the disk and the commit written again. Without that the stored state stayed behind with
/// a gap and every later append failed (`append out of order: expected height 4, got 5`):
/// the node stayed degraded for good (seen with real daemons in `disk_full`).
#[test]
fn the_state_commits_of_a_failed_job_are_written_again() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(6);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=3);
    let store = o.svc.log.as_ref().unwrap().store.clone();
    let hooks = o.svc.writer().unwrap().hooks.clone();
    // Blob 4 and its state commit fail: the blob is kept, the state rebuilt at 3.
    hooks.fail_appends.store(1, Ordering::SeqCst);
    o.svc.submit(chain.blob(4)).unwrap();
    o.svc.flush();
    assert_eq!((store.tip(), store.state_tip()), (3, 3));
    o.svc.log.as_mut().unwrap().held_state.clear();
    // The retry stores blob 4 alone; the job with its state commit fails.
    hooks.pass_appends.store(1, Ordering::SeqCst);
    hooks.fail_appends.store(1, Ordering::SeqCst);
    let due = o.svc.next_deadline(Instant::now()).expect("a retry");
    o.svc.poll(due);
    o.svc.flush();
    assert_eq!(write_errors(&o.metrics), 2);
    assert_eq!((store.tip(), store.state_tip()), (4, 3));
    let due = o.svc.next_deadline(Instant::now()).expect("a retry");
    o.svc.poll(due);
    o.svc.flush();
    submit_all(&mut o.svc, &chain, 5..=6);
    let v = o.svc.view();
    assert_eq!((v.height, v.durable_height), (6, 6));
    assert!(v.degraded.is_none(), "{:?}", v.degraded);
    assert_eq!((store.tip(), store.state_tip()), (6, 6));
    assert_eq!(v.state_root, chain.root(6));
    assert_eq!(write_errors(&o.metrics), 2);
    drop((o, store));
    let o = open(dir.path());
    assert_eq!(o.svc.view().state_root, chain.root(6));
}

/// Counts the events of the degraded-log module by level (the test thread only).
#[derive(Default)]
struct Counter {
    errors: std::sync::atomic::AtomicUsize,
    infos: std::sync::atomic::AtomicUsize,
}

struct Counting(Arc<Counter>);

impl tracing::Subscriber for Counting {
    fn enabled(&self, _: &tracing::Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &tracing::span::Attributes<'_>) -> tracing::span::Id {
        tracing::span::Id::from_u64(1)
    }
    fn record(&self, _: &tracing::span::Id, _: &tracing::span::Record<'_>) {}
    fn record_follows_from(&self, _: &tracing::span::Id, _: &tracing::span::Id) {}
    fn event(&self, event: &tracing::Event<'_>) {
        let m = event.metadata();
        if !m.target().ends_with("::degraded") {
            return;
        }
        let counter = match *m.level() {
            tracing::Level::ERROR => &self.0.errors,
            tracing::Level::INFO => &self.0.infos,
            _ => return,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
    fn enter(&self, _: &tracing::span::Id) {}
    fn exit(&self, _: &tracing::span::Id) {}
}

#[test]
fn a_degraded_run_is_logged_once_and_its_recovery_once_not_per_retry() {
    let counter = Arc::new(Counter::default());
    let subscriber = Counting(counter.clone());
    tracing::subscriber::with_default(subscriber, || {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::new(4);
        let mut o = open(dir.path());
        let hooks = o.svc.writer().unwrap().hooks.clone();
        // The append and its first three retries fail.
        hooks.fail_appends.store(4, Ordering::SeqCst);
        for h in 1..=2 {
            o.svc.submit(chain.blob(h)).unwrap();
        }
        o.svc.flush();
        for _ in 0..4 {
            let due = o.svc.next_deadline(Instant::now()).expect("a retry");
            o.svc.poll(due);
            o.svc.flush();
        }
        let v = o.svc.view();
        assert_eq!((v.height, v.durable_height), (2, 2));
        assert!(v.degraded.is_none());
        assert_eq!(write_errors(&o.metrics), 4);
    });
    assert_eq!(counter.errors.load(Ordering::SeqCst), 1, "error lines");
    assert_eq!(counter.infos.load(Ordering::SeqCst), 1, "recovery lines");
}
