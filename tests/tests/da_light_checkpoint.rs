//! Issue 16 §4 with real `dsdnd` processes and the real agent: a light client that stays
//! light. A coordinator (the DA authority) and a full storage node stream events; the light
//! client `dsdn-agent watch --from-checkpoint --checkpoint H:HASH:ROOT` starts at `H > 1`,
//! reaches the tip without fetching any height at or below the checkpoint (its first blob is
//! `H + 1`, the lowest height it asked a peer for is `H + 1`), and the values it proves
//! equal the full nodes' `GET /v1/da/proof` answers at the same height and root. A
//! checkpoint with a wrong root or a wrong hash is refused with a clear error, and the two
//! other sources (a trusted peer, the newest signed blob) start it too.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::roles::Watch;
use dsdn_integration_tests::{eventually, fast_da, full_mesh, TestNet};
use dsdn_protocols::da::{DaEvent, StateKey, StateProof};

/// Convergence timeout.
const T: Duration = Duration::from_secs(30);
/// Blobs streamed before the checkpoint is taken.
const BEFORE: u64 = 8;
/// Blobs the light client prints (`--count`).
const COUNT: usize = 3;

/// Runs `watch ARGS…` until it exits (at most 90 s); its stdout lines, stderr and success.
async fn run_watch(net: &TestNet, name: &str, args: &[String]) -> (Vec<String>, String, bool) {
    let path = net.dir().join(format!("{name}.stderr"));
    let Ok(mut watch) = Watch::spawn(args, &path) else {
        return (Vec::new(), "cannot start watch".into(), false);
    };
    let status = watch.wait_exit(Duration::from_secs(90)).await;
    let stderr = std::fs::read_to_string(&path).unwrap_or_default();
    // The figures for the report: join time and what it fetched.
    for line in stderr.lines().filter(|l| {
        l.contains("watch: joined") || l.contains("checkpoint follower") || l.contains("refused")
    }) {
        eprintln!("[{name}] {line}");
    }
    (watch.lines(), stderr, status.is_some_and(|s| s.success()))
}

