//! Threshold signing over the network: the member side (commit, sign; the share is held
//! until the guard is persisted, see `guard.rs`) and the proposer's rounds.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use dsdn_protocols::committee::{
    message_hash, CommitmentMsg, CommitteeRequest, CommitteeResponse, GuardError, OsRng, Refusal,
    SignError, SignatureShareMsg, SigningPackageMsg, SigningRound, Slot,
};
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::files::guard_path;
use super::guard::HeldFor;
use super::service::{CommitteeAction, CommitteeService, Purpose};
use super::{member_id, member_peer, GroupSignature, ThresholdSignError, MAX_OPEN_ROUNDS};

/// The reply channel of `NodeHandle::threshold_sign`.
pub(crate) type SignReply = oneshot::Sender<Result<GroupSignature, ThresholdSignError>>;

/// One signing round this node proposes.
pub(crate) struct ProposerRound {
    round: SigningRound,
    slot: Slot,
    /// False while collecting commitments, true while collecting shares.
    sharing: bool,
    pub(super) deadline: Instant,
    started: Instant,
    /// Members that answered the current phase (this node included).
    answered: BTreeSet<PeerId>,
    /// Members whose request of the current phase failed, with the error.
    failed: BTreeMap<PeerId, String>,
    /// Members that refused in the current phase.
    refused: Vec<(PeerId, Refusal)>,
    /// The chosen signers, once the package is fixed.
    signers: Vec<PeerId>,
    reply: SignReply,
}

/// What happened to a round.
pub(super) enum RoundEvent {
    Answer(PeerId, CommitteeResponse),
    Failure(PeerId, String),
    Timeout,
    /// This node's own share, released once its guard change is durable.
    OwnShare(SignatureShareMsg),
    /// This node's own share could not be made durable: withheld.
    OwnWithheld(Refusal),
}

impl CommitteeService {
    /// This member's commitment for `slot` and the message hash (after the guard allows it).
    pub(super) fn member_commit(
        &mut self,
        epoch: u64,
        slot: Slot,
        hash: &[u8; 32],
    ) -> Result<CommitmentMsg, Refusal> {
        self.refuse_if_degraded()?;
        let signer = self.signer.as_mut().ok_or(Refusal::NoKeyShare)?;
        if epoch != self.config.epoch {
            return Err(Refusal::WrongCommittee(format!("epoch {epoch}")));
        }
        signer.guard().check(&slot, hash).map_err(guard_refusal)?;
        signer
            .commit(slot, &mut OsRng)
            .map_err(|e| Refusal::Invalid(Refusal::text(e)))
    }

    /// This member's share for `package` (policy, guard, share) and the number of the guard
    /// change it made: the share may leave only once that change is durable, so a
    /// [`CommitteeAction::PersistGuard`] is queued and the caller holds the share until
    /// [`CommitteeService::on_guard_persisted`] releases it.
    pub(super) fn member_sign(
        &mut self,
        package: &SigningPackageMsg,
    ) -> Result<(SignatureShareMsg, u64), Refusal> {
        self.refuse_if_degraded()?;
        let signer = self.signer.as_mut().ok_or(Refusal::NoKeyShare)?;
        let message = package
            .message()
            .map_err(|e| Refusal::Invalid(Refusal::text(e)))?;
        self.cfg
            .policy
            .check(&package.slot, &message)
            .map_err(|e| Refusal::Policy(Refusal::text(e)))?;
        let mut share = signer.sign(package.slot, package).map_err(|e| match e {
            SignError::Guard(g) => guard_refusal(g),
            other => Refusal::Invalid(Refusal::text(other)),
        })?;
        let bytes = signer
            .guard()
            .to_bytes()
            .map_err(|e| Refusal::Invalid(Refusal::text(e)))?;
        self.guard_seq += 1;
        let seq = self.guard_seq;
        self.actions.push(CommitteeAction::PersistGuard {
            seq,
            path: guard_path(&self.cfg.dir, self.config.epoch),
            bytes,
        });
        if self.cfg.test_corrupt_shares {
            if let Some(b) = share.share.first_mut() {
                *b ^= 1;
            }
        }
        Ok((share, seq))
    }

