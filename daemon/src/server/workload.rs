//! The workload and receipt routes of the control API: `POST /v1/workloads[?optimistic=]`,
//! `GET /v1/receipts[?count=N]`, `GET /v1/receipts/{id}` (an id or a unique prefix),
//! `POST /v1/receipts` (issue 6) and `GET /v1/disputes` (issue 13; shapes in
//! [`crate::api`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsdn_p2p::workload::{HeldReceipt, ReceiptQuery, WorkloadError};
use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::dispute::SignedReceipt;
use dsdn_protocols::receipt::{GossipReceipt, ReceiptError, ThresholdReceipt};
use dsdn_protocols::workload::WorkloadSubmission;

use super::{error, stopped, ApiState};
use crate::api::{
    DisputesResponse, DoubleReceiptView, OptimisticConflictView, ReceiptResponse,
    SignerDisputeView, WorkloadResponse,
};

fn receipt_json(receipt: &ThresholdReceipt) -> Response {
    match ReceiptResponse::new(receipt) {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

fn held_json(receipt: &HeldReceipt) -> Response {
    match ReceiptResponse::held(receipt, unix_ms()) {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// [`held_json`] with the group key of the receipt's epoch as this node's DA log records
/// it (`epoch_key`).
async fn shown_json(s: &ApiState, receipt: &HeldReceipt) -> Response {
    let mut r = match ReceiptResponse::held(receipt, unix_ms()) {
        Ok(r) => r,
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    match s.node.epoch_key(r.epoch).await {
        Ok(key) => r.epoch_key = key.map(hex::encode),
        Err(_) => return stopped(),
    }
    Json(r).into_response()
}

/// Milliseconds since the Unix epoch (an optimistic receipt's status is judged at it).
fn unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Query of `POST /v1/workloads`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct SubmitQuery {
    /// `true`: answer with an optimistic receipt; `false`: with the threshold receipt;
    /// absent: the node's `[receipts] optimistic`.
    optimistic: Option<bool>,
}

/// `POST /v1/workloads[?optimistic=true|false]` with a CBOR `WorkloadSubmission`.
pub(super) async fn submit(
    State(s): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<SubmitQuery>,
    body: Bytes,
) -> Response {
    let submission = match WorkloadSubmission::from_bytes(&body) {
        Ok(sub) => sub,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a workload submission: {e}"),
            )
        }
    };
    match s.node.submit_workload_with(submission, q.optimistic).await {
        Ok(result) => match ReceiptResponse::held(&result.receipt, unix_ms()) {
            Ok(receipt) => Json(WorkloadResponse {
                receipt,
                output: hex::encode(&result.output),
            })
            .into_response(),
            Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
        },
        Err(WorkloadError::Stopped) => stopped(),
        Err(e) => {
            let status = match &e {
                WorkloadError::Invalid(_) => StatusCode::BAD_REQUEST,
                WorkloadError::NotCommittee => StatusCode::FORBIDDEN,
                WorkloadError::NoExecutor | WorkloadError::Busy(_) => {
                    StatusCode::SERVICE_UNAVAILABLE
                }
                WorkloadError::Failed(_) | WorkloadError::Signing(_) => StatusCode::BAD_GATEWAY,
                WorkloadError::Stopped => StatusCode::SERVICE_UNAVAILABLE,
            };
            error(status, e.to_string())
        }
    }
}

/// `GET /v1/receipts/{id}`: `id` is a receipt id (64 hex), or a unique prefix of one
/// (at least [`MIN_RECEIPT_PREFIX`] hex digits, e.g. the 12 the devnet prints), among the
/// receipts this node accepted recently and those recorded in its DA log.
pub(super) async fn show(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let id = id.trim().to_ascii_lowercase();
    if id.len() == 64 {
        if let Ok(bytes) = hex::decode(&id) {
            let mut raw = [0u8; 32];
            raw.copy_from_slice(&bytes);
            return match s.node.receipt(Bytes32(raw)).await {
                Err(_) => stopped(),
                Ok(None) => error(
                    StatusCode::NOT_FOUND,
                    format!("no receipt {id} on this node"),
                ),
                Ok(Some(r)) => shown_json(&s, &r).await,
            };
        }
    }
    if id.len() < MIN_RECEIPT_PREFIX || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit())
    {
        return error(
            StatusCode::BAD_REQUEST,
            format!(
                "invalid receipt id {id:?}: 64 hex characters, or a unique prefix of at least \
                 {MIN_RECEIPT_PREFIX}"
            ),
        );
    }
    match s.node.receipts(ReceiptQuery::Prefix(id.clone())).await {
        Err(_) => stopped(),
        Ok(found) => match found.as_slice() {
            [] => error(
                StatusCode::NOT_FOUND,
                format!("no receipt whose id starts with {id} on this node"),
            ),
            [one] => shown_json(&s, one).await,
            _ => error(
                StatusCode::CONFLICT,
                format!("several receipts start with {id}: give more hex digits"),
            ),
        },
    }
}

/// Shortest receipt-id prefix `GET /v1/receipts/{id}` looks up (hex digits).
pub(crate) const MIN_RECEIPT_PREFIX: usize = 6;

/// Most receipts `GET /v1/receipts` lists.
pub(crate) const MAX_RECEIPT_LIST: usize = 100;

/// Query of `GET /v1/receipts`.
#[derive(Debug, serde::Deserialize)]
pub(super) struct ListQuery {
    /// How many (default 20, at most [`MAX_RECEIPT_LIST`]).
    count: Option<usize>,
}

/// `GET /v1/receipts[?count=N]`: the receipts this node accepted most recently, newest
/// first.
pub(super) async fn list(
    State(s): State<ApiState>,
    axum::extract::Query(q): axum::extract::Query<ListQuery>,
) -> Response {
    let n = q.count.unwrap_or(20).clamp(1, MAX_RECEIPT_LIST);
    match s.node.receipts(ReceiptQuery::Recent(n)).await {
        Err(_) => stopped(),
        Ok(found) => {
            let now = unix_ms();
            let out: Result<Vec<ReceiptResponse>, _> = found
                .iter()
                .map(|r| ReceiptResponse::held(r, now))
                .collect();
            match out {
                Ok(v) => Json(v).into_response(),
                Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            }
        }
    }
}

/// `POST /v1/receipts` with a CBOR `ThresholdReceipt` or `OptimisticReceipt`.
pub(super) async fn publish(State(s): State<ApiState>, body: Bytes) -> Response {
    let receipt = match GossipReceipt::from_bytes(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a threshold or optimistic receipt: {e}"),
            )
        }
    };
    match s.node.publish_any_receipt(receipt.clone()).await {
        Err(_) => stopped(),
        Ok(Ok(())) => match receipt {
            GossipReceipt::Threshold(t) => receipt_json(&t),
            GossipReceipt::Optimistic(o) => held_json(&HeldReceipt::Optimistic {
                receipt: o,
                challenged: false,
            }),
        },
        Ok(Err(e @ ReceiptError::Duplicate(_))) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, format!("receipt refused: {e}")),
    }
}

