//! The index-based [`PeerStore::dial_candidates`] and [`PeerStore::pex_entries`] against the
//! read-everything implementations they replaced, on random stores.

use std::collections::HashSet;

use dsdn_protocols::pex::MAX_PEX_ENTRIES;
use dsdn_protocols::{PeerSource, ServiceSet};
use proptest::prelude::*;

use super::tests_ops::{bulk_put, ids, rec, store, DAY, HOUR, NOW};
use super::txn::PEERS;
use super::*;
use crate::record::tests::peer;
use crate::score::dial_order;
use redb::ReadableTable;

/// The former `dial_candidates`: decode every record, filter, sort, truncate.
fn dial_candidates_read_all(
    s: &PeerStore,
    now: u64,
    exclude: &HashSet<PeerId>,
    limit: usize,
) -> Vec<PeerRecord> {
    let mut v: Vec<PeerRecord> = s
        .all()
        .unwrap()
        .into_iter()
        .filter(|r| !r.is_banned(now) && !exclude.contains(&r.peer_id) && !r.addrs.is_empty())
        .collect();
    v.sort_by(|a, b| dial_order(a, b, now));
    v.truncate(limit);
    v
}

/// The former `pex_entries`: decode every record, filter, sort, truncate.
fn pex_entries_read_all(
    s: &PeerStore,
    now: u64,
    requester: &PeerId,
    services: ServiceSet,
    limit: usize,
) -> Vec<PeerRecord> {
    let any = services.is_empty();
    let mut v: Vec<PeerRecord> = s
        .all()
        .unwrap()
        .into_iter()
        .filter(|r| {
            r.contacted_within(now, PEX_WINDOW_SECS)
                && !r.is_banned(now)
                && r.peer_id != *requester
                && !r.addrs.is_empty()
                && (any || r.services.bits() & services.bits() != 0)
        })
        .collect();
    v.sort_by(|a, b| dial_order(a, b, now));
    v.truncate(limit.min(MAX_PEX_ENTRIES));
    v
}

/// Overwrites the stored value of each of `peers` with bytes that do not decode (as a
/// damaged file would be) and opens the store again: the address book is in memory, so a
/// damaged file is only read, and its bad records purged, at open.
fn corrupt(dir: &tempfile::TempDir, s: PeerStore, peers: &[PeerId]) -> PeerStore {
    s.flush().unwrap();
    drop(s);
    let path = dir.path().join("peers.dat");
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut table = txn.open_table(PEERS).unwrap();
            for p in peers {
                let key = p.to_bytes();
                if table.get(key.as_slice()).unwrap().is_some() {
                    table
                        .insert(key.as_slice(), b"not a record".as_slice())
                        .unwrap();
                }
            }
        }
        txn.commit().unwrap();
    }
    PeerStore::open(&path, &crate::record::tests::net())
        .unwrap()
        .0
}

/// A record of peer `n` whose fields sit on few values, so that scores, last successes and
/// the PEX window boundary (`NOW - DAY`) tie often.
fn any_record(n: u64) -> impl Strategy<Value = PeerRecord> {
    (
        0u32..4,
        0u32..4,
        prop::sample::select(vec![0u32, 9, 10, 12]),
        prop::option::of(prop::sample::select(vec![
            NOW - 2 * DAY,
            NOW - DAY - 1,
            NOW - DAY,
            NOW - DAY + 1,
            NOW - 2 * HOUR,
            NOW - 1,
            NOW,
            NOW + 5,
        ])),
        prop::option::of(NOW - 2..NOW + 3),
        0u8..4,
        0u16..128,
        prop::sample::select(PeerSource::ALL.to_vec()),
    )
        .prop_map(
            move |(success, failure, consecutive, last_success, ban, addrs, services, source)| {
                let mut r = rec(n, NOW - 3 * DAY);
                r.success_count = success;
                r.failure_count = failure;
                r.consecutive_failures = consecutive;
                r.last_success = last_success;
                r.banned_until = ban;
                if addrs == 0 {
                    r.addrs.clear();
                }
                r.services = ServiceSet::from_bits(services);
                r.source = source;
                r
            },
        )
}

