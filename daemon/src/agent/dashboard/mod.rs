//! The live dashboard (issue 15 §8): `dsdn-agent devnet --dashboard IP:PORT` and
//! `dsdn-agent dashboard --node …` serve one self-contained page (inline CSS, JS and SVG,
//! nothing fetched from elsewhere) showing the topology (nodes coloured by role, edges
//! direct or relayed), each node's DA height and state root over time, how the latest
//! blobs and receipts spread across the nodes, and the committee.
//!
//! Pollers ([`poll`]) ask every node's control API, with its token, and keep a bounded
//! [`model::Board`]; the server answers `GET /` (the page, with the current data embedded so
//! it renders at once, then refreshing itself every second), `GET /api/snapshot` and
//! `GET /api/timeline` (JSON). `--record FILE` writes the timeline to FILE every
//! [`RECORD_EVERY`] and at the end (a temporary file renamed over it, so a reader never
//! sees half a file).
//!
//! The server has no authentication (the page shows what `peers list` and `status` show):
//! keep it on loopback or a private interface. It holds at most [`MAX_CONNECTIONS`]
//! connections, with the control API's timeouts.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::extract::State;
use axum::http::header;
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use dsdn_daemon::server::listen::serve_listener;
use dsdn_daemon::server::{ApiMetrics, ApiSection};
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub(crate) mod model;
mod poll;
mod standalone;
mod views;

pub(crate) use poll::{Target, REQUEST_TIMEOUT};
pub(crate) use standalone::{run as run_standalone, DashboardArgs};

use model::Board;
use poll::{lock, Shared};

/// The page; `/*INITIAL*/` is replaced by the current snapshot and timeline.
const PAGE: &str = include_str!("page.html");

/// How often `--record` rewrites its file.
pub(crate) const RECORD_EVERY: Duration = Duration::from_secs(5);

/// Connections the server holds at most (beyond, the oldest idle one is replaced).
pub(crate) const MAX_CONNECTIONS: usize = 32;

/// A running dashboard: pollers, and the server and the recorder when asked for.
pub(crate) struct Dashboard {
    board: Shared,
    start: Instant,
    pollers: Vec<JoinHandle<()>>,
    server: Option<(SocketAddr, watch::Sender<bool>, JoinHandle<()>)>,
    record: Option<(PathBuf, JoinHandle<()>)>,
}

/// Sets the phase line of a running dashboard from elsewhere (the devnet's phases).
#[derive(Clone)]
pub(crate) struct PhaseLine(Shared);

impl PhaseLine {
    /// Shows `phase` in the page's header.
    pub(crate) fn set(&self, phase: &str) {
        lock(&self.0).set_phase(phase);
    }
}

impl Dashboard {
    /// Starts a dashboard whose times count from `start`: binds `listen` (if given) and
    /// serves the page, and writes an empty timeline to `record` (if given) at once, then
    /// every [`RECORD_EVERY`]. No node is watched until [`Dashboard::watch`].
    ///
    /// # Errors
    /// `listen` cannot be bound, or `record` cannot be written.
    pub(crate) async fn start(
        title: &str,
        start: Instant,
        listen: Option<SocketAddr>,
        record: Option<PathBuf>,
    ) -> anyhow::Result<Self> {
        let elapsed = u64::try_from(start.elapsed().as_millis()).unwrap_or(0);
        let started_unix_ms = unix_ms().saturating_sub(elapsed);
        let board: Shared =
            std::sync::Arc::new(std::sync::Mutex::new(Board::new(title, started_unix_ms)));
        // Bind first, write the record once, then start the tasks: an error leaves nothing
        // running.
        let listener = match listen {
            Some(addr) => Some(bind(addr).await?),
            None => None,
        };
        if let Some(path) = &record {
            write_record(&board, start, path).await?;
        }
        let record = record.map(|path| {
            let (b, p) = (board.clone(), path.clone());
            let task = tokio::spawn(async move {
                let mut warned = false;
                loop {
                    tokio::time::sleep(RECORD_EVERY).await;
                    if let Err(e) = write_record(&b, start, &p).await {
                        if !warned {
                            eprintln!("warning: {e:#}");
                            warned = true;
                        }
                    }
                }
            });
            (path, task)
        });
        let server = match listener {
            Some((listener, local)) => Some(serve(listener, local, board.clone(), start)?),
            None => None,
        };
        Ok(Self {
            board,
            start,
            pollers: Vec::new(),
            server,
            record,
        })
    }

