//! The committee phases of `dsdn-agent devnet` (Tahap 14A.2B): DKG through the first
//! member's control API, restart of every node with `da_authority` = the group key, and the
//! check that the committee-sealed DA blobs reached every node.

use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::LocalNet;
use tokio::sync::watch;

use super::{say, stopped, wait_mesh, Phase, Progress};

/// How long every DA-carrying node gets to reach the proposer's DA height.
const DA_HEIGHT_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the members get to report the reloaded key share after the restart.
const SHARE_RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// The committee as the devnet shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct CommitteeView {
    /// `(node name, PeerId)` of each member, in member order (the first is the DA proposer).
    pub members: Vec<(String, String)>,
    /// Signatures need this many members.
    pub threshold: u16,
    /// The committee epoch.
    pub epoch: u64,
    /// The group public key (64 hex), the network's `da_authority`.
    pub group_key: String,
}

impl CommitteeView {
    /// `committee 2-of-3, epoch 0, group key 1a2b3c4d5e6f… (da_authority); members:
    /// coordinator-1 (DA proposer), coordinator-2, coordinator-3`.
    pub(super) fn summary(&self) -> String {
        let members: Vec<String> = self
            .members
            .iter()
            .enumerate()
            .map(|(i, (name, _))| {
                if i == 0 {
                    format!("{name} (DA proposer)")
                } else {
                    name.clone()
                }
            })
            .collect();
        format!(
            "committee {}-of-{}, epoch {}, group key {} (da_authority); members: {}",
            self.threshold,
            self.members.len(),
            self.epoch,
            self.group_key,
            members.join(", ")
        )
    }
}

