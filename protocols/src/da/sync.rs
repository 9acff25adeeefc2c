//! DA log sync: protocol `/dsdn/<network>/da-sync/1.0.0` and the pure backfill planner.
//!
//! A node behind the network's DA tip asks peers for consecutive blobs with a
//! [`SyncRequest`] and receives a [`SyncResponse`] holding the encoded blobs (at most
//! [`MAX_SYNC_BLOBS`], each at most [`MAX_BLOB_BYTES_IN_SYNC`]) and the responder's tip.
//! [`BackfillPlanner`] decides which ranges to ask of which peers; it performs no I/O and
//! is driven with `now: Instant` by the caller's event loop.
//!
//! Spec: Tahap 14A §1–§2 (every node rebuilds the same DA state from the ordered log),
//! issue 5 §2 (sync and backfill from peers).

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::codec;

/// Most blobs in one [`SyncResponse`].
pub const MAX_SYNC_BLOBS: u32 = 64;

/// Largest encoded blob carried in a sync response, in bytes (equal to the DA blob cap,
/// `MAX_BLOB_BYTES`, 256 KiB).
pub const MAX_BLOB_BYTES_IN_SYNC: usize = 256 * 1024;

/// Most blob bytes a responder puts in one response (4 MiB); it stops before exceeding
/// this, but always sends at least one blob when it has one.
pub const MAX_SYNC_PAYLOAD_BYTES: usize = 4 * 1024 * 1024;

/// Largest encoded [`SyncResponse`], in bytes: [`MAX_SYNC_PAYLOAD_BYTES`] plus 64 KiB of
/// CBOR overhead.
pub const MAX_SYNC_RESPONSE_BYTES: usize = MAX_SYNC_PAYLOAD_BYTES + 64 * 1024;

/// Largest encoded [`SyncRequest`], in bytes.
pub const MAX_SYNC_REQUEST_BYTES: usize = 64;

/// Why a sync message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyncError {
    /// More blobs than asked for or than [`MAX_SYNC_BLOBS`].
    #[error("sync response has {got} blobs, at most {max} allowed")]
    TooManyBlobs {
        /// Blobs in the response.
        got: usize,
        /// `min(request.count, MAX_SYNC_BLOBS)`.
        max: u32,
    },
    /// A blob larger than [`MAX_BLOB_BYTES_IN_SYNC`].
    #[error("blob {index} of the sync response has {len} bytes (max {MAX_BLOB_BYTES_IN_SYNC})")]
    BlobTooLarge {
        /// Position of the blob in the response (0-based).
        index: usize,
        /// Its length in bytes.
        len: usize,
    },
    /// The claimed tip is below the height of the last delivered blob (or that height
    /// overflows `u64`).
    #[error("sync response tip {tip} is below its last blob's height {last}")]
    TipBelowBlobs {
        /// The tip the responder claims.
        tip: u64,
        /// Height of its last blob (`u64::MAX` on overflow).
        last: u64,
    },
    /// Not decodable, or not encodable within the cap (the codec's message).
    #[error("malformed sync message: {0}")]
    Malformed(String),
}

impl SyncError {
    /// Metric label: `"too_many_blobs"`, `"blob_too_large"`, `"tip_below_blobs"`,
    /// `"malformed"`.
    pub fn reason(&self) -> &'static str {
        match self {
            SyncError::TooManyBlobs { .. } => "too_many_blobs",
            SyncError::BlobTooLarge { .. } => "blob_too_large",
            SyncError::TipBelowBlobs { .. } => "tip_below_blobs",
            SyncError::Malformed(_) => "malformed",
        }
    }
}

/// "Send me the blobs at heights `from`, `from + 1`, … (at most `count`), and your tip."
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct SyncRequest {
    /// First height wanted (heights start at 1).
    pub from: u64,
    /// Most blobs wanted; the responder sends at most `min(count, MAX_SYNC_BLOBS)`.
    /// 0 asks only for the tip.
    pub count: u32,
}

impl SyncRequest {
    /// CBOR encoding, at most [`MAX_SYNC_REQUEST_BYTES`].
    ///
    /// # Errors
    /// [`SyncError::Malformed`] from the codec.
    pub fn to_bytes(&self) -> Result<Vec<u8>, SyncError> {
        codec::encode(self, MAX_SYNC_REQUEST_BYTES).map_err(|e| SyncError::Malformed(e.to_string()))
    }

    /// Decodes a request; input longer than [`MAX_SYNC_REQUEST_BYTES`] is refused unread.
    ///
    /// # Errors
    /// [`SyncError::Malformed`] for oversize or undecodable input.
    pub fn from_bytes(bytes: &[u8]) -> Result<SyncRequest, SyncError> {
        codec::decode(bytes, MAX_SYNC_REQUEST_BYTES)
            .map_err(|e| SyncError::Malformed(e.to_string()))
    }

    /// Inclusive height range asked for, `None` when `count` is 0.
    fn range(&self) -> Option<(u64, u64)> {
        let n = u64::from(self.count.checked_sub(1)?);
        Some((self.from, self.from.saturating_add(n)))
    }
}

