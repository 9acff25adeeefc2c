//! Tests of the DA log store, its state tables and the move-aside helper.

use std::fs;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTableMetadata};

use super::files::{move_aside_at, unix_now};
use super::*;
use dsdn_peers::redb_file::{META, SCHEMA_KEY};

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

fn log_path(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join(DA_LOG_FILE)
}

fn open(path: &Path) -> DaStore {
    let opened = DaStore::open(path, &net()).unwrap();
    assert_eq!(opened.moved_aside, None);
    opened.store
}

/// The blob "bytes" of `height`: `len` copies of the height's low byte.
fn blob(height: u64, len: usize) -> Vec<u8> {
    vec![height as u8; len]
}

/// Appends heights `from..=to`, each `len` bytes, one call per blob.
fn fill(store: &DaStore, from: u64, to: u64, len: usize) {
    for h in from..=to {
        store.append(&[(h, &blob(h, len))]).unwrap();
    }
}

/// Files in `dir` whose name starts with `<DA_LOG_FILE>.corrupt-`.
fn corrupt_files(dir: &Path) -> Vec<PathBuf> {
    let prefix = format!("{DA_LOG_FILE}.corrupt-");
    let mut v: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(&prefix)
        })
        .collect();
    v.sort();
    v
}

/// Rewrites a meta value of a closed log with raw redb.
fn set_meta(path: &Path, key: &str, value: &[u8]) {
    let db = Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(META).unwrap().insert(key, value).unwrap();
    txn.commit().unwrap();
}

#[test]
fn append_tip_get_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&log_path(&dir));
    assert_eq!(store.tip(), 0);
    assert_eq!(store.get(1).unwrap(), None);
    assert!(store.range(1, 10, 1 << 20).unwrap().is_empty());

    let (b1, b2, b3) = (blob(1, 10), blob(2, 20), blob(3, 30));
    store
        .append(&[(1, &b1[..]), (2, &b2[..]), (3, &b3[..])])
        .unwrap();
    assert_eq!(store.tip(), 3);
    store.append(&[]).unwrap();
    assert_eq!(store.tip(), 3);
    fill(&store, 4, 6, 40);
    assert_eq!(store.tip(), 6);

    assert_eq!(store.get(0).unwrap(), None);
    assert_eq!(store.get(2).unwrap(), Some(b2.clone()));
    assert_eq!(store.get(6).unwrap(), Some(blob(6, 40)));
    assert_eq!(store.get(7).unwrap(), None);

    // Count bound.
    assert_eq!(
        store.range(2, 2, 1 << 20).unwrap(),
        vec![b2.clone(), b3.clone()]
    );
    assert_eq!(store.range(1, 100, 1 << 20).unwrap().len(), 6);
    assert!(store.range(1, 0, 1 << 20).unwrap().is_empty());
    // Byte bound: 10 + 20 + 30 = 60 fits exactly, 61 does not add the 40-byte blob 4.
    assert_eq!(store.range(1, 100, 60).unwrap(), vec![b1.clone(), b2, b3]);
    assert_eq!(store.range(1, 100, 99).unwrap().len(), 3);
    assert_eq!(store.range(1, 100, 100).unwrap().len(), 4);
    // At least one blob, even above the byte bound.
    assert_eq!(store.range(1, 100, 0).unwrap(), vec![b1.clone()]);
    assert_eq!(store.range(4, 100, 1).unwrap(), vec![blob(4, 40)]);
    // Nothing at `from`.
    assert!(store.range(0, 100, 1 << 20).unwrap().is_empty());
    assert!(store.range(7, 100, 1 << 20).unwrap().is_empty());
    assert_eq!(store.range(6, 100, 1 << 20).unwrap(), vec![blob(6, 40)]);
    assert!(format!("{store:?}").contains("tip: 6"));
    assert_eq!(store.path(), log_path(&dir));
}

