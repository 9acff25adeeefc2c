//! [`OptimisticReceipt`]: a node's receipt signed by *one* coordinator with its node key, at
//! once, carrying a challenge window (Tahap 14A.2B.2 §2d "Optimistic Receipts (Low Latency
//! Option)", issue 13 §5). It is superseded by the committee's [`ThresholdReceipt`] of the
//! same node receipt ([`OptimisticReceipt::upgrade_to_threshold`]); a threshold receipt of
//! the same job with another execution commitment contradicts it, and the pair is an
//! [`OptimisticConflict`] (the challenge; evidence for the chain).
//!
//! Wire format (CBOR through [`crate::codec`], at most [`MAX_OPTIMISTIC_RECEIPT_BYTES`]): a
//! map with the field names of [`OptimisticReceipt`]; `version` is
//! [`OPTIMISTIC_RECEIPT_VERSION`] (others are refused). The coordinator signs
//! [`OptimisticReceipt::signing_bytes`], the CBOR array `["dsdn/receipt-optimistic/v1",
//! version, epoch, committee_hash, group_key, coordinator_key, issued_at_ms,
//! challenge_deadline_ms, receipt CBOR as a byte string]`, with Ed25519 (`verify_strict`).
//! Times are milliseconds since the Unix epoch; the deadline is absolute.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::dispute::job_key;
use super::threshold::ThresholdReceipt;
use super::v1::{ReceiptError, ReceiptV1};
use crate::codec::{self, CodecError};
use crate::committee::GroupKey;
use crate::da::{Bytes32, Bytes64};

/// Domain string that starts the CBOR tuple a coordinator signs.
pub const OPTIMISTIC_SIGNING_DOMAIN: &str = "dsdn/receipt-optimistic/v1";

/// The one wire version of [`OptimisticReceipt`].
pub const OPTIMISTIC_RECEIPT_VERSION: u8 = 1;

/// Longest challenge window accepted, in milliseconds (24 h): a receipt claiming more is
/// refused, which bounds how long an unconfirmed receipt can look pending.
pub const MAX_CHALLENGE_WINDOW_MS: u64 = 24 * 3600 * 1000;

/// Largest encoded [`OptimisticReceipt`] accepted, in bytes: a node receipt (at most
/// [`super::MAX_RECEIPT_BYTES`]) and about 300 bytes of other fields.
pub const MAX_OPTIMISTIC_RECEIPT_BYTES: usize = super::MAX_RECEIPT_BYTES + 512;

/// Largest encoded [`OptimisticConflict`].
pub const MAX_CONFLICT_BYTES: usize =
    MAX_OPTIMISTIC_RECEIPT_BYTES + super::threshold::MAX_THRESHOLD_RECEIPT_BYTES + 256;

/// A node receipt vouched for by one coordinator until the committee signs it (Tahap
/// 14A.2B.2 §2d `OptimisticReceipt`: receipt data, single signature, coordinator id,
/// challenge window).
///
/// CBOR: a map with the field names below (`receipt` a nested map, 32/64-byte values byte
/// strings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimisticReceipt {
    /// [`OPTIMISTIC_RECEIPT_VERSION`].
    pub version: u8,
    /// The executing node's receipt (signed by the node).
    pub receipt: ReceiptV1,
    /// The committee epoch whose threshold receipt is to supersede this one.
    pub epoch: u64,
    /// That committee's hash ([`super::committee_hash`]).
    pub committee_hash: Bytes32,
    /// That committee's group key.
    pub group_key: GroupKey,
    /// The coordinator's Ed25519 node key (its PeerId is [`super::peer_id_bytes`] of it).
    pub coordinator_key: Bytes32,
    /// When the coordinator signed, milliseconds since the Unix epoch.
    pub issued_at_ms: u64,
    /// The end of the challenge window, milliseconds since the Unix epoch (absolute):
    /// after it, a receipt not superseded by its threshold receipt is expired.
    pub challenge_deadline_ms: u64,
    /// Ed25519 signature by `coordinator_key` over [`OptimisticReceipt::signing_bytes`].
    pub coordinator_signature: Bytes64,
}

