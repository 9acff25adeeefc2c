//! What a node commits to after executing a WASM workload: [`ExecutionCommitment`] and
//! [`ResourceUsage`], and the pure hash functions that define their fields, so any party
//! can recompute and compare them (a re-execution check).
//!
//! Spec: Tahap 14C.A §1 (`ExecutionCommitment`: workload_id, input_hash, output_hash,
//! state_root_before, state_root_after, execution_trace_merkle_root), 14C.B §1 (the WASM
//! runtime captures them; same input → same commitment), Tahap 18 (`StateCheckpoint`,
//! resource meter) and 18.8 §1 (the merkleized execution trace, see [`merkle`]).
//!
//! Field definitions (all hashes SHA-256, 32 bytes):
//! - `workload_id` = [`workload_id`]`(module bytes)` = `SHA-256(module)`;
//! - `input_hash`, `output_hash` = `SHA-256(bytes)` ([`sha256`]);
//! - `state_root_*` = [`state_root`]`(linear memory)` = `SHA-256(memory bytes)`;
//! - `trace_root` = [`merkle::merkle_root`] of the [`Checkpoint::hash`]es, in order;
//! - `checkpoints` = number of those checkpoints; `fuel_used` = fuel units consumed.
//!
//! Signed receipts: [`ReceiptV1`] (the node's signature over its commitment and usage,
//! [`v1`]) inside a [`ThresholdReceipt`] (the committee's FROST signature, [`threshold`]),
//! and [`ReceiptDedup`] for duplicate rejection; [`OptimisticReceipt`] (one coordinator's
//! signature and a challenge window, superseded by the threshold receipt, [`optimistic`]).
//!
//! The commitment holds only values that are a deterministic function of (module, input,
//! runtime limits); wall-clock time and memory peak live in [`ResourceUsage`] instead.

pub mod dispute;
pub mod merkle;
pub mod optimistic;
pub mod threshold;
pub mod v1;

pub use optimistic::{GossipReceipt, OptimisticConflict, OptimisticReceipt};
pub use threshold::{
    committee_hash, committee_signing_bytes, CommitteeMessage, ReceiptDedup, ThresholdReceipt,
    COMMITTEE_HASH_DOMAIN, COMMITTEE_SIGNING_DOMAIN, MAX_THRESHOLD_RECEIPT_BYTES,
};
pub use v1::{
    is_self_dealing, peer_id_bytes, receipt_id, usage_proof_hash, ReceiptDraft, ReceiptError,
    ReceiptV1, MAX_RECEIPT_BYTES, RECEIPT_ID_DOMAIN, RECEIPT_SIGNING_DOMAIN,
};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, CodecError};
use crate::da::Bytes32;

/// Largest encoded [`ExecutionCommitment`] accepted, in bytes (the encoding is a CBOR map
/// of six 32-byte strings and two integers: about 330 bytes).
pub const MAX_COMMITMENT_BYTES: usize = 512;

/// Largest encoded [`ResourceUsage`] accepted, in bytes (three integers: under 80 bytes).
pub const MAX_USAGE_BYTES: usize = 128;

/// Domain prefix of a [`Checkpoint::hash`].
pub const CHECKPOINT_DOMAIN: &[u8] = b"dsdn/wasm-checkpoint/v1";

/// The commitment a node makes to one execution of a workload (Tahap 14C.A §1).
///
/// CBOR: a map with the field names below; 32-byte fields are byte strings (hex in JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExecutionCommitment {
    /// `SHA-256` of the WASM module bytes ([`workload_id`]).
    pub workload_id: Bytes32,
    /// `SHA-256` of the input bytes.
    pub input_hash: Bytes32,
    /// `SHA-256` of the output bytes.
    pub output_hash: Bytes32,
    /// [`state_root`] of linear memory just before the entry point runs (after
    /// instantiation and after the input was copied in).
    pub state_root_before: Bytes32,
    /// [`state_root`] of linear memory just after the entry point returned.
    pub state_root_after: Bytes32,
    /// [`merkle::merkle_root`] of the checkpoint hashes (Tahap 18.8 §1).
    pub trace_root: Bytes32,
    /// Number of checkpoints under `trace_root` (the last one is taken after return).
    pub checkpoints: u64,
    /// Fuel units consumed by instantiation, `alloc` and `run` together.
    pub fuel_used: u64,
}

