//! The storage-node registration component (Tahap 14A §2):
//! `/dsdn/<network>/da-register/1.0.0`, [`RegisterRequest`] `{zone, capacity_bytes, class}`
//! → `Registered {height}` | `Refused {reason}`.
//!
//! It owns the protocol's outstanding requests: a storage node's own registration
//! ([`Component::register`], answered by [`RegisterEvent::Answer`]) and the inbound requests
//! the DA service answers once their `NodeRegistered` event is sealed and durable
//! ([`RegisterEvent::Request`], answered later with [`Component::respond`]). Inbound requests
//! are limited to one per peer per 5 s (refused here with a reason).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dsdn_protocols::da::register::{RegisterRequest, RegisterResponse};
use dsdn_protocols::pex::PexRateLimiter;
use libp2p::request_response::{self, Message, OutboundRequestId, ResponseChannel};
use libp2p::PeerId;

use super::component::{Component, Inner, InnerEvent, Outbox, Protocol};
use crate::codec::CborCodec;

/// Names an inbound registration until [`Component::respond`] answers it (the DA service
/// holds it while the registration waits to be sealed).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct RegisterReply(u64);

/// Registrations waiting for their answer at most; past that, the ones whose connection
/// closed are dropped and, if still full, new requests are refused.
const MAX_WAITING: usize = 4096;

/// What the registration protocol tells the rest of the node.
#[derive(Debug)]
pub enum RegisterEvent {
    /// A storage node asks to be registered: the DA service answers it, through
    /// [`Component::respond`], once the registration is sealed (or refused).
    Request {
        /// The node (authenticated by noise).
        peer: PeerId,
        /// Its zone, capacity and class.
        request: RegisterRequest,
        /// What to answer with.
        reply: RegisterReply,
    },
    /// The answer to this node's own registration, or why there is none.
    Answer {
        /// The coordinator asked.
        peer: PeerId,
        /// Its answer, or the failure (timeout, I/O, unsupported protocol).
        response: Result<RegisterResponse, String>,
    },
}

/// The registration protocol's state; see the module documentation.
pub struct DaRegisterProtocol {
    /// Inbound requests of one peer: at most one per 5 s.
    limiter: PexRateLimiter<PeerId>,
    outstanding: HashMap<OutboundRequestId, PeerId>,
    waiting: HashMap<RegisterReply, ResponseChannel<RegisterResponse>>,
    next_reply: u64,
}

impl Default for DaRegisterProtocol {
    fn default() -> Self {
        Self {
            limiter: PexRateLimiter::new(Duration::from_secs(5)),
            outstanding: HashMap::new(),
            waiting: HashMap::new(),
            next_reply: 0,
        }
    }
}

impl DaRegisterProtocol {
    /// Inbound registrations waiting for the DA service's answer.
    pub fn waiting(&self) -> usize {
        self.waiting.len()
    }
}

fn refused(reason: &str) -> RegisterResponse {
    RegisterResponse::Refused {
        reason: reason.into(),
    }
}

impl Protocol for DaRegisterProtocol {
    type Codec = CborCodec<RegisterRequest, RegisterResponse>;
    type Event = RegisterEvent;

    fn on_event(
        &mut self,
        event: InnerEvent<Self>,
        inner: &mut Inner<Self>,
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
                // Not gated on this node's side of the handshake: the requester verified us
                // first and the protocol id is network-scoped; the PeerId is authenticated
                // by noise.
                if !self.limiter.allow(&peer, Instant::now()) {
                    let _ = inner.send_response(channel, refused("too many registration requests"));
                    return;
                }
                if self.waiting.len() >= MAX_WAITING {
                    self.waiting.retain(|_, c| c.is_open());
                    if self.waiting.len() >= MAX_WAITING {
                        let _ =
                            inner.send_response(channel, refused("too many registrations waiting"));
                        return;
                    }
                }
                self.next_reply += 1;
                let reply = RegisterReply(self.next_reply);
                self.waiting.insert(reply, channel);
                out.push_back(RegisterEvent::Request {
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
                if self.outstanding.remove(&request_id).is_some() {
                    out.push_back(RegisterEvent::Answer {
                        peer,
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
                if self.outstanding.remove(&request_id).is_some() {
                    out.push_back(RegisterEvent::Answer {
                        peer,
                        response: Err(error.to_string()),
                    });
                }
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }
}

impl Component<DaRegisterProtocol> {
    /// Sends this storage node's registration to `peer` (a coordinator); the answer comes
    /// back as [`RegisterEvent::Answer`].
    pub fn register(&mut self, peer: PeerId, request: RegisterRequest) {
        let id = self.inner.send_request(&peer, request);
        self.state.outstanding.insert(id, peer);
    }

    /// Answers the inbound registration `reply` (a no-op if its connection closed).
    pub fn respond(&mut self, reply: RegisterReply, response: RegisterResponse) {
        if let Some(channel) = self.state.waiting.remove(&reply) {
            let _ = self.inner.send_response(channel, response);
        }
    }

    /// The last connection to `peer` closed: its rate limit is forgotten.
    pub fn peer_disconnected(&mut self, peer: &PeerId) {
        self.state.limiter.forget(peer);
    }
}
