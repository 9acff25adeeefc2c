//! The DA proposer rotation of one committee member (issue 13 §1): drives the pure
//! [`HeightConsensus`] of `dsdn_protocols::committee::rotation` for the DA heights when the
//! DA authority is the committee's group key.
//!
//! [`DaRotation`] is a pure driver (every call takes `now`, it does no I/O): it turns the
//! machine's [`Action`]s into [`RotationOut`]s for the event loop (`event_loop/rotation.rs`)
//! — requests on `/dsdn/<net>/da-rotation/1.0.0`, record writes for the record writer thread,
//! "build a blob", "apply this sealed blob", "this member is ahead" — and takes back inbound
//! messages, the DA tip, write results and new blobs.
//!
//! * **Durable before release.** [`Action::Persist`] becomes a [`RotationOut::Persist`]
//!   with a sequence number; every later action (a promise, a share, a `NewRound`) is held
//!   until the writer reports that record (or a newer one) durable. A failed write keeps
//!   them back for good (they are dropped: a member that does not answer is safe) and is
//!   shown in the status until a later write succeeds.
//! * **Idle rule.** Timeouts and resends ([`HeightConsensus::poll`]) run only while this
//!   member has work: events in its pool (own or forwarded), a lock at its height, or a
//!   package it proposed waiting for shares. A member without work still answers
//!   `Prepare`/`Sign` and follows `NewRound`, so the members with work drive the rounds;
//!   nothing is sent while nothing waits anywhere (after a seal, the next height's round-0
//!   proposer sends one `Prepare` and collects promises, then waits for events).
//! * **Restart and a corrupt record.** The record on disk is resumed by
//!   [`HeightConsensus::restore`] once the DA log reached its height (a record above the
//!   tip + 1 waits for backfill). A record that does not read was moved aside
//!   ([`record::load`]): it may have held a lock at the height being decided, and signing
//!   another blob there could complete a second blob at that height. So the member
//!   abstains — it sends nothing and signs nothing — until its DA log is synced and one
//!   more height has been sealed by the others; its locks (per height) are then obsolete.

pub(crate) mod forward;
mod record;
mod status;

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::time::Instant;

use dsdn_protocols::committee::rotation::{
    check_author, Action, FrostRoundCrypto, HeightConsensus, MemberRecord, ProposerPhase,
    RotationConfig, RotationMsg, RotationRequest,
};
use dsdn_protocols::committee::MemberId;
use dsdn_protocols::da::DaBlob;
use libp2p::PeerId;

pub use record::record_path;
pub(crate) use record::{load as load_record, Loaded};
pub use status::RotationView;

use super::CommitteeMetrics;

/// What the event loop must do for the rotation.
#[derive(Debug)]
pub(crate) enum RotationOut {
    /// Send `request` to member `peer` on `/dsdn/<net>/da-rotation/1.0.0`.
    Send(PeerId, RotationRequest),
    /// Write `bytes` (the [`MemberRecord`]) to `path` durably as record change `seq`, off the
    /// event loop; report with [`DaRotation::on_persisted`].
    Persist {
        /// The change number.
        seq: u64,
        /// `rotation-record-<epoch>.cbor`.
        path: PathBuf,
        /// The encoded record.
        bytes: Vec<u8>,
    },
    /// `message` (a blob's signing bytes) is threshold-signed for `height`: apply it.
    Sealed {
        /// The DA height.
        height: u64,
        /// The blob's signing bytes.
        message: Vec<u8>,
        /// The 64-byte aggregate signature.
        signature: Vec<u8>,
    },
    /// Member `peer` is at DA height `height`, above ours: backfill from it.
    Ahead(PeerId, u64),
}

/// Why the member abstains (a corrupt record).
#[derive(Debug, Clone)]
struct Abstain {
    reason: String,
    /// Set once the DA log is synced: the member takes part from this height on.
    until: Option<u64>,
}

/// Most actions held behind an unwritten record (a round's worth for every member, many
/// times over); beyond it the oldest are dropped (a message not sent is always safe).
pub const MAX_HELD_ACTIONS: usize = 4096;

