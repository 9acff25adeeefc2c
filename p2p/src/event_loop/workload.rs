//! Workloads and receipts in the event loop: routes `/dsdn/<net>/workload/1.0.0` events,
//! receipts gossip, the handle's workload commands and finished executions and signing
//! rounds into the [`WorkloadService`], and carries out its [`WorkloadAction`]s.

use std::time::Instant;

use dsdn_protocols::committee::GroupKey;
use dsdn_protocols::da::{Bytes32, DaEvent};
use dsdn_protocols::receipt::{GossipReceipt, ReceiptError, ThresholdReceipt};
use dsdn_protocols::workload::{WorkloadRequest, WorkloadResponse, WorkloadSubmission};
use libp2p::gossipsub::{self, IdentTopic};
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::EventLoop;
use crate::net::rpc::RpcEvent;
use crate::workload::{
    HeldReceipt, Internal, ReceiptCheck, WorkloadAction, WorkloadError, WorkloadResult,
    WorkloadService, WorkloadTag,
};

/// The workload parts of the event loop: the service and the receipts topic.
pub(crate) struct WorkloadLoop {
    /// Workloads, jobs and receipts.
    pub(super) service: WorkloadService,
    /// The receipts gossip topic, `dsdn/<net>/receipts/1`.
    topic: IdentTopic,
}

impl WorkloadLoop {
    /// The workload parts of a node gossiping receipts on `topic`.
    pub(crate) fn new(service: WorkloadService, topic: IdentTopic) -> Self {
        Self { service, topic }
    }
}

impl EventLoop {
    /// What the workload service needs of the committee and the DA log to judge a
    /// receipt: the committee's group key on a member holding a share, else the DA
    /// authority in force (the genesis `da_authority` or the group key of the epoch recorded
    /// in the DA log); and whether this node seals DA blobs.
    fn receipt_check(&self) -> ReceiptCheck {
        ReceiptCheck {
            group_key: self
                .committee
                .as_ref()
                .and_then(|c| c.group_key())
                .or(self.da.service.current_key())
                .map(GroupKey),
            handoff_key: self.da.service.handoff_receipt_key().map(GroupKey),
            committee: self.committee.as_ref().and_then(|c| c.receipt_context()),
            record: self.cfg.subscribe_da && self.da.service.is_authority(),
        }
    }

    /// `NodeHandle::submit_workload`.
    pub(super) fn submit_workload(
        &mut self,
        submission: WorkloadSubmission,
        optimistic: Option<bool>,
        reply: oneshot::Sender<Result<WorkloadResult, WorkloadError>>,
    ) {
        let committee = self.committee.as_ref().and_then(|c| c.receipt_context());
        let peers = &self.swarm.behaviour().peer_manager;
        self.workload
            .service
            .submit(submission, optimistic, reply, committee, peers);
        self.after_workload();
    }