/// Resources one execution used (the usage proof of Tahap 14C.B §3; not deterministic in
/// `wall_time_ms`, so it is reported beside the commitment, not inside it).
///
/// CBOR: a map of three unsigned integers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ResourceUsage {
    /// Fuel units consumed (equal to [`ExecutionCommitment::fuel_used`]).
    pub fuel_used: u64,
    /// Largest size linear memory reached, in bytes.
    pub memory_peak_bytes: u64,
    /// Wall-clock time of instantiation and execution, in milliseconds.
    pub wall_time_ms: u64,
}

/// One point of the execution trace (Tahap 18 `StateCheckpoint`): the fuel consumed so far
/// (the instruction index) and the [`state_root`] of linear memory at that point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Checkpoint {
    /// Fuel units consumed since the start of the execution.
    pub fuel_consumed: u64,
    /// [`state_root`] of linear memory at this point.
    pub state_root: Bytes32,
}

impl Checkpoint {
    /// The 32-byte value this checkpoint contributes as a merkle leaf:
    /// `SHA-256(CHECKPOINT_DOMAIN || fuel_consumed as u64 little-endian || state_root)`.
    pub fn hash(&self) -> Bytes32 {
        let mut h = Sha256::new();
        h.update(CHECKPOINT_DOMAIN);
        h.update(self.fuel_consumed.to_le_bytes());
        h.update(self.state_root.0);
        Bytes32(h.finalize().into())
    }
}

/// `SHA-256(bytes)`.
pub fn sha256(bytes: &[u8]) -> Bytes32 {
    Bytes32(Sha256::digest(bytes).into())
}

/// Workload id of a module: `SHA-256` of its bytes (also the key of the module cache).
pub fn workload_id(module: &[u8]) -> Bytes32 {
    sha256(module)
}

/// State root of a linear memory: `SHA-256` of all its bytes (its length is a multiple of
/// the 64 KiB WASM page, so two memories of different sizes never share a preimage length).
pub fn state_root(memory: &[u8]) -> Bytes32 {
    sha256(memory)
}

/// Merkle root of a trace: [`merkle::merkle_root`] of the [`Checkpoint::hash`]es in order.
pub fn trace_root(trace: &[Checkpoint]) -> Bytes32 {
    let leaves: Vec<Bytes32> = trace.iter().map(Checkpoint::hash).collect();
    merkle::merkle_root(&leaves)
}

impl ExecutionCommitment {
    /// Encodes as CBOR.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] over [`MAX_COMMITMENT_BYTES`] (cannot happen for this
    /// fixed-size type, but the cap is checked like everywhere else).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_COMMITMENT_BYTES)
    }

    /// Decodes from CBOR, refusing input over [`MAX_COMMITMENT_BYTES`] before decoding.
    ///
    /// # Errors
    /// [`CodecError`] for oversized, malformed or trailing input, or unknown fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_COMMITMENT_BYTES)
    }

    /// Whether `trace` is the trace this commitment summarises: same number of checkpoints,
    /// same merkle root, and its last checkpoint is the final state (`state_root_after`,
    /// `fuel_used`). Hashes `O(trace.len())`.
    pub fn matches_trace(&self, trace: &[Checkpoint]) -> bool {
        let Some(last) = trace.last() else {
            return false;
        };
        trace.len() as u64 == self.checkpoints
            && last.state_root == self.state_root_after
            && last.fuel_consumed == self.fuel_used
            && trace_root(trace) == self.trace_root
    }
}

impl ResourceUsage {
    /// Encodes as CBOR.
    ///
    /// # Errors
    /// [`CodecError::TooLarge`] over [`MAX_USAGE_BYTES`].
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        codec::encode(self, MAX_USAGE_BYTES)
    }

    /// Decodes from CBOR, refusing input over [`MAX_USAGE_BYTES`] before decoding.
    ///
    /// # Errors
    /// [`CodecError`] for oversized, malformed or trailing input, or unknown fields.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CodecError> {
        codec::decode(bytes, MAX_USAGE_BYTES)
    }
}

