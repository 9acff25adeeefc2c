use std::collections::BTreeSet;

use super::*;
use crate::codec;

pub(super) fn state() -> DaState {
    DaState::new(net())
}

/// Applies `events` as the next blob of `s`.
pub(super) fn apply(s: &mut DaState, events: Vec<DaEvent>) -> ApplySummary {
    let b = signed(s.height() + 1, s.tip_hash(), s.last_timestamp_ms(), events);
    s.apply_blob(&b).unwrap()
}

fn set(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| s.to_string()).collect()
}

#[test]
fn registration_inserts_replaces_and_moves_zones() {
    let mut s = state();
    apply(&mut s, vec![node("a", "z1"), node("b", "z1")]);
    assert_eq!(s.nodes()["a"].registered_at, 1);
    assert_eq!(s.zones()["z1"], set(&["a", "b"]));
    let moved = DaEvent::NodeRegistered {
        node_id: "a".into(),
        zone: "z2".into(),
        capacity_bytes: 5,
        class: "datacenter".into(),
    };
    assert_eq!(s.check_event(&moved), EventOutcome::Applied);
    apply(&mut s, vec![moved]);
    let a = &s.nodes()["a"];
    assert_eq!(
        (
            a.zone.as_str(),
            a.capacity_bytes,
            a.class.as_str(),
            a.registered_at
        ),
        ("z2", 5, "datacenter", 2)
    );
    assert_eq!(s.zones()["z1"], set(&["b"]));
    assert_eq!(s.zones()["z2"], set(&["a"]));
    apply(&mut s, vec![node("b", "z2")]);
    assert!(!s.zones().contains_key("z1"), "empty zones are removed");
    assert_eq!(s.zones()["z2"], set(&["a", "b"]));
}

