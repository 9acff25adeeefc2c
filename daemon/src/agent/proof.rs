//! `dsdn-agent da proof KEY [--height H] [--root HEX] [--json]` (issue 16 §3): fetches a DA
//! state key's value (or absence) with its proof from `GET /v1/da/proof` and verifies the
//! proof locally against the state root — the trusted `--root` when given, otherwise the
//! root the node reports for that height (then the check shows the answer is consistent
//! with that root, not that the root is the network's).

use anyhow::{bail, Context};
use dsdn_protocols::da::{StateKey, StateProof};

use dsdn_daemon::api::ProofResponse;
use dsdn_daemon::client::ApiClient;

use super::{commands::to_json, print_out};

/// The verdict of one proof.
#[derive(serde::Serialize)]
struct Verdict {
    key: String,
    height: u64,
    root: String,
    /// `present`, `absent` or `invalid`.
    verdict: &'static str,
    /// Whether `root` was given by the caller (`--root`) rather than taken from the node.
    trusted_root: bool,
    value: Option<serde_json::Value>,
    error: Option<String>,
}

/// Runs the command; fails (exit code 1) when the proof does not verify.
pub(crate) async fn da_proof(
    client: &ApiClient,
    key: &str,
    height: Option<u64>,
    root: Option<&str>,
    json: bool,
) -> anyhow::Result<()> {
    let key = StateKey::parse(key)?;
    let answer: ProofResponse = client.da_proof(&key.to_string(), height).await?;
    let bytes = hex::decode(&answer.proof).context("the proof is not hex")?;
    let proof = StateProof::decode(&bytes)?;
    let trusted = match root {
        Some(r) => {
            let mut out = [0u8; 32];
            hex::decode_to_slice(r, &mut out).context("--root must be 64 hex digits")?;
            Some(out)
        }
        None => None,
    };
    let root = trusted.unwrap_or(proof.root.0);
    let checked = if proof.key != key.to_string() {
        Err(format!("the node proved another key ({})", proof.key))
    } else if height.is_some_and(|h| h != proof.height) {
        Err(format!("the node proved height {} instead", proof.height))
    } else if answer.root != hex::encode(proof.root.0) {
        Err("the answer's root differs from the proof's".to_owned())
    } else {
        proof.verify(root).map_err(|e| e.to_string())
    };
    let verdict = Verdict {
        key: key.to_string(),
        height: proof.height,
        root: hex::encode(root),
        verdict: match &checked {
            Ok((_, Some(_))) => "present",
            Ok((_, None)) => "absent",
            Err(_) => "invalid",
        },
        trusted_root: trusted.is_some(),
        value: match &checked {
            Ok((_, Some(v))) => serde_json::to_value(v).ok(),
            _ => None,
        },
        error: checked.as_ref().err().cloned(),
    };
    if json {
        print_out(&to_json(&verdict)?)?;
    } else {
        let source = if trusted.is_some() {
            "the given root"
        } else {
            "the root the node reports"
        };
        let text = match &checked {
            Ok((_, Some(v))) => format!(
                "verified: {key} is in the DA state at height {} (root {}, {source})\nvalue: {}\n",
                proof.height,
                verdict.root,
                serde_json::to_string(v)?
            ),
            Ok((_, None)) => format!(
                "verified: {key} is absent from the DA state at height {} (root {}, {source})\n",
                proof.height, verdict.root
            ),
            Err(e) => format!(
                "NOT VERIFIED: {key} at height {} against root {} ({source}): {e}\n",
                proof.height, verdict.root
            ),
        };
        print_out(&text)?;
    }
    if let Err(e) = checked {
        bail!("the proof does not verify: {e}");
    }
    Ok(())
}
