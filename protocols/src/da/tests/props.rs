//! Property tests of the DA log.

use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use super::*;
use crate::codec;

const N: usize = 40;

/// A valid chain of `N` blobs, built once.
fn fixture() -> &'static [VerifiedBlob] {
    static CHAIN: OnceLock<Vec<VerifiedBlob>> = OnceLock::new();
    CHAIN.get_or_init(|| chain_of(N as u64))
}

fn in_order() -> &'static DaChain {
    static CHAIN: OnceLock<DaChain> = OnceLock::new();
    CHAIN.get_or_init(|| {
        let mut c = DaChain::new(DaState::new(net()));
        for b in fixture() {
            assert!(matches!(c.offer(b.clone()), Offer::Applied(_)));
        }
        c
    })
}

/// Text fields of 1..=128 bytes, some of them multi-byte.
fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9é_.-]{1,64}"
}

fn b32() -> impl Strategy<Value = Bytes32> {
    any::<[u8; 32]>().prop_map(Bytes32)
}

fn arb_event() -> impl Strategy<Value = DaEvent> {
    prop_oneof![
        (text(), text(), any::<u64>(), select(NODE_CLASSES.to_vec())).prop_map(
            |(node_id, zone, capacity_bytes, class)| DaEvent::NodeRegistered {
                node_id,
                zone,
                capacity_bytes,
                class: class.into(),
            }
        ),
        (b32(), any::<u64>(), b32()).prop_map(|(chunk_id, size_bytes, owner)| {
            DaEvent::ChunkDeclared {
                chunk_id,
                size_bytes,
                owner,
            }
        }),
        (b32(), text()).prop_map(|(chunk_id, node_id)| DaEvent::ReplicaAdded { chunk_id, node_id }),
        (b32(), text())
            .prop_map(|(chunk_id, node_id)| DaEvent::ReplicaRemoved { chunk_id, node_id }),
        (b32(), any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(chunk_id, a, b)| {
            let mut sig = [0u8; 64];
            sig[..32].copy_from_slice(&a);
            sig[32..].copy_from_slice(&b);
            DaEvent::DeleteRequested {
                chunk_id,
                owner_signature: Bytes64(sig),
            }
        }),
    ]
}

/// Blob indices: every blob once plus some duplicates, in any order.
fn arrival() -> impl Strategy<Value = Vec<usize>> {
    vec(0..N, 0..N).prop_flat_map(|dups| {
        let all: Vec<usize> = (0..N).chain(dups).collect();
        Just(all).prop_shuffle()
    })
}

