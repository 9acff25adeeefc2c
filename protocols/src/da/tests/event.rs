use ed25519_dalek::{Signature, VerifyingKey};
use serde_bytes::ByteBuf;

use super::*;
use crate::codec;

fn max_events() -> Vec<DaEvent> {
    let text = "n".repeat(MAX_TEXT_LEN);
    vec![
        DaEvent::NodeRegistered {
            node_id: text.clone(),
            zone: text.clone(),
            capacity_bytes: u64::MAX,
            class: "datacenter".into(),
        },
        DaEvent::ChunkDeclared {
            chunk_id: Bytes32([0xff; 32]),
            size_bytes: u64::MAX,
            owner: Bytes32([0xff; 32]),
        },
        DaEvent::ReplicaAdded {
            chunk_id: Bytes32([0xff; 32]),
            node_id: text.clone(),
        },
        DaEvent::ReplicaRemoved {
            chunk_id: Bytes32([0xff; 32]),
            node_id: text,
        },
        DaEvent::DeleteRequested {
            chunk_id: Bytes32([0xff; 32]),
            owner_signature: Bytes64([0xff; 64]),
        },
    ]
}

#[test]
fn kinds_and_wire_numbers() {
    let names: Vec<_> = sample_events().iter().map(DaEvent::kind).collect();
    assert_eq!(
        names,
        [
            "node_registered",
            "chunk_declared",
            "replica_added",
            "replica_removed",
            "delete_requested"
        ]
    );
    for (i, e) in sample_events().iter().enumerate() {
        let w = e.to_wire().unwrap();
        assert_eq!(w.0 as usize, i + 1);
        assert_eq!(w.1, EVENT_VERSION);
        assert_eq!(&DaEvent::from_wire(&w).unwrap(), e);
        // The wire form is the CBOR array [kind, version, body bytes].
        let bytes = codec::encode(&w, 1024).unwrap();
        let (k, v, body): (u8, u16, ByteBuf) = codec::decode(&bytes, 1024).unwrap();
        assert_eq!((k, v, body), (w.0, w.1, w.2));
    }
}

#[test]
fn wire_bodies_are_version_one_arrays() {
    let w = node("a", "z").to_wire().unwrap();
    let body: (String, String, u64, String) = codec::decode(&w.2, 1024).unwrap();
    assert_eq!(body, ("a".into(), "z".into(), 1 << 40, "regular".into()));
    let w = delete(1).to_wire().unwrap();
    let (chunk_id, _sig): (Bytes32, Bytes64) = codec::decode(&w.2, 1024).unwrap();
    assert_eq!(chunk_id, Bytes32([1; 32]));
}

#[test]
fn largest_events_fit_the_body_cap() {
    for e in max_events() {
        e.validate().unwrap();
        let w = e.to_wire().unwrap();
        assert!(
            w.2.len() <= MAX_EVENT_BODY_BYTES,
            "{}: {}",
            e.kind(),
            w.2.len()
        );
    }
}

#[test]
fn unknown_kinds_and_versions_are_refused_not_guessed() {
    let body = node("a", "z").to_wire().unwrap().2;
    for kind in [0u8, 9, 200, 255] {
        let w = WireEvent(kind, EVENT_VERSION, body.clone());
        assert_eq!(DaEvent::from_wire(&w), Err(DaError::UnknownEventKind(kind)));
    }
    for version in [0u16, 2, u16::MAX] {
        let w = WireEvent(1, version, body.clone());
        assert_eq!(
            DaEvent::from_wire(&w),
            Err(DaError::UnsupportedEventVersion {
                kind: "node_registered",
                version
            })
        );
    }
    // An unknown kind is reported before an unknown version.
    assert_eq!(
        DaEvent::from_wire(&WireEvent(9, 9, body.clone())),
        Err(DaError::UnknownEventKind(9))
    );
}

#[test]
fn malformed_bodies_are_refused() {
    let node_body = node("a", "z").to_wire().unwrap().2;
    // A node_registered body under the chunk_declared kind.
    let e = DaEvent::from_wire(&WireEvent(2, 1, node_body.clone())).unwrap_err();
    assert!(matches!(e, DaError::Malformed(ref m) if m.starts_with("chunk_declared")));
    let empty = DaEvent::from_wire(&WireEvent(3, 1, ByteBuf::new())).unwrap_err();
    assert_eq!(empty.reason(), "malformed");
    let mut trailing = node_body.into_vec();
    trailing.push(0);
    assert!(DaEvent::from_wire(&WireEvent(1, 1, ByteBuf::from(trailing))).is_err());
    let huge = ByteBuf::from(vec![0u8; MAX_EVENT_BODY_BYTES + 1]);
    assert!(matches!(
        DaEvent::from_wire(&WireEvent(1, 1, huge)),
        Err(DaError::Malformed(_))
    ));
    // A text far beyond the bounds cannot even be put on the wire.
    let long = node(&"x".repeat(MAX_EVENT_BODY_BYTES), "z");
    assert!(matches!(long.to_wire(), Err(DaError::Malformed(_))));
}

