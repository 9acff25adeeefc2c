//! Sealing through the coordinator committee (issue 6 §3, 14A.2B.1, issue 13 §1): when the
//! DA authority is the committee's group key, every member holding a share takes events
//! into its pending pool ([`super::pool`]) and the proposer rotation
//! (`crate::committee::rotation`) seals them: the proposer of a round builds the blob
//! ([`DaService::propose_blob`]), every signer checks it against its own log first
//! ([`DaService::check_proposal`]), and the aggregate comes back through
//! [`DaService::on_rotation_sealed`].

use super::*;

/// How far a proposed blob's timestamp may run ahead of a member's clock, in milliseconds.
pub(crate) const MAX_PROPOSAL_FUTURE_MS: u64 = 60_000;

/// How this node seals blobs.
pub(crate) enum Sealer {
    /// It seals nothing (not the authority).
    None,
    /// With its own key, which is the DA authority (a single-authority network, issue 5).
    Key(Box<SigningKey>),
    /// Through the committee: this node holds a key share of the group key that is the DA
    /// authority.
    Committee,
}

impl DaService {
    /// Tells the service the group key of the committee this node is a member of, once its
    /// proposer rotation runs (`None`: no key share or no rotation). The node seals through
    /// the committee when that key is the DA authority in force ([`DaService::current_key`]:
    /// the configured genesis authority, or the group key of the epoch recorded in the log);
    /// a node whose own key is the authority keeps sealing with it.
    pub(crate) fn set_committee_key(&mut self, group_key: Option<[u8; 32]>) {
        if matches!(self.sealer, Sealer::Key(_)) {
            return;
        }
        self.sealer = if group_key.is_some() && group_key == self.current_key() {
            Sealer::Committee
        } else {
            Sealer::None
        };
    }

    /// Whether this member may sign `message` for the DA slot `height`: it must be the
    /// signing bytes of a blob of this network at exactly that height, extending this
    /// member's own tip and committing to this member's state root after `height - 1`
    /// ([`check_proposal_root`]), with a timestamp neither before the tip's nor more than
    /// [`MAX_PROPOSAL_FUTURE_MS`] past `now_ms` (UNIX milliseconds), and with every event
    /// passing [`DaEvent::validate_for_sealing`] (each `node_id` a PeerId; a
    /// `committee_rotated` event instead admitted by the state at `height`, see
    /// [`DaService::sealable`]); an empty blob only while a filler is due
    /// ([`DaService::filler_due`]). A member that is
    /// behind refuses; the proposer needs only t answers. There is no lower bound on the
    /// timestamp but the tip's: a blob locked in an earlier round is re-proposed as it was.
    ///
    /// Returns the decoded blob (a version-4 blob's proposer signature checked), for the
    /// author rule of the rotation (`DaRotation::check_author`).
    ///
    /// # Errors
    /// Why the proposal is refused, for the proposer's error message.
    pub(crate) fn check_proposal(
        &self,
        height: u64,
        message: &[u8],
        now_ms: u64,
    ) -> Result<DaBlob, String> {
        let blob = DaBlob::from_signing_bytes(message).map_err(|e| e.to_string())?;
        if blob.network != self.network.as_str() {
            return Err("a blob of another network".into());
        }
        if blob.height != height {
            return Err(format!(
                "blob height {} signed for slot {height}",
                blob.height
            ));
        }
        let next = self.chain.height() + 1;
        if height != next {
            return Err(format!(
                "height {height} is not this member's next height {next}"
            ));
        }
        if blob.prev_hash.0 != self.chain.tip_hash() {
            return Err(format!("blob {height} does not extend this member's tip"));
        }
        check_proposal_root(height, blob.prev_state_root.0, self.chain.state_root())?;
        if blob.timestamp_ms < self.chain.last_timestamp_ms() {
            return Err(format!("blob {height} goes back in time"));
        }
        if blob.timestamp_ms > now_ms.saturating_add(MAX_PROPOSAL_FUTURE_MS) {
            return Err(format!("blob {height} is dated in the future"));
        }
        if blob.events.is_empty() && !self.filler_due(height) {
            return Err(format!(
                "blob {height} is empty and no recorded rotation takes effect above it"
            ));
        }
        // What the proposer admits for sealing, checked again: a signed blob is for good.
        for (i, event) in blob.events.iter().enumerate() {
            self.sealable_at(event, blob.timestamp_ms)
                .map_err(|e| format!("blob {height} event {i}: {e}"))?;
        }
        Ok(blob)
    }
}

/// A proposal for `height` must commit to the member's own state root after `height - 1`
/// (`ours`): a member releases no share for a blob with another `prev_state_root` (issue 16
/// §3). A member that has not applied `height - 1` yet refuses earlier (its next height
/// differs) and is asked again in a later round.
///
/// # Errors
/// Both roots, in hex, for the proposer's error message.
pub(crate) fn check_proposal_root(
    height: u64,
    proposed: [u8; 32],
    ours: [u8; 32],
) -> Result<(), String> {
    if proposed == ours {
        return Ok(());
    }
    Err(format!(
        "blob {height} commits to state root {} after height {}, this member's is {}",
        hex::encode(proposed),
        height.saturating_sub(1),
        hex::encode(ours)
    ))
}
