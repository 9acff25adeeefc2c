//! JSON shapes of the control API (HTTP/JSON, default `127.0.0.1:8645`).
//!
//! These types are the contract between `dsdnd` (server) and `dsdn-agent` (client).
//!
//! Every request, `/metrics` included, must carry `Authorization: Bearer <token>`, the
//! token being the content of `<data dir>/.cookie` that the daemon writes at each start
//! (see [`crate::cookie`]). A missing or wrong token is answered `401 Unauthorized` with
//! `WWW-Authenticate: Bearer` and an [`ApiError`] body.
//!
//! | method | path                       | body / answer |
//! |--------|----------------------------|---------------|
//! | GET    | `/v1/status`               | → [`StatusResponse`] |
//! | GET    | `/v1/peers[?type=SERVICE]` | → `Vec<`[`PeerInfo`]`>` (every known peer: peers.dat ∪ connected; only those offering `SERVICE` when given) |
//! | POST   | `/v1/peers`                | [`AddPeerRequest`] → [`AddedResponse`]; 409 when configured already |
//! | POST   | `/v1/seeds`                | [`AddSeedRequest`] → [`AddedResponse`]; 409 when configured already |
//! | GET    | `/v1/peers/stats`          | → [`PeerStatsView`] |
//! | POST   | `/v1/peers/reset`          | → [`ResetResponse`] |
//! | POST   | `/v1/peers/{peer_id}/ban`  | [`BanRequest`] (body optional) → [`BanResponse`] |
//! | DELETE | `/v1/peers/{peer_id}/ban`  | → [`UnbanResponse`] |
//! | POST   | `/v1/da/events`            | `Vec<DaEvent>` (JSON form of `dsdn_protocols::da::DaEvent`) → [`PublishResponse`] once every event is sealed in a blob; DA authority only (403 otherwise, 400 for an invalid event, 503 when the queue is full) |
//! | POST   | `/v1/da/blobs`             | one CBOR-encoded `DaBlob` (signed elsewhere, e.g. by the committee) → [`SubmitResponse`]; 400 when it does not verify, 409 when it breaks the chain |
//! | GET    | `/v1/da/blobs?from=H[&count=N]` | → `Vec<`[`BlobInfo`]`>`: up to N (default and max 64) blobs from height H, verified |
//! | GET    | `/v1/da/state[?wait_height=H[&timeout_ms=T]]` | → [`DaStateView`]; with `wait_height`, answered once the log reaches H or after T ms (default 30,000, max 60,000) |
//! | POST   | `/v1/committee/dkg`        | → [`CommitteeStatusResponse`] once this member adopted the group key (the FROST DKG of the configured committee over the network); 403 on a non-member, 409 when a key share for the epoch exists, 502 when the ceremony failed (the message names the members) |
//! | GET    | `/v1/committee/status`     | → [`CommitteeStatusResponse`]; 404 on a non-member |
//! | POST   | `/v1/workloads[?optimistic=true\|false]` | one CBOR-encoded, submitter-signed `WorkloadSubmission` (at most 5 MiB) → [`WorkloadResponse`] once a storage node executed it and the committee signed the receipt (with `optimistic=true`, or by default under `[receipts] optimistic = true`: as soon as this coordinator signed an optimistic receipt, issue 13 §5); 400 invalid submission, 403 not a committee member with a key share, 503 no storage node or busy, 502 every node failed or the committee did not sign (the message names who and why) |
//! | GET    | `/v1/receipts/{id}`        | → [`ReceiptResponse`] of an accepted receipt (64 hex id): the threshold receipt once known, else the optimistic one with its status; 404 unknown |
//! | GET    | `/v1/disputes`             | → [`DisputesResponse`] |
//! | POST   | `/v1/receipts`             | one CBOR-encoded `ThresholdReceipt` or `OptimisticReceipt` → [`ReceiptResponse`] once verified (group key or coordinator key, node signature, commitment) and gossiped; 400 refused (the reason), 409 duplicate (or an optimistic receipt superseded or past its deadline) |
//! | GET    | `/metrics`                 | → Prometheus text exposition |
//!
//! The peer-management endpoints are the daemon side of `dsdn-agent peers …` (roadmap
//! 28.1.C §7). Errors are answered with a 4xx/5xx status and an [`ApiError`] body: 400 for
//! a malformed body, service name or peer id, 401 for a missing or wrong token, 409 for an
//! addition that is configured already (or a full list of additions), 503 while the node
//! shuts down.

