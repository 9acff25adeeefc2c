//! One peers.dat entry ([`PeerRecord`]) and its private, versioned on-disk encoding.
//!
//! Spec: 28.1.B §4 (the fields of a peers.dat entry, the "suspicious" mark after 10
//! consecutive failures). All times are UNIX seconds.
//!
//! On disk a record is stored under its PeerId bytes in one of three layouts, told apart by
//! their first byte:
//!
//! * v1 (schema 1): a CBOR map (`StoredRecord` encoded with [`dsdn_protocols::codec`]) with
//!   the PeerId and the multiaddrs as raw bytes and no netgroups; still decoded, the
//!   netgroups are computed;
//! * v2 (schema 2): the same map plus `netgroups`, the [`NetGroup`] of each address in its
//!   `Display` form (`"ipv4:203.0"`, …; CBOR null for an address without one), as 28.1.C §6
//!   asks peers.dat to hold "the netgroup of each address"; still decoded;
//! * v3 (schema 3): the tag byte 3 and a postcard encoding with binary netgroups, without
//!   field names, the PeerId (the table key) or the network (the meta table); see `compact`.
//!   About a third of the size of v2, and decoded without intermediate allocations, for the
//!   10,000-entry load at start-up; still decoded;
//! * v4 (schema 4, written by this build): the v3 layout with the tag byte 4, followed by the
//!   [`BanCause`] of the ban, if any (postcard `Option`).
//!
//! Decoding never trusts the bytes: the version, the PeerId, every multiaddr (count and size
//! bounds included), the stored netgroups (which must equal the ones recomputed from the
//! addresses), and for v1/v2 the network id and the table key are all checked before a
//! [`PeerRecord`] is built.

mod compact;

use dsdn_protocols::codec::{self, CodecError};
use dsdn_protocols::handshake::{MAX_ADDR_BYTES, MAX_LISTEN_ADDRS};
use dsdn_protocols::{NetworkId, PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::netgroup::NetGroup;

/// Most addresses kept per peer (16, as in the handshake).
pub const MAX_ADDRS: usize = MAX_LISTEN_ADDRS;

/// Largest binary multiaddr kept, in bytes (128, as in the handshake).
pub const MAX_ADDR_LEN: usize = MAX_ADDR_BYTES;

/// Largest encoded record accepted on disk, in bytes (8 KiB; a full record is about 2.3 KiB).
pub const MAX_RECORD_BYTES: usize = 8 * 1024;

/// Consecutive failures after which an entry is "suspicious" and ranked after all others
/// (28.1.B §4).
pub const SUSPICIOUS_CONSECUTIVE_FAILURES: u32 = 10;

/// Version tag of the current on-disk record layout (v4: compact binary, with netgroups and
/// the cause of a ban).
pub(crate) const RECORD_VERSION: u8 = 4;

/// Version tag of the schema-3 layout (compact binary without the cause of a ban), still
/// decoded.
pub(crate) const RECORD_V3: u8 = 3;

/// Longest [`BanCause::reason`] kept, in bytes.
pub const MAX_BAN_REASON_LEN: usize = 32;

/// What a ban rests on, kept with it in peers.dat (schema 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BanCause {
    /// What the peer did, as the label of `bootstrap_misbehaving_total` (`pex_malformed`,
    /// `da_invalid_blob`, …) or `operator` for `dsdn-agent peers ban`; at most
    /// [`MAX_BAN_REASON_LEN`] bytes (longer ones are cut at a character boundary).
    pub reason: String,
    /// For a ban whose cause depends on this node's own configuration (a blob that fails
    /// against the configured DA authority, a receipt against the configured committee): the
    /// fingerprint of that configuration. The node lifts such a ban when it starts with a
    /// different fingerprint ([`crate::PeerStore::lift_config_bans`]).
    pub config: Option<u64>,
}

