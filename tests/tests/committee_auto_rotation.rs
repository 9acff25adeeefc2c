//! Issue 13 §3 and §7 with real `dsdnd` processes on 127.0.0.x: the automatic epoch
//! rotation. A 2-of-3 coordinator committee whose group key is the DA authority runs with
//! a schedule of seconds (`[committee] epoch_secs`/`handoff_secs`); in a handoff window
//! it runs the next committee's DKG over the network (the members, registered in the
//! coordinator registry of the log, selected in the order the seed pinned to the log gives:
//! only members of the committee in force can take part), signs the key proof with the
//! new shares, seals the
//! `committee_rotated` event and from its `effective_height` seals with the new key, while
//! DA events are posted to every member. Checked: every coordinator reports the new epoch;
//! every blob of every node verifies under the key of its epoch as recorded in the log (the
//! new key from `effective_height` on); the rotation's members are the selection recomputed
//! from the log (registry, anchor blob, seed); no event answered "published" is missing; a node
//! started afterwards with the genesis configuration syncs across both epochs to the same
//! state root. Prints the DKG time of the rotation (`committee_dkg_seconds`). Also: a
//! failed window falls back and a later one rotates; on an idle log the rotation takes
//! effect through empty filler blobs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::rotation::{
    blob_of, check_selections, checkpoints, hex32, log_events, start_committee_net_with,
    CommitteeNet,
};
use dsdn_integration_tests::{
    chunk_events, converge, da_tip, eventually, metric, unix_now, TestNet,
};
use dsdn_protocols::da::DaEvent;
use dsdn_protocols::NetworkId;

/// Schedule epoch and handoff window of the test committee, in seconds.
const EPOCH_SECS: u64 = 24;
const HANDOFF_SECS: u64 = 12;

/// How long the first rotation may take to be in force everywhere (up to one schedule
/// epoch before the window opens, then the DKG, the key proof and the lead of heights).
const ROTATION_WAIT: Duration = Duration::from_secs(3 * EPOCH_SECS);

/// A 2-of-3 committee net (coordinators at .40–.42, one storage node) rotating on the
/// test schedule: the net, the network id, the genesis group key, the coordinators' names
/// and the genesis epoch.
async fn start_rotating(
    net: &mut TestNet,
) -> anyhow::Result<(CommitteeNet, NetworkId, [u8; 32], Vec<String>, u64)> {
    let cn = start_committee_net_with(net, 40, 3, 2, 1, Duration::from_millis(500), |c| {
        c.seeds.committee.epoch_length = Duration::from_secs(EPOCH_SECS);
        c.seeds.committee.handoff = Duration::from_secs(HANDOFF_SECS);
    })
    .await?;
    let network = NetworkId::new("devnet").map_err(|e| anyhow::anyhow!("{e}"))?;
    let genesis = hex32(&cn.group_key)?;
    let names: Vec<String> = cn.names().iter().map(|s| (*s).to_owned()).collect();
    let (genesis_epoch, _, _) = epoch_of(net, "c1")
        .await
        .ok_or_else(|| anyhow::anyhow!("no epochs in c1's committee status"))?;
    Ok((cn, network, genesis, names, genesis_epoch))
}

/// The epoch in force on coordinator `name` (its committee status), with the rotations it
/// saw take effect.
async fn epoch_of(net: &TestNet, name: &str) -> Option<(u64, u64, String)> {
    let st = net.node(name).client().committee_status().await.ok()?;
    let e = st.epochs?;
    Some((e.epoch, e.rotations, e.phase))
}