/// `GET /v1/disputes`: DA forks, double receipts, unauthorised signers and invalid
/// signatures (issue 13 §6) and challenged optimistic receipts (§5) this node found.
pub(super) async fn disputes(State(s): State<ApiState>) -> Response {
    let Ok(d) = s.node.disputes().await else {
        return stopped();
    };
    let mut double_receipts = Vec::new();
    for dr in &d.double_receipts {
        let view = (|| -> Result<DoubleReceiptView, String> {
            let job = dsdn_protocols::receipt::dispute::job_key(&dr.receipt_a.receipt)
                .map_err(|e| e.to_string())?;
            Ok(DoubleReceiptView {
                job: hex::encode(job.0),
                receipt_a: ReceiptResponse::new(&dr.receipt_a).map_err(|e| e.to_string())?,
                receipt_b: ReceiptResponse::new(&dr.receipt_b).map_err(|e| e.to_string())?,
                dispute_cbor: hex::encode(dr.to_bytes().map_err(|e| e.to_string())?),
            })
        })();
        match view {
            Ok(v) => double_receipts.push(v),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
    let now = unix_ms();
    let mut optimistic_conflicts = Vec::new();
    for c in &d.optimistic_conflicts {
        let view = (|| -> Result<OptimisticConflictView, String> {
            let job = dsdn_protocols::receipt::dispute::job_key(&c.optimistic.receipt)
                .map_err(|e| e.to_string())?;
            let optimistic = HeldReceipt::Optimistic {
                receipt: c.optimistic.clone(),
                challenged: true,
            };
            Ok(OptimisticConflictView {
                job: hex::encode(job.0),
                optimistic: ReceiptResponse::held(&optimistic, now).map_err(|e| e.to_string())?,
                threshold: ReceiptResponse::new(&c.threshold).map_err(|e| e.to_string())?,
                dispute_cbor: hex::encode(c.to_bytes().map_err(|e| e.to_string())?),
            })
        })();
        match view {
            Ok(v) => optimistic_conflicts.push(v),
            Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        }
    }
    let signer_view = |receipt: &SignedReceipt,
                       cbor: Result<Vec<u8>, dsdn_protocols::codec::CodecError>|
     -> Result<SignerDisputeView, String> {
        Ok(SignerDisputeView {
            kind: receipt.kind().to_owned(),
            receipt_id: hex::encode(receipt.receipt_id().0),
            signer: hex::encode(receipt.signer().0),
            dispute_cbor: hex::encode(cbor.map_err(|e| e.to_string())?),
        })
    };
    let unauthorized_signers: Result<Vec<_>, String> = d
        .unauthorized_signers
        .iter()
        .map(|e| signer_view(&e.receipt, e.to_bytes()))
        .collect();
    let invalid_signatures: Result<Vec<_>, String> = d
        .invalid_signatures
        .iter()
        .map(|e| signer_view(&e.receipt, e.to_bytes()))
        .collect();
    let (unauthorized_signers, invalid_signatures) =
        match (unauthorized_signers, invalid_signatures) {
            (Ok(u), Ok(i)) => (u, i),
            (Err(e), _) | (_, Err(e)) => return error(StatusCode::INTERNAL_SERVER_ERROR, e),
        };
    Json(DisputesResponse {
        da_forks: d.da_forks,
        double_receipts,
        optimistic_conflicts,
        unauthorized_signers,
        invalid_signatures,
    })
    .into_response()
}
