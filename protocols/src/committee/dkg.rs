//! One member's side of the FROST distributed key generation (no trusted dealer).
//!
//! Flow, for a committee of `n` members with threshold `t`:
//! 1. [`DkgSession::new`] gives the member's [`Round1Message`] (its polynomial commitment and
//!    proof of knowledge); the member sends the **same** message to every other member.
//! 2. [`DkgSession::on_round1`] takes the others' round-1 messages; once all `n-1` arrived it
//!    returns one [`Round2Message`] per other member. A round-2 message carries a secret
//!    share: it goes only to its addressee, over a confidential authenticated channel.
//! 3. [`DkgSession::on_round2`] takes the round-2 messages addressed to this member; once all
//!    `n-1` arrived it returns the [`DkgOutput`] (key-share file, group key, transcript).
//!
//! Round-2 messages that arrive before round 1 completes are buffered (at most one per
//! member); if they were all there when round 1 completes, [`DkgSession::output`] is ready as
//! soon as [`DkgSession::on_round1`] returns.
//!
//! The protocol assumes round 1 is a broadcast: a member that sends different commitments to
//! different members makes them derive different keys. Members therefore compare
//! [`DkgOutput::transcript`] (a hash of every round-1 message and the configuration) before
//! adopting the group key.
//!
//! The `from` of every call is the sender as authenticated by the transport. Errors that
//! prove misbehaviour name the member ([`DkgError::Culprit`]) and abort the session; messages
//! from non-members, for another epoch, duplicates and messages of the wrong direction are
//! refused without affecting the session.

use std::collections::BTreeMap;

use frost_ed25519 as frost;
use frost_ed25519::keys::dkg;
use rand_core_06::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::types::{cbor_wire, CommitteeConfig, ConfigError, GroupKey, KeyShareFile, MemberId};

/// Largest encoded [`DkgMessage`], in bytes. A round-1 message of a 64-member committee (64
/// coefficient commitments of 32 bytes and a 64-byte proof) is about 2.2 KiB.
pub const MAX_DKG_MESSAGE_BYTES: usize = 8 * 1024;

/// Domain separator of the DKG transcript hash.
const TRANSCRIPT_DOMAIN: &[u8] = b"dsdn/committee-dkg-transcript/v1";

/// A member's round-1 message: its commitment and proof of knowledge, in frost's encoding.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round1Message {
    /// The committee epoch of the ceremony.
    pub epoch: u64,
    /// `frost_ed25519::keys::dkg::round1::Package`, serialised.
    #[serde(with = "serde_bytes")]
    pub package: Vec<u8>,
}

/// A round-2 message from one member to another: a secret share, in frost's encoding.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Round2Message {
    /// The committee epoch of the ceremony.
    pub epoch: u64,
    /// `frost_ed25519::keys::dkg::round2::Package`, serialised (secret!).
    #[serde(with = "serde_bytes")]
    pub package: Vec<u8>,
}

impl std::fmt::Debug for Round1Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Round1Message(epoch {}, {} bytes)",
            self.epoch,
            self.package.len()
        )
    }
}

impl std::fmt::Debug for Round2Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Round2Message(epoch {}, <redacted>)", self.epoch)
    }
}

/// A DKG message on the wire (at most [`MAX_DKG_MESSAGE_BYTES`] of CBOR).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DkgMessage {
    /// Sent to every other member.
    Round1(Round1Message),
    /// Sent to one member only.
    Round2(Round2Message),
}

cbor_wire!(DkgMessage, MAX_DKG_MESSAGE_BYTES);

/// The result of a completed DKG for one member.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DkgOutput {
    /// The member's key material, to be stored in its data directory.
    pub key_share: KeyShareFile,
    /// The group public key (the new `da_authority`).
    pub group_key: GroupKey,
    /// SHA-256 over the configuration and every member's round-1 message: equal on all
    /// members exactly when they all saw the same commitments. Compare before adopting.
    pub transcript: [u8; 32],
}

