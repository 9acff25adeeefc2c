//! Committee epochs on the log: the rotation event, its admission rule, the key history and
//! the key check of `apply_blob` (issue 13 §3).

use super::*;
use crate::da::epochs::{admit_rotation, MAX_ROTATION_EVENT_BODY_BYTES};
use crate::da::state::keys::StateKey;

/// A rotation to epoch `epoch` with group key `key(k)`, effective at `at`, proved by it.
pub(super) fn rotation(epoch: u64, k: u8, at: u64) -> CommitteeRotation {
    CommitteeRotation {
        epoch,
        members: vec!["12D3KooWa".into(), "12D3KooWb".into(), "12D3KooWc".into()],
        threshold: 2,
        group_key: Bytes32(key(k).verifying_key().to_bytes()),
        effective_height: at,
        key_proof: Bytes64([0; 64]),
    }
    .sign_with(&net(), &key(k))
    .unwrap()
}

fn rotated(r: CommitteeRotation) -> DaEvent {
    DaEvent::CommitteeRotated(Box::new(r))
}

/// The next blob of `state` (its height + 1, tip hash and root) signed by `key(k)`.
fn signed_by(
    k: u8,
    state: &DaState,
    ts: u64,
    events: Vec<DaEvent>,
) -> Result<VerifiedBlob, DaError> {
    let pk = key(k).verifying_key().to_bytes();
    state.seal_next(&key(k), ts, events)?.verify(&net(), &pk)
}

/// The state after applying `log`.
fn state_after(log: &[VerifiedBlob]) -> DaState {
    let mut state = DaState::new(net());
    for b in log {
        state.apply_blob(b).unwrap();
    }
    state
}

#[test]
fn rotation_event_round_trips_on_the_wire_and_in_json() {
    let ev = rotated(rotation(1, 7, 5));
    let wire = ev.to_wire().unwrap();
    assert_eq!(wire.0, 7);
    assert_eq!(DaEvent::from_wire(&wire).unwrap(), ev);
    let json = serde_json::to_string(&ev).unwrap();
    assert!(json.contains("\"type\":\"committee_rotated\""), "{json}");
    assert_eq!(serde_json::from_str::<DaEvent>(&json).unwrap(), ev);
    // Unknown fields are refused.
    let extra = json.replacen('{', "{\"x\":1,", 1);
    assert!(serde_json::from_str::<DaEvent>(&extra).is_err());
}

#[test]
fn rotation_bounds_and_the_sealing_refusal() {
    let ok = rotation(1, 7, 5);
    assert!(ok.validate().is_ok());
    let mut r = ok.clone();
    r.threshold = 1; // 2t > n fails for n = 3
    assert!(r.validate().is_err());
    let mut r = ok.clone();
    r.members.push("12D3KooWa".into());
    assert!(r.validate().is_err());
    let mut r = ok.clone();
    r.members = vec!["x".repeat(129)];
    r.threshold = 1;
    assert!(r.validate().is_err());
    let mut r = ok.clone();
    r.epoch = 0;
    assert!(r.validate().is_err());
    // An oversized body is refused on decode.
    let big = WireEvent(
        7,
        1,
        serde_bytes::ByteBuf::from(vec![0u8; MAX_ROTATION_EVENT_BODY_BYTES + 1]),
    );
    assert!(matches!(
        DaEvent::from_wire(&big),
        Err(DaError::Malformed(_))
    ));
    // Publishers cannot submit it.
    assert!(rotated(ok).validate_for_sealing().is_err());
}

#[test]
fn admission_rule() {
    let r1 = rotation(1, 7, 5);
    assert_eq!(admit_rotation(None, &r1, &net(), 3), Ok(()));
    assert_eq!(
        admit_rotation(None, &r1, &net(), 5),
        Err("bad_effective_height")
    );
    let far = rotation(1, 7, 3 + MAX_ROTATION_LEAD + 1);
    assert_eq!(
        admit_rotation(None, &far, &net(), 3),
        Err("bad_effective_height")
    );
    assert_eq!(
        admit_rotation(None, &r1, &other_net(), 3),
        Err("bad_key_proof")
    );
    let mut forged = r1.clone();
    forged.group_key = Bytes32(key(8).verifying_key().to_bytes());
    assert_eq!(
        admit_rotation(None, &forged, &net(), 3),
        Err("bad_key_proof")
    );
    let rec = EpochRecord::of(&r1, 3);
    let r2 = rotation(2, 9, 10);
    assert_eq!(
        admit_rotation(Some(&rec), &r2, &net(), 4),
        Err("rotation_pending")
    );
    assert_eq!(admit_rotation(Some(&rec), &r2, &net(), 6), Ok(()));
    let r3 = rotation(3, 9, 10);
    assert_eq!(
        admit_rotation(Some(&rec), &r3, &net(), 6),
        Err("epoch_out_of_order")
    );
}