#[cfg(test)]
pub(crate) mod signed_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn b32() -> impl Strategy<Value = Bytes32> {
        any::<[u8; 32]>().prop_map(Bytes32)
    }

    fn commitment() -> impl Strategy<Value = ExecutionCommitment> {
        (
            b32(),
            b32(),
            b32(),
            b32(),
            b32(),
            b32(),
            any::<u64>(),
            any::<u64>(),
        )
            .prop_map(|(w, i, o, sb, sa, t, c, f)| ExecutionCommitment {
                workload_id: w,
                input_hash: i,
                output_hash: o,
                state_root_before: sb,
                state_root_after: sa,
                trace_root: t,
                checkpoints: c,
                fuel_used: f,
            })
    }

    #[test]
    fn hashes_are_plain_sha256_and_checkpoints_are_domain_separated() {
        assert_eq!(workload_id(b"abc"), sha256(b"abc"));
        assert_eq!(
            hex::encode(sha256(b"abc").0),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let c = Checkpoint {
            fuel_consumed: 7,
            state_root: state_root(&[0; 65536]),
        };
        let d = Checkpoint {
            fuel_consumed: 8,
            ..c
        };
        assert_ne!(c.hash(), d.hash());
        assert_ne!(c.hash(), c.state_root);
    }

    #[test]
    fn matches_trace_checks_count_root_and_final_state() {
        let trace: Vec<Checkpoint> = (1..=3u64)
            .map(|i| Checkpoint {
                fuel_consumed: i * 100,
                state_root: sha256(&i.to_le_bytes()),
            })
            .collect();
        let c = ExecutionCommitment {
            workload_id: sha256(b"m"),
            input_hash: sha256(b"i"),
            output_hash: sha256(b"o"),
            state_root_before: sha256(b"b"),
            state_root_after: trace[2].state_root,
            trace_root: trace_root(&trace),
            checkpoints: 3,
            fuel_used: 300,
        };
        assert!(c.matches_trace(&trace));
        assert!(!c.matches_trace(&trace[..2]));
        assert!(!c.matches_trace(&[]));
        assert!(!ExecutionCommitment {
            fuel_used: 301,
            ..c
        }
        .matches_trace(&trace));
        let mut swapped = trace.clone();
        swapped.swap(0, 1);
        assert!(!c.matches_trace(&swapped));
    }

    #[test]
    fn unknown_fields_and_oversized_input_are_refused() {
        #[derive(Serialize)]
        struct Extra {
            fuel_used: u64,
            memory_peak_bytes: u64,
            wall_time_ms: u64,
            extra: u64,
        }
        let bytes = codec::encode(
            &Extra {
                fuel_used: 1,
                memory_peak_bytes: 2,
                wall_time_ms: 3,
                extra: 4,
            },
            1024,
        )
        .unwrap();
        assert!(ResourceUsage::from_bytes(&bytes).is_err());
        assert!(matches!(
            ExecutionCommitment::from_bytes(&[0u8; MAX_COMMITMENT_BYTES + 1]),
            Err(CodecError::TooLarge { .. })
        ));
    }

    proptest! {
        #[test]
        fn commitment_round_trips_within_its_cap(c in commitment()) {
            let bytes = c.to_bytes().unwrap();
            prop_assert!(bytes.len() <= MAX_COMMITMENT_BYTES);
            prop_assert_eq!(ExecutionCommitment::from_bytes(&bytes).unwrap(), c);
            let json = serde_json::to_string(&c).unwrap();
            prop_assert_eq!(serde_json::from_str::<ExecutionCommitment>(&json).unwrap(), c);
        }

        #[test]
        fn usage_round_trips_within_its_cap(f in any::<u64>(), m in any::<u64>(), w in any::<u64>()) {
            let u = ResourceUsage { fuel_used: f, memory_peak_bytes: m, wall_time_ms: w };
            let bytes = u.to_bytes().unwrap();
            prop_assert!(bytes.len() <= MAX_USAGE_BYTES);
            prop_assert_eq!(ResourceUsage::from_bytes(&bytes).unwrap(), u);
        }

        #[test]
        fn arbitrary_or_mutated_bytes_never_panic(
            c in commitment(),
            junk in proptest::collection::vec(any::<u8>(), 0..600),
            at in any::<usize>(),
            x in 1u8..,
        ) {
            let _ = ExecutionCommitment::from_bytes(&junk);
            let _ = ResourceUsage::from_bytes(&junk);
            let mut bytes = c.to_bytes().unwrap();
            let i = at % bytes.len();
            bytes[i] ^= x;
            // serde_cbor also accepts some non-canonical encodings of the same value, so a
            // flipped byte may decode to `c` itself; whatever decodes re-encodes to a value
            // that decodes the same (signatures and hashes are over the re-encoding).
            if let Ok(d) = ExecutionCommitment::from_bytes(&bytes) {
                let canonical = d.to_bytes().unwrap();
                prop_assert_eq!(ExecutionCommitment::from_bytes(&canonical).unwrap(), d);
            }
        }
    }
}
