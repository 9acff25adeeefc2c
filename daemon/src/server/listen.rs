//! The control API's accept loop and connections (issue 14 §1): what a client without the
//! token can hold is bounded in descriptors, memory and time.
//!
//! - **Descriptors**: one permit per open connection, `max_connections` + 1 permits (the
//!   extra one for the connection being judged); nothing is accepted while none is free,
//!   so the API never holds more descriptors than its share of the budget
//!   ([`crate::fds`]). Admission by [`Slots`]: global and per-source caps, a new
//!   connection replacing the oldest one without token, else the oldest idle one, or
//!   refused (a best-effort `503` and close) when every one serves a request with the
//!   token.
//! - **Time**: a connection with no request in progress that receives nothing for
//!   `idle_timeout` is closed; once a request's first byte arrives its head must be
//!   complete within `header_read_timeout`; a handler (reading the body included) that
//!   has not answered after `request_timeout` is answered `503`.
//! - **Memory**: hyper reads at most [`MAX_READ_BUFFER`] bytes of a request head; bodies
//!   are streamed (and capped by the routes' body limits).
//!
//! Refusals and closures are counted in `api_connections_rejected_total{reason}` and
//! `api_connections_closed_total{reason}`, open connections in `api_connections`; refusals
//! are logged at most every [`LOG_EVERY`].

use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, Response, StatusCode};
use axum::Router;
use dsdn_p2p::seeds::api::ApiSection;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus::{IntCounterVec, IntGauge, Opts, Registry};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use super::slots::{Refusal, Slot, Slots};

/// Largest read buffer of a connection, in bytes: a request head must fit (hyper's
/// minimum is 8 KiB).
pub const MAX_READ_BUFFER: usize = 64 * 1024;

/// Refusals are logged at most this often (each one is counted in the metrics).
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// How long a shutdown waits for open connections to finish their requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Pause of the accept loop after `accept` failed other than for one connection (no
/// descriptor, EMFILE/ENFILE, or no memory): pending connections stay in the listen
/// backlog.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// Written to a refused connection before it is closed.
const BUSY: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
content-length: 55\r\nconnection: close\r\n\r\n{\"error\":\"too many control API connections; try again\"}";

/// The control API's connection metrics.
#[derive(Clone)]
pub struct ApiMetrics {
    /// `api_connections`: open connections.
    pub connections: IntGauge,
    /// `api_connections_rejected_total{reason="global_limit"|"per_ip_limit"}`: connections
    /// closed at accept because every open one served a request with the token.
    pub rejected: IntCounterVec,
    /// `api_connections_closed_total{reason="replaced"|"idle_timeout"|"header_timeout"|
    /// "request_timeout"}`: connections the server closed (`request_timeout`: requests
    /// answered 503, the connection then closes).
    pub closed: IntCounterVec,
}

impl ApiMetrics {
    /// Registers the families (`api_connections`, …) in `registry`.
    ///
    /// # Errors
    /// When one is registered already.
    pub fn register(registry: &Registry) -> Result<Self, prometheus::Error> {
        Self::register_as(registry, "api", "Control API")
    }

    /// Registers the families named `<prefix>_connections`, … (the metrics listener uses
    /// `metrics_listener`), described as `what`.
    ///
    /// # Errors
    /// When one is registered already.
    pub fn register_as(
        registry: &Registry,
        prefix: &str,
        what: &str,
    ) -> Result<Self, prometheus::Error> {
        let connections = IntGauge::new(
            format!("{prefix}_connections"),
            format!("{what} connections open"),
        )?;
        let rejected = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_connections_rejected_total"),
                format!("{what} connections refused at accept, by the cap that refused them"),
            ),
            &["reason"],
        )?;
        let closed = IntCounterVec::new(
            Opts::new(
                format!("{prefix}_connections_closed_total"),
                format!("{what} connections closed by the server, by reason"),
            ),
            &["reason"],
        )?;
        registry.register(Box::new(connections.clone()))?;
        registry.register(Box::new(rejected.clone()))?;
        registry.register(Box::new(closed.clone()))?;
        for r in [Refusal::GlobalLimit, Refusal::PerIpLimit] {
            rejected.with_label_values(&[r.as_str()]);
        }
        for r in [
            "replaced",
            "idle_timeout",
            "header_timeout",
            "request_timeout",
        ] {
            closed.with_label_values(&[r]);
        }
        Ok(Self {
            connections,
            rejected,
            closed,
        })
    }
}

