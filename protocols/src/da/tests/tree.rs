//! The authenticated state tree (issue 16 §2, §3, §7): the root depends only on the maps
//! (not on how blobs split the events, nor on history), a rebuild gives the same roots,
//! and proofs verify for present and absent keys and fail for tampered values or roots.

use std::collections::BTreeSet;

use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue};
use proptest::collection::vec;
use proptest::prelude::*;

use super::*;
use crate::da::state::store::Reader;
use crate::da::state::{MemStore, StateKey, StateProof, StateValue};

/// Event `i` of a random sequence drawn from small id spaces (so that events collide:
/// re-registrations, duplicate replicas, deletions of declared chunks, …).
fn event(kind: u8, a: u8, b: u8) -> DaEvent {
    let node_id = format!("n{}", b % 5);
    match kind % 6 {
        0 => node(&node_id, &format!("z{}", a % 3)),
        1 => chunk(a % 8),
        2 | 3 => add(a % 8, &node_id),
        4 => remove(a % 8, &node_id),
        _ => delete(a % 8),
    }
}

/// Applies `events` as blobs of the given sizes (cycled) to a fresh state.
fn build(events: &[DaEvent], sizes: &[usize]) -> DaState {
    let mut s = DaState::new(net());
    let mut rest = events;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        i += 1;
        let (now, later) = rest.split_at(n);
        let b = next_of(&s, 1, now.to_vec());
        s.apply_blob(&b).unwrap();
        rest = later;
    }
    s
}

/// The root of a tree built in one batch from `store`'s final entries (no history).
fn root_of_entries(entries: &[(StateKey, Vec<u8>)]) -> [u8; 32] {
    let empty = MemStore::new();
    let reader = Reader(&empty);
    let tree = JellyfishMerkleTree::<_, sha2_010::Sha256>::new(&reader);
    let set: Vec<(KeyHash, Option<OwnedValue>)> = entries
        .iter()
        .map(|(k, v)| (k.key_hash(), Some(v.clone())))
        .collect();
    tree.put_value_set(set, 1).unwrap().0 .0
}

/// Every key the small id spaces of [`event`] can produce, present or not.
fn all_keys() -> Vec<StateKey> {
    let mut keys = Vec::new();
    for n in 0..5 {
        keys.push(StateKey::Node(format!("n{n}")));
    }
    for z in 0..3 {
        keys.push(StateKey::Zone(format!("z{z}")));
    }
    for c in 0..8u8 {
        keys.push(StateKey::Chunk(Bytes32([c; 32])));
        keys.push(StateKey::Replicas(Bytes32([c; 32])));
    }
    keys.push(StateKey::Receipt(Bytes32([9; 32])));
    keys
}

