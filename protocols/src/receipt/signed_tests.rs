//! Tests of [`ReceiptV1`], [`ThresholdReceipt`] and [`ReceiptDedup`]: signing and
//! verification (with a real FROST committee too), every refusal, CBOR round trips and
//! encoded sizes.

use ed25519_dalek::{Signer as _, SigningKey};
use proptest::prelude::*;

use super::*;
use crate::committee::tests::{config, member, rng, run_dkg, sign_with, signers};
use crate::committee::{CommitteeConfig, GroupKey, MemberId, MAX_MEMBERS, MAX_MEMBER_ID_BYTES};
use crate::da::Bytes64;

pub(crate) fn commitment(seed: u8, fuel: u64) -> ExecutionCommitment {
    ExecutionCommitment {
        workload_id: sha256(&[seed, 1]),
        input_hash: sha256(&[seed, 2]),
        output_hash: sha256(&[seed, 3]),
        state_root_before: sha256(&[seed, 4]),
        state_root_after: sha256(&[seed, 5]),
        trace_root: sha256(&[seed, 6]),
        checkpoints: 3,
        fuel_used: fuel,
    }
}

pub(crate) fn draft(seed: u8) -> ReceiptDraft {
    ReceiptDraft {
        submitter: Bytes32([0xaa; 32]),
        nonce: 7,
        commitment: commitment(seed, 12_345),
        usage: ResourceUsage {
            fuel_used: 12_345,
            memory_peak_bytes: 65_536,
            wall_time_ms: 3,
        },
        executed_at_ms: 1_700_000_000_000,
    }
}

pub(crate) fn node_key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

/// A threshold receipt signed by a plain Ed25519 key standing in for the group.
pub(crate) fn threshold(receipt: ReceiptV1, group: &SigningKey) -> ThresholdReceipt {
    let mut t = ThresholdReceipt {
        receipt,
        epoch: 4,
        committee_hash: Bytes32([9; 32]),
        group_key: GroupKey(group.verifying_key().to_bytes()),
        signers: vec![member(0), member(2)],
        aggregate_signature: Bytes64([0; 64]),
    };
    t.aggregate_signature = Bytes64(group.sign(&t.signing_bytes().unwrap()).to_bytes());
    t
}

#[test]
fn a_signed_receipt_verifies_and_its_fields_are_derived() {
    let key = node_key(1);
    let r = ReceiptV1::sign(&key, draft(1)).unwrap();
    r.verify().unwrap();
    assert_eq!(r.workload_id, r.commitment.workload_id);
    assert_eq!(r.output_hash, r.commitment.output_hash);
    assert_eq!(r.node_key.0, key.verifying_key().to_bytes());
    assert_eq!(
        r.receipt_id,
        receipt_id(
            &r.workload_id,
            &r.commitment.input_hash,
            &r.node_key,
            &r.submitter,
            7
        )
        .unwrap()
    );
    assert_eq!(r.slot(), crate::committee::Slot::Receipt(r.receipt_id.0));
    // The id names the job, not the result: another output, same id.
    let mut d = draft(1);
    d.commitment.output_hash = sha256(b"other");
    assert_eq!(ReceiptV1::sign(&key, d).unwrap().receipt_id, r.receipt_id);
    // Another nonce or node: another id.
    let d = ReceiptDraft {
        nonce: 8,
        ..draft(1)
    };
    assert_ne!(ReceiptV1::sign(&key, d).unwrap().receipt_id, r.receipt_id);
    assert_ne!(
        ReceiptV1::sign(&node_key(2), draft(1)).unwrap().receipt_id,
        r.receipt_id
    );
}

