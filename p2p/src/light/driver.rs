//! The task that runs a [`Follower`] over the network (issue 16 §4): it resolves the
//! [`CheckpointSource`] into a checkpoint and its committee keys (proved against the
//! checkpoint's root), then takes the blobs after it — gossip as it arrives, gaps and
//! missed heights over `/dsdn/<net>/da-sync/1.0.0` from `tip + 1` (never below the
//! checkpoint) — and hands each verified blob on as a [`DaNotice`] once the next blob
//! committed to its state root. Its memory is O(1): the follower, one blob waiting for the
//! next, and bounded channels.

use std::time::Duration;

use dsdn_protocols::da::prove::{ProofRequest, ProofResponse};
use dsdn_protocols::da::sync::{SyncRequest, MAX_SYNC_BLOBS};
use dsdn_protocols::da::{DaBlob, StateKey, StateValue, VerifiedBlob};
use dsdn_protocols::NetworkId;
use libp2p::PeerId;
use tokio::sync::{mpsc, watch};

use super::avoid::Avoided;
use super::checkpoint::{Checkpoint, CheckpointSource, EpochKeys};
use super::follow::{checkpoint_from_newest, FollowError, Follower, TrustedHead};
use super::rotations::{keys_at_newest, PeerSource};
use crate::da::DaNotice;
use crate::handle::NodeHandle;

/// How often the follower asks a full node for the heights after its tip (besides gossip).
pub const FOLLOW_POLL: Duration = Duration::from_millis(500);

/// How long the start (checkpoint, keys) keeps asking while no full node answers.
pub const SETUP_PATIENCE: Duration = Duration::from_secs(60);

/// First pause between two asks during the start (no full node connected yet, usually):
/// doubled after each failed ask up to [`SETUP_RETRY_MAX`], so a client whose full node
/// connects within milliseconds starts within milliseconds.
const SETUP_RETRY_FIRST: Duration = Duration::from_millis(10);

/// How long the start waits for another full node when the one asked gave a proof that
/// does not verify against the checkpoint (before it calls the checkpoint refuted).
const OTHER_PROVER_PATIENCE: Duration = Duration::from_secs(2);

/// Longest pause between two asks during the start.
const SETUP_RETRY_MAX: Duration = Duration::from_millis(200);

/// The pause after `pause`: doubled, at most [`SETUP_RETRY_MAX`].
fn next_pause(pause: Duration) -> Duration {
    (pause * 2).min(SETUP_RETRY_MAX)
}

/// What the follower task reports (a `watch` channel: the newest only, O(1)).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FollowStatus {
    /// The checkpoint in use, once resolved.
    pub checkpoint: Option<Checkpoint>,
    /// The newest trusted header and the tip, once started.
    pub head: Option<TrustedHead>,
    /// The lowest height this client asked a peer for over da-sync (tip probes, which
    /// return no blob, aside): never below the checkpoint + 1.
    pub lowest_fetched: Option<u64>,
    /// Blobs taken since the checkpoint.
    pub blobs_taken: u64,
    /// Why the follower stopped (a refuted checkpoint, no full node answering); the
    /// client's notices end then.
    pub error: Option<String>,
}

/// The follower task's parts.
pub(super) struct Driver {
    pub(super) handle: NodeHandle,
    pub(super) network: NetworkId,
    pub(super) authority: [u8; 32],
    pub(super) source: CheckpointSource,
    pub(super) raw: mpsc::Receiver<Vec<u8>>,
    pub(super) notices: mpsc::Sender<DaNotice>,
    pub(super) status: watch::Sender<FollowStatus>,
    /// Full nodes that served a refused blob, passed over by the catch-up for a while.
    pub(super) avoided: Avoided,
}

/// A blob to hand on once the next one gives its root.
type Waiting = Option<VerifiedBlob>;

impl Driver {
    /// Runs until the node stops or the checkpoint is refuted (reported in the status).
    pub(super) async fn run(mut self) {
        if let Err(error) = self.follow().await {
            tracing::error!(%error, "the light client stopped following the DA log");
            self.status.send_modify(|s| s.error = Some(error));
        }
    }

