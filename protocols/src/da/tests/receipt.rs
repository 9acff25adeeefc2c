//! Tests of `receipt_recorded` events: wire and JSON forms, validation, the `receipt_map`
//! they build, its share of the state root, and batching them into blobs.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_bytes::ByteBuf;

use super::state::{apply, state};
use super::*;
use crate::codec;
use crate::committee::{MemberId, MAX_MEMBERS, MAX_MEMBER_ID_BYTES};
use crate::receipt::signed_tests::{draft, node_key, threshold};
use crate::receipt::{ReceiptDraft, ReceiptV1, ThresholdReceipt, MAX_THRESHOLD_RECEIPT_BYTES};

/// A valid threshold receipt for job `nonce` of node 1, signed by a plain Ed25519 key
/// standing in for the committee's group key.
fn receipt(nonce: u64) -> ThresholdReceipt {
    let d = ReceiptDraft { nonce, ..draft(1) };
    threshold(ReceiptV1::sign(&node_key(1), d).unwrap(), &node_key(50))
}

fn recorded(nonce: u64) -> DaEvent {
    DaEvent::receipt_recorded(receipt(nonce))
}

/// `count` member ids of the largest length.
fn big_signers(count: usize) -> Vec<MemberId> {
    (0..count)
        .map(|i| MemberId::new(vec![i as u8; MAX_MEMBER_ID_BYTES]).unwrap())
        .collect()
}

/// The record a state must hold for `t` recorded at `height`.
fn record(t: &ThresholdReceipt, height: u64) -> RecordedReceipt {
    RecordedReceipt {
        receipt_hash: t.receipt_hash().unwrap(),
        workload_id: t.receipt.workload_id,
        node_key: t.receipt.node_key,
        height,
    }
}

#[test]
fn receipt_events_round_trip_on_the_wire() {
    let t = receipt(1);
    let e = DaEvent::receipt_recorded(t.clone());
    assert_eq!(e.kind(), "receipt_recorded");
    e.validate().unwrap();
    let w = e.to_wire().unwrap();
    assert_eq!((w.0, w.1), (6, EVENT_VERSION));
    // The body is the receipt's CBOR as one byte string.
    let inner: ByteBuf = codec::decode(&w.2, MAX_RECEIPT_EVENT_BODY_BYTES).unwrap();
    assert_eq!(inner.into_vec(), t.to_bytes().unwrap());
    assert!(w.2.len() <= MAX_RECEIPT_EVENT_BODY_BYTES);
    assert_eq!(DaEvent::from_wire(&w).unwrap(), e);
    let cap = MAX_RECEIPT_EVENT_BODY_BYTES + 16;
    let bytes = codec::encode(&w, cap).unwrap();
    assert_eq!(codec::decode::<WireEvent>(&bytes, cap).unwrap(), w);
    // Inside a blob, next to the other kinds.
    let mut events = sample_events();
    events.extend([recorded(2), recorded(3)]);
    let b = DaBlob::sign(
        &authority(),
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        5,
        events,
    )
    .unwrap();
    let bytes = b.to_bytes().unwrap();
    let v = DaBlob::decode_verified(&bytes, &net(), &auth()).unwrap();
    assert_eq!(v.blob(), &b);
    assert_eq!(v.encoded(), &bytes[..]);
}

