//! Coordinator disputes this layer can detect (issue 13 §6, Tahap 14A.2B.2 §3c
//! `CoordinatorDispute`), produced as self-contained evidence for the chain to judge.
//!
//! A *job* is one submission: `(workload_id, input_hash, submitter, nonce)`. The committee
//! threshold-signs one receipt per job; two validly signed receipts of one job that differ
//! (another node, another output) mean the committee scheduled the job twice or signed a
//! second result — the roadmap's `InconsistentScheduling`. Both receipts verify against the
//! group key alone, so [`DoubleReceipt::verify`] needs nothing else. (The DA inclusion proof
//! the chain's dispute also carries belongs to the chain side: the receipts' DA records
//! name their heights.)
//!
//! [`UnauthorizedSigner`]: a receipt validly signed by a key that is neither the committee's
//! group key nor (for an optimistic receipt) a member's node key; [`InvalidSignature`]: a
//! receipt naming the committee's group key whose signature does not verify (roadmap
//! `CoordinatorDispute::{UnauthorizedSigner, InvalidSignature}`, issue 13 §6).

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::optimistic::{OptimisticReceipt, MAX_OPTIMISTIC_RECEIPT_BYTES};
use super::threshold::{committee_hash, ThresholdReceipt, MAX_THRESHOLD_RECEIPT_BYTES};
use super::v1::{peer_id_bytes, ReceiptError, ReceiptV1};
use crate::codec::{self, CodecError};
use crate::committee::{CommitteeConfig, GroupKey, MemberId, MAX_MEMBERS, MAX_MEMBER_ID_BYTES};
use crate::da::Bytes32;

/// Domain string of [`job_key`].
pub const JOB_KEY_DOMAIN: &str = "dsdn/receipt-job/v1";

/// Largest encoded [`DoubleReceipt`].
pub const MAX_DISPUTE_BYTES: usize = 2 * super::threshold::MAX_THRESHOLD_RECEIPT_BYTES + 256;

/// The job a receipt is for: `SHA-256` of the CBOR array `["dsdn/receipt-job/v1",
/// workload_id, input_hash, submitter, nonce]`. Unlike the receipt id it leaves out the
/// node, so two executions of one submission share it.
///
/// # Errors
/// [`ReceiptError::Codec`] (cannot happen: the tuple has a fixed shape).
pub fn job_key(receipt: &ReceiptV1) -> Result<Bytes32, ReceiptError> {
    let value = (
        JOB_KEY_DOMAIN,
        &receipt.workload_id,
        &receipt.commitment.input_hash,
        &receipt.submitter,
        receipt.nonce,
    );
    let bytes = codec::encode(&value, 1024).map_err(|e| ReceiptError::Codec(e.to_string()))?;
    Ok(Bytes32(Sha256::digest(bytes).into()))
}

/// Two different threshold receipts of one job, both signed by the committee.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleReceipt {
    /// The receipt this node accepted first.
    pub receipt_a: ThresholdReceipt,
    /// The other one.
    pub receipt_b: ThresholdReceipt,
}

/// Why a [`DoubleReceipt`] proves nothing.
#[derive(Debug, thiserror::Error)]
pub enum DisputeError {
    /// A receipt does not verify against the group key.
    #[error("receipt {which}: {error}")]
    Receipt {
        /// `a` or `b`.
        which: &'static str,
        /// Why.
        error: ReceiptError,
    },
    /// The receipts are of different jobs.
    #[error("the receipts are of different jobs")]
    DifferentJobs,
    /// The receipts are the same.
    #[error("both receipts are the same")]
    Same,
    /// Oversized or malformed bytes.
    #[error("dispute: {0}")]
    Codec(#[from] CodecError),
}

impl DoubleReceipt {
    /// Checks that both receipts verify against `group_key`, are of one job and differ;
    /// returns the job key.
    ///
    /// # Errors
    /// [`DisputeError`] naming what does not hold.
    pub fn verify(&self, group_key: &GroupKey) -> Result<Bytes32, DisputeError> {
        for (which, r) in [("a", &self.receipt_a), ("b", &self.receipt_b)] {
            r.verify(group_key)
                .map_err(|error| DisputeError::Receipt { which, error })?;
        }
        let job = |r: &ThresholdReceipt, which| {
            job_key(&r.receipt).map_err(|error| DisputeError::Receipt { which, error })
        };
        let key = job(&self.receipt_a, "a")?;
        if job(&self.receipt_b, "b")? != key {
            return Err(DisputeError::DifferentJobs);
        }
        if self.receipt_a == self.receipt_b {
            return Err(DisputeError::Same);
        }
        Ok(key)
    }