    /// `NodeHandle::threshold_sign`: proposes a round for `message` in `slot`.
    pub(crate) fn start_sign(
        &mut self,
        slot: Slot,
        message: Vec<u8>,
        reply: SignReply,
        now: Instant,
    ) {
        let Some(signer) = self.signer.as_ref() else {
            let _ = reply.send(Err(ThresholdSignError::NoKeyShare));
            return;
        };
        if let Err(refusal) = self.refuse_if_degraded() {
            let _ = reply.send(Err(ThresholdSignError::Busy(refusal.to_string())));
            return;
        }
        if self.rounds.len() >= MAX_OPEN_ROUNDS {
            let _ = reply.send(Err(ThresholdSignError::Busy(format!(
                "{MAX_OPEN_ROUNDS} signing rounds are open"
            ))));
            return;
        }
        if self.rounds.values().any(|r| r.slot == slot) {
            let _ = reply.send(Err(ThresholdSignError::Busy(format!(
                "a round for {slot} is open"
            ))));
            return;
        }
        let mut round = match SigningRound::new(signer.key_share(), slot, message) {
            Ok(r) => r,
            Err(SignError::MessageTooLarge(n)) => {
                let _ = reply.send(Err(ThresholdSignError::MessageTooLarge(n)));
                return;
            }
            Err(e) => {
                let _ = reply.send(Err(ThresholdSignError::Frost(e.to_string())));
                return;
            }
        };
        let hash = message_hash(round.message());
        let epoch = self.config.epoch;
        let own = match self.member_commit(epoch, slot, &hash) {
            Ok(c) => c,
            Err(Refusal::Equivocation(slot)) => {
                self.metrics
                    .signatures
                    .with_label_values(&["equivocation"])
                    .inc();
                let _ = reply.send(Err(ThresholdSignError::Equivocation {
                    slot,
                    members: vec![self.me],
                }));
                return;
            }
            Err(r) => {
                let _ = reply.send(Err(ThresholdSignError::Refused(r.to_string())));
                return;
            }
        };
        if let Err(e) = round.on_commitment(&self.my_id, &own) {
            let _ = reply.send(Err(ThresholdSignError::Frost(e.to_string())));
            return;
        }
        let id = self.next_tag;
        self.next_tag += 1;
        self.rounds.insert(
            id,
            ProposerRound {
                round,
                slot,
                sharing: false,
                deadline: now + self.cfg.phase_timeout,
                started: now,
                answered: BTreeSet::from([self.me]),
                failed: BTreeMap::new(),
                refused: Vec::new(),
                signers: Vec::new(),
                reply,
            },
        );
        let request = CommitteeRequest::Commit {
            epoch,
            slot,
            message_hash: hash,
        };
        for peer in self.others() {
            self.send(peer, request.clone(), Purpose::Round(id));
        }
    }

    pub(super) fn on_round_response(
        &mut self,
        id: u64,
        peer: PeerId,
        response: CommitteeResponse,
        now: Instant,
    ) {
        self.step(id, RoundEvent::Answer(peer, response), now);
    }

    pub(super) fn on_round_failure(&mut self, id: u64, peer: PeerId, error: &str, now: Instant) {
        self.step(id, RoundEvent::Failure(peer, error.to_string()), now);
    }

    pub(super) fn poll_rounds(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .rounds
            .iter()
            .filter(|(_, r)| r.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            self.step(id, RoundEvent::Timeout, now);
        }
    }

    /// Applies `event` to round `id`; the round is put back unless it finished.
    pub(super) fn step(&mut self, id: u64, event: RoundEvent, now: Instant) {
        let Some(mut r) = self.rounds.remove(&id) else {
            return;
        };
        let outcome = self.apply(id, &mut r, event, now);
        match outcome {
            None => {
                self.rounds.insert(id, r);
            }
            Some(result) => {
                let label = match &result {
                    Ok(_) => "ok",
                    Err(ThresholdSignError::BelowThreshold { .. }) => "below_threshold",
                    Err(ThresholdSignError::InvalidShare { .. }) => "invalid_share",
                    Err(ThresholdSignError::Equivocation { .. }) => "equivocation",
                    Err(_) => "error",
                };
                self.metrics.signatures.with_label_values(&[label]).inc();
                if result.is_ok() {
                    self.metrics
                        .sign_latency_ms
                        .observe(now.duration_since(r.started).as_secs_f64() * 1000.0);
                }
                let _ = r.reply.send(result);
            }
        }
    }

