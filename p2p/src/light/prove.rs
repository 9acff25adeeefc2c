//! [`LightClient::prove`]: a value of the DA state proved by a full node over
//! `/dsdn/<network>/da-proof/1.0.0` and verified against the state root the light client
//! holds (issue 16 §3).

use std::time::Duration;

use dsdn_protocols::da::prove::{ProofRequest, ProofResponse};
use dsdn_protocols::da::{StateKey, StateProof, StateValue};

use super::LightClient;

/// How long [`LightClient::prove`] keeps asking while full nodes have not made the light
/// client's height durable yet (or no DA peer is connected).
pub const PROVE_PATIENCE: Duration = Duration::from_secs(10);

/// Pause between two asks of [`LightClient::prove`].
const PROVE_RETRY: Duration = Duration::from_millis(200);

/// A value (or its absence) proved against the light client's trusted root.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProvedValue {
    /// The key.
    pub key: StateKey,
    /// The height proved at (the light client's height when it asked).
    pub height: u64,
    /// The trusted state root at that height the proof was verified against.
    pub root: [u8; 32],
    /// The value; `None`: the key is absent (exclusion proof).
    pub value: Option<StateValue>,
}

/// Why [`LightClient::prove`] has no verified value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProveError {
    /// The client's event loop has ended.
    #[error("the light client stopped")]
    Stopped,
    /// No blob applied yet: there is no trusted root to verify against.
    #[error("the light client has applied no DA blob yet: no trusted state root")]
    NoRoot,
    /// No full node answered with a proof within [`PROVE_PATIENCE`]; the text is the last
    /// answer or failure.
    #[error("no full node proved the key at height {height}: {last}")]
    Unanswered {
        /// The height asked for.
        height: u64,
        /// The last refusal or failure.
        last: String,
    },
    /// A full node answered a proof that does not verify against the trusted root (or is
    /// of another key or height), or refused the key: the answer is not used.
    #[error("the full node's proof does not verify against the trusted root: {0}")]
    Invalid(String),
}

impl LightClient {
    /// The value of `key` (or its absence) at the light client's current height, proved by
    /// a connected full node and verified against this client's own state root at that
    /// height (from a checkpoint: the newest trusted header, whose root the next verified
    /// blob committed to). While full nodes have not made that height durable yet it asks again every
    /// 200 ms for up to [`PROVE_PATIENCE`].
    ///
    /// # Errors
    /// [`ProveError`]: stopped, no root yet, no answer, or an answer that does not verify.
    pub async fn prove(&self, key: &StateKey) -> Result<ProvedValue, ProveError> {
        let (height, root) = match self.follow_status() {
            // From a checkpoint: the newest trusted header (one blob behind the tip).
            Some(status) => match status.head {
                Some(head) => (head.header.height, head.header.state_root),
                None => return Err(ProveError::NoRoot),
            },
            None => {
                let view = self
                    .handle
                    .da_state()
                    .await
                    .map_err(|_| ProveError::Stopped)?;
                if view.height == 0 {
                    return Err(ProveError::NoRoot);
                }
                (view.height, view.state_root)
            }
        };
        let deadline = tokio::time::Instant::now() + PROVE_PATIENCE;
        loop {
            let request = ProofRequest::new(key, Some(height));
            let last = match self.handle.da_prove_remote(request).await {
                Err(_) => return Err(ProveError::Stopped),
                Ok(Ok(ProofResponse::Proof(proof))) => return check(key, height, root, &proof),
                Ok(Ok(ProofResponse::BadKey(e))) => {
                    return Err(ProveError::Invalid(format!(
                        "the full node refused the key: {e}"
                    )))
                }
                Ok(Ok(other)) => format!("{other:?}"),
                Ok(Err(e)) => e,
            };
            if tokio::time::Instant::now() + PROVE_RETRY > deadline {
                return Err(ProveError::Unanswered { height, last });
            }
            tokio::time::sleep(PROVE_RETRY).await;
        }
    }
}

