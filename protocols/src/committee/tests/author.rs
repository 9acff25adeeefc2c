//! Who may author a co-signed blob: [`rotation::check_author`] (issue 13 §6).

use std::time::Duration;

use ed25519_dalek::SigningKey;

use super::super::rotation::{check_author, AuthorError, RotationConfig};
use super::super::{CommitteeConfig, MemberId};
use crate::da::blob::proposer::peer_id_bytes;
use crate::da::{empty_root, DaBlob, GENESIS_PREV_HASH};
use crate::NetworkId;

fn node_key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[60 + i; 32])
}

/// A 3-of-4 committee of the node keys 0..4, in that order.
fn rotation() -> RotationConfig {
    let committee = CommitteeConfig {
        epoch: 1,
        threshold: 3,
        members: (0..4)
            .map(|i| MemberId::new(peer_id_bytes(&node_key(i).verifying_key())).unwrap())
            .collect(),
    };
    RotationConfig::new(&committee, Duration::from_secs(1)).unwrap()
}

fn unsigned(height: u64) -> DaBlob {
    let net = NetworkId::new("devnet").unwrap();
    DaBlob::unsigned(&net, height, GENESIS_PREV_HASH, empty_root(), 5, Vec::new()).unwrap()
}

/// The signing bytes of a blob at `height` proposed by member `i`.
fn proposed(height: u64, i: u8) -> (DaBlob, Vec<u8>) {
    let b = unsigned(height).proposed_by(&node_key(i)).unwrap();
    let m = b.signing_bytes().unwrap();
    // What the co-signer decodes (and so checks the proposer's signature of).
    (DaBlob::from_signing_bytes(&m).unwrap(), m)
}

#[test]
fn a_fresh_proposal_must_name_the_rounds_proposer() {
    let c = rotation();
    // Height 1: round 0 is member 1's, round 1 member 2's, round 2 member 3's.
    let (b, m) = proposed(1, 1);
    assert_eq!(check_author(&c, 0, &b, &m, None), Ok(()));
    // Member 2 proposing in round 0 (it proposes no round up to 0): refused.
    let (b2, m2) = proposed(1, 2);
    assert!(matches!(
        check_author(&c, 0, &b2, &m2, None),
        Err(AuthorError::NotItsRound {
            height: 1,
            round: 0,
            ..
        })
    ));
    // Member 0 leads round 3 only: refused in rounds 0-2.
    let (b0, m0) = proposed(1, 0);
    for round in 0..3 {
        assert!(check_author(&c, round, &b0, &m0, None).is_err(), "{round}");
    }
    assert_eq!(check_author(&c, 3, &b0, &m0, None), Ok(()));
    // A proposer outside the committee.
    let (b9, m9) = proposed(1, 9);
    assert!(matches!(
        check_author(&c, 5, &b9, &m9, None),
        Err(AuthorError::NotAMember { .. })
    ));
    // A version-3 blob names nobody: refused unless it is our own lock.
    let v3 = unsigned(1);
    let m3 = v3.signing_bytes().unwrap();
    assert!(matches!(
        check_author(&c, 0, &v3, &m3, None),
        Err(AuthorError::NoProposer { version: 3, .. })
    ));
    assert_eq!(check_author(&c, 4, &v3, &m3, Some(&m3)), Ok(()));
}

#[test]
fn a_locked_blob_is_re_proposed_with_its_author() {
    let c = rotation();
    // Member 2 proposed height 2 in round 0 and some members locked it; round 1's proposer
    // (member 3) re-proposes the locked bytes unchanged.
    let (b, m) = proposed(2, 2);
    assert_eq!(check_author(&c, 0, &b, &m, None), Ok(()));
    assert_eq!(check_author(&c, 1, &b, &m, None), Ok(()));
    assert_eq!(check_author(&c, 1, &b, &m, Some(&m)), Ok(()));
    assert_eq!(
        b.proposer(),
        Some(&peer_id_bytes(&node_key(2).verifying_key())[..])
    );
    // Round 1's proposer cannot claim it: renaming the proposer breaks the signature, so
    // the bytes do not decode (and would not be the lock anyway).
    let mut claimed = b.clone();
    claimed.proposer = peer_id_bytes(&node_key(3).verifying_key());
    let claimed = claimed.signing_bytes().unwrap();
    assert!(DaBlob::from_signing_bytes(&claimed).is_err());
    // Nor can member 3 sign it as its own fresh proposal for round 0 of height 2 and then
    // blame member 2: a blob by member 3 is refused in round 0.
    let (b3, m3) = proposed(2, 3);
    assert!(check_author(&c, 0, &b3, &m3, None).is_err());
    assert_eq!(check_author(&c, 1, &b3, &m3, None), Ok(()));
}
