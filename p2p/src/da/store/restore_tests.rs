//! State sync at the store level: a log restored from another log's chunks at a checkpoint
//! starts after it, follows the same blobs to the same roots, serves proofs and chunks,
//! survives restarts, and an interrupted restore starts again.

use std::path::Path;
use std::sync::Arc;

use dsdn_protocols::da::state::StateProof;
use dsdn_protocols::da::state_sync::{StateChunkResponse, StateRestore};
use dsdn_protocols::da::{DaBlob, DaEvent, StateKey};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;

use super::*;
use crate::da::store::OfflineState;

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

fn key() -> SigningKey {
    SigningKey::from_bytes(&[3; 32])
}

fn events(h: u64) -> Vec<DaEvent> {
    let register = |id: String, capacity_bytes| DaEvent::NodeRegistered {
        node_id: id,
        zone: format!("z{}", h % 3),
        capacity_bytes,
        class: "regular".into(),
    };
    vec![
        register(format!("n{h}a"), h),
        register(format!("n{h}b"), h),
        register(format!("n{}", h % 5), h),
    ]
}

/// A log of `blobs` blobs with its state at `path`.
fn source(path: &Path, blobs: u64) {
    let mut s = OfflineState::open(path, &net()).unwrap();
    for h in 1..=blobs {
        let b = s
            .state()
            .seal_next(&key(), h, events(h))
            .unwrap()
            .verify(&net(), &key().verifying_key().to_bytes())
            .unwrap();
        s.apply(&b).unwrap();
        if h % 10 == 0 {
            s.flush().unwrap();
        }
    }
    s.flush().unwrap();
}

fn open(path: &Path) -> Arc<DaStore> {
    Arc::new(DaStore::open(path, &net()).unwrap().store)
}

/// The checkpoint at `height` as a new node learns it: from blob `height + 1`.
fn checkpoint(source: &DaStore, height: u64) -> StateHeader {
    let next = DaBlob::from_bytes(&source.get(height + 1).unwrap().unwrap()).unwrap();
    StateHeader {
        height,
        tip_hash: next.prev_hash,
        root: next.prev_state_root,
        ..StateHeader::genesis()
    }
}

/// Restores `target` from `source`'s chunks of `per` entries at `checkpoint`.
fn sync(source: &Arc<DaStore>, target: &DaStore, checkpoint: StateHeader, per: u32) -> usize {
    let mut r = StateRestore::new(checkpoint).unwrap();
    target.restore_begin().unwrap();
    let mut chunks = 0;
    while let Some(request) = r.next_request(per) {
        let StateChunkResponse::Chunk(chunk) = source.state_chunk(&request) else {
            panic!("no chunk");
        };
        let part = r.add(&chunk).unwrap();
        target.restore_part(checkpoint.height, &part).unwrap();
        chunks += 1;
    }
    target.restore_finish(&r.header()).unwrap();
    chunks
}

#[test]
fn a_restored_log_follows_to_the_same_roots_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, b_path) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    source(&a_path, 40);
    let a = open(&a_path);
    let cp = checkpoint(&a, 30);
    {
        let b = open(&b_path);
        let chunks = sync(&a, &b, cp, 16);
        assert!(chunks > 3, "{chunks} chunks");
        assert_eq!((b.base(), b.tip(), b.state_tip()), (30, 30, 30));
        assert_eq!(b.state_root_at(30).unwrap(), Some(cp.root.0));
        assert_eq!(b.state_root_at(29).unwrap(), None);
        // Nothing stored at or below the base.
        assert!(b.range(1, 10, 1 << 20).unwrap().is_empty());
        assert!(b.range(30, 10, 1 << 20).unwrap().is_empty());
        assert_eq!(b.get(30).unwrap(), None);
        // A blob other than base + 1 is refused.
        assert!(b.append(&[(30, &[1u8][..])]).is_err());
    }
    {
        // The synced log follows the source's blobs: the same root at every height.
        let mut s = OfflineState::open(&b_path, &net()).unwrap();
        assert_eq!(s.state().height(), 30);
        assert_eq!(s.state().state_root(), cp.root.0);
        for h in 31..=40 {
            let bytes = a.get(h).unwrap().unwrap();
            let b =
                DaBlob::decode_verified(&bytes, &net(), &key().verifying_key().to_bytes()).unwrap();
            s.apply(&b).unwrap();
            if h % 4 == 0 {
                s.flush().unwrap();
            }
        }
        s.flush().unwrap();
        let (ha, hb) = (a.state_header().unwrap().unwrap(), *s.state().header());
        // The event counters too: the source gave those it recorded with root 30.
        assert_eq!(
            (
                ha.root,
                ha.nodes,
                ha.zones,
                ha.tip_hash,
                ha.events,
                ha.ignored
            ),
            (
                hb.root,
                hb.nodes,
                hb.zones,
                hb.tip_hash,
                hb.events,
                hb.ignored
            )
        );
        assert!(ha.events > 0);
    }
    // Restart: base, tip and roots kept; proofs and chunks served.
    let b = open(&b_path);
    assert_eq!((b.base(), b.tip(), b.state_tip()), (30, 40, 40));
    for h in 30..=40 {
        assert_eq!(
            b.state_root_at(h).unwrap(),
            a.state_root_at(h).unwrap(),
            "{h}"
        );
    }
    assert_eq!(
        b.range(31, 100, 1 << 20).unwrap(),
        a.range(31, 100, 1 << 20).unwrap()
    );
    let (reader, _) = StoredState::open(Arc::clone(&b)).unwrap();
    let root = a.state_root_at(40).unwrap().unwrap();
    for k in ["node:n7a", "node:n3", "zone:z1", "node:absent"] {
        let key = StateKey::parse(k).unwrap();
        let p = StateProof::build(&reader, &key, 40, root).unwrap();
        let (ra, _) = StoredState::open(Arc::clone(&a)).unwrap();
        let q = StateProof::build(&ra, &key, 40, root).unwrap();
        assert_eq!(p.verify(root).unwrap(), q.verify(root).unwrap(), "{k}");
    }
    // The synced log serves state sync from its base, not below.
    let req = |height| StateChunkRequest {
        height,
        after: None,
        max_entries: 10,
    };
    assert!(matches!(
        b.state_chunk(&req(29)),
        StateChunkResponse::HeightUnavailable {
            height: 29,
            oldest: 30,
            newest: 40
        }
    ));
    let c_path = dir.path().join("c.redb");
    let c = open(&c_path);
    sync(&b, &c, checkpoint(&b, 35), 7);
    assert_eq!(c.state_root_at(35).unwrap(), a.state_root_at(35).unwrap());
}

