//! Reachability and NAT traversal (issue 12 §2 and §4): AutoNAT v2 (client on every node,
//! server on full nodes), circuit relay v2 (client on every node; server where
//! configured, by default on `--mode bootstrap`), DCUtR hole punching, and optional UPnP
//! port mapping, as one [`Component`] whose state is [`NatState`].
//!
//! * AutoNAT v2: the candidates are the addresses peers observe us on (identify; an
//!   outbound connection's ephemeral port is translated to the listen port). A candidate is
//!   tested by asking a connected AutoNAT server to dial it back; a successful dial-back
//!   confirms it as an external address of the swarm (`ExternalAddrConfirmed`), the only
//!   addresses identify, Kademlia and (on public networks) the handshake advertise.
//! * Reachability: public once a direct address is confirmed (also by UPnP or given by the
//!   operator with `[network] external_addresses` / `--external-address`), private when
//!   every tested candidate failed, unknown before.
//! * A private node reserves a slot on up to `max_relay_reservations` connected peers that
//!   serve circuit relay v2 (identify lists `/libp2p/circuit/relay/0.2.0/hop`; the relay
//!   server serves only once it has a confirmed external address itself), listening on
//!   `<relay address>/p2p/<relay>/p2p-circuit`; the relayed address it gets is advertised
//!   as an external address. Reservations lost (relay gone, renewal refused) are replaced.
//! * DCUtR: over a relayed connection the two peers exchange their observed addresses and
//!   dial each other at once (TCP simultaneous open, QUIC), upgrading to a direct
//!   connection when both NATs allow it.
//! * The relay server's limits bound reservations, circuits, circuit lifetime and bytes
//!   per circuit ([`RelayLimits`]): a relayed connection carries what the protocols need to
//!   connect (handshake, identify, DCUtR) and little else.

use std::time::{Duration, Instant};

use libp2p::core::transport::ListenerId;
use libp2p::swarm::FromSwarm;
use libp2p::{autonat, dcutr, relay, upnp, Multiaddr, PeerId};
use prometheus::{IntCounterVec, IntGauge, IntGaugeVec};
use serde::Serialize;

use crate::net::component::{Component, Inner, InnerEvent, Outbox, Protocol};

mod behaviour;
pub mod config;
mod state;

pub use behaviour::{NatBehaviour, NatBehaviourEvent};

pub use state::{
    circuit_addr, is_relayed, NatCounters, NatEvent, NatMilestones, NatState, Reachability,
    MAX_REFUTED, RELAY_HOP_PROTOCOL, RELAY_RETRY_MAX, RELAY_RETRY_MIN,
};

/// Limits of the circuit relay v2 server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayLimits {
    /// Reservations held at once, over all peers. Default 128.
    pub max_reservations: usize,
    /// Reservations of one peer. Default 4.
    pub max_reservations_per_peer: usize,
    /// Circuits relayed at once. Default 16.
    pub max_circuits: usize,
    /// Circuits at once with one peer as source or destination. Default 4.
    pub max_circuits_per_peer: usize,
    /// Lifetime of one circuit. Default 120 s.
    pub max_circuit_duration: Duration,
    /// Bytes relayed per circuit, both ways together. Default 1 MiB.
    pub max_circuit_bytes: u64,
    /// Reservations accepted from one IP address: a token bucket of this many, refilled
    /// one every [`RELAY_RATE_INTERVAL_PER_IP`]. Default 60 (circuit relay v2's default).
    pub reservation_rate_per_ip: u32,
    /// Circuits accepted from one source IP address: a token bucket of this many, refilled
    /// one every [`RELAY_RATE_INTERVAL_PER_IP`]. Default 60 (circuit relay v2's default).
    pub circuit_rate_per_ip: u32,
}

/// Refill interval of the relay server's per-IP rate limits (circuit relay v2's default).
pub const RELAY_RATE_INTERVAL_PER_IP: Duration = Duration::from_secs(60);
/// Per-peer rate limits of the relay server, for reservations and circuits alike: a token
/// bucket of 30, refilled one every 2 minutes (circuit relay v2's defaults, not configurable).
const RELAY_RATE_PER_PEER: u32 = 30;
const RELAY_RATE_INTERVAL_PER_PEER: Duration = Duration::from_secs(120);

impl Default for RelayLimits {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_peer: 4,
            max_circuits: 16,
            max_circuits_per_peer: 4,
            max_circuit_duration: state::DEFAULT_CIRCUIT_DURATION,
            max_circuit_bytes: 1 << 20,
            reservation_rate_per_ip: 60,
            circuit_rate_per_ip: 60,
        }
    }
}

