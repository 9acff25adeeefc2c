//! Tests of the store operations: upserts, learning, reads, bans and GC.

use std::collections::HashSet;

use dsdn_protocols::{PeerSource, ServiceSet, ServiceType};
use redb::ReadableDatabase;

use super::txn::PEERS;
use super::*;
use crate::record::tests::{addr, net, peer};
use crate::score::score;

pub(super) const NOW: u64 = 1_700_000_000;
pub(super) const HOUR: u64 = 3600;
pub(super) const DAY: u64 = 24 * HOUR;

pub(super) fn store() -> (tempfile::TempDir, PeerStore) {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = PeerStore::open(&dir.path().join("peers.dat"), &net()).unwrap();
    (dir, s)
}

pub(super) fn svc(types: &[ServiceType]) -> ServiceSet {
    ServiceSet::from_types(types.iter().copied())
}

/// A record as if learned at `first_seen`.
pub(super) fn rec(n: u64, first_seen: u64) -> PeerRecord {
    PeerRecord::new(
        peer(n),
        vec![addr(n as u32, 4001)],
        net(),
        ServiceSet::EMPTY,
        PeerSource::PeerExchange,
        first_seen,
    )
}

/// Writes records directly, bypassing capacity checks (test setup only), in one transaction.
pub(super) fn bulk_put(s: &PeerStore, records: &[PeerRecord]) {
    s.write(|ctx| {
        for r in records {
            ctx.put(r)?;
        }
        Ok(())
    })
    .unwrap();
}

/// Learns peer `n` (one address) from PEX at [`NOW`].
pub(super) fn learn_n(s: &PeerStore, n: u64) {
    s.learn(
        peer(n),
        &[addr(n as u32, 1)],
        ServiceSet::EMPTY,
        PeerSource::PeerExchange,
        NOW,
    )
    .unwrap();
}

pub(super) fn ids(v: &[PeerRecord]) -> Vec<PeerId> {
    v.iter().map(|r| r.peer_id).collect()
}

#[test]
fn record_success_inserts_then_updates() {
    let (_d, s) = store();
    let storage = svc(&[ServiceType::Storage]);
    s.record_success(
        peer(1),
        &[addr(1, 1), addr(1, 1)],
        storage,
        PeerSource::DnsSeed,
        NOW,
    )
    .unwrap();
    let r = s.get(&peer(1)).unwrap().unwrap();
    assert_eq!(r.addrs, vec![addr(1, 1)], "deduplicated");
    assert_eq!(
        (r.first_seen, r.last_seen, r.last_success),
        (NOW, NOW, Some(NOW))
    );
    assert_eq!(
        (r.success_count, r.source, r.services),
        (1, PeerSource::DnsSeed, storage)
    );
    assert_eq!(r.network, net());

    s.record_failure(&peer(1), NOW + 1).unwrap();
    s.record_failure(&peer(1), NOW + 2).unwrap();
    let chain = svc(&[ServiceType::Chain]);
    s.record_success(
        peer(1),
        &[addr(2, 2)],
        chain,
        PeerSource::PeerExchange,
        NOW + 10,
    )
    .unwrap();
    let r = s.get(&peer(1)).unwrap().unwrap();
    assert_eq!(
        r.addrs,
        vec![addr(2, 2)],
        "verified addresses replace old ones"
    );
    assert_eq!(r.services, chain);
    assert_eq!(
        r.source,
        PeerSource::DnsSeed,
        "source kept from the first insert"
    );
    assert_eq!(
        (r.first_seen, r.last_seen, r.last_success),
        (NOW, NOW + 10, Some(NOW + 10))
    );
    assert_eq!(
        (r.success_count, r.failure_count, r.consecutive_failures),
        (2, 2, 0)
    );
    assert_eq!(r.last_attempt, Some(NOW + 2));
    assert_eq!(s.len(), 1);
}

#[test]
fn record_failure_counts_and_marks_suspicious() {
    let (_d, s) = store();
    assert!(
        !s.record_failure(&peer(1), NOW).unwrap(),
        "unknown peer: no-op"
    );
    assert_eq!(s.len(), 0);
    s.learn(
        peer(1),
        &[addr(1, 1)],
        ServiceSet::EMPTY,
        PeerSource::DnsSeed,
        NOW,
    )
    .unwrap();
    for i in 0..10 {
        assert!(!s.get(&peer(1)).unwrap().unwrap().is_suspicious());
        assert!(s.record_failure(&peer(1), NOW + i).unwrap());
    }
    let r = s.get(&peer(1)).unwrap().unwrap();
    assert!(r.is_suspicious());
    assert_eq!(
        (r.failure_count, r.consecutive_failures, r.last_attempt),
        (10, 10, Some(NOW + 9))
    );
    assert_eq!(score(&r, NOW), 100 - 30);
}

