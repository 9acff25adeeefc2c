//! 28.1.C integration scenarios 3 (warm restart from peers.dat, no DNS) and 12 (peers.dat
//! corrupt or deleted). Real `dsdnd` processes on 127.0.0.x, a real DNS seed server.

use std::time::{Duration, Instant};

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    log_offset, metric, metric_opt, wait_connected, wait_log, wait_metric, TestNet, WAIT,
};

/// Scenario 3: a node that has peers is stopped, its DNS seed disappears, and it is started
/// again → connected within 5 s from peers.dat, without a single DNS query.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s03_warm_restart_without_dns() -> anyhow::Result<()> {
    let mut net = TestNet::new("s03-warm-restart").await?;
    net.set_dns("seed.s3.dsdn.test", &[11, 12]);
    net.spawn("boot-1", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    net.spawn("boot-2", NodeMode::Bootstrap, 12, &net.config())
        .await?;
    let cfg = net.config().with_dns_seed("seed.s3.dsdn.test");
    net.spawn("joiner", NodeMode::Storage, 13, &cfg).await?;
    {
        let joiner = net.node("joiner");
        wait_connected(joiner, 1, WAIT).await?;
        assert!(metric(joiner, "bootstrap_dns_resolve_success", &[]).await >= 1.0);
        wait_metric(joiner, "bootstrap_peers_dat_size", &[], WAIT, |v| v >= 1.0).await?;
    }
    let before_stop = log_offset(net.node("joiner"));
    net.node_mut("joiner").stop().await?;
    assert!(net.data_dir("joiner").join("peers.dat").is_file());
    // A clean shutdown remembers its outbound peers as anchors (28.1.B, Bitcoin Core's
    // anchors.dat) ...
    let saved = wait_log(
        net.node("joiner"),
        before_stop,
        Some("INFO"),
        "anchors saved",
        WAIT,
    )
    .await?;
    assert!(saved.contains("anchors=2"), "{saved}");

    // The seed is gone: NXDOMAIN from now on.
    assert!(net.dns().remove("seed.s3.dsdn.test"));
    let queries_before = net.dns().query_count();
    let started = Instant::now();
    net.node_mut("joiner").restart().await?;
    let joiner = net.node("joiner");
    wait_connected(joiner, 1, WAIT).await?;
    let took = started.elapsed();
    eprintln!("s03: warm restart connected in {:.2} s", took.as_secs_f64());
    // ... and dials them first at the next start.
    let dialled = wait_log(
        joiner,
        before_stop,
        Some("INFO"),
        "dialling the anchors",
        WAIT,
    )
    .await?;
    assert!(dialled.contains("count=2"), "{dialled}");

    assert_eq!(
        metric(joiner, "bootstrap_dns_resolve_total", &[]).await,
        0.0
    );
    assert_eq!(
        net.dns().query_count(),
        queries_before,
        "the DNS server was queried"
    );
    assert!(metric(joiner, "bootstrap_peer_connect_success", &[]).await >= 1.0);
    let peers = joiner.client().peers().await?;
    for p in peers.iter().filter(|p| p.connected) {
        assert!(
            p.peer_id == net.node("boot-1").peer_id() || p.peer_id == net.node("boot-2").peer_id(),
            "{p:?}"
        );
        assert_eq!(
            p.source, "dns_seed",
            "the source is kept in peers.dat: {p:?}"
        );
    }
    assert!(
        took < Duration::from_secs(5),
        "warm restart took {took:?}, want < 5 s"
    );
    // And it stays without DNS while connected.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        metric(joiner, "bootstrap_dns_resolve_total", &[]).await,
        0.0
    );
    net.pass();
    Ok(())
}

