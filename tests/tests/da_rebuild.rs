//! Issue 5 (the DA event log), 14A validation 4 with real `dsdnd` processes: a storage node
//! whose DA log is deleted or corrupt rebuilds it from its peers alone; one whose derived
//! state (the state tables of `da-log.redb`, issue 16) is dropped with `--reindex-da`
//! rebuilds it from its own log without any backfill. Every case ends with the same height, tip and
//! state root as the rest of the network.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use dsdn_integration_tests::{
    chunk_events, da_log_lines, da_publish_all, da_tip, log_matches, log_offset, metric,
    wait_da_equal, wait_log, wait_metric, DaTip, TestNet, WAIT,
};

/// Convergence timeout.
const T: Duration = Duration::from_secs(30);

const LOG: &str = "da-log.redb";
const NODE: &str = "storage-3";

/// Coordinator and three storage nodes, ten blobs published and everywhere.
async fn net_with_log(name: &str, first: u8) -> anyhow::Result<(TestNet, DaTip)> {
    let mut net = TestNet::new(name).await?;
    let cfg = net.da_config("coordinator", first)?;
    let names = net.start_da_net(first, 3, &cfg).await?;
    let ids = net.peer_ids(&names);
    let heights = da_publish_all(net.node("coordinator"), &chunk_events(&ids, 150), 15).await?;
    anyhow::ensure!(heights.len() >= 10, "ten POSTs gave blobs {heights:?}");
    let tip = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &tip, T).await?;
    eprintln!("[{name}] network at {tip}");
    Ok((net, tip))
}

/// Pseudo-random bytes (xorshift), different on every run.
fn garbage(len: usize) -> Vec<u8> {
    let mut x = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(7, |d| d.as_nanos() as u64)
        | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Files of `dir` named `<file>.corrupt-…`.
fn moved_aside(dir: &Path, file: &str) -> Vec<PathBuf> {
    let prefix = format!("{file}.corrupt-");
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with(&prefix))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Overwrites `path` with random bytes of its own length (at least 4 KiB); returns them.
fn corrupt(path: &Path) -> anyhow::Result<Vec<u8>> {
    let len = std::fs::metadata(path)
        .map_err(|e| anyhow::anyhow!("{} should exist: {e}", path.display()))?
        .len() as usize;
    let bytes = garbage(len.max(4096));
    std::fs::write(path, &bytes)?;
    Ok(bytes)
}

/// Restarts the stopped `NODE` and waits until the whole network is at `want` again;
/// returns the time it took.
async fn restart_and_converge(net: &mut TestNet, want: &DaTip) -> anyhow::Result<Duration> {
    let started = Instant::now();
    net.node_mut(NODE).restart().await?;
    net.node(NODE).wait_ready(WAIT).await?;
    wait_da_equal(&net.nodes(), want, T).await?;
    Ok(started.elapsed())
}

/// `NODE` rebuilt its log from peers: blobs came in over da-sync, the log file is there,
/// and it serves the same blobs as the coordinator.
async fn check_backfilled(net: &TestNet, want: &DaTip, case: &str) -> anyhow::Result<()> {
    let node = net.node(NODE);
    let received = metric(node, "da_sync_blobs_received_total", &[]).await;
    anyhow::ensure!(
        received >= want.height as f64,
        "{case}: da_sync_blobs_received_total = {received}, want ≥ {} (the whole log came from peers)\n{}",
        want.height,
        da_log_lines(node, 30)
    );
    let dir = net.data_dir(NODE);
    anyhow::ensure!(
        dir.join(LOG).is_file(),
        "{case}: no {LOG} after the rebuild"
    );
    let mine = node.client().da_blobs(1, 64).await?;
    let theirs = net.node("coordinator").client().da_blobs(1, 64).await?;
    anyhow::ensure!(
        mine.len() as u64 == want.height && mine == theirs,
        "{case}: {NODE} serves {} blobs, the coordinator {} (or they differ)",
        mine.len(),
        theirs.len()
    );
    Ok(())
}

/// `NODE` rebuilt its state from its own log: the start replayed it to `want`, it asked
/// its peers (at least one answered backfill probe) and received no blob.
async fn check_replayed_locally(
    net: &TestNet,
    offset: usize,
    want: &DaTip,
    case: &str,
) -> anyhow::Result<()> {
    let node = net.node(NODE);
    let line = wait_log(node, offset, Some("INFO"), "DA log replayed", WAIT).await?;
    anyhow::ensure!(
        line.contains(&format!("height={} ", want.height))
            && line.contains(&format!("state_root={}", want.state_root)),
        "{case}: replayed to another state, want {want}:\n{line}"
    );
    // The metric is meaningful only once the node has talked da-sync with its peers: it
    // probes each new DA peer for its tip, and would fetch whatever it lacks.
    wait_metric(
        node,
        "da_sync_requests_total",
        &[("result", "ok")],
        WAIT,
        |v| v >= 1.0,
    )
    .await?;
    let received = metric(node, "da_sync_blobs_received_total", &[]).await;
    anyhow::ensure!(
        received == 0.0,
        "{case}: {received} blobs were backfilled, want none (the log was intact)\n{}",
        da_log_lines(node, 30)
    );
    Ok(())
}

/// The log deleted (with the state), then the log overwritten with random bytes: the node
/// rebuilds both from its peers alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_or_corrupt_log_is_rebuilt_from_peers() -> anyhow::Result<()> {
    let (mut net, want) = net_with_log("da-rebuild-peers", 50).await?;
    let dir = net.data_dir(NODE);

    // 1. Log (and the state in it) deleted.
    net.node_mut(NODE).stop().await?;
    std::fs::remove_file(dir.join(LOG))
        .map_err(|e| anyhow::anyhow!("remove {LOG} (should exist after a clean stop): {e}"))?;
    let took = restart_and_converge(&mut net, &want).await?;
    check_backfilled(&net, &want, "deleted").await?;
    anyhow::ensure!(
        metric(net.node(NODE), "da_store_corrupt_total", &[]).await == 0.0,
        "deleted files are not corrupt ones"
    );
    anyhow::ensure!(moved_aside(&dir, LOG).is_empty());
    eprintln!(
        "deleted log and state: rebuilt from peers in {:.2} s",
        took.as_secs_f64()
    );

    // 2. Log overwritten with random bytes.
    net.node_mut(NODE).stop().await?;
    let bytes = corrupt(&dir.join(LOG))?;
    let offset = log_offset(net.node(NODE));
    let took = restart_and_converge(&mut net, &want).await?;
    let moved = moved_aside(&dir, LOG);
    anyhow::ensure!(
        moved.len() == 1,
        "want one {LOG}.corrupt-* in {}: {moved:?}\n{}",
        dir.display(),
        da_log_lines(net.node(NODE), 30)
    );
    anyhow::ensure!(
        std::fs::read(&moved[0])? == bytes,
        "the corrupt log must be moved, not rewritten"
    );
    let corrupt_total = metric(net.node(NODE), "da_store_corrupt_total", &[]).await;
    anyhow::ensure!(
        corrupt_total >= 1.0,
        "da_store_corrupt_total = {corrupt_total}"
    );
    let errors = log_matches(net.node(NODE), offset, Some("ERROR"), "corrupt");
    anyhow::ensure!(!errors.is_empty(), "no ERROR line about the corrupt log");
    check_backfilled(&net, &want, "corrupt log").await?;
    eprintln!(
        "corrupt log: moved aside, rebuilt from peers in {:.2} s",
        took.as_secs_f64()
    );
    net.pass();
    Ok(())
}

