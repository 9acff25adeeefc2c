//! Tests of the proposer rotation: the model world (members with their disks and DA logs,
//! an opaque threshold scheme and a safety checker), hand-written scenarios and the
//! model-checking property test.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::super::rotation::*;
use super::super::{message_hash, MemberId};

mod frost;
mod props;
mod scenarios;
mod sim;

/// The model threshold scheme: a commitment names (member, incarnation, height, round); a
/// share is a hash of (member, height, round, message, package); it can be checked without
/// secrets. Nonces live in memory only, as FROST's do.
pub(super) struct ModelCrypto {
    me: u8,
    incarnation: u64,
    nonces: BTreeMap<(u64, u64), Vec<u8>>,
}

impl ModelCrypto {
    pub(super) fn new(me: u8, incarnation: u64) -> Self {
        Self {
            me,
            incarnation,
            nonces: BTreeMap::new(),
        }
    }

    fn share_of(
        member: u8,
        height: u64,
        round: u64,
        message: &[u8],
        signers: &[SignerCommitment],
    ) -> Vec<u8> {
        let mut h = Sha256::new();
        h.update([member]);
        h.update(height.to_be_bytes());
        h.update(round.to_be_bytes());
        h.update(message_hash(message));
        for s in signers {
            h.update(s.member.as_bytes());
            h.update(&s.commitment);
        }
        h.finalize().to_vec()
    }
}

/// The member index of a test member id (see `tests::member`).
pub(super) fn index_of(m: &MemberId) -> u8 {
    m.as_bytes()[6]
}

impl RoundCrypto for ModelCrypto {
    fn commit(&mut self, height: u64, round: u64) -> Result<Vec<u8>, CryptoError> {
        let mut c = vec![self.me];
        c.extend_from_slice(&self.incarnation.to_be_bytes());
        c.extend_from_slice(&height.to_be_bytes());
        c.extend_from_slice(&round.to_be_bytes());
        assert!(
            self.nonces.insert((height, round), c.clone()).is_none(),
            "commit called twice for one round"
        );
        while self.nonces.len() > 4 {
            self.nonces.pop_first();
        }
        Ok(c)
    }

    fn sign(
        &mut self,
        height: u64,
        round: u64,
        message: &[u8],
        signers: &[SignerCommitment],
    ) -> Result<Vec<u8>, CryptoError> {
        let mine = signers
            .iter()
            .find(|s| index_of(&s.member) == self.me)
            .ok_or_else(|| CryptoError::Failed("not a signer".into()))?;
        match self.nonces.get(&(height, round)) {
            Some(n) if *n == mine.commitment => {}
            _ => return Err(CryptoError::Failed("no nonces".into())),
        }
        self.nonces.remove(&(height, round));
        Ok(Self::share_of(self.me, height, round, message, signers))
    }

    fn aggregate(
        &mut self,
        height: u64,
        round: u64,
        message: &[u8],
        signers: &[SignerCommitment],
        shares: &[Vec<u8>],
    ) -> Result<Vec<u8>, CryptoError> {
        for (s, share) in signers.iter().zip(shares) {
            if *share != Self::share_of(index_of(&s.member), height, round, message, signers) {
                return Err(CryptoError::InvalidShare(s.member.clone()));
            }
        }
        Ok(message_hash(message).to_vec())
    }
}

/// What travels between nodes: rotation messages (through their CBOR encoding) and, standing
/// in for DA gossip and backfill, sealed blobs and requests for them.
#[derive(Clone, Debug)]
pub(super) enum Wire {
    Rot(Vec<u8>),
    Blobs(Vec<(u64, Vec<u8>)>),
    Fetch(u64),
}

/// A message in flight.
#[derive(Clone, Debug)]
pub(super) struct Envelope {
    pub from: usize,
    pub to: usize,
    pub wire: Wire,
}

/// A member: its running state machine (None while down), and what survives a crash: its
/// last persisted record and its DA log.
pub(super) struct Node {
    pub machine: Option<HeightConsensus<ModelCrypto>>,
    pub disk: Option<MemberRecord>,
    pub log: BTreeMap<u64, Vec<u8>>,
    pub incarnation: u64,
}

