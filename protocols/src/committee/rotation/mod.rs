//! DA proposer rotation, failover and locking, as a pure state machine (Tahap 14A.2B.2:
//! "a single coordinator down does not stop the system").
//!
//! Any `t` live members of an `n`-member committee of threshold `t` keep sealing DA heights,
//! and no two different blobs are ever threshold-signed at one height. The protocol is
//! single-decree Paxos per height, with the FROST signing round as its accept phase: a
//! member's signature share is its vote, and `t` shares (one aggregate signature) decide.
//! It needs a majority threshold, `2t > n`: [`RotationConfig::new`] refuses anything else.
//!
//! # The protocol
//!
//! Per height `h` (a member's height is its DA tip + 1) the members run rounds `r = 0, 1, …`.
//!
//! - **Proposer** of `(h, r)`: `members[(h + r) mod n]`, the committee's member list in its
//!   configured order ([`proposer`]).
//! - **Member state** for its current height, durable ([`MemberRecord`], persisted before any
//!   message that depends on it leaves the member): `round`, the highest round it entered
//!   (a promise never to sign a package of a lower round at this height), and `lock`, the
//!   message it released a signature share for and the round of that share ([`Lock`]).
//! - **Round `r`** ([`ProposerRound`] on the proposer, [`HeightConsensus`] everywhere):
//!   1. the proposer sends [`RotationMsg::Prepare`] to every member;
//!   2. a member with `round ≤ r` sets `round = r` (durably), takes fresh nonces and answers
//!      [`RotationMsg::Promise`] with its commitment and its lock; a member with a higher round
//!      answers [`RotationMsg::Stale`] with it, so the proposer catches up;
//!   3. with `t` promises (its own first) the proposer fixes the signer set to exactly those
//!      `t` members (FROST binds it) and the message: the lock of the highest round among the
//!      `t` promises, or, when none is locked, a new blob ([`Action::ProposeNew`]);
//!   4. it sends [`RotationMsg::Sign`] to the signers; a signer signs iff its round is still
//!      `r` and its lock is absent, on the same message, or of a lower round than `r`; it
//!      durably sets `lock = (r, message)` **before** releasing its [`RotationMsg::Share`];
//!   5. with `t` shares the proposer aggregates: [`Action::Sealed`]. The DA layer applies the
//!      blob, gossips it, and every member that applies it calls
//!      [`HeightConsensus::on_sealed`] (the next height, round 0, no lock).
//! - **Timeouts**: a member still at height `h` [`RotationConfig::round_timeout`] after it
//!   entered round `r` (`base · 2^min(r, 6)`) enters `r + 1` (durably). If it proposes
//!   `r + 1` it starts it; otherwise it broadcasts [`RotationMsg::NewRound`]. Any message of a
//!   higher round at its height (`Prepare`, `Stale`, `NewRound`) moves a member up to that
//!   round; a message of another height makes it fetch blobs ([`Action::Fetch`]) or send
//!   them ([`Action::SendSealed`]).
//! - **Restart**: a member restarting in the middle of height `h` resumes from its record
//!   and enters `round + 1` ([`HeightConsensus::restore`]): it forgot its nonces and, as a
//!   proposer, the message it proposed, so it takes no further part in that round.
//!
//! # Why at most one message is signed per height
//!
//! Say a message `m` *completes* in round `r` when all `t` signers of the round-`r` package
//! hold a lock on it at round `r` (a share is released only after the lock is durable, so
//! this is necessary for an aggregate signature). Claim: every proposal of a later round at
//! `h` is `m`. Suppose not, and let `r* > r` be the first later round with a proposal
//! `m' ≠ m`. Its proposer had promises from a set `R*` of `t` members; the signers `S` of
//! round `r` are `t` members too, and `2t > n` gives a member `X` in `S ∩ R*`. `X` signed in
//! round `r` before it promised `r*` (after promising `r* > r` it refuses round-`r`
//! packages), and locks only move up, so `X` reported a lock of a round in `[r, r*)`. Every
//! lock of such a round is on `m`: locks of round `r` because the round-`r` proposer proposed
//! only `m`, locks of rounds in `(r, r*)` because those rounds proposed only `m`
//! (minimality of `r*`). The highest lock among `R*` is therefore on `m`, and the proposer
//! of `r*` proposed `m` — a contradiction. Two different messages cannot complete in one
//! round because its one proposer proposes one message (and a signer refuses a second one
//! at the round of its lock). So all completed messages at `h` are equal.
//!
//! Two details the argument rests on, both enforced here:
//! - *One proposal per round*, so that all locks of one round are on one message. The
//!   proposer's own promise is always among the `t` and it persists its own lock before any
//!   `Sign` leaves, so a proposer that crashes inside round `r` and comes back re-proposes
//!   its own lock. On top of that, a restarted member enters `round + 1` (it lost its nonces,
//!   and as the proposer the blob it proposed), so it takes no further part in `r`. The model
//!   keeps safety with either rule removed; with both removed a restarted proposer issues a
//!   second proposal in one round. A proposer that finds two messages locked at its highest
//!   lock round abandons the round ([`RotationError::ConflictingLocks`], an alarm).
//! - *Locks are per round, not per height.* A member may sign different messages at one
//!   height in different rounds (its earlier share never completed). The existing
//!   [`SlotGuard`](super::SlotGuard) refuses that for a `DaBlob` slot; the DA path of the
//!   daemon must check [`MemberRecord`] instead, or a locked member can block the height for
//!   good.
//!
//! With `2t ≤ n` two disjoint sets of `t` members exist (2 | 2 in 2-of-4), each of which can
//! seal its own blob: such configurations are refused.
//!
//! # Liveness
//!
//! Once some set of `t` members can exchange messages for long enough, with delays below
//! about a quarter of the largest round timeout (`2^6 · base`; a round needs four message
//! delays: prepare, promise, sign, share), some round completes: proposers rotate through
//! all `n` members, so within `n` rounds one of the `t` proposes; `NewRound` and `Prepare`
//! pull every member of the set into the highest round any of them entered, so their round
//! windows line up; and the timeout doubles until it exceeds the time a round needs. Each
//! round whose proposer is down costs a full timeout, up to `2^6 · base` once the rounds at
//! a height are high (after a long outage): choose `base` with that in mind.
//!
//! Everything is pure: time is passed in (`now: Instant`), messages and persistence are
//! [`Action`]s for the caller, and the threshold scheme is behind [`RoundCrypto`] (FROST in
//! the daemon, an opaque model in the property test, `committee/tests/rotation/`).

