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

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::threshold::ThresholdReceipt;
use super::v1::{ReceiptError, ReceiptV1};
use crate::codec::{self, CodecError};
use crate::committee::GroupKey;
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
}
