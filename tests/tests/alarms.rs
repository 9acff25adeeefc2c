//! Alarms that mean something (issue 15 §7), with real `dsdnd` processes on 127.0.0.x: a
//! network smaller than `min_peers` raises no partition alarm while every peer is connected,
//! and `status` gives the same verdict as the log when a peer is lost.

use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{eventually, log_matches, TestNet, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_network_is_no_partition_until_a_peer_is_lost() -> anyhow::Result<()> {
    let mut net = TestNet::new("small-net").await?;
    // Two nodes, each wanting three peers.
    let cfg = net.config().with_min_peers(3);
    net.spawn("a", NodeMode::Bootstrap, 30, &cfg).await?;
    let cfg_b = cfg.clone().with_static_peer(net.addr(30));
    net.spawn("b", NodeMode::Storage, 31, &cfg_b).await?;
    eventually(WAIT, "b connected to a", || async {
        let s = net.node("b").client().status().await.ok()?;
        (s.connected_peers >= 1).then_some(())
    })
    .await?;
    // Well past the start-up grace and several recovery rounds.
    tokio::time::sleep(Duration::from_secs(8)).await;
    for name in ["a", "b"] {
        let s = net.node(name).client().status().await?;
        assert!(!s.partitioned, "{name}: {s:?}");
        let alarms = log_matches(net.node(name), 0, Some("ERROR"), "network partition");
        assert!(
            alarms.is_empty(),
            "{name} raised a partition alarm: {alarms:?}"
        );
    }

    // a goes away: b has lost a peer it could reach: the alarm, in the log and in status.
    net.node_mut("a").stop().await?;
    eventually(
        Duration::from_secs(30),
        "b reports the partition",
        || async {
            let s = net.node("b").client().status().await.ok()?;
            let logged =
                !log_matches(net.node("b"), 0, Some("ERROR"), "network partition").is_empty();
            (s.partitioned && logged).then_some(())
        },
    )
    .await?;
    net.pass();
    Ok(())
}
