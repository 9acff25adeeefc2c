//! Health checks and the token-free metrics listener (issue 15 §5).
//!
//! * `GET /health/live`: 200 `{"live": true}` while the node's event loop answers within
//!   [`LIVE_TIMEOUT`], else 503 — for a supervisor's liveness probe.
//! * `GET /health`: liveness and readiness: 200 `{"live": true, "ready": true, "reasons": []}`
//!   when the node is connected to at least one peer, not isolated or partitioned, and every
//!   store takes writes; else 503 with `ready: false` and the reasons, one sentence each.
//!
//! Both are routes of the control API (behind its token) and, with `dsdnd --metrics-listen
//! IP:PORT`, of a second listener **without token** that serves them and `GET /metrics` only,
//! for scrapers and probes on a private interface. That listener holds at most
//! [`METRICS_LISTENER_CONNECTIONS`] connections (counted in the descriptor budget's files
//! reserve) with the API's timeouts; its connection metrics are `metrics_listener_*`.

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dsdn_p2p::seeds::api::ApiSection;
use serde::{Deserialize, Serialize};

use super::listen::{self, ApiMetrics};
use super::{metrics, ApiState, ServeError};

/// How long `GET /health` waits for the event loop before it calls the node not live.
pub const LIVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Connections the metrics listener holds at once (and from one IP address: 4).
pub const METRICS_LISTENER_CONNECTIONS: usize = 8;

/// The body of `GET /health` and `GET /health/live`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// The event loop answered.
    pub live: bool,
    /// Connected, not isolated or partitioned, every store writable (`false` when not
    /// live).
    pub ready: bool,
    /// Why it is not ready (or not live), one sentence each; empty when ready.
    pub reasons: Vec<String>,
}

/// The node's health now.
pub async fn check(s: &ApiState) -> Health {
    let st = match tokio::time::timeout(LIVE_TIMEOUT, s.node.status()).await {
        Ok(Ok(st)) => st,
        Ok(Err(_)) => {
            return Health {
                live: false,
                ready: false,
                reasons: vec!["the node is shutting down".into()],
            }
        }
        Err(_) => {
            return Health {
                live: false,
                ready: false,
                reasons: vec![format!(
                    "the event loop did not answer within {} s",
                    LIVE_TIMEOUT.as_secs()
                )],
            }
        }
    };
    let mut reasons = Vec::new();
    if st.connected_peers == 0 {
        reasons.push("no peer connected".to_owned());
    }
    if st.isolated {
        reasons.push("isolated: no bootstrap source reachable".to_owned());
    }
    if st.partitioned {
        reasons.push("partitioned: fewer peers than min_peers and than it reached before".into());
    }
    for d in &st.degraded_stores {
        reasons.push(format!("store {} degraded: {}", d.store, d.error));
    }
    Health {
        live: true,
        ready: reasons.is_empty(),
        reasons,
    }
}

/// `GET /health`: 200 when live and ready, else 503; the body is a [`Health`].
pub(super) async fn health(State(s): State<ApiState>) -> Response {
    let h = check(&s).await;
    let status = if h.live && h.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

/// `GET /health/live`: 200 while the event loop answers, else 503.
pub(super) async fn live(State(s): State<ApiState>) -> Response {
    let h = check(&s).await;
    let status = if h.live {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(h)).into_response()
}

/// The metrics listener's routes: `/metrics`, `/health`, `/health/live`, no token.
pub fn metrics_router(state: ApiState) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/health/live", get(live))
        .fallback(super::not_found)
        .with_state(state)
}

/// Binds the metrics listener's address (at start, so that a taken address stops the
/// daemon with a clear error).
///
/// # Errors
/// [`ServeError::Bind`].
pub async fn bind_metrics(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServeError> {
    tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Serves [`metrics_router`] on `listener` (from [`bind_metrics`]) until `shutdown`
/// resolves, with the API's timeouts and [`METRICS_LISTENER_CONNECTIONS`].
///
/// # Errors
/// [`ServeError`] when the listener's metrics cannot be registered.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    state: ApiState,
    api: ApiSection,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    let addr = listener.local_addr().map_err(|source| ServeError::Bind {
        addr: SocketAddr::from(([0, 0, 0, 0], 0)),
        source,
    })?;
    let m = ApiMetrics::register_as(
        state.metrics.registry(),
        "metrics_listener",
        "Metrics listener",
    )?;
    let limits = ApiSection {
        max_connections: METRICS_LISTENER_CONNECTIONS,
        max_connections_per_ip: METRICS_LISTENER_CONNECTIONS / 2,
        ..api
    };
    if addr.ip().is_unspecified() {
        tracing::warn!(%addr, "the metrics listener has no token and listens on every interface: keep it behind a firewall");
    }
    tracing::info!(%addr, "metrics and health listener (no token): /metrics, /health, /health/live");
    listen::serve_listener(listener, metrics_router(state), limits, m, shutdown).await;
    Ok(())
}