#[test]
fn receipt_events_json_form_shows_the_receipt_and_parses_back() {
    let t = receipt(1);
    let e = DaEvent::receipt_recorded(t.clone());
    let json = serde_json::to_value(&e).unwrap();
    let hex32 = |b: Bytes32| serde_json::Value::from(hex::encode(b.0));
    assert_eq!(json["type"], "receipt_recorded");
    assert_eq!(json["receipt_id"], hex32(t.receipt_id()));
    assert_eq!(json["receipt_hash"], hex32(t.receipt_hash().unwrap()));
    assert_eq!(json["workload_id"], hex32(t.receipt.workload_id));
    assert_eq!(json["node_key"], hex32(t.receipt.node_key));
    assert_eq!(json["submitter"], hex32(t.receipt.submitter));
    assert_eq!(json["epoch"], 4);
    assert_eq!(json["receipt_cbor"], hex::encode(t.to_bytes().unwrap()));
    assert_eq!(json.as_object().unwrap().len(), 8);
    let text = serde_json::to_string(&e).unwrap();
    assert_eq!(serde_json::from_str::<DaEvent>(&text).unwrap(), e);
    // A list of events of every kind round-trips too.
    let mut all = sample_events();
    all.push(e);
    let text = serde_json::to_string(&all).unwrap();
    assert_eq!(serde_json::from_str::<Vec<DaEvent>>(&text).unwrap(), all);
    // Derived fields must match the receipt; unknown fields and bad hex are refused.
    let edits: [(&str, serde_json::Value); 6] = [
        ("receipt_id", hex32(Bytes32([0; 32]))),
        ("receipt_hash", hex32(Bytes32([0; 32]))),
        ("node_key", hex32(Bytes32([0; 32]))),
        ("epoch", 5.into()),
        ("receipt_cbor", "zz".into()),
        ("extra", 1.into()),
    ];
    for (field, value) in edits {
        let mut j = json.clone();
        j[field] = value;
        assert!(
            serde_json::from_value::<DaEvent>(j).is_err(),
            "{field} accepted"
        );
    }
    let mut j = json.clone();
    j.as_object_mut().unwrap().remove("workload_id");
    assert!(serde_json::from_value::<DaEvent>(j).is_err());
    let mut j = json;
    j["receipt_cbor"] = hex::encode(vec![0u8; MAX_THRESHOLD_RECEIPT_BYTES + 1]).into();
    assert!(serde_json::from_value::<DaEvent>(j).is_err());
}

#[test]
fn validate_refuses_inconsistent_and_oversized_receipts() {
    let good = receipt(1);
    let inconsistent = |f: fn(&mut ThresholdReceipt)| {
        let mut t = good.clone();
        f(&mut t);
        DaEvent::receipt_recorded(t)
    };
    let bad = [
        inconsistent(|t| t.receipt.receipt_id = Bytes32([0; 32])),
        inconsistent(|t| t.receipt.workload_id = Bytes32([0; 32])),
        inconsistent(|t| t.receipt.submitter = t.receipt.node_key),
    ];
    for e in &bad {
        let err = e.validate().unwrap_err();
        assert!(
            matches!(&err, DaError::Malformed(m) if m.starts_with("receipt_recorded event: field receipt")),
            "{err}"
        );
        // Never applied, and no blob carries it.
        assert_eq!(
            state().check_event(e).unwrap(),
            EventOutcome::Ignored("invalid")
        );
        assert!(DaBlob::sign(
            &authority(),
            &net(),
            1,
            [0; 32],
            empty_root(),
            0,
            vec![e.clone()]
        )
        .is_err());
    }
    // The group signature is not the DA layer's to check: a zeroed one still validates.
    inconsistent(|t| t.aggregate_signature = Bytes64([0; 64]))
        .validate()
        .unwrap();
    // A receipt whose CBOR exceeds MAX_THRESHOLD_RECEIPT_BYTES (too many signers) is
    // refused, and cannot be put on the wire.
    let mut t = good.clone();
    t.signers = big_signers(2 * MAX_MEMBERS);
    let huge = DaEvent::receipt_recorded(t);
    assert!(matches!(huge.validate(), Err(DaError::Malformed(_))));
    assert!(matches!(huge.to_wire(), Err(DaError::Malformed(_))));
}

#[test]
fn oversized_and_malformed_receipt_bodies_are_refused() {
    let refused = |w: WireEvent| match DaEvent::from_wire(&w) {
        Err(DaError::Malformed(m)) => assert!(m.starts_with("receipt_recorded"), "{m}"),
        other => panic!("accepted: {other:?}"),
    };
    refused(WireEvent(
        6,
        1,
        ByteBuf::from(vec![0u8; MAX_RECEIPT_EVENT_BODY_BYTES + 1]),
    ));
    // A byte string within the body cap holding more than a receipt may.
    let inner = ByteBuf::from(vec![0u8; MAX_THRESHOLD_RECEIPT_BYTES + 1]);
    let body = codec::encode(&inner, MAX_RECEIPT_EVENT_BODY_BYTES).unwrap();
    assert!(body.len() <= MAX_RECEIPT_EVENT_BODY_BYTES);
    refused(WireEvent(6, 1, ByteBuf::from(body)));
    // Another kind's body, the receipt's CBOR not wrapped, trailing bytes.
    refused(WireEvent(6, 1, node("a", "z").to_wire().unwrap().2));
    refused(WireEvent(
        6,
        1,
        ByteBuf::from(receipt(1).to_bytes().unwrap()),
    ));
    let mut trailing = recorded(1).to_wire().unwrap().2.into_vec();
    trailing.push(0);
    refused(WireEvent(6, 1, ByteBuf::from(trailing)));
    let body = recorded(1).to_wire().unwrap().2;
    assert_eq!(
        DaEvent::from_wire(&WireEvent(6, 2, body.clone())),
        Err(DaError::UnsupportedEventVersion {
            kind: "receipt_recorded",
            version: 2
        })
    );
    // A receipt body under a storage kind is refused by that kind's cap.
    assert!(DaEvent::from_wire(&WireEvent(1, 1, body)).is_err());
}

