//! Threshold-signing tests.

// Member indices address both the signers and `config.members`.
#![allow(clippy::needless_range_loop)]

use frost_ed25519 as frost;

use super::*;

fn verify_plain(key: GroupKey, message: &[u8], sig: &[u8; 64]) -> bool {
    let key = ed25519_dalek::VerifyingKey::from_bytes(&key.0).unwrap();
    key.verify_strict(message, &ed25519_dalek::Signature::from_bytes(sig))
        .is_ok()
}

/// All subsets of `0..n` of size `k`.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    (0u32..(1 << n))
        .filter(|m| m.count_ones() as usize == k)
        .map(|m| (0..n).filter(|i| m & (1 << i) != 0).collect())
        .collect()
}

#[test]
fn every_t_subset_of_3_of_4_signs_and_verifies_as_plain_ed25519() {
    let c = config(3, 4, 1);
    let outputs = run_dkg(&c, 20);
    let key = outputs[0].group_key;
    let mut s = signers(&outputs);
    let mut r = rng(21);
    let sets = subsets(4, 3);
    assert_eq!(sets.len(), 4);
    for (h, who) in sets.iter().enumerate() {
        let msg = format!("blob at height {h}").into_bytes();
        let sig = sign_with(&mut s, who, Slot::DaBlob(h as u64), &msg, &mut r).unwrap();
        assert!(verify_plain(key, &msg, &sig), "subset {who:?}");
        assert!(key.verify(&msg, &sig));
        assert!(!verify_plain(key, b"another message", &sig));
    }
    // More than t committing: the first t are used.
    let msg = b"receipt".to_vec();
    let sig = sign_with(&mut s, &[3, 1, 0, 2], Slot::Receipt([7; 32]), &msg, &mut r).unwrap();
    assert!(verify_plain(key, &msg, &sig));
}

#[test]
fn two_of_three_and_five_of_seven_sign() {
    for (t, n, seed) in [(2u16, 3usize, 22u64), (5, 7, 23)] {
        let c = config(t, n, 1);
        let outputs = run_dkg(&c, seed);
        let mut s = signers(&outputs);
        let who: Vec<usize> = (n - t as usize..n).collect();
        let sig = sign_with(&mut s, &who, Slot::DaBlob(1), b"m", &mut rng(seed)).unwrap();
        assert!(verify_plain(outputs[0].group_key, b"m", &sig));
    }
}

#[test]
fn fewer_than_t_cannot_aggregate() {
    let c = config(3, 4, 1);
    let outputs = run_dkg(&c, 24);
    let mut s = signers(&outputs);
    let mut r = rng(25);
    // Two commitments: no package, no signature.
    assert!(matches!(
        sign_with(&mut s, &[0, 1], Slot::DaBlob(1), b"m", &mut r),
        Err(SignError::NotEnough {
            what: "commitments",
            have: 2,
            need: 3
        })
    ));
    // A package of t-1 commitments is refused by the members.
    let mut commitments = BTreeMap::new();
    for i in [0, 1] {
        let cm = s[i].commit(Slot::DaBlob(2), &mut r).unwrap();
        let id = frost::Identifier::try_from(i as u16 + 1).unwrap();
        commitments.insert(
            id,
            frost::round1::SigningCommitments::deserialize(&cm.commitments).unwrap(),
        );
    }
    let short = SigningPackageMsg {
        epoch: 1,
        slot: Slot::DaBlob(2),
        package: frost::SigningPackage::new(commitments, b"m")
            .serialize()
            .unwrap(),
    };
    assert!(matches!(
        s[0].sign(Slot::DaBlob(2), &short),
        Err(SignError::NotEnough { .. })
    ));
    // A round with t commitments but only t-1 shares does not aggregate.
    let mut round = SigningRound::new(s[0].key_share(), Slot::DaBlob(3), b"m".to_vec()).unwrap();
    for i in 0..3 {
        let cm = s[i].commit(Slot::DaBlob(3), &mut r).unwrap();
        round.on_commitment(&c.members[i], &cm).unwrap();
    }
    let package = round.signing_package().unwrap();
    for i in 0..2 {
        let share = s[i].sign(Slot::DaBlob(3), &package).unwrap();
        round.on_share(&c.members[i], &share).unwrap();
    }
    assert!(!round.complete());
    assert!(matches!(
        round.aggregate(),
        Err(SignError::NotEnough {
            what: "shares",
            have: 2,
            need: 3
        })
    ));
}

