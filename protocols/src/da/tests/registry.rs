//! The coordinator registry (issue 13 §3): `coordinator_registered` events, the
//! `coordinator:<id>` keys, their proofs and the listing the selection reads.

use super::state::{apply, state};
use super::*;
use crate::codec;
use serde_bytes::ByteBuf;

/// The PeerId text of test key `n` (identity multihash of the protobuf Ed25519 public
/// key, built without libp2p: `0x00 0x24 | 08 01 12 20 | key`).
pub(super) fn peer(n: u8) -> String {
    let public = key(n).verifying_key().to_bytes();
    let mut bytes = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    bytes.extend_from_slice(&public);
    multiaddr::PeerId::from_bytes(&bytes).unwrap().to_string()
}

fn reg(n: u8) -> DaEvent {
    DaEvent::CoordinatorRegistered { node_id: peer(n) }
}

#[test]
fn wire_and_json_forms() {
    let e = reg(1);
    assert_eq!(e.kind(), "coordinator_registered");
    let w = e.to_wire().unwrap();
    assert_eq!((w.0, w.1), (8, EVENT_VERSION));
    let (id,): (String,) = codec::decode(&w.2, 1024).unwrap();
    assert_eq!(id, peer(1));
    assert_eq!(DaEvent::from_wire(&w).unwrap(), e);
    let bytes = codec::encode(&w, 1024).unwrap();
    let (k, _, body): (u8, u16, ByteBuf) = codec::decode(&bytes, 1024).unwrap();
    assert_eq!((k, body), (8, w.2.clone()));
    let json = serde_json::to_value(&e).unwrap();
    assert_eq!(
        json,
        serde_json::json!({"type": "coordinator_registered", "node_id": peer(1)})
    );
    assert_eq!(serde_json::from_value::<DaEvent>(json).unwrap(), e);
    e.validate_for_sealing().unwrap();
}

#[test]
fn a_node_id_that_is_no_peer_id_is_invalid_and_never_sealed() {
    let bad = DaEvent::CoordinatorRegistered {
        node_id: "coord-a".into(),
    };
    assert!(bad.validate().is_err());
    assert!(DaEvent::CoordinatorRegistered {
        node_id: String::new()
    }
    .validate()
    .is_err());
    let s = state();
    assert_eq!(
        s.check_event(&bad).unwrap(),
        EventOutcome::Ignored("invalid")
    );
    assert!(s.seal_next(&authority(), 1, vec![bad]).is_err());
    assert!(s.coordinators().unwrap().is_empty());
}

#[test]
fn registry_keeps_the_first_height_is_listed_and_proved() {
    let mut s = state();
    let empty_root = s.state_root();
    apply(&mut s, vec![reg(2), node("n", "z")]);
    let after_one = s.state_root();
    assert_ne!(after_one, empty_root);
    assert_eq!(s.coordinator(&peer(2)).unwrap(), Some(1));
    // A second registration of the same coordinator is a no-op: the height stays 1.
    assert_eq!(
        s.check_event(&reg(2)).unwrap(),
        EventOutcome::Ignored("duplicate_coordinator")
    );
    let sum = apply(&mut s, vec![reg(2), reg(3)]);
    assert_eq!((sum.applied, sum.ignored), (1, 1));
    // Twice in one blob: the second sees the first.
    let sum = apply(&mut s, vec![reg(4), reg(4)]);
    assert_eq!((sum.applied, sum.ignored), (1, 1));
    let mut want = vec![(peer(2), 1), (peer(3), 2), (peer(4), 3)];
    want.sort();
    assert_eq!(s.coordinators().unwrap(), want);
    // A coordinator is no storage node, and a storage node no coordinator.
    assert_eq!(s.node(&peer(2)).unwrap(), None);
    assert_eq!(s.coordinator("n").unwrap(), None);
    // Provable like every key, in its text form too.
    let key = StateKey::parse(&format!("coordinator:{}", peer(3))).unwrap();
    assert_eq!(key, StateKey::Coordinator(peer(3)));
    assert_eq!(key.to_string(), format!("coordinator:{}", peer(3)));
    assert_eq!(StateKey::from_bytes(&key.to_bytes()).unwrap(), key);
    assert_eq!(key.to_bytes()[0], 8);
    let proof = s.prove(&key).unwrap();
    assert_eq!(
        proof.verify(s.state_root()).unwrap(),
        (key, Some(StateValue::Coordinator { registered_at: 2 }))
    );
    let absent = StateKey::Coordinator(peer(9));
    assert_eq!(
        s.prove(&absent).unwrap().verify(s.state_root()).unwrap(),
        (absent, None)
    );
}

#[test]
fn the_root_depends_on_the_registry() {
    let run = |events: Vec<Vec<DaEvent>>| {
        let mut s = state();
        for e in events {
            apply(&mut s, e);
        }
        s.state_root()
    };
    let with = run(vec![vec![node("a", "z")], vec![reg(1), reg(2)]]);
    assert_eq!(with, run(vec![vec![node("a", "z")], vec![reg(1), reg(2)]]));
    assert_ne!(with, run(vec![vec![node("a", "z")], vec![reg(2), reg(3)]]));
    assert_ne!(with, run(vec![vec![node("a", "z")], vec![reg(1)]]));
}
