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

/// Percentile `p` (0..=100) of sorted `xs`, in milliseconds.
fn pct(xs: &[Duration], p: usize) -> f64 {
    let i = (xs.len().saturating_sub(1) * p) / 100;
    xs.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

/// A figure, not a check: `da state` and proof latency (median, p99) and the RSS of a
/// coordinator and a storage node after `DSDN_BENCH_EVENTS` events (default 200,000).
/// `cargo build --release --workspace --bins && cargo test --release -p
/// dsdn-integration-tests --test da_proofs -- --ignored --nocapture`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: prints figures, takes minutes"]
async fn bench_da_state_and_proof_latency() -> anyhow::Result<()> {
    let n: usize = std::env::var("DSDN_BENCH_EVENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    let mut net = TestNet::new("da-proof-bench").await?;
    let cfg = net.da_config("coordinator", 95)?;
    let names = net.start_da_net(95, 1, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, n);
    let started = std::time::Instant::now();
    da_publish_all(net.node("coordinator"), &events, 4096).await?;
    let tip = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &tip, Duration::from_secs(600)).await?;
    eprintln!(
        "{n} events in {} blobs applied everywhere in {:.1} s",
        tip.height,
        started.elapsed().as_secs_f64()
    );
    let node = net.node(&names[0]);
    let client = node.client();
    let chunks: Vec<String> = events
        .iter()
        .filter_map(|e| match e {
            DaEvent::ChunkDeclared { chunk_id, .. } => {
                Some(StateKey::Replicas(*chunk_id).to_string())
            }
            _ => None,
        })
        .take(200)
        .collect();
    let mut state = Vec::new();
    let mut proofs = Vec::new();
    for key in &chunks {
        let t = std::time::Instant::now();
        client.da_state().await?;
        state.push(t.elapsed());
        let t = std::time::Instant::now();
        client.da_proof(key, None).await?;
        proofs.push(t.elapsed());
    }
    state.sort();
    proofs.sort();
    let st = client.da_state().await?;
    eprintln!(
        "state: {} nodes, {} chunks, {} replicas at height {}",
        st.nodes, st.chunks, st.replicas, st.height
    );
    eprintln!(
        "da state: median {:.2} ms, p99 {:.2} ms; proof: median {:.2} ms, p99 {:.2} ms ({} requests each, over HTTP)",
        pct(&state, 50),
        pct(&state, 99),
        pct(&proofs, 50),
        pct(&proofs, 99),
        state.len()
    );
    for name in ["coordinator", names[0].as_str()] {
        let pid = net.node(name).pid().unwrap_or_default();
        let (rss, hwm) = dsdn_integration_tests::bench::memory_kib(pid)?;
        let size = std::fs::metadata(net.data_dir(name).join("da-log.redb"))?.len();
        eprintln!(
            "{name}: RSS {:.1} MiB (peak {:.1} MiB), da-log.redb {:.1} MB",
            rss as f64 / 1024.0,
            hwm as f64 / 1024.0,
            size as f64 / 1e6
        );
    }
    net.pass();
    Ok(())
}