#[test]
fn every_inconsistency_and_forgery_is_refused() {
    let key = node_key(1);
    let good = ReceiptV1::sign(&key, draft(1)).unwrap();
    let resign = |mut r: ReceiptV1| {
        r.node_signature = Bytes64(key.sign(&r.signing_bytes().unwrap()).to_bytes());
        r.verify()
    };
    let cases: Vec<(ReceiptV1, ReceiptError)> = vec![
        (
            ReceiptV1 {
                workload_id: sha256(b"x"),
                ..good
            },
            ReceiptError::WorkloadMismatch,
        ),
        (
            ReceiptV1 {
                output_hash: sha256(b"x"),
                ..good
            },
            ReceiptError::OutputMismatch,
        ),
        (
            ReceiptV1 {
                usage: ResourceUsage {
                    wall_time_ms: 4,
                    ..good.usage
                },
                ..good
            },
            ReceiptError::UsageMismatch,
        ),
        (
            ReceiptV1 {
                receipt_id: sha256(b"x"),
                ..good
            },
            ReceiptError::BadReceiptId,
        ),
        (ReceiptV1 { nonce: 8, ..good }, ReceiptError::BadReceiptId),
        (
            ReceiptV1 {
                commitment: ExecutionCommitment {
                    input_hash: sha256(b"x"),
                    ..good.commitment
                },
                ..good
            },
            ReceiptError::BadReceiptId,
        ),
    ];
    for (r, want) in cases {
        // Re-signed by the node, the inconsistency is still caught...
        assert_eq!(resign(r), Err(want.clone()));
        // ...and as sent, too.
        assert_eq!(r.verify(), Err(want));
    }
    // A field changed after signing, consistent otherwise: the signature fails.
    let r = ReceiptV1 {
        executed_at_ms: good.executed_at_ms + 1,
        ..good
    };
    assert_eq!(r.verify(), Err(ReceiptError::BadNodeSignature));
    // Another node's key in place of the signer's: the id no longer matches.
    let other = ReceiptV1 {
        node_key: Bytes32(node_key(2).verifying_key().to_bytes()),
        ..good
    };
    assert_eq!(other.verify(), Err(ReceiptError::BadReceiptId));
    // A node executing its own submission.
    let me = Bytes32(key.verifying_key().to_bytes());
    let d = ReceiptDraft {
        submitter: me,
        ..draft(1)
    };
    assert_eq!(ReceiptV1::sign(&key, d), Err(ReceiptError::SelfDealing));
    assert!(is_self_dealing(&me, &me) && !is_self_dealing(&me, &good.submitter));
    // A commitment without checkpoints, or fuel that disagrees with the usage.
    let mut d = draft(1);
    d.commitment.checkpoints = 0;
    assert_eq!(ReceiptV1::sign(&key, d), Err(ReceiptError::EmptyTrace));
    let mut d = draft(1);
    d.usage.fuel_used += 1;
    assert_eq!(ReceiptV1::sign(&key, d), Err(ReceiptError::UsageMismatch));
}

