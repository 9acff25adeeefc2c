//! The accept phase of a round on [`HeightConsensus`]: promises, the proposal, signing
//! requests, shares and the aggregate.

use std::time::Instant;

use super::machine::HeightConsensus;
use super::msg::{
    Action, RotationError, RotationMsg, RoundCrypto, SignerCommitment, MAX_COMMITMENT_BYTES,
    MAX_SHARE_BYTES,
};
use super::proposer::{Choice, ProposerPhase};
use super::record::Lock;
use crate::committee::guard::message_hash;
use crate::committee::signing::MAX_SIGNED_MESSAGE_BYTES;
use crate::committee::types::MemberId;

impl<C: RoundCrypto> HeightConsensus<C> {
    /// `Promise` for the round we propose: with the `t`-th, fixes the signers and the
    /// message (the highest lock, or [`Action::ProposeNew`]). Promises of other rounds are
    /// ignored.
    ///
    /// # Errors
    /// [`RotationError::NotAMember`], [`RotationError::FromSelf`],
    /// [`RotationError::Malformed`] (a commitment over [`MAX_COMMITMENT_BYTES`], a lock not
    /// below the round or not matching its hash).
    pub fn on_promise(
        &mut self,
        from: &MemberId,
        height: u64,
        round: u64,
        commitment: Vec<u8>,
        lock: Option<Lock>,
        now: Instant,
    ) -> Result<Vec<Action>, RotationError> {
        self.check_sender(from)?;
        let malformed = |what| RotationError::Malformed {
            from: from.clone(),
            what,
        };
        if commitment.is_empty() || commitment.len() > MAX_COMMITMENT_BYTES {
            return Err(malformed("commitment size"));
        }
        if let Some(l) = &lock {
            if l.round >= round || !l.is_consistent() {
                return Err(malformed("lock not below the round or not its message"));
            }
        }
        let Some(p) = self.proposing.as_mut() else {
            return Ok(Vec::new());
        };
        if p.height() != height || p.round() != round {
            return Ok(Vec::new());
        }
        match p.add_promise(from.clone(), commitment, lock) {
            None => Ok(Vec::new()),
            Some(Choice::New) => Ok(vec![Action::ProposeNew { height, round }]),
            Some(Choice::Locked(message)) => Ok(self.start_signing(message, now)),
            Some(Choice::Conflict(lock_round)) => {
                Ok(vec![Action::Failed(RotationError::ConflictingLocks {
                    height,
                    round,
                    lock_round,
                })])
            }
        }
    }

    /// The DA layer's new blob for the round we propose (answering
    /// [`Action::ProposeNew`]); ignored when the round has moved on.
    ///
    /// # Errors
    /// [`RotationError::MessageTooLarge`] over [`MAX_SIGNED_MESSAGE_BYTES`].
    pub fn on_new_blob(
        &mut self,
        height: u64,
        round: u64,
        message: Vec<u8>,
        now: Instant,
    ) -> Result<Vec<Action>, RotationError> {
        if message.len() > MAX_SIGNED_MESSAGE_BYTES {
            return Err(RotationError::MessageTooLarge(message.len()));
        }
        match &self.proposing {
            Some(p)
                if p.height() == height
                    && p.round() == round
                    && p.phase() == ProposerPhase::AwaitingBlob =>
            {
                Ok(self.start_signing(message, now))
            }
            _ => Ok(Vec::new()),
        }
    }

    /// `Sign` from the round's proposer: sign iff we are still in its round, the package
    /// names `t` distinct members with our commitment, and our lock allows the message;
    /// the lock is persisted before the share is sent. A repeated request gets the same
    /// share again.
    ///
    /// # Errors
    /// [`RotationError::NotAMember`], [`RotationError::FromSelf`],
    /// [`RotationError::NotProposer`], [`RotationError::Malformed`] (a bad package or an
    /// oversized message), [`RotationError::Locked`], [`RotationError::Crypto`].
    pub fn on_sign_request(
        &mut self,
        from: &MemberId,
        height: u64,
        round: u64,
        message: Vec<u8>,
        package: Vec<SignerCommitment>,
        _now: Instant,
    ) -> Result<Vec<Action>, RotationError> {
        self.check_sender(from)?;
        self.check_proposer(from, height, round)?;
        if message.len() > MAX_SIGNED_MESSAGE_BYTES {
            return Err(RotationError::Malformed {
                from: from.clone(),
                what: "message over the signing cap",
            });
        }
        if let Some(other) = self.other_height(from, height) {
            return Ok(other);
        }
        if round < self.record.round {
            return Ok(vec![self.stale_reply(from)]);
        }
        let (share, mut actions) = self.sign_local(from, round, &message, &package)?;
        actions.push(Action::Send {
            to: from.clone(),
            msg: RotationMsg::Share {
                height,
                round,
                share,
            },
        });
        Ok(actions)
    }

