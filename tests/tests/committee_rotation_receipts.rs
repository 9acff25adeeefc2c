//! Issue 13 §7 and §8 with real `dsdnd` processes on 127.0.0.x: a full epoch rotation of
//! the coordinator committee while workloads are submitted. A 2-of-3 committee whose group
//! key is the DA authority runs with a schedule of seconds (`[committee]`
//! `epoch_secs`/`handoff_secs`, as in `committee_auto_rotation.rs`); two storage nodes
//! (not members) execute. Three submitters send workloads without pause to every member in
//! turn, two asking for threshold receipts, one for optimistic ones, across two rotations
//! (the first window opens while the net starts; the second runs entirely under the
//! submissions, from the sealing phase before it) until receipts of the last epoch come. Checked: every submission is
//! answered with a receipt (none refused, none lost); every receipt ends up as a threshold
//! receipt on every node (members and storage nodes) and verifies under the key of its
//! epoch as recorded in the DA log; `dsdn-agent receipt verify` on a storage node accepts
//! receipts of both keys with its default key choice; every receipt is recorded in the DA
//! log; receipts signed by the old key during the handoff and by the new key after the
//! switch are both present. Prints the threshold receipt latency (submission to threshold
//! receipt) inside the handoff (phases `handoff`, `dkg`, `switching` on c1) and outside it
//! (issue 13 §8).
//!
//! `cargo build -p dsdn-daemon --bins && cargo test -p dsdn-integration-tests --test
//! committee_rotation_receipts -- --nocapture`

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dsdn_daemon::api::WorkloadResponse;
use dsdn_daemon::client::ApiClient;
use dsdn_daemon::workload::samples::fnv_module;
use dsdn_integration_tests::rotation::start_committee_net_with;
use dsdn_integration_tests::{agent, eventually, fmt_ms, percentile, TestNet, WAIT};
use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::da::DaEvent;
use dsdn_protocols::workload::WorkloadSubmission;
use ed25519_dalek::SigningKey;

/// Schedule epoch and handoff window of the test committee, in seconds.
const EPOCH_SECS: u64 = 24;
const HANDOFF_SECS: u64 = 12;
/// How long two rotations may take to be in force everywhere.
const ROTATION_WAIT: Duration = Duration::from_secs(5 * EPOCH_SECS);
/// Receipts under the new key wanted after the switch before the submitters stop.
const AFTER_SWITCH: usize = 12;

fn hex32(s: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(s)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("not 32 bytes: {s}"))
}

/// One answered (or refused) submission.
#[derive(Clone, Debug)]
struct Sent {
    /// The coordinator it went to.
    to: String,
    /// Asked for an optimistic receipt.
    optimistic: bool,
    /// c1's epoch phase when it was sent.
    phase: String,
    /// From the request to the answer.
    took: Duration,
    /// The answer, or the error.
    answer: Result<WorkloadResponse, String>,
}

/// c1's epoch phase over time, sampled by a task (`phase_at` reads it).
type Phases = Arc<Mutex<Vec<(Instant, String)>>>;

fn phase_at(phases: &Phases, at: Instant) -> String {
    phases
        .lock()
        .ok()
        .and_then(|p| {
            p.iter()
                .rev()
                .find(|(t, _)| *t <= at)
                .map(|(_, ph)| ph.clone())
        })
        .unwrap_or_else(|| "unknown".into())
}

/// Whether a sampled phase (`epoch:phase`) is part of a handoff: the window open (`handoff`,
/// `dkg`) or the rotation sealed and not in force yet (`switching`).
fn in_handoff(phase: &str) -> bool {
    matches!(
        phase.rsplit(':').next(),
        Some("handoff" | "dkg" | "switching")
    )
}