#[test]
fn largest_receipt_event_fits_its_body_cap() {
    let mut t = receipt(u64::MAX);
    t.epoch = u64::MAX;
    t.signers = big_signers(MAX_MEMBERS);
    let e = DaEvent::receipt_recorded(t);
    e.validate().unwrap();
    let w = e.to_wire().unwrap();
    assert!(w.2.len() <= MAX_RECEIPT_EVENT_BODY_BYTES, "{}", w.2.len());
    assert_eq!(DaEvent::from_wire(&w).unwrap(), e);
    // A blob of the most events that fit holds many of them.
    let per_blob = MAX_BLOB_BYTES / (w.2.len() + 8);
    assert!(per_blob >= 32, "{per_blob}");
}

#[test]
fn replay_records_receipts_at_their_blob_height() {
    let mut s = state();
    apply(&mut s, sample_events());
    let sum = apply(&mut s, vec![recorded(1), recorded(2)]);
    assert_eq!(
        sum,
        ApplySummary {
            applied: 2,
            ignored: 0
        }
    );
    assert_eq!(s.header().receipts, 2);
    let t = receipt(1);
    assert_eq!(s.receipt(&t.receipt_id()).unwrap(), Some(record(&t, 2)));
    assert_eq!(
        s.receipt(&receipt(2).receipt_id()).unwrap().unwrap().height,
        2
    );
    assert_eq!(s.receipt(&receipt(3).receipt_id()).unwrap(), None);
    // Through a chain too: offered out of order, applied in order.
    let b1 = signed(1, GENESIS_PREV_HASH, 1, sample_events());
    let mut after1 = state();
    after1.apply_blob(&b1).unwrap();
    let b2 = next_of(&after1, 2, vec![recorded(1), recorded(2)]);
    let mut c = DaChain::new(state());
    assert!(matches!(c.offer(b2), Offer::Held));
    assert!(matches!(c.offer(b1), Offer::Applied(_)));
    assert_eq!(c.state().header().receipts, s.header().receipts);
    assert_eq!(c.state().state_root(), s.state_root());
}

#[test]
fn a_duplicate_receipt_is_ignored_and_counted() {
    let mut s = state();
    apply(&mut s, vec![recorded(1)]);
    let first = s.receipt(&receipt(1).receipt_id()).unwrap().unwrap();
    let ignored = s.ignored_events();
    assert_eq!(
        s.check_event(&recorded(1)).unwrap(),
        EventOutcome::Ignored("duplicate_receipt")
    );
    // The same id again (even re-signed in another epoch), and twice in one blob.
    let mut again = receipt(1);
    again.epoch = 9;
    let again = threshold(again.receipt, &node_key(51));
    assert_eq!(again.receipt_id(), receipt(1).receipt_id());
    let sum = apply(
        &mut s,
        vec![DaEvent::receipt_recorded(again), recorded(2), recorded(2)],
    );
    assert_eq!(
        sum,
        ApplySummary {
            applied: 1,
            ignored: 2
        }
    );
    assert_eq!(s.ignored_events(), ignored + 2);
    assert_eq!(s.events(), 4);
    assert_eq!(s.receipt(&receipt(1).receipt_id()).unwrap(), Some(first));
    assert_eq!(
        s.receipt(&receipt(2).receipt_id()).unwrap().unwrap().height,
        2
    );
}

