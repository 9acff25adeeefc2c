//! Unit and property tests of the record layouts.

use super::*;
use proptest::prelude::*;

/// A distinct, valid PeerId per `n` (identity multihash of `n`'s bytes).
pub(crate) fn peer(n: u64) -> PeerId {
    let mut bytes = vec![0x00, 8];
    bytes.extend_from_slice(&n.to_be_bytes());
    PeerId::from_bytes(&bytes).unwrap()
}

/// `/ip4/10.x.y.z/tcp/<port>`.
pub(crate) fn addr(n: u32, port: u16) -> Multiaddr {
    let [a, b, c, d] = n.to_be_bytes();
    format!("/ip4/{}.{b}.{c}.{d}/tcp/{port}", 10u8.wrapping_add(a))
        .parse()
        .unwrap()
}

pub(crate) fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

fn full_record() -> PeerRecord {
    PeerRecord {
        peer_id: peer(7),
        addrs: (0..MAX_ADDRS as u32).map(|i| addr(i, 4001)).collect(),
        network: net(),
        services: ServiceSet::from_bits(u16::MAX),
        source: PeerSource::PeerExchange,
        first_seen: 1,
        last_seen: 2,
        last_success: Some(3),
        last_attempt: Some(4),
        success_count: u32::MAX,
        failure_count: 6,
        consecutive_failures: 7,
        banned_until: Some(u64::MAX),
        ban_cause: Some(BanCause::new("da_invalid_blob", Some(u64::MAX))),
    }
}

#[test]
fn round_trip() {
    let r = full_record();
    let bytes = encode_record(&r).unwrap();
    assert!(bytes.len() < MAX_RECORD_BYTES);
    let back = decode_record(&r.peer_id.to_bytes(), &bytes, &net()).unwrap();
    assert_eq!(back, r);
}

#[test]
fn decoding_validates() {
    let r = full_record();
    let bytes = encode_record_as(&r, RECORD_V2).unwrap();
    // Stored under another key.
    assert!(matches!(
        decode_record(&peer(8).to_bytes(), &bytes, &net()),
        Err(RecordError::KeyMismatch)
    ));
    // Another network.
    let other = NetworkId::new("testnet").unwrap();
    assert!(matches!(
        decode_record(&r.peer_id.to_bytes(), &bytes, &other),
        Err(RecordError::Network { .. })
    ));
    // Too many addresses, a bad address, a bad peer id, a future version.
    let mut s: StoredRecord = codec::decode(&bytes, MAX_RECORD_BYTES).unwrap();
    s.addrs.push(ByteBuf::from(addr(99, 1).to_vec()));
    let b = codec::encode(&s, MAX_RECORD_BYTES).unwrap();
    assert!(matches!(
        decode_record(&r.peer_id.to_bytes(), &b, &net()),
        Err(RecordError::TooManyAddrs(17))
    ));
    s.addrs = vec![ByteBuf::from(vec![0xff, 0xff, 0xff])];
    let b = codec::encode(&s, MAX_RECORD_BYTES).unwrap();
    assert!(matches!(
        decode_record(&r.peer_id.to_bytes(), &b, &net()),
        Err(RecordError::Addr(_))
    ));
    s.addrs = vec![];
    s.peer_id = ByteBuf::from(vec![1, 2, 3]);
    let b = codec::encode(&s, MAX_RECORD_BYTES).unwrap();
    assert!(matches!(
        decode_record(&[1, 2, 3], &b, &net()),
        Err(RecordError::PeerId(_))
    ));
    s.peer_id = ByteBuf::from(r.peer_id.to_bytes());
    for v in [0, 3, 255] {
        s.v = v;
        let b = codec::encode(&s, MAX_RECORD_BYTES).unwrap();
        assert!(matches!(
            decode_record(&r.peer_id.to_bytes(), &b, &net()),
            Err(RecordError::Version(x)) if x == v
        ));
    }
    // Oversized input is refused before decoding.
    assert!(matches!(
        decode_record(&[], &vec![0u8; MAX_RECORD_BYTES + 1], &net()),
        Err(RecordError::Codec(CodecError::TooLarge { .. }))
    ));
}

