//! DA log benchmark on loopback (issue 5 §7), real `dsdnd` processes.
//!
//! Prints:
//! * **catch-up**: a coordinator and two storage nodes hold a log of `--events` events
//!   (published in POSTs of 1,000); a new storage node is started `--runs` times (fresh data
//!   directory each time); its status is polled every 5 ms from before the start, and the
//!   time from its first verified peer to the coordinator's height is the catch-up time
//!   (median, and per 10,000 events; also from process start). Each run checks the
//!   joiner's blob at that height is the coordinator's.
//! * **end-to-end latency**: a network of `--nodes` nodes (1 coordinator + the rest storage)
//!   on loopback; `--posts` times, one small event is posted to `POST /v1/da/events`, and
//!   every node answers a long-poll `GET /v1/da/state?wait_height=H+1` started *before* the
//!   POST. Latency = the node's answer − the instant just before the POST was sent. Prints
//!   the median and 99th percentile per node (all samples) and of the last node per POST.
//!   Runs with the daemon's default `batch_interval_ms` (100 ms), then again with
//!   `--batch-interval-ms MS` if given. Ends with every node on the same tip and root.
//!   Splits each POST's latency (issue 11) into the **seal** (the coordinator's own
//!   long-poll answer − the POST start: batching, sealing and applying on the coordinator)
//!   and **gossip + apply to the last node beyond the seal** (the last node's answer − the
//!   coordinator's answer for the same height), median and p99 of each. Also prints the
//!   nodes' degree (connected peers) and the encoded size of the sealed blobs (rebuilt
//!   from `GET /v1/da/blobs`, checked against their hashes).
//! * **`--baseline`**: after the latency runs, runs `dsdn-bench-gossip-baseline` (next to
//!   this executable) with the same `--nodes` and `--posts`, the sizes of the blobs of
//!   the last run and its median degree: a plain rust-libp2p gossipsub network of the same size, transports,
//!   topology shape and gossipsub parameters carrying the same bytes. Prints both side by
//!   side with the ratio (`dsdnd` gossip + apply median / baseline last-node median).
//!
//! Exits non-zero when a node does not converge, a long-poll times out, a joiner's
//! chain differs, or the baseline fails.
//!
//! Run: `cargo build --release --bins && target/release/dsdn-bench-da [--events 10000]
//! [--runs 5] [--nodes 20] [--posts 200] [--batch-interval-ms 10] [--skip-catchup]
//! [--skip-latency] [--baseline]`

use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::client::ApiClient;
use dsdn_daemon::cookie::cookie_path;
use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::roles::Launch;
use dsdn_integration_tests::{
    chunk_events, da_publish_all, da_tip, fmt_ms, ip, percentile, wait_da_equal, TestNet, WAIT,
};
use dsdn_p2p::da::DaConfig;
use dsdn_protocols::da::{Bytes32, Bytes64, DaBlob, DA_BLOB_VERSION};

/// Convergence timeout.
const T: Duration = Duration::from_secs(120);

/// Value of flag `name` (`--name VALUE`).
fn flag<T: std::str::FromStr>(name: &str) -> Option<T> {
    std::env::args()
        .skip_while(|a| a != name)
        .nth(1)
        .and_then(|s| s.parse().ok())
}

