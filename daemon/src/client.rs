//! HTTP client for the control API of a running `dsdnd` (see [`crate::api`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), dsdn_daemon::client::ClientError> {
//! use dsdn_daemon::client::{metric_value, ApiClient};
//! let client = ApiClient::new("127.0.0.1:8645".parse().expect("address"));
//! let status = client.status().await?;
//! println!("{} has {} peers", status.peer_id, status.connected_peers);
//! let metrics = client.metrics_text().await?;
//! let dials = metric_value(&metrics, "bootstrap_peer_connect_total", &[]);
//! # let _ = dials; Ok(()) }
//! ```

use std::net::SocketAddr;
use std::time::Duration;

use dsdn_protocols::da::DaEvent;
use serde::de::DeserializeOwned;

use crate::api::{ApiError, DaStateResponse, PeerInfo, PublishResponse, StatusResponse};

/// The control API's default address.
pub const DEFAULT_API_ADDR: &str = "127.0.0.1:8645";

/// How long one request may take before it fails with [`ClientError::Timeout`].
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

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
    /// The daemon answered with a non-2xx status.
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

/// A client for one daemon's control API.
#[derive(Clone, Debug)]
pub struct ApiClient {
    addr: SocketAddr,
    timeout: Duration,
    http: reqwest::Client,
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
        }
    }

    /// The API address this client talks to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
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

    /// `POST /v1/da/events`: publishes `events` (the node must be the DA authority).
    ///
    /// # Errors
    /// Any [`ClientError`]; a node that is not the DA authority answers with
    /// [`ClientError::Api`].
    pub async fn da_publish(&self, events: &[DaEvent]) -> Result<PublishResponse, ClientError> {
        let path = "/v1/da/events";
        let req = self.http.post(self.url(path)).json(events);
        let body = self.send(path, req).await?;
        self.decode(path, &body)
    }

    /// `GET /v1/da/state`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn da_state(&self) -> Result<DaStateResponse, ClientError> {
        self.get_json("/v1/da/state").await
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

    async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let body = self.send(path, self.http.get(self.url(path))).await?;
        self.decode(path, &body)
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

/// Reads one value from a Prometheus / OpenMetrics text exposition.
///
/// A sample matches when its metric name is `name`, `name` + `_total` (prometheus-client
/// appends `_total` to counters, so `bootstrap_dns_resolve_total` may be exposed as
/// `bootstrap_dns_resolve_total_total`), or `name` without a trailing `_total`; and when it
/// carries every `(label, value)` pair of `labels` (other labels are ignored). The values
/// of all matching samples are summed, so `metric_value(t, "x", &[])` on a labelled family
/// is the total over its label values. `None` when no sample matches.
pub fn metric_value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let with_total = format!("{name}_total");
    let without_total = name.strip_suffix("_total");
    let mut sum = None;
    for line in text.lines() {
        let Some(sample) = parse_sample(line) else {
            continue;
        };
        let name_matches = sample.name == name
            || sample.name == with_total
            || without_total.is_some_and(|n| sample.name == n);
        if !name_matches {
            continue;
        }
        let labels_match = labels
            .iter()
            .all(|(k, v)| sample.labels.iter().any(|(sk, sv)| sk == k && sv == v));
        if labels_match {
            *sum.get_or_insert(0.0) += sample.value;
        }
    }
    sum
}

/// One sample line of a text exposition.
#[derive(Debug, PartialEq)]
struct Sample<'a> {
    name: &'a str,
    labels: Vec<(String, String)>,
    value: f64,
}

/// Parses `name{k="v",…} value [timestamp]`; `None` for comments, blank or broken lines.
fn parse_sample(line: &str) -> Option<Sample<'_>> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let name_end = line
        .find(|c: char| c == '{' || c.is_whitespace())
        .unwrap_or(line.len());
    let name = &line[..name_end];
    let mut rest = &line[name_end..];
    let mut labels = Vec::new();
    if let Some(after_brace) = rest.strip_prefix('{') {
        let (parsed, after) = parse_labels(after_brace)?;
        labels = parsed;
        rest = after;
    }
    let value = rest.split_whitespace().next()?.parse::<f64>().ok()?;
    if name.is_empty() {
        return None;
    }
    Some(Sample {
        name,
        labels,
        value,
    })
}

