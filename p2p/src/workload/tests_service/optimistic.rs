//! Optimistic receipts in [`WorkloadService`] (issue 13 §5): the early answer, the upgrade
//! when the committee signs, expiry when it does not, gossip verdicts and the challenge.

use std::time::Duration;

use dsdn_protocols::receipt::{OptimisticReceipt, ReceiptError};

use super::*;
use crate::workload::service::{unix_ms, OptimisticOutcome};
use crate::workload::{ReceiptStatus, ReceiptsConfig};

/// Submits to `s` (optimistic: `choice`), lets the node answer `output` and returns the
/// submission's signing round id, the message to sign, the node receipt and the actions
/// queued with the signing round.
fn run_until_signing(
    s: &mut WorkloadService,
    choice: Option<bool>,
    tx: oneshot::Sender<Result<WorkloadResult, WorkloadError>>,
) -> (u64, Vec<u8>, ReceiptV1, Vec<WorkloadAction>) {
    let (a, a_key) = node();
    let peers = Peers(vec![(a, set(ServiceType::Storage))]);
    s.submit(submission(), choice, tx, context(), &peers);
    let (peer, tag) = sent_execute(&s.take_actions());
    let receipt = node_receipt(&a_key, 42, b"out");
    let executed = WorkloadResponse::Executed {
        receipt: Box::new(receipt),
        output: b"out".to_vec().into(),
    };
    s.on_response(peer, tag, Ok(executed));
    let actions = s.take_actions();
    let (id, message) = match actions.last() {
        Some(WorkloadAction::ThresholdSign { id, message, .. }) => (*id, message.clone()),
        other => panic!("expected a signing round last, got {other:?}"),
    };
    (id, message, receipt, actions)
}

fn optimistic_config(window: Duration) -> WorkloadConfig {
    WorkloadConfig {
        receipts: ReceiptsConfig {
            optimistic: true,
            challenge_window: window,
        },
        ..WorkloadConfig::default()
    }
}

fn gk() -> GroupKey {
    context().unwrap().2
}

#[test]
fn an_optimistic_submission_is_answered_at_once_then_upgraded() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let (tx, mut rx) = oneshot::channel();
    let before = unix_ms();
    let (id, message, receipt, actions) = run_until_signing(&mut s, Some(true), tx);
    // Answered before the committee signed: the coordinator's receipt, gossiped.
    let answer = match rx.try_recv() {
        Ok(Ok(r)) => r,
        other => panic!("expected the optimistic answer, got {other:?}"),
    };
    let HeldReceipt::Optimistic {
        receipt: o,
        challenged: false,
    } = &answer.receipt
    else {
        panic!("not optimistic: {:?}", answer.receipt);
    };
    o.verify(&gk()).unwrap();
    assert_eq!(o.receipt, receipt);
    assert_eq!(answer.output, b"out");
    assert!(o.issued_at_ms >= before);
    assert_eq!(
        o.challenge_deadline_ms - o.issued_at_ms,
        600_000,
        "the default window"
    );
    match actions.as_slice() {
        [WorkloadAction::Gossip(bytes), WorkloadAction::ThresholdSign { .. }] => {
            assert_eq!(OptimisticReceipt::from_bytes(bytes).unwrap(), *o)
        }
        other => panic!("expected gossip then signing, got {other:?}"),
    }
    assert!(matches!(
        s.recent_receipt(&receipt.receipt_id)
            .unwrap()
            .status(o.issued_at_ms),
        ReceiptStatus::Optimistic { .. }
    ));

    // The committee signs: the threshold receipt supersedes it (one entry) and is gossiped.
    let signature = GroupSignature {
        signature: group().sign(&message).to_bytes(),
        signers: vec![PeerId::random()],
    };
    s.on_internal(
        Internal::Signed(id, Ok(signature)),
        check(false),
        Instant::now(),
    );
    let actions = s.take_actions();
    assert!(
        matches!(actions.as_slice(), [WorkloadAction::Gossip(_)]),
        "{actions:?}"
    );
    let held = s.recent_receipt(&receipt.receipt_id).unwrap();
    assert_eq!(held.status(u64::MAX), ReceiptStatus::Threshold);
    assert_eq!(s.recent_receipts().count(), 1, "superseded, not duplicated");
    assert_eq!(metrics.receipts.with_label_values(&["optimistic"]).get(), 1);
    assert_eq!(metrics.receipts.with_label_values(&["upgraded"]).get(), 1);
    assert_eq!(metrics.submissions.with_label_values(&["ok"]).get(), 1);
}

