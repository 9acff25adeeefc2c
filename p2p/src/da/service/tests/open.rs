//! Opening and replay: the stored state, its rebuild from the log, blobs that fail
//! re-verification, proofs at the current and older heights.

use super::*;

// ---- open and replay ------------------------------------------------------------------

#[test]
fn a_reopened_log_replays_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(20);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=20);
    let before = o.svc.view();
    assert_eq!((before.height, before.state_root), (20, chain.root(20)));
    assert_eq!(*o.height.borrow(), 20);
    assert_eq!(before.events, 60);
    assert_eq!((before.nodes, before.chunks, before.replicas), (20, 20, 20));
    drop(o);

    let o = open(dir.path());
    let after = o.svc.view();
    assert_eq!(after.height, 20);
    assert_eq!(after.tip_hash, chain.hash(20));
    assert_eq!(after.state_root, before.state_root);
    assert_eq!(after.events, before.events);
    assert_eq!(*o.height.borrow(), 20);
    assert_eq!(o.metrics.da_height.get(), 20);
    assert_eq!(o.metrics.da_events_accepted.get(), 60);
    // The state came from the disk, not from a replay.
    assert_eq!(o.svc.durable_height(), 20);
    // Proofs at the kept heights (the last TEST_HISTORY) verify after pruning and a
    // reopen; older heights are refused.
    let key = match &events(20, 0)[1] {
        DaEvent::NodeRegistered { node_id, .. } => {
            dsdn_protocols::da::StateKey::Node(node_id.clone())
        }
        other => panic!("{other:?}"),
    };
    let oldest = 20 - TEST_HISTORY;
    for h in oldest..=20 {
        let p = o.svc.proof(&key, Some(h)).unwrap();
        assert_eq!(
            p.verify(chain.root(h)).unwrap().1.is_some(),
            h == 20,
            "height {h}"
        );
    }
    assert!(matches!(
        o.svc.proof(&key, Some(oldest - 1)),
        Err(dsdn_protocols::da::StateError::HeightUnavailable { .. })
    ));
    drop(o);
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!((st.tip(), st.state_tip()), (20, 20));
    for h in [1, 7, 20] {
        assert_eq!(
            st.state_root_at(h).unwrap(),
            Some(chain.root(h)),
            "root at {h}"
        );
    }
}

#[test]
fn a_deleted_state_is_rebuilt_from_the_log_with_the_same_roots() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(12);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=12);
    drop(o);
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!(st.clear_state().unwrap(), 12);
    assert_eq!(st.state_header().unwrap(), None);
    drop(st);
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (12, chain.root(12)));
    assert_eq!((v.nodes, v.chunks, v.replicas), (12, 12, 12));
    drop(o);
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!(st.state_tip(), 12);
    for h in 1..=12 {
        assert_eq!(
            st.state_root_at(h).unwrap(),
            Some(chain.root(h)),
            "root at {h}"
        );
    }
}

