//! The committee in the event loop: `/dsdn/<net>/committee/1.0.0` requests in and out, the
//! [`crate::committee::CommitteeService`] timers and the handle's committee commands.

use std::time::Instant;

use dsdn_protocols::committee::{CommitteeRequest, CommitteeResponse, GroupKey, Slot};
use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::CommitteeMessage;
use tokio::sync::oneshot;

use super::EventLoop;
use crate::committee::{
    CommitteeAction, CommitteeService, CommitteeStartError, CommitteeStatus, DkgRunError,
    GroupSignature, GuardWriter, ThresholdSignError,
};
use crate::net::rpc::RpcEvent;

/// The committee state of the event loop: the service, its guard writer and, when the
/// group key is the DA authority, the proposer rotation.
pub(crate) struct CommitteeLoop {
    pub(super) service: CommitteeService,
    /// Writes the signing guard off the event loop.
    pub(super) guard_writer: GuardWriter,
    /// The DA proposer rotation, once this member holds a share of the DA authority.
    pub(super) rotation: Option<super::rotation::RotationLoop>,
    /// Why the rotation cannot run (e.g. a committee without a majority threshold).
    pub(super) rotation_refused: Option<String>,
    /// The automatic epoch rotation, once the proposer rotation runs (`event_loop/epochs.rs`).
    pub(super) epochs: Option<crate::committee::epochs::EpochLoop>,
    /// The DA key in force whose epoch service was last looked for on disk
    /// (`event_loop/epochs.rs`).
    pub(super) resume_tried: Option<[u8; 32]>,
    /// Where the events posted to this coordinator go while it does not seal (a follower,
    /// a retired member: `event_loop/forward.rs`).
    pub(super) forward: crate::committee::rotation::forward::ForwardPlan,
}

impl CommitteeLoop {
    /// The committee parts of a member: `service` and a started guard writer.
    ///
    /// # Errors
    /// The guard writer thread cannot be started.
    pub(crate) fn new(service: CommitteeService) -> Result<Self, CommitteeStartError> {
        let forward = crate::committee::rotation::forward::ForwardPlan::new(
            service.node_config().round_timeout,
        );
        Ok(Self {
            forward,
            service,
            guard_writer: GuardWriter::start().map_err(CommitteeStartError::Writer)?,
            rotation: None,
            rotation_refused: None,
            epochs: None,
            resume_tried: None,
        })
    }

    /// The service's next timer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let next = self.epochs.as_ref().and_then(|e| e.next_deadline());
        self.service.next_deadline().into_iter().chain(next).min()
    }

    /// The epoch, committee hash and group key receipts are signed under (see
    /// `CommitteeService::receipt_context`).
    pub(super) fn receipt_context(&self) -> Option<(u64, Bytes32, GroupKey)> {
        self.service.receipt_context()
    }

    /// The group key, once this member holds a share.
    pub(super) fn group_key(&self) -> Option<[u8; 32]> {
        self.service.group_key()
    }

    /// The committee store's issue (a guard that cannot be written), if any.
    pub(super) fn storage_issue(&self, now: Instant) -> Option<crate::storage::StorageIssue> {
        self.service.storage_issue(now)
    }

    /// Starts a signing round this member proposes.
    pub(super) fn start_sign(
        &mut self,
        slot: Slot,
        message: Vec<u8>,
        tx: oneshot::Sender<Result<GroupSignature, ThresholdSignError>>,
        now: Instant,
    ) {
        self.service.start_sign(slot, message, tx, now);
    }
}

/// A write of a member's writer threads: change `seq` of the signing guard or of the
/// rotation record is durable (or failed).
pub(super) enum Written {
    /// The signing guard.
    Guard(u64, Result<(), String>),
    /// The rotation record.
    Record(u64, Result<(), String>),
    /// The signing guard of the next epoch's service (issue 13 §3).
    NextGuard(u64, Result<(), String>),
    /// The epoch driver record.
    EpochRecord(u64, Result<(), String>),
}

/// The next result of `writer`, never when there is none.
async fn done_of(writer: Option<&mut GuardWriter>) -> Option<(u64, Result<(), String>)> {
    match writer {
        Some(w) => w.done().await,
        None => std::future::pending().await,
    }
}

