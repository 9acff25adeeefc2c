//! The committee in the event loop: `/dsdn/<net>/committee/1.0.0` requests in and out, the
//! [`crate::committee::CommitteeService`] timers and the handle's committee commands.

use std::collections::HashMap;
use std::time::Instant;

use dsdn_protocols::committee::{CommitteeRequest, CommitteeResponse, Slot};
use libp2p::request_response::{self, Message, OutboundRequestId};
use tokio::sync::oneshot;

use super::EventLoop;
use crate::committee::{CommitteeService, CommitteeStatus, DkgRunError, ThresholdSignError};

/// The committee state of the event loop: the service and our requests in flight.
pub(crate) struct CommitteeLoop {
    service: CommitteeService,
    requests: HashMap<OutboundRequestId, u64>,
}

impl CommitteeLoop {
    pub(crate) fn new(service: CommitteeService) -> Self {
        Self {
            service,
            requests: HashMap::new(),
        }
    }

    /// The service's next timer.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.service.next_deadline()
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

    /// Sends the service's queued requests.
    fn committee_flush(&mut self) {
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        let outgoing = c.service.take_outgoing();
        let Some(behaviour) = self.swarm.behaviour_mut().committee.as_mut() else {
            return;
        };
        for o in outgoing {
            let id = behaviour.send_request(&o.peer, o.request);
            c.requests.insert(id, o.tag);
        }
    }

    /// `/dsdn/<net>/committee/1.0.0` events.
    pub(super) fn on_committee(
        &mut self,
        event: request_response::Event<CommitteeRequest, CommitteeResponse>,
    ) {
        let now = Instant::now();
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        match event {
            request_response::Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                // The PeerId is authenticated by noise; membership is decided by it alone.
                let response = c.service.on_request(peer, request, now);
                if let Some(b) = self.swarm.behaviour_mut().committee.as_mut() {
                    let _ = b.send_response(channel, response);
                }
            }
            request_response::Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(tag) = c.requests.remove(&request_id) {
                    c.service.on_response(tag, response, now);
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some(tag) = c.requests.remove(&request_id) {
                    c.service.on_failure(tag, &error.to_string(), now);
                }
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
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
        self.committee.as_ref().map(|c| c.service.status())
    }

    /// `NodeHandle::threshold_sign`.
    pub(super) fn threshold_sign(
        &mut self,
        slot: Slot,
        message: Vec<u8>,
        tx: oneshot::Sender<Result<[u8; 64], ThresholdSignError>>,
    ) {
        let Some(c) = self.committee.as_mut() else {
            let _ = tx.send(Err(ThresholdSignError::NotConfigured));
            return;
        };
        c.service.start_sign(slot, message, tx, Instant::now());
        self.committee_flush();
    }
}
