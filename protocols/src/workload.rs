//! The workload protocol `/dsdn/<network>/workload/1.0.0` and the signed submission a
//! client hands to a coordinator (Tahap 14C.B: node execution; Tahap 17: anti-self-dealing).
//!
//! ```text
//! client ──WorkloadSubmission (HTTP)──▶ coordinator
//! coordinator ──Execute{workload_id, input, submitter, nonce}──▶ storage node
//! storage node ──FetchModule{workload_id}──▶ coordinator ──Module(bytes)──▶ storage node
//! storage node: run → ReceiptV1 signed with its node key ──Executed{receipt, output}──▶ coordinator
//! coordinator: committee threshold-signs the receipt → ThresholdReceipt, gossiped
//! ```
//!
//! A node's operator, for anti-self-dealing, is the Ed25519 key behind its PeerId: a
//! submission whose `submitter` is a node's key is never executed by that node (the
//! coordinator skips it, the node refuses it, and [`crate::receipt::ReceiptV1::verify`]
//! rejects the receipt). Operators of several nodes are related by on-chain wallet affinity,
//! which is outside this daemon.
//!
//! Caps: a module is at most [`MAX_MODULE_BYTES`], an input and an output at most
//! [`MAX_INPUT_BYTES`] / [`MAX_OUTPUT_BYTES`]; requests are at most
//! [`MAX_WORKLOAD_REQUEST_BYTES`] and responses [`MAX_WORKLOAD_RESPONSE_BYTES`] of CBOR,
//! checked before decoding.

use ed25519_dalek::{Signature, Signer as _, SigningKey, VerifyingKey};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::codec::{self, CodecError};
use crate::da::{Bytes32, Bytes64};
use crate::receipt::{sha256, workload_id, ReceiptV1, MAX_RECEIPT_BYTES};

/// Largest WASM module carried by the protocol, in bytes (4 MiB).
pub const MAX_MODULE_BYTES: usize = 4 << 20;

/// Largest workload input, in bytes (1 MiB).
pub const MAX_INPUT_BYTES: usize = 1 << 20;

/// Largest workload output, in bytes (1 MiB).
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;

/// Longest refusal text, in bytes (longer texts are cut by [`WorkloadRefusal::failed`]).
pub const MAX_REFUSAL_TEXT_BYTES: usize = 512;

/// Largest encoded [`WorkloadRequest`], in bytes: an input plus framing.
pub const MAX_WORKLOAD_REQUEST_BYTES: usize = MAX_INPUT_BYTES + 1024;

/// Largest encoded [`WorkloadResponse`], in bytes: a module plus framing (an output plus a
/// receipt is smaller).
pub const MAX_WORKLOAD_RESPONSE_BYTES: usize = MAX_MODULE_BYTES + 1024;

/// Largest encoded [`WorkloadSubmission`], in bytes.
pub const MAX_SUBMISSION_BYTES: usize = MAX_MODULE_BYTES + MAX_INPUT_BYTES + 1024;

/// Domain string that starts the CBOR tuple a submitter signs.
pub const SUBMISSION_DOMAIN: &str = "dsdn/workload-submit/v1";

/// A request on the workload protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadRequest {
    /// Coordinator → storage node: execute a workload and answer a signed receipt.
    Execute(ExecuteRequest),
    /// Storage node → coordinator: the module with this id (`SHA-256` of its bytes).
    FetchModule {
        /// [`crate::receipt::workload_id`] of the module.
        workload_id: Bytes32,
    },
}

/// What a coordinator asks a storage node to run.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExecuteRequest {
    /// The module's id; the node fetches the module from the requesting coordinator when it
    /// does not have it.
    pub workload_id: Bytes32,
    /// The input handed to the module (at most [`MAX_INPUT_BYTES`]).
    pub input: ByteBuf,
    /// The submitter's Ed25519 public key (the receipt's `submitter`).
    pub submitter: Bytes32,
    /// The submitter's nonce (distinguishes repeated submissions of one job).
    pub nonce: u64,
}

