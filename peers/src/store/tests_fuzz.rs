//! Fuzz-style property tests: arbitrary files and arbitrary learned peers never produce an
//! invalid record.

use std::fs;

use dsdn_protocols::{PeerSource, ServiceSet};
use multiaddr::{Multiaddr, Protocol};
use proptest::prelude::*;

use super::tests_ops::NOW;
use super::txn::PEERS;
use super::*;
use crate::record::tests::{addr, net, peer};
use crate::record::{decode_record, encode_record, MAX_ADDRS, MAX_ADDR_LEN};

/// Every record is within bounds, of our network, and survives a re-encode unchanged.
fn assert_valid(s: &PeerStore) {
    let all = s.all().unwrap();
    assert_eq!(all.len(), s.len(), "index and file agree");
    for r in &all {
        assert!(r.addrs.len() <= MAX_ADDRS, "{} addrs", r.addrs.len());
        assert!(r
            .addrs
            .iter()
            .all(|a| !a.is_empty() && a.len() <= MAX_ADDR_LEN));
        assert_eq!(r.network, net());
        let bytes = encode_record(r).unwrap();
        let back = decode_record(&r.peer_id.to_bytes(), &bytes, &net()).unwrap();
        assert_eq!(&back, r);
    }
    let st = s.stats(NOW);
    assert_eq!(st.entries, all.len());
}

/// The bytes of a small real store.
fn real_file() -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("peers.dat");
    {
        let (s, _) = PeerStore::open(&path, &net()).unwrap();
        for n in 0..20u64 {
            s.record_success(
                peer(n),
                &[addr(n as u32, 1), addr(n as u32 + 100, 2)],
                ServiceSet::from_bits(n as u16),
                PeerSource::ALL[(n % 4) as usize],
                NOW,
            )
            .unwrap();
        }
        s.save_anchors(&[peer(1), peer(2)]).unwrap();
    }
    fs::read(&path).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary bytes, or a real file with arbitrary bytes spliced in: `open` never panics,
    /// and whatever store it returns holds only valid records.
    #[test]
    fn arbitrary_files_never_yield_invalid_records(
        real in any::<bool>(),
        splices in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec(any::<u8>(), 1..64)), 0..6),
        random in prop::collection::vec(any::<u8>(), 0..8192),
    ) {
        let mut bytes = if real { real_file() } else { random };
        for (at, chunk) in &splices {
            if bytes.is_empty() {
                break;
            }
            let i = at.index(bytes.len());
            let end = (i + chunk.len()).min(bytes.len());
            bytes[i..end].copy_from_slice(&chunk[..end - i]);
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.dat");
        fs::write(&path, &bytes).unwrap();
        if let Ok((s, report)) = PeerStore::open(&path, &net()) {
            if report.moved_aside.is_some() {
                prop_assert!(s.is_empty());
            }
            assert_valid(&s);
            // Usable: a write works.
            s.record_success(peer(999), &[addr(999, 1)], ServiceSet::EMPTY, PeerSource::Inbound, NOW)
                .unwrap();
            let _ = s.take_anchors(NOW).unwrap();
            assert_valid(&s);
        }
    }

    /// Arbitrary values under arbitrary keys of the peers table: each one is either a valid
    /// record or purged at open.
    #[test]
    fn arbitrary_record_values_are_purged(
        entries in prop::collection::vec((prop::collection::vec(any::<u8>(), 0..48), prop::collection::vec(any::<u8>(), 0..400)), 0..12),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("peers.dat");
        drop(PeerStore::open(&path, &net()).unwrap());
        {
            let db = redb::Database::open(&path).unwrap();
            let txn = db.begin_write().unwrap();
            {
                let mut t = txn.open_table(PEERS).unwrap();
                for (k, v) in &entries {
                    t.insert(k.as_slice(), v.as_slice()).unwrap();
                }
            }
            txn.commit().unwrap();
        }
        let (s, report) = PeerStore::open(&path, &net()).unwrap();
        prop_assert_eq!(report.moved_aside, None);
        let distinct: std::collections::HashSet<&Vec<u8>> = entries.iter().map(|(k, _)| k).collect();
        prop_assert_eq!(s.len() + report.purged_records, distinct.len());
        assert_valid(&s);
    }
}