#[test]
fn v3_v2_and_v1_decode() {
    let mut r = full_record();
    // The CBOR layouts have no cause of a ban.
    r.ban_cause = None;
    r.addrs = vec![
        "/ip4/203.0.113.5/tcp/1".parse().unwrap(),
        "/memory/5".parse().unwrap(),
        "/dns4/Seed.Example/tcp/1".parse().unwrap(),
    ];
    let key = r.peer_id.to_bytes();
    let v2 = encode_record_as(&r, RECORD_V2).unwrap();
    let s: StoredRecord = codec::decode(&v2, MAX_RECORD_BYTES).unwrap();
    assert_eq!(s.v, 2);
    assert_eq!(
        s.netgroups,
        Some(vec![
            Some("ipv4:203.0".to_owned()),
            None,
            Some("dns:seed.example".to_owned())
        ])
    );
    assert_eq!(
        decode_record_versioned(&key, &v2, &net()).unwrap(),
        (r.clone(), 2)
    );
    let v3 = encode_record(&r).unwrap();
    assert_eq!(
        decode_record_versioned(&key, &v3, &net()).unwrap(),
        (r.clone(), RECORD_VERSION)
    );
    let v1 = encode_record_as(&r, RECORD_V1).unwrap();
    assert!(v1.len() < v2.len());
    assert_eq!(
        decode_record_versioned(&key, &v1, &net()).unwrap(),
        (r.clone(), 1)
    );
    assert_eq!(
        r.netgroups(),
        vec![
            Some(NetGroup::Ipv4([203, 0])),
            None,
            Some(NetGroup::Dns("seed.example".into()))
        ]
    );
    assert_eq!(r.netgroup(), Some(NetGroup::Ipv4([203, 0])));
    r.addrs.clear();
    assert_eq!(r.netgroup(), None);
}

#[test]
fn netgroups_must_match_the_addresses() {
    let r = full_record();
    let key = r.peer_id.to_bytes();
    let good: StoredRecord =
        codec::decode(&encode_record_as(&r, RECORD_V2).unwrap(), MAX_RECORD_BYTES).unwrap();
    let check = |s: &StoredRecord| {
        decode_record(&key, &codec::encode(s, MAX_RECORD_BYTES).unwrap(), &net())
    };
    assert!(check(&good).is_ok());
    let tamper: [fn(&mut StoredRecord); 5] = [
        // A v2 record without netgroups.
        |s| s.netgroups = None,
        // A v1 record with netgroups.
        |s| s.v = RECORD_V1,
        // One netgroup too few, one wrong, one missing.
        |s| drop(s.netgroups.as_mut().unwrap().pop()),
        |s| s.netgroups.as_mut().unwrap()[3] = Some("ipv4:1.2".into()),
        |s| s.netgroups.as_mut().unwrap()[0] = None,
    ];
    for (i, t) in tamper.iter().enumerate() {
        let mut s: StoredRecord = codec::decode(
            &codec::encode(&good, MAX_RECORD_BYTES).unwrap(),
            MAX_RECORD_BYTES,
        )
        .unwrap();
        t(&mut s);
        assert!(
            matches!(check(&s), Err(RecordError::NetGroups(_))),
            "tamper {i}"
        );
    }
}

#[test]
fn helpers() {
    let mut r = PeerRecord::new(
        peer(1),
        vec![],
        net(),
        ServiceSet::EMPTY,
        PeerSource::Inbound,
        100,
    );
    assert!(!r.is_banned(100));
    r.banned_until = Some(200);
    assert!(r.is_banned(199));
    assert!(!r.is_banned(200));
    assert!(!r.contacted_within(100, 10));
    r.last_success = Some(90);
    assert!(r.contacted_within(100, 10));
    assert!(!r.contacted_within(101, 10));
    assert!(r.contacted_within(50, 0), "future timestamps count as now");
    r.consecutive_failures = 9;
    assert!(!r.is_suspicious());
    r.consecutive_failures = 10;
    assert!(r.is_suspicious());
}

#[test]
fn sanitize_bounds_and_dedupes() {
    let long: Multiaddr = format!("/dns/{}/tcp/1", "a".repeat(200)).parse().unwrap();
    assert!(long.len() > MAX_ADDR_LEN);
    let mut input = vec![addr(1, 1), Multiaddr::empty(), long, addr(1, 1)];
    input.extend((2..40).map(|i| addr(i, 1)));
    let out = sanitize_addrs(&input);
    assert_eq!(out.len(), MAX_ADDRS);
    assert_eq!(out[0], addr(1, 1));
    assert_eq!(out[1], addr(2, 1));
    assert!(out.iter().all(|a| a.len() <= MAX_ADDR_LEN && !a.is_empty()));
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(key in proptest::collection::vec(any::<u8>(), 0..48),
                                   bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        if let Ok(r) = decode_record(&key, &bytes, &net()) {
            prop_assert!(r.addrs.len() <= MAX_ADDRS);
            prop_assert_eq!(r.peer_id.to_bytes(), key);
        }
    }
}