    /// `/dsdn/<net>/workload/1.0.0` events.
    pub(super) fn on_workload(
        &mut self,
        event: RpcEvent<WorkloadRequest, WorkloadResponse, WorkloadTag>,
    ) {
        match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => {
                let peers = &self.swarm.behaviour().peer_manager;
                self.workload
                    .service
                    .on_request(peer, request, reply, peers, Instant::now());
            }
            RpcEvent::Response {
                peer,
                tag,
                response,
            } => self.workload.service.on_response(peer, tag, response),
        }
        self.after_workload();
    }

    /// Results of spawned executions and signing rounds.
    pub(super) fn on_workload_internal(&mut self, event: Internal) {
        let check = self.receipt_check();
        self.workload
            .service
            .on_internal(event, check, Instant::now());
        self.after_workload();
    }

    /// Whether `topic` is the receipts topic.
    pub(super) fn is_receipts_topic(&self, topic: &gossipsub::TopicHash) -> bool {
        *topic == self.workload.topic.hash()
    }

    /// A gossipsub message on the receipts topic.
    pub(super) fn on_receipt_gossip(
        &mut self,
        source: PeerId,
        id: &gossipsub::MessageId,
        data: &[u8],
    ) {
        let check = self.receipt_check();
        self.workload
            .service
            .on_receipt_gossip(source, id.clone(), data, check);
        self.after_workload();
    }

    /// `NodeHandle::publish_receipt`.
    pub(super) fn publish_receipt(&mut self, receipt: GossipReceipt) -> Result<(), ReceiptError> {
        let check = self.receipt_check();
        let result = self.workload.service.publish_receipt(receipt, check);
        self.after_workload();
        result
    }

    /// `NodeHandle::receipt`: a threshold receipt this node accepted recently or the DA log
    /// recorded, else an optimistic receipt it holds.
    pub(super) fn receipt(&self, id: &Bytes32) -> Option<HeldReceipt> {
        match self.workload.service.recent_receipt(id) {
            Some(HeldReceipt::Threshold(t)) => Some(HeldReceipt::Threshold(t)),
            held => self
                .da
                .service
                .recorded_receipt(id)
                .map(HeldReceipt::Threshold)
                .or(held),
        }
    }

    /// The receipts `query` selects: by id prefix among the recent ones and those recorded
    /// in the DA log (at most 2), or the most recent ones.
    pub(super) fn receipts(&self, query: &crate::workload::ReceiptQuery) -> Vec<HeldReceipt> {
        use crate::workload::{prefix_range, ReceiptQuery};
        match query {
            ReceiptQuery::Recent(n) => self
                .workload
                .service
                .recent_receipts()
                .take(*n)
                .cloned()
                .collect(),
            ReceiptQuery::Prefix(p) => {
                let Some((lo, hi)) = prefix_range(p) else {
                    return Vec::new();
                };
                let mut ids: Vec<Bytes32> = self
                    .workload
                    .service
                    .recent_receipts()
                    .map(HeldReceipt::receipt_id)
                    .filter(|id| *id >= lo && *id <= hi)
                    .collect();
                ids.extend(
                    self.da
                        .service
                        .state()
                        .receipt_ids(lo, hi, 2)
                        .unwrap_or_default(),
                );
                ids.sort_unstable();
                ids.dedup();
                ids.iter()
                    .take(2)
                    .filter_map(|id| self.receipt(id))
                    .collect()
            }
        }
    }

    /// Carries out the workload service's actions until it queues no more.
    fn after_workload(&mut self) {
        loop {
            let actions = self.workload.service.take_actions();
            if actions.is_empty() {
                return;
            }
            for action in actions {
                self.workload_action(action);
            }
        }
    }

    fn workload_action(&mut self, action: WorkloadAction) {
        match action {
            WorkloadAction::Send(peer, request, tag) => {
                if let Some(b) = self.swarm.behaviour_mut().workload.as_mut() {
                    b.send(peer, request, tag);
                }
            }
            WorkloadAction::Respond(reply, response) => {
                if let Some(b) = self.swarm.behaviour_mut().workload.as_mut() {
                    b.respond(reply, response);
                }
            }
            WorkloadAction::Gossip(bytes) => {
                let topic = self.workload.topic.clone();
                if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                    if let Err(e) = g.publish(topic, bytes) {
                        tracing::debug!(error = %e, "receipt not gossiped");
                    }
                }
            }
            WorkloadAction::Verdict(id, source, verdict) => {
                if let Some(g) = self.swarm.behaviour_mut().gossipsub.as_mut() {
                    g.report_message_validation_result(&id, &source, verdict);
                }
            }
            WorkloadAction::Penalize(peer, reason) => self
                .swarm
                .behaviour_mut()
                .peer_manager
                .penalize(peer, reason),
            WorkloadAction::ThresholdSign {
                id,
                slot,
                message,
                committee,
            } => match self.committee.as_mut() {
                // The epoch service in force is not the one the message names (a switch
                // since the submission was taken): not signed here; the submission signs
                // again under the epoch in force (`workload/service/resign.rs`).
                Some(c) if c.receipt_context() != Some(committee) => {
                    let check = self.receipt_check();
                    let e = crate::committee::ThresholdSignError::Busy(
                        "the committee epoch in force changed".into(),
                    );
                    self.workload.service.on_internal(
                        Internal::Signed(id, Err(e)),
                        check,
                        Instant::now(),
                    );
                }
                Some(c) => {
                    let tx = self.workload.service.signature_sender(id);
                    c.start_sign(slot, message, tx, Instant::now());
                    self.committee_flush();
                }
                None => self.workload.service.signing_unavailable(id),
            },
            WorkloadAction::RecordReceipt(receipt) => self.record_receipt(*receipt),
        }
    }

    /// Records an accepted receipt in the DA log (a `ReceiptRecorded` event) unless the
    /// log holds it already.
    fn record_receipt(&mut self, receipt: ThresholdReceipt) {
        let id = receipt.receipt_id();
        if matches!(self.da.service.state().receipt(&id), Ok(Some(_))) {
            return;
        }
        // The result arrives once sealed; nobody waits for it (the receipt is already
        // gossiped, the log is its durable record), but a refusal is reported.
        let (tx, rx) = oneshot::channel();
        tokio::spawn(async move {
            if let Ok(Err(e)) = rx.await {
                tracing::warn!(receipt = %hex::encode(id.0), error = %e, "receipt not recorded in the DA log");
            }
        });
        self.da
            .service
            .publish(vec![DaEvent::receipt_recorded(receipt)], tx, Instant::now());
        self.da_poll();
    }
}
