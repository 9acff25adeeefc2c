//! Unit tests of [`WorkloadService`] without a swarm: the actions it queues for
//! submissions, inbound requests and receipts gossip.

use std::time::Instant;

use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::da::Bytes64;
use dsdn_protocols::receipt::{
    committee_signing_bytes, sha256, ExecutionCommitment, GossipReceipt, ReceiptDraft, ReceiptV1,
    ResourceUsage, ThresholdReceipt,
};
use dsdn_protocols::workload::{
    WorkloadRefusal, WorkloadRequest, WorkloadResponse, WorkloadSubmission,
};
use dsdn_protocols::{ServiceSet, ServiceType};
use ed25519_dalek::{Signer as _, SigningKey};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use prometheus::Registry;
use tokio::sync::oneshot;

use super::*;
use crate::committee::{member_id, GroupSignature};
use crate::net::rpc::Reply;
use crate::net::PeerView;

const NET: &str = "devnet";
const MODULE: &[u8] = b"\0asm a module";
const INPUT: &[u8] = b"some input";

/// Connected peers and their services.
struct Peers(Vec<(PeerId, ServiceSet)>);

impl PeerView for Peers {
    fn services_of(&self, peer: &PeerId) -> Option<ServiceSet> {
        self.0.iter().find(|(p, _)| p == peer).map(|(_, s)| *s)
    }

    fn connected_services(&self) -> Vec<(PeerId, ServiceSet)> {
        self.0.clone()
    }
}

fn set(t: ServiceType) -> ServiceSet {
    let mut s = ServiceSet::EMPTY;
    s.insert(t);
    s
}

/// A node's PeerId and its Ed25519 signing key.
fn node() -> (PeerId, SigningKey) {
    let k = Keypair::generate_ed25519();
    (
        k.public().to_peer_id(),
        crate::node::signing_key(&k).unwrap(),
    )
}

struct Echo;

impl Executor for Echo {
    fn execute(&self, _module: &[u8], input: &[u8]) -> Result<ExecOutput, String> {
        Err(format!("not run in these tests ({} bytes)", input.len()))
    }
}

fn service(cfg: WorkloadConfig) -> (WorkloadService, WorkloadMetrics) {
    let metrics = WorkloadMetrics::new(&Registry::new()).unwrap();
    let (me, key) = node();
    let s = WorkloadService::new(cfg, metrics.clone(), key, me, NET.into());
    (s, metrics)
}

fn submission() -> WorkloadSubmission {
    let submitter = SigningKey::from_bytes(&[3; 32]);
    WorkloadSubmission::sign(&submitter, NET, MODULE.to_vec(), INPUT.to_vec(), 42).unwrap()
}

/// The group key stand-in (a plain Ed25519 key signs as the committee would).
fn group() -> SigningKey {
    SigningKey::from_bytes(&[8; 32])
}

fn context() -> Option<(u64, Bytes32, GroupKey)> {
    Some((
        4,
        Bytes32([9; 32]),
        GroupKey(group().verifying_key().to_bytes()),
    ))
}

fn check(record: bool) -> ReceiptCheck {
    ReceiptCheck {
        group_key: Some(GroupKey(group().verifying_key().to_bytes())),
        handoff_key: None,
        committee: context(),
        record,
    }
}

/// The `Execute` sent: its peer and tag.
fn sent_execute(actions: &[WorkloadAction]) -> (PeerId, WorkloadTag) {
    match actions {
        [WorkloadAction::Send(peer, WorkloadRequest::Execute(r), tag)] => {
            assert_eq!((r.input.as_ref(), r.nonce), (INPUT, 42));
            assert_eq!(*tag, WorkloadTag::Execute(tag_id(tag), *peer));
            (*peer, *tag)
        }
        other => panic!("expected one Execute, got {other:?}"),
    }
}

fn tag_id(tag: &WorkloadTag) -> u64 {
    match tag {
        WorkloadTag::Execute(id, _) | WorkloadTag::Fetch(id) => *id,
    }
}

/// The response queued for `reply`.
fn responded(actions: &[WorkloadAction], reply: Reply) -> &WorkloadResponse {
    match actions {
        [WorkloadAction::Respond(r, response)] if *r == reply => response,
        other => panic!("expected one response to {reply:?}, got {other:?}"),
    }
}

