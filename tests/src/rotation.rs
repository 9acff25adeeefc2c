//! Helpers for the DA proposer rotation scenarios and benchmark (issue 13 §1): a committee of
//! coordinators whose group key is the DA authority (DKG over the network, then a restart
//! with the group key as `da_authority`), storage nodes, the proposer of the next height,
//! and the events of a node's whole log.

use std::collections::HashSet;
use std::time::Duration;

use dsdn_daemon::localnet::{ConfigSpec, NodeMode};

use crate::{agent, eventually, full_mesh, TestNet, WAIT};

/// A committee net: the coordinators' names and IPs' last octets, and the storage nodes'.
pub struct CommitteeNet {
    /// Coordinators (members, in member order).
    pub coordinators: Vec<(String, u8)>,
    /// Storage nodes.
    pub storage: Vec<(String, u8)>,
    /// The group key (64 hex), the network's DA authority.
    pub group_key: String,
    /// The committee flags every coordinator runs with.
    pub args: Vec<String>,
}

impl CommitteeNet {
    /// The committee flags as `&str`s.
    pub fn args(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// The coordinator names.
    pub fn names(&self) -> Vec<&str> {
        self.coordinators.iter().map(|(n, _)| n.as_str()).collect()
    }
}

/// Starts `n` coordinators `c1…cn` on `127.0.0.<first>…` as a `t`-of-`n` committee with
/// DA round timeout `round_timeout`, runs the DKG, restarts them with the group key as
/// `da_authority`, then starts `storage` storage nodes `s1…` on the next IPs and waits until
/// they are registered (sealed by the committee).
///
/// # Errors
/// When a node does not start, the DKG fails or a registration does not complete.
pub async fn start_committee_net(
    net: &mut TestNet,
    first: u8,
    n: usize,
    t: u16,
    storage: usize,
    round_timeout: Duration,
) -> anyhow::Result<CommitteeNet> {
    let coordinators: Vec<(String, u8)> = (0..n)
        .map(|i| (format!("c{}", i + 1), first + i as u8))
        .collect();
    let mut ids = Vec::new();
    for (name, _) in &coordinators {
        ids.push(net.init_identity(name)?.0);
    }
    let args = vec![
        "--committee-members".to_owned(),
        ids.join(","),
        "--committee-threshold".to_owned(),
        t.to_string(),
    ];
    let statics: Vec<String> = coordinators.iter().map(|(_, l)| net.addr(*l)).collect();
    let mut base = net
        .config()
        .with_static_peers(statics.iter().cloned())
        .with_da(crate::fast_da());
    base.seeds.committee.round_timeout = round_timeout;
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    for (name, last) in &coordinators {
        net.spawn_with_args(name, NodeMode::Coordinator, *last, &base, &a)
            .await?;
    }
    let nodes: Vec<_> = coordinators.iter().map(|(n, _)| net.node(n)).collect();
    eventually(WAIT, "coordinator mesh", || async {
        full_mesh(&nodes).await.then_some(())
    })
    .await?;
    let status = agent(net.node("c1"), &["committee", "dkg", "--json"])
        .await?
        .success("committee dkg")?;
    let status: serde_json::Value = serde_json::from_str(&status)?;
    let group_key = status["group_key"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("no group key after the DKG: {status}"))?
        .to_owned();
    let cfg: ConfigSpec = base.with_da_authority(group_key.clone());
    for (name, _) in &coordinators {
        net.write_config(name, &cfg)?;
        net.respawn_with_args(name, &a).await?;
    }
    let nodes: Vec<_> = coordinators.iter().map(|(n, _)| net.node(n)).collect();
    eventually(WAIT, "coordinator mesh after the restart", || async {
        full_mesh(&nodes).await.then_some(())
    })
    .await?;
    let storage: Vec<(String, u8)> = (0..storage)
        .map(|i| (format!("s{}", i + 1), first + (n + i) as u8))
        .collect();
    for (name, last) in &storage {
        net.spawn(name, NodeMode::Storage, *last, &cfg).await?;
    }
    for (name, _) in &storage {
        let node = net.node(name);
        eventually(WAIT, &format!("{name} registered"), || async {
            let st = node.client().status().await.ok()?;
            (st.registration?["state"] == "registered").then_some(())
        })
        .await?;
    }
    Ok(CommitteeNet {
        coordinators,
        storage,
        group_key,
        args,
    })
}

/// The rotation part of `node`'s committee status (`GET /v1/committee/status`).
pub async fn rotation_status(
    net: &TestNet,
    name: &str,
) -> Option<dsdn_daemon::api::RotationStatusView> {
    net.node(name)
        .client()
        .committee_status()
        .await
        .ok()?
        .rotation
}

/// The coordinator of `cn` that proposes round 0 of the next DA height, as `asker` sees it.
pub async fn next_proposer(net: &TestNet, cn: &CommitteeNet, asker: &str) -> Option<String> {
    let r = rotation_status(net, asker).await?;
    let proposer = r.proposer?;
    // Round 0 of the next height: members[(height) mod n] once idle at round 0.
    cn.coordinators
        .iter()
        .find(|(n, _)| net.node(n).peer_id() == proposer)
        .map(|(n, _)| n.clone())
}

/// Every event of `name`'s log, as JSON strings (to compare sets).
///
/// # Errors
/// When the API does not answer.
pub async fn log_events(net: &TestNet, name: &str) -> anyhow::Result<HashSet<String>> {
    let client = net.node(name).client();
    let height = client.da_state().await?.height;
    let mut out = HashSet::new();
    let mut from = 1;
    while from <= height {
        let blobs = client.da_blobs(from, 64).await?;
        anyhow::ensure!(!blobs.is_empty(), "no blob at {from} on {name}");
        for b in &blobs {
            for e in &b.events {
                out.insert(serde_json::to_string(e)?);
            }
        }
        from += blobs.len() as u64;
    }
    Ok(out)
}