/// Why a DKG message is refused or the session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DkgError {
    /// The configuration is invalid or this member is not in it.
    #[error("DKG configuration: {0}")]
    Config(#[from] ConfigError),
    /// The sender is not a member of the committee.
    #[error("DKG message from non-member {0}")]
    UnknownMember(MemberId),
    /// A message from this member to itself.
    #[error("DKG message from ourselves")]
    FromSelf,
    /// The message belongs to another epoch's ceremony.
    #[error("DKG message for epoch {got}, this ceremony is epoch {expected}")]
    WrongEpoch {
        /// This ceremony's epoch.
        expected: u64,
        /// The message's epoch.
        got: u64,
    },
    /// A second message of the same round from the same member.
    #[error("duplicate round-{round} DKG message from {member}")]
    Duplicate {
        /// The sender.
        member: MemberId,
        /// 1 or 2.
        round: u8,
    },
    /// A message that proves the member misbehaved (malformed package, wrong threshold,
    /// invalid proof of knowledge, a share that fails verification). The session is aborted.
    #[error("DKG aborted: member {member} misbehaved: {reason}")]
    Culprit {
        /// The member at fault.
        member: MemberId,
        /// What it did.
        reason: String,
    },
    /// The session already failed (the first error said why) or finished.
    #[error("DKG session is {0}")]
    Closed(&'static str),
    /// FROST refused for a reason that names no member (a bug or an inconsistent state).
    #[error("DKG failed: {0}")]
    Frost(String),
}

enum State {
    Round1(Box<dkg::round1::SecretPackage>),
    Round2(Box<dkg::round2::SecretPackage>),
    Done(Box<DkgOutput>),
    Failed,
}

/// One member's DKG state machine. Pure: the caller moves the messages.
pub struct DkgSession {
    config: CommitteeConfig,
    me: MemberId,
    my_round1: Vec<u8>,
    state: State,
    round1: BTreeMap<frost::Identifier, dkg::round1::Package>,
    round1_bytes: BTreeMap<frost::Identifier, Vec<u8>>,
    round2: BTreeMap<frost::Identifier, dkg::round2::Package>,
}

impl std::fmt::Debug for DkgSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DkgSession")
            .field("epoch", &self.config.epoch)
            .field("me", &self.me)
            .field("round1_received", &self.round1.len())
            .field("round2_received", &self.round2.len())
            .finish()
    }
}

impl DkgSession {
    /// Starts the ceremony for member `me` of `config`; returns the session and the round-1
    /// message to send to every other member.
    ///
    /// # Errors
    /// [`DkgError::Config`] for an invalid configuration or when `me` is not a member.
    pub fn new<R: RngCore + CryptoRng>(
        config: CommitteeConfig,
        me: MemberId,
        rng: &mut R,
    ) -> Result<(Self, Round1Message), DkgError> {
        config.validate()?;
        let id = config
            .identifier(&me)
            .ok_or_else(|| ConfigError::NotAMember(me.clone()))?;
        let (secret, package) = dkg::part1(id, config.size(), config.threshold, rng)
            .map_err(|e| DkgError::Frost(e.to_string()))?;
        let bytes = package
            .serialize()
            .map_err(|e| DkgError::Frost(e.to_string()))?;
        let msg = Round1Message {
            epoch: config.epoch,
            package: bytes.clone(),
        };
        let session = Self {
            config,
            me,
            my_round1: bytes,
            state: State::Round1(Box::new(secret)),
            round1: BTreeMap::new(),
            round1_bytes: BTreeMap::new(),
            round2: BTreeMap::new(),
        };
        Ok((session, msg))
    }

    /// The committee configuration.
    pub fn config(&self) -> &CommitteeConfig {
        &self.config
    }

    /// The result, once the DKG completed.
    pub fn output(&self) -> Option<&DkgOutput> {
        match &self.state {
            State::Done(out) => Some(out),
            _ => None,
        }
    }

    /// Members whose round-1 message has not arrived yet.
    pub fn missing_round1(&self) -> Vec<MemberId> {
        self.missing(|id| self.round1.contains_key(id))
    }

    /// Members whose round-2 message has not arrived yet.
    pub fn missing_round2(&self) -> Vec<MemberId> {
        self.missing(|id| self.round2.contains_key(id))
    }

    fn missing(&self, have: impl Fn(&frost::Identifier) -> bool) -> Vec<MemberId> {
        self.config
            .members
            .iter()
            .filter(|m| **m != self.me)
            .filter(|m| self.config.identifier(m).is_some_and(|id| !have(&id)))
            .cloned()
            .collect()
    }

    /// Checks the sender and the epoch; returns the sender's identifier.
    fn sender(&self, from: &MemberId, epoch: u64) -> Result<frost::Identifier, DkgError> {
        match self.state {
            State::Failed => return Err(DkgError::Closed("failed")),
            State::Done(_) => return Err(DkgError::Closed("finished")),
            _ => {}
        }
        let id = self
            .config
            .identifier(from)
            .ok_or_else(|| DkgError::UnknownMember(from.clone()))?;
        if *from == self.me {
            return Err(DkgError::FromSelf);
        }
        if epoch != self.config.epoch {
            return Err(DkgError::WrongEpoch {
                expected: self.config.epoch,
                got: epoch,
            });
        }
        Ok(id)
    }

    fn fail(&mut self, member: &MemberId, reason: impl Into<String>) -> DkgError {
        self.state = State::Failed;
        DkgError::Culprit {
            member: member.clone(),
            reason: reason.into(),
        }
    }

    /// Maps a frost error to a culprit (aborting) when frost names one.
    fn frost_error(&mut self, e: &frost::Error) -> DkgError {
        let culprit = e
            .culprits()
            .first()
            .and_then(|id| self.config.member(id).cloned());
        match culprit {
            Some(member) => self.fail(&member, e.to_string()),
            None => {
                self.state = State::Failed;
                DkgError::Frost(e.to_string())
            }
        }
    }

