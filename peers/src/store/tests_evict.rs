//! Tests of the eviction queue: inside one transaction, [`WriteCtx::evict`] and
//! [`WriteCtx::insert_new`] choose the same victims, in the same order, as the former
//! per-insertion full scan ([`WriteCtx::worst_by_scan`]).

use std::collections::HashSet;

use dsdn_protocols::{PeerSource, ServiceSet};
use proptest::prelude::*;

use super::tests_ops::{bulk_put, store, DAY, HOUR, NOW};
use super::txn::{Eviction, WriteCtx};
use super::*;
use crate::record::tests::{addr, net, peer};
use crate::score::Standing;

/// A record of `peer(n)` with the given history (small domains, so that ranks tie often).
fn record(n: u64, h: &History) -> PeerRecord {
    let mut r = PeerRecord::new(
        peer(n),
        vec![addr(n as u32, 4001)],
        net(),
        ServiceSet::EMPTY,
        PeerSource::PeerExchange,
        NOW - DAY,
    );
    r.success_count = h.successes;
    r.failure_count = h.failures;
    r.consecutive_failures = if h.suspicious { 10 } else { 0 };
    r.last_success = h.last_success_days_ago.map(|d| NOW - d * DAY);
    r.banned_until = h.ban.map(|b| if b { NOW + HOUR } else { NOW - 1 });
    r
}

/// The ranking inputs of a generated record.
#[derive(Clone, Debug)]
struct History {
    successes: u32,
    failures: u32,
    suspicious: bool,
    last_success_days_ago: Option<u64>,
    /// `Some(true)`: banned past `NOW`; `Some(false)`: an expired ban.
    ban: Option<bool>,
}

fn history() -> impl Strategy<Value = History> {
    (
        0u32..3,
        0u32..4,
        prop::bool::weighted(0.15),
        prop::option::weighted(0.4, prop::sample::select(vec![0u64, 2, 10, 40])),
        prop::option::weighted(0.3, any::<bool>()),
    )
        .prop_map(|(successes, failures, suspicious, last, ban)| History {
            successes,
            failures,
            suspicious,
            last_success_days_ago: last,
            ban,
        })
}

/// One step inside the transaction.
#[derive(Clone, Debug)]
enum Step {
    /// An untested newcomer `peer(1000 + n)`, as `learn_many` inserts it.
    Learn(u64),
    /// A newcomer `peer(1000 + n)` with this history, as `record_success` / `ban` insert it.
    Verified(u64, History),
    /// Rewrites `peer(1000 + n)` or a stored `peer(n)` (if present) with a new history.
    Update(u64, History),
    /// Removes `peer(1000 + n)` or a stored `peer(n)`.
    Remove(u64),
    /// One eviction, without an insertion.
    Evict(bool),
    /// Later steps run this many seconds later (the queue must re-rank).
    Tick(u64),
}

fn step() -> impl Strategy<Value = Step> {
    let n = 0u64..40;
    prop_oneof![
        6 => n.clone().prop_map(Step::Learn),
        2 => (n.clone(), history()).prop_map(|(n, h)| Step::Verified(n, h)),
        2 => (n.clone(), any::<bool>(), history())
            .prop_map(|(n, new, h)| Step::Update(if new { 1000 + n } else { n }, h)),
        1 => (n.clone(), any::<bool>()).prop_map(|(n, new)| Step::Remove(if new { 1000 + n } else { n })),
        1 => any::<bool>().prop_map(Step::Evict),
        1 => prop::sample::select(vec![1u64, HOUR, 8 * DAY]).prop_map(Step::Tick),
    ]
}

/// What one step did: the victims chosen (for `Evict`) or whether it inserted, then the
/// resulting entries.
type Trace = Vec<(Vec<PeerId>, Option<bool>, Vec<(PeerId, Standing)>)>;

/// The former `insert_new`: one full scan per eviction.
fn insert_by_scan(
    ctx: &mut WriteCtx<'_>,
    r: &PeerRecord,
    eviction: Eviction,
    capacity: usize,
    now: u64,
) -> Result<bool, StoreError> {
    while ctx.len() >= capacity {
        let Some(victim) = ctx.worst_by_scan(eviction, now) else {
            return Ok(false);
        };
        ctx.remove(&victim)?;
    }
    ctx.put(r)?;
    Ok(true)
}

/// Runs `steps` in one transaction on a store of `initial`, with the queue (`scan` false) or
/// with the former full scans (`scan` true).
fn run(initial: &[PeerRecord], steps: &[Step], capacity: usize, scan: bool) -> Trace {
    let (_d, s) = store();
    bulk_put(&s, initial);
    s.write(|ctx| {
        let mut trace = Trace::new();
        let mut now = NOW;
        for step in steps {
            let mut victims = Vec::new();
            let mut inserted = None;
            let insert = |ctx: &mut WriteCtx<'_>, r: PeerRecord, e| {
                if ctx.get(&r.peer_id)?.is_some() {
                    return Ok(None);
                }
                let done = if scan {
                    insert_by_scan(ctx, &r, e, capacity, now)?
                } else {
                    ctx.insert_new(&r, e, capacity, now)?
                };
                Ok::<_, StoreError>(Some(done))
            };
            match step {
                Step::Learn(n) => {
                    let r = record(1000 + n, &history_untested());
                    inserted = insert(ctx, r, Eviction::UntestedOnly)?;
                }
                Step::Verified(n, h) => {
                    inserted = insert(ctx, record(1000 + n, h), Eviction::Any)?;
                }
                Step::Update(n, h) => {
                    if ctx.get(&peer(*n))?.is_some() {
                        ctx.put(&record(*n, h))?;
                    }
                }
                Step::Remove(n) => {
                    ctx.remove(&peer(*n))?;
                }
                Step::Evict(any) => {
                    let e = if *any {
                        Eviction::Any
                    } else {
                        Eviction::UntestedOnly
                    };
                    let victim = if scan {
                        let v = ctx.worst_by_scan(e, now);
                        if let Some(v) = &v {
                            ctx.remove(v)?;
                        }
                        v
                    } else {
                        ctx.evict(e, now)?
                    };
                    victims.extend(victim);
                }
                Step::Tick(secs) => now += secs,
            }
            let mut live: Vec<(PeerId, Standing)> = ctx.live().map(|(p, s)| (*p, *s)).collect();
            live.sort_by_key(|(p, _)| *p);
            assert_eq!(live.len(), ctx.len(), "tracked count");
            trace.push((victims, inserted, live));
        }
        Ok(trace)
    })
    .unwrap()
}

