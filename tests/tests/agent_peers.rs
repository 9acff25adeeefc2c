//! End to end through the real `dsdn-agent` binary (28.1.C §7): `peers add`, `add-seed`,
//! `list`, `stats --json`, `ban`, `unban`, `reset`, with the bearer token read from the
//! node's `<data dir>/.cookie`; additions persist in `<data dir>/added-peers.toml` and
//! survive a restart.

use std::net::SocketAddr;
use std::time::Duration;

use dsdn_daemon::localnet::{Node, NodeMode};
use dsdn_integration_tests::{
    agent, eventually, is_connected_to, known_ids, log_offset, metric, wait_log, write_peers_dat,
    Checks, TestNet, WAIT,
};
use dsdn_protocols::PeerSource;

const SEED: &str = "extra.agent.dsdn.test";

/// `peers list --json`, parsed.
async fn list_json(node: &Node) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = agent(node, &["peers", "list", "--json"])
        .await?
        .success("peers list --json")?;
    Ok(serde_json::from_str(&out)?)
}

/// The `peers list --json` entry of `peer_id`.
async fn entry(node: &Node, peer_id: &str) -> anyhow::Result<Option<serde_json::Value>> {
    Ok(list_json(node)
        .await?
        .into_iter()
        .find(|p| p["peer_id"].as_str() == Some(peer_id)))
}