use serde::{Deserialize, Serialize};

mod receipts;

pub use receipts::{
    DisputesResponse, DoubleReceiptView, OptimisticConflictView, ReceiptResponse,
    SignerDisputeView, WorkloadResponse,
};

/// `GET /v1/status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// This node's libp2p PeerId (base58).
    pub peer_id: String,
    /// The mode the daemon runs in: `bootstrap`, `storage`, `coordinator`, `validator`,
    /// `chain` or `ingress`.
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
    /// True while partition recovery runs: fewer connected peers than `min_peers` and than
    /// the peers this node reached before; what the `CRITICAL: network partition` log says.
    #[serde(default)]
    pub partitioned: bool,
    /// The network's DA authority public key (hex), if configured.
    pub da_authority: Option<String>,
    /// True when this node's key is the DA authority (it may publish DA events).
    pub is_da_authority: bool,
    /// Height of the node's DA log (0 when empty or for a bootstrap node).
    #[serde(default)]
    pub da_height: u64,
    /// A storage node's registration with the DA authority: `{"state": "pending",
    /// "attempts": 2, "last_error": null}` or `{"state": "registered", "height": 7}`;
    /// absent for other roles.
    #[serde(default)]
    pub registration: Option<serde_json::Value>,
    /// Reachability as AutoNAT found it: `public`, `private` or `unknown`.
    #[serde(default = "unknown")]
    pub reachability: String,
    /// Confirmed external addresses (AutoNAT, UPnP, operator-given, relayed): the only
    /// addresses advertised on a public network.
    #[serde(default)]
    pub external_addrs: Vec<String>,
    /// NAT traversal in detail: `{"reachability", "external_addrs", "relayed_addrs",
    /// "relays", "relay_server", "milestones": {"reachability_known_ms",
    /// "first_reservation_ms", "first_direct_upgrade_ms"}, "counters": {"probes_ok",
    /// "probes_failed", "dcutr_ok", "dcutr_failed", "circuits_relayed"}}`.
    #[serde(default)]
    pub nat: Option<serde_json::Value>,
    /// peers.dat entries under a ban now.
    #[serde(default)]
    pub banned_peers: usize,
    /// Problems the operator should act on, one sentence each (most known peers banned,
    /// another process running with this node's key, …); empty when all is well.
    #[serde(default)]
    pub warnings: Vec<String>,
    /// Stores whose writes fail (disk full, I/O error) and are retried with backoff
    /// (issue 14 §2): `da_log`, `peers` or `committee`, with the last error. Empty while
    /// every write succeeds; absent from older daemons. While `da_log` is listed the node
    /// claims and serves only the heights it stored; while `committee` is listed it signs
    /// nothing.
    #[serde(default)]
    pub degraded_stores: Vec<StorageIssue>,
}

pub use dsdn_p2p::storage::StorageIssue;

fn unknown() -> String {
    "unknown".to_owned()
}

/// One entry of `GET /v1/peers`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
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
    /// The netgroup of its first address (`ipv4:203.0`, `ipv6:2001:db8`,
    /// `local:127.0.0.2`); `None` without a usable address.
    #[serde(default)]
    pub netgroup: Option<String>,
    /// 10 or more consecutive failures (28.1.B §4): dialled last.
    #[serde(default)]
    pub suspicious: bool,
    /// UNIX seconds until which a ban is in force, if the peer is banned now.
    #[serde(default)]
    pub banned_until: Option<u64>,
    /// Why it is banned (with a ban in force): the offence (`pex_oversized`,
    /// `da_invalid_blob`, …) or `operator`, with ` [config]` when the ban rests on this node's
    /// configuration (lifted at a start with another one); absent for older bans.
    #[serde(default)]
    pub ban_reason: Option<String>,
    /// The open connection, for a connected peer (issue 15 §6); absent otherwise.
    #[serde(default)]
    pub connection: Option<ConnectionInfo>,
}

