//! One member's rotation state machine for its current height: [`HeightConsensus`].

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use super::msg::{Action, RotationError, RotationMsg, RoundCrypto};
use super::proposer::{ProposerPhase, ProposerRound};
use super::record::MemberRecord;
use super::RotationConfig;
use crate::committee::types::MemberId;

/// What an operator sees of a member's rotation state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationStatus {
    /// The height being decided (DA tip + 1).
    pub height: u64,
    /// The member's round at that height.
    pub round: u64,
    /// The proposer of `(height, round)`.
    pub proposer: MemberId,
    /// True when this member is that proposer.
    pub proposing: bool,
    /// The member's lock: its round and the SHA-256 of the locked message.
    pub lock: Option<(u64, [u8; 32])>,
    /// Time since the member entered the round.
    pub in_round: Duration,
    /// Time left before the round times out.
    pub timeout_in: Duration,
    /// When proposing: the phase, promises and shares so far.
    pub proposer_round: Option<(ProposerPhase, usize, usize)>,
}

/// One committee member's rotation state for its current height: its durable
/// [`MemberRecord`], its commitment and share of the current round (memory only) and, when
/// it proposes the round, the [`ProposerRound`]. See the module documentation of
/// [`super`] for the protocol.
///
/// Every input returns the [`Action`]s to carry out in order. `Err` means the input was
/// refused and nothing changed; a failure after the state changed is an
/// [`Action::Failed`].
pub struct HeightConsensus<C> {
    pub(super) config: RotationConfig,
    pub(super) me: MemberId,
    pub(super) crypto: C,
    pub(super) record: MemberRecord,
    pub(super) entered_at: Instant,
    /// Our commitment for the current round, once made.
    pub(super) commitment: Option<Vec<u8>>,
    /// The share we released in the current round: (message hash, share).
    pub(super) share: Option<([u8; 32], Vec<u8>)>,
    pub(super) proposing: Option<ProposerRound>,
}

impl<C> std::fmt::Debug for HeightConsensus<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HeightConsensus")
            .field("me", &self.me)
            .field("record", &self.record)
            .field("proposing", &self.proposing)
            .finish()
    }
}

impl<C: RoundCrypto> HeightConsensus<C> {
    /// The state machine of member `me` whose DA tip is `tip`, resumed from the record it
    /// persisted last (`None` on first start).
    ///
    /// A record for `tip + 1` is resumed in `round + 1` with its lock: this member may have
    /// proposed in or promised `round` before it stopped, and forgot its nonces and its
    /// proposal, so it takes no further part in that round. A record of a lower height is
    /// obsolete (that height is sealed): the member starts `tip + 1` at round 0. The returned
    /// actions begin with [`Action::Persist`].
    ///
    /// # Errors
    /// [`RotationError::NotAMember`] when `me` is not in the committee,
    /// [`RotationError::RecordAhead`] for a record above `tip + 1` (sync the DA log, then
    /// restore), [`RotationError::BadRecord`], [`RotationError::Exhausted`].
    pub fn restore(
        config: RotationConfig,
        me: MemberId,
        crypto: C,
        record: Option<MemberRecord>,
        tip: u64,
        now: Instant,
    ) -> Result<(Self, Vec<Action>), RotationError> {
        if !config.contains(&me) {
            return Err(RotationError::NotAMember(me));
        }
        let height = tip.checked_add(1).ok_or(RotationError::Exhausted)?;
        let (record, round) = match record {
            Some(r) if r.height > height => {
                return Err(RotationError::RecordAhead {
                    record: r.height,
                    tip,
                })
            }
            Some(r) if r.height == height => {
                r.validate().map_err(|e| match e {
                    super::RecordError::Malformed(what) => RotationError::BadRecord(what),
                    _ => RotationError::BadRecord("invalid"),
                })?;
                let round = r.round.checked_add(1).ok_or(RotationError::Exhausted)?;
                (r, round)
            }
            _ => (MemberRecord::new(height), 0),
        };
        let mut machine = Self {
            config,
            me,
            crypto,
            record,
            entered_at: now,
            commitment: None,
            share: None,
            proposing: None,
        };
        let actions = machine.enter_round(round, now, round > 0);
        Ok((machine, actions))
    }

    /// The member's id.
    pub fn me(&self) -> &MemberId {
        &self.me
    }

    /// The configuration.
    pub fn config(&self) -> &RotationConfig {
        &self.config
    }

    /// The current record (what was last asked to be persisted).
    pub fn record(&self) -> &MemberRecord {
        &self.record
    }

    /// The height being decided.
    pub fn height(&self) -> u64 {
        self.record.height
    }

    /// The current round.
    pub fn round(&self) -> u64 {
        self.record.round
    }

    /// The threshold scheme.
    pub fn crypto(&self) -> &C {
        &self.crypto
    }