mod accept;
mod author;
mod frost;
mod machine;
mod msg;
mod proposer;
mod record;
mod wire;

use std::time::Duration;

pub use author::{check_author, AuthorError};
pub use frost::{FrostRoundCrypto, MAX_ROUND_NONCES};
pub use machine::{HeightConsensus, RotationStatus};
pub use msg::{
    Action, CryptoError, RotationError, RotationMsg, RoundCrypto, SignerCommitment,
    MAX_COMMITMENT_BYTES, MAX_ROTATION_MSG_BYTES, MAX_SHARE_BYTES,
};
pub use proposer::{ProposerPhase, ProposerRound};
pub use record::{Lock, MemberRecord, RecordError, MAX_MEMBER_RECORD_BYTES, MEMBER_RECORD_VERSION};
pub use wire::{RotationRequest, MAX_FORWARD_EVENTS, MAX_ROTATION_REQUEST_BYTES};

use super::types::{CommitteeConfig, ConfigError, MemberId};

/// The round timeout doubles with the round up to `2^MAX_TIMEOUT_DOUBLINGS` times the base.
pub const MAX_TIMEOUT_DOUBLINGS: u32 = 6;

/// Why a rotation configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RotationConfigError {
    /// The committee itself is invalid.
    #[error(transparent)]
    Committee(#[from] ConfigError),
    /// `2t ≤ n`: two disjoint sets of `t` members could each sign a blob at one height.
    #[error(
        "threshold {threshold} of {members} members: proposer rotation needs 2t > n \
         (two sets of t members must always share one)"
    )]
    NoMajority {
        /// The threshold `t`.
        threshold: u16,
        /// The number of members `n`.
        members: usize,
    },
    /// A zero base timeout or resend interval.
    #[error("the round timeout and the resend interval must be positive")]
    ZeroTimeout,
}

