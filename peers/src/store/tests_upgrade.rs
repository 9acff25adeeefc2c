//! Tests of the schema-1 → 3 upgrade (records with netgroups, anchors table) and of the
//! schema-2 → 3 upgrade (CBOR records rewritten in the compact v3 layout).

use dsdn_protocols::{PeerSource, ServiceSet};
use redb::{Database, ReadableDatabase, ReadableTable, TableHandle};

use super::txn::{ANCHORS, PEERS};
use super::*;
use crate::record::tests::{addr, net, peer};
use crate::record::{
    decode_record_versioned, encode_record_as, RECORD_V1, RECORD_V2, RECORD_VERSION,
};
use crate::redb_file::{META, SCHEMA_KEY};

const NOW: u64 = 1_700_000_000;

/// Writes a schema-1 peers.dat (v1 records, no anchors table) holding three peers; returns
/// them as the store reads them.
fn schema1_file(path: &std::path::Path) -> Vec<PeerRecord> {
    old_file(path, RECORD_V1)
}

/// Writes a peers.dat of schema `version` (1 or 2: its CBOR records; an anchors table only
/// in schema 2, holding peer 1) with three peers; returns them as the store reads them.
fn old_file(path: &std::path::Path, version: u8) -> Vec<PeerRecord> {
    let before = {
        let (s, _) = PeerStore::open(path, &net()).unwrap();
        s.record_success(
            peer(1),
            &[addr(1, 1)],
            ServiceSet::EMPTY,
            PeerSource::DnsSeed,
            NOW,
        )
        .unwrap();
        s.learn(
            peer(2),
            &["/dns4/seed.example/tcp/1".parse().unwrap(), addr(2, 2)],
            ServiceSet::EMPTY,
            PeerSource::PeerExchange,
            NOW,
        )
        .unwrap();
        s.ban(&peer(3), NOW + 100, NOW, BanCause::new("test", None))
            .unwrap();
        s.save_anchors(&[peer(1)]).unwrap();
        // The old layouts have no cause of a ban.
        let mut all = s.all().unwrap();
        for r in &mut all {
            r.ban_cause = None;
        }
        all
    };
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    {
        let mut t = txn.open_table(PEERS).unwrap();
        for r in &before {
            let old = encode_record_as(r, version).unwrap();
            t.insert(r.peer_id.to_bytes().as_slice(), old.as_slice())
                .unwrap();
        }
        txn.open_table(META)
            .unwrap()
            .insert(SCHEMA_KEY, u32::from(version).to_be_bytes().as_slice())
            .unwrap();
    }
    if version == RECORD_V1 {
        assert!(txn.delete_table(ANCHORS).unwrap());
    }
    txn.commit().unwrap();
    before
}

/// (schema version, record layout versions, has an anchors table) of a closed store.
fn layout(path: &std::path::Path) -> (u32, Vec<u8>, bool) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_read().unwrap();
    let schema = u32::from_be_bytes(
        txn.open_table(META)
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .unwrap()
            .value()
            .try_into()
            .unwrap(),
    );
    let versions = txn
        .open_table(PEERS)
        .unwrap()
        .iter()
        .unwrap()
        .map(|item| {
            let (k, v) = item.unwrap();
            decode_record_versioned(k.value(), v.value(), &net())
                .unwrap()
                .1
        })
        .collect();
    let anchors = txn
        .list_tables()
        .unwrap()
        .any(|t| t.name() == ANCHORS.name());
    (schema, versions, anchors)
}

#[test]
fn schema1_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    let before = schema1_file(&path);
    assert_eq!(layout(&path), (1, vec![RECORD_V1; 3], false));
    {
        let (s, report) = PeerStore::open(&path, &net()).unwrap();
        assert_eq!(report.upgraded_from, Some(1));
        assert_eq!(report.moved_aside, None);
        assert_eq!(report.purged_records, 0);
        assert_eq!(s.all().unwrap(), before, "nothing lost or changed");
        let p2 = s.get(&peer(2)).unwrap().unwrap();
        assert_eq!(
            p2.netgroup(),
            Some(crate::NetGroup::Dns("seed.example".into()))
        );
        assert_eq!(s.stats(NOW).by_netgroup.len(), 2);
        // The anchors table works right away.
        s.save_anchors(&[peer(1)]).unwrap();
    }
    assert_eq!(
        layout(&path),
        (SCHEMA_VERSION, vec![RECORD_VERSION; 3], true)
    );
    let (s, report) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(report, OpenReport::default(), "upgraded once");
    assert_eq!(s.all().unwrap(), before);
    assert_eq!(ids(&s.take_anchors(NOW).unwrap()), [peer(1)]);
}

#[test]
fn schema2_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    let before = old_file(&path, RECORD_V2);
    assert_eq!(layout(&path), (2, vec![RECORD_V2; 3], true));
    {
        let (s, report) = PeerStore::open(&path, &net()).unwrap();
        assert_eq!(report.upgraded_from, Some(2));
        assert_eq!(report.moved_aside, None);
        assert_eq!(report.purged_records, 0);
        assert_eq!(s.all().unwrap(), before, "nothing lost or changed");
        assert_eq!(s.stats(NOW).by_netgroup.len(), 2);
    }
    assert_eq!(
        layout(&path),
        (SCHEMA_VERSION, vec![RECORD_VERSION; 3], true)
    );
    let (s, report) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(report, OpenReport::default(), "upgraded once");
    assert_eq!(s.all().unwrap(), before);
    assert_eq!(
        ids(&s.take_anchors(NOW).unwrap()),
        [peer(1)],
        "anchors kept"
    );
}

fn ids(v: &[PeerRecord]) -> Vec<PeerId> {
    v.iter().map(|r| r.peer_id).collect()
}

#[test]
fn a_stray_v1_record_in_a_current_file_is_rewritten() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    let r = {
        let (s, _) = PeerStore::open(&path, &net()).unwrap();
        s.learn(
            peer(1),
            &[addr(1, 1)],
            ServiceSet::EMPTY,
            PeerSource::StaticConfig,
            NOW,
        )
        .unwrap();
        s.get(&peer(1)).unwrap().unwrap()
    };
    {
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(PEERS)
            .unwrap()
            .insert(
                r.peer_id.to_bytes().as_slice(),
                encode_record_as(&r, RECORD_V1).unwrap().as_slice(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
    let (s, report) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_eq!(s.get(&peer(1)).unwrap(), Some(r));
    drop(s);
    assert_eq!(layout(&path), (SCHEMA_VERSION, vec![RECORD_VERSION], true));
}

#[test]
fn tampered_netgroups_are_purged_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    {
        let (s, _) = PeerStore::open(&path, &net()).unwrap();
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
    }
    {
        // Swap peer 1's stored netgroup (`local:10.0.0.1`, its IP's 4 bytes after the address
        // bytes) for another one: the bytes stay a valid v3 record.
        let db = Database::open(&path).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(PEERS).unwrap();
            let key = peer(1).to_bytes();
            let bytes = t.get(key.as_slice()).unwrap().unwrap().value().to_vec();
            assert_eq!(bytes[0], RECORD_VERSION);
            let from = [10, 0, 0, 1];
            let at = bytes.windows(4).rposition(|w| w == from).unwrap();
            let mut tampered = bytes.clone();
            tampered[at + 3] = 9;
            t.insert(key.as_slice(), tampered.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let (s, report) = PeerStore::open(&path, &net()).unwrap();
    assert_eq!(report.purged_records, 1);
    assert!(s.get(&peer(1)).unwrap().is_none());
    assert!(s.get(&peer(2)).unwrap().is_some());
}