fn any_addr() -> impl Strategy<Value = Multiaddr> {
    prop_oneof![
        Just(Multiaddr::empty()),
        (any::<u32>(), any::<u16>()).prop_map(|(ip, port)| {
            Multiaddr::empty()
                .with(Protocol::Ip4(ip.into()))
                .with(Protocol::Tcp(port))
        }),
        (any::<u128>(), any::<u16>()).prop_map(|(ip, port)| {
            Multiaddr::empty()
                .with(Protocol::Ip6(ip.into()))
                .with(Protocol::Udp(port))
                .with(Protocol::QuicV1)
        }),
        "[a-z0-9.]{1,250}".prop_map(|name| {
            Multiaddr::empty()
                .with(Protocol::Dns(name.into()))
                .with(Protocol::Tcp(1))
        }),
        (1usize..60).prop_map(|n| {
            (0..n).fold(Multiaddr::empty(), |a, i| a.with(Protocol::Tcp(i as u16)))
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Arbitrary PEX batches: nothing is stored with more than 16 addresses, an empty or
    /// over-long address, or no address at all.
    #[test]
    fn learn_many_bounds_what_it_stores(
        batch in prop::collection::vec(
            (0u64..24, prop::collection::vec(any_addr(), 0..40), any::<u16>()),
            0..40,
        ),
    ) {
        let (_d, s) = super::tests_ops::store();
        let learned: Vec<LearnedPeer> = batch
            .iter()
            .map(|(n, addrs, bits)| LearnedPeer {
                peer_id: peer(*n),
                addrs: addrs.clone(),
                services: ServiceSet::from_bits(*bits),
            })
            .collect();
        let inserted = s.learn_many(&learned, PeerSource::PeerExchange, NOW).unwrap();
        prop_assert_eq!(inserted, s.len());
        for r in s.all().unwrap() {
            prop_assert!(!r.addrs.is_empty() && r.addrs.len() <= MAX_ADDRS);
            prop_assert!(r.addrs.iter().all(|a| !a.is_empty() && a.len() <= MAX_ADDR_LEN));
            // The first batch entry of this peer with a valid address won.
            let first = learned
                .iter()
                .find(|l| l.peer_id == r.peer_id && l.addrs.iter().any(|a| !a.is_empty() && a.len() <= MAX_ADDR_LEN))
                .unwrap();
            prop_assert_eq!(r.addrs, crate::record::sanitize_addrs(&first.addrs));
        }
        assert_valid(&s);
    }
}

/// A real PEX response with `n` entries, as bytes on the wire.
fn real_pex_bytes(n: u64) -> Vec<u8> {
    use dsdn_protocols::pex::{PexResponse, MAX_PEX_RESPONSE_BYTES};
    let (_d, s) = super::tests_ops::store();
    for i in 0..n {
        s.record_success(
            peer(i),
            &[addr(i as u32, 1)],
            ServiceSet::from_bits(1),
            PeerSource::DnsSeed,
            NOW,
        )
        .unwrap();
    }
    let resp = PexResponse {
        entries: s
            .all()
            .unwrap()
            .iter()
            .map(PeerRecord::to_pex_entry)
            .collect(),
    };
    dsdn_protocols::codec::encode(&resp, MAX_PEX_RESPONSE_BYTES).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// Arbitrary bytes, or a real PEX response with arbitrary bytes spliced in, go through the
    /// node's receive path (capped decode, `validated`, `LearnedPeer::from_pex_entry`,
    /// `learn_many`): never a panic, never an invalid record stored, never more than 1000
    /// entries accepted from one response.
    #[test]
    fn arbitrary_pex_bytes_never_store_invalid_records(
        random in prop::collection::vec(any::<u8>(), 0..2048),
        splice in prop::collection::vec(any::<u8>(), 1..64),
        at in any::<prop::sample::Index>(),
        use_real in any::<bool>(),
    ) {
        use dsdn_protocols::pex::{PexResponse, MAX_PEX_ENTRIES, MAX_PEX_RESPONSE_BYTES};
        let bytes = if use_real {
            let mut b = real_pex_bytes(12);
            let i = at.index(b.len());
            let end = (i + splice.len()).min(b.len());
            b.splice(i..end, splice.iter().copied());
            b
        } else {
            random
        };
        let Ok(resp) = dsdn_protocols::codec::decode::<PexResponse>(&bytes, MAX_PEX_RESPONSE_BYTES) else {
            return Ok(());
        };
        let Ok(entries) = resp.validated() else {
            return Ok(());
        };
        prop_assert!(entries.len() <= MAX_PEX_ENTRIES);
        let learned: Vec<LearnedPeer> = entries.iter().filter_map(LearnedPeer::from_pex_entry).collect();
        let (_d, s) = super::tests_ops::store();
        let inserted = s.learn_many(&learned, PeerSource::PeerExchange, NOW).unwrap();
        prop_assert!(inserted <= learned.len());
        assert_valid(&s);
        for r in s.all().unwrap() {
            prop_assert_eq!(r.source, PeerSource::PeerExchange);
            prop_assert!(r.last_success.is_none(), "learned peers are never counted as verified");
        }
    }
}
