//! Issue 13 §3 with real `dsdnd` processes on 127.0.0.x: a coordinator outside the genesis
//! committee is selected into a later one (selection rule 2, PROTOCOL §7.6a). A 2-of-3
//! committee c1–c3 (group key = DA authority) rotates on a schedule of seconds; c4 starts
//! with the same committee configuration, which names it in `[committee] candidates`, but
//! is not a member: it runs as a follower,
//! registers in the coordinator registry, selects each window like the members and, once
//! a window's seed picks it (3 seats for 4 registered coordinators: about 3 windows in 4),
//! takes part in the DKG and from the `effective_height` seals blobs under the new key as
//! a proposer. The member it replaced retires and keeps following the log.
//!
//! Checked: c5, a coordinator with the same configuration that no one names as a
//! candidate, has its registration refused ("not admitted"), so it can never be selected;
//! c4 reports `following` until it is selected, then `ready` in the epoch naming
//! it with its proposer rotation running and blobs sealed as proposer
//! (`da_rotation_rounds_total{outcome="sealed"}`); the member left out reports `following`,
//! runs no proposer rotation and seals nothing more; every rotation of the log is the
//! selection recomputed from the log alone (registry, anchor, seed, rule 2); DA events posted
//! round-robin to c1–c4 throughout are each acknowledged by the coordinator they were posted
//! to, sealing or not (issue 13 §1: a follower or a retired member forwards them to the
//! committee; no post is refused), events posted to c4 while it follows and to the retired
//! member after it retired are answered "published" once sealed, and every acknowledged
//! event is in the log of every node; every node converges to one tip and state root;
//! restarted with the genesis configuration, c4 and the retired member resume in the log's
//! epoch in force (a member with its share and proposer rotation, or a follower).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::rotation::{check_selections, log_events, start_committee_net_with};
use dsdn_integration_tests::{
    chunk_events, converge, da_tip, eventually, fast_da, metric, TestNet,
};
use dsdn_protocols::da::DaEvent;
use dsdn_protocols::NetworkId;

/// Schedule epoch and handoff window of the test committee, in seconds.
const EPOCH_SECS: u64 = 24;
const HANDOFF_SECS: u64 = 12;
/// Windows c4 is given to be selected in: each selects it with probability 3/4 once it
/// is registered (the first may open before its registration), so a run fails by chance
/// with probability about (1/4)^6.
const WINDOWS: u64 = 8;

/// Events posted directly to c4 while it follows, and to the retired member.
const DIRECT: usize = 5;

/// Posts `events` one by one to `name`, each answered "published" in one blob: the time
/// of each post until the answer.
async fn post_direct(
    net: &TestNet,
    name: &str,
    events: &[DaEvent],
) -> anyhow::Result<Vec<Duration>> {
    let c = net.node(name).client_with_timeout(Duration::from_secs(30));
    let mut out = Vec::new();
    for e in events {
        let started = std::time::Instant::now();
        let r = c.da_publish(std::slice::from_ref(e)).await.map_err(|err| {
            anyhow::anyhow!("{name} did not publish: {err:#}\n{}", net.log_dump(40))
        })?;
        out.push(started.elapsed());
        anyhow::ensure!(
            r.events == 1 && r.heights.len() == 1,
            "{name} answered {r:?}"
        );
    }
    Ok(out)
}

/// "median M ms, max X ms" of `latencies`.
fn figures(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    let median = latencies
        .get(latencies.len() / 2)
        .map_or(0, Duration::as_millis);
    let max = latencies.last().map_or(0, Duration::as_millis);
    format!("median {median} ms, max {max} ms")
}

