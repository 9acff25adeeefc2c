//! 28.1.C integration scenarios 6 (every bootstrap source down, then one comes back) and
//! 7 (two partitioned groups merge through a DNS seed and PEX). Real `dsdnd` processes on
//! 127.0.0.x, a real DNS seed server.

use std::net::SocketAddr;
use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    connected_ids, eventually, known_ids, log_matches, metric, metric_opt, wait_connected,
    wait_log, wait_metric, write_peers_dat, Checks, TestNet, WAIT,
};
use dsdn_protocols::PeerSource;

const VOID_SEED: &str = "void.s6.dsdn.test";

/// Starts `lonely` on 127.0.0.13 with every source dead: static peer `static_last` (nothing
/// there yet), DNS seed [`VOID_SEED`] with no address, and a peers.dat of two entries on
/// 127.0.0.96/97 where nothing listens. Checks what holds today while it is isolated.
async fn isolated_node(
    name: &str,
    static_last: u8,
    checks: &mut Checks,
) -> anyhow::Result<TestNet> {
    let mut net = TestNet::new(name).await?;
    net.dns().set_records(VOID_SEED, Vec::new());
    let dir = net.data_dir("lonely");
    std::fs::create_dir_all(&dir)?;
    let dead: Vec<SocketAddr> = [net.addr(96), net.addr(97)]
        .iter()
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    write_peers_dat(
        &dir.join("peers.dat"),
        "devnet",
        &dead,
        PeerSource::PeerExchange,
    )?;
    let cfg = net
        .config()
        .with_dns_seed(VOID_SEED)
        .with_static_peer(net.addr(static_last));
    net.spawn("lonely", NodeMode::Storage, 13, &cfg).await?;

    let lonely = net.node("lonely");
    wait_metric(lonely, "bootstrap_isolated", &[], WAIT, |v| v == 1.0).await?;
    assert!(lonely.client().status().await?.isolated);
    assert_eq!(metric(lonely, "bootstrap_peers_dat_size", &[]).await, 2.0);
    // Every source was tried: both cached entries and the static peer were dialled, the
    // seed was resolved (and gave nothing).
    wait_metric(lonely, "bootstrap_peer_connect_total", &[], WAIT, |v| {
        v >= 3.0
    })
    .await?;
    wait_metric(lonely, "bootstrap_dns_resolve_total", &[], WAIT, |v| {
        v >= 1.0
    })
    .await?;
    assert_eq!(
        metric(lonely, "bootstrap_dns_resolve_success", &[]).await,
        0.0
    );
    // It keeps retrying, and stays up.
    let dials = metric(lonely, "bootstrap_peer_connect_total", &[]).await;
    wait_metric(lonely, "bootstrap_peer_connect_total", &[], WAIT, |v| {
        v > dials
    })
    .await?;
    assert!(lonely.is_running());
    assert_eq!(lonely.client().status().await?.connected_peers, 0);
    // Partition detection starts after a grace of dns_resolve_timeout + 2 ×
    // peer_connect_timeout (6 s with these timings); refused dials fail at once, so the
    // node may get here well before that.
    checks.check(
        "bootstrap_partitioned = 1 while isolated (0 peers < min_peers 1)",
        wait_metric(lonely, "bootstrap_partitioned", &[], WAIT, |v| v == 1.0).await,
    );
    Ok(net)
}

/// What the 28.1.C contract adds for an isolated node, checked after it recovered (the
/// log keeps the lines of the isolated phase).
async fn isolation_contract(net: &TestNet, checks: &mut Checks) {
    let lonely = net.node("lonely");
    let errors = log_matches(lonely, 0, Some("ERROR"), "");
    checks.ensure(
        !errors.is_empty(),
        "no ERROR line logged while every bootstrap source was down (spec: log critical)",
    );
    checks.ensure(
        errors.iter().any(|l| l.to_lowercase().contains("partition")),
        format!("no ERROR line containing \"partition\" (0 peers < min_peers 1); ERROR lines: {errors:?}"),
    );
    checks.ensure(
        metric_opt(lonely, "bootstrap_partition_recovery_total", &[])
            .await
            .unwrap_or(0.0)
            >= 1.0,
        "bootstrap_partition_recovery_total < 1 after a period below min_peers",
    );
    checks.check(
        "bootstrap_partitioned back to 0",
        wait_metric(
            lonely,
            "bootstrap_partitioned",
            &[],
            Duration::from_secs(5),
            |v| v == 0.0,
        )
        .await,
    );
}

/// Scenario 6a: every source down → isolated, retrying; then a node starts on the static
/// peer's address → the isolated node connects on its own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06a_all_sources_down_then_static_peer_returns() -> anyhow::Result<()> {
    let mut checks = Checks::new();
    let mut net = isolated_node("s06a-static-returns", 11, &mut checks).await?;
    net.spawn("returning", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    let lonely = net.node("lonely");
    let back = net.node("returning");
    eventually(
        WAIT,
        "lonely to connect to the returning static peer",
        || async {
            connected_ids(lonely)
                .await
                .iter()
                .any(|id| id == back.peer_id())
                .then_some(())
        },
    )
    .await?;
    wait_metric(lonely, "bootstrap_isolated", &[], WAIT, |v| v == 0.0).await?;
    let peers = lonely.client().peers().await?;
    let p = peers
        .iter()
        .find(|p| p.peer_id == back.peer_id())
        .expect("listed");
    assert_eq!(p.source, "static_config");
    // The dead cached entries were tried and count failures.
    assert!(
        peers
            .iter()
            .filter(|p| !p.connected)
            .all(|p| p.failure_count >= 1),
        "{peers:?}"
    );
    isolation_contract(&net, &mut checks).await;
    checks.finish()?;
    net.pass();
    Ok(())
}

