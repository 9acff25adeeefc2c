//! [`ReceiptV1`]: a node's signed statement that it executed a workload (Tahap 14C.A §1:
//! workload_id, node_id, usage_proof_hash, execution_commitment, node_signature,
//! submitter_address; the coordinator threshold signature lives in the
//! [`super::ThresholdReceipt`] wrapper).
//!
//! Derived fields (checked by [`ReceiptV1::verify`]):
//! - `receipt_id` = [`receipt_id`]`(workload_id, input_hash, node_key, submitter, nonce)`:
//!   it names the *job* (one workload, one input, one node, one submission), not its result,
//!   so it is the committee's signing slot ([`crate::committee::Slot::Receipt`]) and a node
//!   cannot obtain two receipts with different outputs for one job;
//! - `usage_proof_hash` = `SHA-256(usage CBOR)` ([`ResourceUsage::to_bytes`]);
//! - `workload_id` and `output_hash` equal those of the commitment; `usage.fuel_used`
//!   equals `commitment.fuel_used`; the commitment has at least one checkpoint.
//!
//! The node signs [`ReceiptV1::signing_bytes`] with its Ed25519 node key (the key behind its
//! libp2p PeerId, see [`peer_id_bytes`]); verification uses `verify_strict`.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{ExecutionCommitment, ResourceUsage};
use crate::codec::{self, CodecError};
use crate::da::{Bytes32, Bytes64};

/// Domain string that starts the CBOR tuple a node signs.
pub const RECEIPT_SIGNING_DOMAIN: &str = "dsdn/receipt-node/v1";

/// Domain string that starts the CBOR tuple hashed into a receipt id.
pub const RECEIPT_ID_DOMAIN: &str = "dsdn/receipt-id/v1";

/// Largest encoded [`ReceiptV1`] accepted, in bytes (the encoding is a fixed-shape CBOR map
/// of about 900 bytes: the commitment, the usage, six 32-byte fields, a signature and
/// three integers).
pub const MAX_RECEIPT_BYTES: usize = 2048;

/// Why a receipt (or a threshold receipt) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReceiptError {
    /// Encoding or decoding failed (oversized or malformed bytes).
    #[error("codec: {0}")]
    Codec(String),
    /// `receipt_id` is not [`receipt_id`] of the receipt's fields.
    #[error("receipt id does not match its fields")]
    BadReceiptId,
    /// `workload_id` differs from `commitment.workload_id`.
    #[error("workload id differs from the commitment's")]
    WorkloadMismatch,
    /// `output_hash` differs from `commitment.output_hash`.
    #[error("output hash differs from the commitment's")]
    OutputMismatch,
    /// `usage_proof_hash` is not the hash of `usage`, or `usage.fuel_used` differs from
    /// `commitment.fuel_used`.
    #[error("usage does not match its proof hash or the commitment")]
    UsageMismatch,
    /// The commitment has no checkpoint (every execution records at least the final one).
    #[error("commitment has no checkpoints")]
    EmptyTrace,
    /// The node key is the submitter: a node may not execute its own workloads
    /// ([`is_self_dealing`]).
    #[error("self-dealing: the node is the submitter")]
    SelfDealing,
    /// `node_key` is not a usable Ed25519 public key (invalid or weak).
    #[error("node key is not a valid Ed25519 key")]
    BadNodeKey,
    /// The node signature does not verify (`verify_strict`).
    #[error("node signature does not verify")]
    BadNodeSignature,
    /// The threshold receipt names another group key than the verifier's.
    #[error("receipt is for another group key")]
    WrongGroupKey,
    /// The aggregate (group) signature does not verify against the group key.
    #[error("group signature does not verify")]
    BadGroupSignature,
    /// The signer list is empty, too long, has a malformed id or lists a member twice.
    #[error("malformed signer list: {0}")]
    BadSigners(&'static str),
    /// Checked against a committee: wrong epoch or committee hash, a signer not a member,
    /// or fewer signers than the threshold.
    #[error("not signed by this committee: {0}")]
    WrongCommittee(&'static str),
    /// An optimistic receipt's coordinator key is not a usable Ed25519 public key.
    #[error("coordinator key is not a valid Ed25519 key")]
    BadCoordinatorKey,
    /// An optimistic receipt's coordinator signature does not verify (`verify_strict`).
    #[error("coordinator signature does not verify")]
    BadCoordinatorSignature,
    /// An optimistic receipt's challenge window is empty, negative or longer than
    /// [`super::optimistic::MAX_CHALLENGE_WINDOW_MS`].
    #[error("challenge window out of range")]
    BadChallengeWindow,
    /// An optimistic receipt's coordinator is not a member of the committee this node
    /// knows (an `UnauthorizedSigner` dispute).
    #[error("the coordinator is not a committee member")]
    UnauthorizedSigner,
    /// This receipt id was seen before ([`super::ReceiptDedup`]).
    #[error("duplicate receipt {0}")]
    Duplicate(Bytes32),
}

impl From<CodecError> for ReceiptError {
    fn from(e: CodecError) -> Self {
        ReceiptError::Codec(e.to_string())
    }
}

/// What the node fills in; [`ReceiptV1::sign`] derives the rest and signs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReceiptDraft {
    /// Public key (address) of whoever submitted the workload.
    pub submitter: Bytes32,
    /// Submission number chosen by the submitter (or coordinator) so one submitter can run
    /// one workload on one input more than once; part of the receipt id.
    pub nonce: u64,
    /// The node's commitment to the execution.
    pub commitment: ExecutionCommitment,
    /// Resources the execution used.
    pub usage: ResourceUsage,
    /// When the node finished executing, milliseconds since the Unix epoch (the
    /// `timestamp` of 14A.2B.1 §2b `ReceiptData`).
    pub executed_at_ms: u64,
}

