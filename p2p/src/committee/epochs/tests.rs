//! Unit tests of the epoch rotation's node side.
use super::super::{DkgRunError, ThresholdSignError};
use super::*;
use crate::committee::member_id;
use dsdn_protocols::da::EpochRecord;
use in_force::in_force;

fn record(epoch: u64, effective_height: u64) -> EpochRecord {
    EpochRecord {
        epoch,
        members: vec![format!("m{epoch}")],
        threshold: 1,
        group_key: dsdn_protocols::da::Bytes32([epoch as u8; 32]),
        effective_height,
        sealed_at: effective_height - 2,
    }
}

#[test]
fn the_committee_in_force_is_the_record_s_or_the_genesis() {
    let genesis = CurrentCommittee {
        epoch: 1,
        members: vec!["g".into()],
        threshold: 2,
    };
    assert_eq!(in_force(&genesis, None), genesis);
    let c = in_force(&genesis, Some(record(2, 10)));
    assert_eq!(
        (c.epoch, c.members, c.threshold),
        (2, vec!["m2".to_owned()], 1)
    );
}

#[test]
fn request_tags_carry_their_epoch() {
    use super::super::service::{tag_base, tag_epoch};
    assert_eq!(tag_epoch(tag_base(7) + 12_345), 7);
    assert_ne!(tag_epoch(tag_base(7)), tag_epoch(tag_base(8)));
}

/// Four coordinators, the first three the committee of epoch 1 (in force), all four
/// registered: (peers, node config of `me`'s directory, the log view, its selection).
fn four(dir: &std::path::Path) -> (Vec<PeerId>, CommitteeNodeConfig, LogView, NextCommittee) {
    use dsdn_protocols::committee::epoch::SeedAnchor;
    let peers: Vec<PeerId> = (0..4)
        .map(|_| {
            libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id()
        })
        .collect();
    let mut cfg = CommitteeNodeConfig::new(peers[..3].to_vec(), 2, 1, dir.join("committee"));
    // The window is open but for 1 s in 1000 (the test allows that second).
    cfg.epoch_length = std::time::Duration::from_secs(1000);
    cfg.handoff = std::time::Duration::from_secs(999);
    let view = LogView {
        tip: 9,
        anchor: Some(SeedAnchor {
            height: 8,
            hash: [7; 32],
        }),
        latest: None,
        current: CurrentCommittee {
            epoch: 1,
            members: texts(&peers[..3]),
            threshold: 2,
        },
        current_hash: [3; 32],
        candidates: texts(&peers),
    };
    let next = next_committee(&view).expect("4 candidates for 3 seats");
    (peers, cfg, view, next)
}

fn metrics() -> CommitteeMetrics {
    CommitteeMetrics::new(&prometheus::Registry::new()).expect("metrics")
}

#[test]
fn a_coordinator_outside_the_committee_follows_it_and_signs_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let (peers, cfg, _, _) = four(dir.path());
    let mut s = CommitteeService::open(cfg, peers[3], metrics()).expect("a follower opens");
    assert!(s.is_follower());
    assert_eq!(s.status().state, super::super::CommitteeState::Following);
    assert_eq!(s.group_key(), None);
    let (tx, mut rx) = oneshot::channel();
    s.start_dkg(tx, Instant::now());
    assert!(matches!(rx.try_recv(), Ok(Err(DkgRunError::NotConfigured))));
    let (tx, mut rx) = oneshot::channel();
    s.start_sign(Slot::Receipt([1; 32]), b"m".to_vec(), tx, Instant::now());
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(ThresholdSignError::NoKeyShare))
    ));
    // A request from a member of the committee it follows: refused, not answered.
    let commit = CommitteeRequest::Commit {
        epoch: 1,
        slot: Slot::Receipt([1; 32]),
        message_hash: [2; 32],
    };
    let reply = crate::net::rpc::Reply::for_test(1);
    s.on_request(peers[0], commit, reply, Instant::now());
    let actions = s.take_actions();
    assert!(
        matches!(
            actions.as_slice(),
            [super::super::CommitteeAction::Respond(
                _,
                dsdn_protocols::committee::CommitteeResponse::Refused(
                    dsdn_protocols::committee::Refusal::NotAMember
                )
            )]
        ),
        "{}",
        actions.len()
    );
    // A member of the committee does not open as a follower.
    let current = CurrentCommittee {
        epoch: 1,
        members: texts(&peers[..3]),
        threshold: 2,
    };
    let template = s.node_config().clone();
    assert!(follower_service(&template, peers[0], &current, metrics()).is_err());
    let f = follower_service(&template, peers[3], &current, metrics()).expect("follower");
    assert!(f.is_follower() && f.epoch() == 1);
}

