//! Tests of the anchors and of the statistics.

use std::collections::BTreeMap;

use dsdn_protocols::{PeerSource, ServiceType};
use redb::ReadableTableMetadata;

use super::tests_ops::{bulk_put, ids, rec, store, svc, DAY, NOW};
use super::txn::ANCHORS;
use super::*;
use crate::record::tests::{addr, peer};
use crate::NetGroup;

#[test]
fn anchors_are_taken_once_in_saved_order() {
    let (dir, s) = store();
    let mut records: Vec<PeerRecord> = (1..=6).map(|n| rec(n, NOW)).collect();
    records[2].banned_until = Some(NOW + 10); // 3: banned
    records[3].addrs.clear(); // 4: nothing to dial
    bulk_put(&s, &records);
    // 9 is unknown; 5 is listed twice.
    let saved = [5, 1, 9, 3, 4, 5, 2].map(peer);
    s.save_anchors(&saved).unwrap();
    assert_eq!(s.stats(NOW).anchors, 6, "distinct");
    // Survives a restart.
    drop(s);
    let (s, _) = PeerStore::open(&dir.path().join("peers.dat"), &net()).unwrap();
    assert_eq!(s.stats(NOW).anchors, 6);
    assert_eq!(ids(&s.take_anchors(NOW).unwrap()), [5, 1, 2].map(peer));
    // Cleared by the take, also on disk.
    assert_eq!(s.stats(NOW).anchors, 0);
    assert!(s.take_anchors(NOW).unwrap().is_empty());
    drop(s);
    let (s, _) = PeerStore::open(&dir.path().join("peers.dat"), &net()).unwrap();
    assert!(s.take_anchors(NOW).unwrap().is_empty());
    // A ban that expired no longer hides 3.
    s.save_anchors(&[peer(3)]).unwrap();
    assert_eq!(ids(&s.take_anchors(NOW + 10).unwrap()), [peer(3)]);
}

fn net() -> dsdn_protocols::NetworkId {
    crate::record::tests::net()
}

#[test]
fn at_most_eight_anchors_and_save_replaces() {
    let (_d, s) = store();
    let records: Vec<PeerRecord> = (1..=12).map(|n| rec(n, NOW)).collect();
    bulk_put(&s, &records);
    let all: Vec<PeerId> = (1..=12).map(peer).collect();
    s.save_anchors(&all).unwrap();
    assert_eq!(s.stats(NOW).anchors, MAX_ANCHORS);
    s.save_anchors(&[peer(12), peer(11)]).unwrap();
    assert_eq!(s.stats(NOW).anchors, 2);
    assert_eq!(ids(&s.take_anchors(NOW).unwrap()), [12, 11].map(peer));
    s.save_anchors(&all).unwrap();
    assert_eq!(ids(&s.take_anchors(NOW).unwrap()), all[..MAX_ANCHORS]);
    s.save_anchors(&[]).unwrap();
    assert!(s.take_anchors(NOW).unwrap().is_empty());
}

#[test]
fn clear_also_clears_anchors_and_garbage_anchors_are_skipped() {
    let (d, s) = store();
    bulk_put(&s, &[rec(1, NOW), rec(2, NOW)]);
    s.save_anchors(&[peer(1), peer(2)]).unwrap();
    s.clear().unwrap();
    assert_eq!(s.stats(NOW), StoreStats { ..empty_stats() });
    assert!(s.take_anchors(NOW).unwrap().is_empty());
    // Garbage in the anchors table (a hand-edited file) is skipped at open.
    bulk_put(&s, &[rec(1, NOW)]);
    s.flush().unwrap();
    drop(s);
    let path = d.path().join("peers.dat");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(ANCHORS).unwrap();
            t.insert(0, &b"not a peer id"[..]).unwrap();
            t.insert(1, peer(1).to_bytes().as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let (s, _) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(ids(&s.take_anchors(NOW).unwrap()), [peer(1)]);
    s.flush().unwrap();
    drop(s);
    let db = redb::Database::open(&path).unwrap();
    let txn = redb::ReadableDatabase::begin_read(&db).unwrap();
    assert_eq!(txn.open_table(ANCHORS).unwrap().len().unwrap(), 0);
}

fn empty_stats() -> StoreStats {
    StoreStats {
        by_source: PeerSource::ALL.into_iter().map(|p| (p, 0)).collect(),
        by_service: ServiceType::ALL.into_iter().map(|t| (t, 0)).collect(),
        ..StoreStats::default()
    }
}

#[test]
fn stats_count_everything() {
    let (_d, s) = store();
    assert_eq!(s.stats(NOW), empty_stats());
    let mut records: Vec<PeerRecord> = (1..=5).map(|n| rec(n, NOW - DAY)).collect();
    // 1, 2: same /16 (public), DNS, storage; 1 tried.
    records[0].addrs = vec!["/ip4/203.0.1.1/tcp/1".parse().unwrap()];
    records[0].source = PeerSource::DnsSeed;
    records[0].services = svc(&[ServiceType::Storage, ServiceType::Chain]);
    records[0].last_success = Some(NOW - 5);
    records[0].success_count = 7;
    records[0].failure_count = 2;
    records[1].addrs = vec!["/ip4/203.0.9.9/tcp/1".parse().unwrap(), addr(1, 1)];
    records[1].source = PeerSource::DnsSeed;
    records[1].services = svc(&[ServiceType::Storage]);
    records[1].failure_count = 11;
    records[1].consecutive_failures = 11; // suspicious
                                          // 3: banned now; 4: ban expired; 5: no address (a ban placeholder, expired).
    records[2].banned_until = Some(NOW + 1);
    records[2].source = PeerSource::Inbound;
    records[3].banned_until = Some(NOW);
    records[4].addrs.clear();
    records[4].banned_until = Some(NOW - 1);
    bulk_put(&s, &records);
    s.save_anchors(&[peer(1), peer(2), peer(3)]).unwrap();
    let st = s.stats(NOW);
    let mut expected = empty_stats();
    expected.entries = 5;
    expected.by_source.insert(PeerSource::DnsSeed, 2);
    expected.by_source.insert(PeerSource::Inbound, 1);
    expected.by_source.insert(PeerSource::PeerExchange, 2);
    expected.by_service.insert(ServiceType::Storage, 2);
    expected.by_service.insert(ServiceType::Chain, 1);
    expected.by_netgroup = BTreeMap::from([
        (NetGroup::Ipv4([203, 0]), 2),
        (NetGroup::of_addr(&addr(3, 4001)).unwrap(), 1),
        (NetGroup::of_addr(&addr(4, 4001)).unwrap(), 1),
    ]);
    expected.tried = 1;
    expected.suspicious = 1;
    expected.banned = 1;
    expected.success_count = 7;
    expected.failure_count = 13;
    expected.anchors = 3;
    assert_eq!(st, expected);
    assert_eq!(s.stats(NOW + 1).banned, 0);
    // Updated by every write.
    s.record_failure(&peer(1), NOW).unwrap();
    s.remove(&peer(2)).unwrap();
    let st = s.stats(NOW);
    assert_eq!((st.entries, st.failure_count, st.suspicious), (4, 3, 0));
    assert_eq!(st.by_netgroup.get(&NetGroup::Ipv4([203, 0])), Some(&1));
}