/// The committee as the rotation sees it: members in order, threshold `t` (`2t > n`), the
/// base round timeout and the proposer's resend interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RotationConfig {
    members: Vec<MemberId>,
    threshold: u16,
    base_timeout: Duration,
    resend: Duration,
}

impl RotationConfig {
    /// The rotation of `committee` with round timeouts `base_timeout · 2^min(r, 6)`; the
    /// proposer re-sends unanswered requests every `base_timeout / 4` (at least 1 ms).
    ///
    /// # Errors
    /// [`RotationConfigError::Committee`] for an invalid committee,
    /// [`RotationConfigError::NoMajority`] when `2t ≤ n`,
    /// [`RotationConfigError::ZeroTimeout`] for a zero `base_timeout`.
    pub fn new(
        committee: &CommitteeConfig,
        base_timeout: Duration,
    ) -> Result<Self, RotationConfigError> {
        committee.validate()?;
        let n = committee.members.len();
        if 2 * usize::from(committee.threshold) <= n {
            return Err(RotationConfigError::NoMajority {
                threshold: committee.threshold,
                members: n,
            });
        }
        if base_timeout.is_zero() {
            return Err(RotationConfigError::ZeroTimeout);
        }
        Ok(Self {
            members: committee.members.clone(),
            threshold: committee.threshold,
            base_timeout,
            resend: (base_timeout / 4).max(Duration::from_millis(1)),
        })
    }

    /// A configuration without the `2t > n` check, to show in tests what goes wrong.
    #[cfg(test)]
    pub(crate) fn new_unchecked(committee: &CommitteeConfig, base_timeout: Duration) -> Self {
        Self {
            members: committee.members.clone(),
            threshold: committee.threshold,
            base_timeout,
            resend: (base_timeout / 4).max(Duration::from_millis(1)),
        }
    }

    /// The same configuration with another resend interval.
    ///
    /// # Errors
    /// [`RotationConfigError::ZeroTimeout`] for a zero interval.
    pub fn with_resend(mut self, resend: Duration) -> Result<Self, RotationConfigError> {
        if resend.is_zero() {
            return Err(RotationConfigError::ZeroTimeout);
        }
        self.resend = resend;
        Ok(self)
    }

    /// The members, in the committee's order.
    pub fn members(&self) -> &[MemberId] {
        &self.members
    }

    /// The threshold `t`.
    pub fn threshold(&self) -> usize {
        usize::from(self.threshold)
    }

    /// The base round timeout (round 0).
    pub fn base_timeout(&self) -> Duration {
        self.base_timeout
    }

    /// How long the proposer waits before re-sending an unanswered `Prepare` or `Sign`.
    pub fn resend(&self) -> Duration {
        self.resend
    }

    /// How long a member stays in `round` before it moves on: [`round_timeout`].
    pub fn round_timeout(&self, round: u64) -> Duration {
        round_timeout(self.base_timeout, round)
    }

    /// The proposer of `(height, round)`: [`proposer`].
    pub fn proposer(&self, height: u64, round: u64) -> &MemberId {
        // A RotationConfig always has members (validated at construction).
        let n = self.members.len().max(1) as u128;
        let i = ((u128::from(height) + u128::from(round)) % n) as usize;
        &self.members[i.min(self.members.len().saturating_sub(1))]
    }

    /// True when `member` is in the committee.
    pub fn contains(&self, member: &MemberId) -> bool {
        self.members.contains(member)
    }
}

/// The proposer of `(height, round)`: `members[(height + round) mod n]`, or `None` for an
/// empty list. Consecutive rounds of a height and round 0 of consecutive heights rotate
/// through all members.
pub fn proposer(members: &[MemberId], height: u64, round: u64) -> Option<&MemberId> {
    let n = members.len() as u128;
    if n == 0 {
        return None;
    }
    members.get(((u128::from(height) + u128::from(round)) % n) as usize)
}

/// The round timeout: `base · 2^min(round, MAX_TIMEOUT_DOUBLINGS)` (saturating).
pub fn round_timeout(base: Duration, round: u64) -> Duration {
    let doublings = round.min(u64::from(MAX_TIMEOUT_DOUBLINGS)) as u32;
    base.saturating_mul(1u32 << doublings)
}