#[test]
fn without_the_committee_signature_it_expires_at_its_deadline() {
    // Optimistic by the node's default; the submitter did not choose.
    let (mut s, metrics) = service(optimistic_config(Duration::from_secs(5)));
    let (tx, mut rx) = oneshot::channel();
    let (id, _, receipt, _) = run_until_signing(&mut s, None, tx);
    let Ok(Ok(WorkloadResult {
        receipt: HeldReceipt::Optimistic { receipt: o, .. },
        ..
    })) = rx.try_recv()
    else {
        panic!("no optimistic answer");
    };
    let deadline_ms = o.issued_at_ms + 5_000;
    assert_eq!(o.challenge_deadline_ms, deadline_ms);
    s.on_internal(
        Internal::Signed(id, Err(crate::committee::ThresholdSignError::Stopped)),
        check(false),
        Instant::now(),
    );
    let held = s.recent_receipt(&receipt.receipt_id).unwrap();
    assert_eq!(
        held.status(deadline_ms - 1),
        ReceiptStatus::Optimistic { deadline_ms }
    );
    assert_eq!(
        held.status(deadline_ms),
        ReceiptStatus::Expired { deadline_ms }
    );
    assert_eq!(metrics.submissions.with_label_values(&["signing"]).get(), 1);

    // A submitter may still ask for the threshold receipt: then nothing is answered early.
    let (tx, mut rx) = oneshot::channel();
    let (_, _, _, actions) = run_until_signing(&mut s, Some(false), tx);
    assert!(matches!(
        actions.as_slice(),
        [WorkloadAction::ThresholdSign { .. }]
    ));
    assert!(rx.try_recv().is_err());
}

#[test]
fn optimistic_gossip_verdicts_and_the_challenge() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let source = PeerId::random();
    let id = MessageId(b"m".to_vec());
    let coordinator = SigningKey::from_bytes(&[11; 32]);
    let node_key = SigningKey::from_bytes(&[7; 32]);
    let sign = |r: ReceiptV1, window_ms: u64| {
        OptimisticReceipt::sign(&coordinator, r, context().unwrap(), unix_ms(), window_ms).unwrap()
    };
    let gossip = |s: &mut WorkloadService, bytes: &[u8]| {
        s.on_receipt_gossip(source, id.clone(), bytes, check(false));
        verdict(&s.take_actions(), &id, source)
    };
    // Valid: kept and forwarded; again: ignored.
    let o = sign(node_receipt(&node_key, 1, b"out"), 60_000);
    let bytes = o.to_bytes().unwrap();
    assert_eq!(gossip(&mut s, &bytes), MessageAcceptance::Accept);
    assert_eq!(gossip(&mut s, &bytes), MessageAcceptance::Ignore);
    // A forged coordinator signature: rejected.
    let mut forged = sign(node_receipt(&node_key, 2, b"out"), 60_000);
    forged.coordinator_signature.0[0] ^= 1;
    assert_eq!(
        gossip(&mut s, &forged.to_bytes().unwrap()),
        MessageAcceptance::Reject
    );
    assert_eq!(
        s.accept_optimistic(&forged, None, check(false), unix_ms()),
        Err(ReceiptError::BadCoordinatorSignature)
    );
    // Its window over on arrival: not kept.
    let late = sign(node_receipt(&node_key, 3, b"out"), 1);
    assert_eq!(
        s.accept_optimistic(&late, None, check(false), late.challenge_deadline_ms),
        Ok(OptimisticOutcome::Ignored)
    );

    // The committee signs another output for the job of `o`: the challenge succeeds.
    let lie = threshold(node_receipt(&node_key, 1, b"another output"));
    assert_eq!(
        gossip(&mut s, &lie.to_bytes().unwrap()),
        MessageAcceptance::Accept
    );
    let conflicts = s.optimistic_conflicts();
    assert_eq!(conflicts.len(), 1);
    assert_eq!(
        (&conflicts[0].optimistic, &conflicts[0].threshold),
        (&o, &lie)
    );
    conflicts[0].verify(&gk()).unwrap();
    // The damaged signature above (an invalid signature, §6) and this conflict.
    assert_eq!(metrics.disputes.get(), 2);
    assert_eq!(
        s.recent_receipt(&lie.receipt_id()),
        Some(HeldReceipt::Threshold(lie.clone()))
    );

    // Gossip keeps no order: a threshold receipt first, then its optimistic receipt
    // (superseded, ignored), or a contradicted one (the same challenge, found the other way).
    let t = threshold(node_receipt(&node_key, 4, b"out"));
    assert_eq!(
        gossip(&mut s, &t.to_bytes().unwrap()),
        MessageAcceptance::Accept
    );
    let stale = sign(t.receipt, 60_000);
    assert_eq!(
        gossip(&mut s, &stale.to_bytes().unwrap()),
        MessageAcceptance::Ignore
    );
    assert_eq!(
        s.recent_receipt(&t.receipt_id()),
        Some(HeldReceipt::Threshold(t))
    );
    let contradicted = sign(node_receipt(&node_key, 4, b"a third output"), 60_000);
    assert_eq!(
        gossip(&mut s, &contradicted.to_bytes().unwrap()),
        MessageAcceptance::Accept
    );
    assert_eq!(s.optimistic_conflicts().len(), 2);
    assert_eq!(metrics.disputes.get(), 3);
}