#[test]
fn validate_bounds_and_classes() {
    for e in sample_events() {
        e.validate().unwrap();
    }
    let long = "x".repeat(MAX_TEXT_LEN + 1);
    let bad = [
        node("", "z"),
        node(&long, "z"),
        node("a", ""),
        node("a", &long),
        add(1, ""),
        add(1, &long),
        remove(1, &long),
        DaEvent::NodeRegistered {
            node_id: "a".into(),
            zone: "z".into(),
            capacity_bytes: 1,
            class: "gold".into(),
        },
    ];
    for e in bad {
        assert!(matches!(e.validate(), Err(DaError::Malformed(_))), "{e:?}");
    }
    for class in NODE_CLASSES {
        let e = DaEvent::NodeRegistered {
            node_id: "a".into(),
            zone: "z".into(),
            capacity_bytes: 1,
            class: class.into(),
        };
        e.validate().unwrap();
    }
    // Bounds count bytes, not characters.
    assert!(node(&"é".repeat(65), "z").validate().is_err());
    node(&"é".repeat(64), "z").validate().unwrap();
}

#[test]
fn delete_requests_are_signed_per_network_and_chunk() {
    let chunk_id = Bytes32([7; 32]);
    let m = DaEvent::delete_message(&net(), &chunk_id);
    let (domain, network, id): (String, String, Bytes32) = codec::decode(&m, 256).unwrap();
    assert_eq!(
        (domain.as_str(), network.as_str(), id),
        ("dsdn/delete-request/v1", "devnet", chunk_id)
    );
    assert_ne!(m, DaEvent::delete_message(&other_net(), &chunk_id));
    assert_ne!(m, DaEvent::delete_message(&net(), &Bytes32([8; 32])));
    let DaEvent::DeleteRequested {
        chunk_id: id,
        owner_signature,
    } = DaEvent::delete_requested(&owner(7), &net(), chunk_id)
    else {
        panic!("not a delete request")
    };
    assert_eq!(id, chunk_id);
    let key: VerifyingKey = owner(7).verifying_key();
    key.verify_strict(&m, &Signature::from_bytes(&owner_signature.0))
        .unwrap();
}

#[test]
fn json_form_is_documented_form() {
    let json = r#"[
        {"type": "node_registered", "node_id": "12D3KooWnode", "zone": "id-jkt-1", "capacity_bytes": 1099511627776, "class": "regular"},
        {"type": "chunk_declared", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "size_bytes": 4096, "owner": "OWNER"},
        {"type": "replica_added", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "node_id": "12D3KooWnode"},
        {"type": "replica_removed", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "node_id": "12D3KooWnode"},
        {"type": "delete_requested", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "owner_signature": "SIG"}
    ]"#;
    let samples = sample_events();
    let DaEvent::DeleteRequested {
        owner_signature, ..
    } = &samples[4]
    else {
        panic!("not a delete request")
    };
    let json = json
        .replace("OWNER", &hex::encode(owner(1).verifying_key().to_bytes()))
        .replace("SIG", &owner_signature.to_string());
    let events: Vec<DaEvent> = serde_json::from_str(&json).unwrap();
    assert_eq!(events, samples);
    let back: Vec<DaEvent> =
        serde_json::from_str(&serde_json::to_string(&events).unwrap()).unwrap();
    assert_eq!(back, samples);
    let bad = r#"[{"type": "replica_added", "chunk_id": "01", "node_id": "x"}]"#;
    assert!(serde_json::from_str::<Vec<DaEvent>>(bad).is_err());
    let unknown = r#"[{"type": "replica_added", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "node_id": "x", "extra": 1}]"#;
    assert!(serde_json::from_str::<Vec<DaEvent>>(unknown).is_err());
    let kind = r#"[{"type": "node_left", "node_id": "x"}]"#;
    assert!(serde_json::from_str::<Vec<DaEvent>>(kind).is_err());
}

/// Issue 14 §6: a `node_id` must be a PeerId for an event to be sealed; an event sealed
/// before the check (`12D3KooWnotreally` was) still verifies, decodes and applies, so an
/// old log replays as it did.
#[test]
fn node_ids_must_be_peer_ids_to_be_sealed_but_old_blobs_still_apply() {
    let real = "12D3KooWBwoKmnBmkaAa6DTB2KLpitECR9ay8qydC3wUwdrdQLS1";
    let fake = "12D3KooWnotreally";
    for e in [
        node(real, "z"),
        add(1, real),
        remove(1, real),
        chunk(1),
        delete(1),
    ] {
        e.validate_for_sealing().unwrap();
    }
    for e in [node(fake, "z"), add(1, fake), remove(1, "a")] {
        e.validate().unwrap();
        let err = e.validate_for_sealing().unwrap_err();
        assert!(matches!(err, DaError::Malformed(_)), "{err:?}");
        assert!(err.to_string().contains("is not a PeerId"), "{err}");
    }
    assert_eq!(
        node(fake, "z").check_node_ids().unwrap_err().to_string(),
        "malformed DA data: node_registered event: field node_id \"12D3KooWnotreally\" is not \
         a PeerId (base58, 12D3KooW…)"
    );
    // Size bounds come first, as before.
    assert!(node("", "z")
        .validate_for_sealing()
        .unwrap_err()
        .to_string()
        .contains("1-128 bytes"));

    // A blob an older build sealed with such an event verifies and applies.
    let blob = signed(1, [0; 32], 1, vec![node(fake, "z")]);
    let again = DaBlob::decode_verified(blob.encoded(), &net(), &auth()).unwrap();
    let mut state = DaState::new(net());
    let summary = state.apply_blob(&again).unwrap();
    assert_eq!(summary.applied, 1);
    assert!(state.node(fake).unwrap().is_some());
}
