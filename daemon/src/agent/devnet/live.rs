//! Phase 6 of `dsdn-agent devnet`: the live table of every node (peers, DA events, state
//! root) with the committee underneath, until a stop signal or `--duration`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dsdn_daemon::localnet::{LocalNet, NodeMode};
use tokio::sync::watch;

use super::super::table::{render_table, short_hex, short_id};
use super::committee::CommitteeView;
use super::{pause, print_out, Outcome};

/// Table refresh on a terminal.
const TTY_REFRESH: Duration = Duration::from_secs(1);

/// Table print interval when stdout is not a terminal.
const PLAIN_REFRESH: Duration = Duration::from_secs(5);

/// Timeout of one API request of the live table.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// One line of the live table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct NodeRow {
    pub(super) name: String,
    pub(super) mode: NodeMode,
    pub(super) ip: String,
    pub(super) peer_id: String,
    /// The process has exited.
    pub(super) exited: bool,
    /// Connected peers, when the API answered.
    pub(super) peers: Option<usize>,
    /// DA events applied and state root, when the API answered.
    pub(super) da: Option<(u64, String)>,
}

async fn collect_rows(net: &LocalNet) -> Vec<NodeRow> {
    let mut rows = Vec::with_capacity(net.nodes().len());
    for node in net.nodes() {
        let exited = !node.is_running();
        let (peers, da) = if exited {
            (None, None)
        } else {
            let client = node.client_with_timeout(REQUEST_TIMEOUT);
            let peers = client.status().await.ok().map(|s| s.connected_peers);
            let da = if carries_da(node.mode()) {
                client
                    .da_state()
                    .await
                    .ok()
                    .map(|s| (s.events, hex::encode(s.state_root)))
            } else {
                None
            };
            (peers, da)
        };
        rows.push(NodeRow {
            name: node.name().to_owned(),
            mode: node.mode(),
            ip: node.ip().to_string(),
            peer_id: node.peer_id().to_owned(),
            exited,
            peers,
            da,
        });
    }
    rows
}

/// Whether nodes of this mode carry DA events (dedicated bootstrap nodes do not: they
/// never subscribe to the DA topic and always report an empty DA state).
fn carries_da(mode: NodeMode) -> bool {
    mode != NodeMode::Bootstrap
}

/// The rows of nodes that carry DA events.
fn da_rows(rows: &[NodeRow]) -> impl Iterator<Item = &NodeRow> {
    rows.iter().filter(|r| carries_da(r.mode))
}

/// The root every DA-carrying node should hold: the coordinator's (the DA authority), else
/// the most common one.
pub(super) fn reference_root(rows: &[NodeRow]) -> Option<&str> {
    let coordinator = rows
        .iter()
        .find(|r| r.mode == NodeMode::Coordinator)
        .and_then(|r| r.da.as_ref())
        .map(|(_, root)| root.as_str());
    coordinator.or_else(|| {
        let roots: Vec<&str> = rows
            .iter()
            .filter_map(|r| r.da.as_ref().map(|(_, root)| root.as_str()))
            .collect();
        roots
            .iter()
            .max_by_key(|root| roots.iter().filter(|r| r == root).count())
            .copied()
    })
}

/// True when every DA-carrying node answered with `expected` events and the reference root.
pub(super) fn converged(rows: &[NodeRow], expected: u64) -> bool {
    let reference = reference_root(rows);
    reference.is_some()
        && da_rows(rows).all(|r| {
            r.da.as_ref().is_some_and(|(events, root)| {
                *events == expected && Some(root.as_str()) == reference
            })
        })
}

