//! HTTP client for the control API of a running `dsdnd` (see [`crate::api`]).
//!
//! Every request carries `Authorization: Bearer <token>`, the token being the daemon's
//! cookie ([`crate::cookie`]): give it with [`ApiClient::with_token`], or let the client
//! read the cookie file at each request with [`ApiClient::with_cookie_file`] (for a daemon
//! that is starting or restarting and so (re)writing its cookie).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dsdn_daemon::client::ClientError> {
//! use dsdn_daemon::client::{metric_value, ApiClient};
//! let client = ApiClient::new("127.0.0.1:8645".parse().expect("address"))
//!     .with_cookie_file("dsdn-data/.cookie");
//! let status = client.status().await?;
//! println!("{} has {} peers", status.peer_id, status.connected_peers);
//! let metrics = client.metrics_text().await?;
//! let dials = metric_value(&metrics, "bootstrap_peer_connect_total", &[]);
//! # let _ = dials; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dsdn_protocols::da::DaEvent;
use serde::de::DeserializeOwned;

use crate::api::{
    AddPeerRequest, AddSeedRequest, AddedPeerInfo, AddedResponse, ApiError, BanRequest,
    BanResponse, BlobInfo, CommitteeStatusResponse, DaStateView, DisputesResponse,
    ForkEvidenceView, PeerInfo, PeerStatsView, PublishResponse, RemovedResponse, ResetResponse,
    StatusResponse, SubmitResponse, UnbanResponse,
};
use crate::cookie::read_cookie;

mod da;
mod metrics;
mod workload;
pub use workload::WORKLOAD_TIMEOUT;

pub use metrics::metric_value;

/// The control API's default address.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8645";

/// How long one request may take before it fails with [`ClientError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`ApiClient::committee_dkg`] waits (the daemon's DKG times out after 30 s).
pub const COMMITTEE_DKG_TIMEOUT: Duration = Duration::from_secs(40);

/// Longest error body quoted in a [`ClientError::Api`] that is not an [`ApiError`] JSON body.
const MAX_QUOTED_BODY: usize = 200;

/// Why a control API call failed. Every message is one line, fit for an operator.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing answered at the address (connection refused, no route, …).
    #[error("cannot reach dsdnd at {addr}: {reason} — is the daemon running?")]
    Unreachable {
        /// The API address that was tried.
        addr: SocketAddr,
        /// The lowest-level cause, e.g. `connection refused`.
        reason: String,
    },
    /// The daemon accepted the connection but did not answer in time.
    #[error("dsdnd at {addr} did not answer {path} within {} s", timeout.as_secs_f64())]
    Timeout {
        /// The API address.
        addr: SocketAddr,
        /// The request path.
        path: String,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The daemon answered 401: no token was sent, or not the daemon's current one.
    #[error("the control API at {addr} refused the {}: pass --data-dir of the daemon or --cookie FILE", if *sent_token { "token" } else { "request without a token" })]
    Unauthorized {
        /// The API address.
        addr: SocketAddr,
        /// Whether a token was sent at all.
        sent_token: bool,
    },
    /// The daemon answered with a non-2xx status (other than 401).
    #[error("dsdnd answered {}: {message}", status_text(*status))]
    Api {
        /// The HTTP status code.
        status: u16,
        /// The [`ApiError::error`] text, or the raw body when it is not an `ApiError`.
        message: String,
    },
    /// The daemon answered 2xx but the body is not what the API contract says.
    #[error("bad response from dsdnd at {addr} to {path}: {reason}")]
    BadResponse {
        /// The API address.
        addr: SocketAddr,
        /// The request path.
        path: String,
        /// What was wrong (e.g. the JSON error and its location).
        reason: String,
    },
}

/// Where the bearer token of a request comes from.
#[derive(Clone, Debug)]
enum Auth {
    /// No `Authorization` header (the daemon answers 401).
    None,
    /// A fixed token.
    Token(String),
    /// The cookie file, read at each request (no header while it cannot be read).
    CookieFile(PathBuf),
}

/// A client for one daemon's control API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    addr: SocketAddr,
    timeout: Duration,
    http: reqwest::Client,
    auth: Auth,
}

