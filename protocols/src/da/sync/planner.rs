//! [`BackfillPlanner`]: which height ranges to request from which peers (issue 5 §2).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Debug;
use std::hash::Hash;
use std::ops::Bound;
use std::time::{Duration, Instant};

use super::{SyncAction, SyncConfig, SyncRequest, MAX_SYNC_BLOBS};

/// Most peers a [`BackfillPlanner`] remembers as excluded (oldest forgotten first).
pub const MAX_EXCLUDED_PEERS: usize = 4096;

/// Most separate delivered-but-unapplied ranges remembered; beyond it they are forgotten
/// (which costs only refetching).
const MAX_FETCHED_RANGES: usize = 1024;

/// Disjoint, non-adjacent inclusive height ranges (start → end).
#[derive(Debug, Clone, Default)]
pub(super) struct Ranges(BTreeMap<u64, u64>);

impl Ranges {
    pub(super) fn insert(&mut self, mut a: u64, mut b: u64) {
        if a > b {
            return;
        }
        if let Some((&s, &e)) = self.0.range(..=a).next_back() {
            if e.saturating_add(1) >= a {
                a = s;
                b = b.max(e);
                self.0.remove(&s);
            }
        }
        while let Some((&s, &e)) = self.0.range(a..).next() {
            if s > b.saturating_add(1) {
                break;
            }
            b = b.max(e);
            self.0.remove(&s);
        }
        self.0.insert(a, b);
    }

    pub(super) fn remove(&mut self, a: u64, b: u64) {
        if a > b {
            return;
        }
        let mut hit: Vec<(u64, u64)> = self.0.range(a..=b).map(|(&s, &e)| (s, e)).collect();
        if let Some((&s, &e)) = self.0.range(..a).next_back() {
            if e >= a {
                hit.push((s, e));
            }
        }
        for (s, e) in hit {
            self.0.remove(&s);
            if s < a {
                self.0.insert(s, a - 1);
            }
            if e > b {
                self.0.insert(b + 1, e);
            }
        }
    }

    pub(super) fn contains(&self, h: u64) -> bool {
        self.0.range(..=h).next_back().is_some_and(|(_, &e)| e >= h)
    }

    pub(super) fn first(&self) -> Option<(u64, u64)> {
        self.0.iter().next().map(|(&s, &e)| (s, e))
    }

    fn len(&self) -> usize {
        self.0.len()
    }

    fn clear(&mut self) {
        self.0.clear();
    }

    fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.0.iter().map(|(&s, &e)| (s, e))
    }
}

#[derive(Debug, Clone)]
struct PeerState {
    /// Tip of its last answer (raised by gossip), `None` until known.
    tip: Option<u64>,
    backoff_until: Option<Instant>,
    /// Stalls and failures since its last useful answer (fewer is preferred).
    strikes: u32,
    /// Set on connect until its first probe is sent.
    probe_due: Option<Instant>,
}

#[derive(Debug, Clone)]
struct Flight<P> {
    peer: P,
    request: SyncRequest,
    deadline: Instant,
    probe: bool,
}

/// The back-off after a peer's `strikes`-th stall or failure in a row:
/// `min(peer_backoff, first_backoff · 2^(strikes−1))`.
pub(super) fn backoff(cfg: &SyncConfig, strikes: u32) -> Duration {
    let doublings = strikes.saturating_sub(1).min(20);
    let first = cfg.first_backoff.min(cfg.peer_backoff);
    first
        .checked_mul(1 << doublings)
        .unwrap_or(cfg.peer_backoff)
        .min(cfg.peer_backoff)
}