/// Why a threshold receipt does not upgrade an optimistic receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UpgradeError {
    /// The threshold receipt is of another job, or of another node's receipt of the job
    /// with the same commitment (it confirms that execution, not this one).
    #[error("the threshold receipt is for another receipt")]
    NotThisReceipt,
    /// Same job, another execution commitment: the challenge succeeded (the evidence).
    #[error("the threshold receipt of this job has another execution commitment")]
    Conflict(Box<OptimisticConflict>),
}

impl OptimisticReceipt {
    /// Signs `receipt` with the coordinator's node key `key`: issued at `now_ms`, challenge
    /// window of `window_ms` (deadline `now_ms + window_ms`), to be superseded by the
    /// threshold receipt of the committee `(epoch, committee_hash, group_key)`.
    ///
    /// # Errors
    /// [`ReceiptError::BadChallengeWindow`] for a window of 0 or above
    /// [`MAX_CHALLENGE_WINDOW_MS`]; [`ReceiptError::Codec`] (cannot happen).
    pub fn sign(
        key: &SigningKey,
        receipt: ReceiptV1,
        committee: (u64, Bytes32, GroupKey),
        now_ms: u64,
        window_ms: u64,
    ) -> Result<Self, ReceiptError> {
        if window_ms == 0 || window_ms > MAX_CHALLENGE_WINDOW_MS {
            return Err(ReceiptError::BadChallengeWindow);
        }
        let (epoch, committee_hash, group_key) = committee;
        let mut o = OptimisticReceipt {
            version: OPTIMISTIC_RECEIPT_VERSION,
            receipt,
            epoch,
            committee_hash,
            group_key,
            coordinator_key: Bytes32(key.verifying_key().to_bytes()),
            issued_at_ms: now_ms,
            challenge_deadline_ms: now_ms.saturating_add(window_ms),
            coordinator_signature: Bytes64([0; 64]),
        };
        o.coordinator_signature = Bytes64(key.sign(&o.signing_bytes()?).to_bytes());
        Ok(o)
    }

    /// The bytes the coordinator signs (see the module documentation).
    ///
    /// # Errors
    /// [`ReceiptError::Codec`] (cannot happen for a receipt within its cap).
    pub fn signing_bytes(&self) -> Result<Vec<u8>, ReceiptError> {
        let inner = serde_bytes::ByteBuf::from(self.receipt.to_bytes()?);
        let value = (
            OPTIMISTIC_SIGNING_DOMAIN,
            self.version,
            self.epoch,
            &self.committee_hash,
            &self.group_key,
            &self.coordinator_key,
            self.issued_at_ms,
            self.challenge_deadline_ms,
            inner,
        );
        Ok(codec::encode(&value, MAX_OPTIMISTIC_RECEIPT_BYTES)?)
    }

    /// The receipt id (of the node receipt; its threshold receipt has the same).
    pub fn receipt_id(&self) -> Bytes32 {
        self.receipt.receipt_id
    }

    /// `SHA-256(signing_bytes ‖ coordinator_signature)`: the hash of this signed receipt.
    ///
    /// # Errors
    /// As [`OptimisticReceipt::signing_bytes`].
    pub fn receipt_hash(&self) -> Result<Bytes32, ReceiptError> {
        let mut h = Sha256::new();
        h.update(self.signing_bytes()?);
        h.update(self.coordinator_signature.0);
        Ok(Bytes32(h.finalize().into()))
    }

    /// Whether the challenge window is still open at `now_ms` (Tahap 14A.2B.2 §2d
    /// `is_challengeable`): `now_ms < challenge_deadline_ms`.
    pub fn is_challengeable(&self, now_ms: u64) -> bool {
        now_ms < self.challenge_deadline_ms
    }