#[test]
fn a_submission_moves_to_the_next_node_and_fails_with_the_nodes_tried() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let (a, b) = (PeerId::random(), PeerId::random());
    let peers = Peers(vec![
        (a, set(ServiceType::Storage)),
        (b, set(ServiceType::StorageDc)),
        (PeerId::random(), set(ServiceType::Coordinator)),
    ]);
    let (tx, mut rx) = oneshot::channel();
    s.submit(submission(), None, tx, context(), &peers);
    let (first, tag) = sent_execute(&s.take_actions());
    s.on_response(
        first,
        tag,
        Ok(WorkloadResponse::Refused(WorkloadRefusal::Busy)),
    );
    let (second, tag) = sent_execute(&s.take_actions());
    assert_ne!(first, second);
    assert!([a, b].contains(&first) && [a, b].contains(&second));
    s.on_response(second, tag, Err("timed out".into()));
    assert!(s.take_actions().is_empty(), "no node is left to try");
    match rx.try_recv() {
        Ok(Err(WorkloadError::Failed(tried))) => assert_eq!(
            tried,
            vec![
                (first, WorkloadRefusal::Busy.to_string()),
                (second, "timed out".to_owned()),
            ]
        ),
        other => panic!("expected Failed, got {other:?}"),
    }
    assert_eq!(metrics.submissions.with_label_values(&["failed"]).get(), 1);
}

#[test]
fn submissions_without_committee_or_storage_node_fail_at_once() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let peers = Peers(vec![(PeerId::random(), set(ServiceType::Coordinator))]);
    let (tx, mut rx) = oneshot::channel();
    s.submit(submission(), None, tx, None, &peers);
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(WorkloadError::NotCommittee))
    ));
    let (tx, mut rx) = oneshot::channel();
    s.submit(submission(), None, tx, context(), &peers);
    assert!(matches!(rx.try_recv(), Ok(Err(WorkloadError::NoExecutor))));
    let mut bad = submission();
    bad.nonce += 1;
    let (tx, mut rx) = oneshot::channel();
    s.submit(bad, None, tx, context(), &peers);
    assert!(matches!(rx.try_recv(), Ok(Err(WorkloadError::Invalid(_)))));
    assert!(s.take_actions().is_empty());
    for label in ["not_committee", "no_executor", "invalid"] {
        assert_eq!(metrics.submissions.with_label_values(&[label]).get(), 1);
    }
}

#[test]
fn execute_is_taken_from_coordinators_only() {
    let cfg = WorkloadConfig {
        executor: Some(std::sync::Arc::new(Echo)),
        ..WorkloadConfig::default()
    };
    let (mut s, metrics) = service(cfg);
    let (coordinator, storage) = (PeerId::random(), PeerId::random());
    let peers = Peers(vec![
        (coordinator, set(ServiceType::Coordinator)),
        (storage, set(ServiceType::Storage)),
    ]);
    let request = dsdn_protocols::workload::ExecuteRequest {
        workload_id: workload_id(MODULE),
        input: INPUT.to_vec().into(),
        submitter: Bytes32(SigningKey::from_bytes(&[3; 32]).verifying_key().to_bytes()),
        nonce: 1,
    };
    let now = Instant::now();
    for (n, peer) in [storage, PeerId::random()].into_iter().enumerate() {
        let reply = Reply::for_test(n as u64);
        s.on_request(
            peer,
            WorkloadRequest::Execute(request.clone()),
            reply,
            &peers,
            now,
        );
        assert!(matches!(
            responded(&s.take_actions(), reply),
            WorkloadResponse::Refused(WorkloadRefusal::NotAllowed(_))
        ));
    }
    assert_eq!(
        metrics
            .executions
            .with_label_values(&[WorkloadRefusal::NotAllowed(String::new()).label()])
            .get(),
        2
    );
    // A coordinator's is taken: the module is unknown, so it is fetched from it.
    s.on_request(
        coordinator,
        WorkloadRequest::Execute(request),
        Reply::for_test(9),
        &peers,
        now,
    );
    match s.take_actions().as_slice() {
        [WorkloadAction::Send(
            p,
            WorkloadRequest::FetchModule { workload_id: w },
            WorkloadTag::Fetch(_),
        )] => {
            assert_eq!((*p, *w), (coordinator, workload_id(MODULE)));
        }
        other => panic!("expected a FetchModule, got {other:?}"),
    }
}

