//! The selection of the next committee as the log pins it (issue 13 §3): the seed anchor
//! and the candidates a member reads at different tips, and the check of a co-signed
//! `committee_rotated` event against them.

use dsdn_protocols::committee::epoch::{derive_epoch_seed, select_committee, EpochSchedule};
use dsdn_protocols::committee::epoch_driver::CurrentCommittee;
use dsdn_protocols::committee::CommitteeConfig;
use dsdn_protocols::da::{Bytes64, CommitteeRotation};

use super::*;
use crate::committee::epochs::{check_rotation, SelectionRule};

/// Windows of 10 s epochs open at 7 s, 17 s, … (UNIX ms; blob timestamps of the tests).
fn rule(members: &[PeerId]) -> SelectionRule {
    SelectionRule {
        schedule: EpochSchedule {
            start_ms: 0,
            epoch_ms: 10_000,
            handoff_ms: 3_000,
        },
        genesis: CurrentCommittee {
            epoch: 0,
            members: members.iter().map(ToString::to_string).collect(),
            threshold: 2,
        },
        candidates: Vec::new(),
    }
}

fn next_key() -> SigningKey {
    SigningKey::from_bytes(&[77; 32])
}

fn registered(p: &PeerId) -> DaEvent {
    DaEvent::CoordinatorRegistered {
        node_id: p.to_string(),
    }
}

/// A member whose group key is the authority, fed blobs dated `stamps` (ms) holding
/// `events[i]`; returns it and the state of its log.
fn member_with_log(dir: &Path, stamps: &[u64], events: Vec<Vec<DaEvent>>) -> Opened {
    let mut o = open_with(
        Some(dir),
        other_key(),
        Some(auth()),
        da(|_| {}),
        Instant::now(),
    );
    o.svc.set_committee_key(Some(auth()));
    let mut state = DaState::new(net());
    for (ts, events) in stamps.iter().zip(events) {
        let blob = state.seal_next(&auth_key(), *ts, events).unwrap();
        let bytes = blob.to_bytes().unwrap();
        state
            .apply_blob(&blob.verify(&net(), &auth()).unwrap())
            .unwrap();
        assert_eq!(o.svc.on_gossip(peer(), &bytes), MessageAcceptance::Accept);
    }
    o
}

fn rotation(members: &[String]) -> CommitteeRotation {
    CommitteeRotation {
        epoch: 1,
        members: members.to_vec(),
        threshold: 2,
        group_key: Bytes32(next_key().verifying_key().to_bytes()),
        effective_height: 12,
        key_proof: Bytes64([0; 64]),
    }
    .sign_with(&net(), &next_key())
    .unwrap()
}

/// The signing bytes of the next blob of `svc` dated `ts`, holding `rotation`.
fn proposal(svc: &DaService, ts: u64, rotation: &CommitteeRotation) -> Vec<u8> {
    let st = svc.state();
    DaBlob::unsigned(
        &net(),
        st.height() + 1,
        st.tip_hash(),
        st.state_root(),
        ts,
        vec![DaEvent::CommitteeRotated(Box::new(rotation.clone()))],
    )
    .unwrap()
    .signing_bytes()
    .unwrap()
}

