//! Threshold signing: the member side ([`Signer`]) and the proposer side ([`SigningRound`]).
//!
//! One round, for a message and a [`Slot`]:
//! 1. the proposer asks members for a commitment; each answers [`Signer::commit`] →
//!    [`CommitmentMsg`] (fresh nonces, kept in the member's memory only);
//! 2. once `t` commitments arrived, [`SigningRound::signing_package`] fixes the signers — the
//!    first `t` members whose commitments arrived — and gives the [`SigningPackageMsg`]
//!    (message and the `t` commitments) to send to exactly those members
//!    ([`SigningRound::signers`]);
//! 3. each signer answers [`Signer::sign`] → [`SignatureShareMsg`], after its [`SlotGuard`]
//!    allowed the message for the slot (persist the guard before releasing the share);
//! 4. [`SigningRound::aggregate`] sums the `t` shares into a plain 64-byte Ed25519 signature
//!    that verifies against the [`GroupKey`](super::GroupKey); an invalid share names its
//!    member ([`SignError::InvalidShare`]).
//!
//! Nonces are used at most once: [`Signer::sign`] removes them before signing, whatever the
//! outcome. A signer that fails to answer cannot be replaced within a round (the binding
//! factors cover the exact signer set): the proposer starts a new round with new commitments.

use std::collections::BTreeMap;

use frost_ed25519 as frost;
use rand_core_06::{CryptoRng, RngCore};
use serde::{Deserialize, Serialize};

use super::guard::{message_hash, GuardError, Slot, SlotGuard};
use super::types::{cbor_wire, KeyShareFile, MemberId, MAX_MEMBERS};

/// Largest message that can be threshold-signed, in bytes (a DA blob's signing bytes fit).
pub const MAX_SIGNED_MESSAGE_BYTES: usize = 256 * 1024;

/// Largest encoded [`CommitmentMsg`], in bytes (about 120 are used).
pub const MAX_COMMITMENT_MSG_BYTES: usize = 512;

/// Largest encoded [`SigningPackageMsg`], in bytes: the message plus up to [`MAX_MEMBERS`]
/// commitments of about 100 bytes each.
pub const MAX_SIGNING_PACKAGE_MSG_BYTES: usize = MAX_SIGNED_MESSAGE_BYTES + 16 * 1024;

/// Largest encoded [`SignatureShareMsg`], in bytes (about 90 are used).
pub const MAX_SIGNATURE_SHARE_MSG_BYTES: usize = 256;

/// Most slots a [`Signer`] keeps nonces for; committing to one more drops the oldest.
pub const MAX_OPEN_SLOTS: usize = 64;

/// A member's signing commitment for one slot.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitmentMsg {
    /// The committee epoch.
    pub epoch: u64,
    /// The slot.
    pub slot: Slot,
    /// `frost_ed25519::round1::SigningCommitments`, serialised.
    #[serde(with = "serde_bytes")]
    pub commitments: Vec<u8>,
}

/// The proposer's signing package: the message and the chosen signers' commitments.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SigningPackageMsg {
    /// The committee epoch.
    pub epoch: u64,
    /// The slot.
    pub slot: Slot,
    /// `frost_ed25519::SigningPackage` (commitments and message), serialised.
    #[serde(with = "serde_bytes")]
    pub package: Vec<u8>,
}

/// A member's signature share.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignatureShareMsg {
    /// The committee epoch.
    pub epoch: u64,
    /// The slot.
    pub slot: Slot,
    /// `frost_ed25519::round2::SignatureShare`, serialised (32 bytes).
    #[serde(with = "serde_bytes")]
    pub share: Vec<u8>,
}