/// NAT traversal settings of a node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatConfig {
    /// Addresses the operator says this node is reachable on (`[network]
    /// external_addresses`, `--external-address`): confirmed at start, without a test.
    /// Default none.
    pub external_addresses: Vec<Multiaddr>,
    /// Answer AutoNAT v2 dial-back requests of other nodes. Default true (light clients:
    /// false).
    pub autonat_server: bool,
    /// How often AutoNAT tests untested candidate addresses. Default 5 s.
    pub probe_interval: Duration,
    /// Serve circuit relay v2 with these limits (`None`: no relay server). Default: on
    /// for `--mode bootstrap`, off otherwise.
    pub relay_server: Option<RelayLimits>,
    /// Relays a private node keeps a reservation on. Default 2 (0: never reserve).
    pub max_relay_reservations: usize,
    /// Ask the LAN's UPnP IGD gateway for port mappings. Default off on devnet and in
    /// `--mode bootstrap`, on elsewhere.
    pub upnp: bool,
}

impl Default for NatConfig {
    fn default() -> Self {
        Self {
            external_addresses: Vec::new(),
            autonat_server: true,
            probe_interval: Duration::from_secs(5),
            relay_server: None,
            max_relay_reservations: 2,
            upnp: false,
        }
    }
}

/// The NAT traversal component.
pub type Nat = Component<NatProtocol>;

/// The metrics of NAT traversal.
#[derive(Clone)]
pub struct NatMetrics {
    /// `p2p_reachability{state}`: 1 for the current reachability (`public`, `private`,
    /// `unknown`), 0 for the others.
    pub reachability: IntGaugeVec,
    /// `p2p_external_addresses`: confirmed external addresses (direct and relayed).
    pub external_addresses: IntGauge,
    /// `p2p_external_address{address}`: 1 for each confirmed external address (the series
    /// is removed when the address expires).
    pub external_address: IntGaugeVec,
    /// `p2p_relay_reservations`: relays holding an accepted reservation of ours.
    pub relay_reservations: IntGauge,
    /// `p2p_autonat_probes_total{result}`: AutoNAT tests of our addresses (`reachable`,
    /// `unreachable`).
    pub autonat_probes: IntCounterVec,
    /// `p2p_dcutr_total{result}`: hole punches over relayed connections (`ok`, `failed`).
    pub dcutr: IntCounterVec,
    /// `p2p_relay_circuits`: circuits this node relays now (relay servers).
    pub relay_circuits: IntGauge,
}

/// The NAT component's protocol: the pure [`NatState`] and the metrics it feeds.
pub struct NatProtocol {
    /// Reachability and reservations.
    pub state: NatState,
    /// Metrics.
    metrics: NatMetrics,
    /// The swarm's confirmed external addresses, as its events told them (the swarm
    /// notifies again for a duplicate, so the gauges are set from this set).
    external: std::collections::HashSet<Multiaddr>,
}

impl NatProtocol {
    /// Sets the gauges from the state.
    fn refresh(&self) {
        let now = self.state.reachability();
        for r in [
            Reachability::Public,
            Reachability::Private,
            Reachability::Unknown,
        ] {
            self.metrics
                .reachability
                .with_label_values(&[r.as_str()])
                .set(i64::from(r == now));
        }
        let held = self.state.reserved_relays().count();
        self.metrics
            .relay_reservations
            .set(i64::try_from(held).unwrap_or(i64::MAX));
    }
}

impl Protocol for NatProtocol {
    type Inner = NatBehaviour;
    type Event = NatEvent;

    fn on_event(
        &mut self,
        event: InnerEvent<Self>,
        _inner: &mut Inner<Self>,
        out: &mut Outbox<Self>,
    ) {
        let now = Instant::now();
        match event {
            NatBehaviourEvent::AutonatClient(e) => {
                let ok = e.result.is_ok();
                match &e.result {
                    Ok(()) => {
                        tracing::info!(addr = %e.tested_addr, server = %e.server, "AutoNAT: address reachable")
                    }
                    Err(err) => {
                        tracing::info!(addr = %e.tested_addr, server = %e.server, error = %err, "AutoNAT: address not reachable")
                    }
                }
                let label = if ok { "reachable" } else { "unreachable" };
                self.metrics
                    .autonat_probes
                    .with_label_values(&[label])
                    .inc();
                self.state.on_probe(&e.tested_addr, ok, now);
            }
            NatBehaviourEvent::AutonatServer(e) => {
                tracing::debug!(client = %e.client, addr = %e.tested_addr, ok = e.result.is_ok(), "AutoNAT: dialled back a client");
            }
            NatBehaviourEvent::RelayClient(e) => match e {
                relay::client::Event::ReservationReqAccepted {
                    relay_peer_id,
                    renewal,
                    ..
                } => {
                    if !renewal {
                        tracing::info!(relay = %relay_peer_id, "relay reservation accepted");
                    }
                    self.state.on_reservation_accepted(relay_peer_id, now);
                    self.refresh();
                }
                other => tracing::debug!(event = ?other, "relay client"),
            },
            NatBehaviourEvent::RelayServer(e) => {
                match &e {
                    relay::Event::CircuitReqAccepted { .. } => {
                        self.metrics.relay_circuits.inc();
                        self.state.on_circuit_relayed();
                    }
                    relay::Event::CircuitClosed { .. } => self.metrics.relay_circuits.dec(),
                    _ => {}
                }
                tracing::debug!(event = ?e, "relay server");
            }
            NatBehaviourEvent::Dcutr(e) => match e.result {
                Ok(_) => {
                    tracing::info!(peer = %e.remote_peer_id, "DCUtR: direct connection established");
                    self.metrics.dcutr.with_label_values(&["ok"]).inc();
                    self.state.on_dcutr(true, now);
                }
                Err(err) => {
                    tracing::info!(peer = %e.remote_peer_id, error = %err, "DCUtR: hole punch failed");
                    self.metrics.dcutr.with_label_values(&["failed"]).inc();
                    self.state.on_dcutr(false, now);
                }
            },
            NatBehaviourEvent::Upnp(e) => tracing::info!(event = ?e, "UPnP"),
        }
        self.poll(out);
    }

