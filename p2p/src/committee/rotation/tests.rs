//! The driver without a swarm: three members with real FROST shares from an in-process DKG;
//! messages are held until the record is durable, a failed write withholds them, and a
//! member whose record was corrupt abstains until a height is sealed after it synced.

use std::collections::VecDeque;

use dsdn_protocols::committee::{
    CommitteeConfig, DkgMessage, DkgSession, KeyShareFile, MemberId, OsRng,
};

use super::*;

fn committee() -> (CommitteeConfig, Vec<KeyShareFile>) {
    let members: Vec<MemberId> = (0..3)
        .map(|_| {
            let peer = libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id();
            MemberId::new(peer.to_bytes()).unwrap()
        })
        .collect();
    let config = CommitteeConfig {
        epoch: 0,
        threshold: 2,
        members: members.clone(),
    };
    let mut sessions = Vec::new();
    let mut queue: VecDeque<(usize, usize, DkgMessage)> = VecDeque::new();
    for (i, m) in members.iter().enumerate() {
        let (s, r1) = DkgSession::new(config.clone(), m.clone(), &mut OsRng).unwrap();
        sessions.push(s);
        for j in (0..3).filter(|j| *j != i) {
            queue.push_back((i, j, DkgMessage::Round1(r1.clone())));
        }
    }
    let mut shares: Vec<Option<KeyShareFile>> = vec![None, None, None];
    while let Some((from, to, msg)) = queue.pop_front() {
        match msg {
            DkgMessage::Round1(m) => {
                if let Some(r2) = sessions[to].on_round1(&members[from], &m).unwrap() {
                    for (dest, m2) in r2 {
                        let j = members.iter().position(|x| *x == dest).unwrap();
                        queue.push_back((to, j, DkgMessage::Round2(m2)));
                    }
                }
            }
            DkgMessage::Round2(m) => {
                if let Some(out) = sessions[to].on_round2(&members[from], &m).unwrap() {
                    shares[to] = Some(out.key_share);
                }
            }
        }
    }
    (config, shares.into_iter().map(Option::unwrap).collect())
}

fn driver(config: &CommitteeConfig, share: &KeyShareFile, loaded: Loaded) -> DaRotation {
    let registry = prometheus::Registry::new();
    let rot = RotationConfig::new(config, std::time::Duration::from_secs(1)).unwrap();
    DaRotation::new(
        rot,
        share.member().clone(),
        FrostRoundCrypto::new(share.clone()),
        loaded,
        PathBuf::from("/nonexistent/rotation-record-0.cbor"),
        CommitteeMetrics::new(&registry).unwrap(),
    )
    .unwrap()
}

fn sends(out: &[RotationOut]) -> usize {
    out.iter()
        .filter(|o| matches!(o, RotationOut::Send(..)))
        .count()
}

fn persists(out: &[RotationOut]) -> Vec<u64> {
    out.iter()
        .filter_map(|o| match o {
            RotationOut::Persist { seq, .. } => Some(*seq),
            _ => None,
        })
        .collect()
}

#[test]
fn messages_leave_only_once_their_record_is_durable() {
    let (config, shares) = committee();
    let now = Instant::now();
    // The proposer of height 1 round 0 is members[1].
    let mut p = driver(&config, &shares[1], Loaded::Fresh);
    p.on_tip(0, true, now);
    let out = p.take_out();
    assert_eq!(persists(&out), vec![1]);
    assert_eq!(sends(&out), 0, "the Prepare waits for the record: {out:?}");
    p.on_persisted(1, Ok(()));
    let out = p.take_out();
    assert_eq!(sends(&out), 2, "Prepare to both others: {out:?}");
    assert_eq!(p.status(now, false, &[]).state, "idle");
    // A member that cannot write its record sends nothing that depends on it.
    let mut m = driver(&config, &shares[2], Loaded::Fresh);
    m.on_tip(0, true, now);
    let seq = persists(&m.take_out())[0];
    let peer = PeerId::from_bytes(config.members[1].as_bytes()).unwrap();
    m.on_message(
        peer,
        RotationMsg::Prepare {
            height: 1,
            round: 3,
        },
        now,
    )
    .unwrap();
    let out = m.take_out();
    assert_eq!(persists(&out), vec![seq + 1]);
    assert_eq!(sends(&out), 0);
    m.on_persisted(seq + 1, Err("disk full".into()));
    assert_eq!(sends(&m.take_out()), 0, "the promise is withheld for good");
    assert_eq!(m.status(now, false, &[]).state, "record_write_failed");
}

