//! DKG tests.

use frost_ed25519 as frost;

use super::*;
use crate::codec;

fn check_outputs(config: &CommitteeConfig, outputs: &[DkgOutput]) {
    let key = outputs[0].group_key;
    for (i, out) in outputs.iter().enumerate() {
        assert_eq!(out.group_key, key);
        assert_eq!(out.transcript, outputs[0].transcript);
        assert_eq!(out.key_share.group_key(), key);
        assert_eq!(out.key_share.member(), &config.members[i]);
        assert_eq!(out.key_share.config(), config);
    }
    // The group key is a valid Ed25519 point.
    assert!(ed25519_dalek::VerifyingKey::from_bytes(&key.0).is_ok());
}

#[test]
fn dkg_2_of_3() {
    let c = config(2, 3, 1);
    check_outputs(&c, &run_dkg(&c, 1));
}

#[test]
fn dkg_3_of_4() {
    let c = config(3, 4, 7);
    check_outputs(&c, &run_dkg(&c, 2));
}

#[test]
fn dkg_5_of_7() {
    let c = config(5, 7, 9);
    check_outputs(&c, &run_dkg(&c, 3));
}

#[test]
fn different_runs_give_different_keys() {
    let c = config(2, 3, 1);
    assert_ne!(run_dkg(&c, 1)[0].group_key, run_dkg(&c, 2)[0].group_key);
}

/// Three sessions of a 2-of-3 committee and their round-1 messages.
fn start(c: &CommitteeConfig, seed: u64) -> (Vec<DkgSession>, Vec<Round1Message>) {
    let mut r = rng(seed);
    c.members
        .iter()
        .map(|m| DkgSession::new(c.clone(), m.clone(), &mut r).unwrap())
        .unzip()
}

#[test]
fn config_validation() {
    assert!(config(2, 3, 0).validate().is_ok());
    assert!(matches!(
        config(1, 3, 0).validate(),
        Err(ConfigError::BadThreshold { .. })
    ));
    assert!(matches!(
        config(4, 3, 0).validate(),
        Err(ConfigError::BadThreshold { .. })
    ));
    assert!(matches!(
        config(2, 1, 0).validate(),
        Err(ConfigError::BadSize(1))
    ));
    assert!(matches!(
        config(2, 65, 0).validate(),
        Err(ConfigError::BadSize(65))
    ));
    assert!(config(64, 64, 0).validate().is_ok());
    let mut dup = config(2, 3, 0);
    dup.members[2] = dup.members[0].clone();
    assert!(matches!(dup.validate(), Err(ConfigError::Duplicate(_))));
    assert!(MemberId::new(vec![]).is_err());
    assert!(MemberId::new(vec![1; 65]).is_err());
    let mut r = rng(0);
    assert!(matches!(
        DkgSession::new(config(2, 3, 0), member(9), &mut r),
        Err(DkgError::Config(ConfigError::NotAMember(_)))
    ));
}

#[test]
fn non_member_other_epoch_self_and_duplicates_are_refused_without_harm() {
    let c = config(2, 3, 5);
    let (mut s, r1) = start(&c, 4);
    // A non-member's round-1 message (a real one, from a session of another committee).
    let mut other = c.clone();
    other.members[2] = member(9);
    let (_, stranger) = DkgSession::new(other, member(9), &mut rng(5)).unwrap();
    assert_eq!(
        s[0].on_round1(&member(9), &stranger),
        Err(DkgError::UnknownMember(member(9)))
    );
    // Member 1's message relabelled for another epoch.
    let mut late = r1[1].clone();
    late.epoch = 4;
    assert_eq!(
        s[0].on_round1(&c.members[1], &late),
        Err(DkgError::WrongEpoch {
            expected: 5,
            got: 4
        })
    );
    assert_eq!(
        s[0].on_round1(&c.members[0], &r1[0]),
        Err(DkgError::FromSelf)
    );
    assert_eq!(s[0].on_round1(&c.members[1], &r1[1]), Ok(None));
    assert!(matches!(
        s[0].on_round1(&c.members[1], &r1[1]),
        Err(DkgError::Duplicate { round: 1, .. })
    ));
    assert_eq!(s[0].missing_round1(), vec![c.members[2].clone()]);
    // The session is unharmed: it still completes.
    let r2 = s[0].on_round1(&c.members[2], &r1[2]).unwrap().unwrap();
    assert_eq!(r2.len(), 2);
}

