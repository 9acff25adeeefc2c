use super::*;
use crate::da::evidence::{EvidenceError, ForkEvidence};

fn signed(key: &SigningKey, height: u64, timestamp_ms: u64) -> Vec<u8> {
    DaBlob::sign(
        key,
        &net(),
        height,
        GENESIS_PREV_HASH,
        empty_root(),
        timestamp_ms,
        sample_events(),
    )
    .unwrap()
    .to_bytes()
    .unwrap()
}

#[test]
fn two_signed_blobs_at_one_height_prove_a_fork() {
    let a = signed(&authority(), 1, 1_000);
    let b = signed(&authority(), 1, 2_000);
    let e = ForkEvidence::new(1, a.clone(), b.clone(), 5);
    let (ha, hb) = e.verify(&net(), &auth()).unwrap();
    assert_ne!(ha, hb);
    let back = ForkEvidence::from_bytes(&e.to_bytes().unwrap()).unwrap();
    assert_eq!(back, e);

    // Not evidence: the same blob twice, a blob of another key, a wrong height.
    let same = ForkEvidence::new(1, a.clone(), a.clone(), 5);
    assert!(matches!(
        same.verify(&net(), &auth()),
        Err(EvidenceError::Same)
    ));
    let forged = ForkEvidence::new(1, a.clone(), signed(&key(9), 1, 2_000), 5);
    assert!(matches!(
        forged.verify(&net(), &auth()),
        Err(EvidenceError::Blob {
            which: "conflicting",
            ..
        })
    ));
    let moved = ForkEvidence::new(2, a, b, 5);
    assert!(matches!(
        moved.verify(&net(), &auth()),
        Err(EvidenceError::Height { .. })
    ));
    assert!(ForkEvidence::from_bytes(&[0xff; 8]).is_err());
}

#[test]
fn one_blob_under_two_threshold_signatures_is_no_fork() {
    // A committee re-sealing a height with the same blob (a later round) makes another,
    // equally valid FROST signature: the content is what counts, not the signature bytes.
    use crate::committee::tests::{config, rng, run_dkg, sign_with, signers};
    use crate::committee::Slot;
    let outputs = run_dkg(&config(2, 3, 0), 7);
    let group = outputs[0].group_key;
    let unsigned = DaBlob::unsigned(
        &net(),
        1,
        GENESIS_PREV_HASH,
        empty_root(),
        1_000,
        sample_events(),
    )
    .unwrap();
    let msg = unsigned.signing_bytes().unwrap();
    let mut s = signers(&outputs);
    let mut r = rng(1);
    let sig_a = sign_with(&mut s, &[0, 1], Slot::DaBlob(1), &msg, &mut r).unwrap();
    let sig_b = sign_with(&mut s, &[1, 2], Slot::DaBlob(1), &msg, &mut r).unwrap();
    assert_ne!(sig_a, sig_b, "FROST signatures are randomized");
    let a = unsigned.clone().with_signature(sig_a).to_bytes().unwrap();
    let b = unsigned.with_signature(sig_b).to_bytes().unwrap();
    let e = ForkEvidence::new(1, a, b, 5);
    assert!(matches!(
        e.verify(&net(), &group.0),
        Err(EvidenceError::Same)
    ));
}