fn json_lines(lines: &[String], field: &str) -> Vec<serde_json::Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v.get(field).is_some())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_client_from_a_checkpoint_stays_light_and_agrees_with_full_nodes(
) -> anyhow::Result<()> {
    let mut net = TestNet::new("da-light-checkpoint").await?;
    let (_, authority) = net.init_identity("coordinator")?;
    let base = net
        .config()
        .with_da_authority(&authority)
        .with_da(fast_da());
    net.spawn("coordinator", NodeMode::Coordinator, 80, &base)
        .await?;
    let joined = base.clone().with_static_peer(net.addr(80));
    net.spawn("full", NodeMode::Storage, 81, &joined).await?;
    eventually(T, "coordinator and full node connected", || async {
        full_mesh(&net.nodes()).await.then_some(())
    })
    .await?;
    let coordinator = net.node("coordinator").client();
    let full = net.node("full").client();

    // Events streamed by the coordinator: one publish is one blob.
    let fake: Vec<String> = (0..4)
        .map(|_| libp2p::PeerId::random().to_string())
        .collect();
    let events = dsdn_daemon::localnet::sample_da_events(&fake, 400);
    let mut batches = events.chunks(4).map(<[DaEvent]>::to_vec);
    for _ in 0..BEFORE {
        let batch = batches.next().ok_or_else(|| anyhow::anyhow!("events"))?;
        coordinator.da_publish(&batch).await?;
    }
    let height = eventually(T, "the full node at the coordinator's height", || async {
        let (c, f) = (
            coordinator.da_state().await.ok()?,
            full.da_state().await.ok()?,
        );
        (c.height >= BEFORE && f.height == c.height).then_some(c.height)
    })
    .await?;

    // The checkpoint H: the hash of blob H and the root after it, as blob H + 1 commits.
    let h = height - 3;
    let next = full
        .da_blobs(h + 1, 1)
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("no blob {}", h + 1))?;
    let checkpoint = format!("{h}:{}:{}", next.prev_hash, next.prev_state_root);

    // Keep streaming while light clients run.
    let stop = Arc::new(AtomicBool::new(false));
    let streamer = {
        let (stop, coordinator) = (stop.clone(), coordinator.clone());
        let rest: Vec<Vec<DaEvent>> = batches.collect();
        tokio::spawn(async move {
            for batch in rest {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let _ = coordinator.da_publish(&batch).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };

    let light_cfg = net.config_path("light");
    joined.write(&light_cfg)?;
    let common = |extra: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = vec![
            "--config".into(),
            light_cfg.display().to_string(),
            "--json".into(),
            "--from-checkpoint".into(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v
    };

    // Keys of several kinds, present and absent, the committee key included.
    let keys = [
        StateKey::Node(fake[0].clone()),
        StateKey::Node("nobody".into()),
        StateKey::Chunk(dsdn_protocols::da::Bytes32([0xee; 32])),
        StateKey::CommitteeLatest,
    ];
    let mut args = common(&["--checkpoint", &checkpoint, "--count", &COUNT.to_string()]);
    for k in &keys {
        args.push("--prove".into());
        args.push(k.to_string());
    }
    let (lines, stderr, ok) = run_watch(&net, "watch", &args).await;
    anyhow::ensure!(
        ok,
        "watch --from-checkpoint failed\nstdout:\n{}\nstderr:\n{stderr}",
        lines.join("\n")
    );
    // Forward only from H + 1.
    let heights: Vec<u64> = json_lines(&lines, "event_index")
        .iter()
        .filter_map(|v| v["height"].as_u64())
        .collect();
    anyhow::ensure!(
        heights.first() == Some(&(h + 1)),
        "first printed height {:?}, checkpoint {h}",
        heights.first()
    );
    anyhow::ensure!(
        stderr.contains(&format!("checkpoint {h}, lowest height fetched {}", h + 1)),
        "the light client fetched below its checkpoint or reported nothing:\n{stderr}"
    );
    anyhow::ensure!(stderr.contains("joined in"), "no join reported:\n{stderr}");
    // Its proofs agree with both full nodes at the height and root it trusts.
    let proved = json_lines(&lines, "verdict");
    anyhow::ensure!(proved.len() == keys.len(), "{proved:?}");
    for (key, line) in keys.iter().zip(&proved) {
        anyhow::ensure!(
            line["key"] == key.to_string() && line["verdict"] != "invalid",
            "{line}"
        );
        let at = line["height"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("{line}"))?;
        anyhow::ensure!(
            at > h,
            "{key}: proved at {at}, not after the checkpoint {h}"
        );
        for client in [&coordinator, &full] {
            let answer = client.da_proof(&key.to_string(), Some(at)).await?;
            anyhow::ensure!(
                line["root"] == answer.root.as_str(),
                "{key} at {at}: light root {} full-node root {}",
                line["root"],
                answer.root
            );
            let proof = StateProof::decode(&hex::decode(&answer.proof)?)?;
            let mut root = [0u8; 32];
            hex::decode_to_slice(&answer.root, &mut root)?;
            let (_, value) = proof.verify(root)?;
            let full_value = value.map(serde_json::to_value).transpose()?;
            let light = line.get("value").cloned().filter(|v| !v.is_null());
            anyhow::ensure!(
                light == full_value,
                "{key}: light {light:?}, full node {full_value:?}"
            );
        }
    }
    anyhow::ensure!(proved[0]["verdict"] == "present", "{:?}", proved[0]);
    anyhow::ensure!(proved[1]["verdict"] == "absent", "{:?}", proved[1]);

    // A wrong root, then a wrong hash: refused with a clear error.
    let bad_root = format!("{h}:{}:{}", next.prev_hash, "11".repeat(32));
    let (_, stderr, ok) = run_watch(
        &net,
        "watch-bad-root",
        &common(&["--checkpoint", &bad_root, "--count", "1"]),
    )
    .await;
    anyhow::ensure!(
        !ok && stderr.contains("refused"),
        "a wrong root was not refused:\n{stderr}"
    );
    let bad_hash = format!("{h}:{}:{}", "22".repeat(32), next.prev_state_root);
    let (_, stderr, ok) = run_watch(
        &net,
        "watch-bad-hash",
        &common(&["--checkpoint", &bad_hash, "--count", "1"]),
    )
    .await;
    anyhow::ensure!(
        !ok && stderr.contains("refused") && stderr.contains("blob hash"),
        "a wrong hash was not refused:\n{stderr}"
    );

    // A trusted full node's newest blob, and the newest blob signed by the key in force.
    let trusted = format!(
        "/ip4/127.0.0.81/tcp/{}/p2p/{}",
        net.port(),
        net.node("full").peer_id()
    );
    for (name, extra) in [
        (
            "watch-trusted",
            vec!["--trust-peer", trusted.as_str(), "--count", "1"],
        ),
        ("watch-newest", vec!["--newest", "--count", "1"]),
    ] {
        let (lines, stderr, ok) = run_watch(&net, name, &common(&extra)).await;
        anyhow::ensure!(
            ok,
            "{name} failed\nstdout:\n{}\nstderr:\n{stderr}",
            lines.join("\n")
        );
        let first = json_lines(&lines, "event_index")
            .first()
            .and_then(|v| v["height"].as_u64())
            .unwrap_or(0);
        anyhow::ensure!(
            first > height,
            "{name}: first height {first}, the log was at {height} before it started:\n{stderr}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let _ = streamer.await;
    net.pass();
    Ok(())
}