/// See the module documentation.
pub(crate) struct DaRotation {
    config: RotationConfig,
    me: MemberId,
    peer_me: PeerId,
    crypto: Option<FrostRoundCrypto>,
    machine: Option<HeightConsensus<FrostRoundCrypto>>,
    /// The record found at start, until the DA tip reaches its height − 1.
    stored: Option<MemberRecord>,
    abstain: Option<Abstain>,
    /// `restore` failed: the rotation does not run (status shows it).
    failed: Option<String>,
    record_path: PathBuf,
    persist_seq: u64,
    written_seq: u64,
    held: VecDeque<(u64, Action)>,
    write_error: Option<String>,
    out: Vec<RotationOut>,
    awaiting_blob: Option<(u64, u64)>,
    /// The member had work at the last poll (its round timer runs).
    working: bool,
    /// Whether each other member answered the last request sent to it (or sent one): a
    /// member connected but cut off (a split that the connection's keep-alive has not
    /// noticed yet) fails its requests after one base round timeout. At most one entry
    /// per member.
    answered: HashMap<PeerId, bool>,
    metrics: CommitteeMetrics,
}

impl DaRotation {
    /// The rotation of member `me` with FROST `crypto`, the record found on disk
    /// (`loaded`) and `record_path` to write it to.
    pub(crate) fn new(
        config: RotationConfig,
        me: MemberId,
        crypto: FrostRoundCrypto,
        loaded: Loaded,
        record_path: PathBuf,
        metrics: CommitteeMetrics,
    ) -> Result<Self, String> {
        let peer_me = PeerId::from_bytes(me.as_bytes()).map_err(|e| e.to_string())?;
        let (stored, abstain) = match loaded {
            Loaded::Fresh => (None, None),
            Loaded::Record(r) => (Some(r), None),
            Loaded::Corrupt { error, moved_to } => {
                let reason = match moved_to {
                    Some(p) => format!(
                        "rotation record corrupt ({error}), moved to {}",
                        p.display()
                    ),
                    None => format!("rotation record corrupt ({error}), could not be moved aside"),
                };
                tracing::error!(%reason, "this member abstains from the DA rotation until one more height is sealed");
                (
                    None,
                    Some(Abstain {
                        reason,
                        until: None,
                    }),
                )
            }
        };
        Ok(Self {
            config,
            me,
            peer_me,
            crypto: Some(crypto),
            machine: None,
            stored,
            abstain,
            failed: None,
            record_path,
            persist_seq: 0,
            written_seq: 0,
            held: VecDeque::new(),
            write_error: None,
            out: Vec::new(),
            awaiting_blob: None,
            working: false,
            answered: HashMap::new(),
            metrics,
        })
    }

    /// What the event loop must do, in order.
    pub(crate) fn take_out(&mut self) -> Vec<RotationOut> {
        std::mem::take(&mut self.out)
    }

    /// The DA tip is `tip` (`synced`: no peer reported a higher one): starts the machine
    /// when it may, or moves it to `tip + 1` when the height it decided is sealed.
    pub(crate) fn on_tip(&mut self, tip: u64, synced: bool, now: Instant) {
        if let Some(m) = self.machine.as_mut() {
            if tip >= m.height() {
                let actions = m.on_sealed(tip, now);
                self.awaiting_blob = None;
                self.apply(actions);
            }
            return;
        }
        if self.failed.is_some() {
            return;
        }
        if let Some(a) = self.abstain.as_mut() {
            match a.until {
                None if synced => {
                    a.until = Some(tip + 1);
                    return;
                }
                Some(until) if tip >= until => {
                    tracing::info!(
                        tip,
                        "a height was sealed since the rotation record was lost: taking part again"
                    );
                    self.abstain = None;
                }
                _ => return,
            }
        }
        if self.stored.as_ref().is_some_and(|r| r.height > tip + 1) {
            return;
        }
        let Some(crypto) = self.crypto.take() else {
            return;
        };
        match HeightConsensus::restore(
            self.config.clone(),
            self.me.clone(),
            crypto,
            self.stored.take(),
            tip,
            now,
        ) {
            Ok((machine, actions)) => {
                tracing::info!(
                    height = machine.height(),
                    round = machine.round(),
                    "DA proposer rotation started"
                );
                self.machine = Some(machine);
                self.apply(actions);
            }
            Err(e) => {
                tracing::error!(error = %e, "the DA proposer rotation cannot start");
                self.failed = Some(e.to_string());
            }
        }
    }