#[test]
fn peer_id_bytes_is_the_ed25519_peer_id_shape() {
    let k = Bytes32([5; 32]);
    let p = peer_id_bytes(&k);
    assert_eq!(&p[..6], &[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
    assert_eq!(&p[6..], &k.0);
    // The committee tests' member ids have the same shape.
    assert_eq!(member(5).as_bytes(), &p[..]);
}

#[test]
fn threshold_receipt_checks_group_key_signature_signers_and_receipt() {
    let group = node_key(50);
    let gk = GroupKey(group.verifying_key().to_bytes());
    let receipt = ReceiptV1::sign(&node_key(1), draft(1)).unwrap();
    let t = threshold(receipt, &group);
    t.verify(&gk).unwrap();
    let other = GroupKey(node_key(51).verifying_key().to_bytes());
    assert_eq!(t.verify(&other), Err(ReceiptError::WrongGroupKey));
    // A signature by another key presented under the group key.
    let mut forged = threshold(receipt, &node_key(51));
    forged.group_key = gk;
    assert_eq!(forged.verify(&gk), Err(ReceiptError::BadGroupSignature));
    // The epoch and committee hash are signed.
    let e = ThresholdReceipt {
        epoch: 5,
        ..t.clone()
    };
    assert_eq!(e.verify(&gk), Err(ReceiptError::BadGroupSignature));
    // A forged commitment (changed after the committee signed) breaks both signatures;
    // re-signed by the group but not by the node, the node signature fails.
    let mut r = receipt;
    r.commitment.trace_root = sha256(b"forged");
    let f = ThresholdReceipt {
        receipt: r,
        ..t.clone()
    };
    assert_eq!(f.verify(&gk), Err(ReceiptError::BadGroupSignature));
    assert_eq!(
        threshold(r, &group).verify(&gk),
        Err(ReceiptError::BadNodeSignature)
    );
    // Signers: not signed, but must be well formed.
    let with = |signers: Vec<MemberId>| ThresholdReceipt {
        signers,
        ..t.clone()
    };
    assert_eq!(with(vec![member(7)]).verify(&gk), Ok(()));
    assert!(matches!(
        with(vec![]).verify(&gk),
        Err(ReceiptError::BadSigners(_))
    ));
    assert!(matches!(
        with(vec![member(1), member(1)]).verify(&gk),
        Err(ReceiptError::BadSigners(_))
    ));
}

#[test]
fn real_frost_committee_signs_a_receipt_that_verifies() {
    let cfg = config(3, 4, 2);
    let outputs = run_dkg(&cfg, 11);
    let gk = outputs[0].group_key;
    let receipt = ReceiptV1::sign(&node_key(1), draft(1)).unwrap();
    let ch = committee_hash(&cfg).unwrap();
    let msg = committee_signing_bytes(&receipt, cfg.epoch, &ch, &gk).unwrap();
    let mut s = signers(&outputs);
    let mut rng = rng(3);
    let sig = sign_with(&mut s, &[0, 1, 3], receipt.slot(), &msg, &mut rng).unwrap();
    let t = ThresholdReceipt {
        receipt,
        epoch: cfg.epoch,
        committee_hash: ch,
        group_key: gk,
        signers: vec![member(0), member(1), member(3)],
        aggregate_signature: Bytes64(sig),
    };
    t.verify(&gk).unwrap();
    t.verify_committee(&cfg, &gk).unwrap();
    // Against the wrong committee or too few signers.
    let other = CommitteeConfig {
        epoch: 3,
        ..cfg.clone()
    };
    assert_eq!(
        t.verify_committee(&other, &gk),
        Err(ReceiptError::WrongCommittee("epoch"))
    );
    let reordered = CommitteeConfig {
        members: cfg.members.iter().rev().cloned().collect(),
        ..cfg.clone()
    };
    assert_eq!(
        t.verify_committee(&reordered, &gk),
        Err(ReceiptError::WrongCommittee("committee hash"))
    );
    let few = ThresholdReceipt {
        signers: vec![member(0), member(1)],
        ..t.clone()
    };
    assert_eq!(
        few.verify_committee(&cfg, &gk),
        Err(ReceiptError::WrongCommittee(
            "fewer signers than the threshold"
        ))
    );
    let stranger = ThresholdReceipt {
        signers: vec![member(0), member(1), member(9)],
        ..t.clone()
    };
    assert_eq!(
        stranger.verify_committee(&cfg, &gk),
        Err(ReceiptError::WrongCommittee("a signer is not a member"))
    );
    // Round trip through CBOR keeps it verifiable.
    let back = ThresholdReceipt::from_bytes(&t.to_bytes().unwrap()).unwrap();
    assert_eq!(back, t);
    back.verify_committee(&cfg, &gk).unwrap();
}

#[test]
fn dedup_rejects_duplicates_and_forgets_the_oldest() {
    let group = node_key(50);
    let gk = GroupKey(group.verifying_key().to_bytes());
    let t = threshold(ReceiptV1::sign(&node_key(1), draft(1)).unwrap(), &group);
    let mut d = ReceiptDedup::new(2);
    assert!(d.is_empty());
    d.accept(&t, &gk).unwrap();
    assert_eq!(
        d.accept(&t, &gk),
        Err(ReceiptError::Duplicate(t.receipt_id()))
    );
    // An invalid receipt is not recorded.
    let mut bad = threshold(ReceiptV1::sign(&node_key(2), draft(2)).unwrap(), &group);
    bad.epoch += 1;
    assert_eq!(bad.verify(&gk), Err(ReceiptError::BadGroupSignature));
    assert!(d.accept(&bad, &gk).is_err());
    assert!(!d.contains(&bad.receipt_id()));
    let id = |n: u8| Bytes32([n; 32]);
    d.insert(id(1)).unwrap();
    assert_eq!(d.len(), 2);
    d.insert(id(2)).unwrap();
    assert!(!d.contains(&t.receipt_id()) && d.contains(&id(1)) && d.contains(&id(2)));
    assert_eq!(d.insert(id(2)), Err(ReceiptError::Duplicate(id(2))));
    assert_eq!(d.len(), 2);
}

fn b32() -> impl Strategy<Value = Bytes32> {
    any::<[u8; 32]>().prop_map(Bytes32)
}

fn any_receipt() -> impl Strategy<Value = ReceiptV1> {
    (
        (b32(), b32(), b32(), b32(), any::<u64>(), any::<u64>()),
        (b32(), b32(), b32(), b32(), b32(), b32()),
        (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()),
        any::<[u8; 32]>(),
        any::<[u8; 32]>(),
    )
        .prop_map(
            |((id, w, n, s, nonce, at), (i, o, sb, sa, tr, up), (c, f, m, wt), sig1, sig2)| {
                let mut sig = [0u8; 64];
                sig[..32].copy_from_slice(&sig1);
                sig[32..].copy_from_slice(&sig2);
                ReceiptV1 {
                    receipt_id: id,
                    workload_id: w,
                    node_key: n,
                    submitter: s,
                    nonce,
                    commitment: ExecutionCommitment {
                        workload_id: w,
                        input_hash: i,
                        output_hash: o,
                        state_root_before: sb,
                        state_root_after: sa,
                        trace_root: tr,
                        checkpoints: c,
                        fuel_used: f,
                    },
                    usage: ResourceUsage {
                        fuel_used: f,
                        memory_peak_bytes: m,
                        wall_time_ms: wt,
                    },
                    usage_proof_hash: up,
                    output_hash: o,
                    executed_at_ms: at,
                    node_signature: Bytes64(sig),
                }
            },
        )
}

fn any_member() -> impl Strategy<Value = MemberId> {
    proptest::collection::vec(any::<u8>(), 1..=MAX_MEMBER_ID_BYTES)
        .prop_map(|b| MemberId::new(b).unwrap())
}

proptest! {
    #[test]
    fn receipts_round_trip_within_their_caps(
        r in any_receipt(),
        epoch in any::<u64>(),
        ch in b32(),
        gk in any::<[u8; 32]>(),
        signers in proptest::collection::vec(any_member(), 0..=MAX_MEMBERS),
        sig in any::<[u8; 32]>(),
    ) {
        let bytes = r.to_bytes().unwrap();
        prop_assert!(bytes.len() <= MAX_RECEIPT_BYTES);
        prop_assert_eq!(ReceiptV1::from_bytes(&bytes).unwrap(), r);
        let t = ThresholdReceipt {
            receipt: r,
            epoch,
            committee_hash: ch,
            group_key: GroupKey(gk),
            signers,
            aggregate_signature: Bytes64([sig, sig].concat().try_into().unwrap()),
        };
        let bytes = t.to_bytes().unwrap();
        prop_assert!(bytes.len() <= MAX_THRESHOLD_RECEIPT_BYTES);
        prop_assert_eq!(ThresholdReceipt::from_bytes(&bytes).unwrap(), t.clone());
        prop_assert!(t.signing_bytes().is_ok());
        let json = serde_json::to_string(&t).unwrap();
        prop_assert_eq!(serde_json::from_str::<ThresholdReceipt>(&json).unwrap(), t);
    }

    #[test]
    fn mutated_signed_receipts_never_verify(at in any::<usize>(), x in 1u8..) {
        let group = node_key(50);
        let gk = GroupKey(group.verifying_key().to_bytes());
        let t = threshold(ReceiptV1::sign(&node_key(1), draft(1)).unwrap(), &group);
        let mut bytes = t.to_bytes().unwrap();
        let i = at % bytes.len();
        bytes[i] ^= x;
        let _ = ReceiptV1::from_bytes(&bytes);
        if let Ok(m) = ThresholdReceipt::from_bytes(&bytes) {
            if m != t {
                prop_assert!(m.verify(&gk).is_err() || m.signers != t.signers);
            }
        }
    }
}

#[test]
fn largest_threshold_receipt_fits_its_cap() {
    let r = ReceiptV1 {
        nonce: u64::MAX,
        executed_at_ms: u64::MAX,
        usage: ResourceUsage {
            fuel_used: u64::MAX,
            memory_peak_bytes: u64::MAX,
            wall_time_ms: u64::MAX,
        },
        commitment: ExecutionCommitment {
            checkpoints: u64::MAX,
            fuel_used: u64::MAX,
            ..commitment(1, 0)
        },
        ..ReceiptV1::sign(&node_key(1), draft(1)).unwrap()
    };
    let t = ThresholdReceipt {
        receipt: r,
        epoch: u64::MAX,
        committee_hash: Bytes32([0xff; 32]),
        group_key: GroupKey([0xff; 32]),
        signers: (0..MAX_MEMBERS)
            .map(|i| MemberId::new(vec![i as u8; MAX_MEMBER_ID_BYTES]).unwrap())
            .collect(),
        aggregate_signature: Bytes64([0xff; 64]),
    };
    let n = t.to_bytes().unwrap().len();
    assert!(n <= MAX_THRESHOLD_RECEIPT_BYTES, "{n}");
    assert!(r.to_bytes().unwrap().len() <= MAX_RECEIPT_BYTES);
    assert!(t.signing_bytes().unwrap().len() <= crate::committee::MAX_SIGNED_MESSAGE_BYTES);
    assert!(matches!(
        ThresholdReceipt::from_bytes(&vec![0u8; MAX_THRESHOLD_RECEIPT_BYTES + 1]),
        Err(crate::codec::CodecError::TooLarge { .. })
    ));
}