#[test]
fn invalid_proof_of_knowledge_names_the_sender() {
    let c = config(2, 3, 1);
    let (mut s, r1) = start(&c, 6);
    // Member 1 sends its commitment with member 2's proof of knowledge.
    let p1 = frost::keys::dkg::round1::Package::deserialize(&r1[1].package).unwrap();
    let p2 = frost::keys::dkg::round1::Package::deserialize(&r1[2].package).unwrap();
    let forged =
        frost::keys::dkg::round1::Package::new(p1.commitment().clone(), *p2.proof_of_knowledge());
    let forged = Round1Message {
        epoch: 1,
        package: forged.serialize().unwrap(),
    };
    assert_eq!(s[0].on_round1(&c.members[1], &forged), Ok(None));
    match s[0].on_round1(&c.members[2], &r1[2]) {
        Err(DkgError::Culprit { member, .. }) => assert_eq!(member, c.members[1]),
        other => panic!("expected a culprit, got {other:?}"),
    }
    // Aborted.
    assert_eq!(
        s[0].on_round2(
            &c.members[1],
            &Round2Message {
                epoch: 1,
                package: vec![]
            }
        ),
        Err(DkgError::Closed("failed"))
    );
}

#[test]
fn malformed_or_wrong_threshold_round1_names_the_sender() {
    let c = config(2, 3, 1);
    let (mut s, _) = start(&c, 7);
    let junk = Round1Message {
        epoch: 1,
        package: vec![1, 2, 3],
    };
    assert!(matches!(
        s[0].on_round1(&c.members[1], &junk),
        Err(DkgError::Culprit { member, .. }) if member == c.members[1]
    ));
    // A round-1 message made for a 3-of-3 committee.
    let (mut s, _) = start(&c, 7);
    let (_, wrong_t) = DkgSession::new(config(3, 3, 1), c.members[2].clone(), &mut rng(8)).unwrap();
    assert!(matches!(
        s[0].on_round1(&c.members[2], &wrong_t),
        Err(DkgError::Culprit { member, .. }) if member == c.members[2]
    ));
}

#[test]
fn bad_round2_share_names_the_sender_and_early_round2_is_buffered() {
    let c = config(2, 3, 1);
    let (mut s, r1) = start(&c, 10);
    // Members 1 and 2 complete round 1 first.
    let mut to0 = BTreeMap::new();
    for i in [1, 2] {
        let mut out = None;
        for j in (0..3).filter(|j| *j != i) {
            out = s[i].on_round1(&c.members[j], &r1[j]).unwrap().or(out);
        }
        to0.insert(i, out.unwrap());
    }
    // Member 1 sends member 0 the share it made for member 2.
    let bad = to0[&1]
        .iter()
        .find(|(m, _)| *m == c.members[2])
        .unwrap()
        .1
        .clone();
    let good = to0[&2]
        .iter()
        .find(|(m, _)| *m == c.members[0])
        .unwrap()
        .1
        .clone();
    // Round-2 messages arrive at member 0 before its round 1 completed: buffered.
    assert_eq!(s[0].on_round2(&c.members[1], &bad), Ok(None));
    assert_eq!(s[0].on_round2(&c.members[2], &good), Ok(None));
    assert_eq!(s[0].on_round1(&c.members[1], &r1[1]), Ok(None));
    match s[0].on_round1(&c.members[2], &r1[2]) {
        Err(DkgError::Culprit { member, .. }) => assert_eq!(member, c.members[1]),
        other => panic!("expected a culprit, got {other:?}"),
    }
}

