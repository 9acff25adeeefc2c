//! Issue 5 (the DA event log), validations of 14A with real `dsdnd` processes on 127.0.0.x:
//! a restarted coordinator or storage node keeps an identical state (height, tip hash,
//! state root), delayed and reordered blobs give one state everywhere, and a storage node
//! registers itself with its zone and capacity. The rebuild-from-peers / from-the-log
//! scenarios are in `da_rebuild.rs`, the late joiners in `da_catchup.rs`.

use std::time::{Duration, Instant};

use dsdn_daemon::api::DaStateView;
use dsdn_daemon::client::ClientError;
use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    chunk_events, da_log_lines, da_publish_all, da_tip, fast_da, full_mesh, log_matches,
    log_offset, metric, sign_chain, unix_now, wait_da_equal, wait_log, DaTip, TestNet, WAIT,
};
use dsdn_protocols::da::{DaBlob, DaEvent};

/// Convergence timeout of the scenarios.
const T: Duration = Duration::from_secs(30);

/// The DA state of node `name`, with its name in the error.
async fn state(net: &TestNet, name: &str) -> anyhow::Result<DaStateView> {
    net.node(name)
        .client()
        .da_state()
        .await
        .map_err(|e| anyhow::anyhow!("GET /v1/da/state on {name}: {e}"))
}

/// Waits for the "DA log replayed" line a (re)started node logs when it opens a non-empty
/// log, and checks that it names `want`'s height and state root.
async fn check_replayed(
    net: &TestNet,
    name: &str,
    offset: usize,
    want: &DaTip,
) -> anyhow::Result<()> {
    let node = net.node(name);
    let line = wait_log(node, offset, Some("INFO"), "DA log replayed", WAIT).await?;
    anyhow::ensure!(
        line.contains(&format!("height={} ", want.height))
            && line.contains(&format!("state_root={}", want.state_root)),
        "{name} replayed a different state at start: want {want}, log says:\n{line}\n{}",
        da_log_lines(node, 30)
    );
    Ok(())
}

/// 14A validation 1: restart the coordinator (SIGTERM, then SIGKILL) → identical height,
/// tip and root; the next blob it seals has height old+1 and links to the old tip; every
/// node converges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coordinator_restart_keeps_identical_state() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-coord-restart").await?;
    let cfg = net.da_config("coordinator", 10)?;
    let names = net.start_da_net(10, 2, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 140);

    let heights = da_publish_all(net.node("coordinator"), &events[..100], 20).await?;
    let mut before = da_tip(net.node("coordinator")).await?;
    anyhow::ensure!(
        heights.last() == Some(&before.height) && heights.len() >= 5,
        "five POSTs should give at least five blobs ending at the tip: heights {heights:?}, tip {before}"
    );
    wait_da_equal(&net.nodes(), &before, T).await?;
    eprintln!("before the restarts: {before}");

    let mut next = 100;
    for kill in [false, true] {
        let how = if kill { "SIGKILL" } else { "SIGTERM" };
        let offset = log_offset(net.node("coordinator"));
        if kill {
            net.node_mut("coordinator").kill().await?;
        } else {
            let status = net.node_mut("coordinator").stop().await?;
            anyhow::ensure!(status.success(), "coordinator exit after SIGTERM: {status}");
        }
        net.node_mut("coordinator").restart().await?;
        net.node("coordinator").wait_ready(WAIT).await?;
        check_replayed(&net, "coordinator", offset, &before).await?;
        let after = da_tip(net.node("coordinator")).await?;
        anyhow::ensure!(
            after == before,
            "coordinator state changed across a {how} restart: before {before}, after {after}\n{}",
            da_log_lines(net.node("coordinator"), 30)
        );
        wait_da_equal(&net.nodes(), &before, T).await?;

        // The next blob extends the old chain.
        let part = &events[next..next + 20];
        next += 20;
        let r = net
            .node("coordinator")
            .client_with_timeout(Duration::from_secs(30))
            .da_publish(part)
            .await
            .map_err(|e| anyhow::anyhow!("publish after the {how} restart: {e}"))?;
        anyhow::ensure!(
            r.heights.first() == Some(&(before.height + 1)),
            "after a {how} restart the coordinator sealed heights {:?}, want {} first",
            r.heights,
            before.height + 1
        );
        let blobs = net
            .node("coordinator")
            .client()
            .da_blobs(before.height + 1, 1)
            .await?;
        let first = blobs.first().ok_or_else(|| {
            anyhow::anyhow!("GET /v1/da/blobs?from={} is empty", before.height + 1)
        })?;
        anyhow::ensure!(
            first.height == before.height + 1 && first.prev_hash == before.tip_hash,
            "blob {} after the {how} restart links to {}, want the old tip {}",
            first.height,
            first.prev_hash,
            before.tip_hash
        );
        let now = da_tip(net.node("coordinator")).await?;
        anyhow::ensure!(now.height >= before.height + 1);
        wait_da_equal(&net.nodes(), &now, T).await?;
        eprintln!("after the {how} restart and one more publish: {now}");
        before = now;
    }
    anyhow::ensure!(
        metric(net.node("coordinator"), "da_blobs_rejected_total", &[]).await == 0.0,
        "the coordinator rejected blobs"
    );
    net.pass();
    Ok(())
}