#[test]
fn learn_inserts_only_unknown_unbanned_peers_with_addresses() {
    let (_d, s) = store();
    let storage = svc(&[ServiceType::Storage]);
    assert!(s
        .learn(
            peer(1),
            &[addr(1, 1)],
            storage,
            PeerSource::PeerExchange,
            NOW
        )
        .unwrap());
    let r = s.get(&peer(1)).unwrap().unwrap();
    assert_eq!(r, {
        let mut e = rec(1, NOW);
        e.addrs = vec![addr(1, 1)];
        e.services = storage;
        e
    });
    // Known: unchanged.
    assert!(!s
        .learn(
            peer(1),
            &[addr(7, 7)],
            ServiceSet::EMPTY,
            PeerSource::DnsSeed,
            NOW + 5
        )
        .unwrap());
    assert_eq!(s.get(&peer(1)).unwrap().unwrap(), r);
    // Verified data is never overwritten.
    s.record_success(peer(2), &[addr(2, 2)], storage, PeerSource::Inbound, NOW)
        .unwrap();
    let verified = s.get(&peer(2)).unwrap().unwrap();
    assert!(!s
        .learn(
            peer(2),
            &[addr(8, 8)],
            ServiceSet::EMPTY,
            PeerSource::PeerExchange,
            NOW + 1
        )
        .unwrap());
    assert_eq!(s.get(&peer(2)).unwrap().unwrap(), verified);
    // Banned: not inserted (placeholder kept as is).
    s.ban(&peer(3), NOW + DAY, NOW, BanCause::new("test", None))
        .unwrap();
    assert!(!s
        .learn(
            peer(3),
            &[addr(3, 3)],
            storage,
            PeerSource::PeerExchange,
            NOW
        )
        .unwrap());
    assert!(s.get(&peer(3)).unwrap().unwrap().addrs.is_empty());
    // No usable address: not inserted.
    assert!(!s
        .learn(peer(4), &[], storage, PeerSource::PeerExchange, NOW)
        .unwrap());
    assert!(!s
        .learn(
            peer(4),
            &[Multiaddr::empty()],
            storage,
            PeerSource::PeerExchange,
            NOW
        )
        .unwrap());
    assert_eq!(s.len(), 3);
}

#[test]
fn learn_many_is_one_batch() {
    let (_d, s) = store();
    let batch: Vec<LearnedPeer> = (0..50)
        .chain([3, 4]) // duplicates within the batch
        .map(|n| LearnedPeer {
            peer_id: peer(n),
            addrs: vec![addr(n as u32, 1)],
            services: ServiceSet::EMPTY,
        })
        .collect();
    assert_eq!(
        s.learn_many(&batch, PeerSource::PeerExchange, NOW).unwrap(),
        50
    );
    assert_eq!(
        s.learn_many(&batch, PeerSource::PeerExchange, NOW).unwrap(),
        0
    );
    assert_eq!(s.len(), 50);
}

#[test]
fn pex_entry_conversions() {
    let (_d, s) = store();
    s.record_success(
        peer(1),
        &[addr(1, 1)],
        svc(&[ServiceType::Storage]),
        PeerSource::Inbound,
        NOW,
    )
    .unwrap();
    let entry = s.get(&peer(1)).unwrap().unwrap().to_pex_entry();
    assert_eq!(entry.last_success_unix, NOW);
    let learned = LearnedPeer::from_pex_entry(&entry).unwrap();
    assert_eq!(learned.peer_id, peer(1));
    assert_eq!(learned.addrs, vec![addr(1, 1)]);
    let mut bad = entry.clone();
    bad.node_id = vec![1, 2, 3];
    assert!(LearnedPeer::from_pex_entry(&bad).is_none());
    let mut bad = entry;
    bad.addrs = vec![serde_bytes::ByteBuf::from(vec![0xff; 4])];
    assert!(LearnedPeer::from_pex_entry(&bad).is_none());
}

#[test]
fn get_all_remove_clear() {
    let (_d, s) = store();
    s.learn(
        peer(1),
        &[addr(1, 1)],
        ServiceSet::EMPTY,
        PeerSource::DnsSeed,
        NOW,
    )
    .unwrap();
    s.record_success(
        peer(2),
        &[addr(2, 1)],
        ServiceSet::EMPTY,
        PeerSource::DnsSeed,
        NOW - DAY,
    )
    .unwrap();
    s.record_success(
        peer(3),
        &[addr(3, 1)],
        ServiceSet::EMPTY,
        PeerSource::DnsSeed,
        NOW,
    )
    .unwrap();
    assert_eq!(
        ids(&s.all().unwrap()),
        vec![peer(3), peer(2), peer(1)],
        "latest success first"
    );
    assert!(s.get(&peer(4)).unwrap().is_none());
    assert!(s.remove(&peer(2)).unwrap());
    assert!(!s.remove(&peer(2)).unwrap());
    assert_eq!(s.len(), 2);
    assert!(!s.is_empty());
    s.clear().unwrap();
    assert!(s.is_empty());
    assert!(s.all().unwrap().is_empty());
    assert!(s
        .learn(
            peer(1),
            &[addr(1, 1)],
            ServiceSet::EMPTY,
            PeerSource::DnsSeed,
            NOW
        )
        .unwrap());
}

