//! Issue 13 §1 and §7 with real `dsdnd` processes on 127.0.0.x: a 2-of-3 coordinator
//! committee whose group key is the DA authority seals DA events posted to any member
//! (proposer rotation); the proposer killed mid-stream (SIGKILL) costs one round timeout:
//! the log keeps growing, every publication answered "published" is in the final log and
//! every node ends with one state root; with the majority down nothing is sealed, the
//! survivor's status says it waits for the others, and the log resumes when they return.

use std::collections::HashSet;
use std::time::Duration;

use dsdn_integration_tests::rotation::{
    blob_proposers, log_events, next_proposer, rotation_status, start_committee_net, CommitteeNet,
};
use dsdn_integration_tests::{chunk_events, da_tip, eventually, wait_da_equal, TestNet, WAIT};
use dsdn_protocols::da::DaEvent;

/// Round-0 timeout of the committee in these tests.
const ROUND_TIMEOUT: Duration = Duration::from_millis(1000);

/// Publishes `event` on `name` (one POST); `Ok(Some(height))` when answered "published".
async fn publish_one(net: &TestNet, name: &str, event: &DaEvent) -> Option<u64> {
    let client = net.node(name).client_with_timeout(Duration::from_secs(30));
    match client.da_publish(std::slice::from_ref(event)).await {
        Ok(p) => p.heights.first().copied(),
        Err(e) => {
            eprintln!("publication on {name} failed: {e:#}");
            None
        }
    }
}

/// Waits until every running node of `names` has one tip and state root (that of `names[0]`
/// once they agree).
async fn converge(net: &TestNet, names: &[&str]) -> anyhow::Result<()> {
    let first = net.node(names[0]);
    let want = eventually(WAIT, "a stable tip", || async {
        let a = da_tip(first).await.ok()?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let b = da_tip(first).await.ok()?;
        (a == b).then_some(b)
    })
    .await?;
    let nodes: Vec<_> = names.iter().map(|n| net.node(n)).collect();
    wait_da_equal(&nodes, &want, WAIT).await
}

