//! Receipt, workload and dispute shapes of the control API (see [`super`] for the endpoint
//! table): `GET /v1/receipts/{id}`, `POST /v1/workloads`, `GET /v1/disputes`.

use serde::{Deserialize, Serialize};

use super::ForkEvidenceView;

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
    /// `GET /v1/receipts/{id}` only: the group key of the receipt's `epoch` as the node's
    /// DA log records it (the genesis `da_authority` before the first `committee_rotated`
    /// event; issue 13 §3), the key it must verify under (`dsdn-agent receipt verify`'s
    /// default); absent when the node has no DA authority or the epoch is not recorded.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epoch_key: Option<String>,
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
            epoch_key: None,
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