impl SigningPackageMsg {
    /// The message the package asks to sign (what a member's signing policy looks at).
    ///
    /// # Errors
    /// [`SignError::Malformed`] when the package does not parse;
    /// [`SignError::MessageTooLarge`] over [`MAX_SIGNED_MESSAGE_BYTES`].
    pub fn message(&self) -> Result<Vec<u8>, SignError> {
        let package = frost::SigningPackage::deserialize(&self.package)
            .map_err(|_| malformed(None, "signing package does not parse"))?;
        let message = package.message();
        if message.len() > MAX_SIGNED_MESSAGE_BYTES {
            return Err(SignError::MessageTooLarge(message.len()));
        }
        Ok(message.clone())
    }
}

cbor_wire!(CommitmentMsg, MAX_COMMITMENT_MSG_BYTES);
cbor_wire!(SigningPackageMsg, MAX_SIGNING_PACKAGE_MSG_BYTES);
cbor_wire!(SignatureShareMsg, MAX_SIGNATURE_SHARE_MSG_BYTES);

/// Why a signing step is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignError {
    /// The sender is not a member of the committee.
    #[error("signing message from non-member {0}")]
    UnknownMember(MemberId),
    /// The message is for another epoch.
    #[error("signing message for epoch {got}, the committee is at epoch {expected}")]
    WrongEpoch {
        /// Our epoch.
        expected: u64,
        /// The message's epoch.
        got: u64,
    },
    /// The message is for another slot.
    #[error("signing message for {got}, expected {expected}")]
    WrongSlot {
        /// The slot expected.
        expected: Slot,
        /// The message's slot.
        got: Slot,
    },
    /// The message to sign is over [`MAX_SIGNED_MESSAGE_BYTES`].
    #[error("message of {0} bytes is over the signing cap")]
    MessageTooLarge(usize),
    /// A package, commitment or share that does not parse, or a package that is not a valid
    /// request (fewer than `t` or unknown signers, not our commitment). `member` is the sender
    /// when known.
    #[error("malformed signing message{}: {what}", member.as_ref().map(|m| format!(" from {m}")).unwrap_or_default())]
    Malformed {
        /// The sender, when the error is attributable.
        member: Option<MemberId>,
        /// What is wrong.
        what: String,
    },
    /// A second, different commitment or share from the same member.
    #[error("duplicate signing message from {0}")]
    Duplicate(MemberId),
    /// A share from a member that is not one of the round's signers.
    #[error("{0} is not a signer of this round")]
    NotASigner(MemberId),
    /// No nonces for the slot: never committed, already used, or dropped.
    #[error("no open commitment for {0}")]
    NoNonces(Slot),
    /// The signing guard refuses the slot (equivocation, below low water, full).
    #[error(transparent)]
    Guard(#[from] GuardError),
    /// Fewer than `t` commitments or shares.
    #[error("{have} of the {need} needed {what}")]
    NotEnough {
        /// `commitments` or `shares`.
        what: &'static str,
        /// How many arrived.
        have: usize,
        /// The threshold.
        need: usize,
    },
    /// A signature share does not verify: the member is named.
    #[error("invalid signature share from {member}")]
    InvalidShare {
        /// The member whose share is invalid.
        member: MemberId,
    },
    /// FROST refused for a reason that names no member.
    #[error("threshold signing failed: {0}")]
    Frost(String),
}

impl SignError {
    /// True when the refusal is an equivocation (a different message for a signed slot).
    pub fn is_equivocation(&self) -> bool {
        matches!(self, SignError::Guard(GuardError::Equivocation(_)))
    }
}

fn malformed(member: Option<&MemberId>, what: impl Into<String>) -> SignError {
    SignError::Malformed {
        member: member.cloned(),
        what: what.into(),
    }
}

/// A member's signing side: its key share, its guard and its open nonces.
pub struct Signer {
    key_share: KeyShareFile,
    guard: SlotGuard,
    nonces: BTreeMap<Slot, (u64, frost::round1::SigningNonces)>,
    next_seq: u64,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("member", self.key_share.member())
            .field("open_slots", &self.nonces.keys().collect::<Vec<_>>())
            .field("guarded_slots", &self.guard.len())
            .finish()
    }
}

