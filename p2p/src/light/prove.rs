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
    /// height. While full nodes have not made that height durable yet it asks again every
    /// 200 ms for up to [`PROVE_PATIENCE`].
    ///
    /// # Errors
    /// [`ProveError`]: stopped, no root yet, no answer, or an answer that does not verify.
    pub async fn prove(&self, key: &StateKey) -> Result<ProvedValue, ProveError> {
        let view = self
            .handle
            .da_state()
            .await
            .map_err(|_| ProveError::Stopped)?;
        if view.height == 0 {
            return Err(ProveError::NoRoot);
        }
        let (height, root) = (view.height, view.state_root);
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
