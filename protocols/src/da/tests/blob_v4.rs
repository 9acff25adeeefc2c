//! Version-4 blobs: the proposer and its signature (issue 13 §6).

use ed25519_dalek::{Signer, SigningKey};
use serde_bytes::Bytes;
use sha2::{Digest, Sha256};

use super::*;
use crate::codec;
use crate::da::blob::proposer::{peer_id_bytes, peer_id_text, proposer_key};

/// The proposing member's node key in the tests.
fn member_key(n: u8) -> SigningKey {
    key(40u8.wrapping_add(n))
}

/// A version-4 blob at `height` proposed by `member_key(m)`, unsigned by the committee.
fn proposal(m: u8) -> DaBlob {
    DaBlob::unsigned(
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        1_000,
        sample_events(),
    )
    .unwrap()
    .proposed_by(&member_key(m))
    .unwrap()
}

/// `blob` with the committee signature (the authority's key stands for the group key).
fn sealed(blob: DaBlob) -> DaBlob {
    let sig = authority().sign(&blob.signing_bytes().unwrap()).to_bytes();
    blob.with_signature(sig)
}

#[test]
fn proposer_is_the_libp2p_peer_id_of_the_node_key() {
    let id = peer_id_bytes(&member_key(1).verifying_key());
    assert_eq!(id.len(), 38);
    let text = peer_id_text(&id);
    assert!(text.starts_with("12D3KooW"), "{text}");
    let parsed: multiaddr::PeerId = text.parse().unwrap();
    assert_eq!(parsed.to_bytes(), id);
    assert_eq!(proposer_key(&id).unwrap(), member_key(1).verifying_key());
    // Not an Ed25519 PeerId: refused.
    assert!(proposer_key(&id[..37]).is_err());
    let mut sha = id.clone();
    sha[0] = 0x12;
    assert!(proposer_key(&sha).is_err());
}

#[test]
fn v4_round_trip_and_canonical_encoding() {
    let b = sealed(proposal(1));
    assert_eq!(b.version, DA_BLOB_VERSION_V4);
    assert_eq!(
        b.proposer(),
        Some(&peer_id_bytes(&member_key(1).verifying_key())[..])
    );
    let bytes = b.to_bytes().unwrap();
    let back = DaBlob::from_bytes(&bytes).unwrap();
    assert_eq!(back, b);
    assert_eq!(back.to_bytes().unwrap(), bytes);
    let v = DaBlob::decode_verified(&bytes, &net(), &auth()).unwrap();
    assert_eq!(v.encoded(), &bytes[..]);
    assert_eq!(v.proposer(), b.proposer());
    // The identity covers the proposer and its signature, not the committee signature.
    let msg = b.signing_bytes().unwrap();
    assert_eq!(v.hash(), <[u8; 32]>::from(Sha256::digest(&msg)));
    // The signing bytes decode to the proposal (what a co-signer checks).
    assert_eq!(DaBlob::from_signing_bytes(&msg).unwrap(), proposal(1));
    // Ed25519 is deterministic: the same proposal twice has the same bytes.
    assert_eq!(proposal(1).signing_bytes().unwrap(), msg);
}

