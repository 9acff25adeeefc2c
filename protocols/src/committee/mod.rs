//! The coordinator committee: FROST (Ed25519) distributed key generation and threshold
//! signing, as pure state machines (Tahap 14A.2B.1: DKG, threshold signing, committee types).
//!
//! A committee of `n` members (libp2p peers, [`MemberId`]) with threshold `t` runs a DKG
//! without a trusted dealer ([`DkgSession`]); each member ends with a [`KeyShareFile`] and
//! all with the same [`GroupKey`], an ordinary Ed25519 public key. Any `t` members then
//! produce ordinary 64-byte Ed25519 signatures under it ([`Signer`] on each member,
//! [`SigningRound`] on the proposer), which is why the group key can serve as the network's
//! `da_authority`: verifiers need not know that the key is shared.
//!
//! Modules:
//! - [`types`] — [`MemberId`], [`CommitteeConfig`], [`GroupKey`], [`KeyShareFile`];
//! - [`dkg`] — [`DkgSession`] and its wire messages;
//! - [`epoch`] — epoch timing and the deterministic selection of the next committee;
//! - [`epoch_driver`] — the automatic epoch rotation as a pure driver ([`epoch_driver::EpochDriver`]);
//! - [`guard`] — [`Slot`] and the equivocation guard [`SlotGuard`];
//! - [`signing`] — [`Signer`], [`SigningRound`] and their wire messages;
//! - [`rotation`] — DA proposer rotation, failover and locking ([`rotation::HeightConsensus`]);
//! - [`wire`] — the request/response messages of `/dsdn/<network>/committee/1.0.0`.
//!
//! Randomness comes from a `rand_core` 0.6 RNG (what frost-ed25519 3 takes), re-exported
//! here as [`RngCore`], [`CryptoRng`] and [`OsRng`].

pub mod dkg;
pub mod epoch;
pub mod epoch_driver;
pub mod guard;
pub mod rotation;
pub mod signing;
pub mod types;
pub mod wire;

pub use dkg::{
    DkgError, DkgMessage, DkgOutput, DkgSession, Round1Message, Round2Message,
    MAX_DKG_MESSAGE_BYTES,
};
pub use guard::{
    message_hash, GuardDecodeError, GuardError, Slot, SlotGuard, GUARD_VERSION, MAX_GUARD_BYTES,
    MAX_GUARD_DA_SLOTS, MAX_GUARD_RECEIPT_SLOTS,
};
pub use rand_core_06::{CryptoRng, OsRng, RngCore};
pub use signing::{
    CommitmentMsg, SignError, SignatureShareMsg, Signer, SigningPackageMsg, SigningRound,
    MAX_COMMITMENT_MSG_BYTES, MAX_OPEN_SLOTS, MAX_SIGNATURE_SHARE_MSG_BYTES,
    MAX_SIGNED_MESSAGE_BYTES, MAX_SIGNING_PACKAGE_MSG_BYTES,
};
pub use types::{
    CommitteeConfig, ConfigError, GroupKey, KeyShareError, KeyShareFile, MemberId,
    KEY_SHARE_FILE_VERSION, MAX_KEY_SHARE_FILE_BYTES, MAX_MEMBERS, MAX_MEMBER_ID_BYTES,
    MIN_MEMBERS,
};
pub use wire::{
    CommitteeRequest, CommitteeResponse, Refusal, MAX_COMMITTEE_REQUEST_BYTES,
    MAX_COMMITTEE_RESPONSE_BYTES, MAX_REFUSAL_TEXT_BYTES,
};

#[cfg(test)]
pub(crate) mod tests;
