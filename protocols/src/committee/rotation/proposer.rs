//! The proposer's side of one round: [`ProposerRound`].

use std::time::Instant;

use super::msg::SignerCommitment;
use super::record::Lock;
use crate::committee::types::MemberId;

/// Where a [`ProposerRound`] stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProposerPhase {
    /// Waiting for `t` promises.
    Collecting,
    /// `t` promises, nothing locked: waiting for the DA layer's new blob.
    AwaitingBlob,
    /// The package is sent; waiting for the `t` shares.
    Signing,
    /// Aggregated: the height is sealed.
    Done,
    /// Abandoned (conflicting locks or a failed aggregation); the round times out.
    Failed,
}

/// What the proposer proposes once it holds `t` promises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Choice {
    /// The message of the highest lock among the promises.
    Locked(Vec<u8>),
    /// Nothing is locked: a new blob.
    New,
    /// Two different messages are locked at the highest lock round.
    Conflict(u64),
}

#[derive(Clone, Debug)]
struct Promised {
    member: MemberId,
    commitment: Vec<u8>,
    lock: Option<Lock>,
}

/// The proposer's state for one `(height, round)`: promises in arrival order (the first `t`
/// become the signers), the chosen message and the shares. Bounded by the committee size.
#[derive(Clone, Debug)]
pub struct ProposerRound {
    height: u64,
    round: u64,
    threshold: usize,
    promises: Vec<Promised>,
    phase: ProposerPhase,
    message: Vec<u8>,
    shares: Vec<Option<Vec<u8>>>,
    last_sent: Instant,
}

impl ProposerRound {
    pub(super) fn new(height: u64, round: u64, threshold: usize, now: Instant) -> Self {
        Self {
            height,
            round,
            threshold,
            promises: Vec::new(),
            phase: ProposerPhase::Collecting,
            message: Vec::new(),
            shares: Vec::new(),
            last_sent: now,
        }
    }

    /// The DA height.
    pub fn height(&self) -> u64 {
        self.height
    }

    /// The round.
    pub fn round(&self) -> u64 {
        self.round
    }

    /// The phase.
    pub fn phase(&self) -> ProposerPhase {
        self.phase
    }

    /// Promises received (at most the committee size; the first `t` are the signers).
    pub fn promises(&self) -> usize {
        self.promises.len()
    }

    /// Shares received (0 before [`ProposerPhase::Signing`]).
    pub fn shares(&self) -> usize {
        self.shares.iter().filter(|s| s.is_some()).count()
    }

    /// The proposed message (empty before it is chosen).
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    pub(super) fn last_sent(&self) -> Instant {
        self.last_sent
    }

    pub(super) fn set_last_sent(&mut self, now: Instant) {
        self.last_sent = now;
    }

    pub(super) fn has_promise(&self, member: &MemberId) -> bool {
        self.promises.iter().any(|p| p.member == *member)
    }

    /// Adds a promise while collecting; with the `t`-th, returns the choice.
    pub(super) fn add_promise(
        &mut self,
        member: MemberId,
        commitment: Vec<u8>,
        lock: Option<Lock>,
    ) -> Option<Choice> {
        if self.phase != ProposerPhase::Collecting || self.has_promise(&member) {
            return None;
        }
        self.promises.push(Promised {
            member,
            commitment,
            lock,
        });
        if self.promises.len() < self.threshold {
            return None;
        }
        let signers = &self.promises[..self.threshold];
        let Some(highest) = signers
            .iter()
            .filter_map(|p| p.lock.as_ref())
            .map(|l| l.round)
            .max()
        else {
            self.phase = ProposerPhase::AwaitingBlob;
            return Some(Choice::New);
        };
        let mut at_highest = signers
            .iter()
            .filter_map(|p| p.lock.as_ref())
            .filter(|l| l.round == highest);
        let first = at_highest.next().cloned();
        match first {
            Some(l) if at_highest.all(|o| o.message_hash == l.message_hash) => {
                Some(Choice::Locked(l.message))
            }
            _ => {
                self.phase = ProposerPhase::Failed;
                Some(Choice::Conflict(highest))
            }
        }
    }

    /// Fixes the message and enters [`ProposerPhase::Signing`]; returns the package.
    pub(super) fn start_signing(&mut self, message: Vec<u8>) -> Vec<SignerCommitment> {
        self.message = message;
        self.phase = ProposerPhase::Signing;
        self.shares = vec![None; self.threshold];
        self.package()
    }

    /// The signers and their commitments (the first `t` promises).
    pub(super) fn package(&self) -> Vec<SignerCommitment> {
        self.promises
            .iter()
            .take(self.threshold)
            .map(|p| SignerCommitment {
                member: p.member.clone(),
                commitment: p.commitment.clone(),
            })
            .collect()
    }

    /// Stores a signer's share while signing; true when all `t` are in.
    pub(super) fn add_share(&mut self, member: &MemberId, share: Vec<u8>) -> bool {
        if self.phase != ProposerPhase::Signing {
            return false;
        }
        let Some(i) = self
            .promises
            .iter()
            .take(self.threshold)
            .position(|p| p.member == *member)
        else {
            return false;
        };
        if let Some(slot) = self.shares.get_mut(i) {
            slot.get_or_insert(share);
        }
        self.shares.iter().all(Option::is_some)
    }

    /// The shares in package order, once all are in.
    pub(super) fn all_shares(&self) -> Option<Vec<Vec<u8>>> {
        self.shares.iter().cloned().collect()
    }

    /// Signers whose share is missing.
    pub(super) fn missing_shares(&self) -> Vec<MemberId> {
        self.promises
            .iter()
            .take(self.threshold)
            .zip(&self.shares)
            .filter(|(_, s)| s.is_none())
            .map(|(p, _)| p.member.clone())
            .collect()
    }

    pub(super) fn finish(&mut self, ok: bool) {
        self.phase = if ok {
            ProposerPhase::Done
        } else {
            ProposerPhase::Failed
        };
    }
}