    /// The address the page is served on (the bound one: port 0 is replaced).
    pub(crate) fn local_addr(&self) -> Option<SocketAddr> {
        self.server.as_ref().map(|(addr, _, _)| *addr)
    }

    /// The `--record` file.
    pub(crate) fn record_path(&self) -> Option<&Path> {
        self.record.as_ref().map(|(p, _)| p.as_path())
    }

    /// A handle to set the page's phase line.
    pub(crate) fn phase_line(&self) -> PhaseLine {
        PhaseLine(self.board.clone())
    }

    /// Starts watching `targets` (added to those watched already).
    pub(crate) fn watch(&mut self, targets: Vec<Target>) {
        self.pollers
            .extend(poll::spawn(&self.board, targets, self.start));
    }

    /// Stops the pollers (the page keeps showing the last data).
    pub(crate) fn stop_polling(&mut self) {
        for p in self.pollers.drain(..) {
            p.abort();
        }
    }

    /// Stops everything; writes the record a last time.
    ///
    /// # Errors
    /// The record cannot be written.
    pub(crate) async fn finish(mut self) -> anyhow::Result<()> {
        self.stop_polling();
        let result = match self.record.take() {
            Some((path, task)) => {
                task.abort();
                write_record(&self.board, self.start, &path).await
            }
            None => Ok(()),
        };
        if let Some((_, stop, task)) = self.server.take() {
            let _ = stop.send(true);
            task.abort();
        }
        result
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        self.stop_polling();
        if let Some((_, task)) = self.record.take() {
            task.abort();
        }
        if let Some((_, _, task)) = self.server.take() {
            task.abort();
        }
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

fn now_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// Writes the timeline to `path` through `path.tmp` and a rename.
async fn write_record(board: &Shared, start: Instant, path: &Path) -> anyhow::Result<()> {
    let timeline = lock(board).timeline(now_ms(start));
    let json = serde_json::to_vec_pretty(&timeline).context("cannot encode the timeline")?;
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    tokio::fs::write(&tmp, json)
        .await
        .with_context(|| format!("cannot write the record {}", tmp.display()))?;
    tokio::fs::rename(&tmp, path)
        .await
        .with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
}

#[derive(Clone)]
struct AppState {
    board: Shared,
    start: Instant,
}

/// Binds `addr`; returns the listener and the bound address.
async fn bind(addr: SocketAddr) -> anyhow::Result<(tokio::net::TcpListener, SocketAddr)> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot serve the dashboard on {addr}"))?;
    let local = listener
        .local_addr()
        .with_context(|| format!("cannot serve the dashboard on {addr}"))?;
    Ok((listener, local))
}

/// Serves the page on `listener` until the returned sender says stop.
fn serve(
    listener: tokio::net::TcpListener,
    local: SocketAddr,
    board: Shared,
    start: Instant,
) -> anyhow::Result<(SocketAddr, watch::Sender<bool>, JoinHandle<()>)> {
    let metrics = ApiMetrics::register_as(&prometheus::Registry::new(), "dashboard", "Dashboard")
        .context("dashboard metrics")?;
    let limits = ApiSection {
        max_connections: MAX_CONNECTIONS,
        max_connections_per_ip: MAX_CONNECTIONS / 2,
        header_read_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(30),
    };
    let (stop_tx, mut stop_rx) = watch::channel(false);
    let shutdown = async move {
        let _ = stop_rx.wait_for(|v| *v).await;
    };
    let task = tokio::spawn(serve_listener(
        listener,
        router(board, start),
        limits,
        metrics,
        shutdown,
    ));
    Ok((local, stop_tx, task))
}

fn router(board: Shared, start: Instant) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/api/snapshot", get(snapshot))
        .route("/api/timeline", get(timeline))
        .with_state(AppState { board, start })
}

