//! Property test: random interleavings of connects, disconnects, gossip, answers (full,
//! short, late), blobs lost by the chain, failures, invalid answers and timeouts never produce overlapping,
//! over-bound or duplicate-peer requests, and afterwards honest peers bring the local log
//! to the best tip any remaining peer has.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::super::{BackfillPlanner, SyncAction, SyncConfig, SyncRequest};

const PEERS: u8 = 5;

#[derive(Debug, Clone)]
enum Op {
    Connect(u8),
    Disconnect(u8),
    Gossip(u8, u64),
    Advance(u64),
    Poll,
    Answer(usize, u32),
    Fail(usize),
    Invalid(usize),
    Forget(usize),
    Lose,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..PEERS).prop_map(Op::Connect),
        1 => (0..PEERS).prop_map(Op::Disconnect),
        1 => (0..PEERS, 0u64..120).prop_map(|(p, t)| Op::Gossip(p, t)),
        2 => (0u64..4000).prop_map(Op::Advance),
        4 => Just(Op::Poll),
        5 => (any::<usize>(), 0u32..12).prop_map(|(i, c)| Op::Answer(i, c)),
        1 => any::<usize>().prop_map(Op::Fail),
        1 => any::<usize>().prop_map(Op::Invalid),
        1 => any::<usize>().prop_map(Op::Forget),
        1 => Just(Op::Lose),
    ]
}

struct Sim {
    p: BackfillPlanner<u8>,
    cfg: SyncConfig,
    tips: Vec<u64>,
    connected: BTreeSet<u8>,
    excluded: BTreeSet<u8>,
    have: BTreeSet<u64>,
    local: u64,
    /// Requests sent and not answered (kept after the planner timed them out).
    outstanding: Vec<(u8, SyncRequest)>,
    now: Instant,
}

impl Sim {
    fn new(tips: Vec<u64>, local: u64) -> Sim {
        let cfg = SyncConfig {
            chunk: 8,
            request_timeout: Duration::from_secs(2),
            max_in_flight: 3,
            peer_backoff: Duration::from_secs(5),
            first_backoff: Duration::from_secs(1),
            tip_poll_interval: Duration::from_secs(3),
        };
        Sim {
            p: BackfillPlanner::new(cfg, local),
            cfg,
            tips,
            connected: BTreeSet::new(),
            excluded: BTreeSet::new(),
            have: (1..=local).collect(),
            local,
            outstanding: Vec::new(),
            now: Instant::now(),
        }
    }

    fn honest(&self) -> impl Iterator<Item = u8> + '_ {
        self.connected.difference(&self.excluded).copied()
    }

    fn poll(&mut self) {
        for SyncAction::Request { peer, request } in self.p.poll(self.now) {
            assert!(self.connected.contains(&peer) && !self.excluded.contains(&peer));
            self.outstanding.push((peer, request));
        }
    }

    fn take(&mut self, i: usize) -> Option<(u8, SyncRequest)> {
        if self.outstanding.is_empty() {
            return None;
        }
        let i = i % self.outstanding.len();
        Some(self.outstanding.remove(i))
    }

    fn answer(&mut self, peer: u8, r: SyncRequest, cap: u32) {
        let tip = self.tips[usize::from(peer)];
        let has = if tip >= r.from {
            u64::from(r.count).min(tip - r.from + 1)
        } else {
            0
        };
        let n = has.min(u64::from(cap));
        self.have.extend(r.from..r.from + n);
        self.p
            .on_response(&peer, &r, tip, u32::try_from(n).unwrap(), self.now);
        while self.have.contains(&(self.local + 1)) {
            self.local += 1;
        }
        self.p.set_local_height(self.local);
    }

    fn apply(&mut self, op: Op) {
        match op {
            Op::Connect(peer) => {
                self.connected.insert(peer);
                self.p.peer_connected(peer, self.now);
            }
            Op::Disconnect(peer) => {
                self.connected.remove(&peer);
                self.outstanding.retain(|(p, _)| *p != peer);
                self.p.peer_disconnected(&peer);
            }
            Op::Gossip(peer, tip) => self.p.observe_tip(&peer, tip),
            Op::Advance(ms) => self.now += Duration::from_millis(ms),
            Op::Poll => self.poll(),
            Op::Answer(i, cap) => {
                if let Some((peer, r)) = self.take(i) {
                    self.answer(peer, r, cap);
                }
            }
            Op::Fail(i) => {
                if let Some((peer, r)) = self.take(i) {
                    self.p.on_failure(&peer, &r, self.now);
                }
            }
            Op::Invalid(i) => {
                if let Some((peer, r)) = self.take(i) {
                    self.excluded.insert(peer);
                    self.outstanding.retain(|(p, _)| *p != peer);
                    self.p.on_invalid(&peer, &r, self.now);
                }
            }
            // The chain drops the blobs it held above a gap.
            Op::Lose => self.have.retain(|h| *h <= self.local),
            Op::Forget(i) => {
                // The answer never comes (the planner times it out).
                self.take(i);
            }
        }
    }

    fn check(&self) {
        let flights: Vec<_> = self.p.flights().collect();
        assert!(flights.len() <= self.cfg.max_in_flight);
        assert_eq!(flights.len(), self.p.in_flight());
        let peers: BTreeSet<_> = flights.iter().map(|(p, _)| **p).collect();
        assert_eq!(peers.len(), flights.len(), "one request per peer");
        let ranges: Vec<_> = flights.iter().filter_map(|(_, r)| r.range()).collect();
        for (i, &(a, b)) in ranges.iter().enumerate() {
            assert!(a <= b && b - a < u64::from(self.cfg.chunk));
            for &(c, d) in &ranges[i + 1..] {
                assert!(b < c || d < a, "overlap {a}..={b} and {c}..={d}");
            }
        }
        for (peer, _) in &flights {
            assert!(self.connected.contains(peer) && !self.excluded.contains(peer));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]
    #[test]
    fn planner_never_overlaps_and_always_catches_up(
        tips in proptest::collection::vec(0u64..100, PEERS as usize),
        local in 0u64..10,
        ops in proptest::collection::vec(op(), 0..300),
    ) {
        let mut sim = Sim::new(tips, local);
        for op in ops {
            sim.apply(op);
            sim.check();
        }
        // Drain: every remaining peer now answers everything fully and at once.
        let expected = sim.honest().map(|p| sim.tips[usize::from(p)]).max().unwrap_or(0);
        for _ in 0..2000 {
            if sim.local >= expected && sim.p.is_caught_up() {
                break;
            }
            sim.now += Duration::from_millis(500);
            sim.poll();
            sim.check();
            let honest: BTreeSet<u8> = sim.honest().collect();
            for (peer, r) in std::mem::take(&mut sim.outstanding) {
                if honest.contains(&peer) {
                    sim.answer(peer, r, u32::MAX);
                }
            }
            sim.check();
        }
        prop_assert!(sim.local >= expected, "local {} < expected {}", sim.local, expected);
        prop_assert!(sim.p.is_caught_up());
    }
}
