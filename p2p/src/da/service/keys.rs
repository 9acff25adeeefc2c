//! The DA authority key of each height (issue 13 §3): `[network] da_authority` is the
//! genesis authority; the committee epochs recorded in the DA state (`committee_rotated`
//! events) give the key of every later height ([`KeyHistory`]). Every blob this node
//! verifies — gossip, backfill, ranges, its own disk, fork evidence — is checked against
//! the key of its height, so a node syncing from height 1 follows rotations with no config
//! edit and no restart.

use dsdn_protocols::da::epochs::admit_rotation;
use dsdn_protocols::da::{CommitteeRotation, EpochRecord, EventOutcome, KeyHistory};

use super::*;

/// The key history of `genesis` and the epochs recorded in `state` (`None` without a
/// genesis authority). A state that cannot be read gives the genesis authority alone, with
/// an error log: blobs of later epochs then fail to verify until the state reads again.
pub(super) fn history_of(genesis: Option<[u8; 32]>, state: &DaState) -> Option<KeyHistory> {
    let genesis = genesis?;
    match state.committee_epochs() {
        Ok(epochs) => Some(KeyHistory::with_epochs(genesis, epochs)),
        Err(e) => {
            tracing::error!(error = %e, "cannot read the committee epochs of the DA state");
            Some(KeyHistory::new(genesis))
        }
    }
}

/// True when one of `applied` carries a `committee_rotated` event (the key history is
/// re-read from the state after it).
pub(super) fn rotates(applied: &[VerifiedBlob]) -> bool {
    applied.iter().any(|b| {
        b.blob()
            .events
            .iter()
            .any(|e| matches!(e, DaEvent::CommitteeRotated(_)))
    })
}

/// Decodes `bytes` and verifies the blob against the key `history` gives for its height
/// and, for a version-4 blob, its proposer against the members of its epoch
/// ([`KeyHistory::verify_blob`]).
///
/// # Errors
/// As [`DaBlob::from_bytes`] and [`KeyHistory::verify_blob`]; [`DaError::NoAuthority`]
/// without a history.
pub(super) fn verify_with(
    history: Option<&KeyHistory>,
    network: &NetworkId,
    bytes: &[u8],
) -> Result<VerifiedBlob, DaError> {
    let history = history.ok_or(DaError::NoAuthority)?;
    history.verify_blob(DaBlob::from_bytes(bytes)?, network)
}

/// Adds to `history` the rotations of `blob` (verified, not applied: e.g. a range fetched
/// beyond the tip) that the state would admit ([`admit_rotation`]), so that the blobs after
/// it verify against their epoch's key.
pub(super) fn follow(history: &mut KeyHistory, network: &NetworkId, blob: &VerifiedBlob) {
    for event in &blob.blob().events {
        if let DaEvent::CommitteeRotated(rotation) = event {
            if admit_rotation(history.latest(), rotation, network, blob.height()).is_ok() {
                history.push(EpochRecord::of(rotation, blob.height()));
            }
        }
    }
}

impl DaService {
    /// The key that must sign the blob at `height` (final up to the applied tip + 1; see
    /// [`KeyHistory::key_for`]); `None` without a configured genesis authority.
    pub(crate) fn key_for(&self, height: u64) -> Option<[u8; 32]> {
        self.keys.as_ref().map(|k| k.key_for(height))
    }

    /// The key in force for the next height (`key_for(tip + 1)`): the key a sealer of
    /// this node must hold now.
    pub(crate) fn current_key(&self) -> Option<[u8; 32]> {
        self.key_for(self.chain.height() + 1)
    }

    /// The group key of committee epoch `epoch` as this node's log records it
    /// ([`KeyHistory::key_of_epoch`]); `None` without a genesis authority or for an epoch
    /// not recorded yet.
    pub(crate) fn epoch_key(&self, epoch: u64) -> Option<[u8; 32]> {
        self.keys.as_ref().and_then(|k| k.key_of_epoch(epoch))
    }

    /// The other key valid for threshold receipts at the next height around a rotation
    /// (`KeyHistory::receipt_keys`: the recorded next key before it takes effect, the
    /// previous one for `RECEIPT_HANDOFF_HEIGHTS` heights after); `None` outside a handoff
    /// or without a genesis authority.
    pub(crate) fn handoff_receipt_key(&self) -> Option<[u8; 32]> {
        let next = self.chain.height().saturating_add(1);
        self.keys.as_ref().and_then(|k| k.receipt_keys(next).1)
    }

