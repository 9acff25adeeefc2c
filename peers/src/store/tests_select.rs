//! Tests of selection and capacity: dial candidates, PEX entries, eviction, and a model-based
//! check that the in-memory index always matches the file.

use std::collections::{HashMap, HashSet};

use dsdn_protocols::{PeerSource, ServiceSet, ServiceType};
use proptest::prelude::*;

use super::tests_ops::{bulk_put, ids, rec, store, svc, DAY, HOUR, NOW};
use super::*;
use crate::record::tests::{addr, net, peer};
use crate::score::dial_order;

#[test]
fn dial_candidates_order_and_filters() {
    let (_d, s) = store();
    let mut records = Vec::new();
    for n in 1..=7 {
        let mut r = rec(n, NOW - 10 * DAY);
        r.last_success = Some(NOW - 2 * HOUR);
        r.success_count = 1;
        records.push(r);
    }
    records[0].success_count = 10; // 1: best score
    records[1].last_success = Some(NOW - 3 * HOUR); // 2: ties with 3, older success
    records[3].banned_until = Some(NOW + 1); // 4: banned
    records[4].success_count = 1000; // 5: suspicious despite the best score
    records[4].consecutive_failures = 10;
    records[5].addrs.clear(); // 6: nothing to dial
    records[6].failure_count = 1; // 7: one failure
    bulk_put(&s, &records);
    let none = HashSet::new();
    let got = ids(&s.dial_candidates(NOW, &none, 100).unwrap());
    assert_eq!(got, [1, 3, 2, 7, 5].map(peer));
    assert_eq!(
        ids(&s.dial_candidates(NOW, &none, 2).unwrap()),
        [1, 3].map(peer)
    );
    let exclude: HashSet<PeerId> = [peer(1), peer(2)].into();
    assert_eq!(
        ids(&s.dial_candidates(NOW, &exclude, 100).unwrap()),
        [3, 7, 5].map(peer)
    );
    // Once the ban expired, 4 is back.
    assert!(ids(&s.dial_candidates(NOW + 1, &none, 100).unwrap()).contains(&peer(4)));
}

#[test]
fn pex_entries_filters() {
    let (_d, s) = store();
    let storage = svc(&[ServiceType::Storage]);
    let chain = svc(&[ServiceType::Chain, ServiceType::Validator]);
    let mut records = Vec::new();
    for (n, ago, services) in [
        (1, 0, storage),
        (2, DAY, chain),       // exactly 24 h: shared
        (3, DAY + 1, storage), // older than 24 h: not shared
        (4, HOUR, storage),    // banned
        (5, HOUR, chain),      // the requester
    ] {
        let mut r = rec(n, NOW - 2 * DAY);
        r.services = services;
        r.last_success = Some(NOW - ago);
        r.success_count = 1;
        records.push(r);
    }
    records[3].banned_until = Some(NOW + DAY);
    records.push(rec(6, NOW)); // never contacted
    bulk_put(&s, &records);
    let req = peer(5);
    let got = ids(&s.pex_entries(NOW, &req, ServiceSet::EMPTY, 1000).unwrap());
    assert_eq!(got, [1, 2].map(peer));
    let only_chain = svc(&[ServiceType::Validator, ServiceType::Ingress]);
    assert_eq!(
        ids(&s.pex_entries(NOW, &req, only_chain, 1000).unwrap()),
        [peer(2)]
    );
    assert_eq!(
        ids(&s.pex_entries(NOW, &peer(99), chain, 1000).unwrap()),
        [peer(5), peer(2)]
    );
    assert_eq!(
        s.pex_entries(NOW, &req, ServiceSet::EMPTY, 1)
            .unwrap()
            .len(),
        1
    );
    assert!(s
        .pex_entries(NOW, &req, svc(&[ServiceType::Bootstrap]), 1000)
        .unwrap()
        .is_empty());
}

