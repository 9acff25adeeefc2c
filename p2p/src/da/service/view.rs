//! `GET /v1/da/state`: the DA state of a node as the API shows it.

use super::*;

/// The DA state of a node: the DA log and the 14A §2 state replayed from it. The answer of
/// `NodeHandle::da_state`, and as is the JSON of `GET /v1/da/state` (hashes as 64 hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaStateView {
    /// Height of the last applied blob (0: empty log).
    pub height: u64,
    /// Its hash (zeros for an empty log); 64 hex in JSON.
    #[serde(serialize_with = "hex32", deserialize_with = "crate::da::from_hex32")]
    pub tip_hash: [u8; 32],
    /// Events in the applied blobs.
    pub events: u64,
    /// Of which changed nothing under the 14A §2 rules (e.g. a replica of an unknown
    /// chunk, a delete with a bad owner signature).
    pub ignored_events: u64,
    /// The deterministic root of the 14A §2 state: equal on every node at the same height;
    /// 64 hex in JSON.
    #[serde(serialize_with = "hex32", deserialize_with = "crate::da::from_hex32")]
    pub state_root: [u8; 32],
    /// Registered storage nodes (`node_registry`).
    pub nodes: usize,
    /// Declared chunks (`chunk_map`).
    pub chunks: usize,
    /// Replicas over all chunks (`replica_map`).
    pub replicas: usize,
    /// Zones with at least one node (`zone_map`).
    pub zones: usize,
    /// Threshold receipts recorded in the log (`ReceiptRecorded` events, Tahap 14C);
    /// absent from older daemons (read as 0).
    #[serde(default)]
    pub receipts: usize,
    /// Verified blobs held until the gap before them fills.
    pub pending: usize,
    /// The highest log tip any peer reported (the backfill target).
    pub target_height: u64,
    /// Blobs rejected since start (bad signature, broken chain, malformed, …).
    pub rejected: u64,
    /// True when no peer reported a higher tip, nothing is held and the log is not
    /// degraded (its writes succeed).
    pub synced: bool,
    /// True when this node is the DA authority (it seals blobs).
    pub is_authority: bool,
    /// Events waiting to be sealed (DA authority only).
    pub queued_events: usize,
    /// Height up to which the log is durable on disk (`height` without a data directory);
    /// the blobs above it are applied and served from memory until the writer commits
    /// them (issue 11). Absent from older daemons (read as 0).
    #[serde(default)]
    pub durable_height: u64,
    /// Set while writes to the DA log fail (issue 14 §2): the error, since when, the
    /// retries. The node then claims and serves only `durable_height` and is not
    /// `synced`. Absent (`null`) while the log is healthy.
    #[serde(default)]
    pub degraded: Option<crate::storage::StorageIssue>,
    /// The last committee epoch recorded in the log by a `committee_rotated` event (issue
    /// 13 §3); `null` while the genesis authority signs. Absent from older daemons.
    #[serde(default)]
    pub committee_epoch: Option<u64>,
    /// The DA authority key in force for the next height (the genesis `da_authority`, or
    /// the group key of the recorded epoch in effect); 64 hex in JSON, `null` without an
    /// authority. Absent from older daemons.
    #[serde(default)]
    pub authority_key: Option<String>,
}

impl DaService {
    /// The state for `GET /v1/da/state`.
    pub(crate) fn view(&self) -> DaStateView {
        let st = self.chain.state();
        let degraded = self.storage_issue(Instant::now());
        DaStateView {
            height: st.height(),
            tip_hash: st.tip_hash(),
            events: st.events(),
            ignored_events: st.ignored_events(),
            state_root: st.state_root(),
            nodes: st.header().nodes as usize,
            chunks: st.header().chunks as usize,
            replicas: st.header().replicas as usize,
            zones: st.header().zones as usize,
            receipts: st.header().receipts as usize,
            pending: self.chain.pending(),
            target_height: self.planner.target().max(st.height()),
            rejected: self.rejected,
            synced: self.planner.target() <= st.height()
                && self.chain.pending() == 0
                && degraded.is_none(),
            is_authority: self.is_authority(),
            queued_events: self.queued_events(),
            durable_height: self.durable_height(),
            degraded,
            committee_epoch: self.keys.as_ref().and_then(|k| k.latest()).map(|e| e.epoch),
            authority_key: self.current_key().map(hex::encode),
        }
    }
}