impl Node {
    pub fn tip(&self) -> u64 {
        self.log.keys().next_back().copied().unwrap_or(0)
    }
}

/// Observes every durable lock, aggregation and applied blob, and records violations.
#[derive(Default)]
pub(super) struct Checker {
    t: usize,
    /// (height, round, message hash) → members with that lock persisted.
    locks: BTreeMap<(u64, u64, [u8; 32]), BTreeSet<usize>>,
    /// height → the message that gathered t durable locks in one round.
    completed: BTreeMap<u64, [u8; 32]>,
    sealed: BTreeMap<u64, [u8; 32]>,
    chain: BTreeMap<u64, [u8; 32]>,
    last: BTreeMap<usize, MemberRecord>,
    pub violations: Vec<String>,
    pub seals: u64,
    /// Heights sealed again (the same message, another aggregate) by a later round.
    pub reseals: u64,
    pub max_round: u64,
}

impl Checker {
    fn on_persist(&mut self, i: usize, rec: &MemberRecord) {
        self.max_round = self.max_round.max(rec.round);
        if let Some(prev) = self.last.get(&i) {
            if (rec.height, rec.round) < (prev.height, prev.round) {
                self.violations.push(format!(
                    "member {i} went back from h{} r{} to h{} r{}",
                    prev.height, prev.round, rec.height, rec.round
                ));
            }
            if rec.height == prev.height {
                if let (Some(a), Some(b)) = (&prev.lock, &rec.lock) {
                    if b.round < a.round || (b.round == a.round && b.message_hash != a.message_hash)
                    {
                        self.violations.push(format!(
                            "member {i} at h{}: lock r{} replaced by r{} (another message: {})",
                            rec.height,
                            a.round,
                            b.round,
                            a.message_hash != b.message_hash
                        ));
                    }
                }
                if prev.lock.is_some() && rec.lock.is_none() {
                    self.violations
                        .push(format!("member {i} lost its lock at h{}", rec.height));
                }
            }
        }
        self.last.insert(i, rec.clone());
        if let Some(lock) = &rec.lock {
            let set = self
                .locks
                .entry((rec.height, lock.round, lock.message_hash))
                .or_default();
            set.insert(i);
            if set.len() >= self.t {
                match self.completed.get(&rec.height) {
                    Some(h) if *h != lock.message_hash => self.violations.push(format!(
                        "SAFETY: two messages with t durable shares at height {} (round {})",
                        rec.height, lock.round
                    )),
                    _ => {
                        self.completed.insert(rec.height, lock.message_hash);
                    }
                }
            }
        }
    }

    fn on_sealed(&mut self, height: u64, message: &[u8]) {
        let hash = message_hash(message);
        self.seals += 1;
        if let Some(h) = self.sealed.insert(height, hash) {
            self.reseals += 1;
            if h != hash {
                self.violations.push(format!(
                    "SAFETY: two different blobs sealed at height {height}"
                ));
            }
        }
        if self.completed.get(&height) != Some(&hash) {
            self.violations.push(format!(
                "sealed at height {height} without t durable locks on the message"
            ));
        }
    }

    fn on_apply(&mut self, i: usize, height: u64, message: &[u8]) {
        let hash = message_hash(message);
        if let Some(h) = self.chain.insert(height, hash) {
            if h != hash {
                self.violations.push(format!(
                    "SAFETY: member {i} applied another blob at height {height}"
                ));
            }
        }
    }

    /// Heights sealed so far.
    pub fn sealed_heights(&self) -> usize {
        self.sealed.len()
    }
}

/// The members and their state, driven by a scheduler (the scenarios' FIFO or the
/// simulator's timed queue). Times are milliseconds since `t0`.
pub(super) struct World {
    pub config: RotationConfig,
    pub members: Vec<MemberId>,
    pub nodes: Vec<Node>,
    pub checker: Checker,
    pub t0: Instant,
    pub now_ms: u64,
    blobs: u64,
}

pub(super) fn committee(t: u16, n: usize) -> super::super::CommitteeConfig {
    super::config(t, n, 1)
}

