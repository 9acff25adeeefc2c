//! [`Component`]: one protocol, one owner of its state (issue 11 §1).
//!
//! A component is a [`NetworkBehaviour`] in the style of rust-libp2p's `kad::Behaviour`: it
//! wraps the protocol's inner behaviour (a `request_response::Behaviour` for the
//! request/response protocols, `kad::Behaviour` for discovery), owns the protocol's state
//! and every one of its outstanding requests or queries, sees every event of the inner behaviour, and emits one
//! typed event ([`Protocol::Event`]) for the rest of the node. The event loop never sees a
//! request id or a response channel of a component: it only routes the typed events (to the
//! peer manager or a service) and calls the component's own methods.
//!
//! A protocol is written as a plain struct implementing [`Protocol`]: its
//! [`Protocol::on_event`] gets each inner event together with the inner behaviour (to answer
//! or send) and an [`Outbox`] for its typed events; the methods the node calls (send a
//! handshake, ask for PEX, …) are inherent methods of `Component<ThatProtocol>` in the
//! protocol's module. Such a struct is unit-tested by feeding it events, without a swarm.
//!
//! Adding a protocol: its module (the `Protocol` impl, its event type, its constructor), one
//! field in [`crate::net::behaviour::Behaviour`], one routing arm in the event loop, and its
//! configuration.

use std::collections::VecDeque;
use std::task::{Context, Poll};

use libp2p::core::transport::PortUse;
use libp2p::core::Endpoint;
use libp2p::swarm::{
    ConnectionDenied, ConnectionId, FromSwarm, NetworkBehaviour, THandler, THandlerInEvent,
    THandlerOutEvent, ToSwarm,
};
use libp2p::{Multiaddr, PeerId};

/// The inner behaviour of a protocol.
pub type Inner<P> = <P as Protocol>::Inner;

/// The inner behaviour's events of a protocol.
pub type InnerEvent<P> = <<P as Protocol>::Inner as NetworkBehaviour>::ToSwarm;

/// The typed events a protocol emits, in order.
pub type Outbox<P> = VecDeque<<P as Protocol>::Event>;

/// One protocol's state and logic; see the module documentation.
pub trait Protocol: Send + 'static {
    /// The wire side: a `request_response::Behaviour` of the protocol's codec (request
    /// and response types, size caps), or another libp2p behaviour (`kad::Behaviour` for
    /// discovery).
    type Inner: NetworkBehaviour + Send + 'static;
    /// What the protocol tells the rest of the node.
    type Event: Send + 'static;

    /// Handles one event of the inner behaviour: answers requests through `inner`, matches
    /// responses to its own outstanding requests, and pushes typed events to `out`.
    fn on_event(
        &mut self,
        event: InnerEvent<Self>,
        inner: &mut Inner<Self>,
        out: &mut Outbox<Self>,
    );

    /// Told of every swarm event (listen addresses, closed connections, …) before the
    /// inner behaviour is. Default: nothing.
    fn on_swarm_event(&mut self, _event: &FromSwarm<'_>) {}

    /// Pushes typed events the protocol queued outside [`Protocol::on_event`] (for instance
    /// in [`Protocol::on_swarm_event`]). Called each time the component is polled. Default:
    /// nothing.
    fn poll(&mut self, _out: &mut Outbox<Self>) {}
}

/// A protocol component: the protocol's inner behaviour and its state.
pub struct Component<P: Protocol> {
    /// The wire side.
    pub(crate) inner: Inner<P>,
    /// The protocol's state.
    pub(crate) state: P,
    /// Typed events not yet handed to the swarm.
    pub(crate) out: Outbox<P>,
}

impl<P: Protocol> Component<P> {
    /// A component of `state` over `inner`.
    pub fn new(inner: Inner<P>, state: P) -> Self {
        Self {
            inner,
            state,
            out: VecDeque::new(),
        }
    }

    /// The protocol's state (read-only, e.g. for status and tests).
    pub fn state(&self) -> &P {
        &self.state
    }
}

/// What an action of the inner behaviour becomes.
enum Split<E, A> {
    /// An event for the protocol.
    Event(E),
    /// Anything else, for the swarm as it is.
    Action(A),
}

