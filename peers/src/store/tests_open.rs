//! Tests of opening peers.dat: persistence, corruption recovery, schema and network checks.

use std::fs;
use std::path::{Path, PathBuf};

use dsdn_protocols::{NetworkId, PeerSource, ServiceSet, ServiceType};
use proptest::prelude::*;
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::txn::PEERS;
use super::*;
use crate::record::tests::{addr, net, peer};
use crate::redb_file::{META, NETWORK_KEY, SCHEMA_KEY};

const NOW: u64 = 1_700_000_000;

fn dat(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("peers.dat")
}

/// Files in `dir` whose name starts with `peers.dat.corrupt-`.
fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("peers.dat.corrupt-")
        })
        .collect();
    v.sort();
    v
}

/// A store with three peers, closed again.
fn populated(path: &Path) -> Vec<PeerRecord> {
    let (s, report) = PeerStore::open(path, &net()).unwrap();
    assert_eq!(report, OpenReport::default());
    let storage = ServiceSet::from_types([ServiceType::Storage]);
    s.record_success(peer(1), &[addr(1, 1)], storage, PeerSource::DnsSeed, NOW)
        .unwrap();
    s.learn(
        peer(2),
        &[addr(2, 2)],
        storage,
        PeerSource::PeerExchange,
        NOW,
    )
    .unwrap();
    s.record_failure(&peer(1), NOW + 5).unwrap();
    s.ban(&peer(3), NOW + 100, NOW, BanCause::new("test", None))
        .unwrap();
    s.all().unwrap()
}

/// Asserts `path` is a usable, empty store now.
fn assert_fresh_and_usable(store: &PeerStore) {
    assert!(store.is_empty());
    assert!(store.all().unwrap().is_empty());
    assert!(store
        .learn(
            peer(9),
            &[addr(9, 9)],
            ServiceSet::EMPTY,
            PeerSource::DnsSeed,
            NOW
        )
        .unwrap());
    assert_eq!(store.len(), 1);
}

/// Rewrites meta values of a closed store with raw redb.
fn set_meta(path: &Path, key: &str, value: &[u8]) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn creates_a_fresh_store() {
    let dir = tempfile::tempdir().unwrap();
    let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert!(dat(&dir).exists());
    assert_eq!(s.path(), dat(&dir));
    assert_eq!(s.network(), &net());
    assert_fresh_and_usable(&s);
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let before = populated(&dat(&dir));
    assert_eq!(before.len(), 3);
    let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_eq!(s.len(), 3);
    assert_eq!(s.all().unwrap(), before);
    let p1 = s.get(&peer(1)).unwrap().unwrap();
    assert_eq!((p1.success_count, p1.failure_count), (1, 1));
    assert!(s.is_banned(&peer(3), NOW).unwrap());
    assert!(corrupt_files(dir.path()).is_empty());
}

#[test]
fn second_open_is_refused_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let (_s, _) = PeerStore::open(&dat(&dir), &net()).unwrap();
    let err = PeerStore::open(&dat(&dir), &net()).unwrap_err();
    assert!(matches!(err, StoreError::AlreadyOpen { .. }), "{err}");
    assert!(corrupt_files(dir.path()).is_empty());
}

#[test]
fn missing_directory_is_an_io_error_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("peers.dat");
    let err = PeerStore::open(&path, &net()).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
    let err = PeerStore::open(dir.path(), &net()).unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "a directory: {err}");
}

/// Opens a file with `bytes` as content and checks it was moved aside intact.
fn assert_moved_aside(dir: &tempfile::TempDir, bytes: &[u8]) {
    fs::write(dat(dir), bytes).unwrap();
    let (s, report) = PeerStore::open(&dat(dir), &net()).unwrap();
    let aside = report.moved_aside.clone().expect("moved aside");
    assert_eq!(corrupt_files(dir.path()), vec![aside.clone()]);
    assert_eq!(aside.parent(), Some(dir.path()));
    let name = aside.file_name().unwrap().to_string_lossy().into_owned();
    let secs: u64 = name
        .trim_start_matches("peers.dat.corrupt-")
        .parse()
        .unwrap();
    assert!(secs >= NOW, "unix seconds in the name: {name}");
    assert!(fs::read(&aside).unwrap() == bytes, "kept byte for byte");
    assert_fresh_and_usable(&s);
    drop(s);
    // The fresh file is a good store now.
    let (s, report) = PeerStore::open(&dat(dir), &net()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_eq!(s.len(), 1);
}

#[test]
fn random_bytes_are_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let bytes: Vec<u8> = (0..10_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    assert_moved_aside(&dir, &bytes);
}

#[test]
fn zero_length_file_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    assert_moved_aside(&dir, &[]);
}

