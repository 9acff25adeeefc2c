//! The DA backfill component (Tahap 14A; issue 5): `/dsdn/<network>/da-sync/1.0.0`,
//! [`SyncRequest`] `{from, count}` → [`SyncResponse`] `{tip, blobs}`.
//!
//! It owns every outstanding request of the protocol: the backfill requests the DA service
//! plans ([`Component::backfill`], answered by [`DaSyncEvent::Response`]), the ranges a
//! caller of [`crate::NodeHandle::da_range`] asked for ([`Component::fetch_range`], verified
//! here and handed back on the caller's channel), and the inbound requests waiting for the
//! DA service's answer ([`DaSyncEvent::Request`], answered with [`Component::respond`]).

use std::collections::HashMap;

use dsdn_protocols::da::sync::{SyncRequest, SyncResponse};
use dsdn_protocols::da::{DaBlob, DaError};
use dsdn_protocols::NetworkId;
use libp2p::request_response::{self, Message, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::component::{Component, Inner, InnerEvent, Outbox, Protocol};
use crate::codec::CborCodec;
use crate::handle::RangeError;

/// Names an inbound request until [`Component::respond`] answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SyncReply(u64);

/// Inbound requests waiting for an answer at most (the inner behaviour allows 8 streams
/// per connection; the event loop answers each at once, so this only bounds a bug).
const MAX_WAITING: usize = 4096;

/// What the backfill protocol tells the rest of the node.
#[derive(Debug)]
pub enum DaSyncEvent {
    /// A peer asks for a range of the log: answer with [`Component::respond`].
    Request {
        /// Who asks (its handshake may not be verified yet: the log is public).
        peer: PeerId,
        /// The range.
        request: SyncRequest,
        /// What to answer with.
        reply: SyncReply,
    },
    /// The answer to a [`Component::backfill`] request: the response, or why there is none.
    Response {
        /// The peer asked.
        peer: PeerId,
        /// The request it answers.
        request: SyncRequest,
        /// The response (unchecked: the DA service verifies it), or the failure.
        response: Result<SyncResponse, String>,
    },
}

/// A range asked for by a caller of [`crate::NodeHandle::da_range`].
struct RangeFetch {
    request: SyncRequest,
    tx: oneshot::Sender<Result<Vec<DaBlob>, RangeError>>,
}

/// The backfill protocol's state; see the module documentation.
pub struct DaSyncProtocol {
    network: NetworkId,
    /// The DA authority that signs every blob, to verify fetched ranges.
    authority: Option<[u8; 32]>,
    backfill: HashMap<OutboundRequestId, (PeerId, SyncRequest)>,
    ranges: HashMap<OutboundRequestId, RangeFetch>,
    waiting: HashMap<SyncReply, ResponseChannel<SyncResponse>>,
    next_reply: u64,
}

impl DaSyncProtocol {
    /// The state of a node of `network` whose blobs are signed by `authority`.
    pub fn new(network: NetworkId, authority: Option<[u8; 32]>) -> Self {
        Self {
            network,
            authority,
            backfill: HashMap::new(),
            ranges: HashMap::new(),
            waiting: HashMap::new(),
            next_reply: 0,
        }
    }

    /// Backfill requests in flight.
    pub fn backfill_in_flight(&self) -> usize {
        self.backfill.len()
    }

    /// Checks a fetched range: every blob verified, heights consecutive from the requested
    /// one, each linked to the one before.
    fn verify_range(
        &self,
        request: &SyncRequest,
        response: SyncResponse,
    ) -> Result<Vec<DaBlob>, RangeError> {
        let authority = self.authority.ok_or(RangeError::NoAuthority)?;
        let response = response
            .validated(request)
            .map_err(|e| RangeError::Invalid(e.to_string()))?;
        let mut out: Vec<DaBlob> = Vec::with_capacity(response.blobs.len());
        let mut prev: Option<[u8; 32]> = None;
        for (i, bytes) in response.blobs.iter().enumerate() {
            let blob = DaBlob::decode_verified(bytes, &self.network, &authority)
                .map_err(|e: DaError| RangeError::Invalid(e.to_string()))?;
            if blob.height() != request.from + i as u64 {
                return Err(RangeError::Invalid(format!(
                    "expected height {}, got {}",
                    request.from + i as u64,
                    blob.height()
                )));
            }
            if prev.is_some_and(|p| p != blob.prev_hash()) {
                return Err(RangeError::Invalid(format!(
                    "blob {} does not link to the one before it",
                    blob.height()
                )));
            }
            prev = Some(blob.hash());
            out.push(blob.into_blob());
        }
        Ok(out)
    }
}

impl Protocol for DaSyncProtocol {
    type Codec = CborCodec<SyncRequest, SyncResponse>;
    type Event = DaSyncEvent;

    fn on_event(
        &mut self,
        event: InnerEvent<Self>,
        _inner: &mut Inner<Self>,
        out: &mut Outbox<Self>,
    ) {
        match event {
            request_response::Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                if self.waiting.len() >= MAX_WAITING {
                    self.waiting.retain(|_, c| c.is_open());
                    if self.waiting.len() >= MAX_WAITING {
                        tracing::warn!(%peer, "too many unanswered DA sync requests: dropped");
                        return;
                    }
                }
                self.next_reply += 1;
                let reply = SyncReply(self.next_reply);
                self.waiting.insert(reply, channel);
                out.push_back(DaSyncEvent::Request {
                    peer,
                    request,
                    reply,
                });
            }
            request_response::Event::Message {
                peer,
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some(fetch) = self.ranges.remove(&request_id) {
                    let result = self.verify_range(&fetch.request, response);
                    let _ = fetch.tx.send(result);
                } else if let Some((_, request)) = self.backfill.remove(&request_id) {
                    out.push_back(DaSyncEvent::Response {
                        peer,
                        request,
                        response: Ok(response),
                    });
                }
            }
            request_response::Event::OutboundFailure {
                peer,
                request_id,
                error,
                ..
            } => {
                if let Some(fetch) = self.ranges.remove(&request_id) {
                    let _ = fetch.tx.send(Err(RangeError::Peer(error.to_string())));
                } else if let Some((_, request)) = self.backfill.remove(&request_id) {
                    out.push_back(DaSyncEvent::Response {
                        peer,
                        request,
                        response: Err(error.to_string()),
                    });
                }
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }
}

impl Component<DaSyncProtocol> {
    /// Asks `peer` for a range the DA service planned; the answer comes back as
    /// [`DaSyncEvent::Response`].
    pub fn backfill(&mut self, peer: PeerId, request: SyncRequest) {
        let id = self.inner.send_request(&peer, request);
        self.state.backfill.insert(id, (peer, request));
    }

    /// Asks `peer` for a range on behalf of [`crate::NodeHandle::da_range`]: the verified
    /// blobs (or the error) are sent on `tx`.
    pub fn fetch_range(
        &mut self,
        peer: PeerId,
        request: SyncRequest,
        tx: oneshot::Sender<Result<Vec<DaBlob>, RangeError>>,
    ) {
        let id = self.inner.send_request(&peer, request);
        self.state.ranges.insert(id, RangeFetch { request, tx });
    }

    /// Answers the inbound request `reply` (a no-op if its connection closed meanwhile).
    pub fn respond(&mut self, reply: SyncReply, response: SyncResponse) {
        if let Some(channel) = self.state.waiting.remove(&reply) {
            let _ = self.inner.send_response(channel, response);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use libp2p::request_response::{OutboundFailure, ProtocolSupport};
    use libp2p::swarm::ConnectionId;

    use super::*;
    use crate::behaviour::da_sync_behaviour;

    fn component() -> Component<DaSyncProtocol> {
        let net = NetworkId::new("devnet").expect("network id");
        let inner = da_sync_behaviour(&net, Duration::from_secs(5), ProtocolSupport::Full)
            .expect("protocol name");
        Component::new(inner, DaSyncProtocol::new(net, Some([7; 32])))
    }

    fn response_to(c: &mut Component<DaSyncProtocol>, peer: PeerId, id: OutboundRequestId) {
        let event = request_response::Event::Message {
            peer,
            connection_id: ConnectionId::new_unchecked(1),
            message: Message::Response {
                request_id: id,
                response: SyncResponse {
                    tip: 9,
                    blobs: Vec::new(),
                },
            },
        };
        c.state.on_event(event, &mut c.inner, &mut c.out);
    }

    #[test]
    fn a_backfill_answer_is_matched_to_its_request_once() {
        let mut c = component();
        let peer = PeerId::random();
        let request = SyncRequest { from: 3, count: 5 };
        c.backfill(peer, request);
        let id = *c.state.backfill.keys().next().expect("outstanding");
        response_to(&mut c, peer, id);
        match c.out.pop_front() {
            Some(DaSyncEvent::Response {
                peer: p,
                request: r,
                response: Ok(resp),
            }) => {
                assert_eq!((p, r, resp.tip), (peer, request, 9));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.state.backfill_in_flight(), 0);
        // A second answer with the same id (or an unknown one) is not ours: ignored.
        response_to(&mut c, peer, id);
        assert!(c.out.is_empty());
    }

    #[test]
    fn a_range_fetch_is_answered_on_its_channel_not_as_an_event() {
        let mut c = component();
        let peer = PeerId::random();
        let (tx, mut rx) = oneshot::channel();
        c.fetch_range(peer, SyncRequest { from: 1, count: 2 }, tx);
        let id = *c.state.ranges.keys().next().expect("outstanding");
        let event = request_response::Event::OutboundFailure {
            peer,
            connection_id: ConnectionId::new_unchecked(1),
            request_id: id,
            error: OutboundFailure::Timeout,
        };
        c.state.on_event(event, &mut c.inner, &mut c.out);
        assert!(c.out.is_empty());
        assert!(matches!(rx.try_recv(), Ok(Err(RangeError::Peer(_)))));
        assert!(c.state.ranges.is_empty());
    }
}