    /// Takes a round-1 message from `from`. Returns the round-2 messages to send (one per other
    /// member) when this was the last missing one, `None` while some are missing.
    ///
    /// # Errors
    /// See [`DkgError`]; [`DkgError::Culprit`] (malformed package, wrong threshold, invalid
    /// proof of knowledge) aborts the session.
    pub fn on_round1(
        &mut self,
        from: &MemberId,
        msg: &Round1Message,
    ) -> Result<Option<Vec<(MemberId, Round2Message)>>, DkgError> {
        let id = self.sender(from, msg.epoch)?;
        if !matches!(self.state, State::Round1(_)) || self.round1.contains_key(&id) {
            return Err(DkgError::Duplicate {
                member: from.clone(),
                round: 1,
            });
        }
        let Ok(package) = dkg::round1::Package::deserialize(&msg.package) else {
            return Err(self.fail(from, "malformed round-1 package"));
        };
        let coefficients = package.commitment().serialize().map(|c| c.len());
        if coefficients != Ok(usize::from(self.config.threshold)) {
            return Err(self.fail(
                from,
                "round-1 commitment is not of the committee's threshold",
            ));
        }
        self.round1.insert(id, package);
        self.round1_bytes.insert(id, msg.package.clone());
        if self.round1.len() + 1 < self.config.members.len() {
            return Ok(None);
        }

        let State::Round1(secret) = std::mem::replace(&mut self.state, State::Failed) else {
            return Err(DkgError::Closed("failed"));
        };
        let (secret2, packages) = match dkg::part2(*secret, &self.round1) {
            Ok(r) => r,
            Err(e) => return Err(self.frost_error(&e)),
        };
        let mut out = Vec::with_capacity(packages.len());
        for (to, package) in &packages {
            let member = self
                .config
                .member(to)
                .cloned()
                .ok_or_else(|| DkgError::Frost("round-2 package for a non-member".into()))?;
            let package = package
                .serialize()
                .map_err(|e| DkgError::Frost(e.to_string()))?;
            out.push((
                member,
                Round2Message {
                    epoch: self.config.epoch,
                    package,
                },
            ));
        }
        self.state = State::Round2(Box::new(secret2));
        self.try_finish()?;
        Ok(Some(out))
    }

    /// Takes a round-2 message from `from` (addressed to this member). Returns the output when
    /// this was the last missing one. May arrive before round 1 completed: it is then kept
    /// until it can be verified.
    ///
    /// # Errors
    /// See [`DkgError`]; a malformed package or a share that does not match the sender's
    /// round-1 commitment ([`DkgError::Culprit`]) aborts the session.
    pub fn on_round2(
        &mut self,
        from: &MemberId,
        msg: &Round2Message,
    ) -> Result<Option<DkgOutput>, DkgError> {
        let id = self.sender(from, msg.epoch)?;
        if self.round2.contains_key(&id) {
            return Err(DkgError::Duplicate {
                member: from.clone(),
                round: 2,
            });
        }
        let Ok(package) = dkg::round2::Package::deserialize(&msg.package) else {
            return Err(self.fail(from, "malformed round-2 package"));
        };
        self.round2.insert(id, package);
        self.try_finish()?;
        Ok(self.output().cloned())
    }

    /// Runs part 3 once in round 2 with every round-2 package.
    fn try_finish(&mut self) -> Result<(), DkgError> {
        let State::Round2(secret) = &self.state else {
            return Ok(());
        };
        if self.round2.len() + 1 < self.config.members.len() {
            return Ok(());
        }
        let (key_package, public_key_package) = match dkg::part3(secret, &self.round1, &self.round2)
        {
            Ok(r) => r,
            Err(e) => return Err(self.frost_error(&e)),
        };
        let key_share = match KeyShareFile::new(
            self.config.clone(),
            self.me.clone(),
            key_package,
            public_key_package,
        ) {
            Ok(k) => k,
            Err(e) => {
                self.state = State::Failed;
                return Err(DkgError::Frost(e.to_string()));
            }
        };
        let output = DkgOutput {
            group_key: key_share.group_key(),
            transcript: self.transcript(),
            key_share,
        };
        self.state = State::Done(Box::new(output));
        Ok(())
    }

    fn transcript(&self) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(TRANSCRIPT_DOMAIN);
        h.update(self.config.epoch.to_be_bytes());
        h.update(self.config.threshold.to_be_bytes());
        for member in &self.config.members {
            let package = if *member == self.me {
                Some(&self.my_round1)
            } else {
                self.config
                    .identifier(member)
                    .and_then(|id| self.round1_bytes.get(&id))
            };
            let package = package.map(Vec::as_slice).unwrap_or_default();
            for field in [member.as_bytes(), package] {
                h.update((field.len() as u64).to_be_bytes());
                h.update(field);
            }
        }
        h.finalize().into()
    }
}
