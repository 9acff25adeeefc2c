//! The workload and receipt routes of the control API: `POST /v1/workloads`,
//! `GET /v1/receipts/{id}` and `POST /v1/receipts` (issue 6; shapes in [`crate::api`]).

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsdn_p2p::workload::WorkloadError;
use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::{ReceiptError, ThresholdReceipt};
use dsdn_protocols::workload::WorkloadSubmission;

use super::{error, stopped, ApiState};
use crate::api::{ReceiptResponse, WorkloadResponse};

fn receipt_json(receipt: &ThresholdReceipt) -> Response {
    match ReceiptResponse::new(receipt) {
        Ok(r) => Json(r).into_response(),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `POST /v1/workloads` with a CBOR `WorkloadSubmission`.
pub(super) async fn submit(State(s): State<ApiState>, body: Bytes) -> Response {
    let submission = match WorkloadSubmission::from_bytes(&body) {
        Ok(sub) => sub,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a workload submission: {e}"),
            )
        }
    };
    match s.node.submit_workload(submission).await {
        Ok(result) => match ReceiptResponse::new(&result.receipt) {
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

/// `GET /v1/receipts/{id}`.
pub(super) async fn show(State(s): State<ApiState>, Path(id): Path<String>) -> Response {
    let bytes = match hex::decode(id.trim()) {
        Ok(b) if b.len() == 32 => b,
        _ => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("invalid receipt id {id:?}: 64 hex characters expected"),
            )
        }
    };
    let mut raw = [0u8; 32];
    raw.copy_from_slice(&bytes);
    match s.node.receipt(Bytes32(raw)).await {
        Err(_) => stopped(),
        Ok(None) => error(
            StatusCode::NOT_FOUND,
            format!("no receipt {id} on this node"),
        ),
        Ok(Some(r)) => receipt_json(&r),
    }
}

/// `POST /v1/receipts` with a CBOR `ThresholdReceipt`.
pub(super) async fn publish(State(s): State<ApiState>, body: Bytes) -> Response {
    let receipt = match ThresholdReceipt::from_bytes(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("not a threshold receipt: {e}"),
            )
        }
    };
    match s.node.publish_receipt(receipt.clone()).await {
        Err(_) => stopped(),
        Ok(Ok(())) => receipt_json(&receipt),
        Ok(Err(e @ ReceiptError::Duplicate(_))) => error(StatusCode::CONFLICT, e.to_string()),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, format!("receipt refused: {e}")),
    }
}
