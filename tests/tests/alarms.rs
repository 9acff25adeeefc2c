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

/// `dsdnd` started where there is no seeds.toml and without `--config` runs on the
/// documented defaults and says so (issue 15 §9); its API answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dsdnd_starts_without_a_config_file_on_the_defaults() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir()?;
    let ip = dsdn_integration_tests::ip(32);
    let lease = dsdn_daemon::localnet::reserve_port(&[ip])?;
    let port = lease.port();
    drop(lease);
    let mut child = std::process::Command::new(dsdn_daemon::localnet::find_dsdnd()?)
        .current_dir(dir.path())
        .args(["--mode", "bootstrap", "--data-dir", "data"])
        .args(["--listen", &format!("{ip}:{port}")])
        .args(["--api", &format!("{ip}:{}", port + 1)])
        .env_remove("RUST_LOG")
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut seen = Vec::new();
    let found = loop {
        match rx.recv_timeout(WAIT) {
            Ok(l) if l.contains("no configuration file") => break Some(l),
            Ok(l) => seen.push(l),
            Err(_) => break None,
        }
    };
    let status = tokio::time::timeout(WAIT, async {
        loop {
            let c = dsdn_daemon::client::ApiClient::new(format!("{ip}:{}", port + 1).parse()?)
                .with_cookie_file(dir.path().join("data/.cookie"));
            if let Ok(s) = c.status().await {
                return anyhow::Ok(s);
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let _ = child.kill();
    let _ = child.wait();
    let line = found.unwrap_or_else(|| panic!("no defaults line; log:\n{}", seen.join("\n")));
    assert!(line.contains("network=devnet"), "{line}");
    let status = status??;
    assert_eq!(status.network, "devnet");
    Ok(())
}
