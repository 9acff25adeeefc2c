//! The DA service's side of a state sync at start (issue 16 §5, PROTOCOL.md §5.3b): while
//! the state sync driver ([`crate::da::state_sync_driver`]) restores the state into the
//! empty log, the service applies no height and asks for none (it would back-fill from
//! height 1); once the restore is finished it reads the restored state from the disk and
//! follows the log from the checkpoint + 1.

use super::*;

impl DaService {
    /// Holds the service for a state sync when its log on disk is empty (no blob, no
    /// state, no base); returns the log the driver restores into. `None` (nothing held):
    /// no log on disk, or a log that is not empty (it replays as usual).
    pub(crate) fn hold_for_state_sync(&mut self) -> Option<Arc<DaStore>> {
        let log = self.log.as_ref()?;
        let store = &log.store;
        let empty = store.tip() == 0
            && store.state_tip() == 0
            && store.base() == 0
            && self.chain.height() == 0;
        if !empty {
            return None;
        }
        self.state_sync_hold = true;
        Some(Arc::clone(store))
    }

    /// The state sync ended: with `restored`, the chain and state are read again from the
    /// disk (the restored state at the log's base) and backfill continues from base + 1;
    /// otherwise the log is still empty and is replayed from height 1 as without state
    /// sync. Either way new heights are taken again.
    pub(crate) fn state_sync_done(&mut self, restored: bool) {
        if !self.state_sync_hold {
            return;
        }
        self.state_sync_hold = false;
        if !restored {
            return;
        }
        if let Some(height) = self.reload() {
            tracing::info!(
                height,
                state_root = %hex::encode(self.chain.state().state_root()),
                "DA state restored by state sync: following the log from height {}",
                height + 1
            );
        }
    }
}
