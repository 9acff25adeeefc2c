//! The compact record layouts: a tag byte followed by a [postcard](https://docs.rs/postcard)
//! encoding of [`CompactRecord`]; in v4 ([`RECORD_VERSION`], schema 4) that is followed by
//! the postcard encoding of an `Option<`[`StoredBan`]`>`, in v3 ([`RECORD_V3`]) by nothing.
//!
//! Compared with the CBOR layouts v1/v2 it has no field names, integers are varints, the
//! netgroups are binary ([`DiskGroup`]) instead of strings, and the PeerId and the network,
//! which the table key and the meta table already hold, are not repeated. Decoding borrows
//! the address bytes and the DNS names from the stored value, so the only allocations are
//! the ones the [`PeerRecord`] itself needs. A CBOR v1/v2 record starts with a map header
//! (`0xaf`/`0xb0`), never with the tag byte, so the layouts cannot be confused.
//!
//! The variant order of [`DiskGroup`] and the numbering of [`source_code`] are part of the
//! format.

use std::net::IpAddr;

use dsdn_protocols::codec::CodecError;
use dsdn_protocols::{NetworkId, PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use serde::{Deserialize, Serialize};
use serde_bytes::Bytes;

use super::{
    BanCause, PeerRecord, RecordError, MAX_ADDRS, MAX_ADDR_LEN, MAX_BAN_REASON_LEN,
    MAX_RECORD_BYTES, RECORD_V3, RECORD_VERSION,
};
use crate::netgroup::NetGroup;

/// A netgroup as stored next to its address (the private mirror of [`NetGroup`]).
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
enum DiskGroup<'a> {
    Ipv4([u8; 2]),
    Ipv6([u16; 2]),
    Local(IpAddr),
    Dns(&'a str),
}

impl<'a> From<&'a NetGroup> for DiskGroup<'a> {
    fn from(g: &'a NetGroup) -> Self {
        match g {
            NetGroup::Ipv4(o) => DiskGroup::Ipv4(*o),
            NetGroup::Ipv6(s) => DiskGroup::Ipv6(*s),
            NetGroup::Local(ip) => DiskGroup::Local(*ip),
            NetGroup::Dns(name) => DiskGroup::Dns(name),
        }
    }
}

/// The v3 record after the tag byte. Field order is part of the format.
#[derive(Serialize, Deserialize)]
struct CompactRecord<'a> {
    #[serde(borrow)]
    addrs: Vec<&'a Bytes>,
    #[serde(borrow)]
    netgroups: Vec<Option<DiskGroup<'a>>>,
    services: u16,
    source: u8,
    first_seen: u64,
    last_seen: u64,
    last_success: Option<u64>,
    last_attempt: Option<u64>,
    success_count: u32,
    failure_count: u32,
    consecutive_failures: u32,
    banned_until: Option<u64>,
}

/// The cause of a ban as stored after a v4 record. Field order is part of the format.
#[derive(Serialize, Deserialize, PartialEq, Eq, Debug)]
struct StoredBan<'a> {
    reason: &'a str,
    config: Option<u64>,
}

/// The stored number of a source.
fn source_code(s: PeerSource) -> u8 {
    match s {
        PeerSource::DnsSeed => 0,
        PeerSource::StaticConfig => 1,
        PeerSource::PeerExchange => 2,
        PeerSource::Inbound => 3,
        PeerSource::Kademlia => 4,
    }
}

fn source_of(code: u8) -> Option<PeerSource> {
    Some(match code {
        0 => PeerSource::DnsSeed,
        1 => PeerSource::StaticConfig,
        2 => PeerSource::PeerExchange,
        3 => PeerSource::Inbound,
        4 => PeerSource::Kademlia,
        _ => return None,
    })
}

/// Encodes `r` in the v4 layout.
///
/// # Errors
/// [`CodecError::TooLarge`] above [`MAX_RECORD_BYTES`]; [`CodecError::Invalid`] if postcard
/// fails (it cannot for this struct).
pub(super) fn encode(r: &PeerRecord) -> Result<Vec<u8>, CodecError> {
    let groups = r.netgroups();
    let stored = CompactRecord {
        addrs: r.addrs.iter().map(|a| Bytes::new(a.as_ref())).collect(),
        netgroups: groups
            .iter()
            .map(|g| g.as_ref().map(DiskGroup::from))
            .collect(),
        services: r.services.bits(),
        source: source_code(r.source),
        first_seen: r.first_seen,
        last_seen: r.last_seen,
        last_success: r.last_success,
        last_attempt: r.last_attempt,
        success_count: r.success_count,
        failure_count: r.failure_count,
        consecutive_failures: r.consecutive_failures,
        banned_until: r.banned_until,
    };
    let mut out = Vec::with_capacity(64 + 32 * r.addrs.len());
    out.push(RECORD_VERSION);
    let out = postcard::to_extend(&stored, out).map_err(|e| CodecError::Invalid(e.to_string()))?;
    let ban = r.ban_cause.as_ref().map(|c| StoredBan {
        reason: &c.reason,
        config: c.config,
    });
    let out = postcard::to_extend(&ban, out).map_err(|e| CodecError::Invalid(e.to_string()))?;
    if out.len() > MAX_RECORD_BYTES {
        return Err(CodecError::TooLarge {
            len: out.len(),
            cap: MAX_RECORD_BYTES,
        });
    }
    Ok(out)
}