#[test]
fn a_connected_member_whose_requests_fail_does_not_count_towards_the_majority() {
    let (config, shares) = committee();
    let now = Instant::now();
    let mut p = driver(&config, &shares[1], Loaded::Fresh);
    p.on_tip(0, true, now);
    let seq = persists(&p.take_out())[0];
    p.on_persisted(seq, Ok(()));
    let peers: Vec<PeerId> = config
        .members
        .iter()
        .map(|m| PeerId::from_bytes(m.as_bytes()).unwrap())
        .collect();
    let others = [peers[0], peers[2]];
    // Connected to both, work pending: active.
    assert_eq!(p.status(now, true, &others).state, "active");
    // Both cut off (a split the connections have not noticed): 1 of 2 answers.
    p.on_answer(peers[0], false);
    p.on_answer(peers[2], false);
    let view = p.status(now, true, &others);
    assert_eq!(view.state, "no_majority");
    assert_eq!(view.waiting_for.len(), 2);
    // One answers again (or sends a request): 2 of 2 needed, the majority is back.
    p.on_answer(peers[2], true);
    let view = p.status(now, true, &others);
    assert_eq!(view.state, "active", "{view:?}");
    // Not connected counts as not answering whatever came before; non-members and this
    // member itself are ignored.
    let view = p.status(now, true, &[peers[0]]);
    assert_eq!(view.state, "no_majority");
    assert_eq!(view.waiting_for, vec![peers[0], peers[2]]);
    p.on_answer(PeerId::random(), false);
    p.on_answer(peers[1], false);
    assert_eq!(p.status(now, true, &others).state, "active");
    // Without work nothing is waited for.
    p.on_answer(peers[2], false);
    assert_eq!(p.status(now, false, &others).state, "idle");
}

#[test]
fn a_member_with_a_corrupt_record_abstains_until_a_height_is_sealed_after_it_synced() {
    let (config, shares) = committee();
    let now = Instant::now();
    let corrupt = Loaded::Corrupt {
        error: "bad cbor".into(),
        moved_to: None,
    };
    let mut m = driver(&config, &shares[0], corrupt);
    let peer = PeerId::from_bytes(config.members[1].as_bytes()).unwrap();
    m.on_tip(4, false, now);
    assert_eq!(m.status(now, false, &[]).state, "abstaining");
    m.on_tip(4, true, now);
    assert!(
        m.on_message(
            peer,
            RotationMsg::Prepare {
                height: 5,
                round: 0
            },
            now
        )
        .is_err(),
        "no promise at the height whose lock may be lost"
    );
    assert!(m.take_out().is_empty());
    let view = m.status(now, false, &[]);
    assert!(view.detail.unwrap_or_default().contains("height 5"));
    m.on_tip(5, true, now);
    let out = m.take_out();
    assert!(!persists(&out).is_empty(), "takes part again from height 6");
    assert_eq!(m.status(now, false, &[]).height, 6);
}

/// Issue 13 §6: a member's own lock (here a version-3 blob from an older build's record,
/// which names no proposer) is co-signed again as it is; another blob naming no proposer,
/// or one by a non-member, is refused.
#[test]
fn the_author_rule_accepts_our_own_lock_as_it_is() {
    use dsdn_protocols::committee::message_hash;
    use dsdn_protocols::committee::rotation::Lock;
    use dsdn_protocols::da::{empty_root, DaBlob, GENESIS_PREV_HASH};
    let (config, shares) = committee();
    let net = dsdn_protocols::NetworkId::new("devnet").unwrap();
    let v3 =
        |t: u64| DaBlob::unsigned(&net, 1, GENESIS_PREV_HASH, empty_root(), t, Vec::new()).unwrap();
    let locked = v3(5).signing_bytes().unwrap();
    let record = MemberRecord {
        height: 1,
        round: 2,
        lock: Some(Lock {
            round: 1,
            message_hash: message_hash(&locked),
            message: locked.clone(),
        }),
    };
    let d = driver(&config, &shares[0], Loaded::Record(record));
    assert_eq!(d.check_author(3, &v3(5), &locked), Ok(()));
    let other = v3(6).signing_bytes().unwrap();
    let e = d.check_author(3, &v3(6), &other).unwrap_err();
    assert!(e.contains("names no proposer"), "{e}");
    let stranger = ed25519_dalek::SigningKey::from_bytes(&[3; 32]);
    let by = v3(6).proposed_by(&stranger).unwrap();
    let e = d
        .check_author(3, &by, &by.signing_bytes().unwrap())
        .unwrap_err();
    assert!(e.contains("not a member"), "{e}");
}