/// The answer to a [`SyncRequest`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncResponse {
    /// The responder's DA tip height (0 when its log is empty).
    pub tip: u64,
    /// Encoded blobs (the DA blob wire form) at heights `from`, `from + 1`, …; fewer than
    /// asked when the responder has fewer or hit [`MAX_SYNC_PAYLOAD_BYTES`].
    pub blobs: Vec<ByteBuf>,
}

impl SyncResponse {
    /// CBOR encoding, at most [`MAX_SYNC_RESPONSE_BYTES`].
    ///
    /// # Errors
    /// [`SyncError::Malformed`] from the codec (e.g. too large).
    pub fn to_bytes(&self) -> Result<Vec<u8>, SyncError> {
        codec::encode(self, MAX_SYNC_RESPONSE_BYTES)
            .map_err(|e| SyncError::Malformed(e.to_string()))
    }

    /// Decodes a response; input longer than [`MAX_SYNC_RESPONSE_BYTES`] is refused
    /// unread. Check it against its request with [`SyncResponse::validated`].
    ///
    /// # Errors
    /// [`SyncError::Malformed`] for oversize or undecodable input.
    pub fn from_bytes(bytes: &[u8]) -> Result<SyncResponse, SyncError> {
        codec::decode(bytes, MAX_SYNC_RESPONSE_BYTES)
            .map_err(|e| SyncError::Malformed(e.to_string()))
    }

    /// Checks the response against the request it answers: at most
    /// `min(req.count, MAX_SYNC_BLOBS)` blobs, each at most [`MAX_BLOB_BYTES_IN_SYNC`]
    /// bytes, and `tip ≥ req.from + blobs.len() - 1` when blobs are present. The blobs
    /// themselves (signature, heights, chain) are checked by the caller.
    ///
    /// # Errors
    /// [`SyncError::TooManyBlobs`], [`SyncError::BlobTooLarge`] or
    /// [`SyncError::TipBelowBlobs`]; the responder is to be penalised.
    pub fn validated(self, req: &SyncRequest) -> Result<SyncResponse, SyncError> {
        let max = req.count.min(MAX_SYNC_BLOBS);
        if self.blobs.len() > max as usize {
            return Err(SyncError::TooManyBlobs {
                got: self.blobs.len(),
                max,
            });
        }
        if let Some(index) = self
            .blobs
            .iter()
            .position(|b| b.len() > MAX_BLOB_BYTES_IN_SYNC)
        {
            let len = self.blobs[index].len();
            return Err(SyncError::BlobTooLarge { index, len });
        }
        if let Some(extra) = self.blobs.len().checked_sub(1) {
            // extra < MAX_SYNC_BLOBS, so the conversion cannot fail.
            let last = u64::try_from(extra)
                .ok()
                .and_then(|e| req.from.checked_add(e));
            match last {
                Some(last) if self.tip >= last => {}
                last => {
                    return Err(SyncError::TipBelowBlobs {
                        tip: self.tip,
                        last: last.unwrap_or(u64::MAX),
                    })
                }
            }
        }
        Ok(self)
    }
}

/// Tuning of a [`BackfillPlanner`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncConfig {
    /// Blobs per request (default 64; clamped to `1..=MAX_SYNC_BLOBS`).
    pub chunk: u32,
    /// A request unanswered this long is a stall (default 10 s).
    pub request_timeout: Duration,
    /// Most requests in flight at once, probes included (default 4; at least 1).
    pub max_in_flight: usize,
    /// The longest a peer is not asked after stalls or failures (default 60 s): the
    /// back-off of its `k`-th strike in a row is `min(peer_backoff, first_backoff ·
    /// 2^(k−1))`; a useful answer clears its strikes.
    pub peer_backoff: Duration,
    /// The back-off after a peer's first stall or failure in a row (default 2 s; at most
    /// `peer_backoff`). Short, so that a node whose only sync peer was slow once (a busy
    /// machine) asks it again within seconds rather than a minute.
    pub first_backoff: Duration,
    /// When nothing is in flight, one peer is probed for its tip this often (default 5 s):
    /// the anti-entropy that catches a blob gossip did not deliver (e.g. a restarted peer
    /// whose subscription the old, not yet timed-out connection hides from gossipsub).
    pub tip_poll_interval: Duration,
}

impl Default for SyncConfig {
    /// chunk 64, request_timeout 10 s, max_in_flight 4, peer_backoff 60 s, first_backoff
    /// 2 s, tip_poll_interval 5 s.
    fn default() -> Self {
        Self {
            chunk: 64,
            request_timeout: Duration::from_secs(10),
            max_in_flight: 4,
            peer_backoff: Duration::from_secs(60),
            first_backoff: Duration::from_secs(2),
            tip_poll_interval: Duration::from_secs(5),
        }
    }
}

/// What the caller of [`BackfillPlanner::poll`] must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncAction<P> {
    /// Send `request` to `peer`, then report the outcome with
    /// [`BackfillPlanner::on_response`], [`BackfillPlanner::on_failure`] or
    /// [`BackfillPlanner::on_invalid`] (passing the same request back).
    Request {
        /// The peer to ask.
        peer: P,
        /// What to ask for.
        request: SyncRequest,
    },
}

mod planner;
pub use planner::{BackfillPlanner, MAX_EXCLUDED_PEERS};

#[cfg(test)]
mod tests;
