//! The control API server (HTTP/JSON; shapes and routes in [`crate::api`]).
//!
//! Every route, `/metrics` and unknown paths included, sits behind [`require_token`]: the
//! request must carry `Authorization: Bearer <token>` with the token of the daemon's
//! cookie ([`crate::cookie`]). The check reads the headers only: a request without the
//! token is answered 401 before a byte of its body is read (the routes' extractors read
//! bodies, the middleware runs before them).
//!
//! Connections are accepted and served by [`listen`]: caps on connections (global and per
//! source IP), header-read, request and idle timeouts, a hard cap on the descriptors the
//! API holds (`[api]` of seeds.toml, [`ApiSection`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use dsdn_p2p::handle::PeerView;
use dsdn_p2p::{Metrics, NodeHandle};
use dsdn_protocols::{ServiceType, PROTOCOL_VERSION};
use serde::Deserialize;

use crate::api::{ApiError, ConnectionInfo, PeerInfo, StatusResponse};
use crate::cookie::{bearer_token, token_matches};

pub use dsdn_p2p::seeds::api::ApiSection;
pub use listen::ApiMetrics;

mod committee;
mod control;
pub mod da;
pub mod health;
pub mod listen;
mod slots;
#[cfg(test)]
mod tests;
mod workload;

/// Largest request body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// What the handlers need.
#[derive(Clone)]
pub struct ApiState {
    /// The node.
    pub node: NodeHandle,
    /// Its metrics.
    pub metrics: Metrics,
    /// `bootstrap`, `storage` or `coordinator`.
    pub mode: String,
    /// The network id.
    pub network: String,
    /// Advertised service names.
    pub services: Vec<String>,
    /// e.g. `dsdnd/0.1.0`.
    pub agent_version: String,
    /// The bearer token every request must carry (the content of `<data dir>/.cookie`).
    pub token: Arc<str>,
}

/// The answer to a request without the right token: 401, `WWW-Authenticate: Bearer` and
/// an [`ApiError`] body.
fn unauthorized(msg: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer realm=\"dsdnd\"")],
        Json(ApiError {
            error: msg.to_owned(),
        }),
    )
        .into_response()
}

/// Middleware: passes the request on when it carries `Authorization: Bearer <token>` with
/// [`ApiState::token`] (compared in constant time), else answers 401 without reading the
/// body. A connection whose request passed is protected from being replaced by newer
/// connections ([`listen`]).
pub async fn require_token(State(s): State<ApiState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(bearer_token);
    match presented {
        Some(token) if token_matches(token, &s.token) => {
            if let Some(conn) = req.extensions().get::<slots::ConnAuth>() {
                conn.mark();
            }
            next.run(req).await
        }
        Some(_) => unauthorized("wrong API token: use the one in the daemon's <data dir>/.cookie"),
        None => unauthorized(
            "missing API token: send Authorization: Bearer <content of the daemon's <data dir>/.cookie>",
        ),
    }
}

pub(crate) fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(ApiError { error: msg.into() })).into_response()
}

pub(crate) fn stopped() -> Response {
    error(StatusCode::SERVICE_UNAVAILABLE, "the node is shutting down")
}

async fn status(State(s): State<ApiState>) -> Response {
    let Ok(st) = s.node.status().await else {
        return stopped();
    };
    Json(StatusResponse {
        peer_id: st.peer_id.to_string(),
        mode: s.mode.clone(),
        network: s.network.clone(),
        services: s.services.clone(),
        connected_peers: st.connected_peers,
        known_peers: st.known_peers,
        listen_addrs: st.listen_addrs.iter().map(|a| a.to_string()).collect(),
        protocol_version: PROTOCOL_VERSION.to_string(),
        agent_version: s.agent_version.clone(),
        uptime_secs: st.uptime.as_secs(),
        bootstrap_stage: st.bootstrap_stage,
        isolated: st.isolated,
        partitioned: st.partitioned,
        da_authority: st.da_authority.map(hex::encode),
        is_da_authority: st.is_da_authority,
        da_height: s.node.da_height(),
        registration: st.registration.and_then(|r| serde_json::to_value(r).ok()),
        reachability: st.nat.reachability.as_str().to_owned(),
        external_addrs: st.nat.external_addrs.clone(),
        nat: serde_json::to_value(&st.nat).ok(),
        banned_peers: st.banned_peers,
        warnings: st.warnings,
        degraded_stores: st.degraded_stores,
    })
    .into_response()
}

/// Query of `GET /v1/peers`.
#[derive(Debug, Deserialize)]
struct PeersQuery {
    /// A service type name: only peers offering it.
    #[serde(rename = "type")]
    service: Option<String>,
}

