//! Issue 16 §4 against a lying full node, with real `dsdnd` processes and the real agent: a
//! light client (`dsdn-agent watch --from-checkpoint --newest`) whose only full node at
//! first is a forger (a coordinator of the same network name sealing its own chain with
//! another key) refuses the forger's blobs, passes the forger over once an honest full node
//! connects, and follows the honest chain: the heights it prints carry the honest full
//! node's state roots. Before the light client passed peers over it kept asking the first
//! full node it had found, and one forger stalled it for good.

use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::roles::Watch;
use dsdn_integration_tests::{eventually, fast_da, TestNet};
use dsdn_protocols::da::DaEvent;

/// Convergence timeout.
const T: Duration = Duration::from_secs(30);
/// Blobs sealed by each chain before the light client starts.
const BEFORE: u64 = 6;
/// Blobs the light client prints (`--count`).
const COUNT: usize = 3;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_light_client_passes_over_a_full_node_serving_a_false_chain() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-light-forger").await?;
    let (_, authority) = net.init_identity("coordinator")?;
    let (_, forged) = net.init_identity("forger")?;
    let honest = net
        .config()
        .with_da_authority(&authority)
        .with_da(fast_da());
    net.spawn("coordinator", NodeMode::Coordinator, 80, &honest)
        .await?;
    let forger_cfg = net.config().with_da_authority(&forged).with_da(fast_da());
    net.spawn("forger", NodeMode::Coordinator, 82, &forger_cfg)
        .await?;
    let coordinator = net.node("coordinator").client();
    let forger = net.node("forger").client();

    let fake: Vec<String> = (0..4)
        .map(|_| libp2p::PeerId::random().to_string())
        .collect();
    let events = dsdn_daemon::localnet::sample_da_events(&fake, 200);
    let mut batches = events.chunks(4).map(<[DaEvent]>::to_vec);
    for _ in 0..BEFORE {
        let batch = batches.next().ok_or_else(|| anyhow::anyhow!("events"))?;
        coordinator.da_publish(&batch).await?;
        forger.da_publish(&batch).await?;
    }

    // The light client knows the forger and the honest full node's address; the honest
    // full node is not up yet, so the forger is the only full node it can ask.
    let light_cfg = net.config_path("light");
    honest
        .clone()
        .with_static_peers([net.addr(82), net.addr(81)])
        .with_intervals(900, 1)
        .write(&light_cfg)?;
    let stderr_path = net.dir().join("watch.stderr");
    let args: Vec<String> = [
        "--config",
        &light_cfg.display().to_string(),
        "--json",
        "--from-checkpoint",
        "--newest",
        "--count",
        &COUNT.to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let mut watch = Watch::spawn(&args, &stderr_path)?;
    let refused = eventually(T, "the light client refuses the forger's blobs", || async {
        let text = std::fs::read_to_string(&stderr_path).unwrap_or_default();
        text.contains("DA blob refused by the light client")
            .then_some(())
    })
    .await;
    if refused.is_err() {
        let report = watch.report();
        watch.kill().await;
        anyhow::bail!("the forger was not refused: {report}");
    }

    // The honest full node comes up; the coordinator keeps sealing.
    let joined = honest.clone().with_static_peer(net.addr(80));
    net.spawn("full", NodeMode::Storage, 81, &joined).await?;
    let full = net.node("full").client();
    let streamer = {
        let coordinator = coordinator.clone();
        let rest: Vec<Vec<DaEvent>> = batches.collect();
        tokio::spawn(async move {
            for batch in rest {
                let _ = coordinator.da_publish(&batch).await;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
        })
    };
    let status = watch.wait_exit(Duration::from_secs(90)).await;
    streamer.abort();
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let lines = watch.lines();
    anyhow::ensure!(
        status.is_some_and(|s| s.success()),
        "watch failed\nstdout:\n{}\nstderr:\n{stderr}",
        lines.join("\n")
    );
    // Every printed height is the honest chain's: the state root after it is the one the
    // honest full node's next blob commits to.
    let printed: Vec<(u64, String)> = lines
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["height"].as_u64()?, v["state_root"].as_str()?.to_owned())))
        .collect();
    anyhow::ensure!(
        !printed.is_empty(),
        "nothing printed:\n{}",
        lines.join("\n")
    );
    for (height, root) in &printed {
        let next = eventually(T, "the honest full node has the next blob", || async {
            full.da_blobs(height + 1, 1).await.ok()?.pop()
        })
        .await?;
        anyhow::ensure!(
            &next.prev_state_root == root,
            "height {height}: the light client printed root {root}, the honest chain has {}",
            next.prev_state_root
        );
    }
    eprintln!(
        "[da-light-forger] followed the honest chain at heights {:?} after refusing the forger",
        printed.iter().map(|(h, _)| *h).collect::<Vec<_>>()
    );
    Ok(())
}