impl Signer {
    /// A signer with its key share and the guard it persisted (or a new one).
    pub fn new(key_share: KeyShareFile, guard: SlotGuard) -> Self {
        Self {
            key_share,
            guard,
            nonces: BTreeMap::new(),
            next_seq: 0,
        }
    }

    /// The key share.
    pub fn key_share(&self) -> &KeyShareFile {
        &self.key_share
    }

    /// The guard, to persist after [`Signer::sign`] and before releasing the share.
    pub fn guard(&self) -> &SlotGuard {
        &self.guard
    }

    /// Mutable access to the guard (to prune DA heights).
    pub fn guard_mut(&mut self) -> &mut SlotGuard {
        &mut self.guard
    }

    /// Slots with open nonces.
    pub fn open_slots(&self) -> usize {
        self.nonces.len()
    }

    /// Fresh nonces for `slot` (replacing any open ones for it) and their commitment. At most
    /// [`MAX_OPEN_SLOTS`] slots are open: the oldest is dropped beyond that.
    ///
    /// # Errors
    /// [`SignError::Frost`] if the commitment cannot be serialised (not expected).
    pub fn commit<R: RngCore + CryptoRng>(
        &mut self,
        slot: Slot,
        rng: &mut R,
    ) -> Result<CommitmentMsg, SignError> {
        let (nonces, commitments) =
            frost::round1::commit(self.key_share.key_package().signing_share(), rng);
        let bytes = commitments
            .serialize()
            .map_err(|e| SignError::Frost(e.to_string()))?;
        self.nonces.insert(slot, (self.next_seq, nonces));
        self.next_seq += 1;
        while self.nonces.len() > MAX_OPEN_SLOTS {
            let oldest = self
                .nonces
                .iter()
                .min_by_key(|(_, (seq, _))| *seq)
                .map(|(s, _)| *s);
            if let Some(s) = oldest {
                self.nonces.remove(&s);
            }
        }
        Ok(CommitmentMsg {
            epoch: self.key_share.config().epoch,
            slot,
            commitments: bytes,
        })
    }

    /// Signs the package's message for `slot` with the nonces committed for it, after checking
    /// the package (epoch, slot, ≥ t known signers, our commitment) and the guard, and records
    /// the message in the guard. The nonces are consumed whatever the outcome, once the package
    /// is well formed and names our commitment.
    ///
    /// # Errors
    /// [`SignError::Guard`] (e.g. equivocation), [`SignError::NoNonces`], or a malformed package.
    pub fn sign(
        &mut self,
        slot: Slot,
        package: &SigningPackageMsg,
    ) -> Result<SignatureShareMsg, SignError> {
        let config = self.key_share.config();
        if package.epoch != config.epoch {
            return Err(SignError::WrongEpoch {
                expected: config.epoch,
                got: package.epoch,
            });
        }
        if package.slot != slot {
            return Err(SignError::WrongSlot {
                expected: slot,
                got: package.slot,
            });
        }
        let signing_package = frost::SigningPackage::deserialize(&package.package)
            .map_err(|_| malformed(None, "signing package does not parse"))?;
        let signers = signing_package.signing_commitments();
        if signers.len() < usize::from(config.threshold) || signers.len() > config.members.len() {
            return Err(SignError::NotEnough {
                what: "commitments",
                have: signers.len(),
                need: usize::from(config.threshold),
            });
        }
        if signers.keys().any(|id| config.member(id).is_none()) {
            return Err(malformed(None, "signing package names a non-member"));
        }
        let message = signing_package.message();
        if message.len() > MAX_SIGNED_MESSAGE_BYTES {
            return Err(SignError::MessageTooLarge(message.len()));
        }
        let hash = message_hash(message);
        self.guard.check(&slot, &hash)?;
        let Some((_, nonces)) = self.nonces.get(&slot) else {
            return Err(SignError::NoNonces(slot));
        };
        let me = self.key_share.key_package().identifier();
        if signers.get(me) != Some(nonces.commitments()) {
            return Err(malformed(None, "signing package lacks our commitment"));
        }
        let Some((_, nonces)) = self.nonces.remove(&slot) else {
            return Err(SignError::NoNonces(slot));
        };
        let share = frost::round2::sign(&signing_package, &nonces, self.key_share.key_package())
            .map_err(|e| SignError::Frost(e.to_string()))?;
        self.guard.record(&slot, &hash)?;
        Ok(SignatureShareMsg {
            epoch: package.epoch,
            slot,
            share: share.serialize(),
        })
    }
}