#[test]
fn an_interrupted_restore_starts_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, b_path) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    source(&a_path, 12);
    let a = open(&a_path);
    let cp = checkpoint(&a, 11);
    {
        let b = open(&b_path);
        let mut r = StateRestore::new(cp).unwrap();
        b.restore_begin().unwrap();
        let StateChunkResponse::Chunk(chunk) = a.state_chunk(&r.next_request(5).unwrap()) else {
            panic!("no chunk");
        };
        b.restore_part(11, &r.add(&chunk).unwrap()).unwrap();
        // A restore needs an empty log.
        assert!(a.restore_begin().is_err());
    }
    let b = open(&b_path);
    assert_eq!((b.base(), b.tip(), b.state_tip()), (0, 0, 0));
    assert_eq!(b.state_header().unwrap(), None);
    assert!(b.restore_part(11, &Default::default()).is_err());
    sync(&a, &b, cp, 5);
    assert_eq!((b.base(), b.tip()), (11, 11));
    // A stored blob above the base that fails re-verification empties a synced log: its
    // state came from the removed heights' successors and cannot be rebuilt.
    b.append_with_state(&[(12, &a.get(12).unwrap().unwrap())], &[])
        .unwrap();
    assert_eq!(b.truncate_from(12).unwrap(), 1);
    assert_eq!((b.base(), b.tip()), (11, 11), "the state at 11 is kept");
    b.append(&[(12, &a.get(12).unwrap().unwrap())]).unwrap();
    assert_eq!(b.truncate_from(5).unwrap(), 1);
    assert_eq!((b.base(), b.tip(), b.state_tip()), (0, 0, 0));
    drop(b);
    let b = open(&b_path);
    assert_eq!((b.base(), b.tip(), b.state_tip()), (0, 0, 0));
    // Clearing the state of a synced log (a reindex) empties it.
    sync(&a, &b, cp, 5);
    assert_eq!(b.clear_state().unwrap(), 11);
    assert_eq!((b.base(), b.tip(), b.state_tip()), (0, 0, 0));
    drop(b);
    let b = open(&b_path);
    assert_eq!((b.base(), b.tip(), b.state_tip()), (0, 0, 0));
}

/// Writes `schema` into the meta table of the log at `path`.
fn set_schema(path: &Path, schema: u32) {
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(dsdn_peers::redb_file::META)
        .unwrap()
        .insert(
            dsdn_peers::redb_file::SCHEMA_KEY,
            schema.to_be_bytes().as_slice(),
        )
        .unwrap();
    txn.commit().unwrap();
}

#[test]
fn a_schema_2_or_3_log_is_upgraded_and_its_state_rebuilt() {
    for schema in [2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.redb");
        source(&path, 5);
        set_schema(&path, schema);
        let a = open(&path);
        // The blobs stay; the state (no preimages in schema 2, the old node keys and a
        // preimages table in schema 3) goes, to be rebuilt from them.
        assert_eq!((a.tip(), a.state_tip(), a.base()), (5, 0, 0), "{schema}");
        assert_eq!(a.state_header().unwrap(), None);
    }
}

#[test]
fn a_synced_schema_3_log_is_emptied_to_sync_again() {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, b_path) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    source(&a_path, 12);
    let a = open(&a_path);
    sync(&a, &open(&b_path), checkpoint(&a, 11), 5);
    set_schema(&b_path, 3);
    // Its state cannot be rebuilt from blobs it does not have.
    let b = open(&b_path);
    assert_eq!((b.base(), b.tip(), b.state_tip()), (0, 0, 0));
    assert_eq!(b.state_header().unwrap(), None);
}

#[test]
fn root_rows_carry_the_event_counters_and_old_rows_still_read() {
    use super::super::state::RootRow;
    let row = RootRow {
        root: [3; 32],
        counters: Some((40, 2)),
    };
    assert_eq!(row.encode().len(), 48);
    assert_eq!(RootRow::decode(&row.encode()), Some(row));
    // A row written before the counters were recorded: the root alone.
    let old = RootRow::decode(&[3; 32]).unwrap();
    assert_eq!((old.root, old.counters), ([3; 32], None));
    assert_eq!(RootRow::decode(&[3; 40]), None);
}
