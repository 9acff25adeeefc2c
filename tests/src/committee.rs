//! A t-of-n coordinator committee with storage nodes on 127.0.0.x, its DKG run over the
//! network: the setup of the receipt tests and benchmarks.

use std::time::Duration;

use anyhow::Context;
use dsdn_daemon::localnet::{ConfigSpec, NodeMode};

use crate::{agent, eventually, full_mesh, is_connected_to, TestNet, WAIT};

/// A committee's coordinators as [`spawn_committee`] started them.
#[derive(Clone, Debug)]
pub struct Committee {
    /// Coordinator names, `c1`… (committee order).
    pub names: Vec<String>,
    /// Their PeerIds.
    pub ids: Vec<String>,
    /// Their Ed25519 public keys (64 hex).
    pub keys: Vec<String>,
    /// The committee flags every coordinator runs with (`--committee-members …
    /// --committee-threshold t`).
    pub args: Vec<String>,
    /// The group key (64 hex) the DKG produced.
    pub group_key: String,
}

impl Committee {
    /// [`Committee::args`] and `extra` as `&str`s, for `spawn_with_args`/`respawn_with_args`.
    pub fn args_with<'a>(&'a self, extra: &[&'a str]) -> Vec<&'a str> {
        self.args
            .iter()
            .map(String::as_str)
            .chain(extra.iter().copied())
            .collect()
    }
}

/// Starts `n` coordinators `c1…cn` on `127.0.0.<first>…` as a `t`-of-`n` committee: each
/// with `cfg`, every member's address as a static peer and the committee flags; waits for
/// their full mesh and runs the DKG with `dsdn-agent committee dkg` on `c1`.
///
/// # Errors
/// When a node does not start or connect, or the DKG fails.
pub async fn spawn_committee(
    net: &mut TestNet,
    n: usize,
    t: u16,
    first: u8,
    cfg: &ConfigSpec,
) -> anyhow::Result<Committee> {
    let names: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
    let (mut ids, mut keys) = (Vec::new(), Vec::new());
    for name in &names {
        let (id, key) = net.init_identity(name)?;
        ids.push(id);
        keys.push(key);
    }
    let statics: Vec<String> = (0..n).map(|i| net.addr(first + i as u8)).collect();
    let cfg = cfg.clone().with_static_peers(statics.iter().cloned());
    let args = vec![
        "--committee-members".to_owned(),
        ids.join(","),
        "--committee-threshold".to_owned(),
        t.to_string(),
    ];
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    for (i, name) in names.iter().enumerate() {
        net.spawn_with_args(name, NodeMode::Coordinator, first + i as u8, &cfg, &a)
            .await?;
    }
    let nodes: Vec<_> = names.iter().map(|c| net.node(c)).collect();
    eventually(WAIT, "committee mesh", || async {
        full_mesh(&nodes).await.then_some(())
    })
    .await?;
    // Through the operator's command, so that `dsdn-agent committee dkg` stays covered.
    let out = agent(net.node("c1"), &["committee", "dkg", "--json"])
        .await?
        .success("committee dkg")?;
    let status: serde_json::Value = serde_json::from_str(&out)?;
    let group_key = status["group_key"]
        .as_str()
        .with_context(|| format!("no group key after the DKG: {status}"))?
        .to_owned();
    Ok(Committee {
        names,
        ids,
        keys,
        args,
        group_key,
    })
}

/// The nodes of [`start_receipt_net`].
#[derive(Clone, Debug)]
pub struct ReceiptNet {
    /// Coordinator names, `c1`… (committee order).
    pub coordinators: Vec<String>,
    /// Their PeerIds.
    pub ids: Vec<String>,
    /// Their Ed25519 public keys (64 hex).
    pub keys: Vec<String>,
    /// Storage node names, `s1`….
    pub storage: Vec<String>,
    /// The committee's group key (64 hex), the storage nodes' DA authority.
    pub group_key: String,
}

impl ReceiptNet {
    /// Every node name, coordinators first.
    pub fn everyone(&self) -> Vec<String> {
        self.coordinators
            .iter()
            .chain(self.storage.iter())
            .cloned()
            .collect()
    }
}

/// Starts `n` coordinators forming a `t`-of-`n` committee on `127.0.0.<first>`… with
/// `cfg`, runs the DKG through `c1`, then `storage` storage nodes (DA authority: the group
/// key) on the next addresses, waits until they are connected to `c1` and gives the
/// receipts gossip mesh time to form.
///
/// # Errors
/// When a node does not start, connect, or the DKG fails.
pub async fn start_receipt_net(
    net: &mut TestNet,
    n: usize,
    t: u16,
    storage: usize,
    first: u8,
    cfg: &ConfigSpec,
) -> anyhow::Result<ReceiptNet> {
    let committee = spawn_committee(net, n, t, first, cfg).await?;
    let Committee {
        names: coordinators,
        ids,
        keys,
        group_key,
        ..
    } = committee;
    let statics: Vec<String> = (0..n).map(|i| net.addr(first + i as u8)).collect();
    let cfg = cfg.clone().with_static_peers(statics.iter().cloned());
    let storage_cfg = cfg.clone().with_da_authority(group_key.clone());
    let storage: Vec<String> = (1..=storage).map(|i| format!("s{i}")).collect();
    for (i, s) in storage.iter().enumerate() {
        net.spawn(s, NodeMode::Storage, first + (n + i) as u8, &storage_cfg)
            .await?;
        let node = net.node(s);
        eventually(WAIT, &format!("{s} connected to c1"), || async {
            is_connected_to(net.node("c1"), node).await.then_some(())
        })
        .await?;
    }
    // gossipsub meshes form on its 1 s heartbeat.
    tokio::time::sleep(Duration::from_secs(3)).await;
    Ok(ReceiptNet {
        coordinators,
        ids,
        keys,
        storage,
        group_key,
    })
}
