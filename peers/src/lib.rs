//! The DSDN peer store: peers.dat on redb, peer scoring and PEX selection.
//!
//! * [`record`] — [`PeerRecord`], one peers.dat entry, and its private versioned encoding
//!   (layout v2 stores the netgroup of each address);
//! * [`netgroup`] — [`NetGroup`], which addresses count as "the same network";
//! * [`mod@score`] — the 28.1.B §5 score and the dial order (suspicious entries last);
//! * [`select`] — diversity-aware outbound selection ([`select_outbound`]: one peer per
//!   netgroup, several sources) and the single-source eclipse check ([`single_source`]);
//! * [`ratelimit`] — the inbound connection limiter per IP ([`InboundRateLimiter`]) and the
//!   per-peer PEX address token bucket ([`AddrTokenBucket`]);
//! * [`store`] — [`PeerStore`], the persistent, bounded ([`MAX_ENTRIES`]) peer cache with
//!   test-before-evict, garbage collection, bans, dial, outbound and feeler candidates, PEX
//!   selection, anchors ([`MAX_ANCHORS`]) and cheap statistics ([`StoreStats`]);
//! * [`redb_file`] and [`files`] — opening a redb file of the data directory (meta table,
//!   network and schema checks, corruption sorted from other errors) and moving an unusable
//!   file aside; shared with the DA log of `dsdn-p2p`.
//!
//! All times are UNIX seconds passed in by the caller (`now`), so everything but the file
//! itself is deterministic; the rate limiters take `std::time::Instant`s. CBOR goes through
//! [`dsdn_protocols::codec`] only; peers.dat records of schema 3 are postcard (see
//! `record`).
//!
//! Spec: `dsdn-roadmap.md`, Tahap 28.1.B §3 (PEX selection), §4 (peers.dat), §5 (scoring);
//! 28.1.C §6 (anti-abuse: eclipse, Sybil via PEX, spam connections), §7 (`peers stats`),
//! §8 (metrics).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod files;
pub mod netgroup;
pub mod ratelimit;
pub mod record;
pub mod redb_file;
pub mod reputation;
pub mod score;
pub mod select;
pub mod store;

pub use netgroup::{netgroup_of, NetGroup};
pub use ratelimit::{AddrTokenBucket, InboundRateLimiter, MAX_TRACKED_IPS};
pub use record::{BanCause, PeerRecord, SUSPICIOUS_CONSECUTIVE_FAILURES};
pub use reputation::{PeerAction, Reputations, Verdict};
pub use score::{dial_order, score};
pub use select::{select_outbound, single_source, OutboundView};
pub use store::{
    LearnedPeer, OpenReport, PeerStore, StoreError, StoreStats, GC_AFTER_SECS, MAX_ANCHORS,
    MAX_ENTRIES, PEX_WINDOW_SECS, SCHEMA_VERSION,
};
