//! [`ThresholdReceipt`]: a [`ReceiptV1`] signed by the coordinator committee with FROST
//! (Tahap 14A.2B.1 §2b: receipt data, aggregate signature, signers, epoch, committee hash),
//! and [`ReceiptDedup`], the bounded seen-set behind duplicate rejection (14C.A §3).
//!
//! The group signature is an ordinary 64-byte Ed25519 signature under the committee's
//! [`GroupKey`] over [`ThresholdReceipt::signing_bytes`]: the CBOR array
//! `["dsdn/receipt-committee/v1", epoch, committee_hash, group_key, receipt CBOR]`, where
//! the receipt's CBOR includes its node signature. Every value in it is fixed once the node
//! has signed, so a retried signing round for the same slot (the receipt id) signs the
//! same message and the committee's equivocation guard lets it through. `signers` is *not*
//! signed (FROST fixes the signer set only after the message is proposed, and a retry may
//! use other members): it records who took part, and [`ThresholdReceipt::verify_committee`]
//! checks it is a plausible `t`-subset of the committee, but only the group signature
//! proves that `t` members signed.

use std::collections::{HashSet, VecDeque};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::v1::{ReceiptError, ReceiptV1};
use crate::codec::{self, CodecError};
use crate::committee::{CommitteeConfig, GroupKey, MemberId, MAX_MEMBERS, MAX_MEMBER_ID_BYTES};
use crate::da::{Bytes32, Bytes64};

/// Domain string that starts the CBOR tuple the committee signs.
pub const COMMITTEE_SIGNING_DOMAIN: &str = "dsdn/receipt-committee/v1";

/// Domain string that starts the CBOR tuple hashed into a committee hash.
pub const COMMITTEE_HASH_DOMAIN: &str = "dsdn/committee/v1";

/// Largest encoded [`ThresholdReceipt`] accepted, in bytes: a receipt (at most
/// [`super::MAX_RECEIPT_BYTES`]), [`MAX_MEMBERS`] signer ids of at most
/// [`MAX_MEMBER_ID_BYTES`] bytes, and about 150 bytes of other fields.
pub const MAX_THRESHOLD_RECEIPT_BYTES: usize =
    super::MAX_RECEIPT_BYTES + MAX_MEMBERS * (MAX_MEMBER_ID_BYTES + 2) + 512;

/// A receipt signed by the committee (Tahap 14A.2B.1 §2b `ThresholdReceipt`).
///
/// CBOR: a map with the field names below (`receipt` a nested map, 32/64-byte values byte
/// strings, `signers` an array of byte strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ThresholdReceipt {
    /// The node's receipt (the `receipt_data` of the spec).
    pub receipt: ReceiptV1,
    /// The committee epoch the signature was made in.
    pub epoch: u64,
    /// [`committee_hash`] of the committee configuration of `epoch`.
    pub committee_hash: Bytes32,
    /// The committee's group key (the Ed25519 key the signature verifies against).
    pub group_key: GroupKey,
    /// The members whose shares made the signature, in committee order (not signed).
    pub signers: Vec<MemberId>,
    /// The aggregate FROST signature: a standard Ed25519 signature over
    /// [`ThresholdReceipt::signing_bytes`].
    pub aggregate_signature: Bytes64,
}

/// Hash of a committee: `SHA-256` of the CBOR array `["dsdn/committee/v1", epoch,
/// threshold, [member ids…]]`.
///
/// # Errors
/// [`ReceiptError::Codec`] when the configuration does not fit the encoding cap (more than
/// [`MAX_MEMBERS`] members of maximal id length).
pub fn committee_hash(config: &CommitteeConfig) -> Result<Bytes32, ReceiptError> {
    let value = (
        COMMITTEE_HASH_DOMAIN,
        config.epoch,
        config.threshold,
        &config.members,
    );
    let bytes = codec::encode(&value, MAX_THRESHOLD_RECEIPT_BYTES)?;
    Ok(Bytes32(Sha256::digest(bytes).into()))
}

/// The message a committee signs for `receipt` (see [`ThresholdReceipt::signing_bytes`]);
/// what a proposer hands to the threshold signing round.
///
/// # Errors
/// [`ReceiptError::Codec`] (cannot happen for a receipt within its cap).
pub fn committee_signing_bytes(
    receipt: &ReceiptV1,
    epoch: u64,
    committee_hash: &Bytes32,
    group_key: &GroupKey,
) -> Result<Vec<u8>, ReceiptError> {
    let inner = serde_bytes::ByteBuf::from(receipt.to_bytes()?);
    let value = (
        COMMITTEE_SIGNING_DOMAIN,
        epoch,
        committee_hash,
        group_key,
        inner,
    );
    Ok(codec::encode(&value, MAX_THRESHOLD_RECEIPT_BYTES)?)
}

