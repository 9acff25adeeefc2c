//! The dashboard's state, bounded: what the pollers last saw of each node, a history of
//! each node's DA height and state root, and the propagation timeline (when each node first
//! held each recent DA height and receipt). Pure bookkeeping, fed by [`super::poll`];
//! [`Board::snapshot`] and [`Board::timeline`] are the JSON the page and `--record` get.
//!
//! Times are milliseconds since the board's start (for the devnet: since `dsdn-agent
//! devnet` started), as the pollers measured them when an answer arrived.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use dsdn_daemon::api::{CommitteeStatusResponse, DaStateView, PeerInfo, StatusResponse};

pub(crate) use super::views::{
    CommitteeView, DaSummary, Edge, External, HeightSpread, Member, NodeView, ReceiptSpread,
    Sample, Snapshot, Spread, Timeline,
};

/// Samples of height and state root kept per node.
pub(crate) const HISTORY_CAP: usize = 600;
/// DA heights kept in the propagation timeline (the newest).
pub(crate) const HEIGHTS_CAP: usize = 64;
/// Receipts kept in the propagation timeline (the newest).
pub(crate) const RECEIPTS_CAP: usize = 32;
/// Connected peers outside the watched set shown in the topology, at most.
pub(crate) const EXTERNAL_CAP: usize = 64;
/// Receipt ids remembered per node (to tell a new one from one seen before).
const KNOWN_RECEIPTS_CAP: usize = 256;
/// A node's history gets a sample at least this often while it answers (and at every
/// change of height or root).
const SAMPLE_EVERY_MS: u64 = 1000;
/// Hex digits of a state root kept in the history samples (enough to tell roots apart).
const SAMPLE_ROOT_HEX: usize = 16;

/// One connected peer as a watched node reports it.
#[derive(Clone, Debug, PartialEq)]
struct Link {
    peer_id: String,
    relayed: bool,
    rtt_ms: Option<f64>,
}

/// A recent receipt as a node lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SeenReceipt {
    /// Receipt id (64 hex).
    pub id: String,
    /// The executing node's PeerId.
    pub executor: String,
    /// When it was executed, UNIX ms.
    pub executed_at_ms: u64,
}

#[derive(Debug, Default)]
struct NodeState {
    view: NodeView,
    links: Vec<Link>,
    history: VecDeque<Sample>,
    /// The height last observed; `None` before the first DA answer.
    height: Option<u64>,
    /// Receipt ids this node was seen holding (bounded, oldest first).
    receipts: VecDeque<String>,
    receipts_set: HashSet<String>,
    receipts_baselined: bool,
    /// A committee status answered (a member).
    committee: Option<CommitteeStatusResponse>,
}

/// Everything the dashboard knows; see the module documentation.
#[derive(Debug)]
pub(crate) struct Board {
    title: String,
    phase: Option<String>,
    started_unix_ms: u64,
    nodes: Vec<NodeState>,
    heights: BTreeMap<u64, Spread>,
    receipts: VecDeque<ReceiptSpread>,
    /// When a node last reported a height or receipt it had not before (ms since start).
    last_new_ms: Option<u64>,
}

impl Board {
    /// An empty board started at `started_unix_ms`.
    pub(crate) fn new(title: impl Into<String>, started_unix_ms: u64) -> Self {
        Self {
            title: title.into(),
            phase: None,
            started_unix_ms,
            nodes: Vec::new(),
            heights: BTreeMap::new(),
            receipts: VecDeque::new(),
            last_new_ms: None,
        }
    }

    /// True while something spreads: a node reported a height or receipt it had not before
    /// less than `window_ms` before `now_ms`.
    pub(crate) fn active(&self, now_ms: u64, window_ms: u64) -> bool {
        self.last_new_ms
            .is_some_and(|t| now_ms.saturating_sub(t) < window_ms)
    }

    /// Watches these nodes (name, API address, mode if known); returns their indices.
    pub(crate) fn add_node(&mut self, name: &str, api: &str, mode: Option<&str>) -> usize {
        self.nodes.push(NodeState {
            view: NodeView {
                name: name.to_owned(),
                api: api.to_owned(),
                mode: mode.map(str::to_owned),
                ..NodeView::default()
            },
            ..NodeState::default()
        });
        self.nodes.len() - 1
    }

    /// Sets the phase line the page shows.
    pub(crate) fn set_phase(&mut self, phase: &str) {
        self.phase = Some(phase.to_owned());
    }

    /// The node's mode as last known.
    pub(crate) fn mode(&self, node: usize) -> Option<String> {
        self.nodes.get(node).and_then(|n| n.view.mode.clone())
    }