/// JSON, never cached.
fn json<T: serde::Serialize>(value: T) -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Json(value)).into_response()
}

async fn snapshot(State(s): State<AppState>) -> Response {
    let snap = lock(&s.board).snapshot(now_ms(s.start));
    json(snap)
}

async fn timeline(State(s): State<AppState>) -> Response {
    let t = lock(&s.board).timeline(now_ms(s.start));
    json(t)
}

async fn page(State(s): State<AppState>) -> Response {
    let (snap, t) = {
        let b = lock(&s.board);
        let now = now_ms(s.start);
        (b.snapshot(now), b.timeline(now))
    };
    let initial = serde_json::json!({ "snapshot": snap, "timeline": t });
    let html = PAGE.replace("/*INITIAL*/", &embed(&initial));
    ([(header::CACHE_CONTROL, "no-store")], Html(html)).into_response()
}

/// `value` as JSON that is safe inside a `<script>` element: every `<` (only possible in
/// strings) escaped as `\u003c`, so no `</script>` can end it.
fn embed(value: &serde_json::Value) -> String {
    serde_json::to_string(value)
        .unwrap_or_else(|_| "null".to_owned())
        .replace('<', "\\u003c")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_json_cannot_close_the_script() {
        let v = serde_json::json!({"name": "</script><b>x"});
        let s = embed(&v);
        assert!(!s.contains('<'), "{s}");
        let back: serde_json::Value = serde_json::from_str(&s).expect("json");
        assert_eq!(back, v);
        assert_eq!(PAGE.matches("/*INITIAL*/").count(), 1);
        assert!(
            !PAGE.contains("http://") && !PAGE.contains("https://"),
            "no external assets"
        );
    }

    #[tokio::test]
    async fn serves_the_page_and_json_and_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = dir.path().join("timeline.json");
        let start = Instant::now();
        let addr: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let d = Dashboard::start("test", start, Some(addr), Some(record.clone()))
            .await
            .expect("start");
        lock(&d.board).add_node("n<1>", "127.0.0.1:9", Some("storage"));
        d.phase_line().set("phase 1/6: Start");
        let base = format!("http://{}", d.local_addr().expect("bound"));
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        let page = http.get(format!("{base}/")).send().await.expect("page");
        assert_eq!(page.status(), 200);
        let body = page.text().await.expect("body");
        assert!(body.contains("\"name\":\"n\\u003c1>\""), "{body}");
        let snap: serde_json::Value = http
            .get(format!("{base}/api/snapshot"))
            .send()
            .await
            .expect("snapshot")
            .json()
            .await
            .expect("json");
        assert_eq!(snap["nodes"][0]["name"], "n<1>");
        assert_eq!(snap["phase"], "phase 1/6: Start");
        let t = http
            .get(format!("{base}/api/timeline"))
            .send()
            .await
            .expect("timeline");
        assert_eq!(t.status(), 200);
        let missing = http.get(format!("{base}/nope")).send().await.expect("404");
        assert_eq!(missing.status(), 404);
        // Written at start (before the node was added), then at the end.
        d.finish().await.expect("finish");
        let written: serde_json::Value =
            serde_json::from_slice(&std::fs::read(&record).expect("record")).expect("json");
        assert_eq!(written["nodes"][0], "n<1>");
        assert!(!dir.path().join("timeline.json.tmp").exists());
    }

    #[tokio::test]
    async fn a_taken_address_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = Dashboard::start("t", Instant::now(), Some(addr), None)
            .await
            .err()
            .expect("bind must fail");
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with(&format!("cannot serve the dashboard on {addr}: ")),
            "{msg}"
        );
        let err = Dashboard::start(
            "t",
            Instant::now(),
            None,
            Some("/nonexistent/dir/x.json".into()),
        )
        .await
        .err()
        .expect("record must fail");
        assert!(
            format!("{err:#}").contains("cannot write the record"),
            "{err:#}"
        );
    }
}