fn any_records() -> impl Strategy<Value = Vec<PeerRecord>> {
    (0usize..40).prop_flat_map(|len| (0..len as u64).map(any_record).collect::<Vec<_>>())
}

fn any_limit() -> impl Strategy<Value = usize> {
    prop_oneof![
        0usize..12,
        prop::sample::select(vec![39, 40, MAX_PEX_ENTRIES, usize::MAX])
    ]
}

fn any_services() -> impl Strategy<Value = ServiceSet> {
    prop_oneof![
        Just(ServiceSet::EMPTY),
        (0u16..128).prop_map(ServiceSet::from_bits)
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn pex_entries_equal_the_read_all_implementation(
        records in any_records(),
        requester in (0u64..45).prop_map(peer),
        services in any_services(),
        limit in any_limit(),
        now in NOW - 1..NOW + 3,
        damaged in prop::collection::vec((0u64..40).prop_map(peer), 0..3),
    ) {
        let (d, s) = store();
        bulk_put(&s, &records);
        let expected = pex_entries_read_all(&s, now, &requester, services, limit);
        prop_assert_eq!(&s.pex_entries(now, &requester, services, limit).unwrap(), &expected);
        // Damaged records are purged at the next open and replaced by the next best peers.
        let s = corrupt(&d, s, &damaged);
        let got = s.pex_entries(now, &requester, services, limit).unwrap();
        let expected = pex_entries_read_all(&s, now, &requester, services, limit);
        prop_assert_eq!(&got, &expected);
        prop_assert!(got.iter().all(|r| !damaged.contains(&r.peer_id)));
        prop_assert_eq!(s.pex_entries(now, &requester, services, limit).unwrap(), expected);
    }

    #[test]
    fn dial_candidates_equal_the_read_all_implementation(
        records in any_records(),
        exclude in prop::collection::hash_set((0u64..45).prop_map(peer), 0..6),
        limit in any_limit(),
        now in NOW - 1..NOW + 3,
        damaged in prop::collection::vec((0u64..40).prop_map(peer), 0..3),
    ) {
        let (d, s) = store();
        bulk_put(&s, &records);
        let expected = dial_candidates_read_all(&s, now, &exclude, limit);
        prop_assert_eq!(&s.dial_candidates(now, &exclude, limit).unwrap(), &expected);
        let s = corrupt(&d, s, &damaged);
        let got = s.dial_candidates(now, &exclude, limit).unwrap();
        let expected = dial_candidates_read_all(&s, now, &exclude, limit);
        prop_assert_eq!(&got, &expected);
        prop_assert!(got.iter().all(|r| !damaged.contains(&r.peer_id)));
        prop_assert_eq!(s.dial_candidates(now, &exclude, limit).unwrap(), expected);
    }
}

/// After writes through the public API (not just a bulk load), the index-based answers still
/// match the read-all ones.
#[test]
fn answers_follow_writes() {
    let (_d, s) = store();
    let none = HashSet::new();
    for n in 0..30u64 {
        s.record_success(
            peer(n),
            &[crate::record::tests::addr(n as u32, 1)],
            ServiceSet::from_bits((n % 7) as u16 + 1),
            PeerSource::DnsSeed,
            NOW - n * HOUR,
        )
        .unwrap();
    }
    for n in (0..30u64).step_by(4) {
        s.record_failure(&peer(n), NOW).unwrap();
    }
    s.ban(&peer(7), NOW + DAY, NOW, BanCause::new("test", None))
        .unwrap();
    s.remove(&peer(8)).unwrap();
    for now in [NOW, NOW + 6 * HOUR] {
        let got = s
            .pex_entries(now, &peer(3), ServiceSet::EMPTY, 1000)
            .unwrap();
        assert_eq!(
            got,
            pex_entries_read_all(&s, now, &peer(3), ServiceSet::EMPTY, 1000)
        );
        assert!(!ids(&got).contains(&peer(7)) && !ids(&got).contains(&peer(8)));
        assert_eq!(
            s.dial_candidates(now, &none, usize::MAX).unwrap(),
            dial_candidates_read_all(&s, now, &none, usize::MAX)
        );
    }
}