fn everyone(cn: &CommitteeNet) -> Vec<String> {
    cn.coordinators
        .iter()
        .chain(cn.storage.iter())
        .map(|(n, _)| n.clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proposer_killed_mid_stream_loses_nothing() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-rotation-kill").await?;
    let cn = start_committee_net(&mut net, 40, 3, 2, 1, ROUND_TIMEOUT).await?;
    let ids: Vec<String> = cn
        .storage
        .iter()
        .map(|(n, _)| net.node(n).peer_id().to_owned())
        .collect();
    let events = chunk_events(&ids, 40);
    let mut acked: Vec<&DaEvent> = Vec::new();

    // 1. Events posted to every member are sealed (any member takes them).
    for (i, e) in events[..9].iter().enumerate() {
        let name = &cn.coordinators[i % 3].0;
        let h = publish_one(&net, name, e).await;
        anyhow::ensure!(
            h.is_some(),
            "publication {i} on {name} not answered\n{}",
            net.log_dump(40)
        );
        acked.push(e);
    }
    let before = da_tip(net.node("c1")).await?.height;

    // 2. Mid-stream: publications to the survivors run while the next proposer is killed.
    let victim = next_proposer(&net, &cn, "c1")
        .await
        .ok_or_else(|| anyhow::anyhow!("no proposer in c1's status"))?;
    let survivors: Vec<String> = cn
        .names()
        .into_iter()
        .filter(|n| *n != victim)
        .map(str::to_owned)
        .collect();
    eprintln!("killing {victim}, the proposer of height {}", before + 1);
    let stream: Vec<DaEvent> = events[9..30].to_vec();
    let in_flight = {
        let victim_client = net
            .node(&victim)
            .client_with_timeout(Duration::from_secs(30));
        let e = events[30].clone();
        tokio::spawn(async move {
            victim_client
                .da_publish(std::slice::from_ref(&e))
                .await
                .ok()
                .map(|_| e)
        })
    };
    let clients: Vec<_> = survivors
        .iter()
        .map(|n| net.node(n).client_with_timeout(Duration::from_secs(60)))
        .collect();
    let publisher = tokio::spawn(async move {
        let mut answered = Vec::new();
        for (i, e) in stream.into_iter().enumerate() {
            let r = clients[i % clients.len()]
                .da_publish(std::slice::from_ref(&e))
                .await;
            answered.push((e, r.map(|p| p.heights)));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        answered
    });
    tokio::time::sleep(Duration::from_millis(700)).await;
    let victim_id = net.node(&victim).peer_id().to_owned();
    let at_kill = da_tip(net.node(&survivors[0])).await?.height;
    net.node_mut(&victim).kill().await?;
    let answered = publisher.await?;
    let mut failed = Vec::new();
    for (e, r) in &answered {
        match r {
            Ok(_) => acked.push(e),
            Err(err) => failed.push(err.to_string()),
        }
    }
    anyhow::ensure!(
        failed.is_empty(),
        "publications to the surviving members failed: {failed:?}\n{}",
        net.log_dump(60)
    );
    let in_flight = in_flight.await?;
    let after = da_tip(net.node(&survivors[0])).await?.height;
    anyhow::ensure!(
        after > before,
        "the log did not grow after the kill ({before} → {after})"
    );

    // 3. Every node that runs ends with one root; everything acknowledged is in the log.
    let running: Vec<String> = everyone(&cn).into_iter().filter(|n| *n != victim).collect();
    let refs: Vec<&str> = running.iter().map(String::as_str).collect();
    converge(&net, &refs).await?;
    let log = log_events(&net, &survivors[0]).await?;
    let mut missing: Vec<String> = acked
        .iter()
        .copied()
        .chain(in_flight.as_ref())
        .map(|e| serde_json::to_string(e).unwrap_or_default())
        .filter(|e| !log.contains(e))
        .collect();
    missing.sort();
    anyhow::ensure!(
        missing.is_empty(),
        "acknowledged events not in the log: {missing:?}"
    );
    // Issue 13 §6: every blob names its proposer (API), a coordinator; the victim proposed
    // blobs before the kill and none above the heights it could still have reached (its
    // tip at the kill + 1, one more if it sealed a blob the survivors had not applied).
    let proposers = blob_proposers(&net, &survivors[0]).await?;
    let members: Vec<String> = cn
        .names()
        .iter()
        .map(|n| net.node(n).peer_id().to_owned())
        .collect();
    for (h, version, p) in &proposers {
        anyhow::ensure!(
            *version == 4 && p.as_ref().is_some_and(|p| members.contains(p)),
            "blob {h} (version {version}) names {p:?}, not a coordinator"
        );
    }
    let named = |p: &Option<String>| p.as_deref() == Some(victim_id.as_str());
    anyhow::ensure!(
        proposers.iter().any(|(h, _, p)| *h <= before && named(p)),
        "no blob up to {before} names {victim} ({victim_id}), the proposer before the kill: \
         {proposers:?}"
    );
    let later: Vec<_> = proposers
        .iter()
        .filter(|(h, _, _)| *h > at_kill + 2)
        .collect();
    anyhow::ensure!(
        !later.is_empty() && !later.iter().any(|(_, _, p)| named(p)),
        "blobs above {} must name the surviving proposers: {later:?}",
        at_kill + 2
    );
    eprintln!(
        "proposers (killed {victim} = {victim_id} at tip {at_kill}): {:?}",
        proposers
            .iter()
            .map(|(h, _, p)| format!("{h}:{}", p.as_deref().map_or("-", |p| &p[p.len() - 6..])))
            .collect::<Vec<_>>()
    );
    let st = net.node(&survivors[0]).client().metrics_text().await?;
    eprintln!(
        "{} events acknowledged, log at {after} (was {before}); rotation metrics:\n{}",
        acked.len(),
        st.lines()
            .filter(|l| l.starts_with("da_rotation"))
            .collect::<Vec<_>>()
            .join("\n")
    );

    // 4. The victim comes back, catches up and seals again as a member.
    net.node_mut(&victim).restart().await?;
    net.node(&victim).wait_ready(WAIT).await?;
    let h = publish_one(&net, &victim, &events[31]).await;
    anyhow::ensure!(
        h.is_some(),
        "the restarted member's publication not answered\n{}",
        net.log_dump(40)
    );
    let all = everyone(&cn);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    converge(&net, &refs).await?;
    net.pass();
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn majority_down_seals_nothing_says_why_and_resumes() -> anyhow::Result<()> {
    let mut net = TestNet::new("da-rotation-majority").await?;
    let cn = start_committee_net(&mut net, 50, 3, 2, 1, ROUND_TIMEOUT).await?;
    let ids: Vec<String> = cn
        .storage
        .iter()
        .map(|(n, _)| net.node(n).peer_id().to_owned())
        .collect();
    let events = chunk_events(&ids, 4);
    anyhow::ensure!(
        publish_one(&net, "c1", &events[0]).await.is_some(),
        "first publication"
    );
    let before = da_tip(net.node("c1")).await?.height;
    let idle = rotation_status(&net, "c1").await;
    anyhow::ensure!(
        idle.as_ref().is_some_and(|r| r.state == "idle"),
        "nothing waits, yet the rotation is not idle: {idle:?}"
    );

    // Two of three members down: an event posted to the survivor stays unsealed.
    net.node_mut("c2").kill().await?;
    net.node_mut("c3").kill().await?;
    let survivor = net.node("c1").client_with_timeout(Duration::from_secs(90));
    let e = events[1].clone();
    let waiting = tokio::spawn(async move { survivor.da_publish(&[e]).await });
    let peers: HashSet<String> = ["c2", "c3"]
        .iter()
        .map(|n| net.node(n).peer_id().to_owned())
        .collect();
    let status = eventually(WAIT, "c1 reports no majority", || async {
        let r = rotation_status(&net, "c1").await?;
        let named: HashSet<String> = r.waiting_for.iter().cloned().collect();
        (r.state == "no_majority" && named == peers).then_some(r)
    })
    .await?;
    eprintln!("c1 while the majority is down: {status:?}");
    let agent_out = dsdn_integration_tests::agent(net.node("c1"), &["committee", "status"])
        .await?
        .success("committee status")?;
    anyhow::ensure!(
        agent_out.contains("no majority: waiting for members"),
        "dsdn-agent committee status does not say why: {agent_out}"
    );
    anyhow::ensure!(
        da_tip(net.node("c1")).await?.height == before,
        "a blob was sealed without a majority"
    );
    anyhow::ensure!(
        !waiting.is_finished(),
        "the publication was answered without a majority"
    );

    // They return: the waiting publication is sealed and answered; everyone agrees.
    for n in ["c2", "c3"] {
        net.node_mut(n).restart().await?;
    }
    for n in ["c2", "c3"] {
        net.node(n).wait_ready(WAIT).await?;
    }
    let answered = waiting.await?;
    anyhow::ensure!(
        answered.is_ok(),
        "the publication waiting for a majority failed: {answered:?}\n{}",
        net.log_dump(60)
    );
    anyhow::ensure!(
        da_tip(net.node("c1")).await?.height > before,
        "the log did not resume"
    );
    anyhow::ensure!(
        publish_one(&net, "c3", &events[2]).await.is_some(),
        "after the return"
    );
    let all = everyone(&cn);
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    converge(&net, &refs).await?;
    let log = log_events(&net, "c2").await?;
    for e in &events[..3] {
        anyhow::ensure!(
            log.contains(&serde_json::to_string(e)?),
            "{e:?} not in the log"
        );
    }
    net.pass();
    Ok(())
}