    /// True when this member drives the rounds (see the idle rule): `pending` events in its
    /// pool, a lock at its height, or a package it proposed waiting for shares.
    fn has_work(&self, pending: bool) -> bool {
        let Some(m) = &self.machine else {
            return false;
        };
        pending
            || m.record().lock.is_some()
            || m.proposer_round()
                .is_some_and(|p| p.phase() == ProposerPhase::Signing)
    }

    /// Notes whether there is work (`pending`: the DA pool holds events); when work appears
    /// after an idle time the round's timeout starts again ([`HeightConsensus::rearm`]).
    /// The event loop calls it after every input, so the timeout counts from the moment
    /// the first event arrived. Returns whether there is work.
    pub(crate) fn note_work(&mut self, now: Instant, pending: bool) -> bool {
        let work = self.has_work(pending);
        let was = std::mem::replace(&mut self.working, work);
        if work && !was {
            if let Some(m) = self.machine.as_mut() {
                m.rearm(now);
            }
        }
        work
    }

    /// Timers (only while there is work): timeouts and resends.
    pub(crate) fn poll(&mut self, now: Instant, pending: bool) {
        if !self.note_work(now, pending) {
            return;
        }
        let Some(m) = self.machine.as_mut() else {
            return;
        };
        let round = m.round();
        let actions = m.poll(now);
        if m.round() > round {
            self.metrics
                .rotation_rounds
                .with_label_values(&["timeout"])
                .inc();
            tracing::info!(
                height = m.height(),
                round = m.round(),
                proposer = ?peer_of(m.config().proposer(m.height(), m.round())),
                "DA rotation round timed out; next round"
            );
        }
        self.apply(actions);
    }

    /// When [`DaRotation::poll`] next has something to do (`None` while idle).
    pub(crate) fn next_deadline(&self, pending: bool) -> Option<Instant> {
        if !self.has_work(pending) {
            return None;
        }
        self.machine.as_ref().map(HeightConsensus::next_deadline)
    }

    /// Member `peer` answered a request of this member or sent one (`true`), or a request
    /// to it failed: timed out, or its connection closed (`false`). The status counts a
    /// member whose last request failed as not answering ([`RotationView::waiting_for`]).
    /// Non-members are ignored.
    pub(crate) fn on_answer(&mut self, peer: PeerId, answered: bool) {
        let Ok(id) = MemberId::new(peer.to_bytes()) else {
            return;
        };
        if id != self.me && self.config.contains(&id) {
            self.answered.insert(peer, answered);
        }
    }

    /// A message from member `peer` (the event loop checked a `Sign`'s blob against the
    /// log first).
    ///
    /// # Errors
    /// Why it was refused (not taking part yet, a non-member, malformed, locked, …).
    pub(crate) fn on_message(
        &mut self,
        peer: PeerId,
        msg: RotationMsg,
        now: Instant,
    ) -> Result<(), String> {
        let from = MemberId::new(peer.to_bytes()).map_err(|e| e.to_string())?;
        if !self.config.contains(&from) {
            return Err(format!("{peer} is not a committee member"));
        }
        let Some(m) = self.machine.as_mut() else {
            return Err("this member does not take part in the rotation yet".into());
        };
        // A member announcing a lower round at our height is told ours (as a `Prepare` of a
        // lower round would be): it catches up now instead of after its own timeout.
        let stale = match &msg {
            RotationMsg::NewRound { height, round }
                if *height == m.height() && *round < m.round() =>
            {
                Some(RotationMsg::Stale {
                    height: m.height(),
                    round: m.round(),
                })
            }
            _ => None,
        };
        let mut actions = m.on_message(&from, msg, now).map_err(|e| e.to_string())?;
        if let Some(msg) = stale {
            actions.push(Action::Send { to: from, msg });
        }
        self.apply(actions);
        Ok(())
    }

