//! The epoch rotation driver over schedules (issue 13 §3): a successful handoff, a DKG
//! timeout → fallback → retry at the next window, a rotation sealed too late, a crash and
//! restart mid-handoff from the persisted record, joining and leaving members.

use ed25519_dalek::{Signer as _, SigningKey};

use super::*;

const EPOCH_MS: u64 = 10_000;
const HANDOFF_MS: u64 = 3_000;
/// Window 0 opens at 7 s and closes at 10 s; window 1 opens at 17 s.
const OPEN0: u64 = 7_000;
const OPEN1: u64 = 17_000;

fn id(i: usize) -> String {
    format!("12D3KooWmember{i:02}")
}

fn net() -> NetworkId {
    NetworkId::new("testnet").expect("network id")
}

fn cfg(me: &str) -> EpochDriverConfig {
    EpochDriverConfig {
        me: me.to_owned(),
        network: net(),
        schedule: EpochSchedule {
            start_ms: 0,
            epoch_ms: EPOCH_MS,
            handoff_ms: HANDOFF_MS,
        },
        dkg_timeout_ms: 1_000,
        switch_lead: DEFAULT_SWITCH_LEAD,
    }
}

/// The genesis committee (epoch 0: members 0..3) at `tip`, 5 registered coordinators.
fn view(tip: u64) -> LogView {
    LogView {
        tip,
        anchor: Some(SeedAnchor {
            height: 1,
            hash: [1; 32],
        }),
        latest: None,
        current: CurrentCommittee {
            epoch: 0,
            members: (0..3).map(id).collect(),
            threshold: 2,
        },
        current_hash: [9; 32],
        candidates: (0..5).map(id).collect(),
    }
}

/// The view at `tip` once `rotation` was sealed at `sealed_at` (in force from its
/// effective height).
fn view_after(tip: u64, rotation: &CommitteeRotation, sealed_at: u64) -> LogView {
    let mut v = view(tip);
    let rec = EpochRecord::of(rotation, sealed_at);
    if tip + 1 >= rec.effective_height {
        v.current = CurrentCommittee {
            epoch: rec.epoch,
            members: rec.members.clone(),
            threshold: rec.threshold,
        };
    }
    v.latest = Some(rec);
    v
}

fn no_share(_: &NextCommittee) -> Option<[u8; 32]> {
    None
}

fn new_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn sign(rotation: &CommitteeRotation) -> [u8; 64] {
    new_key()
        .sign(&rotation.message(&net()).expect("message"))
        .to_bytes()
}

/// The node that starts the DKG in the window opening at `OPEN0` with `view(5)`.
fn initiator_of(v: &LogView) -> String {
    let next = next_committee(v).expect("a next committee");
    initiator(&next.members, &v.current.members)
        .expect("initiator")
        .clone()
}

fn only<T: Clone>(actions: &[EpochAction], f: impl Fn(&EpochAction) -> Option<T>) -> Vec<T> {
    actions.iter().filter_map(f).collect()
}

fn persisted(actions: &[EpochAction]) -> Vec<EpochDriverRecord> {
    only(actions, |a| match a {
        EpochAction::Persist(r) => Some(r.clone()),
        _ => None,
    })
}