    /// The CBOR encoding.
    ///
    /// # Errors
    /// [`CodecError`] beyond [`MAX_DISPUTE_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_DISPUTE_BYTES)
    }

    /// Decodes a dispute (not verified: see [`DoubleReceipt::verify`]).
    ///
    /// # Errors
    /// [`DisputeError::Codec`] for oversized or malformed bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DisputeError> {
        Ok(codec::decode(bytes, MAX_DISPUTE_BYTES)?)
    }
}

/// Largest encoded [`UnauthorizedSigner`] or [`InvalidSignature`]: the larger receipt kind,
/// a committee of [`MAX_MEMBERS`] members and room for the other fields.
pub const MAX_SIGNER_DISPUTE_BYTES: usize = MAX_THRESHOLD_RECEIPT_BYTES
    + MAX_OPTIMISTIC_RECEIPT_BYTES
    + MAX_MEMBERS * (MAX_MEMBER_ID_BYTES + 2)
    + 256;

/// A signed receipt of either kind, as the signer disputes carry it (CBOR: a one-key map,
/// `{"threshold": ThresholdReceipt}` or `{"optimistic": OptimisticReceipt}`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SignedReceipt {
    /// A committee-signed receipt.
    Threshold(ThresholdReceipt),
    /// A coordinator-signed receipt.
    Optimistic(OptimisticReceipt),
}

impl SignedReceipt {
    /// The receipt id.
    pub fn receipt_id(&self) -> Bytes32 {
        match self {
            SignedReceipt::Threshold(t) => t.receipt_id(),
            SignedReceipt::Optimistic(o) => o.receipt_id(),
        }
    }

    /// `threshold` or `optimistic`.
    pub fn kind(&self) -> &'static str {
        match self {
            SignedReceipt::Threshold(_) => "threshold",
            SignedReceipt::Optimistic(_) => "optimistic",
        }
    }

    /// The key that signed it (the group key named, or the coordinator's key).
    pub fn signer(&self) -> Bytes32 {
        match self {
            SignedReceipt::Threshold(t) => Bytes32(t.group_key.0),
            SignedReceipt::Optimistic(o) => o.coordinator_key,
        }
    }
}

fn not_evidence(why: &str) -> ReceiptError {
    ReceiptError::Codec(format!("not evidence: {why}"))
}

/// A receipt validly signed by a key that is not authorised to sign receipts of the
/// committee (`UnauthorizedSigner`): a threshold receipt under another group key than the
/// committee's, or an optimistic receipt for this committee signed by a key that is not a
/// member's. Found by nodes that know the committee (its members, for optimistic receipts:
/// only members do; other nodes know only the group key).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UnauthorizedSigner {
    /// The receipt.
    pub receipt: SignedReceipt,
    /// The committee's group key, as the reporting node knows it.
    pub group_key: GroupKey,
    /// The committee as the reporting node knows it (needed for an optimistic receipt).
    pub committee: Option<CommitteeConfig>,
}

impl UnauthorizedSigner {
    /// Checks the evidence; returns the unauthorised key. A threshold receipt must verify
    /// under the group key it names, which differs from `group_key`; an optimistic receipt
    /// must verify for `group_key` (§8.6 of PROTOCOL.md), name `committee` (epoch and
    /// hash), and its coordinator must not be among the members.
    ///
    /// # Errors
    /// The receipt's [`ReceiptError`], or [`ReceiptError::Codec`] naming what does not hold.
    pub fn verify(&self) -> Result<Bytes32, ReceiptError> {
        match &self.receipt {
            SignedReceipt::Threshold(t) => {
                if t.group_key == self.group_key {
                    return Err(not_evidence("signed under the committee's group key"));
                }
                t.verify(&t.group_key)?;
            }
            SignedReceipt::Optimistic(o) => {
                let c = self
                    .committee
                    .as_ref()
                    .ok_or_else(|| not_evidence("no committee given"))?;
                o.verify(&self.group_key)?;
                if o.epoch != c.epoch || o.committee_hash != committee_hash(c)? {
                    return Err(not_evidence("the receipt names another committee"));
                }
                let coordinator = MemberId::new(peer_id_bytes(&o.coordinator_key).to_vec())
                    .map_err(|e| ReceiptError::Codec(e.to_string()))?;
                if c.contains(&coordinator) {
                    return Err(not_evidence("the coordinator is a member"));
                }
            }
        }
        Ok(self.receipt.signer())
    }

