//! Issue 16 §5 with real `dsdnd` processes: a new full node with `[da] state_sync = "auto"`
//! restores the DA state at a checkpoint from a full-node peer instead of replaying the log
//! from height 1, reaches the same height, tip and state root as the others without
//! fetching a blob at or below the checkpoint, then follows new blobs; a node with
//! `state_sync = "off"` still replays from height 1 to the same root.

use std::time::{Duration, Instant};

use dsdn_daemon::localnet::{Node, NodeMode};
use dsdn_integration_tests::{
    chunk_events, da_log_lines, da_publish_all, da_tip, log_lines_since, metric, DaTip, TestNet,
};
use dsdn_p2p::da::StateSyncMode;

/// The `chunks=N` of the node's `DA state sync done` line.
fn synced_chunks(node: &Node) -> Option<u64> {
    log_lines_since(node, 0)
        .iter()
        .filter(|l| l.contains("DA state sync done"))
        .find_map(|l| l.split("chunks=").nth(1)?.split(' ').next()?.parse().ok())
}

/// Convergence timeout.
const T: Duration = Duration::from_secs(40);

/// Waits until `node` has `want`'s height, tip hash, state root and `events` counter (not
/// proved by the checkpoint: a state-synced node takes it from the responder's counters
/// recorded with the checkpoint's root).
async fn wait_same_root(node: &Node, want: &DaTip) -> anyhow::Result<Duration> {
    let start = Instant::now();
    loop {
        let tip = da_tip(node).await.ok();
        if tip.as_ref() == Some(want) {
            return Ok(start.elapsed());
        }
        anyhow::ensure!(
            start.elapsed() < T,
            "{} is at {:?} after {T:?}, want {want}\n{}",
            node.name(),
            tip.map(|t| t.to_string()),
            da_log_lines(node, 40)
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_full_node_syncs_state_from_a_checkpoint_then_follows() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-state-sync").await?;
    let mut cfg = net.da_config("coordinator", 90)?;
    // Small blobs: a few hundred events make tens of blobs.
    cfg.seeds.da.batch_max_events = 8;
    let names = net.start_da_net(90, 1, &cfg).await?;
    let ids = net.peer_ids(&names);
    da_publish_all(net.node("coordinator"), &chunk_events(&ids, 400), 40).await?;
    let want = da_tip(net.node("coordinator")).await?;
    anyhow::ensure!(want.height >= 40, "{want}: want ≥ 40 blobs");
    wait_same_root(net.node("storage-1"), &want).await?;

    // A new full node with state sync.
    let mut synced_cfg = cfg.clone();
    synced_cfg.seeds.da.state_sync = StateSyncMode::Auto;
    let started = Instant::now();
    net.spawn("synced", NodeMode::Storage, 93, &synced_cfg)
        .await?;
    // Its registration adds a blob: the tip to reach is the coordinator's after it.
    net.wait_registered(&["synced"]).await?;
    let joined = da_tip(net.node("coordinator")).await?;
    let synced = net.node("synced");
    wait_same_root(synced, &joined).await?;
    let took = started.elapsed();
    let checkpoint = metric(synced, "da_state_sync_checkpoint_height", &[]).await;
    let seconds = metric(synced, "da_state_sync_seconds", &[]).await;
    let entries = metric(synced, "da_state_sync_entries_total", &[]).await;
    let received = metric(synced, "da_sync_blobs_received_total", &[]).await;
    eprintln!(
        "state sync: checkpoint {checkpoint} of {want}, {entries} entries in {:.0} ms \
         (metric), process start to the same root at {joined} {:.0} ms; blobs received \
         over da-sync: {received}",
        seconds * 1000.0,
        took.as_secs_f64() * 1000.0
    );
    anyhow::ensure!(
        checkpoint + 1.0 >= want.height as f64,
        "checkpoint {checkpoint}, want ≥ {} (from the newest blob)\n{}",
        want.height - 1,
        da_log_lines(synced, 40)
    );
    anyhow::ensure!(entries > 0.0, "no state entry restored");
    // Blobs fetched: only those above the checkpoint (a replay from height 1 fetches all).
    anyhow::ensure!(
        received + checkpoint <= joined.height as f64 && received < checkpoint,
        "received {received} blobs over da-sync with a checkpoint at {checkpoint} of {joined}: \
         blobs at or below the checkpoint were fetched"
    );
    let log = log_lines_since(synced, 0);
    anyhow::ensure!(
        log.iter().any(|l| l.contains("DA state sync done")),
        "no 'DA state sync done' line\n{}",
        da_log_lines(synced, 40)
    );
    // The base: no blob at or below the checkpoint is stored.
    let below = synced.client().da_blobs(1, 1).await?;
    anyhow::ensure!(below.is_empty(), "the synced node serves blob 1: {below:?}");

    // It follows new blobs.
    da_publish_all(net.node("coordinator"), &chunk_events(&ids, 100), 20).await?;
    let after = da_tip(net.node("coordinator")).await?;
    for name in ["storage-1", "synced"] {
        wait_same_root(net.node(name), &after).await?;
    }

    // Restarted, the synced node replays its log from the base (no state sync: the log
    // is not empty) and keeps following.
    net.node_mut("synced").restart().await?;
    da_publish_all(net.node("coordinator"), &chunk_events(&ids, 40), 20).await?;
    let after = da_tip(net.node("coordinator")).await?;
    wait_same_root(net.node("synced"), &after).await?;
    let restarted = log_lines_since(net.node("synced"), 0);
    anyhow::ensure!(
        restarted
            .iter()
            .filter(|l| l.contains("DA state sync done"))
            .count()
            == 1,
        "the restarted node synced its state again\n{}",
        da_log_lines(net.node("synced"), 40)
    );

    // A node without state sync replays from height 1 to the same root.
    let started = Instant::now();
    net.spawn("replayed", NodeMode::Storage, 94, &cfg).await?;
    net.wait_registered(&["replayed"]).await?;
    let before = after;
    let after = da_tip(net.node("coordinator")).await?;
    let replayed = net.node("replayed");
    for name in ["storage-1", "synced", "replayed"] {
        wait_same_root(net.node(name), &after).await?;
    }
    let received = metric(replayed, "da_sync_blobs_received_total", &[]).await;
    eprintln!(
        "replay from height 1: {} blobs, process start to the same root {:.0} ms",
        after.height,
        started.elapsed().as_secs_f64() * 1000.0
    );
    // Every blob before its registration came over da-sync (its own may come by gossip).
    anyhow::ensure!(
        received >= before.height as f64,
        "the replaying node received {received} blobs, want ≥ {}",
        before.height
    );
    anyhow::ensure!(
        metric(replayed, "da_state_sync_checkpoint_height", &[]).await == 0.0,
        "the node with state_sync off did a state sync"
    );
    net.pass();
    Ok(())
}

/// A state of more than one chunk (over 4,096 entries, 50,000 events) is fetched in several
/// chunks over the real protocol, to the same root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_state_syncs_in_several_chunks() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-state-sync-large").await?;
    let cfg = net.da_config("coordinator", 85)?;
    let names = net.start_da_net(85, 1, &cfg).await?;
    let ids = net.peer_ids(&names);
    da_publish_all(net.node("coordinator"), &chunk_events(&ids, 50_000), 1000).await?;
    let want = da_tip(net.node("coordinator")).await?;
    wait_same_root(net.node("storage-1"), &want).await?;
    let mut synced_cfg = cfg.clone();
    synced_cfg.seeds.da.state_sync = StateSyncMode::Auto;
    let started = Instant::now();
    net.spawn("synced", NodeMode::Storage, 88, &synced_cfg)
        .await?;
    net.wait_registered(&["synced"]).await?;
    let joined = da_tip(net.node("coordinator")).await?;
    let synced = net.node("synced");
    wait_same_root(synced, &joined).await?;
    let took = started.elapsed();
    let entries = metric(synced, "da_state_sync_entries_total", &[]).await;
    let seconds = metric(synced, "da_state_sync_seconds", &[]).await;
    let checkpoint = metric(synced, "da_state_sync_checkpoint_height", &[]).await;
    let received = metric(synced, "da_sync_blobs_received_total", &[]).await;
    let chunks = synced_chunks(synced);
    eprintln!(
        "large state sync: {entries} entries in {chunks:?} chunks, checkpoint {checkpoint} of \
         {want}, {:.0} ms (metric), process start to the same root {:.0} ms, {received} \
         blobs received",
        seconds * 1000.0,
        took.as_secs_f64() * 1000.0
    );
    anyhow::ensure!(
        entries > 4096.0 && chunks.is_some_and(|c| c >= 2),
        "{entries} entries in {chunks:?} chunks: want more than one chunk\n{}",
        da_log_lines(synced, 40)
    );
    anyhow::ensure!(
        checkpoint + 1.0 >= want.height as f64 && received + checkpoint <= joined.height as f64,
        "checkpoint {checkpoint}, {received} blobs received, {joined}"
    );
    net.pass();
    Ok(())
}
