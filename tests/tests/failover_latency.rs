//! Benchmark (ignored in the test run), issue 13 §8: the time from the DA proposer's death
//! to the next sealed blob. A 2-of-3 committee (group key = DA authority, round timeout
//! 1 s, the default) and one storage node; per sample, the member that proposes the next
//! height is killed (SIGKILL), one event is posted to a survivor at once, and the time until
//! the survivor's log holds a new blob is measured; the victim is restarted and the net
//! converges before the next sample. Prints every sample, the median and the maximum.
//!
//! `cargo build --workspace --bins && cargo test -p dsdn-integration-tests --test
//! failover_latency -- --ignored --nocapture`

use std::time::{Duration, Instant};

use dsdn_integration_tests::rotation::{next_proposer, start_committee_net};
use dsdn_integration_tests::{chunk_events, da_tip, eventually, fmt_ms, TestNet, WAIT};

/// Samples taken.
const SAMPLES: usize = 7;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn time_from_proposer_death_to_next_sealed_blob() -> anyhow::Result<()> {
    let mut net = TestNet::new("failover-latency").await?;
    let round_timeout =
        Duration::from_millis(dsdn_p2p::committee::config::DEFAULT_ROUND_TIMEOUT_MS);
    let cn = start_committee_net(&mut net, 60, 3, 2, 1, round_timeout).await?;
    let ids: Vec<String> = cn
        .storage
        .iter()
        .map(|(n, _)| net.node(n).peer_id().to_owned())
        .collect();
    let events = chunk_events(&ids, SAMPLES + 1);
    let mut samples = Vec::new();
    for (i, event) in events.iter().take(SAMPLES).enumerate() {
        let victim = next_proposer(&net, &cn, "c1")
            .await
            .ok_or_else(|| anyhow::anyhow!("no proposer in c1's status"))?;
        let survivor = cn
            .names()
            .into_iter()
            .find(|n| *n != victim)
            .unwrap_or("c1")
            .to_owned();
        let before = da_tip(net.node(&survivor)).await?.height;
        let client = net
            .node(&survivor)
            .client_with_timeout(Duration::from_secs(60));
        net.node_mut(&victim).kill().await?;
        let killed = Instant::now();
        let e = event.clone();
        let publish = tokio::spawn(async move { client.da_publish(&[e]).await });
        let node = net.node(&survivor);
        eventually(WAIT, "the next sealed blob", || async {
            let h = da_tip(node).await.ok()?.height;
            (h > before).then_some(())
        })
        .await?;
        let took = killed.elapsed();
        publish.await??;
        println!(
            "sample {}: {victim} (proposer of height {}) killed; blob {} sealed on {survivor} after {}",
            i + 1,
            before + 1,
            before + 1,
            fmt_ms(took)
        );
        samples.push(took);
        net.node_mut(&victim).restart().await?;
        net.node(&victim).wait_ready(WAIT).await?;
        let want = da_tip(net.node(&survivor)).await?.height;
        let back = net.node(&victim);
        eventually(WAIT, "the victim caught up", || async {
            (da_tip(back).await.ok()?.height >= want).then_some(())
        })
        .await?;
    }
    samples.sort();
    println!(
        "proposer death (SIGKILL) to the next sealed blob, {} samples, round timeout {}: median {}, max {}",
        samples.len(),
        fmt_ms(round_timeout),
        fmt_ms(samples[samples.len() / 2]),
        fmt_ms(samples[samples.len() - 1])
    );
    net.pass();
    Ok(())
}
