//! Benchmark (ignored in the test run): what publisher confirmation (issue 13 §4) adds to a
//! publish. One coordinator, 2 storage nodes; 40 sequential one-event publications are timed
//! while the storage nodes are connected (the coordinator waits until a majority of its DA
//! peers hold each blob), then again after both stopped (no DA peer: answered once durable).
//! Prints the median and 90th percentile of both, side by side.
//!
//! `cargo build --workspace --bins && cargo test -p dsdn-integration-tests --test
//! confirm_latency -- --ignored --nocapture`

use std::time::{Duration, Instant};

use dsdn_integration_tests::{chunk_events, TestNet};

/// Publications timed per phase.
const N: usize = 40;

fn percentile(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() * p / 100).min(sorted.len() - 1)]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn publish_latency_with_and_without_confirmation() -> anyhow::Result<()> {
    let mut net = TestNet::new("confirm-latency").await?;
    let mut cfg = net.da_config("coordinator", 60)?;
    cfg.seeds.da.batch_interval = Duration::from_millis(1);
    let names = net.start_da_net(60, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 4 * N);
    let client = net.node("coordinator").client();
    let run = |phase: usize| {
        let part: Vec<_> = events[phase * 2 * N..(phase * 2 + 1) * N].to_vec();
        let client = client.clone();
        async move {
            let mut times = Vec::new();
            for e in part {
                let t = Instant::now();
                client.da_publish(std::slice::from_ref(&e)).await?;
                times.push(t.elapsed());
            }
            times.sort();
            anyhow::Ok(times)
        }
    };
    let confirmed = run(0).await?;
    for name in &names {
        net.node_mut(name).stop().await?;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let alone = run(1).await?;
    println!(
        "publish of one event, {N} each: with 2 DA peers (confirmed) median {:?} p90 {:?}; \
         without DA peers (durable only) median {:?} p90 {:?}",
        percentile(&confirmed, 50),
        percentile(&confirmed, 90),
        percentile(&alone, 50),
        percentile(&alone, 90)
    );
    net.pass();
    Ok(())
}