/// A node's signed receipt for one execution (Tahap 14C.A §1).
///
/// CBOR: a map with the field names below; 32-byte fields are byte strings (hex in JSON),
/// `node_signature` a 64-byte string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptV1 {
    /// [`receipt_id`] of the fields below (derived).
    pub receipt_id: Bytes32,
    /// `SHA-256` of the module (equals `commitment.workload_id`).
    pub workload_id: Bytes32,
    /// The executing node's Ed25519 public key (its PeerId is [`peer_id_bytes`] of it).
    pub node_key: Bytes32,
    /// Public key (address) of the submitter; must differ from `node_key`.
    pub submitter: Bytes32,
    /// Submission number (see [`ReceiptDraft::nonce`]).
    pub nonce: u64,
    /// The execution commitment (14C.A §1).
    pub commitment: ExecutionCommitment,
    /// Resources used (the usage proof of 14C.B §3).
    pub usage: ResourceUsage,
    /// `SHA-256(usage CBOR)` (derived).
    pub usage_proof_hash: Bytes32,
    /// `SHA-256` of the output (equals `commitment.output_hash`).
    pub output_hash: Bytes32,
    /// When the node finished executing, milliseconds since the Unix epoch.
    pub executed_at_ms: u64,
    /// Ed25519 signature by `node_key` over [`ReceiptV1::signing_bytes`].
    pub node_signature: Bytes64,
}

/// The id of a receipt: `SHA-256` of the CBOR array `["dsdn/receipt-id/v1", workload_id,
/// input_hash, node_key, submitter, nonce]` (32-byte values as byte strings).
///
/// # Errors
/// [`ReceiptError::Codec`] (cannot happen: the tuple has a fixed shape).
pub fn receipt_id(
    workload_id: &Bytes32,
    input_hash: &Bytes32,
    node_key: &Bytes32,
    submitter: &Bytes32,
    nonce: u64,
) -> Result<Bytes32, ReceiptError> {
    let value = (
        RECEIPT_ID_DOMAIN,
        workload_id,
        input_hash,
        node_key,
        submitter,
        nonce,
    );
    let bytes = codec::encode(&value, MAX_RECEIPT_BYTES)?;
    Ok(Bytes32(Sha256::digest(bytes).into()))
}

/// Anti-self-dealing (14C.A §2 `is_self_dealing(node_owner, submitter)`): true when the
/// node's owner is the submitter, in which case no receipt may be issued.
pub fn is_self_dealing(node_owner: &Bytes32, submitter: &Bytes32) -> bool {
    node_owner == submitter
}

/// The libp2p PeerId bytes of an Ed25519 public key: the identity multihash
/// `0x00 0x24` of the protobuf public key `0x08 0x01 0x12 0x20 ‖ key` (38 bytes), as
/// `libp2p_identity::PeerId::to_bytes` gives for Ed25519 keys.
pub fn peer_id_bytes(node_key: &Bytes32) -> [u8; 38] {
    let mut out = [0u8; 38];
    out[..6].copy_from_slice(&[0x00, 0x24, 0x08, 0x01, 0x12, 0x20]);
    out[6..].copy_from_slice(&node_key.0);
    out
}

/// `SHA-256` of the usage's CBOR encoding.
///
/// # Errors
/// [`ReceiptError::Codec`] (cannot happen: the usage has a fixed shape).
pub fn usage_proof_hash(usage: &ResourceUsage) -> Result<Bytes32, ReceiptError> {
    Ok(Bytes32(Sha256::digest(usage.to_bytes()?).into()))
}