/// 14A validation 2: restart a storage node (SIGTERM, then SIGKILL) → it reopens the
/// identical state, then catches up the blobs published while it was down.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_restart_keeps_identical_state_and_catches_up() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-storage-restart").await?;
    let cfg = net.da_config("coordinator", 20)?;
    let names = net.start_da_net(20, 3, &cfg).await?;
    let ids = net.peer_ids(&names);
    let events = chunk_events(&ids, 180);
    da_publish_all(net.node("coordinator"), &events[..60], 20).await?;
    let mut before = da_tip(net.node("coordinator")).await?;
    wait_da_equal(&net.nodes(), &before, T).await?;

    let mut next = 60;
    for kill in [false, true] {
        let how = if kill { "SIGKILL" } else { "SIGTERM" };
        let offset = log_offset(net.node("storage-3"));
        if kill {
            net.node_mut("storage-3").kill().await?;
        } else {
            let status = net.node_mut("storage-3").stop().await?;
            anyhow::ensure!(status.success(), "storage-3 exit after SIGTERM: {status}");
        }
        // Published while storage-3 is down: 3 POSTs, at least 3 blobs.
        da_publish_all(net.node("coordinator"), &events[next..next + 60], 20).await?;
        next += 60;
        let later = da_tip(net.node("coordinator")).await?;
        anyhow::ensure!(later.height >= before.height + 3, "{later} after {before}");
        let up: Vec<_> = net
            .nodes()
            .into_iter()
            .filter(|n| n.name() != "storage-3")
            .collect();
        wait_da_equal(&up, &later, T).await?;

        let started = Instant::now();
        net.node_mut("storage-3").restart().await?;
        net.node("storage-3").wait_ready(WAIT).await?;
        check_replayed(&net, "storage-3", offset, &before).await?;
        wait_da_equal(&net.nodes(), &later, T).await?;
        eprintln!(
            "storage-3 ({how}): reopened at {before}, caught up to {later} in {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let st = state(&net, "storage-3").await?;
        anyhow::ensure!(
            st.pending == 0 && st.synced && st.rejected == 0,
            "storage-3 after catching up: pending {}, synced {}, rejected {}",
            st.pending,
            st.synced,
            st.rejected
        );
        // Still registered, from its own replayed log: no new registration was sealed.
        let reg = net.node("storage-3").client().status().await?.registration;
        anyhow::ensure!(
            reg.as_ref().is_some_and(|r| r["state"] == "registered"),
            "storage-3 registration after restart: {reg:?}"
        );
        before = later;
    }
    anyhow::ensure!(
        da_tip(net.node("coordinator")).await? == before,
        "a restarted storage node made the coordinator seal a new blob (registration flapping?)"
    );
    net.pass();
    Ok(())
}

/// xorshift64*, seeded from the clock or `DSDN_TEST_SEED` (printed, to replay a failure).
struct Rng(u64);