    /// This member sealed the height before its current one: every other member is told
    /// the new height (`NewRound` of round 0, which changes nothing for a member already
    /// there), so one that missed the gossiped blob fetches it now.
    pub(crate) fn announce_height(&mut self) {
        let Some(m) = self.machine.as_ref() else {
            return;
        };
        let msg = RotationMsg::NewRound {
            height: m.height(),
            round: 0,
        };
        self.apply(vec![Action::Broadcast(msg)]);
    }

    /// Member `peer` connected (again): it may have missed our round while it was away, so
    /// it is told (`NewRound`; it answers `Stale` when it is further), as it would be at our
    /// next timeout.
    pub(crate) fn on_peer_connected(&mut self, peer: &PeerId) {
        if !self.is_member(peer) {
            return;
        }
        let (Some(m), Ok(to)) = (self.machine.as_ref(), MemberId::new(peer.to_bytes())) else {
            return;
        };
        if m.round() == 0 {
            return;
        }
        let msg = RotationMsg::NewRound {
            height: m.height(),
            round: m.round(),
        };
        self.apply(vec![Action::Send { to, msg }]);
    }

    /// The round this member proposes waits for a new blob: `(height, round)`.
    pub(crate) fn awaiting_blob(&self) -> Option<(u64, u64)> {
        self.awaiting_blob
    }

    /// The DA service's new blob (signing bytes) for the round this member proposes.
    pub(crate) fn on_new_blob(&mut self, height: u64, round: u64, message: Vec<u8>, now: Instant) {
        self.awaiting_blob = None;
        let Some(m) = self.machine.as_mut() else {
            return;
        };
        match m.on_new_blob(height, round, message, now) {
            Ok(actions) => self.apply(actions),
            Err(e) => tracing::warn!(error = %e, "cannot propose the DA blob"),
        }
    }

    /// The member this member's pending events go to: the proposer of its current
    /// `(height, round)` and that pair, unless that is this member.
    pub(crate) fn forward_target(&self) -> Option<(PeerId, u64, u64)> {
        let m = self.machine.as_ref()?;
        let p = m.config().proposer(m.height(), m.round());
        if *p == self.me {
            return None;
        }
        Some((peer_of(p)?, m.height(), m.round()))
    }

    /// Whether this member may co-sign `message` (a blob's signing bytes, decoded as
    /// `blob`) in `round` as far as its author goes ([`check_author`], issue 13 §6): a
    /// fresh proposal names the round's proposer, a re-proposal keeps its author; this
    /// member's own lock at the blob's height (in the running machine or the record
    /// waiting to be resumed) is accepted as it is.
    ///
    /// # Errors
    /// The rule broken, for the proposer's error message.
    pub(crate) fn check_author(
        &self,
        round: u64,
        blob: &DaBlob,
        message: &[u8],
    ) -> Result<(), String> {
        let record = self
            .machine
            .as_ref()
            .map(|m| m.record())
            .or(self.stored.as_ref());
        let lock = record
            .filter(|r| r.height == blob.height)
            .and_then(|r| r.lock.as_ref())
            .map(|l| &l.message[..]);
        check_author(&self.config, round, blob, message, lock).map_err(|e| e.to_string())
    }

    /// True when `peer` is another member.
    pub(crate) fn is_member(&self, peer: &PeerId) -> bool {
        *peer != self.peer_me
            && MemberId::new(peer.to_bytes()).is_ok_and(|m| self.config.contains(&m))
    }

