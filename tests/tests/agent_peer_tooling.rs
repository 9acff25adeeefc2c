//! Issue 15 §6 through the real binaries: `peers list` shows each connection's age, round
//! trip, bytes, agent version and protocols (`--wide`, `--json`) within 80 columns; an
//! added peer shows its state (connected, or waiting with its last error and next retry);
//! `peers remove` undoes `peers add`, also across a restart.

use dsdn_daemon::localnet::{Node, NodeMode};
use dsdn_integration_tests::{agent, eventually, Checks, TestNet, WAIT};

/// `peers added --json`, parsed.
async fn added(node: &Node) -> anyhow::Result<Vec<serde_json::Value>> {
    let out = agent(node, &["peers", "added", "--json"])
        .await?
        .success("peers added --json")?;
    Ok(serde_json::from_str(&out)?)
}

/// The `peers added --json` entry of `addr`.
async fn added_entry(node: &Node, addr: &str) -> anyhow::Result<Option<serde_json::Value>> {
    Ok(added(node)
        .await?
        .into_iter()
        .find(|a| a["addr"].as_str() == Some(addr)))
}

/// The `peers list --json` entry of `peer_id`.
async fn listed(node: &Node, peer_id: &str) -> anyhow::Result<Option<serde_json::Value>> {
    let out = agent(node, &["peers", "list", "--json"])
        .await?
        .success("peers list --json")?;
    let list: Vec<serde_json::Value> = serde_json::from_str(&out)?;
    Ok(list
        .into_iter()
        .find(|p| p["peer_id"].as_str() == Some(peer_id)))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn peer_tooling_connection_details_added_state_and_remove() -> anyhow::Result<()> {
    let mut net = TestNet::new("peer-tooling").await?;
    net.spawn("a", NodeMode::Bootstrap, 21, &net.config())
        .await?;
    // The node under test starts with no bootstrap source at all.
    net.spawn("node", NodeMode::Storage, 22, &net.config())
        .await?;
    let a_addr = net.addr(21);
    // Nothing listens on .98: a dial there is refused at once.
    let dead_addr = net.addr(98);
    let added_file = net.data_dir("node").join("added-peers.toml");
    let mut checks = Checks::new();
    {
        let node = net.node("node");
        let a = net.node("a");

        // 1. An added peer that cannot be reached: waiting, with the error and the retry.
        agent(node, &["peers", "add", &dead_addr])
            .await?
            .success("peers add (dead)")?;
        let e = eventually(WAIT, "the dead added peer to be waiting", || async {
            added_entry(node, &dead_addr)
                .await
                .ok()
                .flatten()
                .filter(|e| e["state"] == "waiting" && e["last_error"].is_string())
        })
        .await?;
        let retry = e["next_retry_secs"].as_u64().unwrap_or(u64::MAX);
        checks.ensure(retry <= 30, format!("next retry {retry} s > 30 s: {e}"));
        let text = agent(node, &["peers", "added"])
            .await?
            .success("peers added")?;
        assert!(
            text.contains("waiting") && text.contains(&dead_addr),
            "{text}"
        );
        for line in text.lines() {
            checks.ensure(
                line.chars().count() <= 80,
                format!("`peers added` line wider than 80 columns: {line:?}"),
            );
        }

        // 2. A reachable added peer: connected, with its PeerId.
        agent(node, &["peers", "add", &a_addr])
            .await?
            .success("peers add")?;
        let e = eventually(WAIT, "the added peer to be connected", || async {
            added_entry(node, &a_addr)
                .await
                .ok()
                .flatten()
                .filter(|e| e["state"] == "connected")
        })
        .await?;
        assert_eq!(e["peer_id"].as_str(), Some(a.peer_id()), "{e}");
        assert!(e["last_error"].is_null(), "{e}");

        // 3. The connection's details: age, bytes both ways, agent, protocols, ping.
        let p = eventually(
            WAIT,
            "the connection's ping and identify details",
            || async {
                listed(node, a.peer_id()).await.ok().flatten().filter(|p| {
                    p["connection"]["rtt_ms"].is_number()
                        && p["connection"]["agent_version"].is_string()
                })
            },
        )
        .await?;
        let c = &p["connection"];
        assert_eq!(c["relayed"], false, "{p}");
        assert!(c["bytes_in"].as_u64().unwrap_or(0) > 0, "{p}");
        assert!(c["bytes_out"].as_u64().unwrap_or(0) > 0, "{p}");
        assert!(
            c["agent_version"]
                .as_str()
                .is_some_and(|v| v.starts_with("dsdnd/")),
            "{p}"
        );
        let protocols: Vec<&str> = c["protocols"]
            .as_array()
            .map(|a| a.iter().filter_map(|v| v.as_str()).collect())
            .unwrap_or_default();
        assert!(
            protocols.iter().any(|p| p.starts_with("/dsdn/"))
                && protocols.contains(&"/ipfs/ping/1.0.0"),
            "{p}"
        );
        assert!(
            c["remote_addr"]
                .as_str()
                .is_some_and(|r| r.contains("127.0.0.21")),
            "{p}"
        );
        // The table: 80 columns, one line on the added peers; --wide has the agent.
        let table = agent(node, &["peers", "list"])
            .await?
            .success("peers list")?;
        for line in table.lines() {
            checks.ensure(
                line.chars().count() <= 80,
                format!("`peers list` line wider than 80 columns: {line:?}"),
            );
        }
        assert!(table.contains("2 added peers, 1 connected"), "{table}");
        assert!(table.contains(" out "), "{table}");
        let wide = agent(node, &["peers", "list", "--wide"])
            .await?
            .success("peers list --wide")?;
        assert!(
            wide.contains("dsdnd/") && wide.contains("/ipfs/ping/1.0.0"),
            "{wide}"
        );

        // 4. `peers remove` undoes `peers add` (file included); a second remove is refused.
        agent(node, &["peers", "remove", &dead_addr])
            .await?
            .success("peers remove")?;
        assert!(added_entry(node, &dead_addr).await?.is_none());
        let text = std::fs::read_to_string(&added_file)?;
        assert!(
            !text.contains(&dead_addr) && text.contains(&a_addr),
            "{text}"
        );
        let again = agent(node, &["peers", "remove", &dead_addr]).await?;
        assert!(!again.ok, "a second `peers remove` succeeded");
        assert!(again.stderr.contains("was not added"), "{}", again.stderr);
    }

    // 5. After a restart the remaining addition is back and connected; the removed one is
    //    not.
    net.node_mut("node").stop().await?;
    net.node_mut("node").restart().await?;
    {
        let node = net.node("node");
        node.wait_ready(WAIT).await?;
        eventually(
            WAIT,
            "the added peer to be connected after the restart",
            || async {
                added_entry(node, &a_addr)
                    .await
                    .ok()
                    .flatten()
                    .filter(|e| e["state"] == "connected")
            },
        )
        .await?;
        assert_eq!(added(node).await?.len(), 1);
    }
    checks.finish()?;
    net.pass();
    Ok(())
}