    /// The proposer state, when this member proposes the current round.
    pub fn proposer_round(&self) -> Option<&ProposerRound> {
        self.proposing.as_ref()
    }

    /// The status for operators at `now`.
    pub fn status(&self, now: Instant) -> RotationStatus {
        let in_round = now.saturating_duration_since(self.entered_at);
        let proposer = self
            .config
            .proposer(self.record.height, self.record.round)
            .clone();
        RotationStatus {
            height: self.record.height,
            round: self.record.round,
            proposing: proposer == self.me,
            proposer,
            lock: self.record.lock.as_ref().map(|l| (l.round, l.message_hash)),
            in_round,
            timeout_in: self
                .config
                .round_timeout(self.record.round)
                .saturating_sub(in_round),
            proposer_round: self
                .proposing
                .as_ref()
                .map(|p| (p.phase(), p.promises(), p.shares())),
        }
    }

    /// When [`HeightConsensus::poll`] next has something to do: the round's timeout, or the
    /// proposer's next resend.
    pub fn next_deadline(&self) -> Instant {
        let timeout = self.entered_at + self.config.round_timeout(self.record.round);
        match &self.proposing {
            Some(p)
                if matches!(
                    p.phase(),
                    ProposerPhase::Collecting | ProposerPhase::Signing
                ) =>
            {
                timeout.min(p.last_sent() + self.config.resend())
            }
            _ => timeout,
        }
    }

    /// Timers: past the round's timeout, enters the next round (starting it when proposing
    /// it, else broadcasting [`RotationMsg::NewRound`]); as the proposer, re-sends `Prepare`
    /// to members without a promise and `Sign` to signers without a share every
    /// [`RotationConfig::resend`].
    pub fn poll(&mut self, now: Instant) -> Vec<Action> {
        let timeout = self.entered_at + self.config.round_timeout(self.record.round);
        if now >= timeout {
            return match self.record.round.checked_add(1) {
                Some(next) => self.enter_round(next, now, true),
                None => vec![Action::Failed(RotationError::Exhausted)],
            };
        }
        let (height, round) = (self.record.height, self.record.round);
        let resend = self.config.resend();
        let Some(p) = self.proposing.as_mut() else {
            return Vec::new();
        };
        if now < p.last_sent() + resend {
            return Vec::new();
        }
        let actions = match p.phase() {
            ProposerPhase::Collecting => self
                .config
                .members()
                .iter()
                .filter(|m| **m != self.me && !p.has_promise(m))
                .map(|m| Action::Send {
                    to: m.clone(),
                    msg: RotationMsg::Prepare { height, round },
                })
                .collect(),
            ProposerPhase::Signing => {
                let sign = RotationMsg::Sign {
                    height,
                    round,
                    message: p.message().to_vec(),
                    package: p.package(),
                };
                p.missing_shares()
                    .into_iter()
                    .filter(|m| *m != self.me)
                    .map(|to| Action::Send {
                        to,
                        msg: sign.clone(),
                    })
                    .collect()
            }
            _ => Vec::new(),
        };
        p.set_last_sent(now);
        actions
    }

    /// Restarts the current round's timeout at `now`. A driver that runs no timers while it
    /// has nothing to seal calls it when work appears, so that a round entered long before
    /// does not time out at once. Timers decide liveness only, never safety.
    pub fn rearm(&mut self, now: Instant) {
        self.entered_at = now;
    }

    /// The DA layer applied the blob of `height` (ours or one it received): moves to
    /// `height + 1`, round 0, no lock (persisted), and starts round 0 when proposing it.
    /// Ignored for a height below ours.
    pub fn on_sealed(&mut self, height: u64, now: Instant) -> Vec<Action> {
        if height < self.record.height {
            return Vec::new();
        }
        let Some(next) = height.checked_add(1) else {
            return vec![Action::Failed(RotationError::Exhausted)];
        };
        self.record = MemberRecord::new(next);
        self.enter_round(0, now, false)
    }

    /// Any message from member `from`, dispatched to the handlers below.
    ///
    /// # Errors
    /// As the handler's.
    pub fn on_message(
        &mut self,
        from: &MemberId,
        msg: RotationMsg,
        now: Instant,
    ) -> Result<Vec<Action>, RotationError> {
        match msg {
            RotationMsg::Prepare { height, round } => self.on_prepare(from, height, round, now),
            RotationMsg::Promise {
                height,
                round,
                commitment,
                lock,
            } => self.on_promise(from, height, round, commitment, lock, now),
            RotationMsg::Stale { height, round } | RotationMsg::NewRound { height, round } => {
                self.on_higher_round(from, height, round, now)
            }
            RotationMsg::Sign {
                height,
                round,
                message,
                package,
            } => self.on_sign_request(from, height, round, message, package, now),
            RotationMsg::Share {
                height,
                round,
                share,
            } => self.on_share(from, height, round, share, now),
        }
    }