#[test]
fn a_module_is_served_only_to_the_node_asked_to_run_it() {
    let (mut s, _) = service(WorkloadConfig::default());
    let (a, b) = (PeerId::random(), PeerId::random());
    let peers = Peers(vec![
        (a, set(ServiceType::Storage)),
        (b, set(ServiceType::Storage)),
    ]);
    let (tx, _rx) = oneshot::channel();
    s.submit(submission(), None, tx, context(), &peers);
    let (asked, tag) = sent_execute(&s.take_actions());
    let other = if asked == a { b } else { a };
    let fetch = || WorkloadRequest::FetchModule {
        workload_id: workload_id(MODULE),
    };
    let now = Instant::now();
    s.on_request(other, fetch(), Reply::for_test(1), &peers, now);
    assert!(matches!(
        responded(&s.take_actions(), Reply::for_test(1)),
        WorkloadResponse::Refused(WorkloadRefusal::NotAllowed(_))
    ));
    s.on_request(asked, fetch(), Reply::for_test(2), &peers, now);
    match responded(&s.take_actions(), Reply::for_test(2)) {
        WorkloadResponse::Module(m) => assert_eq!(m.as_ref(), MODULE),
        other => panic!("expected the module, got {other:?}"),
    }
    // A module nobody holds.
    let unknown = WorkloadRequest::FetchModule {
        workload_id: Bytes32([5; 32]),
    };
    s.on_request(asked, unknown, Reply::for_test(3), &peers, now);
    assert!(matches!(
        responded(&s.take_actions(), Reply::for_test(3)),
        WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable)
    ));
    // Once it answered, it may no longer fetch it.
    s.on_response(asked, tag, Err("timed out".into()));
    let (next, _) = sent_execute(&s.take_actions());
    assert_eq!(next, other);
    s.on_request(asked, fetch(), Reply::for_test(4), &peers, now);
    assert!(matches!(
        responded(&s.take_actions(), Reply::for_test(4)),
        WorkloadResponse::Refused(WorkloadRefusal::NotAllowed(_))
    ));
}

/// A node receipt of the submission's job, executed by `key`, with output `output`.
fn node_receipt(key: &SigningKey, nonce: u64, output: &[u8]) -> ReceiptV1 {
    let submitter = SigningKey::from_bytes(&[3; 32]);
    ReceiptV1::sign(
        key,
        ReceiptDraft {
            submitter: Bytes32(submitter.verifying_key().to_bytes()),
            nonce,
            commitment: ExecutionCommitment {
                workload_id: workload_id(MODULE),
                input_hash: sha256(INPUT),
                output_hash: sha256(output),
                state_root_before: Bytes32([4; 32]),
                state_root_after: Bytes32([5; 32]),
                trace_root: Bytes32([6; 32]),
                checkpoints: 1,
                fuel_used: 10,
            },
            usage: ResourceUsage {
                fuel_used: 10,
                memory_peak_bytes: 0,
                wall_time_ms: 0,
            },
            executed_at_ms: 0,
        },
    )
    .unwrap()
}

/// `receipt` signed by the [`group`] key.
fn threshold(receipt: ReceiptV1) -> ThresholdReceipt {
    let (epoch, committee_hash, group_key) = context().unwrap();
    let mut t = ThresholdReceipt {
        receipt,
        epoch,
        committee_hash,
        group_key,
        signers: vec![member_id(&PeerId::random()).unwrap()],
        aggregate_signature: Bytes64([0; 64]),
    };
    t.aggregate_signature = Bytes64(group().sign(&t.signing_bytes().unwrap()).to_bytes());
    t
}

/// The one verdict queued, after any other actions.
fn verdict(actions: &[WorkloadAction], id: &MessageId, source: PeerId) -> MessageAcceptance {
    match actions.last() {
        Some(WorkloadAction::Verdict(i, p, v)) if i == id && *p == source => *v,
        other => panic!("expected a verdict, got {other:?}"),
    }
}

