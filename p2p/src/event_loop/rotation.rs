//! The DA proposer rotation in the event loop (issue 13 §1): `/dsdn/<net>/da-rotation/1.0.0`
//! requests in and out, the record writer, and the routing between
//! [`crate::committee::rotation::DaRotation`] and the DA service (its pool, proposals,
//! checks and sealed blobs).

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use dsdn_protocols::committee::rotation::{
    FrostRoundCrypto, RotationConfig, RotationMsg, RotationRequest, MAX_FORWARD_EVENTS,
};
use dsdn_protocols::committee::MAX_SIGNED_MESSAGE_BYTES;
use dsdn_protocols::da::WireEvent;
use libp2p::PeerId;

use super::EventLoop;
use crate::committee::rotation::{load_record, record_path, DaRotation, RotationOut};
use crate::committee::GuardWriter;
use crate::net::rpc::RpcEvent;

/// The rotation of a member: the driver, its record writer thread and what was last
/// forwarded to which proposer.
pub(crate) struct RotationLoop {
    driver: DaRotation,
    pub(super) writer: GuardWriter,
    /// (proposer, height, round, pool generation) of the last `Forward`, and when.
    forwarded: Option<((PeerId, u64, u64, u64), Instant)>,
    /// The base round timeout: pending events are forwarded again this often.
    reforward: std::time::Duration,
}