fn has(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

fn sorted(mut v: Vec<Duration>) -> Vec<Duration> {
    v.sort();
    v
}

/// `[da]` of the benchmark: the daemon's defaults, except a 1 s start grace.
fn da(batch_interval_ms: u64) -> DaConfig {
    DaConfig {
        batch_interval: Duration::from_millis(batch_interval_ms),
        publish_grace: Duration::from_secs(1),
        ..DaConfig::default()
    }
}

async fn catch_up(events: usize, runs: usize) -> anyhow::Result<()> {
    let mut net = TestNet::new("bench-da-catchup").await?;
    let cfg = net.da_config("coordinator", 10)?.with_da(da(100));
    let names = net.start_da_net(10, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    let started = Instant::now();
    let heights =
        da_publish_all(net.node("coordinator"), &chunk_events(&ids, events), 1000).await?;
    let log = da_tip(net.node("coordinator")).await?;
    println!(
        "catch-up: log of {events} events published in {} POSTs -> {} blobs in {:.2} s ({log})",
        events.div_ceil(1000),
        heights.len(),
        started.elapsed().as_secs_f64()
    );
    wait_da_equal(&net.nodes(), &log, T).await?;

    let (mut from_start, mut from_peer) = (Vec::new(), Vec::new());
    for run in 0..runs {
        let want = da_tip(net.node("coordinator")).await?;
        let name = format!("late-{run}");
        let last = 13 + run as u8;
        // Watch the joiner's status every 5 ms from before its start: the instant of its
        // first verified peer and of its reaching the coordinator's height.
        let client = ApiClient::with_timeout(
            std::net::SocketAddr::from((ip(last), net.port() + 1)),
            Duration::from_secs(2),
        )
        .with_cookie_file(cookie_path(&net.data_dir(&name)));
        let t0 = Instant::now();
        let target = want.height;
        let watch = tokio::spawn(async move {
            let mut first_peer = None;
            loop {
                if let Ok(st) = client.status().await {
                    if st.connected_peers >= 1 && first_peer.is_none() {
                        first_peer = Some(t0.elapsed());
                    }
                    if st.da_height >= target {
                        let done = t0.elapsed();
                        return Some((first_peer.unwrap_or(done), done));
                    }
                }
                if t0.elapsed() > T {
                    return None;
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        net.spawn(&name, NodeMode::Storage, last, &cfg).await?;
        let node = net.node(&name);
        let Some((peer, took)) = watch.await? else {
            anyhow::bail!(
                "{name} did not reach height {target} in {T:?}:\n{}",
                node.log_tail(40)
            );
        };
        let blob = node.client().da_blobs(want.height, 1).await?;
        anyhow::ensure!(
            blob.first().is_some_and(|b| b.hash == want.tip_hash),
            "{name}: another blob at height {}",
            want.height
        );
        println!(
            "  run {run}: {} blobs / {} events: {} from process start, {} from its first verified peer",
            want.height,
            want.events,
            fmt_ms(took),
            fmt_ms(took - peer)
        );
        from_start.push(took);
        from_peer.push(took - peer);
        // It registers (one more blob); stop it so the next joiner is alone.
        net.wait_registered(&[&name]).await?;
        net.node_mut(&name).stop().await?;
    }
    let (a, b) = (sorted(from_start), sorted(from_peer));
    let med = percentile(&b, 50.0);
    println!(
        "catch-up of a late joiner, {runs} runs, log of {} events: median {} from its first \
         verified peer ({} from process start); per 10,000 events: {}",
        log.events,
        fmt_ms(med),
        fmt_ms(percentile(&a, 50.0)),
        fmt_ms(med.mul_f64(10_000.0 / log.events.max(1) as f64))
    );
    let end = da_tip(net.node("coordinator")).await?;
    let up: Vec<_> = net.nodes().into_iter().filter(|n| n.is_running()).collect();
    wait_da_equal(&up, &end, T).await?;
    net.pass();
    Ok(())
}

/// One latency run's split, for the side-by-side comparison with the baseline.
struct Split {
    batch_interval_ms: u64,
    seal: (Duration, Duration),
    gossip_apply: (Duration, Duration),
    /// Median count of connected peers of the nodes.
    degree: usize,
    /// Encoded size of each sealed blob, in POST order.
    blob_sizes: Vec<usize>,
}

/// Median and p99 of the sorted `v`.
fn med_p99(v: &[Duration]) -> (Duration, Duration) {
    (percentile(v, 50.0), percentile(v, 99.0))
}

/// The wire size of each blob in `from..=to`, rebuilt from `GET /v1/da/blobs` (the gossip
/// message is the blob's encoding); each rebuilt blob must have the listed hash.
async fn blob_sizes(
    client: &ApiClient,
    network: &str,
    from: u64,
    to: u64,
) -> anyhow::Result<Vec<usize>> {
    let mut sizes = Vec::new();
    let mut h = from;
    while h <= to {
        let page = client.da_blobs(h, 64).await?;
        anyhow::ensure!(!page.is_empty(), "no blob at height {h}");
        for b in page.iter().filter(|b| b.height <= to) {
            let mut prev = [0u8; 32];
            let mut root = [0u8; 32];
            let mut sig = [0u8; 64];
            hex::decode_to_slice(&b.prev_hash, &mut prev)?;
            hex::decode_to_slice(&b.prev_state_root, &mut root)?;
            hex::decode_to_slice(&b.signature, &mut sig)?;
            let blob = DaBlob {
                version: if b.version == 0 {
                    DA_BLOB_VERSION
                } else {
                    b.version
                },
                network: network.to_owned(),
                height: b.height,
                prev_hash: Bytes32(prev),
                prev_state_root: Bytes32(root),
                timestamp_ms: b.timestamp_ms,
                events: b.events.clone(),
                proposer: match &b.proposer {
                    Some(p) => p.parse::<libp2p::PeerId>()?.to_bytes(),
                    None => Vec::new(),
                },
                proposer_sig: Bytes64(match &b.proposer_sig {
                    Some(s) => {
                        let mut sig = [0u8; 64];
                        hex::decode_to_slice(s, &mut sig)?;
                        sig
                    }
                    None => [0; 64],
                }),
                signature: Bytes64(sig),
            };
            anyhow::ensure!(
                hex::encode(blob.hash()?) == b.hash,
                "blob {} rebuilt with another hash",
                b.height
            );
            sizes.push(blob.to_bytes()?.len());
            h = b.height + 1;
        }
    }
    Ok(sizes)
}

async fn latency(nodes: usize, posts: usize, batch_interval_ms: u64) -> anyhow::Result<Split> {
    anyhow::ensure!((2..=80).contains(&nodes), "--nodes must be 2..=80");
    let mut net = TestNet::new("bench-da-latency").await?;
    let cfg = net
        .da_config("coordinator", 10)?
        .with_da(da(batch_interval_ms));
    let mut coordinator_cfg = cfg.clone();
    coordinator_cfg.seeds.bootstrap.static_peers.clear();
    net.spawn("coordinator", NodeMode::Coordinator, 10, &coordinator_cfg)
        .await?;
    let names: Vec<String> = (1..nodes).map(|i| format!("storage-{i}")).collect();
    let launches: Vec<Launch> = names
        .iter()
        .enumerate()
        .map(|(i, n)| Launch::new(n.clone(), "storage", 11 + i as u8, cfg.clone()))
        .collect();
    net.spawn_all(&launches).await?;
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    net.wait_registered(&refs).await?;
    let tip = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &tip, T).await?;
    // Let PEX and the gossipsub mesh settle.
    let want_peers = (nodes - 1).min(4);
    for n in net.nodes() {
        n.wait_until(WAIT, |s| s.connected_peers >= want_peers)
            .await
            .with_context(|| format!("{} connections", n.name()))?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut degree = Vec::new();
    for n in net.nodes() {
        degree.push(n.client().status().await?.connected_peers);
    }
    let coordinator_degree = degree.first().copied().unwrap_or(0);
    degree.sort_unstable();

    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, posts);
    let clients: Vec<_> = net
        .nodes()
        .iter()
        .map(|n| {
            (
                n.name().to_owned(),
                n.client_with_timeout(Duration::from_secs(20)),
            )
        })
        .collect();
    let publisher = net
        .node("coordinator")
        .client_with_timeout(Duration::from_secs(20));
    let mut height = tip.height;
    let (mut per_node, mut last_node, mut post_rtt) = (Vec::new(), Vec::new(), Vec::new());
    let (mut seal, mut gossip_apply) = (Vec::new(), Vec::new());
    for (i, event) in events.iter().enumerate() {
        let next = height + 1;
        let polls: Vec<_> = clients
            .iter()
            .map(|(name, c)| {
                let (name, c) = (name.clone(), c.clone());
                tokio::spawn(async move {
                    let r = c.da_wait_height(next, Duration::from_secs(15)).await;
                    (name, Instant::now(), r)
                })
            })
            .collect();
        // The long-polls are in place before the clock starts.
        tokio::time::sleep(Duration::from_millis(15)).await;
        let t0 = Instant::now();
        let r = publisher
            .da_publish(std::slice::from_ref(event))
            .await
            .with_context(|| format!("POST #{i}"))?;
        post_rtt.push(t0.elapsed());
        anyhow::ensure!(
            r.heights == [next],
            "POST #{i} sealed in {:?}, want [{next}] (another publisher?)",
            r.heights
        );
        let mut worst = Duration::ZERO;
        let mut own = None;
        for p in polls {
            let (name, at, r) = p.await?;
            let st = r.with_context(|| format!("long-poll on {name}"))?;
            anyhow::ensure!(
                st.height >= next,
                "{name} did not reach height {next} within 15 s (at {})",
                st.height
            );
            let d = at.saturating_duration_since(t0);
            per_node.push(d);
            worst = worst.max(d);
            if name == "coordinator" {
                own = Some(d);
            }
        }
        let own = own.context("the coordinator is not long-polled")?;
        last_node.push(worst);
        seal.push(own);
        gossip_apply.push(worst.saturating_sub(own));
        height = next;
    }
    let end = da_tip(net.node("coordinator")).await?;
    anyhow::ensure!(
        end.height == height,
        "coordinator at {end}, want height {height}"
    );
    wait_da_equal(&net.nodes(), &end, T).await?;
    let sizes = blob_sizes(
        &publisher,
        cfg.seeds.network.name.as_str(),
        tip.height + 1,
        height,
    )
    .await?;
    let (per_node, last_node, post_rtt) = (sorted(per_node), sorted(last_node), sorted(post_rtt));
    let (seal, gossip_apply) = (sorted(seal), sorted(gossip_apply));
    println!(
        "end-to-end latency, {nodes} nodes (1 coordinator + {} storage), {posts} POSTs of one \
         event, batch_interval_ms = {batch_interval_ms}{}:",
        nodes - 1,
        if batch_interval_ms == 100 {
            " (the daemon's default)"
        } else {
            ""
        }
    );
    println!(
        "  every node's answer ({} samples): median {}, p99 {}, max {}",
        per_node.len(),
        fmt_ms(percentile(&per_node, 50.0)),
        fmt_ms(percentile(&per_node, 99.0)),
        fmt_ms(percentile(&per_node, 100.0))
    );
    println!(
        "  last node per POST ({} samples):  median {}, p99 {}, max {}",
        last_node.len(),
        fmt_ms(percentile(&last_node, 50.0)),
        fmt_ms(percentile(&last_node, 99.0)),
        fmt_ms(percentile(&last_node, 100.0))
    );
    println!(
        "  POST /v1/da/events round trip (sealed on the coordinator): median {}, p99 {}",
        fmt_ms(percentile(&post_rtt, 50.0)),
        fmt_ms(percentile(&post_rtt, 99.0))
    );
    println!(
        "  seal (coordinator's own answer - POST start): median {}, p99 {}",
        fmt_ms(percentile(&seal, 50.0)),
        fmt_ms(percentile(&seal, 99.0))
    );
    println!(
        "  gossip + apply to the last node beyond the seal (last answer - coordinator's): \
         median {}, p99 {}, max {}",
        fmt_ms(percentile(&gossip_apply, 50.0)),
        fmt_ms(percentile(&gossip_apply, 99.0)),
        fmt_ms(percentile(&gossip_apply, 100.0))
    );
    let mut by_size = sizes.clone();
    by_size.sort_unstable();
    println!(
        "  degree (connected peers) min/median/max {}/{}/{} (coordinator: {coordinator_degree}); \
         blobs of {}..{} bytes (median {})",
        degree.first().copied().unwrap_or(0),
        degree.get(degree.len() / 2).copied().unwrap_or(0),
        degree.last().copied().unwrap_or(0),
        by_size.first().copied().unwrap_or(0),
        by_size.last().copied().unwrap_or(0),
        by_size.get(by_size.len() / 2).copied().unwrap_or(0)
    );
    println!("  final state on all {nodes} nodes: {end}");
    net.pass();
    Ok(Split {
        batch_interval_ms,
        seal: med_p99(&seal),
        gossip_apply: med_p99(&gossip_apply),
        degree: degree.get(degree.len() / 2).copied().unwrap_or(0),
        blob_sizes: sizes,
    })
}

/// Runs `dsdn-bench-gossip-baseline` (next to this executable) with `nodes`, `posts` and
/// the message `sizes`; echoes its report and returns its last-node median and p99.
async fn baseline(
    nodes: usize,
    posts: usize,
    degree: usize,
    sizes: &[usize],
) -> anyhow::Result<(Duration, Duration)> {
    let exe = std::env::current_exe()?.with_file_name(format!(
        "dsdn-bench-gossip-baseline{}",
        std::env::consts::EXE_SUFFIX
    ));
    let sizes: Vec<String> = sizes.iter().map(ToString::to_string).collect();
    let out = tokio::process::Command::new(&exe)
        .args(["--nodes", &nodes.to_string(), "--posts", &posts.to_string()])
        .args(["--sizes", &sizes.join(","), "--degree", &degree.to_string()])
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .output()
        .await
        .with_context(|| format!("run {}", exe.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut result = None;
    for line in text.lines() {
        match line.strip_prefix("RESULT ") {
            Some(r) => result = Some(r.to_owned()),
            None => println!("{line}"),
        }
    }
    anyhow::ensure!(out.status.success(), "the baseline failed: {}", out.status);
    let result = result.context("the baseline printed no RESULT line")?;
    let us = |key: &str| -> anyhow::Result<Duration> {
        let v = result
            .split_whitespace()
            .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
            .with_context(|| format!("no {key} in the baseline's RESULT"))?;
        Ok(Duration::from_micros(v.parse()?))
    };
    Ok((us("last_median_us")?, us("last_p99_us")?))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let events: usize = flag("--events").unwrap_or(10_000);
    let runs: usize = flag("--runs").unwrap_or(5);
    let nodes: usize = flag("--nodes").unwrap_or(20);
    let posts: usize = flag("--posts").unwrap_or(200);
    let fast: Option<u64> = flag("--batch-interval-ms");
    anyhow::ensure!((1..=20).contains(&runs), "--runs must be 1..=20");
    println!(
        "dsdn-bench-da: {} ({} build), {} CPUs",
        dsdn_daemon::localnet::find_dsdnd()?.display(),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        },
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    if !has("--skip-catchup") {
        catch_up(events, runs).await?;
    }
    if !has("--skip-latency") {
        let mut runs = vec![
            latency(
                nodes,
                posts,
                DaConfig::default().batch_interval.as_millis() as u64,
            )
            .await?,
        ];
        if let Some(ms) = fast {
            runs.push(latency(nodes, posts, ms).await?);
        }
        if has("--baseline") {
            let (sizes, degree) = runs
                .last()
                .map(|r| (r.blob_sizes.clone(), r.degree))
                .unwrap_or_default();
            let (b_med, b_p99) = baseline(nodes, posts, degree.max(1), &sizes).await?;
            println!("side by side, {nodes} nodes, {posts} messages of the same sizes, same run:");
            for r in &runs {
                println!(
                    "  dsdnd, batch_interval_ms = {:>3}: seal median {}, p99 {}; gossip + apply \
                     to the last node beyond the seal: median {}, p99 {}; ratio to the \
                     baseline median {:.2}x",
                    r.batch_interval_ms,
                    fmt_ms(r.seal.0),
                    fmt_ms(r.seal.1),
                    fmt_ms(r.gossip_apply.0),
                    fmt_ms(r.gossip_apply.1),
                    r.gossip_apply.0.as_secs_f64() / b_med.as_secs_f64().max(1e-9)
                );
            }
            println!(
                "  plain rust-libp2p gossipsub, last node: median {}, p99 {} (goal: dsdnd \
                 gossip + apply ≤ 5 ms median and ≤ 1.5x this)",
                fmt_ms(b_med),
                fmt_ms(b_p99)
            );
        }
    }
    Ok(())
}
