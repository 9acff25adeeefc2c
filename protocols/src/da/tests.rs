use super::*;
use proptest::prelude::*;

fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

fn sample_events() -> Vec<DaEvent> {
    vec![
        DaEvent::NodeRegistered {
            node_id: "12D3KooWnode".into(),
            zone: "id-jkt-1".into(),
            capacity_bytes: 1 << 40,
            class: "regular".into(),
        },
        DaEvent::ChunkDeclared {
            chunk_id: Bytes32([1; 32]),
            size_bytes: 4096,
            owner: Bytes32([2; 32]),
        },
        DaEvent::ReplicaAdded {
            chunk_id: Bytes32([1; 32]),
            node_id: "12D3KooWnode".into(),
        },
        DaEvent::ReplicaRemoved {
            chunk_id: Bytes32([1; 32]),
            node_id: "12D3KooWnode".into(),
        },
        DaEvent::DeleteRequested {
            chunk_id: Bytes32([1; 32]),
            owner_signature: Bytes64([3; 64]),
        },
    ]
}

#[test]
fn sign_verify_round_trip() {
    let k = key(1);
    let auth = k.verifying_key().to_bytes();
    let env = DaEnvelope::sign(&k, &net(), 1, sample_events()).unwrap();
    let back = DaEnvelope::from_bytes(&env.to_bytes().unwrap()).unwrap();
    assert_eq!(back, env);
    assert_eq!(back.verify(&net(), Some(&auth)), Ok(()));
}

#[test]
fn verify_rejects() {
    let k = key(1);
    let auth = k.verifying_key().to_bytes();
    let env = DaEnvelope::sign(&k, &net(), 1, sample_events()).unwrap();
    let other = NetworkId::new("testnet").unwrap();
    assert!(matches!(
        env.verify(&other, Some(&auth)),
        Err(DaError::WrongNetwork { .. })
    ));
    assert_eq!(env.verify(&net(), None), Err(DaError::NoAuthority));

    let rogue = DaEnvelope::sign(&key(2), &net(), 1, sample_events()).unwrap();
    assert!(matches!(
        rogue.verify(&net(), Some(&auth)),
        Err(DaError::NotAuthority(_))
    ));

    // A forged publisher field with a signature from another key.
    let mut forged = rogue.clone();
    forged.publisher = Bytes32(auth);
    assert_eq!(
        forged.verify(&net(), Some(&auth)),
        Err(DaError::BadSignature)
    );

    let mut tampered = env.clone();
    tampered.seq = 2;
    assert_eq!(
        tampered.verify(&net(), Some(&auth)),
        Err(DaError::BadSignature)
    );

    let mut v2 = env;
    v2.version = 2;
    assert_eq!(
        v2.verify(&net(), Some(&auth)),
        Err(DaError::UnsupportedVersion(2))
    );
}

#[test]
fn bounds() {
    assert!(DaEnvelope::sign(&key(1), &net(), 1, vec![]).is_err());
    let too_many = vec![sample_events()[2].clone(); MAX_EVENTS_PER_ENVELOPE + 1];
    assert!(DaEnvelope::sign(&key(1), &net(), 1, too_many).is_err());
    let long = DaEvent::ReplicaAdded {
        chunk_id: Bytes32([0; 32]),
        node_id: "x".repeat(MAX_TEXT_LEN + 1),
    };
    assert!(long.validate().is_err());
    // The largest legal envelope fits the cap.
    let max_event = DaEvent::NodeRegistered {
        node_id: "n".repeat(MAX_TEXT_LEN),
        zone: "z".repeat(MAX_TEXT_LEN),
        capacity_bytes: u64::MAX,
        class: "c".repeat(MAX_TEXT_LEN),
    };
    let env = DaEnvelope::sign(
        &key(1),
        &net(),
        u64::MAX,
        vec![max_event; MAX_EVENTS_PER_ENVELOPE],
    );
    assert!(env.is_ok());
}

#[test]
fn json_form_is_documented_form() {
    let json = r#"[
        {"type": "node_registered", "node_id": "12D3KooWnode", "zone": "id-jkt-1", "capacity_bytes": 1099511627776, "class": "regular"},
        {"type": "chunk_declared", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "size_bytes": 4096, "owner": "0202020202020202020202020202020202020202020202020202020202020202"},
        {"type": "replica_added", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "node_id": "12D3KooWnode"},
        {"type": "replica_removed", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "node_id": "12D3KooWnode"},
        {"type": "delete_requested", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "owner_signature": "03030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303030303"}
    ]"#;
    let events: Vec<DaEvent> = serde_json::from_str(json).unwrap();
    assert_eq!(events, sample_events());
    let bad = r#"[{"type": "replica_added", "chunk_id": "01", "node_id": "x"}]"#;
    assert!(serde_json::from_str::<Vec<DaEvent>>(bad).is_err());
    let unknown = r#"[{"type": "replica_added", "chunk_id": "0101010101010101010101010101010101010101010101010101010101010101", "node_id": "x", "extra": 1}]"#;
    assert!(serde_json::from_str::<Vec<DaEvent>>(unknown).is_err());
}

#[test]
fn log_applies_in_order_and_holds_gaps() {
    let mut log = DaLog::new();
    assert_eq!(log.insert(2, [2; 32], 3), InsertOutcome::Buffered);
    assert_eq!(log.insert(2, [2; 32], 3), InsertOutcome::Duplicate);
    assert_eq!(log.events(), 0);
    assert_eq!(log.insert(1, [1; 32], 1), InsertOutcome::Applied(2));
    assert_eq!(log.events(), 4);
    assert_eq!(log.applied_seq(), 2);
    assert_eq!(log.insert(1, [1; 32], 1), InsertOutcome::Duplicate);
    assert_eq!(
        log.insert(3 + MAX_PENDING_ENVELOPES as u64, [0; 32], 1),
        InsertOutcome::TooFarAhead
    );
}

proptest! {
    #[test]
    fn any_arrival_order_gives_the_same_root(order in Just((1..=40u64).collect::<Vec<_>>()).prop_shuffle(), dups in proptest::collection::vec(1..=40u64, 0..20)) {
        let mut in_order = DaLog::new();
        for s in 1..=40u64 { in_order.insert(s, [s as u8; 32], s as usize); }
        let mut shuffled = DaLog::new();
        for s in order.into_iter().chain(dups) { shuffled.insert(s, [s as u8; 32], s as usize); }
        prop_assert_eq!(shuffled.state_root(), in_order.state_root());
        prop_assert_eq!(shuffled.events(), in_order.events());
        prop_assert_eq!(shuffled.pending(), 0);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024)) {
        if let Ok(env) = DaEnvelope::from_bytes(&bytes) {
            let _ = env.verify(&net(), Some(&[0; 32]));
        }
    }
}
