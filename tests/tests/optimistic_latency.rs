//! Benchmark (ignored in the test run): what an optimistic receipt saves (issue 13 §5, spec
//! Tahap 14A.2B.2: receipt overhead under 200 ms). A 3-of-4 coordinator committee and two
//! storage nodes on 127.0.0.x; `N` workloads answered with the committee's threshold
//! receipt and `N` answered optimistically (coordinator's signature only) are submitted
//! alternately to c1 through its control API, each timed from `POST /v1/workloads` to the
//! answer (after an optimistic one, the next waits untimed for its threshold receipt). Prints the median and 90th percentile of both, side by side, and the difference
//! (what the threshold signature adds to a receipt).
//!
//! `cargo build --workspace --bins && cargo test -p dsdn-integration-tests --test
//! optimistic_latency -- --ignored --nocapture`

use std::time::Instant;

use dsdn_daemon::workload::samples::fnv_module;
use dsdn_integration_tests::committee::start_receipt_net;
use dsdn_integration_tests::{eventually, fmt_ms, percentile, TestNet, WAIT};
use dsdn_protocols::workload::WorkloadSubmission;
use ed25519_dalek::SigningKey;

/// Submissions timed per kind.
const N: usize = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn receipt_latency_optimistic_vs_threshold() -> anyhow::Result<()> {
    let mut net = TestNet::new("optimistic-latency").await?;
    let cfg = net.config();
    start_receipt_net(&mut net, 4, 3, 2, 70, &cfg).await?;
    let client = net.node("c1").client();
    let network = client.status().await?.network;
    let module = fnv_module(1000)?;
    let submitter = SigningKey::from_bytes(&[7; 32]);
    // One unmeasured submission fetches the module onto the storage nodes.
    let warm = WorkloadSubmission::sign(&submitter, &network, module.clone(), vec![0; 64], 0)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    client.submit_workload_with(&warm, Some(false)).await?;
    let (mut threshold, mut optimistic) = (Vec::with_capacity(N), Vec::with_capacity(N));
    for k in 0..2 * N {
        let optimistic_one = k % 2 == 1;
        let s = WorkloadSubmission::sign(
            &submitter,
            &network,
            module.clone(),
            vec![k as u8; 64],
            k as u64 + 1,
        )
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let sent = Instant::now();
        let answer = client
            .submit_workload_with(&s, Some(optimistic_one))
            .await?;
        let took = sent.elapsed();
        anyhow::ensure!(
            answer.receipt.is_optimistic() == optimistic_one,
            "asked optimistic={optimistic_one}, got {}",
            answer.receipt.kind
        );
        if optimistic_one {
            optimistic.push(took);
            // The committee still signs it: wait (untimed) for the upgrade so the next
            // submission does not share the committee with this signing round.
            let id = answer.receipt.receipt_id.clone();
            eventually(WAIT, "the threshold receipt", || {
                let client = client.clone();
                let id = id.clone();
                async move {
                    let r = client.receipt(&id).await.ok()?;
                    (r.status == "threshold").then_some(())
                }
            })
            .await?;
        } else {
            threshold.push(took);
        }
    }
    threshold.sort();
    optimistic.sort();
    let (t50, t90) = (percentile(&threshold, 50.0), percentile(&threshold, 90.0));
    let (o50, o90) = (percentile(&optimistic, 50.0), percentile(&optimistic, 90.0));
    println!(
        "receipt latency, 3-of-4 committee, {N} submissions each (POST /v1/workloads to answer):\n\
         \x20 threshold  median {} p90 {}\n\
         \x20 optimistic median {} p90 {}\n\
         \x20 the threshold signature adds {} at the median, {} at p90 (spec: overhead < 200 ms)",
        fmt_ms(t50),
        fmt_ms(t90),
        fmt_ms(o50),
        fmt_ms(o90),
        fmt_ms(t50.saturating_sub(o50)),
        fmt_ms(t90.saturating_sub(o90)),
    );
    net.pass();
    Ok(())
}
