//! Helpers for the DA proposer rotation scenarios and benchmark (issue 13 §1): a committee of
//! coordinators whose group key is the DA authority (DKG over the network, then a restart
//! with the group key as `da_authority`), storage nodes, the proposer of the next height,
//! the events of a node's whole log, and the committee selections recomputed from it
//! (issue 13 §3).

use std::collections::HashSet;
use std::time::Duration;

use dsdn_daemon::localnet::{ConfigSpec, NodeMode};

use crate::committee::spawn_committee;
use crate::{eventually, full_mesh, TestNet, WAIT};

pub mod checkpoints;

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
    start_committee_net_with(net, first, n, t, storage, round_timeout, |_| {}).await
}

/// [`start_committee_net`] with `tweak` applied to every node's configuration (e.g. the
/// `[committee]` epoch schedule of the automatic rotation).
///
/// # Errors
/// As [`start_committee_net`].
pub async fn start_committee_net_with(
    net: &mut TestNet,
    first: u8,
    n: usize,
    t: u16,
    storage: usize,
    round_timeout: Duration,
    tweak: impl FnOnce(&mut ConfigSpec),
) -> anyhow::Result<CommitteeNet> {
    let mut base = net.config().with_da(crate::fast_da());
    base.seeds.committee.round_timeout = round_timeout;
    tweak(&mut base);
    let committee = spawn_committee(net, n, t, first, &base).await?;
    let coordinators: Vec<(String, u8)> = committee
        .names
        .iter()
        .enumerate()
        .map(|(i, name)| (name.clone(), first + i as u8))
        .collect();
    let args = committee.args.clone();
    let a = committee.args_with(&[]);
    let group_key = committee.group_key.clone();
    let statics: Vec<String> = coordinators.iter().map(|(_, l)| net.addr(*l)).collect();
    let base = base.with_static_peers(statics.iter().cloned());
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

/// The proposer of every blob of `name`'s log as `GET /v1/da/blobs` shows it (issue 13 §6):
/// `(height, version, proposer PeerId)`, ascending.
///
/// # Errors
/// When the API does not answer.
pub async fn blob_proposers(
    net: &TestNet,
    name: &str,
) -> anyhow::Result<Vec<(u64, u16, Option<String>)>> {
    let client = net.node(name).client();
    let height = client.da_state().await?.height;
    let mut out = Vec::new();
    let mut from = 1;
    while from <= height {
        let blobs = client.da_blobs(from, 64).await?;
        anyhow::ensure!(!blobs.is_empty(), "no blob at {from} on {name}");
        out.extend(
            blobs
                .iter()
                .map(|b| (b.height, b.version, b.proposer.clone())),
        );
        from += blobs.len() as u64;
    }
    Ok(out)
}

/// One rotation of the log whose members were recomputed by [`check_selections`].
#[derive(Debug)]
pub struct Selected {
    /// Its epoch.
    pub epoch: u64,
    /// The height of its anchor blob.
    pub anchor: u64,
    /// Coordinators registered at or before the anchor.
    pub registered: usize,
    /// Its members, in proposer order.
    pub members: Vec<String>,
}

/// Recomputes from `name`'s log the selection of every committee it records (issue 13 §3)
/// and checks each `committee_rotated` event against it: its blob dated in a handoff window
/// of the test schedule; its anchor the last blob dated before that window opened; its
/// members `select_committee` over the `coordinator_registered` registry as of the anchor
/// (selection rule 2: every registered coordinator the network admits, `genesis` members
/// and `candidates`; the committee handing over when fewer are registered than its seats),
/// seeded by the anchor's hash and the hash of the committee handing over (`genesis`, in
/// member order, of epoch `genesis_epoch` for the first one), all with threshold 2 (the
/// 2-of-3 committees of these tests).
///
/// # Errors
/// The log cannot be read, or a rotation is not the selection (which one, and why).
pub async fn check_selections(
    net: &TestNet,
    name: &str,
    network: &dsdn_protocols::NetworkId,
    schedule: dsdn_protocols::committee::epoch::EpochSchedule,
    genesis: &[String],
    candidates: &[String],
    genesis_epoch: u64,
) -> anyhow::Result<Vec<Selected>> {
    use dsdn_protocols::committee::epoch::{
        admitted_candidates, derive_epoch_seed, select_committee,
    };
    let admitted: Vec<String> = genesis.iter().chain(candidates).cloned().collect();
    use dsdn_protocols::da::DaEvent;
    let client = net.node(name).client();
    let height = client.da_state().await?.height;
    // (height, timestamp, hash) of every blob; the registry; the rotations and their blobs.
    let mut stamps: Vec<(u64, u64, [u8; 32])> = Vec::new();
    let mut registry: Vec<(String, u64)> = Vec::new();
    let mut rotations = Vec::new();
    let mut from = 1;
    while from <= height {
        let blobs = client.da_blobs(from, 64).await?;
        anyhow::ensure!(!blobs.is_empty(), "no blob at {from} on {name}");
        for b in &blobs {
            let blob = blob_of(b, network, [0; 64])?;
            stamps.push((b.height, b.timestamp_ms, blob.hash()?));
            for e in &b.events {
                match e {
                    DaEvent::CoordinatorRegistered { node_id }
                        if !registry.iter().any(|(id, _)| id == node_id) =>
                    {
                        registry.push((node_id.clone(), b.height));
                    }
                    DaEvent::CommitteeRotated(r) => {
                        rotations.push((b.height, b.timestamp_ms, r.clone()));
                    }
                    _ => {}
                }
            }
        }
        from += blobs.len() as u64;
    }
    let (mut members, mut epoch) = (genesis.to_vec(), genesis_epoch);
    let mut out = Vec::new();
    for (at, ts, rotation) in rotations {
        anyhow::ensure!(rotation.epoch == epoch + 1, "{name}: rotation out of order");
        let phase = schedule.phase(ts);
        anyhow::ensure!(
            phase.in_handoff,
            "{name}: the rotation's blob {at} is dated {ts}, outside a handoff window"
        );
        let (anchor, hash) = stamps
            .iter()
            .filter(|(h, t, _)| *h < at && *t < phase.handoff_opens_ms)
            .map(|(h, _, hash)| (*h, *hash))
            .next_back()
            .unwrap_or((0, [0; 32]));
        let candidates = admitted_candidates(&registry, anchor, &members, &admitted);
        let ids = members
            .iter()
            .map(|m| {
                let p: libp2p::PeerId = m.parse()?;
                Ok(dsdn_protocols::committee::MemberId::new(p.to_bytes())?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let handing_over = dsdn_protocols::committee::CommitteeConfig {
            epoch,
            threshold: 2,
            members: ids,
        };
        let committee_hash = dsdn_protocols::receipt::committee_hash(&handing_over)?.0;
        let seed = derive_epoch_seed(rotation.epoch, &hash, &committee_hash);
        let selected = select_committee(&candidates, &members, members.len(), &seed);
        anyhow::ensure!(
            rotation.members == selected && rotation.threshold == 2,
            "{name}: rotation {} names {:?}, the selection over the registry as of blob {anchor} is {selected:?}",
            rotation.epoch,
            rotation.members
        );
        out.push(Selected {
            epoch: rotation.epoch,
            anchor,
            registered: registry.iter().filter(|(_, h)| *h <= anchor).count(),
            members: selected.clone(),
        });
        (members, epoch) = (selected, rotation.epoch);
    }
    Ok(out)
}

/// 32 bytes from 64 hex digits.
///
/// # Errors
/// When `s` is not 64 hex digits.
pub fn hex32(s: &str) -> anyhow::Result<[u8; 32]> {
    hex::decode(s)?
        .try_into()
        .map_err(|_| anyhow::anyhow!("not 32 bytes: {s}"))
}

/// The blob `b` of `GET /v1/da/blobs` (a blob of `network`) with `signature` (zeros: the
/// hash, which does not cover the signature from version 3 on, is the same).
///
/// # Errors
/// When a hash field is not 64 hex digits.
pub fn blob_of(
    b: &dsdn_daemon::api::BlobInfo,
    network: &dsdn_protocols::NetworkId,
    signature: [u8; 64],
) -> anyhow::Result<dsdn_protocols::da::DaBlob> {
    use dsdn_protocols::da::{Bytes32, Bytes64, DaBlob};
    Ok(DaBlob {
        version: b.version,
        network: network.as_str().to_owned(),
        height: b.height,
        prev_hash: Bytes32(hex32(&b.prev_hash)?),
        prev_state_root: Bytes32(hex32(&b.prev_state_root)?),
        timestamp_ms: b.timestamp_ms,
        events: b.events.clone(),
        proposer: match &b.proposer {
            Some(p) => p.parse::<libp2p::PeerId>()?.to_bytes(),
            None => Vec::new(),
        },
        proposer_sig: Bytes64(match &b.proposer_sig {
            Some(s) => hex::decode(s)?
                .try_into()
                .map_err(|_| anyhow::anyhow!("proposer_sig is not 64 bytes"))?,
            None => [0; 64],
        }),
        signature: Bytes64(signature),
    })
}