#[test]
fn a_dkg_start_is_taken_only_in_the_exact_order_of_the_own_selection() {
    let dir = tempfile::tempdir().expect("dir");
    let (peers, cfg, view, next) = four(dir.path());
    // A next member, preferably the coordinator outside the committee in force.
    let me_text = next
        .members
        .iter()
        .find(|m| **m == peers[3].to_string())
        .unwrap_or(&next.members[0])
        .clone();
    let me: PeerId = me_text.parse().expect("peer id");
    let mut e = EpochLoop::new(
        &cfg,
        me,
        NetworkId::new("devnet").expect("net"),
        metrics(),
        false,
    )
    .expect("epoch loop");
    let initiator: PeerId = peers[0];
    let exact = config_of(next.epoch, next.threshold, &next.members).expect("config");
    let mut reversed_members = next.members.clone();
    reversed_members.reverse();
    let reversed = config_of(next.epoch, next.threshold, &reversed_members).expect("config");
    let now = Instant::now();
    let err = e.accept_dkg_start(&initiator, &reversed, &view, now);
    assert!(
        err.as_ref().is_err_and(|r| r.contains("selection")),
        "{err:?}"
    );
    // From a coordinator outside the committee in force: refused.
    let err = e.accept_dkg_start(&peers[3], &exact, &view, now);
    if me != peers[3] {
        assert!(err.is_err_and(|r| r.contains("not a current member")));
    }
    // The exact selection passes every check but the open window (closed 1 s in 1000).
    match e.accept_dkg_start(&initiator, &exact, &view, now) {
        Ok(()) => assert!(e.next_mut().is_some_and(|(s, _)| s.dkg_running())),
        Err(r) => assert!(r.contains("handoff window is not open"), "{r}"),
    }
    // Next-epoch requests: a member of the selection may send them, anyone else not.
    let left_out = peers
        .iter()
        .find(|p| !next.members.contains(&p.to_string()))
        .expect("one of four is left out");
    assert!(!e.next_member(left_out, &view));
    for m in &next.members {
        assert!(e.next_member(&m.parse().expect("peer id"), &view));
    }
}

/// A share is the next committee's only for its exact member order: the same members in
/// another order (a share adopted under an earlier window's seed) must not be reused for a
/// later window's selection, or the rotation would record an order its DKG did not run
/// with and a restarted member could not open its share (the CI failure of stop 26).
#[test]
fn a_held_share_is_next_only_in_the_same_member_order() {
    let peers: Vec<PeerId> = (0..3)
        .map(|_| {
            libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id()
        })
        .collect();
    let config = CommitteeConfig {
        epoch: 4,
        threshold: 2,
        members: peers
            .iter()
            .map(|p| member_id(p).expect("member id"))
            .collect(),
    };
    let texts: Vec<String> = peers.iter().map(PeerId::to_string).collect();
    let next = |members: Vec<String>, epoch, threshold| NextCommittee {
        epoch,
        members,
        threshold,
    };
    let key = Some([7; 32]);
    assert_eq!(held_key(&config, key, &next(texts.clone(), 4, 2)), key);
    assert_eq!(held_key(&config, None, &next(texts.clone(), 4, 2)), None);
    let mut reordered = texts.clone();
    reordered.rotate_left(1);
    assert_eq!(held_key(&config, key, &next(reordered, 4, 2)), None);
    assert_eq!(held_key(&config, key, &next(texts.clone(), 5, 2)), None);
    assert_eq!(held_key(&config, key, &next(texts, 4, 3)), None);
}
