//! The automatic epoch rotation of a committee member (issue 13 §3): the node side of the
//! pure [`EpochDriver`]. [`EpochLoop`] owns the driver, the NEXT epoch's
//! [`CommitteeService`] (its DKG and the key proof run on it, with its own guard writer; its
//! files are `key-share-<e+1>.cbor` / `slot-guard-<e+1>.cbor` in the committee directory)
//! and the record writer of `epoch-driver.cbor`. The event loop glue
//! (`event_loop/epochs.rs`) ticks it with `now`, carries out the driver's actions and
//! routes the committee requests of the next epoch to it.
//!
//! ```text
//! tick(now, LogView of the DA state) ─▶ StartDkg(next)   ─▶ open next service, start_dkg
//!   other members: DkgStart{epoch e+1} from a current member ─▶ open next service from it
//! DKG done (oneshot) ─▶ on_dkg ─▶ SignKeyProof(rotation) ─▶ next.start_sign(Receipt(sha256 m), m)
//! signature (oneshot) ─▶ on_key_proof ─▶ Propose ─▶ DaService::propose_rotation
//! rotation in force (tip + 1 ≥ effective_height) ─▶ Switch ─▶ the next service replaces the
//!   current one (blobs, receipts), the DA proposer rotation restarts with the new share
//! ```
//! Selection ([`selection`]): the seed is pinned to the last blob dated before the handoff
//! window opened, the candidates are the coordinators registered in the DA state as of that
//! blob, so every member selects the same committee (order, initiator) whatever its tip.
//! Every coordinator of a committee network runs this loop: a member of the committee in
//! force, or a *follower* (outside it: it signs nothing in that epoch, but selects each
//! window like the members, joins the next committee's DKG when selected and starts
//! sealing at the switch; a member not selected retires to follower). So every registered
//! coordinator is eligible (selection rule v2, PROTOCOL §7.6a); with fewer registered
//! coordinators than seats, the next committee is the same members re-keyed.

use std::time::Instant;

use dsdn_protocols::committee::epoch::EpochSchedule;
use dsdn_protocols::committee::epoch_driver::{
    next_committee, CurrentCommittee, EpochAction, EpochDriver, EpochDriverConfig, LogView,
    NextCommittee, Step,
};
use dsdn_protocols::committee::{CommitteeConfig, CommitteeRequest, Slot};
use dsdn_protocols::da::CommitteeRotation;
use dsdn_protocols::NetworkId;
use libp2p::PeerId;
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

use crate::da::DaService;

use super::files::{encode_epoch_driver, epoch_driver_path, read_epoch_driver};
use super::{
    member_peer, CommitteeMetrics, CommitteeNodeConfig, CommitteeService, CommitteeStartError,
    CommitteeStatus, DkgRunError, EpochView, GroupSignature, GuardWriter, ThresholdSignError,
};

type DkgRx = oneshot::Receiver<Result<CommitteeStatus, DkgRunError>>;
type SignRx = oneshot::Receiver<Result<GroupSignature, ThresholdSignError>>;

/// The epoch rotation of one member (see the module documentation).
pub(crate) struct EpochLoop {
    driver: EpochDriver,
    /// The next epoch's service and its guard writer, from its DKG to the switch.
    next: Option<(CommitteeService, GuardWriter)>,
    /// The running DKG of the next service (its epoch).
    dkg: Option<(u64, DkgRx)>,
    /// The running key proof (its epoch).
    proof: Option<(u64, SignRx)>,
    /// The handoff window (the end of its schedule epoch, UNIX ms) in which the next
    /// service's DKG succeeded.
    adopted_window: Option<u64>,
    /// Writes `epoch-driver.cbor` off the event loop.
    record_writer: GuardWriter,
    record_seq: u64,
    /// Directory, timeouts and policy of the services of later epochs.
    template: CommitteeNodeConfig,
    me: PeerId,
    network: NetworkId,
    /// The epoch schedule and the committee of the configuration (the genesis
    /// authority's): what the selection needs besides the log.
    rule: SelectionRule,
    /// The pinned seed anchor of the last window looked at.
    anchor_cache: selection::AnchorCache,
    metrics: CommitteeMetrics,
}