    /// A poll of `node` failed.
    pub(crate) fn observe_error(&mut self, node: usize, error: &str) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.view.up = false;
            n.view.error = Some(error.to_owned());
            n.links.clear();
            n.view.connected_peers = None;
        }
    }

    /// `GET /v1/status` of `node` answered.
    pub(crate) fn observe_status(&mut self, node: usize, st: &StatusResponse) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.view.mode = Some(st.mode.clone());
            n.view.services = st.services.clone();
            n.view.peer_id = Some(st.peer_id.clone());
            n.view.connected_peers = Some(st.connected_peers);
        }
    }

    /// `GET /v1/peers` of `node` answered: its connected peers become its edges. A
    /// connected peer without connection details counts as direct.
    pub(crate) fn observe_peers(&mut self, node: usize, peers: &[PeerInfo]) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.links = peers
                .iter()
                .filter(|p| p.connected)
                .map(|p| Link {
                    peer_id: p.peer_id.clone(),
                    relayed: p.connection.as_ref().is_some_and(|c| c.relayed),
                    rtt_ms: p.connection.as_ref().and_then(|c| c.rtt_ms),
                })
                .collect();
        }
    }

    /// `GET /v1/committee/status` of `node` answered (`None`: not a member).
    pub(crate) fn observe_committee(&mut self, node: usize, st: Option<CommitteeStatusResponse>) {
        if let Some(n) = self.nodes.get_mut(node) {
            n.view.committee_state = st.as_ref().map(|s| s.state.clone());
            n.committee = st;
        }
    }

    /// `GET /v1/da/state` of `node` answered at `t_ms`: the node is up; heights above the
    /// last one it reported are first seen now (an answer below it is stale, unless the
    /// node was down in between). At its first answer only heights another
    /// node was already seen with count (the others predate the watch).
    pub(crate) fn observe_da(&mut self, node: usize, t_ms: u64, st: &DaStateView) {
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        // Two pollers ask each node: an answer overtaken by a newer one is dropped (a lower
        // height is taken only after the node was down, e.g. restarted without its log).
        if n.view.up && n.height.is_some_and(|h| st.height < h) {
            return;
        }
        n.view.up = true;
        n.view.error = None;
        n.view.last_ok_ms = Some(t_ms);
        let root = hex::encode(st.state_root);
        n.view.height = Some(st.height);
        n.view.events = Some(st.events);
        n.view.receipts = Some(st.receipts);
        n.view.synced = Some(st.synced);
        let sample_root: String = root.chars().take(SAMPLE_ROOT_HEX).collect();
        let due = n.history.back().is_none_or(|s| {
            s.height != st.height
                || s.root != sample_root
                || t_ms.saturating_sub(s.t_ms) >= SAMPLE_EVERY_MS
        });
        if due {
            if n.history.len() == HISTORY_CAP {
                n.history.pop_front();
            }
            n.history.push_back(Sample {
                t_ms,
                height: st.height,
                root: sample_root,
            });
        }
        n.view.state_root = Some(root);
        let previous = n.height.replace(st.height);
        let name = n.view.name.clone();
        let lowest = st.height.saturating_sub(HEIGHTS_CAP as u64 - 1).max(1);
        match previous {
            Some(p) if st.height > p => {
                for h in (p + 1).max(lowest)..=st.height {
                    self.heights.entry(h).or_default().record(&name, t_ms);
                }
                self.last_new_ms = Some(t_ms);
            }
            Some(_) => {}
            None if st.height >= lowest => {
                for (_, spread) in self.heights.range_mut(lowest..=st.height) {
                    spread.record(&name, t_ms);
                }
            }
            None => {}
        }
        while self.heights.len() > HEIGHTS_CAP {
            self.heights.pop_first();
        }
    }

    /// `GET /v1/receipts` of `node` answered at `t_ms`: receipts it did not list before are
    /// first seen now. At its first answer only receipts already in the timeline count.
    pub(crate) fn observe_receipts(&mut self, node: usize, t_ms: u64, list: &[SeenReceipt]) {
        let names: HashMap<String, String> = self.peer_names();
        let started = self.started_unix_ms;
        let Some(n) = self.nodes.get_mut(node) else {
            return;
        };
        let name = n.view.name.clone();
        let baseline = !n.receipts_baselined;
        let mut new = false;
        n.receipts_baselined = true;
        // Oldest first, so the timeline keeps the listing's order.
        for r in list.iter().rev() {
            if n.receipts_set.contains(&r.id) {
                continue;
            }
            if n.receipts.len() == KNOWN_RECEIPTS_CAP {
                if let Some(old) = n.receipts.pop_front() {
                    n.receipts_set.remove(&old);
                }
            }
            n.receipts.push_back(r.id.clone());
            n.receipts_set.insert(r.id.clone());
            match self.receipts.iter_mut().find(|s| s.id == r.id) {
                Some(s) => {
                    s.spread.record(&name, t_ms);
                    new = true;
                }
                None if baseline => {}
                None => {
                    new = true;
                    if self.receipts.len() == RECEIPTS_CAP {
                        self.receipts.pop_front();
                    }
                    let mut spread = Spread::default();
                    spread.record(&name, t_ms);
                    self.receipts.push_back(ReceiptSpread {
                        id: r.id.clone(),
                        executor: names
                            .get(&r.executor)
                            .cloned()
                            .unwrap_or_else(|| r.executor.clone()),
                        executed_ms: i64::try_from(r.executed_at_ms)
                            .unwrap_or(i64::MAX)
                            .saturating_sub(i64::try_from(started).unwrap_or(i64::MAX)),
                        spread,
                    });
                }
            }
        }
        if new {
            self.last_new_ms = Some(t_ms);
        }
    }

    /// PeerId → name of the watched nodes whose status answered.
    fn peer_names(&self) -> HashMap<String, String> {
        self.nodes
            .iter()
            .filter_map(|n| Some((n.view.peer_id.clone()?, n.view.name.clone())))
            .collect()
    }

    /// The timeline at `now_ms`.
    pub(crate) fn timeline(&self, now_ms: u64) -> Timeline {
        Timeline {
            started_unix_ms: self.started_unix_ms,
            now_ms,
            nodes: self.nodes.iter().map(|n| n.view.name.clone()).collect(),
            heights: self
                .heights
                .iter()
                .map(|(h, s)| HeightSpread {
                    height: *h,
                    spread: s.clone(),
                })
                .collect(),
            receipts: self.receipts.iter().cloned().collect(),
            samples: self
                .nodes
                .iter()
                .map(|n| (n.view.name.clone(), n.history.iter().cloned().collect()))
                .collect(),
        }
    }

    /// The snapshot at `now_ms`.
    pub(crate) fn snapshot(&self, now_ms: u64) -> Snapshot {
        let names = self.peer_names();
        let mut edges: BTreeMap<(String, String), Edge> = BTreeMap::new();
        let mut external: Vec<External> = Vec::new();
        for n in self.nodes.iter().filter(|n| n.view.up) {
            for l in &n.links {
                let other = match names.get(&l.peer_id) {
                    Some(name) => name.clone(),
                    None if external.iter().any(|e| e.peer_id == l.peer_id) => l.peer_id.clone(),
                    None if external.len() < EXTERNAL_CAP => {
                        external.push(External {
                            peer_id: l.peer_id.clone(),
                        });
                        l.peer_id.clone()
                    }
                    None => continue,
                };
                let me = n.view.name.clone();
                let key = if me <= other {
                    (me, other)
                } else {
                    (other, me)
                };
                let e = edges.entry(key.clone()).or_insert_with(|| Edge {
                    a: key.0,
                    b: key.1,
                    relayed: false,
                    rtt_ms: None,
                });
                e.relayed |= l.relayed;
                e.rtt_ms = e.rtt_ms.or(l.rtt_ms);
            }
        }
        Snapshot {
            title: self.title.clone(),
            phase: self.phase.clone(),
            started_unix_ms: self.started_unix_ms,
            now_ms,
            nodes: self.nodes.iter().map(|n| n.view.clone()).collect(),
            external,
            edges: edges.into_values().collect(),
            committee: self.committee(&names),
            da: self.da_summary(),
        }
    }

    fn committee(&self, names: &HashMap<String, String>) -> Option<CommitteeView> {
        // The first member that answered, preferring one that holds the group key.
        let st = self
            .nodes
            .iter()
            .filter_map(|n| n.committee.as_ref())
            .max_by_key(|c| c.group_key.is_some())?;
        let states: HashMap<&str, &str> = self
            .nodes
            .iter()
            .filter_map(|n| {
                Some((
                    n.committee.as_ref()?.me.as_str(),
                    n.view.committee_state.as_deref()?,
                ))
            })
            .collect();
        Some(CommitteeView {
            members: st
                .members
                .iter()
                .map(|id| Member {
                    peer_id: id.clone(),
                    name: names.get(id).cloned(),
                    state: states.get(id.as_str()).map(|s| (*s).to_owned()),
                    proposer: st
                        .rotation
                        .as_ref()
                        .is_some_and(|r| r.proposer.as_deref() == Some(id.as_str())),
                })
                .collect(),
            threshold: st.threshold,
            epoch: st.epoch,
            group_key: st.group_key.clone(),
        })
    }

    fn da_summary(&self) -> DaSummary {
        let da: Vec<&NodeView> = self
            .nodes
            .iter()
            .map(|n| &n.view)
            .filter(|v| v.mode.as_deref() != Some("bootstrap"))
            .collect();
        let max_height = da.iter().filter_map(|v| v.height).max().unwrap_or(0);
        let mut roots: BTreeMap<&str, usize> = BTreeMap::new();
        for v in da.iter().filter(|v| v.up && v.height == Some(max_height)) {
            if let Some(r) = v.state_root.as_deref() {
                *roots.entry(r).or_default() += 1;
            }
        }
        let best = roots.iter().max_by_key(|(_, n)| **n);
        DaSummary {
            max_height,
            reference_root: best.map(|(r, _)| (*r).to_owned()),
            agree: best.map_or(0, |(_, n)| *n),
            total: da.len(),
        }
    }
}

#[cfg(test)]
#[path = "model_tests.rs"]
mod tests;