    async fn follow(&mut self) -> Result<(), String> {
        let (checkpoint, keys, first) = self.resolve().await?;
        tracing::info!(%checkpoint, "light client following the DA log from a checkpoint");
        let mut f = Follower::new(self.network.clone(), checkpoint, keys);
        self.status.send_modify(|s| {
            s.checkpoint = Some(checkpoint);
            s.head = Some(f.trusted());
        });
        let mut waiting: Waiting = None;
        if let Some(bytes) = first {
            self.take(&mut f, &mut waiting, &bytes, None)?;
        }
        self.catch_up(&mut f, &mut waiting).await?;
        let mut tick = tokio::time::interval(FOLLOW_POLL);
        loop {
            tokio::select! {
                bytes = self.raw.recv() => {
                    let Some(bytes) = bytes else { return Ok(()) };
                    match Follower::height_of(&bytes) {
                        Some(h) if h == f.tip() + 1 => {
                            self.take(&mut f, &mut waiting, &bytes, None)?;
                        }
                        Some(h) if h > f.tip() + 1 => self.catch_up(&mut f, &mut waiting).await?,
                        _ => {}
                    }
                }
                _ = tick.tick() => self.catch_up(&mut f, &mut waiting).await?,
            }
            if self.notices.is_closed() {
                return Ok(());
            }
        }
    }

    /// Offers one blob; a verified one releases the notice of the blob before it (its
    /// root is now trusted). A refuted checkpoint ends the task; any other refusal is one
    /// peer's bad blob, logged and skipped.
    /// `from`: the peer that sent it over da-sync (`None` for gossip), passed over by
    /// later catch-ups when the blob is refused.
    fn take(
        &mut self,
        f: &mut Follower,
        waiting: &mut Waiting,
        bytes: &[u8],
        from: Option<PeerId>,
    ) -> Result<bool, String> {
        match f.offer(bytes) {
            Ok(blob) => {
                let head = f.trusted();
                if let Some(prev) = waiting.take() {
                    if head.header.height == prev.height() {
                        self.notify(&prev, head.header.state_root);
                    }
                }
                *waiting = Some(blob);
                let taken = f.taken();
                self.status.send_modify(|s| {
                    s.head = Some(head);
                    s.blobs_taken = taken;
                });
                Ok(true)
            }
            Err(e) if e.refutes_checkpoint() => Err(e.to_string()),
            Err(FollowError::NotNext { .. }) => Ok(false),
            Err(e) => {
                tracing::warn!(error = %e, peer = ?from, "DA blob refused by the light client");
                if let Some(peer) = from {
                    self.avoided.add(peer, std::time::Instant::now());
                }
                Ok(false)
            }
        }
    }

    fn notify(&self, blob: &VerifiedBlob, state_root: [u8; 32]) {
        let notice = DaNotice {
            height: blob.height(),
            hash: blob.hash(),
            prev_hash: blob.prev_hash(),
            timestamp_ms: blob.blob().timestamp_ms,
            events: blob.blob().events.clone(),
            state_root,
        };
        if self.notices.try_send(notice).is_err() {
            tracing::debug!(
                height = blob.height(),
                "light client notice dropped (consumer behind)"
            );
        }
    }

    /// Asks a full node for the heights after the tip until it has none newer.
    async fn catch_up(&mut self, f: &mut Follower, waiting: &mut Waiting) -> Result<(), String> {
        loop {
            let from = f.tip() + 1;
            let request = SyncRequest {
                from,
                count: MAX_SYNC_BLOBS,
            };
            let peer = self.catch_up_peer().await;
            let Ok(Ok((sender, response))) = self.handle.da_sync_raw(peer, request).await else {
                return Ok(());
            };
            if response.blobs.is_empty() {
                return Ok(());
            }
            self.status.send_modify(|s| {
                s.lowest_fetched = Some(s.lowest_fetched.map_or(from, |l| l.min(from)));
            });
            let mut progressed = false;
            for bytes in &response.blobs {
                if !self.take(f, waiting, bytes, Some(sender))? {
                    break;
                }
                progressed = true;
            }
            if !progressed || response.tip <= f.tip() {
                return Ok(());
            }
        }
    }