/// Brings the committee up on a started net: waits for the mesh, runs the DKG through
/// `coordinator-1`'s control API (`POST /v1/committee/dkg`), checks every member holds the
/// same group key (`GET /v1/committee/status`), writes it as `da_authority` into the
/// shared seeds.toml, restarts every node (SIGTERM, same data directories) and waits for
/// the mesh again and for every member to have reloaded its key share. `None` when
/// interrupted.
pub(super) async fn bring_up(
    net: &mut LocalNet,
    stop: &mut watch::Receiver<bool>,
    progress: &Progress,
) -> anyhow::Result<Option<CommitteeView>> {
    let Some(spec) = net.committee().cloned() else {
        anyhow::bail!("this devnet has no committee");
    };
    let members: Vec<(String, String)> = net
        .coordinators()
        .map(|n| (n.name().to_owned(), n.peer_id().to_owned()))
        .collect();
    say(&format!(
        "committee: {}-of-{}, epoch {}; members in order (the first is the DA proposer):",
        spec.threshold,
        members.len(),
        spec.epoch
    ));
    for (i, (name, id)) in members.iter().enumerate() {
        let role = if i == 0 { "  <- DA proposer" } else { "" };
        say(&format!("  {}. {name} {id}{role}", i + 1));
    }
    if !wait_mesh(net, stop).await? {
        return Ok(None);
    }

    progress.phase(
        Phase::Dkg,
        &format!(
            "through the control API of {} (POST /v1/committee/dkg at {})",
            net.coordinator().name(),
            net.coordinator().api_addr()
        ),
    );
    let started = Instant::now();
    let status = tokio::select! {
        s = net.committee_dkg() => s.context("committee DKG")?,
        () = stopped(stop) => return Ok(None),
    };
    let dkg_time = started.elapsed();
    let group_key = status
        .group_key
        .clone()
        .context("the DKG answer carries no group key")?;
    say(&format!(
        "DKG done in {:.1} s: group key {group_key}",
        dkg_time.as_secs_f64()
    ));
    // The DKG answers once the first member adopted the key; each member adopts it when the
    // last confirmation reaches it, a moment later.
    let deadline = Instant::now() + SHARE_RELOAD_TIMEOUT;
    let statuses = loop {
        let statuses = net.committee_statuses().await?;
        let all = statuses
            .iter()
            .all(|(_, st)| st.group_key.as_deref() == Some(group_key.as_str()));
        if all || Instant::now() > deadline {
            break statuses;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    for (name, st) in statuses {
        say(&format!(
            "  {name}: state {}, group key {}",
            st.state,
            st.group_key.as_deref().unwrap_or("none")
        ));
        if st.group_key.as_deref() != Some(group_key.as_str()) {
            anyhow::bail!(
                "{name} holds group key {:?}, {} holds {group_key}",
                st.group_key,
                net.coordinator().name()
            );
        }
    }

    progress.phase(
        Phase::Restart,
        &format!(
            "da_authority = group key {group_key} in {}; restarting every node (SIGTERM; data dirs, peers.dat and key shares kept)",
            net.config_path().display()
        ),
    );
    net.set_da_authority(&group_key)?;
    let restarted = tokio::select! {
        r = net.restart_all(say) => r?,
        () = stopped(stop) => return Ok(None),
    };
    let killed: Vec<&str> = restarted
        .iter()
        .filter(|(_, clean)| !clean)
        .map(|(n, _)| n.as_str())
        .collect();
    if !killed.is_empty() {
        say(&format!(
            "had to kill before restarting: {}",
            killed.join(", ")
        ));
    }
    if !wait_mesh(net, stop).await? {
        return Ok(None);
    }
    let shares = tokio::select! {
        r = wait_shares_reloaded(net, &group_key) => r?,
        () = stopped(stop) => return Ok(None),
    };
    say(&format!("key shares reloaded after the restart: {shares}"));
    Ok(Some(CommitteeView {
        members,
        threshold: spec.threshold,
        epoch: spec.epoch,
        group_key,
    }))
}

/// Waits until every member reports state `ready` with `group_key`; returns
/// `coordinator-1 ready, …`.
async fn wait_shares_reloaded(net: &LocalNet, group_key: &str) -> anyhow::Result<String> {
    let deadline = Instant::now() + SHARE_RELOAD_TIMEOUT;
    loop {
        let statuses = net.committee_statuses().await;
        if let Ok(statuses) = &statuses {
            if statuses
                .iter()
                .all(|(_, s)| s.group_key.as_deref() == Some(group_key) && s.state == "ready")
            {
                let parts: Vec<String> = statuses
                    .iter()
                    .map(|(n, s)| format!("{n} {}", s.state))
                    .collect();
                return Ok(parts.join(", "));
            }
        }
        if Instant::now() >= deadline {
            let last = match statuses {
                Ok(s) => s
                    .iter()
                    .map(|(n, s)| format!("{n}: {} {:?}", s.state, s.group_key))
                    .collect::<Vec<_>>()
                    .join("; "),
                Err(e) => e.to_string(),
            };
            anyhow::bail!(
                "the members did not reload their key shares within {} s: {last}",
                SHARE_RELOAD_TIMEOUT.as_secs()
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Phase 4 check: waits until every DA-carrying node reached the DA proposer's height (the
/// blobs were sealed by the committee and each node verified them against the group key);
/// prints each node's height.
pub(super) async fn report_da_height(net: &LocalNet) -> anyhow::Result<u64> {
    let height = net.coordinator().client().da_state().await?.height;
    let heights = net
        .wait_da_height(height, DA_HEIGHT_TIMEOUT)
        .await
        .context("committee-sealed DA blobs did not reach every node")?;
    let parts: Vec<String> = heights.iter().map(|(n, h)| format!("{n}={h}")).collect();
    say(&format!(
        "DA height {height} reached on every node (blobs threshold-signed by the committee, verified against the group key): {}",
        parts.join(" ")
    ));
    Ok(height)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_names_the_proposer_and_the_key() {
        let view = CommitteeView {
            members: vec![
                ("coordinator-1".into(), "12D3KooWa".into()),
                ("coordinator-2".into(), "12D3KooWb".into()),
                ("coordinator-3".into(), "12D3KooWc".into()),
            ],
            threshold: 2,
            epoch: 0,
            group_key: "ab".repeat(32),
        };
        assert_eq!(
            view.summary(),
            format!(
                "committee 2-of-3, epoch 0, group key {} (da_authority); members: coordinator-1 (DA proposer), coordinator-2, coordinator-3",
                "ab".repeat(32)
            )
        );
    }
}