/// What `GET /v1/peers` tells of a peer's open connection (the first one, when several are
/// open).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ConnectionInfo {
    /// The remote multiaddr of the connection (a `/p2p-circuit` address when relayed).
    pub remote_addr: String,
    /// True when the connection runs through a relay (Circuit Relay v2).
    pub relayed: bool,
    /// Seconds since the handshake verified.
    pub age_secs: u64,
    /// Round-trip time of the last ping, in milliseconds; absent before the first one.
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    /// Bytes received from the peer over its open connections.
    pub bytes_in: u64,
    /// Bytes sent to the peer over its open connections.
    pub bytes_out: u64,
    /// The peer's identify agent version (`dsdnd/0.1.0`, `rust-libp2p/…`), once known.
    #[serde(default)]
    pub agent_version: Option<String>,
    /// The protocols the peer supports, from identify, sorted.
    #[serde(default)]
    pub protocols: Vec<String>,
    /// Open connections to the peer (1 usually; 2 during a relayed → direct upgrade).
    pub connections: u32,
}

/// One entry of `GET /v1/peers/added`: a peer the operator added with `peers add` and its
/// state (issue 15 §6, like bitcoin-cli's `getaddednodeinfo`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedPeerInfo {
    /// The address as the operator gave it.
    pub addr: String,
    /// The PeerId, when the address names one or a connection verified it.
    #[serde(default)]
    pub peer_id: Option<String>,
    /// `connected`, `dialing` or `waiting` (for the next retry).
    pub state: String,
    /// The last dial error, if the last attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Seconds until the next dial attempt, while waiting.
    #[serde(default)]
    pub next_retry_secs: Option<u64>,
}

/// Body of `POST /v1/peers`: a static peer to add (persisted in the data directory and
/// dialled at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddPeerRequest {
    /// `IP:PORT`, `[IPv6]:PORT` or a multiaddr such as `/ip4/203.0.113.50/tcp/30303`
    /// (the forms of seeds.toml's `static_peers`).
    pub addr: String,
}

/// Body of `POST /v1/seeds`: a DNS seed to add (persisted and resolved at once).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddSeedRequest {
    /// A domain name, e.g. `seed4.dsdn.network`.
    pub domain: String,
}

/// Answer to `POST /v1/peers` and `POST /v1/seeds`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddedResponse {
    /// The static peer or seed as the daemon stores it (normalised form of the input).
    pub added: String,
}

/// Answer of `POST /v1/peers/remove`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedResponse {
    /// The static peer removed, as the daemon stored it.
    pub removed: String,
}

/// `GET /v1/peers/stats`: address-book health and connection mix (28.1.C §7 `peers
/// stats`), the p2p handle's own type; [`success_rate`] computes its `success_rate`.
pub use dsdn_p2p::handle::{success_rate, PeerStatsView};

/// Answer to `POST /v1/peers/reset` (peers.dat cleared, connections dropped, bootstrap
/// started again from the seeds).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetResponse {
    /// Entries removed from peers.dat.
    pub removed: usize,
    /// Connections closed.
    pub disconnected: usize,
}

/// Body of `POST /v1/peers/{peer_id}/ban`; the body may be omitted altogether.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanRequest {
    /// Ban length in seconds, 1 ..= [`MAX_BAN_SECS`]; default: seeds.toml's
    /// `[bootstrap] ban_duration_secs`.
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

/// Longest ban `POST /v1/peers/{peer_id}/ban` accepts, in seconds: 365 days.
pub const MAX_BAN_SECS: u64 = 365 * 86_400;

/// Answer to `POST /v1/peers/{peer_id}/ban`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BanResponse {
    /// The banned peer (base58).
    pub peer_id: String,
    /// The ban length applied, in seconds.
    pub duration_secs: u64,
    /// UNIX seconds at which the ban ends.
    pub banned_until: u64,
}