#[test]
fn receipt_gossip_verdicts() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let source = PeerId::random();
    let id = MessageId(b"m".to_vec());
    let good = threshold(node_receipt(&SigningKey::from_bytes(&[7; 32]), 1, b"out"));
    let bytes = good.to_bytes().unwrap();
    s.on_receipt_gossip(source, id.clone(), &bytes, check(true));
    let actions = s.take_actions();
    assert_eq!(verdict(&actions, &id, source), MessageAcceptance::Accept);
    assert!(
        matches!(&actions[..], [WorkloadAction::RecordReceipt(r), _] if **r == good),
        "the DA proposer records it: {actions:?}"
    );
    assert_eq!(
        s.recent_receipt(&good.receipt_id()),
        Some(HeldReceipt::Threshold(good.clone()))
    );
    // The same again: ignored, not recorded twice.
    s.on_receipt_gossip(source, id.clone(), &bytes, check(true));
    let actions = s.take_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(verdict(&actions, &id, source), MessageAcceptance::Ignore);
    // A forgery of the known job: rejected, not ignored as a duplicate.
    let mut forged = good.clone();
    forged.aggregate_signature.0[0] ^= 1;
    s.on_receipt_gossip(source, id.clone(), &forged.to_bytes().unwrap(), check(true));
    let actions = s.take_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(verdict(&actions, &id, source), MessageAcceptance::Reject);
    // Not a receipt at all.
    s.on_receipt_gossip(source, id.clone(), b"junk", check(true));
    assert_eq!(
        verdict(&s.take_actions(), &id, source),
        MessageAcceptance::Reject
    );
    // Without a group key nothing can be judged: ignored.
    let other = threshold(node_receipt(&SigningKey::from_bytes(&[7; 32]), 2, b"out"));
    let unknown = ReceiptCheck {
        group_key: None,
        handoff_key: None,
        committee: None,
        record: true,
    };
    s.on_receipt_gossip(source, id.clone(), &other.to_bytes().unwrap(), unknown);
    let actions = s.take_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(verdict(&actions, &id, source), MessageAcceptance::Ignore);
    // A node that does not seal DA blobs accepts it without recording it.
    s.on_receipt_gossip(source, id.clone(), &other.to_bytes().unwrap(), check(false));
    let actions = s.take_actions();
    assert_eq!(actions.len(), 1);
    assert_eq!(verdict(&actions, &id, source), MessageAcceptance::Accept);
    for (label, n) in [
        ("accepted", 2),
        ("duplicate", 1),
        ("invalid", 2),
        ("unverifiable", 1),
    ] {
        assert_eq!(
            metrics.receipts.with_label_values(&[label]).get(),
            n,
            "{label}"
        );
    }
}

#[test]
fn a_published_receipt_is_gossiped_once() {
    let (mut s, _) = service(WorkloadConfig::default());
    let good = threshold(node_receipt(&SigningKey::from_bytes(&[7; 32]), 1, b"out"));
    s.publish_receipt(GossipReceipt::Threshold(good.clone()), check(false))
        .unwrap();
    match s.take_actions().as_slice() {
        [WorkloadAction::Gossip(bytes)] => assert_eq!(*bytes, good.to_bytes().unwrap()),
        other => panic!("expected a gossip, got {other:?}"),
    }
    assert!(matches!(
        s.publish_receipt(GossipReceipt::Threshold(good), check(false)),
        Err(dsdn_protocols::receipt::ReceiptError::Duplicate(_))
    ));
    assert!(s.take_actions().is_empty());
}

#[test]
fn an_executed_receipt_is_checked_signed_by_the_committee_and_gossiped() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let (a, a_key) = node();
    let (b, b_key) = node();
    let peers = Peers(vec![
        (a, set(ServiceType::Storage)),
        (b, set(ServiceType::Storage)),
    ]);
    let keys = |p: PeerId| if p == a { a_key.clone() } else { b_key.clone() };
    let (tx, mut rx) = oneshot::channel();
    s.submit(submission(), None, tx, context(), &peers);
    let (first, tag) = sent_execute(&s.take_actions());
    // The first node answers a receipt signed by another key: penalized, next node.
    let wrong = node_receipt(&SigningKey::from_bytes(&[7; 32]), 42, b"out");
    let executed = |r: ReceiptV1| WorkloadResponse::Executed {
        receipt: Box::new(r),
        output: b"out".to_vec().into(),
    };
    s.on_response(first, tag, Ok(executed(wrong)));
    let actions = s.take_actions();
    assert!(
        matches!(&actions[0], WorkloadAction::Penalize(p, "bad_receipt") if *p == first),
        "{actions:?}"
    );
    let (second, tag) = sent_execute(&actions[1..]);
    // The second answers a good one: the committee is asked to sign it.
    let receipt = node_receipt(&keys(second), 42, b"out");
    s.on_response(second, tag, Ok(executed(receipt)));
    let (epoch, hash, gk) = context().unwrap();
    let expected = committee_signing_bytes(&receipt, epoch, &hash, &gk).unwrap();
    let id = match s.take_actions().as_slice() {
        [WorkloadAction::ThresholdSign {
            id, slot, message, ..
        }] => {
            assert_eq!((*slot, message), (receipt.slot(), &expected));
            *id
        }
        other => panic!("expected a signing round, got {other:?}"),
    };
    let signature = GroupSignature {
        signature: group().sign(&expected).to_bytes(),
        signers: vec![PeerId::random()],
    };
    s.on_internal(
        Internal::Signed(id, Ok(signature)),
        check(true),
        Instant::now(),
    );
    let actions = s.take_actions();
    let result = match rx.try_recv() {
        Ok(Ok(r)) => r,
        other => panic!("expected a receipt, got {other:?}"),
    };
    assert_eq!(
        (result.node, result.output.as_slice()),
        (second, &b"out"[..])
    );
    assert_eq!(*result.receipt.receipt(), receipt);
    let signed = result.receipt.threshold().expect("a threshold receipt");
    match actions.as_slice() {
        [WorkloadAction::RecordReceipt(r), WorkloadAction::Gossip(bytes)] => {
            assert_eq!(**r, *signed);
            assert_eq!(*bytes, signed.to_bytes().unwrap());
        }
        other => panic!("expected record and gossip, got {other:?}"),
    }
    assert_eq!(metrics.submissions.with_label_values(&["ok"]).get(), 1);
}

