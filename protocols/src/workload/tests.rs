//! Tests of the workload wire types: CBOR round trips and caps, the submission signature,
//! the checks of an `Executed` answer, and the committee message parser.

use ed25519_dalek::SigningKey;
use proptest::prelude::*;

use super::*;
use crate::committee::GroupKey;
use crate::receipt::{
    committee_signing_bytes, CommitteeMessage, ExecutionCommitment, ReceiptDraft, ResourceUsage,
};

fn key(seed: u8) -> SigningKey {
    SigningKey::from_bytes(&[seed; 32])
}

fn receipt_for(request: &ExecuteRequest, output: &[u8], node: &SigningKey) -> ReceiptV1 {
    let commitment = ExecutionCommitment {
        workload_id: request.workload_id,
        input_hash: sha256(&request.input),
        output_hash: sha256(output),
        state_root_before: sha256(b"before"),
        state_root_after: sha256(b"after"),
        trace_root: sha256(b"trace"),
        checkpoints: 1,
        fuel_used: 99,
    };
    let draft = ReceiptDraft {
        submitter: request.submitter,
        nonce: request.nonce,
        commitment,
        usage: ResourceUsage {
            fuel_used: 99,
            memory_peak_bytes: 65_536,
            wall_time_ms: 1,
        },
        executed_at_ms: 1_700_000_000_000,
    };
    ReceiptV1::sign(node, draft).unwrap()
}

fn request() -> ExecuteRequest {
    ExecuteRequest {
        workload_id: workload_id(b"\0asm module"),
        input: ByteBuf::from(b"input".to_vec()),
        submitter: Bytes32(key(9).verifying_key().to_bytes()),
        nonce: 3,
    }
}

#[test]
fn a_signed_submission_verifies_only_on_its_network_and_unchanged() {
    let s =
        WorkloadSubmission::sign(&key(1), "dsdn-test", b"mod".to_vec(), b"in".to_vec(), 5).unwrap();
    s.verify("dsdn-test").unwrap();
    assert_eq!(s.workload_id(), workload_id(b"mod"));
    assert_eq!(s.verify("dsdn-other"), Err(SubmissionError::BadSignature));
    let mut t = s.clone();
    t.nonce = 6;
    assert_eq!(t.verify("dsdn-test"), Err(SubmissionError::BadSignature));
    let mut t = s.clone();
    t.input = ByteBuf::from(b"other".to_vec());
    assert_eq!(t.verify("dsdn-test"), Err(SubmissionError::BadSignature));
    let mut t = s.clone();
    t.submitter = Bytes32(key(2).verifying_key().to_bytes());
    assert_eq!(t.verify("dsdn-test"), Err(SubmissionError::BadSignature));
    let mut t = s;
    t.submitter = Bytes32([0; 32]); // a weak key
    assert_eq!(t.verify("dsdn-test"), Err(SubmissionError::BadKey));
}

#[test]
fn oversized_submissions_are_refused_before_signing_and_decoding() {
    let big = vec![0u8; MAX_MODULE_BYTES + 1];
    assert!(matches!(
        WorkloadSubmission::sign(&key(1), "n", big, vec![], 0),
        Err(SubmissionError::TooLarge { what: "module", .. })
    ));
    let big = vec![0u8; MAX_INPUT_BYTES + 1];
    assert!(matches!(
        WorkloadSubmission::sign(&key(1), "n", vec![], big, 0),
        Err(SubmissionError::TooLarge { what: "input", .. })
    ));
    let junk = vec![0u8; MAX_SUBMISSION_BYTES + 1];
    assert!(matches!(
        WorkloadSubmission::from_bytes(&junk),
        Err(CodecError::TooLarge { .. })
    ));
}

#[test]
fn a_largest_submission_and_module_response_fit_their_caps() {
    let s = WorkloadSubmission::sign(
        &key(1),
        "dsdn-mainnet",
        vec![7; MAX_MODULE_BYTES],
        vec![8; MAX_INPUT_BYTES],
        u64::MAX,
    )
    .unwrap();
    let bytes = s.to_bytes().unwrap();
    assert!(bytes.len() <= MAX_SUBMISSION_BYTES);
    assert_eq!(WorkloadSubmission::from_bytes(&bytes).unwrap(), s);
    let module = WorkloadResponse::Module(ByteBuf::from(vec![1; MAX_MODULE_BYTES]));
    let bytes = codec::encode(&module, MAX_WORKLOAD_RESPONSE_BYTES).unwrap();
    assert_eq!(
        codec::decode::<WorkloadResponse>(&bytes, MAX_WORKLOAD_RESPONSE_BYTES).unwrap(),
        module
    );
    let mut req = request();
    req.input = ByteBuf::from(vec![3; MAX_INPUT_BYTES]);
    req.nonce = u64::MAX;
    let bytes = codec::encode(&WorkloadRequest::Execute(req), MAX_WORKLOAD_REQUEST_BYTES).unwrap();
    assert!(bytes.len() <= MAX_WORKLOAD_REQUEST_BYTES);
    let node = key(4);
    let r = request();
    let output = vec![5; MAX_OUTPUT_BYTES];
    let executed = WorkloadResponse::Executed {
        receipt: Box::new(receipt_for(&r, &output, &node)),
        output: ByteBuf::from(output),
    };
    assert!(codec::encode(&executed, MAX_WORKLOAD_RESPONSE_BYTES).is_ok());
}

