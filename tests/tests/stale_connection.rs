//! A peer that restarts under the same PeerId while its old connection stays open: the old
//! process is frozen (SIGSTOP: its kernel keeps the TCP connection alive, as a NAT or a lost
//! host would leave it half-open), and a new process with a copy of its key dials again
//! from another address. The node must drop the connection that stopped answering pings
//! and keep the new one, instead of sending half of its requests into the dead one for the
//! kernel's ~15 minutes of retransmissions.

use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::da::signal;
use dsdn_integration_tests::{eventually, TestNet, WAIT};

/// libp2p's ping (every 15 s, 20 s to answer) reports the frozen connection's first failure
/// about 60 s after its last answer; the duplicate is closed at that first failure.
const DEAD_WITHIN: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_old_connection_of_a_restarted_peer_is_closed() -> anyhow::Result<()> {
    let mut net = TestNet::new("stale-connection").await?;
    net.spawn("hub", NodeMode::Bootstrap, 31, &net.config())
        .await?;
    let cfg = net.config().with_static_peer(net.addr(31));
    net.spawn("old", NodeMode::Storage, 32, &cfg).await?;
    let peer_id = net.node("old").peer_id().to_owned();
    let hub = net.node("hub").client();
    eventually(WAIT, "hub connected to the peer", || async {
        let peers = hub.peers().await.ok()?;
        peers
            .iter()
            .any(|p| p.peer_id == peer_id && p.connected)
            .then_some(())
    })
    .await?;

    // Freeze the old process and start its twin (same node.key) on another address.
    signal(net.node("old"), "STOP")?;
    let twin_dir = net.data_dir("twin");
    std::fs::create_dir_all(&twin_dir)?;
    std::fs::copy(
        net.data_dir("old").join("node.key"),
        twin_dir.join("node.key"),
    )?;
    let twin_started = std::time::Instant::now();
    net.spawn("twin", NodeMode::Storage, 33, &cfg).await?;
    anyhow::ensure!(
        net.node("twin").peer_id() == peer_id,
        "the twin has another key"
    );

    // The hub ends with exactly one connection to the PeerId, younger than the twin: on
    // loopback every dial leaves from 127.0.0.1, so the age tells the two apart.
    let seen = eventually(
        DEAD_WITHIN,
        "the frozen connection to be closed",
        || async {
            let peers = hub.peers().await.ok()?;
            let c = peers
                .iter()
                .find(|p| p.peer_id == peer_id)?
                .connection
                .clone()?;
            (c.connections == 1 && c.age_secs <= twin_started.elapsed().as_secs()).then_some(c)
        },
    )
    .await;
    let closed_after = twin_started.elapsed();
    signal(net.node("old"), "CONT")?;
    let c = seen?;
    eprintln!(
        "[stale-connection] frozen connection closed after {:.0} s; left: {} ({} connection, {} s old)",
        closed_after.as_secs_f64(),
        c.remote_addr,
        c.connections,
        c.age_secs
    );
    anyhow::ensure!(
        std::fs::read_to_string(net.node("hub").log_path())?
            .contains("closing a connection that stopped answering pings"),
        "the hub did not log why it closed the connection"
    );
    // The twin still has its connection to the hub.
    let twin = net.node("twin").client();
    let hub_id = net.node("hub").peer_id().to_owned();
    let peers = twin.peers().await?;
    anyhow::ensure!(
        peers.iter().any(|p| p.peer_id == hub_id && p.connected),
        "the twin lost its connection to the hub"
    );
    net.pass();
    Ok(())
}