/// Counts refusals, replacements and `accept` errors between two log lines: the first
/// is logged at once, the rest at most every [`LOG_EVERY`].
struct RefusalLog {
    last: Option<Instant>,
    global: u64,
    per_ip: u64,
    replaced: u64,
    accept_errors: u64,
    last_error: Option<String>,
}

impl RefusalLog {
    fn new() -> Self {
        Self {
            last: None,
            global: 0,
            per_ip: 0,
            replaced: 0,
            accept_errors: 0,
            last_error: None,
        }
    }

    /// Something is counted and not yet logged.
    fn pending(&self) -> bool {
        self.global + self.per_ip + self.replaced + self.accept_errors > 0
    }

    /// When the counts may be logged next.
    fn due(&self) -> Instant {
        self.last.map_or_else(Instant::now, |t| t + LOG_EVERY)
    }

    /// Logs the counts when some are pending and [`LOG_EVERY`] has passed since the last
    /// line.
    fn flush(&mut self) {
        let now = Instant::now();
        if !self.pending() || self.last.is_some_and(|t| now < t + LOG_EVERY) {
            return;
        }
        self.last = Some(now);
        tracing::warn!(
            refused_global_limit = self.global,
            refused_per_ip_limit = self.per_ip,
            replaced_without_token = self.replaced,
            accept_errors = self.accept_errors,
            last_accept_error = self.last_error.as_deref(),
            "control API under connection pressure (counts since the last such line; see the api_connections_* metrics)"
        );
        (self.global, self.per_ip, self.replaced, self.accept_errors) = (0, 0, 0, 0);
        self.last_error = None;
    }
}

/// True for the `accept` errors of one connection (the next `accept` may succeed at
/// once); the others (no descriptor, no memory, …) are met with a pause.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionRefused
    )
}

/// Serves `router` on `listener` with the limits of `limits` until `shutdown` resolves,
/// then lets open connections finish their requests for up to [`SHUTDOWN_GRACE`].
pub async fn serve_listener(
    listener: TcpListener,
    router: Router,
    limits: ApiSection,
    metrics: ApiMetrics,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let permits = limits.max_connections + 1;
    let fds = Arc::new(Semaphore::new(permits));
    let slots = Slots::new(limits.max_connections, limits.max_connections_per_ip);
    let (stop_tx, stop_rx) = watch::channel(false);
    let mut log = RefusalLog::new();
    tokio::pin!(shutdown);
    loop {
        let flush_at = log.due();
        let permit = tokio::select! {
            p = fds.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(flush_at), if log.pending() => {
                log.flush();
                continue;
            }
        };
        let accepted = tokio::select! {
            r = listener.accept() => r,
            () = &mut shutdown => break,
            () = tokio::time::sleep_until(flush_at), if log.pending() => {
                log.flush();
                continue;
            }
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                log.accept_errors += 1;
                log.last_error = Some(e.to_string());
                log.flush();
                if !is_connection_error(&e) {
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
                continue;
            }
        };
        match slots.admit(peer.ip()) {
            Ok((slot, replaced)) => {
                if replaced {
                    log.replaced += 1;
                    log.flush();
                }
                let conn = Conn {
                    router: router.clone(),
                    limits,
                    metrics: metrics.clone(),
                    slot,
                    _permit: permit,
                };
                tokio::spawn(conn.serve(stream, stop_rx.clone()));
            }
            Err(refusal) => {
                metrics
                    .rejected
                    .with_label_values(&[refusal.as_str()])
                    .inc();
                match refusal {
                    Refusal::GlobalLimit => log.global += 1,
                    Refusal::PerIpLimit => log.per_ip += 1,
                }
                log.flush();
                // Best effort and never waiting: the socket's buffer is empty.
                let _ = stream.try_write(BUSY);
                drop((stream, permit));
            }
        }
    }
    drop(listener);
    let _ = stop_tx.send(true);
    let all = u32::try_from(permits).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(SHUTDOWN_GRACE, fds.acquire_many(all)).await;
}

/// What a connection is doing, for its deadlines.
#[derive(Clone, Copy, Debug)]
enum Phase {
    /// No request in progress and nothing received since `0`.
    Idle(Instant),
    /// A request head started arriving at `0`.
    Head(Instant),
    /// `n` requests in a handler since `since`.
    Busy { since: Instant, n: usize },
}

/// Shared by a connection's reader, its requests and its watchdog.
struct Activity {
    phase: Mutex<Phase>,
    changed: Notify,
}

impl Activity {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Phase> {
        self.phase.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Bytes arrived.
    fn on_read(&self) {
        let mut p = self.lock();
        if let Phase::Idle(_) = *p {
            *p = Phase::Head(Instant::now());
            drop(p);
            self.changed.notify_one();
        }
    }