/// Rewrites the state tables of the log at `path` as schema 3 stored them: tree nodes keyed
/// by borsh `NodeKey` (version little-endian first), version rows without the raw key, the
/// raw keys in `state_preimages`, schema 3 in the meta table.
fn downgrade_to_schema_3(path: &Path) {
    use crate::da::store::state::{node_key_from, VersionRow};
    use redb::{ReadableTable, TableDefinition};
    type Def = TableDefinition<'static, &'static [u8], &'static [u8]>;
    const NODES: Def = TableDefinition::new("state_nodes");
    const VERSIONS: Def = TableDefinition::new("state_versions");
    const PREIMAGES: Def = TableDefinition::new("state_preimages");
    let rows = |txn: &redb::WriteTransaction, t: Def| -> Vec<(Vec<u8>, Vec<u8>)> {
        let rows: Vec<_> = txn
            .open_table(t)
            .unwrap()
            .iter()
            .unwrap()
            .map(|r| {
                let (k, v) = r.unwrap();
                (k.value().to_vec(), v.value().to_vec())
            })
            .collect();
        assert!(!rows.is_empty());
        txn.delete_table(t).unwrap();
        rows
    };
    let db = redb::Database::open(path).unwrap();
    let txn = db.begin_write().unwrap();
    let nodes = rows(&txn, NODES);
    let versions = rows(&txn, VERSIONS);
    {
        let mut t = txn.open_table(NODES).unwrap();
        for (k, v) in &nodes {
            let key = borsh::to_vec(&node_key_from(k).unwrap()).unwrap();
            t.insert(key.as_slice(), v.as_slice()).unwrap();
        }
        let mut t = txn.open_table(VERSIONS).unwrap();
        let mut pre = txn.open_table(PREIMAGES).unwrap();
        for (k, v) in &versions {
            let old = match VersionRow::decode(v).unwrap() {
                VersionRow::Removed => vec![0],
                VersionRow::Set { raw, value } => {
                    pre.insert(&k[..32], raw).unwrap();
                    [&[1][..], value].concat()
                }
            };
            t.insert(k.as_slice(), old.as_slice()).unwrap();
        }
        txn.open_table(dsdn_peers::redb_file::META)
            .unwrap()
            .insert(
                dsdn_peers::redb_file::SCHEMA_KEY,
                3u32.to_be_bytes().as_slice(),
            )
            .unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn a_schema_3_log_is_rebuilt_from_its_blobs_to_the_same_roots() {
    use crate::da::store::state::node_key_from;
    use redb::{ReadableDatabase, ReadableTable, TableDefinition, TableHandle};
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(12);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=12);
    drop(o);
    let path = dir.path().join(DA_LOG_FILE);
    downgrade_to_schema_3(&path);
    // The old layout is not misread: the derived tables are dropped and rebuilt.
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (12, chain.root(12)));
    assert_eq!((v.nodes, v.chunks, v.replicas), (12, 12, 12));
    let key = match &events(12, 0)[1] {
        DaEvent::NodeRegistered { node_id, .. } => {
            dsdn_protocols::da::StateKey::Node(node_id.clone())
        }
        other => panic!("{other:?}"),
    };
    for h in 12 - TEST_HISTORY..=12 {
        let p = o.svc.proof(&key, Some(h)).unwrap();
        assert_eq!(p.verify(chain.root(h)).unwrap().1.is_some(), h == 12);
    }
    drop(o);
    {
        let db = redb::Database::open(&path).unwrap();
        let txn = db.begin_read().unwrap();
        let names: Vec<String> = txn
            .list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect();
        assert!(!names.iter().any(|n| n == "state_preimages"), "{names:?}");
        let nodes = txn
            .open_table(TableDefinition::<&[u8], &[u8]>::new("state_nodes"))
            .unwrap();
        for r in nodes.iter().unwrap() {
            let (k, _) = r.unwrap();
            assert!(node_key_from(k.value()).is_some(), "{:?}", k.value());
        }
    }
    let st = DaStore::open(&path, &net()).unwrap().store;
    assert_eq!((st.tip(), st.state_tip()), (12, 12));
    for h in 1..=12 {
        assert_eq!(st.state_root_at(h).unwrap(), Some(chain.root(h)), "{h}");
    }
}

#[test]
fn proofs_verify_at_the_tip_and_at_older_heights() {
    use dsdn_protocols::da::{StateError, StateKey, StateValue};
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(9);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=9);
    o.svc.flush();
    let first = match &events(1, 0)[0] {
        DaEvent::ChunkDeclared { chunk_id, .. } => StateKey::Chunk(*chunk_id),
        other => panic!("{other:?}"),
    };
    for h in [9, 5, 1] {
        let p = o.svc.proof(&first, Some(h)).unwrap();
        assert_eq!(p.height, h);
        let (_, value) = p.verify(chain.root(h)).unwrap();
        assert!(matches!(value, Some(StateValue::Chunk(_))), "{value:?}");
        if h > 1 {
            assert!(p.verify(chain.root(h - 1)).is_err());
        }
    }
    // Absent keys are proved absent.
    let absent = StateKey::Node("nobody".into());
    let p = o.svc.proof(&absent, None).unwrap();
    assert_eq!(p.verify(chain.root(9)).unwrap().1, None);
    // Above the tip: unavailable.
    assert!(matches!(
        o.svc.proof(&absent, Some(10)),
        Err(StateError::HeightUnavailable { .. })
    ));
}

#[test]
fn the_stored_state_is_used_and_a_bad_stored_blob_truncates_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(10);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=10);
    drop(o);
    // The stored state is at the tip: nothing is replayed.
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (10, chain.root(10)));
    drop(o);

    // Blob 3 no longer verifies; rewriting the log from 3 on drops the state derived from
    // it, so the whole log is replayed: it stops at blob 3 and the log is truncated there.
    tamper(dir.path(), &chain, 3, &chain.forged(3));
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!(st.state_tip(), 0);
    drop(st);
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (2, chain.root(2)));
    assert_eq!(o.svc.blobs(1, 64).len(), 2);
    drop(o);
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!(st.tip(), 2, "the blobs from the bad one on were removed");
}

#[test]
fn a_stored_blob_stored_at_the_wrong_height_truncates_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(6);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=6);
    drop(o);
    // A validly signed blob, but of height 5, stored at height 4.
    tamper(dir.path(), &chain, 4, chain.blob(5));
    let o = open(dir.path());
    assert_eq!(o.svc.view().height, 3);
    assert_eq!(o.svc.blobs(1, 64).len(), 3);
}

#[test]
fn a_log_of_another_authority_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(5);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=5);
    drop(o);
    let stranger = SigningKey::from_bytes(&[77; 32]).verifying_key().to_bytes();
    let o = open_with(
        Some(dir.path()),
        other_key(),
        Some(stranger),
        da(|_| {}),
        Instant::now(),
    );
    assert_eq!(o.svc.view().height, 0);
    assert!(o.svc.blobs(1, 64).is_empty());
    drop(o);
    // Truncated for good: the rightful authority finds an empty log too.
    let o = open(dir.path());
    assert_eq!(o.svc.view().height, 0);
}

