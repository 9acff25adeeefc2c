//! Tests of the outbound and feeler candidates of the store.

use std::collections::HashSet;

use dsdn_protocols::PeerSource;
use proptest::prelude::*;

use super::tests_ops::{bulk_put, ids, rec, store, NOW};
use super::*;
use crate::record::tests::peer;
use crate::select::{select_outbound, OutboundView};
use crate::NetGroup;

/// Peer `n` at a public IPv4 address in /16 `group`.
fn public(n: u64, group: u8, source: PeerSource, successes: u32) -> PeerRecord {
    let mut r = rec(n, NOW);
    r.addrs = vec![format!("/ip4/{}.{group}.0.{}/tcp/1", 1 + n % 3, n % 250)
        .parse()
        .unwrap()];
    r.source = source;
    r.success_count = successes;
    r
}

#[test]
fn outbound_candidates_follow_the_selection_rules() {
    let (_d, s) = store();
    let mut records = vec![
        public(1, 0, PeerSource::DnsSeed, 9),
        public(4, 0, PeerSource::DnsSeed, 8), // same /16 as 1 (1.0)
        public(2, 0, PeerSource::DnsSeed, 7),
        public(3, 0, PeerSource::PeerExchange, 1),
        public(6, 0, PeerSource::StaticConfig, 20),
    ];
    records[4].banned_until = Some(NOW + 1);
    bulk_put(&s, &records);
    let none = HashSet::new();
    let view = OutboundView::default();
    // 4 shares 1's netgroup; 6 is banned; two DNS peers would be one single source.
    assert_eq!(
        ids(&s.outbound_candidates(NOW, &none, &view, 2).unwrap()),
        [1, 3].map(peer)
    );
    assert_eq!(
        ids(&s.outbound_candidates(NOW, &none, &view, 8).unwrap()),
        [1, 2, 3].map(peer)
    );
    // Excluded peers are not candidates (4 is now free to take 2.0); netgroups of the view
    // (3.0: peer 2) are skipped.
    let exclude: HashSet<PeerId> = [peer(1)].into();
    let view = OutboundView {
        netgroups: [NetGroup::Ipv4([3, 0])].into(),
        sources: vec![PeerSource::PeerExchange],
    };
    assert_eq!(
        ids(&s.outbound_candidates(NOW, &exclude, &view, 8).unwrap()),
        [4, 3].map(peer)
    );
    assert!(s
        .outbound_candidates(NOW, &none, &view, 0)
        .unwrap()
        .is_empty());
}

#[test]
fn feeler_candidates_are_random_and_filtered() {
    let (_d, s) = store();
    let mut records: Vec<PeerRecord> = (1..=12).map(|n| rec(n, NOW)).collect();
    records[0].banned_until = Some(NOW + 1);
    records[1].addrs.clear();
    bulk_put(&s, &records);
    let exclude: HashSet<PeerId> = [peer(3)].into();
    let eligible: HashSet<PeerId> = (4..=12).map(peer).collect();
    let mut seen = HashSet::new();
    for _ in 0..60 {
        let got = s.feeler_candidates(NOW, &exclude, 2).unwrap();
        assert_eq!(got.len(), 2);
        assert_ne!(got[0].peer_id, got[1].peer_id);
        for r in &got {
            assert!(eligible.contains(&r.peer_id), "{}", r.peer_id);
            seen.insert(r.peer_id);
        }
    }
    // 60 draws of 2 out of 9: all 9 show up (the chance of missing one is < 1e-5).
    assert_eq!(seen, eligible);
    let all = s.feeler_candidates(NOW, &exclude, 100).unwrap();
    assert_eq!(ids(&all).into_iter().collect::<HashSet<_>>(), eligible);
    assert!(s.feeler_candidates(NOW, &exclude, 0).unwrap().is_empty());
    // After the ban, peer 1 may be picked.
    let all = s.feeler_candidates(NOW + 1, &exclude, 100).unwrap();
    assert_eq!(all.len(), 10);
}

fn any_store_record(n: u64) -> impl Strategy<Value = PeerRecord> {
    (
        0u8..4,
        prop::sample::select(PeerSource::ALL.to_vec()),
        0u32..10,
        0u32..12,
        prop::option::of(NOW - 2..NOW + 2),
        any::<bool>(),
    )
        .prop_map(move |(group, source, s, cf, ban, addrless)| {
            let mut r = public(n, group, source, s);
            r.consecutive_failures = cf;
            r.banned_until = ban;
            if addrless {
                r.addrs.clear();
            }
            r
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

    /// The index-based choice equals the pure selection over every record.
    #[test]
    fn outbound_candidates_equal_select_outbound(
        records in (0usize..30).prop_flat_map(|len| (0..len as u64).map(any_store_record).collect::<Vec<_>>()),
        exclude in prop::collection::hash_set((0u64..30).prop_map(peer), 0..5),
        groups in prop::collection::hash_set((1u8..4, 0u8..4).prop_map(|(a, b)| NetGroup::Ipv4([a, b])), 0..3),
        sources in prop::collection::vec(prop::sample::select(PeerSource::ALL.to_vec()), 0..3),
        slots in 0usize..9,
    ) {
        let (_d, s) = store();
        bulk_put(&s, &records);
        let view = OutboundView { netgroups: groups, sources };
        let got = s.outbound_candidates(NOW, &exclude, &view, slots).unwrap();
        let pool: Vec<PeerRecord> = s
            .all()
            .unwrap()
            .into_iter()
            .filter(|r| !exclude.contains(&r.peer_id))
            .collect();
        prop_assert_eq!(got, select_outbound(&pool, &view, slots, NOW));
    }
}