#[test]
fn an_executed_answer_must_be_the_asked_nodes_receipt_for_the_asked_job() {
    let node = key(4);
    let node_key = Bytes32(node.verifying_key().to_bytes());
    let r = request();
    let receipt = receipt_for(&r, b"out", &node);
    WorkloadResponse::check_executed(&receipt, b"out", &r, &node_key).unwrap();
    // Another node's key.
    let other = Bytes32(key(5).verifying_key().to_bytes());
    assert!(WorkloadResponse::check_executed(&receipt, b"out", &r, &other).is_err());
    // The output does not hash to the receipt's output hash.
    assert!(WorkloadResponse::check_executed(&receipt, b"lie", &r, &node_key).is_err());
    // Another nonce, input or submitter.
    for change in 0..3 {
        let mut asked = r.clone();
        match change {
            0 => asked.nonce += 1,
            1 => asked.input = ByteBuf::from(b"other".to_vec()),
            _ => asked.submitter = Bytes32(key(6).verifying_key().to_bytes()),
        }
        assert!(WorkloadResponse::check_executed(&receipt, b"out", &asked, &node_key).is_err());
    }
    // A tampered receipt no longer verifies.
    let mut bad = receipt;
    bad.executed_at_ms += 1;
    assert!(WorkloadResponse::check_executed(&bad, b"out", &r, &node_key).is_err());
}

#[test]
fn the_committee_message_parses_back_and_refuses_other_bytes() {
    let r = request();
    let receipt = receipt_for(&r, b"out", &key(4));
    let group = GroupKey([3; 32]);
    let hash = Bytes32([8; 32]);
    let bytes = committee_signing_bytes(&receipt, 2, &hash, &group).unwrap();
    let m = CommitteeMessage::parse(&bytes).unwrap();
    assert_eq!(
        (m.epoch, m.committee_hash, m.group_key, m.receipt),
        (2, hash, group, receipt)
    );
    // A DA blob's signing bytes or any other tuple is not a receipt message.
    let other = codec::encode(&("dsdn/da-blob/v1", 2u64), 1024).unwrap();
    assert!(CommitteeMessage::parse(&other).is_err());
    let mut cut = bytes.clone();
    cut.pop();
    assert!(CommitteeMessage::parse(&cut).is_err());
}

#[test]
fn refusal_texts_are_cut_on_a_char_boundary() {
    let long = "é".repeat(MAX_REFUSAL_TEXT_BYTES);
    let WorkloadRefusal::Failed(text) = WorkloadRefusal::failed(&long) else {
        unreachable!()
    };
    assert!(text.len() <= MAX_REFUSAL_TEXT_BYTES && long.starts_with(&text));
    assert_eq!(WorkloadRefusal::failed("trap").label(), "failed");
}

proptest! {
    #[test]
    fn requests_and_refusals_round_trip(
        input in proptest::collection::vec(any::<u8>(), 0..256),
        nonce in any::<u64>(),
        id in any::<[u8; 32]>(),
        text in ".{0,64}",
    ) {
        let requests = [
            WorkloadRequest::Execute(ExecuteRequest {
                workload_id: Bytes32(id),
                input: ByteBuf::from(input),
                submitter: Bytes32(id),
                nonce,
            }),
            WorkloadRequest::FetchModule { workload_id: Bytes32(id) },
        ];
        for req in requests {
            let bytes = codec::encode(&req, MAX_WORKLOAD_REQUEST_BYTES).unwrap();
            prop_assert_eq!(codec::decode::<WorkloadRequest>(&bytes, MAX_WORKLOAD_REQUEST_BYTES).unwrap(), req);
        }
        let responses = [
            WorkloadResponse::Refused(WorkloadRefusal::failed(&text)),
            WorkloadResponse::Refused(WorkloadRefusal::Malformed(text.clone())),
            WorkloadResponse::Refused(WorkloadRefusal::NotAllowed(text.clone())),
            WorkloadResponse::Refused(WorkloadRefusal::SelfDealing),
            WorkloadResponse::Refused(WorkloadRefusal::Busy),
            WorkloadResponse::Refused(WorkloadRefusal::NotExecuting),
            WorkloadResponse::Refused(WorkloadRefusal::ModuleUnavailable),
        ];
        for resp in responses {
            let bytes = codec::encode(&resp, MAX_WORKLOAD_RESPONSE_BYTES).unwrap();
            prop_assert!(bytes.len() <= 600);
            prop_assert_eq!(codec::decode::<WorkloadResponse>(&bytes, MAX_WORKLOAD_RESPONSE_BYTES).unwrap(), resp);
        }
    }
}
