//! Forwarding on a coordinator that runs the committee protocol but does not seal (issue 13
//! §1): a follower or a retired member takes `POST /v1/da/events` like a member
//! (`DaService::set_forwarding`), keeps the events in its pool as own events and sends them
//! on `/dsdn/<net>/da-rotation/1.0.0` (`ForwardAt`, the message a member forwards with) to
//! the proposer of the height it decides, moving to the next round's proposer while they
//! wait ([`crate::committee::rotation::forward::ForwardPlan`]). The members take forwards
//! from coordinators the selection admits (`event_loop/rotation.rs`). Its publishers are
//! answered when a blob holding their events is applied here, durable and confirmed, as on
//! a member; a follower selected into a committee keeps its pending events and goes on
//! with the member path (its proposer rotation forwards or proposes them).

use std::time::Instant;

use dsdn_protocols::committee::rotation::{RotationConfig, RotationRequest, MAX_FORWARD_EVENTS};
use dsdn_protocols::committee::MAX_SIGNED_MESSAGE_BYTES;
use libp2p::PeerId;

use super::EventLoop;
use crate::committee::rotation::forward::forward_target;
use crate::committee::{member_id, member_peer};

impl EventLoop {
    /// Sets whether this coordinator forwards: it runs the committee protocol, its proposer
    /// rotation does not run (a follower, a retired member, a member whose rotation is not
    /// started), the DA log has an authority and the selection rule admits this node (the
    /// members would refuse its forwards otherwise; the rule is set once its epoch rotation
    /// runs). The plan restarts whenever forwarding stops.
    pub(super) fn forward_sync(&mut self) {
        let me = *self.swarm.local_peer_id();
        let forwarding = self
            .committee
            .as_ref()
            .is_some_and(|c| c.rotation.is_none())
            && self.da.service.current_key().is_some()
            && self.da.service.admits_forwarder(&me);
        self.da.service.set_forwarding(forwarding);
        if !self.da.service.forwards() {
            if let Some(c) = self.committee.as_mut() {
                c.forward.reset();
            }
        }
    }

    /// The forward plan's next timer, while this node forwards and events wait.
    pub(super) fn forward_deadline(&self) -> Option<Instant> {
        if !self.da.service.forwards() {
            return None;
        }
        self.committee.as_ref()?.forward.next_deadline()
    }

    /// Sends the pending own events to the member the plan names for the next height (its
    /// proposer of the estimated round), when due.
    pub(super) fn forward_pending(&mut self) {
        if !self.da.service.forwards() {
            return;
        }
        let now = Instant::now();
        let me = *self.swarm.local_peer_id();
        let height = self.da.service.state().height().saturating_add(1);
        let (generation, events) = self
            .da
            .service
            .own_pending(MAX_FORWARD_EVENTS, MAX_SIGNED_MESSAGE_BYTES);
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        let Some(round) = c.forward.due(height, generation, !events.is_empty(), now) else {
            return;
        };
        let target = RotationConfig::new(
            c.service.committee_config(),
            c.service.node_config().round_timeout,
        )
        .ok()
        .and_then(|config| {
            let me = member_id(&me).ok()?;
            forward_target(&config, &me, height, round).and_then(member_peer)
        });
        let Some(peer) = target else {
            tracing::debug!(height, round, "no committee member to forward DA events to");
            return;
        };
        tracing::debug!(%peer, height, round, events = events.len(), "forwarding DA events posted to this coordinator (not sealing)");
        if let Some(b) = self.swarm.behaviour_mut().da_rotation.as_mut() {
            b.send(peer, RotationRequest::ForwardAt { height, events }, ());
        }
    }

    /// A member answered a forward (`taken`: it kept the events) or the request failed: a
    /// refusal or a failure moves the plan on to the next round's proposer sooner.
    pub(super) fn forward_answered(&mut self, peer: PeerId, taken: bool) {
        if taken || !self.da.service.forwards() {
            return;
        }
        tracing::debug!(%peer, "forwarded DA events refused or lost: trying the next member");
        if let Some(c) = self.committee.as_mut() {
            c.forward.refused(Instant::now());
        }
        self.forward_pending();
    }
}