/// Checks every blob of `name`'s log against the key of its height: `genesis` until the
/// first recorded rotation's `effective_height`, then each rotation's group key. Returns
/// the rotations seen (epoch → (effective height, key)).
async fn verify_log(
    net: &TestNet,
    name: &str,
    network: &NetworkId,
    genesis: [u8; 32],
) -> anyhow::Result<BTreeMap<u64, (u64, [u8; 32])>> {
    let client = net.node(name).client();
    let height = client.da_state().await?.height;
    let mut rotations: BTreeMap<u64, (u64, [u8; 32])> = BTreeMap::new();
    let mut from = 1;
    while from <= height {
        let blobs = client.da_blobs(from, 64).await?;
        anyhow::ensure!(!blobs.is_empty(), "no blob at {from} on {name}");
        for b in &blobs {
            let key = rotations
                .values()
                .filter(|(eff, _)| *eff <= b.height)
                .max_by_key(|(eff, _)| *eff)
                .map_or(genesis, |(_, k)| *k);
            let sig: [u8; 64] = hex::decode(&b.signature)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("signature of blob {} is not 64 bytes", b.height))?;
            let blob = blob_of(b, network, sig)?;
            blob.verify(network, &key).map_err(|e| {
                anyhow::anyhow!(
                    "{name}: blob {} does not verify under the key of its epoch ({}): {e}",
                    b.height,
                    hex::encode(key)
                )
            })?;
            for e in &b.events {
                if let DaEvent::CommitteeRotated(r) = e {
                    rotations.insert(r.epoch, (r.effective_height, r.group_key.0));
                }
            }
        }
        from += blobs.len() as u64;
    }
    Ok(rotations)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_committee_rotates_its_key_while_events_are_posted() -> anyhow::Result<()> {
    let mut net = TestNet::new("committee-auto-rotation").await?;
    let (cn, network, genesis, names, genesis_epoch) = start_rotating(&mut net).await?;

    // Events posted to every member, one at a time, until the rotation is in force
    // everywhere (and a few after).
    let ids: Vec<String> = cn
        .storage
        .iter()
        .map(|(n, _)| net.node(n).peer_id().to_owned())
        .collect();
    let mut events = chunk_events(&ids, 400);
    // The last ones are posted to a member restarted after the rotation.
    let after_restart = events.split_off(394);
    let acked: Arc<Mutex<Vec<DaEvent>>> = Arc::default();
    let failed: Arc<Mutex<Vec<String>>> = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let clients: Vec<_> = names
            .iter()
            .map(|n| net.node(n).client_with_timeout(Duration::from_secs(60)))
            .collect();
        let (acked, failed, stop) = (acked.clone(), failed.clone(), stop.clone());
        tokio::spawn(async move {
            for (i, e) in events.into_iter().enumerate() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                let c = &clients[i % clients.len()];
                match c.da_publish(std::slice::from_ref(&e)).await {
                    Ok(_) => acked.lock().map(|mut a| a.push(e)).unwrap_or(()),
                    Err(err) => failed
                        .lock()
                        .map(|mut f| f.push(format!("event {i}: {err:#}")))
                        .unwrap_or(()),
                }
                tokio::time::sleep(Duration::from_millis(150)).await;
            }
        })
    };

    let rotated = eventually(
        ROTATION_WAIT,
        "the next epoch in force on every coordinator",
        || async {
            let mut out = Vec::new();
            for n in &names {
                let (epoch, rotations, phase) = epoch_of(&net, n).await?;
                if epoch <= genesis_epoch || rotations == 0 {
                    return None;
                }
                out.push((n.clone(), epoch, phase));
            }
            Some(out)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(80)));
    let rotated = match rotated {
        Ok(r) => r,
        Err(e) => {
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            return Err(e);
        }
    };
    eprintln!("in force: {rotated:?}");
    // Events keep being sealed under the new key.
    let tip = da_tip(net.node("c1")).await?.height;
    eventually(
        Duration::from_secs(30),
        "blobs sealed after the switch",
        || async { (da_tip(net.node("c1")).await.ok()?.height >= tip + 3).then_some(()) },
    )
    .await?;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    publisher.await?;
    let failed = failed.lock().map(|f| f.clone()).unwrap_or_default();
    anyhow::ensure!(
        failed.is_empty(),
        "publications failed during the rotation: {failed:?}\n{}",
        net.log_dump(60)
    );

    // One root everywhere; every blob verifies under the key of its epoch on every node.
    let mut everyone: Vec<String> = names.clone();
    everyone.extend(cn.storage.iter().map(|(n, _)| n.clone()));
    let refs: Vec<&str> = everyone.iter().map(String::as_str).collect();
    converge(&net, &refs, Duration::from_secs(30)).await?;
    let mut seen = None;
    for n in &everyone {
        let r = verify_log(&net, n, &network, genesis).await?;
        anyhow::ensure!(!r.is_empty(), "{n}: no committee_rotated event in the log");
        if let Some((eff, key)) = r.get(&(genesis_epoch + 1)) {
            anyhow::ensure!(*key != genesis, "{n}: the rotation kept the genesis key");
            let tip = da_tip(net.node(n)).await?.height;
            anyhow::ensure!(tip >= *eff, "{n}: tip {tip} below effective height {eff}");
        } else {
            anyhow::bail!("{n}: no rotation to epoch {}", genesis_epoch + 1);
        }
        seen = Some(r);
    }
    eprintln!("rotations in the log (epoch → (effective height, key)): {seen:?}");
    // Each rotation's members are the selection the log pins (registry, anchor, seed).
    let schedule = dsdn_protocols::committee::epoch::EpochSchedule {
        start_ms: 0,
        epoch_ms: EPOCH_SECS * 1000,
        handoff_ms: HANDOFF_SECS * 1000,
    };
    let member_ids: Vec<String> = names
        .iter()
        .map(|n| net.node(n).peer_id().to_owned())
        .collect();
    let selections = check_selections(
        &net,
        "c1",
        &network,
        schedule,
        &member_ids,
        &[],
        genesis_epoch,
    )
    .await?;
    eprintln!("selections recomputed from the log: {selections:?}");

    // Nothing acknowledged is missing.
    let log = log_events(&net, "c1").await?;
    let acked = acked.lock().map(|a| a.clone()).unwrap_or_default();
    let missing: Vec<String> = acked
        .iter()
        .map(serde_json::to_string)
        .collect::<Result<Vec<_>, _>>()?
        .into_iter()
        .filter(|e| !log.contains(e))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "{} of {} acknowledged events are not in the log: {missing:?}",
        missing.len(),
        acked.len()
    );
    eprintln!("{} events acknowledged, all in the log", acked.len());

    // The figures: the DKG time of the rotation on the members.
    for n in &names {
        let count = metric(net.node(n), "committee_dkg_seconds_count", &[]).await;
        let sum = metric(net.node(n), "committee_dkg_seconds_sum", &[]).await;
        let rotations = metric(net.node(n), "committee_rotations_total", &[]).await;
        anyhow::ensure!(
            rotations >= 1.0,
            "{n}: committee_rotations_total {rotations}"
        );
        if count > 0.0 {
            eprintln!(
                "{n}: rotation DKG {:.0} ms (mean of {count})",
                1000.0 * sum / count
            );
        }
    }

    // A member restarted after the rotation (its configuration names the genesis epoch)
    // resumes with the key share of the epoch in force and seals events posted to it.
    let args = cn.args.clone();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    net.respawn_with_args("c1", &a).await?;
    let new_key = hex::encode(
        seen.as_ref()
            .and_then(|r| r.get(&(genesis_epoch + 1)))
            .map_or([0; 32], |(_, k)| *k),
    );
    eventually(
        Duration::from_secs(30),
        "c1 back on the epoch in force",
        || async {
            let st = net.node("c1").client().committee_status().await.ok()?;
            (st.epoch > genesis_epoch && st.rotation.is_some() && st.epochs.is_some()).then_some(st)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    let client = net.node("c1").client_with_timeout(Duration::from_secs(60));
    for e in &after_restart {
        client
            .da_publish(std::slice::from_ref(e))
            .await
            .map_err(|err| {
                anyhow::anyhow!("c1 after its restart: {err:#}\n{}", net.log_dump(40))
            })?;
    }
    let log = log_events(&net, "c2").await?;
    for e in &after_restart {
        anyhow::ensure!(
            log.contains(&serde_json::to_string(e)?),
            "an event posted to c1 after its restart is not in c2's log"
        );
    }
    eprintln!(
        "c1 restarted on the epoch in force (key {new_key}) and sealed {} events",
        after_restart.len()
    );

    // A node started now with the genesis configuration syncs across both epochs.
    let cfg = net
        .config()
        .with_da(dsdn_integration_tests::fast_da())
        .with_da_authority(cn.group_key.clone())
        .with_static_peer(net.addr(40));
    net.spawn("late", NodeMode::Storage, 50, &cfg).await?;
    let mut with_late = refs.clone();
    with_late.push("late");
    converge(&net, &with_late, Duration::from_secs(60))
        .await
        .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(60)))?;
    verify_log(&net, "late", &network, genesis).await?;
    let st = net.node("late").client().da_state().await?;
    anyhow::ensure!(
        st.committee_epoch.is_some_and(|e| e > genesis_epoch),
        "late's DA state names epoch {:?}",
        st.committee_epoch
    );
    eprintln!(
        "late joiner synced across the rotation to {}",
        da_tip(net.node("late")).await?
    );

    // A new full node (`state_sync = "auto"`) and a light client (`--newest`) with the
    // genesis configuration start from the newest blob, signed by the new key: they learn
    // it through the rotation blob instead of replaying from height 1 (issue 16 §4, §5).
    let effective = seen
        .as_ref()
        .and_then(|r| r.get(&(genesis_epoch + 1)))
        .map_or(0, |(e, _)| *e);
    checkpoints::state_sync_after_rotation(&mut net, &cfg, "c1", effective).await?;
    checkpoints::light_from_newest(&net, &cfg, "c2", effective).await?;

    // The registry with real daemons: every coordinator registers itself, and a later
    // window selects over all of them (not the fallback to the committee in force), as
    // recomputed from the log.
    let over_registry = eventually(
        ROTATION_WAIT,
        "a rotation selected over the three registered coordinators",
        || async {
            match check_selections(
                &net,
                "c1",
                &network,
                schedule,
                &member_ids,
                &[],
                genesis_epoch,
            )
            .await
            {
                Ok(s) => s
                    .into_iter()
                    .find(|s| s.registered == member_ids.len())
                    .map(Ok),
                Err(e) => Some(Err(e)),
            }
        },
    )
    .await?
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(40)))?;
    anyhow::ensure!(
        over_registry.epoch > genesis_epoch
            && over_registry.anchor > 0
            && over_registry.members.len() == member_ids.len(),
        "selection over the full registry: {over_registry:?}"
    );
    eprintln!("selected over the full registry: {over_registry:?}");
    net.pass();
    Ok(())
}

