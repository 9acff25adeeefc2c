//! Proofs of the DA state (issue 16 §3): a key's value or absence with its jmt proof
//! against the state root at a height.

use super::*;

impl DaService {
    /// The node's DA log with its state (for the proof worker), `None` without a data
    /// directory.
    pub(crate) fn log_store(&self) -> Option<Arc<store::DaStore>> {
        self.log.as_ref().map(|l| Arc::clone(&l.store))
    }

    /// The height a proof of `height` (the current height when `None`) is built at, when
    /// the proof worker can build it from the durable state (log and state stored up to
    /// it); `None` when only [`DaService::proof`] can (a height applied but not durable
    /// yet, or a node without a data directory).
    pub(crate) fn durable_proof_height(&self, height: Option<u64>) -> Option<u64> {
        let log = self.log.as_ref()?;
        let at = height.unwrap_or(self.chain.height());
        (at <= log.durable.min(log.store.state_tip())).then_some(at)
    }

    /// The value of `key` with its proof against the state root at `height` (the current
    /// height when `None`) for `GET /v1/da/proof` (issue 16 §3). A full node proves any
    /// height whose tree it keeps (the current height, and the durable heights of the last
    /// `da.proof_history_heights`); a node without a data directory (light client)
    /// only its current height. O(log n) reads.
    ///
    /// # Errors
    /// [`StateError::HeightUnavailable`] for a height above the current one, pruned, or
    /// applied but not durable yet (other than the current one); [`StateError::Store`]
    /// when the store cannot be read.
    pub(crate) fn proof(
        &self,
        key: &dsdn_protocols::da::StateKey,
        height: Option<u64>,
    ) -> Result<dsdn_protocols::da::StateProof, dsdn_protocols::da::StateError> {
        use dsdn_protocols::da::{StateError, StateProof};
        let st = self.chain.state();
        let current = st.height();
        let height = height.unwrap_or(current);
        if height == current {
            return st.prove(key);
        }
        let (oldest, root) = match &self.log {
            Some(log) if height <= log.durable.min(log.store.state_tip()) => {
                let oldest = log.store.state_oldest()?;
                (oldest, log.store.state_root_at(height)?)
            }
            _ => (current, None),
        };
        match root {
            Some(root) if height >= oldest => StateProof::build(st.store(), key, height, root),
            _ => Err(StateError::HeightUnavailable {
                height,
                oldest,
                newest: current,
            }),
        }
    }
}