/// Splits an inner action into the event (for [`Protocol::on_event`]) and everything else,
/// re-typed for the component. An action of a kind newer than this code is dropped with an
/// error log rather than guessed at (`ToSwarm` is non-exhaustive).
fn split<E, F, H>(action: ToSwarm<E, H>) -> Option<Split<E, ToSwarm<F, H>>> {
    Some(match action {
        ToSwarm::GenerateEvent(e) => Split::Event(e),
        ToSwarm::Dial { opts } => Split::Action(ToSwarm::Dial { opts }),
        ToSwarm::ListenOn { opts } => Split::Action(ToSwarm::ListenOn { opts }),
        ToSwarm::RemoveListener { id } => Split::Action(ToSwarm::RemoveListener { id }),
        ToSwarm::NotifyHandler {
            peer_id,
            handler,
            event,
        } => Split::Action(ToSwarm::NotifyHandler {
            peer_id,
            handler,
            event,
        }),
        ToSwarm::NewExternalAddrCandidate(a) => Split::Action(ToSwarm::NewExternalAddrCandidate(a)),
        ToSwarm::ExternalAddrConfirmed(a) => Split::Action(ToSwarm::ExternalAddrConfirmed(a)),
        ToSwarm::ExternalAddrExpired(a) => Split::Action(ToSwarm::ExternalAddrExpired(a)),
        ToSwarm::CloseConnection {
            peer_id,
            connection,
        } => Split::Action(ToSwarm::CloseConnection {
            peer_id,
            connection,
        }),
        ToSwarm::NewExternalAddrOfPeer { peer_id, address } => {
            Split::Action(ToSwarm::NewExternalAddrOfPeer { peer_id, address })
        }
        _ => {
            tracing::error!("protocol component: unknown swarm action dropped");
            return None;
        }
    })
}

impl<P: Protocol> NetworkBehaviour for Component<P> {
    type ConnectionHandler = THandler<Inner<P>>;
    type ToSwarm = P::Event;

    fn handle_pending_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<(), ConnectionDenied> {
        self.inner
            .handle_pending_inbound_connection(connection_id, local_addr, remote_addr)
    }

    fn handle_established_inbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        local_addr: &Multiaddr,
        remote_addr: &Multiaddr,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_inbound_connection(
            connection_id,
            peer,
            local_addr,
            remote_addr,
        )
    }

    fn handle_pending_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        maybe_peer: Option<PeerId>,
        addresses: &[Multiaddr],
        effective_role: Endpoint,
    ) -> Result<Vec<Multiaddr>, ConnectionDenied> {
        self.inner.handle_pending_outbound_connection(
            connection_id,
            maybe_peer,
            addresses,
            effective_role,
        )
    }

    fn handle_established_outbound_connection(
        &mut self,
        connection_id: ConnectionId,
        peer: PeerId,
        addr: &Multiaddr,
        role_override: Endpoint,
        port_use: PortUse,
    ) -> Result<THandler<Self>, ConnectionDenied> {
        self.inner.handle_established_outbound_connection(
            connection_id,
            peer,
            addr,
            role_override,
            port_use,
        )
    }

    fn on_swarm_event(&mut self, event: FromSwarm<'_>) {
        self.state.on_swarm_event(&event);
        self.inner.on_swarm_event(event);
    }

    fn on_connection_handler_event(
        &mut self,
        peer_id: PeerId,
        connection_id: ConnectionId,
        event: THandlerOutEvent<Self>,
    ) {
        self.inner
            .on_connection_handler_event(peer_id, connection_id, event);
    }

    fn poll(
        &mut self,
        cx: &mut Context<'_>,
    ) -> Poll<ToSwarm<Self::ToSwarm, THandlerInEvent<Self>>> {
        self.state.poll(&mut self.out);
        loop {
            if let Some(event) = self.out.pop_front() {
                return Poll::Ready(ToSwarm::GenerateEvent(event));
            }
            match self.inner.poll(cx) {
                Poll::Ready(action) => match split(action) {
                    Some(Split::Event(event)) => {
                        self.state.on_event(event, &mut self.inner, &mut self.out);
                    }
                    Some(Split::Action(action)) => return Poll::Ready(action),
                    None => {}
                },
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