#[test]
fn t_minus_one_colluders_cannot_forge() {
    // Two colluding members of a 3-of-4 committee bypass every check: they pretend the
    // threshold is 2 and aggregate their shares without cheater detection.
    let c = config(3, 4, 1);
    let outputs = run_dkg(&c, 26);
    let mut r = rng(27);
    let msg = b"forged receipt";
    let mut commitments = BTreeMap::new();
    let mut nonces = Vec::new();
    let mut lowered = Vec::new();
    for o in &outputs[..2] {
        let kp = o.key_share.key_package();
        let kp = frost::keys::KeyPackage::new(
            *kp.identifier(),
            *kp.signing_share(),
            *kp.verifying_share(),
            *kp.verifying_key(),
            2,
        );
        let (n, cm) = frost::round1::commit(kp.signing_share(), &mut r);
        commitments.insert(*kp.identifier(), cm);
        nonces.push(n);
        lowered.push(kp);
    }
    let package = frost::SigningPackage::new(commitments, msg);
    let shares: BTreeMap<_, _> = lowered
        .iter()
        .zip(&nonces)
        .map(|(kp, n)| {
            (
                *kp.identifier(),
                frost::round2::sign(&package, n, kp).unwrap(),
            )
        })
        .collect();
    let public = outputs[0].key_share.public_key_package();
    let public = frost::keys::PublicKeyPackage::new(
        public.verifying_shares().clone(),
        *public.verifying_key(),
        None,
    );
    let forged = frost::aggregate_custom(
        &package,
        &shares,
        &public,
        frost::CheaterDetection::Disabled,
    );
    assert_eq!(
        forged,
        Err(frost::Error::InvalidSignature),
        "two shares of a 3-of-4 key do not make a signature"
    );
}

#[test]
fn a_tampered_share_is_detected_and_its_member_named() {
    let c = config(3, 4, 1);
    let outputs = run_dkg(&c, 28);
    let mut s = signers(&outputs);
    let mut r = rng(29);
    let slot = Slot::Receipt([1; 32]);
    let mut round = SigningRound::new(s[3].key_share(), slot, b"receipt".to_vec()).unwrap();
    for i in 1..4 {
        let cm = s[i].commit(slot, &mut r).unwrap();
        round.on_commitment(&c.members[i], &cm).unwrap();
    }
    let package = round.signing_package().unwrap();
    assert_eq!(round.signers(), c.members[1..4].to_vec());
    for i in 1..4 {
        let mut share = s[i].sign(slot, &package).unwrap();
        if i == 2 {
            share.share[0] ^= 1;
        }
        round.on_share(&c.members[i], &share).unwrap();
    }
    assert!(round.complete());
    assert_eq!(
        round.aggregate(),
        Err(SignError::InvalidShare {
            member: c.members[2].clone()
        })
    );
}

#[test]
fn proposer_refuses_strangers_other_slots_and_conflicting_messages() {
    let c = config(2, 3, 4);
    let outputs = run_dkg(&c, 30);
    let mut s = signers(&outputs);
    let mut r = rng(31);
    let slot = Slot::DaBlob(9);
    let mut round = SigningRound::new(s[0].key_share(), slot, b"m".to_vec()).unwrap();
    let cm = s[1].commit(slot, &mut r).unwrap();
    assert_eq!(
        round.on_commitment(&member(9), &cm),
        Err(SignError::UnknownMember(member(9)))
    );
    let mut other_slot = cm.clone();
    other_slot.slot = Slot::DaBlob(10);
    assert!(matches!(
        round.on_commitment(&c.members[1], &other_slot),
        Err(SignError::WrongSlot { .. })
    ));
    let mut other_epoch = cm.clone();
    other_epoch.epoch = 3;
    assert!(matches!(
        round.on_commitment(&c.members[1], &other_epoch),
        Err(SignError::WrongEpoch { .. })
    ));
    round.on_commitment(&c.members[1], &cm).unwrap();
    round.on_commitment(&c.members[1], &cm).unwrap();
    let cm2 = s[1].commit(slot, &mut r).unwrap();
    assert_eq!(
        round.on_commitment(&c.members[1], &cm2),
        Err(SignError::Duplicate(c.members[1].clone()))
    );
    let junk = CommitmentMsg {
        commitments: vec![0; 5],
        ..cm.clone()
    };
    assert!(matches!(
        round.on_commitment(&c.members[2], &junk),
        Err(SignError::Malformed {
            member: Some(_),
            ..
        })
    ));
    assert!(round.signing_package().is_none());
    // A share before the package, or from a non-signer, is refused.
    let share = SignatureShareMsg {
        epoch: 4,
        slot,
        share: vec![0; 32],
    };
    assert_eq!(
        round.on_share(&c.members[1], &share),
        Err(SignError::NotASigner(c.members[1].clone()))
    );
}