proptest! {
    /// (1) Any permutation and duplication gives the in-order state. Blobs refused as too
    /// far ahead are offered again in a later round, as a sync would.
    #[test]
    fn any_arrival_order_gives_the_in_order_state(
        order in arrival(),
        max_blobs in 2usize..16,
        max_bytes in prop_oneof![Just(usize::MAX), 500usize..20_000],
    ) {
        let blobs = fixture();
        let mut c = DaChain::with_limits(DaState::new(net()), max_blobs, max_bytes);
        let mut applied = Vec::new();
        let mut todo = order;
        for _round in 0..=N {
            let mut again = Vec::new();
            for i in todo {
                match c.offer(blobs[i].clone()) {
                    Offer::Applied(done) => applied.extend(done.iter().map(VerifiedBlob::height)),
                    Offer::TooFarAhead => again.push(i),
                    Offer::Held | Offer::Duplicate => {}
                    Offer::Rejected(e) => prop_assert!(false, "rejected: {e}"),
                }
                prop_assert!(c.pending() < max_blobs && c.pending_bytes() <= max_bytes);
            }
            todo = again;
            if todo.is_empty() && c.pending() == 0 {
                break;
            }
        }
        let expected = in_order();
        prop_assert_eq!(c.pending(), 0);
        prop_assert_eq!(applied, (1..=N as u64).collect::<Vec<_>>());
        prop_assert_eq!(c.height(), expected.height());
        prop_assert_eq!(c.tip_hash(), expected.tip_hash());
        prop_assert_eq!(c.state().events(), expected.state().events());
        prop_assert_eq!(c.state().state_root(), expected.state().state_root());
        prop_assert_eq!(c.state(), expected.state());
    }

    /// (2) Arbitrary bytes never panic and never verify.
    #[test]
    fn arbitrary_bytes_never_verify(bytes in vec(any::<u8>(), 0..2048)) {
        prop_assert!(DaBlob::decode_verified(&bytes, &net(), &auth()).is_err());
        let _ = DaBlob::from_bytes(&bytes);
    }

    /// (2b) Arbitrary well-formed-looking blob arrays (random events) never verify.
    #[test]
    fn arbitrary_blob_arrays_never_verify(
        height in any::<u64>(),
        kinds in vec((any::<u8>(), any::<u16>(), vec(any::<u8>(), 0..64)), 0..8),
    ) {
        let events: Vec<WireEvent> = kinds
            .into_iter()
            .map(|(k, v, b)| WireEvent(k, v, serde_bytes::ByteBuf::from(b)))
            .collect();
        let value = (1u16, "devnet", height, Bytes32([0; 32]), 0u64, events, Bytes64([0; 64]));
        let bytes = codec::encode(&value, MAX_BLOB_BYTES).unwrap();
        prop_assert!(DaBlob::decode_verified(&bytes, &net(), &auth()).is_err());
    }

    /// (3) Events round-trip through the wire and JSON forms within their size bound.
    #[test]
    fn events_round_trip(e in arb_event()) {
        prop_assert!(e.validate().is_ok());
        let w = e.to_wire().unwrap();
        prop_assert!(w.2.len() <= MAX_EVENT_BODY_BYTES);
        prop_assert_eq!(&DaEvent::from_wire(&w).unwrap(), &e);
        let bytes = codec::encode(&w, 1024).unwrap();
        prop_assert_eq!(codec::decode::<WireEvent>(&bytes, 1024).unwrap(), w);
        let json = serde_json::to_string(&e).unwrap();
        prop_assert_eq!(serde_json::from_str::<DaEvent>(&json).unwrap(), e);
    }

    /// (3) Blobs round-trip within MAX_BLOB_BYTES and verify to the same hash.
    #[test]
    fn blobs_round_trip(
        events in vec(arb_event(), 1..48),
        height in 1..u64::MAX,
        prev in any::<[u8; 32]>(),
        root in any::<[u8; 32]>(),
        ts in any::<u64>(),
    ) {
        let b = DaBlob::sign(&authority(), &net(), height, prev, root, ts, events).unwrap();
        let bytes = b.to_bytes().unwrap();
        prop_assert!(bytes.len() <= MAX_BLOB_BYTES);
        prop_assert_eq!(&DaBlob::from_bytes(&bytes).unwrap(), &b);
        let v = DaBlob::decode_verified(&bytes, &net(), &auth()).unwrap();
        prop_assert_eq!(v.encoded(), &bytes[..]);
        let again = b.verify(&net(), &auth()).unwrap();
        prop_assert_eq!(v.hash(), again.hash());
    }

    /// (4) No single-byte edit of a valid encoding verifies to a different hash.
    #[test]
    fn mutations_never_verify_to_another_hash(
        pick in 0..N,
        at in any::<Index>(),
        edit in 0u8..3,
        byte in any::<u8>(),
    ) {
        let original = &fixture()[pick];
        let mut bytes = original.encoded().to_vec();
        let i = at.index(bytes.len());
        match edit {
            0 => bytes[i] ^= byte.max(1),
            1 => {
                bytes.remove(i);
            }
            _ => bytes.insert(i, byte),
        }
        if let Ok(v) = DaBlob::decode_verified(&bytes, &net(), &auth()) {
            prop_assert_eq!(v.hash(), original.hash());
            prop_assert_eq!(v.blob(), original.blob());
        }
    }
}
