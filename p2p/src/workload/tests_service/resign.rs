//! Receipts around a committee switch (issue 13 §3, §7; `service/resign.rs`): a signing
//! round that fails across the switch signs again under the epoch in force instead of
//! failing the submission.

use super::*;
use crate::workload::service::{resign_plan, Resign, MAX_RESIGNS};

/// The next epoch's committee: epoch 5, another hash, another group key.
fn next_group() -> SigningKey {
    SigningKey::from_bytes(&[88; 32])
}

fn next_context() -> (u64, Bytes32, GroupKey) {
    (
        5,
        Bytes32([10; 32]),
        GroupKey(next_group().verifying_key().to_bytes()),
    )
}

/// What a member of the next epoch passes after the switch: the new key in force, the old
/// one as handoff key.
fn switched() -> ReceiptCheck {
    ReceiptCheck {
        group_key: Some(next_context().2),
        handoff_key: context().map(|c| c.2),
        committee: Some(next_context()),
        record: false,
    }
}

#[test]
fn the_plan_resigns_under_a_later_epoch_or_waits_in_a_handoff() {
    let named = context().unwrap();
    let outside = check(false);
    assert_eq!(resign_plan(&named, 0, &outside), Resign::No);
    assert_eq!(
        resign_plan(&named, 0, &switched()),
        Resign::Now(next_context())
    );
    let handoff = ReceiptCheck {
        handoff_key: Some(next_context().2),
        ..check(false)
    };
    assert_eq!(resign_plan(&named, 0, &handoff), Resign::Later);
    // An earlier epoch in force (a member behind) is no reason to sign under it.
    assert_eq!(resign_plan(&next_context(), 0, &handoff), Resign::Later);
    assert_eq!(resign_plan(&next_context(), 0, &outside), Resign::No);
    assert_eq!(resign_plan(&named, MAX_RESIGNS, &switched()), Resign::No);
}

/// Submits and lets a node execute; the signing round's id, message and committee.
fn until_signing(
    s: &mut WorkloadService,
    tx: oneshot::Sender<Result<WorkloadResult, WorkloadError>>,
) -> (u64, Vec<u8>, (u64, Bytes32, GroupKey), ReceiptV1) {
    let (a, a_key) = node();
    let peers = Peers(vec![(a, set(ServiceType::Storage))]);
    s.submit(submission(), Some(false), tx, context(), &peers);
    let (peer, tag) = sent_execute(&s.take_actions());
    let receipt = node_receipt(&a_key, 42, b"out");
    let executed = WorkloadResponse::Executed {
        receipt: Box::new(receipt),
        output: b"out".to_vec().into(),
    };
    s.on_response(peer, tag, Ok(executed));
    match s.take_actions().as_slice() {
        [WorkloadAction::ThresholdSign {
            id,
            message,
            committee,
            ..
        }] => (*id, message.clone(), *committee, receipt),
        other => panic!("expected a signing round, got {other:?}"),
    }
}

#[test]
fn a_round_stopped_by_the_switch_signs_again_under_the_new_epoch() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let (tx, mut rx) = oneshot::channel();
    let (id, _, committee, receipt) = until_signing(&mut s, tx);
    assert_eq!(committee, context().unwrap());
    // The old epoch's service was retired with the round open.
    s.on_internal(
        Internal::Signed(id, Err(ThresholdSignError::Stopped)),
        switched(),
        Instant::now(),
    );
    let (epoch, hash, key) = next_context();
    let expected = committee_signing_bytes(&receipt, epoch, &hash, &key).unwrap();
    let (again, message) = match s.take_actions().as_slice() {
        [WorkloadAction::ThresholdSign {
            id,
            message,
            committee,
            ..
        }] => {
            assert_eq!(*committee, next_context());
            (*id, message.clone())
        }
        other => panic!("expected a second signing round, got {other:?}"),
    };
    assert_eq!((again, &message), (id, &expected));
    assert!(rx.try_recv().is_err(), "not answered yet");
    let signature = GroupSignature {
        signature: next_group().sign(&message).to_bytes(),
        signers: vec![PeerId::random()],
    };
    s.on_internal(
        Internal::Signed(id, Ok(signature)),
        switched(),
        Instant::now(),
    );
    let t = match rx.try_recv() {
        Ok(Ok(r)) => r.receipt.threshold().cloned().expect("a threshold receipt"),
        other => panic!("expected the receipt, got {other:?}"),
    };
    assert_eq!((t.epoch, t.group_key), (epoch, key));
    t.verify(&key).unwrap();
    assert_eq!(metrics.submissions.with_label_values(&["ok"]).get(), 1);
}

#[test]
fn an_aggregate_of_the_new_key_over_the_old_message_is_signed_again() {
    let (mut s, _) = service(WorkloadConfig::default());
    let (tx, mut rx) = oneshot::channel();
    let (id, message, _, _) = until_signing(&mut s, tx);
    // The new service signed the message naming the old key: refused, signed again.
    let wrong = GroupSignature {
        signature: next_group().sign(&message).to_bytes(),
        signers: vec![PeerId::random()],
    };
    s.on_internal(Internal::Signed(id, Ok(wrong)), switched(), Instant::now());
    match s.take_actions().as_slice() {
        [WorkloadAction::ThresholdSign { committee, .. }] => {
            assert_eq!(*committee, next_context())
        }
        other => panic!("expected a second signing round, got {other:?}"),
    }
    assert!(rx.try_recv().is_err(), "not answered yet");
}

#[test]
fn outside_a_handoff_a_failed_round_fails_the_submission() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let (tx, mut rx) = oneshot::channel();
    let (id, _, _, _) = until_signing(&mut s, tx);
    s.on_internal(
        Internal::Signed(id, Err(ThresholdSignError::Stopped)),
        check(false),
        Instant::now(),
    );
    assert!(s.take_actions().is_empty());
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(WorkloadError::Signing(ThresholdSignError::Stopped)))
    ));
    assert_eq!(metrics.submissions.with_label_values(&["signing"]).get(), 1);
}

/// In a handoff, a round refused under the epoch in force (members switching a moment
/// later) is signed again after the delay, under the same committee, and not answered
/// meanwhile.
#[tokio::test]
async fn in_a_handoff_a_failed_round_signs_again_after_a_delay() {
    let (mut s, _) = service(WorkloadConfig::default());
    let (tx, mut rx) = oneshot::channel();
    let (id, message, committee, _) = until_signing(&mut s, tx);
    let handoff = ReceiptCheck {
        handoff_key: Some(next_context().2),
        ..check(false)
    };
    let refused = ThresholdSignError::BelowThreshold {
        have: 1,
        need: 2,
        missing: vec![],
        refused: vec![(PeerId::random(), "busy".into())],
    };
    let t0 = Instant::now();
    s.on_internal(Internal::Signed(id, Err(refused)), handoff, t0);
    assert!(s.take_actions().is_empty(), "not at once");
    assert!(rx.try_recv().is_err(), "not answered");
    let next = tokio::time::timeout(std::time::Duration::from_secs(5), s.next_internal())
        .await
        .expect("the re-sign comes")
        .expect("the service lives");
    assert!(matches!(next, Internal::Resign(i) if i == id), "{next:?}");
    assert!(t0.elapsed() >= crate::workload::service::RESIGN_DELAY);
    s.on_internal(next, handoff, Instant::now());
    match s.take_actions().as_slice() {
        [WorkloadAction::ThresholdSign {
            id: again,
            message: m,
            committee: c,
            ..
        }] => assert_eq!((*again, m, *c), (id, &message, committee)),
        other => panic!("expected the same signing round again, got {other:?}"),
    }
}