impl RotationLoop {
    /// The rotation's status (`pending`: the DA pool holds events).
    pub(super) fn status(
        &self,
        now: Instant,
        pending: bool,
        connected: &[PeerId],
    ) -> crate::committee::rotation::RotationView {
        self.driver.status(now, pending, connected)
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl EventLoop {
    /// Starts the rotation once this member holds a key share whose group key is the DA
    /// authority (at start, or right after the DKG). A committee without a majority
    /// threshold (2t ≤ n) is refused (logged, shown in the committee status).
    pub(super) fn rotation_ensure(&mut self, now: Instant) {
        let authority = self.da.service.current_key();
        let Some(c) = self.committee.as_mut() else {
            return;
        };
        if c.rotation.is_some() || c.rotation_refused.is_some() {
            return;
        }
        let Some((share, cfg, metrics)) = c.service.rotation_parts() else {
            return;
        };
        if Some(share.group_key().0) != authority {
            return;
        }
        let started = RotationConfig::new(share.config(), cfg.round_timeout)
            .map_err(|e| e.to_string())
            .and_then(|config| {
                let path = record_path(&cfg.dir, cfg.epoch);
                let loaded = load_record(&path);
                let driver = DaRotation::new(
                    config,
                    share.member().clone(),
                    FrostRoundCrypto::new(share.clone()),
                    loaded,
                    path,
                    metrics.clone(),
                )?;
                let writer = GuardWriter::start().map_err(|e| e.to_string())?;
                Ok(RotationLoop {
                    driver,
                    writer,
                    forwarded: None,
                    reforward: cfg.round_timeout,
                })
            });
        match started {
            Ok(r) => {
                tracing::info!("DA proposer rotation enabled: every member takes DA events");
                c.rotation = Some(r);
                self.rotation_after_da_at(now);
            }
            Err(e) => {
                tracing::error!(error = %e, "the DA proposer rotation cannot run: this member does not seal DA blobs");
                c.rotation_refused = Some(e);
            }
        }
    }

    /// The group key when the rotation runs (this member then seals through it).
    pub(super) fn rotation_key(&self) -> Option<[u8; 32]> {
        let c = self.committee.as_ref()?;
        c.rotation.as_ref()?;
        c.service.group_key()
    }

    fn rotation(&mut self) -> Option<&mut RotationLoop> {
        self.committee.as_mut().and_then(|c| c.rotation.as_mut())
    }

    /// The rotation's next timer (only while there is work).
    pub(super) fn rotation_deadline(&self) -> Option<Instant> {
        let pending = self.da.service.has_pending();
        let r = self.committee.as_ref()?.rotation.as_ref()?;
        let forward = r
            .forwarded
            .filter(|_| pending)
            .map(|(_, at)| at + r.reforward);
        r.driver
            .next_deadline(pending)
            .into_iter()
            .chain(forward)
            .min()
    }

    /// The DA service may have applied blobs: the rotation follows the tip.
    pub(super) fn rotation_after_da(&mut self) {
        self.rotation_after_da_at(Instant::now());
    }

    fn rotation_after_da_at(&mut self, now: Instant) {
        let tip = self.da.service.state().height();
        let synced = self.da.service.is_synced();
        let Some(r) = self.rotation() else {
            return;
        };
        r.driver.on_tip(tip, synced, now);
        self.rotation_flush();
    }

    /// Timers: timeouts and resends while there is work; a blob for a round that waits.
    pub(super) fn rotation_poll(&mut self) {
        let now = Instant::now();
        let pending = self.da.service.has_pending();
        let Some(r) = self.rotation() else {
            return;
        };
        r.driver.poll(now, pending);
        self.rotation_flush();
    }

    /// A verified peer connected: a member is told our round.
    pub(super) fn rotation_peer_connected(&mut self, peer: &PeerId) {
        if let Some(r) = self.rotation() {
            r.driver.on_peer_connected(peer);
        }
        self.rotation_flush();
    }

    /// The record writer reported change `seq`.
    pub(super) fn rotation_record_written(&mut self, seq: u64, result: Result<(), String>) {
        if let Some(r) = self.rotation() {
            r.driver.on_persisted(seq, result);
        }
        self.rotation_flush();
    }

    /// Carries out what the rotation asks, proposes a blob for a round that waits for one,
    /// and forwards this member's pending events to the proposer it knows.
    fn rotation_flush(&mut self) {
        let mut sealed = false;
        let mut ahead = false;
        let pending = self.da.service.has_pending();
        if let Some(r) = self.rotation() {
            r.driver.note_work(Instant::now(), pending);
        }
        loop {
            let now = Instant::now();
            let mut proposed = false;
            if let Some((height, round)) = self.rotation().and_then(|r| r.driver.awaiting_blob()) {
                if let Some(message) = self.da.service.propose_blob(height) {
                    tracing::debug!(height, round, bytes = message.len(), "proposing a DA blob");
                    if let Some(r) = self.rotation() {
                        r.driver.on_new_blob(height, round, message, now);
                    }
                    proposed = true;
                }
            }
            let Some(r) = self.rotation() else {
                return;
            };
            let outs = r.driver.take_out();
            if outs.is_empty() && !proposed {
                break;
            }
            for out in outs {
                match out {
                    RotationOut::Send(peer, request) => {
                        if let Some(b) = self.swarm.behaviour_mut().da_rotation.as_mut() {
                            b.send(peer, request, ());
                        }
                    }
                    RotationOut::Persist { seq, path, bytes } => {
                        if let Some(r) = self.rotation() {
                            r.writer.persist(seq, path, bytes);
                        }
                    }
                    RotationOut::Sealed {
                        height,
                        message,
                        signature,
                    } => match self
                        .da
                        .service
                        .on_rotation_sealed(height, &message, &signature)
                    {
                        Ok(()) => sealed = true,
                        Err(e) => {
                            tracing::error!(height, error = %e, "the rotation's sealed blob is refused");
                        }
                    },
                    RotationOut::Ahead(peer, height) => {
                        self.da.service.peer_ahead(&peer, height);
                        ahead = true;
                    }
                }
            }
        }
        self.rotation_forward();
        if sealed {
            // Gossip, durability, the waiters; the rotation moves to the next height, which
            // the other members are told (in case the gossip misses one).
            self.after_da();
            if let Some(r) = self.rotation() {
                r.driver.announce_height();
            }
            self.rotation_flush();
        } else if ahead {
            // Backfill from the member that is ahead.
            self.da_poll();
        }
    }

    /// Sends this member's pending events to the proposer of its round when the proposer,
    /// the round or the events changed, and again every base round timeout while they wait
    /// (the proposer may have died or restarted).
    fn rotation_forward(&mut self) {
        let now = Instant::now();
        let (generation, events) = self
            .da
            .service
            .own_pending(MAX_FORWARD_EVENTS, MAX_SIGNED_MESSAGE_BYTES);
        let Some(r) = self.rotation() else {
            return;
        };
        if events.is_empty() {
            r.forwarded = None;
            return;
        }
        let Some((peer, height, round)) = r.driver.forward_target() else {
            return;
        };
        let key = (peer, height, round, generation);
        if r.forwarded
            .is_some_and(|(k, at)| k == key && now < at + r.reforward)
        {
            return;
        }
        r.forwarded = Some((key, now));
        tracing::debug!(%peer, height, round, events = events.len(), "forwarding pending DA events");
        if let Some(b) = self.swarm.behaviour_mut().da_rotation.as_mut() {
            b.send(peer, RotationRequest::ForwardAt { height, events }, ());
        }
    }

    fn rotation_forwarded(
        &mut self,
        peer: PeerId,
        height: Option<u64>,
        events: &[WireEvent],
    ) -> Result<(), String> {
        self.da.service.on_forwarded(height, events).map(|new| {
            tracing::debug!(%peer, ?height, new, "DA events forwarded to this member");
        })
    }

    /// `/dsdn/<net>/da-rotation/1.0.0` events: members' messages (a `Sign` only after its
    /// blob passed `DaService::check_proposal` and its author `DaRotation::check_author`)
    /// and forwarded events (from members, and from coordinators the selection admits:
    /// `DaService::admits_forwarder`).
    pub(super) fn on_da_rotation(&mut self, event: RpcEvent<RotationRequest, bool, ()>) {
        let now = Instant::now();
        let (peer, request, reply) = match event {
            RpcEvent::Request {
                peer,
                request,
                reply,
            } => (peer, request, reply),
            // Answers only say whether a message was taken (the rotation re-sends); that
            // one came back at all tells the status the member answers.
            RpcEvent::Response { peer, response, .. } => {
                let taken = matches!(response, Ok(true));
                if let Some(r) = self.rotation() {
                    r.driver.on_answer(peer, response.is_ok());
                }
                // A follower's forward (it sends nothing else on this protocol).
                self.forward_answered(peer, taken);
                return;
            }
        };
        // A message may arrive before the first timer tick after a start.
        self.rotation_ensure(now);
        let member = self
            .committee
            .as_ref()
            .and_then(|c| c.rotation.as_ref())
            .is_some_and(|r| r.driver.is_member(&peer));
        if member {
            if let Some(r) = self.rotation() {
                r.driver.on_answer(peer, true);
            }
        }
        // Forwards are also taken from the coordinators the selection admits (followers,
        // retired members: PROTOCOL §7.6); everything else only from members.
        let forward = matches!(
            request,
            RotationRequest::Forward(_) | RotationRequest::ForwardAt { .. }
        );
        let admitted = member || (forward && self.da.service.admits_forwarder(&peer));
        let taken = if !admitted {
            Err("not a member running the rotation".to_owned())
        } else {
            match request {
                RotationRequest::Msg(msg) => {
                    let checked = match &msg {
                        RotationMsg::Sign {
                            height,
                            round,
                            message,
                            ..
                        } => self
                            .da
                            .service
                            .check_proposal(*height, message, unix_ms())
                            .and_then(|blob| match self.rotation() {
                                Some(r) => r.driver.check_author(*round, &blob, message),
                                None => Err("no rotation".into()),
                            }),
                        _ => Ok(()),
                    };
                    checked.and_then(|()| match self.rotation() {
                        Some(r) => r.driver.on_message(peer, msg, now),
                        None => Err("no rotation".into()),
                    })
                }
                RotationRequest::Forward(events) | RotationRequest::ForwardAt { events, .. }
                    if events.len() > MAX_FORWARD_EVENTS =>
                {
                    Err(format!("{} events forwarded at once", events.len()))
                }
                RotationRequest::Forward(events) => self.rotation_forwarded(peer, None, &events),
                RotationRequest::ForwardAt { height, events } => {
                    self.rotation_forwarded(peer, Some(height), &events)
                }
            }
        };
        if let Err(e) = &taken {
            tracing::debug!(%peer, error = %e, "DA rotation request refused");
        }
        if let Some(b) = self.swarm.behaviour_mut().da_rotation.as_mut() {
            b.respond(reply, taken.is_ok());
        }
        self.rotation_flush();
    }
}