/// The epoch of the configured committee: the one before the first rotation in `name`'s
/// log, else the epoch `name` reports (the start may fall in a handoff window, so a first
/// rotation can be in the log before the test looks).
async fn genesis_epoch_of(net: &TestNet, name: &str) -> anyhow::Result<u64> {
    let reported = committee_of(net, name)
        .await
        .map(|c| c.1)
        .ok_or_else(|| anyhow::anyhow!("no committee status on {name}"))?;
    let client = net.node(name).client();
    let height = client.da_state().await?.height;
    let mut from = 1;
    while from <= height {
        let blobs = client.da_blobs(from, 64).await?;
        for b in &blobs {
            for e in &b.events {
                if let DaEvent::CommitteeRotated(r) = e {
                    return Ok(r.epoch.saturating_sub(1));
                }
            }
        }
        if blobs.is_empty() {
            break;
        }
        from += blobs.len() as u64;
    }
    Ok(reported)
}

/// The committee status of `name`: `(state, epoch, members, proposer rotation running)`.
async fn committee_of(net: &TestNet, name: &str) -> Option<(String, u64, Vec<String>, bool)> {
    let st = net.node(name).client().committee_status().await.ok()?;
    Some((st.state, st.epoch, st.members, st.rotation.is_some()))
}

/// The blobs `name` sealed as proposer.
async fn sealed_as_proposer(net: &TestNet, name: &str) -> f64 {
    metric(
        net.node(name),
        "da_rotation_rounds_total",
        &[("outcome", "sealed")],
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_is_selected_into_the_committee_and_seals() -> anyhow::Result<()> {
    let mut net = TestNet::new("committee-followers").await?;
    // c4's node key made beforehand: every coordinator names it in `[committee] candidates`
    // (the selection's admission list, PROTOCOL §7.6a).
    let (c4_key, _) = dsdn_daemon::key::load_or_create(&net.data_dir("c4"))?;
    let c4_peer = c4_key.public().to_peer_id();
    let schedule = move |c: &mut dsdn_daemon::localnet::ConfigSpec| {
        c.seeds.committee.round_timeout = Duration::from_millis(500);
        c.seeds.committee.epoch_length = Duration::from_secs(EPOCH_SECS);
        c.seeds.committee.handoff = Duration::from_secs(HANDOFF_SECS);
        c.seeds.committee.candidates = vec![c4_peer];
    };
    let cn = start_committee_net_with(&mut net, 60, 3, 2, 1, Duration::from_millis(500), schedule)
        .await?;
    let network = NetworkId::new("devnet").map_err(|e| anyhow::anyhow!("{e}"))?;
    let genesis_epoch = genesis_epoch_of(&net, "c1").await?;
    let genesis_ids: Vec<String> = cn
        .names()
        .iter()
        .map(|n| net.node(n).peer_id().to_owned())
        .collect();

    // c1–c3 registered first: c4 registers after them, so any window whose anchor holds
    // c4's registration selects over all four.
    for n in cn.names() {
        eventually(
            Duration::from_secs(90),
            &format!("{n} registered"),
            || async {
                let st = net.node(n).client().status().await.ok()?;
                (st.registration?["state"] == "registered").then_some(())
            },
        )
        .await?;
    }
    // c4: the committee configuration of c1–c3, not among its members.
    let mut cfg = net.config().with_da(fast_da());
    schedule(&mut cfg);
    let cfg = cfg
        .with_static_peers(cn.coordinators.iter().map(|(_, l)| net.addr(*l)))
        .with_da_authority(cn.group_key.clone());
    net.spawn_with_args("c4", NodeMode::Coordinator, 64, &cfg, &cn.args())
        .await?;
    let c4_id = net.node("c4").peer_id().to_owned();
    anyhow::ensure!(
        c4_id == c4_peer.to_string(),
        "c4 did not start with its prepared key"
    );
    eventually(
        Duration::from_secs(60),
        "c4 follows and is registered",
        || async {
            let (state, epoch, members, rotation) = committee_of(&net, "c4").await?;
            let st = net.node("c4").client().status().await.ok()?;
            // The epoch in force may be a later one already (its service follows it).
            (state == "following"
                && epoch >= genesis_epoch
                && !members.contains(&c4_id)
                && !rotation
                && st.registration?["state"] == "registered")
                .then_some(())
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    anyhow::ensure!(
        sealed_as_proposer(&net, "c4").await == 0.0,
        "c4 sealed blobs while following"
    );
    // c5: the same configuration, but its PeerId is in no one's candidates: its
    // registration is refused (so it can never be selected), and it is stopped.
    net.spawn_with_args("c5", NodeMode::Coordinator, 68, &cfg, &cn.args())
        .await?;
    let refusal = eventually(
        Duration::from_secs(60),
        "c5's registration refused as not admitted",
        || async {
            let st = net.node("c5").client().status().await.ok()?;
            let r = st.registration?;
            let error = r["last_error"].as_str()?.to_owned();
            (r["state"] == "pending" && error.contains("not admitted")).then_some(error)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    eprintln!("c5 (not a candidate): {refusal}");
    net.node_mut("c5").kill().await?;
    let ids: Vec<String> = cn
        .storage
        .iter()
        .map(|(n, _)| net.node(n).peer_id().to_owned())
        .collect();
    let mut events = chunk_events(&ids, 1500);
    anyhow::ensure!(events.len() > 2 * DIRECT, "too few sample events");
    let mut direct = events.split_off(events.len() - 2 * DIRECT);
    // Posted to c4 while it follows (before any selection can name it: checked after).
    let to_follower: Vec<DaEvent> = direct.drain(..DIRECT).collect();
    // c4 follows when the posts start (a rotation that leaves it out may happen meanwhile;
    // one that selects it would make the later posts a member's).
    let before = committee_of(&net, "c4").await;
    anyhow::ensure!(
        before
            .as_ref()
            .is_some_and(|b| b.0 == "following" && !b.2.contains(&c4_id)),
        "c4 does not follow before its direct posts: {before:?}"
    );
    let latencies = post_direct(&net, "c4", &to_follower).await?;
    let after = committee_of(&net, "c4").await;
    let still = if after.as_ref().is_some_and(|a| a.0 == "following") {
        "following throughout"
    } else {
        "selected during the posts"
    };
    eprintln!(
        "{DIRECT} events posted to the follower c4 ({still}), each published once sealed: {}",
        figures(latencies)
    );
    // Events posted round-robin to c1–c4 until the end; a refusal by a coordinator that
    // does not seal at the time sends the event to the next one.
    let names: Vec<String> = ["c1", "c2", "c3", "c4"].map(String::from).to_vec();
    let acked: Arc<Mutex<Vec<(String, DaEvent)>>> = Arc::new(Mutex::new(
        to_follower
            .iter()
            .map(|e| ("c4".to_owned(), e.clone()))
            .collect(),
    ));
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let refused = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let clients: Vec<_> = names
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    net.node(n).client_with_timeout(Duration::from_secs(60)),
                )
            })
            .collect();
        let (acked, failed, refused, stop) =
            (acked.clone(), failed.clone(), refused.clone(), stop.clone());
        tokio::spawn(async move {
            for (i, e) in events.into_iter().enumerate() {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                // Every coordinator takes the event, sealing or not (issue 13 §1).
                let (name, c) = &clients[i % clients.len()];
                let outcome = match c.da_publish(std::slice::from_ref(&e)).await {
                    Ok(_) => Ok(name.clone()),
                    Err(err) => {
                        if format!("{err:#}").contains("not the DA authority") {
                            refused.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(format!("event {i} to {name}: {err:#}"))
                    }
                };
                match outcome {
                    Ok(name) => acked.lock().map(|mut a| a.push((name, e))).unwrap_or(()),
                    Err(f) => failed.lock().map(|mut v| v.push(f)).unwrap_or(()),
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
    };
    let stop_publisher = |r: anyhow::Result<()>| {
        if r.is_err() {
            stop.store(true, Ordering::Relaxed);
        }
        r
    };

    // Rotations until one selects c4 and it seals in that epoch.
    let joined = eventually(
        Duration::from_secs(WINDOWS * EPOCH_SECS + 30),
        "c4 selected into a committee and sealing with its share",
        || async {
            let (state, epoch, members, rotation) = committee_of(&net, "c4").await?;
            (state == "ready" && epoch > genesis_epoch && members.contains(&c4_id) && rotation)
                .then_some((epoch, members))
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(60)));
    let (joined_epoch, joined_members) = match joined {
        Ok(j) => j,
        Err(e) => return stop_publisher(Err(e)),
    };
    eprintln!("c4 is a member of epoch {joined_epoch}: {joined_members:?}");
    // The committee c4 joined and the one before it, as the log records them.
    let selections = check_selections(
        &net,
        "c4",
        &network,
        dsdn_protocols::committee::epoch::EpochSchedule {
            start_ms: 0,
            epoch_ms: EPOCH_SECS * 1000,
            handoff_ms: HANDOFF_SECS * 1000,
        },
        &genesis_ids,
        std::slice::from_ref(&c4_id),
        genesis_epoch,
    )
    .await;
    let selections = match selections {
        Ok(s) => s,
        Err(e) => return stop_publisher(Err(e)),
    };
    eprintln!("selections recomputed from the log: {selections:?}");
    let joining = selections.iter().find(|s| s.epoch == joined_epoch);
    if !joining.is_some_and(|s| s.members.contains(&c4_id)) {
        return stop_publisher(Err(anyhow::anyhow!(
            "the log's rotation to epoch {joined_epoch} does not name c4: {joining:?}"
        )));
    }
    let registered = joining.map_or(0, |s| s.registered);
    if registered != 4 {
        return stop_publisher(Err(anyhow::anyhow!(
            "c4 was selected over {registered} registered coordinators, not 4"
        )));
    }
    eprintln!("c4 selected by the seed over the 4 registered coordinators");
    let previous: Vec<String> = selections
        .iter()
        .find(|s| s.epoch + 1 == joined_epoch)
        .map_or(genesis_ids.clone(), |s| s.members.clone());
    let name_of = |id: &str| {
        names
            .iter()
            .find(|n| net.node(n).peer_id() == id)
            .cloned()
            .unwrap_or_default()
    };
    let retired: Vec<String> = previous
        .iter()
        .filter(|m| !joined_members.contains(m))
        .map(|m| name_of(m))
        .collect();
    if retired.len() != 1 {
        return stop_publisher(Err(anyhow::anyhow!(
            "epoch {joined_epoch} {joined_members:?} should replace exactly one member of {previous:?}"
        )));
    }
    let retired = retired[0].clone();

    // c4 seals blobs as a proposer (its turns of the proposer rotation).
    let sealed = eventually(
        Duration::from_secs(60),
        "c4 seals a blob as proposer",
        || async {
            let n = sealed_as_proposer(&net, "c4").await;
            (n > 0.0).then_some(n)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)));
    let sealed = match sealed {
        Ok(n) => n,
        Err(e) => return stop_publisher(Err(e)),
    };
    eprintln!("c4 sealed {sealed} blobs as proposer under the key of epoch {joined_epoch}");

    // The member left out follows: no proposer rotation, nothing sealed, the log kept up
    // (unless a later window selected it again, which the log then shows).
    let (state, epoch, _, rotating) = committee_of(&net, &retired)
        .await
        .ok_or_else(|| anyhow::anyhow!("no committee status on {retired}"))?;
    let still_out = epoch == joined_epoch;
    if still_out {
        let before = sealed_as_proposer(&net, &retired).await;
        let tip = da_tip(net.node("c4")).await?.height;
        let grown = eventually(
            Duration::from_secs(30),
            "blobs sealed after the switch",
            || async { (da_tip(net.node("c4")).await.ok()?.height >= tip + 4).then_some(()) },
        )
        .await;
        if let Err(e) = grown {
            return stop_publisher(Err(e));
        }
        let (state_now, epoch_now, _, rotating_now) = committee_of(&net, &retired)
            .await
            .ok_or_else(|| anyhow::anyhow!("no committee status on {retired}"))?;
        let after = sealed_as_proposer(&net, &retired).await;
        if epoch_now == joined_epoch {
            let r = (|| {
                anyhow::ensure!(
                    state == "following" && !rotating && state_now == "following" && !rotating_now,
                    "{retired} retired from epoch {joined_epoch} but reports {state_now:?} (rotation {rotating_now})"
                );
                anyhow::ensure!(
                    after == before,
                    "{retired} sealed {} blobs after it retired",
                    after - before
                );
                Ok(())
            })();
            if let Err(e) = r {
                return stop_publisher(Err(e));
            }
            eprintln!("{retired} retired at epoch {joined_epoch}: following, sealing nothing");
            // Posted to the retired member: it forwards them to the new committee.
            let latencies = match post_direct(&net, &retired, &direct).await {
                Ok(l) => l,
                Err(e) => return stop_publisher(Err(e)),
            };
            if let Ok(mut a) = acked.lock() {
                a.extend(direct.iter().map(|e| (retired.clone(), e.clone())));
            }
            let (state_end, epoch_end, _, _) = committee_of(&net, &retired)
                .await
                .ok_or_else(|| anyhow::anyhow!("no committee status on {retired}"))?;
            let still = if state_end == "following" {
                "following throughout".to_owned()
            } else {
                format!("{state_end} in epoch {epoch_end} by the end")
            };
            eprintln!(
                "{DIRECT} events posted to the retired {retired} ({still}), each published once sealed: {}",
                figures(latencies)
            );
        }
    } else {
        eprintln!("{retired} was selected again in epoch {epoch} before it could be checked");
    }

    // c4 takes events as a member.
    let by_c4 = eventually(
        Duration::from_secs(30),
        "an event acknowledged by c4",
        || async {
            let n = acked.lock().ok()?.iter().filter(|(n, _)| n == "c4").count();
            (n > 0).then_some(n)
        },
    )
    .await;
    if let Err(e) = by_c4 {
        return stop_publisher(Err(e));
    }
    stop.store(true, Ordering::Relaxed);
    publisher.await?;
    let failed = failed.lock().map(|f| f.clone()).unwrap_or_default();
    anyhow::ensure!(
        failed.is_empty(),
        "publications failed: {failed:?}\n{}",
        net.log_dump(60)
    );

    // One tip and root everywhere, the follower and the retired member included.
    let mut everyone = names.clone();
    everyone.extend(cn.storage.iter().map(|(n, _)| n.clone()));
    converge(&net, &everyone, Duration::from_secs(30))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;

    // Every acknowledged event is in the log of every node; some were taken by c4 as a
    // member.
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    for n in &everyone {
        let log = log_events(&net, n).await?;
        let mut missing = Vec::new();
        for (_, e) in &acked {
            if !log.contains(&serde_json::to_string(e)?) {
                missing.push(e.clone());
            }
        }
        anyhow::ensure!(
            missing.is_empty(),
            "{n}: {} of {} acknowledged events are not in the log: {missing:?}",
            missing.len(),
            acked.len()
        );
    }
    let by_c4 = acked.iter().filter(|(n, _)| n == "c4").count();
    anyhow::ensure!(by_c4 > 0, "no event was acknowledged by c4");
    let refused = refused.load(Ordering::Relaxed);
    anyhow::ensure!(
        refused == 0,
        "{refused} posts refused as not the DA authority"
    );
    eprintln!(
        "{} events acknowledged ({by_c4} by c4), all in every node's log; no post refused",
        acked.len()
    );

    // Restarted with the genesis configuration, c4 and the retired member resume from the
    // log's epoch in force: a member of it with its key share and proposer rotation, or a
    // follower of it.
    let args = cn.args.clone();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    for n in ["c4", retired.as_str()] {
        let in_force = committee_of(&net, "c3")
            .await
            .map_or(joined_epoch, |c| c.1.max(joined_epoch));
        net.respawn_with_args(n, &a).await?;
        let id = net.node(n).peer_id().to_owned();
        let (state, epoch) = eventually(
            Duration::from_secs(30),
            &format!("{n} resumed in the epoch in force"),
            || async {
                let (state, epoch, members, rotating) = committee_of(&net, n).await?;
                let member = members.contains(&id);
                (epoch >= in_force
                    && ((member && state == "ready" && rotating)
                        || (!member && state == "following" && !rotating)))
                    .then_some((state, epoch))
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
        eprintln!("{n} restarted: {state} in epoch {epoch}");
    }
    net.pass();
    Ok(())
}