/// A handoff window whose DKG cannot finish (a member is down: the DKG needs every member)
/// falls back: the current committee keeps sealing what is posted, the failure is counted
/// (`committee_rotation_failures_total`, `fallback` in the status), and once the member is
/// back a later window rotates.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_handoff_falls_back_and_a_later_window_rotates() -> anyhow::Result<()> {
    let mut net = TestNet::new("committee-rotation-fallback").await?;
    let cn = start_committee_net_with(&mut net, 40, 3, 2, 1, Duration::from_millis(500), |c| {
        c.seeds.committee.epoch_length = Duration::from_secs(EPOCH_SECS);
        c.seeds.committee.handoff = Duration::from_secs(HANDOFF_SECS);
    })
    .await?;
    let ids: Vec<String> = cn
        .storage
        .iter()
        .map(|(n, _)| net.node(n).peer_id().to_owned())
        .collect();
    // Events posted to c1 and c2 throughout (none may fail while a window falls back); c1
    // and c2 are a majority without c3.
    let events = chunk_events(&ids, 400);
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let clients: Vec<_> = ["c1", "c2"]
            .iter()
            .map(|n| net.node(n).client_with_timeout(Duration::from_secs(60)))
            .collect();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut failed = Vec::new();
            for (i, e) in events.into_iter().enumerate() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    break;
                }
                if let Err(err) = clients[i % clients.len()]
                    .da_publish(std::slice::from_ref(&e))
                    .await
                {
                    failed.push(format!("{err:#}"));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            failed
        })
    };
    let result = fallback_then_rotation(&mut net, &cn).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let failed = publisher.await?;
    result.map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(60)))?;
    anyhow::ensure!(failed.is_empty(), "publications failed: {failed:?}");
    let mut everyone: Vec<String> = cn.names().iter().map(|s| (*s).to_owned()).collect();
    everyone.extend(cn.storage.iter().map(|(n, _)| n.clone()));
    let refs: Vec<&str> = everyone.iter().map(String::as_str).collect();
    converge(&net, &refs, Duration::from_secs(30)).await?;
    net.pass();
    Ok(())
}

