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
    /// The blob format version (2; 1 for a blob of a log written before issue 16 §3).
    /// Absent from older nodes' answers (read as 0).
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

/// A threshold-signed receipt (`GET /v1/receipts/{id}`, Tahap 14A.2B.1 §2b and 14C.A §1):
/// its fields for display and the whole receipt as CBOR, so that anyone can verify it
/// without trusting the daemon. 32-byte values are 64 hex characters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReceiptResponse {
    /// The receipt id (the job: workload, input, node, submitter, nonce).
    pub receipt_id: String,
    /// `SHA-256(committee signing bytes ‖ aggregate signature)`, as in the DA log.
    pub receipt_hash: String,
    /// `SHA-256` of the module.
    pub workload_id: String,
    /// The executing node's PeerId.
    pub node: String,
    /// The submitter's Ed25519 public key.
    pub submitter: String,
    /// The submitter's nonce.
    pub nonce: u64,
    /// `SHA-256` of the input.
    pub input_hash: String,
    /// `SHA-256` of the output.
    pub output_hash: String,
    /// Memory hash before the run.
    pub state_root_before: String,
    /// Memory hash after the run.
    pub state_root_after: String,
    /// Merkle root of the checkpoints.
    pub trace_root: String,
    /// Number of checkpoints.
    pub checkpoints: u64,
    /// Fuel used.
    pub fuel_used: u64,
    /// Peak linear memory, in bytes.
    pub memory_peak_bytes: u64,
    /// Wall time of the run on the node, in milliseconds.
    pub wall_time_ms: u64,
    /// When the node executed it (UNIX ms).
    pub executed_at_ms: u64,
    /// The committee epoch.
    pub epoch: u64,
    /// The committee hash.
    pub committee_hash: String,
    /// The group key the receipt is signed under.
    pub group_key: String,
    /// The members whose shares were aggregated (PeerIds).
    pub signers: Vec<String>,
    /// The whole `ThresholdReceipt` (or, for `kind` `optimistic`, `OptimisticReceipt`),
    /// CBOR, in hex.
    pub receipt_cbor: String,
    /// Which receipt `receipt_cbor` holds: `threshold` or `optimistic` (issue 13 §5).
    #[serde(default = "threshold_text")]
    pub kind: String,
    /// What the receipt is worth when answered: `threshold`; `optimistic` (its challenge
    /// window is open); `expired` (the window ended without the threshold receipt:
    /// unconfirmed, not to be relied on); `challenged` (a threshold receipt of its job
    /// carries another execution commitment, see `GET /v1/disputes`).
    #[serde(default = "threshold_text")]
    pub status: String,
    /// Optimistic receipts: the PeerId of the coordinator that signed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coordinator: Option<String>,
    /// Optimistic receipts: when it was signed (UNIX ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_at_ms: Option<u64>,
    /// Optimistic receipts: the end of the challenge window (UNIX ms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_deadline_ms: Option<u64>,
}

fn threshold_text() -> String {
    "threshold".to_owned()
}