    /// The record writer reported change `seq`: what waited for it is released, or, on a
    /// failure, withheld for good.
    pub(crate) fn on_persisted(&mut self, seq: u64, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.written_seq = self.written_seq.max(seq);
                self.write_error = None;
                while self
                    .held
                    .front()
                    .is_some_and(|(need, _)| *need <= self.written_seq)
                {
                    if let Some((_, action)) = self.held.pop_front() {
                        self.release(action);
                    }
                }
            }
            Err(e) => {
                tracing::error!(error = %e, path = %self.record_path.display(), "cannot write the DA rotation record: messages that depend on it are withheld");
                self.write_error = Some(e);
                while self.held.front().is_some_and(|(need, _)| *need <= seq) {
                    self.held.pop_front();
                }
            }
        }
    }

    /// Carries out the machine's actions in order, holding everything behind an unwritten
    /// record.
    fn apply(&mut self, actions: Vec<Action>) {
        for action in actions {
            if let Action::Persist(record) = &action {
                match record.to_bytes() {
                    Ok(bytes) => {
                        self.persist_seq += 1;
                        self.out.push(RotationOut::Persist {
                            seq: self.persist_seq,
                            path: self.record_path.clone(),
                            bytes,
                        });
                    }
                    Err(e) => {
                        // Cannot happen (locks are capped); nothing after it may leave.
                        tracing::error!(error = %e, "cannot encode the DA rotation record");
                        self.persist_seq += 1;
                        self.write_error = Some(e.to_string());
                    }
                }
                continue;
            }
            if self.held.is_empty() && self.written_seq >= self.persist_seq {
                self.release(action);
            } else {
                if self.held.len() >= MAX_HELD_ACTIONS {
                    self.held.pop_front();
                }
                self.held.push_back((self.persist_seq, action));
            }
        }
        if let Some(m) = &self.machine {
            self.metrics.rotation_height.set(m.height() as i64);
            self.metrics.rotation_round.set(m.round() as i64);
        }
    }

    fn release(&mut self, action: Action) {
        match action {
            Action::Persist(_) => {}
            Action::Send { to, msg } => {
                if let Some(peer) = peer_of(&to) {
                    self.out
                        .push(RotationOut::Send(peer, RotationRequest::Msg(msg)));
                }
            }
            Action::Broadcast(msg) => {
                for to in self.config.members().iter().filter(|m| **m != self.me) {
                    if let Some(peer) = peer_of(to) {
                        self.out
                            .push(RotationOut::Send(peer, RotationRequest::Msg(msg.clone())));
                    }
                }
            }
            Action::ProposeNew { height, round } => {
                // Answered with `on_new_blob` once the DA service has a blob
                // (`DaService::propose_blob`), now or when events arrive.
                self.awaiting_blob = Some((height, round));
            }
            Action::Sealed {
                height,
                round,
                message,
                signature,
            } => {
                self.metrics
                    .rotation_rounds
                    .with_label_values(&["sealed"])
                    .inc();
                tracing::info!(height, round, "DA blob threshold-signed by the rotation");
                self.out.push(RotationOut::Sealed {
                    height,
                    message,
                    signature,
                });
            }
            Action::Fetch { from, height } => {
                if let Some(peer) = peer_of(&from) {
                    self.out.push(RotationOut::Ahead(peer, height));
                }
            }
            // A member behind is told our height (a `Stale` of our height and round changes
            // nothing but makes it fetch the blobs from us).
            Action::SendSealed { to, .. } => {
                if let (Some(m), Some(peer)) = (&self.machine, peer_of(&to)) {
                    let msg = RotationMsg::Stale {
                        height: m.height(),
                        round: m.round(),
                    };
                    self.out
                        .push(RotationOut::Send(peer, RotationRequest::Msg(msg)));
                }
            }
            Action::Failed(e) => {
                self.metrics
                    .rotation_rounds
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(error = %e, "DA rotation round failed");
            }
        }
    }
}

/// The PeerId of a member (its id is the PeerId's bytes).
fn peer_of(member: &MemberId) -> Option<PeerId> {
    PeerId::from_bytes(member.as_bytes()).ok()
}

#[cfg(test)]
mod tests;
