//! The JSON the dashboard serves (`GET /api/snapshot`, `GET /api/timeline`) and `--record`
//! writes: what [`super::model::Board`] shows of its state.

use std::collections::BTreeMap;

use serde::Serialize;

/// What the page shows of one watched node.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct NodeView {
    /// The node's name (devnet name, or as given with `--node`).
    pub name: String,
    /// Its control API address.
    pub api: String,
    /// `bootstrap`, `coordinator`, `storage`, … from its status (or the devnet's spec).
    pub mode: Option<String>,
    /// Advertised service types.
    pub services: Vec<String>,
    /// Its PeerId, once its status answered.
    pub peer_id: Option<String>,
    /// The last poll succeeded.
    pub up: bool,
    /// The last poll's error, while it is down.
    pub error: Option<String>,
    /// Connected peers.
    pub connected_peers: Option<usize>,
    /// DA height.
    pub height: Option<u64>,
    /// DA events applied.
    pub events: Option<u64>,
    /// DA state root (64 hex).
    pub state_root: Option<String>,
    /// Receipts recorded in its DA log.
    pub receipts: Option<usize>,
    /// Its DA log is synced (no higher tip known).
    pub synced: Option<bool>,
    /// Its own committee state (`ready`, `dkg_round_2`, …) when it is a member.
    pub committee_state: Option<String>,
    /// When the last poll succeeded (ms since start).
    pub last_ok_ms: Option<u64>,
}

/// One sample of a node's DA state.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Sample {
    /// When (ms since start).
    pub t_ms: u64,
    /// DA height.
    pub height: u64,
    /// The state root's first 16 hex digits.
    pub root: String,
}

/// When each node first held one DA height or receipt.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub(crate) struct Spread {
    /// The first node's time (ms since start).
    pub first_ms: u64,
    /// Node name → first seen (ms since start).
    pub seen_ms: BTreeMap<String, u64>,
}

impl Spread {
    /// Records that `node` first had it at `t_ms` (a later report of the same node is ignored).
    pub(crate) fn record(&mut self, node: &str, t_ms: u64) {
        if self.seen_ms.contains_key(node) {
            return;
        }
        if self.seen_ms.is_empty() || t_ms < self.first_ms {
            self.first_ms = t_ms;
        }
        self.seen_ms.insert(node.to_owned(), t_ms);
    }
}

/// A receipt in the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct ReceiptSpread {
    /// Receipt id (64 hex).
    pub id: String,
    /// The executing node's name (its PeerId when it is not watched).
    pub executor: String,
    /// When it was executed (ms since start; negative: before the start).
    pub executed_ms: i64,
    /// When the watched nodes first listed it.
    #[serde(flatten)]
    pub spread: Spread,
}

/// A DA height in the timeline.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct HeightSpread {
    /// The DA height.
    pub height: u64,
    /// When the watched nodes first reported it (or a greater one).
    #[serde(flatten)]
    pub spread: Spread,
}

/// `GET /api/timeline` and the `--record` file.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Timeline {
    /// UNIX ms of the start every `*_ms` is relative to.
    pub started_unix_ms: u64,
    /// Now (ms since start).
    pub now_ms: u64,
    /// The watched nodes, in order.
    pub nodes: Vec<String>,
    /// Recent DA heights, ascending.
    pub heights: Vec<HeightSpread>,
    /// Recent receipts, oldest first.
    pub receipts: Vec<ReceiptSpread>,
    /// Per node: its DA height and state root over time (oldest first).
    pub samples: BTreeMap<String, Vec<Sample>>,
}

/// A connection between two nodes of the topology.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Edge {
    /// One end (a node name, or the PeerId of an external peer).
    pub a: String,
    /// The other end.
    pub b: String,
    /// Runs through a relay (as either end reports).
    pub relayed: bool,
    /// Round-trip time of the last ping, if either end knows it.
    pub rtt_ms: Option<f64>,
}

/// A connected peer that is not watched.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct External {
    /// Its PeerId.
    pub peer_id: String,
}

/// One committee member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct Member {
    /// Its PeerId.
    pub peer_id: String,
    /// The watched node it is, if any.
    pub name: Option<String>,
    /// Its state as it reports it (when watched).
    pub state: Option<String>,
    /// It proposes the DA height being decided (the rotation status of the member this
    /// committee view comes from; false without a rotation).
    pub proposer: bool,
}

/// The committee as its members report it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub(crate) struct CommitteeView {
    /// Members in order.
    pub members: Vec<Member>,
    /// Signatures need this many.
    pub threshold: u16,
    /// The epoch.
    pub epoch: u64,
    /// The group key (64 hex) once the DKG is done.
    pub group_key: Option<String>,
}

/// Agreement of the DA-carrying nodes (every watched node but bootstrap ones).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub(crate) struct DaSummary {
    /// The highest height any node reports.
    pub max_height: u64,
    /// The root most nodes at `max_height` hold.
    pub reference_root: Option<String>,
    /// Nodes at `max_height` with that root.
    pub agree: usize,
    /// DA-carrying nodes.
    pub total: usize,
}

/// `GET /api/snapshot`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub(crate) struct Snapshot {
    /// What is watched (`devnet`, or the network's name).
    pub title: String,
    /// What the devnet is doing (`phase 4/6: DA events`), if it says.
    pub phase: Option<String>,
    /// UNIX ms of the start.
    pub started_unix_ms: u64,
    /// Now (ms since start).
    pub now_ms: u64,
    /// The watched nodes, in order.
    pub nodes: Vec<NodeView>,
    /// Connected peers that are not watched (at most [`EXTERNAL_CAP`]).
    pub external: Vec<External>,
    /// Connections, each once.
    pub edges: Vec<Edge>,
    /// The committee, when a member answered.
    pub committee: Option<CommitteeView>,
    /// DA agreement.
    pub da: DaSummary,
}
