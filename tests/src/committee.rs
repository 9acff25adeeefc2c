//! A t-of-n coordinator committee with storage nodes on 127.0.0.x, its DKG run over the
//! network: the setup of the receipt tests and benchmarks.

use std::time::Duration;

use anyhow::Context;
use dsdn_daemon::localnet::{ConfigSpec, NodeMode};

use crate::{eventually, full_mesh, is_connected_to, TestNet, WAIT};

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
    let coordinators: Vec<String> = (1..=n).map(|i| format!("c{i}")).collect();
    let (mut ids, mut keys) = (Vec::new(), Vec::new());
    for name in &coordinators {
        let (id, key) = net.init_identity(name)?;
        ids.push(id);
        keys.push(key);
    }
    let statics: Vec<String> = (0..n).map(|i| net.addr(first + i as u8)).collect();
    let cfg = cfg.clone().with_static_peers(statics.iter().cloned());
    let members = ids.join(",");
    let threshold = t.to_string();
    for (i, name) in coordinators.iter().enumerate() {
        net.spawn_with_args(
            name,
            NodeMode::Coordinator,
            first + i as u8,
            &cfg,
            &[
                "--committee-members",
                &members,
                "--committee-threshold",
                &threshold,
            ],
        )
        .await?;
    }
    let nodes: Vec<_> = coordinators.iter().map(|c| net.node(c)).collect();
    eventually(WAIT, "committee mesh", || async {
        full_mesh(&nodes).await.then_some(())
    })
    .await?;
    let status = net
        .node("c1")
        .client_with_timeout(Duration::from_secs(120))
        .committee_dkg()
        .await?;
    let group_key = status.group_key.context("no group key after the DKG")?;
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