#[test]
fn truncated_store_is_moved_aside() {
    for keep in [100usize, 512, 4096] {
        let dir = tempfile::tempdir().unwrap();
        populated(&dat(&dir));
        let full = fs::read(dat(&dir)).unwrap();
        assert!(full.len() > keep);
        assert_moved_aside(&dir, &full[..keep]);
    }
}

#[test]
fn newer_schema_is_refused_and_left_untouched() {
    let dir = tempfile::tempdir().unwrap();
    populated(&dat(&dir));
    let newer = SCHEMA_VERSION + 1;
    set_meta(&dat(&dir), SCHEMA_KEY, &newer.to_be_bytes());
    let before = fs::read(dat(&dir)).unwrap();
    let err = PeerStore::open(&dat(&dir), &net()).unwrap_err();
    match &err {
        StoreError::NewerSchema {
            file,
            found,
            supported,
        } => {
            assert_eq!(file, &dat(&dir));
            assert_eq!((*found, *supported), (newer, SCHEMA_VERSION));
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let msg = err.to_string();
    let (found, upto) = (
        format!("schema version {newer}"),
        format!("up to {SCHEMA_VERSION}"),
    );
    for needle in [
        found.as_str(),
        upto.as_str(),
        "newer dsdnd",
        "left untouched",
        "peers.dat",
    ] {
        assert!(msg.contains(needle), "{needle:?} not in {msg:?}");
    }
    // Not moved aside, not changed by a single byte, not mixed with a fresh store.
    assert!(corrupt_files(dir.path()).is_empty());
    assert_eq!(fs::read(dat(&dir)).unwrap(), before);
    let db = Database::open(dat(&dir)).unwrap();
    let txn = db.begin_read().unwrap();
    assert_eq!(
        txn.open_table(META)
            .unwrap()
            .get(SCHEMA_KEY)
            .unwrap()
            .unwrap()
            .value(),
        newer.to_be_bytes()
    );
    assert_eq!(
        redb::ReadableTableMetadata::len(&txn.open_table(PEERS).unwrap()).unwrap(),
        3
    );
}

#[test]
fn unknown_older_schema_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    populated(&dat(&dir));
    set_meta(&dat(&dir), SCHEMA_KEY, &0u32.to_be_bytes());
    let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    let aside = report.moved_aside.expect("moved aside");
    assert_eq!(report.upgraded_from, None);
    assert_fresh_and_usable(&s);
    // The old file is intact: still a redb store of schema 0 with its three peers.
    let db = Database::open(&aside).unwrap();
    let txn = db.begin_read().unwrap();
    let meta = txn.open_table(META).unwrap();
    assert_eq!(
        meta.get(SCHEMA_KEY).unwrap().unwrap().value(),
        0u32.to_be_bytes()
    );
    assert_eq!(
        redb::ReadableTableMetadata::len(&txn.open_table(PEERS).unwrap()).unwrap(),
        3
    );
}

#[test]
fn malformed_meta_is_moved_aside() {
    for (key, value) in [
        (SCHEMA_KEY, &b"\x00\x01"[..]),
        (SCHEMA_KEY, &0u32.to_be_bytes()[..]),
        (NETWORK_KEY, &b"Not A Network"[..]),
        (NETWORK_KEY, &b"\xff\xfe"[..]),
    ] {
        let dir = tempfile::tempdir().unwrap();
        populated(&dat(&dir));
        set_meta(&dat(&dir), key, value);
        let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
        assert!(report.moved_aside.is_some(), "{key} = {value:?}");
        assert_fresh_and_usable(&s);
    }
}

#[test]
fn foreign_redb_file_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(dat(&dir)).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<u64, u64> = TableDefinition::new("other");
        txn.open_table(other).unwrap().insert(1, 2).unwrap();
        txn.commit().unwrap();
    }
    let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    assert!(report.moved_aside.is_some());
    assert_fresh_and_usable(&s);
}