    /// The round's result once it is decided.
    fn apply(
        &mut self,
        id: u64,
        r: &mut ProposerRound,
        event: RoundEvent,
        now: Instant,
    ) -> Option<Result<GroupSignature, ThresholdSignError>> {
        // Once the package is fixed, only the chosen signers matter (a commitment request's
        // late failure or refusal from another member changes nothing).
        let relevant = |peer: &PeerId| !r.sharing || r.signers.contains(peer);
        match event {
            RoundEvent::Timeout => return Some(Err(self.shortfall(r))),
            RoundEvent::OwnShare(share) => {
                if let Err(e) = r.round.on_share(&self.my_id, &share) {
                    return Some(Err(ThresholdSignError::Frost(e.to_string())));
                }
                r.answered.insert(self.me);
            }
            RoundEvent::OwnWithheld(refusal) => {
                return Some(Err(ThresholdSignError::Refused(refusal.to_string())))
            }
            RoundEvent::Failure(peer, _)
            | RoundEvent::Answer(peer, CommitteeResponse::Refused(_))
                if !relevant(&peer) =>
            {
                return None
            }
            RoundEvent::Failure(peer, error) => {
                r.failed.insert(peer, error);
            }
            RoundEvent::Answer(peer, CommitteeResponse::Refused(refusal)) => {
                r.refused.push((peer, refusal));
            }
            RoundEvent::Answer(peer, CommitteeResponse::Commitment(c)) if !r.sharing => {
                let member = member_id(&peer).ok()?;
                match r.round.on_commitment(&member, &c) {
                    Ok(()) => {
                        r.answered.insert(peer);
                    }
                    Err(e) => r.refused.push((peer, Refusal::Invalid(Refusal::text(e)))),
                }
            }
            RoundEvent::Answer(peer, CommitteeResponse::Share(s)) if r.sharing => {
                let member = member_id(&peer).ok()?;
                if let Err(e) = r.round.on_share(&member, &s) {
                    tracing::warn!(%peer, error = %e, "malformed signature share");
                    return Some(Err(ThresholdSignError::InvalidShare { member: peer }));
                }
                r.answered.insert(peer);
            }
            // A late commitment, an acknowledgement: nothing to do.
            RoundEvent::Answer(..) => return None,
        }
        if !r.sharing {
            if let Some(package) = r.round.signing_package() {
                if let Some(result) = self.fix_package(id, r, package, now) {
                    return Some(result);
                }
            }
        }
        if r.sharing && r.round.complete() {
            let signers = r.signers.clone();
            return Some(
                r.round
                    .aggregate()
                    .map(|signature| GroupSignature { signature, signers })
                    .map_err(|e| match e {
                        SignError::InvalidShare { member } => match member_peer(&member) {
                            Some(member) => ThresholdSignError::InvalidShare { member },
                            None => {
                                ThresholdSignError::Frost(format!("invalid share from {member}"))
                            }
                        },
                        other => ThresholdSignError::Frost(other.to_string()),
                    }),
            );
        }
        // Decided before the deadline once every member asked in this phase answered,
        // refused or failed and the round still cannot succeed (a member that is merely slow
        // is waited for, so it is never reported as missing).
        let need = usize::from(self.config.threshold);
        let lost = r.failed.len() + r.refused.len();
        let asked: &[PeerId] = if r.sharing {
            &r.signers
        } else {
            &self.cfg.members
        };
        let outstanding = asked.iter().any(|p| {
            !r.answered.contains(p)
                && !r.failed.contains_key(p)
                && !r.refused.iter().any(|(q, _)| q == p)
        });
        let impossible = if r.sharing {
            lost > 0
        } else {
            self.config.members.len().saturating_sub(lost) < need
        };
        (impossible && !outstanding).then(|| Err(self.shortfall(r)))
    }

    /// The package is fixed: sign our part (if chosen) and send it to the other signers.
    fn fix_package(
        &mut self,
        id: u64,
        r: &mut ProposerRound,
        package: SigningPackageMsg,
        now: Instant,
    ) -> Option<Result<GroupSignature, ThresholdSignError>> {
        r.sharing = true;
        r.signers = r.round.signers().iter().filter_map(member_peer).collect();
        r.answered.clear();
        r.failed.clear();
        r.refused.clear();
        r.deadline = now + self.cfg.phase_timeout;
        for peer in r.signers.clone() {
            if peer == self.me {
                match self.member_sign(&package) {
                    // Counted as answered once the guard change is durable.
                    Ok((share, seq)) => self.hold(seq, share, HeldFor::Round(id)),
                    Err(Refusal::Equivocation(slot)) => {
                        return Some(Err(ThresholdSignError::Equivocation {
                            slot,
                            members: vec![self.me],
                        }))
                    }
                    Err(refusal) => {
                        return Some(Err(ThresholdSignError::Refused(refusal.to_string())))
                    }
                }
            } else {
                self.send(
                    peer,
                    CommitteeRequest::Sign(package.clone()),
                    Purpose::Round(id),
                );
            }
        }
        None
    }

    /// The error of a round that cannot (or did not in time) gather what it needs.
    fn shortfall(&self, r: &ProposerRound) -> ThresholdSignError {
        let equivocating: Vec<PeerId> = r
            .refused
            .iter()
            .filter(|(_, x)| matches!(x, Refusal::Equivocation(_)))
            .map(|(p, _)| *p)
            .collect();
        if !equivocating.is_empty() {
            return ThresholdSignError::Equivocation {
                slot: r.slot,
                members: equivocating,
            };
        }
        let expected: Vec<PeerId> = if r.sharing {
            r.signers.clone()
        } else {
            self.cfg.members.clone()
        };
        let missing = expected
            .into_iter()
            .filter(|p| !r.answered.contains(p) && !r.refused.iter().any(|(q, _)| q == p))
            .collect();
        ThresholdSignError::BelowThreshold {
            have: r.answered.len(),
            need: usize::from(self.config.threshold),
            missing,
            refused: r.refused.iter().map(|(p, x)| (*p, x.to_string())).collect(),
        }
    }
}

fn guard_refusal(e: GuardError) -> Refusal {
    match e {
        GuardError::Equivocation(slot) => Refusal::Equivocation(slot),
        other => Refusal::Policy(Refusal::text(other)),
    }
}
