//! [`Rpc`]: the state of a request/response protocol whose requests are answered by a node
//! service (the DA log, the committee, workloads) rather than by the protocol itself.
//!
//! The component owns both kinds of outstanding requests:
//!
//! * **outbound**: [`Component::send`] sends a request with a tag of the service's choice
//!   (what the request is for); its response, or why there is none, comes back as
//!   [`RpcEvent::Response`] with that tag, exactly once. [`Component::outstanding`] lists
//!   the requests in flight (e.g. "did we ask this peer to run this module?").
//! * **inbound**: each request becomes [`RpcEvent::Request`] with a [`Reply`] handle; the
//!   service answers it with [`Component::respond`], at once or later (a registration is
//!   answered once sealed). A handle whose connection closed is dropped when the table is
//!   full; past [`MAX_WAITING`] open handles new requests are dropped (the peer's request
//!   fails on its side), so a service that forgets to answer cannot grow memory.
//!
//! The service sees tags and reply handles, never a request id or a response channel.

use std::collections::HashMap;

use libp2p::request_response::{self, Codec, Message, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;

use super::component::{Component, Inner, InnerEvent, Outbox, Protocol};

/// Inbound requests waiting for an answer at most, per protocol.
pub const MAX_WAITING: usize = 4096;

/// Names an inbound request until [`Component::respond`] answers it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Reply(u64);

#[cfg(test)]
impl Reply {
    /// A handle numbered `n`, for services driven by hand in tests.
    pub(crate) fn for_test(n: u64) -> Self {
        Self(n)
    }
}

/// What an [`Rpc`] protocol tells its service.
#[derive(Debug)]
pub enum RpcEvent<Req, Resp, T> {
    /// A peer's request: answer it with [`Component::respond`].
    Request {
        /// The requester (authenticated by noise).
        peer: PeerId,
        /// The request (decoded under the codec's size cap).
        request: Req,
        /// What to answer with.
        reply: Reply,
    },
    /// The response to a request sent with [`Component::send`], or why there is none
    /// (timeout, connection closed, unsupported protocol, I/O or decoding error).
    Response {
        /// The peer asked.
        peer: PeerId,
        /// The tag given to [`Component::send`].
        tag: T,
        /// The response, or the failure as text.
        response: Result<Resp, String>,
    },
}

/// The request/response state of a service protocol; see the module documentation.
pub struct Rpc<C: Codec, T> {
    outstanding: HashMap<OutboundRequestId, (PeerId, T)>,
    waiting: HashMap<Reply, ResponseChannel<C::Response>>,
    next_reply: u64,
}

impl<C: Codec, T> Default for Rpc<C, T> {
    fn default() -> Self {
        Self {
            outstanding: HashMap::new(),
            waiting: HashMap::new(),
            next_reply: 0,
        }
    }
}

impl<C: Codec, T> Rpc<C, T> {
    /// Requests in flight.
    pub fn in_flight(&self) -> usize {
        self.outstanding.len()
    }

    /// Inbound requests waiting for the service's answer.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

impl<C, T> Protocol for Rpc<C, T>
where
    C: Codec + Clone + Send + 'static,
    C::Request: Send,
    C::Response: Send,
    T: Send + 'static,
{
    type Inner = request_response::Behaviour<C>;
    type Event = RpcEvent<C::Request, C::Response, T>;

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
                        tracing::warn!(%peer, "too many unanswered requests: this one is dropped");
                        return;
                    }
                }
                self.next_reply += 1;
                let reply = Reply(self.next_reply);
                self.waiting.insert(reply, channel);
                out.push_back(RpcEvent::Request {
                    peer,
                    request,
                    reply,
                });
            }
            request_response::Event::Message {
                message:
                    Message::Response {
                        request_id,
                        response,
                    },
                ..
            } => {
                if let Some((peer, tag)) = self.outstanding.remove(&request_id) {
                    out.push_back(RpcEvent::Response {
                        peer,
                        tag,
                        response: Ok(response),
                    });
                }
            }
            request_response::Event::OutboundFailure {
                request_id, error, ..
            } => {
                if let Some((peer, tag)) = self.outstanding.remove(&request_id) {
                    out.push_back(RpcEvent::Response {
                        peer,
                        tag,
                        response: Err(error.to_string()),
                    });
                }
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }
}