fn texts(peers: &[PeerId]) -> Vec<String> {
    peers.iter().map(ToString::to_string).collect()
}

/// Drops `value` (a service, its writer thread) on a thread of its own.
fn drop_off_loop<T: Send + 'static>(value: T) {
    if let Err(e) = std::thread::Builder::new()
        .name("committee retire".into())
        .spawn(move || drop(value))
    {
        tracing::warn!(error = %e, "cannot spawn the retiring thread");
    }
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The epoch of a committee request (every request names one).
pub(crate) fn request_epoch(request: &CommitteeRequest) -> u64 {
    match request {
        CommitteeRequest::DkgStart(c) => c.epoch,
        CommitteeRequest::Dkg(dsdn_protocols::committee::DkgMessage::Round1(m)) => m.epoch,
        CommitteeRequest::Dkg(dsdn_protocols::committee::DkgMessage::Round2(m)) => m.epoch,
        CommitteeRequest::DkgConfirm { epoch, .. } | CommitteeRequest::Commit { epoch, .. } => {
            *epoch
        }
        CommitteeRequest::Sign(p) => p.epoch,
    }
}

impl EpochLoop {
    /// The epoch rotation of the coordinator `me` of the committee `template` (a member of
    /// it when `member`, else a follower), resumed from `epoch-driver.cbor` when it reads
    /// (an unreadable record is moved aside: the log is the authority on rotations).
    ///
    /// # Errors
    /// The record writer thread cannot be started.
    pub(crate) fn new(
        template: &CommitteeNodeConfig,
        me: PeerId,
        network: NetworkId,
        metrics: CommitteeMetrics,
        member: bool,
    ) -> Result<Self, CommitteeStartError> {
        let schedule = EpochSchedule {
            start_ms: 0,
            epoch_ms: template.epoch_length.as_millis() as u64,
            handoff_ms: template.handoff.as_millis() as u64,
        };
        let cfg = EpochDriverConfig {
            me: me.to_string(),
            network: network.clone(),
            schedule,
            dkg_timeout_ms: template.dkg_timeout.as_millis() as u64,
            switch_lead: dsdn_protocols::committee::epoch_driver::DEFAULT_SWITCH_LEAD,
        };
        let driver = match read_epoch_driver(&template.dir) {
            Ok(Some(record)) => EpochDriver::resume(cfg, record),
            Ok(None) => EpochDriver::new(cfg, template.epoch, member),
            Err(e) => {
                let path = epoch_driver_path(&template.dir);
                let moved = dsdn_peers::files::move_aside_at(&path, unix_ms() / 1000);
                tracing::error!(error = %e, ?moved, "unreadable epoch driver record: starting afresh");
                EpochDriver::new(cfg, template.epoch, member)
            }
        };
        Ok(Self {
            driver,
            next: None,
            dkg: None,
            proof: None,
            adopted_window: None,
            record_writer: GuardWriter::start().map_err(CommitteeStartError::Writer)?,
            record_seq: 0,
            rule: SelectionRule {
                schedule,
                genesis: CurrentCommittee {
                    epoch: template.epoch,
                    members: texts(&template.members),
                    threshold: template.threshold,
                },
                candidates: texts(&template.candidates),
            },
            anchor_cache: Default::default(),
            template: template.clone(),
            me,
            network,
            metrics,
        })
    }

    /// What the driver reads of the DA log at `now_ms`: the tip, the recorded epochs, the
    /// committee in force, the seed anchor of the handoff window and the candidates as of
    /// it (see [`selection`]).
    pub(crate) fn view(&self, da: &DaService, now_ms: u64) -> LogView {
        self.rule.view(da, now_ms, &self.anchor_cache)
    }

    /// The selection rule (the DA service checks `committee_rotated` events with it).
    pub(crate) fn rule(&self) -> &SelectionRule {
        &self.rule
    }

