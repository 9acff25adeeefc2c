//! Receipt benchmark on loopback (issue 6 §7), real `dsdnd` processes.
//!
//! For each committee size given (default `2-of-3,3-of-4,5-of-7`): `n` coordinators forming
//! a t-of-n committee and two storage nodes start on 127.0.0.x; the committee's DKG runs
//! through the first member's control API (`POST /v1/committee/dkg`, timed from the
//! request to the answer: the ceremony over the network, the key share written); then
//! `--submissions` workloads (the sample FNV-1a module, 1000 rounds over a 64-byte input)
//! are submitted one after another to the first member. Per submission, latency = from
//! `POST /v1/workloads` to the answer: module kept, storage node chosen, module fetched
//! (first time), WASM run, node receipt checked, threshold signature of the committee, receipt
//! verified and gossiped. Prints the DKG time and the median and 99th percentile latency.
//!
//! Run: `cargo build --release --bins && target/release/dsdn-bench-receipts
//! [--submissions 100] [--committees 2-of-3,3-of-4,5-of-7]`

use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::NodeMode;
use dsdn_daemon::workload::samples::fnv_module;
use dsdn_integration_tests::{
    eventually, fmt_ms, full_mesh, is_connected_to, percentile, TestNet, WAIT,
};
use dsdn_protocols::workload::WorkloadSubmission;
use ed25519_dalek::SigningKey;

/// Value of flag `name` (`--name VALUE`).
fn flag(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn parse_committee(s: &str) -> anyhow::Result<(u16, usize)> {
    let (t, n) = s
        .split_once("-of-")
        .with_context(|| format!("committee {s:?}: T-of-N expected"))?;
    Ok((t.parse()?, n.parse()?))
}

async fn bench(t: u16, n: usize, submissions: usize) -> anyhow::Result<()> {
    let mut net = TestNet::new(&format!("bench-receipts-{t}-of-{n}")).await?;
    let names: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
    let mut ids = Vec::new();
    for name in &names {
        ids.push(net.init_identity(name)?.0);
    }
    let statics: Vec<String> = (0..n).map(|i| net.addr(20 + i as u8)).collect();
    let cfg = net.config().with_static_peers(statics.iter().cloned());
    let members = ids.join(",");
    let threshold = t.to_string();
    for (i, name) in names.iter().enumerate() {
        net.spawn_with_args(
            name,
            NodeMode::Coordinator,
            20 + i as u8,
            &cfg,
            &[
                "--committee-members",
                &members,
                "--committee-threshold",
                &threshold,
            ],
        )
        .await?;
    }
    let nodes: Vec<_> = names.iter().map(|n| net.node(n)).collect();
    eventually(WAIT, "committee mesh", || async {
        full_mesh(&nodes).await.then_some(())
    })
    .await?;
    let first = net.node("c1").client_with_timeout(Duration::from_secs(120));
    let started = Instant::now();
    let status = first.committee_dkg().await?;
    let dkg = started.elapsed();
    let group_key = status.group_key.context("no group key after the DKG")?;
    let storage_cfg = cfg.clone().with_da_authority(group_key);
    for (i, s) in ["s1", "s2"].iter().enumerate() {
        net.spawn(s, NodeMode::Storage, 60 + i as u8, &storage_cfg)
            .await?;
        let node = net.node(s);
        eventually(WAIT, "storage node connected to c1", || async {
            is_connected_to(net.node("c1"), node).await.then_some(())
        })
        .await?;
    }
    let network = first.status().await?.network;
    let module = fnv_module(1000)?;
    let submitter = SigningKey::from_bytes(&[7; 32]);
    let mut latencies = Vec::with_capacity(submissions);
    for k in 0..submissions {
        let input = vec![k as u8; 64];
        let s = WorkloadSubmission::sign(&submitter, &network, module.clone(), input, k as u64)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let sent = Instant::now();
        let answer = first.submit_workload(&s).await?;
        latencies.push(sent.elapsed());
        anyhow::ensure!(answer.receipt.signers.len() == usize::from(t));
    }
    let first_one = latencies[0];
    latencies.sort();
    println!(
        "{t}-of-{n}: DKG {} | receipt end to end over {submissions} submissions: median {}, p99 {} (first, with the module fetch: {})",
        fmt_ms(dkg),
        fmt_ms(percentile(&latencies, 50.0)),
        fmt_ms(percentile(&latencies, 99.0)),
        fmt_ms(first_one)
    );
    net.pass();
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let submissions: usize = flag("--submissions").map_or(Ok(100), |s| s.parse())?;
    let committees = flag("--committees").unwrap_or_else(|| "2-of-3,3-of-4,5-of-7".into());
    for c in committees.split(',') {
        let (t, n) = parse_committee(c)?;
        bench(t, n, submissions).await?;
    }
    Ok(())
}