/// Answer to `DELETE /v1/peers/{peer_id}/ban`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbanResponse {
    /// The peer (base58).
    pub peer_id: String,
    /// True when the peer was banned (and is not any more); false when it had no ban.
    pub unbanned: bool,
}

/// Answer to `DELETE /v1/bans` (`dsdn-agent peers unban --all`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnbanAllResponse {
    /// How many peers had a ban (expired or not) that is now lifted.
    pub unbanned: usize,
}

/// Answer to `POST /v1/da/events`, sent once every event is sealed in a blob.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublishResponse {
    /// Events published.
    pub events: usize,
    /// Heights of the blobs that carry them, ascending (one request may span blobs, and
    /// one blob may carry events of several requests).
    pub heights: Vec<u64>,
}

/// Answer to `POST /v1/da/blobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubmitResponse {
    /// The blob's height.
    pub height: u64,
    /// `applied`, `held` (waiting for earlier heights, which the node backfills) or
    /// `duplicate`.
    pub outcome: String,
}

/// One blob of `GET /v1/da/blobs`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlobInfo {
    /// Height (1, 2, …).
    pub height: u64,
    /// The blob's hash (64 hex).
    pub hash: String,
    /// The previous blob's hash (64 hex; zeros at height 1).
    pub prev_hash: String,
    /// The blob format version (4 when sealed by a committee, 3 by a single-key authority;
    /// 1 and 2 for blobs of older logs). Absent from older nodes' answers (read as 0).
    #[serde(default)]
    pub version: u16,
    /// The state root after the previous blob that the blob commits to (64 hex; zeros in
    /// a version-1 blob). Absent from older nodes' answers (read as empty).
    #[serde(default)]
    pub prev_state_root: String,
    /// When the DA authority sealed it, UNIX milliseconds.
    pub timestamp_ms: u64,
    /// The events, in the JSON form of `dsdn_protocols::da::DaEvent`.
    pub events: Vec<dsdn_protocols::da::DaEvent>,
    /// The authority's Ed25519 signature (128 hex).
    pub signature: String,
    /// The committee member that proposed the blob (PeerId, base58), version 4 only
    /// (issue 13 §6): its own signature over the blob is `proposer_sig`. Absent for older
    /// versions and from older nodes' answers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposer: Option<String>,
    /// The proposer's Ed25519 signature (128 hex) over the blob's proposer signing bytes
    /// (PROTOCOL.md §7.1), version 4 only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proposer_sig: Option<String>,
}

/// `GET /v1/da/proof?key=…[&height=H]` (issue 16 §3): a DA state key's value, or its
/// absence, with the proof against the state root at `height`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ProofResponse {
    /// The key, text form (`node:<id>`, `chunk:<hex>`, `replicas:<hex>`, `zone:<name>`,
    /// `receipt:<hex>`).
    pub key: String,
    /// The height proved at.
    pub height: u64,
    /// The state root at that height as this node recorded it (64 hex).
    pub root: String,
    /// The decoded value (`{"type": "node", …}`), `null` when the key is absent.
    pub value: Option<serde_json::Value>,
    /// The whole proof: the CBOR of `dsdn_protocols::da::StateProof` (hex), which
    /// `dsdn-agent da proof` decodes and verifies.
    pub proof: String,
}

/// `GET /v1/da/state`: the node's DA log and the 14A §2 state replayed from it, the p2p
/// handle's own type (hashes as 64 hex in JSON).
pub use dsdn_p2p::da::{DaStateView, ForkEvidenceView};

/// `GET /v1/committee/status` and `POST /v1/committee/dkg`: the coordinator committee as
/// this member sees it (Tahap 14A.2B.1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeStatusResponse {
    /// This node's PeerId.
    pub me: String,
    /// The members' PeerIds, in FROST identifier order.
    pub members: Vec<String>,
    /// Signatures need `threshold` members.
    pub threshold: u16,
    /// The committee epoch.
    pub epoch: u64,
    /// The group public key (64 hex), once this member holds a key share.
    pub group_key: Option<String>,
    /// `no_share`, `dkg_round_1`…`dkg_round_3`, `ready`, or `failed: <reason>`.
    pub state: String,
    /// The DA proposer rotation of this member (issue 13 §1), when the group key is the DA
    /// authority; absent otherwise and from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatusView>,
    /// The automatic epoch rotation of this member (issue 13 §3), while its committee seals
    /// the DA log; absent otherwise and from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epochs: Option<EpochStatusView>,
}