    /// Advances the driver at `now_ms` over `view` (after the results of a finished DKG or
    /// key proof, if any): the actions to carry out, oldest first; the metrics follow.
    pub(crate) fn tick(&mut self, now_ms: u64, view: &LogView) -> Vec<EpochAction> {
        self.poll_results(now_ms, view);
        let next = self.next.as_ref().map(|(s, _)| s);
        let share_key =
            |n: &NextCommittee| next.and_then(|s| held_key(s.committee_config(), s.group_key(), n));
        self.driver.tick(now_ms, view, share_key);
        if matches!(self.driver.record().step, Step::Fallback { .. })
            && self
                .next
                .as_ref()
                .is_some_and(|(s, _)| s.group_key().is_none())
        {
            // The window failed: a DKG still running (its deadline may outlast the window)
            // is abandoned, so that the next window starts a fresh one.
            if let Some(next) = self.next.take() {
                drop_off_loop(next);
            }
            self.dkg = None;
        }
        let actions = self.driver.take_actions();
        self.metrics
            .observe_epochs(&self.driver.status(now_ms), &actions);
        actions
    }

    /// Hands finished DKG and key-proof results to the driver.
    fn poll_results(&mut self, now_ms: u64, view: &LogView) {
        if let Some((epoch, rx)) = self.dkg.as_mut() {
            let epoch = *epoch;
            let result = match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    Some(Err("the DKG was dropped".into()))
                }
                Ok(Ok(status)) => Some(
                    status
                        .group_key
                        .and_then(|k| hex::decode(k).ok())
                        .and_then(|k| <[u8; 32]>::try_from(k).ok())
                        .ok_or_else(|| "no group key".to_owned()),
                ),
                Ok(Err(e)) => Some(Err(e.to_string())),
            };
            if let Some(result) = result {
                self.dkg = None;
                match &result {
                    Ok(_) => {
                        self.adopted_window = Some(self.driver.status(now_ms).next_epoch_start_ms);
                        tracing::info!(epoch, "the next committee's DKG is complete");
                    }
                    Err(e) => tracing::warn!(epoch, error = %e, "the next committee's DKG failed"),
                }
                self.driver.on_dkg(now_ms, view, epoch, result);
            }
        }
        if let Some((epoch, rx)) = self.proof.as_mut() {
            let epoch = *epoch;
            let result = match rx.try_recv() {
                Err(oneshot::error::TryRecvError::Empty) => None,
                Err(oneshot::error::TryRecvError::Closed) => {
                    Some(Err("the key proof was dropped".into()))
                }
                Ok(r) => Some(r.map(|s| s.signature).map_err(|e| e.to_string())),
            };
            if let Some(result) = result {
                self.proof = None;
                if result.is_err() {
                    // The next window runs a fresh DKG rather than this share again.
                    self.move_aside_share(epoch);
                }
                self.driver.on_key_proof(epoch, result);
            }
        }
    }

    /// True while a DKG or key proof waits for its result (the glue ticks after every
    /// committee message then).
    pub(crate) fn waiting(&self) -> bool {
        self.dkg.is_some() || self.proof.is_some()
    }

    fn open_next(&mut self, config: &CommitteeConfig) -> Result<(), String> {
        if let Some((s, _)) = &self.next {
            if s.committee_config() == config {
                return Ok(());
            }
            if s.dkg_running() {
                return Err("another DKG of the next epoch runs".into());
            }
            if s.epoch() == config.epoch && s.group_key().is_some() {
                // A share adopted for another selection of this epoch (an earlier window
                // whose rotation never reached the log, the seed has moved since): stale.
                self.move_aside_share(config.epoch);
            }
        }
        let members: Vec<PeerId> = config.members.iter().filter_map(member_peer).collect();
        if members.len() != config.members.len() {
            return Err("a member id is not a PeerId".into());
        }
        let mut cfg = self.template.clone();
        cfg.members = members;
        cfg.threshold = config.threshold;
        cfg.epoch = config.epoch;
        let mut service = CommitteeService::open(cfg.clone(), self.me, self.metrics.clone())
            .map_err(|e| e.to_string())?;
        if service.group_key().is_some() {
            // A share of this epoch left by a window that failed (this member adopted the
            // key, the rotation never reached the log): a DKG is asked for, so it is stale.
            drop_off_loop(service);
            self.move_aside_share(config.epoch);
            service = CommitteeService::open(cfg, self.me, self.metrics.clone())
                .map_err(|e| e.to_string())?;
        }
        let writer = GuardWriter::start().map_err(|e| e.to_string())?;
        self.next = Some((service, writer));
        Ok(())
    }

    /// Moves the key share and guard of `epoch` aside (`<name>.corrupt-<unix s>`): a share
    /// of a next committee whose rotation never reached the log (a rename; the service
    /// holding it is dropped off the loop).
    fn move_aside_share(&mut self, epoch: u64) {
        if let Some((s, w)) = self.next.take() {
            drop_off_loop((s, w));
        }
        let now = unix_ms() / 1000;
        for path in [
            super::files::key_share_path(&self.template.dir, epoch),
            super::files::guard_path(&self.template.dir, epoch),
        ] {
            if path.exists() {
                match dsdn_peers::files::move_aside_at(&path, now) {
                    Ok(to) => {
                        tracing::warn!(epoch, to = %to.display(), "a key share of a failed handoff moved aside")
                    }
                    Err(e) => {
                        tracing::error!(epoch, error = %e, "cannot move aside the key share of a failed handoff")
                    }
                }
            }
        }
    }

    /// `StartDkg(next)` on the initiator: opens the next epoch's service and starts its DKG.
    ///
    /// # Errors
    /// The service cannot be opened (the reason; the driver's DKG times out).
    pub(crate) fn start_dkg(&mut self, next: &NextCommittee, now: Instant) -> Result<(), String> {
        let config = config_of(next.epoch, next.threshold, &next.members)?;
        self.open_next(&config)?;
        let (tx, rx) = oneshot::channel();
        if let Some((s, _)) = self.next.as_mut() {
            s.start_dkg(tx, now);
        }
        self.dkg = Some((next.epoch, rx));
        Ok(())
    }

    /// A `DkgStart` of the next epoch from `peer` on a member that is not the initiator:
    /// taken when `peer` is a current member, `config` is the next epoch of the committee
    /// in force, holds this node and is exactly this node's own selection
    /// ([`next_committee`] of `view`: members in the same order — FROST identifiers and
    /// the rotation's member order follow it — and threshold), and the handoff window is
    /// open. Opens the next service from it and joins its DKG (a follower selected into
    /// the next committee too).
    ///
    /// # Errors
    /// Why the start is not taken (the caller refuses the request as busy: the initiator
    /// sends it again).
    pub(crate) fn accept_dkg_start(
        &mut self,
        peer: &PeerId,
        config: &CommitteeConfig,
        view: &LogView,
        now: Instant,
    ) -> Result<(), String> {
        let current = &view.current;
        let members: Vec<String> = config
            .members
            .iter()
            .filter_map(member_peer)
            .map(|p| p.to_string())
            .collect();
        if Some(config.epoch) != current.epoch.checked_add(1) {
            return Err(format!("epoch {} is not the next one", config.epoch));
        }
        if !current.members.contains(&peer.to_string()) {
            return Err("the initiator is not a current member".into());
        }
        // Exactly this member's own selection (the same on every member once the anchor
        // is pinned; one not pinned yet here answers busy and the initiator asks again).
        // In order: the order is the FROST identifiers of the DKG and the member order of
        // the rotation recorded with its key (a restarted member opens its share with it).
        let selected = next_committee(view).filter(|n| {
            n.epoch == config.epoch && n.threshold == config.threshold && n.members == members
        });
        if !members.contains(&self.me.to_string())
            || members.len() != config.members.len()
            || selected.is_none()
        {
            return Err("not the next committee of this member's selection".into());
        }
        let phase = self.driver_schedule_phase(unix_ms());
        if !phase {
            return Err("the handoff window is not open".into());
        }
        let window = self.driver.status(unix_ms()).next_epoch_start_ms;
        let stale = self.next.as_ref().is_some_and(|(s, _)| {
            s.committee_config() == config
                && s.group_key().is_some()
                && self.adopted_window != Some(window)
        });
        if stale {
            // Adopted in an earlier window whose rotation never reached the log: the
            // initiator runs a new DKG, which needs this member without a share.
            self.move_aside_share(config.epoch);
        }
        self.open_next(config)?;
        if self.dkg.is_none() {
            let (tx, rx) = oneshot::channel();
            if let Some((s, _)) = self.next.as_mut() {
                if s.group_key().is_none() {
                    s.start_dkg(tx, now);
                    self.dkg = Some((config.epoch, rx));
                }
            }
        }
        Ok(())
    }

    fn driver_schedule_phase(&self, now_ms: u64) -> bool {
        let s = self.driver.status(now_ms);
        now_ms >= s.handoff_opens_ms && now_ms < s.next_epoch_start_ms
    }

    /// `SignKeyProof(rotation)`: the next committee FROST-signs the rotation's message
    /// (slot `Receipt(sha256(message))` of the next epoch's guard).
    pub(crate) fn sign_key_proof(&mut self, rotation: &CommitteeRotation, now: Instant) {
        let (tx, rx) = oneshot::channel();
        self.proof = Some((rotation.epoch, rx));
        // Only for the members in the order its DKG ran with (the order a restarted member
        // opens its share under) and this share's key.
        let Some((s, _)) = self.next.as_mut().filter(|(s, _)| {
            s.epoch() == rotation.epoch
                && held_key(
                    s.committee_config(),
                    s.group_key(),
                    &NextCommittee {
                        epoch: rotation.epoch,
                        members: rotation.members.clone(),
                        threshold: rotation.threshold,
                    },
                ) == Some(rotation.group_key.0)
        }) else {
            let _ = tx.send(Err(ThresholdSignError::NoKeyShare));
            return;
        };
        match rotation.message(&self.network) {
            Ok(message) => {
                let slot = Slot::Receipt(Sha256::digest(&message).into());
                s.start_sign(slot, message, tx, now);
            }
            Err(e) => {
                let _ = tx.send(Err(ThresholdSignError::Frost(e.to_string())));
            }
        }
    }

    /// A member's check of a signing package of the next epoch: only the key proof of a
    /// rotation to this service's own group key, under the slot of its hash.
    ///
    /// # Errors
    /// Why the package is refused.
    pub(crate) fn check_next_package(&self, request: &CommitteeRequest) -> Result<(), String> {
        let CommitteeRequest::Sign(package) = request else {
            return Ok(());
        };
        let message = package.message().map_err(|e| e.to_string())?;
        let Some((s, _)) = &self.next else {
            return Err("no next committee".into());
        };
        type Body = (
            String,
            String,
            u64,
            Vec<String>,
            u16,
            dsdn_protocols::da::Bytes32,
            u64,
        );
        let body: Body = dsdn_protocols::codec::decode(&message, message.len().max(1))
            .map_err(|e| format!("not a rotation message: {e}"))?;
        let slot = Slot::Receipt(Sha256::digest(&message).into());
        let config = s.committee_config();
        if package.slot != slot
            || body.1 != self.network.as_str()
            || body.2 != s.epoch()
            || Some(body.5 .0) != s.group_key()
            || body.3 != member_texts(config)
            || body.4 != config.threshold
        {
            return Err("not the key proof of this member's next committee".into());
        }
        Ok(())
    }

    /// Whether `peer` may send requests of the next epoch to this node: a member of the
    /// next service, or of this node's own selection over `view` (its `DkgStart` may not
    /// have arrived yet: the request is answered busy and sent again). Anyone else is
    /// refused as not a member.
    pub(crate) fn next_member(&self, peer: &PeerId, view: &LogView) -> bool {
        if self.next.as_ref().is_some_and(|(s, _)| s.is_member(peer)) {
            return true;
        }
        let peer = peer.to_string();
        next_committee(view).is_some_and(|n| n.members.contains(&peer))
    }

    /// The next epoch's service and its guard writer (routing of its requests, responses and
    /// actions).
    pub(crate) fn next_mut(&mut self) -> Option<&mut (CommitteeService, GuardWriter)> {
        self.next.as_mut()
    }

    /// The writers whose results the event loop waits for: the next service's guard
    /// writer (while there is one) and the record writer.
    pub(crate) fn writers(&mut self) -> (Option<&mut GuardWriter>, &mut GuardWriter) {
        (self.next.as_mut().map(|(_, w)| w), &mut self.record_writer)
    }

    /// The next service's earliest timer.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.next.as_ref().and_then(|(s, _)| s.next_deadline())
    }

    /// The next epoch's service and writer, handed over at the switch to `epoch`.
    pub(crate) fn take_next(&mut self, epoch: u64) -> Option<(CommitteeService, GuardWriter)> {
        if self
            .next
            .as_ref()
            .is_some_and(|(s, _)| s.epoch() == epoch && s.group_key().is_some())
        {
            self.next.take()
        } else {
            None
        }
    }

    /// `Persist(record)`: queued on the record writer.
    pub(crate) fn persist(
        &mut self,
        record: &dsdn_protocols::committee::epoch_driver::EpochDriverRecord,
    ) {
        match encode_epoch_driver(record) {
            Ok(bytes) => {
                self.record_seq += 1;
                self.record_writer.persist(
                    self.record_seq,
                    epoch_driver_path(&self.template.dir),
                    bytes,
                );
            }
            Err(e) => tracing::error!(error = %e, "cannot encode the epoch driver record"),
        }
    }

    /// The status for `committee status`, at `now_ms` over `view`.
    pub(crate) fn status(&self, now_ms: u64, view: &LogView) -> EpochView {
        let s = self.driver.status(now_ms);
        let next_switch_height = view
            .latest
            .as_ref()
            .filter(|r| r.effective_height > view.tip.saturating_add(1))
            .map(|r| r.effective_height);
        let next_epoch = match &self.driver.record().step {
            Step::Handoff { next } | Step::Dkg { next, .. } => Some(next.epoch),
            Step::KeyProof { rotation } | Step::Proposed { rotation } => Some(rotation.epoch),
            Step::Switching { record } => Some(record.epoch),
            Step::Sealing | Step::Fallback { .. } => None,
        };
        EpochView {
            epoch: view.current.epoch,
            phase: s.phase.to_owned(),
            next_switch_height,
            next_epoch,
            next_epoch_start_ms: s.next_epoch_start_ms,
            handoff_opens_ms: s.handoff_opens_ms,
            rotations: s.rotations,
            failures: s.failures,
            fallback_reason: s.fallback_reason,
        }
    }
}