    /// `Prepare{height, round}` from the round's proposer: promise it (entering it first,
    /// durably) or answer `Stale` with our higher round.
    ///
    /// # Errors
    /// [`RotationError::NotAMember`], [`RotationError::FromSelf`],
    /// [`RotationError::NotProposer`].
    pub fn on_prepare(
        &mut self,
        from: &MemberId,
        height: u64,
        round: u64,
        now: Instant,
    ) -> Result<Vec<Action>, RotationError> {
        self.check_sender(from)?;
        self.check_proposer(from, height, round)?;
        if let Some(other) = self.other_height(from, height) {
            return Ok(other);
        }
        let mut actions = match round.cmp(&self.record.round) {
            Ordering::Less => return Ok(vec![self.stale_reply(from)]),
            Ordering::Equal => Vec::new(),
            Ordering::Greater => self.enter_round(round, now, false),
        };
        let commitment = match &self.commitment {
            Some(c) => c.clone(),
            None => match self.crypto.commit(height, round) {
                Ok(c) => {
                    self.commitment = Some(c.clone());
                    c
                }
                Err(e) => {
                    actions.push(Action::Failed(e.into()));
                    return Ok(actions);
                }
            },
        };
        actions.push(Action::Send {
            to: from.clone(),
            msg: RotationMsg::Promise {
                height,
                round,
                commitment,
                lock: self.record.lock.clone(),
            },
        });
        Ok(actions)
    }

    /// `Stale` or `NewRound` from any member: enter its round if higher than ours.
    ///
    /// # Errors
    /// [`RotationError::NotAMember`], [`RotationError::FromSelf`].
    pub fn on_higher_round(
        &mut self,
        from: &MemberId,
        height: u64,
        round: u64,
        now: Instant,
    ) -> Result<Vec<Action>, RotationError> {
        self.check_sender(from)?;
        if let Some(other) = self.other_height(from, height) {
            return Ok(other);
        }
        if round > self.record.round {
            return Ok(self.enter_round(round, now, false));
        }
        Ok(Vec::new())
    }

    // ---- internals ----

    pub(super) fn check_sender(&self, from: &MemberId) -> Result<(), RotationError> {
        if *from == self.me {
            return Err(RotationError::FromSelf);
        }
        if !self.config.contains(from) {
            return Err(RotationError::NotAMember(from.clone()));
        }
        Ok(())
    }

    pub(super) fn check_proposer(
        &self,
        from: &MemberId,
        height: u64,
        round: u64,
    ) -> Result<(), RotationError> {
        if self.config.proposer(height, round) != from {
            return Err(RotationError::NotProposer {
                from: from.clone(),
                height,
                round,
            });
        }
        Ok(())
    }

    /// For a message of another height: send blobs to a member behind, or fetch ours.
    pub(super) fn other_height(&self, from: &MemberId, height: u64) -> Option<Vec<Action>> {
        match height.cmp(&self.record.height) {
            Ordering::Equal => None,
            Ordering::Less => Some(vec![Action::SendSealed {
                to: from.clone(),
                from_height: height,
            }]),
            Ordering::Greater => Some(vec![Action::Fetch {
                from: from.clone(),
                height: self.record.height,
            }]),
        }
    }

    pub(super) fn stale_reply(&self, to: &MemberId) -> Action {
        Action::Send {
            to: to.clone(),
            msg: RotationMsg::Stale {
                height: self.record.height,
                round: self.record.round,
            },
        }
    }

    /// Enters `round` at our height (durably), forgetting the previous round's commitment,
    /// share and proposer state; starts the round when we propose it, else announces it
    /// when `announce`.
    pub(super) fn enter_round(&mut self, round: u64, now: Instant, announce: bool) -> Vec<Action> {
        self.record.round = round;
        self.entered_at = now;
        self.commitment = None;
        self.share = None;
        self.proposing = None;
        let height = self.record.height;
        let mut actions = vec![Action::Persist(self.record.clone())];
        if *self.config.proposer(height, round) == self.me {
            match self.crypto.commit(height, round) {
                Ok(c) => {
                    self.commitment = Some(c.clone());
                    let mut p = ProposerRound::new(height, round, self.config.threshold(), now);
                    // Our own promise comes first: we are always one of the signers.
                    let _ = p.add_promise(self.me.clone(), c, self.record.lock.clone());
                    self.proposing = Some(p);
                    actions.push(Action::Broadcast(RotationMsg::Prepare { height, round }));
                }
                Err(e) => actions.push(Action::Failed(e.into())),
            }
        } else if announce {
            actions.push(Action::Broadcast(RotationMsg::NewRound { height, round }));
        }
        actions
    }
}
