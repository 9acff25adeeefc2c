//! Issue 13 §7 (c) with real `dsdnd` processes, each in its own network namespace (the
//! NAT lab, `dsdn_integration_tests::lab`; root, iproute2 and nftables needed): a 3-of-4
//! committee whose group key is the DA authority is split 2 | 2 by nftables rules in the
//! members' namespaces. Neither half has the threshold, so nothing is sealed while the
//! split lasts although both halves take publications and keep changing rounds; once it
//! heals, the log resumes, the events posted to both halves during the split are sealed
//! once, every member ends with one tip and state root, and no member holds fork evidence.
//!
//! Namespaces, not loopback: a dial from `127.0.0.a` to `127.0.0.b` leaves from
//! `127.0.0.1`, so loopback packets do not say which node sent them; a namespace's packets
//! come from its own documentation address (198.51.100.x).

use std::net::Ipv4Addr;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use dsdn_daemon::api::{CommitteeStatusResponse, DaStateView, ForkEvidenceView};
use dsdn_integration_tests::chunk_events;
use dsdn_integration_tests::da::DaTip;
use dsdn_integration_tests::lab::{DaemonSpec, Lab, Stack};
use dsdn_protocols::da::DaEvent;

/// Waits for the lab: generous for 2 loaded cores.
const WAIT: Duration = Duration::from_secs(60);

/// The members' libp2p port (one namespace each, so one port for all).
const PORT: u16 = 9600;

/// How long the split is held: many round timeouts (1 s each).
const SPLIT: Duration = Duration::from_secs(12);

const MEMBERS: [&str; 4] = ["c1", "c2", "c3", "c4"];

fn tip(lab: &Lab, name: &str) -> Option<DaTip> {
    let out = lab.agent(name, &["da", "state", "--json"]).ok()?;
    serde_json::from_str::<DaStateView>(&out)
        .ok()
        .map(|st| DaTip::of(&st))
}

fn committee(lab: &Lab, name: &str) -> Option<CommitteeStatusResponse> {
    let out = lab.agent(name, &["committee", "status", "--json"]).ok()?;
    serde_json::from_str(&out).ok()
}

/// Waits until every member has the same tip, at least `min_height`; that tip.
fn agree(lab: &Lab, min_height: u64) -> anyhow::Result<DaTip> {
    Ok(lab.wait_until("every member at one tip", WAIT, || {
        let first = tip(lab, MEMBERS[0])?;
        (first.height >= min_height
            && MEMBERS[1..]
                .iter()
                .all(|m| tip(lab, m).as_ref() == Some(&first)))
        .then_some(first)
    })?)
}

/// Writes `events[i]` as a one-event JSON file; its path.
fn event_file(lab: &Lab, event: &DaEvent, i: usize) -> anyhow::Result<String> {
    let path = lab.dir().join(format!("event-{i}.json"));
    std::fs::write(&path, serde_json::to_vec(&[event])?)?;
    Ok(path.to_string_lossy().into_owned())
}

/// Drops every packet between this namespace and the other half's addresses.
fn split_rules(other: &[Ipv4Addr]) -> String {
    let set: Vec<String> = other.iter().map(Ipv4Addr::to_string).collect();
    let set = set.join(", ");
    format!(
        "table inet split {{\n\
         \tchain input {{ type filter hook input priority -10; policy accept;\n\
         \t\tip saddr {{ {set} }} counter drop\n\t}}\n\
         \tchain output {{ type filter hook output priority -10; policy accept;\n\
         \t\tip daddr {{ {set} }} counter drop\n\t}}\n\
         }}\n"
    )
}

