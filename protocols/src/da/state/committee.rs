//! The committee epochs of the DA state (issue 13 §3): `committee_rotated` events recorded
//! under `committee:<epoch>` and `committee:latest`, and the key history read back from them;
//! the coordinator registry (`coordinator:<node_id>`, `coordinator_registered` events) the
//! next committees are selected from.

use super::{BlobTx, DaState, EventOutcome, StateError, StateKey, StateValue};
use crate::da::epochs::{admit_rotation, CommitteeRotation, EpochRecord};

impl BlobTx<'_> {
    /// The last recorded epoch (as of the writes of this blob so far).
    pub(super) fn latest_epoch(&self) -> Result<Option<EpochRecord>, StateError> {
        let Some(StateValue::CommitteeLatest { epoch }) = self.get(&StateKey::CommitteeLatest)?
        else {
            return Ok(None);
        };
        self.epoch(epoch)
    }

    fn epoch(&self, epoch: u64) -> Result<Option<EpochRecord>, StateError> {
        Ok(match self.get(&StateKey::Committee(epoch))? {
            Some(StateValue::Committee(record)) => Some(record),
            _ => None,
        })
    }

    /// The recorded epoch in force at `height` (`None`: the genesis authority's). Reads the
    /// latest epoch and walks back while its effective height is above `height` (at most
    /// one step at the tip: a rotation takes effect before the next is admitted).
    pub(super) fn epoch_at(&self, height: u64) -> Result<Option<EpochRecord>, StateError> {
        let mut current = self.latest_epoch()?;
        while let Some(record) = current {
            if record.effective_height <= height {
                return Ok(Some(record));
            }
            current = match record.epoch.checked_sub(1) {
                Some(previous) => self.epoch(previous)?,
                None => None,
            };
        }
        Ok(None)
    }

    /// See [`DaState::check_event`] for `committee_rotated`.
    pub(super) fn check_rotation(
        &self,
        rotation: &CommitteeRotation,
    ) -> Result<EventOutcome, StateError> {
        let latest = self.latest_epoch()?;
        Ok(
            match admit_rotation(latest.as_ref(), rotation, self.network, self.height) {
                Ok(()) => EventOutcome::Applied,
                Err(label) => EventOutcome::Ignored(label),
            },
        )
    }

    /// Records an admitted rotation carried by the blob at `height`.
    pub(super) fn record_rotation(
        &mut self,
        rotation: &CommitteeRotation,
        height: u64,
    ) -> Result<(), StateError> {
        let record = EpochRecord::of(rotation, height);
        self.put(
            StateKey::CommitteeLatest,
            Some(StateValue::CommitteeLatest {
                epoch: record.epoch,
            }),
        )?;
        self.put(
            StateKey::Committee(record.epoch),
            Some(StateValue::Committee(record)),
        )
    }
}

/// Most registry entries [`DaState::coordinators`] reads (the candidates of one selection).
pub const MAX_COORDINATORS: usize = 4096;

impl DaState {
    /// The height at which `node_id` was first registered as a coordinator (`None`: not
    /// registered).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn coordinator(&self, node_id: &str) -> Result<Option<u64>, StateError> {
        Ok(
            match self.get(&StateKey::Coordinator(node_id.to_owned()))? {
                Some(StateValue::Coordinator { registered_at }) => Some(registered_at),
                _ => None,
            },
        )
    }

    /// The coordinator registry: `(node_id, registered_at)` of every registered coordinator,
    /// by ascending node id, at most [`MAX_COORDINATORS`] (the first ones in that order;
    /// O(entries) reads).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn coordinators(&self) -> Result<Vec<(String, u64)>, StateError> {
        // Registry ids are PeerIds (base58, ASCII): every one sorts below U+007F.
        let lo = StateKey::Coordinator(String::new());
        let hi = StateKey::Coordinator("\u{7f}".repeat(crate::da::event::MAX_TEXT_LEN + 1));
        let mut out = Vec::new();
        for key in self.store.keys_in(&lo, &hi, MAX_COORDINATORS)? {
            if let (StateKey::Coordinator(id), Some(StateValue::Coordinator { registered_at })) =
                (&key, self.get(&key)?)
            {
                out.push((id.clone(), registered_at));
            }
        }
        Ok(out)
    }

    /// The last recorded committee epoch and the one in force at `next_height` (the last
    /// with `effective_height ≤ next_height`; `None`: none yet, the genesis committee).
    /// Reads from `committee:latest` down and stops at the first in force: one or two reads
    /// on a running node, whatever the number of epochs (unlike
    /// [`DaState::committee_epochs`], which reads them all).
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn epochs_at(
        &self,
        next_height: u64,
    ) -> Result<(Option<EpochRecord>, Option<EpochRecord>), StateError> {
        let tx = self.tx();
        let latest = tx.latest_epoch()?;
        let mut current = latest.clone();
        while let Some(record) = current {
            if record.effective_height <= next_height {
                return Ok((latest, Some(record)));
            }
            current = match record.epoch.checked_sub(1) {
                Some(previous) => tx.epoch(previous)?,
                None => None,
            };
        }
        Ok((latest, None))
    }

    /// Every recorded committee epoch, oldest first (the log's part of a
    /// [`crate::da::KeyHistory`]). Reads `committee:latest` and walks the epochs down to the
    /// first recorded one: O(epochs) reads.
    ///
    /// # Errors
    /// [`StateError`] when the store cannot be read.
    pub fn committee_epochs(&self) -> Result<Vec<EpochRecord>, StateError> {
        let tx = self.tx();
        let mut out = Vec::new();
        let mut current = tx.latest_epoch()?;
        while let Some(record) = current {
            current = match record.epoch.checked_sub(1) {
                Some(previous) => tx.epoch(previous)?,
                None => None,
            };
            out.push(record);
        }
        out.reverse();
        Ok(out)
    }
}
