//! The committee protocol's wire enums: round trips, caps, decoders that never panic.

use proptest::prelude::*;

use super::*;

fn refusal() -> impl Strategy<Value = Refusal> {
    prop_oneof![
        Just(Refusal::NotAMember),
        Just(Refusal::NotConfigured),
        Just(Refusal::NoKeyShare),
        Just(Refusal::AlreadyHaveKey),
        slot().prop_map(Refusal::Equivocation),
        ".{0,600}".prop_map(|s| Refusal::WrongCommittee(Refusal::text(s))),
        ".{0,600}".prop_map(|s| Refusal::Busy(Refusal::text(s))),
        ".{0,600}".prop_map(|s| Refusal::Policy(Refusal::text(s))),
        ".{0,600}".prop_map(|s| Refusal::Invalid(Refusal::text(s))),
    ]
}

fn request() -> impl Strategy<Value = CommitteeRequest> {
    prop_oneof![
        (any::<u64>(), 2u16..=64, 2usize..=64)
            .prop_map(|(e, t, n)| { CommitteeRequest::DkgStart(config(t.min(n as u16), n, e)) }),
        (any::<u64>(), blob(3000)).prop_map(|(epoch, package)| CommitteeRequest::Dkg(
            DkgMessage::Round1(Round1Message { epoch, package })
        )),
        (any::<u64>(), blob(200)).prop_map(|(epoch, package)| CommitteeRequest::Dkg(
            DkgMessage::Round2(Round2Message { epoch, package })
        )),
        (any::<u64>(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(epoch, t, k)| {
            CommitteeRequest::DkgConfirm {
                epoch,
                transcript: t,
                group_key: GroupKey(k),
            }
        }),
        (any::<u64>(), slot(), any::<[u8; 32]>()).prop_map(|(epoch, slot, h)| {
            CommitteeRequest::Commit {
                epoch,
                slot,
                message_hash: h,
            }
        }),
        (any::<u64>(), slot(), blob(5000)).prop_map(|(epoch, slot, package)| {
            CommitteeRequest::Sign(SigningPackageMsg {
                epoch,
                slot,
                package,
            })
        }),
    ]
}

fn response() -> impl Strategy<Value = CommitteeResponse> {
    prop_oneof![
        Just(CommitteeResponse::Ack),
        (any::<u64>(), slot(), blob(120)).prop_map(|(epoch, slot, commitments)| {
            CommitteeResponse::Commitment(CommitmentMsg {
                epoch,
                slot,
                commitments,
            })
        }),
        (any::<u64>(), slot(), blob(40)).prop_map(|(epoch, slot, share)| {
            CommitteeResponse::Share(SignatureShareMsg { epoch, slot, share })
        }),
        refusal().prop_map(CommitteeResponse::Refused),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn requests_round_trip_within_the_cap(req in request()) {
        let bytes = req.to_bytes().unwrap();
        prop_assert!(bytes.len() <= MAX_COMMITTEE_REQUEST_BYTES);
        prop_assert_eq!(CommitteeRequest::from_bytes(&bytes).unwrap(), req);
    }

    #[test]
    fn responses_round_trip_within_the_cap(resp in response()) {
        let bytes = resp.to_bytes().unwrap();
        // Refusal texts are cut, so the largest response stays far below the cap.
        prop_assert!(bytes.len() <= MAX_COMMITTEE_RESPONSE_BYTES / 2);
        prop_assert_eq!(CommitteeResponse::from_bytes(&bytes).unwrap(), resp);
    }

    #[test]
    fn arbitrary_bytes_never_panic_the_wire_decoders(bytes in blob(2000)) {
        let _ = CommitteeRequest::from_bytes(&bytes);
        let _ = CommitteeResponse::from_bytes(&bytes);
    }
}

#[test]
fn largest_signing_request_fits_and_oversized_is_refused() {
    let req = CommitteeRequest::Sign(SigningPackageMsg {
        epoch: u64::MAX,
        slot: Slot::Receipt([0xff; 32]),
        package: vec![0xab; MAX_SIGNING_PACKAGE_MSG_BYTES - 64],
    });
    let bytes = req.to_bytes().unwrap();
    assert_eq!(CommitteeRequest::from_bytes(&bytes).unwrap(), req);
    let too_big = CommitteeRequest::Sign(SigningPackageMsg {
        epoch: 1,
        slot: Slot::DaBlob(1),
        package: vec![0; MAX_COMMITTEE_REQUEST_BYTES],
    });
    assert!(too_big.to_bytes().is_err());
}

#[test]
fn refusal_text_is_cut_at_a_char_boundary() {
    let s = Refusal::text("é".repeat(MAX_REFUSAL_TEXT_BYTES));
    assert!(s.len() <= MAX_REFUSAL_TEXT_BYTES && s.len() >= MAX_REFUSAL_TEXT_BYTES - 1);
    assert_eq!(Refusal::text("short"), "short");
}

#[test]
fn signing_package_message_is_readable() {
    let c = config(2, 3, 1);
    let outputs = run_dkg(&c, 50);
    let mut s = signers(&outputs);
    let mut r = rng(51);
    let slot = Slot::DaBlob(3);
    let mut round = SigningRound::new(s[0].key_share(), slot, b"hello".to_vec()).unwrap();
    for (i, signer) in s.iter_mut().enumerate().take(2) {
        let c0 = signer.commit(slot, &mut r).unwrap();
        round.on_commitment(&c.members[i], &c0).unwrap();
    }
    let package = round.signing_package().unwrap();
    assert_eq!(package.message().unwrap(), b"hello");
    let junk = SigningPackageMsg {
        epoch: 1,
        slot,
        package: vec![1, 2, 3],
    };
    assert!(junk.message().is_err());
}