impl ReceiptResponse {
    /// The response for `receipt`.
    ///
    /// # Errors
    /// The receipt cannot be encoded (over its size cap).
    pub fn new(
        receipt: &dsdn_protocols::receipt::ThresholdReceipt,
    ) -> Result<Self, dsdn_protocols::receipt::ReceiptError> {
        let r = &receipt.receipt;
        let c = &r.commitment;
        let h = |b: &dsdn_protocols::da::Bytes32| hex::encode(b.0);
        let node = libp2p::PeerId::from_bytes(&r.node_peer_id())
            .map_or_else(|_| h(&r.node_key), |p| p.to_string());
        Ok(ReceiptResponse {
            receipt_id: h(&r.receipt_id),
            receipt_hash: h(&receipt.receipt_hash()?),
            workload_id: h(&r.workload_id),
            node,
            submitter: h(&r.submitter),
            nonce: r.nonce,
            input_hash: h(&c.input_hash),
            output_hash: h(&c.output_hash),
            state_root_before: h(&c.state_root_before),
            state_root_after: h(&c.state_root_after),
            trace_root: h(&c.trace_root),
            checkpoints: c.checkpoints,
            fuel_used: c.fuel_used,
            memory_peak_bytes: r.usage.memory_peak_bytes,
            wall_time_ms: r.usage.wall_time_ms,
            executed_at_ms: r.executed_at_ms,
            epoch: receipt.epoch,
            committee_hash: h(&receipt.committee_hash),
            group_key: hex::encode(receipt.group_key.0),
            signers: receipt
                .signers
                .iter()
                .map(|m| {
                    dsdn_p2p::committee::member_peer(m)
                        .map_or_else(|| m.to_string(), |p| p.to_string())
                })
                .collect(),
            receipt_cbor: hex::encode(receipt.to_bytes()?),
            kind: threshold_text(),
            status: threshold_text(),
            coordinator: None,
            issued_at_ms: None,
            challenge_deadline_ms: None,
        })
    }

    /// The response for a receipt a node holds, with its status at `now_ms` (UNIX ms). An
    /// optimistic receipt shows the committee it waits for (epoch, committee hash, group
    /// key), no signers, and its coordinator and challenge window.
    ///
    /// # Errors
    /// The receipt cannot be encoded (over its size cap).
    pub fn held(
        held: &dsdn_p2p::workload::HeldReceipt,
        now_ms: u64,
    ) -> Result<Self, dsdn_protocols::receipt::ReceiptError> {
        use dsdn_p2p::workload::{HeldReceipt, ReceiptStatus};
        let o = match held {
            HeldReceipt::Threshold(t) => return Self::new(t),
            HeldReceipt::Optimistic { receipt, .. } => receipt,
        };
        // The threshold shape over the same node receipt and committee, then the fields
        // that differ.
        let mut out = Self::new(&dsdn_protocols::receipt::ThresholdReceipt {
            receipt: o.receipt,
            epoch: o.epoch,
            committee_hash: o.committee_hash,
            group_key: o.group_key,
            signers: Vec::new(),
            aggregate_signature: dsdn_protocols::da::Bytes64([0; 64]),
        })?;
        out.receipt_hash = hex::encode(o.receipt_hash()?.0);
        out.receipt_cbor = hex::encode(o.to_bytes()?);
        out.kind = "optimistic".to_owned();
        out.status = match held.status(now_ms) {
            ReceiptStatus::Threshold => "threshold",
            ReceiptStatus::Optimistic { .. } => "optimistic",
            ReceiptStatus::Expired { .. } => "expired",
            ReceiptStatus::Challenged => "challenged",
        }
        .to_owned();
        out.coordinator = Some(
            libp2p::PeerId::from_bytes(&dsdn_protocols::receipt::peer_id_bytes(&o.coordinator_key))
                .map_or_else(|_| hex::encode(o.coordinator_key.0), |p| p.to_string()),
        );
        out.issued_at_ms = Some(o.issued_at_ms);
        out.challenge_deadline_ms = Some(o.challenge_deadline_ms);
        Ok(out)
    }

    /// True for an optimistic receipt (`kind` `optimistic`).
    pub fn is_optimistic(&self) -> bool {
        self.kind == "optimistic"
    }

    /// The threshold receipt itself, decoded from [`ReceiptResponse::receipt_cbor`] (not
    /// verified).
    ///
    /// # Errors
    /// A text when the hex or the CBOR is malformed, or the receipt is optimistic (see
    /// [`ReceiptResponse::decode_optimistic`]).
    pub fn decode(&self) -> Result<dsdn_protocols::receipt::ThresholdReceipt, String> {
        if self.is_optimistic() {
            return Err(format!(
                "an optimistic receipt ({}), not threshold-signed",
                self.status
            ));
        }
        let bytes = hex::decode(&self.receipt_cbor).map_err(|e| format!("receipt_cbor: {e}"))?;
        dsdn_protocols::receipt::ThresholdReceipt::from_bytes(&bytes).map_err(|e| e.to_string())
    }

