//! Tests of [`super::select_outbound`] and [`super::single_source`].

use super::*;
use crate::record::tests::{net, peer};
use dsdn_protocols::ServiceSet;
use multiaddr::Multiaddr;
use proptest::prelude::*;

const NOW: u64 = 1_700_000_000;

use PeerSource::{DnsSeed as Dns, Inbound, PeerExchange as Pex, StaticConfig as Static};

/// Peer `n` at `addr` (`""` = no address), learned from `source`, with `successes`.
fn cand(n: u64, addr: &str, source: PeerSource, successes: u32) -> PeerRecord {
    let addrs: Vec<Multiaddr> = if addr.is_empty() {
        vec![]
    } else {
        vec![addr.parse().unwrap()]
    };
    let mut r = PeerRecord::new(peer(n), addrs, net(), ServiceSet::EMPTY, source, 0);
    r.success_count = successes;
    r
}

fn ip(n: u64, ip: &str, source: PeerSource, successes: u32) -> PeerRecord {
    cand(n, &format!("/ip4/{ip}/tcp/4001"), source, successes)
}

fn ids(v: &[PeerRecord]) -> Vec<PeerId> {
    v.iter().map(|r| r.peer_id).collect()
}

fn g(a: u8, b: u8) -> NetGroup {
    NetGroup::Ipv4([a, b])
}

#[test]
fn single_source_needs_two_equal_entries() {
    assert!(!single_source(&[]));
    assert!(!single_source(&[Dns]));
    assert!(single_source(&[Dns, Dns]));
    assert!(single_source(&[Pex, Pex, Pex]));
    assert!(!single_source(&[Dns, Pex]));
    assert!(!single_source(&[Pex, Pex, Inbound]));
}

#[test]
fn one_peer_per_netgroup() {
    let c = [
        ip(1, "203.0.1.1", Pex, 10),
        ip(2, "203.0.2.2", Dns, 9), // same /16 as 1
        ip(3, "198.51.1.1", Static, 8),
        ip(4, "198.52.1.1", Pex, 7),
    ];
    let none = OutboundView::default();
    assert_eq!(
        ids(&select_outbound(&c, &none, 8, NOW)),
        [1, 3, 4].map(peer)
    );
    assert_eq!(ids(&select_outbound(&c, &none, 2, NOW)), [1, 3].map(peer));
    assert!(select_outbound(&c, &none, 0, NOW).is_empty());
    // 203.0 is already an outbound netgroup: neither 1 nor 2.
    let view = OutboundView {
        netgroups: [g(203, 0)].into(),
        sources: vec![Inbound],
    };
    assert_eq!(ids(&select_outbound(&c, &view, 8, NOW)), [3, 4].map(peer));
}

#[test]
fn one_peer_per_netgroup_across_ipv4_and_ipv6() {
    let at = |n, a: &str| cand(n, a, Pex, 20 - u32::try_from(n).unwrap());
    let c = [
        at(1, "/ip4/203.0.1.1/tcp/4001"),
        at(2, "/ip6/2001:db8:1::1/tcp/4001"),
        at(3, "/ip6/2001:db8:2::2/udp/4001/quic-v1"), // same /32 as 2
        at(4, "/ip6/::ffff:203.0.9.9/tcp/4001"),      // 1's /16, mapped
        at(5, "/ip6/2002:cb00:0101::1/tcp/4001"),     // 1's /16, 6to4
        at(6, "/ip6/2001:db9::1/tcp/4001"),
        at(7, "/ip4/198.51.100.7/tcp/4001"),
    ];
    let none = OutboundView::default();
    assert_eq!(
        ids(&select_outbound(&c, &none, 8, NOW)),
        [1, 2, 6, 7].map(peer)
    );
    // An IPv6 /32 already outbound bars its candidates, not the IPv4 ones.
    let view = OutboundView {
        netgroups: [NetGroup::Ipv6([0x2001, 0xdb8])].into(),
        sources: vec![Inbound],
    };
    assert_eq!(
        ids(&select_outbound(&c, &view, 8, NOW)),
        [1, 6, 7].map(peer)
    );
}

#[test]
fn banned_addressless_and_duplicates_are_skipped() {
    let mut banned = ip(1, "1.1.1.1", Pex, 50);
    banned.banned_until = Some(NOW + 1);
    let c = [
        banned,
        cand(2, "", Dns, 40),
        ip(3, "3.3.3.3", Static, 1),
        ip(3, "3.3.3.3", Static, 1),
    ];
    let none = OutboundView::default();
    assert_eq!(ids(&select_outbound(&c, &none, 8, NOW)), [peer(3)]);
    // Once the ban expired, 1 is the best.
    assert_eq!(
        ids(&select_outbound(&c, &none, 8, NOW + 1)),
        [1, 3].map(peer)
    );
}

#[test]
fn addresses_without_netgroup_are_allowed() {
    let c = [cand(1, "/memory/1", Pex, 2), cand(2, "/memory/2", Dns, 1)];
    let got = select_outbound(&c, &OutboundView::default(), 8, NOW);
    assert_eq!(ids(&got), [1, 2].map(peer));
    assert_eq!(got[0].netgroup(), None);
}

#[test]
fn suspicious_last_whatever_the_score() {
    let mut sus = ip(1, "1.1.1.1", Pex, 1000);
    sus.consecutive_failures = 10;
    let c = [sus, ip(2, "2.2.2.2", Pex, 0)];
    let view = OutboundView {
        netgroups: HashSet::new(),
        sources: vec![Dns],
    };
    assert_eq!(ids(&select_outbound(&c, &view, 2, NOW)), [2, 1].map(peer));
}

