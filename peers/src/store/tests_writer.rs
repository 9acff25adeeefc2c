//! Tests of the background writer: the file follows the in-memory address book in group
//! commits, survives a drop without a flush, and a failing disk degrades visibly and heals.

use std::sync::atomic::Ordering;

use dsdn_protocols::{PeerSource, ServiceSet};

use super::tests_ops::{ids, learn_n, store, NOW};
use super::writer::MAX_DIRTY;
use super::*;
use crate::record::tests::{addr, net, peer};

fn reopen(dir: &tempfile::TempDir) -> PeerStore {
    PeerStore::open(&dir.path().join("peers.dat"), &net())
        .unwrap()
        .0
}

#[test]
fn changes_reach_the_file_and_a_drop_writes_what_is_left() {
    let (d, s) = store();
    for n in 1..=50 {
        learn_n(&s, n);
    }
    s.record_success(
        peer(7),
        &[addr(7, 2)],
        ServiceSet::EMPTY,
        PeerSource::PeerExchange,
        NOW,
    )
    .unwrap();
    s.ban(&peer(8), NOW + 100, NOW, BanCause::new("test", None))
        .unwrap();
    s.remove(&peer(9)).unwrap();
    s.save_anchors(&[peer(7)]).unwrap();
    let before = s.all().unwrap();
    // No flush: dropping the store writes what is left.
    drop(s);
    let s = reopen(&d);
    assert_eq!(s.all().unwrap(), before);
    assert_eq!(ids(&s.take_anchors(NOW).unwrap()), [peer(7)]);
}

#[test]
fn a_failing_disk_is_reported_retried_and_healed_in_one_group_commit() {
    let (d, s) = store();
    learn_n(&s, 1);
    s.flush().unwrap();
    let healthy = s.writer_status();
    assert_eq!(healthy.failures, 0);
    assert_eq!(healthy.last_error, None);

    s.shared.fail_writes.store(true, Ordering::SeqCst);
    for n in 2..=300 {
        learn_n(&s, n);
    }
    s.remove(&peer(1)).unwrap();
    // The store keeps working from memory, and says that the file lags behind.
    assert_eq!(s.len(), 299);
    let err = s.flush().unwrap_err();
    assert!(matches!(err, StoreError::WriteFailed(_)), "{err}");
    let degraded = s.writer_status();
    assert!(degraded.failures >= 1);
    assert!(degraded.last_error.is_some());
    assert!(degraded.unwritten > 0);

    s.shared.fail_writes.store(false, Ordering::SeqCst);
    let commits = s.writer_status().commits;
    s.flush().unwrap();
    let healed = s.writer_status();
    assert_eq!(healed.last_error, None);
    assert_eq!(healed.unwritten, 0);
    // Everything queued while the disk failed went into one transaction.
    assert_eq!(healed.commits, commits + 1);
    let before = s.all().unwrap();
    drop(s);
    let s = reopen(&d);
    assert_eq!(s.all().unwrap(), before);
    assert!(s.get(&peer(1)).unwrap().is_none());
}

#[test]
fn a_long_outage_collapses_the_queue_into_a_rewrite() {
    let (d, s) = store();
    for n in 0..10 {
        learn_n(&s, 1_000_000 + n);
    }
    s.flush().unwrap();
    s.shared.fail_writes.store(true, Ordering::SeqCst);
    // More distinct changes than the queue holds: learned, then removed again.
    for n in 0..(MAX_DIRTY as u64 + 10) {
        learn_n(&s, n);
        s.remove(&peer(n)).unwrap();
    }
    s.remove(&peer(1_000_000)).unwrap();
    learn_n(&s, 42);
    let st = s.writer_status();
    assert!(st.rewrite_pending);
    assert_eq!(st.unwritten, 0, "the queue does not grow past its cap");
    s.shared.fail_writes.store(false, Ordering::SeqCst);
    s.flush().unwrap();
    assert!(!s.writer_status().rewrite_pending);
    let before = s.all().unwrap();
    assert_eq!(before.len(), 10);
    drop(s);
    let s = reopen(&d);
    assert_eq!(s.all().unwrap(), before);
}

#[test]
fn clear_reaches_the_file() {
    let (d, s) = store();
    for n in 1..=20 {
        learn_n(&s, n);
    }
    s.save_anchors(&[peer(1)]).unwrap();
    s.flush().unwrap();
    s.clear().unwrap();
    learn_n(&s, 99);
    drop(s);
    let s = reopen(&d);
    assert_eq!(ids(&s.all().unwrap()), [peer(99)]);
    assert!(s.take_anchors(NOW).unwrap().is_empty());
}

#[test]
fn writes_from_many_threads_are_all_durable() {
    let (d, s) = store();
    let s = std::sync::Arc::new(s);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = std::sync::Arc::clone(&s);
            std::thread::spawn(move || {
                for n in 0..250 {
                    learn_n(&s, t * 1000 + n);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let before = s.all().unwrap();
    assert_eq!(before.len(), 1000);
    drop(std::sync::Arc::into_inner(s).unwrap());
    let s = reopen(&d);
    assert_eq!(s.all().unwrap(), before);
}

#[test]
fn a_file_left_closed_by_a_failed_reopen_is_opened_again_by_the_next_write() {
    let (d, s) = store();
    learn_n(&s, 1);
    s.flush().unwrap();
    s.shared.close_for_test();
    learn_n(&s, 2);
    s.flush().unwrap();
    assert_eq!(s.writer_status().last_error, None);
    let before = s.all().unwrap();
    drop(s);
    let s = reopen(&d);
    assert_eq!(s.all().unwrap(), before);
    assert_eq!(before.len(), 2);
}