/// Checks a full node's proof of `key` at `height` against the trusted `root`.
///
/// # Errors
/// [`ProveError::Invalid`] for another key or height, or a proof that does not verify.
pub fn check(
    key: &StateKey,
    height: u64,
    root: [u8; 32],
    proof: &StateProof,
) -> Result<ProvedValue, ProveError> {
    if proof.height != height {
        return Err(ProveError::Invalid(format!(
            "proof at height {}, asked at {height}",
            proof.height
        )));
    }
    let (proved, value) = proof
        .verify(root)
        .map_err(|e| ProveError::Invalid(e.to_string()))?;
    if &proved != key {
        return Err(ProveError::Invalid(format!(
            "proof of {proved}, asked for {key}"
        )));
    }
    Ok(ProvedValue {
        key: proved,
        height,
        root,
        value,
    })
}

#[cfg(test)]
mod tests {
    use dsdn_protocols::da::prove::{ProofRequest, ProofResponse};
    use dsdn_protocols::da::{DaEvent, DaState};
    use dsdn_protocols::{codec, NetworkId};
    use ed25519_dalek::SigningKey;

    use super::*;

    /// A state of one blob registering node `a`, and its root.
    fn state() -> DaState {
        let net = NetworkId::new("devnet").unwrap();
        let key = SigningKey::from_bytes(&[4; 32]);
        let mut s = DaState::new(net.clone());
        let blob = s
            .seal_next(
                &key,
                1,
                vec![DaEvent::NodeRegistered {
                    node_id: "a".into(),
                    zone: "z".into(),
                    capacity_bytes: 1,
                    class: "regular".into(),
                }],
            )
            .unwrap()
            .verify(&net, &key.verifying_key().to_bytes())
            .unwrap();
        s.apply_blob(&blob).unwrap();
        s
    }

    #[test]
    fn a_proof_is_accepted_only_against_the_trusted_root_height_and_key() {
        let s = state();
        let root = s.state_root();
        let key = StateKey::Node("a".into());
        let proof = s.prove(&key).unwrap();
        let ok = check(&key, 1, root, &proof).unwrap();
        assert_eq!(ok.height, 1);
        assert!(matches!(ok.value, Some(StateValue::Node(ref n)) if n.zone == "z"));
        // Absent keys are proved absent.
        let absent = StateKey::Node("b".into());
        let none = check(&absent, 1, root, &s.prove(&absent).unwrap()).unwrap();
        assert_eq!(none.value, None);
        // A root the client does not trust, another height, another key, a tampered value.
        assert!(matches!(
            check(&key, 1, [7; 32], &proof),
            Err(ProveError::Invalid(_))
        ));
        assert!(matches!(
            check(&key, 2, root, &proof),
            Err(ProveError::Invalid(_))
        ));
        assert!(matches!(
            check(&absent, 1, root, &proof),
            Err(ProveError::Invalid(_))
        ));
        let mut tampered = proof.clone();
        if let Some(v) = tampered.value.as_mut() {
            v.push(0);
        }
        assert!(check(&key, 1, root, &tampered).is_err());
    }

    #[test]
    fn proof_messages_round_trip_under_their_caps() {
        use dsdn_protocols::da::prove::{MAX_PROOF_REQUEST_BYTES, MAX_PROOF_RESPONSE_BYTES};
        let s = state();
        let key = StateKey::Node("a".into());
        let request = ProofRequest::new(&key, Some(1));
        let bytes = codec::encode(&request, MAX_PROOF_REQUEST_BYTES).unwrap();
        let back: ProofRequest = codec::decode(&bytes, MAX_PROOF_REQUEST_BYTES).unwrap();
        assert_eq!(back, request);
        for response in [
            ProofResponse::Proof(s.prove(&key).unwrap()),
            ProofResponse::HeightUnavailable {
                height: 9,
                oldest: 1,
                newest: 3,
            },
            ProofResponse::BadKey("x".into()),
            ProofResponse::Busy,
            ProofResponse::Failed("disk".into()),
        ] {
            let bytes = codec::encode(&response, MAX_PROOF_RESPONSE_BYTES).unwrap();
            let back: ProofResponse = codec::decode(&bytes, MAX_PROOF_RESPONSE_BYTES).unwrap();
            assert_eq!(format!("{back:?}"), format!("{response:?}"));
        }
        // A request over its cap is refused before decoding.
        let long = ProofRequest {
            key: "n".repeat(MAX_PROOF_REQUEST_BYTES),
            height: None,
        };
        assert!(codec::encode(&long, MAX_PROOF_REQUEST_BYTES).is_err());
    }
}
