//! Issue 16 §3 with real `dsdnd` processes: DA state proofs fetched through
//! `GET /v1/da/proof` and `dsdn-agent da proof` verify against the coordinator's state
//! root (at the tip and at an older height) for present and absent keys of every kind, a
//! wrong root is refused, and a restarted node reopens the same root.

use std::time::Duration;

use dsdn_integration_tests::{
    agent, chunk_events, da_publish_all, da_tip, wait_da_equal, TestNet, WAIT,
};
use dsdn_protocols::da::{DaEvent, StateKey, StateProof, StateValue};

/// Convergence timeout.
const T: Duration = Duration::from_secs(30);

fn root_of(hex_root: &str) -> anyhow::Result<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_root, &mut out)?;
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_from_the_api_and_the_agent_verify_against_the_network_root() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-proofs").await?;
    let cfg = net.da_config("coordinator", 90)?;
    let names = net.start_da_net(90, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 120);
    let heights = da_publish_all(net.node("coordinator"), &events, 20).await?;
    let tip = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &tip, T).await?;
    let root = root_of(&tip.state_root)?;
    let storage = names[0].as_str();

    // Keys of every kind: registered nodes, declared chunks and their replicas, absent ones.
    let mut keys: Vec<StateKey> = ids.iter().map(|id| StateKey::Node(id.clone())).collect();
    for e in events.iter().take(12) {
        if let DaEvent::ChunkDeclared { chunk_id, .. } = e {
            keys.push(StateKey::Chunk(*chunk_id));
            keys.push(StateKey::Replicas(*chunk_id));
        }
    }
    keys.push(StateKey::Node("nobody".into()));
    keys.push(StateKey::Chunk(dsdn_protocols::da::Bytes32([0xee; 32])));
    let mut present = 0;
    let mut zones = Vec::new();
    for key in &keys {
        for node in ["coordinator", storage] {
            let answer = net
                .node(node)
                .client()
                .da_proof(&key.to_string(), Some(tip.height))
                .await?;
            let proof = StateProof::decode(&hex::decode(&answer.proof)?)?;
            let (_, value) = proof
                .verify(root)
                .map_err(|e| anyhow::anyhow!("{node}: {key} does not verify: {e}"))?;
            if node == "coordinator" {
                present += usize::from(value.is_some());
                if let Some(StateValue::Node(n)) = &value {
                    zones.push(n.zone.clone());
                }
            }
            let mut wrong = root;
            wrong[31] ^= 1;
            anyhow::ensure!(proof.verify(wrong).is_err(), "{key} verified a wrong root");
        }
    }
    anyhow::ensure!(present > ids.len(), "only {present} keys present");
    anyhow::ensure!(!zones.is_empty(), "no node record named a zone");
    // Zones through the agent, against the coordinator's root given as trusted.
    for zone in &zones {
        let key = format!("zone:{zone}");
        let out = agent(
            net.node(storage),
            &["da", "proof", &key, "--root", &tip.state_root, "--json"],
        )
        .await?
        .success("da proof")?;
        let v: serde_json::Value = serde_json::from_str(&out)?;
        anyhow::ensure!(
            v["verdict"] == "present"
                && v["trusted_root"] == true
                && v["value"]["nodes"].as_u64() >= Some(1),
            "agent verdict for {key}: {out}"
        );
    }
    // The agent refuses a proof against a wrong root (exit 1, NOT VERIFIED).
    let mut wrong = tip.state_root.clone().into_bytes();
    wrong[0] = if wrong[0] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong)?;
    let key = format!("node:{}", ids[0]);
    let run = agent(net.node(storage), &["da", "proof", &key, "--root", &wrong]).await?;
    anyhow::ensure!(
        !run.ok && run.stdout.contains("NOT VERIFIED"),
        "a wrong root was accepted: {run:?}"
    );
    // An older height: proved against the root the coordinator reported then.
    let old = heights[0];
    let then = net
        .node("coordinator")
        .client()
        .da_proof(&key, Some(old))
        .await?;
    let proof = StateProof::decode(&hex::decode(&then.proof)?)?;
    anyhow::ensure!(proof.height == old, "proved {} for {old}", proof.height);
    let out = agent(
        net.node(storage),
        &[
            "da",
            "proof",
            &key,
            "--height",
            &old.to_string(),
            "--root",
            &then.root,
        ],
    )
    .await?
    .success("da proof --height")?;
    anyhow::ensure!(out.starts_with("verified:"), "{out}");

    // A restart reopens the same root, and proofs still verify against it.
    net.node_mut(storage).stop().await?;
    net.node_mut(storage).restart().await?;
    net.node(storage).wait_ready(WAIT).await?;
    wait_da_equal(&net.nodes(), &tip, T).await?;
    let out = agent(
        net.node(storage),
        &["da", "proof", &key, "--root", &tip.state_root],
    )
    .await?
    .success("da proof after restart")?;
    anyhow::ensure!(out.starts_with("verified:"), "{out}");
    net.pass();
    Ok(())
}