    /// Everything checkable with the group key the node knows: the version, the group key
    /// named, a window of 1 ms to [`MAX_CHALLENGE_WINDOW_MS`], the coordinator key (a
    /// valid, non-weak Ed25519 key) and its signature (`verify_strict`), then
    /// [`ReceiptV1::verify`]. Says nothing of whether the coordinator is a committee member
    /// (the caller checks that when it knows the committee).
    ///
    /// # Errors
    /// [`ReceiptError::Codec`] (another version), [`ReceiptError::WrongGroupKey`],
    /// [`ReceiptError::BadChallengeWindow`], [`ReceiptError::BadCoordinatorKey`],
    /// [`ReceiptError::BadCoordinatorSignature`], or any error of [`ReceiptV1::verify`].
    pub fn verify(&self, group_key: &GroupKey) -> Result<(), ReceiptError> {
        if self.version != OPTIMISTIC_RECEIPT_VERSION {
            return Err(ReceiptError::Codec(format!(
                "optimistic receipt version {} (this node knows {OPTIMISTIC_RECEIPT_VERSION})",
                self.version
            )));
        }
        if self.group_key != *group_key {
            return Err(ReceiptError::WrongGroupKey);
        }
        let window = self.challenge_deadline_ms.checked_sub(self.issued_at_ms);
        if !window.is_some_and(|w| w > 0 && w <= MAX_CHALLENGE_WINDOW_MS) {
            return Err(ReceiptError::BadChallengeWindow);
        }
        let key = VerifyingKey::from_bytes(&self.coordinator_key.0)
            .map_err(|_| ReceiptError::BadCoordinatorKey)?;
        if key.is_weak() {
            return Err(ReceiptError::BadCoordinatorKey);
        }
        key.verify_strict(
            &self.signing_bytes()?,
            &Signature::from_bytes(&self.coordinator_signature.0),
        )
        .map_err(|_| ReceiptError::BadCoordinatorSignature)?;
        self.receipt.verify()
    }

    /// The upgrade rule (Tahap 14A.2B.2 §2d `upgrade_to_threshold`): `threshold` supersedes
    /// this receipt when it signs the same node receipt (same receipt id) with the same
    /// execution commitment; it is then returned. Signatures are not checked here (both
    /// receipts are verified on acceptance).
    ///
    /// # Errors
    /// [`UpgradeError::Conflict`] (with the evidence) when `threshold` is of the same job
    /// ([`job_key`]) with another commitment; [`UpgradeError::NotThisReceipt`] otherwise.
    pub fn upgrade_to_threshold(
        &self,
        threshold: ThresholdReceipt,
    ) -> Result<ThresholdReceipt, UpgradeError> {
        let same_job = match (job_key(&self.receipt), job_key(&threshold.receipt)) {
            (Ok(a), Ok(b)) => a == b,
            _ => false,
        };
        if !same_job {
            return Err(UpgradeError::NotThisReceipt);
        }
        if threshold.receipt.commitment != self.receipt.commitment {
            return Err(UpgradeError::Conflict(Box::new(OptimisticConflict {
                optimistic: self.clone(),
                threshold,
            })));
        }
        if threshold.receipt_id() != self.receipt_id() {
            return Err(UpgradeError::NotThisReceipt);
        }
        Ok(threshold)
    }

    /// Encodes as CBOR.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] over [`MAX_OPTIMISTIC_RECEIPT_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_OPTIMISTIC_RECEIPT_BYTES)
    }

    /// Decodes from CBOR, refusing input over [`MAX_OPTIMISTIC_RECEIPT_BYTES`] before
    /// decoding. Checks nothing else (see [`OptimisticReceipt::verify`]).
    ///
    /// # Errors
    /// [`CodecError`] for oversized, malformed or trailing input, or unknown fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_OPTIMISTIC_RECEIPT_BYTES)
    }
}

