use ed25519_dalek::{Signer, VerifyingKey};
use serde_bytes::ByteBuf;
use sha2::{Digest, Sha256};

use super::*;
use crate::codec;

fn blob() -> DaBlob {
    DaBlob::sign(
        &authority(),
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        1_000,
        sample_events(),
    )
    .unwrap()
}

/// Encodes a version-2-shaped blob array with arbitrary parts.
fn raw_blob(version: u16, events: Vec<WireEvent>) -> Vec<u8> {
    codec::encode(
        &(
            version,
            "devnet",
            1u64,
            Bytes32([0; 32]),
            Bytes32([0; 32]),
            5u64,
            events,
            Bytes64([0; 64]),
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap()
}

#[test]
fn sign_encode_decode_verify_round_trip() {
    let b = blob();
    let bytes = b.to_bytes().unwrap();
    assert!(bytes.len() <= MAX_BLOB_BYTES);
    let back = DaBlob::from_bytes(&bytes).unwrap();
    assert_eq!(back, b);
    let v = DaBlob::decode_verified(&bytes, &net(), &auth()).unwrap();
    assert_eq!(v.blob(), &b);
    assert_eq!(v.height(), 1);
    assert_eq!(v.prev_hash(), GENESIS_PREV_HASH);
    assert_eq!(v.encoded(), &bytes[..]);
    // Version 3: the identity is the hash of the signing bytes alone.
    let msg = b.signing_bytes().unwrap();
    assert_eq!(v.hash(), <[u8; 32]>::from(Sha256::digest(&msg)));
    assert_eq!(v.into_blob(), b);
}

#[test]
fn signing_bytes_are_the_documented_array() {
    let b = blob();
    let wire: Vec<WireEvent> = b.events.iter().map(|e| e.to_wire().unwrap()).collect();
    let expected = codec::encode(
        &(
            "dsdn/da-blob/v1",
            DA_BLOB_VERSION,
            "devnet",
            1u64,
            Bytes32(GENESIS_PREV_HASH),
            Bytes32(empty_root()),
            1_000u64,
            wire,
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap();
    assert_eq!(b.signing_bytes().unwrap(), expected);
}

#[test]
fn unsigned_then_external_signature_equals_sign() {
    let u = DaBlob::unsigned(
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        1_000,
        sample_events(),
    )
    .unwrap();
    assert_eq!(u.signature, Bytes64([0; 64]));
    assert_eq!(
        u.clone().verify(&net(), &auth()),
        Err(DaError::BadSignature)
    );
    let sig = authority().sign(&u.signing_bytes().unwrap()).to_bytes();
    assert_eq!(u.with_signature(sig), blob());
}

#[test]
fn build_bounds() {
    let build = |height, events| DaBlob::unsigned(&net(), height, [0; 32], [0; 32], 0, events);
    assert!(matches!(
        build(0, sample_events()),
        Err(DaError::Malformed(_))
    ));
    // An empty blob is well-formed (a rotation filler, issue 13 §3).
    assert!(build(1, vec![]).is_ok());
    let small = add(1, "n");
    assert!(build(1, vec![small.clone(); MAX_EVENTS_PER_BLOB]).is_ok());
    assert!(matches!(
        build(1, vec![small; MAX_EVENTS_PER_BLOB + 1]),
        Err(DaError::Malformed(_))
    ));
    assert!(matches!(
        build(1, vec![node("", "z")]),
        Err(DaError::Malformed(_))
    ));
    // 1024 of the largest events do not fit 256 KiB: refused, never truncated.
    let big = node(&"n".repeat(MAX_TEXT_LEN), &"z".repeat(MAX_TEXT_LEN));
    let e = build(1, vec![big; MAX_EVENTS_PER_BLOB]).unwrap_err();
    assert!(
        matches!(e, DaError::Malformed(ref m) if m.contains("exceeds")),
        "{e}"
    );
    // The largest blob that is accepted decodes back.
    let mut events = Vec::new();
    let one = node(&"n".repeat(MAX_TEXT_LEN), &"z".repeat(MAX_TEXT_LEN));
    while DaBlob::unsigned(&net(), 1, [0; 32], [0; 32], 0, events.clone()).is_ok()
        || events.is_empty()
    {
        events.push(one.clone());
    }
    events.pop();
    let max = DaBlob::sign(
        &authority(),
        &net(),
        u64::MAX,
        [9; 32],
        [9; 32],
        u64::MAX,
        events,
    )
    .unwrap();
    let bytes = max.to_bytes().unwrap();
    assert!(bytes.len() > MAX_BLOB_BYTES - 1024 && bytes.len() <= MAX_BLOB_BYTES);
    assert!(DaBlob::decode_verified(&bytes, &net(), &auth()).is_ok());
}

#[test]
fn verify_refuses_with_the_precise_error() {
    let b = blob();
    let mut v5 = b.clone();
    v5.version = 5;
    assert_eq!(
        v5.verify(&net(), &auth()),
        Err(DaError::UnsupportedVersion(5))
    );
    assert_eq!(
        b.clone().verify(&other_net(), &auth()),
        Err(DaError::WrongNetwork {
            ours: "testnet".into(),
            theirs: "devnet".into()
        })
    );
    let mut h0 = b.clone();
    h0.height = 0;
    assert!(matches!(
        h0.verify(&net(), &auth()),
        Err(DaError::Malformed(_))
    ));
    // Events taken out of a signed blob: the signature no longer holds.
    let mut empty = b.clone();
    empty.events.clear();
    assert_eq!(empty.verify(&net(), &auth()), Err(DaError::BadSignature));
    let mut invalid = b.clone();
    invalid.events.push(add(1, ""));
    assert!(matches!(
        invalid.verify(&net(), &auth()),
        Err(DaError::Malformed(_))
    ));
    let rogue = DaBlob::sign(
        &key(2),
        &net(),
        1,
        [0; 32],
        empty_root(),
        1_000,
        sample_events(),
    )
    .unwrap();
    assert_eq!(rogue.verify(&net(), &auth()), Err(DaError::BadSignature));
    let tampers: [fn(&mut DaBlob); 5] = [
        |b| b.height = 2,
        |b| b.prev_hash = Bytes32([1; 32]),
        |b| b.timestamp_ms += 1,
        |b| {
            b.events.pop();
        },
        |b| b.signature.0[0] ^= 1,
    ];
    for tamper in tampers {
        let mut t = b.clone();
        tamper(&mut t);
        assert_eq!(t.verify(&net(), &auth()), Err(DaError::BadSignature));
    }
}

#[test]
fn unusable_authorities() {
    // A small-order point (the identity) is a weak key.
    let mut identity = [0u8; 32];
    identity[0] = 1;
    assert!(VerifyingKey::from_bytes(&identity).unwrap().is_weak());
    assert_eq!(blob().verify(&net(), &identity), Err(DaError::NoAuthority));
    // Bytes that are not a curve point.
    let not_point = (0u8..=255)
        .map(|b| [b; 32])
        .find(|k| VerifyingKey::from_bytes(k).is_err())
        .unwrap();
    assert_eq!(blob().verify(&net(), &not_point), Err(DaError::NoAuthority));
}

#[test]
fn decode_refuses_with_the_precise_error() {
    let over = vec![0u8; MAX_BLOB_BYTES + 1];
    assert!(matches!(DaBlob::from_bytes(&over), Err(DaError::Malformed(m)) if m.contains("cap")));
    assert!(matches!(
        DaBlob::from_bytes(b"\x00"),
        Err(DaError::Malformed(_))
    ));
    assert!(matches!(
        DaBlob::from_bytes(&[]),
        Err(DaError::Malformed(_))
    ));
    let good = blob().to_bytes().unwrap();
    assert!(DaBlob::from_bytes(&good[..good.len() - 1]).is_err());
    let mut trailing = good.clone();
    trailing.push(0);
    assert!(matches!(
        DaBlob::from_bytes(&trailing),
        Err(DaError::Malformed(_))
    ));

    let ev = add(1, "n").to_wire().unwrap();
    assert!(DaBlob::from_bytes(&raw_blob(2, vec![ev.clone()])).is_ok());
    assert!(DaBlob::from_bytes(&raw_blob(3, vec![ev.clone()])).is_ok());
    // A later version is reported as such, whatever its shape.
    assert_eq!(
        DaBlob::from_bytes(&raw_blob(5, vec![ev.clone()])),
        Err(DaError::UnsupportedVersion(5))
    );
    // Version 4 in the layout of version 3 misses its proposer fields.
    assert!(matches!(
        DaBlob::from_bytes(&raw_blob(4, vec![ev.clone()])),
        Err(DaError::Malformed(m)) if m.contains("no element 8")
    ));
    let v9 = codec::encode(&(9u16, "anything", [1, 2, 3]), 100).unwrap();
    assert_eq!(DaBlob::from_bytes(&v9), Err(DaError::UnsupportedVersion(9)));
    let short = codec::encode(&(2u16, "devnet"), 100).unwrap();
    assert!(matches!(
        DaBlob::from_bytes(&short),
        Err(DaError::Malformed(_))
    ));
    let long = codec::encode(
        &(
            2u16,
            "devnet",
            1u64,
            Bytes32([0; 32]),
            Bytes32([0; 32]),
            5u64,
            vec![ev.clone()],
            Bytes64([0; 64]),
            0u8,
        ),
        1000,
    )
    .unwrap();
    assert!(matches!(
        DaBlob::from_bytes(&long),
        Err(DaError::Malformed(_))
    ));
    let kind = WireEvent(42, 1, ev.2.clone());
    assert_eq!(
        DaBlob::from_bytes(&raw_blob(2, vec![ev.clone(), kind])),
        Err(DaError::UnknownEventKind(42))
    );
    let version = WireEvent(3, 7, ev.2.clone());
    assert_eq!(
        DaBlob::from_bytes(&raw_blob(2, vec![version])),
        Err(DaError::UnsupportedEventVersion {
            kind: "replica_added",
            version: 7
        })
    );
    let body = WireEvent(3, 1, ByteBuf::from(vec![1, 2, 3]));
    assert!(matches!(
        DaBlob::from_bytes(&raw_blob(2, vec![body])),
        Err(DaError::Malformed(_))
    ));
}

#[test]
fn error_reasons() {
    let all = [
        (DaError::Malformed("x".into()), "malformed"),
        (DaError::UnsupportedVersion(2), "unsupported_version"),
        (DaError::UnknownEventKind(9), "unknown_event_kind"),
        (
            DaError::UnsupportedEventVersion {
                kind: "chunk_declared",
                version: 2,
            },
            "unsupported_event_version",
        ),
        (
            DaError::WrongNetwork {
                ours: "a".into(),
                theirs: "b".into(),
            },
            "wrong_network",
        ),
        (DaError::BadSignature, "bad_signature"),
        (DaError::NoAuthority, "no_authority"),
    ];
    for (e, reason) in all {
        assert_eq!(e.reason(), reason);
        assert!(!e.to_string().is_empty());
    }
}

#[test]
fn unverified_hash_matches_the_verified_one() {
    let b = blob();
    let unverified = b.hash().unwrap();
    let v = b.verify(&net(), &auth()).unwrap();
    assert_eq!(unverified, v.hash());
    let signed = v.blob().signing_bytes().unwrap();
    assert_eq!(<[u8; 32]>::from(Sha256::digest(&signed)), v.hash());
}

/// A version-2 blob (an older log's) still verifies, and its identity still covers the
/// signature, so the hash chain of an existing log replays unchanged.
#[test]
fn version_2_blobs_keep_the_identity_over_the_signature() {
    let mut b = DaBlob::unsigned(
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        1_000,
        sample_events(),
    )
    .unwrap();
    b.version = DA_BLOB_VERSION_V2;
    let msg = b.signing_bytes().unwrap();
    let b = b.with_signature(authority().sign(&msg).to_bytes());
    let bytes = b.to_bytes().unwrap();
    let v = DaBlob::decode_verified(&bytes, &net(), &auth()).unwrap();
    assert_eq!(v.blob().version, DA_BLOB_VERSION_V2);
    assert_eq!(v.encoded(), &bytes[..]);
    assert_eq!(v.prev_state_root(), Some(empty_root()));
    let mut signed = msg;
    signed.extend_from_slice(&b.signature.0);
    assert_eq!(v.hash(), <[u8; 32]>::from(Sha256::digest(&signed)));
    assert_eq!(b.hash().unwrap(), v.hash());
}

#[test]
fn signing_bytes_decode_to_the_unsigned_blob() {
    let unsigned = DaBlob::unsigned(&net(), 3, [7; 32], [8; 32], 9_000, sample_events()).unwrap();
    let msg = unsigned.signing_bytes().unwrap();
    assert_eq!(DaBlob::from_signing_bytes(&msg).unwrap(), unsigned);
    // The signature the committee produces over them makes a blob every node verifies.
    let sig = authority().sign(&msg).to_bytes();
    let v = unsigned
        .with_signature(sig)
        .verify(&net(), &auth())
        .unwrap();
    assert_eq!(v.height(), 3);
}

#[test]
fn signing_bytes_of_other_shapes_are_refused() {
    let b = blob();
    // The wire form of a blob is not its signing bytes.
    assert!(DaBlob::from_signing_bytes(&b.to_bytes().unwrap()).is_err());
    let wire = b
        .events
        .iter()
        .map(|e| e.to_wire().unwrap())
        .collect::<Vec<_>>();
    let with = |domain: &str, version: u16, height: u64| {
        codec::encode(
            &(
                domain,
                version,
                "devnet",
                height,
                Bytes32([0; 32]),
                Bytes32([0; 32]),
                5u64,
                &wire,
            ),
            MAX_BLOB_BYTES,
        )
        .unwrap()
    };
    assert!(DaBlob::from_signing_bytes(&with("dsdn/da-blob/v1", 3, 1)).is_ok());
    assert!(matches!(
        DaBlob::from_signing_bytes(&with("dsdn/receipt/v1", 3, 1)),
        Err(DaError::Malformed(_))
    ));
    // A member signs only the version this build writes.
    assert_eq!(
        DaBlob::from_signing_bytes(&with("dsdn/da-blob/v1", 2, 1)),
        Err(DaError::UnsupportedVersion(2))
    );
    assert_eq!(
        DaBlob::from_signing_bytes(&with("dsdn/da-blob/v1", 4, 1)),
        Err(DaError::UnsupportedVersion(4))
    );
    // A member never signs a version-1 blob (it commits to no state root).
    let v1 = codec::encode(
        &(
            "dsdn/da-blob/v1",
            1u16,
            "devnet",
            1u64,
            Bytes32([0; 32]),
            5u64,
            &wire,
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap();
    assert_eq!(
        DaBlob::from_signing_bytes(&v1),
        Err(DaError::UnsupportedVersion(1))
    );
    assert!(matches!(
        DaBlob::from_signing_bytes(&with("dsdn/da-blob/v1", 3, 0)),
        Err(DaError::Malformed(_))
    ));
    let mut long = with("dsdn/da-blob/v1", 3, 1);
    long.push(0);
    assert!(DaBlob::from_signing_bytes(&long).is_err());
    assert!(DaBlob::from_signing_bytes(&[0xff; 16]).is_err());
}

/// A version-1 blob (an older log's) still decodes, verifies and re-encodes to its own
/// bytes; it commits to no state root.
#[test]
fn version_1_blobs_of_an_older_log_still_verify() {
    let events = sample_events();
    let wire: Vec<WireEvent> = events.iter().map(|e| e.to_wire().unwrap()).collect();
    let signing = codec::encode(
        &(
            "dsdn/da-blob/v1",
            1u16,
            "devnet",
            1u64,
            Bytes32(GENESIS_PREV_HASH),
            1_000u64,
            &wire,
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap();
    let sig = Bytes64(authority().sign(&signing).to_bytes());
    let bytes = codec::encode(
        &(
            1u16,
            "devnet",
            1u64,
            Bytes32(GENESIS_PREV_HASH),
            1_000u64,
            &wire,
            sig,
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap();
    let v = DaBlob::decode_verified(&bytes, &net(), &auth()).unwrap();
    assert_eq!(v.blob().version, DA_BLOB_VERSION_V1);
    assert_eq!(v.prev_state_root(), None);
    assert_eq!(v.encoded(), &bytes[..]);
    // It applies to a state (no root to check), as in a log written before version 2.
    let mut s = DaState::new(net());
    assert!(s.apply_blob(&v).is_ok());
    // A version-2 blob exposes its root.
    assert_eq!(
        blob().verify(&net(), &auth()).unwrap().prev_state_root(),
        Some(empty_root())
    );
}
