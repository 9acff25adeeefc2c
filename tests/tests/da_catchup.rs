//! Issue 5 (the DA event log), late joiners with real `dsdnd` processes: a storage node
//! started after 10,000 events reaches the coordinator's height and root; a late joiner
//! whose DA peer freezes (SIGSTOP) mid-catch-up completes from its other peer; backfill is
//! paced by the answers, not by a timer.

use std::time::{Duration, Instant};

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    chunk_events, da_log_lines, da_publish_all, da_tip, is_connected_to, metric, wait_da_equal,
    DaTip, Frozen, TestNet, WAIT,
};

/// Waits until `node` has applied height `height`; returns when.
async fn wait_height(
    net: &TestNet,
    name: &str,
    height: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let node = net.node(name);
    let client = node.client_with_timeout(timeout + Duration::from_secs(5));
    let st = client
        .da_wait_height(height, timeout)
        .await
        .map_err(|e| anyhow::anyhow!("{name}: long-poll for height {height}: {e}"))?;
    anyhow::ensure!(
        st.height >= height,
        "{name} is at height {} (target {}, pending {}) after {timeout:?}, want {height}\n{}",
        st.height,
        st.target_height,
        st.pending,
        da_log_lines(node, 40)
    );
    Ok(())
}

/// `name` has the same blob at `want.height` as the network.
async fn check_same_chain(net: &TestNet, name: &str, want: &DaTip) -> anyhow::Result<()> {
    let blobs = net.node(name).client().da_blobs(want.height, 1).await?;
    anyhow::ensure!(
        blobs.first().is_some_and(|b| b.hash == want.tip_hash),
        "{name}: blob at height {} is {:?}, want hash {}",
        want.height,
        blobs.first().map(|b| &b.hash),
        want.tip_hash
    );
    Ok(())
}

/// A storage node started after 10,000 events (ten POSTs of 1,000) have been published by
/// a coordinator with two storage nodes reaches the same chain and root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_after_10000_events() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-late-10k").await?;
    let cfg = net.da_config("coordinator", 70)?;
    let names = net.start_da_net(70, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 10_000);
    let started = Instant::now();
    let heights = da_publish_all(net.node("coordinator"), &events, 1000).await?;
    let published = da_tip(net.node("coordinator")).await?;
    eprintln!(
        "published 10,000 events in {} blobs in {:.2} s: {published}",
        heights.len(),
        started.elapsed().as_secs_f64()
    );
    anyhow::ensure!(published.events >= 10_000 + 2, "{published}");
    wait_da_equal(&net.nodes(), &published, Duration::from_secs(40)).await?;

    let started = Instant::now();
    net.spawn("late", NodeMode::Storage, 73, &cfg).await?;
    wait_height(&net, "late", published.height, Duration::from_secs(40)).await?;
    let took = started.elapsed();
    check_same_chain(&net, "late", &published).await?;
    eprintln!(
        "late joiner: {} blobs / {} events caught up in {:.2} s (process start to height {})",
        published.height,
        published.events,
        took.as_secs_f64(),
        published.height
    );
    let received = metric(net.node("late"), "da_sync_blobs_received_total", &[]).await;
    anyhow::ensure!(
        received >= published.height as f64,
        "the late joiner received {received} blobs over da-sync, want ≥ {}",
        published.height
    );
    // It then registers itself (one more blob); everyone ends on the same root.
    net.wait_registered(&["late"]).await?;
    let end = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &end, Duration::from_secs(20)).await?;
    net.pass();
    Ok(())
}

