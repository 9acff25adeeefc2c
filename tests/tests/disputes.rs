//! Issue 13 §6 with real daemons: two receipts of one job, both signed with the network's
//! group key (here the single coordinator's key, the DA authority), handed to a storage
//! node: every node that sees both (the second arrives by gossip too) serves the double
//! receipt through `GET /v1/disputes`, and the evidence verifies against the group key
//! alone. Both receipts stay accepted.

use dsdn_integration_tests::{eventually, metric, TestNet, WAIT};
use dsdn_protocols::committee::{GroupKey, MemberId};
use dsdn_protocols::da::{Bytes32, Bytes64};
use dsdn_protocols::receipt::dispute::DoubleReceipt;
use dsdn_protocols::receipt::{
    ExecutionCommitment, ReceiptDraft, ReceiptV1, ResourceUsage, ThresholdReceipt,
};
use ed25519_dalek::{Signer, SigningKey};

/// One execution of the job (workload 7, input 8, submitter 9, nonce 1) by `node`, with
/// `output`, signed by `group`.
fn receipt(group: &SigningKey, node: u8, output: u8) -> ThresholdReceipt {
    let draft = ReceiptDraft {
        submitter: Bytes32([9; 32]),
        nonce: 1,
        commitment: ExecutionCommitment {
            workload_id: Bytes32([7; 32]),
            input_hash: Bytes32([8; 32]),
            output_hash: Bytes32([output; 32]),
            state_root_before: Bytes32([1; 32]),
            state_root_after: Bytes32([2; 32]),
            trace_root: Bytes32([3; 32]),
            checkpoints: 1,
            fuel_used: 10,
        },
        usage: ResourceUsage {
            fuel_used: 10,
            memory_peak_bytes: 0,
            wall_time_ms: 1,
        },
        executed_at_ms: 1_700_000_000_000,
    };
    let r = ReceiptV1::sign(&SigningKey::from_bytes(&[node; 32]), draft).expect("receipt");
    let mut t = ThresholdReceipt {
        receipt: r,
        epoch: 0,
        committee_hash: Bytes32([0; 32]),
        group_key: GroupKey(group.verifying_key().to_bytes()),
        signers: vec![MemberId::new(vec![1u8]).expect("member")],
        aggregate_signature: Bytes64([0; 64]),
    };
    t.aggregate_signature = Bytes64(group.sign(&t.signing_bytes().expect("bytes")).to_bytes());
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_double_receipt_is_served_as_verifiable_evidence() -> anyhow::Result<()> {
    let mut net = TestNet::new("disputes").await?;
    let cfg = net.da_config("coordinator", 40)?;
    net.start_da_net(40, 2, &cfg).await?;
    let secret = std::fs::read_to_string(net.data_dir("coordinator").join("node.key"))?;
    let secret: [u8; 32] = hex::decode(secret.trim())?
        .try_into()
        .map_err(|_| anyhow::anyhow!("node.key is not 32 bytes"))?;
    let group = SigningKey::from_bytes(&secret);
    let (a, b) = (receipt(&group, 21, 1), receipt(&group, 22, 2));
    assert_ne!(a.receipt_id(), b.receipt_id());

    let s1 = net.node("storage-1").client();
    s1.publish_receipt(&a).await?;
    s1.publish_receipt(&b).await?;
    let gk = GroupKey(group.verifying_key().to_bytes());
    for name in ["storage-1", "storage-2", "coordinator"] {
        let node = net.node(name);
        let d = eventually(
            WAIT,
            &format!("{name} serves the double receipt"),
            || async {
                let d = node.client().disputes().await.ok()?;
                (!d.double_receipts.is_empty()).then_some(d)
            },
        )
        .await?;
        assert_eq!(d.double_receipts.len(), 1, "{name}: {d:?}");
        let v = &d.double_receipts[0];
        let ids = [
            v.receipt_a.receipt_id.clone(),
            v.receipt_b.receipt_id.clone(),
        ];
        for r in [&a, &b] {
            assert!(
                ids.contains(&hex::encode(r.receipt_id().0)),
                "{name}: {ids:?}"
            );
        }
        let dispute = DoubleReceipt::from_bytes(&hex::decode(&v.dispute_cbor)?)?;
        dispute
            .verify(&gk)
            .map_err(|e| anyhow::anyhow!("{name}'s dispute does not verify: {e}"))?;
        assert!(
            metric(node, "receipt_disputes_total", &[]).await >= 1.0,
            "{name}"
        );
        assert!(d.da_forks.is_empty(), "{name}: no DA fork here");
    }
    // Both receipts stay accepted.
    for r in [&a, &b] {
        s1.receipt(&hex::encode(r.receipt_id().0)).await?;
    }
    net.pass();
    Ok(())
}