/// The state (the state tables of the log's file) dropped with `--reindex-da`: the node
/// replays its own log to the same root and needs no backfill; a restart then reopens the
/// rebuilt state without replaying.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_state_is_rebuilt_from_the_log() -> anyhow::Result<()> {
    let (mut net, want) = net_with_log("da-rebuild-local", 60).await?;

    // --reindex-da: the daemon deletes the state itself.
    let offset = log_offset(net.node(NODE));
    net.respawn_with_args(NODE, &["--reindex-da"]).await?;
    anyhow::ensure!(
        !log_matches(net.node(NODE), offset, Some("INFO"), "DA state deleted").is_empty(),
        "--reindex-da did not delete the DA state (it exists after a clean stop)\n{}",
        da_log_lines(net.node(NODE), 20)
    );
    wait_da_equal(&net.nodes(), &want, T).await?;
    check_replayed_locally(&net, offset, &want, "--reindex-da").await?;
    net.respawn_with_args(NODE, &[]).await?;
    wait_da_equal(&net.nodes(), &want, T).await?;

    anyhow::ensure!(
        !log_matches(
            net.node(NODE),
            offset,
            Some("INFO"),
            "DA state rebuilt from the stored blobs above it"
        )
        .is_empty(),
        "the state was not rebuilt from the log\n{}",
        da_log_lines(net.node(NODE), 20)
    );
    // A restart reopens the rebuilt state: nothing is replayed.
    let offset = log_offset(net.node(NODE));
    net.node_mut(NODE).stop().await?;
    net.node_mut(NODE).restart().await?;
    net.node(NODE).wait_ready(WAIT).await?;
    wait_da_equal(&net.nodes(), &want, T).await?;
    anyhow::ensure!(
        log_matches(
            net.node(NODE),
            offset,
            Some("INFO"),
            "DA state rebuilt from the stored blobs above it"
        )
        .is_empty(),
        "the state was replayed again after a clean restart"
    );
    net.pass();
    Ok(())
}