/// `DA converged: 5/5 nodes agree on root a1b2c3d4e5f6, 5/5 hold all 20 events` and the
/// like (over DA-carrying nodes only).
pub(super) fn summary_line(rows: &[NodeRow], expected: u64) -> String {
    let Some(reference) = reference_root(rows) else {
        return "DA: no node answered".to_owned();
    };
    let agree = da_rows(rows)
        .filter(|r| r.da.as_ref().is_some_and(|(_, root)| root == reference))
        .count();
    let complete = da_rows(rows)
        .filter(|r| r.da.as_ref().is_some_and(|(events, _)| *events == expected))
        .count();
    let total = da_rows(rows).count();
    let verdict = if converged(rows, expected) {
        "converged"
    } else {
        "not converged"
    };
    format!(
        "DA {verdict}: {agree}/{total} nodes agree on root {}, {complete}/{total} hold all {expected} events",
        short_hex(reference),
    )
}

pub(super) fn render_devnet(rows: &[NodeRow], expected: u64) -> String {
    let reference = reference_root(rows);
    let table_rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| {
            let peers = match (r.exited, r.peers) {
                (true, _) => "exited".to_owned(),
                (false, Some(p)) => p.to_string(),
                (false, None) => "down".to_owned(),
            };
            let (events, root, agree) = match &r.da {
                Some((events, root)) => (
                    events.to_string(),
                    short_hex(root),
                    if Some(root.as_str()) == reference {
                        "yes"
                    } else {
                        "no"
                    },
                ),
                None if !carries_da(r.mode) => ("n/a".to_owned(), "n/a".to_owned(), "-"),
                None => ("-".to_owned(), "-".to_owned(), "?"),
            };
            vec![
                r.name.clone(),
                r.mode.to_string(),
                r.ip.clone(),
                short_id(&r.peer_id),
                peers,
                events,
                root,
                agree.to_owned(),
            ]
        })
        .collect();
    let mut out = render_table(
        &[
            "NODE",
            "MODE",
            "IP",
            "PEER ID",
            "PEERS",
            "DA EVENTS",
            "STATE ROOT",
            "AGREE",
        ],
        &table_rows,
    );
    out.push_str(&summary_line(rows, expected));
    out.push('\n');
    out
}

/// The live table: redrawn every second on a terminal, printed every few seconds
/// otherwise, until a stop signal or `duration` seconds.
pub(super) async fn watch_table(
    net: &LocalNet,
    stop: &mut watch::Receiver<bool>,
    duration: Option<u64>,
    expected: u64,
    committee: Option<&CommitteeView>,
    header: &str,
) -> anyhow::Result<Outcome> {
    let tty = std::io::stdout().is_terminal();
    let refresh = if tty { TTY_REFRESH } else { PLAIN_REFRESH };
    let started = Instant::now();
    let deadline = duration.map(|d| started + Duration::from_secs(d));
    let dir: PathBuf = net.dir().to_path_buf();
    loop {
        let rows = collect_rows(net).await;
        let mut table = render_devnet(&rows, expected);
        if let Some(c) = committee {
            table.push_str(&c.summary());
            table.push('\n');
        }
        let elapsed = started.elapsed().as_secs();
        if tty {
            let until = match duration {
                Some(d) => format!("stops after {d} s"),
                None => "Ctrl-C to stop".to_owned(),
            };
            print_out(&format!(
                "\x1b[2J\x1b[Hdsdn devnet: network {}, port {}, seed {} via {}, dir {}{header}\n\n{table}\nt+{elapsed}s, {until}\n",
                net.config().seeds.network.name,
                net.port(),
                net.seed_name(),
                net.seed_server().local_addr(),
                dir.display(),
            ))?;
        } else {
            print_out(&format!("[devnet] t+{elapsed}s\n{table}"))?;
        }
        let now = Instant::now();
        if let Some(deadline) = deadline {
            if now >= deadline {
                return Ok(Outcome::Elapsed {
                    converged: converged(&rows, expected),
                    summary: summary_line(&rows, expected),
                });
            }
        }
        let wait = deadline.map_or(refresh, |d| refresh.min(d - now));
        if !pause(wait, stop).await {
            return Ok(Outcome::Interrupted);
        }
    }
}
