//! 28.1.C integration scenario 10 (eclipse warning when every peer comes from one source)
//! and the anti-abuse rate limit on inbound connections per IP (28.1.C §6). Real `dsdnd`
//! processes on 127.0.0.x, a real DNS seed server, raw TCP sockets.

use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    agent, connected_ids, eventually, ip, is_connected_to, log_offset, wait_connected, wait_log,
    wait_metric, Checks, TestNet, WAIT,
};
use tokio::io::AsyncReadExt;

/// Scenario 10: a node whose two peers both come from the DNS seed → the eclipse warning
/// (gauge and WARN log); a peer of another source is added with `dsdn-agent peers add`
/// (or, if the agent fails, as a static peer in its config and a restart) → it clears.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s10_single_source_eclipse_warning_clears_with_a_second_source() -> anyhow::Result<()> {
    let mut net = TestNet::new("s10-eclipse").await?;
    net.set_dns("seed.s10.dsdn.test", &[11, 12]);
    net.spawn("dns-1", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    net.spawn("dns-2", NodeMode::Bootstrap, 12, &net.config())
        .await?;
    net.spawn("other", NodeMode::Storage, 14, &net.config())
        .await?;
    let cfg = net
        .config()
        .with_min_peers(2)
        .with_dns_seed("seed.s10.dsdn.test");
    net.spawn("victim", NodeMode::Storage, 13, &cfg).await?;
    let mut checks = Checks::new();
    {
        let victim = net.node("victim");
        wait_connected(victim, 2, WAIT).await?;
        let peers = victim.client().peers().await?;
        let sources: Vec<&str> = peers
            .iter()
            .filter(|p| p.connected)
            .map(|p| p.source.as_str())
            .collect();
        assert!(sources.iter().all(|s| *s == "dns_seed"), "{sources:?}");
        checks.check(
            "bootstrap_eclipse_warning = 1 with 2 peers, all from dns_seed",
            wait_metric(
                victim,
                "bootstrap_eclipse_warning",
                &[],
                Duration::from_secs(5),
                |v| v == 1.0,
            )
            .await,
        );
        checks.check(
            "WARN log about the eclipse risk",
            wait_log(victim, 0, Some("WARN"), "eclipse", Duration::from_secs(2)).await,
        );
        checks.check(
            "bootstrap_active_peers_by_type{service=\"bootstrap\"} = 2",
            wait_metric(
                victim,
                "bootstrap_active_peers_by_type",
                &[("service", "bootstrap")],
                Duration::from_secs(2),
                |v| v == 2.0,
            )
            .await,
        );
        checks.check(
            "bootstrap_peers_dat_entries_by_source{source=\"dns_seed\"} >= 2",
            wait_metric(
                victim,
                "bootstrap_peers_dat_entries_by_source",
                &[("source", "dns_seed")],
                Duration::from_secs(2),
                |v| v >= 2.0,
            )
            .await,
        );
    }

    // A second source: the operator adds a static peer.
    let other_addr = net.addr(14);
    let added = agent(net.node("victim"), &["peers", "add", &other_addr]).await?;
    added.success("peers add")?;
    let victim = net.node("victim");
    let other = net.node("other");
    eventually(WAIT, "victim to connect to the added peer", || async {
        is_connected_to(victim, other).await.then_some(())
    })
    .await?;
    let peers = victim.client().peers().await?;
    let p = peers
        .iter()
        .find(|p| p.peer_id == other.peer_id())
        .expect("listed");
    assert_eq!(p.source, "static_config");
    checks.check(
        "bootstrap_eclipse_warning back to 0 with peers from dns_seed and static_config",
        wait_metric(victim, "bootstrap_eclipse_warning", &[], WAIT, |v| v == 0.0).await,
    );
    checks.check(
        "bootstrap_peers_dat_entries_by_source{source=\"static_config\"} >= 1",
        wait_metric(
            victim,
            "bootstrap_peers_dat_entries_by_source",
            &[("source", "static_config")],
            WAIT,
            |v| v >= 1.0,
        )
        .await,
    );
    checks.finish()?;
    net.pass();
    Ok(())
}

/// Anti-abuse: with `inbound_per_ip_per_minute = 5`, 15 raw TCP connections from
/// 127.0.0.60 within seconds → the daemon refuses the excess before any handshake (closes
/// them, counts `bootstrap_inbound_rate_limited_total`), while a node on 127.0.0.61 still
/// connects.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_rate_limit_per_ip() -> anyhow::Result<()> {
    const LIMIT: u32 = 5;
    const ATTEMPTS: usize = 15;
    let mut net = TestNet::new("anti-abuse").await?;
    let cfg = net.config().with_inbound_per_ip_per_minute(LIMIT);
    net.spawn("target", NodeMode::Bootstrap, 11, &cfg).await?;
    let target_addr = net.node("target").listen_addr();

    let mut sockets = Vec::new();
    for _ in 0..ATTEMPTS {
        let sock = tokio::net::TcpSocket::new_v4()?;
        sock.bind((ip(60), 0).into())?;
        // The kernel accepts even a refused connection (the daemon closes it right after).
        sockets.push(sock.connect(target_addr).await?);
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    // A refused connection is closed by the daemon; an accepted one waits for our
    // multistream-select header (the dialer speaks first) and stays open.
    let mut closed = 0;
    for s in &mut sockets {
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(1500), s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => closed += 1,
            _ => {}
        }
    }
    eprintln!("anti-abuse: {closed} of {ATTEMPTS} raw connections from 127.0.0.60 were closed by the daemon");

    // Another IP is not affected.
    let offset = log_offset(net.node("target"));
    let joiner_cfg = net.config().with_static_peer(net.addr(11));
    net.spawn("joiner", NodeMode::Storage, 61, &joiner_cfg)
        .await?;
    let target = net.node("target");
    let joiner = net.node("joiner");
    eventually(WAIT, "the node on 127.0.0.61 to connect", || async {
        connected_ids(target)
            .await
            .iter()
            .any(|id| id == joiner.peer_id())
            .then_some(())
    })
    .await?;
    let _ = offset;

    let mut checks = Checks::new();
    checks.check(
        "bootstrap_inbound_rate_limited_total > 0",
        wait_metric(
            target,
            "bootstrap_inbound_rate_limited_total",
            &[],
            Duration::from_secs(5),
            |v| v > 0.0,
        )
        .await,
    );
    checks.ensure(
        closed >= ATTEMPTS - LIMIT as usize - 2,
        format!(
            "only {closed} of {ATTEMPTS} connections from one IP were refused (limit {LIMIT}/min)"
        ),
    );
    checks.finish()?;
    drop(sockets);
    net.pass();
    Ok(())
}