/// A late joiner with two DA peers, one of which is frozen (SIGSTOP) as soon as the joiner
/// connects to it: the requests to it stall and move to the other; the joiner reaches the
/// same chain and counts the stall.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_joiner_bypasses_a_stalled_peer() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-stalled-peer").await?;
    let mut cfg = net.da_config("coordinator", 80)?;
    // Many small blobs: the catch-up takes many requests.
    cfg.seeds.da.batch_max_events = 8;
    let names = net.start_da_net(80, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    da_publish_all(net.node("coordinator"), &chunk_events(&ids, 4000), 1000).await?;
    let want = da_tip(net.node("coordinator")).await?;
    anyhow::ensure!(want.height >= 500, "{want}: want ≥ 500 blobs");
    wait_da_equal(&net.nodes(), &want, Duration::from_secs(40)).await?;
    // The coordinator leaves: the joiner's only DA peers are the two storage nodes.
    net.node_mut("coordinator").stop().await?;
    dsdn_integration_tests::eventually(WAIT, "storage-1 and storage-2 connected", || async {
        is_connected_to(net.node("storage-1"), net.node("storage-2"))
            .await
            .then_some(())
    })
    .await?;

    let mut joiner_cfg = net
        .config()
        .with_da_authority(cfg.da_authority_hex().unwrap_or_default())
        .with_da(cfg.seeds.da.clone())
        .with_static_peer(net.addr(81))
        .with_static_peer(net.addr(82));
    // Small chunks: many requests, some of them to the frozen peer.
    joiner_cfg.seeds.da.sync_chunk_blobs = 1;
    let started = Instant::now();
    net.spawn("joiner", NodeMode::Storage, 83, &joiner_cfg)
        .await?;
    let frozen = loop {
        if is_connected_to(net.node("joiner"), net.node("storage-1")).await {
            break Frozen::freeze(net.node("storage-1"))?;
        }
        anyhow::ensure!(
            started.elapsed() < WAIT,
            "the joiner never connected to storage-1\n{}",
            da_log_lines(net.node("joiner"), 30)
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let at_freeze = da_tip(net.node("joiner")).await?;
    eprintln!("storage-1 frozen with the joiner at {at_freeze}");
    anyhow::ensure!(
        at_freeze.height < want.height,
        "the joiner had caught up ({at_freeze}) before storage-1 was frozen: nothing to test"
    );
    wait_height(&net, "joiner", want.height, Duration::from_secs(40)).await?;
    let took = started.elapsed();
    check_same_chain(&net, "joiner", &want).await?;
    let joiner = net.node("joiner");
    let final_tip = da_tip(joiner).await?;
    anyhow::ensure!(final_tip == want, "joiner at {final_tip}, want {want}");
    let stalled = metric(joiner, "da_sync_requests_total", &[("result", "stalled")]).await;
    let failed = metric(joiner, "da_sync_requests_total", &[("result", "failed")]).await;
    let ok = metric(joiner, "da_sync_requests_total", &[("result", "ok")]).await;
    eprintln!(
        "joiner caught up {} blobs in {:.2} s around a frozen peer: requests ok {ok}, stalled {stalled}, failed {failed}",
        want.height,
        took.as_secs_f64()
    );
    anyhow::ensure!(
        stalled + failed >= 1.0,
        "no stalled or failed da-sync request on the joiner although storage-1 was frozen\n{}",
        da_log_lines(joiner, 40)
    );
    let served_by_2 = metric(net.node("storage-2"), "da_sync_blobs_served_total", &[]).await;
    anyhow::ensure!(served_by_2 >= 1.0, "storage-2 served nothing");

    // storage-1 resumes and is still at the tip.
    drop(frozen);
    let up: Vec<_> = net
        .nodes()
        .into_iter()
        .filter(|n| n.name() != "coordinator")
        .collect();
    wait_da_equal(&up, &want, Duration::from_secs(20)).await?;
    net.pass();
    Ok(())
}

/// Backfill pace: a late joiner asking its three peers for 2 blobs per request must fetch
/// about 100 small blobs in a few seconds on loopback (each request takes milliseconds).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backfill_is_paced_by_responses_not_by_the_1s_tick() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-backfill-pace").await?;
    let mut cfg = net.da_config("coordinator", 90)?;
    // About 100 small blobs.
    cfg.seeds.da.batch_max_events = 20;
    let names = net.start_da_net(90, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    da_publish_all(net.node("coordinator"), &chunk_events(&ids, 2000), 1000).await?;
    let want = da_tip(net.node("coordinator")).await?;
    anyhow::ensure!(want.height >= 100, "{want}: want ≥ 100 blobs");
    wait_da_equal(&net.nodes(), &want, Duration::from_secs(40)).await?;

    let mut joiner_cfg = net
        .config()
        .with_da_authority(cfg.da_authority_hex().unwrap_or_default())
        .with_da(cfg.seeds.da.clone())
        .with_static_peer(net.addr(90))
        .with_static_peer(net.addr(91))
        .with_static_peer(net.addr(92));
    joiner_cfg.seeds.da.sync_chunk_blobs = 2;
    let started = Instant::now();
    net.spawn("joiner", NodeMode::Storage, 93, &joiner_cfg)
        .await?;
    wait_height(&net, "joiner", want.height, Duration::from_secs(40)).await?;
    let took = started.elapsed();
    check_same_chain(&net, "joiner", &want).await?;
    let ok = metric(
        net.node("joiner"),
        "da_sync_requests_total",
        &[("result", "ok")],
    )
    .await;
    eprintln!(
        "{} blobs in {ok} requests of 2 blobs: {:.2} s",
        want.height,
        took.as_secs_f64()
    );
    anyhow::ensure!(
        took < Duration::from_secs(6),
        "backfill of {} blobs in chunks of 2 from 3 peers took {took:?} ({ok} requests): \
         paced by a timer, not by the answers\n{}",
        want.height,
        da_log_lines(net.node("joiner"), 30)
    );
    net.pass();
    Ok(())
}