/// A committee signing message taken apart: what a member checks before signing a
/// [`crate::committee::Slot::Receipt`] (see [`committee_signing_bytes`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitteeMessage {
    /// The committee epoch named in the message.
    pub epoch: u64,
    /// The committee hash named in the message.
    pub committee_hash: Bytes32,
    /// The group key named in the message.
    pub group_key: GroupKey,
    /// The node-signed receipt.
    pub receipt: ReceiptV1,
}

impl CommitteeMessage {
    /// Parses [`committee_signing_bytes`] output: the domain must be
    /// [`COMMITTEE_SIGNING_DOMAIN`], the message canonical (it re-encodes to the same bytes)
    /// and the inner receipt must decode. Checks no signature.
    ///
    /// # Errors
    /// [`ReceiptError::Codec`] for oversized or malformed bytes, a wrong domain or a
    /// non-canonical encoding.
    pub fn parse(bytes: &[u8]) -> Result<Self, ReceiptError> {
        let (domain, epoch, committee_hash, group_key, inner): (
            String,
            u64,
            Bytes32,
            GroupKey,
            serde_bytes::ByteBuf,
        ) = codec::decode(bytes, MAX_THRESHOLD_RECEIPT_BYTES)?;
        if domain != COMMITTEE_SIGNING_DOMAIN {
            return Err(ReceiptError::Codec(
                "not a receipt committee message".into(),
            ));
        }
        let receipt = ReceiptV1::from_bytes(&inner)?;
        let message = CommitteeMessage {
            epoch,
            committee_hash,
            group_key,
            receipt,
        };
        let again = committee_signing_bytes(&message.receipt, epoch, &committee_hash, &group_key)?;
        if again != bytes {
            return Err(ReceiptError::Codec(
                "non-canonical receipt committee message".into(),
            ));
        }
        Ok(message)
    }
}