/// A message of the receipts gossip topic: a threshold receipt or an optimistic one, told
/// apart by their field sets (both are CBOR maps refusing unknown fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GossipReceipt {
    /// A [`ThresholdReceipt`].
    Threshold(ThresholdReceipt),
    /// An [`OptimisticReceipt`].
    Optimistic(OptimisticReceipt),
}

impl GossipReceipt {
    /// Decodes a receipts gossip message (caps as each type's `from_bytes`).
    ///
    /// # Errors
    /// [`CodecError`] when it is neither.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        match ThresholdReceipt::from_bytes(bytes) {
            Ok(t) => Ok(GossipReceipt::Threshold(t)),
            Err(_) => OptimisticReceipt::from_bytes(bytes).map(GossipReceipt::Optimistic),
        }
    }
}

/// The challenge of an optimistic receipt (issue 13 §5): a threshold receipt of the same
/// job whose execution commitment differs. The coordinator vouched for a result the
/// committee did not sign.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptimisticConflict {
    /// The coordinator-signed receipt.
    pub optimistic: OptimisticReceipt,
    /// The committee-signed receipt of the same job.
    pub threshold: ThresholdReceipt,
}

impl OptimisticConflict {
    /// Checks that both receipts verify against `group_key`, are of one job and carry
    /// different commitments; returns the job key.
    ///
    /// # Errors
    /// [`ReceiptError`] of either receipt; [`ReceiptError::Codec`] naming what does not
    /// hold otherwise.
    pub fn verify(&self, group_key: &GroupKey) -> Result<Bytes32, ReceiptError> {
        self.optimistic.verify(group_key)?;
        self.threshold.verify(group_key)?;
        let job = job_key(&self.optimistic.receipt)?;
        if job_key(&self.threshold.receipt)? != job {
            return Err(ReceiptError::Codec(
                "the receipts are of different jobs".into(),
            ));
        }
        if self.optimistic.receipt.commitment == self.threshold.receipt.commitment {
            return Err(ReceiptError::Codec("the commitments are the same".into()));
        }
        Ok(job)
    }

