//! DA state proofs between peers: protocol `/dsdn/<network>/da-proof/1.0.0` (issue 16 §3).
//!
//! A [`ProofRequest`] names a state key (text form of [`StateKey`]) and optionally a
//! height; a full node answers a [`ProofResponse`]: the [`StateProof`] of the key at that
//! height (the newest durable height when none is named), or a typed refusal. The asker
//! verifies the proof against a state root it trusts (its own, or one a signed blob
//! header committed to, `prev_state_root`); the responder is not trusted.
//!
//! CBOR through [`crate::codec`] with the caps below (checked before decoding).

use serde::{Deserialize, Serialize};

use super::state::{StateKey, StateProof, MAX_PROOF_BYTES};

/// Largest encoded [`ProofRequest`], in bytes (a key's text form is at most a few hundred
/// bytes: node ids and zones are bounded by the event limits).
pub const MAX_PROOF_REQUEST_BYTES: usize = 4 * 1024;

/// Largest encoded [`ProofResponse`], in bytes: [`MAX_PROOF_BYTES`] plus 1 KiB of framing.
pub const MAX_PROOF_RESPONSE_BYTES: usize = MAX_PROOF_BYTES + 1024;

/// A request for the proof of one key. CBOR map `{key: text, height: u64 / null}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProofRequest {
    /// The key's text form (`node:<id>`, `chunk:<hex>`, `replicas:<hex>`, `zone:<name>`,
    /// `receipt:<hex>`; [`StateKey::parse`]).
    pub key: String,
    /// The height to prove at; `None`: the responder's newest durable height.
    pub height: Option<u64>,
}

impl ProofRequest {
    /// A request for `key` at `height`.
    pub fn new(key: &StateKey, height: Option<u64>) -> ProofRequest {
        ProofRequest {
            key: key.to_string(),
            height,
        }
    }
}

/// The answer to a [`ProofRequest`]. CBOR: an externally tagged enum (`{"Proof": …}`,
/// `{"HeightUnavailable": {height, oldest, newest}}`, `{"BadKey": text}`, `"Busy"`,
/// `{"Failed": text}`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum ProofResponse {
    /// The value (or absence) with its proof against the responder's root at that height.
    Proof(StateProof),
    /// The responder keeps no tree at that height (pruned, not durable yet, or above its
    /// tip): it proves heights `oldest..=newest`.
    HeightUnavailable {
        /// The height asked for (or the newest durable one when none was named).
        height: u64,
        /// The oldest height it can prove.
        oldest: u64,
        /// Its newest durable height.
        newest: u64,
    },
    /// The key does not parse; the text says why.
    BadKey(String),
    /// The responder's proof queue is full (or this peer has too many requests pending):
    /// ask again later or ask another peer.
    Busy,
    /// The responder's store failed; the text says how.
    Failed(String),
}