    /// `Share` from a signer of the round we propose: with all `t`, aggregates
    /// ([`Action::Sealed`]). Shares of other rounds are ignored.
    ///
    /// # Errors
    /// [`RotationError::NotAMember`], [`RotationError::FromSelf`],
    /// [`RotationError::Malformed`] (a share over [`MAX_SHARE_BYTES`]).
    pub fn on_share(
        &mut self,
        from: &MemberId,
        height: u64,
        round: u64,
        share: Vec<u8>,
        _now: Instant,
    ) -> Result<Vec<Action>, RotationError> {
        self.check_sender(from)?;
        if share.len() > MAX_SHARE_BYTES {
            return Err(RotationError::Malformed {
                from: from.clone(),
                what: "share size",
            });
        }
        match self.proposing.as_mut() {
            Some(p) if p.height() == height && p.round() == round => {
                if p.add_share(from, share) {
                    Ok(self.aggregate())
                } else {
                    Ok(Vec::new())
                }
            }
            _ => Ok(Vec::new()),
        }
    }

    /// The member side of signing (also for our own share as the proposer): checks, signs,
    /// locks. Returns the share and the actions (the Persist) to carry out before it leaves.
    pub(super) fn sign_local(
        &mut self,
        from: &MemberId,
        round: u64,
        message: &[u8],
        package: &[SignerCommitment],
    ) -> Result<(Vec<u8>, Vec<Action>), RotationError> {
        let malformed = |what| RotationError::Malformed {
            from: from.clone(),
            what,
        };
        let t = self.config.threshold();
        if package.len() != t {
            return Err(malformed("package does not name exactly t signers"));
        }
        for (i, s) in package.iter().enumerate() {
            if !self.config.contains(&s.member) || package[..i].iter().any(|o| o.member == s.member)
            {
                return Err(malformed("package names a non-member or a member twice"));
            }
        }
        let Some(mine) = package.iter().find(|s| s.member == self.me) else {
            return Err(malformed("package does not name us"));
        };
        // Signing is only for the round we are in and promised (our commitment is for it).
        if round != self.record.round || self.commitment.as_ref() != Some(&mine.commitment) {
            return Err(malformed("package is not for our promise of this round"));
        }
        let hash = message_hash(message);
        if let Some(lock) = &self.record.lock {
            if lock.message_hash != hash && lock.round >= round {
                return Err(RotationError::Locked {
                    lock_round: lock.round,
                    round,
                });
            }
        }
        if let Some((h, share)) = &self.share {
            if *h == hash {
                return Ok((share.clone(), Vec::new()));
            }
        }
        let share = self
            .crypto
            .sign(self.record.height, round, message, package)?;
        self.share = Some((hash, share.clone()));
        self.record.lock = Some(Lock {
            round,
            message_hash: hash,
            message: message.to_vec(),
        });
        Ok((share, vec![Action::Persist(self.record.clone())]))
    }

    /// Sends the package to the other signers and adds our own share.
    fn start_signing(&mut self, message: Vec<u8>, now: Instant) -> Vec<Action> {
        let (height, round) = (self.record.height, self.record.round);
        let Some(p) = self.proposing.as_mut() else {
            return Vec::new();
        };
        let package = p.start_signing(message.clone());
        p.set_last_sent(now);
        let me = self.me.clone();
        let mut actions: Vec<Action> = package
            .iter()
            .filter(|s| s.member != me)
            .map(|s| Action::Send {
                to: s.member.clone(),
                msg: RotationMsg::Sign {
                    height,
                    round,
                    message: message.clone(),
                    package: package.clone(),
                },
            })
            .collect();
        match self.sign_local(&me, round, &message, &package) {
            Ok((share, persist)) => {
                // Our lock is persisted before any Sign leaves: the signers' shares can
                // complete the round only together with ours.
                let mut own = persist;
                own.append(&mut actions);
                actions = own;
                let complete = self
                    .proposing
                    .as_mut()
                    .is_some_and(|p| p.add_share(&me, share));
                if complete {
                    actions.extend(self.aggregate());
                }
            }
            Err(e) => {
                if let Some(p) = self.proposing.as_mut() {
                    p.finish(false);
                }
                return vec![Action::Failed(e)];
            }
        }
        actions
    }

    fn aggregate(&mut self) -> Vec<Action> {
        let (height, round) = (self.record.height, self.record.round);
        let Some(p) = self.proposing.as_mut() else {
            return Vec::new();
        };
        let Some(shares) = p.all_shares() else {
            return Vec::new();
        };
        let package = p.package();
        let message = p.message().to_vec();
        match self
            .crypto
            .aggregate(height, round, &message, &package, &shares)
        {
            Ok(signature) => {
                if let Some(p) = self.proposing.as_mut() {
                    p.finish(true);
                }
                vec![Action::Sealed {
                    height,
                    round,
                    message,
                    signature,
                }]
            }
            Err(e) => {
                if let Some(p) = self.proposing.as_mut() {
                    p.finish(false);
                }
                vec![Action::Failed(e.into())]
            }
        }
    }
}