#[test]
fn source_diversity_replaces_the_last_chosen() {
    let c = [
        ip(1, "1.1.1.1", Dns, 9),
        ip(2, "2.2.2.2", Dns, 8),
        ip(3, "3.3.3.3", Dns, 7),
        ip(4, "4.4.4.4", Pex, 1),
        ip(5, "5.5.5.5", Static, 2),
    ];
    let none = OutboundView::default();
    // Greedy would take 1, 2, 3 (all DNS): the best non-DNS candidate (5) replaces 3.
    assert_eq!(
        ids(&select_outbound(&c, &none, 3, NOW)),
        [1, 2, 5].map(peer)
    );
    // With room for everyone, sources are mixed anyway.
    assert_eq!(ids(&select_outbound(&c, &none, 8, NOW)).len(), 5);
    // One slot, one DNS outbound peer already: the single slot goes to another source.
    let view = OutboundView {
        netgroups: [g(9, 9)].into(),
        sources: vec![Dns],
    };
    assert_eq!(ids(&select_outbound(&c, &view, 1, NOW)), [peer(5)]);
    // One slot, no outbound peer: a single peer is not "one single source".
    assert_eq!(ids(&select_outbound(&c, &none, 1, NOW)), [peer(1)]);
    // Already diverse outbound peers: plain best-first.
    let mixed = OutboundView {
        netgroups: HashSet::new(),
        sources: vec![Dns, Pex],
    };
    assert_eq!(ids(&select_outbound(&c, &mixed, 2, NOW)), [1, 2].map(peer));
    // No other source among the candidates: nothing to do.
    assert_eq!(
        ids(&select_outbound(&c[..3], &none, 3, NOW)),
        [1, 2, 3].map(peer)
    );
}

#[test]
fn source_diversity_respects_netgroups() {
    // The only PEX candidate shares 1's netgroup: it replaces 1, not the last chosen (2).
    let c = [
        ip(1, "1.1.1.1", Dns, 9),
        ip(2, "2.2.2.2", Dns, 8),
        ip(3, "1.1.9.9", Pex, 1),
    ];
    let none = OutboundView::default();
    assert_eq!(ids(&select_outbound(&c, &none, 2, NOW)), [2, 3].map(peer));
    // Its netgroup is held by an outbound peer: no way to diversify.
    let view = OutboundView {
        netgroups: [g(1, 1)].into(),
        sources: vec![Dns],
    };
    assert_eq!(ids(&select_outbound(&c, &view, 2, NOW)), [peer(2)]);
}

fn any_candidate(n: u64) -> impl Strategy<Value = PeerRecord> {
    (
        0u8..6,
        0u8..3,
        prop::sample::select(PeerSource::ALL.to_vec()),
        0u32..20,
        0u32..12,
        prop::option::of(NOW - 5..NOW + 5),
    )
        .prop_map(move |(kind, b, source, s, cf, ban)| {
            let addr = match kind {
                0 => String::new(),
                1 => format!("/memory/{n}"),
                k => format!("/ip4/{k}.{b}.{}.1/tcp/1", n % 250),
            };
            let mut r = cand(n, &addr, source, s);
            r.consecutive_failures = cf;
            r.banned_until = ban;
            r
        })
}

fn any_candidates() -> impl Strategy<Value = Vec<PeerRecord>> {
    (0usize..24).prop_flat_map(|len| (0..len as u64).map(any_candidate).collect::<Vec<_>>())
}

fn any_view() -> impl Strategy<Value = OutboundView> {
    (
        prop::collection::hash_set((2u8..6, 0u8..3).prop_map(|(a, b)| g(a, b)), 0..4),
        prop::collection::vec(prop::sample::select(PeerSource::ALL.to_vec()), 0..4),
    )
        .prop_map(|(netgroups, sources)| OutboundView { netgroups, sources })
}

proptest! {
    #[test]
    fn selection_invariants(c in any_candidates(), view in any_view(), slots in 0usize..8) {
        let got = select_outbound(&c, &view, slots, NOW);
        let eligible: Vec<&PeerRecord> =
            c.iter().filter(|r| !r.is_banned(NOW) && !r.addrs.is_empty()).collect();
        prop_assert!(got.len() <= slots);
        prop_assert!(got.len() <= eligible.len());
        let unique: HashSet<PeerId> = got.iter().map(|r| r.peer_id).collect();
        prop_assert_eq!(unique.len(), got.len());
        prop_assert!(got.iter().all(|r| !r.is_banned(NOW) && !r.addrs.is_empty()));
        let groups: Vec<NetGroup> = got.iter().filter_map(PeerRecord::netgroup).collect();
        let distinct: HashSet<&NetGroup> = groups.iter().collect();
        prop_assert_eq!(distinct.len(), groups.len(), "two chosen in one netgroup");
        prop_assert!(groups.iter().all(|g| !view.netgroups.contains(g)));

        // Blocked: `r`'s netgroup is an outbound one or held by one of `chosen`.
        let blocked = |r: &PeerRecord, chosen: &[&PeerRecord]| r.netgroup().is_some_and(|g| {
            view.netgroups.contains(&g) || chosen.iter().any(|c| c.netgroup() == Some(g.clone()))
        });
        let chosen: Vec<&PeerRecord> = got.iter().collect();
        if got.len() < slots {
            for r in &eligible {
                prop_assert!(unique.contains(&r.peer_id) || blocked(r, &chosen),
                    "a free candidate was left out");
            }
        }
        let mut sources = view.sources.clone();
        sources.extend(got.iter().map(|r| r.source));
        if single_source(&sources) {
            for r in eligible.iter().filter(|r| r.source != sources[0]) {
                for pos in 0..chosen.len() {
                    let mut rest = chosen.clone();
                    rest.remove(pos);
                    prop_assert!(blocked(r, &rest), "{} could have diversified the sources", r.peer_id);
                }
            }
        }
    }
}