/// Parses the label set after `{` up to and including the closing `}`; returns the labels
/// and the text after `}`.
fn parse_labels(mut s: &str) -> Option<(Vec<(String, String)>, &str)> {
    let mut labels = Vec::new();
    loop {
        s = s.trim_start();
        if let Some(after) = s.strip_prefix('}') {
            return Some((labels, after));
        }
        let eq = s.find('=')?;
        let key = s[..eq].trim().to_owned();
        s = s[eq + 1..].trim_start().strip_prefix('"')?;
        let mut value = String::new();
        let mut chars = s.char_indices();
        let end = loop {
            let (i, c) = chars.next()?;
            match c {
                '"' => break i,
                '\\' => match chars.next()?.1 {
                    'n' => value.push('\n'),
                    other => value.push(other),
                },
                c => value.push(c),
            }
        };
        labels.push((key, value));
        s = s[end + 1..].trim_start();
        if let Some(after) = s.strip_prefix(',') {
            s = after;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"# HELP bootstrap_dns_resolve_total DNS seed resolutions attempted.
# TYPE bootstrap_dns_resolve_total counter
bootstrap_dns_resolve_total_total 3
# HELP bootstrap_dns_resolve_success DNS seed resolutions that returned addresses.
# TYPE bootstrap_dns_resolve_success counter
bootstrap_dns_resolve_success_total 2
# TYPE bootstrap_peer_handshake_failure counter
bootstrap_peer_handshake_failure_total{reason="network_mismatch"} 4
bootstrap_peer_handshake_failure_total{reason="version_mismatch",dir="in"} 1
bootstrap_peer_handshake_failure_total{reason="odd \"quoted\", value\\x"} 7
# TYPE bootstrap_active_peers gauge
bootstrap_active_peers 5
bootstrap_peers_dat_size{} 12.5 1700000000000
# TYPE bootstrap_fallback_triggered counter
bootstrap_fallback_triggered_total 0
# EOF
"#;

    #[test]
    fn reads_gauges_and_counters_with_suffix_tolerance() {
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_active_peers", &[]),
            Some(5.0)
        );
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_peers_dat_size", &[]),
            Some(12.5)
        );
        // Counter named `…_total` exposed as `…_total_total`.
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_dns_resolve_total", &[]),
            Some(3.0)
        );
        // Counter asked by its family name or by its sample name.
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_dns_resolve_success", &[]),
            Some(2.0)
        );
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_dns_resolve_success_total", &[]),
            Some(2.0)
        );
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_fallback_triggered", &[]),
            Some(0.0)
        );
    }

    #[test]
    fn label_matching_and_summing() {
        let name = "bootstrap_peer_handshake_failure";
        assert_eq!(
            metric_value(SAMPLE, name, &[("reason", "network_mismatch")]),
            Some(4.0)
        );
        assert_eq!(
            metric_value(SAMPLE, name, &[("reason", "version_mismatch")]),
            Some(1.0)
        );
        assert_eq!(
            metric_value(SAMPLE, name, &[("reason", "odd \"quoted\", value\\x")]),
            Some(7.0)
        );
        assert_eq!(metric_value(SAMPLE, name, &[]), Some(12.0));
        assert_eq!(metric_value(SAMPLE, name, &[("reason", "timeout")]), None);
    }

    #[test]
    fn absent_metric_and_no_prefix_confusion() {
        assert_eq!(
            metric_value(SAMPLE, "bootstrap_pex_requests_total", &[]),
            None
        );
        // `bootstrap_active` is a prefix of a real name but not a metric itself.
        assert_eq!(metric_value(SAMPLE, "bootstrap_active", &[]), None);
        assert_eq!(metric_value("", "x", &[]), None);
        assert_eq!(metric_value("garbage line\nx{unclosed 1", "x", &[]), None);
    }

    #[test]
    fn api_error_bodies() {
        let status = reqwest::StatusCode::FORBIDDEN;
        assert_eq!(
            api_error_message(status, br#"{"error":"this node is not the DA authority"}"#),
            "this node is not the DA authority"
        );
        assert_eq!(api_error_message(status, b"plain\ntext"), "plain text");
        assert_eq!(api_error_message(status, b""), "Forbidden");
        let err = ClientError::Api {
            status: 403,
            message: "this node is not the DA authority".into(),
        };
        assert_eq!(
            err.to_string(),
            "dsdnd answered 403 Forbidden: this node is not the DA authority"
        );
        assert_eq!(status_text(599), "599");
    }

    #[tokio::test]
    async fn unreachable_daemon_is_one_clear_line() {
        // Bind then drop a listener so the port is (almost certainly) closed.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            l.local_addr().expect("addr").port()
        };
        let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
        let err = ApiClient::with_timeout(addr, Duration::from_secs(2))
            .status()
            .await
            .expect_err("nothing listens");
        assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
        let msg = err.to_string();
        assert_eq!(
            msg,
            format!("cannot reach dsdnd at {addr}: connection refused — is the daemon running?")
        );
    }
}
