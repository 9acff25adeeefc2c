//! The committee in force as the DA log records it: the committee of the next height, its
//! [`CommitteeConfig`], and the service of that epoch for a member restarted after a
//! rotation (its configuration still names the genesis epoch).

use dsdn_protocols::committee::epoch_driver::CurrentCommittee;
use dsdn_protocols::committee::CommitteeConfig;
use dsdn_protocols::da::{DaState, EpochRecord};
use libp2p::PeerId;

use super::super::{
    member_id, member_peer, CommitteeMetrics, CommitteeNodeConfig, CommitteeService,
};

/// The committee of `record`, the epoch in force ([`DaState::epochs_at`]), or the genesis
/// committee before the first recorded one takes effect.
pub(super) fn in_force(
    genesis: &CurrentCommittee,
    record: Option<EpochRecord>,
) -> CurrentCommittee {
    record.map_or_else(
        || genesis.clone(),
        |r| CurrentCommittee {
            epoch: r.epoch,
            members: r.members,
            threshold: r.threshold,
        },
    )
}

/// The [`CommitteeConfig`] of `members` (PeerId texts) at `epoch`.
pub(super) fn config_of(
    epoch: u64,
    threshold: u16,
    members: &[String],
) -> Result<CommitteeConfig, String> {
    let members = members
        .iter()
        .map(|m| {
            m.parse::<PeerId>()
                .map_err(|e| format!("member {m}: {e}"))
                .and_then(|p| member_id(&p).map_err(|e| e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(CommitteeConfig {
        epoch,
        threshold,
        members,
    })
}

/// The [`CommitteeNodeConfig`] of the committee `members` (PeerId texts) of `epoch` with
/// `threshold`, the rest (directory, timeouts, schedule) from `template`.
fn node_config_of(
    template: &CommitteeNodeConfig,
    epoch: u64,
    threshold: u16,
    members: &[String],
) -> Result<CommitteeNodeConfig, String> {
    let config = config_of(epoch, threshold, members)?;
    let mut cfg = template.clone();
    cfg.members = config.members.iter().filter_map(member_peer).collect();
    cfg.threshold = config.threshold;
    cfg.epoch = config.epoch;
    Ok(cfg)
}

/// The follower service of the committee `current` for `me`, a coordinator outside it
/// (issue 13 §3): no share, no signing, every request refused; what the node runs once
/// the log's epoch in force does not name it (a retired member, a coordinator never
/// selected).
///
/// # Errors
/// `current` names `me` (a member needs its share) or cannot be configured.
pub(crate) fn follower_service(
    template: &CommitteeNodeConfig,
    me: PeerId,
    current: &CurrentCommittee,
    metrics: CommitteeMetrics,
) -> Result<CommitteeService, String> {
    let cfg = node_config_of(template, current.epoch, current.threshold, &current.members)?;
    let service = CommitteeService::open(cfg, me, metrics).map_err(|e| e.to_string())?;
    if !service.is_follower() {
        return Err(format!("this node is a member of epoch {}", current.epoch));
    }
    Ok(service)
}

/// The committee service of the epoch in force in `state` for `me` (a coordinator of the
/// network `template` configures), when a rotation recorded in the log is in force and
/// `current_epoch` is older: after a restart the configuration still names the genesis
/// epoch. A member of the epoch in force opens its share (`key-share-<e>.cbor`); a
/// coordinator it does not name gets the follower service of that epoch.
///
/// # Errors
/// The epoch in force names `me` but cannot be opened (no share with its group key).
pub(crate) fn service_in_force(
    template: &CommitteeNodeConfig,
    me: PeerId,
    state: &DaState,
    current_epoch: u64,
    metrics: CommitteeMetrics,
) -> Result<Option<CommitteeService>, String> {
    let (_, in_force) = state
        .epochs_at(state.height().saturating_add(1))
        .map_err(|e| e.to_string())?;
    let Some(record) = in_force else {
        return Ok(None);
    };
    if record.epoch <= current_epoch {
        return Ok(None);
    }
    let cfg = node_config_of(template, record.epoch, record.threshold, &record.members)?;
    let service = CommitteeService::open(cfg, me, metrics).map_err(|e| e.to_string())?;
    if service.is_follower() {
        return Ok(Some(service));
    }
    if service.group_key() != Some(record.group_key.0) {
        return Err(format!(
            "no key share of epoch {} with its group key on disk",
            record.epoch
        ));
    }
    Ok(Some(service))
}
