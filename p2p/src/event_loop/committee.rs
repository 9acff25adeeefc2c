//! The committee in the event loop: `/dsdn/<net>/committee/1.0.0` requests in and out, the
//! [`crate::committee::CommitteeService`] timers and the handle's committee commands.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

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

/// Where the result of a signing round arrives.
type SignatureReceiver = oneshot::Receiver<Result<GroupSignature, ThresholdSignError>>;

/// The committee state of the event loop: the service, its guard writer and the DA round
/// it signs.
pub(crate) struct CommitteeLoop {
    service: CommitteeService,
    /// Writes the signing guard off the event loop.
    guard_writer: GuardWriter,
    /// The DA blob this node proposed and the committee is signing: its height and where
    /// the signature arrives.
    da_round: Option<(u64, SignatureReceiver)>,
}

impl CommitteeLoop {
    /// The committee parts of a member: `service` and a started guard writer.
    ///
    /// # Errors
    /// The guard writer thread cannot be started.
    pub(crate) fn new(service: CommitteeService) -> Result<Self, CommitteeStartError> {
        Ok(Self {
            service,
            guard_writer: GuardWriter::start().map_err(CommitteeStartError::Writer)?,
            da_round: None,
        })
    }

    /// The service's next timer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.service.next_deadline()
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

/// The next result of a member's guard writer (never, on nodes outside the committee).
pub(super) async fn guard_written(
    committee: &mut Option<CommitteeLoop>,
) -> Option<(u64, Result<(), String>)> {
    match committee {
        Some(c) => c.guard_writer.done().await,
        None => std::future::pending().await,
    }
}

impl EventLoop {
    /// Runs the committee timers and sends what the service queued.
    pub(super) fn committee_poll(&mut self) {
        if let Some(c) = self.committee.as_mut() {
            c.service.poll(Instant::now());
        }
        self.committee_flush();
    }

    /// The group key this node holds a share of, if it is the committee's DA proposer: the
    /// proposer seals blobs through the committee when that key is the DA authority.
    pub(super) fn committee_proposer_key(&self) -> Option<[u8; 32]> {
        self.committee
            .as_ref()
            .filter(|c| c.service.is_da_proposer())
            .and_then(|c| c.service.group_key())
    }

    /// Has the committee sign the DA blob this node proposes at `height` (its
    /// `DaAction::ThresholdSign`); the signature goes back to the DA service when the
    /// round ends ([`EventLoop::committee_da_round`]).
    pub(super) fn committee_sign_da(&mut self, height: u64, message: Vec<u8>) {
        let Some(c) = self.committee.as_mut() else {
            let e = "this node is not a committee member".to_owned();
            self.da.service.on_threshold_signature(height, Err(e));
            return;
        };
        let (tx, rx) = oneshot::channel();
        c.service
            .start_sign(Slot::DaBlob(height), message, tx, Instant::now());
        c.da_round = Some((height, rx));
        self.committee_flush();
        self.committee_da_round();
    }

    /// Hands the result of the DA signing round, once there is one, to the DA service.
    fn committee_da_round(&mut self) {
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        let Some((height, rx)) = c.da_round.as_mut() else {
            return;
        };
        let height = *height;
        let result = match rx.try_recv() {
            Err(oneshot::error::TryRecvError::Empty) => return,
            Ok(r) => r.map(|s| s.signature).map_err(|e| e.to_string()),
            Err(oneshot::error::TryRecvError::Closed) => Err("the signing round ended".into()),
        };
        c.da_round = None;
        self.da.service.on_threshold_signature(height, result);
        self.after_da();
    }

    /// A member's check of a DA blob it is asked to sign when the committee's group key is
    /// the DA authority: the blob must extend this node's own log
    /// (`DaService::check_proposal`). `Err` carries the reason to refuse; requests
    /// other than a DA signing package, and packages that do not parse (the service refuses
    /// those), pass.
    fn check_proposal(&self, request: &CommitteeRequest) -> Result<(), String> {
        let CommitteeRequest::Sign(package) = request else {
            return Ok(());
        };
        let height = match package.slot {
            Slot::DaBlob(height) => height,
            Slot::Receipt(id) => {
                let Ok(message) = package.message() else {
                    return Ok(());
                };
                return self.check_receipt_proposal(&id, &message);
            }
        };
        // Only a committee whose group key is the DA authority signs this node's log.
        let committee_key = self.committee.as_ref().and_then(|c| c.service.group_key());
        if committee_key.is_none() || committee_key != self.da.service.authority() {
            return Ok(());
        }
        let Ok(message) = package.message() else {
            return Ok(());
        };
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64);
        self.da.service.check_proposal(height, &message, now_ms)
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
        let mut behaviour = self.swarm.behaviour_mut().committee.as_mut();
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
                    c.guard_writer.persist(seq, path, bytes);
                }
            }
        }
    }

    /// The guard writer made guard change `seq` durable (or failed to): held shares are
    /// released (or withheld).
    pub(super) fn committee_guard_written(&mut self, seq: u64, result: Result<(), String>) {
        if let Some(c) = self.committee.as_mut() {
            c.service.on_guard_persisted(seq, result, Instant::now());
        }
        self.committee_flush();
        self.committee_da_round();
    }

    /// `/dsdn/<net>/committee/1.0.0` events.
    pub(super) fn on_committee(
        &mut self,
        event: RpcEvent<CommitteeRequest, CommitteeResponse, u64>,
    ) {
        let now = Instant::now();
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
        self.committee_da_round();
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
        self.committee.as_ref().map(|c| c.service.status())
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