impl ReceiptV1 {
    /// Builds and signs a receipt with the node key `key`: derives `receipt_id`,
    /// `workload_id`, `output_hash` and `usage_proof_hash`.
    ///
    /// # Errors
    /// [`ReceiptError::SelfDealing`] when the node key is the submitter;
    /// [`ReceiptError::UsageMismatch`] when `usage.fuel_used != commitment.fuel_used`;
    /// [`ReceiptError::EmptyTrace`] for a commitment without checkpoints.
    pub fn sign(key: &SigningKey, draft: ReceiptDraft) -> Result<ReceiptV1, ReceiptError> {
        let node_key = Bytes32(key.verifying_key().to_bytes());
        let c = draft.commitment;
        let mut receipt = ReceiptV1 {
            receipt_id: receipt_id(
                &c.workload_id,
                &c.input_hash,
                &node_key,
                &draft.submitter,
                draft.nonce,
            )?,
            workload_id: c.workload_id,
            node_key,
            submitter: draft.submitter,
            nonce: draft.nonce,
            commitment: c,
            usage: draft.usage,
            usage_proof_hash: usage_proof_hash(&draft.usage)?,
            output_hash: c.output_hash,
            executed_at_ms: draft.executed_at_ms,
            node_signature: Bytes64([0; 64]),
        };
        receipt.check_consistency()?;
        receipt.node_signature = Bytes64(key.sign(&receipt.signing_bytes()?).to_bytes());
        Ok(receipt)
    }

    /// The bytes the node signs: the CBOR array `["dsdn/receipt-node/v1", receipt_id,
    /// workload_id, node_key, submitter, nonce, commitment, usage, usage_proof_hash,
    /// output_hash, executed_at_ms]` — every field but the signature.
    ///
    /// # Errors
    /// [`ReceiptError::Codec`] (cannot happen for this fixed-shape type).
    pub fn signing_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        let value = (
            RECEIPT_SIGNING_DOMAIN,
            &self.receipt_id,
            &self.workload_id,
            &self.node_key,
            &self.submitter,
            self.nonce,
            &self.commitment,
            &self.usage,
            &self.usage_proof_hash,
            &self.output_hash,
            self.executed_at_ms,
        );
        Ok(codec::encode(&value, MAX_RECEIPT_BYTES)?)
    }

    /// The executing node's libp2p PeerId bytes ([`peer_id_bytes`] of `node_key`).
    pub fn node_peer_id(&self) -> [u8; 38] {
        peer_id_bytes(&self.node_key)
    }

    /// The committee signing slot of this receipt (its id).
    pub fn slot(&self) -> crate::committee::Slot {
        crate::committee::Slot::Receipt(self.receipt_id.0)
    }

    /// Checks the derived fields and the anti-self-dealing rule (no signature).
    ///
    /// # Errors
    /// The first of [`ReceiptError::WorkloadMismatch`], [`ReceiptError::OutputMismatch`],
    /// [`ReceiptError::UsageMismatch`], [`ReceiptError::EmptyTrace`],
    /// [`ReceiptError::SelfDealing`], [`ReceiptError::BadReceiptId`].
    pub fn check_consistency(&self) -> Result<(), ReceiptError> {
        let c = &self.commitment;
        if self.workload_id != c.workload_id {
            return Err(ReceiptError::WorkloadMismatch);
        }
        if self.output_hash != c.output_hash {
            return Err(ReceiptError::OutputMismatch);
        }
        if self.usage.fuel_used != c.fuel_used
            || self.usage_proof_hash != usage_proof_hash(&self.usage)?
        {
            return Err(ReceiptError::UsageMismatch);
        }
        if c.checkpoints == 0 {
            return Err(ReceiptError::EmptyTrace);
        }
        if is_self_dealing(&self.node_key, &self.submitter) {
            return Err(ReceiptError::SelfDealing);
        }
        let id = receipt_id(
            &self.workload_id,
            &c.input_hash,
            &self.node_key,
            &self.submitter,
            self.nonce,
        )?;
        if self.receipt_id != id {
            return Err(ReceiptError::BadReceiptId);
        }
        Ok(())
    }

    /// Checks [`ReceiptV1::check_consistency`], then the node signature (`verify_strict`,
    /// weak keys refused).
    ///
    /// # Errors
    /// As [`ReceiptV1::check_consistency`]; [`ReceiptError::BadNodeKey`];
    /// [`ReceiptError::BadNodeSignature`].
    pub fn verify(&self) -> Result<(), ReceiptError> {
        self.check_consistency()?;
        let key =
            VerifyingKey::from_bytes(&self.node_key.0).map_err(|_| ReceiptError::BadNodeKey)?;
        if key.is_weak() {
            return Err(ReceiptError::BadNodeKey);
        }
        key.verify_strict(
            &self.signing_bytes()?,
            &Signature::from_bytes(&self.node_signature.0),
        )
        .map_err(|_| ReceiptError::BadNodeSignature)
    }

    /// Encodes as CBOR.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] over [`MAX_RECEIPT_BYTES`] (cannot happen: fixed shape).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_RECEIPT_BYTES)
    }

    /// Decodes from CBOR, refusing input over [`MAX_RECEIPT_BYTES`] before decoding. Checks
    /// nothing else (see [`ReceiptV1::verify`]).
    ///
    /// # Errors
    /// [`CodecError`] for oversized, malformed or trailing input, or unknown fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_RECEIPT_BYTES)
    }
}