/// The next result of a member's guard or record writer (never, on nodes outside the
/// committee).
pub(super) async fn written(committee: &mut Option<CommitteeLoop>) -> Option<Written> {
    let Some(c) = committee.as_mut() else {
        return std::future::pending().await;
    };
    let guard = &mut c.guard_writer;
    let record = c.rotation.as_mut().map(|r| &mut r.writer);
    let (next, epoch_record) = match c.epochs.as_mut() {
        Some(e) => {
            let (next, record) = e.writers();
            (next, Some(record))
        }
        None => (None, None),
    };
    tokio::select! {
        g = guard.done() => g.map(|(s, r)| Written::Guard(s, r)),
        w = done_of(record) => w.map(|(s, r)| Written::Record(s, r)),
        n = done_of(next) => n.map(|(s, r)| Written::NextGuard(s, r)),
        e = done_of(epoch_record) => e.map(|(s, r)| Written::EpochRecord(s, r)),
    }
}

impl EventLoop {
    /// A member's writer reported a write (see [`Written`]).
    pub(super) fn on_written(&mut self, written: Written) {
        match written {
            Written::Guard(seq, result) => self.committee_guard_written(seq, result),
            Written::Record(seq, result) => self.rotation_record_written(seq, result),
            Written::NextGuard(seq, result) => self.epochs_guard_written(seq, result),
            Written::EpochRecord(seq, Err(error)) => {
                tracing::error!(seq, %error, "cannot write the epoch driver record");
            }
            Written::EpochRecord(_, Ok(())) => {}
        }
    }

    /// Runs the committee timers and sends what the service queued.
    pub(super) fn committee_poll(&mut self) {
        if let Some(c) = self.committee.as_mut() {
            c.service.poll(Instant::now());
        }
        self.committee_flush();
        self.rotation_poll();
        self.epochs_poll();
    }

    /// A member's check of a package it is asked to sign on the committee protocol: a
    /// receipt must verify ([`EventLoop::check_receipt_proposal`]); a `DaBlob` slot is
    /// refused when the group key is the DA authority (DA blobs are signed by the proposer
    /// rotation, `/dsdn/<net>/da-rotation/1.0.0`, whose locks replace the slot guard).
    /// `Err` carries the reason to refuse; packages that do not parse pass (the service
    /// refuses those).
    fn check_proposal(&self, request: &CommitteeRequest) -> Result<(), String> {
        let CommitteeRequest::Sign(package) = request else {
            return Ok(());
        };
        match package.slot {
            Slot::DaBlob(_) => {
                let committee_key = self.committee.as_ref().and_then(|c| c.service.group_key());
                if committee_key.is_some() && committee_key == self.da.service.current_key() {
                    return Err("DA blobs are signed by the proposer rotation".into());
                }
                Ok(())
            }
            Slot::Receipt(id) => {
                let Ok(message) = package.message() else {
                    return Ok(());
                };
                self.check_receipt_proposal(&id, &message)
            }
        }
    }

    /// A member's check of a receipt it is asked to sign: the message is a receipt committee
    /// message for this slot, under this committee's epoch, hash and group key, and the
    /// node-signed receipt verifies (node signature, commitment consistency, derived ids,
    /// anti-self-dealing). The member does not re-execute: that is the fraud check's job
    /// (`dsdn-agent receipt verify --reexecute`).
    fn check_receipt_proposal(&self, slot_id: &[u8; 32], message: &[u8]) -> Result<(), String> {
        let parsed = CommitteeMessage::parse(message).map_err(|e| e.to_string())?;
        let ours = self.committee.as_ref().and_then(|c| c.receipt_context());
        let Some((epoch, hash, group_key)) = ours else {
            return Err("no key share".into());
        };
        if (parsed.epoch, parsed.committee_hash, parsed.group_key) != (epoch, hash, group_key) {
            return Err("the receipt names another committee".into());
        }
        if parsed.receipt.receipt_id.0 != *slot_id {
            return Err("the slot is not the receipt's id".into());
        }
        parsed.receipt.verify().map_err(|e| e.to_string())
    }

    /// Carries out the service's queued actions: requests and answers go to the committee
    /// component, guard writes to the guard writer.
    pub(super) fn committee_flush(&mut self) {
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        let actions = c.service.take_actions();
        carry_out(
            actions,
            self.swarm.behaviour_mut().committee.as_mut(),
            &mut c.guard_writer,
        );
    }

