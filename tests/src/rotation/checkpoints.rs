//! Starting from the newest blob after a committee rotation (issue 16 §4, §5 with issue 13
//! §3): a new full node's state sync and a light client's `--newest` checkpoint learn the
//! key of the newest blob through the rotation blobs recorded since genesis (the rotation
//! walk, PROTOCOL.md §5.3b) instead of replaying the log from height 1.

use std::time::Duration;

use dsdn_daemon::localnet::{ConfigSpec, NodeMode};
use dsdn_p2p::da::StateSyncMode;

use crate::roles::Watch;
use crate::{da_tip, eventually, metric, TestNet};

/// Starts `synced` (storage, port offset 51) with `cfg` (the genesis configuration, a full
/// node as static peer) and `state_sync = "auto"`; checks that it reaches `reference`'s tip,
/// hash, root and events counter, that its state sync checkpoint is at or above
/// `effective` (the height the rotated key took over) and that it received fewer blobs
/// than the checkpoint height (it did not replay).
///
/// # Errors
/// When a check fails (the message holds the nodes' logs).
pub async fn state_sync_after_rotation(
    net: &mut TestNet,
    cfg: &ConfigSpec,
    reference: &str,
    effective: u64,
) -> anyhow::Result<()> {
    let mut synced_cfg = cfg.clone();
    synced_cfg.seeds.da.state_sync = StateSyncMode::Auto;
    net.spawn("synced", NodeMode::Storage, 51, &synced_cfg)
        .await?;
    let net = &*net;
    eventually(
        Duration::from_secs(60),
        "the state-synced node at the reference's tip",
        || async {
            let want = da_tip(net.node(reference)).await.ok()?;
            let got = da_tip(net.node("synced")).await.ok()?;
            (got == want).then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(60)))?;
    let synced = net.node("synced");
    let checkpoint = metric(synced, "da_state_sync_checkpoint_height", &[]).await;
    let received = metric(synced, "da_sync_blobs_received_total", &[]).await;
    anyhow::ensure!(
        checkpoint >= effective as f64,
        "synced: state sync checkpoint {checkpoint}, the rotation took effect at {effective}\n{}",
        net.log_dump(60)
    );
    anyhow::ensure!(
        received < checkpoint,
        "synced: {received} blobs received for a checkpoint at {checkpoint}: it replayed"
    );
    eprintln!(
        "a new full node state-synced at {checkpoint} (the new key in force since \
         {effective}), {received} blobs received"
    );
    Ok(())
}

/// Runs `dsdn-agent watch --from-checkpoint --newest --count 1 --json` with `cfg` while
/// events are posted to `poster` (one every 300 ms, at most 40); checks that it exits with
/// success, that its first printed height is above `effective`, and that it learnt the
/// newest blob's key through the rotations (its log line).
///
/// # Errors
/// When a check fails (the message holds the agent's stderr).
pub async fn light_from_newest(
    net: &TestNet,
    cfg: &ConfigSpec,
    poster: &str,
    effective: u64,
) -> anyhow::Result<()> {
    let light_cfg = net.config_path("light");
    cfg.write(&light_cfg)?;
    let args: Vec<String> = [
        "--config",
        &light_cfg.display().to_string(),
        "--json",
        "--from-checkpoint",
        "--newest",
        "--count",
        "1",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let stderr_path = net.dir().join("watch-newest.stderr");
    let mut watch = Watch::spawn(&args, &stderr_path)?;
    let client = net.node(poster).client();
    let fresh: Vec<String> = (0..4)
        .map(|_| libp2p::PeerId::random().to_string())
        .collect();
    let mut more = dsdn_daemon::localnet::sample_da_events(&fresh, 40).into_iter();
    let status = loop {
        if let Some(status) = watch.wait_exit(Duration::from_millis(300)).await {
            break Some(status);
        }
        match more.next() {
            Some(e) => {
                let _ = client.da_publish(std::slice::from_ref(&e)).await;
            }
            None => break watch.wait_exit(Duration::from_secs(30)).await,
        }
    };
    let stderr = std::fs::read_to_string(&stderr_path).unwrap_or_default();
    let first = watch
        .lines()
        .iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("event_index").and(v["height"].as_u64()));
    anyhow::ensure!(
        status.is_some_and(|s| s.success()) && first.is_some_and(|h| h > effective),
        "watch --newest after the rotation: exit {status:?}, first height {first:?} (the new \
         key in force since {effective})\nstderr:\n{stderr}"
    );
    anyhow::ensure!(
        stderr.contains("through the committee rotations"),
        "the light client did not learn the new key through the rotation blob:\n{stderr}"
    );
    for line in stderr.lines().filter(|l| l.contains("watch: ")) {
        eprintln!("[watch-newest] {line}");
    }
    Ok(())
}
