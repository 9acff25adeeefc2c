//! Shared helpers for the multi-process tests and the bootstrap benchmark: small waits over
//! the control API of real `dsdnd` processes started with `dsdn_daemon::localnet`.
#![deny(missing_docs)]

use std::future::Future;
use std::time::{Duration, Instant};

use dsdn_daemon::client::metric_value;
use dsdn_daemon::localnet::Node;

/// Polls `check` every 200 ms until it returns `Some`, or fails after `timeout` with `what`.
///
/// # Errors
/// When `timeout` passes first.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> anyhow::Result<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = check().await {
            return Ok(v);
        }
        if start.elapsed() > timeout {
            anyhow::bail!("timed out after {timeout:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The value of metric `name` (with `labels`) on `node`, 0 when absent.
pub async fn metric(node: &Node, name: &str, labels: &[(&str, &str)]) -> f64 {
    match node.client().metrics_text().await {
        Ok(text) => metric_value(&text, name, labels).unwrap_or(0.0),
        Err(_) => 0.0,
    }
}

/// Peer ids `node` lists as connected.
pub async fn connected_ids(node: &Node) -> Vec<String> {
    node.client()
        .peers()
        .await
        .map(|peers| {
            peers
                .into_iter()
                .filter(|p| p.connected)
                .map(|p| p.peer_id)
                .collect()
        })
        .unwrap_or_default()
}

/// True when every node lists every other node as connected.
pub async fn full_mesh(nodes: &[&Node]) -> bool {
    for n in nodes {
        let ids = connected_ids(n).await;
        if nodes
            .iter()
            .any(|o| o.peer_id() != n.peer_id() && !ids.iter().any(|id| id == o.peer_id()))
        {
            return false;
        }
    }
    true
}

/// The logs of `nodes`, for failure messages.
pub fn logs(nodes: &[&Node]) -> String {
    nodes
        .iter()
        .map(|n| format!("--- {} ---\n{}", n.name(), n.log_tail(40)))
        .collect::<Vec<_>>()
        .join("\n")
}