#[test]
fn chunk_and_replica_rules() {
    let mut s = state();
    assert_eq!(
        s.check_event(&add(1, "a")),
        EventOutcome::Ignored("unknown_chunk")
    );
    apply(&mut s, vec![chunk(1)]);
    assert_eq!(s.chunks()[&Bytes32([1; 32])].declared_at, 1);
    assert_eq!(
        s.check_event(&chunk(1)),
        EventOutcome::Ignored("chunk_already_declared")
    );
    assert_eq!(
        s.check_event(&add(1, "a")),
        EventOutcome::Ignored("unknown_node")
    );
    assert_eq!(
        s.check_event(&remove(1, "a")),
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
    assert_eq!(s.replicas()[&Bytes32([1; 32])], set(&["a"]));
    assert_eq!(
        s.check_event(&add(1, "a")),
        EventOutcome::Ignored("duplicate_replica")
    );
    apply(&mut s, vec![remove(1, "a")]);
    assert!(s.replicas().is_empty(), "empty replica sets are removed");
    assert_eq!(s.events(), 6);
    assert_eq!(s.ignored_events(), 2);
    assert_eq!(s.check_event(&add(1, "")), EventOutcome::Ignored("invalid"));
}

#[test]
fn deletion_needs_the_owner_signature_for_this_network() {
    let mut s = state();
    apply(
        &mut s,
        vec![node("a", "z"), chunk(1), add(1, "a"), chunk(2), add(2, "a")],
    );
    assert_eq!(
        s.check_event(&delete(3)),
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
            s.check_event(e),
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
    assert!(!s.chunks().contains_key(&Bytes32([1; 32])));
    assert!(!s.replicas().contains_key(&Bytes32([1; 32])));
    assert!(s.replicas().contains_key(&Bytes32([2; 32])));
    // A deleted chunk can be declared again.
    assert_eq!(s.check_event(&chunk(1)), EventOutcome::Applied);
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
        s.check_event(&delete(1)),
        EventOutcome::Ignored("bad_owner_signature")
    );
}

#[test]
fn apply_blob_refuses_what_does_not_extend_the_tip() {
    let mut s = state();
    let b1 = signed(1, GENESIS_PREV_HASH, 100, vec![node("a", "z")]);
    let before = s.clone();
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
    let foreign = DaBlob::sign(&authority(), &other_net(), 1, [0; 32], 100, vec![chunk(1)])
        .unwrap()
        .verify(&other_net(), &auth())
        .unwrap();
    assert_eq!(
        s.apply_blob(&foreign),
        Err(ChainError::PrevHashMismatch { height: 1 })
    );
    assert_eq!(s, before);
    s.apply_blob(&b1).unwrap();
    assert_eq!(
        (s.height(), s.tip_hash(), s.last_timestamp_ms()),
        (1, b1.hash(), 100)
    );
    let before = s.clone();
    let back = signed(2, b1.hash(), 99, vec![chunk(1)]);
    assert_eq!(
        s.apply_blob(&back),
        Err(ChainError::TimestampRegression { height: 2 })
    );
    assert_eq!(s, before);
    let same_ms = signed(2, b1.hash(), 100, vec![chunk(1)]);
    s.apply_blob(&same_ms).unwrap();
    assert_eq!(
        s.apply_blob(&same_ms),
        Err(ChainError::PrevHashMismatch { height: 2 })
    );
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
        let mut s = one.clone();
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

#[test]
fn snapshots_round_trip() {
    let mut s = state();
    for h in 1..=20 {
        apply(&mut s, chain_events(h));
    }
    assert!(!s.replicas().is_empty() && !s.zones().is_empty());
    let bytes = s.to_snapshot().unwrap();
    let back = DaState::from_snapshot(&bytes, &net()).unwrap();
    assert_eq!(back, s);
    assert_eq!(back.state_root(), s.state_root());
    let empty = DaState::from_snapshot(&state().to_snapshot().unwrap(), &net()).unwrap();
    assert_eq!(empty, state());
}

#[test]
fn tampered_snapshots_are_refused() {
    let mut s = state();
    for h in 1..=10 {
        apply(&mut s, chain_events(h));
    }
    let bytes = s.to_snapshot().unwrap();
    assert!(matches!(
        DaState::from_snapshot(&bytes, &other_net()),
        Err(DaError::WrongNetwork { .. })
    ));
    for cut in [0, 1, bytes.len() / 2, bytes.len() - 1] {
        assert!(matches!(
            DaState::from_snapshot(&bytes[..cut], &net()),
            Err(DaError::Malformed(m)) if m.starts_with("snapshot")
        ));
    }
    let v3 = codec::encode(&(3u16, "devnet", [0u8; 4]), 100).unwrap();
    assert_eq!(
        DaState::from_snapshot(&v3, &net()),
        Err(DaError::UnsupportedVersion(3))
    );
    // Flip each byte of the zone name "zone-1" in turn: the root no longer matches (or the
    // structure breaks); never accepted.
    let pos = bytes.windows(6).position(|w| w == b"zone-1").unwrap();
    for i in pos..pos + 6 {
        let mut t = bytes.clone();
        t[i] ^= 0x01;
        assert!(matches!(
            DaState::from_snapshot(&t, &net()),
            Err(DaError::Malformed(_))
        ));
    }
    // The recorded root itself.
    let mut t = bytes.clone();
    let last = t.len() - 1;
    t[last] ^= 0x80;
    assert_eq!(
        DaState::from_snapshot(&t, &net()),
        Err(DaError::Malformed("snapshot state root mismatch".into()))
    );
}

type Row = (String, String, u64, String, u64);

fn raw_snapshot(nodes: Vec<Row>, zones: Vec<(String, Vec<String>)>, root: [u8; 32]) -> Vec<u8> {
    let chunks: Vec<(Bytes32, u64, Bytes32, u64)> = vec![];
    let replicas: Vec<(Bytes32, Vec<String>)> = vec![];
    let receipts: Vec<(Bytes32, Bytes32, Bytes32, Bytes32, u64)> = vec![];
    let value = (
        2u16,
        "devnet",
        1u64,
        Bytes32([1; 32]),
        0u64,
        1u64,
        0u64,
        nodes,
        chunks,
        replicas,
        zones,
        receipts,
        Bytes32(root),
    );
    codec::encode(&value, 1 << 20).unwrap()
}

#[test]
fn non_canonical_snapshots_are_refused() {
    let mut s = state();
    apply(&mut s, vec![node("a", "z"), node("b", "z")]);
    let root = s.state_root();
    let row = |id: &str| {
        (
            id.to_string(),
            "z".to_string(),
            1u64 << 40,
            "regular".to_string(),
            1u64,
        )
    };
    let zone = |ids: &[&str]| vec![("z".to_string(), ids.iter().map(|s| s.to_string()).collect())];
    // The canonical form is accepted.
    let ok = raw_snapshot(vec![row("a"), row("b")], zone(&["a", "b"]), root);
    DaState::from_snapshot(&ok, &net()).unwrap();
    let cases = [
        raw_snapshot(vec![row("b"), row("a")], zone(&["a", "b"]), root),
        raw_snapshot(vec![row("a"), row("a"), row("b")], zone(&["a", "b"]), root),
        raw_snapshot(vec![row("a"), row("b")], zone(&["b", "a"]), root),
        raw_snapshot(vec![row("a"), row("b")], zone(&["a"]), root),
        raw_snapshot(vec![row("a"), row("b")], zone(&[]), root),
    ];
    for bytes in cases {
        assert!(matches!(
            DaState::from_snapshot(&bytes, &net()),
            Err(DaError::Malformed(_))
        ));
    }
}