#[test]
fn members_at_different_tips_select_alike_and_co_sign_only_the_selection() {
    let members: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let outsider = PeerId::random();
    let texts: Vec<String> = members.iter().map(ToString::to_string).collect();
    // Blobs 1..=5 before the window opening at 7 s (registrations at 1 and 4), 6..=8 in it.
    let stamps = [1_000, 2_000, 3_000, 4_000, 5_000, 7_000, 7_500, 8_000];
    let mut events: Vec<Vec<DaEvent>> = vec![
        vec![registered(&members[0]), registered(&members[1])],
        vec![chunk_event(2)],
        vec![chunk_event(3)],
        vec![registered(&members[2]), registered(&outsider)],
        vec![chunk_event(5)],
        vec![chunk_event(6)],
        vec![chunk_event(7)],
        vec![chunk_event(8)],
    ];
    let (d6, d8) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let at6 = member_with_log(d6.path(), &stamps[..6], events[..6].to_vec());
    let mut at8 = member_with_log(d8.path(), &stamps, std::mem::take(&mut events));
    let r = rule(&members);
    at8.svc.set_selection_rule(Some(r.clone()));
    let now = 7_100;
    let (v6, v8) = (
        r.view(&at6.svc, now, &Default::default()),
        r.view(&at8.svc, now + 900, &Default::default()),
    );
    // The anchor is blob 5 on both; the candidates the registered members (the outsider
    // is registered but neither a genesis member nor a configured candidate: not admitted).
    let hash5 = at8.svc.blob_stamp(5).unwrap().1;
    assert_eq!(v6.anchor.map(|a| (a.height, a.hash)), Some((5, hash5)));
    assert_eq!(v6.anchor, v8.anchor);
    let mut sorted = texts.clone();
    sorted.sort();
    assert_eq!(v6.candidates, sorted);
    assert_eq!(v6.candidates, v8.candidates);
    // Named in `[committee] candidates`, the same outsider is one.
    let mut admitted = r.clone();
    admitted.candidates = vec![outsider.to_string()];
    assert!(admitted.admits(&outsider.to_string()) && !r.admits(&outsider.to_string()));
    let mut with_it = sorted.clone();
    with_it.push(outsider.to_string());
    with_it.sort();
    assert_eq!(
        admitted.view(&at6.svc, now, &Default::default()).candidates,
        with_it
    );
    // Independently: the seed of epoch 1 over blob 5 and the genesis committee's hash.
    let config = CommitteeConfig {
        epoch: 0,
        threshold: 2,
        members: members
            .iter()
            .map(|p| crate::committee::member_id(p).unwrap())
            .collect(),
    };
    let committee_hash = dsdn_protocols::receipt::committee_hash(&config).unwrap().0;
    let want = select_committee(
        &texts,
        &texts,
        3,
        &derive_epoch_seed(1, &hash5, &committee_hash),
    );
    let n6 = dsdn_protocols::committee::epoch_driver::next_committee(&v6).unwrap();
    assert_eq!(n6.members, want);
    assert_eq!(
        dsdn_protocols::committee::epoch_driver::next_committee(&v8).unwrap(),
        n6
    );

    // Co-signing at height 9 (blob dated 8.5 s, in the window): the selection passes, any
    // other order or member set is refused.
    let good = rotation(&want);
    at8.svc
        .check_proposal(9, &proposal(&at8.svc, 8_500, &good), 8_500)
        .unwrap();
    check_rotation(&r, &at8.svc, &good, 8_500).unwrap();
    let mut swapped = want.clone();
    swapped.swap(0, 1);
    let e = at8
        .svc
        .check_proposal(9, &proposal(&at8.svc, 8_500, &rotation(&swapped)), 8_500)
        .unwrap_err();
    assert!(e.contains("selection"), "{e}");
    let with_outsider = vec![want[0].clone(), want[1].clone(), outsider.to_string()];
    assert!(check_rotation(&r, &at8.svc, &rotation(&with_outsider), 8_500).is_err());
    // Dated outside a handoff window (after the one of blob 8 closed): refused.
    let e = check_rotation(&r, &at8.svc, &good, 10_500).unwrap_err();
    assert!(e.contains("outside a handoff window"), "{e}");
}

#[test]
fn too_few_registered_members_keep_the_committee_and_an_idle_log_settles() {
    let members: Vec<PeerId> = (0..3).map(|_| PeerId::random()).collect();
    let texts: Vec<String> = members.iter().map(ToString::to_string).collect();
    let dir = tempfile::tempdir().unwrap();
    // Only two members registered, the last blob dated before the window (an idle log).
    let m = member_with_log(
        dir.path(),
        &[1_000, 2_000],
        vec![
            vec![registered(&members[0]), registered(&members[1])],
            vec![chunk_event(2)],
        ],
    );
    let r = rule(&members);
    // Not usable before the settle delay; then the tip is the anchor.
    assert_eq!(r.view(&m.svc, 7_100, &Default::default()).anchor, None);
    let v = r.view(
        &m.svc,
        7_000 + dsdn_protocols::committee::epoch::ANCHOR_SETTLE_MS,
        &Default::default(),
    );
    assert_eq!(v.anchor.map(|a| a.height), Some(2));
    // Fewer registered members than seats: the current members are the candidates.
    assert_eq!(v.candidates, texts);
    // Outside a window the anchor of the coming one is not usable yet.
    assert_eq!(r.view(&m.svc, 3_000, &Default::default()).anchor, None);
}