#[test]
fn append_refuses_heights_out_of_order_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&log_path(&dir));
    let b = blob(0, 5);
    let err = store.append(&[(2, &b[..])]).unwrap_err();
    assert!(
        matches!(
            err,
            DaStoreError::NotConsecutive {
                expected: 1,
                got: 2
            }
        ),
        "{err}"
    );
    let err = store.append(&[(0, &b[..])]).unwrap_err();
    assert!(matches!(
        err,
        DaStoreError::NotConsecutive {
            expected: 1,
            got: 0
        }
    ));
    fill(&store, 1, 2, 5);
    // A gap inside one call: nothing of it is written.
    let err = store
        .append(&[(3, &b[..]), (4, &b[..]), (6, &b[..])])
        .unwrap_err();
    assert!(matches!(
        err,
        DaStoreError::NotConsecutive {
            expected: 5,
            got: 6
        }
    ));
    // Rewriting an existing height.
    let err = store.append(&[(2, &b[..])]).unwrap_err();
    assert!(matches!(
        err,
        DaStoreError::NotConsecutive {
            expected: 3,
            got: 2
        }
    ));
    assert_eq!(store.tip(), 2);
    assert_eq!(store.get(3).unwrap(), None);
    assert_eq!(store.get(2).unwrap(), Some(blob(2, 5)));
}

#[test]
fn reopen_keeps_the_tip_and_blobs() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&log_path(&dir));
        fill(&store, 1, 5, 100);
    }
    let store = open(&log_path(&dir));
    assert_eq!(store.tip(), 5);
    assert_eq!(store.get(5).unwrap(), Some(blob(5, 100)));
    fill(&store, 6, 6, 1);
    assert_eq!(store.tip(), 6);
    assert!(corrupt_files(dir.path()).is_empty());
}

#[test]
fn second_open_is_refused_while_open() {
    let dir = tempfile::tempdir().unwrap();
    let _store = open(&log_path(&dir));
    let err = DaStore::open(&log_path(&dir), &net()).unwrap_err();
    assert!(
        matches!(err, DaStoreError::Db(ref m) if m.contains("already open")),
        "{err}"
    );
    assert!(corrupt_files(dir.path()).is_empty());
}

#[test]
fn truncate_from_drops_the_height_and_everything_after() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&log_path(&dir));
        fill(&store, 1, 10, 8);
        assert_eq!(store.truncate_from(11).unwrap(), 0);
        assert_eq!(store.tip(), 10);
        assert_eq!(store.truncate_from(7).unwrap(), 4);
        assert_eq!(store.tip(), 6);
        assert_eq!(store.get(7).unwrap(), None);
        assert_eq!(store.get(6).unwrap(), Some(blob(6, 8)));
        // The log continues at the new tip.
        let err = store.append(&[(8, &blob(8, 1)[..])]).unwrap_err();
        assert!(matches!(
            err,
            DaStoreError::NotConsecutive {
                expected: 7,
                got: 8
            }
        ));
        fill(&store, 7, 7, 3);
        assert_eq!(store.get(7).unwrap(), Some(blob(7, 3)));
    }
    let store = open(&log_path(&dir));
    assert_eq!(store.tip(), 7);
    assert_eq!(store.truncate_from(0).unwrap(), 7);
    assert_eq!(store.tip(), 0);
    assert_eq!(store.get(1).unwrap(), None);
    assert_eq!(store.truncate_from(1).unwrap(), 0);
    drop(store);
    assert_eq!(open(&log_path(&dir)).tip(), 0);
}

#[test]
fn for_each_from_streams_in_order_and_stops_early() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&log_path(&dir));
    fill(&store, 1, 8, 4);
    let mut seen = Vec::new();
    store
        .for_each_from(3, |h, bytes| {
            assert_eq!(bytes, blob(h, 4).as_slice());
            seen.push(h);
            true
        })
        .unwrap();
    assert_eq!(seen, vec![3, 4, 5, 6, 7, 8]);
    seen.clear();
    store
        .for_each_from(0, |h, _| {
            seen.push(h);
            h < 2
        })
        .unwrap();
    assert_eq!(seen, vec![1, 2]);
    let mut calls = 0;
    store
        .for_each_from(9, |_, _| {
            calls += 1;
            true
        })
        .unwrap();
    assert_eq!(calls, 0);
}

