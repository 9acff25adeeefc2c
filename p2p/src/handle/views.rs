//! What the handle's queries answer: [`NodeStatus`], [`PeerView`] and [`PeerStatsView`].

use std::collections::BTreeMap;
use std::time::Duration;

use dsdn_protocols::{PeerSource, ServiceSet};
use libp2p::{Multiaddr, PeerId};
use serde::{Deserialize, Serialize};

use crate::da::RegistrationView;

/// A node's status.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// Our PeerId.
    pub peer_id: PeerId,
    /// Our listen addresses.
    pub listen_addrs: Vec<Multiaddr>,
    /// Verified connected peers.
    pub connected_peers: usize,
    /// Entries in peers.dat.
    pub known_peers: usize,
    /// The fallback chain's stage.
    pub bootstrap_stage: String,
    /// True when every source failed and no peer is connected.
    pub isolated: bool,
    /// True while partition recovery runs: fewer connected peers than `min_peers` and than
    /// the peers this node reached before (the verdict of the `CRITICAL: network partition`
    /// log line).
    pub partitioned: bool,
    /// Whether this node's key is the DA authority.
    pub is_da_authority: bool,
    /// The configured DA authority.
    pub da_authority: Option<[u8; 32]>,
    /// A storage node's registration with the DA authority (`None` for other roles).
    pub registration: Option<RegistrationView>,
    /// Time since the event loop started.
    pub uptime: Duration,
    /// Reachability, confirmed external addresses, relays and DCUtR (issue 12 §2, §4).
    pub nat: crate::net::nat::NatView,
    /// peers.dat entries under a ban now.
    pub banned_peers: usize,
    /// Problems the operator should act on, one sentence each (most known peers banned,
    /// this node's identity in use elsewhere, …); empty when all is well.
    pub warnings: Vec<String>,
    /// Stores whose writes fail and are retried (issue 14 §2: `da_log`, `peers`,
    /// `committee`), with the error; empty while every write succeeds.
    pub degraded_stores: Vec<crate::storage::StorageIssue>,
}

/// One known peer (peers.dat ∪ connected).
#[derive(Debug, Clone)]
pub struct PeerView {
    /// The peer.
    pub peer_id: PeerId,
    /// Its addresses.
    pub addrs: Vec<Multiaddr>,
    /// Its service types.
    pub services: ServiceSet,
    /// Where we first learned of it.
    pub source: PeerSource,
    /// `Some(true)` outbound, `Some(false)` inbound, `None` not connected.
    pub connected_outbound: Option<bool>,
    /// UNIX seconds of the last contact.
    pub last_seen: Option<u64>,
    /// UNIX seconds of the last verified handshake.
    pub last_success: Option<u64>,
    /// Successful handshakes.
    pub success_count: u32,
    /// Failed attempts.
    pub failure_count: u32,
    /// The 28.1.B §5 score now.
    pub score: i64,
    /// The netgroup of its first address (`ipv4:203.0`, `ipv6:2001:db8`, `local:127.0.0.2`).
    pub netgroup: Option<String>,
    /// 10 or more consecutive failures (28.1.B §4): dialled last.
    pub suspicious: bool,
    /// UNIX seconds until which a ban is in force, if banned now.
    pub banned_until: Option<u64>,
    /// Why it is banned (with a ban in force): the offence label or `operator`, with
    /// ` [config]` for a ban resting on this node's configuration (lifted when it changes).
    pub ban_reason: Option<String>,
    /// The open connection's details, for a peer with one.
    pub connection: Option<crate::net::connections::ConnectionDetails>,
    /// Bytes exchanged over the open connections (zero without one).
    pub traffic: crate::net::traffic::Traffic,
}

/// Address-book health and connection mix (28.1.C §7): the answer of
/// [`NodeHandle::peer_stats`], and as is the JSON of `GET /v1/peers/stats` read by
/// `dsdn-agent peers stats`. Maps are sorted by key.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PeerStatsView {
    /// Entries in peers.dat.
    pub entries: usize,
    /// Entries by source (`dns_seed`, `static_config`, `peer_exchange`, `inbound`).
    pub by_source: BTreeMap<String, usize>,
    /// Entries offering each service type (an entry may count under several).
    pub by_service: BTreeMap<String, usize>,
    /// Entries by the netgroup of their first address.
    pub by_netgroup: BTreeMap<String, usize>,
    /// Entries successfully contacted at least once ("tried", in Bitcoin Core's terms).
    pub tried: usize,
    /// Entries with 10 or more consecutive failures.
    pub suspicious: usize,
    /// Entries banned now.
    pub banned: usize,
    /// Sum of successful handshakes over all entries.
    pub success_count: u64,
    /// Sum of failed attempts over all entries.
    pub failure_count: u64,
    /// `success_count / (success_count + failure_count)`, in `[0, 1]`; `None` (JSON `null`)
    /// before any attempt. See [`PeerStatsView::with_success_rate`].
    pub success_rate: Option<f64>,
    /// Verified connected peers.
    pub connected: usize,
    /// Of which we dialled.
    pub outbound: usize,
    /// Of which dialled us.
    pub inbound: usize,
    /// Connected peers offering each service type.
    pub connected_by_service: BTreeMap<String, usize>,
    /// Connected peers by the source we learned them from.
    pub connected_by_source: BTreeMap<String, usize>,
    /// Every connected peer came from one source (the 28.1.C §6 eclipse warning).
    pub single_source: bool,
    /// Connected peers are below `min_peers` (28.1.C §4 partition recovery running).
    pub partitioned: bool,
    /// Static peers in use: seeds.toml's plus those added with `peers add`.
    pub static_peers: Vec<String>,
    /// DNS seeds in use: seeds.toml's plus those added with `peers add-seed`.
    pub dns_seeds: Vec<String>,
}

impl PeerStatsView {
    /// Sets `success_rate` from `success_count` and `failure_count` (see [`success_rate`]).
    pub fn with_success_rate(mut self) -> Self {
        self.success_rate = success_rate(self.success_count, self.failure_count);
        self
    }
}

/// `successes / (successes + failures)`; `None` when both are zero.
pub fn success_rate(successes: u64, failures: u64) -> Option<f64> {
    // u64 → f64 loses precision only beyond 2^53 attempts; the sum cannot overflow in f64.
    let total = successes as f64 + failures as f64;
    (total > 0.0).then(|| successes as f64 / total)
}