/// c3 down between two windows: a window falls back; c3 back: a later window rotates.
async fn fallback_then_rotation(
    net: &mut TestNet,
    cn: &dsdn_integration_tests::rotation::CommitteeNet,
) -> anyhow::Result<()> {
    let base = eventually(
        ROTATION_WAIT,
        "c1 sealing, 3 s or more before a window",
        || async {
            let e = net
                .node("c1")
                .client()
                .committee_status()
                .await
                .ok()?
                .epochs?;
            let now = unix_now() * 1000;
            (e.phase == "sealing" && e.handoff_opens_ms > now + 3_000).then_some(e.epoch)
        },
    )
    .await?;
    // SIGKILL: a member killed right after it aggregated a blob, before its gossip left,
    // keeps that blob while the next round re-signs the same bytes (the lock holds) under
    // another, randomized FROST signature; since blob version 3 both copies have one
    // identity, so the member takes the next blob on its return (it was refused as
    // `prev_hash_mismatch` with version 2).
    net.node_mut("c3").kill().await?;
    let fell_back = eventually(ROTATION_WAIT, "a failed handoff window on c1", || async {
        let e = net
            .node("c1")
            .client()
            .committee_status()
            .await
            .ok()?
            .epochs?;
        (e.failures >= 1).then_some(e)
    })
    .await?;
    anyhow::ensure!(fell_back.epoch == base, "c1 left epoch {base} without c3");
    eprintln!(
        "c1 fell back: {:?} (phase {})",
        fell_back.fallback_reason, fell_back.phase
    );
    let failures = metric(net.node("c1"), "committee_rotation_failures_total", &[]).await;
    anyhow::ensure!(
        failures >= 1.0,
        "committee_rotation_failures_total {failures}"
    );
    let args = cn.args.clone();
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    net.respawn_with_args("c3", &a).await?;
    let names: Vec<String> = cn.names().iter().map(|s| (*s).to_owned()).collect();
    eventually(ROTATION_WAIT, "a rotation after c3 returned", || async {
        for n in &names {
            let (epoch, _, _) = epoch_of(net, n).await?;
            if epoch <= base {
                return None;
            }
        }
        Some(())
    })
    .await?;
    eprintln!("rotated past epoch {base} once c3 was back");
    Ok(())
}

