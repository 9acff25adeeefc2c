//! Hardening against operator mistakes (issue 14 §3, §4, §5) with real `dsdnd` processes on
//! 127.0.0.x: SIGHUP reloads instead of killing, a ban that rested on another configuration
//! is lifted at start, and a copied node key is detected.

use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{agent, eventually, TestNet, WAIT};

/// Sends `signal` (e.g. `-HUP`) to the process `pid` with kill(1).
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    let st = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()?;
    anyhow::ensure!(st.success(), "kill {signal} {pid} failed");
    Ok(())
}

async fn wait_file_contains(path: &std::path::Path, needle: &str) -> anyhow::Result<String> {
    eventually(
        WAIT,
        &format!("{needle:?} in {}", path.display()),
        || async {
            std::fs::read_to_string(path)
                .ok()
                .filter(|t| t.contains(needle))
        },
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_reopens_the_log_and_reloads_what_it_can() -> anyhow::Result<()> {
    let mut net = TestNet::new("sighup").await?;
    let log = net.dir().join("dsdnd.log");
    let log_arg = log.to_string_lossy().into_owned();
    let cfg = net.config();
    net.spawn_with_args(
        "a",
        NodeMode::Bootstrap,
        12,
        &cfg,
        &["--log-file", &log_arg],
    )
    .await?;
    let pid = net.node("a").pid().expect("running");
    wait_file_contains(&log, "dsdnd started").await?;
    let text = std::fs::read_to_string(&log)?;
    assert!(!text.contains('\u{1b}'), "colour codes in a log file");

    // logrotate: move the file away, then SIGHUP.
    let rotated = net.dir().join("dsdnd.log.1");
    std::fs::rename(&log, &rotated)?;
    net.write_config("a", &cfg.clone().with_connection_limits(8, 10))?;
    signal(pid, "-HUP")?;
    let text = wait_file_contains(&log, "reload done").await?;
    assert!(text.contains("log file reopened"), "{text}");
    assert!(text.contains("max_inbound_connections: "), "{text}");
    assert!(text.contains("-> 10"), "{text}");
    assert!(net.node("a").is_running(), "SIGHUP killed the daemon");
    assert!(net.data_dir("a").join(".cookie").exists());

    // A reload that changes the network id is refused; the daemon keeps running.
    net.write_config("a", &cfg.clone().with_network("testnet"))?;
    signal(pid, "-HUP")?;
    let text = wait_file_contains(&log, "reload refused").await?;
    assert!(text.contains("network.name changed"), "{text}");
    agent(net.node("a"), &["status"])
        .await?
        .success("status after SIGHUP")?;

    // SIGTERM still stops it cleanly.
    let status = net.node_mut("a").stop().await?;
    assert!(status.success(), "{status:?}");
    assert!(!net.data_dir("a").join(".cookie").exists(), "stale cookie");
    net.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_node_key_is_detected() -> anyhow::Result<()> {
    let mut net = TestNet::new("clash").await?;
    let cfg = net.config();
    net.spawn("a", NodeMode::Bootstrap, 12, &cfg).await?;
    // A second node started from a copy of a's data directory (its node key).
    let copy = net.data_dir("copy");
    std::fs::create_dir_all(&copy)?;
    std::fs::copy(net.data_dir("a").join("node.key"), copy.join("node.key"))?;
    let cfg_copy = cfg.clone().with_static_peer(net.addr(12));
    net.spawn("copy", NodeMode::Storage, 13, &cfg_copy).await?;
    assert_eq!(net.node("a").peer_id(), net.node("copy").peer_id());
    let status = eventually(WAIT, "the copy reports the clash", || async {
        let s = net.node("copy").client().status().await.ok()?;
        s.warnings
            .iter()
            .any(|w| w.contains("identity clash"))
            .then_some(s)
    })
    .await?;
    assert!(
        status
            .warnings
            .iter()
            .any(|w| w.contains(&net.addr(12).replace(':', "/tcp/")) || w.contains("127.0.0.12")),
        "{:?}",
        status.warnings
    );
    let metrics = net.node("copy").client().metrics_text().await?;
    assert!(
        metrics.contains("node_identity_clash{kind=\"peer_id\"} 1"),
        "{metrics}"
    );
    net.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ban_resting_on_another_configuration_is_lifted_at_start() -> anyhow::Result<()> {
    let mut net = TestNet::new("ban-trap").await?;
    let cfg = net.config();
    net.spawn("a", NodeMode::Bootstrap, 12, &cfg).await?;
    let a_id: libp2p_identity::PeerId = net.node("a").peer_id().parse()?;
    // b's peers.dat holds bans of a: one made under another configuration (a mistyped
    // da_authority, since fixed), as the ban trap left it.
    let b_dir = net.data_dir("b");
    std::fs::create_dir_all(&b_dir)?;
    {
        let network =
            dsdn_protocols::NetworkId::new("devnet").map_err(|e| anyhow::anyhow!("{e}"))?;
        let (store, _) = dsdn_peers::PeerStore::open(&b_dir.join("peers.dat"), &network)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let now = dsdn_integration_tests::unix_now();
        store
            .ban(
                &a_id,
                now + 86_400,
                now,
                dsdn_peers::BanCause::new("da_invalid_blob", Some(0x5eed)),
            )
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        store.flush().map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    let cfg_b = cfg.clone().with_static_peer(net.addr(12));
    net.spawn("b", NodeMode::Storage, 13, &cfg_b).await?;
    eventually(WAIT, "b connects to a again", || async {
        let s = net.node("b").client().status().await.ok()?;
        (s.connected_peers >= 1).then_some(())
    })
    .await?;
    let s = net.node("b").client().status().await?;
    assert_eq!(s.banned_peers, 0);

    // An operator ban stays across a restart, and the status names the way out.
    agent(net.node("b"), &["peers", "ban", &a_id.to_string()])
        .await?
        .success("ban")?;
    net.node_mut("b").restart().await?;
    net.node("b").wait_ready(WAIT).await?;
    let s = net.node("b").client().status().await?;
    assert_eq!(s.banned_peers, 1);
    assert!(
        s.warnings.iter().any(|w| w.contains("peers unban --all")),
        "{s:?}"
    );
    // The ban is listed with its reason (issue 15 §6).
    let bans = agent(net.node("b"), &["peers", "bans"])
        .await?
        .success("peers bans")?;
    assert!(bans.contains("operator"), "{bans}");
    let out = agent(net.node("b"), &["peers", "unban", "--all"])
        .await?
        .success("unban --all")?;
    assert!(out.contains("lifted 1 ban"), "{out}");
    eventually(
        Duration::from_secs(30),
        "b connects to a after unban --all",
        || async {
            let s = net.node("b").client().status().await.ok()?;
            (s.connected_peers >= 1 && s.warnings.is_empty()).then_some(())
        },
    )
    .await?;
    net.pass();
    Ok(())
}

/// The ban trap as an operator meets it: a node started with a mistyped `da_authority` says
/// that its authority looks wrong (not just "no bootstrap source reachable"), and once the
/// key is fixed and the node restarted it follows the log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mistyped_da_authority_is_named_and_fixing_it_recovers() -> anyhow::Result<()> {
    let mut net = TestNet::new("wrong-authority").await?;
    let cfg = net.da_config("coordinator", 20)?;
    let names = net.start_da_net(20, 1, &cfg).await?;
    let ids = net.peer_ids(&names);
    // b knows the coordinator and the storage node, but its da_authority is mistyped.
    let good = cfg.clone().with_static_peer(net.addr(21));
    // The key of another node: a valid Ed25519 key, just not the authority's.
    let (_, other_key) = net.init_identity("not-the-authority")?;
    let wrong = good.clone().with_da_authority(other_key);
    net.spawn("b", NodeMode::Storage, 22, &wrong).await?;
    eventually(WAIT, "b connects to both", || async {
        let s = net.node("b").client().status().await.ok()?;
        (s.connected_peers >= 2).then_some(())
    })
    .await?;
    let events = dsdn_integration_tests::chunk_events(&ids, 40);
    dsdn_integration_tests::da_publish_all(net.node("coordinator"), &events, 10).await?;
    let s = eventually(WAIT, "b names its da_authority", || async {
        let s = net.node("b").client().status().await.ok()?;
        s.warnings
            .iter()
            .any(|w| w.contains("check [network] da_authority"))
            .then_some(s)
    })
    .await?;
    eprintln!("b's warnings: {:?}", s.warnings);
    assert_eq!(net.node("b").client().da_state().await?.height, 0);

    // Fixed and restarted: b follows the log.
    net.write_config("b", &good)?;
    net.node_mut("b").restart().await?;
    net.node("b").wait_ready(WAIT).await?;
    let tip = dsdn_integration_tests::da_tip(net.node("coordinator")).await?;
    eventually(
        Duration::from_secs(30),
        "b reaches the coordinator's tip",
        || async {
            let h = net.node("b").client().da_state().await.ok()?.height;
            (h >= tip.height).then_some(())
        },
    )
    .await?;
    let s = net.node("b").client().status().await?;
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    net.pass();
    Ok(())
}