#[test]
fn key_history_lookup() {
    let g = auth();
    let mut h = KeyHistory::new(g);
    assert_eq!(h.key_for(1), g);
    assert_eq!(h.key_for(u64::MAX), g);
    h.push(EpochRecord::of(&rotation(4, 7, 10), 8));
    h.push(EpochRecord::of(&rotation(5, 9, 20), 15));
    h.push(EpochRecord::of(&rotation(5, 3, 30), 25)); // not newer: ignored
    let k7 = key(7).verifying_key().to_bytes();
    let k9 = key(9).verifying_key().to_bytes();
    assert_eq!(h.key_for(9), g);
    assert_eq!(h.key_for(10), k7);
    assert_eq!(h.key_for(19), k7);
    assert_eq!(h.key_for(20), k9);
    assert_eq!(h.key_for(1000), k9);
    assert_eq!(h.epoch_at(15).map(|e| e.epoch), Some(4));
    assert_eq!(h.latest().map(|e| e.epoch), Some(5));
    assert!(h.knows(&g) && h.knows(&k7) && h.knows(&k9));
    assert!(!h.knows(&key(3).verifying_key().to_bytes()));
}

#[test]
fn receipts_accept_both_keys_around_a_rotation_only() {
    use crate::da::epochs::RECEIPT_HANDOFF_HEIGHTS;
    let g = auth();
    let mut h = KeyHistory::new(g);
    assert_eq!(h.receipt_keys(5), (g, None));
    let k7 = key(7).verifying_key().to_bytes();
    let k9 = key(9).verifying_key().to_bytes();
    h.push(EpochRecord::of(&rotation(1, 7, 10), 8));
    // Recorded, not in force yet: the new key too.
    assert_eq!(h.receipt_keys(9), (g, Some(k7)));
    // In force: the previous key for RECEIPT_HANDOFF_HEIGHTS heights, then only the new.
    assert_eq!(h.receipt_keys(10), (k7, Some(g)));
    assert_eq!(
        h.receipt_keys(10 + RECEIPT_HANDOFF_HEIGHTS - 1),
        (k7, Some(g))
    );
    assert_eq!(h.receipt_keys(10 + RECEIPT_HANDOFF_HEIGHTS), (k7, None));
    // The next rotation: the key before it is k7, never the genesis any more.
    h.push(EpochRecord::of(&rotation(2, 9, 200), 190));
    assert_eq!(h.receipt_keys(195), (k7, Some(k9)));
    assert_eq!(h.receipt_keys(201), (k9, Some(k7)));
    assert_eq!(h.receipt_keys(300), (k9, None));
}

/// Genesis key 1 seals 1..=3 (rotation to key 7 at height 2, effective at 4), key 7 seals
/// 4..=6 (rotation to key 9 at height 5, effective at 7), key 9 seals 7.
fn rotated_log() -> Vec<VerifiedBlob> {
    let plan: [(u8, Vec<DaEvent>); 7] = [
        (1, vec![node("12D3KooWn1", "z")]),
        (1, vec![rotated(rotation(1, 7, 4))]),
        (1, vec![chunk(1)]),
        (7, vec![chunk(2)]),
        (7, vec![rotated(rotation(2, 9, 7))]),
        (7, vec![chunk(3)]),
        (9, vec![chunk(4)]),
    ];
    let mut state = DaState::new(net());
    let mut out = Vec::new();
    for (i, (k, events)) in plan.into_iter().enumerate() {
        let b = signed_by(k, &state, 1000 + i as u64, events).unwrap();
        state.apply_blob(&b).unwrap();
        out.push(b);
    }
    out
}