    /// The optimistic receipt itself, decoded from [`ReceiptResponse::receipt_cbor`] (not
    /// verified).
    ///
    /// # Errors
    /// A text when the hex or the CBOR is malformed or the receipt is not optimistic.
    pub fn decode_optimistic(&self) -> Result<dsdn_protocols::receipt::OptimisticReceipt, String> {
        if !self.is_optimistic() {
            return Err("not an optimistic receipt".to_owned());
        }
        let bytes = hex::decode(&self.receipt_cbor).map_err(|e| format!("receipt_cbor: {e}"))?;
        dsdn_protocols::receipt::OptimisticReceipt::from_bytes(&bytes).map_err(|e| e.to_string())
    }
}

/// `POST /v1/workloads`: the receipt and the output.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkloadResponse {
    /// The committee-signed receipt, or for an optimistic submission the coordinator's
    /// optimistic receipt (`kind` `optimistic`).
    pub receipt: ReceiptResponse,
    /// The output, in hex.
    pub output: String,
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

/// `GET /v1/disputes`: the coordinator disputes this node found (issue 13 §6, Tahap
/// 14A.2B.2 §3c), for the chain to judge. Each carries its evidence as CBOR (hex) that
/// verifies on its own: `ForkEvidence::verify` with the network id and DA authority,
/// `DoubleReceipt::verify` and `OptimisticConflict::verify` with the group key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DisputesResponse {
    /// Two validly signed DA blobs at one height.
    pub da_forks: Vec<ForkEvidenceView>,
    /// Two validly signed threshold receipts of one job (`InconsistentScheduling`).
    pub double_receipts: Vec<DoubleReceiptView>,
    /// Optimistic receipts whose job's threshold receipt carries another execution
    /// commitment (the challenge of issue 13 §5).
    #[serde(default)]
    pub optimistic_conflicts: Vec<OptimisticConflictView>,
    /// Receipts validly signed by a key not authorised for the committee
    /// (`UnauthorizedSigner`: a threshold receipt under another group key; on a committee
    /// member, an optimistic receipt by a non-member).
    #[serde(default)]
    pub unauthorized_signers: Vec<SignerDisputeView>,
    /// Receipts naming the committee's group key whose signature does not verify
    /// (`InvalidSignature`).
    #[serde(default)]
    pub invalid_signatures: Vec<SignerDisputeView>,
}

/// One signer dispute of [`DisputesResponse`] (`UnauthorizedSigner::verify` or
/// `InvalidSignature::verify` of its CBOR checks it).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignerDisputeView {
    /// `threshold` or `optimistic`.
    pub kind: String,
    /// The receipt id (64 hex).
    pub receipt_id: String,
    /// The key that signed it: the group key it names, or the coordinator's key (64 hex).
    pub signer: String,
    /// The `UnauthorizedSigner` or `InvalidSignature` CBOR, hex.
    pub dispute_cbor: String,
}

/// One challenged optimistic receipt of [`DisputesResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OptimisticConflictView {
    /// The job both receipts are for (`dsdn/receipt-job/v1` hash, 64 hex).
    pub job: String,
    /// The coordinator's optimistic receipt.
    pub optimistic: ReceiptResponse,
    /// The committee's threshold receipt.
    pub threshold: ReceiptResponse,
    /// The `OptimisticConflict` CBOR, hex.
    pub dispute_cbor: String,
}

/// One double receipt of [`DisputesResponse`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DoubleReceiptView {
    /// The job both receipts are for (`dsdn/receipt-job/v1` hash, 64 hex).
    pub job: String,
    /// The receipt this node accepted first.
    pub receipt_a: ReceiptResponse,
    /// The other one.
    pub receipt_b: ReceiptResponse,
    /// The `DoubleReceipt` CBOR, hex.
    pub dispute_cbor: String,
}