/// Decides which height ranges to request from which peers while the local DA log is
/// behind (issue 5 §2; Tahap 14A §2: every node rebuilds the state from the whole log).
///
/// Pure: the caller sends the returned [`SyncAction`]s, reports every outcome with
/// [`on_response`](Self::on_response), [`on_failure`](Self::on_failure) or
/// [`on_invalid`](Self::on_invalid), applies delivered blobs and calls
/// [`set_local_height`](Self::set_local_height), and calls [`poll`](Self::poll) after each
/// report and at [`next_deadline`](Self::next_deadline).
///
/// Rules:
/// - a newly connected peer is probed on the next poll with `{from: local+1, count:
///   chunk}` (from the first height not already requested, and shortened so it overlaps
///   no other request), which also tells its tip;
/// - the missing heights `local+1 ..= target` (not in flight, not delivered) are requested
///   lowest first in requests of at most `chunk` blobs, each from a distinct peer whose
///   known tip covers the request's start (a request never extends past that tip); at
///   most `max_in_flight` requests, probes included, and one per peer at once; requests
///   never overlap;
/// - a request past its deadline is a stall: the peer is backed off (`first_backoff`,
///   doubling with each stall or failure in a row up to `peer_backoff`) and its range
///   goes to another peer in the same poll; a backed-off peer is used again once its
///   backoff expired, after peers with fewer stalls and failures;
/// - heights asked but not delivered are requested again while some peer claims them;
/// - an invalid answer excludes the peer for good;
/// - when nothing is in flight, one peer (round robin) is probed every
///   `tip_poll_interval`.
///
/// Memory: one entry per connected peer (bounded by the caller's connection limits), at
/// most `max_in_flight` requests, at most 1024 delivered-but-unapplied ranges and
/// [`MAX_EXCLUDED_PEERS`] excluded peers.
#[derive(Debug)]
pub struct BackfillPlanner<P> {
    cfg: SyncConfig,
    local: u64,
    peers: BTreeMap<P, PeerState>,
    excluded: BTreeSet<P>,
    excluded_order: VecDeque<P>,
    flights: Vec<Flight<P>>,
    /// Heights above `local` delivered but not applied yet (held by the chain).
    fetched: Ranges,
    probes_answered: usize,
    stalls: u64,
    last_probe: Option<Instant>,
    last_probed: Option<P>,
}

impl<P: Clone + Eq + Hash + Ord + Debug> BackfillPlanner<P> {
    /// A planner with no peers whose log holds heights `1..=local_height`. `cfg.chunk` is
    /// clamped to `1..=MAX_SYNC_BLOBS`, `cfg.max_in_flight` to at least 1.
    pub fn new(cfg: SyncConfig, local_height: u64) -> Self {
        let cfg = SyncConfig {
            chunk: cfg.chunk.clamp(1, MAX_SYNC_BLOBS),
            max_in_flight: cfg.max_in_flight.max(1),
            ..cfg
        };
        Self {
            cfg,
            local: local_height,
            peers: BTreeMap::new(),
            excluded: BTreeSet::new(),
            excluded_order: VecDeque::new(),
            flights: Vec::new(),
            fetched: Ranges::default(),
            probes_answered: 0,
            stalls: 0,
            last_probe: None,
            last_probed: None,
        }
    }

    /// The connected peers that are not excluded, in their order.
    pub fn peers(&self) -> impl Iterator<Item = &P> {
        self.peers.keys().filter(|p| !self.excluded.contains(*p))
    }

    /// A peer speaking the sync protocol connected at `now`; it is probed on the next
    /// poll. Ignored for an excluded or already known peer.
    pub fn peer_connected(&mut self, peer: P, now: Instant) {
        if self.excluded.contains(&peer) || self.peers.contains_key(&peer) {
            return;
        }
        let state = PeerState {
            tip: None,
            backoff_until: None,
            strikes: 0,
            probe_due: Some(now),
        };
        self.peers.insert(peer, state);
    }

    /// The peer disconnected: it is forgotten (an exclusion stays) and its in-flight
    /// range becomes missing again, for other peers.
    pub fn peer_disconnected(&mut self, peer: &P) {
        self.peers.remove(peer);
        self.flights.retain(|f| &f.peer != peer);
    }

