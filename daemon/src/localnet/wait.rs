//! Waiting on a [`LocalNet`]: who is connected to whom ([`MeshReport`]), full mesh,
//! minimum peer counts and DA convergence.

use std::collections::HashSet;
use std::fmt;
use std::time::{Duration, Instant};

use super::net::{POLL_INTERVAL, POLL_REQUEST_TIMEOUT};
use super::{LocalNet, LocalNetError, NodeMode};
use crate::api::DaStateView;
use crate::client::ClientError;

impl LocalNet {
    /// Who is connected to whom, from every node's `GET /v1/peers`.
    pub async fn mesh_report(&self) -> MeshReport {
        let mut nodes = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
            let entry = match client.peers().await {
                Ok(peers) => {
                    let connected: HashSet<&str> = peers
                        .iter()
                        .filter(|p| p.connected)
                        .map(|p| p.peer_id.as_str())
                        .collect();
                    let missing = self
                        .nodes
                        .iter()
                        .filter(|o| o.name() != node.name() && !connected.contains(o.peer_id()))
                        .map(|o| o.name().to_owned())
                        .collect();
                    NodeMesh {
                        name: node.name().to_owned(),
                        connected: Some(connected.len()),
                        missing,
                        error: None,
                    }
                }
                Err(e) => NodeMesh {
                    name: node.name().to_owned(),
                    connected: None,
                    missing: Vec::new(),
                    error: Some(e.to_string()),
                },
            };
            nodes.push(entry);
        }
        MeshReport { nodes }
    }

    /// Waits until the net is fully connected: **every node's `GET /v1/peers` lists every
    /// other node of the net, by peer id, with `connected: true`** (see
    /// [`MeshReport::complete`]). Returns the final report.
    ///
    /// # Errors
    /// [`LocalNetError::Timeout`] with the last report (who misses whom); a node whose
    /// process exited is reported at once as [`LocalNetError::Node`] with its log tail.
    pub async fn wait_all_connected(&self, timeout: Duration) -> Result<MeshReport, LocalNetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let report = self.mesh_report().await;
            if report.complete() {
                return Ok(report);
            }
            if Instant::now() >= deadline {
                return Err(LocalNetError::Timeout {
                    what: format!("a fully connected net; last: {report}"),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Waits until every node reports at least `min_peers` connected peers in
    /// `GET /v1/status` (a weaker condition than [`LocalNet::wait_all_connected`], for nets
    /// larger than the outbound connection limit).
    ///
    /// # Errors
    /// As [`LocalNet::wait_all_connected`].
    pub async fn wait_min_peers(
        &self,
        min_peers: usize,
        timeout: Duration,
    ) -> Result<(), LocalNetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let mut short = Vec::new();
            for node in &self.nodes {
                let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
                match client.status().await {
                    Ok(s) if s.connected_peers >= min_peers => {}
                    Ok(s) => short.push(format!("{}={}", node.name(), s.connected_peers)),
                    Err(e) => short.push(format!("{}: {e}", node.name())),
                }
            }
            if short.is_empty() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(LocalNetError::Timeout {
                    what: format!(
                        "every node to have {min_peers} peers; short: {}",
                        short.join(", ")
                    ),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Every node's `GET /v1/da/state`, in node order.
    pub async fn da_states(&self) -> Vec<(String, Result<DaStateView, ClientError>)> {
        let mut out = Vec::with_capacity(self.nodes.len());
        for node in &self.nodes {
            let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
            out.push((node.name().to_owned(), client.da_state().await));
        }
        out
    }

    /// Waits until every node that carries DA events (storage and coordinator nodes; a
    /// dedicated bootstrap node never subscribes to the DA topic) has applied `events` DA
    /// events and all report the same state root; returns that root.
    ///
    /// # Errors
    /// [`LocalNetError::Timeout`] listing each node's event count and root prefix; a dead
    /// node as in [`LocalNet::wait_all_connected`].
    pub async fn wait_da_converged(
        &self,
        events: u64,
        timeout: Duration,
    ) -> Result<String, LocalNetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let states: Vec<_> = self
                .da_states()
                .await
                .into_iter()
                .zip(&self.nodes)
                .filter(|(_, node)| node.mode() != NodeMode::Bootstrap)
                .map(|(state, _)| state)
                .collect();
            let roots: HashSet<[u8; 32]> = states
                .iter()
                .filter_map(|(_, s)| s.as_ref().ok())
                .filter(|s| s.events == events)
                .map(|s| s.state_root)
                .collect();
            let all_there = states
                .iter()
                .all(|(_, s)| s.as_ref().is_ok_and(|s| s.events == events));
            if all_there && roots.len() == 1 {
                if let Some(root) = roots.into_iter().next() {
                    return Ok(hex::encode(root));
                }
            }
            if Instant::now() >= deadline {
                let seen: Vec<String> = states
                    .iter()
                    .map(|(name, s)| match s {
                        Ok(s) => format!(
                            "{name}: {} events root {}",
                            s.events,
                            hex::encode(&s.state_root[..6])
                        ),
                        Err(e) => format!("{name}: {e}"),
                    })
                    .collect();
                return Err(LocalNetError::Timeout {
                    what: format!(
                        "every node to apply {events} DA events with one state root; last: {}",
                        seen.join("; ")
                    ),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

/// Connectivity of a [`LocalNet`], from every node's `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MeshReport {
    /// One entry per node, in node order.
    pub nodes: Vec<NodeMesh>,
}

/// One node's view in a [`MeshReport`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeMesh {
    /// The node's name.
    pub name: String,
    /// Peers it reports as connected (any peer, not only nodes of the net); `None` when its
    /// API did not answer.
    pub connected: Option<usize>,
    /// Names of the other nodes of the net it is not connected to.
    pub missing: Vec<String>,
    /// The API error, when it did not answer.
    pub error: Option<String>,
}

impl MeshReport {
    /// True when every node answered and misses no other node.
    pub fn complete(&self) -> bool {
        self.nodes
            .iter()
            .all(|n| n.connected.is_some() && n.missing.is_empty())
    }
}

impl fmt::Display for MeshReport {
    /// `bootstrap=5 coordinator=4(missing storage-3) storage-1=? (error)` on one line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .nodes
            .iter()
            .map(|n| match (&n.connected, &n.error) {
                (Some(c), _) if n.missing.is_empty() => format!("{}={c}", n.name),
                (Some(c), _) => format!("{}={c}(missing {})", n.name, n.missing.join(",")),
                (None, Some(e)) => format!("{}=?({e})", n.name),
                (None, None) => format!("{}=?", n.name),
            })
            .collect();
        f.write_str(&parts.join(" "))
    }
}
