//! The DA routes of the control API: `POST /v1/da/events`, `POST /v1/da/blobs`,
//! `GET /v1/da/blobs`, `GET /v1/da/state` (issue 5) and `GET /v1/da/proof` (issue 16;
//! shapes in [`crate::api`]).

use std::time::Duration;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsdn_p2p::da::{PublishError, SubmitError};
use dsdn_protocols::da::blob::proposer::peer_id_text;
use dsdn_protocols::da::{DaBlob, DaEvent};
use serde::Deserialize;

use super::{error, stopped, ApiState};
use crate::api::{BlobInfo, ProofResponse, PublishResponse, SubmitResponse};

/// Default wait of `GET /v1/da/state?wait_height=H`, in milliseconds.
pub(crate) const DEFAULT_WAIT_MS: u64 = 30_000;

/// Longest wait of `GET /v1/da/state?wait_height=H`, in milliseconds.
pub(crate) const MAX_WAIT_MS: u64 = 60_000;

/// Most blobs `GET /v1/da/blobs` returns.
pub(crate) const MAX_BLOBS_PER_REQUEST: u32 = 64;

pub(super) async fn publish(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
    let events: Vec<DaEvent> = match serde_json::from_slice(&body) {
        Ok(e) => e,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("body is not a JSON array of DA events: {e}"),
            )
        }
    };
    match s.node.publish_da(events).await {
        Err(_) => stopped(),
        Ok(Ok(p)) => Json(PublishResponse {
            events: p.events,
            heights: p.heights,
        })
        .into_response(),
        Ok(Err(e)) => {
            let status = match e {
                PublishError::NotAuthority(_) | PublishError::NotSubscribed => {
                    StatusCode::FORBIDDEN
                }
                PublishError::Empty | PublishError::Invalid { .. } => StatusCode::BAD_REQUEST,
                PublishError::QueueFull { .. } | PublishError::Halted(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                PublishError::Seal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            };
            error(status, e.to_string())
        }
    }
}

pub(super) async fn submit(State(s): State<ApiState>, body: axum::body::Bytes) -> Response {
    match s.node.submit_blob(body.to_vec()).await {
        Err(_) => stopped(),
        Ok(Ok(r)) => Json(SubmitResponse {
            height: r.height,
            outcome: r.outcome.to_owned(),
        })
        .into_response(),
        Ok(Err(e)) => {
            let status = match e {
                SubmitError::NotSubscribed | SubmitError::NoAuthority => StatusCode::FORBIDDEN,
                SubmitError::Invalid(_) => StatusCode::BAD_REQUEST,
                SubmitError::Chain(_) | SubmitError::TooFarAhead { .. } => StatusCode::CONFLICT,
                SubmitError::LogBusy { .. } | SubmitError::NotStored { .. } => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
            };
            error(status, e.to_string())
        }
    }
}

/// Query of `GET /v1/da/blobs`.
#[derive(Debug, Deserialize)]
pub(super) struct BlobsQuery {
    from: u64,
    count: Option<u32>,
}

pub(super) async fn blobs(
    State(s): State<ApiState>,
    query: Result<Query<BlobsQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let count = q
        .count
        .unwrap_or(MAX_BLOBS_PER_REQUEST)
        .clamp(1, MAX_BLOBS_PER_REQUEST);
    match s.node.da_range(q.from, count).await {
        Err(_) => stopped(),
        Ok(Ok(blobs)) => Json(blobs.iter().map(blob_info).collect::<Vec<_>>()).into_response(),
        Ok(Err(e)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

fn blob_info(b: &DaBlob) -> BlobInfo {
    let hash = b.hash().map(hex::encode).unwrap_or_default();
    BlobInfo {
        height: b.height,
        hash,
        prev_hash: hex::encode(b.prev_hash.0),
        version: b.version,
        prev_state_root: hex::encode(b.prev_state_root.0),
        timestamp_ms: b.timestamp_ms,
        events: b.events.clone(),
        signature: hex::encode(b.signature.0),
        proposer: b.proposer().map(peer_id_text),
        proposer_sig: b.proposer().map(|_| hex::encode(b.proposer_sig.0)),
    }
}

/// Query of `GET /v1/da/state`.
#[derive(Debug, Deserialize)]
pub(super) struct StateQuery {
    wait_height: Option<u64>,
    timeout_ms: Option<u64>,
}

pub(super) async fn state(
    State(s): State<ApiState>,
    query: Result<Query<StateQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    if let Some(height) = q.wait_height {
        let wait = Duration::from_millis(q.timeout_ms.unwrap_or(DEFAULT_WAIT_MS).min(MAX_WAIT_MS));
        if s.node.wait_da_height(height, wait).await.is_err() {
            return stopped();
        }
    }
    match s.node.da_state().await {
        Ok(st) => Json(st).into_response(),
        Err(_) => stopped(),
    }
}

/// `GET /v1/da/evidence`: the fork evidence this node holds (issue 13 §4), oldest first.
pub(super) async fn evidence(State(s): State<ApiState>) -> Response {
    match s.node.da_evidence().await {
        Ok(v) => Json(v).into_response(),
        Err(_) => stopped(),
    }
}

/// Query of `GET /v1/da/proof`.
#[derive(Debug, Deserialize)]
pub(super) struct ProofQuery {
    /// The key, text form (`node:<id>`, `chunk:<hex>`, `replicas:<hex>`, `zone:<name>`,
    /// `receipt:<hex>`).
    key: String,
    /// The height (default: the node's current height).
    height: Option<u64>,
}

/// `GET /v1/da/proof?key=…[&height=H]`: the key's value (or absence) with its proof against
/// the state root at that height. 400 for a bad key, 404 for a height the node cannot
/// prove (above its tip, pruned, not durable yet), 503 when its store cannot be read.
pub(super) async fn proof(
    State(s): State<ApiState>,
    query: Result<Query<ProofQuery>, QueryRejection>,
) -> Response {
    let q = match query {
        Ok(Query(q)) => q,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
    };
    let key = match dsdn_protocols::da::StateKey::parse(&q.key) {
        Ok(k) => k,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let proof = match s.node.da_proof(key.clone(), q.height).await {
        Err(_) => return stopped(),
        Ok(Err(e @ dsdn_protocols::da::StateError::HeightUnavailable { .. })) => {
            return error(StatusCode::NOT_FOUND, e.to_string())
        }
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Ok(Ok(p)) => p,
    };
    let value = match &proof.value {
        Some(bytes) => match dsdn_protocols::da::StateValue::decode(&key, bytes) {
            Ok(v) => serde_json::to_value(v).ok(),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        None => None,
    };
    match proof.encode() {
        Ok(cbor) => Json(ProofResponse {
            key: proof.key.clone(),
            height: proof.height,
            root: hex::encode(proof.root.0),
            value,
            proof: hex::encode(cbor),
        })
        .into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}
