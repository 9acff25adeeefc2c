//! The deterministic simulator: a seeded schedule of message delays, drops, duplicates,
//! late deliveries, crashes (also in the middle of a member's actions), restarts and
//! network splits, followed by a calm phase in which some `t` or more members can talk.

use std::collections::BTreeMap;

use super::{Envelope, World};

/// SplitMix64: small, seeded, and the same on every platform.
pub(super) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }
}

/// One schedule's parameters, drawn from its seed.
#[derive(Clone, Debug)]
pub(super) struct Params {
    pub t: u16,
    pub n: usize,
    pub seed: u64,
    pub base_ms: u64,
    pub chaos_ms: u64,
    pub drop_p: f64,
    pub dup_p: f64,
    pub max_delay_ms: u64,
    pub late_p: f64,
    pub mean_event_gap_ms: u64,
    pub crash_mid_p: f64,
    /// Largest message delay once the chaos is over (some schedules exceed the base
    /// timeout, so rounds must grow until they fit).
    pub calm_delay_ms: u64,
    /// Disables the `2t > n` check (to see the checker catch the fork).
    pub unchecked: bool,
}

impl Params {
    pub fn draw(t: u16, n: usize, seed: u64) -> Self {
        let mut r = Rng::new(seed ^ 0x005e_ed0f_5c4e_d01e);
        let base_ms = 100;
        Self {
            t,
            n,
            seed,
            base_ms,
            chaos_ms: r.range(2_000, 30_000),
            drop_p: [0.0, 0.05, 0.2, 0.4][r.below(4) as usize],
            dup_p: [0.0, 0.05, 0.2][r.below(3) as usize],
            max_delay_ms: [5, 50, 150, 400][r.below(4) as usize],
            late_p: [0.0, 0.01, 0.05][r.below(3) as usize],
            mean_event_gap_ms: [100, 500, 2_000][r.below(3) as usize],
            crash_mid_p: [0.0, 0.01, 0.05][r.below(3) as usize],
            calm_delay_ms: [base_ms / 4, base_ms / 4, base_ms, 3 * base_ms][r.below(4) as usize],
            unchecked: false,
        }
    }
}

/// What a schedule did.
#[derive(Debug, Default, Clone)]
pub(super) struct Outcome {
    pub steps: u64,
    pub delivered: u64,
    pub crashes: u64,
    pub splits: u64,
    pub sealed_heights: usize,
    pub reseals: u64,
    pub max_round: u64,
    /// Simulated ms from the end of the chaos until the live set sealed 3 more heights.
    pub recovery_ms: Option<u64>,
    pub live: usize,
    pub violations: Vec<String>,
}

/// Heights the live set must seal after the chaos.
pub(super) const MORE_HEIGHTS: u64 = 3;

pub(super) struct Sim {
    p: Params,
    rng: Rng,
    world: World,
    queue: BTreeMap<(u64, u64), Envelope>,
    seq: u64,
    /// Partition group of each member; messages cross groups only when equal.
    group: Vec<u8>,
    calm: bool,
    out: Outcome,
}

impl Sim {
    pub fn new(p: Params) -> Self {
        let mut first = Vec::new();
        let world = World::new(p.t, p.n, p.base_ms, p.unchecked, &mut first);
        let mut s = Self {
            rng: Rng::new(p.seed),
            group: vec![0; p.n],
            world,
            queue: BTreeMap::new(),
            seq: 0,
            calm: false,
            out: Outcome::default(),
            p,
        };
        s.send_all(first);
        s
    }

    fn send_all(&mut self, envs: Vec<Envelope>) {
        for e in envs {
            self.send(e);
        }
    }

    /// Schedules an envelope with the phase's delay, drop and duplicate rules.
    fn send(&mut self, e: Envelope) {
        let copies = if self.rng.chance(self.p.dup_p) { 2 } else { 1 };
        for _ in 0..copies {
            let delay = if self.calm {
                self.rng.range(1, self.p.calm_delay_ms)
            } else {
                if self.rng.chance(self.p.drop_p) {
                    continue;
                }
                if self.rng.chance(self.p.late_p) {
                    // A late delivery, rounds after it was sent (old-round Sign requests).
                    self.rng.range(5 * self.p.base_ms, 60 * self.p.base_ms)
                } else {
                    self.rng.range(1, self.p.max_delay_ms)
                }
            };
            self.seq += 1;
            self.queue
                .insert((self.world.now_ms + delay, self.seq), e.clone());
        }
    }

    fn crash_after(&mut self) -> Option<usize> {
        if !self.calm && self.rng.chance(self.p.crash_mid_p) {
            self.out.crashes += 1;
            Some(self.rng.below(4) as usize)
        } else {
            None
        }
    }

