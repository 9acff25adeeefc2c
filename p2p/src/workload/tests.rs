//! Unit tests of the pure workload parts: executor choice, the module store and execute
//! refusals (recent receipts: `recent.rs`).

use libp2p::identity::Keypair;

use super::*;

fn node() -> (PeerId, Bytes32) {
    let k = Keypair::generate_ed25519();
    let ed = k.clone().try_into_ed25519().unwrap();
    (k.public().to_peer_id(), Bytes32(ed.public().to_bytes()))
}

fn set(types: &[ServiceType]) -> ServiceSet {
    let mut s = ServiceSet::EMPTY;
    for t in types {
        s.insert(*t);
    }
    s
}

#[test]
fn peer_of_key_is_the_libp2p_peer_id() {
    let (peer, key) = node();
    assert_eq!(peer_of_key(&key), Some(peer));
}

#[test]
fn executors_are_storage_nodes_other_than_the_submitters_and_rotate() {
    let (me, _) = node();
    let (a, _) = node();
    let (b, b_key) = node();
    let (c, _) = node();
    let (coord, _) = node();
    let connected = vec![
        (a, set(&[ServiceType::Storage])),
        (b, set(&[ServiceType::Storage])),
        (c, set(&[ServiceType::StorageDc])),
        (coord, set(&[ServiceType::Coordinator])),
        (me, set(&[ServiceType::Storage])),
    ];
    // The submitter operates b: b is never chosen.
    let first = choose_executors(&connected, &b_key, &me, 0, 8);
    assert_eq!(first.len(), 2);
    assert!(!first.contains(&b) && !first.contains(&coord) && !first.contains(&me));
    let second = choose_executors(&connected, &b_key, &me, 1, 8);
    assert_ne!(
        first[0], second[0],
        "consecutive submissions start elsewhere"
    );
    assert_eq!(choose_executors(&connected, &b_key, &me, 0, 1).len(), 1);
    // Only the submitter's node is connected: nobody.
    let only = vec![(b, set(&[ServiceType::Storage]))];
    assert!(choose_executors(&only, &b_key, &me, 0, 8).is_empty());
}

#[test]
fn the_module_store_checks_hashes_and_drops_the_least_recently_used() {
    let mut store = ModuleStore::new(10);
    let a = store.insert(vec![1; 4], None).unwrap();
    let b = store.insert(vec![2; 4], None).unwrap();
    assert_eq!((store.len(), store.bytes()), (2, 8));
    assert!(store.get(&a).is_some()); // a is now the most recent
    let c = store
        .insert(vec![3; 4], Some(&workload_id(&[3; 4])))
        .unwrap();
    assert!(store.get(&b).is_none(), "b was the least recently used");
    assert!(store.get(&a).is_some() && store.get(&c).is_some());
    assert_eq!(store.bytes(), 8);
    assert_eq!(
        store.insert(vec![4; 4], Some(&a)),
        Err(ModuleError::WrongHash)
    );
    assert_eq!(
        store.insert(vec![5; 11], None),
        Err(ModuleError::TooLarge(11))
    );
    // The same module twice is kept once.
    store.insert(vec![3; 4], None).unwrap();
    assert_eq!((store.len(), store.bytes()), (2, 8));
}

#[test]
fn execute_refusals() {
    let me = Bytes32([1; 32]);
    let other = Bytes32([2; 32]);
    assert_eq!(
        execute_refusal(false, 0, 2, &other, &me),
        Some(WorkloadRefusal::NotExecuting)
    );
    assert_eq!(
        execute_refusal(true, 0, 2, &me, &me),
        Some(WorkloadRefusal::SelfDealing)
    );
    assert_eq!(
        execute_refusal(true, 2, 2, &other, &me),
        Some(WorkloadRefusal::Busy)
    );
    assert_eq!(execute_refusal(true, 1, 2, &other, &me), None);
}

#[test]
fn the_module_store_holds_at_most_max_stored_modules() {
    let mut store = ModuleStore::new(64 << 20);
    let first = store.insert(vec![0, 0, 0, 0], None).unwrap();
    for i in 1..=MAX_STORED_MODULES as u32 {
        store.insert(i.to_le_bytes().to_vec(), None).unwrap();
    }
    assert_eq!(store.len(), MAX_STORED_MODULES);
    assert!(
        store.get(&first).is_none(),
        "the oldest tiny module went first"
    );
}

#[test]
fn receipt_id_prefixes_cover_their_range() {
    use crate::workload::prefix_range;
    let (lo, hi) = prefix_range("ab1").unwrap();
    assert_eq!(lo.0[..2], [0xab, 0x10]);
    assert_eq!(hi.0[..2], [0xab, 0x1f]);
    assert!(lo.0[2..].iter().all(|b| *b == 0) && hi.0[2..].iter().all(|b| *b == 0xff));
    let full = "cd".repeat(32);
    assert_eq!(
        prefix_range(&full),
        Some((Bytes32([0xcd; 32]), Bytes32([0xcd; 32])))
    );
    for bad in ["", "xyz", &"a".repeat(65)] {
        assert_eq!(prefix_range(bad), None, "{bad:?}");
    }
}