impl BanCause {
    /// A cause labelled `reason` (cut to [`MAX_BAN_REASON_LEN`] bytes), depending on the
    /// configuration fingerprint `config` if given.
    pub fn new(reason: &str, config: Option<u64>) -> Self {
        let mut end = reason.len().min(MAX_BAN_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        Self {
            reason: reason[..end].to_owned(),
            config,
        }
    }
}

/// Version tag of the schema-2 layout (CBOR with netgroup strings), still decoded.
pub(crate) const RECORD_V2: u8 = 2;

/// Version tag of the schema-1 layout (no netgroups), still decoded.
pub(crate) const RECORD_V1: u8 = 1;

/// What the node knows about one peer: one entry of peers.dat (28.1.B §4).
///
/// All times are UNIX seconds. Counters saturate instead of wrapping.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PeerRecord {
    /// The peer's libp2p identity.
    pub peer_id: PeerId,
    /// Its dialable addresses: at most [`MAX_ADDRS`], each at most [`MAX_ADDR_LEN`] bytes,
    /// without duplicates. Empty for a placeholder created by a ban.
    pub addrs: Vec<Multiaddr>,
    /// The network the peer belongs to (always the store's network).
    pub network: NetworkId,
    /// The service types it advertised (verified by a handshake once `last_success` is set).
    pub services: ServiceSet,
    /// Where the node first learned of the peer; never changed afterwards.
    pub source: PeerSource,
    /// When the record was created.
    pub first_seen: u64,
    /// When the peer was last heard of (insert or successful handshake).
    pub last_seen: u64,
    /// When the last verified handshake with the peer completed, if ever.
    pub last_success: Option<u64>,
    /// When the last failed connection attempt was recorded, if ever.
    pub last_attempt: Option<u64>,
    /// Number of successful handshakes.
    pub success_count: u32,
    /// Number of failed connection attempts.
    pub failure_count: u32,
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// The peer is banned while `now < banned_until`.
    pub banned_until: Option<u64>,
    /// Why it was banned (the last ban), if known; `None` for bans written before schema 4.
    pub ban_cause: Option<BanCause>,
}

impl PeerRecord {
    /// A record for a peer first learned at `now`, never contacted.
    pub fn new(
        peer_id: PeerId,
        addrs: Vec<Multiaddr>,
        network: NetworkId,
        services: ServiceSet,
        source: PeerSource,
        now: u64,
    ) -> Self {
        Self {
            peer_id,
            addrs,
            network,
            services,
            source,
            first_seen: now,
            last_seen: now,
            last_success: None,
            last_attempt: None,
            success_count: 0,
            failure_count: 0,
            consecutive_failures: 0,
            banned_until: None,
            ban_cause: None,
        }
    }

    /// True while a ban is in force at `now` (`now < banned_until`).
    pub fn is_banned(&self, now: u64) -> bool {
        self.banned_until.is_some_and(|until| now < until)
    }

    /// True after [`SUSPICIOUS_CONSECUTIVE_FAILURES`] (10) or more consecutive failures.
    pub fn is_suspicious(&self) -> bool {
        self.consecutive_failures >= SUSPICIOUS_CONSECUTIVE_FAILURES
    }

    /// True when the last successful contact was at most `secs` seconds before `now`
    /// (a timestamp in the future counts as "just now"); false if never contacted.
    pub fn contacted_within(&self, now: u64, secs: u64) -> bool {
        self.last_success
            .is_some_and(|t| now.saturating_sub(t) <= secs)
    }

    /// The netgroup of each address, in `addrs` order (`None` for an address without one,
    /// e.g. `/memory`); what peers.dat stores next to each address (28.1.C §6).
    pub fn netgroups(&self) -> Vec<Option<NetGroup>> {
        self.addrs.iter().map(NetGroup::of_addr).collect()
    }

    /// The primary netgroup: that of the first address; `None` without addresses or if the
    /// first address has none. Outbound selection allows one peer per primary netgroup
    /// (28.1.C §6, see [`crate::select`]).
    pub fn netgroup(&self) -> Option<NetGroup> {
        self.addrs.first().and_then(NetGroup::of_addr)
    }
}

