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

/// The committee in force at the next height of `state` among the recorded `epochs`
/// (the genesis committee before the first one takes effect).
pub(super) fn in_force(
    genesis: &CurrentCommittee,
    epochs: &[EpochRecord],
    next_height: u64,
) -> CurrentCommittee {
    epochs
        .iter()
        .rev()
        .find(|r| r.effective_height <= next_height)
        .map_or_else(
            || genesis.clone(),
            |r| CurrentCommittee {
                epoch: r.epoch,
                members: r.members.clone(),
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

/// The committee service of the epoch in force in `state` for the member `me` of the
/// genesis committee `template`, when a rotation recorded in the log is in force, names
/// `me` and `current_epoch` is older: after a restart the configuration still names the
/// genesis epoch, and the share of the epoch in force (`key-share-<e>.cbor`) is on disk.
///
/// # Errors
/// The epoch in force cannot be opened (not a member, no share with its group key).
pub(crate) fn service_in_force(
    template: &CommitteeNodeConfig,
    me: PeerId,
    state: &DaState,
    current_epoch: u64,
    metrics: CommitteeMetrics,
) -> Result<Option<CommitteeService>, String> {
    let epochs = state.committee_epochs().map_err(|e| e.to_string())?;
    let next_height = state.height().saturating_add(1);
    let Some(record) = epochs
        .iter()
        .rev()
        .find(|r| r.effective_height <= next_height)
    else {
        return Ok(None);
    };
    if record.epoch <= current_epoch || !record.members.contains(&me.to_string()) {
        return Ok(None);
    }
    let config = config_of(record.epoch, record.threshold, &record.members)?;
    let mut cfg = template.clone();
    cfg.members = config.members.iter().filter_map(member_peer).collect();
    cfg.threshold = config.threshold;
    cfg.epoch = config.epoch;
    let service = CommitteeService::open(cfg, me, metrics).map_err(|e| e.to_string())?;
    if service.group_key() != Some(record.group_key.0) {
        return Err(format!(
            "no key share of epoch {} with its group key on disk",
            record.epoch
        ));
    }
    Ok(Some(service))
}