impl World {
    /// `n` members with threshold `t`, all started at tip 0 (their first actions delivered
    /// to `out`). `unchecked` skips the `2t > n` check.
    pub fn new(t: u16, n: usize, base_ms: u64, unchecked: bool, out: &mut Vec<Envelope>) -> Self {
        let c = committee(t, n);
        let base = Duration::from_millis(base_ms);
        let config = if unchecked {
            RotationConfig::new_unchecked(&c, base)
        } else {
            RotationConfig::new(&c, base).unwrap()
        };
        let mut w = Self {
            config,
            members: c.members.clone(),
            nodes: (0..n)
                .map(|_| Node {
                    machine: None,
                    disk: None,
                    log: BTreeMap::new(),
                    incarnation: 0,
                })
                .collect(),
            checker: Checker {
                t: usize::from(t),
                ..Checker::default()
            },
            t0: Instant::now(),
            now_ms: 0,
            blobs: 0,
        };
        for i in 0..n {
            out.extend(w.restart(i, None));
        }
        w
    }

    pub fn now(&self) -> Instant {
        self.t0 + Duration::from_millis(self.now_ms)
    }

    pub fn up(&self, i: usize) -> bool {
        self.nodes[i].machine.is_some()
    }

    pub fn crash(&mut self, i: usize) {
        self.nodes[i].machine = None;
    }

    /// Starts member `i` from its disk and log; `crash_after` as in [`World::exec`].
    pub fn restart(&mut self, i: usize, crash_after: Option<usize>) -> Vec<Envelope> {
        let now = self.now();
        let node = &mut self.nodes[i];
        node.incarnation += 1;
        let crypto = ModelCrypto::new(i as u8, node.incarnation);
        let (m, actions) = HeightConsensus::restore(
            self.config.clone(),
            self.members[i].clone(),
            crypto,
            node.disk.clone(),
            node.tip(),
            now,
        )
        .unwrap();
        node.machine = Some(m);
        self.exec(i, actions, crash_after)
    }

    /// Timers of member `i`.
    pub fn poll(&mut self, i: usize, crash_after: Option<usize>) -> Vec<Envelope> {
        let now = self.now();
        let Some(m) = self.nodes[i].machine.as_mut() else {
            return Vec::new();
        };
        let actions = m.poll(now);
        self.exec(i, actions, crash_after)
    }

    /// The next deadline of member `i`, in ms (rounded up), if it is up.
    pub fn deadline_ms(&self, i: usize) -> Option<u64> {
        let m = self.nodes[i].machine.as_ref()?;
        let d = m.next_deadline().saturating_duration_since(self.t0);
        Some(d.as_micros().div_ceil(1000) as u64)
    }

    /// Delivers an envelope (nothing if the recipient is down).
    pub fn deliver(&mut self, e: Envelope, crash_after: Option<usize>) -> Vec<Envelope> {
        let (from, to) = (e.from, e.to);
        if !self.up(to) {
            return Vec::new();
        }
        match e.wire {
            Wire::Rot(bytes) => {
                let msg = RotationMsg::from_bytes(&bytes).unwrap();
                let now = self.now();
                let m = self.nodes[to].machine.as_mut().unwrap();
                match m.on_message(&self.members[from], msg, now) {
                    Ok(actions) => self.exec(to, actions, crash_after),
                    // Refusals (locked, stale packages …) change nothing.
                    Err(_) => Vec::new(),
                }
            }
            Wire::Fetch(h) => self.blobs_from(to, from, h),
            Wire::Blobs(list) => self.apply_blobs(to, from, list, crash_after),
        }
    }

    fn blobs_from(&self, i: usize, to: usize, from_height: u64) -> Vec<Envelope> {
        let list: Vec<_> = self.nodes[i]
            .log
            .range(from_height..)
            .take(32)
            .map(|(h, m)| (*h, m.clone()))
            .collect();
        if list.is_empty() {
            return Vec::new();
        }
        vec![Envelope {
            from: i,
            to,
            wire: Wire::Blobs(list),
        }]
    }