/// The epoch rotation of a member, in [`CommitteeStatusResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochStatusView {
    /// The epoch of the committee in force.
    pub epoch: u64,
    /// `sealing`, `handoff`, `dkg`, `switching` or `fallback`.
    pub phase: String,
    /// The DA height from which the next key signs, once its rotation is in the log.
    pub next_switch_height: Option<u64>,
    /// The epoch of the next committee being prepared, during a handoff.
    pub next_epoch: Option<u64>,
    /// UNIX ms the next schedule epoch starts.
    pub next_epoch_start_ms: u64,
    /// UNIX ms the next handoff window opens (the current one while open).
    pub handoff_opens_ms: u64,
    /// Rotations this node saw take effect.
    pub rotations: u64,
    /// Handoff windows that ended in fallback.
    pub failures: u64,
    /// Why the last window fell back, while in fallback.
    pub fallback_reason: Option<String>,
}

/// The DA proposer rotation of a member, in [`CommitteeStatusResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationStatusView {
    /// `idle` (nothing waits), `active` (rounds run), `no_majority` (fewer than t members
    /// answer: see `waiting_for`), `abstaining` (its record was corrupt),
    /// `waiting_for_log`, `record_write_failed`, or `refused` (e.g. 2t ≤ n; see `detail`).
    pub state: String,
    /// The DA height being decided (DA tip + 1).
    pub height: u64,
    /// This member's round at that height.
    pub round: u64,
    /// The proposer of (height, round), a PeerId.
    pub proposer: Option<String>,
    /// True when this member is that proposer.
    pub proposing: bool,
    /// This member's lock: `{round, blob}` with the SHA-256 (64 hex) of the locked blob's
    /// signing bytes.
    pub lock: Option<RotationLock>,
    /// Milliseconds until the round times out (while active; 0 otherwise).
    pub timeout_in_ms: u64,
    /// The other members that do not answer (not connected, or the last rotation request
    /// to them failed), while fewer than t members answer.
    pub waiting_for: Vec<String>,
    /// Why the member abstains, waits or refuses, when it does.
    pub detail: Option<String>,
}

/// A member's lock at the DA height being decided.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RotationLock {
    /// The round it released its signature share in.
    pub round: u64,
    /// SHA-256 (64 hex) of the locked blob's signing bytes.
    pub blob: String,
}

/// Error body of every non-2xx answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    /// One human-readable line.
    pub error: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_rates() {
        assert_eq!(success_rate(0, 0), None);
        assert_eq!(success_rate(3, 1), Some(0.75));
        assert_eq!(success_rate(0, 5), Some(0.0));
        assert_eq!(success_rate(u64::MAX, u64::MAX), Some(0.5));
    }

    #[test]
    fn peer_info_without_the_newer_fields_still_decodes() {
        let old = r#"{"peer_id": "12D3KooWx", "addresses": [], "services": ["storage"],
            "source": "dns_seed", "connected": false, "direction": null, "last_seen": null,
            "last_success": null, "success_count": 0, "failure_count": 0, "score": 10}"#;
        let p: PeerInfo = serde_json::from_str(old).expect("decode");
        assert_eq!(p.netgroup, None);
        assert!(!p.suspicious);
        assert_eq!(p.banned_until, None);
    }

    #[test]
    fn ban_body_is_optional_field() {
        let b: BanRequest = serde_json::from_str("{}").expect("decode");
        assert_eq!(b.duration_secs, None);
        let b: BanRequest = serde_json::from_str(r#"{"duration_secs": 60}"#).expect("decode");
        assert_eq!(b.duration_secs, Some(60));
    }
}