impl Rng {
    fn new() -> Rng {
        let seed = std::env::var("DSDN_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            })
            | 1;
        eprintln!("random seed {seed} (DSDN_TEST_SEED={seed} replays it)");
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// The HTTP status of a failed API call, if the daemon answered.
fn api_status(e: &ClientError) -> Option<u16> {
    match e {
        ClientError::Api { status, .. } => Some(*status),
        _ => None,
    }
}

/// 14A validation 3: delayed and reordered blobs. The DA authority is a key of the test (no
/// daemon holds it); K = 24 blobs are signed offline and handed to the four nodes through
/// `POST /v1/da/blobs` in a random order with random delays, concurrently. Every node must
/// end with the height, tip and root computed offline by `DaChain`, nothing held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_and_reordered_blobs_give_one_state() -> anyhow::Result<()> {
    const K: usize = 24;
    let mut net = TestNet::new("da-reorder").await?;
    let mut rng = Rng::new();
    let mut seed = [0u8; 32];
    for chunk in seed.chunks_mut(8) {
        chunk.copy_from_slice(&rng.next().to_le_bytes());
    }
    let key = ed25519_dalek::SigningKey::from_bytes(&seed);
    let base = net
        .config()
        .with_da_authority(hex::encode(key.verifying_key().to_bytes()))
        .with_da(fast_da());
    let names = ["node-1", "node-2", "node-3", "node-4"];
    for (i, name) in names.iter().enumerate() {
        let cfg = if i == 0 {
            base.clone()
        } else {
            base.clone().with_static_peer(net.addr(30))
        };
        net.spawn(name, NodeMode::Storage, 30 + i as u8, &cfg)
            .await?;
    }
    dsdn_integration_tests::eventually(T, "a full mesh of the four nodes", || async {
        full_mesh(&net.nodes()).await.then_some(())
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(30)))?;

    // Events about nodes that do not run (they register nothing themselves), in blobs of
    // 1 to 7 events.
    let fake: Vec<String> = (0..5).map(|i| format!("offline-node-{i}")).collect();
    let all = dsdn_daemon::localnet::sample_da_events(&fake, K * 7);
    let mut batches: Vec<Vec<DaEvent>> = Vec::new();
    let mut rest = all.as_slice();
    while batches.len() < K {
        let n = (1 + rng.below(7) as usize).min(rest.len());
        batches.push(rest[..n].to_vec());
        rest = &rest[n..];
    }
    let (blobs, chain) = sign_chain(&key, "devnet", batches)?;
    let want = DaTip::of_state(chain.state());
    eprintln!(
        "offline: {want}, {} ignored",
        chain.state().ignored_events()
    );

    // The last blob first, to a node with an empty log: held, not applied.
    let first = net.node("node-1").client().da_submit(&blobs[K - 1]).await?;
    anyhow::ensure!(
        first.outcome == "held" && first.height == K as u64,
        "blob {K} on an empty log: {first:?}, want held"
    );
    let st = state(&net, "node-1").await?;
    anyhow::ensure!(
        st.height == 0 && st.pending >= 1,
        "node-1 after a held blob: height {}, pending {}",
        st.height,
        st.pending
    );

    // Every blob, shuffled, each to a random node after a random delay, all at once.
    let mut order: Vec<usize> = (0..K).collect();
    for i in (1..K).rev() {
        order.swap(i, rng.below(i as u64 + 1) as usize);
    }
    let mut tasks = Vec::new();
    for (slot, &i) in order.iter().enumerate() {
        let node = names[rng.below(names.len() as u64) as usize];
        let delay = Duration::from_millis(slot as u64 * 15 + rng.below(150));
        let client = net.node(node).client();
        let bytes = blobs[i].clone();
        tasks.push(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            (i + 1, node, client.da_submit(&bytes).await)
        }));
    }
    let mut held = 0;
    let mut failures = Vec::new();
    for t in tasks {
        let (height, node, r) = t.await?;
        match r {
            Ok(s) if s.height == height as u64 => {
                eprintln!("blob {height:2} → {node}: {}", s.outcome);
                match s.outcome.as_str() {
                    "held" => held += 1,
                    "applied" | "duplicate" => {}
                    other => failures.push(format!("blob {height} → {node}: outcome {other}")),
                }
            }
            Ok(s) => failures.push(format!(
                "blob {height} → {node}: answered height {}",
                s.height
            )),
            Err(e) => failures.push(format!("blob {height} → {node}: {e}")),
        }
    }
    anyhow::ensure!(
        failures.is_empty(),
        "submissions failed:\n{}",
        failures.join("\n")
    );
    eprintln!("{held} of {K} shuffled submissions were held");

    wait_da_equal(&net.nodes(), &want, T).await?;
    for name in names {
        let st = state(&net, name).await?;
        anyhow::ensure!(
            st.pending == 0 && st.ignored_events == chain.state().ignored_events(),
            "{name}: pending {}, ignored {} (offline {})",
            st.pending,
            st.ignored_events,
            chain.state().ignored_events()
        );
        let gauge = metric(net.node(name), "da_pending_blobs", &[]).await;
        anyhow::ensure!(gauge == 0.0, "{name}: da_pending_blobs = {gauge}");
    }