    /// The CBOR encoding.
    ///
    /// # Errors
    /// [`CodecError`] beyond [`MAX_SIGNER_DISPUTE_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_SIGNER_DISPUTE_BYTES)
    }

    /// Decodes the evidence (not verified: see [`UnauthorizedSigner::verify`]).
    ///
    /// # Errors
    /// [`CodecError`] for oversized or malformed bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_SIGNER_DISPUTE_BYTES)
    }
}

/// A receipt naming the committee's group key (threshold) or made for it (optimistic) whose
/// signature does not verify (`InvalidSignature`): the group signature, or the
/// coordinator's. It proves who sent nothing (anyone can damage a signature); it records
/// that such a receipt was handed to or gossiped at this node.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvalidSignature {
    /// The receipt.
    pub receipt: SignedReceipt,
    /// The committee's group key, as the reporting node knows it.
    pub group_key: GroupKey,
}

impl InvalidSignature {
    /// Checks the evidence: the receipt names `group_key` and its signature (group or
    /// coordinator) does not verify.
    ///
    /// # Errors
    /// [`ReceiptError::Codec`] naming what does not hold.
    pub fn verify(&self) -> Result<(), ReceiptError> {
        let verdict = match &self.receipt {
            SignedReceipt::Threshold(t) => {
                if t.group_key != self.group_key {
                    return Err(not_evidence("the receipt names another group key"));
                }
                self.group_key
                    .verify(&t.signing_bytes()?, &t.aggregate_signature.0)
            }
            SignedReceipt::Optimistic(o) => {
                if o.group_key != self.group_key {
                    return Err(not_evidence("the receipt names another group key"));
                }
                !matches!(
                    o.verify(&self.group_key),
                    Err(ReceiptError::BadCoordinatorSignature | ReceiptError::BadCoordinatorKey)
                )
            }
        };
        if verdict {
            return Err(not_evidence("the signature verifies"));
        }
        Ok(())
    }