impl ThresholdReceipt {
    /// The bytes the committee signs: the CBOR array `["dsdn/receipt-committee/v1", epoch,
    /// committee_hash, group_key, receipt CBOR as a byte string]`.
    ///
    /// # Errors
    /// As [`committee_signing_bytes`].
    pub fn signing_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        committee_signing_bytes(
            &self.receipt,
            self.epoch,
            &self.committee_hash,
            &self.group_key,
        )
    }

    /// The receipt id (the key of duplicate rejection and of the signing slot).
    pub fn receipt_id(&self) -> Bytes32 {
        self.receipt.receipt_id
    }

    /// `SHA-256(signing_bytes ‖ aggregate_signature)`: the hash of the signed receipt as
    /// recorded in the DA log (the spec's `receipt_hash`).
    ///
    /// # Errors
    /// As [`ThresholdReceipt::signing_bytes`].
    pub fn receipt_hash(&self) -> Result<Bytes32, ReceiptError> {
        let mut h = Sha256::new();
        h.update(self.signing_bytes()?);
        h.update(self.aggregate_signature.0);
        Ok(Bytes32(h.finalize().into()))
    }

    /// Everything a node checks before accepting or forwarding a receipt (duplicates
    /// aside, see [`ReceiptDedup`]): the receipt names `group_key`; the signer list is
    /// well formed; the group signature verifies (`verify_strict`); then
    /// [`ReceiptV1::verify`] (commitment consistency, derived ids, anti-self-dealing, node
    /// signature).
    ///
    /// # Errors
    /// [`ReceiptError::WrongGroupKey`], [`ReceiptError::BadSigners`],
    /// [`ReceiptError::BadGroupSignature`], or any error of [`ReceiptV1::verify`].
    pub fn verify(&self, group_key: &GroupKey) -> Result<(), ReceiptError> {
        if self.group_key != *group_key {
            return Err(ReceiptError::WrongGroupKey);
        }
        self.check_signers()?;
        if !group_key.verify(&self.signing_bytes()?, &self.aggregate_signature.0) {
            return Err(ReceiptError::BadGroupSignature);
        }
        self.receipt.verify()
    }

    /// [`ThresholdReceipt::verify`] against a known committee and its group key, plus: the
    /// epoch and committee hash are the committee's, every signer is a member, and there
    /// are at least `threshold` signers.
    ///
    /// # Errors
    /// [`ReceiptError::WrongCommittee`], or any error of [`ThresholdReceipt::verify`].
    pub fn verify_committee(
        &self,
        config: &CommitteeConfig,
        group_key: &GroupKey,
    ) -> Result<(), ReceiptError> {
        if self.epoch != config.epoch {
            return Err(ReceiptError::WrongCommittee("epoch"));
        }
        if self.committee_hash != committee_hash(config)? {
            return Err(ReceiptError::WrongCommittee("committee hash"));
        }
        self.verify(group_key)?;
        if self.signers.iter().any(|s| !config.contains(s)) {
            return Err(ReceiptError::WrongCommittee("a signer is not a member"));
        }
        if self.signers.len() < usize::from(config.threshold) {
            return Err(ReceiptError::WrongCommittee(
                "fewer signers than the threshold",
            ));
        }
        Ok(())
    }

    fn check_signers(&self) -> Result<(), ReceiptError> {
        if self.signers.is_empty() {
            return Err(ReceiptError::BadSigners("empty"));
        }
        if self.signers.len() > MAX_MEMBERS {
            return Err(ReceiptError::BadSigners(
                "more signers than a committee holds",
            ));
        }
        let mut seen = HashSet::new();
        for s in &self.signers {
            let len = s.as_bytes().len();
            if len == 0 || len > MAX_MEMBER_ID_BYTES {
                return Err(ReceiptError::BadSigners("malformed member id"));
            }
            if !seen.insert(s) {
                return Err(ReceiptError::BadSigners("a member is listed twice"));
            }
        }
        Ok(())
    }

    /// Encodes as CBOR.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] over [`MAX_THRESHOLD_RECEIPT_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_THRESHOLD_RECEIPT_BYTES)
    }

    /// Decodes from CBOR, refusing input over [`MAX_THRESHOLD_RECEIPT_BYTES`] before
    /// decoding. Checks nothing else (see [`ThresholdReceipt::verify`]).
    ///
    /// # Errors
    /// [`CodecError`] for oversized, malformed or trailing input, or unknown fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_THRESHOLD_RECEIPT_BYTES)
    }
}

/// The receipt ids seen recently, for duplicate rejection (14C.A §3): at most `capacity`
/// ids, the oldest forgotten first. A duplicate older than the last `capacity` receipts is
/// not detected; nodes use it to avoid re-forwarding, the chain needs a persistent set.
#[derive(Debug, Clone)]
pub struct ReceiptDedup {
    capacity: usize,
    order: VecDeque<Bytes32>,
    seen: HashSet<Bytes32>,
}

impl ReceiptDedup {
    /// An empty set remembering up to `capacity` ids (at least 1).
    pub fn new(capacity: usize) -> Self {
        ReceiptDedup {
            capacity: capacity.max(1),
            order: VecDeque::new(),
            seen: HashSet::new(),
        }
    }

    /// Records `id`; refuses it if it is already recorded.
    ///
    /// # Errors
    /// [`ReceiptError::Duplicate`] when `id` is among the remembered ids (then nothing
    /// changes).
    pub fn insert(&mut self, id: Bytes32) -> Result<(), ReceiptError> {
        if !self.seen.insert(id) {
            return Err(ReceiptError::Duplicate(id));
        }
        self.order.push_back(id);
        if self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        Ok(())
    }

    /// Whether `id` is remembered.
    pub fn contains(&self, id: &Bytes32) -> bool {
        self.seen.contains(id)
    }

    /// Number of remembered ids (at most the capacity).
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// True when no id is remembered.
    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    /// [`ThresholdReceipt::verify`], then records the id — the full acceptance check of a
    /// node. A receipt that fails verification is not recorded.
    ///
    /// # Errors
    /// Any error of [`ThresholdReceipt::verify`], then [`ReceiptError::Duplicate`].
    pub fn accept(
        &mut self,
        receipt: &ThresholdReceipt,
        group_key: &GroupKey,
    ) -> Result<(), ReceiptError> {
        if self.contains(&receipt.receipt_id()) {
            return Err(ReceiptError::Duplicate(receipt.receipt_id()));
        }
        receipt.verify(group_key)?;
        self.insert(receipt.receipt_id())
    }
}