/// A seed node (DNS), a static node, and `node` that knows both; returns once `node` has
/// both in peers.dat and is stopped.
async fn net_with_stopped_node(name: &str) -> anyhow::Result<TestNet> {
    let mut net = TestNet::new(name).await?;
    net.set_dns("seed.s12.dsdn.test", &[11]);
    net.spawn("seed-node", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    net.spawn("static-node", NodeMode::Storage, 12, &net.config())
        .await?;
    let cfg = net
        .config()
        .with_dns_seed("seed.s12.dsdn.test")
        .with_static_peer(net.addr(12));
    net.spawn("node", NodeMode::Storage, 13, &cfg).await?;
    let node = net.node("node");
    wait_connected(node, 1, WAIT).await?;
    wait_metric(node, "bootstrap_peers_dat_size", &[], WAIT, |v| v >= 1.0).await?;
    net.node_mut("node").stop().await?;
    Ok(net)
}

/// Pseudo-random bytes (xorshift), different on every run.
fn garbage(len: usize) -> Vec<u8> {
    let mut x = dsdn_integration_tests::unix_now() | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Files of `dir` named `peers.dat.corrupt-<unix seconds>` (optionally `.N`).
fn corrupt_files(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                    name.strip_prefix("peers.dat.corrupt-").is_some_and(|rest| {
                        let secs = rest.split('.').next().unwrap_or_default();
                        !secs.is_empty() && secs.bytes().all(|b| b.is_ascii_digit())
                    })
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Scenario 12a: peers.dat overwritten with random bytes → the node starts, moves the file
/// aside as `peers.dat.corrupt-<unix-seconds>`, warns, counts it, and rebuilds peers.dat
/// from its static peer and DNS seed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12a_corrupt_peers_dat_is_moved_aside_and_rebuilt() -> anyhow::Result<()> {
    let mut net = net_with_stopped_node("s12a-corrupt").await?;
    let dir = net.data_dir("node");
    let bytes = garbage(8192);
    std::fs::write(dir.join("peers.dat"), &bytes)?;
    let before = dsdn_integration_tests::unix_now();
    let offset = log_offset(net.node("node"));
    net.node_mut("node").restart().await?;
    let node = net.node("node");
    node.wait_ready(WAIT).await?;

    let line = wait_log(node, offset, Some("WARN"), "corrupt", WAIT).await?;
    eprintln!("s12a: {line}");
    let moved = corrupt_files(&dir);
    assert_eq!(
        moved.len(),
        1,
        "want one peers.dat.corrupt-<secs> in {}: {moved:?}",
        dir.display()
    );
    assert_eq!(
        std::fs::read(&moved[0])?,
        bytes,
        "the corrupt file must be moved, not rewritten"
    );
    let secs: u64 = moved[0]
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.trim_start_matches("peers.dat.corrupt-").split('.').next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    assert!(
        secs + 5 >= before && secs <= dsdn_integration_tests::unix_now() + 5,
        "suffix {secs}"
    );

    // Rebuilt from the static peer / DNS seed.
    wait_connected(node, 1, WAIT).await?;
    wait_metric(node, "bootstrap_peers_dat_size", &[], WAIT, |v| v >= 1.0).await?;
    assert!(dir.join("peers.dat").is_file());
    assert!(metric(node, "bootstrap_peer_connect_success", &[]).await >= 1.0);

    // The new counter (28.1.C §8).
    let corrupt = metric_opt(node, "bootstrap_peers_dat_corrupt_total", &[]).await;
    assert_eq!(corrupt, Some(1.0), "bootstrap_peers_dat_corrupt_total");
    net.pass();
    Ok(())
}

/// Scenario 12b: peers.dat deleted → the node starts normally (nothing to move aside) and
/// bootstraps again from its static peer and DNS seed, writing a new peers.dat.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s12b_deleted_peers_dat_is_rebuilt() -> anyhow::Result<()> {
    let mut net = net_with_stopped_node("s12b-deleted").await?;
    let dir = net.data_dir("node");
    std::fs::remove_file(dir.join("peers.dat"))?;
    net.node_mut("node").restart().await?;
    let node = net.node("node");
    node.wait_ready(WAIT).await?;
    wait_connected(node, 1, WAIT).await?;
    wait_metric(node, "bootstrap_peers_dat_size", &[], WAIT, |v| v >= 1.0).await?;
    assert!(dir.join("peers.dat").is_file());
    assert!(corrupt_files(&dir).is_empty(), "nothing was corrupt");
    assert_eq!(
        metric(node, "bootstrap_peers_dat_corrupt_total", &[]).await,
        0.0
    );
    // peers.dat started empty: this run's outbound handshakes went to the static peer or
    // the seed's node (the other two may also have dialled back in).
    assert!(metric(node, "bootstrap_peer_connect_success", &[]).await >= 1.0);
    let known = [
        net.node("seed-node").peer_id(),
        net.node("static-node").peer_id(),
    ];
    let peers = node.client().peers().await?;
    for p in peers.iter().filter(|p| p.connected) {
        assert!(known.contains(&p.peer_id.as_str()), "unexpected peer {p:?}");
    }
    net.pass();
    Ok(())
}
