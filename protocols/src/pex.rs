//! Peer exchange (PEX) messages and the pure PEX rate limiter (28.1.B §3).
//!
//! A node asks a connected peer for the peers it knows with [`PexRequest`]; the answer is a
//! [`PexResponse`] of at most [`MAX_PEX_ENTRIES`] entries, each listing only peers the
//! responder contacted successfully in the last 24 hours and never banned ones.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::handshake::MAX_ADDR_BYTES;
use crate::ServiceSet;

/// Most entries in one PEX response.
pub const MAX_PEX_ENTRIES: usize = 1000;

/// Most addresses in one PEX entry.
pub const MAX_PEX_ADDRS: usize = 8;

/// Largest encoded PEX response accepted, in bytes (1000 entries of 8 maximal addresses fit).
pub const MAX_PEX_RESPONSE_BYTES: usize = 2 * 1024 * 1024;

/// Largest encoded PEX request accepted, in bytes.
pub const MAX_PEX_REQUEST_BYTES: usize = 64;

/// Default minimum interval between two PEX requests to, or from, one peer (15 minutes).
pub const DEFAULT_PEX_INTERVAL: Duration = Duration::from_secs(15 * 60);

/// Only peers contacted successfully within this window are shared (24 hours).
pub const PEX_FRESHNESS: Duration = Duration::from_secs(24 * 60 * 60);

/// "Give me peers you know."
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PexRequest {
    /// Most entries the requester wants (the responder caps it at [`MAX_PEX_ENTRIES`]).
    pub max_entries: u16,
    /// Only peers advertising at least one of these service types; empty means any.
    pub services: ServiceSet,
}

/// One peer in a PEX response.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PexEntry {
    /// The peer's libp2p PeerId, as bytes.
    #[serde(with = "serde_bytes")]
    pub node_id: Vec<u8>,
    /// Its addresses as binary multiaddrs (at most [`MAX_PEX_ADDRS`], each at most 128 bytes).
    pub addrs: Vec<serde_bytes::ByteBuf>,
    /// The service types it advertised in its last handshake.
    pub services: ServiceSet,
    /// Seconds since the UNIX epoch of the responder's last successful contact with it.
    pub last_success_unix: u64,
}

/// The answer to a [`PexRequest`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PexResponse {
    /// At most [`MAX_PEX_ENTRIES`] entries.
    pub entries: Vec<PexEntry>,
}

/// Why a received PEX response is refused as a whole.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PexError {
    /// More than [`MAX_PEX_ENTRIES`] entries: the sender is misbehaving.
    #[error("PEX response has {0} entries (max {MAX_PEX_ENTRIES})")]
    TooManyEntries(usize),
}

impl PexResponse {
    /// Checks the response as a whole and returns the entries that are individually well
    /// formed (bounded address count and size, non-empty node id). Malformed entries are
    /// dropped; an over-long response is refused entirely.
    ///
    /// # Errors
    /// [`PexError::TooManyEntries`] when the response has more than [`MAX_PEX_ENTRIES`].
    pub fn validated(self) -> Result<Vec<PexEntry>, PexError> {
        if self.entries.len() > MAX_PEX_ENTRIES {
            return Err(PexError::TooManyEntries(self.entries.len()));
        }
        Ok(self
            .entries
            .into_iter()
            .filter(|e| {
                !e.node_id.is_empty()
                    && e.node_id.len() <= 64
                    && !e.addrs.is_empty()
                    && e.addrs.len() <= MAX_PEX_ADDRS
                    && e.addrs.iter().all(|a| a.len() <= MAX_ADDR_BYTES)
            })
            .collect())
    }
}

/// Allows at most one PEX request per peer per interval, in either direction.
///
/// Pure: time is passed in. Memory is bounded by the number of peers passed to
/// [`PexRateLimiter::allow`] since the last [`PexRateLimiter::forget`]; callers forget a
/// peer when it disconnects.
#[derive(Debug)]
pub struct PexRateLimiter<P> {
    interval: Duration,
    last: HashMap<P, Instant>,
}

