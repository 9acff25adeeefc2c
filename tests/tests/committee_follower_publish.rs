//! Issue 13 §1 with real `dsdnd` processes on 127.0.0.x: DA events posted to a coordinator
//! that follows the committee (not a member of the committee in force) are sealed by the
//! committee. A 2-of-3 committee c1–c3 (group key = DA authority) seals the log; c4 runs
//! with the same committee configuration, which names it in `[committee] candidates`, as a
//! follower (the epoch schedule is long: no rotation happens during the test).
//!
//! Checked: c4 reports `following` and never seals; every event posted to it (one by one,
//! then a burst of concurrent posts) is answered "published" with the height of a blob
//! that holds it, and every answered event is in the log of every node, which all end at
//! one tip and state root; c5, a coordinator with the same configuration that is no
//! candidate (the members would refuse its forwards), refuses posts with "not the DA
//! authority". Printed: the time from a post to c4 until "published" (median and max of
//! the one-by-one posts). The old follower refused every post, so this test fails there.

use std::time::{Duration, Instant};

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::rotation::{log_events, start_committee_net_with};
use dsdn_integration_tests::{
    chunk_events, converge, da_tip, eventually, fast_da, metric, TestNet,
};

/// Events posted one by one to c4 (their latency is measured), then concurrently (each
/// post on its own connection: at most 8 per source address, `max_connections_per_ip`).
const ONE_BY_ONE: usize = 20;
const BURST: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_posted_to_a_follower_are_sealed_by_the_committee() -> anyhow::Result<()> {
    let mut net = TestNet::new("committee-follower-publish").await?;
    let (c4_key, _) = dsdn_daemon::key::load_or_create(&net.data_dir("c4"))?;
    let c4_peer = c4_key.public().to_peer_id();
    let schedule = move |c: &mut dsdn_daemon::localnet::ConfigSpec| {
        // No handoff window opens during the test (windows are aligned to UNIX time).
        c.seeds.committee.epoch_length = Duration::from_secs(30 * 24 * 3600);
        c.seeds.committee.handoff = Duration::from_secs(60);
        c.seeds.committee.candidates = vec![c4_peer];
    };
    let cn = start_committee_net_with(&mut net, 80, 3, 2, 1, Duration::from_millis(500), schedule)
        .await?;
    let mut cfg = net.config().with_da(fast_da());
    cfg.seeds.committee.round_timeout = Duration::from_millis(500);
    schedule(&mut cfg);
    let cfg = cfg
        .with_static_peers(cn.coordinators.iter().map(|(_, l)| net.addr(*l)))
        .with_da_authority(cn.group_key.clone());
    net.spawn_with_args("c4", NodeMode::Coordinator, 84, &cfg, &cn.args())
        .await?;
    net.spawn_with_args("c5", NodeMode::Coordinator, 85, &cfg, &cn.args())
        .await?;
    for n in ["c4", "c5"] {
        eventually(Duration::from_secs(30), &format!("{n} follows"), || async {
            let st = net.node(n).client().committee_status().await.ok()?;
            let synced = da_tip(net.node(n)).await.ok()? == da_tip(net.node("c1")).await.ok()?;
            (st.state == "following" && st.epochs.is_some() && synced).then_some(())
        })
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    }
    let ids: Vec<String> = cn
        .storage
        .iter()
        .map(|(n, _)| net.node(n).peer_id().to_owned())
        .collect();
    let events = chunk_events(&ids, ONE_BY_ONE + BURST + 1);
    anyhow::ensure!(events.len() > ONE_BY_ONE + BURST, "too few sample events");

    // c5 is no candidate: it does not take events (no open path around the admission).
    let refused = net
        .node("c5")
        .client()
        .da_publish(std::slice::from_ref(&events[ONE_BY_ONE + BURST]))
        .await;
    match refused {
        Err(e) if format!("{e:#}").contains("not the DA authority") => {
            eprintln!("c5 (no candidate) refuses: {e:#}");
        }
        other => anyhow::bail!("c5 (no candidate) should refuse a post: {other:?}"),
    }

    // One by one to c4, each timed until "published".
    let c4 = net.node("c4").client_with_timeout(Duration::from_secs(30));
    let mut acked = Vec::new();
    let mut latencies = Vec::new();
    for e in &events[..ONE_BY_ONE] {
        let started = Instant::now();
        let r = c4
            .da_publish(std::slice::from_ref(e))
            .await
            .map_err(|err| anyhow::anyhow!("c4 did not publish: {err:#}\n{}", net.log_dump(40)))?;
        latencies.push(started.elapsed());
        anyhow::ensure!(
            r.events == 1 && r.heights.len() == 1,
            "unexpected answer {r:?}"
        );
        acked.push((r.heights[0], e.clone()));
    }
    // A burst of concurrent posts.
    let mut tasks = Vec::new();
    for e in events[ONE_BY_ONE..ONE_BY_ONE + BURST].iter().cloned() {
        let c = net.node("c4").client_with_timeout(Duration::from_secs(30));
        tasks.push(tokio::spawn(async move {
            let r = c.da_publish(std::slice::from_ref(&e)).await;
            (e, r)
        }));
    }
    for t in tasks {
        let (e, r) = t.await?;
        let r = r.map_err(|err| anyhow::anyhow!("c4 did not publish: {err:#}"))?;
        anyhow::ensure!(r.heights.len() == 1, "unexpected answer {r:?}");
        acked.push((r.heights[0], e));
    }
    latencies.sort();
    let median = latencies[latencies.len() / 2];
    let max = latencies[latencies.len() - 1];
    eprintln!(
        "POST to the follower c4 until published: median {} ms, max {} ms over {} posts",
        median.as_millis(),
        max.as_millis(),
        latencies.len()
    );

    // c4 still follows and sealed nothing.
    let st = net.node("c4").client().committee_status().await?;
    anyhow::ensure!(st.state == "following", "c4 reports {}", st.state);
    let sealed = metric(
        net.node("c4"),
        "da_rotation_rounds_total",
        &[("outcome", "sealed")],
    )
    .await;
    anyhow::ensure!(sealed == 0.0, "c4 sealed {sealed} blobs while following");

    // One tip and root everywhere; every answered event is in each node's log, in the blob
    // its answer named.
    let mut everyone: Vec<String> = ["c1", "c2", "c3", "c4", "c5"].map(String::from).to_vec();
    everyone.extend(cn.storage.iter().map(|(n, _)| n.clone()));
    converge(&net, &everyone, Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    for n in &everyone {
        let log = log_events(&net, n).await?;
        for (_, e) in &acked {
            anyhow::ensure!(
                log.contains(&serde_json::to_string(e)?),
                "{n}: acknowledged event not in the log: {e:?}"
            );
        }
    }
    let client = net.node("c1").client();
    for (height, e) in &acked {
        let blob = client.da_blobs(*height, 1).await?;
        anyhow::ensure!(
            blob.first().is_some_and(|b| b.events.contains(e)),
            "the answer named blob {height}, which does not hold {e:?}"
        );
    }
    eprintln!(
        "{} events posted to the follower c4, all sealed by the committee and in every log",
        acked.len()
    );
    net.pass();
    Ok(())
}