/// Issue 13 §6: two validly signed receipts of one job (two nodes ran the same
/// submission) are a double receipt, kept as verifiable evidence; both stay accepted.
#[test]
fn two_receipts_of_one_job_are_a_double_receipt() {
    let (mut s, metrics) = service(WorkloadConfig::default());
    let source = PeerId::random();
    let id = MessageId(b"m".to_vec());
    let a = threshold(node_receipt(&SigningKey::from_bytes(&[7; 32]), 1, b"out"));
    let b = threshold(node_receipt(&SigningKey::from_bytes(&[8; 32]), 1, b"other"));
    let unrelated = threshold(node_receipt(&SigningKey::from_bytes(&[8; 32]), 2, b"out"));
    for r in [&a, &unrelated, &b] {
        s.on_receipt_gossip(source, id.clone(), &r.to_bytes().unwrap(), check(false));
        assert_eq!(
            verdict(&s.take_actions(), &id, source),
            MessageAcceptance::Accept
        );
    }
    let found = s.double_receipts();
    assert_eq!(found.len(), 1);
    assert_eq!((&found[0].receipt_a, &found[0].receipt_b), (&a, &b));
    found[0].verify(&context().unwrap().2).unwrap();
    assert_eq!(metrics.disputes.get(), 1);
    // The same second receipt again is a duplicate, not a second dispute.
    s.on_receipt_gossip(source, id.clone(), &b.to_bytes().unwrap(), check(false));
    assert_eq!(s.double_receipts().len(), 1);
}

mod optimistic;
mod resign;

/// Issue 13 §3: around a rotation a receipt of the other epoch's key (the handoff key) is
/// accepted; outside the handoff the same receipt is refused.
#[test]
fn a_receipt_of_the_handoff_key_is_accepted_only_in_the_handoff() {
    let (mut s, _metrics) = service(WorkloadConfig::default());
    let old = SigningKey::from_bytes(&[77; 32]);
    let old_key = GroupKey(old.verifying_key().to_bytes());
    let mut t = threshold(node_receipt(
        &SigningKey::from_bytes(&[8; 32]),
        9,
        b"handoff",
    ));
    t.group_key = old_key;
    t.aggregate_signature = Bytes64(old.sign(&t.signing_bytes().unwrap()).to_bytes());
    let source = PeerId::random();
    let id = MessageId::new(b"handoff");
    s.on_receipt_gossip(source, id.clone(), &t.to_bytes().unwrap(), check(false));
    assert_eq!(
        verdict(&s.take_actions(), &id, source),
        MessageAcceptance::Reject
    );
    let handoff = ReceiptCheck {
        handoff_key: Some(old_key),
        ..check(false)
    };
    let id2 = MessageId::new(b"handoff-2");
    s.on_receipt_gossip(source, id2.clone(), &t.to_bytes().unwrap(), handoff);
    assert_eq!(
        verdict(&s.take_actions(), &id2, source),
        MessageAcceptance::Accept
    );
    // The handoff key does not replace the current one.
    let current = threshold(node_receipt(&SigningKey::from_bytes(&[8; 32]), 10, b"now"));
    let id3 = MessageId::new(b"handoff-3");
    s.on_receipt_gossip(source, id3.clone(), &current.to_bytes().unwrap(), handoff);
    assert_eq!(
        verdict(&s.take_actions(), &id3, source),
        MessageAcceptance::Accept
    );
}
