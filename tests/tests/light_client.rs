//! The light client, `dsdn-agent watch` (28.1.C §1–§3 contract): it joins through the
//! config's fallback chain (here: one DNS seed naming the bootstrap node) without
//! listening, needs no control-API token, prints one JSON line per DA event
//! `{"seq", "publisher", "state_root", "event"}` and exits after `--count N` envelopes.
//! Real `dsdnd` processes, a real DNS seed server and the real agent binary.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use dsdn_daemon::localnet::{sample_da_events, Node, NodeMode};
use dsdn_integration_tests::roles::{agent_da_publish, Watch};
use dsdn_integration_tests::{eventually, is_connected_to, Checks, TestNet, WAIT};

const SEED: &str = "light.dsdn.test";
/// Envelopes the light client waits for (`--count`).
const ENVELOPES: usize = 3;
/// Events per envelope (one `da publish` of at most 64 events is one envelope).
const PER_ENVELOPE: usize = 4;

/// Ids of peers `node` lists that are none of `ours`, with their addresses.
async fn strangers(node: &Node, ours: &[&str]) -> Vec<(String, bool, Vec<String>)> {
    node.client()
        .peers()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|p| !ours.contains(&p.peer_id.as_str()))
        .map(|p| (p.peer_id, p.connected, p.addresses))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn light_client_watch_prints_da_events_in_order() -> anyhow::Result<()> {
    let mut net = TestNet::new("light-client").await?;
    net.set_dns(SEED, &[11]);
    let (_, authority) = net.init_identity("coordinator")?;
    let cfg = net
        .config()
        .with_dns_seed(SEED)
        .with_da_authority(&authority);
    net.spawn("bootstrap", NodeMode::Bootstrap, 11, &cfg)
        .await?;
    net.spawn("coordinator", NodeMode::Coordinator, 12, &cfg)
        .await?;
    {
        let (b, c) = (net.node("bootstrap"), net.node("coordinator"));
        eventually(
            WAIT,
            "the coordinator to join the bootstrap node",
            || async { is_connected_to(c, b).await.then_some(()) },
        )
        .await?;
    }
    // The light client's config: the DNS seed is its only source.
    let light_cfg = net.config_path("light");
    cfg.write(&light_cfg)?;
    let light_dir = net.data_dir("light");
    std::fs::create_dir_all(&light_dir)?;
    let args: Vec<String> = [
        "--config",
        &light_cfg.display().to_string(),
        "--json",
        "--count",
        &ENVELOPES.to_string(),
        "--data-dir",
        &light_dir.display().to_string(),
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    let started = Instant::now();
    let mut watch = Watch::spawn(&args, &net.dir().join("watch.stderr"))?;
    let mut checks = Checks::new();

    let b = net.node("bootstrap");
    let c = net.node("coordinator");
    let ours = [b.peer_id(), c.peer_id()];
    // Addresses any node ever lists for a peer that is not one of ours (the light client).
    let mut leaked: BTreeSet<String> = BTreeSet::new();
    let mut record = |node: &Node, seen: Vec<(String, bool, Vec<String>)>| {
        for (id, _, addrs) in seen {
            if !addrs.is_empty() {
                leaked.insert(format!("{} lists {id} at {addrs:?}", node.name()));
            }
        }
    };

    // It joins: the coordinator (the only DA publisher; the bootstrap node relays no DA
    // topic) sees a connected peer that is none of our daemons.
    let joined = eventually(
        WAIT,
        "the light client to connect to the coordinator",
        || async {
            let seen = strangers(c, &ours).await;
            seen.iter()
                .any(|(_, connected, _)| *connected)
                .then_some(seen)
        },
    )
    .await;
    if let Some(seen) = checks.check("light client reaches the coordinator", joined) {
        record(c, seen);
    }
    if watch.try_status().is_some() {
        anyhow::bail!(
            "the light client exited before any event\n{}",
            watch.report()
        );
    }
    record(b, strangers(b, &ours).await);
    tokio::time::sleep(Duration::from_secs(2)).await; // its DA subscription reaches the coordinator

    // K envelopes, one `da publish` each; the coordinator's root and sequence after each.
    let events = sample_da_events(&[c.peer_id().to_owned()], ENVELOPES * PER_ENVELOPE);
    let mut after: Vec<(u64, String, String)> = Vec::new();
    for batch in events.chunks(PER_ENVELOPE).take(ENVELOPES) {
        agent_da_publish(c, &net.dir().join("events"), batch).await?;
        let st = c.client().da_state().await?;
        after.push((
            st.height,
            hex::encode(st.state_root),
            hex::encode(st.tip_hash),
        ));
        record(b, strangers(b, &ours).await);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let published = &events[..ENVELOPES * PER_ENVELOPE];

    // It prints them and exits 0 by itself; meanwhile the bootstrap node is watched.
    let deadline = Instant::now() + WAIT;
    let status = loop {
        if let Some(s) = watch.wait_exit(Duration::from_millis(500)).await {
            break Some(s);
        }
        record(b, strangers(b, &ours).await);
        if Instant::now() > deadline {
            break None;
        }
    };
    eprintln!(
        "light-client: watch ran {:.1} s, printed {} lines",
        started.elapsed().as_secs_f64(),
        watch.lines().len()
    );
    if let Some(first) = watch.lines().first() {
        eprintln!("light-client: first line: {first}");
    }
    match status {
        Some(s) if s.success() => {}
        Some(s) => checks.ensure(false, format!("watch exited with {s}\n{}", watch.report())),
        None => {
            checks.ensure(
                false,
                format!(
                    "watch did not exit after {ENVELOPES} envelopes within {WAIT:?}\n{}",
                    watch.report()
                ),
            );
            watch.kill().await;
        }
    }

    // Its output: one JSON object per event, in order, with the coordinator's key and roots.
    let lines = watch.lines();
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).map_err(|e| anyhow::anyhow!("not JSON ({e}): {l}")))
        .collect::<anyhow::Result<_>>()?;
    checks.ensure(
        parsed.len() == published.len(),
        format!(
            "{} lines printed for {} events:\n{}",
            parsed.len(),
            published.len(),
            lines.join("\n")
        ),
    );
    for (i, (line, event)) in parsed.iter().zip(published).enumerate() {
        let want = serde_json::to_value(event)?;
        checks.ensure(
            line["event"] == want,
            format!("line {i}: event {} != published {want}", line["event"]),
        );
        let height = line["height"].as_u64();
        let (want_height, want_root, want_hash) = &after[i / PER_ENVELOPE];
        checks.ensure(
            height == Some(*want_height),
            format!(
                "line {i}: height {:?} != blob {want_height}",
                line["height"]
            ),
        );
        checks.ensure(
            line["blob_hash"].as_str() == Some(want_hash.as_str()),
            format!(
                "line {i}: blob_hash {} != the coordinator's tip {want_hash}",
                line["blob_hash"]
            ),
        );
        if i % PER_ENVELOPE == PER_ENVELOPE - 1 {
            checks.ensure(
                line["state_root"].as_str() == Some(want_root.as_str()),
                format!(
                    "line {i} (last of blob {want_height}): state_root {} != coordinator's {want_root}",
                    line["state_root"]
                ),
            );
        }
    }

    // Never advertised: no node lists the light client with an address.
    record(b, strangers(b, &ours).await);
    record(c, strangers(c, &ours).await);
    checks.ensure(
        leaked.is_empty(),
        format!("the light client was listed with an address: {leaked:?}"),
    );
    // And it needed no token: it was given no --api, --cookie or cookie file of a daemon.
    checks.finish()?;
    net.pass();
    Ok(())
}