    /// A connected full node not passed over, waiting up to `wait` for one to connect;
    /// `None` when there is none.
    async fn full_node(&mut self, wait: Duration) -> Option<PeerId> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let peers = self.handle.peers().await.ok()?;
            let connected = peers
                .into_iter()
                .filter(|p| p.connected_outbound.is_some() && crate::da::keeps_da_log(p.services))
                .map(|p| p.peer_id);
            if let Some(p) = self.avoided.pick(connected, std::time::Instant::now()) {
                return Some(p);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(SETUP_RETRY_FIRST * 5).await;
        }
    }

    /// The full node to ask: `None` (the node picks one) unless a peer was passed over;
    /// then the first connected full node that is not (`None` when there is none).
    async fn catch_up_peer(&mut self) -> Option<PeerId> {
        if self.avoided.is_empty() {
            return None;
        }
        self.full_node(Duration::ZERO).await
    }

    /// The checkpoint, the keys in force there and a first blob to offer (the newest blob
    /// the checkpoint was read from).
    async fn resolve(&mut self) -> Result<(Checkpoint, EpochKeys, Option<Vec<u8>>), String> {
        match self.source.clone() {
            CheckpointSource::Config(cp) => Ok((cp, self.keys_at(cp).await?, None)),
            CheckpointSource::TrustedPeer(peer) => {
                let Some((bytes, blob)) = self.newest(Some(peer)).await? else {
                    let cp = Checkpoint::genesis();
                    return Ok((cp, self.keys_at(cp).await?, None));
                };
                let cp = Checkpoint::committed_by(&blob).ok_or_else(|| {
                    format!("the trusted peer's newest blob (height {}) is of version 1: it commits to no state root", blob.height)
                })?;
                Ok((cp, self.keys_at(cp).await?, Some(bytes)))
            }
            CheckpointSource::Newest { base } => {
                let base = base.unwrap_or_else(Checkpoint::genesis);
                let base_keys = self.keys_at(base).await?;
                let Some((bytes, blob)) = self.newest(None).await? else {
                    return Ok((base, base_keys, None));
                };
                if blob.height <= base.height + 1 {
                    return Ok((base, base_keys, None));
                }
                let direct = checkpoint_from_newest(&self.network, base, &base_keys, &bytes);
                let walked = match direct {
                    Ok(cp) => Ok(cp),
                    Err(_) => {
                        self.through_rotations(base, &base_keys, &blob, &bytes)
                            .await
                    }
                };
                match walked {
                    Ok(cp) => Ok((cp, self.keys_at(cp).await?, Some(bytes))),
                    Err(e) => {
                        tracing::warn!(error = %e, base = %base, "the newest blob verifies neither under the key in force at the base checkpoint nor through the rotations recorded since: following forward from the base");
                        Ok((base, base_keys, None))
                    }
                }
            }
        }
    }

    /// The checkpoint `bytes` (the newest blob, `blob` decoded) commits to, verified under
    /// the keys learnt through the rotation blobs recorded since `base`
    /// ([`super::rotations`]).
    async fn through_rotations(
        &mut self,
        base: Checkpoint,
        base_keys: &EpochKeys,
        blob: &DaBlob,
        bytes: &[u8],
    ) -> Result<Checkpoint, String> {
        let peer = self.full_node(Duration::ZERO).await;
        let mut source = PeerSource {
            handle: &self.handle,
            peer,
        };
        let keys = keys_at_newest(&mut source, &self.network, base_keys, blob)
            .await
            .map_err(|e| e.to_string())?;
        let cp =
            checkpoint_from_newest(&self.network, base, &keys, bytes).map_err(|e| e.to_string())?;
        tracing::info!(%cp, epoch = keys.latest().map_or(0, |r| r.epoch), "the newest blob verified through the committee rotations since the base checkpoint");
        Ok(cp)
    }

    /// The newest blob of `peer` (or of the first DA peer): its tip, then the blob at it.
    /// `None` when its log is empty.
    async fn newest(&mut self, peer: Option<PeerId>) -> Result<Option<(Vec<u8>, DaBlob)>, String> {
        let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
        let mut pause = SETUP_RETRY_FIRST;
        let mut last;
        loop {
            match self.ask_newest(peer).await {
                Ok(found) => return Ok(found),
                Err(e) => last = e,
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(format!(
                    "no newest blob from {} within {SETUP_PATIENCE:?}: {last}",
                    peer.map_or("any full node".to_owned(), |p| format!(
                        "the trusted peer {p}"
                    ))
                ));
            }
            tokio::time::sleep(pause).await;
            pause = next_pause(pause);
        }
    }

    async fn ask_newest(
        &mut self,
        peer: Option<PeerId>,
    ) -> Result<Option<(Vec<u8>, DaBlob)>, String> {
        let probe = SyncRequest { from: 1, count: 0 };
        let (asked, tip) = match self.handle.da_sync_raw(peer, probe).await {
            Err(_) => return Err("the light client stopped".into()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok((p, r))) => (p, r.tip),
        };
        if tip == 0 {
            return Ok(None);
        }
        let request = SyncRequest {
            from: tip,
            count: 1,
        };
        let response = match self.handle.da_sync_raw(Some(asked), request).await {
            Err(_) => return Err("the light client stopped".into()),
            Ok(Err(e)) => return Err(e),
            Ok(Ok((_, r))) => r,
        };
        let bytes = response
            .blobs
            .into_iter()
            .next()
            .ok_or_else(|| format!("{asked} has no blob at its tip {tip}"))?;
        let blob = DaBlob::from_bytes(&bytes).map_err(|e| format!("{asked}'s blob {tip}: {e}"))?;
        if blob.height != tip {
            return Err(format!("{asked} sent height {} for {tip}", blob.height));
        }
        Ok(Some((bytes.to_vec(), blob)))
    }

    /// The committee keys in force at `cp`: the genesis authority at height 0; otherwise
    /// `committee:latest` (and the epoch records it needs) proved against `cp`'s root.
    async fn keys_at(&mut self, cp: Checkpoint) -> Result<EpochKeys, String> {
        if cp.height == 0 {
            return Ok(EpochKeys::genesis(self.authority));
        }
        let Some(StateValue::CommitteeLatest { epoch }) =
            self.proved(cp, &StateKey::CommitteeLatest).await?
        else {
            return Ok(EpochKeys::genesis(self.authority));
        };
        let record = match self.proved(cp, &StateKey::Committee(epoch)).await? {
            Some(StateValue::Committee(r)) => r,
            other => return Err(format!("committee:{epoch} proved as {other:?}")),
        };
        let before = if record.effective_height <= cp.height + 1 {
            record.group_key.0
        } else {
            match epoch.checked_sub(1) {
                Some(prev) if prev > 0 => {
                    match self.proved(cp, &StateKey::Committee(prev)).await? {
                        Some(StateValue::Committee(r)) => r.group_key.0,
                        _ => self.authority,
                    }
                }
                _ => self.authority,
            }
        };
        Ok(EpochKeys::new(before, Some(record)))
    }

    /// The value of `key` at `cp`, proved by a full node against `cp`'s root.
    async fn proved(
        &mut self,
        cp: Checkpoint,
        key: &StateKey,
    ) -> Result<Option<StateValue>, String> {
        let deadline = tokio::time::Instant::now() + SETUP_PATIENCE;
        let mut pause = SETUP_RETRY_FIRST;
        let mut last;
        loop {
            let request = ProofRequest::new(key, Some(cp.height));
            let peer = self.full_node(Duration::ZERO).await;
            match self.handle.da_prove_remote_at(peer, request).await {
                Err(_) => return Err("the light client stopped".into()),
                Ok(Ok(ProofResponse::Proof(proof))) => {
                    match super::prove::check(key, cp.height, cp.state_root, &proof) {
                        Ok(p) => return Ok(p.value),
                        Err(e) => {
                            let refused = format!(
                                "checkpoint {cp} refused: a full node's proof of {key} at height {} does not verify against its state root, which is not the network's ({e})",
                                cp.height
                            );
                            // One full node's false proof does not refute the checkpoint
                            // while another one may prove it.
                            let Some(liar) = peer else {
                                return Err(refused);
                            };
                            tracing::warn!(peer = %liar, error = %e, "a full node's proof does not verify against the checkpoint: asking another one");
                            self.avoided.add(liar, std::time::Instant::now());
                            if self.full_node(OTHER_PROVER_PATIENCE).await.is_none() {
                                return Err(refused);
                            }
                            continue;
                        }
                    }
                }
                Ok(Ok(ProofResponse::HeightUnavailable { oldest, newest, .. }))
                    if cp.height < oldest =>
                {
                    return Err(format!(
                        "checkpoint height {} is older than the full nodes keep proofs for ({oldest}..={newest}): take a newer checkpoint",
                        cp.height
                    ));
                }
                Ok(Ok(other)) => last = format!("{other:?}"),
                Ok(Err(e)) => last = e,
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(format!(
                    "no full node proved {key} at the checkpoint height {} within {SETUP_PATIENCE:?}: {last}",
                    cp.height
                ));
            }
            tokio::time::sleep(pause).await;
            pause = next_pause(pause);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_start_retries_soon_then_backs_off_to_the_cap() {
        let mut pause = SETUP_RETRY_FIRST;
        let mut pauses = vec![pause];
        for _ in 0..8 {
            pause = next_pause(pause);
            pauses.push(pause);
        }
        let ms: Vec<u128> = pauses.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [10, 20, 40, 80, 160, 200, 200, 200, 200]);
    }
}
