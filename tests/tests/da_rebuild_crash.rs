//! Issue 16 §6 and §7 with a real `dsdnd`: a full node rebuilding its DA state from a long
//! stored log (at least 64 blobs above the state: the replay with the large page cache
//! of `[da] rebuild_cache_mib` and unsynced commits) is SIGKILLed at random points of the
//! rebuild, again and again. Every start must open the log and the state consistent (redb
//! recovers the last synced commit, never a state ahead of or mixed with the log), the
//! last one must end at the state root the log's generator computed, and the large cache
//! must be given back before the node serves.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::{ConfigSpec, Node, NodeMode, NodeSpec};
use dsdn_integration_tests::scale::LogGenerator;
use dsdn_integration_tests::{log_matches, log_offset, unix_now, wait_log};
use dsdn_protocols::NetworkId;

/// Blobs of the generated log (above the 64 that switch the replay to the rebuild cache, and
/// enough for several write batches of 256 blobs).
const BLOBS: u64 = 1_300;

/// Events per generated blob: many small blobs, so the replay writes several batches and
/// lasts seconds in a debug build.
const PER_BLOB: usize = 20;

/// SIGKILLs during rebuilds.
const KILLS: usize = 5;

/// The full node's loopback address.
const IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 62);

/// Longest wait for one start to reach its replay, and for the last one to reach the tip.
const T: Duration = Duration::from_secs(120);

/// A pseudo-random delay below `max_ms` (xorshift seeded by the clock), different on every
/// run and every call.
fn random_ms(state: &mut u64, max_ms: u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state % max_ms
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuild_killed_again_and_again_ends_at_the_generated_root() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let data = dir.path().join("full");
    std::fs::create_dir_all(&data)?;
    let network = NetworkId::new("devnet").map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x17; 32]);
    let mut generator = LogGenerator::new(key, network, unix_now() * 1000 - 86_400_000)
        .with_events_per_blob(PER_BLOB);
    // `dsdnd init` first: the node key lives beside the log.
    dsdn_daemon::localnet::init_node(&data)?;
    let log = data.join(dsdn_p2p::da::store::DA_LOG_FILE);
    generator.grow_to(&log, BLOBS * PER_BLOB as u64, |_| {})?;
    anyhow::ensure!(
        generator.height() == BLOBS,
        "generated {} blobs",
        generator.height()
    );
    let want_root = generator.state_root_hex().context("no generated state")?;

    let lease = dsdn_daemon::localnet::reserve_port(&[IP])?;
    let config = dir.path().join("seeds.toml");
    ConfigSpec::default()
        .with_network("devnet")
        .with_default_port(lease.port())
        .with_da_authority(generator.authority_hex())
        .write(&config)?;
    let mut spec = NodeSpec::new("full", NodeMode::Storage, IP, lease.port(), &config, data);
    // Every start of the loop rebuilds from height 1 (`--reindex-da` deletes the state
    // after the file was opened, i.e. recovered from the kill before).
    spec.extra_args = vec!["--reindex-da".to_owned()];
    let mut node = Node::spawn(spec.clone()).await?;

    let mut seed = (unix_now() << 16) | u64::from(std::process::id()) | 1;
    let mut mid_rebuild = 0;
    for kill in 0..KILLS {
        let offset = if kill == 0 { 0 } else { log_offset(&node) };
        if kill > 0 {
            node.restart().await?;
        }
        wait_log(
            &node,
            offset,
            Some("INFO"),
            "with the rebuild page cache",
            T,
        )
        .await
        .with_context(|| format!("start {}: no replay with the rebuild cache", kill + 1))?;
        tokio::time::sleep(Duration::from_millis(random_ms(&mut seed, 2_000))).await;
        let done =
            !log_matches(&node, offset, Some("INFO"), "with the serving page cache").is_empty();
        node.kill().await?;
        if !done {
            mid_rebuild += 1;
        }
        eprintln!(
            "[rebuild-crash] kill {}: {}",
            kill + 1,
            if done {
                "after the rebuild"
            } else {
                "during the rebuild"
            }
        );
    }
    anyhow::ensure!(
        mid_rebuild > 0,
        "none of the {KILLS} kills landed during a rebuild: the test proved nothing"
    );

    // The last start (without `--reindex-da`) goes on from whatever the kills left and
    // serves with the small cache.
    let offset = log_offset(&node);
    spec.extra_args.clear();
    node = Node::spawn(spec).await?;
    let started = Instant::now();
    let client = node.client();
    let state = loop {
        if let Ok(st) = client.da_state().await {
            if st.height >= BLOBS {
                break st;
            }
        }
        anyhow::ensure!(
            started.elapsed() < T,
            "the node did not reach height {BLOBS} within {T:?}\n{}",
            node.log_tail(30)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    anyhow::ensure!(
        state.height == BLOBS && hex::encode(state.state_root) == want_root,
        "after {KILLS} kills the node is at height {} root {}, the log's root at {BLOBS} is {want_root}",
        state.height,
        hex::encode(state.state_root)
    );
    let serving = log_matches(&node, offset, Some("INFO"), "with the serving page cache");
    anyhow::ensure!(
        serving.iter().any(|l| l.contains("cache_mib=32")),
        "the rebuild cache was not given back before serving: {serving:?}\n{}",
        node.log_tail(30)
    );
    let aside: Vec<_> = std::fs::read_dir(dir.path().join("full"))?
        .filter_map(Result::ok)
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".corrupt-"))
        .collect();
    anyhow::ensure!(
        aside.is_empty(),
        "a kill left a file redb could not recover (moved aside): {aside:?}"
    );
    node.stop().await?;
    Ok(())
}