/// Scenario 6b: as 6a, but the DNS seed comes back (gets the address of a live node).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s06b_all_sources_down_then_dns_seed_returns() -> anyhow::Result<()> {
    let mut checks = Checks::new();
    let mut net = isolated_node("s06b-dns-returns", 95, &mut checks).await?;
    net.spawn("seed-node", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    net.set_dns(VOID_SEED, &[11]);
    let lonely = net.node("lonely");
    let seed_node = net.node("seed-node");
    eventually(WAIT, "lonely to connect to the DNS seed's node", || async {
        connected_ids(lonely)
            .await
            .iter()
            .any(|id| id == seed_node.peer_id())
            .then_some(())
    })
    .await?;
    wait_metric(lonely, "bootstrap_isolated", &[], WAIT, |v| v == 0.0).await?;
    assert!(metric(lonely, "bootstrap_dns_resolve_success", &[]).await >= 1.0);
    let peers = lonely.client().peers().await?;
    let p = peers
        .iter()
        .find(|p| p.peer_id == seed_node.peer_id())
        .expect("listed");
    assert_eq!(p.source, "dns_seed");
    isolation_contract(&net, &mut checks).await;
    checks.finish()?;
    net.pass();
    Ok(())
}

const JOIN_SEED: &str = "join.s7.dsdn.test";

/// Scenario 7: two groups of three nodes, each node knowing only its own group (static
/// peers), `min_peers = 3` (a group member has 2 peers), a shared DNS seed without records
/// → below min_peers, every node runs recovery sweeps (resolving the seed) but raises no
/// partition alarm: it is connected to every peer it ever reached (issue 15 §7). Then the
/// seed gets the address of a node of group A → group B resolves it during a sweep, and PEX
/// merges the groups.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s07_partitioned_groups_merge_through_dns_and_pex() -> anyhow::Result<()> {
    let mut net = TestNet::new("s07-partition").await?;
    net.dns().set_records(JOIN_SEED, Vec::new());
    let groups: [(&str, [u8; 3]); 2] = [("a", [21, 22, 23]), ("b", [31, 32, 33])];
    for (g, ips) in groups {
        for (i, last) in ips.iter().enumerate() {
            let cfg = net
                .config()
                .with_min_peers(3)
                .with_dns_seed(JOIN_SEED)
                .with_static_peers(ips.iter().filter(|l| *l != last).map(|l| net.addr(*l)));
            net.spawn(&format!("{g}{}", i + 1), NodeMode::Storage, *last, &cfg)
                .await?;
        }
    }
    let group_of = |name: &str| name.chars().next().unwrap_or('?');
    let all = net.nodes();

    // Phase 1: each group is a clique of 3 and knows nothing of the other.
    for n in &all {
        wait_connected(n, 2, WAIT).await?;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    for n in &all {
        let known = known_ids(n).await;
        for o in all
            .iter()
            .filter(|o| group_of(o.name()) != group_of(n.name()))
        {
            assert!(
                !known.iter().any(|id| id == o.peer_id()),
                "{} knows {} already",
                n.name(),
                o.name()
            );
        }
    }
    let mut checks = Checks::new();
    // Each node's partition check runs on its own maintenance tick; under load a node may
    // be a few seconds later than the first.
    let patience = Duration::from_secs(10);
    for n in &all {
        checks.check(
            &format!("{}: looking for more peers below min_peers", n.name()),
            wait_log(
                n,
                0,
                Some("INFO"),
                "fewer connected peers than min_peers",
                patience,
            )
            .await,
        );
        checks.ensure(
            metric(n, "bootstrap_partitioned", &[]).await == 0.0
                && log_matches(n, 0, Some("ERROR"), "partition").is_empty(),
            format!(
                "{}: a partition alarm in a group that lost nobody",
                n.name()
            ),
        );
    }
    let queries_before = net.dns().query_count();

    // Phase 2: the seed names a1; group B finds it while recovering, PEX does the rest.
    net.set_dns(JOIN_SEED, &[21]);
    let published = std::time::Instant::now();
    let merged = eventually(
        Duration::from_secs(40),
        "every node to know every other",
        || async {
            for n in &all {
                let known = known_ids(n).await;
                if all.iter().any(|o| {
                    o.peer_id() != n.peer_id() && !known.iter().any(|id| id == o.peer_id())
                }) {
                    return None;
                }
            }
            Some(())
        },
    )
    .await;
    eprintln!(
        "s07: groups merged {:.1} s after the seed got a record",
        published.elapsed().as_secs_f64()
    );
    checks.ensure(
        net.dns().query_count() > queries_before,
        "nobody resolved the DNS seed while partitioned (recovery must resolve every seed)",
    );
    let mut b_resolved = 0.0;
    for n in all.iter().filter(|n| group_of(n.name()) == 'b') {
        b_resolved += metric(n, "bootstrap_dns_resolve_success", &[]).await;
    }
    checks.ensure(
        b_resolved >= 1.0,
        "no node of group B resolved the seed successfully",
    );
    if checks.check("groups merged", merged).is_some() {
        for n in &all {
            checks.check(
                &format!("{}: >= 3 connected peers after the merge", n.name()),
                wait_connected(n, 3, WAIT).await,
            );
            checks.check(
                &format!("{}: bootstrap_partitioned back to 0", n.name()),
                wait_metric(n, "bootstrap_partitioned", &[], WAIT, |v| v == 0.0).await,
            );
        }
        let mut recoveries = 0.0;
        for n in &all {
            recoveries += metric(n, "bootstrap_partition_recovery_total", &[]).await;
        }
        checks.ensure(
            recoveries >= 1.0,
            "bootstrap_partition_recovery_total is 0 everywhere",
        );
    }
    checks.finish()?;
    net.pass();
    Ok(())
}