/// A response on the workload protocol.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkloadResponse {
    /// The node ran the workload: its signed receipt and the output (at most
    /// [`MAX_OUTPUT_BYTES`]).
    Executed {
        /// The node-signed receipt.
        receipt: Box<ReceiptV1>,
        /// The module's output.
        output: ByteBuf,
    },
    /// The module asked for by [`WorkloadRequest::FetchModule`].
    Module(ByteBuf),
    /// The request was not served.
    Refused(WorkloadRefusal),
}

/// Why a workload request was not served.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum WorkloadRefusal {
    /// The node does not execute workloads (no storage service, or no runtime).
    #[error("this node does not execute workloads")]
    NotExecuting,
    /// The node runs as many jobs as it accepts.
    #[error("the node is busy")]
    Busy,
    /// The submitter is this node's operator (anti-self-dealing).
    #[error("the submitter is this node's operator (self-dealing)")]
    SelfDealing,
    /// The module is not available (not cached by the coordinator, or the fetched bytes do
    /// not hash to the workload id).
    #[error("the module is not available")]
    ModuleUnavailable,
    /// The module trapped, ran out of fuel, memory or time, or is not valid WASM; no receipt
    /// is produced.
    #[error("execution failed: {0}")]
    Failed(String),
    /// The requester may not ask this: `Execute` only from a connected peer advertising the
    /// coordinator service, `FetchModule` only from a node this coordinator asked to run
    /// that module.
    #[error("not allowed: {0}")]
    NotAllowed(String),
    /// The request is malformed (oversized input).
    #[error("malformed request: {0}")]
    Malformed(String),
}

impl WorkloadRefusal {
    /// [`WorkloadRefusal::Failed`] with `text` cut to [`MAX_REFUSAL_TEXT_BYTES`] (on a char
    /// boundary).
    pub fn failed(text: &str) -> Self {
        WorkloadRefusal::Failed(cut(text))
    }

    /// The label used in metrics: `not_executing`, `busy`, `self_dealing`,
    /// `module_unavailable`, `failed`, `not_allowed`, `malformed`.
    pub fn label(&self) -> &'static str {
        match self {
            WorkloadRefusal::NotExecuting => "not_executing",
            WorkloadRefusal::Busy => "busy",
            WorkloadRefusal::SelfDealing => "self_dealing",
            WorkloadRefusal::ModuleUnavailable => "module_unavailable",
            WorkloadRefusal::Failed(_) => "failed",
            WorkloadRefusal::NotAllowed(_) => "not_allowed",
            WorkloadRefusal::Malformed(_) => "malformed",
        }
    }
}

fn cut(text: &str) -> String {
    let mut end = text.len().min(MAX_REFUSAL_TEXT_BYTES);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].to_owned()
}

impl WorkloadResponse {
    /// Checks an [`WorkloadResponse::Executed`] answer to `request` sent to the node with
    /// Ed25519 key `node_key`: the receipt verifies ([`ReceiptV1::verify`]), was made by
    /// that node, for that workload, input, submitter and nonce, and the output hashes to
    /// the receipt's `output_hash` and fits [`MAX_OUTPUT_BYTES`].
    ///
    /// # Errors
    /// A text naming the first mismatch.
    pub fn check_executed(
        receipt: &ReceiptV1,
        output: &[u8],
        request: &ExecuteRequest,
        node_key: &Bytes32,
    ) -> Result<(), String> {
        receipt.verify().map_err(|e| e.to_string())?;
        if receipt.node_key != *node_key {
            return Err("the receipt is signed by another node".into());
        }
        if receipt.workload_id != request.workload_id
            || receipt.commitment.input_hash != sha256(&request.input)
            || receipt.submitter != request.submitter
            || receipt.nonce != request.nonce
        {
            return Err("the receipt is for another job".into());
        }
        if output.len() > MAX_OUTPUT_BYTES || sha256(output) != receipt.output_hash {
            return Err("the output does not match the receipt's output hash".into());
        }
        Ok(())
    }
}

/// A workload as a client submits it to a coordinator, signed by the submitter.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadSubmission {
    /// The WASM module (at most [`MAX_MODULE_BYTES`]).
    pub module: ByteBuf,
    /// The input (at most [`MAX_INPUT_BYTES`]).
    pub input: ByteBuf,
    /// The submitter's Ed25519 public key.
    pub submitter: Bytes32,
    /// A nonce chosen by the submitter.
    pub nonce: u64,
    /// Ed25519 signature of [`WorkloadSubmission::signing_bytes`] by `submitter`.
    pub signature: Bytes64,
}

