//! Handlers of the peer-management endpoints (roadmap 28.1.C §7; shapes in [`crate::api`]):
//! add a static peer or DNS seed, address-book statistics, reset, ban and unban.

use std::str::FromStr;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use dsdn_bootstrap::config::{DnsSeed, StaticPeer};
use dsdn_p2p::handle::ControlError;
use libp2p::PeerId;
use serde::de::DeserializeOwned;

use super::{error, stopped, ApiState};
use crate::api::{
    AddPeerRequest, AddSeedRequest, AddedPeerInfo, AddedResponse, BanRequest, BanResponse,
    RemovedResponse, ResetResponse, UnbanResponse, MAX_BAN_SECS,
};

/// The status of a failed peer-management command.
fn control_status(e: &ControlError) -> StatusCode {
    match e {
        ControlError::AlreadyPresent(_) | ControlError::TooMany(_) => StatusCode::CONFLICT,
        ControlError::OwnPeer => StatusCode::BAD_REQUEST,
        ControlError::NotAdded(_) => StatusCode::NOT_FOUND,
        ControlError::Persist(_) | ControlError::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn control_error(e: &ControlError) -> Response {
    error(control_status(e), e.to_string())
}

/// A 400 answer's message.
type BadRequest = String;

fn bad_request(msg: BadRequest) -> Response {
    error(StatusCode::BAD_REQUEST, msg)
}

/// Decodes a JSON body; the error names `what` was expected.
fn json_body<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, BadRequest> {
    serde_json::from_slice(body).map_err(|e| format!("body is not {what}: {e}"))
}

/// The `{peer_id}` path segment as a PeerId.
fn peer_id(path: Result<Path<String>, PathRejection>) -> Result<PeerId, BadRequest> {
    let Path(raw) = path.map_err(|e| e.body_text())?;
    PeerId::from_str(&raw).map_err(|e| format!("invalid peer id {raw:?}: {e}"))
}

/// The static peer of a `{"addr": "IP:PORT|MULTIADDR"}` body, or the 400 answer's message.
fn static_peer_body(body: &[u8]) -> Result<StaticPeer, BadRequest> {
    let req: AddPeerRequest = json_body(body, r#"{"addr": "IP:PORT|MULTIADDR"}"#)?;
    StaticPeer::parse(&req.addr).map_err(|e| e.to_string())
}

/// `POST /v1/peers` `{"addr": "IP:PORT|MULTIADDR"}`.
pub(super) async fn add_peer(State(s): State<ApiState>, body: Bytes) -> Response {
    let peer = match static_peer_body(&body) {
        Ok(p) => p,
        Err(msg) => return bad_request(msg),
    };
    let added = peer.to_string();
    match s.node.add_peer(peer).await {
        Err(_) => stopped(),
        Ok(Err(e)) => control_error(&e),
        Ok(Ok(())) => Json(AddedResponse { added }).into_response(),
    }
}

/// `POST /v1/peers/remove` `{"addr": "IP:PORT|MULTIADDR"}`: undoes `POST /v1/peers`
/// (404 for a peer that was not added).
pub(super) async fn remove_peer(State(s): State<ApiState>, body: Bytes) -> Response {
    let peer = match static_peer_body(&body) {
        Ok(p) => p,
        Err(msg) => return bad_request(msg),
    };
    let removed = peer.to_string();
    match s.node.remove_peer(peer).await {
        Err(_) => stopped(),
        Ok(Err(e)) => control_error(&e),
        Ok(Ok(())) => Json(RemovedResponse { removed }).into_response(),
    }
}

/// `GET /v1/peers/added`: the added peers and their state.
pub(super) async fn added_peers(State(s): State<ApiState>) -> Response {
    let Ok(added) = s.node.added_peers().await else {
        return stopped();
    };
    let out: Vec<AddedPeerInfo> = added
        .into_iter()
        .map(|a| AddedPeerInfo {
            addr: a.peer.to_string(),
            peer_id: a.peer_id.map(|p| p.to_string()),
            state: a.state.as_str().to_owned(),
            last_error: a.last_error,
            next_retry_secs: a.next_retry.map(|d| d.as_secs()),
        })
        .collect();
    Json(out).into_response()
}

/// `POST /v1/seeds` `{"domain": "seed.example.org"}`.
pub(super) async fn add_seed(State(s): State<ApiState>, body: Bytes) -> Response {
    let req: AddSeedRequest = match json_body(&body, r#"{"domain": "DOMAIN"}"#) {
        Ok(r) => r,
        Err(msg) => return bad_request(msg),
    };
    let seed = match DnsSeed::new(req.domain.trim()) {
        Ok(d) => d,
        Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let added = seed.to_string();
    match s.node.add_seed(seed).await {
        Err(_) => stopped(),
        Ok(Err(e)) => control_error(&e),
        Ok(Ok(())) => Json(AddedResponse { added }).into_response(),
    }
}

/// `GET /v1/peers/stats`.
pub(super) async fn stats(State(s): State<ApiState>) -> Response {
    match s.node.peer_stats().await {
        Err(_) => stopped(),
        Ok(v) => Json(v).into_response(),
    }
}

/// `POST /v1/peers/reset`.
pub(super) async fn reset(State(s): State<ApiState>) -> Response {
    match s.node.reset_peers().await {
        Err(_) => stopped(),
        Ok(Err(e)) => control_error(&e),
        Ok(Ok(r)) => Json(ResetResponse {
            removed: r.removed,
            disconnected: r.disconnected,
        })
        .into_response(),
    }
}

/// The ban length asked for by an optional [`BanRequest`] body (`None`: the daemon's
/// `ban_duration_secs`).
fn ban_duration(body: &[u8]) -> Result<Option<Duration>, BadRequest> {
    let req: BanRequest = if body.iter().all(u8::is_ascii_whitespace) {
        BanRequest::default()
    } else {
        json_body(body, r#"{"duration_secs": N} or empty"#)?
    };
    match req.duration_secs {
        None => Ok(None),
        Some(secs) if (1..=MAX_BAN_SECS).contains(&secs) => Ok(Some(Duration::from_secs(secs))),
        Some(secs) => Err(format!(
            "duration_secs must be between 1 and {MAX_BAN_SECS} (365 days), not {secs}"
        )),
    }
}

/// `POST /v1/peers/{peer_id}/ban` with an optional `{"duration_secs": N}`.
pub(super) async fn ban(
    State(s): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
    body: Bytes,
) -> Response {
    let peer = match peer_id(path) {
        Ok(p) => p,
        Err(msg) => return bad_request(msg),
    };
    let duration = match ban_duration(&body) {
        Ok(d) => d,
        Err(msg) => return bad_request(msg),
    };
    match s.node.ban(peer, duration).await {
        Err(_) => stopped(),
        Ok(Err(e)) => control_error(&e),
        Ok(Ok(until)) => Json(BanResponse {
            peer_id: peer.to_string(),
            duration_secs: duration.map_or_else(
                || {
                    until.saturating_sub(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_secs()),
                    )
                },
                |d| d.as_secs(),
            ),
            banned_until: until,
        })
        .into_response(),
    }
}

/// `DELETE /v1/peers/{peer_id}/ban`.
pub(super) async fn unban(
    State(s): State<ApiState>,
    path: Result<Path<String>, PathRejection>,
) -> Response {
    let peer = match peer_id(path) {
        Ok(p) => p,
        Err(msg) => return bad_request(msg),
    };
    match s.node.unban(peer).await {
        Err(_) => stopped(),
        Ok(Err(e)) => control_error(&e),
        Ok(Ok(unbanned)) => Json(UnbanResponse {
            peer_id: peer.to_string(),
            unbanned,
        })
        .into_response(),
    }
}

/// `DELETE /v1/bans`: lifts every ban.
pub(super) async fn unban_all(State(s): State<ApiState>) -> Response {
    match s.node.unban_all().await {
        Err(_) => stopped(),
        Ok(Err(e)) => control_error(&e),
        Ok(Ok(unbanned)) => Json(crate::api::UnbanAllResponse { unbanned }).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_errors_map_to_statuses() {
        assert_eq!(
            control_status(&ControlError::AlreadyPresent("x".into())),
            StatusCode::CONFLICT
        );
        assert_eq!(
            control_status(&ControlError::TooMany(64)),
            StatusCode::CONFLICT
        );
        assert_eq!(
            control_status(&ControlError::OwnPeer),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            control_status(&ControlError::Store("io".into())),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }

    #[test]
    fn ban_durations() {
        assert_eq!(ban_duration(b"").ok(), Some(None));
        assert_eq!(ban_duration(b" \n").ok(), Some(None));
        assert_eq!(ban_duration(b"{}").ok(), Some(None));
        assert_eq!(
            ban_duration(br#"{"duration_secs": 90}"#).ok(),
            Some(Some(Duration::from_secs(90)))
        );
        for bad in [
            &br#"{"duration_secs": 0}"#[..],
            br#"{"duration_secs": 99999999999}"#,
            br#"{"duration_secs": -1}"#,
            b"not json",
        ] {
            assert!(ban_duration(bad).is_err(), "{bad:?}");
        }
    }
}