/// Drives the initiator from the window's opening to `Propose`; returns the rotation.
fn to_proposed(d: &mut EpochDriver, v: &LogView) -> CommitteeRotation {
    d.tick(OPEN0, v, no_share);
    let a = d.take_actions();
    let dkg = only(&a, |a| match a {
        EpochAction::StartDkg(n) => Some(n.clone()),
        _ => None,
    });
    assert_eq!(dkg.len(), 1, "{a:?}");
    assert_eq!(d.status(OPEN0).phase, "dkg");
    d.on_dkg(
        OPEN0 + 400,
        v,
        dkg[0].epoch,
        Ok(new_key().verifying_key().to_bytes()),
    );
    let a = d.take_actions();
    assert!(a.contains(&EpochAction::DkgTook { millis: 400 }), "{a:?}");
    let unsigned = only(&a, |a| match a {
        EpochAction::SignKeyProof(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(unsigned.len(), 1, "{a:?}");
    assert_eq!(unsigned[0].effective_height, v.tip + DEFAULT_SWITCH_LEAD);
    assert_eq!(d.status(OPEN0).phase, "handoff");
    d.on_key_proof(unsigned[0].epoch, Ok(sign(&unsigned[0])));
    let a = d.take_actions();
    let proposed = only(&a, |a| match a {
        EpochAction::Propose(r) => Some(r.clone()),
        _ => None,
    });
    assert_eq!(proposed.len(), 1, "{a:?}");
    assert!(proposed[0].key_proof_valid(&net()));
    proposed[0].clone()
}

#[test]
fn a_handoff_selects_runs_the_dkg_proposes_and_switches_at_the_effective_height() {
    let v = view(5);
    let me = initiator_of(&v);
    let mut d = EpochDriver::new(cfg(&me), 0, true);
    // Before the window: sealing, nothing to do.
    d.tick(OPEN0 - 1, &v, no_share);
    assert!(d.take_actions().is_empty());
    let s = d.status(OPEN0 - 1);
    assert_eq!((s.epoch, s.phase), (0, "sealing"));
    assert_eq!(
        (s.handoff_opens_ms, s.next_epoch_start_ms),
        (OPEN0, EPOCH_MS)
    );

    let rotation = to_proposed(&mut d, &v);
    assert_eq!(rotation.epoch, 1);
    assert_eq!(rotation.threshold, 2);
    assert!(rotation_matches_selection(&rotation, &v));
    // A rotation naming other members is refused by the current committee's members.
    let mut forged = rotation.clone();
    forged.members[0] = id(7);
    assert!(!rotation_matches_selection(&forged, &v));

    // Sealed at 6: switching until tip + 1 reaches the effective height (13).
    d.tick(OPEN0 + 600, &view_after(6, &rotation, 6), no_share);
    assert_eq!(d.status(OPEN0 + 600).phase, "switching");
    d.tick(OPEN0 + 700, &view_after(11, &rotation, 6), no_share);
    assert!(!d
        .take_actions()
        .iter()
        .any(|a| matches!(a, EpochAction::Switch { .. } | EpochAction::Retire { .. })));
    d.tick(OPEN0 + 800, &view_after(12, &rotation, 6), no_share);
    let a = d.take_actions();
    let joins = rotation.members.contains(&me);
    if joins {
        assert!(a.contains(&EpochAction::Switch {
            epoch: 1,
            from_height: 13
        }));
    } else {
        assert!(a.contains(&EpochAction::Retire { epoch: 1 }));
    }
    let s = d.status(OPEN0 + 800);
    assert_eq!(
        (s.epoch, s.phase, s.rotations, s.failures),
        (1, "sealing", 1, 0)
    );
    // The rest of the window and the next epoch's start: nothing more.
    d.tick(EPOCH_MS - 1, &view_after(20, &rotation, 6), no_share);
    d.tick(EPOCH_MS + 1, &view_after(20, &rotation, 6), no_share);
    assert!(d.take_actions().is_empty());
}

#[test]
fn a_dkg_timeout_falls_back_and_the_next_window_retries() {
    let v = view(5);
    let me = initiator_of(&v);
    let mut d = EpochDriver::new(cfg(&me), 0, true);
    d.tick(OPEN0, &v, no_share);
    assert!(d
        .take_actions()
        .iter()
        .any(|a| matches!(a, EpochAction::StartDkg(_))));
    d.tick(OPEN0 + 999, &v, no_share);
    assert_eq!(d.status(OPEN0 + 999).phase, "dkg");
    d.tick(OPEN0 + 1_000, &v, no_share);
    let s = d.status(OPEN0 + 1_000);
    assert_eq!((s.phase, s.failures, s.epoch), ("fallback", 1, 0));
    assert!(s.fallback_reason.expect("reason").contains("timed out"));
    // No retry inside the same window; a late DKG result is ignored.
    d.tick(OPEN0 + 2_000, &v, no_share);
    d.on_dkg(OPEN0 + 2_100, &v, 1, Ok([1; 32]));
    assert!(!d
        .take_actions()
        .iter()
        .any(|a| !matches!(a, EpochAction::Persist(_))));
    // Between the windows: still fallback (the current committee keeps sealing).
    d.tick(EPOCH_MS + 100, &v, no_share);
    assert_eq!(d.status(EPOCH_MS + 100).phase, "fallback");
    d.take_actions();
    // The next window selects again (another seed: the log moved on) and retries.
    let v2 = view(9);
    let next2 = next_committee(&v2).expect("next");
    d.tick(OPEN1, &v2, no_share);
    let a = d.take_actions();
    if initiator(&next2.members, &v2.current.members) == Some(&me) {
        assert!(a.contains(&EpochAction::StartDkg(next2.clone())), "{a:?}");
    }
    assert_ne!(d.status(OPEN1).phase, "fallback");
    assert_eq!(
        persisted(&a).last().expect("persisted").window_ends_ms,
        2 * EPOCH_MS
    );
    // A DKG error is a fallback too.
    let mut d = EpochDriver::new(cfg(&me), 0, true);
    d.tick(OPEN0, &v, no_share);
    d.on_dkg(OPEN0 + 10, &v, 1, Err("member 2 sent a bad share".into()));
    let s = d.status(OPEN0 + 10);
    assert_eq!((s.phase, s.failures), ("fallback", 1));
    assert!(s.fallback_reason.expect("reason").contains("bad share"));
}

#[test]
fn a_rotation_not_sealed_in_time_is_signed_again_or_falls_back_at_the_window_end() {
    let v = view(5);
    let me = initiator_of(&v);
    let mut d = EpochDriver::new(cfg(&me), 0, true);
    let r = to_proposed(&mut d, &v);
    // The log reached the effective height without the rotation: a new key proof for a
    // later height.
    let late = view(r.effective_height - 1);
    d.tick(OPEN0 + 900, &late, no_share);
    let again = only(&d.take_actions(), |a| match a {
        EpochAction::SignKeyProof(x) => Some(x.clone()),
        _ => None,
    });
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].effective_height, late.tip + DEFAULT_SWITCH_LEAD);
    assert_eq!(again[0].group_key, r.group_key);
    d.on_key_proof(1, Ok(sign(&again[0])));
    assert_eq!(d.status(OPEN0 + 950).phase, "handoff");
    // The window closes with nothing sealed: fallback, the current committee stays.
    d.tick(EPOCH_MS, &late, no_share);
    let s = d.status(EPOCH_MS);
    assert_eq!((s.phase, s.failures, s.epoch), ("fallback", 1, 0));
    assert!(s.fallback_reason.expect("reason").contains("not sealed"));
    // A bad key proof (signed by another key) is refused, not proposed.
    let mut d = EpochDriver::new(cfg(&me), 0, true);
    d.tick(OPEN0, &v, no_share);
    d.on_dkg(OPEN0 + 1, &v, 1, Ok(new_key().verifying_key().to_bytes()));
    d.take_actions();
    d.on_key_proof(1, Ok([7; 64]));
    assert!(!d
        .take_actions()
        .iter()
        .any(|a| matches!(a, EpochAction::Propose(_))));
    assert_eq!(d.status(OPEN0 + 2).phase, "fallback");
}

#[test]
fn a_restart_mid_handoff_resumes_from_the_persisted_record() {
    let v = view(5);
    let me = initiator_of(&v);
    let mut d = EpochDriver::new(cfg(&me), 0, true);
    d.tick(OPEN0, &v, no_share);
    let saved = persisted(&d.take_actions()).pop().expect("persisted");
    assert_eq!(saved.step.phase(), "dkg");
    // Through the on-disk form.
    let bytes = crate::codec::encode(&saved, 64 * 1024).expect("encode");
    let saved: EpochDriverRecord = crate::codec::decode(&bytes, 64 * 1024).expect("decode");

    // Crash before the DKG finished: the initiator runs it again within the window.
    let mut d = EpochDriver::resume(cfg(&me), saved.clone());
    assert_eq!(d.status(OPEN0 + 500).phase, "handoff");
    d.tick(OPEN0 + 500, &v, no_share);
    assert!(matches!(d.take_actions()[0], EpochAction::StartDkg(_)));

    // Crash after the share was written: straight to the key proof.
    let key = new_key().verifying_key().to_bytes();
    let mut d = EpochDriver::resume(cfg(&me), saved.clone());
    d.tick(OPEN0 + 500, &v, |_: &NextCommittee| Some(key));
    let a = d.take_actions();
    assert!(
        matches!(&a[0], EpochAction::SignKeyProof(r) if r.group_key.0 == key),
        "{a:?}"
    );

    // Restarted after the window closed: fallback, counted once.
    let mut d = EpochDriver::resume(cfg(&me), saved.clone());
    d.tick(EPOCH_MS + 1, &v, no_share);
    let s = d.status(EPOCH_MS + 1);
    assert_eq!((s.phase, s.failures), ("fallback", 1));

    // Restarted after the others sealed the rotation: the log wins, switching follows.
    let mut d = EpochDriver::resume(cfg(&me), saved);
    let mut rotation = CommitteeRotation {
        epoch: 1,
        members: next_committee(&v).expect("next").members,
        threshold: 2,
        group_key: Bytes32(key),
        effective_height: 8,
        key_proof: Bytes64([0; 64]),
    };
    rotation.key_proof = Bytes64(sign(&rotation));
    d.tick(OPEN0 + 900, &view_after(9, &rotation, 6), no_share);
    let a = d.take_actions();
    assert!(
        a.iter().any(|a| matches!(
            a,
            EpochAction::Switch { epoch: 1, .. } | EpochAction::Retire { epoch: 1 }
        )),
        "{a:?}"
    );
    assert_eq!(d.status(OPEN0 + 900).epoch, 1);
}

#[test]
fn joining_leaving_and_bystanding_nodes_follow_the_log() {
    let v = view(5);
    let next = next_committee(&v).expect("next");
    let starter = initiator_of(&v);
    let mut rotation = CommitteeRotation {
        epoch: 1,
        members: next.members.clone(),
        threshold: next.threshold,
        group_key: Bytes32(new_key().verifying_key().to_bytes()),
        effective_height: 8,
        key_proof: Bytes64([0; 64]),
    };
    rotation.key_proof = Bytes64(sign(&rotation));
    for i in 0..5 {
        let me = id(i);
        if me == starter {
            continue;
        }
        let current = i < 3;
        let mut d = EpochDriver::new(cfg(&me), 0, current);
        d.tick(OPEN0, &v, no_share);
        let a = d.take_actions();
        // Only the initiator starts a DKG; next members wait for it.
        assert!(!a.iter().any(|a| matches!(a, EpochAction::StartDkg(_))));
        let phase = d.status(OPEN0).phase;
        if next.members.contains(&me) {
            assert_eq!(phase, "dkg");
            d.on_dkg(OPEN0 + 300, &v, 1, Ok(rotation.group_key.0));
            assert!(!d
                .take_actions()
                .iter()
                .any(|a| matches!(a, EpochAction::SignKeyProof(_))));
        } else {
            assert_eq!(phase, "handoff");
        }
        d.tick(OPEN0 + 400, &view_after(6, &rotation, 6), no_share);
        assert_eq!(d.status(OPEN0 + 400).phase, "switching");
        d.tick(OPEN0 + 500, &view_after(7, &rotation, 6), no_share);
        let a = d.take_actions();
        let switch = a.contains(&EpochAction::Switch {
            epoch: 1,
            from_height: 8,
        });
        let retire = a.contains(&EpochAction::Retire { epoch: 1 });
        assert_eq!(switch, next.members.contains(&me), "{me}: {a:?}");
        assert_eq!(
            retire,
            current && !next.members.contains(&me),
            "{me}: {a:?}"
        );
        assert_eq!(d.record().member, next.members.contains(&me));
        assert_eq!(d.status(OPEN0 + 500).rotations, 1);
    }
}

#[test]
fn too_few_registered_coordinators_keep_the_committee() {
    let mut v = view(5);
    v.candidates = (0..2).map(id).collect();
    assert_eq!(next_committee(&v), None);
    let mut d = EpochDriver::new(cfg(&id(0)), 0, true);
    d.tick(OPEN0, &v, no_share);
    let s = d.status(OPEN0);
    assert_eq!(s.phase, "fallback");
    assert!(s
        .fallback_reason
        .expect("reason")
        .contains("fewer registered"));
    assert!(!d
        .take_actions()
        .iter()
        .any(|a| matches!(a, EpochAction::StartDkg(_))));
    // The initiator is a current member when one is selected.
    let next = vec![id(7), id(1), id(2)];
    assert_eq!(initiator(&next, &[id(0), id(1)]), Some(&id(1)));
    assert_eq!(initiator(&next, &[id(9)]), Some(&id(7)));
}

#[test]
fn the_driver_waits_for_a_usable_anchor_then_selects_with_its_hash() {
    let mut v = view(5);
    v.anchor = None;
    assert_eq!(next_committee(&v), None);
    let init = initiator_of(&view(5));
    let mut d = EpochDriver::new(cfg(&init), 0, true);
    d.tick(OPEN0, &v, no_share);
    assert_eq!(d.status(OPEN0).phase, "sealing");
    assert!(d.take_actions().is_empty());
    // The anchor becomes usable later in the window: the selection starts then.
    let v = view(6);
    d.tick(OPEN0 + 100, &v, no_share);
    assert_eq!(d.status(OPEN0 + 100).phase, "dkg");
    // The seed is the anchor's hash: another anchor, another order for some hash.
    let differs = (0..16u8).any(|b| {
        let mut w = view(5);
        w.anchor = Some(SeedAnchor {
            height: 1,
            hash: [b; 32],
        });
        next_committee(&w) != next_committee(&view(5))
    });
    assert!(differs);
}

/// The genesis committee (members 0..3) at `tip` with 4 registered coordinators and the
/// anchor hash `[h; 32]`.
fn view_of_four(tip: u64, h: u8) -> LogView {
    let mut v = view(tip);
    v.candidates = (0..4).map(id).collect();
    v.anchor = Some(SeedAnchor {
        height: 1,
        hash: [h; 32],
    });
    v
}

#[test]
fn a_follower_joins_when_selected_and_a_member_left_out_retires_to_follow() {
    let follower = id(3);
    // Anchors whose selection takes the follower in, and one that leaves it out.
    let picks = |sel: bool| {
        (0..=255u8)
            .find(|h| {
                next_committee(&view_of_four(5, *h))
                    .is_some_and(|n| n.members.contains(&follower) == sel)
            })
            .expect("some anchor")
    };
    for (h, selected) in [(picks(true), true), (picks(false), false)] {
        let v = view_of_four(5, h);
        let next = next_committee(&v).expect("next");
        // The initiator is a current member whenever one is selected (3 of 4 always are).
        let starter = initiator_of(&v);
        assert!(v.current.members.contains(&starter));
        let rotation = CommitteeRotation {
            epoch: 1,
            members: next.members.clone(),
            threshold: next.threshold,
            group_key: Bytes32(new_key().verifying_key().to_bytes()),
            effective_height: 8,
            key_proof: Bytes64([0; 64]),
        };
        let mut d = EpochDriver::new(cfg(&follower), 0, false);
        d.tick(OPEN0, &v, no_share);
        let a = d.take_actions();
        assert!(!a.iter().any(|a| matches!(a, EpochAction::StartDkg(_))));
        // Selected: it waits for the initiator's DkgStart; else it only watches.
        let phase = d.status(OPEN0).phase;
        assert_eq!(phase, if selected { "dkg" } else { "handoff" });
        if selected {
            d.on_dkg(OPEN0 + 300, &v, 1, Ok(rotation.group_key.0));
            let a = d.take_actions();
            assert!(!a.iter().any(|a| matches!(a, EpochAction::SignKeyProof(_))));
        }
        let mut after = view_after(7, &rotation, 6);
        after.candidates = v.candidates.clone();
        d.tick(OPEN0 + 500, &after, no_share);
        let a = d.take_actions();
        let switched = a.contains(&EpochAction::Switch {
            epoch: 1,
            from_height: 8,
        });
        assert_eq!(switched, selected, "{a:?}");
        assert!(!a.iter().any(|a| matches!(a, EpochAction::Retire { .. })));
        assert_eq!(d.record().member, selected);
        assert_eq!(d.record().acting_epoch, 1);
        // The member left out of the next committee retires (and follows from then on).
        let left_out = v.current.members.iter().find(|m| !next.members.contains(m));
        if let Some(m) = left_out {
            let mut d = EpochDriver::new(cfg(m), 0, true);
            d.tick(OPEN0, &v, no_share);
            d.tick(OPEN0 + 500, &after, no_share);
            let a = d.take_actions();
            assert!(a.contains(&EpochAction::Retire { epoch: 1 }), "{a:?}");
            assert!(!d.record().member);
        } else {
            assert!(!selected, "the follower took a seat: someone left");
        }
    }
}

#[test]
fn a_rotation_in_another_member_order_is_not_the_selection() {
    let v = view_of_four(5, 1);
    let next = next_committee(&v).expect("next");
    let mut rotation = CommitteeRotation {
        epoch: 1,
        members: next.members.clone(),
        threshold: next.threshold,
        group_key: Bytes32([5; 32]),
        effective_height: 8,
        key_proof: Bytes64([0; 64]),
    };
    assert!(rotation_matches_selection(&rotation, &v));
    rotation.members.swap(0, 2);
    assert!(!rotation_matches_selection(&rotation, &v));
}