    /// The peer is known to hold blobs up to `tip` (e.g. it forwarded that blob by
    /// gossip). Only raises its known tip; unknown peers are ignored.
    pub fn observe_tip(&mut self, peer: &P, tip: u64) {
        if let Some(state) = self.peers.get_mut(peer) {
            state.tip = Some(state.tip.map_or(tip, |t| t.max(tip)));
        }
    }

    /// The local log now holds heights `1..=height` (call after applying delivered blobs,
    /// before the next poll); heights at or below it are no longer requested.
    pub fn set_local_height(&mut self, height: u64) {
        self.local = height;
        self.fetched.remove(0, height);
    }

    /// Handles timeouts (stalls) and returns the requests to send now.
    pub fn poll(&mut self, now: Instant) -> Vec<SyncAction<P>> {
        let (expired, live): (Vec<_>, Vec<_>) = std::mem::take(&mut self.flights)
            .into_iter()
            .partition(|f| f.deadline <= now);
        self.flights = live;
        for f in expired {
            self.stalls += 1;
            self.penalise(&f.peer, now);
        }
        // The next height was delivered but is still not applied: the chain refused or
        // dropped it (and whatever it held above), so forget every delivered range.
        if self.fetched.contains(self.local.saturating_add(1)) {
            self.fetched.clear();
        }
        let mut actions = Vec::new();
        let new_peers: Vec<P> = self
            .peers
            .iter()
            .filter(|(p, s)| s.probe_due.is_some() && !self.busy(p))
            .map(|(p, _)| p.clone())
            .collect();
        for peer in new_peers {
            if self.flights.len() >= self.cfg.max_in_flight {
                break;
            }
            actions.push(self.probe(peer, now));
        }
        while self.flights.len() < self.cfg.max_in_flight {
            let Some((start, end)) = self.first_missing() else {
                break;
            };
            let Some((peer, tip)) = self.pick_peer(start, now) else {
                break;
            };
            let last = end
                .min(tip)
                .min(start.saturating_add(u64::from(self.cfg.chunk) - 1));
            let count = u32::try_from(last - start + 1).unwrap_or(self.cfg.chunk);
            actions.push(self.send(peer, start, count, now, false));
        }
        let poll_due = self
            .last_probe
            .is_none_or(|t| now.saturating_duration_since(t) >= self.cfg.tip_poll_interval);
        if self.flights.is_empty() && poll_due {
            if let Some(peer) = self.next_round_robin(now) {
                actions.push(self.probe(peer, now));
            }
        }
        actions
    }

    /// `peer` answered `request` with its `tip` and `delivered` blobs (heights
    /// `request.from ..`, already checked with `SyncResponse::validated` and handed to
    /// the chain). Heights asked but not delivered become missing again. A peer claiming
    /// `tip ≥ request.from` while delivering nothing for a non-empty request is backed
    /// off. A late answer (the request had timed out) still counts its blobs as delivered.
    pub fn on_response(
        &mut self,
        peer: &P,
        request: &SyncRequest,
        tip: u64,
        delivered: u32,
        now: Instant,
    ) {
        let flight = self.take_flight(peer, request);
        if flight.is_some_and(|f| f.probe) {
            self.probes_answered += 1;
        }
        let delivered = delivered.min(request.count);
        if let Some(state) = self.peers.get_mut(peer) {
            state.tip = Some(tip);
            if request.count > 0 && delivered == 0 && tip >= request.from {
                // It claims heights it does not deliver: the claim is not believed (it
                // would otherwise hold the target up, and keep the DA authority from
                // sealing, for as long as it stays connected).
                state.tip = Some(request.from.saturating_sub(1));
                state.strikes = state.strikes.saturating_add(1);
                state.backoff_until = now.checked_add(backoff(&self.cfg, state.strikes));
            } else {
                state.strikes = 0;
            }
        }
        if delivered > 0 {
            let last = request.from.saturating_add(u64::from(delivered) - 1);
            if request.from > self.local {
                self.fetched.insert(request.from, last);
            } else {
                self.fetched.insert(self.local.saturating_add(1), last);
            }
            if self.fetched.len() > MAX_FETCHED_RANGES {
                self.fetched.clear();
            }
        }
    }