#[test]
fn pex_entries_capped_at_1000() {
    let (_d, s) = store();
    let records: Vec<PeerRecord> = (0..1200)
        .map(|n| {
            let mut r = rec(n, NOW - DAY);
            r.last_success = Some(NOW - n);
            r.success_count = 1;
            r
        })
        .collect();
    bulk_put(&s, &records);
    let got = s
        .pex_entries(NOW, &peer(100_000), ServiceSet::EMPTY, usize::MAX)
        .unwrap();
    assert_eq!(got.len(), 1000);
    // Best first: all score the same, so the most recent successes win.
    assert_eq!(got[0].peer_id, peer(0));
    assert_eq!(got[999].peer_id, peer(999));
}

/// 10 000 learned-at-`NOW - DAY` records; peer `n` has `n % 7` failures.
fn full_of(tested: bool) -> (tempfile::TempDir, PeerStore) {
    let (d, s) = store();
    let records: Vec<PeerRecord> = (0..MAX_ENTRIES as u64)
        .map(|n| {
            let mut r = rec(n, NOW - DAY);
            r.failure_count = (n % 7) as u32;
            if tested {
                r.success_count = 1;
                r.last_success = Some(NOW - DAY);
            }
            r
        })
        .collect();
    bulk_put(&s, &records);
    assert_eq!(s.len(), MAX_ENTRIES);
    (d, s)
}

#[test]
fn learn_into_full_store_evicts_worst_untested() {
    let (_d, s) = full_of(false);
    // The worst: 6 failures, ties broken by the highest PeerId among them.
    let worst = s
        .all()
        .unwrap()
        .into_iter()
        .max_by(|a, b| dial_order(a, b, NOW))
        .unwrap();
    assert_eq!(worst.failure_count, 6);
    assert!(s
        .learn(
            peer(50_000),
            &[addr(1, 1)],
            ServiceSet::EMPTY,
            PeerSource::PeerExchange,
            NOW
        )
        .unwrap());
    assert_eq!(s.len(), MAX_ENTRIES);
    assert!(s.get(&worst.peer_id).unwrap().is_none());
    assert!(s.get(&peer(50_000)).unwrap().is_some());
}

#[test]
fn test_before_evict() {
    let (_d, s) = full_of(true);
    // An untested newcomer never evicts a peer that had a successful contact.
    assert!(!s
        .learn(
            peer(50_000),
            &[addr(1, 1)],
            ServiceSet::EMPTY,
            PeerSource::PeerExchange,
            NOW
        )
        .unwrap());
    assert!(s.get(&peer(50_000)).unwrap().is_none());
    assert_eq!(s.len(), MAX_ENTRIES);
    // With one untested entry around, that one is evicted even though tested ones score lower.
    s.remove(&peer(3)).unwrap();
    s.learn(
        peer(60_000),
        &[addr(1, 1)],
        ServiceSet::EMPTY,
        PeerSource::PeerExchange,
        NOW,
    )
    .unwrap();
    assert_eq!(s.len(), MAX_ENTRIES);
    assert!(s
        .learn(
            peer(50_000),
            &[addr(1, 1)],
            ServiceSet::EMPTY,
            PeerSource::PeerExchange,
            NOW
        )
        .unwrap());
    assert!(s.get(&peer(60_000)).unwrap().is_none());
    assert_eq!(s.len(), MAX_ENTRIES);
    // A verified newcomer evicts the worst entry (6 failures, highest PeerId among them), but
    // not a banned one.
    let worst_unbanned = peer((0..MAX_ENTRIES as u64).rev().find(|n| n % 7 == 6).unwrap());
    let banned_worse = {
        let mut r = s.get(&peer(13)).unwrap().unwrap();
        r.failure_count = 1000;
        r.banned_until = Some(NOW + DAY);
        r
    };
    bulk_put(&s, &[banned_worse]);
    s.record_success(
        peer(70_000),
        &[addr(1, 1)],
        ServiceSet::EMPTY,
        PeerSource::Inbound,
        NOW,
    )
    .unwrap();
    assert_eq!(s.len(), MAX_ENTRIES);
    assert!(s.get(&peer(70_000)).unwrap().is_some());
    assert!(s.get(&worst_unbanned).unwrap().is_none());
    assert!(s.get(&peer(13)).unwrap().is_some());
    // The count survives a reopen.
    let path = s.path().to_owned();
    drop(s);
    let (s, _) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(s.len(), MAX_ENTRIES);
    assert_eq!(s.all().unwrap().len(), MAX_ENTRIES);
}