#[test]
fn without_a_data_directory_the_log_is_in_memory() {
    let chain = Chain::new(3);
    let mut o = open_with(None, other_key(), Some(auth()), da(|_| {}), Instant::now());
    submit_all(&mut o.svc, &chain, 1..=3);
    assert_eq!(o.svc.view().state_root, chain.root(3));
    // Nothing to serve or read back, but the tip is still told.
    assert!(o.svc.blobs(1, 64).is_empty());
    let r = o.svc.serve_sync(&SyncRequest { from: 1, count: 64 });
    assert_eq!((r.tip, r.blobs.len()), (3, 0));
    // The light client proves its current height.
    let key = match &events(2, 0)[0] {
        DaEvent::ChunkDeclared { chunk_id, .. } => dsdn_protocols::da::StateKey::Chunk(*chunk_id),
        other => panic!("{other:?}"),
    };
    let p = o.svc.proof(&key, None).unwrap();
    assert!(p.verify(chain.root(3)).unwrap().1.is_some());
    assert!(o.svc.proof(&key, Some(2)).is_err());
}

/// Blobs that register, declare, remove and re-add (tombstones in the tree's values) and
/// change no key (jmt copies the root) over more heights than the kept history.
fn churning_chain(n: u64) -> Chain {
    let chunk = |h: u64| match &events(h, 0)[0] {
        DaEvent::ChunkDeclared { chunk_id, .. } => *chunk_id,
        other => panic!("{other:?}"),
    };
    let node = |h: u64| match &events(h, 0)[1] {
        DaEvent::NodeRegistered { node_id, .. } => node_id.clone(),
        other => panic!("{other:?}"),
    };
    Chain::build(n, |h| {
        let mut ev = Vec::new();
        if h % 5 == 0 {
            // Ignored (the replica is absent): a blob that changes no key.
            ev.push(DaEvent::ReplicaRemoved {
                chunk_id: chunk(h + 1000),
                node_id: node(h),
            });
            return ev;
        }
        if h % 3 == 0 {
            ev.push(DaEvent::ReplicaRemoved {
                chunk_id: chunk(h - 1),
                node_id: node(h - 1),
            });
        }
        if h % 3 == 1 && h > 3 && (h - 1) % 5 != 0 && (h - 2) % 5 != 0 {
            ev.push(DaEvent::ReplicaAdded {
                chunk_id: chunk(h - 2),
                node_id: node(h - 2),
            });
        }
        ev.extend(events(h, 0));
        ev
    })
}

#[test]
fn pruning_keeps_exactly_the_history_and_a_rebuild_stores_the_same_rows() {
    use dsdn_protocols::da::{StateError, StateKey};
    const N: u64 = 40;
    let dir = tempfile::tempdir().unwrap();
    let chain = churning_chain(N);
    let keys: Vec<StateKey> = (1..=N)
        .flat_map(|h| match &events(h, 0)[0] {
            DaEvent::ChunkDeclared { chunk_id, .. } => {
                vec![StateKey::Chunk(*chunk_id), StateKey::Replicas(*chunk_id)]
            }
            other => panic!("{other:?}"),
        })
        .chain((0..3).map(|z| StateKey::Zone(format!("zone-{z}"))))
        .collect();
    let oldest = N - TEST_HISTORY;
    let check = |o: &Opened| {
        for h in oldest..=N {
            for key in &keys {
                let p = o.svc.proof(key, Some(h)).unwrap();
                p.verify(chain.root(h))
                    .unwrap_or_else(|e| panic!("{key} at {h}: {e}"));
            }
        }
        assert!(matches!(
            o.svc.proof(&keys[0], Some(oldest - 1)),
            Err(StateError::HeightUnavailable { .. })
        ));
    };
    let mut o = open(dir.path());
    for h in 1..=N {
        submit_all(&mut o.svc, &chain, h..=h);
    }
    assert_eq!(o.svc.view().state_root, chain.root(N));
    check(&o);
    drop(o);
    let path = dir.path().join(DA_LOG_FILE);
    let st = DaStore::open(&path, &net()).unwrap().store;
    let rows = st.state_rows();
    assert_eq!(st.state_oldest().unwrap(), oldest);
    // A rebuild writes the whole log's state in one transaction and skips what is stale
    // below the kept history: the same rows as blob by blob.
    st.clear_state().unwrap();
    drop(st);
    let o = open(dir.path());
    assert_eq!(o.svc.view().state_root, chain.root(N));
    check(&o);
    drop(o);
    let st = DaStore::open(&path, &net()).unwrap().store;
    assert_eq!(st.state_rows(), rows);
    assert_eq!(st.state_oldest().unwrap(), oldest);
}
