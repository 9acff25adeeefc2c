//! 28.1.C integration scenarios 2, 4 and 5: which bootstrap source a fresh node ends up
//! using. Real `dsdnd` processes on 127.0.0.x and a real DNS seed server (hickory-server,
//! in-process). Each test has its own port, directory and DNS server, so they run in
//! parallel.

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    connected_ids, eventually, metric, wait_connected, wait_metric, TestNet, WAIT,
};

/// Scenario 2: no DNS seed at all, only static peers → the node bootstraps from them and
/// never resolves anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s02_fresh_node_static_peers_only() -> anyhow::Result<()> {
    let mut net = TestNet::new("s02-static-only").await?;
    let standalone = net.config();
    net.spawn("peer-a", NodeMode::Bootstrap, 11, &standalone)
        .await?;
    net.spawn("peer-b", NodeMode::Storage, 12, &standalone)
        .await?;
    let cfg = net.config().with_static_peers([net.addr(11), net.addr(12)]);
    assert!(cfg.seeds.bootstrap.dns_seeds.is_empty());
    net.spawn("fresh", NodeMode::Storage, 13, &cfg).await?;
    let fresh = net.node("fresh");

    wait_connected(fresh, 1, WAIT).await?;
    let peers = fresh.client().peers().await?;
    let connected: Vec<_> = peers.iter().filter(|p| p.connected).collect();
    assert!(!connected.is_empty());
    for p in &connected {
        assert!(
            p.peer_id == net.node("peer-a").peer_id() || p.peer_id == net.node("peer-b").peer_id(),
            "connected to an unexpected peer {p:?}"
        );
        assert_eq!(p.source, "static_config", "{p:?}");
    }
    assert_eq!(metric(fresh, "bootstrap_dns_resolve_total", &[]).await, 0.0);
    assert_eq!(
        metric(fresh, "bootstrap_dns_resolve_success", &[]).await,
        0.0
    );
    assert!(metric(fresh, "bootstrap_peer_connect_success", &[]).await >= 1.0);
    wait_metric(fresh, "bootstrap_peers_dat_size", &[], WAIT, |v| v >= 1.0).await?;
    assert_eq!(
        net.dns().query_count(),
        0,
        "nobody may have asked the DNS server"
    );
    // Still nothing resolved a few retry intervals later.
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(metric(fresh, "bootstrap_dns_resolve_total", &[]).await, 0.0);
    net.pass();
    Ok(())
}

/// Scenario 4: three DNS seeds, the first two down (one name does not exist, one resolves
/// to an address where nothing listens) → the third seed's node is reached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s04_first_two_dns_seeds_down_third_works() -> anyhow::Result<()> {
    let mut net = TestNet::new("s04-dns-fallback").await?;
    // seed1: NXDOMAIN. seed2: 127.0.0.98, nothing listens there. seed3: the live node.
    net.set_dns("seed2.s4.dsdn.test", &[98]);
    net.set_dns("seed3.s4.dsdn.test", &[11]);
    net.spawn("seed-node", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    let cfg = net.config().with_dns_seeds([
        "seed1.s4.dsdn.test",
        "seed2.s4.dsdn.test",
        "seed3.s4.dsdn.test",
    ]);
    net.spawn("fresh", NodeMode::Storage, 13, &cfg).await?;
    let fresh = net.node("fresh");
    let seed_node = net.node("seed-node");

    wait_connected(fresh, 1, WAIT).await?;
    let peers = fresh.client().peers().await?;
    let sn = peers
        .iter()
        .find(|p| p.peer_id == seed_node.peer_id())
        .ok_or_else(|| anyhow::anyhow!("seed3's node not listed: {peers:?}"))?;
    assert!(sn.connected);
    assert_eq!(sn.source, "dns_seed");

    let total = metric(fresh, "bootstrap_dns_resolve_total", &[]).await;
    let success = metric(fresh, "bootstrap_dns_resolve_success", &[]).await;
    let fallbacks = metric(fresh, "bootstrap_fallback_triggered", &[]).await;
    let dials = metric(fresh, "bootstrap_peer_connect_total", &[]).await;
    let dials_ok = metric(fresh, "bootstrap_peer_connect_success", &[]).await;
    eprintln!(
        "s04: resolve_total {total}, resolve_success {success}, fallback {fallbacks}, \
         connect_total {dials}, connect_success {dials_ok}"
    );
    // All three seeds were resolved, in order: seed1 failed, seed2 and seed3 answered.
    assert!(
        total >= 3.0,
        "bootstrap_dns_resolve_total = {total}, want >= 3"
    );
    assert!(
        success >= 2.0,
        "bootstrap_dns_resolve_success = {success}, want >= 2"
    );
    assert!(
        total - success >= 1.0,
        "seed1 must count as a failed resolution"
    );
    // peers.dat (empty) -> seed1 -> seed2 -> seed3.
    assert!(
        fallbacks >= 3.0,
        "bootstrap_fallback_triggered = {fallbacks}, want >= 3"
    );
    // The dead address of seed2 was dialled and failed before seed3's node answered.
    assert!(dials >= 2.0 && dials_ok >= 1.0 && dials > dials_ok);
    assert!(net.dns().query_count() >= 3);
    net.pass();
    Ok(())
}

/// Scenario 5: every DNS seed down → the node falls back to its static peer. The static
/// peer starts only after both seeds were tried and failed, so the DNS path is really
/// exercised before the fallback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s05_all_dns_seeds_down_fall_back_to_static() -> anyhow::Result<()> {
    let mut net = TestNet::new("s05-static-fallback").await?;
    // down1: NXDOMAIN; down2: the name exists with no address (NODATA).
    net.dns().set_records("down2.s5.dsdn.test", Vec::new());
    let cfg = net
        .config()
        .with_dns_seeds(["down1.s5.dsdn.test", "down2.s5.dsdn.test"])
        .with_static_peer(net.addr(11));
    net.spawn("fresh", NodeMode::Storage, 13, &cfg).await?;
    {
        let fresh = net.node("fresh");
        wait_metric(fresh, "bootstrap_dns_resolve_total", &[], WAIT, |v| {
            v >= 2.0
        })
        .await?;
        assert_eq!(
            metric(fresh, "bootstrap_dns_resolve_success", &[]).await,
            0.0
        );
        assert_eq!(fresh.client().status().await?.connected_peers, 0);
    }

    net.spawn("static-peer", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    let fresh = net.node("fresh");
    let sp = net.node("static-peer");
    eventually(WAIT, "fresh to connect to its static peer", || async {
        connected_ids(fresh)
            .await
            .iter()
            .any(|id| id == sp.peer_id())
            .then_some(())
    })
    .await?;
    let peers = fresh.client().peers().await?;
    let p = peers
        .iter()
        .find(|p| p.peer_id == sp.peer_id())
        .ok_or_else(|| anyhow::anyhow!("static peer not listed"))?;
    assert_eq!(p.source, "static_config");
    assert_eq!(
        metric(fresh, "bootstrap_dns_resolve_success", &[]).await,
        0.0
    );
    // peers.dat (empty) -> static (down) -> down1 -> down2, at least once.
    let fallbacks = metric(fresh, "bootstrap_fallback_triggered", &[]).await;
    assert!(
        fallbacks >= 3.0,
        "bootstrap_fallback_triggered = {fallbacks}, want >= 3"
    );
    assert_eq!(metric(fresh, "bootstrap_isolated", &[]).await, 0.0);
    net.pass();
    Ok(())
}
