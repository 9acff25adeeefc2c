//! The automatic epoch rotation in the event loop (issue 13 §3): ticks
//! [`crate::committee::epochs::EpochLoop`] with `now` and the DA state, carries out the
//! driver's actions (the next committee's DKG and key proof on a second committee service,
//! the `committee_rotated` proposal, the switch of the sealing share at `effective_height`,
//! the record write) and routes the committee requests and responses of the next epoch.
//!
//! It runs on a member whose committee seals the DA log (its proposer rotation runs) and on
//! a follower (a coordinator outside the committee in force, once the DA log has an
//! authority): the follower selects each window like the members, takes part in the next
//! committee's DKG when selected, and switches into sealing at `effective_height`; a
//! member not selected retires to a follower of the new epoch.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dsdn_protocols::committee::epoch_driver::EpochAction;
use dsdn_protocols::committee::{CommitteeRequest, CommitteeResponse, Refusal};

use super::EventLoop;
use crate::committee::epochs::{request_epoch, EpochLoop};
use crate::committee::{tag_epoch, EpochView};
use crate::net::rpc::RpcEvent;

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EventLoop {
    fn epochs(&mut self) -> Option<&mut EpochLoop> {
        self.committee.as_mut().and_then(|c| c.epochs.as_mut())
    }

    /// After a restart the configuration names the genesis epoch: when the log has a later
    /// epoch in force that names this node, its service (the share on disk) replaces the
    /// configured one, so that the proposer rotation starts with it; when it does not name
    /// this node, the follower service of that epoch does. Tried once per DA key in force
    /// that is not this service's (the files are read then, not at every tick).
    fn epochs_resume(&mut self) {
        let me = *self.swarm.local_peer_id();
        let in_force = self.da.service.current_key();
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        if c.epochs.is_some()
            || c.rotation.is_some()
            || in_force.is_none()
            || in_force == c.service.group_key()
            || c.resume_tried == in_force
        {
            return;
        }
        c.resume_tried = in_force;
        let (cfg, metrics) = (c.service.node_config().clone(), c.service.metrics().clone());
        let state = self.da.service.state();
        match crate::committee::epochs::service_in_force(
            &cfg,
            me,
            state,
            c.service.epoch(),
            metrics,
        ) {
            Ok(Some(service)) => {
                tracing::info!(
                    epoch = service.epoch(),
                    follower = service.is_follower(),
                    "resuming in the committee epoch in force"
                );
                let config = service.committee_config().clone();
                let old = std::mem::replace(&mut c.service, service);
                drop_off_loop(old);
                self.workload.service.set_committee(Some(config));
            }
            Ok(None) => {}
            Err(e) => {
                tracing::error!(error = %e, "the committee epoch in force cannot be resumed: this member does not seal")
            }
        }
    }

    /// Starts the epoch rotation once this member's proposer rotation runs (its committee
    /// seals the DA log), or on a follower once the DA log has an authority.
    fn epochs_ensure(&mut self) {
        let network = self.cfg.network.clone();
        let me = *self.swarm.local_peer_id();
        let authority = self.da.service.current_key();
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        let follower = c.service.is_follower();
        if c.epochs.is_some()
            || (!follower && c.rotation.is_none())
            || (follower && authority.is_none())
        {
            return;
        }
        let cfg = c.service.node_config();
        match EpochLoop::new(cfg, me, network, c.service.metrics().clone(), !follower) {
            Ok(e) => {
                tracing::info!(
                    epoch_secs = cfg.epoch_length.as_secs(),
                    handoff_secs = cfg.handoff.as_secs(),
                    follower,
                    "committee epoch rotation enabled"
                );
                // Rotations queued or co-signed here must be this log's selection.
                self.da.service.set_selection_rule(Some(e.rule().clone()));
                c.epochs = Some(e);
            }
            Err(e) => tracing::error!(error = %e, "the committee epoch rotation cannot run"),
        }
    }

    /// Ticks the driver at the current time and carries out its actions (repeatedly: a DKG
    /// result may ask for the key proof at once).
    pub(super) fn epochs_tick(&mut self) {
        self.epochs_resume();
        self.epochs_ensure();
        for _ in 0..4 {
            let now = Instant::now();
            let now_ms = unix_ms();
            let Some(view) = self
                .committee
                .as_ref()
                .and_then(|c| c.epochs.as_ref())
                .map(|e| e.view(&self.da.service, now_ms))
            else {
                return;
            };
            let Some(e) = self.epochs() else {
                return;
            };
            let actions = e.tick(now_ms, &view);
            if actions.is_empty() {
                break;
            }
            for action in actions {
                self.epoch_action(action, now);
            }
        }
        self.epochs_follow();
        self.epochs_flush();
    }

    /// A coordinator the epoch in force does not name (a retired member, a follower after
    /// a rotation it was not selected into) runs the follower service of that epoch: it
    /// signs nothing, refuses every request, and its requests of the next epoch are
    /// classified against the epoch in force.
    fn epochs_follow(&mut self) {
        let me = *self.swarm.local_peer_id();
        let Some(current) = self
            .committee
            .as_ref()
            .and_then(|c| c.epochs.as_ref())
            .map(|e| e.view(&self.da.service, unix_ms()).current)
        else {
            return;
        };
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        if c.service.epoch() >= current.epoch || current.members.contains(&me.to_string()) {
            return;
        }
        let metrics = c.service.metrics().clone();
        match crate::committee::epochs::follower_service(
            c.service.node_config(),
            me,
            &current,
            metrics,
        ) {
            Ok(service) => {
                tracing::info!(
                    epoch = current.epoch,
                    "not a member of the committee epoch in force: following it"
                );
                let config = service.committee_config().clone();
                let old = std::mem::replace(&mut c.service, service);
                let old_rotation = c.rotation.take();
                drop_off_loop((old, old_rotation));
                self.da.service.set_committee_key(None);
                self.workload.service.set_committee(Some(config));
            }
            Err(e) => {
                tracing::warn!(epoch = current.epoch, error = %e, "cannot follow the committee epoch in force")
            }
        }
    }

    fn epoch_action(&mut self, action: EpochAction, now: Instant) {
        match action {
            EpochAction::StartDkg(next) => {
                tracing::info!(epoch = next.epoch, members = ?next.members, threshold = next.threshold, "starting the next committee's DKG");
                if let Some(e) = self.epochs() {
                    if let Err(err) = e.start_dkg(&next, now) {
                        tracing::warn!(epoch = next.epoch, error = %err, "cannot start the next committee's DKG");
                    }
                }
            }
            EpochAction::SignKeyProof(rotation) => {
                tracing::info!(
                    epoch = rotation.epoch,
                    effective_height = rotation.effective_height,
                    "signing the rotation with the next committee's key"
                );
                if let Some(e) = self.epochs() {
                    e.sign_key_proof(&rotation, now);
                }
            }
            EpochAction::Propose(rotation) => {
                let epoch = rotation.epoch;
                match self.da.service.propose_rotation(rotation, now) {
                    Ok(()) => tracing::info!(epoch, "committee_rotated event queued for sealing"),
                    Err(e) => {
                        tracing::warn!(epoch, error = %e, "the committee_rotated event is not queued");
                    }
                }
                self.rotation_poll();
            }
            EpochAction::Switch { epoch, from_height } => self.epoch_switch(epoch, from_height),
            EpochAction::Retire { epoch } => {
                tracing::info!(
                    epoch,
                    "not a member of the new committee: this node stops sealing"
                );
                if let Some(c) = self.committee.as_mut() {
                    if let Some(old) = c.rotation.take() {
                        drop_off_loop(old);
                    }
                }
                // Sealing stops now; the follower service replaces the retired one
                // (`epochs_follow`, at the end of this tick).
                self.da.service.set_committee_key(None);
                // Its pending events stay in the pool and go to the new committee.
                self.forward_sync();
            }
            EpochAction::Persist(record) => {
                if let Some(e) = self.epochs() {
                    e.persist(&record);
                }
            }
            EpochAction::DkgTook { millis } => {
                tracing::info!(millis, "the next committee's DKG took");
            }
        }
    }

    /// At `effective_height`: the next epoch's service (its key share) replaces the current
    /// one for blobs and receipts, and the proposer rotation restarts with it.
    fn epoch_switch(&mut self, epoch: u64, from_height: u64) {
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        let me = *self.swarm.local_peer_id();
        let next = c
            .epochs
            .as_mut()
            .and_then(|e| e.take_next(epoch))
            .or_else(|| {
                // The next service is gone (a restart after the DKG): the share on disk.
                let metrics = c.service.metrics().clone();
                let state = self.da.service.state();
                crate::committee::epochs::service_in_force(
                    c.service.node_config(),
                    me,
                    state,
                    c.service.epoch(),
                    metrics,
                )
                .ok()
                .flatten()
                .filter(|s| !s.is_follower() && s.epoch() == epoch)
                .and_then(|s| Some((s, crate::committee::GuardWriter::start().ok()?)))
            });
        let Some((service, writer)) = next else {
            tracing::error!(epoch, from_height, "the committee rotated, but this member holds no key share of the new epoch: it does not seal");
            if let Some(old) = c.rotation.take() {
                drop_off_loop(old);
            }
            return;
        };
        let old_service = std::mem::replace(&mut c.service, service);
        let old_writer = std::mem::replace(&mut c.guard_writer, writer);
        let old_rotation = c.rotation.take();
        c.rotation_refused = None;
        tracing::info!(epoch, from_height, group_key = ?c.service.group_key().map(hex::encode), "committee epoch switched: sealing with the new key share");
        drop_off_loop((old_service, old_writer, old_rotation));
        // Optimistic receipts' signers are judged against the committee in force.
        let config = c.service.committee_config().clone();
        self.workload.service.set_committee(Some(config));
        self.rotation_ensure(Instant::now());
        let key = self.rotation_key();
        self.da.service.set_committee_key(key);
        self.rotation_after_da();
    }

    /// Carries out what the next epoch's service queued.
    pub(super) fn epochs_flush(&mut self) {
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        let Some((service, writer)) = c.epochs.as_mut().and_then(|e| e.next_mut()) else {
            return;
        };
        let actions = service.take_actions();
        super::committee::carry_out(
            actions,
            self.swarm.behaviour_mut().committee.as_mut(),
            writer,
        );
    }

    /// The next epoch's guard writer made change `seq` durable (or failed).
    pub(super) fn epochs_guard_written(&mut self, seq: u64, result: Result<(), String>) {
        if let Some((s, _)) = self.epochs().and_then(|e| e.next_mut()) {
            s.on_guard_persisted(seq, result, Instant::now());
        }
        self.epochs_flush();
    }

    /// The next epoch's timers.
    pub(super) fn epochs_poll(&mut self) {
        if let Some((s, _)) = self.epochs().and_then(|e| e.next_mut()) {
            s.poll(Instant::now());
        }
        self.epochs_flush();
        self.epochs_tick();
    }

    /// Takes a committee event of the next epoch (a request naming it, a response to one of
    /// its requests); gives back any other.
    pub(super) fn epochs_route(
        &mut self,
        event: RpcEvent<CommitteeRequest, CommitteeResponse, u64>,
    ) -> Option<RpcEvent<CommitteeRequest, CommitteeResponse, u64>> {
        let now = Instant::now();
        let current = self.committee.as_ref().map(|c| c.service.epoch())?;
        if let RpcEvent::Request { peer, request, .. } = &event {
            let member = self
                .committee
                .as_ref()
                .is_some_and(|c| c.service.is_member(peer));
            let next_member = || {
                self.committee
                    .as_ref()
                    .and_then(|c| c.epochs.as_ref())
                    .is_some_and(|e| e.next_member(peer, &e.view(&self.da.service, unix_ms())))
            };
            if request_epoch(request) > current && !member && !next_member() {
                // Neither a current member nor one of the next committee: refused by the
                // service in force as not a member (and counted), not answered "busy".
                return Some(event);
            }
        }
        let Some(e) = self.committee.as_ref().and_then(|c| c.epochs.as_ref()) else {
            // A member whose epoch rotation does not run yet (just restarted) asks the
            // initiator to send again rather than refusing the next epoch for good.
            if let RpcEvent::Request { request, reply, .. } = &event {
                if request_epoch(request) > current {
                    if let Some(b) = self.swarm.behaviour_mut().committee.as_mut() {
                        let busy = Refusal::Busy("the epoch rotation does not run here yet".into());
                        b.respond(*reply, CommitteeResponse::Refused(busy));
                    }
                    return None;
                }
            }
            return Some(event);
        };
        let view = e.view(&self.da.service, unix_ms());
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } if request_epoch(&request) > current => {
                let e = self.epochs()?;
                let taken = match &request {
                    CommitteeRequest::DkgStart(config) => {
                        e.accept_dkg_start(&peer, config, &view, now)
                    }
                    _ if e.next_mut().is_some_and(|(s, _)| {
                        s.epoch() == request_epoch(&request) && s.is_member(&peer)
                    }) =>
                    {
                        e.check_next_package(&request)
                    }
                    _ => Err("no committee of that epoch here yet".into()),
                };
                match taken {
                    Ok(()) => {
                        if let Some((s, _)) = e.next_mut() {
                            s.on_request(peer, request, reply, now);
                        }
                    }
                    Err(reason) => {
                        tracing::debug!(%peer, %reason, "next-epoch committee request refused as busy");
                        if let Some(b) = self.swarm.behaviour_mut().committee.as_mut() {
                            b.respond(reply, CommitteeResponse::Refused(Refusal::Busy(reason)));
                        }
                    }
                }
            }
            RpcEvent::Response { tag, response, .. } if tag_epoch(tag) > (current & 0xFF_FFFF) => {
                if let Some((s, _)) = self.epochs().and_then(|e| e.next_mut()) {
                    match response {
                        Ok(r) => s.on_response(tag, r, now),
                        Err(error) => s.on_failure(tag, &error, now),
                    }
                }
            }
            other => return Some(other),
        }
        self.epochs_flush();
        if self.epochs().is_some_and(|e| e.waiting()) {
            self.epochs_tick();
        }
        None
    }

    /// The epoch part of `committee status`.
    pub(super) fn epochs_status(&self) -> Option<EpochView> {
        let e = self.committee.as_ref()?.epochs.as_ref()?;
        let now_ms = unix_ms();
        Some(e.status(now_ms, &e.view(&self.da.service, now_ms)))
    }
}

/// Drops `value` (services, writers: their drop joins a writer thread) on a thread of its
/// own, so that the event loop does not wait on a disk write.
fn drop_off_loop<T: Send + 'static>(value: T) {
    if let Err(e) = std::thread::Builder::new()
        .name("committee retire".into())
        .spawn(move || drop(value))
    {
        tracing::warn!(error = %e, "cannot spawn the retiring thread");
    }
}