#[test]
fn receipts_move_the_state_root_deterministically() {
    let replay = |blobs: &[Vec<DaEvent>]| {
        let mut s = state();
        for events in blobs {
            apply(&mut s, events.clone());
        }
        s
    };
    let base = replay(&[sample_events()]);
    let blobs = [sample_events(), vec![recorded(1)], vec![recorded(2)]];
    let one = replay(&blobs);
    let two = replay(&blobs);
    assert_eq!(one, two);
    assert_eq!(one.state_root(), two.state_root());
    assert_ne!(one.state_root(), base.state_root());
    // Every field of a record moves the root: another receipt, another height.
    let fewer = replay(&blobs[..2]);
    assert_ne!(fewer.state_root(), one.state_root());
    // `remove(1, "x")` is an ignored no-op: the maps differ only in the recording height.
    let later = replay(&[sample_events(), vec![remove(1, "x")], vec![recorded(1)]]);
    let same_maps = replay(&[sample_events(), vec![recorded(1)], vec![remove(1, "x")]]);
    assert_eq!(later.header().nodes, same_maps.header().nodes);
    assert_eq!(later.header().receipts, same_maps.header().receipts);
    assert_ne!(later.state_root(), same_maps.state_root(), "height counts");
    // A duplicate changes nothing in the root.
    let mut dup = replay(&blobs);
    apply(&mut dup, vec![recorded(1)]);
    assert_eq!(dup.state_root(), one.state_root());
}

#[test]
fn size_cut_batches_of_receipts_fit_a_blob() {
    use crate::da::batch::{BatchConfig, Batcher};
    // The publisher's bound: the blob cap minus room for the blob's own fields.
    let cfg = BatchConfig {
        max_bytes: MAX_BLOB_BYTES - 4096,
        max_items: MAX_EVENTS_PER_BLOB,
        max_delay: Duration::from_secs(1),
    };
    let mut b = Batcher::new(cfg, 4096);
    let t0 = Instant::now();
    let mut template = receipt(0);
    template.signers = big_signers(MAX_MEMBERS);
    let events: Vec<DaEvent> = (0..120u64)
        .map(|n| {
            let mut t = template.clone();
            t.receipt = receipt(n).receipt;
            DaEvent::receipt_recorded(t)
        })
        .collect();
    for e in &events {
        let size = codec::encode(&e.to_wire().unwrap(), MAX_BLOB_BYTES)
            .unwrap()
            .len();
        b.push(e.clone(), size, t0).unwrap();
    }
    let mut prev = GENESIS_PREV_HASH;
    let mut out = Vec::new();
    let mut s = state();
    while let Some(batch) = b.poll(t0) {
        assert!(batch.len() < events.len(), "cut by size, not by count");
        let n = batch.len();
        let blob = signed_root(s.height() + 1, prev, s.state_root(), 0, batch.clone());
        assert!(blob.encoded().len() <= MAX_BLOB_BYTES);
        prev = blob.hash();
        assert_eq!(s.apply_blob(&blob).unwrap().applied, n);
        out.extend(batch);
    }
    // The remainder is below every trigger until it is flushed.
    while let Some(batch) = b.flush() {
        let blob = signed_root(s.height() + 1, prev, s.state_root(), 0, batch.clone());
        prev = blob.hash();
        s.apply_blob(&blob).unwrap();
        out.extend(batch);
    }
    assert_eq!(out, events);
    assert!(s.height() >= 3);
    assert_eq!(s.header().receipts, events.len() as u64);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Receipt events of any job and signer count round-trip through the wire and JSON
    /// forms within their body cap, and record once whatever the repetition.
    #[test]
    fn receipt_events_round_trip_and_record_once(
        nonces in proptest::collection::vec(0u64..8, 1..12),
        signers in 1..=MAX_MEMBERS,
        epoch in any::<u64>(),
    ) {
        let events: Vec<DaEvent> = nonces
            .iter()
            .map(|&n| {
                let mut t = receipt(n);
                t.signers = big_signers(signers);
                t.epoch = epoch;
                DaEvent::receipt_recorded(t)
            })
            .collect();
        for e in &events {
            prop_assert!(e.validate().is_ok());
            let w = e.to_wire().unwrap();
            prop_assert!(w.2.len() <= MAX_RECEIPT_EVENT_BODY_BYTES);
            prop_assert_eq!(&DaEvent::from_wire(&w).unwrap(), e);
            let json = serde_json::to_string(e).unwrap();
            prop_assert_eq!(&serde_json::from_str::<DaEvent>(&json).unwrap(), e);
        }
        let mut s = state();
        let sum = apply(&mut s, events.clone());
        let distinct: std::collections::BTreeSet<u64> = nonces.iter().copied().collect();
        prop_assert_eq!(sum.applied, distinct.len());
        prop_assert_eq!(sum.ignored, nonces.len() - distinct.len());
        prop_assert_eq!(s.header().receipts, distinct.len() as u64);
    }
}