/// Decodes and validates a v3 or v4 record (`bytes` starts with the tag byte) stored under `key`
/// in a store of `network`.
///
/// # Errors
/// A [`RecordError`] naming the first check that failed.
pub(super) fn decode(
    key: &[u8],
    bytes: &[u8],
    network: &NetworkId,
) -> Result<PeerRecord, RecordError> {
    if bytes.len() > MAX_RECORD_BYTES {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            cap: MAX_RECORD_BYTES,
        }
        .into());
    }
    let (version, body) = match bytes.split_first() {
        Some((&v @ (RECORD_V3 | RECORD_VERSION), body)) => (v, body),
        Some((&v, _)) => return Err(RecordError::Version(v)),
        None => return Err(RecordError::Compact("empty record".into())),
    };
    let (s, mut rest): (CompactRecord<'_>, _) =
        postcard::take_from_bytes(body).map_err(|e| RecordError::Compact(e.to_string()))?;
    let mut ban_cause = None;
    if version == RECORD_VERSION {
        let (ban, tail): (Option<StoredBan<'_>>, _) =
            postcard::take_from_bytes(rest).map_err(|e| RecordError::Compact(e.to_string()))?;
        rest = tail;
        if let Some(b) = ban {
            if b.reason.len() > MAX_BAN_REASON_LEN {
                return Err(RecordError::Compact(format!(
                    "ban reason of {} bytes",
                    b.reason.len()
                )));
            }
            ban_cause = Some(BanCause {
                reason: b.reason.to_owned(),
                config: b.config,
            });
        }
    }
    if !rest.is_empty() {
        return Err(RecordError::Compact(format!(
            "{} trailing bytes",
            rest.len()
        )));
    }
    let peer_id = PeerId::from_bytes(key).map_err(|e| RecordError::PeerId(e.to_string()))?;
    if s.addrs.len() > MAX_ADDRS {
        return Err(RecordError::TooManyAddrs(s.addrs.len()));
    }
    if s.netgroups.len() != s.addrs.len() {
        return Err(RecordError::NetGroups(format!(
            "{} netgroups for {} addresses",
            s.netgroups.len(),
            s.addrs.len()
        )));
    }
    let mut addrs = Vec::with_capacity(s.addrs.len());
    for (raw, stored) in s.addrs.iter().zip(&s.netgroups) {
        if raw.is_empty() || raw.len() > MAX_ADDR_LEN {
            return Err(RecordError::Addr(format!("{} bytes", raw.len())));
        }
        let a = Multiaddr::try_from(raw.to_vec()).map_err(|e| RecordError::Addr(e.to_string()))?;
        let computed = NetGroup::of_addr(&a);
        if computed.as_ref().map(DiskGroup::from) != *stored {
            return Err(RecordError::NetGroups(format!(
                "stored {stored:?}, computed {computed:?}"
            )));
        }
        addrs.push(a);
    }
    let source = source_of(s.source)
        .ok_or_else(|| RecordError::Compact(format!("unknown source {}", s.source)))?;
    Ok(PeerRecord {
        peer_id,
        addrs,
        network: network.clone(),
        services: ServiceSet::from_bits(s.services),
        source,
        first_seen: s.first_seen,
        last_seen: s.last_seen,
        last_success: s.last_success,
        last_attempt: s.last_attempt,
        success_count: s.success_count,
        failure_count: s.failure_count,
        consecutive_failures: s.consecutive_failures,
        banned_until: s.banned_until,
        ban_cause,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::tests::{net, peer};

    fn sample() -> PeerRecord {
        let mut r = PeerRecord::new(
            peer(3),
            vec![
                "/ip4/203.0.113.5/tcp/1".parse().unwrap(),
                "/memory/5".parse().unwrap(),
                "/dns4/Seed.Example/tcp/1".parse().unwrap(),
                "/ip6/2001:db8::1/udp/1/quic-v1".parse().unwrap(),
                "/ip4/10.0.0.1/tcp/1".parse().unwrap(),
            ],
            net(),
            ServiceSet::from_bits(0x8001),
            PeerSource::Kademlia,
            5,
        );
        r.last_success = Some(7);
        r.banned_until = Some(u64::MAX);
        r.ban_cause = Some(BanCause::new("operator", None));
        r.success_count = u32::MAX;
        r
    }

    #[test]
    fn v3_decodes_without_a_cause_and_v4_keeps_it() {
        let mut r = sample();
        let v4 = encode(&r).unwrap();
        assert_eq!(decode(&r.peer_id.to_bytes(), &v4, &net()).unwrap(), r);
        // A v3 record is the v4 one without the trailer and with tag 3.
        r.ban_cause = None;
        let mut v3 = encode(&r).unwrap();
        assert_eq!(v3.pop(), Some(0), "None is one zero byte");
        v3[0] = RECORD_V3;
        assert_eq!(decode(&r.peer_id.to_bytes(), &v3, &net()).unwrap(), r);
        // A v4 record without its trailer is refused, as is a v3 one with a trailer.
        let mut cut = v3.clone();
        cut[0] = RECORD_VERSION;
        assert!(decode(&r.peer_id.to_bytes(), &cut, &net()).is_err());
        let mut long = encode(&r).unwrap();
        long[0] = RECORD_V3;
        assert!(decode(&r.peer_id.to_bytes(), &long, &net()).is_err());
        // Causes are cut to the cap; a stored over-long one is refused.
        let c = BanCause::new(&"é".repeat(40), Some(1));
        assert!(c.reason.len() <= MAX_BAN_REASON_LEN && c.reason.len() >= MAX_BAN_REASON_LEN - 1);
        let mut body = encode(&r).unwrap();
        body.pop();
        let over = postcard::to_allocvec(&Some(StoredBan {
            reason: &"x".repeat(MAX_BAN_REASON_LEN + 1),
            config: None,
        }))
        .unwrap();
        body.extend_from_slice(&over);
        assert!(decode(&r.peer_id.to_bytes(), &body, &net()).is_err());
    }

    #[test]
    fn round_trip_every_source_and_group() {
        for source in PeerSource::ALL {
            let mut r = sample();
            r.source = source;
            let bytes = encode(&r).unwrap();
            assert_eq!(bytes[0], RECORD_VERSION);
            assert_eq!(decode(&r.peer_id.to_bytes(), &bytes, &net()).unwrap(), r);
        }
    }

    #[test]
    fn decoding_validates() {
        let r = sample();
        let key = r.peer_id.to_bytes();
        let good = encode(&r).unwrap();
        let body = &good[1..];
        let s: CompactRecord<'_> = postcard::from_bytes(body).unwrap();
        let reencode = |s: &CompactRecord<'_>| {
            let mut v = vec![RECORD_VERSION];
            v.extend(postcard::to_allocvec(s).unwrap());
            v.push(0); // no cause of a ban
            decode(&key, &v, &net())
        };
        assert!(reencode(&s).is_ok());
        // Trailing bytes, a truncated record, an unknown tag, a bad key, an unknown source.
        let mut long = good.clone();
        long.push(0);
        assert!(matches!(
            decode(&key, &long, &net()),
            Err(RecordError::Compact(_))
        ));
        assert!(decode(&key, &good[..good.len() - 1], &net()).is_err());
        assert!(matches!(
            decode(&key, &[], &net()),
            Err(RecordError::Compact(_))
        ));
        assert!(matches!(
            decode(&[1, 2, 3], &good, &net()),
            Err(RecordError::PeerId(_))
        ));
        let mut bad = CompactRecord { source: 5, ..s };
        assert!(matches!(reencode(&bad), Err(RecordError::Compact(_))));
        bad.source = 0;
        // A netgroup that does not match its address, a missing one, a bad address.
        bad.netgroups[4] = Some(DiskGroup::Local("10.0.0.9".parse().unwrap()));
        assert!(matches!(reencode(&bad), Err(RecordError::NetGroups(_))));
        bad.netgroups.pop();
        assert!(matches!(reencode(&bad), Err(RecordError::NetGroups(_))));
        bad.addrs.pop();
        bad.addrs[0] = Bytes::new(&[0xff, 0xff, 0xff]);
        assert!(matches!(reencode(&bad), Err(RecordError::Addr(_))));
        bad.addrs = vec![Bytes::new(&[]); MAX_ADDRS + 1];
        assert!(matches!(reencode(&bad), Err(RecordError::TooManyAddrs(_))));
        assert!(matches!(
            decode(&key, &vec![RECORD_VERSION; MAX_RECORD_BYTES + 1], &net()),
            Err(RecordError::Codec(CodecError::TooLarge { .. }))
        ));
    }

    proptest::proptest! {
        #[test]
        fn damaged_v3_never_panics(
            flips in proptest::collection::vec((0usize..512, 1u8..), 1..6),
            tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let r = sample();
            let key = r.peer_id.to_bytes();
            let mut bytes = encode(&r).unwrap();
            for (at, x) in &flips {
                let i = 1 + at % (bytes.len() - 1);
                bytes[i] ^= x;
            }
            if let Ok(back) = decode(&key, &bytes, &net()) {
                proptest::prop_assert!(back.addrs.len() <= MAX_ADDRS);
                proptest::prop_assert_eq!(back.netgroups().len(), back.addrs.len());
            }
            let mut random = vec![RECORD_VERSION];
            random.extend(tail);
            let _ = decode(&key, &random, &net());
        }
    }

    #[test]
    fn smaller_than_v2() {
        let r = sample();
        let v2 = super::super::encode_record_as(&r, super::super::RECORD_V2).unwrap();
        let v3 = encode(&r).unwrap();
        assert!(v3.len() * 2 < v2.len(), "v3 {} v2 {}", v3.len(), v2.len());
    }
}