fn peer_info(p: PeerView) -> PeerInfo {
    PeerInfo {
        peer_id: p.peer_id.to_string(),
        addresses: p.addrs.iter().map(|a| a.to_string()).collect(),
        services: p.services.names().into_iter().map(String::from).collect(),
        source: p.source.as_str().to_owned(),
        connected: p.connected_outbound.is_some(),
        direction: p
            .connected_outbound
            .map(|o| if o { "outbound" } else { "inbound" }.to_owned()),
        last_seen: p.last_seen,
        last_success: p.last_success,
        success_count: p.success_count,
        failure_count: p.failure_count,
        score: p.score,
        netgroup: p.netgroup,
        suspicious: p.suspicious,
        banned_until: p.banned_until,
        ban_reason: p.ban_reason,
        connection: p.connection.map(|c| ConnectionInfo {
            remote_addr: c.remote_addr.to_string(),
            relayed: c.relayed,
            age_secs: c.age.as_secs(),
            rtt_ms: c.rtt.map(|d| d.as_secs_f64() * 1000.0),
            bytes_in: p.traffic.bytes_in,
            bytes_out: p.traffic.bytes_out,
            agent_version: c.agent_version,
            protocols: c.protocols,
            connections: c.connections,
        }),
    }
}

async fn peers(
    State(s): State<ApiState>,
    query: Result<Query<PeersQuery>, QueryRejection>,
) -> Response {
    let service = match query {
        Err(e) => return error(StatusCode::BAD_REQUEST, e.body_text()),
        Ok(Query(PeersQuery { service: None })) => None,
        Ok(Query(PeersQuery {
            service: Some(name),
        })) => match name.parse::<ServiceType>() {
            Ok(t) => Some(t),
            Err(e) => return error(StatusCode::BAD_REQUEST, e.to_string()),
        },
    };
    let Ok(peers) = s.node.peers().await else {
        return stopped();
    };
    let out: Vec<PeerInfo> = peers
        .into_iter()
        .filter(|p| service.is_none_or(|t| p.services.contains(t)))
        .map(peer_info)
        .collect();
    Json(out).into_response()
}

async fn metrics(State(s): State<ApiState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        s.metrics.encode(),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "no such endpoint")
}

/// The API's router: every route of [`crate::api`], behind [`require_token`].
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/v1/status", get(status))
        .route("/v1/peers", get(peers).post(control::add_peer))
        .route("/v1/seeds", post(control::add_seed))
        .route("/v1/peers/stats", get(control::stats))
        .route("/v1/peers/added", get(control::added_peers))
        .route("/v1/peers/remove", post(control::remove_peer))
        .route("/v1/peers/reset", post(control::reset))
        .route(
            "/v1/peers/{peer_id}/ban",
            post(control::ban).delete(control::unban),
        )
        .route("/v1/bans", axum::routing::delete(control::unban_all))
        .route("/v1/da/events", post(da::publish))
        .route("/v1/da/blobs", get(da::blobs).post(da::submit))
        .route("/v1/da/state", get(da::state))
        .route("/v1/da/proof", get(da::proof))
        .route("/v1/da/evidence", get(da::evidence))
        .route("/v1/committee/dkg", post(committee::dkg))
        .route("/v1/committee/status", get(committee::status))
        .route(
            "/v1/workloads",
            post(workload::submit).layer(axum::extract::DefaultBodyLimit::max(
                dsdn_protocols::workload::MAX_SUBMISSION_BYTES,
            )),
        )
        .route("/v1/receipts", get(workload::list).post(workload::publish))
        .route("/v1/disputes", get(workload::disputes))
        .route("/v1/receipts/{id}", get(workload::show))
        .route("/metrics", get(metrics))
        .route("/health", get(health::health))
        .route("/health/live", get(health::live))
        .fallback(not_found)
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(middleware::from_fn_with_state(state.clone(), require_token))
        .with_state(state)
}

/// Errors of [`serve`].
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The API's metrics cannot be registered (registered already).
    #[error("cannot register the control API metrics: {0}")]
    Metrics(#[from] prometheus::Error),
}

/// Binds `addr` and serves the API with `limits` until `shutdown` resolves; open
/// connections then get [`listen::SHUTDOWN_GRACE`] to finish. Registers [`ApiMetrics`] in
/// the node's registry.
///
/// # Errors
/// When `addr` cannot be bound or the metrics are registered already.
pub async fn serve(
    addr: SocketAddr,
    state: ApiState,
    limits: ApiSection,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })?;
    let metrics = ApiMetrics::register(state.metrics.registry())?;
    tracing::info!(
        %addr,
        max_connections = limits.max_connections,
        max_connections_per_ip = limits.max_connections_per_ip,
        header_read_timeout_secs = limits.header_read_timeout.as_secs(),
        request_timeout_secs = limits.request_timeout.as_secs(),
        idle_timeout_secs = limits.idle_timeout.as_secs(),
        "control API listening"
    );
    listen::serve_listener(listener, router(state), limits, metrics, shutdown).await;
    Ok(())
}