/// Why a submission is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmissionError {
    /// Encoding or decoding failed.
    #[error("codec: {0}")]
    Codec(String),
    /// The module or the input exceeds its cap.
    #[error("{what} is {len} bytes, over the cap of {cap}")]
    TooLarge {
        /// `module` or `input`.
        what: &'static str,
        /// Its length, in bytes.
        len: usize,
        /// The cap, in bytes.
        cap: usize,
    },
    /// The submitter key is not a valid Ed25519 key.
    #[error("the submitter key is not a valid Ed25519 public key")]
    BadKey,
    /// The signature does not verify.
    #[error("the submission signature does not verify")]
    BadSignature,
}

impl WorkloadSubmission {
    /// Builds and signs a submission with the submitter's key `key` for network `network`.
    ///
    /// # Errors
    /// [`SubmissionError::TooLarge`] for an oversized module or input.
    pub fn sign(
        key: &SigningKey,
        network: &str,
        module: Vec<u8>,
        input: Vec<u8>,
        nonce: u64,
    ) -> Result<Self, SubmissionError> {
        let mut s = WorkloadSubmission {
            module: ByteBuf::from(module),
            input: ByteBuf::from(input),
            submitter: Bytes32(key.verifying_key().to_bytes()),
            nonce,
            signature: Bytes64([0; 64]),
        };
        s.check_sizes()?;
        s.signature = Bytes64(key.sign(&s.signing_bytes(network)?).to_bytes());
        Ok(s)
    }

    /// The workload id ([`workload_id`] of the module).
    pub fn workload_id(&self) -> Bytes32 {
        workload_id(&self.module)
    }

    /// The bytes the submitter signs: the CBOR array `["dsdn/workload-submit/v1", network,
    /// workload_id, SHA-256(input), submitter, nonce]`.
    ///
    /// # Errors
    /// [`SubmissionError::Codec`] (cannot happen: fixed shape, network ids are short).
    pub fn signing_bytes(&self, network: &str) -> Result<Vec<u8>, SubmissionError> {
        let value = (
            SUBMISSION_DOMAIN,
            network,
            self.workload_id(),
            sha256(&self.input),
            self.submitter,
            self.nonce,
        );
        codec::encode(&value, MAX_RECEIPT_BYTES).map_err(|e| SubmissionError::Codec(e.to_string()))
    }

    fn check_sizes(&self) -> Result<(), SubmissionError> {
        for (what, len, cap) in [
            ("module", self.module.len(), MAX_MODULE_BYTES),
            ("input", self.input.len(), MAX_INPUT_BYTES),
        ] {
            if len > cap {
                return Err(SubmissionError::TooLarge { what, len, cap });
            }
        }
        Ok(())
    }

    /// Checks the sizes and the submitter's signature (`verify_strict`, weak keys refused).
    ///
    /// # Errors
    /// [`SubmissionError::TooLarge`], [`SubmissionError::BadKey`],
    /// [`SubmissionError::BadSignature`].
    pub fn verify(&self, network: &str) -> Result<(), SubmissionError> {
        self.check_sizes()?;
        let key =
            VerifyingKey::from_bytes(&self.submitter.0).map_err(|_| SubmissionError::BadKey)?;
        if key.is_weak() {
            return Err(SubmissionError::BadKey);
        }
        key.verify_strict(
            &self.signing_bytes(network)?,
            &Signature::from_bytes(&self.signature.0),
        )
        .map_err(|_| SubmissionError::BadSignature)
    }

    /// Encodes as CBOR.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] over [`MAX_SUBMISSION_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_SUBMISSION_BYTES)
    }

    /// Decodes from CBOR, refusing input over [`MAX_SUBMISSION_BYTES`] before decoding.
    /// Checks nothing else (see [`WorkloadSubmission::verify`]).
    ///
    /// # Errors
    /// [`CodecError`] for oversized, malformed or trailing input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_SUBMISSION_BYTES)
    }
}

#[cfg(test)]
mod tests;