#[test]
fn empty_redb_file_is_initialised_in_place() {
    // A crash between redb's creation of the file and our first commit.
    let dir = tempfile::tempdir().unwrap();
    drop(Database::create(dat(&dir)).unwrap());
    let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_fresh_and_usable(&s);
}

#[test]
fn other_network_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let before = populated(&dat(&dir));
    let testnet = NetworkId::new("testnet").unwrap();
    match PeerStore::open(&dat(&dir), &testnet) {
        Err(StoreError::NetworkMismatch {
            file,
            expected,
            found,
        }) => {
            assert_eq!(file, dat(&dir));
            assert_eq!(expected, testnet);
            assert_eq!(found, net());
        }
        other => panic!("expected NetworkMismatch, got {other:?}"),
    }
    assert!(corrupt_files(dir.path()).is_empty());
    // Nothing was changed or dropped: it still opens for its own network.
    let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    assert_eq!(report, OpenReport::default());
    assert_eq!(s.all().unwrap(), before);
}

#[test]
fn undecodable_records_are_purged_at_open() {
    let dir = tempfile::tempdir().unwrap();
    populated(&dat(&dir));
    {
        let db = Database::open(dat(&dir)).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(PEERS).unwrap();
            // Garbage under a valid key, a valid record under a garbage key.
            t.insert(peer(1).to_bytes().as_slice(), &b"garbage"[..])
                .unwrap();
            let good = t
                .get(peer(2).to_bytes().as_slice())
                .unwrap()
                .unwrap()
                .value()
                .to_vec();
            t.insert(&b"not a peer id"[..], good.as_slice()).unwrap();
        }
        txn.commit().unwrap();
    }
    let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    assert_eq!(report.moved_aside, None);
    assert_eq!(report.purged_records, 2);
    assert_eq!(s.len(), 2);
    assert!(s.get(&peer(1)).unwrap().is_none());
    assert!(s.get(&peer(2)).unwrap().is_some());
    drop(s);
    let (_, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
    assert_eq!(report.purged_records, 0, "deleted for good");
}

#[test]
fn move_aside_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dat(&dir), b"one").unwrap();
    let a = crate::files::move_aside_at(&dat(&dir), 42).unwrap();
    fs::write(dat(&dir), b"two").unwrap();
    let b = crate::files::move_aside_at(&dat(&dir), 42).unwrap();
    assert_eq!(a, dir.path().join("peers.dat.corrupt-42"));
    assert_eq!(b, dir.path().join("peers.dat.corrupt-42.1"));
    assert_eq!(fs::read(a).unwrap(), b"one");
    assert_eq!(fs::read(b).unwrap(), b"two");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_as_peers_dat(bytes in proptest::collection::vec(any::<u8>(), 0..16_384)) {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dat(&dir), &bytes).unwrap();
        let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
        prop_assert!(report.moved_aside.is_some() || s.is_empty());
        assert_fresh_and_usable(&s);
    }

    #[test]
    fn damaged_real_store(flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..), 1..8)) {
        let dir = tempfile::tempdir().unwrap();
        populated(&dat(&dir));
        let mut bytes = fs::read(dat(&dir)).unwrap();
        for (at, x) in &flips {
            let i = at.index(bytes.len());
            bytes[i] ^= x;
        }
        fs::write(dat(&dir), &bytes).unwrap();
        let (s, report) = PeerStore::open(&dat(&dir), &net()).unwrap();
        // Either the damage missed everything that matters, or the file was moved aside;
        // whatever is returned is a valid record of this network.
        let all = s.all().unwrap();
        prop_assert_eq!(all.len(), s.len());
        prop_assert!(all.iter().all(|r| r.network == net()));
        if report.moved_aside.is_some() {
            prop_assert!(all.is_empty());
        }
    }
}