    fn chaos_event(&mut self) {
        let n = self.p.n;
        let i = self.rng.below(n as u64) as usize;
        match self.rng.below(6) {
            0 | 1 => {
                if self.world.up(i) {
                    self.world.crash(i);
                    self.out.crashes += 1;
                } else {
                    let c = self.crash_after();
                    let envs = self.world.restart(i, c);
                    self.send_all(envs);
                }
            }
            2 | 3 => {
                // A split: random groups, or two halves (2 | 2 in 3-of-4).
                self.out.splits += 1;
                if self.rng.chance(0.5) {
                    let mut order: Vec<usize> = (0..n).collect();
                    for k in (1..n).rev() {
                        order.swap(k, self.rng.below(k as u64 + 1) as usize);
                    }
                    for (pos, m) in order.into_iter().enumerate() {
                        self.group[m] = u8::from(pos >= n / 2);
                    }
                } else {
                    for g in self.group.iter_mut() {
                        *g = self.rng.below(3) as u8;
                    }
                }
            }
            4 => self.group = vec![0; n],
            _ => {
                // Restart everyone who is down.
                for j in 0..n {
                    if !self.world.up(j) {
                        let c = self.crash_after();
                        let envs = self.world.restart(j, c);
                        self.send_all(envs);
                    }
                }
            }
        }
    }

    /// Ends the chaos: a live set of `t..=n` members (often exactly `t`) that can talk
    /// without drops; the others are down or split off together.
    fn calm_down(&mut self) -> Vec<usize> {
        self.calm = true;
        let (t, n) = (usize::from(self.p.t), self.p.n);
        let k = if self.rng.chance(0.5) {
            t
        } else {
            self.rng.range(t as u64, n as u64) as usize
        };
        let mut order: Vec<usize> = (0..n).collect();
        for j in (1..n).rev() {
            order.swap(j, self.rng.below(j as u64 + 1) as usize);
        }
        let live: Vec<usize> = order[..k].to_vec();
        let outside_up = self.rng.chance(0.5);
        for j in 0..n {
            if live.contains(&j) {
                self.group[j] = 0;
                if !self.world.up(j) {
                    let envs = self.world.restart(j, None);
                    self.send_all(envs);
                }
            } else {
                self.group[j] = 1;
                if outside_up && !self.world.up(j) {
                    let envs = self.world.restart(j, None);
                    self.send_all(envs);
                } else if !outside_up {
                    self.world.crash(j);
                }
            }
        }
        live
    }

    /// Runs the schedule: chaos, then calm until the live set sealed [`MORE_HEIGHTS`] more
    /// heights or `budget_ms` passed. Stops at the first violation.
    pub fn run(mut self, budget_ms: u64) -> Outcome {
        let n = self.p.n;
        let mut next_event = self.rng.range(1, 2 * self.p.mean_event_gap_ms);
        let mut live: Option<(Vec<u64>, u64, Vec<usize>)> = None;
        let max_steps = 3_000_000u64;
        loop {
            self.out.steps += 1;
            if self.out.steps > max_steps {
                self.out
                    .violations
                    .push("stuck: step budget exhausted".into());
                break;
            }
            if !self.world.checker.violations.is_empty() {
                break;
            }
            if let Some((_, target, set)) = &live {
                if set.iter().all(|&j| self.world.nodes[j].tip() >= *target) {
                    self.out.recovery_ms = Some(self.world.now_ms - self.p.chaos_ms);
                    break;
                }
                if self.world.now_ms > self.p.chaos_ms + budget_ms {
                    let tips: Vec<_> = (0..n).map(|j| self.world.nodes[j].tip()).collect();
                    self.out.violations.push(format!(
                        "LIVENESS: live set {set:?} did not reach height {target} in {budget_ms} ms (tips {tips:?})"
                    ));
                    break;
                }
            }
            let msg_at = self.queue.keys().next().map(|k| k.0);
            let timer = (0..n)
                .filter_map(|j| self.world.deadline_ms(j).map(|d| (d, j)))
                .min();
            let chaos_at = if live.is_none() {
                Some(next_event.min(self.p.chaos_ms))
            } else {
                None
            };
            let mut when = u64::MAX;
            for w in [msg_at, timer.map(|x| x.0), chaos_at].into_iter().flatten() {
                when = when.min(w);
            }
            self.world.now_ms = self.world.now_ms.max(when);
            if chaos_at == Some(when) {
                if when >= self.p.chaos_ms {
                    let set = self.calm_down();
                    let start: Vec<u64> = (0..n).map(|j| self.world.nodes[j].tip()).collect();
                    let target = start.iter().max().copied().unwrap_or(0) + MORE_HEIGHTS;
                    self.out.live = set.len();
                    live = Some((start, target, set));
                } else {
                    self.chaos_event();
                    next_event = when + self.rng.range(1, 2 * self.p.mean_event_gap_ms);
                }
            } else if msg_at == Some(when) {
                let Some((_, e)) = self.queue.pop_first() else {
                    continue;
                };
                if self.group[e.from] != self.group[e.to] {
                    continue;
                }
                self.out.delivered += 1;
                let c = self.crash_after();
                let envs = self.world.deliver(e, c);
                self.send_all(envs);
            } else if let Some((_, j)) = timer {
                let c = self.crash_after();
                let envs = self.world.poll(j, c);
                self.send_all(envs);
                if self.world.deadline_ms(j).is_some_and(|d| d <= when) {
                    self.out.violations.push(format!(
                        "member {j}: poll at {when} ms left its deadline behind"
                    ));
                    break;
                }
            }
        }
        self.out.sealed_heights = self.world.checker.sealed_heights();
        self.out.max_round = self.world.checker.max_round;
        self.out.reseals = self.world.checker.reseals;
        self.out
            .violations
            .extend(self.world.checker.violations.iter().cloned());
        self.out
    }
}