impl ApiClient {
    /// A client for the API at `addr`, with [`DEFAULT_TIMEOUT`] per request.
    pub fn new(addr: SocketAddr) -> Self {
        Self::with_timeout(addr, DEFAULT_TIMEOUT)
    }

    /// A client for the API at `addr` whose requests fail after `timeout`.
    pub fn with_timeout(addr: SocketAddr, timeout: Duration) -> Self {
        // Never go through an HTTP proxy from the environment: the API is local.
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        Self {
            addr,
            timeout,
            http,
            auth: Auth::None,
        }
    }

    /// This client, sending `Authorization: Bearer <token>` with every request.
    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Auth::Token(token.into());
        self
    }

    /// This client, reading the token from the cookie file `path` (e.g.
    /// `<data dir>/.cookie`) at each request, so it follows a daemon that restarts and
    /// writes a new cookie. While the file cannot be read, requests go without a token.
    pub fn with_cookie_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.auth = Auth::CookieFile(path.into());
        self
    }

    /// The API address this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `POST /v1/committee/dkg`: runs the committee DKG and waits (up to
    /// [`COMMITTEE_DKG_TIMEOUT`]) until this member adopted the group key.
    ///
    /// # Errors
    /// Any [`ClientError`]; [`ClientError::Api`] 403 on a non-member, 409 when a key share
    /// exists for the epoch, 502 when the ceremony failed.
    pub async fn committee_dkg(&self) -> Result<CommitteeStatusResponse, ClientError> {
        let path = "/v1/committee/dkg";
        let req = self
            .http
            .post(self.url(path))
            .timeout(COMMITTEE_DKG_TIMEOUT);
        let body = self.send(path, req).await?;
        self.decode(path, &body)
    }

    /// `GET /v1/committee/status`.
    ///
    /// # Errors
    /// Any [`ClientError`]; [`ClientError::Api`] 404 on a non-member.
    pub async fn committee_status(&self) -> Result<CommitteeStatusResponse, ClientError> {
        self.get_json("/v1/committee/status").await
    }

    /// `GET /v1/status`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn status(&self) -> Result<StatusResponse, ClientError> {
        self.get_json("/v1/status").await
    }

    /// `GET /v1/peers`: every known peer (peers.dat ∪ connected).
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn peers(&self) -> Result<Vec<PeerInfo>, ClientError> {
        self.get_json("/v1/peers").await
    }

    /// `GET /v1/peers?type=SERVICE`: the known peers offering `service` (a service type
    /// name such as `storage-dc`); every known peer for `None`.
    ///
    /// # Errors
    /// Any [`ClientError`]; an unknown service name is [`ClientError::Api`] (400).
    pub async fn peers_of_type(&self, service: Option<&str>) -> Result<Vec<PeerInfo>, ClientError> {
        let path = "/v1/peers";
        let mut req = self.http.get(self.url(path));
        if let Some(t) = service {
            req = req.query(&[("type", t)]);
        }
        let body = self.send(path, req).await?;
        self.decode(path, &body)
    }

    /// `POST /v1/peers`: adds a static peer (`IP:PORT` or a multiaddr), persisted by the
    /// daemon and dialled at once.
    ///
    /// # Errors
    /// Any [`ClientError`]; a bad address is [`ClientError::Api`] 400, one configured
    /// already 409.
    pub async fn add_peer(&self, addr: &str) -> Result<AddedResponse, ClientError> {
        let body = AddPeerRequest {
            addr: addr.to_owned(),
        };
        self.post_json("/v1/peers", Some(&body)).await
    }

    /// `POST /v1/peers/remove`: removes a static peer added with [`ApiClient::add_peer`].
    ///
    /// # Errors
    /// Any [`ClientError`]; a peer that was not added is [`ClientError::Api`] 404.
    pub async fn remove_peer(&self, addr: &str) -> Result<RemovedResponse, ClientError> {
        let body = AddPeerRequest {
            addr: addr.to_owned(),
        };
        self.post_json("/v1/peers/remove", Some(&body)).await
    }

    /// `GET /v1/peers/added`: the added peers and their state.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn added_peers(&self) -> Result<Vec<AddedPeerInfo>, ClientError> {
        self.get_json("/v1/peers/added").await
    }

    /// `POST /v1/seeds`: adds a DNS seed, persisted by the daemon and resolved at once.
    ///
    /// # Errors
    /// As [`ApiClient::add_peer`].
    pub async fn add_seed(&self, domain: &str) -> Result<AddedResponse, ClientError> {
        let body = AddSeedRequest {
            domain: domain.to_owned(),
        };
        self.post_json("/v1/seeds", Some(&body)).await
    }

    /// `GET /v1/peers/stats`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn peer_stats(&self) -> Result<PeerStatsView, ClientError> {
        self.get_json("/v1/peers/stats").await
    }

    /// `POST /v1/peers/reset`: clears peers.dat, drops every connection and bootstraps
    /// again from the seeds.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn reset_peers(&self) -> Result<ResetResponse, ClientError> {
        self.post_json::<(), _>("/v1/peers/reset", None).await
    }

    /// `POST /v1/peers/{peer_id}/ban` for `duration_secs` (`None`: the daemon's configured
    /// `ban_duration_secs`).
    ///
    /// # Errors
    /// Any [`ClientError`]; a bad peer id or duration is [`ClientError::Api`] 400.
    pub async fn ban(
        &self,
        peer_id: &str,
        duration_secs: Option<u64>,
    ) -> Result<BanResponse, ClientError> {
        let path = format!("/v1/peers/{}/ban", encode_segment(peer_id));
        self.post_json(&path, Some(&BanRequest { duration_secs }))
            .await
    }

    /// `DELETE /v1/peers/{peer_id}/ban`.
    ///
    /// # Errors
    /// Any [`ClientError`]; a bad peer id is [`ClientError::Api`] 400.
    pub async fn unban(&self, peer_id: &str) -> Result<UnbanResponse, ClientError> {
        let path = format!("/v1/peers/{}/ban", encode_segment(peer_id));
        let body = self.send(&path, self.http.delete(self.url(&path))).await?;
        self.decode(&path, &body)
    }

    /// `DELETE /v1/bans`: lifts every ban.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn unban_all(&self) -> Result<crate::api::UnbanAllResponse, ClientError> {
        let path = "/v1/bans";
        let body = self.send(path, self.http.delete(self.url(path))).await?;
        self.decode(path, &body)
    }

    /// `GET /metrics`: the Prometheus text exposition (read values with [`metric_value`]).
    ///
    /// # Errors
    /// Any [`ClientError`]; a body that is not UTF-8 is [`ClientError::BadResponse`].
    pub async fn metrics_text(&self) -> Result<String, ClientError> {
        let path = "/metrics";
        let body = self.send(path, self.http.get(self.url(path))).await?;
        String::from_utf8(body).map_err(|e| ClientError::BadResponse {
            addr: self.addr,
            path: path.to_owned(),
            reason: format!("not UTF-8: {e}"),
        })
    }

    /// Fetches `/metrics` and reads one value with [`metric_value`].
    ///
    /// # Errors
    /// As [`ApiClient::metrics_text`]. A metric that is absent is `Ok(None)`.
    pub async fn metric(
        &self,
        name: &str,
        labels: &[(&str, &str)],
    ) -> Result<Option<f64>, ClientError> {
        Ok(metric_value(&self.metrics_text().await?, name, labels))
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// `GET path` (with the token) and the body of its 2xx answer, for callers that time or
    /// pass on an answer without decoding it (benchmarks).
    ///
    /// # Errors
    /// [`ClientError`] for a transport failure or a non-2xx answer (its message).
    pub async fn get_raw(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        self.send(path, self.http.get(self.url(path))).await
    }

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.send(path, self.http.get(self.url(path))).await?;
        self.decode(path, &body)
    }

    async fn post_json<B: serde::Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, ClientError> {
        let mut req = self.http.post(self.url(path));
        if let Some(b) = body {
            req = req.json(b);
        }
        let body = self.send(path, req).await?;
        self.decode(path, &body)
    }

    /// The token to send now, if any.
    fn token(&self) -> Option<String> {
        match &self.auth {
            Auth::None => None,
            Auth::Token(t) => Some(t.clone()),
            Auth::CookieFile(path) => read_cookie(path).ok(),
        }
    }

    fn decode<T: DeserializeOwned>(&self, path: &str, body: &[u8]) -> Result<T, ClientError> {
        serde_json::from_slice(body).map_err(|e| ClientError::BadResponse {
            addr: self.addr,
            path: path.to_owned(),
            reason: format!("invalid JSON: {e}"),
        })
    }

    /// Sends `req` and returns the body of a 2xx answer.
    async fn send(&self, path: &str, req: reqwest::RequestBuilder) -> Result<Vec<u8>, ClientError> {
        let token = self.token();
        let req = match &token {
            Some(t) => req.bearer_auth(t),
            None => req,
        };
        let resp = req
            .send()
            .await
            .map_err(|e| self.transport_error(path, &e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.transport_error(path, &e))?;
        if status.is_success() {
            return Ok(body.to_vec());
        }
        if status == reqwest::StatusCode::UNAUTHORIZED {
            return Err(ClientError::Unauthorized {
                addr: self.addr,
                sent_token: token.is_some(),
            });
        }
        Err(ClientError::Api {
            status: status.as_u16(),
            message: api_error_message(status, &body),
        })
    }

    fn transport_error(&self, path: &str, e: &reqwest::Error) -> ClientError {
        if e.is_timeout() {
            return ClientError::Timeout {
                addr: self.addr,
                path: path.to_owned(),
                timeout: self.timeout,
            };
        }
        if e.is_connect() {
            return ClientError::Unreachable {
                addr: self.addr,
                reason: root_cause(e),
            };
        }
        ClientError::BadResponse {
            addr: self.addr,
            path: path.to_owned(),
            reason: root_cause(e),
        }
    }
}