/// The proposer's side of one signing round for one slot and message.
pub struct SigningRound {
    key_share: KeyShareFile,
    slot: Slot,
    message: Vec<u8>,
    /// Commitments in arrival order (at most one per member).
    commitments: Vec<(frost::Identifier, frost::round1::SigningCommitments)>,
    package: Option<(frost::SigningPackage, SigningPackageMsg)>,
    shares: BTreeMap<frost::Identifier, frost::round2::SignatureShare>,
}

impl std::fmt::Debug for SigningRound {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningRound")
            .field("slot", &self.slot)
            .field("message_len", &self.message.len())
            .field("commitments", &self.commitments.len())
            .field("package_fixed", &self.package.is_some())
            .field("shares", &self.shares.len())
            .finish()
    }
}

impl SigningRound {
    /// A round for `message` in `slot`, run by a proposer holding the committee's public key
    /// package (here: any member's key share; only its public parts are used).
    ///
    /// # Errors
    /// [`SignError::MessageTooLarge`] over [`MAX_SIGNED_MESSAGE_BYTES`].
    pub fn new(key_share: &KeyShareFile, slot: Slot, message: Vec<u8>) -> Result<Self, SignError> {
        if message.len() > MAX_SIGNED_MESSAGE_BYTES {
            return Err(SignError::MessageTooLarge(message.len()));
        }
        Ok(Self {
            key_share: key_share.clone(),
            slot,
            message,
            commitments: Vec::new(),
            package: None,
            shares: BTreeMap::new(),
        })
    }

    /// The slot.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The message being signed.
    pub fn message(&self) -> &[u8] {
        &self.message
    }

    fn identify(
        &self,
        member: &MemberId,
        epoch: u64,
        slot: Slot,
    ) -> Result<frost::Identifier, SignError> {
        let config = self.key_share.config();
        let id = config
            .identifier(member)
            .ok_or_else(|| SignError::UnknownMember(member.clone()))?;
        if epoch != config.epoch {
            return Err(SignError::WrongEpoch {
                expected: config.epoch,
                got: epoch,
            });
        }
        if slot != self.slot {
            return Err(SignError::WrongSlot {
                expected: self.slot,
                got: slot,
            });
        }
        Ok(id)
    }

    /// Takes `member`'s commitment. Commitments arriving after the package was fixed are
    /// checked and ignored; the same commitment twice is accepted once.
    ///
    /// # Errors
    /// Non-member, wrong epoch or slot, malformed, or a different second commitment.
    pub fn on_commitment(&mut self, member: &MemberId, c: &CommitmentMsg) -> Result<(), SignError> {
        let id = self.identify(member, c.epoch, c.slot)?;
        let commitments = frost::round1::SigningCommitments::deserialize(&c.commitments)
            .map_err(|_| malformed(Some(member), "commitment does not parse"))?;
        if let Some((_, known)) = self.commitments.iter().find(|(i, _)| *i == id) {
            return if *known == commitments {
                Ok(())
            } else {
                Err(SignError::Duplicate(member.clone()))
            };
        }
        if self.package.is_none() {
            self.commitments.push((id, commitments));
        }
        Ok(())
    }