#[test]
fn undecodable_record_is_deleted_at_open() {
    let (d, s) = store();
    for n in 1..=2 {
        s.learn(
            peer(n),
            &[addr(n as u32, 1)],
            ServiceSet::EMPTY,
            PeerSource::DnsSeed,
            NOW,
        )
        .unwrap();
    }
    s.flush().unwrap();
    drop(s);
    let path = d.path().join("peers.dat");
    let overwrite = |n: u64| {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(PEERS)
            .unwrap()
            .insert(peer(n).to_bytes().as_slice(), &[0xa0u8][..])
            .unwrap();
        txn.commit().unwrap();
    };
    overwrite(1);
    let (s, report) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(report.purged_records, 1);
    assert_eq!(ids(&s.all().unwrap()), vec![peer(2)]);
    assert_eq!(s.len(), 1);
    drop(s);
    overwrite(2);
    let (s, report) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(report.purged_records, 1);
    assert!(s.get(&peer(2)).unwrap().is_none());
    assert_eq!(s.len(), 0);
    drop(s);
    let db = redb::Database::open(&path).unwrap();
    let txn = db.begin_read().unwrap();
    assert!(redb::ReadableTableMetadata::is_empty(&txn.open_table(PEERS).unwrap()).unwrap());
}

#[test]
fn bans() {
    let (_d, s) = store();
    s.record_success(
        peer(1),
        &[addr(1, 1)],
        ServiceSet::EMPTY,
        PeerSource::DnsSeed,
        NOW,
    )
    .unwrap();
    s.ban(&peer(1), NOW + 100, NOW, BanCause::new("test", None))
        .unwrap();
    assert!(s.is_banned(&peer(1), NOW + 99).unwrap());
    assert!(
        !s.is_banned(&peer(1), NOW + 100).unwrap(),
        "until is exclusive"
    );
    assert_eq!(
        s.get(&peer(1)).unwrap().unwrap().success_count,
        1,
        "record kept"
    );
    // A success does not lift a ban.
    s.record_success(
        peer(1),
        &[addr(1, 1)],
        ServiceSet::EMPTY,
        PeerSource::DnsSeed,
        NOW + 1,
    )
    .unwrap();
    assert!(s.is_banned(&peer(1), NOW + 2).unwrap());
    assert!(s.unban(&peer(1)).unwrap());
    assert!(!s.unban(&peer(1)).unwrap());
    assert!(!s.is_banned(&peer(1), NOW).unwrap());
    // Unknown peer: placeholder.
    s.ban(&peer(2), NOW + 100, NOW, BanCause::new("test", None))
        .unwrap();
    let r = s.get(&peer(2)).unwrap().unwrap();
    assert_eq!(
        (r.addrs.len(), r.first_seen, r.banned_until),
        (0, NOW, Some(NOW + 100))
    );
    assert!(!s.is_banned(&peer(3), NOW).unwrap());
    assert!(!s.unban(&peer(3)).unwrap());
}

#[test]
fn config_bans_are_lifted_when_the_configuration_changes() {
    let (dir, s) = store();
    s.ban(
        &peer(1),
        NOW + DAY,
        NOW,
        BanCause::new("da_invalid_blob", Some(7)),
    )
    .unwrap();
    s.ban(
        &peer(2),
        NOW + DAY,
        NOW,
        BanCause::new("pex_malformed", None),
    )
    .unwrap();
    s.ban(
        &peer(3),
        NOW + DAY,
        NOW,
        BanCause::new("da_invalid_blob", Some(8)),
    )
    .unwrap();
    // The cause survives a reopen.
    s.flush().unwrap();
    drop(s);
    let (s, _) = PeerStore::open(&dir.path().join("peers.dat"), &net()).unwrap();
    assert_eq!(
        s.get(&peer(1)).unwrap().unwrap().ban_cause,
        Some(BanCause::new("da_invalid_blob", Some(7)))
    );
    // Same configuration (7): only the ban made under configuration 8 is lifted.
    assert_eq!(s.lift_config_bans(7).unwrap(), 1);
    assert!(s.is_banned(&peer(1), NOW).unwrap());
    assert!(s.is_banned(&peer(2), NOW).unwrap());
    assert!(!s.is_banned(&peer(3), NOW).unwrap());
    assert_eq!(s.get(&peer(3)).unwrap().unwrap().ban_cause, None);
    // A new configuration lifts the other one; a ban not resting on it stays.
    assert_eq!(s.lift_config_bans(9).unwrap(), 1);
    assert!(!s.is_banned(&peer(1), NOW).unwrap());
    assert!(s.is_banned(&peer(2), NOW).unwrap());
    assert_eq!(s.unban_all().unwrap(), 1);
    assert!(!s.is_banned(&peer(2), NOW).unwrap());
    assert_eq!(s.unban_all().unwrap(), 0);
}