fn history_untested() -> History {
    History {
        successes: 0,
        failures: 0,
        suspicious: false,
        last_success_days_ago: None,
        ban: None,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    /// On random stores (full, over or under capacity) and random transactions, the queue
    /// chooses exactly the victims, in the same order, that a full scan per eviction chose.
    #[test]
    fn queue_evicts_as_the_full_scan(
        initial in prop::collection::vec(history(), 0..40),
        slack in -3i64..3,
        steps in prop::collection::vec(step(), 1..60),
    ) {
        let initial: Vec<PeerRecord> =
            initial.iter().enumerate().map(|(n, h)| record(n as u64, h)).collect();
        let capacity = (initial.len() as i64 + slack).max(1) as usize;
        let queued = run(&initial, &steps, capacity, false);
        let scanned = run(&initial, &steps, capacity, true);
        prop_assert_eq!(queued, scanned);
    }
}

/// A PEX batch into a full store evicts the worst untested entries first (failures before
/// clean ones), then, once the untested entries of the file are gone, earlier newcomers of
/// the same batch; never a tried or banned entry. The same final contents as the full scans.
#[test]
fn learn_many_matches_full_scans_at_scale() {
    let cap = 500;
    let initial: Vec<PeerRecord> = (0..cap as u64)
        .map(|n| {
            let mut h = history_untested();
            match n % 10 {
                0 => h.failures = 1 + (n % 3) as u32,
                1 => h.ban = Some(true),
                2 => h.suspicious = true,
                _ => {
                    h.successes = 1;
                    h.last_success_days_ago = Some(n % 40);
                    h.failures = (n % 4) as u32;
                }
            }
            record(n, &h)
        })
        .collect();
    let steps: Vec<Step> = (0..300).map(|n| Step::Learn(n % 250)).collect();
    let queued = run(&initial, &steps, cap, false);
    let scanned = run(&initial, &steps, cap, true);
    assert_eq!(queued, scanned);
    let (_, _, last) = queued.last().unwrap();
    assert_eq!(last.len(), cap);
    let left: HashSet<PeerId> = last.iter().map(|(p, _)| *p).collect();
    for r in &initial {
        let protected = r.last_success.is_some() || r.banned_until.is_some();
        assert_eq!(left.contains(&r.peer_id), protected, "{r:?}");
    }
}

/// With no untested unbanned entry, a batch inserts nothing and evicts nothing.
#[test]
fn batch_into_store_of_tried_and_banned_evicts_nothing() {
    let (_d, s) = store();
    let records: Vec<PeerRecord> = (0..MAX_ENTRIES as u64)
        .map(|n| {
            let mut h = history_untested();
            if n % 2 == 0 {
                h.ban = Some(true);
                h.failures = 3;
            } else {
                h.successes = 1;
                h.last_success_days_ago = Some(40);
            }
            record(n, &h)
        })
        .collect();
    bulk_put(&s, &records);
    let batch: Vec<LearnedPeer> = (0..50u64)
        .map(|n| LearnedPeer {
            peer_id: peer(100_000 + n),
            addrs: vec![addr(n as u32, 1)],
            services: ServiceSet::EMPTY,
        })
        .collect();
    assert_eq!(
        s.learn_many(&batch, PeerSource::PeerExchange, NOW).unwrap(),
        0
    );
    assert_eq!(s.len(), MAX_ENTRIES);
    assert!(records.iter().all(|r| s.get(&r.peer_id).unwrap().is_some()));
}

/// A verified newcomer into a full store whose every entry is banned evicts the worst entry
/// overall (the fallback of `Eviction::Any`).
#[test]
fn verified_newcomer_into_all_banned_store_evicts_worst() {
    let (_d, s) = store();
    let mut h = history_untested();
    h.ban = Some(true);
    let mut records: Vec<PeerRecord> = (0..MAX_ENTRIES as u64).map(|n| record(n, &h)).collect();
    records[7].failure_count = 50;
    bulk_put(&s, &records);
    s.record_success(
        peer(200_000),
        &[addr(1, 1)],
        ServiceSet::EMPTY,
        PeerSource::Inbound,
        NOW,
    )
    .unwrap();
    assert_eq!(s.len(), MAX_ENTRIES);
    assert!(s.get(&peer(7)).unwrap().is_none());
    assert!(s.get(&peer(200_000)).unwrap().is_some());
}
