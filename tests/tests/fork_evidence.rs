//! Issue 13 §4 with real daemons: two coordinators run from one copied node key (the DA
//! authority), both take publications at once and seal different blobs at one height. Every
//! node ends with the fork alarm (status warning, `da_fork_evidence`) and serves evidence
//! that verifies against the authority key alone, both coordinators stop sealing, and no
//! publisher is told "published" for events that the storage nodes' log does not hold.

use std::time::Duration;

use dsdn_daemon::client::ApiClient;
use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    chunk_events, da_publish_all, da_tip, eventually, metric, wait_da_equal, TestNet, WAIT,
};
use dsdn_protocols::da::evidence::ForkEvidence;
use dsdn_protocols::da::DaEvent;
use dsdn_protocols::NetworkId;

/// Rounds of simultaneous publications tried until two blobs collide at one height.
const ROUNDS: usize = 8;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_copied_authority_key_forks_nothing_silently() -> anyhow::Result<()> {
    let mut net = TestNet::new("fork").await?;
    let cfg = net.da_config("coordinator", 30)?;
    let names = net.start_da_net(30, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 200);
    da_publish_all(net.node("coordinator"), &events[..10], 10).await?;
    let tip = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &tip, WAIT).await?;

    // The copy: the coordinator's node key in another data directory, on 127.0.0.33.
    let copy_dir = net.data_dir("copy");
    std::fs::create_dir_all(&copy_dir)?;
    std::fs::copy(
        net.data_dir("coordinator").join("node.key"),
        copy_dir.join("node.key"),
    )?;
    // It reaches the network through a storage node: dialling the coordinator is dialling
    // its own PeerId.
    let copy_cfg = cfg
        .clone()
        .without_static_peer(net.addr(30))
        .with_static_peer(net.addr(31));
    net.spawn("copy", NodeMode::Coordinator, 33, &copy_cfg)
        .await?;
    wait_da_equal(&net.nodes(), &tip, WAIT).await?;
    let authority: [u8; 32] = cfg
        .da_authority_hex()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| b.try_into().ok())
        .ok_or_else(|| anyhow::anyhow!("the config names no DA authority"))?;

    // Both take a publication at the same moment, until they sealed two blobs at one
    // height (each round they may also seal one after the other: no fork then).
    let coordinator = net
        .node("coordinator")
        .client_with_timeout(Duration::from_secs(30));
    let copy = net
        .node("copy")
        .client_with_timeout(Duration::from_secs(30));
    let mut answered: Vec<(String, Vec<DaEvent>, Vec<u64>)> = Vec::new();
    let mut refused = Vec::new();
    let mut next = 10;
    for _ in 0..ROUNDS {
        let (a, b) = (&events[next..next + 3], &events[next + 3..next + 6]);
        next += 6;
        let (ra, rb) = tokio::join!(coordinator.da_publish(a), copy.da_publish(b));
        for (who, part, r) in [("coordinator", a, ra), ("copy", b, rb)] {
            match r {
                Ok(p) => answered.push((who.to_owned(), part.to_vec(), p.heights)),
                Err(e) => refused.push(format!("{who}: {e}")),
            }
        }
        if has_fork(&net.node("storage-1").client()).await {
            break;
        }
    }
    anyhow::ensure!(
        has_fork(&net.node("storage-1").client()).await,
        "no fork in {ROUNDS} rounds of simultaneous publications (answered {answered:?}, refused {refused:?})"
    );
    eprintln!("answered: {answered:?}\nrefused: {refused:?}");

    // The alarm on every node: a status warning, the metric, verifiable evidence.
    let network = NetworkId::new("devnet")?;
    for name in ["coordinator", "copy", "storage-1", "storage-2"] {
        let node = net.node(name);
        eventually(WAIT, &format!("{name} raises the fork alarm"), || async {
            let s = node.client().status().await.ok()?;
            s.warnings
                .iter()
                .any(|w| w.contains("DA log FORK"))
                .then_some(())
        })
        .await?;
        assert!(metric(node, "da_fork_evidence", &[]).await >= 1.0, "{name}");
        let evidence = node.client().da_evidence().await?;
        for e in &evidence {
            let bytes = hex::decode(&e.evidence_cbor)?;
            ForkEvidence::from_bytes(&bytes)?
                .verify(&network, &authority)
                .map_err(|err| anyhow::anyhow!("{name}'s evidence does not verify: {err}"))?;
        }
    }
    // Both sealers stopped sealing.
    for name in ["coordinator", "copy"] {
        let r = net.node(name).client().da_publish(&events[190..191]).await;
        assert!(r.is_err(), "{name} still seals after the fork: {r:?}");
    }
    // Nothing acknowledged is missing: every answered publication is in the blob both
    // storage nodes hold at its height.
    for (who, part, heights) in &answered {
        for storage in ["storage-1", "storage-2"] {
            let c = net.node(storage).client();
            let mut held = Vec::new();
            for h in heights {
                for b in c.da_blobs(*h, 1).await? {
                    held.extend(b.events);
                }
            }
            for e in part {
                anyhow::ensure!(
                    held.contains(e),
                    "{who} answered `published in {heights:?}` but {storage} does not hold {e:?} there"
                );
            }
        }
    }
    net.pass();
    Ok(())
}

async fn has_fork(client: &ApiClient) -> bool {
    client.da_evidence().await.is_ok_and(|e| !e.is_empty())
}