#[test]
fn another_network_is_refused_and_the_file_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&log_path(&dir));
        fill(&store, 1, 3, 50);
    }
    let before = fs::read(log_path(&dir)).unwrap();
    let testnet = NetworkId::new("testnet").unwrap();
    let err = DaStore::open(&log_path(&dir), &testnet).unwrap_err();
    match &err {
        DaStoreError::WrongNetwork {
            file,
            expected,
            found,
        } => {
            assert_eq!(file, &log_path(&dir));
            assert_eq!(expected, &testnet);
            assert_eq!(found, &net());
        }
        other => panic!("unexpected {other}"),
    }
    assert!(err.to_string().contains("devnet"), "{err}");
    assert!(fs::read(log_path(&dir)).unwrap() == before, "file changed");
    assert!(corrupt_files(dir.path()).is_empty());
    // Still usable by its own network.
    assert_eq!(open(&log_path(&dir)).tip(), 3);
}

#[test]
fn a_newer_schema_is_refused_and_the_file_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&log_path(&dir));
        fill(&store, 1, 2, 50);
    }
    set_meta(
        &log_path(&dir),
        SCHEMA_KEY,
        &(SCHEMA_VERSION + 1).to_be_bytes(),
    );
    let before = fs::read(log_path(&dir)).unwrap();
    let err = DaStore::open(&log_path(&dir), &net()).unwrap_err();
    assert!(
        matches!(
            err,
            DaStoreError::NewerSchema {
                found: 5,
                supported: SCHEMA_VERSION,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("newer dsdnd"), "{err}");
    assert!(fs::read(log_path(&dir)).unwrap() == before, "file changed");
    assert!(corrupt_files(dir.path()).is_empty());
}

/// Asserts that opening the log in `dir` moves it aside and starts empty. With `same_bytes`
/// the moved file must be byte-for-byte the original (files redb cannot open at all; a
/// valid redb file that is not a DA log may have had its header rewritten by the open).
fn assert_moved_aside(dir: &tempfile::TempDir, same_bytes: bool) {
    let path = log_path(dir);
    let before = fs::read(&path).unwrap();
    let opened = DaStore::open(&path, &net()).unwrap();
    let target = opened.moved_aside.clone().expect("moved aside");
    assert_eq!(corrupt_files(dir.path()), vec![target.clone()]);
    if same_bytes {
        assert!(fs::read(&target).unwrap() == before, "moved file changed");
    }
    let store = opened.store;
    assert_eq!(store.tip(), 0);
    fill(&store, 1, 2, 7);
    drop(store);
    assert_eq!(open(&path).tip(), 2);
}

#[test]
fn random_bytes_are_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    let junk: Vec<u8> = (0..8192u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    fs::write(log_path(&dir), junk).unwrap();
    assert_moved_aside(&dir, true);
}

#[test]
fn a_truncated_log_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&log_path(&dir));
        fill(&store, 1, 40, 1000);
    }
    let bytes = fs::read(log_path(&dir)).unwrap();
    fs::write(log_path(&dir), &bytes[..bytes.len() / 2]).unwrap();
    assert_moved_aside(&dir, true);
}

#[test]
fn zero_length_and_foreign_tables_are_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(log_path(&dir), b"").unwrap();
    let opened = DaStore::open(&log_path(&dir), &net()).unwrap();
    assert!(opened.moved_aside.is_some());
    drop(opened);

    // A redb file with someone else's table and no meta.
    let dir = tempfile::tempdir().unwrap();
    {
        let db = Database::create(log_path(&dir)).unwrap();
        let txn = db.begin_write().unwrap();
        let other: TableDefinition<&str, u64> = TableDefinition::new("peers");
        txn.open_table(other).unwrap().insert("x", 1).unwrap();
        txn.commit().unwrap();
    }
    assert_moved_aside(&dir, false);

    // Our meta, but a blobs table of the wrong types.
    let dir = tempfile::tempdir().unwrap();
    {
        drop(open(&log_path(&dir)));
        let db = Database::open(log_path(&dir)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.delete_table(BLOBS).unwrap();
        let wrong: TableDefinition<&str, &str> = TableDefinition::new("blobs");
        txn.open_table(wrong).unwrap().insert("1", "x").unwrap();
        txn.commit().unwrap();
    }
    assert_moved_aside(&dir, false);
}

