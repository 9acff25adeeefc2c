//! The pure reachability and relay-reservation logic of [`super::Nat`] (issue 12 §2, §4):
//! no swarm, `now` passed in, unit-tested below.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use dsdn_protocols::AddressPolicy;
use libp2p::core::transport::ListenerId;
use libp2p::multiaddr::Protocol as AddrProtocol;
use libp2p::{Multiaddr, PeerId};
use rand::seq::SliceRandom;
use serde::Serialize;

/// Whether this node can be reached from the internet, as AutoNAT found it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Reachability {
    /// No address confirmed and none refuted yet (no AutoNAT server asked so far).
    #[default]
    Unknown,
    /// At least one direct external address is confirmed (by an AutoNAT dial-back, a UPnP
    /// mapping, or given by the operator).
    Public,
    /// Every candidate address AutoNAT tested was unreachable and none is confirmed: the
    /// node is behind a NAT or firewall and is reached through relays.
    Private,
}

impl Reachability {
    /// `unknown`, `public` or `private` (status output, metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            Reachability::Unknown => "unknown",
            Reachability::Public => "public",
            Reachability::Private => "private",
        }
    }
}

/// What the reachability logic asks of the swarm; the event loop carries it out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum NatEvent {
    /// Reserve a slot on `relay`: listen on `addr` (`<relay address>/p2p/<relay>/p2p-circuit`)
    /// and report the listener with `Component::<NatState>::reservation_listener`.
    Reserve {
        /// The relay.
        relay: PeerId,
        /// The circuit listen address.
        addr: Multiaddr,
    },
    /// A relay reported a relayed address of ours (when the reservation is accepted and at
    /// each renewal; reported once): advertise it as an external address.
    Advertise(Multiaddr),
    /// A relayed address of ours is gone, or a confirmed address is not one the address
    /// policy admits: stop advertising it.
    Withdraw(Multiaddr),
    /// Reachability changed to this.
    Reachability(Reachability),
}

/// Milestones since start, for status and the lab figures (issue 12 §9).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NatMilestones {
    /// Milliseconds from start to the first verdict (public or private).
    pub reachability_known_ms: Option<u64>,
    /// Milliseconds from start to the first accepted relay reservation.
    pub first_reservation_ms: Option<u64>,
    /// Milliseconds from start to the first relayed connection upgraded to a direct one by
    /// DCUtR.
    pub first_direct_upgrade_ms: Option<u64>,
}

/// Counters of the NAT traversal protocols, for metrics and status.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NatCounters {
    /// AutoNAT probes of our addresses answered "reachable".
    pub probes_ok: u64,
    /// AutoNAT probes of our addresses answered "unreachable".
    pub probes_failed: u64,
    /// Relayed connections upgraded to direct ones by DCUtR.
    pub dcutr_ok: u64,
    /// DCUtR attempts that failed.
    pub dcutr_failed: u64,
    /// Circuits this node relayed for others (relay servers).
    pub circuits_relayed: u64,
}

/// The relay-side knowledge of one reservation we asked for.
#[derive(Clone, Debug)]
struct Reservation {
    /// The swarm's listener for it, once reported.
    listener: Option<ListenerId>,
    /// Whether the relay accepted it.
    accepted: bool,
}

/// Reachability and relay reservations of one node: fed with AutoNAT verdicts, confirmed
/// and expired external addresses, connections and identify answers; queues
/// [`NatEvent`]s.
#[derive(Debug)]
pub struct NatState {
    /// When the node started (milestones count from here).
    started: Instant,
    /// Relays to keep a reservation on while private (0: never reserve).
    max_reservations: usize,
    /// Confirmed direct external addresses.
    confirmed: BTreeSet<Multiaddr>,
    /// Candidate addresses AutoNAT found unreachable.
    refuted: BTreeSet<Multiaddr>,
    /// Our relayed (circuit) listen addresses in use.
    relayed: BTreeSet<Multiaddr>,
    /// The reachability last reported.
    reachability: Reachability,
    /// Connected peers that serve circuit relay v2 (identify lists the hop protocol), with
    /// the address we reached them on directly (outbound).
    relays: BTreeMap<PeerId, Multiaddr>,
    /// Connected peers that serve circuit relay but were reached inbound only: no address
    /// to reserve through yet.
    relays_without_addr: BTreeSet<PeerId>,
    /// Remote address of a direct outbound connection, per connected peer.
    dialled: HashMap<PeerId, Multiaddr>,
    /// Reservations asked for, by relay.
    reservations: BTreeMap<PeerId, Reservation>,
    /// Connected peers (identify answers of others are ignored).
    connected: HashSet<PeerId>,
    /// Relays not to ask again before the instant, with the pause that follows the next
    /// failure (doubling from [`RELAY_RETRY_MIN`] to [`RELAY_RETRY_MAX`]; reset when a
    /// reservation is accepted).
    cooldown: HashMap<PeerId, (Instant, Duration)>,
    /// Milestones.
    milestones: NatMilestones,
    /// Counters.
    counters: NatCounters,
    /// Events not yet handed out.
    queued: VecDeque<NatEvent>,
    /// Addresses the network's policy admits as ours (a private address confirmed by a peer
    /// on the same LAN is withdrawn on a public network).
    policy: AddressPolicy,
}