#[test]
fn early_round2_completes_with_round1() {
    let c = config(2, 3, 1);
    let (mut s, r1) = start(&c, 11);
    let mut to0 = Vec::new();
    for i in [1, 2] {
        let mut out = None;
        for j in (0..3).filter(|j| *j != i) {
            out = s[i].on_round1(&c.members[j], &r1[j]).unwrap().or(out);
        }
        let m = out
            .unwrap()
            .into_iter()
            .find(|(m, _)| *m == c.members[0])
            .unwrap()
            .1;
        to0.push((c.members[i].clone(), m));
    }
    for (from, m) in &to0 {
        assert_eq!(s[0].on_round2(from, m), Ok(None));
        assert!(matches!(
            s[0].on_round2(from, m),
            Err(DkgError::Duplicate { round: 2, .. })
        ));
    }
    s[0].on_round1(&c.members[1], &r1[1]).unwrap();
    assert!(s[0].on_round1(&c.members[2], &r1[2]).unwrap().is_some());
    assert!(s[0].output().is_some());
    assert!(s[0].missing_round2().is_empty());
}

#[test]
fn key_share_file_round_trip_and_version_refusal() {
    let c = config(3, 4, 2);
    let outputs = run_dkg(&c, 12);
    let file = &outputs[1].key_share;
    let bytes = file.to_bytes().unwrap();
    assert!(bytes.len() < MAX_KEY_SHARE_FILE_BYTES);
    let back = KeyShareFile::from_bytes(&bytes).unwrap();
    assert_eq!(&back, file);
    assert_eq!(back.group_key(), outputs[0].group_key);
    assert!(!format!("{back:?}").contains("signing_share: SigningShare"));

    #[derive(serde::Serialize)]
    struct Future {
        version: u16,
        something_else: Vec<u32>,
    }
    let future = codec::encode(
        &Future {
            version: 2,
            something_else: vec![1],
        },
        1024,
    )
    .unwrap();
    assert!(matches!(
        KeyShareFile::from_bytes(&future),
        Err(KeyShareError::UnsupportedVersion(2))
    ));
    assert!(KeyShareFile::from_bytes(&bytes[..bytes.len() - 1]).is_err());
    assert!(matches!(
        KeyShareFile::from_bytes(&vec![0; MAX_KEY_SHARE_FILE_BYTES + 1]),
        Err(KeyShareError::Codec(codec::CodecError::TooLarge { .. }))
    ));
}

#[test]
fn key_share_file_of_another_member_is_inconsistent() {
    let c = config(2, 3, 2);
    let outputs = run_dkg(&c, 13);
    // Member 0's packages claimed by member 1.
    let f = &outputs[0].key_share;
    let forged = KeyShareFile::new(
        c.clone(),
        c.members[1].clone(),
        f.key_package().clone(),
        f.public_key_package().clone(),
    );
    assert!(matches!(forged, Err(KeyShareError::Inconsistent(_))));
    // Another threshold.
    let mut other = c.clone();
    other.threshold = 3;
    assert!(matches!(
        KeyShareFile::new(
            other,
            c.members[0].clone(),
            f.key_package().clone(),
            f.public_key_package().clone()
        ),
        Err(KeyShareError::Inconsistent(_))
    ));
}

#[test]
fn largest_round1_message_fits_its_cap() {
    let c = config(64, 64, u64::MAX);
    let (_, r1) = DkgSession::new(c.clone(), c.members[0].clone(), &mut rng(14)).unwrap();
    let bytes = DkgMessage::Round1(r1).to_bytes().unwrap();
    assert!(
        bytes.len() < MAX_DKG_MESSAGE_BYTES / 2,
        "{} bytes",
        bytes.len()
    );
}
