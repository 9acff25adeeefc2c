//! [`NodeHandle`]'s DA calls: publishing and submitting blobs, the state and its proofs,
//! fork evidence, and the raw or verified ranges, proofs and state chunks asked of peers.

use super::*;

impl NodeHandle {
    /// Queues `events` for the next DA blobs and waits until all of them are sealed,
    /// signed, stored and gossiped (at most `batch_interval_ms` plus the sealing time, or
    /// the start grace right after the node started). DA authority only.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner [`PublishError`] when the node
    /// is not the authority, an event is invalid (nothing is queued then), or the queue is
    /// full.
    pub async fn publish_da(
        &self,
        events: Vec<DaEvent>,
    ) -> Result<Result<Published, PublishError>, Stopped> {
        self.ask(|tx| Command::PublishDa(events, tx)).await
    }

    /// Verifies, applies (or holds) and gossips a blob signed elsewhere, e.g. by the
    /// coordinator committee's group key.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner [`SubmitError`] when the blob
    /// does not verify or does not extend the log.
    pub async fn submit_blob(
        &self,
        bytes: Vec<u8>,
    ) -> Result<Result<Submitted, SubmitError>, Stopped> {
        self.ask(|tx| Command::SubmitBlob(bytes, tx)).await
    }

    /// The DA state.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn da_state(&self) -> Result<DaStateView, Stopped> {
        self.ask(Command::DaState).await
    }

    /// The value of `key` (or its absence) with its inclusion or exclusion proof against
    /// the state root at `height` (the current height when `None`); see
    /// `DaService::proof` for the heights a node can prove.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner error when the height is not
    /// available or the store cannot be read.
    pub async fn da_proof(
        &self,
        key: dsdn_protocols::da::StateKey,
        height: Option<u64>,
    ) -> Result<Result<dsdn_protocols::da::StateProof, dsdn_protocols::da::StateError>, Stopped>
    {
        self.ask(|tx| Command::DaProof(key, height, tx)).await
    }

    /// The fork evidence this node holds (issue 13 §4): pairs of validly signed DA blobs at
    /// one height, oldest first, at most [`crate::da::MAX_FORK_EVIDENCE`].
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn da_evidence(&self) -> Result<Vec<crate::da::ForkEvidenceView>, Stopped> {
        self.ask(Command::DaEvidence).await
    }

    /// Up to `count` (at most 64) verified blobs from height `from`: read from the local
    /// log on a node that keeps one, otherwise (a light client) asked of a connected DA
    /// peer and verified — signature, heights and hash links — before they are returned.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner [`RangeError`].
    pub async fn da_range(
        &self,
        from: u64,
        count: u32,
    ) -> Result<Result<Vec<DaBlob>, RangeError>, Stopped> {
        self.ask(|tx| Command::DaRange(from, count, tx)).await
    }

    /// Asks a connected peer that keeps the DA log for the proof of `request.key` over
    /// `/dsdn/<net>/da-proof/1.0.0` (issue 16 §3). The answer is **not verified**: check a
    /// [`dsdn_protocols::da::prove::ProofResponse::Proof`] against a root you trust
    /// ([`dsdn_protocols::da::StateProof::verify`]).
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner error when no peer keeps the
    /// log or the request failed (timeout, connection closed, protocol not supported).
    pub async fn da_prove_remote(
        &self,
        request: dsdn_protocols::da::prove::ProofRequest,
    ) -> Result<Result<dsdn_protocols::da::prove::ProofResponse, String>, Stopped> {
        self.ask(|tx| Command::DaProveRemote(None, request, tx))
            .await
    }

    /// [`NodeHandle::da_prove_remote`] asked of `peer` (it must be connected), or with
    /// `None` of the first connected peer that keeps the DA log.
    ///
    /// # Errors
    /// As [`NodeHandle::da_prove_remote`]; also when `peer` is not connected.
    pub async fn da_prove_remote_at(
        &self,
        peer: Option<PeerId>,
        request: dsdn_protocols::da::prove::ProofRequest,
    ) -> Result<Result<dsdn_protocols::da::prove::ProofResponse, String>, Stopped> {
        self.ask(|tx| Command::DaProveRemote(peer, request, tx))
            .await
    }

    /// Sends `request` over `/dsdn/<net>/da-sync/1.0.0` to `peer` (it must be connected) or,
    /// with `None`, to the first connected peer that keeps the DA log, and returns the
    /// answer **unverified** with the peer that gave it (a light client that stays light
    /// verifies blobs itself, issue 16 §4).
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner error when the peer is not
    /// connected, no peer keeps the log, or the request failed.
    pub async fn da_sync_raw(
        &self,
        peer: Option<PeerId>,
        request: dsdn_protocols::da::sync::SyncRequest,
    ) -> Result<Result<(PeerId, dsdn_protocols::da::sync::SyncResponse), String>, Stopped> {
        self.ask(|tx| Command::DaSyncRaw(peer, request, tx)).await
    }

    /// Sends a state-chunk request over `/dsdn/<net>/da-state/1.0.0` to the connected
    /// `peer`; the answer is **not verified** (the state sync driver checks every chunk
    /// with `StateRestore`, issue 16 §5).
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner error when the peer is not
    /// connected or the request failed (timeout, connection closed, unsupported).
    pub(crate) async fn da_state_remote(
        &self,
        peer: PeerId,
        request: dsdn_protocols::da::state_sync::StateChunkRequest,
    ) -> Result<Result<dsdn_protocols::da::state_sync::StateChunkResponse, String>, Stopped> {
        self.ask(|tx| Command::DaStateRemote(peer, request, tx))
            .await
    }

    /// Tells the DA service that the state sync driver finished (`restored`: the log now
    /// starts at the checkpoint) so that it takes new heights again.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub(crate) async fn da_state_synced(&self, restored: bool) -> Result<(), Stopped> {
        self.tx
            .send(Command::DaStateSynced(restored))
            .await
            .map_err(|_| Stopped)
    }

    /// The height of the last applied DA blob, without a round trip to the event loop.
    pub fn da_height(&self) -> u64 {
        *self.da_height.borrow()
    }

    /// Waits until the DA log reaches `height` or `timeout` passes, and returns the height
    /// then (compare it with `height`).
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn wait_da_height(&self, height: u64, timeout: Duration) -> Result<u64, Stopped> {
        let mut rx = self.da_height.clone();
        let reached = tokio::time::timeout(timeout, async {
            rx.wait_for(|h| *h >= height).await.map(|h| *h)
        })
        .await;
        match reached {
            Ok(Ok(h)) => Ok(h),
            Ok(Err(_)) => Err(Stopped),
            Err(_) => Ok(*self.da_height.borrow()),
        }
    }
}
