//! The dashboard's pollers, two tasks per watched node, writing what its control API (asked
//! with its token) answers to the [`Board`]:
//!
//! - the round poller, every [`TICK`] (250 ms): the DA state and the recent receipts;
//!   every second the status and the peers, every two seconds the committee status
//!   (coordinators only). While something spreads (a new height or receipt appeared on
//!   any node in the last [`ACTIVE_WINDOW`]) it asks for the receipts every [`FAST_TICK`]
//!   (50 ms), so their propagation is timed to that. A failed request marks the node down.
//! - the height watcher: `GET /v1/da/state?wait_height=H+1`, answered as soon as the node
//!   applies the next blob (or after [`WAIT`]), so a new height is timed to the request's
//!   latency.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use dsdn_daemon::client::{ApiClient, ClientError};
use tokio::task::JoinHandle;

use super::model::{Board, SeenReceipt};

/// Poll interval of the DA state and the receipts.
pub(crate) const TICK: Duration = Duration::from_millis(250);
/// Poll interval of the receipts while something spreads.
pub(crate) const FAST_TICK: Duration = Duration::from_millis(50);
/// How long after the last new height or receipt the receipts are polled fast.
pub(crate) const ACTIVE_WINDOW: Duration = Duration::from_secs(3);
/// Fast ticks per [`TICK`].
const PER_TICK: u64 = 5;
/// Status and peers every this many fast ticks (1 s).
const SLOW_EVERY: u64 = 20;
/// Committee status every this many fast ticks (2 s).
const COMMITTEE_EVERY: u64 = 40;
/// Receipts asked for at each poll (the newest).
const RECEIPTS_PER_POLL: usize = 8;
/// Timeout of one request.
pub(crate) const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one height wait lasts (below [`REQUEST_TIMEOUT`]).
const WAIT: Duration = Duration::from_millis(1500);

/// A node to watch.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// Its name on the page.
    pub name: String,
    /// A client for its control API, with its token.
    pub client: ApiClient,
    /// Its mode, when known before its status answers.
    pub mode: Option<String>,
}

/// The board, shared by the pollers and the server.
pub(crate) type Shared = Arc<Mutex<Board>>;

/// Locks the board (a poisoned lock is taken over: the board stays consistent between
/// method calls).
pub(crate) fn lock(board: &Shared) -> MutexGuard<'_, Board> {
    board.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Adds `targets` to the board and starts their pollers; `start` is the board's zero.
pub(crate) fn spawn(board: &Shared, targets: Vec<Target>, start: Instant) -> Vec<JoinHandle<()>> {
    let mut tasks = Vec::with_capacity(2 * targets.len());
    for t in targets {
        let index = lock(board).add_node(&t.name, &t.client.addr().to_string(), t.mode.as_deref());
        let (b, client) = (board.clone(), t.client.clone());
        tasks.push(tokio::spawn(async move {
            watch_height(b, index, client, start).await
        }));
        let b = board.clone();
        tasks.push(tokio::spawn(
            async move { run(b, index, t.client, start).await },
        ));
    }
    tasks
}

/// Waits for each next DA height of one node until the task is aborted. Errors are left to
/// the other poller (which marks the node down); this one retries after a tick.
async fn watch_height(board: Shared, node: usize, client: ApiClient, start: Instant) {
    let mut next = 1;
    loop {
        match client.da_wait_height(next, WAIT).await {
            Ok(st) => {
                lock(&board).observe_da(node, ms_since(start), &st);
                next = st.height.saturating_add(1).max(1);
            }
            Err(_) => tokio::time::sleep(TICK).await,
        }
    }
}

fn ms_since(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// What one round of the round poller asks for.
#[derive(Clone, Copy, Debug, Default)]
struct Round {
    da: bool,
    receipts: bool,
    slow: bool,
    committee: bool,
}

impl Round {
    /// Round `tick` (counted in [`FAST_TICK`]s); everything after a failure (the node may
    /// have restarted), the receipts at every tick while `active`.
    fn at(tick: u64, was_down: bool, active: bool) -> Self {
        let every = |n: u64| was_down || tick.is_multiple_of(n);
        Round {
            da: every(PER_TICK),
            receipts: active || every(PER_TICK),
            slow: every(SLOW_EVERY),
            committee: every(COMMITTEE_EVERY),
        }
    }
}

/// Polls one node until the task is aborted.
async fn run(board: Shared, node: usize, client: ApiClient, start: Instant) {
    let mut interval = tokio::time::interval(FAST_TICK);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut tick: u64 = 0;
    let mut was_down = true;
    loop {
        interval.tick().await;
        let active = lock(&board).active(ms_since(start), ACTIVE_WINDOW.as_millis() as u64);
        let round = Round::at(tick, was_down, active);
        tick = tick.wrapping_add(1);
        if !(round.da || round.receipts) {
            continue;
        }
        let result = poll_round(&board, node, &client, start, round).await;
        if let Err(e) = &result {
            lock(&board).observe_error(node, &error_text(e));
        }
        was_down = result.is_err();
    }
}

/// What the page shows for a failed poll. A refused token gets the dashboard's own advice
/// (the client's usual text names `--data-dir`/`--cookie`, which `dashboard` has no use for).
fn error_text(e: &ClientError) -> String {
    match e {
        ClientError::Unauthorized { addr, sent_token } => format!(
            "the control API at {addr} refused the {}: give the node as \
             --node NAME={addr},PATH with PATH its data directory or its .cookie file \
             (rewritten at every start of the node)",
            if *sent_token {
                "token"
            } else {
                "request without a token"
            }
        ),
        other => other.to_string(),
    }
}

/// One round; an error marks the node down.
async fn poll_round(
    board: &Shared,
    node: usize,
    client: &ApiClient,
    start: Instant,
    round: Round,
) -> Result<(), ClientError> {
    if round.da {
        let da = client.da_state().await?;
        lock(board).observe_da(node, ms_since(start), &da);
    }
    let mode = lock(board).mode(node);
    // Dedicated bootstrap nodes carry no DA log and no receipts.
    if round.receipts && mode.as_deref() != Some("bootstrap") {
        let list = client.receipts(RECEIPTS_PER_POLL).await?;
        let seen: Vec<SeenReceipt> = list
            .into_iter()
            .map(|r| SeenReceipt {
                id: r.receipt_id,
                executor: r.node,
                executed_at_ms: r.executed_at_ms,
            })
            .collect();
        lock(board).observe_receipts(node, ms_since(start), &seen);
    }
    if round.slow {
        let status = client.status().await?;
        let peers = client.peers().await?;
        let mut b = lock(board);
        b.observe_status(node, &status);
        b.observe_peers(node, &peers);
    }
    if round.committee && mode.as_deref() == Some("coordinator") {
        match client.committee_status().await {
            Ok(st) => lock(board).observe_committee(node, Some(st)),
            Err(ClientError::Api { status: 404, .. }) => lock(board).observe_committee(node, None),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod error_tests {
    use super::*;

    #[test]
    fn a_refused_token_names_the_dashboards_own_flag() {
        let addr: std::net::SocketAddr = "127.0.0.1:8645".parse().unwrap();
        let text = error_text(&ClientError::Unauthorized {
            addr,
            sent_token: true,
        });
        assert!(text.contains("--node NAME=127.0.0.1:8645,PATH"), "{text}");
        assert!(!text.contains("--data-dir"), "{text}");
        let other = ClientError::Api {
            status: 500,
            message: "boom".into(),
        };
        assert_eq!(error_text(&other), other.to_string());
    }
}
