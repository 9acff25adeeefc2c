//! Property tests: wire round trips, caps, and decoders that never panic.

use frost_ed25519 as frost;
use proptest::prelude::*;

use super::*;

#[test]
fn largest_signing_package_fits_its_cap() {
    let mut r = rng(40);
    let share = frost::keys::SigningShare::deserialize(&[1; 32]).unwrap();
    let commitments: BTreeMap<_, _> = (1..=MAX_MEMBERS as u16)
        .map(|i| {
            let id = frost::Identifier::try_from(i).unwrap();
            (id, frost::round1::commit(&share, &mut r).1)
        })
        .collect();
    let package = frost::SigningPackage::new(commitments, &vec![0xab; MAX_SIGNED_MESSAGE_BYTES]);
    let msg = SigningPackageMsg {
        epoch: u64::MAX,
        slot: Slot::Receipt([0xff; 32]),
        package: package.serialize().unwrap(),
    };
    let bytes = msg.to_bytes().unwrap();
    assert_eq!(SigningPackageMsg::from_bytes(&bytes).unwrap(), msg);
    let (_, cm) = frost::round1::commit(&share, &mut r);
    let cm = CommitmentMsg {
        epoch: u64::MAX,
        slot: Slot::Receipt([0xff; 32]),
        commitments: cm.serialize().unwrap(),
    };
    assert!(cm.to_bytes().unwrap().len() <= MAX_COMMITMENT_MSG_BYTES / 2);
    let share = SignatureShareMsg {
        epoch: u64::MAX,
        slot: Slot::Receipt([0xff; 32]),
        share: vec![0xff; 32],
    };
    assert!(share.to_bytes().unwrap().len() <= MAX_SIGNATURE_SHARE_MSG_BYTES / 2);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn wire_messages_round_trip(epoch in any::<u64>(), slot in slot(), a in blob(300), b in blob(2000)) {
        let r1 = DkgMessage::Round1(Round1Message { epoch, package: b.clone() });
        prop_assert_eq!(DkgMessage::from_bytes(&r1.to_bytes().unwrap()).unwrap(), r1);
        let r2 = DkgMessage::Round2(Round2Message { epoch, package: a.clone() });
        prop_assert_eq!(DkgMessage::from_bytes(&r2.to_bytes().unwrap()).unwrap(), r2);
        let c = CommitmentMsg { epoch, slot, commitments: a.clone() };
        prop_assert_eq!(CommitmentMsg::from_bytes(&c.to_bytes().unwrap()).unwrap(), c);
        let p = SigningPackageMsg { epoch, slot, package: b };
        prop_assert_eq!(SigningPackageMsg::from_bytes(&p.to_bytes().unwrap()).unwrap(), p);
        let s = SignatureShareMsg { epoch, slot, share: a[..a.len().min(100)].to_vec() };
        prop_assert_eq!(SignatureShareMsg::from_bytes(&s.to_bytes().unwrap()).unwrap(), s);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in blob(600)) {
        let _ = DkgMessage::from_bytes(&bytes);
        let _ = CommitmentMsg::from_bytes(&bytes);
        let _ = SigningPackageMsg::from_bytes(&bytes);
        let _ = SignatureShareMsg::from_bytes(&bytes);
        let _ = KeyShareFile::from_bytes(&bytes);
        let _ = SlotGuard::from_bytes(&bytes);
    }

    #[test]
    fn guard_round_trips(entries in proptest::collection::vec((slot(), any::<[u8; 32]>()), 0..40), low in 0u64..1000) {
        let mut g = SlotGuard::new();
        for (s, hash) in &entries {
            let _ = g.record(s, hash);
        }
        g.prune_da_below(low);
        prop_assert_eq!(SlotGuard::from_bytes(&g.to_bytes().unwrap()).unwrap(), g);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    /// Arbitrary package bytes inside well-formed messages are refused, never panic.
    #[test]
    fn arbitrary_frost_packages_never_panic_the_state_machines(junk in blob(400)) {
        let c = config(2, 3, 1);
        let mut r = rng(41);
        let (mut s, _) = DkgSession::new(c.clone(), c.members[0].clone(), &mut r).unwrap();
        let _ = s.on_round2(&c.members[2], &Round2Message { epoch: 1, package: junk.clone() });
        let (mut s, _) = DkgSession::new(c.clone(), c.members[0].clone(), &mut r).unwrap();
        let _ = s.on_round1(&c.members[1], &Round1Message { epoch: 1, package: junk.clone() });
    }
}

#[test]
fn arbitrary_packages_never_panic_signing() {
    let c = config(2, 3, 1);
    let outputs = run_dkg(&c, 42);
    let s = std::cell::RefCell::new(signers(&outputs));
    let r = std::cell::RefCell::new(rng(43));
    let slot = Slot::DaBlob(1);
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig::with_cases(64));
    runner
        .run(&blob(400), |junk| {
            let mut s = s.borrow_mut();
            s[0].commit(slot, &mut *r.borrow_mut()).unwrap();
            let _ = s[0].sign(
                slot,
                &SigningPackageMsg {
                    epoch: 1,
                    slot,
                    package: junk.clone(),
                },
            );
            let mut round = SigningRound::new(s[0].key_share(), slot, b"m".to_vec()).unwrap();
            let _ = round.on_commitment(
                &c.members[1],
                &CommitmentMsg {
                    epoch: 1,
                    slot,
                    commitments: junk.clone(),
                },
            );
            Ok(())
        })
        .unwrap();
}