    fn on_swarm_event(&mut self, event: &FromSwarm<'_>) {
        let now = Instant::now();
        let s = &mut self.state;
        match event {
            FromSwarm::ExternalAddrConfirmed(e) => {
                if self.external.insert(e.addr.clone()) {
                    self.metrics
                        .external_address
                        .with_label_values(&[&e.addr.to_string()])
                        .set(1);
                }
                self.metrics
                    .external_addresses
                    .set(i64::try_from(self.external.len()).unwrap_or(i64::MAX));
                s.on_confirmed(e.addr, now);
            }
            FromSwarm::ExternalAddrExpired(e) => {
                if self.external.remove(e.addr) {
                    let _ = self
                        .metrics
                        .external_address
                        .remove_label_values(&[&e.addr.to_string()]);
                }
                self.metrics
                    .external_addresses
                    .set(i64::try_from(self.external.len()).unwrap_or(i64::MAX));
                s.on_expired(e.addr, now);
            }
            FromSwarm::NewListenAddr(e) => s.on_new_listen_addr(e.addr),
            FromSwarm::ExpiredListenAddr(e) => s.on_expired_listen_addr(e.addr),
            FromSwarm::ListenerClosed(e) => s.on_listener_closed(e.listener_id, &[], now),
            FromSwarm::ConnectionEstablished(e) => {
                let dialled = match e.endpoint {
                    libp2p::core::ConnectedPoint::Dialer { address, .. } => Some(address),
                    libp2p::core::ConnectedPoint::Listener { .. } => None,
                };
                s.on_connected(e.peer_id, dialled, now);
            }
            FromSwarm::ConnectionClosed(e) if e.remaining_established == 0 => {
                s.on_disconnected(&e.peer_id, now);
            }
            _ => {}
        }
    }

    fn poll(&mut self, out: &mut Outbox<Self>) {
        self.state.tick(Instant::now());
        let mut any = false;
        while let Some(e) = self.state.pop_event() {
            out.push_back(e);
            any = true;
        }
        if any {
            self.refresh();
        }
    }
}

impl Component<NatProtocol> {
    /// The NAT component of node `local` started at `started`, with `relay_client` from the
    /// swarm builder (it pairs with the relay transport).
    pub fn nat(
        local: PeerId,
        cfg: &NatConfig,
        relay_client: relay::client::Behaviour,
        light: bool,
        started: Instant,
        metrics: NatMetrics,
        policy: dsdn_protocols::AddressPolicy,
    ) -> Self {
        // A light client never listens: its only candidates would be the ports of its own
        // outbound connections, which nobody can dial.
        let autonat_client = (!light).then(|| {
            autonat::v2::client::Behaviour::new(
                rand::make_rng::<rand::rngs::StdRng>(),
                autonat::v2::client::Config::default().with_probe_interval(cfg.probe_interval),
            )
        });
        let autonat_server = (cfg.autonat_server && !light)
            .then(|| autonat::v2::server::Behaviour::new(rand::make_rng::<rand::rngs::StdRng>()));
        let relay_server = cfg
            .relay_server
            .filter(|_| !light)
            .map(|l| relay::Behaviour::new(local, relay_config(&l)));
        let upnp = (cfg.upnp && !light).then(upnp::tokio::Behaviour::default);
        Component::new(
            NatBehaviour {
                autonat_client: autonat_client.into(),
                autonat_server: autonat_server.into(),
                relay_client,
                relay_server: relay_server.into(),
                dcutr: dcutr::Behaviour::new(local),
                upnp: upnp.into(),
            },
            {
                let p = NatProtocol {
                    state: NatState::new(
                        started,
                        if light { 0 } else { cfg.max_relay_reservations },
                        policy,
                    ),
                    metrics,
                    external: std::collections::HashSet::new(),
                };
                p.refresh();
                p
            },
        )
    }