    /// The internal path of the epoch rotation driver (issue 13 §3, its `Propose`): queues
    /// a signed `committee_rotated` event in this member's pool, from where the current
    /// proposer seals it like any event (forwarded to it when this member is not the
    /// proposer). Publishers cannot submit it ([`DaEvent::validate_for_sealing`]).
    ///
    /// # Errors
    /// This node does not seal by rotation, the state would not admit the rotation at the
    /// next height ([`DaService::sealable`]), or the pool is full.
    pub(crate) fn propose_rotation(
        &mut self,
        rotation: CommitteeRotation,
        now: Instant,
    ) -> Result<(), String> {
        if !self.seals_by_rotation() {
            return Err("this node does not seal by rotation".into());
        }
        let event = DaEvent::CommitteeRotated(Box::new(rotation));
        self.sealable(&event)?;
        self.queue_event(event, Reply::Internal, now)
            .map_err(|_| "the DA event pool is full".to_owned())
    }

    /// What a committee member checks of an event before queueing, forwarding or
    /// co-signing it: [`DaEvent::validate_for_sealing`], except that a `committee_rotated`
    /// event (never a publisher's) must be admitted by the state at the next height
    /// ([`DaState::check_event`]: `admit_rotation` with its key proof).
    ///
    /// # Errors
    /// Why the event is not sealable, for logs and the proposer's error message.
    pub(super) fn sealable(&self, event: &DaEvent) -> Result<(), String> {
        self.sealable_at(event, unix_ms())
    }

    /// [`DaService::sealable`] for a blob dated `timestamp_ms` (UNIX ms; the pool's checks
    /// use the clock): a `committee_rotated` event must also be the selection of the
    /// handoff window the blob is dated in, when this member runs the epoch rotation
    /// ([`DaService::set_selection_rule`], `crate::committee::epochs::check_rotation`).
    ///
    /// # Errors
    /// As [`DaService::sealable`], or why the rotation is not this log's selection.
    pub(super) fn sealable_at(&self, event: &DaEvent, timestamp_ms: u64) -> Result<(), String> {
        let DaEvent::CommitteeRotated(rotation) = event else {
            return event.validate_for_sealing().map_err(|e| e.to_string());
        };
        match self.chain.state().check_event(event) {
            Ok(EventOutcome::Applied) => {}
            Ok(EventOutcome::Ignored(label)) => {
                return Err(format!("committee_rotated event not admitted: {label}"))
            }
            Err(e) => return Err(format!("committee_rotated event: {e}")),
        }
        match &self.selection {
            Some(rule) => {
                crate::committee::epochs::check_rotation(rule, self, rotation, timestamp_ms)
            }
            None => Ok(()),
        }
    }

    /// The selection rule `committee_rotated` events must follow on this member (issue 13
    /// §3); `None`: not checked (a member whose epoch rotation does not run).
    pub(crate) fn set_selection_rule(
        &mut self,
        rule: Option<crate::committee::epochs::SelectionRule>,
    ) {
        self.selection = rule;
    }

    /// `(timestamp_ms, hash)` of the applied blob at `height`, read from the log (the
    /// unwritten buffer or the disk); `None` when this node does not hold it.
    pub(crate) fn blob_stamp(&self, height: u64) -> Option<(u64, [u8; 32])> {
        let blob = DaBlob::from_bytes(&self.read_blob(height)?).ok()?;
        Some((blob.timestamp_ms, blob.hash().ok()?))
    }

    /// Decodes and verifies a blob against the key of its height.
    ///
    /// # Errors
    /// As [`verify_with`].
    pub(super) fn verify_blob(&self, bytes: &[u8]) -> Result<VerifiedBlob, DaError> {
        verify_with(self.keys.as_ref(), &self.network, bytes)
    }

    /// True when a signature failure of a blob at `height` may be a key this node does not
    /// know yet: the height is beyond the applied tip + 1, so a rotation in a blob not
    /// applied yet may name the key that signed it. Such a blob is dropped without
    /// penalising the sender; backfill fetches it again in order.
    pub(super) fn key_pending(&self, bytes: &[u8], error: &DaError) -> bool {
        *error == DaError::BadSignature
            && DaBlob::from_bytes(bytes).is_ok_and(|b| b.height > self.chain.height() + 1)
    }

    /// Re-reads the key history after `applied` when one of them rotated the committee.
    pub(super) fn refresh_keys(&mut self, applied: &[VerifiedBlob]) {
        if rotates(applied) {
            self.keys = history_of(self.authority, self.chain.state());
            if let Some(epoch) = self.keys.as_ref().and_then(KeyHistory::latest) {
                tracing::info!(
                    epoch = epoch.epoch,
                    effective_height = epoch.effective_height,
                    group_key = %hex::encode(epoch.group_key.0),
                    members = epoch.members.len(),
                    threshold = epoch.threshold,
                    "committee rotation recorded in the DA log"
                );
            }
        }
    }
}
