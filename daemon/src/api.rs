//! JSON shapes of the control API (HTTP/JSON, default `127.0.0.1:8645`).
//!
//! These types are the contract between `dsdnd` (server) and `dsdn-agent` (client).
//!
//! | method | path             | body / answer |
//! |--------|------------------|---------------|
//! | GET    | `/v1/status`     | → [`StatusResponse`] |
//! | GET    | `/v1/peers`      | → `Vec<`[`PeerInfo`]`>` (every known peer: peers.dat ∪ connected) |
//! | POST   | `/v1/da/events`  | `Vec<DaEvent>` (JSON form of `dsdn_protocols::da::DaEvent`) → [`PublishResponse`]; coordinator that is the DA authority only |
//! | GET    | `/v1/da/state`   | → [`DaStateResponse`] |
//! | GET    | `/metrics`       | → Prometheus text exposition |
//!
//! Errors are answered with a 4xx/5xx status and an [`ApiError`] body.

use serde::{Deserialize, Serialize};

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// This node's libp2p PeerId (base58).
    pub peer_id: String,
    /// The mode the daemon runs in: `bootstrap`, `storage` or `coordinator`.
    pub mode: String,
    /// The network id.
    pub network: String,
    /// Advertised service types (lowercase names).
    pub services: Vec<String>,
    /// Peers connected with a verified handshake.
    pub connected_peers: usize,
    /// Entries in peers.dat.
    pub known_peers: usize,
    /// Multiaddrs the node listens on.
    pub listen_addrs: Vec<String>,
    /// Protocol version `major.minor`.
    pub protocol_version: String,
    /// The daemon's version string, e.g. `dsdnd/0.1.0`.
    pub agent_version: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// The bootstrap fallback chain's current stage, for humans (`idle`, `peers.dat`,
    /// `static[1]`, `dns_seed[0]`, `backoff`).
    pub bootstrap_stage: String,
    /// True when every bootstrap source failed and no peer is connected.
    pub isolated: bool,
    /// The network's DA authority public key (hex), if configured.
    pub da_authority: Option<String>,
    /// True when this node's key is the DA authority (it may publish DA events).
    pub is_da_authority: bool,
}

/// One entry of `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerInfo {
    /// The peer's PeerId (base58).
    pub peer_id: String,
    /// Known multiaddrs.
    pub addresses: Vec<String>,
    /// Advertised service types (lowercase names).
    pub services: Vec<String>,
    /// Where we first learned of it: `dns_seed`, `static_config`, `peer_exchange`, `inbound`.
    pub source: String,
    /// True while a handshake-verified connection is open.
    pub connected: bool,
    /// `inbound` or `outbound` for a connected peer.
    pub direction: Option<String>,
    /// UNIX seconds of the last contact, if any.
    pub last_seen: Option<u64>,
    /// UNIX seconds of the last successful handshake, if any.
    pub last_success: Option<u64>,
    /// Successful handshakes.
    pub success_count: u32,
    /// Failed connection attempts.
    pub failure_count: u32,
    /// The 28.1.B §5 score at the time of the request.
    pub score: i64,
}

/// Answer to `POST /v1/da/events`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResponse {
    /// Events published.
    pub events: usize,
    /// Envelopes the events were batched into.
    pub envelopes: usize,
    /// Sequence number of the first envelope.
    pub first_seq: u64,
    /// Sequence number of the last envelope.
    pub last_seq: u64,
}

/// `GET /v1/da/state`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaStateResponse {
    /// DA events accepted and applied.
    pub events: u64,
    /// Sequence number of the last applied envelope.
    pub envelopes: u64,
    /// Verified envelopes held until a gap in the sequence fills.
    pub pending: usize,
    /// Envelopes rejected (bad signature, wrong publisher or network, malformed).
    pub rejected: u64,
    /// The running state root (64 hex characters).
    pub state_root: String,
}

/// Error body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// One human-readable line.
    pub error: String,
}