/// Issue 13 §3 on an idle log: nothing is posted after the net started, yet the rotation
/// takes effect — the committee in force seals empty blobs (fillers) up to the recorded
/// `effective_height` — and every node ends on the new key; a workload submitted afterwards
/// gets a receipt of the new epoch under the new key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_an_idle_log_the_new_key_takes_over() -> anyhow::Result<()> {
    let mut net = TestNet::new("committee-rotation-idle").await?;
    let (cn, network, genesis, names, genesis_epoch) = start_rotating(&mut net).await?;
    let mut everyone: Vec<String> = names.clone();
    everyone.extend(cn.storage.iter().map(|(n, _)| n.clone()));
    // The key in force on every node (coordinators and the storage node) is a recorded
    // epoch's, with no event posted.
    let rotated = eventually(
        ROTATION_WAIT,
        "a new key in force on every node",
        || async {
            let mut out = Vec::new();
            for n in &everyone {
                let st = net.node(n).client().da_state().await.ok()?;
                let key = st.authority_key?;
                if key == cn.group_key || st.committee_epoch.is_none_or(|e| e <= genesis_epoch) {
                    return None;
                }
                out.push((n.clone(), st.height, key));
            }
            Some(out)
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}\n{}", net.log_dump(60)))?;
    eprintln!("in force on an idle log: {rotated:?}");
    for n in &names {
        let (epoch, _, _) = epoch_of(&net, n)
            .await
            .ok_or_else(|| anyhow::anyhow!("no epochs on {n}"))?;
        anyhow::ensure!(epoch > genesis_epoch, "{n} still seals epoch {epoch}");
    }
    let refs: Vec<&str> = everyone.iter().map(String::as_str).collect();
    converge(&net, &refs, Duration::from_secs(30)).await?;
    let rotations = verify_log(&net, "s1", &network, genesis).await?;
    let (eff, new_key) = rotations
        .get(&(genesis_epoch + 1))
        .copied()
        .ok_or_else(|| anyhow::anyhow!("no rotation to epoch {} in s1's log", genesis_epoch + 1))?;
    let tip = da_tip(net.node("s1")).await?.height;
    anyhow::ensure!(tip + 1 >= eff, "tip {tip} below effective height {eff}");
    // The fillers are empty blobs; nothing but the rotation and registrations was posted.
    let blobs = net.node("s1").client().da_blobs(1, 64).await?;
    let empty = blobs.iter().filter(|b| b.events.is_empty()).count();
    anyhow::ensure!(empty >= 1, "no filler blob in s1's log");
    eprintln!("effective height {eff}, tip {tip}, {empty} filler blobs");
    // A workload now: a receipt of the new epoch under the new key.
    let module = dsdn_daemon::workload::samples::fnv_module(100)?;
    let submitter = ed25519_dalek::SigningKey::from_bytes(&[5; 32]);
    let s = dsdn_protocols::workload::WorkloadSubmission::sign(
        &submitter,
        network.as_str(),
        module,
        vec![1, 2, 3],
        1,
    )
    .map_err(|e| anyhow::anyhow!("{e}"))?;
    let answer = net
        .node("c2")
        .client_with_timeout(Duration::from_secs(60))
        .submit_workload_with(&s, Some(false))
        .await?;
    anyhow::ensure!(
        answer.receipt.group_key == hex::encode(new_key)
            && answer.receipt.epoch == genesis_epoch + 1,
        "receipt of epoch {} under {}",
        answer.receipt.epoch,
        answer.receipt.group_key
    );
    net.pass();
    Ok(())
}