    /// A request reached its handler; busy until the guard drops.
    fn begin(self: &Arc<Self>) -> BusyGuard {
        let mut p = self.lock();
        *p = match *p {
            Phase::Busy { since, n } => Phase::Busy { since, n: n + 1 },
            _ => Phase::Busy {
                since: Instant::now(),
                n: 1,
            },
        };
        drop(p);
        self.changed.notify_one();
        BusyGuard(self.clone())
    }

    /// The next deadline and the reason to close then.
    fn deadline(&self, l: &ApiSection) -> (Instant, &'static str) {
        match *self.lock() {
            Phase::Idle(t) => (t + l.idle_timeout, "idle_timeout"),
            Phase::Head(t) => (t + l.header_read_timeout, "header_timeout"),
            // The handler's own timeout answers first; this is a backstop.
            Phase::Busy { since, .. } => (
                since + l.request_timeout + Duration::from_secs(1),
                "request_timeout",
            ),
        }
    }
}

struct BusyGuard(Arc<Activity>);

impl Drop for BusyGuard {
    fn drop(&mut self) {
        let mut p = self.0.lock();
        *p = match *p {
            Phase::Busy { since, n } if n > 1 => Phase::Busy { since, n: n - 1 },
            _ => Phase::Idle(Instant::now()),
        };
        drop(p);
        self.0.changed.notify_one();
    }
}

/// The socket, reporting every read to the connection's [`Activity`].
struct Watched {
    inner: TcpStream,
    activity: Arc<Activity>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.activity.on_read();
        }
        r
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// One admitted connection.
struct Conn {
    router: Router,
    limits: ApiSection,
    metrics: ApiMetrics,
    slot: Slot,
    /// Its descriptor's permit, released when the connection is dropped.
    _permit: OwnedSemaphorePermit,
}

impl Conn {
    async fn serve(self, stream: TcpStream, mut stop: watch::Receiver<bool>) {
        self.metrics.connections.inc();
        let _ = stream.set_nodelay(true);
        let activity = Activity::new();
        let io = TokioIo::new(Watched {
            inner: stream,
            activity: activity.clone(),
        });
        let (router, limits, metrics) = (self.router.clone(), self.limits, self.metrics.clone());
        let auth = self.slot.auth.clone();
        let requests = activity.clone();
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let busy = (requests.begin(), auth.request());
            req.extensions_mut().insert(auth.clone());
            let mut router = router.clone();
            let metrics = metrics.clone();
            async move {
                let call = tower_service::Service::call(&mut router, req.map(Body::new));
                let resp = match tokio::time::timeout(limits.request_timeout, call).await {
                    Ok(Ok(resp)) => resp,
                    Ok(Err(never)) => match never {},
                    Err(_) => {
                        metrics.closed.with_label_values(&["request_timeout"]).inc();
                        timed_out()
                    }
                };
                drop(busy);
                Ok::<_, Infallible>(resp)
            }
        });
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            // A backstop: the watchdog below closes first.
            .header_read_timeout(
                limits.idle_timeout + limits.header_read_timeout + Duration::from_secs(1),
            )
            .max_buf_size(MAX_READ_BUFFER);
        let conn = builder.serve_connection(io, service);
        tokio::pin!(conn);
        let mut stopping = false;
        let closed_because = loop {
            let changed = activity.changed.notified();
            let (deadline, why) = activity.deadline(&self.limits);
            tokio::select! {
                r = conn.as_mut() => {
                    break match r {
                        Err(e) if e.is_timeout() => Some("header_timeout"),
                        _ => None,
                    };
                }
                () = changed => {}
                () = tokio::time::sleep_until(deadline) => {
                    if activity.deadline(&self.limits).0 <= Instant::now() {
                        break Some(why);
                    }
                }
                () = self.slot.kill.notified() => break Some("replaced"),
                _ = stop.changed(), if !stopping => {
                    stopping = true;
                    conn.as_mut().graceful_shutdown();
                }
            }
        };
        if let Some(why) = closed_because {
            // A request timeout is counted where it was answered.
            if why != "request_timeout" {
                self.metrics.closed.with_label_values(&[why]).inc();
            }
            tracing::debug!(reason = why, "control API connection closed");
        }
        self.metrics.connections.dec();
    }
}

fn timed_out() -> Response<Body> {
    let mut resp = super::error(
        StatusCode::SERVICE_UNAVAILABLE,
        "the request took longer than the control API's request_timeout_secs",
    );
    resp.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    resp
}

#[cfg(test)]
mod tests;