    /// The guard writer made guard change `seq` durable (or failed to): held shares are
    /// released (or withheld).
    pub(super) fn committee_guard_written(&mut self, seq: u64, result: Result<(), String>) {
        if let Some(c) = self.committee.as_mut() {
            c.service.on_guard_persisted(seq, result, Instant::now());
        }
        self.committee_flush();
    }

    /// `/dsdn/<net>/committee/1.0.0` events.
    pub(super) fn on_committee(
        &mut self,
        event: RpcEvent<CommitteeRequest, CommitteeResponse, u64>,
    ) {
        let now = Instant::now();
        // Requests and responses of the next epoch's committee (issue 13 §3).
        let Some(event) = self.epochs_route(event) else {
            return;
        };
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => {
                // The PeerId is authenticated by noise; membership is decided by it alone.
                let member = c.service.is_member(&peer);
                let checked = if member {
                    self.check_proposal(&request)
                } else {
                    Ok(())
                };
                let Some(c) = self.committee.as_mut() else {
                    return;
                };
                match checked {
                    Err(reason) => c.service.refuse_by_policy(peer, &reason, reply),
                    Ok(()) => c.service.on_request(peer, request, reply, now),
                }
            }
            RpcEvent::Response {
                tag,
                response: Ok(response),
                ..
            } => c.service.on_response(tag, response, now),
            RpcEvent::Response {
                tag,
                response: Err(error),
                ..
            } => c.service.on_failure(tag, &error, now),
        }
        self.committee_flush();
    }

    /// A peer disconnected.
    pub(super) fn committee_peer_disconnected(&mut self, peer: &libp2p::PeerId) {
        if let Some(c) = self.committee.as_mut() {
            c.service.peer_disconnected(peer);
        }
    }

    /// `NodeHandle::committee_dkg`.
    pub(super) fn committee_dkg(
        &mut self,
        tx: oneshot::Sender<Result<CommitteeStatus, DkgRunError>>,
    ) {
        let Some(c) = self.committee.as_mut() else {
            let _ = tx.send(Err(DkgRunError::NotConfigured));
            return;
        };
        c.service.start_dkg(tx, Instant::now());
        self.committee_flush();
    }

    /// `NodeHandle::committee_status`.
    pub(super) fn committee_status(&self) -> Option<CommitteeStatus> {
        let pending = self.da.service.has_pending();
        let connected: Vec<libp2p::PeerId> = self
            .swarm
            .behaviour()
            .peer_manager
            .connected()
            .keys()
            .copied()
            .collect();
        self.committee.as_ref().map(|c| {
            let mut status = c.service.status();
            status.rotation = match (&c.rotation, &c.rotation_refused) {
                (Some(r), _) => Some(Ok(r.status(Instant::now(), pending, &connected))),
                (None, Some(e)) => Some(Err(e.clone())),
                (None, None) => None,
            };
            status.epochs = self.epochs_status();
            status
        })
    }

    /// `NodeHandle::threshold_sign`.
    pub(super) fn threshold_sign(
        &mut self,
        slot: Slot,
        message: Vec<u8>,
        tx: oneshot::Sender<Result<GroupSignature, ThresholdSignError>>,
    ) {
        let Some(c) = self.committee.as_mut() else {
            let _ = tx.send(Err(ThresholdSignError::NotConfigured));
            return;
        };
        c.service.start_sign(slot, message, tx, Instant::now());
        self.committee_flush();
    }
}

/// Carries out a committee service's actions (the current epoch's or the next one's):
/// requests and answers go to the committee component, guard writes to `writer`.
pub(super) fn carry_out(
    actions: Vec<CommitteeAction>,
    mut behaviour: Option<&mut crate::net::behaviour::CommitteeComponent>,
    writer: &mut GuardWriter,
) {
    for action in actions {
        match action {
            CommitteeAction::Send { tag, peer, request } => {
                if let Some(b) = behaviour.as_deref_mut() {
                    b.send(peer, request, tag);
                }
            }
            CommitteeAction::Respond(reply, response) => {
                if let Some(b) = behaviour.as_deref_mut() {
                    b.respond(reply, response);
                }
            }
            CommitteeAction::PersistGuard { seq, path, bytes } => {
                writer.persist(seq, path, bytes);
            }
        }
    }
}