    /// identify told the protocols `peer` speaks (relays are found this way).
    pub fn peer_identified(&mut self, peer: PeerId, protocols: &[libp2p::StreamProtocol]) {
        let protocols: Vec<String> = protocols.iter().map(ToString::to_string).collect();
        self.state
            .state
            .on_identified(peer, &protocols, Instant::now());
    }

    /// The swarm listens through `relay` on `listener` (after a [`NatEvent::Reserve`]).
    pub fn reservation_listener(&mut self, relay: PeerId, listener: ListenerId) {
        self.state.state.reservation_listener(relay, listener);
    }

    /// The swarm could not listen through `relay`.
    pub fn reservation_failed(&mut self, relay: &PeerId) {
        self.state.state.reservation_failed(relay, Instant::now());
    }

    /// Whether this node serves circuit relay v2.
    pub fn is_relay_server(&self) -> bool {
        self.inner.relay_server.is_enabled()
    }

    /// A snapshot for status output.
    pub fn view(&self, external: impl Iterator<Item = Multiaddr>) -> NatView {
        let st = &self.state.state;
        NatView {
            reachability: st.reachability(),
            external_addrs: external.map(|a| a.to_string()).collect(),
            relayed_addrs: st.relayed().map(ToString::to_string).collect(),
            relays: st.reserved_relays().map(ToString::to_string).collect(),
            relay_server: self.is_relay_server(),
            milestones: st.milestones(),
            counters: st.counters(),
        }
    }
}

/// Reachability as `dsdn-agent status` shows it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct NatView {
    /// `public`, `private` or `unknown`.
    pub reachability: Reachability,
    /// The swarm's confirmed external addresses (direct and relayed).
    pub external_addrs: Vec<String>,
    /// Our relayed addresses in use.
    pub relayed_addrs: Vec<String>,
    /// Relays holding an accepted reservation of ours.
    pub relays: Vec<String>,
    /// Whether this node serves circuit relay v2.
    pub relay_server: bool,
    /// Milestones since start.
    pub milestones: NatMilestones,
    /// Counters.
    pub counters: NatCounters,
}

/// The relay server's configuration: `l`, its per-IP rate limits, and circuit relay v2's
/// default per-peer rate limits (for reservations and circuits).
fn relay_config(l: &RelayLimits) -> relay::Config {
    let nz = |n: u32| std::num::NonZeroU32::new(n).unwrap_or(std::num::NonZeroU32::MIN);
    relay::Config {
        max_reservations: l.max_reservations,
        max_reservations_per_peer: l.max_reservations_per_peer,
        max_circuits: l.max_circuits,
        max_circuits_per_peer: l.max_circuits_per_peer,
        max_circuit_duration: l.max_circuit_duration,
        max_circuit_bytes: l.max_circuit_bytes,
        reservation_rate_limiters: Vec::new(),
        circuit_src_rate_limiters: Vec::new(),
        ..relay::Config::default()
    }
    .reservation_rate_per_peer(nz(RELAY_RATE_PER_PEER), RELAY_RATE_INTERVAL_PER_PEER)
    .reservation_rate_per_ip(nz(l.reservation_rate_per_ip), RELAY_RATE_INTERVAL_PER_IP)
    .circuit_src_per_peer(nz(RELAY_RATE_PER_PEER), RELAY_RATE_INTERVAL_PER_PEER)
    .circuit_src_per_ip(nz(l.circuit_rate_per_ip), RELAY_RATE_INTERVAL_PER_IP)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relay_config_keeps_the_limits_and_one_rate_limiter_per_peer_and_per_ip() {
        let l = RelayLimits {
            max_circuits: 800,
            reservation_rate_per_ip: 1000,
            circuit_rate_per_ip: 2000,
            ..RelayLimits::default()
        };
        let c = relay_config(&l);
        assert_eq!(c.max_circuits, 800);
        assert_eq!(c.max_reservations, 128);
        assert_eq!(c.reservation_rate_limiters.len(), 2);
        assert_eq!(c.circuit_src_rate_limiters.len(), 2);
        // The defaults are circuit relay v2's.
        let d = RelayLimits::default();
        assert_eq!((d.reservation_rate_per_ip, d.circuit_rate_per_ip), (60, 60));
        assert_eq!(relay::Config::default().reservation_rate_limiters.len(), 2);
    }
}