#[test]
fn a_log_with_rotations_applies_and_records_the_history() {
    let mut state = DaState::new(net());
    for b in rotated_log() {
        let s = state.apply_blob(&b).unwrap();
        assert_eq!(s.ignored, 0, "blob {}", b.height());
    }
    let epochs = state.committee_epochs().unwrap();
    assert_eq!(epochs.iter().map(|e| e.epoch).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(epochs[0].sealed_at, 2);
    assert_eq!(epochs[1].effective_height, 7);
    // The epoch in force at a next height, read from the latest record down.
    let at = |h| {
        let (latest, current) = state.epochs_at(h).unwrap();
        (latest.map(|r| r.epoch), current.map(|r| r.epoch))
    };
    assert_eq!(at(3), (Some(2), None));
    assert_eq!(at(4), (Some(2), Some(1)));
    assert_eq!(at(6), (Some(2), Some(1)));
    assert_eq!(at(7), (Some(2), Some(2)));
    assert_eq!(at(1000), (Some(2), Some(2)));
    let history = KeyHistory::with_epochs(auth(), epochs);
    assert_eq!(history.key_for(3), auth());
    assert_eq!(history.key_for(7), key(9).verifying_key().to_bytes());
    // The key of each epoch, for receipts naming it: genesis before the first record.
    assert_eq!(history.key_of_epoch(0), Some(auth()));
    assert_eq!(
        history.key_of_epoch(1),
        Some(key(7).verifying_key().to_bytes())
    );
    assert_eq!(
        history.key_of_epoch(2),
        Some(key(9).verifying_key().to_bytes())
    );
    assert_eq!(history.key_of_epoch(3), None);
    assert_eq!(KeyHistory::new(auth()).key_of_epoch(5), Some(auth()));
    // The history is provable like every other key.
    let proof = state.prove(&StateKey::Committee(2)).unwrap();
    assert!(proof.value.is_some());
    assert_eq!(
        StateKey::parse("committee:2").unwrap(),
        StateKey::Committee(2)
    );
    assert_eq!(
        StateKey::parse("committee:latest").unwrap(),
        StateKey::CommitteeLatest
    );
    for k in [StateKey::Committee(2), StateKey::CommitteeLatest] {
        assert_eq!(StateKey::from_bytes(&k.to_bytes()).unwrap(), k);
        assert_eq!(StateKey::parse(&k.to_string()).unwrap(), k);
    }
}

#[test]
fn a_blob_of_the_old_key_after_the_effective_height_is_refused() {
    let log = rotated_log();
    let mut state = DaState::new(net());
    for b in &log[..3] {
        state.apply_blob(b).unwrap();
    }
    // Height 4 signed by the genesis key, not by epoch 1's key 7.
    let stale = signed_by(1, &state, 2000, vec![chunk(9)]).unwrap();
    assert_eq!(
        state.apply_blob(&stale),
        Err(ChainError::WrongEpochKey {
            height: 4,
            epoch: 1
        })
    );
    // Held ahead by a chain and released after the rotation: dropped, not applied.
    let mut chain = DaChain::new(DaState::new(net()));
    let stale5 = signed_by(7, &state_after(&log[..4]), 2000, vec![chunk(9)]).unwrap();
    assert_eq!(chain.offer(stale5), Offer::Held);
    for b in &log[..4] {
        assert!(matches!(chain.offer(b.clone()), Offer::Applied(_)));
    }
    assert_eq!(
        chain.height(),
        5,
        "key 7 is epoch 1's key: height 5 applies"
    );
    let mut chain = DaChain::new(DaState::new(net()));
    let wrong8 = signed_by(7, &state_after(&log), 3000, vec![chunk(9)]).unwrap();
    assert_eq!(chain.offer(wrong8), Offer::Held);
    for b in &log {
        assert!(matches!(chain.offer(b.clone()), Offer::Applied(_)));
    }
    assert_eq!(
        chain.height(),
        7,
        "epoch 2 is in force at 8: key 7 is refused"
    );
    assert_eq!(chain.pending(), 0);
}

#[test]
fn a_rotation_not_admitted_changes_no_key() {
    let mut state = DaState::new(net());
    let b1 = signed_by(
        1,
        &state,
        1,
        vec![rotated(rotation(1, 7, 1 + MAX_ROTATION_LEAD + 1))],
    )
    .unwrap();
    assert_eq!(state.apply_blob(&b1).unwrap().ignored, 1);
    assert!(state.committee_epochs().unwrap().is_empty());
    assert_eq!(state.epochs_at(10).unwrap(), (None, None));
    assert_eq!(
        state.check_event(&rotated(rotation(1, 7, 3))).unwrap(),
        EventOutcome::Applied
    );
}
