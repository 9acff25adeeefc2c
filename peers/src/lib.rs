//! The DSDN peer store: peers.dat on redb, peer scoring and PEX selection.
//!
//! * [`record`] — [`PeerRecord`], one peers.dat entry, and its private versioned encoding;
//! * [`mod@score`] — the 28.1.B §5 score and the dial order (suspicious entries last);
//! * [`ratelimit`] — the inbound connection limiter per IP ([`InboundRateLimiter`]) and the
//!   per-peer PEX address token bucket ([`AddrTokenBucket`]);
//! * [`store`] — [`PeerStore`], the persistent, bounded ([`MAX_ENTRIES`]) peer cache with
//!   test-before-evict, garbage collection, bans, dial candidates and PEX selection.
//!
//! All times are UNIX seconds passed in by the caller (`now`), so everything but the file
//! itself is deterministic. CBOR goes through [`dsdn_protocols::codec`] only.
//!
//! Spec: `dsdn-roadmap.md`, Tahap 28.1.B §3 (PEX selection), §4 (peers.dat), §5 (scoring).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod netgroup;
pub mod ratelimit;
pub mod record;
pub mod score;
pub mod store;

pub use netgroup::{netgroup_of, NetGroup};
pub use ratelimit::{AddrTokenBucket, InboundRateLimiter, MAX_TRACKED_IPS};
pub use record::{PeerRecord, SUSPICIOUS_CONSECUTIVE_FAILURES};
pub use score::{dial_order, score};
pub use store::{
    LearnedPeer, OpenReport, PeerStore, StoreError, GC_AFTER_SECS, MAX_ENTRIES, PEX_WINDOW_SECS,
    SCHEMA_VERSION,
};