/// First pause before asking a relay again after its reservation ended or was refused.
pub const RELAY_RETRY_MIN: Duration = Duration::from_secs(10);
/// Longest such pause.
pub const RELAY_RETRY_MAX: Duration = Duration::from_secs(600);
/// Refuted candidate addresses kept (the oldest is dropped beyond): observed addresses are
/// chosen by remote peers, so the set must not grow with them.
pub const MAX_REFUTED: usize = 32;

/// The circuit relay v2 hop protocol id, as identify lists it on relays.
pub const RELAY_HOP_PROTOCOL: &str = "/libp2p/circuit/relay/0.2.0/hop";

/// Whether `addr` goes through a relay (`…/p2p-circuit…`).
pub fn is_relayed(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, AddrProtocol::P2pCircuit))
}

impl NatState {
    /// A node started at `started` that keeps up to `max_reservations` relay reservations
    /// while private.
    pub fn new(started: Instant, max_reservations: usize, policy: AddressPolicy) -> Self {
        Self {
            policy,
            started,
            max_reservations,
            confirmed: BTreeSet::new(),
            refuted: BTreeSet::new(),
            relayed: BTreeSet::new(),
            reachability: Reachability::Unknown,
            relays: BTreeMap::new(),
            relays_without_addr: BTreeSet::new(),
            dialled: HashMap::new(),
            reservations: BTreeMap::new(),
            connected: HashSet::new(),
            cooldown: HashMap::new(),
            milestones: NatMilestones::default(),
            counters: NatCounters::default(),
            queued: VecDeque::new(),
        }
    }

    /// The current reachability.
    pub fn reachability(&self) -> Reachability {
        self.reachability
    }

    /// Confirmed direct external addresses.
    pub fn confirmed(&self) -> impl Iterator<Item = &Multiaddr> {
        self.confirmed.iter()
    }

    /// Our relayed addresses in use.
    pub fn relayed(&self) -> impl Iterator<Item = &Multiaddr> {
        self.relayed.iter()
    }

    /// Relays holding an accepted reservation of ours.
    pub fn reserved_relays(&self) -> impl Iterator<Item = &PeerId> {
        self.reservations
            .iter()
            .filter(|(_, r)| r.accepted)
            .map(|(p, _)| p)
    }

    /// Milestones since start.
    pub fn milestones(&self) -> NatMilestones {
        self.milestones
    }

    /// Counters.
    pub fn counters(&self) -> NatCounters {
        self.counters
    }

    /// The next queued event.
    pub fn pop_event(&mut self) -> Option<NatEvent> {
        self.queued.pop_front()
    }