    fn apply_blobs(
        &mut self,
        i: usize,
        from: usize,
        list: Vec<(u64, Vec<u8>)>,
        crash_after: Option<usize>,
    ) -> Vec<Envelope> {
        let mut applied = None;
        for (h, m) in list {
            let tip = self.nodes[i].tip();
            if h <= tip {
                self.checker.on_apply(i, h, &m);
            } else if h == tip + 1 {
                self.checker.on_apply(i, h, &m);
                self.nodes[i].log.insert(h, m);
                applied = Some(h);
            } else {
                return vec![Envelope {
                    from: i,
                    to: from,
                    wire: Wire::Fetch(tip + 1),
                }];
            }
        }
        let Some(h) = applied else {
            return Vec::new();
        };
        let now = self.now();
        let actions = match self.nodes[i].machine.as_mut() {
            Some(m) => m.on_sealed(h, now),
            None => return Vec::new(),
        };
        self.exec(i, actions, crash_after)
    }

    /// Carries out member `i`'s actions in order, as the daemon would: a Persist is durable
    /// at once; the DA layer answers ProposeNew at once. With `crash_after = Some(k)` the
    /// member crashes after `k` actions (the rest are lost).
    pub fn exec(
        &mut self,
        i: usize,
        actions: Vec<Action>,
        crash_after: Option<usize>,
    ) -> Vec<Envelope> {
        let mut out = Vec::new();
        let mut work: std::collections::VecDeque<Action> = actions.into();
        let mut done = 0;
        while let Some(a) = work.pop_front() {
            if crash_after == Some(done) {
                self.crash(i);
                return out;
            }
            done += 1;
            let now = self.now();
            match a {
                Action::Persist(rec) => {
                    rec.validate().unwrap();
                    let rec = MemberRecord::from_bytes(&rec.to_bytes().unwrap()).unwrap();
                    self.checker.on_persist(i, &rec);
                    self.nodes[i].disk = Some(rec);
                }
                Action::Send { to, msg } => {
                    let to = self.members.iter().position(|m| *m == to).unwrap();
                    out.push(Envelope {
                        from: i,
                        to,
                        wire: Wire::Rot(msg.to_bytes().unwrap()),
                    });
                }
                Action::Broadcast(msg) => {
                    let bytes = msg.to_bytes().unwrap();
                    for to in (0..self.members.len()).filter(|j| *j != i) {
                        out.push(Envelope {
                            from: i,
                            to,
                            wire: Wire::Rot(bytes.clone()),
                        });
                    }
                }
                Action::ProposeNew { height, round } => {
                    self.blobs += 1;
                    let blob =
                        format!("blob h{height} r{round} by {i} #{}", self.blobs).into_bytes();
                    let m = self.nodes[i].machine.as_mut().unwrap();
                    work.extend(m.on_new_blob(height, round, blob, now).unwrap());
                }
                Action::Sealed {
                    height, message, ..
                } => {
                    self.checker.on_sealed(height, &message);
                    assert_eq!(height, self.nodes[i].tip() + 1, "sealed off the tip");
                    self.checker.on_apply(i, height, &message);
                    self.nodes[i].log.insert(height, message.clone());
                    for to in (0..self.members.len()).filter(|j| *j != i) {
                        out.push(Envelope {
                            from: i,
                            to,
                            wire: Wire::Blobs(vec![(height, message.clone())]),
                        });
                    }
                    let m = self.nodes[i].machine.as_mut().unwrap();
                    work.extend(m.on_sealed(height, now));
                }
                Action::SendSealed { to, from_height } => {
                    let to = self.members.iter().position(|m| *m == to).unwrap();
                    out.extend(self.blobs_from(i, to, from_height));
                }
                Action::Fetch { from, height } => {
                    let to = self.members.iter().position(|m| *m == from).unwrap();
                    out.push(Envelope {
                        from: i,
                        to,
                        wire: Wire::Fetch(height),
                    });
                }
                Action::Failed(e) => {
                    if matches!(e, RotationError::ConflictingLocks { .. }) {
                        self.checker.violations.push(format!("member {i}: {e}"));
                    }
                }
            }
        }
        out
    }
}