#[derive(Clone, Debug)]
enum Op {
    Success(u64, u64),
    Failure(u64, u64),
    Learn(u64, u64),
    Remove(u64),
    Ban(u64, u64),
    Unban(u64),
    Gc(u64),
}

fn op() -> impl Strategy<Value = Op> {
    let p = 0u64..6;
    let t = 0u64..60 * DAY;
    prop_oneof![
        (p.clone(), t.clone()).prop_map(|(p, t)| Op::Success(p, t)),
        (p.clone(), t.clone()).prop_map(|(p, t)| Op::Failure(p, t)),
        (p.clone(), t.clone()).prop_map(|(p, t)| Op::Learn(p, t)),
        p.clone().prop_map(Op::Remove),
        (p.clone(), t.clone()).prop_map(|(p, t)| Op::Ban(p, t)),
        p.prop_map(Op::Unban),
        t.prop_map(Op::Gc),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// The in-memory index always agrees with the file, and the file with a simple model of
    /// which peers exist and their counters.
    #[test]
    fn index_matches_file(ops in proptest::collection::vec(op(), 1..25)) {
        let (_d, s) = store();
        let mut model: HashMap<PeerId, (u32, u32)> = HashMap::new();
        for op in ops {
            match op {
                Op::Success(p, t) => {
                    s.record_success(peer(p), &[addr(p as u32, 1)], ServiceSet::EMPTY, PeerSource::DnsSeed, t).unwrap();
                    model.entry(peer(p)).or_default().0 += 1;
                }
                Op::Failure(p, t) => {
                    let known = s.record_failure(&peer(p), t).unwrap();
                    prop_assert_eq!(known, model.contains_key(&peer(p)));
                    if let Some(e) = model.get_mut(&peer(p)) { e.1 += 1; }
                }
                Op::Learn(p, t) => {
                    let inserted = s.learn(peer(p), &[addr(p as u32, 1)], ServiceSet::EMPTY, PeerSource::PeerExchange, t).unwrap();
                    prop_assert_eq!(inserted, !model.contains_key(&peer(p)));
                    model.entry(peer(p)).or_default();
                }
                Op::Remove(p) => {
                    prop_assert_eq!(s.remove(&peer(p)).unwrap(), model.remove(&peer(p)).is_some());
                }
                Op::Ban(p, t) => {
                    s.ban(&peer(p), t + HOUR, t, BanCause::new("test", None)).unwrap();
                    model.entry(peer(p)).or_default();
                }
                Op::Unban(p) => { s.unban(&peer(p)).unwrap(); }
                Op::Gc(t) => {
                    let before = s.all().unwrap();
                    let removed = s.gc(t).unwrap();
                    prop_assert_eq!(before.len() - removed, s.len());
                    let left: HashSet<PeerId> = ids(&s.all().unwrap()).into_iter().collect();
                    model.retain(|p, _| left.contains(p));
                }
            }
            let all = s.all().unwrap();
            prop_assert_eq!(all.len(), s.len());
            prop_assert_eq!(all.len(), model.len());
            for r in &all {
                prop_assert_eq!(model.get(&r.peer_id), Some(&(r.success_count, r.failure_count)));
            }
            let index = s.lock_index();
            prop_assert!(all.iter().all(|r| index.index.get(&r.peer_id) == Some(&super::txn::IndexEntry::from(r))));
        }
    }
}
