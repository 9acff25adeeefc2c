//! [`OfflineState`]: a DA log with its state in a redb file, applied outside a daemon by the
//! same code a full node uses ([`super::StoredState`] under a [`DaState`]) — for tools that
//! need the exact state root of every height, such as the scale benchmark's log generator,
//! which must fill each blob's `prev_state_root` (issue 16 §3).

use std::path::Path;
use std::sync::Arc;

use dsdn_protocols::da::{ChainError, DaState, VerifiedBlob};
use dsdn_protocols::NetworkId;

use super::{overlay_lock, DaStore, DaStoreError, SharedOverlay, StoredState};

/// A log and its state, applied blob by blob ([`OfflineState::apply`], in memory) and
/// written in one redb transaction per [`OfflineState::flush`]. Memory: the blobs and
/// state commits applied since the last flush (the caller bounds them by flushing),
/// independent of the state's size.
pub struct OfflineState {
    store: Arc<DaStore>,
    state: DaState,
    overlay: SharedOverlay,
    /// Applied, not yet written: (height, encoded blob).
    unwritten: Vec<(u64, Vec<u8>)>,
}

impl std::fmt::Debug for OfflineState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OfflineState")
            .field("height", &self.state.height())
            .finish()
    }
}

/// Why an [`OfflineState`] could not open or apply.
#[derive(Debug, thiserror::Error)]
pub enum OfflineError {
    /// The redb file failed (open, read, append).
    #[error(transparent)]
    Store(#[from] DaStoreError),
    /// A blob does not extend the state (or the state could not be read).
    #[error(transparent)]
    Chain(#[from] ChainError),
}

impl OfflineState {
    /// Opens (or creates) the log at `path` for `network`, with the state stored in it.
    ///
    /// # Errors
    /// [`OfflineError::Store`] as [`DaStore::open`], or when the stored state header cannot
    /// be read or the file was unusable (moved aside).
    pub fn open(path: &Path, network: &NetworkId) -> Result<OfflineState, OfflineError> {
        let opened = DaStore::open(path, network)?;
        if let Some(aside) = opened.moved_aside {
            return Err(DaStoreError::Db(format!(
                "{} was unusable and moved to {}",
                path.display(),
                aside.display()
            ))
            .into());
        }
        let store = Arc::new(opened.store);
        let (stored, overlay) =
            StoredState::open(Arc::clone(&store)).map_err(|e| DaStoreError::Db(e.to_string()))?;
        Ok(OfflineState {
            store,
            state: DaState::with_store(network.clone(), Box::new(stored)),
            overlay,
            unwritten: Vec::new(),
        })
    }

    /// Reopens the file with a redb page cache of `bytes` ([`DaStore::set_cache_bytes`]):
    /// a tool applying millions of blobs wants a large one. Call it between flushes.
    ///
    /// # Errors
    /// [`OfflineError::Store`] when the file cannot be reopened (then drop this value).
    pub fn set_cache_bytes(&mut self, bytes: usize) -> Result<(), OfflineError> {
        Ok(self.store.set_cache_bytes(bytes)?)
    }

    /// The state after the last applied blob (its root is the next blob's
    /// `prev_state_root`).
    pub fn state(&self) -> &DaState {
        &self.state
    }

    /// Applies `blob` (the next height) to the state; it is written at the next
    /// [`OfflineState::flush`].
    ///
    /// # Errors
    /// [`OfflineError::Chain`] when the blob does not extend the state (nothing changes).
    pub fn apply(&mut self, blob: &VerifiedBlob) -> Result<(), OfflineError> {
        self.state.apply_blob(blob)?;
        self.unwritten
            .push((blob.height(), blob.encoded().to_vec()));
        Ok(())
    }

    /// Appends the blobs applied since the last flush with their state commits, in one
    /// transaction.
    ///
    /// # Errors
    /// [`OfflineError::Store`] when the append fails (then drop this value: memory and
    /// disk differ).
    pub fn flush(&mut self) -> Result<(), OfflineError> {
        let commits = overlay_lock(&self.overlay).take_outbox();
        let blobs: Vec<(u64, &[u8])> = self
            .unwritten
            .iter()
            .map(|(h, b)| (*h, b.as_slice()))
            .collect();
        self.store.append_with_state(&blobs, &commits)?;
        self.unwritten.clear();
        overlay_lock(&self.overlay).release(self.state.height());
        Ok(())
    }
}