/// Packets the split rules of `name`'s namespace dropped.
fn dropped(lab: &Lab, host: &str) -> u64 {
    lab.exec(host, &["nft", "list", "table", "inet", "split"])
        .map(|text| {
            text.split("counter packets ")
                .skip(1)
                .filter_map(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0)
}

/// Publishes the events of `file` on `name`, retrying (while the mesh forms) until it is
/// answered; the last error when it never is.
fn publish(lab: &Lab, name: &str, file: &str, what: &str) -> anyhow::Result<()> {
    let mut last = String::new();
    let done = lab.wait_until(what, WAIT, || {
        match lab.agent(name, &["da", "publish", "--file", file]) {
            Ok(_) => Some(()),
            Err(e) => {
                last = e.to_string();
                None
            }
        }
    });
    done.map_err(|e| anyhow::anyhow!("{e}\nthe last attempt: {last}"))
}

fn wait_child(child: &mut Child, timeout: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return Some(st);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_two_two_split_of_a_three_of_four_committee_seals_nothing_and_forks_nothing(
) -> anyhow::Result<()> {
    let mut lab = Lab::new("split")?;
    let mut ips = Vec::new();
    let mut ids = Vec::new();
    for m in MEMBERS {
        let host = lab.public_host(m, Stack::V4)?;
        ips.push(
            host.ipv4
                .ok_or_else(|| anyhow::anyhow!("{m} has no IPv4 address"))?,
        );
        ids.push(lab.init_key(m)?.0);
    }
    let mut base = DaemonSpec::new("coordinator")
        .config
        .with_da(dsdn_integration_tests::fast_da());
    base.seeds.committee.round_timeout = Duration::from_millis(1000);
    let spec = |i: usize, config: &dsdn_daemon::localnet::ConfigSpec| {
        let mut s = DaemonSpec::new("coordinator")
            .config(config.clone())
            .listen(format!("{}:{PORT}", ips[i]))
            .arg("--committee-members")
            .arg(ids.join(","))
            .arg("--committee-threshold")
            .arg("3");
        for (j, ip) in ips.iter().enumerate() {
            if j != i {
                s = s.static_peer(format!("{ip}:{PORT}"));
            }
        }
        s
    };
    let mesh = |lab: &Lab| {
        lab.wait_until("a full mesh of the members", WAIT, || {
            MEMBERS
                .iter()
                .all(|a| MEMBERS.iter().all(|b| a == b || lab.connected(a, b)))
                .then_some(())
        })
    };

    // The committee's DKG, then every member restarts with the group key as DA authority.
    for (i, m) in MEMBERS.iter().enumerate() {
        lab.spawn(m, m, spec(i, &base))?;
    }
    mesh(&lab)?;
    let dkg: CommitteeStatusResponse =
        serde_json::from_str(&lab.agent("c1", &["committee", "dkg", "--json"])?)?;
    let group_key = dkg
        .group_key
        .ok_or_else(|| anyhow::anyhow!("the DKG gave no group key"))?;
    lab.wait_until("every member holds its key share", WAIT, || {
        MEMBERS
            .iter()
            .all(|m| committee(&lab, m).and_then(|c| c.group_key).as_ref() == Some(&group_key))
            .then_some(())
    })?;
    let with_key = base.clone().with_da_authority(group_key.clone());
    for (i, m) in MEMBERS.iter().enumerate() {
        lab.stop(m)?;
        lab.spawn(m, m, spec(i, &with_key))?;
    }
    mesh(&lab)?;

    // Distinct chunk declarations: each must be in the log exactly once (sample replica
    // events repeat, and registrations may be re-sent by their nodes).
    let events: Vec<DaEvent> = chunk_events(&ids, 64)
        .into_iter()
        .filter(|e| matches!(e, DaEvent::ChunkDeclared { .. }))
        .take(4)
        .collect();
    anyhow::ensure!(events.len() == 4, "too few sample chunk declarations");
    let first = event_file(&lab, &events[0], 0)?;
    publish(&lab, "c1", &first, "a first publication sealed")?;
    let before = agree(&lab, 1)?;
    eprintln!("before the split: {before}");

    // 2 | 2: {c1, c2} | {c3, c4}. Each half takes a publication.
    let (left, right) = (&ips[..2], &ips[2..]);
    for (i, m) in MEMBERS.iter().enumerate() {
        lab.nft(m, &split_rules(if i < 2 { right } else { left }))?;
    }
    let mut waiting = Vec::new();
    for (i, m) in [(1, "c1"), (2, "c4")] {
        let file = event_file(&lab, &events[i], i)?;
        let child = lab
            .agent_command(m, &["da", "publish", "--file", &file])?
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        waiting.push((m, child));
    }
    std::thread::sleep(SPLIT);
    for m in MEMBERS {
        let now = tip(&lab, m);
        anyhow::ensure!(
            now.as_ref() == Some(&before),
            "{m} moved from {before} to {now:?} during a 2 | 2 split of a 3-of-4 committee\n{}",
            lab.log_dump(40)
        );
    }
    for m in ["c1", "c4"] {
        let r = committee(&lab, m).and_then(|c| c.rotation);
        eprintln!("{m} during the split: {r:?}");
        anyhow::ensure!(
            r.as_ref().is_some_and(|r| r.round > 0),
            "{m} did not leave round 0 while it waited: {r:?}"
        );
        // The connections are still up (keep-alive has not noticed), but the requests to
        // the other half time out: the status says the majority is missing, and who.
        anyhow::ensure!(
            r.as_ref()
                .is_some_and(|r| r.state == "no_majority" && r.waiting_for.len() == 2),
            "{m} does not report the missing majority during the split: {r:?}"
        );
    }
    let drops: u64 = MEMBERS.iter().map(|m| dropped(&lab, m)).sum();
    anyhow::ensure!(
        drops > 0,
        "the split dropped no packet: the halves did not try"
    );
    eprintln!("the split dropped {drops} packets");

    // Heal: the log resumes with both halves' events, one tip everywhere, no fork.
    for m in MEMBERS {
        lab.exec(m, &["nft", "delete", "table", "inet", "split"])?;
    }
    for (m, child) in &mut waiting {
        // The agent gives up after its 10 s request timeout during the split; the member
        // keeps the events in its pool and seals them after the heal.
        let st = wait_child(child, WAIT);
        eprintln!("the publication on {m} during the split ended: {st:?}");
    }
    let last = event_file(&lab, &events[3], 3)?;
    publish(&lab, "c3", &last, "a publication after the heal")?;
    let after = agree(&lab, before.height + 1)?;
    let blobs: serde_json::Value = serde_json::from_str(&lab.agent(
        "c2",
        &["da", "blobs", "--from", "1", "--count", "64", "--json"],
    )?)?;
    let log = blobs.to_string();
    for (i, e) in events[..4].iter().enumerate() {
        let json = serde_json::to_value(e)?;
        let count = blobs
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|b| b["events"].as_array().into_iter().flatten())
            .filter(|x| **x == json)
            .count();
        anyhow::ensure!(count == 1, "event {i} is {count} times in the log: {log}");
    }
    for m in MEMBERS {
        let evidence: Vec<ForkEvidenceView> =
            serde_json::from_str(&lab.agent(m, &["da", "evidence", "--json"])?)?;
        anyhow::ensure!(evidence.is_empty(), "{m} holds fork evidence: {evidence:?}");
    }
    eprintln!("healed: every member at {after} (was {before})");
    Ok(())
}