impl<C, T> Component<Rpc<C, T>>
where
    C: Codec + Clone + Send + 'static,
    C::Request: Send,
    C::Response: Send,
    T: Send + 'static,
{
    /// Sends `request` to `peer`; its response comes back as [`RpcEvent::Response`] with
    /// `tag`.
    pub fn send(&mut self, peer: PeerId, request: C::Request, tag: T) {
        let id = self.inner.send_request(&peer, request);
        self.state.outstanding.insert(id, (peer, tag));
    }

    /// Answers the inbound request `reply` (a no-op if its connection closed meanwhile or
    /// it was answered already).
    pub fn respond(&mut self, reply: Reply, response: C::Response) {
        if let Some(channel) = self.state.waiting.remove(&reply) {
            let _ = self.inner.send_response(channel, response);
        }
    }

    /// The requests in flight: the peer asked and the tag.
    pub fn outstanding(&self) -> impl Iterator<Item = (&PeerId, &T)> {
        self.state.outstanding.values().map(|(p, t)| (p, t))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use dsdn_protocols::da::sync::{SyncRequest, SyncResponse};
    use dsdn_protocols::NetworkId;
    use libp2p::request_response::{OutboundFailure, ProtocolSupport};
    use libp2p::swarm::ConnectionId;

    use super::*;
    use crate::codec::CborCodec;
    use crate::net::behaviour::da_sync_behaviour;

    type Sync = Rpc<CborCodec<SyncRequest, SyncResponse>, &'static str>;

    fn component() -> Component<Sync> {
        let net = NetworkId::new("devnet").expect("network id");
        let inner = da_sync_behaviour(&net, Duration::from_secs(5), ProtocolSupport::Full)
            .expect("protocol name");
        Component::new(inner, Sync::default())
    }

    fn answer(c: &mut Component<Sync>, peer: PeerId, id: OutboundRequestId) {
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
    fn a_response_comes_back_once_with_its_tag() {
        let mut c = component();
        let peer = PeerId::random();
        c.send(peer, SyncRequest { from: 3, count: 5 }, "backfill");
        assert_eq!(c.outstanding().collect::<Vec<_>>(), [(&peer, &"backfill")]);
        let id = *c.state.outstanding.keys().next().expect("outstanding");
        answer(&mut c, peer, id);
        match c.out.pop_front() {
            Some(RpcEvent::Response {
                peer: p,
                tag,
                response: Ok(r),
            }) => assert_eq!((p, tag, r.tip), (peer, "backfill", 9)),
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(c.state.in_flight(), 0);
        // A second answer with the same id is not ours any more: ignored.
        answer(&mut c, peer, id);
        assert!(c.out.is_empty());
    }

    #[test]
    fn a_failure_comes_back_with_its_tag() {
        let mut c = component();
        let peer = PeerId::random();
        c.send(peer, SyncRequest { from: 1, count: 1 }, "range");
        let id = *c.state.outstanding.keys().next().expect("outstanding");
        let event = request_response::Event::OutboundFailure {
            peer,
            connection_id: ConnectionId::new_unchecked(1),
            request_id: id,
            error: OutboundFailure::Timeout,
        };
        c.state.on_event(event, &mut c.inner, &mut c.out);
        assert!(matches!(
            c.out.pop_front(),
            Some(RpcEvent::Response {
                tag: "range",
                response: Err(_),
                ..
            })
        ));
        assert!(c.out.is_empty());
    }
}