mod in_force;
mod selection;

use in_force::config_of;
pub(crate) use in_force::{follower_service, service_in_force};
pub(crate) use selection::{check_rotation, SelectionRule};

/// The group key of the next epoch's share held here (`config`, `group_key`: its service)
/// when that share is of exactly `next`: its epoch, threshold and members **in order** (the
/// order is the FROST identifiers of the DKG that made it, and the member order the
/// rotation records with its key). A share of the same members in another order (adopted
/// in an earlier window whose rotation never reached the log, under another seed) is not
/// `next`'s: a restarted member could not open it under the recorded rotation.
fn held_key(
    config: &CommitteeConfig,
    group_key: Option<[u8; 32]>,
    next: &NextCommittee,
) -> Option<[u8; 32]> {
    let same = config.epoch == next.epoch
        && config.threshold == next.threshold
        && member_texts(config) == next.members;
    same.then_some(group_key).flatten()
}

/// The members of `config` as PeerId texts, in its order (a member id that is not a PeerId
/// is left out, so the list then differs from any committee's).
fn member_texts(config: &CommitteeConfig) -> Vec<String> {
    config
        .members
        .iter()
        .filter_map(member_peer)
        .map(|p| p.to_string())
        .collect()
}

#[cfg(test)]
mod tests;