#[test]
fn a_gap_in_heights_or_schema_zero_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = open(&log_path(&dir));
        fill(&store, 1, 3, 5);
    }
    {
        let db = Database::open(log_path(&dir)).unwrap();
        let txn = db.begin_write().unwrap();
        txn.open_table(BLOBS).unwrap().remove(2).unwrap();
        txn.commit().unwrap();
        // Still readable as redb.
        let r = db.begin_read().unwrap();
        assert_eq!(r.open_table(BLOBS).unwrap().len().unwrap(), 2);
    }
    assert_moved_aside(&dir, false);

    let dir = tempfile::tempdir().unwrap();
    drop(open(&log_path(&dir)));
    set_meta(&log_path(&dir), SCHEMA_KEY, &0u32.to_be_bytes());
    assert_moved_aside(&dir, false);
}

#[test]
fn missing_directory_is_an_io_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join(DA_LOG_FILE);
    let err = DaStore::open(&path, &net()).unwrap_err();
    assert!(
        matches!(err, DaStoreError::Io(ref e) if e.kind() == io::ErrorKind::NotFound),
        "{err}"
    );
    let err = DaStore::open(dir.path(), &net()).unwrap_err();
    assert!(matches!(err, DaStoreError::Io(_)), "{err}");
}

const SOME_FILE: &str = "some-file";

#[test]
fn move_aside_names_with_timestamp_and_counter() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(SOME_FILE);
    for (i, want) in ["", ".1", ".2"].iter().enumerate() {
        fs::write(&path, [i as u8]).unwrap();
        let target = move_aside_at(&path, 1_700_000_000).unwrap();
        assert_eq!(
            target,
            dir.path()
                .join(format!("{SOME_FILE}.corrupt-1700000000{want}"))
        );
        assert_eq!(fs::read(&target).unwrap(), vec![i as u8]);
        assert!(!path.exists());
    }
    fs::write(&path, b"now").unwrap();
    let target = move_aside(&path).unwrap();
    let name = target.file_name().unwrap().to_string_lossy().into_owned();
    let secs: u64 = name
        .strip_prefix(&format!("{SOME_FILE}.corrupt-"))
        .unwrap()
        .parse()
        .unwrap();
    assert!(secs.abs_diff(unix_now()) < 60);
    assert_eq!(
        move_aside(&path).unwrap_err().kind(),
        io::ErrorKind::NotFound
    );
}

/// Every moved-aside file keeps the same number of copies: the shared helper of
/// `dsdn-peers` (peers.dat, the DA log and state, the committee's files) and the copy in
/// `dsdn-bootstrap` (the operator additions file), which does not depend on `dsdn-peers`.
#[test]
fn moved_aside_copies_are_capped_alike() {
    assert_eq!(
        dsdn_peers::files::KEEP_CORRUPT,
        dsdn_bootstrap::added::KEEP_CORRUPT
    );
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join(DA_LOG_FILE);
    for now in 1..=5 {
        std::fs::write(&log, b"not redb").unwrap();
        move_aside_at(&log, now).unwrap();
    }
    assert_eq!(
        corrupt_files(dir.path()).len(),
        dsdn_peers::files::KEEP_CORRUPT
    );
}

#[test]
fn a_closed_store_refuses_reads_and_writes_until_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(&log_path(&dir));
    fill(&store, 1, 3, 10);
    store.close_for_test();
    assert!(!store.is_open());
    assert!(store.get(1).is_err());
    assert!(store.range(1, 10, 1 << 20).is_err());
    assert!(store.append(&[(4, &blob(4, 10))]).is_err());
    assert_eq!(store.tip(), 3);
    store.reopen().unwrap();
    assert!(store.is_open());
    assert_eq!(store.tip(), 3);
    assert_eq!(store.get(2).unwrap(), Some(blob(2, 10)));
    fill(&store, 4, 5, 10);
    // Reopening an open store is harmless and keeps everything.
    store.reopen().unwrap();
    assert_eq!(
        (store.tip(), store.range(1, 10, 1 << 20).unwrap().len()),
        (5, 5)
    );
    assert!(corrupt_files(dir.path()).is_empty());
}
