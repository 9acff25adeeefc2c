//! Crash semantics of peers.dat (issue 11 §3): the address book is written by a background
//! writer in group commits, so a SIGKILL in the middle of a PEX flood may lose the last
//! milliseconds of changes but never the file. Real `dsdnd` processes on 127.0.0.x.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{metric, wait_connected, wait_metric, write_peers_dat, TestNet, WAIT};
use dsdn_protocols::{NetworkId, PeerSource};

/// Entries the bootstrap node serves: one full PEX response.
const FLOOD: usize = 1000;

/// Waits until the joiner has stored at least half of one full PEX response.
async fn wait_flood_learned(net: &TestNet) -> anyhow::Result<()> {
    wait_metric(
        net.node("joiner"),
        "bootstrap_peers_dat_size",
        &[],
        WAIT,
        |v| v >= FLOOD as f64 / 2.0,
    )
    .await?;
    Ok(())
}

/// No `peers.dat.corrupt-*` file next to the node's peers.dat.
fn no_corrupt_file(net: &TestNet, name: &str) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(net.data_dir(name))? {
        let file = entry?.file_name();
        let file = file.to_string_lossy();
        anyhow::ensure!(
            !file.starts_with("peers.dat.corrupt"),
            "{name}: peers.dat was moved aside as {file}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_a_pex_flood_leaves_a_peers_dat_that_opens() -> anyhow::Result<()> {
    let mut net = TestNet::new("crash-pex").await?;
    // The bootstrap node knows 1,000 recently verified peers on loopback addresses where
    // nothing listens (127.0.1.0 – 127.0.4.255): its PEX answers are full, and every dial
    // of the joiner to them fails at once, so the joiner writes a record per learned peer
    // and a failure per dial while it is killed.
    let boot_dir = net.data_dir("boot");
    std::fs::create_dir_all(&boot_dir)?;
    let dead: Vec<SocketAddr> = (0..FLOOD)
        .map(|i| {
            let ip = Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8);
            SocketAddr::new(ip.into(), net.port())
        })
        .collect();
    write_peers_dat(
        &boot_dir.join("peers.dat"),
        "devnet",
        &dead,
        PeerSource::PeerExchange,
    )?;
    net.spawn("boot", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    let cfg = net.config().with_static_peer(net.addr(11));
    net.spawn("joiner", NodeMode::Storage, 12, &cfg).await?;

    // Kill it at different points: just after its first PEX response was learned, right
    // after a restart (its own start-up writes), and a little later (dial failures).
    let pauses = [None, Some(Duration::ZERO), Some(Duration::from_millis(300))];
    for (round, pause) in pauses.into_iter().enumerate() {
        match pause {
            None => wait_flood_learned(&net).await?,
            Some(p) => tokio::time::sleep(p).await,
        }
        net.node_mut("joiner").kill().await?;
        no_corrupt_file(&net, "joiner")?;
        net.node_mut("joiner").restart().await?;
        let joiner = net.node("joiner");
        wait_connected(joiner, 1, WAIT).await?;
        assert_eq!(
            metric(joiner, "bootstrap_peers_dat_corrupt_total", &[]).await,
            0.0,
            "round {round}: peers.dat was found corrupt after SIGKILL"
        );
        assert_eq!(
            metric(joiner, "bootstrap_peers_dat_write_degraded", &[]).await,
            0.0
        );
        no_corrupt_file(&net, "joiner")?;
    }

    // It relearns what a kill lost; a clean stop writes everything, and the file opens.
    wait_flood_learned(&net).await?;
    let commits = metric(net.node("joiner"), "bootstrap_peers_dat_commits_total", &[]).await;
    assert!(commits >= 1.0, "the writer committed nothing: {commits}");
    let size = metric(net.node("joiner"), "bootstrap_peers_dat_size", &[]).await as usize;
    net.node_mut("joiner").stop().await?;
    let network = NetworkId::new("devnet").map_err(|e| anyhow::anyhow!("{e}"))?;
    let (store, report) =
        dsdn_peers::PeerStore::open(&net.data_dir("joiner").join("peers.dat"), &network)?;
    assert_eq!(report.moved_aside, None);
    assert_eq!(report.purged_records, 0);
    assert!(
        store.len() >= size,
        "a clean stop lost entries: {} on disk, {size} before the stop",
        store.len()
    );
    net.pass();
    Ok(())
}