fn events_strategy() -> impl Strategy<Value = Vec<DaEvent>> {
    vec((any::<u8>(), any::<u8>(), any::<u8>()), 1..60)
        .prop_map(|v| v.into_iter().map(|(k, a, b)| event(k, a, b)).collect())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The root depends only on the resulting maps: it equals the root of a tree built in
    /// one batch from the final entries (no history), and rebuilding from the same blobs
    /// gives the same root. The same events split into blobs in any way give the same
    /// counters (the records' heights differ, so the roots do too).
    #[test]
    fn root_is_a_function_of_the_maps(
        events in events_strategy(),
        sizes_a in vec(1usize..8, 1..5),
        sizes_b in vec(1usize..8, 1..5),
    ) {
        let a = build(&events, &sizes_a);
        let b = build(&events, &sizes_b);
        let one = build(&events, &[usize::MAX]);
        prop_assert_eq!(
            (one.header().events, one.header().ignored),
            (a.header().events, a.header().ignored)
        );
        let (ha, hb) = (*a.header(), *b.header());
        prop_assert_eq!(
            (ha.events, ha.ignored, ha.nodes, ha.chunks, ha.replicas, ha.zones),
            (hb.events, hb.ignored, hb.nodes, hb.chunks, hb.replicas, hb.zones)
        );
        // The counters match the maps.
        let store = a.into_store();
        let keys = all_keys();
        let present: Vec<_> = keys.iter().filter(|k| store.get(k).unwrap().is_some()).collect();
        let count = |f: fn(&StateKey) -> bool| present.iter().filter(|k| f(k)).count() as u64;
        prop_assert_eq!(count(|k| matches!(k, StateKey::Node(_))), ha.nodes);
        prop_assert_eq!(count(|k| matches!(k, StateKey::Chunk(_))), ha.chunks);
        prop_assert_eq!(count(|k| matches!(k, StateKey::Zone(_))), ha.zones);
        // History independence: one batch of the final entries has the same root.
        let s = DaState::with_store(net(), store);
        let final_root = s.state_root();
        let rebuilt = build(&events, &sizes_a);
        prop_assert_eq!(rebuilt.state_root(), final_root);
        let store = s.into_store();
        let entries: Vec<(StateKey, Vec<u8>)> = keys
            .iter()
            .filter_map(|k| store.get(k).unwrap().map(|v| (k.clone(), v)))
            .collect();
        prop_assert_eq!(root_of_entries(&entries), final_root);
    }

    /// Proofs of every key (present or absent) verify against the root, give the stored
    /// value, and fail for a tampered value, a dropped value and a wrong root.
    #[test]
    fn proofs_verify_and_detect_tampering(events in events_strategy()) {
        let s = build(&events, &[3]);
        let root = s.state_root();
        let mut present = 0;
        for key in all_keys() {
            let proof = s.prove(&key).unwrap();
            // Through the wire encoding.
            let proof = StateProof::decode(&proof.encode().unwrap()).unwrap();
            let (k, value) = proof.verify(root).unwrap();
            prop_assert_eq!(&k, &key);
            prop_assert_eq!(value.clone(), s.get(&key).unwrap());
            let mut wrong = root;
            wrong[0] ^= 1;
            prop_assert!(proof.verify(wrong).is_err());
            match &proof.value {
                Some(bytes) => {
                    present += 1;
                    let mut t = proof.clone();
                    let mut v = bytes.to_vec();
                    let last = v.len() - 1;
                    v[last] ^= 1;
                    t.value = Some(serde_bytes::ByteBuf::from(v));
                    prop_assert!(t.verify(root).is_err(), "tampered value verified");
                    let mut t = proof.clone();
                    t.value = None;
                    prop_assert!(t.verify(root).is_err(), "dropped value verified");
                }
                None => {
                    // Claiming a value for an absent key fails.
                    let mut t = proof.clone();
                    let fake = StateValue::Zone { nodes: 1 }.encode();
                    t.value = Some(serde_bytes::ByteBuf::from(fake));
                    prop_assert!(t.verify(root).is_err(), "invented value verified");
                }
            }
            // The proof of one key does not prove another.
            let mut t = proof.clone();
            t.key = StateKey::Node("elsewhere".into()).to_string();
            if proof.value.is_some() {
                prop_assert!(t.verify(root).is_err());
            }
        }
        prop_assert_eq!(present as u64 >= s.header().nodes, true);
    }
}

#[test]
fn key_text_round_trips_and_rejects_garbage() {
    for key in all_keys() {
        assert_eq!(StateKey::parse(&key.to_string()).unwrap(), key);
    }
    for bad in ["", "node:", "chunk:zz", "replicas:00", "planet:x", "node"] {
        assert!(StateKey::parse(bad).is_err(), "{bad}");
    }
}

#[test]
fn the_empty_state_has_the_placeholder_root_and_proves_absence() {
    let s = DaState::new(net());
    assert_eq!(s.state_root(), *b"SPARSE_MERKLE_PLACEHOLDER_HASH__");
    let proof = s.prove(&StateKey::Node("a".into())).unwrap();
    assert_eq!(proof.verify(s.state_root()).unwrap().1, None);
}

#[test]
fn zone_and_replica_values_follow_the_events() {
    let s = build(
        &[
            node("a", "z"),
            node("b", "z"),
            chunk(1),
            add(1, "a"),
            add(1, "b"),
        ],
        &[2],
    );
    assert_eq!(
        s.get(&StateKey::Zone("z".into())).unwrap(),
        Some(StateValue::Zone { nodes: 2 })
    );
    let want: BTreeSet<String> = ["a".to_string(), "b".to_string()].into();
    assert_eq!(
        s.get(&StateKey::Replicas(Bytes32([1; 32]))).unwrap(),
        Some(StateValue::Replicas { nodes: want })
    );
}