    /// The CBOR encoding.
    ///
    /// # Errors
    /// [`CodecError`] beyond [`MAX_SIGNER_DISPUTE_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_SIGNER_DISPUTE_BYTES)
    }

    /// Decodes the evidence (not verified: see [`InvalidSignature::verify`]).
    ///
    /// # Errors
    /// [`CodecError`] for oversized or malformed bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_SIGNER_DISPUTE_BYTES)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipt::signed_tests::{draft, node_key, threshold};

    #[test]
    fn two_receipts_of_one_job_from_two_nodes_are_a_dispute() {
        let group = node_key(50);
        let gk = GroupKey(group.verifying_key().to_bytes());
        let a = threshold(ReceiptV1::sign(&node_key(1), draft(1)).unwrap(), &group);
        // The same submission executed by another node.
        let b = threshold(ReceiptV1::sign(&node_key(2), draft(1)).unwrap(), &group);
        assert_ne!(a.receipt_id(), b.receipt_id(), "different receipts");
        assert_eq!(
            job_key(&a.receipt).unwrap(),
            job_key(&b.receipt).unwrap(),
            "one job"
        );
        let d = DoubleReceipt {
            receipt_a: a.clone(),
            receipt_b: b.clone(),
        };
        assert_eq!(d.verify(&gk).unwrap(), job_key(&a.receipt).unwrap());
        assert_eq!(
            DoubleReceipt::from_bytes(&d.to_bytes().unwrap()).unwrap(),
            d
        );

        // Not a dispute: another job, the same receipt twice, a receipt of another group.
        let other_job = threshold(ReceiptV1::sign(&node_key(2), draft(2)).unwrap(), &group);
        let not = DoubleReceipt {
            receipt_a: a.clone(),
            receipt_b: other_job,
        };
        assert!(matches!(not.verify(&gk), Err(DisputeError::DifferentJobs)));
        let same = DoubleReceipt {
            receipt_a: a.clone(),
            receipt_b: a.clone(),
        };
        assert!(matches!(same.verify(&gk), Err(DisputeError::Same)));
        let forged = DoubleReceipt {
            receipt_a: a,
            receipt_b: threshold(b.receipt, &node_key(51)),
        };
        assert!(matches!(
            forged.verify(&gk),
            Err(DisputeError::Receipt { which: "b", .. })
        ));
    }

    #[test]
    fn receipts_of_unauthorised_signers_and_invalid_signatures_are_evidence() {
        use crate::committee::tests::member;
        let group = node_key(50);
        let gk = GroupKey(group.verifying_key().to_bytes());
        let r = ReceiptV1::sign(&node_key(1), draft(1)).unwrap();
        // A committee of two members, one of them the coordinator with key 30.
        let coordinator = node_key(30);
        let member_30 =
            MemberId::new(peer_id_bytes(&Bytes32(coordinator.verifying_key().to_bytes())).to_vec())
                .unwrap();
        let committee = CommitteeConfig {
            epoch: 4,
            threshold: 2,
            members: vec![member(0), member_30],
        };
        let hash = committee_hash(&committee).unwrap();
        let sign_as = |k: &ed25519_dalek::SigningKey| {
            OptimisticReceipt::sign(k, r, (4, hash, gk), 1_000, 60_000).unwrap()
        };
        // A member's optimistic receipt is no evidence; a non-member's is.
        let by_member = UnauthorizedSigner {
            receipt: SignedReceipt::Optimistic(sign_as(&coordinator)),
            group_key: gk,
            committee: Some(committee.clone()),
        };
        assert!(by_member.verify().is_err());
        let outsider = node_key(31);
        let by_outsider = UnauthorizedSigner {
            receipt: SignedReceipt::Optimistic(sign_as(&outsider)),
            ..by_member.clone()
        };
        assert_eq!(
            by_outsider.verify().unwrap().0,
            outsider.verifying_key().to_bytes()
        );
        assert_eq!(
            UnauthorizedSigner::from_bytes(&by_outsider.to_bytes().unwrap()).unwrap(),
            by_outsider
        );
        // Without the committee, or for another committee: no evidence.
        assert!(UnauthorizedSigner {
            committee: None,
            ..by_outsider.clone()
        }
        .verify()
        .is_err());
        assert!(UnauthorizedSigner {
            committee: Some(CommitteeConfig {
                epoch: 5,
                ..committee.clone()
            }),
            ..by_outsider.clone()
        }
        .verify()
        .is_err());
        // A threshold receipt under another group key is; under the group key it is not.
        let foreign = threshold(r, &node_key(51));
        let e = UnauthorizedSigner {
            receipt: SignedReceipt::Threshold(foreign.clone()),
            group_key: gk,
            committee: None,
        };
        assert_eq!(e.verify().unwrap().0, foreign.group_key.0);
        assert!(UnauthorizedSigner {
            receipt: SignedReceipt::Threshold(threshold(r, &group)),
            ..e
        }
        .verify()
        .is_err());

        // Invalid signatures: a damaged group or coordinator signature is evidence, a valid
        // one or a receipt for another group key is not.
        let mut damaged = threshold(r, &group);
        damaged.aggregate_signature.0[0] ^= 1;
        let e = InvalidSignature {
            receipt: SignedReceipt::Threshold(damaged),
            group_key: gk,
        };
        e.verify().unwrap();
        assert_eq!(
            InvalidSignature::from_bytes(&e.to_bytes().unwrap()).unwrap(),
            e
        );
        assert!(InvalidSignature {
            receipt: SignedReceipt::Threshold(threshold(r, &group)),
            group_key: gk
        }
        .verify()
        .is_err());
        assert!(InvalidSignature {
            receipt: SignedReceipt::Threshold(foreign),
            group_key: gk
        }
        .verify()
        .is_err());
        let mut bad = sign_as(&coordinator);
        bad.coordinator_signature.0[5] ^= 1;
        InvalidSignature {
            receipt: SignedReceipt::Optimistic(bad),
            group_key: gk,
        }
        .verify()
        .unwrap();
        assert!(InvalidSignature {
            receipt: SignedReceipt::Optimistic(sign_as(&coordinator)),
            group_key: gk
        }
        .verify()
        .is_err());
    }
}