/// Submits workloads to `clients` in turn until `stop`, optimistic or not; each answer is
/// pushed to `out`.
#[allow(clippy::too_many_arguments)]
fn submitter(
    clients: Vec<(String, ApiClient)>,
    network: String,
    module: Vec<u8>,
    seed: u8,
    optimistic: bool,
    phases: Phases,
    stop: Arc<AtomicBool>,
    out: Arc<Mutex<Vec<Sent>>>,
) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    tokio::spawn(async move {
        let key = SigningKey::from_bytes(&[seed; 32]);
        let mut k: u64 = 0;
        while !stop.load(Ordering::Relaxed) {
            let (to, client) = &clients[k as usize % clients.len()];
            k += 1;
            let mut input = vec![seed; 16];
            input.extend_from_slice(&k.to_le_bytes());
            let s = WorkloadSubmission::sign(&key, &network, module.clone(), input, k)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let sent = Instant::now();
            let phase = phase_at(&phases, sent);
            let answer = client
                .submit_workload_with(&s, Some(optimistic))
                .await
                .map_err(|e| format!("{e:#}"));
            let took = sent.elapsed();
            if let Ok(mut o) = out.lock() {
                o.push(Sent {
                    to: to.clone(),
                    optimistic,
                    phase,
                    took,
                    answer,
                });
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workloads_submitted_across_a_rotation_all_get_receipts() -> anyhow::Result<()> {
    let mut net = TestNet::new("committee-rotation-receipts").await?;
    let cn = start_committee_net_with(&mut net, 60, 3, 2, 2, Duration::from_millis(500), |c| {
        c.seeds.committee.epoch_length = Duration::from_secs(EPOCH_SECS);
        c.seeds.committee.handoff = Duration::from_secs(HANDOFF_SECS);
    })
    .await?;
    let genesis = hex32(&cn.group_key)?;
    let names: Vec<String> = cn.names().iter().map(|s| (*s).to_owned()).collect();
    let mut everyone = names.clone();
    everyone.extend(cn.storage.iter().map(|(n, _)| n.clone()));
    let c1 = net.node("c1").client();
    let network = c1.status().await?.network;
    let genesis_epoch = c1
        .committee_status()
        .await?
        .epochs
        .map(|e| e.epoch)
        .ok_or_else(|| anyhow::anyhow!("no epochs in c1's committee status"))?;
    let module = fnv_module(1000)?;
    // One submission fetches the module onto the storage nodes.
    let warm = WorkloadSubmission::sign(
        &SigningKey::from_bytes(&[9; 32]),
        &network,
        module.clone(),
        vec![],
        0,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    c1.submit_workload_with(&warm, Some(false)).await?;

    // c1's phase, sampled every 100 ms.
    let phases: Phases = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (phases, stop, c1) = (phases.clone(), stop.clone(), c1.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                if let Ok(Some(e)) = c1.committee_status().await.map(|s| s.epochs) {
                    let phase = format!("{}:{}", e.epoch, e.phase);
                    if let Ok(mut p) = phases.lock() {
                        p.push((Instant::now(), phase));
                    }
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let sent: Arc<Mutex<Vec<Sent>>> = Arc::default();
    let clients: Vec<(String, ApiClient)> = names
        .iter()
        .map(|n| {
            (
                n.clone(),
                net.node(n).client_with_timeout(Duration::from_secs(60)),
            )
        })
        .collect();
    let mut submitters = Vec::new();
    for (seed, optimistic) in [(1u8, false), (2u8, true), (3u8, false)] {
        submitters.push(submitter(
            clients.clone(),
            network.clone(),
            module.clone(),
            seed,
            optimistic,
            phases.clone(),
            stop.clone(),
            sent.clone(),
        ));
    }

    // The first window opens while the net starts (its rotation waits for the traffic
    // below to reach its effective height); the second one runs entirely under the
    // submissions, from the sealing phase before it.
    let target = genesis_epoch + 2;
    let waited = wait_for_rotation(&net, &names, target, &sent).await;
    stop.store(true, Ordering::Relaxed);
    for s in submitters {
        s.await??;
    }
    sampler.await?;
    waited.map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(80)))?;

    let sent = sent.lock().map(|s| s.clone()).unwrap_or_default();
    let failed: Vec<String> = sent
        .iter()
        .filter_map(|s| {
            s.answer.as_ref().err().map(|e| {
                format!(
                    "to {} (optimistic {}, phase {}): {e}",
                    s.to, s.optimistic, s.phase
                )
            })
        })
        .collect();
    anyhow::ensure!(
        failed.is_empty(),
        "{} of {} submissions refused across the rotation: {failed:#?}\n{}",
        failed.len(),
        sent.len(),
        net.log_dump(80)
    );

    // The keys of the epochs as the log records them.
    let keys = epoch_keys(&net, "s1", genesis_epoch, genesis).await?;
    let new_key = keys
        .get(&target)
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no rotation to epoch {target} in s1's log"))?;
    eprintln!(
        "epoch keys: {:?}",
        keys.iter()
            .map(|(e, k)| (*e, hex::encode(&k[..4])))
            .collect::<Vec<_>>()
    );

    // Every receipt is a threshold receipt on every node, verifying under its epoch's key.
    let ids: Vec<String> = sent
        .iter()
        .filter_map(|s| s.answer.as_ref().ok())
        .map(|a| a.receipt.receipt_id.clone())
        .collect();
    let mut by_key: BTreeMap<String, usize> = BTreeMap::new();
    let mut old_in_handoff = 0;
    for (s, id) in sent.iter().zip(&ids) {
        for n in &everyone {
            let client = net.node(n).client();
            let r = eventually(WAIT, &format!("threshold receipt {id} on {n}"), || {
                let client = client.clone();
                async move {
                    let r = client.receipt(id).await.ok()?;
                    (r.status == "threshold").then_some(r)
                }
            })
            .await
            .map_err(|e| anyhow::anyhow!("{e} (sent to {} in phase {})", s.to, s.phase))?;
            let t = r.decode().map_err(|e| anyhow::anyhow!("{n}: {e}"))?;
            let key = keys.get(&t.epoch).copied().ok_or_else(|| {
                anyhow::anyhow!("{n}: receipt {id} names epoch {} not in the log", t.epoch)
            })?;
            anyhow::ensure!(
                t.group_key == GroupKey(key),
                "{n}: receipt {id} of epoch {} names key {} not its epoch's {}",
                t.epoch,
                hex::encode(t.group_key.0),
                hex::encode(key)
            );
            t.verify(&GroupKey(key))
                .map_err(|e| anyhow::anyhow!("{n}: receipt {id} does not verify: {e}"))?;
            if n == "s1" {
                *by_key.entry(hex::encode(key)).or_default() += 1;
                if key != new_key && in_handoff(&s.phase) {
                    old_in_handoff += 1;
                }
            }
        }
    }
    let mut by_phase: BTreeMap<&str, usize> = BTreeMap::new();
    for s in &sent {
        *by_phase.entry(s.phase.as_str()).or_default() += 1;
    }
    eprintln!(
        "{} submissions by c1's phase when sent: {by_phase:?}; receipts by key: {by_key:?}; old key in the handoff: {old_in_handoff}",
        sent.len()
    );
    anyhow::ensure!(
        by_key.get(&hex::encode(new_key)).copied().unwrap_or(0) >= AFTER_SWITCH,
        "fewer than {AFTER_SWITCH} receipts under the new key"
    );
    anyhow::ensure!(
        old_in_handoff >= 1,
        "no receipt signed by the old key during the handoff"
    );

    // `dsdn-agent receipt verify` on a storage node (not a member), default key choice:
    // the last receipt of each key that signed one. The genesis key may have signed none:
    // when the net starts inside a handoff window, the first rotation can take effect
    // before the first submission is answered. The key of the target epoch must have.
    let mut verified = Vec::new();
    for key in keys.values().copied() {
        let hex_key = hex::encode(key);
        let Some(last) = sent
            .iter()
            .zip(&ids)
            .rev()
            .find(|(s, _)| {
                s.answer
                    .as_ref()
                    .is_ok_and(|a| !a.receipt.is_optimistic() && a.receipt.group_key == hex_key)
            })
            .map(|(_, id)| id.clone())
        else {
            anyhow::ensure!(
                key != new_key,
                "no threshold answer under the new key {hex_key}"
            );
            eprintln!("no threshold answer under {hex_key} (epoch before the submissions)");
            continue;
        };
        let run = agent(net.node("s2"), &["receipt", "verify", &last]).await?;
        anyhow::ensure!(
            run.ok,
            "receipt verify {last} (key {hex_key}) on s2: {}{}",
            run.stdout,
            run.stderr
        );
        verified.push(hex_key);
    }
    anyhow::ensure!(
        verified.len() >= 2,
        "receipts verified under fewer than two epoch keys: {verified:?}"
    );

    // Every receipt is recorded in the DA log.
    let recorded = eventually(WAIT, "every receipt recorded in s2's DA log", || async {
        let r = recorded_receipts(&net, "s2").await.ok()?;
        ids.iter().all(|id| r.contains(id)).then_some(r)
    })
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    eprintln!(
        "{} receipts, all recorded ({} receipt events in the log)",
        ids.len(),
        recorded.len()
    );

    // The figure: threshold receipt latency in the handoff and outside it.
    let mut inside = Vec::new();
    let mut outside = Vec::new();
    for s in sent.iter().filter(|s| !s.optimistic) {
        if in_handoff(&s.phase) {
            inside.push(s.took);
        } else if s.phase != "unknown" {
            outside.push(s.took);
        }
    }
    inside.sort();
    outside.sort();
    for (label, v) in [("handoff", &inside), ("outside", &outside)] {
        println!(
            "threshold receipt latency {label}: n={} median {} p90 {} p99 {} max {}",
            v.len(),
            fmt_ms(percentile(v, 50.0)),
            fmt_ms(percentile(v, 90.0)),
            fmt_ms(percentile(v, 99.0)),
            fmt_ms(v.last().copied().unwrap_or_default())
        );
    }
    anyhow::ensure!(
        !inside.is_empty(),
        "no threshold receipt timed in the handoff"
    );
    net.pass();
    Ok(())
}

/// Waits until every coordinator is on epoch `target` and at least [`AFTER_SWITCH`]
/// receipts of that epoch were answered.
async fn wait_for_rotation(
    net: &TestNet,
    names: &[String],
    target: u64,
    sent: &Arc<Mutex<Vec<Sent>>>,
) -> anyhow::Result<()> {
    eventually(
        ROTATION_WAIT,
        &format!("epoch {target} in force on every coordinator"),
        || async {
            for n in names {
                let e = net.node(n).client().committee_status().await.ok()?.epochs?;
                if e.epoch < target {
                    return None;
                }
            }
            Some(())
        },
    )
    .await?;
    eventually(
        Duration::from_secs(60),
        &format!("receipts of epoch {target}"),
        || async {
            let n = sent
                .lock()
                .ok()?
                .iter()
                .filter(|s| s.answer.as_ref().is_ok_and(|a| a.receipt.epoch >= target))
                .count();
            (n >= AFTER_SWITCH).then_some(())
        },
    )
    .await
}

/// The group key of every epoch `name`'s log records, and `genesis` for `genesis_epoch`.
async fn epoch_keys(
    net: &TestNet,
    name: &str,
    genesis_epoch: u64,
    genesis: [u8; 32],
) -> anyhow::Result<BTreeMap<u64, [u8; 32]>> {
    let mut keys = BTreeMap::from([(genesis_epoch, genesis)]);
    for_each_event(net, name, |e| {
        if let DaEvent::CommitteeRotated(r) = e {
            keys.insert(r.epoch, r.group_key.0);
        }
    })
    .await?;
    Ok(keys)
}

/// The receipt ids (hex) recorded in `name`'s log.
async fn recorded_receipts(net: &TestNet, name: &str) -> anyhow::Result<HashSet<String>> {
    let mut out = HashSet::new();
    for_each_event(net, name, |e| {
        if let DaEvent::ReceiptRecorded { receipt } = e {
            out.insert(hex::encode(receipt.receipt.receipt_id.0));
        }
    })
    .await?;
    Ok(out)
}

async fn for_each_event(
    net: &TestNet,
    name: &str,
    mut f: impl FnMut(&DaEvent),
) -> anyhow::Result<()> {
    let client = net.node(name).client();
    let height = client.da_state().await?.height;
    let mut from = 1;
    while from <= height {
        let blobs = client.da_blobs(from, 64).await?;
        anyhow::ensure!(!blobs.is_empty(), "no blob at {from} on {name}");
        for b in &blobs {
            b.events.iter().for_each(&mut f);
        }
        from += blobs.len() as u64;
    }
    Ok(())
}