    /// Sending `request` to `peer` failed (connection error, refused stream, undecodable
    /// answer): the peer is backed off (graded, as for a stall); the range becomes missing.
    pub fn on_failure(&mut self, peer: &P, request: &SyncRequest, now: Instant) {
        self.take_flight(peer, request);
        self.penalise(peer, now);
    }

    /// `peer` answered `request` with something invalid (failed
    /// `SyncResponse::validated`, a bad blob, a broken chain): the peer is excluded for
    /// good (the caller also penalises it) and the range becomes missing, even if
    /// [`on_response`](Self::on_response) counted it delivered.
    pub fn on_invalid(&mut self, peer: &P, request: &SyncRequest, _now: Instant) {
        self.peers.remove(peer);
        self.flights.retain(|f| &f.peer != peer);
        if let Some((a, b)) = request.range() {
            self.fetched.remove(a, b);
        }
        if self.excluded.insert(peer.clone()) {
            self.excluded_order.push_back(peer.clone());
            if self.excluded_order.len() > MAX_EXCLUDED_PEERS {
                if let Some(old) = self.excluded_order.pop_front() {
                    self.excluded.remove(&old);
                }
            }
        }
    }

    /// The best tip known from any connected, non-excluded peer (0 when none is known).
    pub fn target(&self) -> u64 {
        self.peers.values().filter_map(|s| s.tip).max().unwrap_or(0)
    }

    /// Requests (probes included) currently in flight.
    pub fn in_flight(&self) -> usize {
        self.flights.len()
    }

    /// True when no known peer tip is above the local height and at least one probe was
    /// answered, or when no sync peer is connected at all.
    pub fn is_caught_up(&self) -> bool {
        self.peers.is_empty() || (self.probes_answered > 0 && self.target() <= self.local)
    }

    /// Probes answered so far.
    pub fn probes_answered(&self) -> usize {
        self.probes_answered
    }

    /// Requests that timed out so far.
    pub fn stalls(&self) -> u64 {
        self.stalls
    }

    /// The earliest instant at which [`poll`](Self::poll) has something to do without new
    /// input: a request deadline, a pending probe, the backoff expiry of a peer that
    /// could take missing heights, or the next tip poll. `None` when nothing is pending.
    pub fn next_deadline(&self) -> Option<Instant> {
        let mut next = self.flights.iter().map(|f| f.deadline).min();
        let mut consider = |t: Option<Instant>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        if self.flights.len() < self.cfg.max_in_flight {
            consider(self.peers.values().filter_map(|s| s.probe_due).min());
            if let Some((start, _)) = self.first_missing() {
                let waiting = self
                    .peers
                    .iter()
                    .filter(|(p, s)| s.tip.is_some_and(|t| t >= start) && !self.busy(p));
                consider(waiting.filter_map(|(_, s)| s.backoff_until).min());
            }
        }
        if let (true, Some(last)) = (self.flights.is_empty(), self.last_probe) {
            let base = last.checked_add(self.cfg.tip_poll_interval).unwrap_or(last);
            let ready = |s: &PeerState| s.backoff_until.map_or(base, |b| b.max(base));
            consider(self.peers.values().map(ready).min());
        }
        next
    }

    /// The lowest range of heights in `local+1 ..= target` neither in flight nor
    /// delivered.
    fn first_missing(&self) -> Option<(u64, u64)> {
        let target = self.target();
        let from = self.local.checked_add(1)?;
        if from > target {
            return None;
        }
        let mut missing = Ranges::default();
        missing.insert(from, target);
        for (a, b) in self.occupied() {
            missing.remove(a, b);
        }
        missing.first()
    }