    /// The signing package, once at least `t` commitments arrived: it uses exactly the first
    /// `t` to arrive, and is fixed from the first call on.
    pub fn signing_package(&mut self) -> Option<SigningPackageMsg> {
        if let Some((_, msg)) = &self.package {
            return Some(msg.clone());
        }
        let t = usize::from(self.key_share.config().threshold);
        if self.commitments.len() < t {
            return None;
        }
        let chosen: BTreeMap<_, _> = self.commitments.iter().take(t).copied().collect();
        let package = frost::SigningPackage::new(chosen, &self.message);
        let msg = SigningPackageMsg {
            epoch: self.key_share.config().epoch,
            slot: self.slot,
            package: package.serialize().ok()?,
        };
        self.package = Some((package, msg.clone()));
        Some(msg)
    }

    /// The members the signing package must be sent to (empty until it is fixed).
    pub fn signers(&self) -> Vec<MemberId> {
        let Some((package, _)) = &self.package else {
            return Vec::new();
        };
        package
            .signing_commitments()
            .keys()
            .filter_map(|id| self.key_share.config().member(id).cloned())
            .collect()
    }

    /// Takes `member`'s signature share (checked only for form here; [`SigningRound::aggregate`]
    /// verifies).
    ///
    /// # Errors
    /// Non-member, wrong epoch or slot, not a signer of this round, malformed, or a different
    /// second share.
    pub fn on_share(&mut self, member: &MemberId, s: &SignatureShareMsg) -> Result<(), SignError> {
        let id = self.identify(member, s.epoch, s.slot)?;
        let Some((package, _)) = &self.package else {
            return Err(SignError::NotASigner(member.clone()));
        };
        if !package.signing_commitments().contains_key(&id) {
            return Err(SignError::NotASigner(member.clone()));
        }
        let share = frost::round2::SignatureShare::deserialize(&s.share)
            .map_err(|_| malformed(Some(member), "signature share does not parse"))?;
        match self.shares.get(&id) {
            Some(known) if *known == share => Ok(()),
            Some(_) => Err(SignError::Duplicate(member.clone())),
            None => {
                self.shares.insert(id, share);
                Ok(())
            }
        }
    }

    /// True when every signer's share arrived.
    pub fn complete(&self) -> bool {
        self.package
            .as_ref()
            .is_some_and(|(p, _)| p.signing_commitments().len() == self.shares.len())
    }

    /// Aggregates the `t` shares into a 64-byte Ed25519 signature (`R ‖ z`) over the message,
    /// checked with `ed25519_dalek::VerifyingKey::verify_strict` against the group key.
    ///
    /// # Errors
    /// [`SignError::NotEnough`] before all `t` shares arrived; [`SignError::InvalidShare`]
    /// naming the first member whose share does not verify.
    pub fn aggregate(&self) -> Result<[u8; 64], SignError> {
        let need = usize::from(self.key_share.config().threshold);
        let Some((package, _)) = &self.package else {
            return Err(SignError::NotEnough {
                what: "commitments",
                have: self.commitments.len(),
                need,
            });
        };
        if self.shares.len() < package.signing_commitments().len() {
            return Err(SignError::NotEnough {
                what: "shares",
                have: self.shares.len(),
                need,
            });
        }
        let signature =
            frost::aggregate(package, &self.shares, self.key_share.public_key_package()).map_err(
                |e| match e
                    .culprits()
                    .first()
                    .and_then(|id| self.key_share.config().member(id))
                {
                    Some(member) => SignError::InvalidShare {
                        member: member.clone(),
                    },
                    None => SignError::Frost(e.to_string()),
                },
            )?;
        let bytes = signature
            .serialize()
            .map_err(|e| SignError::Frost(e.to_string()))?;
        let signature = <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| SignError::Frost("signature is not 64 bytes".into()))?;
        if !self.key_share.group_key().verify(&self.message, &signature) {
            return Err(SignError::Frost(
                "aggregate signature fails strict Ed25519 verification".into(),
            ));
        }
        Ok(signature)
    }
}

// `MAX_MEMBERS` bounds the commitments in a package; keep the cap in step.
const _: () =
    assert!(MAX_SIGNING_PACKAGE_MSG_BYTES >= MAX_SIGNED_MESSAGE_BYTES + MAX_MEMBERS * 200);