/// Issue 13 §6: on a committee member, an optimistic receipt signed by a non-member is
/// refused and kept as `UnauthorizedSigner` evidence; a damaged signature and a threshold
/// receipt under another group key are evidence on any node.
#[test]
fn unauthorized_signers_and_invalid_signatures_are_kept_as_evidence() {
    use dsdn_protocols::committee::CommitteeConfig;
    use dsdn_protocols::receipt::committee_hash;
    use dsdn_protocols::receipt::dispute::SignedReceipt;

    let member = SigningKey::from_bytes(&[11; 32]);
    let outsider = SigningKey::from_bytes(&[12; 32]);
    let member_id_of = |k: &SigningKey| {
        let peer = crate::workload::peer_of_key(&Bytes32(k.verifying_key().to_bytes())).unwrap();
        member_id(&peer).unwrap()
    };
    let committee = CommitteeConfig {
        epoch: 4,
        threshold: 2,
        members: vec![member_id_of(&member), member_id(&PeerId::random()).unwrap()],
    };
    let hash = committee_hash(&committee).unwrap();
    let (s, metrics) = service(WorkloadConfig::default());
    let mut s = s.with_committee(Some(committee));
    let source = PeerId::random();
    let id = MessageId(b"m".to_vec());
    let sign = |k: &SigningKey, nonce: u64| {
        OptimisticReceipt::sign(
            k,
            node_receipt(&SigningKey::from_bytes(&[7; 32]), nonce, b"out"),
            (4, hash, gk()),
            unix_ms(),
            60_000,
        )
        .unwrap()
    };
    let gossip = |s: &mut WorkloadService, bytes: &[u8]| {
        s.on_receipt_gossip(source, id.clone(), bytes, check(false));
        verdict(&s.take_actions(), &id, source)
    };
    // A member's optimistic receipt is kept; a non-member's refused.
    let by_member = sign(&member, 1);
    assert_eq!(
        gossip(&mut s, &by_member.to_bytes().unwrap()),
        MessageAcceptance::Accept
    );
    let by_outsider = sign(&outsider, 2);
    assert_eq!(
        gossip(&mut s, &by_outsider.to_bytes().unwrap()),
        MessageAcceptance::Reject
    );
    assert_eq!(s.recent_receipt(&by_outsider.receipt_id()), None);
    // A damaged coordinator signature and a damaged group signature.
    let mut damaged = sign(&member, 3);
    damaged.coordinator_signature.0[1] ^= 1;
    assert_eq!(
        gossip(&mut s, &damaged.to_bytes().unwrap()),
        MessageAcceptance::Reject
    );
    let mut forged = threshold(node_receipt(&SigningKey::from_bytes(&[7; 32]), 4, b"out"));
    forged.aggregate_signature.0[0] ^= 1;
    assert_eq!(
        gossip(&mut s, &forged.to_bytes().unwrap()),
        MessageAcceptance::Reject
    );
    // A threshold receipt signed under another group key.
    let mut foreign = threshold(node_receipt(&SigningKey::from_bytes(&[7; 32]), 5, b"out"));
    let other_group = SigningKey::from_bytes(&[60; 32]);
    foreign.group_key = GroupKey(other_group.verifying_key().to_bytes());
    foreign.aggregate_signature = Bytes64(
        other_group
            .sign(&foreign.signing_bytes().unwrap())
            .to_bytes(),
    );
    assert_eq!(
        gossip(&mut s, &foreign.to_bytes().unwrap()),
        MessageAcceptance::Reject
    );
    // The same again adds nothing.
    assert_eq!(
        gossip(&mut s, &by_outsider.to_bytes().unwrap()),
        MessageAcceptance::Reject
    );

    let (unauthorized, invalid) = s.signer_disputes();
    assert_eq!(unauthorized.len(), 2);
    assert_eq!(
        unauthorized[0].receipt,
        SignedReceipt::Optimistic(by_outsider)
    );
    assert_eq!(
        unauthorized[0].verify().unwrap().0,
        outsider.verifying_key().to_bytes()
    );
    assert_eq!(
        unauthorized[1].receipt,
        SignedReceipt::Threshold(foreign.clone())
    );
    assert_eq!(unauthorized[1].verify().unwrap().0, foreign.group_key.0);
    assert_eq!(invalid.len(), 2);
    for e in &invalid {
        e.verify().unwrap();
    }
    assert_eq!(invalid[0].receipt, SignedReceipt::Optimistic(damaged));
    assert_eq!(invalid[1].receipt, SignedReceipt::Threshold(forged));
    assert_eq!(metrics.disputes.get(), 4);
}