#[test]
fn v4_layouts_are_the_documented_arrays() {
    let b = sealed(proposal(1));
    let wire: Vec<WireEvent> = b.events.iter().map(|e| e.to_wire().unwrap()).collect();
    let proposer = peer_id_bytes(&member_key(1).verifying_key());
    let head = (
        DA_BLOB_VERSION_V4,
        "devnet",
        1u64,
        Bytes32(GENESIS_PREV_HASH),
        Bytes32(empty_root()),
        1_000u64,
    );
    let by_proposer = codec::encode(
        &(
            "dsdn/da-blob-proposer/v1",
            head.0,
            head.1,
            head.2,
            head.3,
            head.4,
            head.5,
            &wire,
            Bytes::new(&proposer),
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap();
    assert_eq!(b.proposer_signing_bytes().unwrap(), by_proposer);
    let proposer_sig = member_key(1).sign(&by_proposer).to_bytes();
    assert_eq!(b.proposer_sig.0, proposer_sig);
    let signing = codec::encode(
        &(
            "dsdn/da-blob/v1",
            head.0,
            head.1,
            head.2,
            head.3,
            head.4,
            head.5,
            &wire,
            Bytes::new(&proposer),
            Bytes64(proposer_sig),
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap();
    assert_eq!(b.signing_bytes().unwrap(), signing);
    let encoded = codec::encode(
        &(
            head.0,
            head.1,
            head.2,
            head.3,
            head.4,
            head.5,
            &wire,
            Bytes::new(&proposer),
            Bytes64(proposer_sig),
            b.signature,
        ),
        MAX_BLOB_BYTES,
    )
    .unwrap();
    assert_eq!(b.to_bytes().unwrap(), encoded);
}

/// The test vector of PROTOCOL.md §7.1: an empty blob at height 1 of `devnet`, timestamp
/// 1000, proposed by the node key of seed `[7; 32]`.
#[test]
fn v4_test_vector() {
    let b = DaBlob::unsigned(
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        1_000,
        Vec::new(),
    )
    .unwrap()
    .proposed_by(&SigningKey::from_bytes(&[7; 32]))
    .unwrap();
    assert_eq!(
        hex::encode(b.proposer_signing_bytes().unwrap()),
        "8978186473646e2f64612d626c6f622d70726f706f7365722f763104666465766e657401\
         582000000000000000000000000000000000000000000000000000000000000000005820\
         5350415253455f4d45524b4c455f504c414345484f4c4445525f484153485f5f1903e880\
         5826002408011220ea4a6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea69\
         1446d22c"
    );
    assert_eq!(
        peer_id_text(&b.proposer),
        "12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7"
    );
    assert_eq!(
        hex::encode(b.proposer_sig.0),
        "ea3f924e5e9b85c7786b0373076c6a36f48eda47d71f716c67f43d9b5c93d397c807ed15\
         05d111bb89d326ea4a2460d59386c54778b2ec89706f99c05e6d0f00"
    );
    assert_eq!(
        hex::encode(b.signing_bytes().unwrap()),
        "8a6f6473646e2f64612d626c6f622f763104666465766e65740158200000000000000000\
         00000000000000000000000000000000000000000000000058205350415253455f4d4552\
         4b4c455f504c414345484f4c4445525f484153485f5f1903e8805826002408011220ea4a\
         6c63e29c520abef5507b132ec5f9954776aebebe7b92421eea691446d22c5840ea3f924e\
         5e9b85c7786b0373076c6a36f48eda47d71f716c67f43d9b5c93d397c807ed1505d111bb\
         89d326ea4a2460d59386c54778b2ec89706f99c05e6d0f00"
    );
    assert_eq!(
        hex::encode(b.hash().unwrap()),
        "644963f17b0a46b1868714946695d73906c83075d12947e81ad53cb750f5f5c3"
    );
}

#[test]
fn tampered_or_swapped_proposers_are_refused() {
    // A flipped bit of proposer_sig, even under a valid committee signature.
    let mut b = proposal(1);
    b.proposer_sig.0[5] ^= 1;
    let msg = b.signing_bytes().unwrap();
    assert!(matches!(
        DaBlob::from_signing_bytes(&msg),
        Err(DaError::BadProposer(_))
    ));
    let e = sealed(b).verify(&net(), &auth()).unwrap_err();
    assert!(
        matches!(e, DaError::BadProposer(ref m) if m.contains("does not verify")),
        "{e}"
    );
    assert_eq!(e.reason(), "bad_proposer");
    // Another member named as the proposer of member 1's signed blob.
    let mut swapped = proposal(1);
    swapped.proposer = peer_id_bytes(&member_key(2).verifying_key());
    assert!(matches!(
        sealed(swapped).verify(&net(), &auth()),
        Err(DaError::BadProposer(_))
    ));
    // A proposer that is no Ed25519 PeerId.
    let mut junk = proposal(1);
    junk.proposer = vec![1, 2, 3];
    assert!(matches!(
        sealed(junk.clone()).verify(&net(), &auth()),
        Err(DaError::BadProposer(_))
    ));
    // The wire form with a tampered proposer_sig does not verify either (and a flip of the
    // committee signature is still a committee signature failure).
    let good = sealed(proposal(1));
    let mut bad = good.clone();
    bad.signature.0[0] ^= 1;
    assert_eq!(bad.verify(&net(), &auth()), Err(DaError::BadSignature));
    // Version-3 blobs carry no proposer and still verify.
    let v3 = DaBlob::sign(
        &authority(),
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        1,
        vec![],
    )
    .unwrap();
    assert_eq!(v3.version, DA_BLOB_VERSION);
    assert_eq!(v3.clone().verify(&net(), &auth()).unwrap().proposer(), None);
    let v3_bytes = v3.to_bytes().unwrap();
    assert_eq!(DaBlob::from_bytes(&v3_bytes).unwrap(), v3);
}

#[test]
fn a_proposer_outside_its_epoch_is_refused() {
    let member = |m| peer_id_text(&peer_id_bytes(&member_key(m).verifying_key()));
    let group = key(9);
    let record = EpochRecord {
        epoch: 3,
        members: vec![member(1), member(2), member(3)],
        threshold: 2,
        group_key: Bytes32(group.verifying_key().to_bytes()),
        effective_height: 1,
        sealed_at: 0,
    };
    let history = KeyHistory::with_epochs(auth(), vec![record]);
    let by = |m| {
        let b = proposal(m);
        let sig = group.sign(&b.signing_bytes().unwrap()).to_bytes();
        b.with_signature(sig)
    };
    let v = history.verify_blob(by(2), &net()).unwrap();
    assert_eq!(v.proposer().map(peer_id_text), Some(member(2)));
    let e = history.verify_blob(by(4), &net()).unwrap_err();
    assert!(
        matches!(e, DaError::BadProposer(ref m) if m.contains("not a member")),
        "{e}"
    );
    // Under the genesis authority no member list is recorded: the signature alone counts.
    let genesis = KeyHistory::new(auth());
    assert!(genesis.verify_blob(sealed(proposal(4)), &net()).is_ok());
}
