use super::*;
use crate::da::evidence::{EvidenceError, ForkEvidence};

fn signed(key: &SigningKey, height: u64, timestamp_ms: u64) -> Vec<u8> {
    DaBlob::sign(
        key,
        &net(),
        height,
        GENESIS_PREV_HASH,
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