fn is_banned(entry: &serde_json::Value) -> bool {
    entry["banned_until"].as_u64().is_some() || entry["banned"].as_bool() == Some(true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_peer_commands_end_to_end() -> anyhow::Result<()> {
    let mut net = TestNet::new("agent-peers").await?;
    net.set_dns(SEED, &[12]);
    net.spawn("static-b", NodeMode::Bootstrap, 11, &net.config())
        .await?;
    net.spawn("seeded-c", NodeMode::Storage, 12, &net.config())
        .await?;
    // The node under test starts with no bootstrap source at all.
    let cfg = net.config();
    net.spawn("node", NodeMode::Storage, 13, &cfg).await?;
    let config_text = std::fs::read_to_string(net.config_path("node"))?;
    let dir = net.data_dir("node");
    let added_file = dir.join("added-peers.toml");
    let b_addr = net.addr(11);
    let mut checks = Checks::new();

    // 1. `peers add` dials at once and persists.
    {
        let node = net.node("node");
        let (b, c) = (net.node("static-b"), net.node("seeded-c"));
        agent(node, &["peers", "add", &b_addr])
            .await?
            .success("peers add")?;
        let text = std::fs::read_to_string(&added_file)?;
        assert!(
            text.contains(&b_addr),
            "added-peers.toml lacks {b_addr}:\n{text}"
        );
        eventually(WAIT, "node to connect to the added static peer", || async {
            is_connected_to(node, b).await.then_some(())
        })
        .await?;
        // Adding it twice is refused.
        let again = agent(node, &["peers", "add", &b_addr]).await?;
        checks.ensure(
            !again.ok,
            "a second `peers add` of the same address succeeded",
        );

        // 2. `peers add-seed` resolves at once and persists.
        agent(node, &["peers", "add-seed", SEED])
            .await?
            .success("peers add-seed")?;
        let text = std::fs::read_to_string(&added_file)?;
        assert!(
            text.contains(SEED),
            "added-peers.toml lacks {SEED}:\n{text}"
        );
        eventually(WAIT, "node to connect to the added seed's node", || async {
            is_connected_to(node, c).await.then_some(())
        })
        .await?;

        // 3. list and stats.
        let list = list_json(node).await?;
        for (who, source) in [(b, "static_config"), (c, "dns_seed")] {
            let e = list
                .iter()
                .find(|p| p["peer_id"].as_str() == Some(who.peer_id()))
                .ok_or_else(|| anyhow::anyhow!("{} not in peers list: {list:?}", who.name()))?;
            assert_eq!(e["source"].as_str(), Some(source), "{e}");
            assert_eq!(e["connected"].as_bool(), Some(true), "{e}");
        }
        let stats = agent(node, &["peers", "stats", "--json"])
            .await?
            .success("peers stats --json")?;
        let v: serde_json::Value = serde_json::from_str(&stats)
            .map_err(|e| anyhow::anyhow!("stats --json is not JSON ({e}): {stats}"))?;
        assert!(v.is_object(), "{stats}");
        assert!(
            stats.contains(&b_addr) && stats.contains(SEED),
            "stats lack the additions: {stats}"
        );
        if let Some(n) = v.get("connected").and_then(serde_json::Value::as_u64) {
            assert!(n >= 2, "{stats}");
        }
        let text = agent(node, &["peers", "stats"])
            .await?
            .success("peers stats")?;
        assert!(!text.trim().is_empty());
    }

    // 4. ban: C is disconnected and kept out; the list shows it banned. Then unban.
    {
        let node = net.node("node");
        let c = net.node("seeded-c");
        agent(node, &["peers", "ban", c.peer_id(), "--for", "10m"])
            .await?
            .success("peers ban")?;
        eventually(
            Duration::from_secs(5),
            "the banned peer to be disconnected",
            || async { (!is_connected_to(node, c).await).then_some(()) },
        )
        .await?;
        // C redials (it has nobody else) and node retries its cache: neither may succeed.
        tokio::time::sleep(Duration::from_secs(4)).await;
        assert!(!is_connected_to(node, c).await, "a banned peer came back");
        let e = entry(node, c.peer_id())
            .await?
            .ok_or_else(|| anyhow::anyhow!("banned peer not listed"))?;
        assert!(is_banned(&e), "peers list does not show the ban: {e}");
        checks.ensure(
            metric(node, "bootstrap_peers_dat_banned", &[]).await >= 1.0,
            "bootstrap_peers_dat_banned < 1 with a banned peer",
        );
        agent(node, &["peers", "unban", c.peer_id()])
            .await?
            .success("peers unban")?;
        let e = entry(node, c.peer_id())
            .await?
            .ok_or_else(|| anyhow::anyhow!("peer not listed"))?;
        assert!(!is_banned(&e), "still banned after unban: {e}");
        eventually(WAIT, "the unbanned peer to reconnect", || async {
            is_connected_to(node, c).await.then_some(())
        })
        .await?;
    }

    // 5. The additions survive a restart: peers.dat is replaced by one dead entry, so only
    //    added-peers.toml can bring B and C back. seeds.toml is unchanged.
    net.node_mut("node").stop().await?;
    std::fs::remove_file(dir.join("peers.dat"))?;
    let dead: SocketAddr = net.addr(98).parse()?;
    let dead_id = write_peers_dat(
        &dir.join("peers.dat"),
        "devnet",
        &[dead],
        PeerSource::PeerExchange,
    )?
    .pop()
    .expect("one id");
    net.node_mut("node").restart().await?;
    {
        let node = net.node("node");
        node.wait_ready(WAIT).await?;
        let (b, c) = (net.node("static-b"), net.node("seeded-c"));
        eventually(
            WAIT,
            "node to reconnect to B and C after the restart",
            || async {
                (is_connected_to(node, b).await && is_connected_to(node, c).await).then_some(())
            },
        )
        .await?;
        assert_eq!(
            std::fs::read_to_string(net.config_path("node"))?,
            config_text
        );
        assert!(known_ids(node).await.contains(&dead_id));
        let stats = agent(node, &["peers", "stats", "--json"])
            .await?
            .success("peers stats --json")?;
        assert!(
            stats.contains(&b_addr) && stats.contains(SEED),
            "additions lost on restart: {stats}"
        );
    }

    // 6. reset: peers.dat emptied (the dead entry, which nobody can gossip back, is gone),
    //    connections dropped, bootstrap again from the added peer and seed.
    {
        let node = net.node("node");
        let offset = log_offset(node);
        let dials = metric(node, "bootstrap_peer_connect_success", &[]).await;
        agent(node, &["peers", "reset"])
            .await?
            .success("peers reset")?;
        wait_log(node, offset, Some("WARN"), "reset", Duration::from_secs(5)).await?;
        eventually(WAIT, "node to bootstrap again after the reset", || async {
            (metric(node, "bootstrap_peer_connect_success", &[]).await > dials
                && node.client().status().await.ok()?.connected_peers >= 1)
                .then_some(())
        })
        .await?;
        assert!(
            !known_ids(node).await.contains(&dead_id),
            "the reset kept an old entry"
        );
    }
    checks.finish()?;
    net.pass();
    Ok(())
}