/// The stored form of each address's netgroup: its `Display` string.
fn netgroup_strings(addrs: &[Multiaddr]) -> Vec<Option<String>> {
    addrs
        .iter()
        .map(|a| NetGroup::of_addr(a).map(|g| g.to_string()))
        .collect()
}

/// Keeps the addresses a record may hold: drops empty and over-long ([`MAX_ADDR_LEN`]) ones
/// and duplicates, keeps the first [`MAX_ADDRS`] in the given order.
pub(crate) fn sanitize_addrs(addrs: &[Multiaddr]) -> Vec<Multiaddr> {
    let mut out: Vec<Multiaddr> = Vec::with_capacity(addrs.len().min(MAX_ADDRS));
    for a in addrs {
        if out.len() == MAX_ADDRS {
            break;
        }
        if !a.is_empty() && a.len() <= MAX_ADDR_LEN && !out.contains(a) {
            out.push(a.clone());
        }
    }
    out
}

/// Why stored bytes are not a valid record. Such records are deleted, never returned.
#[derive(Debug, thiserror::Error)]
pub(crate) enum RecordError {
    /// Not a CBOR `StoredRecord`, or larger than [`MAX_RECORD_BYTES`].
    #[error("undecodable record: {0}")]
    Codec(#[from] CodecError),
    /// Not a valid v3 record (postcard error, trailing bytes, unknown source).
    #[error("undecodable v3 record: {0}")]
    Compact(String),
    /// A record layout this build does not know.
    #[error("unknown record version {0}")]
    Version(u8),
    /// The PeerId bytes do not parse.
    #[error("invalid peer id: {0}")]
    PeerId(String),
    /// The PeerId does not match the table key it is stored under.
    #[error("peer id does not match its key")]
    KeyMismatch,
    /// More than [`MAX_ADDRS`] addresses.
    #[error("{0} addresses (max {MAX_ADDRS})")]
    TooManyAddrs(usize),
    /// An address is empty, longer than [`MAX_ADDR_LEN`] or not a multiaddr.
    #[error("invalid address: {0}")]
    Addr(String),
    /// The stored netgroups are missing (v2), present (v1), not one per address (v3) or differ from the ones computed
    /// from the addresses.
    #[error("netgroups do not match the addresses: {0}")]
    NetGroups(String),
    /// The record belongs to another network than the store.
    #[error("record of network {found}, store is {expected}")]
    Network {
        /// The store's network.
        expected: NetworkId,
        /// The record's network.
        found: NetworkId,
    },
}

/// The CBOR layouts v1 and v2 (v1 has no `netgroups`). Field names are part of the format.
#[derive(Serialize, Deserialize)]
struct StoredRecord {
    v: u8,
    peer_id: ByteBuf,
    addrs: Vec<ByteBuf>,
    /// v2 only: the netgroup of each address, as its `Display` string.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    netgroups: Option<Vec<Option<String>>>,
    network: NetworkId,
    services: ServiceSet,
    source: PeerSource,
    first_seen: u64,
    last_seen: u64,
    last_success: Option<u64>,
    last_attempt: Option<u64>,
    success_count: u32,
    failure_count: u32,
    consecutive_failures: u32,
    banned_until: Option<u64>,
}

/// Encodes a record for the peers table (key: `peer_id.to_bytes()`) in the current layout
/// (v3).
///
/// # Errors
/// [`CodecError::TooLarge`] if the encoding exceeds [`MAX_RECORD_BYTES`] (impossible for a
/// record whose addresses went through `sanitize_addrs`).
pub(crate) fn encode_record(r: &PeerRecord) -> Result<Vec<u8>, CodecError> {
    compact::encode(r)
}

/// Encodes a record in the CBOR layout `version` ([`RECORD_V1`] or [`RECORD_V2`]); only
/// tests write them (to build schema-1 and schema-2 files).
#[cfg(test)]
pub(crate) fn encode_record_as(r: &PeerRecord, version: u8) -> Result<Vec<u8>, CodecError> {
    let stored = StoredRecord {
        v: version,
        peer_id: ByteBuf::from(r.peer_id.to_bytes()),
        addrs: r.addrs.iter().map(|a| ByteBuf::from(a.to_vec())).collect(),
        netgroups: (version >= RECORD_V2).then(|| netgroup_strings(&r.addrs)),
        network: r.network.clone(),
        services: r.services,
        source: r.source,
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        last_success: r.last_success,
        last_attempt: r.last_attempt,
        success_count: r.success_count,
        failure_count: r.failure_count,
        consecutive_failures: r.consecutive_failures,
        banned_until: r.banned_until,
    };
    codec::encode(&stored, MAX_RECORD_BYTES)
}

/// Decodes and validates a stored record found under table key `key` in a store of network
/// `network`.
///
/// # Errors
/// A [`RecordError`] naming the first check that failed.
#[cfg(test)]
pub(crate) fn decode_record(
    key: &[u8],
    bytes: &[u8],
    network: &NetworkId,
) -> Result<PeerRecord, RecordError> {
    decode_record_versioned(key, bytes, network).map(|(r, _)| r)
}

/// Decodes a stored record, as `decode_record`, and also returns the layout version the
/// record was stored in (to rewrite v1 and v2 records when an older file is upgraded).
///
/// # Errors
/// A [`RecordError`] naming the first check that failed.
pub(crate) fn decode_record_versioned(
    key: &[u8],
    bytes: &[u8],
    network: &NetworkId,
) -> Result<(PeerRecord, u8), RecordError> {
    if let Some(&v @ (RECORD_V3 | RECORD_VERSION)) = bytes.first() {
        return compact::decode(key, bytes, network).map(|r| (r, v));
    }
    let s: StoredRecord = codec::decode(bytes, MAX_RECORD_BYTES)?;
    if s.v != RECORD_V2 && s.v != RECORD_V1 {
        return Err(RecordError::Version(s.v));
    }
    let peer_id = PeerId::from_bytes(&s.peer_id).map_err(|e| RecordError::PeerId(e.to_string()))?;
    if s.peer_id.as_slice() != key {
        return Err(RecordError::KeyMismatch);
    }
    if s.addrs.len() > MAX_ADDRS {
        return Err(RecordError::TooManyAddrs(s.addrs.len()));
    }
    let mut addrs = Vec::with_capacity(s.addrs.len());
    for raw in s.addrs {
        if raw.is_empty() || raw.len() > MAX_ADDR_LEN {
            return Err(RecordError::Addr(format!("{} bytes", raw.len())));
        }
        let a =
            Multiaddr::try_from(raw.into_vec()).map_err(|e| RecordError::Addr(e.to_string()))?;
        addrs.push(a);
    }
    match (s.v, s.netgroups) {
        (RECORD_V1, None) => {}
        (RECORD_V1, Some(_)) => return Err(RecordError::NetGroups("in a v1 record".into())),
        (_, None) => return Err(RecordError::NetGroups("missing".into())),
        (_, Some(stored)) => {
            let computed = netgroup_strings(&addrs);
            if stored != computed {
                return Err(RecordError::NetGroups(format!(
                    "stored {stored:?}, computed {computed:?}"
                )));
            }
        }
    }
    if &s.network != network {
        return Err(RecordError::Network {
            expected: network.clone(),
            found: s.network,
        });
    }
    let record = PeerRecord {
        peer_id,
        addrs,
        network: s.network,
        services: s.services,
        source: s.source,
        first_seen: s.first_seen,
        last_seen: s.last_seen,
        last_success: s.last_success,
        last_attempt: s.last_attempt,
        success_count: s.success_count,
        failure_count: s.failure_count,
        consecutive_failures: s.consecutive_failures,
        banned_until: s.banned_until,
        ban_cause: None,
    };
    Ok((record, s.v))
}

#[cfg(test)]
pub(crate) mod tests;
