//! Issue 16 §3 with real `dsdnd` processes and the real agent: blobs commit to the state
//! root before them (`prev_state_root`) and a blob committing to another root is refused;
//! the light client (`dsdn-agent watch --prove KEY`) fetches proofs from a full node over
//! `/dsdn/<net>/da-proof/1.0.0`, verifies them against the root it computed itself, and
//! its values agree with the full nodes' `GET /v1/da/proof` answers for keys of every kind,
//! present and absent.

use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::roles::Watch;
use dsdn_integration_tests::{
    eventually, fast_da, full_mesh, metric, sign_chain, wait_da_equal, DaTip, TestNet,
};
use dsdn_protocols::da::{DaBlob, DaEvent, StateKey, StateProof};

/// Convergence timeout.
const T: Duration = Duration::from_secs(30);
/// Blobs of the offline log.
const K: usize = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_proves_values_through_the_proof_protocol() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-light-proofs").await?;
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x5a; 32]);
    let base = net
        .config()
        .with_da_authority(hex::encode(key.verifying_key().to_bytes()))
        .with_da(fast_da());
    net.spawn("node-1", NodeMode::Storage, 60, &base).await?;
    let joined = base.clone().with_static_peer(net.addr(60));
    net.spawn("node-2", NodeMode::Storage, 61, &joined).await?;
    eventually(T, "node-1 and node-2 connected", || async {
        full_mesh(&net.nodes()).await.then_some(())
    })
    .await?;

    // A log signed offline (every blob commits to the root before it), handed to node-1.
    let fake: Vec<String> = (0..4).map(|i| format!("offline-node-{i}")).collect();
    // Every kind of event (the sample removes what it adds), then chunks that stay.
    let mut events = dsdn_daemon::localnet::sample_da_events(&fake, (K - 1) * 5);
    let mut batches: Vec<Vec<DaEvent>> = events.chunks(5).map(<[DaEvent]>::to_vec).collect();
    let last = dsdn_integration_tests::chunk_events(&fake, 4);
    events.extend(last.iter().cloned());
    batches.push(last);
    let (blobs, chain) = sign_chain(&key, "devnet", batches)?;
    for b in &blobs {
        net.node("node-1").client().da_submit(b).await?;
    }
    let want = DaTip::of_state(chain.state());
    wait_da_equal(&net.nodes(), &want, T).await?;

    // A validly signed next blob that commits to another state root is refused by every
    // node with the reason counted; the state does not move.
    let wrong = DaBlob::sign(
        &key,
        &dsdn_protocols::NetworkId::new("devnet")?,
        K as u64 + 1,
        chain.tip_hash(),
        [0x11; 32],
        chain.last_timestamp_ms(),
        events[..2].to_vec(),
    )?
    .to_bytes()?;
    for name in ["node-1", "node-2"] {
        let node = net.node(name);
        let e = node
            .client()
            .da_submit(&wrong)
            .await
            .err()
            .ok_or_else(|| anyhow::anyhow!("{name} accepted a blob with a wrong state root"))?;
        anyhow::ensure!(
            e.to_string().contains("state root"),
            "{name}: refused for another reason: {e}"
        );
        let n = metric(
            node,
            "da_blobs_rejected_total",
            &[("reason", "state_root_mismatch")],
        )
        .await;
        anyhow::ensure!(n >= 1.0, "{name}: state_root_mismatch counted {n}");
    }
    wait_da_equal(&net.nodes(), &want, T).await?;

    // Keys of every kind, present and absent.
    let mut keys = vec![
        StateKey::Node(fake[0].clone()),
        StateKey::Node("nobody".into()),
        StateKey::Chunk(dsdn_protocols::da::Bytes32([0xee; 32])),
    ];
    for e in &events {
        if let DaEvent::NodeRegistered { zone, .. } = e {
            keys.push(StateKey::Zone(zone.clone()));
            break;
        }
    }
    // A chunk that is still declared and replicated at the tip.
    let kept = events.iter().find_map(|e| match e {
        DaEvent::ReplicaAdded { chunk_id, .. }
            if chain.state().chunk(chunk_id).ok().flatten().is_some()
                && !chain
                    .state()
                    .replicas(chunk_id)
                    .unwrap_or_default()
                    .is_empty() =>
        {
            Some(*chunk_id)
        }
        _ => None,
    });
    let kept = kept.ok_or_else(|| anyhow::anyhow!("no replicated chunk left in the log"))?;
    keys.push(StateKey::Chunk(kept));
    keys.push(StateKey::Replicas(kept));

    // The light client follows the log to the tip, then proves every key.
    let light_cfg = net.config_path("light");
    joined.write(&light_cfg)?;
    let mut args: Vec<String> = vec![
        "--config".into(),
        light_cfg.display().to_string(),
        "--json".into(),
        "--count".into(),
        K.to_string(),
    ];
    for k in &keys {
        args.push("--prove".into());
        args.push(k.to_string());
    }
    let mut watch = Watch::spawn(&args, &net.dir().join("watch.stderr"))?;
    let status = watch.wait_exit(Duration::from_secs(90)).await;
    anyhow::ensure!(
        status.is_some_and(|s| s.success()),
        "watch --prove exited with {status:?}\nstdout:\n{}\nstderr:\n{}",
        watch.lines().join("\n"),
        watch.stderr_tail(40)
    );
    let proved: Vec<serde_json::Value> = watch
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get("verdict").is_some())
        .collect();
    anyhow::ensure!(
        proved.len() == keys.len(),
        "{} proved lines for {} keys: {proved:?}",
        proved.len(),
        keys.len()
    );
    let mut present = 0;
    for (key, line) in keys.iter().zip(&proved) {
        anyhow::ensure!(line["key"] == key.to_string(), "{line} is not {key}");
        anyhow::ensure!(
            line["height"] == K as u64 && line["root"] == want.state_root,
            "{key}: proved at {} against {}, the network is at {K} with {}",
            line["height"],
            line["root"],
            want.state_root
        );
        present += usize::from(line["verdict"] == "present");
        for name in ["node-1", "node-2"] {
            let answer = net
                .node(name)
                .client()
                .da_proof(&key.to_string(), Some(K as u64))
                .await?;
            let proof = StateProof::decode(&hex::decode(&answer.proof)?)?;
            let (_, value) = proof.verify(chain.state().state_root())?;
            let full = value.map(serde_json::to_value).transpose()?;
            let light = line.get("value").cloned().filter(|v| !v.is_null());
            anyhow::ensure!(
                light == full,
                "{key}: the light client proved {light:?}, {name} answers {full:?}"
            );
        }
    }
    anyhow::ensure!(
        present == keys.len() - 2,
        "{present} present of {} keys (2 absent): {proved:?}",
        keys.len()
    );
    Ok(())
}