    /// The CBOR encoding.
    ///
    /// # Errors
    /// [`CodecError`] beyond [`MAX_CONFLICT_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_CONFLICT_BYTES)
    }

    /// Decodes a conflict (not verified: see [`OptimisticConflict::verify`]).
    ///
    /// # Errors
    /// [`CodecError`] for oversized or malformed bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_CONFLICT_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::signed_tests::{draft, node_key, threshold};

    const NOW: u64 = 1_700_000_000_000;

    fn optimistic(receipt: ReceiptV1, group: &SigningKey, window_ms: u64) -> OptimisticReceipt {
        let t = threshold(receipt, group);
        OptimisticReceipt::sign(
            &node_key(30),
            t.receipt,
            (t.epoch, t.committee_hash, t.group_key),
            NOW,
            window_ms,
        )
        .unwrap()
    }

    #[test]
    fn signed_by_the_coordinator_and_verifiable_by_anyone() {
        let group = node_key(50);
        let gk = GroupKey(group.verifying_key().to_bytes());
        let o = optimistic(
            ReceiptV1::sign(&node_key(1), draft(1)).unwrap(),
            &group,
            600_000,
        );
        o.verify(&gk).unwrap();
        assert_eq!(o.coordinator_key.0, node_key(30).verifying_key().to_bytes());
        assert_eq!(o.challenge_deadline_ms, NOW + 600_000);
        let bytes = o.to_bytes().unwrap();
        assert!(bytes.len() <= MAX_OPTIMISTIC_RECEIPT_BYTES);
        assert_eq!(OptimisticReceipt::from_bytes(&bytes).unwrap(), o);
        // Gossip tells both kinds apart.
        assert_eq!(
            GossipReceipt::from_bytes(&bytes).unwrap(),
            GossipReceipt::Optimistic(o.clone())
        );
        let t = threshold(o.receipt, &group);
        assert_eq!(
            GossipReceipt::from_bytes(&t.to_bytes().unwrap()).unwrap(),
            GossipReceipt::Threshold(t)
        );
        assert!(GossipReceipt::from_bytes(b"junk").is_err());

        // Refusals: another group key, a changed field, another version, a bad window.
        assert_eq!(
            o.verify(&GroupKey([1; 32])),
            Err(ReceiptError::WrongGroupKey)
        );
        let mut later = o.clone();
        later.challenge_deadline_ms += 1;
        assert_eq!(
            later.verify(&gk),
            Err(ReceiptError::BadCoordinatorSignature)
        );
        let mut v2 = o.clone();
        v2.version = 2;
        assert!(matches!(v2.verify(&gk), Err(ReceiptError::Codec(_))));
        let mut backwards = o.clone();
        backwards.challenge_deadline_ms = backwards.issued_at_ms;
        assert_eq!(backwards.verify(&gk), Err(ReceiptError::BadChallengeWindow));
        assert!(OptimisticReceipt::sign(
            &node_key(30),
            o.receipt,
            (0, Bytes32([0; 32]), gk),
            NOW,
            MAX_CHALLENGE_WINDOW_MS + 1
        )
        .is_err());
        let mut forged_node = o.clone();
        forged_node.receipt.commitment.fuel_used += 1;
        assert!(forged_node.verify(&gk).is_err());
    }

    #[test]
    fn challengeable_until_the_deadline_exactly() {
        let group = node_key(50);
        let o = optimistic(
            ReceiptV1::sign(&node_key(1), draft(1)).unwrap(),
            &group,
            5_000,
        );
        assert!(o.is_challengeable(NOW));
        assert!(o.is_challengeable(NOW + 4_999));
        assert!(!o.is_challengeable(NOW + 5_000));
        assert!(!o.is_challengeable(u64::MAX));
    }

    #[test]
    fn the_threshold_receipt_of_the_same_receipt_upgrades_it() {
        let group = node_key(50);
        let gk = GroupKey(group.verifying_key().to_bytes());
        let r = ReceiptV1::sign(&node_key(1), draft(1)).unwrap();
        let o = optimistic(r, &group, 600_000);
        let t = threshold(r, &group);
        assert_eq!(o.upgrade_to_threshold(t.clone()).unwrap(), t);

        // Another job: not this receipt.
        let other = threshold(ReceiptV1::sign(&node_key(1), draft(2)).unwrap(), &group);
        assert_eq!(
            o.upgrade_to_threshold(other),
            Err(UpgradeError::NotThisReceipt)
        );
        // The same job run by another node with the same result confirms that run only.
        let t2 = threshold(ReceiptV1::sign(&node_key(2), draft(1)).unwrap(), &group);
        assert_eq!(t2.receipt.commitment, r.commitment);
        assert_eq!(
            o.upgrade_to_threshold(t2),
            Err(UpgradeError::NotThisReceipt)
        );

        // The same job with another output: the challenge, with verifiable evidence.
        let mut d = draft(1);
        d.commitment.output_hash = crate::receipt::sha256(b"another output");
        let lie = threshold(ReceiptV1::sign(&node_key(1), d).unwrap(), &group);
        assert_eq!(lie.receipt_id(), o.receipt_id(), "the job's receipt id");
        let Err(UpgradeError::Conflict(c)) = o.upgrade_to_threshold(lie.clone()) else {
            panic!("no conflict");
        };
        assert_eq!(c.verify(&gk).unwrap(), job_key(&r).unwrap());
        assert_eq!(
            OptimisticConflict::from_bytes(&c.to_bytes().unwrap()).unwrap(),
            *c
        );
        // Not evidence: the same commitment, or a receipt of another group.
        let same = OptimisticConflict {
            optimistic: o.clone(),
            threshold: t,
        };
        assert!(same.verify(&gk).is_err());
        let forged = OptimisticConflict {
            optimistic: o,
            threshold: threshold(lie.receipt, &node_key(51)),
        };
        assert!(forged.verify(&gk).is_err());
    }
}