    /// Ranges in flight and ranges delivered.
    fn occupied(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let flying = self.flights.iter().filter_map(|f| f.request.range());
        flying.chain(self.fetched.iter())
    }

    fn busy(&self, peer: &P) -> bool {
        self.flights.iter().any(|f| &f.peer == peer)
    }

    fn available(&self, peer: &P, state: &PeerState, now: Instant) -> bool {
        state.backoff_until.is_none_or(|t| t <= now) && !self.busy(peer)
    }

    /// The preferred available peer whose tip covers `start` (fewest strikes, then
    /// highest tip, then lowest id), with its tip.
    fn pick_peer(&self, start: u64, now: Instant) -> Option<(P, u64)> {
        self.peers
            .iter()
            .filter_map(|(p, s)| Some((p, s, s.tip?)))
            .filter(|&(p, s, tip)| tip >= start && self.available(p, s, now))
            .min_by_key(|&(_, s, tip)| (s.strikes, std::cmp::Reverse(tip)))
            .map(|(p, _, tip)| (p.clone(), tip))
    }

    /// The next available peer after the last one probed, wrapping around.
    fn next_round_robin(&self, now: Instant) -> Option<P> {
        let ok = |(p, s): &(&P, &PeerState)| self.available(p, s, now);
        let after = self.last_probed.as_ref().and_then(|last| {
            self.peers
                .range((Bound::Excluded(last), Bound::Unbounded))
                .find(ok)
        });
        after
            .or_else(|| self.peers.iter().find(ok))
            .map(|(p, _)| p.clone())
    }

    /// Probes `peer` from the first height above local neither in flight nor delivered,
    /// for up to `chunk` blobs that overlap no other request (count 0, tip only, when
    /// nothing fits).
    fn probe(&mut self, peer: P, now: Instant) -> SyncAction<P> {
        let mut from = self.local.saturating_add(1);
        while let Some((_, b)) = self.occupied().find(|&(a, b)| a <= from && from <= b) {
            from = b.saturating_add(1);
        }
        let room = self
            .occupied()
            .filter(|&(a, _)| a > from)
            .map(|(a, _)| a - from)
            .min()
            .unwrap_or(u64::MAX - from);
        let count = u32::try_from(room.min(u64::from(self.cfg.chunk))).unwrap_or(0);
        if let Some(state) = self.peers.get_mut(&peer) {
            state.probe_due = None;
        }
        self.last_probe = Some(now);
        self.last_probed = Some(peer.clone());
        self.send(peer, from, count, now, true)
    }

    fn send(&mut self, peer: P, from: u64, count: u32, now: Instant, probe: bool) -> SyncAction<P> {
        let request = SyncRequest { from, count };
        self.flights.push(Flight {
            peer: peer.clone(),
            request,
            deadline: now.checked_add(self.cfg.request_timeout).unwrap_or(now),
            probe,
        });
        SyncAction::Request { peer, request }
    }

    fn take_flight(&mut self, peer: &P, request: &SyncRequest) -> Option<Flight<P>> {
        let i = self
            .flights
            .iter()
            .position(|f| &f.peer == peer && &f.request == request)?;
        Some(self.flights.remove(i))
    }

    fn penalise(&mut self, peer: &P, now: Instant) {
        if let Some(state) = self.peers.get_mut(peer) {
            // A peer that stalls or fails proves nothing: its tip is unknown again until it
            // answers (a later probe), so it cannot hold the target up.
            state.tip = None;
            state.strikes = state.strikes.saturating_add(1);
            state.backoff_until = now.checked_add(backoff(&self.cfg, state.strikes));
        }
    }

    /// The requests in flight (tests check they never overlap).
    #[cfg(test)]
    pub(super) fn flights(&self) -> impl Iterator<Item = (&P, &SyncRequest)> {
        self.flights.iter().map(|f| (&f.peer, &f.request))
    }
}
