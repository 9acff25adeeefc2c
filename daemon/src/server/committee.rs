//! The committee routes of the control API: `POST /v1/committee/dkg` and
//! `GET /v1/committee/status` (issue 6; shapes in [`crate::api`]).

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsdn_p2p::committee::{CommitteeStatus, DkgRunError};

use super::{error, stopped, ApiState};
use crate::api::{CommitteeStatusResponse, EpochStatusView, RotationLock, RotationStatusView};

fn rotation(r: Result<dsdn_p2p::committee::rotation::RotationView, String>) -> RotationStatusView {
    match r {
        Ok(v) => RotationStatusView {
            state: v.state,
            height: v.height,
            round: v.round,
            proposer: v.proposer.map(|p| p.to_string()),
            proposing: v.proposing,
            lock: v.lock.map(|(round, blob)| RotationLock { round, blob }),
            timeout_in_ms: v.timeout_in_ms,
            waiting_for: v.waiting_for.iter().map(ToString::to_string).collect(),
            detail: v.detail,
        },
        Err(e) => RotationStatusView {
            state: "refused".into(),
            height: 0,
            round: 0,
            proposer: None,
            proposing: false,
            lock: None,
            timeout_in_ms: 0,
            waiting_for: Vec::new(),
            detail: Some(e),
        },
    }
}

fn response(s: CommitteeStatus) -> CommitteeStatusResponse {
    CommitteeStatusResponse {
        me: s.me.to_string(),
        members: s.members.iter().map(ToString::to_string).collect(),
        threshold: s.threshold,
        epoch: s.epoch,
        group_key: s.group_key,
        state: s.state.to_string(),
        rotation: s.rotation.map(rotation),
        epochs: s.epochs.map(|e| EpochStatusView {
            epoch: e.epoch,
            phase: e.phase,
            next_switch_height: e.next_switch_height,
            next_epoch: e.next_epoch,
            next_epoch_start_ms: e.next_epoch_start_ms,
            handoff_opens_ms: e.handoff_opens_ms,
            rotations: e.rotations,
            failures: e.failures,
            fallback_reason: e.fallback_reason,
        }),
    }
}

pub(super) async fn dkg(State(s): State<ApiState>) -> Response {
    match s.node.committee_dkg().await {
        Ok(status) => Json(response(status)).into_response(),
        Err(DkgRunError::Stopped) => stopped(),
        Err(e @ DkgRunError::NotConfigured) => error(StatusCode::FORBIDDEN, e.to_string()),
        Err(e @ DkgRunError::AlreadyHaveKey(_)) => error(StatusCode::CONFLICT, e.to_string()),
        Err(e @ DkgRunError::Failed(_)) => error(StatusCode::BAD_GATEWAY, e.to_string()),
    }
}

pub(super) async fn status(State(s): State<ApiState>) -> Response {
    match s.node.committee_status().await {
        Err(_) => stopped(),
        Ok(None) => error(StatusCode::NOT_FOUND, "this node is not a committee member"),
        Ok(Some(status)) => Json(response(status)).into_response(),
    }
}
