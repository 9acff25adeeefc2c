//! The receipts phase of `dsdn-agent devnet` (Tahap 14C): sample workloads submitted to the
//! DA proposer, executed by storage nodes, threshold-signed by the committee, gossiped to
//! every node; each receipt is then verified here against the group key and re-executed
//! locally to the identical commitment.

use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use dsdn_daemon::api::ReceiptResponse;
use dsdn_daemon::localnet::LocalNet;
use dsdn_daemon::workload::samples::{fnv_expected, fnv_module};
use dsdn_daemon::workload::{WorkloadRuntime, NETWORK_LIMITS};
use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::workload::WorkloadSubmission;
use ed25519_dalek::SigningKey;

use super::committee::CommitteeView;
use super::{say, Phase, Progress};

/// Workloads the devnet submits.
const WORKLOADS: usize = 3;
/// Rounds of the sample module (FNV-1a over the input, repeated).
const ROUNDS: u32 = 1000;
/// How long every node gets to receive a receipt through gossip.
const GOSSIP_TIMEOUT: Duration = Duration::from_secs(30);

/// Submits [`WORKLOADS`] sample workloads through the DA proposer (`coordinator-1`), shows
/// each receipt (executing node, signers, output), waits until every DA-carrying node has
/// it, verifies it against the group key and re-executes it locally. Skipped without a
/// committee (`--coordinators 1`): receipts need one.
///
/// Returns the number of DA events the receipts added to the log (one `ReceiptRecorded`
/// each).
///
/// # Errors
/// A submission fails, a receipt does not reach every node, does not verify, or
/// re-executes to another commitment.
pub(super) async fn produce_receipts(
    net: &LocalNet,
    committee: Option<&CommitteeView>,
    progress: &Progress,
) -> anyhow::Result<u64> {
    let Some(committee) = committee else {
        progress.phase(
            Phase::Receipts,
            "skipped: a single coordinator has no committee to sign them",
        );
        return Ok(0);
    };
    let group_key = parse_group_key(&committee.group_key)?;
    let module = fnv_module(ROUNDS).context("cannot assemble the sample module")?;
    let proposer = net.coordinator().client();
    let network = proposer.status().await?.network;
    let runtime = WorkloadRuntime::new(NETWORK_LIMITS).context("cannot build the WASM runtime")?;
    // A submitter operating no node of the devnet.
    let submitter = SigningKey::from_bytes(&rand::random::<[u8; 32]>());
    progress.phase(
        Phase::Receipts,
        &format!(
            "submitting {WORKLOADS} workloads (FNV-1a × {ROUNDS}, {} bytes of WASM) to {}",
            module.len(),
            net.coordinator().name()
        ),
    );
    for n in 0..WORKLOADS {
        let input = format!("devnet workload {n}").into_bytes();
        let submission = WorkloadSubmission::sign(
            &submitter,
            &network,
            module.clone(),
            input.clone(),
            n as u64,
        )
        .map_err(|e| anyhow::anyhow!("cannot build a submission: {e}"))?;
        let started = Instant::now();
        let answer = proposer
            .submit_workload(&submission)
            .await
            .context("workload submission failed")?;
        let r = &answer.receipt;
        if answer.output != hex::encode(fnv_expected(&input, ROUNDS)) {
            bail!(
                "receipt {}: unexpected output {}",
                r.receipt_id,
                answer.output
            );
        }
        say(&format!(
            "receipt {}: executed by {} ({} fuel, {} checkpoint(s)), signed by {} of {} members in {} ms, output {}",
            short(&r.receipt_id),
            node_name(net, &r.node),
            r.fuel_used,
            r.checkpoints,
            r.signers.len(),
            committee.members.len(),
            started.elapsed().as_millis(),
            answer.output
        ));
        let holders = wait_everywhere(net, &r.receipt_id).await?;
        let receipt = r.decode().map_err(anyhow::Error::msg)?;
        receipt
            .verify(&group_key)
            .with_context(|| format!("receipt {} does not verify", r.receipt_id))?;
        let again = runtime
            .run(&module, &input)
            .context("local re-execution failed")?;
        if again.commitment != receipt.receipt.commitment {
            bail!(
                "receipt {}: re-execution gives another commitment",
                r.receipt_id
            );
        }
        say(&format!(
            "receipt {}: on all {holders} nodes; verified against the group key; re-executed here: identical commitment",
            short(&r.receipt_id)
        ));
    }
    let height = wait_recorded(net, WORKLOADS).await?;
    say(&format!(
        "receipts: all {WORKLOADS} recorded in the DA log (ReceiptRecorded, sealed by the committee) on every node, DA height {height}"
    ));
    say("receipts: `dsdn-agent --api <node> receipt show|verify ID [--reexecute …]` works on any node");
    Ok(WORKLOADS as u64)
}

/// Waits until every node that keeps the DA log has at least `n` receipts recorded in its
/// replayed state (the DA proposer records each accepted receipt); returns the DA height.
async fn wait_recorded(net: &LocalNet, n: usize) -> anyhow::Result<u64> {
    let deadline = Instant::now() + GOSSIP_TIMEOUT;
    let mut height = 0;
    for node in net.nodes().iter().filter(|n| n.mode().subscribes_da()) {
        let client = node.client();
        loop {
            match client.da_state().await {
                Ok(st) if st.receipts >= n => {
                    height = height.max(st.height);
                    break;
                }
                _ if Instant::now() > deadline => bail!(
                    "the receipts were not recorded in {}'s DA log within {GOSSIP_TIMEOUT:?}",
                    node.name()
                ),
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(height)
}

fn parse_group_key(hex_key: &str) -> anyhow::Result<GroupKey> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("bad group key {hex_key:?}"))?;
    Ok(GroupKey(bytes))
}

fn short(hex_id: &str) -> &str {
    &hex_id[..hex_id.len().min(12)]
}

/// The devnet name of the node with PeerId `peer`.
fn node_name(net: &LocalNet, peer: &str) -> String {
    net.nodes()
        .iter()
        .find(|n| n.peer_id() == peer)
        .map_or_else(|| peer.to_owned(), |n| n.name().to_owned())
}

/// Waits until every node that keeps the DA log has receipt `id`; returns how many.
async fn wait_everywhere(net: &LocalNet, id: &str) -> anyhow::Result<usize> {
    let nodes: Vec<_> = net
        .nodes()
        .iter()
        .filter(|n| n.mode().subscribes_da())
        .collect();
    let deadline = Instant::now() + GOSSIP_TIMEOUT;
    for node in &nodes {
        let client = node.client();
        loop {
            match client.receipt(id).await {
                Ok(ReceiptResponse { receipt_id, .. }) if receipt_id == id => break,
                _ if Instant::now() > deadline => {
                    bail!(
                        "receipt {id} did not reach {} within {GOSSIP_TIMEOUT:?}",
                        node.name()
                    )
                }
                _ => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
    Ok(nodes.len())
}