    fn since_start(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.started).as_millis()).unwrap_or(u64::MAX)
    }

    /// An external address was confirmed (AutoNAT, UPnP, the operator, or our own relayed
    /// address being advertised). One the address policy does not admit (a LAN address
    /// confirmed by a peer on the same LAN, on a public network) is withdrawn at once.
    pub fn on_confirmed(&mut self, addr: &Multiaddr, now: Instant) {
        if !self.policy.admits(addr) {
            self.queued.push_back(NatEvent::Withdraw(addr.clone()));
            return;
        }
        if is_relayed(addr) {
            return;
        }
        self.confirmed.insert(addr.clone());
        // Failures seen before an address was confirmed no longer say anything: should
        // every confirmed address expire, the node is unknown until AutoNAT tests again.
        self.refuted.clear();
        self.update(now);
    }

    /// An external address expired.
    pub fn on_expired(&mut self, addr: &Multiaddr, now: Instant) {
        self.confirmed.remove(addr);
        self.update(now);
    }

    /// AutoNAT tested `addr`: `reachable` or not. A relayed address (a peer observed us
    /// through a relay) says nothing about our own reachability and is ignored.
    pub fn on_probe(&mut self, addr: &Multiaddr, reachable: bool, now: Instant) {
        if is_relayed(addr) {
            return;
        }
        if reachable {
            self.counters.probes_ok += 1;
            // The confirmation itself arrives as a swarm event (`on_confirmed`).
        } else {
            self.counters.probes_failed += 1;
            if !self.confirmed.contains(addr) {
                if self.refuted.len() >= MAX_REFUTED {
                    self.refuted.pop_first();
                }
                self.refuted.insert(addr.clone());
            }
        }
        self.update(now);
    }

    /// A connection to `peer` was established; `dialled` is the remote address when it is
    /// a direct outbound connection.
    pub fn on_connected(&mut self, peer: PeerId, dialled: Option<&Multiaddr>, now: Instant) {
        self.connected.insert(peer);
        let Some(addr) = dialled.filter(|a| !is_relayed(a)) else {
            return;
        };
        self.dialled.insert(peer, addr.clone());
        if self.relays_without_addr.remove(&peer) {
            self.relays.insert(peer, addr.clone());
            self.plan(now);
        }
    }

    /// The last connection to `peer` closed.
    pub fn on_disconnected(&mut self, peer: &PeerId, now: Instant) {
        self.connected.remove(peer);
        self.cooldown.remove(peer);
        self.dialled.remove(peer);
        self.relays.remove(peer);
        self.relays_without_addr.remove(peer);
        // The relay client closes the circuit listener itself (`on_listener_closed`); a
        // reservation never reported as a listener is forgotten here.
        if self
            .reservations
            .get(peer)
            .is_some_and(|r| r.listener.is_none())
        {
            self.reservations.remove(peer);
        }
        self.plan(now);
    }

    /// identify told the protocols `peer` speaks.
    pub fn on_identified(&mut self, peer: PeerId, protocols: &[String], now: Instant) {
        let relay = protocols.iter().any(|p| p == RELAY_HOP_PROTOCOL);
        if !relay || !self.connected.contains(&peer) {
            self.relays.remove(&peer);
            self.relays_without_addr.remove(&peer);
            return;
        }
        match self.dialled.get(&peer) {
            Some(addr) => {
                self.relays.insert(peer, addr.clone());
            }
            None => {
                self.relays_without_addr.insert(peer);
            }
        }
        self.plan(now);
    }

    /// The swarm's listener for the reservation on `relay`.
    pub fn reservation_listener(&mut self, relay: PeerId, listener: ListenerId) {
        if let Some(r) = self.reservations.get_mut(&relay) {
            r.listener = Some(listener);
        }
    }

    /// The swarm refused to listen through `relay`.
    pub fn reservation_failed(&mut self, relay: &PeerId, now: Instant) {
        self.reservations.remove(relay);
        self.relays.remove(relay);
        self.plan(now);
    }

    /// The relay client reports an accepted reservation on `relay`.
    pub fn on_reservation_accepted(&mut self, relay: PeerId, now: Instant) {
        if let Some(r) = self.reservations.get_mut(&relay) {
            r.accepted = true;
        }
        self.cooldown.remove(&relay);
        if self.milestones.first_reservation_ms.is_none() {
            self.milestones.first_reservation_ms = Some(self.since_start(now));
        }
    }

    /// A listener reported a new address: a circuit address is advertised.
    pub fn on_new_listen_addr(&mut self, addr: &Multiaddr) {
        if is_relayed(addr) && self.relayed.insert(addr.clone()) {
            self.queued.push_back(NatEvent::Advertise(addr.clone()));
        }
    }

    /// A listener's address expired.
    pub fn on_expired_listen_addr(&mut self, addr: &Multiaddr) {
        if self.relayed.remove(addr) {
            self.queued.push_back(NatEvent::Withdraw(addr.clone()));
        }
    }

    /// A listener closed: a reservation ended (the relay went away or refused to renew).
    pub fn on_listener_closed(&mut self, listener: ListenerId, addrs: &[Multiaddr], now: Instant) {
        for a in addrs {
            self.on_expired_listen_addr(a);
        }
        let ended: Vec<PeerId> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.listener == Some(listener))
            .map(|(p, _)| *p)
            .collect();
        for relay in ended {
            self.reservations.remove(&relay);
            // Refused, full, or stopped serving: not asked again at once (nor in a loop).
            let pause = self
                .cooldown
                .get(&relay)
                .map_or(RELAY_RETRY_MIN, |(_, p)| (*p * 2).min(RELAY_RETRY_MAX));
            self.cooldown.insert(relay, (now + pause, pause));
        }
        self.plan(now);
    }

    /// DCUtR upgraded a relayed connection (`ok`) or failed to.
    pub fn on_dcutr(&mut self, ok: bool, now: Instant) {
        if ok {
            self.counters.dcutr_ok += 1;
            if self.milestones.first_direct_upgrade_ms.is_none() {
                self.milestones.first_direct_upgrade_ms = Some(self.since_start(now));
            }
        } else {
            self.counters.dcutr_failed += 1;
        }
    }

    /// This relay server accepted a circuit between two other peers.
    pub fn on_circuit_relayed(&mut self) {
        self.counters.circuits_relayed += 1;
    }

    /// Recomputes the reachability and plans reservations.
    fn update(&mut self, now: Instant) {
        let r = if !self.confirmed.is_empty() {
            Reachability::Public
        } else if !self.refuted.is_empty() {
            Reachability::Private
        } else {
            Reachability::Unknown
        };
        if r != self.reachability {
            self.reachability = r;
            if self.milestones.reachability_known_ms.is_none() && r != Reachability::Unknown {
                self.milestones.reachability_known_ms = Some(self.since_start(now));
            }
            self.queued.push_back(NatEvent::Reachability(r));
        }
        self.plan(now);
    }

    /// Re-plans reservations at `now` (relays whose pause ended may be asked again); the
    /// component calls it whenever it is polled.
    pub fn tick(&mut self, now: Instant) {
        if self.reachability == Reachability::Private
            && self.reservations.len() < self.max_reservations
            && self.cooldown.values().any(|(until, _)| *until <= now)
        {
            self.plan(now);
        }
    }

    /// While private, asks for reservations on connected relays until
    /// `max_reservations` are held or asked for, picking at random among the relays not in
    /// their pause (so private nodes spread over the relays). A node that becomes public
    /// keeps its reservations until the relays end them: closing a reservation's listener
    /// while the relay's answer is in flight makes libp2p-relay 0.22's client panic
    /// ("Relay connection exist", `priv_client.rs`), as the devnet test showed.
    fn plan(&mut self, now: Instant) {
        if self.reachability != Reachability::Private {
            return;
        }
        let free = self
            .max_reservations
            .saturating_sub(self.reservations.len());
        if free == 0 {
            return;
        }
        let mut candidates: Vec<(PeerId, Multiaddr)> = self
            .relays
            .iter()
            .filter(|(p, _)| !self.reservations.contains_key(p))
            .filter(|(p, _)| self.cooldown.get(p).is_none_or(|(until, _)| *until <= now))
            .map(|(p, a)| (*p, a.clone()))
            .collect();
        candidates.shuffle(&mut rand::rng());
        candidates.truncate(free);
        let picks = candidates;
        for (relay, relay_addr) in picks {
            let addr = circuit_addr(&relay_addr, relay);
            self.reservations.insert(
                relay,
                Reservation {
                    listener: None,
                    accepted: false,
                },
            );
            tracing::info!(%relay, %addr, "private: reserving a relay slot");
            self.queued.push_back(NatEvent::Reserve { relay, addr });
        }
    }
}

/// `<relay address without /p2p>/p2p/<relay>/p2p-circuit`: the address to listen on to
/// reserve a slot on `relay`.
pub fn circuit_addr(relay_addr: &Multiaddr, relay: PeerId) -> Multiaddr {
    let mut base: Multiaddr = relay_addr
        .iter()
        .filter(|p| !matches!(p, AddrProtocol::P2p(_)))
        .collect();
    base.push(AddrProtocol::P2p(relay));
    base.push(AddrProtocol::P2pCircuit);
    base
}

/// How long a relay's circuit may live by default (circuit relay v2 default: 2 min).
pub(super) const DEFAULT_CIRCUIT_DURATION: Duration = Duration::from_secs(120);

#[cfg(test)]
mod tests;