impl<P: Eq + Hash + Clone> PexRateLimiter<P> {
    /// A limiter allowing one request per peer per `interval`.
    pub fn new(interval: Duration) -> Self {
        Self {
            interval,
            last: HashMap::new(),
        }
    }

    /// The configured interval.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// True (and records `now`) when a request for `peer` is allowed at `now`.
    pub fn allow(&mut self, peer: &P, now: Instant) -> bool {
        match self.last.get(peer) {
            Some(t) if now.saturating_duration_since(*t) < self.interval => false,
            _ => {
                self.last.insert(peer.clone(), now);
                true
            }
        }
    }

    /// True when a request for `peer` would be allowed at `now` (records nothing).
    pub fn would_allow(&self, peer: &P, now: Instant) -> bool {
        self.last
            .get(peer)
            .is_none_or(|t| now.saturating_duration_since(*t) >= self.interval)
    }

    /// Drops the state of a peer (on disconnect).
    pub fn forget(&mut self, peer: &P) {
        self.last.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec;
    use proptest::prelude::*;

    fn entry(n: u8) -> PexEntry {
        PexEntry {
            node_id: vec![n; 38],
            addrs: vec![serde_bytes::ByteBuf::from(vec![n; MAX_ADDR_BYTES]); MAX_PEX_ADDRS],
            services: ServiceSet::from_bits(0x7f),
            last_success_unix: u64::MAX,
        }
    }

    #[test]
    fn largest_response_fits_cap() {
        let resp = PexResponse {
            entries: (0..MAX_PEX_ENTRIES).map(|i| entry(i as u8)).collect(),
        };
        let bytes = codec::encode(&resp, usize::MAX).unwrap();
        assert!(bytes.len() <= MAX_PEX_RESPONSE_BYTES, "{}", bytes.len());
        let back: PexResponse = codec::decode(&bytes, MAX_PEX_RESPONSE_BYTES).unwrap();
        assert_eq!(back.validated().unwrap().len(), MAX_PEX_ENTRIES);
        let req = PexRequest {
            max_entries: u16::MAX,
            services: ServiceSet::from_bits(u16::MAX),
        };
        assert!(codec::encode(&req, MAX_PEX_REQUEST_BYTES).is_ok());
    }

    #[test]
    fn oversized_response_is_refused() {
        let resp = PexResponse {
            entries: (0..=MAX_PEX_ENTRIES).map(|_| entry(1)).collect(),
        };
        assert_eq!(
            resp.validated(),
            Err(PexError::TooManyEntries(MAX_PEX_ENTRIES + 1))
        );
    }

    #[test]
    fn malformed_entries_are_dropped() {
        let mut bad = entry(1);
        bad.addrs.push(serde_bytes::ByteBuf::from(vec![1]));
        let empty_id = PexEntry {
            node_id: vec![],
            ..entry(2)
        };
        let no_addr = PexEntry {
            addrs: vec![],
            ..entry(3)
        };
        let resp = PexResponse {
            entries: vec![bad, empty_id, no_addr, entry(4)],
        };
        assert_eq!(resp.validated().unwrap(), vec![entry(4)]);
    }

    #[test]
    fn rate_limiter_allows_one_per_interval() {
        let t0 = Instant::now();
        let mut rl = PexRateLimiter::new(Duration::from_secs(900));
        assert!(rl.allow(&1, t0));
        assert!(!rl.allow(&1, t0 + Duration::from_secs(899)));
        assert!(rl.allow(&2, t0 + Duration::from_secs(1)));
        assert!(rl.would_allow(&1, t0 + Duration::from_secs(900)));
        assert!(rl.allow(&1, t0 + Duration::from_secs(900)));
        rl.forget(&1);
        assert!(rl.allow(&1, t0 + Duration::from_secs(901)));
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_as_pex_response_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            if let Ok(resp) = codec::decode::<PexResponse>(&bytes, MAX_PEX_RESPONSE_BYTES) {
                if let Ok(entries) = resp.validated() {
                    prop_assert!(entries.len() <= MAX_PEX_ENTRIES);
                    prop_assert!(entries.iter().all(|e| !e.addrs.is_empty() && e.addrs.len() <= MAX_PEX_ADDRS));
                }
            }
        }
    }
}
