use std::collections::BTreeSet;

use super::*;

pub(super) fn state() -> DaState {
    DaState::new(net())
}

/// Applies `events` as the next blob of `s`.
pub(super) fn apply(s: &mut DaState, events: Vec<DaEvent>) -> ApplySummary {
    let b = next_of(s, s.last_timestamp_ms(), events);
    s.apply_blob(&b).unwrap()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn registration_inserts_replaces_and_moves_zones() {
    let mut s = state();
    apply(&mut s, vec![node("a", "z1"), node("b", "z1")]);
    assert_eq!(s.node("a").unwrap().unwrap().registered_at, 1);
    assert_eq!(s.zone_size("z1").unwrap(), 2);
    let moved = DaEvent::NodeRegistered {
        node_id: "a".into(),
        zone: "z2".into(),
        capacity_bytes: 5,
        class: "datacenter".into(),
    };
    assert_eq!(s.check_event(&moved).unwrap(), EventOutcome::Applied);
    apply(&mut s, vec![moved]);
    let a = &s.node("a").unwrap().unwrap();
    assert_eq!(
        (
            a.zone.as_str(),
            a.capacity_bytes,
            a.class.as_str(),
            a.registered_at
        ),
        ("z2", 5, "datacenter", 2)
    );
    assert_eq!(s.zone_size("z1").unwrap(), 1);
    assert_eq!(s.zone_size("z2").unwrap(), 1);
    apply(&mut s, vec![node("b", "z2")]);
    assert_eq!(
        s.get(&StateKey::Zone("z1".into())).unwrap(),
        None,
        "empty zones are removed"
    );
    assert_eq!(s.header().zones, 1);
    assert_eq!(s.zone_size("z2").unwrap(), 2);
}

#[test]
fn chunk_and_replica_rules() {
    let mut s = state();
    assert_eq!(
        s.check_event(&add(1, "a")).unwrap(),
        EventOutcome::Ignored("unknown_chunk")
    );
    apply(&mut s, vec![chunk(1)]);
    assert_eq!(s.chunk(&Bytes32([1; 32])).unwrap().unwrap().declared_at, 1);
    assert_eq!(
        s.check_event(&chunk(1)).unwrap(),
        EventOutcome::Ignored("chunk_already_declared")
    );
    assert_eq!(
        s.check_event(&add(1, "a")).unwrap(),
        EventOutcome::Ignored("unknown_node")
    );
    assert_eq!(
        s.check_event(&remove(1, "a")).unwrap(),
        EventOutcome::Ignored("absent_replica")
    );
    let sum = apply(
        &mut s,
        vec![node("a", "z"), add(1, "a"), add(1, "a"), chunk(1)],
    );
    assert_eq!(
        sum,
        ApplySummary {
            applied: 2,
            ignored: 2
        }
    );
    assert_eq!(s.replicas(&Bytes32([1; 32])).unwrap(), set(&["a"]));
    assert_eq!(
        s.check_event(&add(1, "a")).unwrap(),
        EventOutcome::Ignored("duplicate_replica")
    );
    apply(&mut s, vec![remove(1, "a")]);
    assert_eq!(
        s.get(&StateKey::Replicas(Bytes32([1; 32]))).unwrap(),
        None,
        "empty replica sets are removed"
    );
    assert_eq!(s.header().replicas, 0);
    assert_eq!(s.events(), 6);
    assert_eq!(s.ignored_events(), 2);
    assert_eq!(
        s.check_event(&add(1, "")).unwrap(),
        EventOutcome::Ignored("invalid")
    );
}

#[test]
fn deletion_needs_the_owner_signature_for_this_network() {
    let mut s = state();
    apply(
        &mut s,
        vec![node("a", "z"), chunk(1), add(1, "a"), chunk(2), add(2, "a")],
    );
    assert_eq!(
        s.check_event(&delete(3)).unwrap(),
        EventOutcome::Ignored("unknown_chunk")
    );
    let wrong_owner = DaEvent::delete_requested(&owner(2), &net(), Bytes32([1; 32]));
    let wrong_net = DaEvent::delete_requested(&owner(1), &other_net(), Bytes32([1; 32]));
    let garbage = DaEvent::DeleteRequested {
        chunk_id: Bytes32([1; 32]),
        owner_signature: Bytes64([0xff; 64]),
    };
    for e in [&wrong_owner, &wrong_net, &garbage] {
        assert_eq!(
            s.check_event(e).unwrap(),
            EventOutcome::Ignored("bad_owner_signature")
        );
    }
    let sum = apply(&mut s, vec![wrong_owner, wrong_net, garbage, delete(1)]);
    assert_eq!(
        sum,
        ApplySummary {
            applied: 1,
            ignored: 3
        }
    );
    assert!(s.chunk(&Bytes32([1; 32])).unwrap().is_none());
    assert!(s.replicas(&Bytes32([1; 32])).unwrap().is_empty());
    assert!(!s.replicas(&Bytes32([2; 32])).unwrap().is_empty());
    assert_eq!((s.header().chunks, s.header().replicas), (1, 1));
    // A deleted chunk can be declared again.
    assert_eq!(s.check_event(&chunk(1)).unwrap(), EventOutcome::Applied);
}

#[test]
fn an_owner_key_that_is_not_a_point_never_deletes() {
    let mut s = state();
    let not_point = (0u8..=255)
        .map(|b| [b; 32])
        .find(|k| ed25519_dalek::VerifyingKey::from_bytes(k).is_err())
        .unwrap();
    let declared = DaEvent::ChunkDeclared {
        chunk_id: Bytes32([1; 32]),
        size_bytes: 1,
        owner: Bytes32(not_point),
    };
    apply(&mut s, vec![declared]);
    assert_eq!(
        s.check_event(&delete(1)).unwrap(),
        EventOutcome::Ignored("bad_owner_signature")
    );
}

#[test]
fn apply_blob_refuses_what_does_not_extend_the_tip() {
    let mut s = state();
    let b1 = signed(1, GENESIS_PREV_HASH, 100, vec![node("a", "z")]);
    let before = *s.header();
    let skip = signed(2, b1.hash(), 100, vec![chunk(1)]);
    assert_eq!(
        s.apply_blob(&skip),
        Err(ChainError::PrevHashMismatch { height: 2 })
    );
    let fork = signed(1, [1; 32], 100, vec![chunk(1)]);
    assert_eq!(
        s.apply_blob(&fork),
        Err(ChainError::PrevHashMismatch { height: 1 })
    );
    let foreign = DaBlob::sign(
        &authority(),
        &other_net(),
        1,
        [0; 32],
        empty_root(),
        100,
        vec![chunk(1)],
    )
    .unwrap()
    .verify(&other_net(), &auth())
    .unwrap();
    assert_eq!(
        s.apply_blob(&foreign),
        Err(ChainError::PrevHashMismatch { height: 1 })
    );
    assert_eq!(*s.header(), before);
    s.apply_blob(&b1).unwrap();
    assert_eq!(
        (s.height(), s.tip_hash(), s.last_timestamp_ms()),
        (1, b1.hash(), 100)
    );
    let before = *s.header();
    let back = signed(2, b1.hash(), 99, vec![chunk(1)]);
    assert_eq!(
        s.apply_blob(&back),
        Err(ChainError::TimestampRegression { height: 2 })
    );
    assert_eq!(*s.header(), before);
    let same_ms = next_of(&s, 100, vec![chunk(1)]);
    s.apply_blob(&same_ms).unwrap();
    assert_eq!(
        s.apply_blob(&same_ms),
        Err(ChainError::PrevHashMismatch { height: 2 })
    );
}

#[test]
fn apply_blob_refuses_a_blob_committing_to_another_state_root() {
    let mut s = state();
    // Height 1 commits to the empty tree's root.
    let wrong1 = signed_root(1, GENESIS_PREV_HASH, [7; 32], 100, vec![node("a", "z")]);
    assert_eq!(
        s.apply_blob(&wrong1),
        Err(ChainError::StateRootMismatch {
            height: 1,
            expected: empty_root(),
            found: [7; 32]
        })
    );
    assert_eq!(s.height(), 0);
    let b1 = next_of(&s, 100, vec![node("a", "z")]);
    assert_eq!(b1.prev_state_root(), Some(empty_root()));
    s.apply_blob(&b1).unwrap();
    let root1 = s.state_root();
    assert_ne!(root1, empty_root());
    // Height 2 must carry the root after height 1, not the one before.
    let stale = signed_root(2, b1.hash(), empty_root(), 100, vec![chunk(1)]);
    let before = *s.header();
    let e = s.apply_blob(&stale).unwrap_err();
    assert_eq!(
        e,
        ChainError::StateRootMismatch {
            height: 2,
            expected: root1,
            found: empty_root()
        }
    );
    assert_eq!(e.reason(), "state_root_mismatch");
    assert!(e.to_string().contains(&hex::encode(root1)), "{e}");
    assert_eq!(*s.header(), before);
    assert_eq!(check_prev_state_root(s.header(), &stale), Err(e));
    let good = next_of(&s, 100, vec![chunk(1)]);
    assert_eq!(check_prev_state_root(s.header(), &good), Ok(()));
    s.apply_blob(&good).unwrap();
    assert_eq!(s.height(), 2);
}

#[test]
fn state_root_covers_the_maps_only() {
    let empty = state().state_root();
    // Same maps reached through different blob splits and heights: same root.
    let mut one = state();
    apply(&mut one, vec![node("a", "z"), chunk(1)]);
    let mut two = state();
    apply(&mut two, vec![node("a", "z"), chunk(1)]);
    apply(&mut two, vec![chunk(1)]);
    assert_ne!(one.height(), two.height());
    assert_eq!(one.state_root(), two.state_root());
    assert_ne!(one.state_root(), empty);
    // Every map and every field moves the root.
    let mut roots = BTreeSet::new();
    roots.insert(one.state_root());
    for extra in [node("b", "z"), node("a", "y"), chunk(2), add(1, "a")] {
        let mut s = state();
        apply(&mut s, vec![node("a", "z"), chunk(1)]);
        apply(&mut s, vec![extra]);
        assert!(roots.insert(s.state_root()), "root did not change");
    }
    // Length prefixes: ("ab","c") and ("a","bc") differ.
    let mut x = state();
    apply(&mut x, vec![node("ab", "c")]);
    let mut y = state();
    apply(&mut y, vec![node("a", "bc")]);
    assert_ne!(x.state_root(), y.state_root());
}