#[test]
fn equivocation_is_refused_the_same_message_allowed_and_the_guard_survives_a_restart() {
    let c = config(2, 3, 1);
    let outputs = run_dkg(&c, 32);
    let mut s = signers(&outputs);
    let mut r = rng(33);
    let slot = Slot::DaBlob(5);
    sign_with(&mut s, &[0, 1], slot, b"blob five", &mut r).unwrap();
    // The same message again (a retried round) is signed.
    sign_with(&mut s, &[1, 0], slot, b"blob five", &mut r).unwrap();
    // A different message for the slot is refused by member 0 (member 2 never signed it).
    let err = sign_with(&mut s, &[0, 2], slot, b"another blob five", &mut r).unwrap_err();
    assert!(err.is_equivocation(), "{err:?}");
    // Restart member 0 and 1 from their persisted guards.
    for i in [0, 1] {
        let bytes = s[i].guard().to_bytes().unwrap();
        let guard = SlotGuard::from_bytes(&bytes).unwrap();
        assert_eq!(&guard, s[i].guard());
        s[i] = Signer::new(outputs[i].key_share.clone(), guard);
    }
    let err = sign_with(&mut s, &[1, 2], slot, b"another blob five", &mut r).unwrap_err();
    assert!(err.is_equivocation(), "{err:?}");
    sign_with(&mut s, &[0, 1], slot, b"blob five", &mut r).unwrap();
    // With a fresh guard member 0 would sign: the guard is what prevents it.
    s[0] = Signer::new(outputs[0].key_share.clone(), SlotGuard::new());
    sign_with(&mut s, &[0, 2], slot, b"another blob five", &mut r).unwrap();
}

#[test]
fn nonces_are_used_once_and_bounded() {
    let c = config(2, 3, 1);
    let outputs = run_dkg(&c, 34);
    let mut s = signers(&outputs);
    let mut r = rng(35);
    let slot = Slot::DaBlob(1);
    let mut round = SigningRound::new(s[0].key_share(), slot, b"m".to_vec()).unwrap();
    for i in [0, 1] {
        let cm = s[i].commit(slot, &mut r).unwrap();
        round.on_commitment(&c.members[i], &cm).unwrap();
    }
    let package = round.signing_package().unwrap();
    assert!(matches!(
        s[0].sign(Slot::DaBlob(2), &package),
        Err(SignError::WrongSlot { .. })
    ));
    s[0].sign(slot, &package).unwrap();
    assert_eq!(s[0].sign(slot, &package), Err(SignError::NoNonces(slot)));
    // A package that does not carry our current commitment is refused.
    s[1].commit(slot, &mut r).unwrap();
    assert!(matches!(
        s[1].sign(slot, &package),
        Err(SignError::Malformed { .. })
    ));

    for h in 0..(MAX_OPEN_SLOTS as u64 + 1) {
        s[2].commit(Slot::DaBlob(100 + h), &mut r).unwrap();
    }
    assert_eq!(s[2].open_slots(), MAX_OPEN_SLOTS);
    // The oldest slot (100) was dropped.
    let fake = SigningPackageMsg {
        epoch: 1,
        slot: Slot::DaBlob(100),
        package: package.package.clone(),
    };
    assert_eq!(
        s[2].sign(Slot::DaBlob(100), &fake),
        Err(SignError::NoNonces(Slot::DaBlob(100)))
    );
}

#[test]
fn messages_over_the_cap_are_refused() {
    let c = config(2, 3, 1);
    let outputs = run_dkg(&c, 36);
    assert!(matches!(
        SigningRound::new(
            &outputs[0].key_share,
            Slot::DaBlob(1),
            vec![0; MAX_SIGNED_MESSAGE_BYTES + 1]
        ),
        Err(SignError::MessageTooLarge(_))
    ));
}