    // A duplicate is recognised; a blob of another key is a 400, a chain break a 409; neither
    // changes anything.
    let dup = net.node("node-2").client().da_submit(&blobs[0]).await?;
    anyhow::ensure!(dup.outcome == "duplicate", "blob 1 again: {dup:?}");
    let network = dsdn_protocols::NetworkId::new("devnet")?;
    let events = vec![DaEvent::NodeRegistered {
        node_id: "intruder".into(),
        zone: "z".into(),
        capacity_bytes: 1,
        class: "regular".into(),
    }];
    let ts = unix_now() * 1000 + 60_000;
    let mut tip = [0u8; 32];
    hex::decode_to_slice(&want.tip_hash, &mut tip)?;
    let forger = ed25519_dalek::SigningKey::from_bytes(&[0x77; 32]);
    let forged = DaBlob::sign(
        &forger,
        &network,
        K as u64 + 1,
        tip,
        [0; 32],
        ts,
        events.clone(),
    )?
    .to_bytes()?;
    // Refused for its prev_hash, checked before its (also wrong) state root.
    let broken =
        DaBlob::sign(&key, &network, K as u64 + 1, [9; 32], [0; 32], ts, events)?.to_bytes()?;
    let node = net.node("node-3");
    let e = node
        .client()
        .da_submit(&forged)
        .await
        .expect_err("forged blob accepted");
    anyhow::ensure!(api_status(&e) == Some(400), "forged blob: {e}, want 400");
    let e = node
        .client()
        .da_submit(&broken)
        .await
        .expect_err("chain-breaking blob accepted");
    anyhow::ensure!(
        api_status(&e) == Some(409),
        "chain-breaking blob: {e}, want 409"
    );
    anyhow::ensure!(
        metric(
            node,
            "da_blobs_rejected_total",
            &[("reason", "bad_signature")]
        )
        .await
            >= 1.0
            && metric(
                node,
                "da_blobs_rejected_total",
                &[("reason", "prev_hash_mismatch")]
            )
            .await
                >= 1.0,
        "node-3 did not count the refused blobs by reason"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    wait_da_equal(&net.nodes(), &want, T).await?;
    net.pass();
    Ok(())
}

/// A storage node started with `--zone z1 --capacity-bytes N` registers itself: the
/// coordinator seals a NodeRegistered event with that zone and capacity (class `regular`;
/// `datacenter` with `--dc`), the node's status says `registered` at that height, and a
/// restart does not register it again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_node_registers_with_zone_and_capacity() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-register").await?;
    let cfg = net.da_config("coordinator", 40)?;
    let mut coordinator_cfg = cfg.clone();
    coordinator_cfg.seeds.bootstrap.static_peers.clear();
    net.spawn("coordinator", NodeMode::Coordinator, 40, &coordinator_cfg)
        .await?;
    net.spawn_with_args(
        "storage-z1",
        NodeMode::Storage,
        41,
        &cfg,
        &["--zone", "z1", "--capacity-bytes", "123456789"],
    )
    .await?;
    net.spawn_with_args(
        "storage-dc",
        NodeMode::Storage,
        42,
        &cfg,
        &["--dc", "--zone", "z2", "--capacity-bytes", "987654321"],
    )
    .await?;
    net.wait_registered(&["storage-z1", "storage-dc"]).await?;

    let coord = state(&net, "coordinator").await?;
    anyhow::ensure!(
        coord.nodes == 2 && coord.zones == 2,
        "coordinator state: {} nodes in {} zones, want 2 in 2",
        coord.nodes,
        coord.zones
    );
    let blobs = net.node("coordinator").client().da_blobs(1, 64).await?;
    for (name, zone, capacity, class) in [
        ("storage-z1", "z1", 123_456_789u64, "regular"),
        ("storage-dc", "z2", 987_654_321, "datacenter"),
    ] {
        let node = net.node(name);
        let found: Vec<(u64, &DaEvent)> = blobs
            .iter()
            .flat_map(|b| b.events.iter().map(move |e| (b.height, e)))
            .filter(|(_, e)| matches!(e, DaEvent::NodeRegistered { node_id, .. } if node_id == node.peer_id()))
            .collect();
        anyhow::ensure!(
            found.len() == 1,
            "{name}: {} NodeRegistered events in the log, want 1: {found:?}\n{}",
            found.len(),
            da_log_lines(net.node("coordinator"), 30)
        );
        let (height, event) = found[0];
        anyhow::ensure!(
            *event
                == DaEvent::NodeRegistered {
                    node_id: node.peer_id().to_owned(),
                    zone: zone.into(),
                    capacity_bytes: capacity,
                    class: class.into(),
                },
            "{name}: {event:?}"
        );
        let reg = node.client().status().await?.registration;
        anyhow::ensure!(
            reg.as_ref()
                .is_some_and(|r| r["state"] == "registered" && r["height"] == height),
            "{name}: status registration {reg:?}, want registered at {height}"
        );
    }
    let published = metric(
        net.node("coordinator"),
        "da_registrations_total",
        &[("result", "published")],
    )
    .await;
    anyhow::ensure!(
        published >= 2.0,
        "da_registrations_total{{published}} = {published}"
    );

    // A restart finds the registration in its own replayed log: nothing new is sealed.
    let before = da_tip(net.node("coordinator")).await?;
    let offset = log_offset(net.node("storage-z1"));
    net.node_mut("storage-z1").restart().await?;
    net.wait_registered(&["storage-z1"]).await?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = da_tip(net.node("coordinator")).await?;
    anyhow::ensure!(
        after == before,
        "the coordinator sealed a blob after storage-z1 restarted: {before} → {after}\n{}",
        log_matches(net.node("storage-z1"), offset, None, "regist").join("\n")
    );
    net.pass();
    Ok(())
}
