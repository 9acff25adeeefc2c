//! Backfill: serving and receiving `/dsdn/<network>/da-sync/1.0.0` (issue 5 §4).

use super::*;
use crate::handle::RangeError;

impl DaService {
    /// Answers a backfill request from the local log (durable blobs and the unwritten
    /// buffer).
    pub(crate) fn serve_sync(&self, request: &SyncRequest) -> SyncResponse {
        // The advertised tip is the applied one: the blobs not durable yet are served from
        // the writer's buffer, so every height up to it can be served.
        let tip = self.chain.height();
        let mut blobs = Vec::new();
        let count = request.count.min(MAX_SYNC_BLOBS);
        if count > 0 && request.from >= 1 && request.from <= tip {
            match self.read_range(request.from, count, MAX_SYNC_PAYLOAD_BYTES) {
                Ok(found) => blobs = found,
                Err(e) => tracing::warn!(error = %e, "cannot read the DA log"),
            }
        }
        self.metrics.da_sync_blobs_served.inc_by(blobs.len() as u64);
        SyncResponse {
            tip,
            blobs: blobs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
        }
    }

    /// A backfill response. Every blob is verified and offered in order; the first one that
    /// fails stops the processing and gets the peer banned. Responses are applied even while
    /// the node is not [`accepting`](DaService::accepting) new heights: they answer
    /// requests sent before (at most the planner's requests in flight).
    pub(crate) fn on_sync_response(
        &mut self,
        peer: PeerId,
        request: &SyncRequest,
        response: SyncResponse,
        now: Instant,
    ) {
        if self.keys.is_none() {
            return;
        }
        let response = match response.validated(request) {
            Ok(r) => r,
            Err(e) => {
                self.sync_invalid(peer, request, now, "malformed", &e);
                return;
            }
        };
        let delivered = response.blobs.len() as u32;
        self.metrics
            .da_sync_blobs_received
            .inc_by(u64::from(delivered));
        for (i, bytes) in response.blobs.iter().enumerate() {
            let expected = request.from + i as u64;
            let blob = match self.verify_blob(bytes) {
                Ok(b) if b.height() == expected => {
                    self.note_verified();
                    b
                }
                Ok(b) => {
                    let e = format!("asked for height {expected}, got {}", b.height());
                    self.sync_invalid(peer, request, now, "wrong_height", &e);
                    return;
                }
                Err(e) if self.key_pending(bytes, &e) => {
                    // A range ahead of the tip, perhaps signed by the key of a rotation not
                    // applied yet: asked again later, the sender is not at fault.
                    self.planner.on_failure(&peer, request, now);
                    return;
                }
                Err(e) => {
                    self.note_invalid(peer, e.reason());
                    self.sync_invalid(peer, request, now, e.reason(), &e);
                    return;
                }
            };
            let clash = self.own_key_conflict(&blob);
            if self.check_fork(&blob).is_some() {
                // Another validly signed blob at a held height: evidence, not the sender's
                // fault (it follows the other branch of the fork); the rest of its range
                // builds on that branch, so it is dropped too.
                self.planner.on_failure(&peer, request, now);
                return;
            }
            if let Offer::Rejected(e) = self.offer(blob) {
                if clash {
                    // A blob of our own key we did not seal: not the sender's fault.
                    self.planner.on_failure(&peer, request, now);
                    return;
                }
                self.sync_invalid(peer, request, now, e.reason(), &e);
                return;
            }
        }
        self.metrics
            .da_sync_requests
            .with_label_values(&["ok"])
            .inc();
        self.planner
            .on_response(&peer, request, response.tip, delivered, now);
        self.metrics
            .da_target_height
            .set(self.planner.target() as i64);
    }

    fn sync_invalid(
        &mut self,
        peer: PeerId,
        request: &SyncRequest,
        now: Instant,
        reason: &'static str,
        error: &dyn std::fmt::Display,
    ) {
        self.reject(reason, error);
        self.metrics
            .da_sync_requests
            .with_label_values(&["invalid"])
            .inc();
        self.planner.on_invalid(&peer, request, now);
        self.actions
            .push(DaAction::Penalize(peer, "da_invalid_blob"));
    }

    /// A backfill request failed (timeout, connection closed, unsupported protocol).
    pub(crate) fn on_sync_failure(&mut self, peer: PeerId, request: &SyncRequest, now: Instant) {
        self.metrics
            .da_sync_requests
            .with_label_values(&["failed"])
            .inc();
        self.planner.on_failure(&peer, request, now);
    }

    /// Checks a range fetched for [`crate::NodeHandle::da_range`]: every blob verified,
    /// heights consecutive from the requested one, each linked to the one before.
    pub(crate) fn verify_range(
        &self,
        request: &SyncRequest,
        response: SyncResponse,
    ) -> Result<Vec<DaBlob>, RangeError> {
        let mut keys = self.keys.clone().ok_or(RangeError::NoAuthority)?;
        let response = response
            .validated(request)
            .map_err(|e| RangeError::Invalid(e.to_string()))?;
        let mut out: Vec<DaBlob> = Vec::with_capacity(response.blobs.len());
        let mut prev: Option<[u8; 32]> = None;
        for (i, bytes) in response.blobs.iter().enumerate() {
            let blob = keys::verify_with(Some(&keys), &self.network, bytes)
                .map_err(|e| RangeError::Invalid(e.to_string()))?;
            // A range beyond the applied tip may carry rotations: admit them as the
            // state would, so that later blobs of the range verify against their key.
            keys::follow(&mut keys, &self.network, &blob);
            if blob.height() != request.from + i as u64 {
                return Err(RangeError::Invalid(format!(
                    "expected height {}, got {}",
                    request.from + i as u64,
                    blob.height()
                )));
            }
            if prev.is_some_and(|p| p != blob.prev_hash()) {
                return Err(RangeError::Invalid(format!(
                    "blob {} does not link to the one before it",
                    blob.height()
                )));
            }
            prev = Some(blob.hash());
            out.push(blob.into_blob());
        }
        Ok(out)
    }
}
