//! The light client's join from a checkpoint (issue 16 §4, §6): `dsdn-agent watch
//! --from-checkpoint` started against a full node at the log's tip, timed from process start
//! to its first verified blob after the checkpoint, with its RSS then.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::client::ApiClient;

use crate::bench::{memory_kib, mib};
use crate::roles::Watch;

/// Longest wait for the light client to join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

/// The checkpoint `HEIGHT:HASH:ROOT` of height `tip - 1`, read from the full node's blob
/// `tip` (its `prev_hash` and `prev_state_root`).
///
/// # Errors
/// When the node does not answer or has no blob `tip`.
pub async fn checkpoint_before(client: &ApiClient, tip: u64) -> anyhow::Result<String> {
    let blob = client
        .da_blobs(tip, 1)
        .await?
        .pop()
        .with_context(|| format!("no blob at height {tip}"))?;
    Ok(format!(
        "{}:{}:{}",
        tip - 1,
        blob.prev_hash,
        blob.prev_state_root
    ))
}

/// Starts `dsdn-agent watch --config CONFIG --from-checkpoint --checkpoint CHECKPOINT` (CONFIG
/// names the full node as a static peer), waits for its `joined` line on stderr, reads its
/// RSS and stops it. Returns (seconds from process start to joined, RSS MiB).
///
/// # Errors
/// When the agent cannot start, exits, or does not join within 60 s.
pub async fn join(config: &Path, checkpoint: &str, dir: &Path) -> anyhow::Result<(f64, f64)> {
    let stderr = dir.join("light-join.stderr");
    let args: Vec<String> = [
        "--config",
        &config.display().to_string(),
        "--from-checkpoint",
        "--checkpoint",
        checkpoint,
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let started = Instant::now();
    let mut watch = Watch::spawn(&args, &stderr)?;
    let joined = loop {
        let text = std::fs::read_to_string(&stderr).unwrap_or_default();
        if text.contains("watch: joined in") {
            break started.elapsed();
        }
        if watch.try_status().is_some() || started.elapsed() > JOIN_TIMEOUT {
            let report = watch.report();
            watch.kill().await;
            anyhow::bail!("the light client did not join from {checkpoint}: {report}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let rss = watch
        .pid()
        .map(memory_kib)
        .transpose()?
        .map(|(r, _)| mib(r));
    watch.kill().await;
    Ok((joined.as_secs_f64(), rss.unwrap_or(f64::NAN)))
}