/// A path segment with every byte but `A-Z a-z 0-9 - . _ ~` percent-encoded (PeerIds are
/// base58, but the input comes from the command line).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `403 Forbidden`, or just `403` for a code without a reason phrase.
fn status_text(status: u16) -> String {
    match reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
    {
        Some(reason) => format!("{status} {reason}"),
        None => status.to_string(),
    }
}

/// The message of a non-2xx answer: the [`ApiError::error`] text when the body is one,
/// else the (shortened) body, else the status's reason phrase.
fn api_error_message(status: reqwest::StatusCode, body: &[u8]) -> String {
    if let Ok(err) = serde_json::from_slice::<ApiError>(body) {
        return err.error;
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        return status
            .canonical_reason()
            .unwrap_or("no error message")
            .to_owned();
    }
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > MAX_QUOTED_BODY {
        let cut: String = one_line.chars().take(MAX_QUOTED_BODY).collect();
        format!("{cut}…")
    } else {
        one_line
    }
}

/// A short, lowercase description of the lowest-level cause of a transport error
/// (`connection refused` rather than reqwest's nested wrapper messages).
fn root_cause(e: &reqwest::Error) -> String {
    let mut current: &(dyn std::error::Error + 'static) = e;
    let mut io_kind = None;
    loop {
        if let Some(io) = current.downcast_ref::<std::io::Error>() {
            io_kind = Some(io.kind());
        }
        match current.source() {
            Some(next) => current = next,
            None => break,
        }
    }
    match io_kind {
        Some(std::io::ErrorKind::ConnectionRefused) => "connection refused".to_owned(),
        Some(std::io::ErrorKind::ConnectionReset) => "connection reset".to_owned(),
        Some(std::io::ErrorKind::TimedOut) => "timed out".to_owned(),
        _ => current.to_string(),
    }
}

#[cfg(test)]
mod tests;

/// Percent-encodes a query value (everything but unreserved characters).
fn encode_query(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod query_tests {
    use super::encode_query;

    #[test]
    fn query_values_are_percent_encoded() {
        assert_eq!(encode_query("node:12D3Koo"), "node%3A12D3Koo");
        assert_eq!(encode_query("zone:a b/é"), "zone%3Aa%20b%2F%C3%A9");
    }
}