#[test]
fn gc_after_thirty_days() {
    let (_d, s) = store();
    let t0 = NOW - 30 * DAY;
    let mut never = rec(1, t0); // learned exactly 30 days ago: kept
    let older = rec(2, t0 - 1); // learned 30 days + 1 s ago: removed
    let mut stale_success = rec(3, t0 - 100); // last success > 30 days ago: removed
    stale_success.last_success = Some(t0 - 1);
    stale_success.success_count = 5;
    let mut old_but_recent = rec(4, t0 - 100); // first seen long ago, success recent: kept
    old_but_recent.last_success = Some(NOW - DAY);
    let mut banned_old = rec(5, t0 - 100); // ban in force: kept
    banned_old.banned_until = Some(NOW + 1);
    let mut expired_ban = rec(6, NOW - DAY); // recent, expired ban: kept, flag cleared
    expired_ban.banned_until = Some(NOW - 1);
    never.failure_count = 3;
    bulk_put(
        &s,
        &[
            never,
            older,
            stale_success,
            old_but_recent,
            banned_old,
            expired_ban,
        ],
    );
    assert_eq!(s.gc(NOW).unwrap(), 2);
    let left: HashSet<PeerId> = ids(&s.all().unwrap()).into_iter().collect();
    assert_eq!(left, [1, 4, 5, 6].map(peer).into_iter().collect());
    assert_eq!(s.len(), 4);
    assert_eq!(s.get(&peer(6)).unwrap().unwrap().banned_until, None);
    assert_eq!(
        s.get(&peer(5)).unwrap().unwrap().banned_until,
        Some(NOW + 1)
    );
    // One second later the first one goes too; once its ban expires, so does 5.
    assert_eq!(s.gc(NOW + 1).unwrap(), 2);
    assert_eq!(ids(&s.all().unwrap()), vec![peer(4), peer(6)]);
    assert_eq!(s.gc(NOW + 1).unwrap(), 0);
}

#[test]
fn thread_safe_and_consistent_under_concurrent_writers() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    assert_send_sync::<PeerStore>();
    assert_send_sync::<StoreError>();
    let (_d, s) = store();
    let s = std::sync::Arc::new(s);
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let s = s.clone();
            std::thread::spawn(move || {
                for i in 0..20u64 {
                    let n = t * 100 + i;
                    learn_n(&s, n);
                    s.record_failure(&peer(n), NOW).unwrap();
                    if i % 3 == 0 {
                        s.remove(&peer(n)).unwrap();
                    }
                    s.all().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(s.len(), 4 * (20 - 7));
    assert_eq!(s.all().unwrap().len(), s.len());
}

#[test]
fn all_orders_by_last_success_then_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = PeerStore::open(&dir.path().join("peers.dat"), &net()).unwrap();
    // PeerIds of different digest sizes, and ed25519-shaped ones sharing a 16-byte prefix.
    let mut ids: Vec<PeerId> = (0..40).map(|n| peer(n * 7919)).collect();
    for n in 0..40u8 {
        let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
        b.extend_from_slice(&[7; 12]);
        b.extend_from_slice(&[n % 5, 0, 0, n / 5]);
        b.extend_from_slice(&[n; 16]);
        ids.push(PeerId::from_bytes(&b).unwrap());
    }
    // SHA-256 multihashes (another code).
    for n in 0..3u8 {
        let mut b = vec![0x12, 0x20];
        b.extend_from_slice(&[n; 32]);
        ids.push(PeerId::from_bytes(&b).unwrap());
    }
    for (i, id) in ids.iter().enumerate() {
        s.learn(
            *id,
            &[addr(i as u32, 1)],
            ServiceSet::EMPTY,
            PeerSource::DnsSeed,
            1,
        )
        .unwrap();
        if i % 3 != 0 {
            let at = 100 + (i % 4) as u64;
            s.record_success(
                *id,
                &[addr(i as u32, 1)],
                ServiceSet::EMPTY,
                PeerSource::DnsSeed,
                at,
            )
            .unwrap();
        }
    }
    let all = s.all().unwrap();
    let mut expected = all.clone();
    expected.sort_by(|a, b| {
        b.last_success
            .cmp(&a.last_success)
            .then_with(|| a.peer_id.cmp(&b.peer_id))
    });
    assert_eq!(all.len(), ids.len());
    assert_eq!(all, expected);
}
