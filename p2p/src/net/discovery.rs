//! Role discovery through Kademlia (28.1.C §1–§2): the [`Discovery`] component wraps the
//! network's `kad::Behaviour` and owns every provider record and lookup of the node.
//!
//! * Key of a service type: the bytes of `/dsdn/<network>/service/<type>` (see
//!   [`service_key`]); the provider records live [`BootstrapConfig::service_record_ttl`] and
//!   are republished by Kademlia every half of it, so a node that leaves stops being
//!   returned within one record lifetime.
//! * Our records are pushed at the first verified peers ([`EARLY_PROVIDES`] times, at most
//!   every 2 s): publishing needs peers in the routing table to reach anyone.
//! * Role deficits: for every `(type, minimum)` of `NodeConfig::required_roles`,
//!   [`Discovery::check_roles`] compares the number of connected peers offering the type
//!   with the minimum (`discovery_role_deficit{service}`); while short, a provider lookup
//!   runs, at most one per type at a time and with a doubling pause between lookups (2 s up
//!   to 60 s), and [`DiscoveryEvent::RoleShort`] asks for cached peers of the type first.
//! * Providers a lookup returns come out as [`DiscoveryEvent::ProvidersFound`]; the peer
//!   manager dials them (admission is its job) and [`Discovery::expect`] remembers the type
//!   each must advertise. When its handshake does not, [`Discovery::peer_verified`] removes
//!   it from the routing table and says so (the node penalises it).
//!
//! The routing table holds only verified peers: [`Discovery::peer_verified`] adds their
//! listen addresses, [`Discovery::peer_disconnected`] removes them.
//!
//! [`BootstrapConfig::service_record_ttl`]: dsdn_bootstrap::config::BootstrapConfig::service_record_ttl

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dsdn_protocols::{AddressPolicy, NetworkId, ServiceSet, ServiceType};
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::swarm::FromSwarm;
use libp2p::{Multiaddr, PeerId, StreamProtocol};
use prometheus::{IntCounterVec, IntGaugeVec};

use super::component::{Component, Inner, InnerEvent, Outbox, Protocol};

/// First pause between two provider lookups of one type while it stays short.
const LOOKUP_BACKOFF_INITIAL: Duration = Duration::from_secs(2);
/// Longest pause between two provider lookups of one type.
const LOOKUP_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Shortest interval between two re-publications triggered by new peers.
const REPROVIDE_MIN: Duration = Duration::from_secs(2);
/// New peers at which our provider records are pushed again (then Kademlia's own
/// republication takes over).
pub const EARLY_PROVIDES: u32 = 8;
/// How long a dialled provider is remembered while its handshake is awaited.
const EXPECT_FOR: Duration = Duration::from_secs(60);
/// Providers dialled per lookup answer, at most.
pub const MAX_DIALS_PER_ANSWER: usize = 4;

/// The multicodec code of SHA2-256 in a multihash.
const SHA2_256: u64 = 0x12;

/// The service-key string of `service` on `network`: `/dsdn/<network>/service/<type>`.
pub fn service_key_string(network: &NetworkId, service: ServiceType) -> String {
    format!("/dsdn/{network}/service/{}", service.as_str())
}

/// The Kademlia key under which providers of `service` on `network` are recorded: the
/// SHA2-256 multihash (`0x12 0x20` + 32 bytes) of [`service_key_string`]. It is the
/// multihash of the CIDv1 `raw` of that string, so a standard libp2p client finds the
/// providers with `findProviders(CID.createV1(0x55, sha256.digest(utf8(key))))`.
pub fn service_key(network: &NetworkId, service: ServiceType) -> RecordKey {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(service_key_string(network, service).as_bytes());
    match libp2p::multihash::Multihash::<64>::wrap(SHA2_256, &digest) {
        Ok(hash) => RecordKey::from(hash),
        // A 32-byte digest always fits the 64-byte multihash.
        Err(_) => RecordKey::new(&digest),
    }
}

/// What discovery asks of the node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiscoveryEvent {
    /// A role is short by `deficit` peers and a provider lookup started: dial cached peers
    /// of the type first.
    RoleShort {
        /// The service type.
        service: ServiceType,
        /// Required minimum minus connected peers of the type.
        deficit: usize,
    },
    /// A lookup returned these providers of `service` (new to this lookup, sorted): dial
    /// at most [`MAX_DIALS_PER_ANSWER`] of them and [`Discovery::expect`] those dialled.
    ProvidersFound {
        /// The service type they provide.
        service: ServiceType,
        /// The providers.
        providers: Vec<PeerId>,
    },
}

/// The discovery metrics (registered by [`crate::Metrics`]).
#[derive(Clone)]
pub struct DiscoveryMetrics {
    /// `discovery_lookups_total{service}`.
    pub lookups: IntCounterVec,
    /// `discovery_providers_found_total{service}`.
    pub providers_found: IntCounterVec,
    /// `discovery_role_deficit{service}`.
    pub role_deficit: IntGaugeVec,
}

/// What this node provides and needs.
#[derive(Debug, Clone)]
pub struct DiscoveryConfig {
    /// The network the keys are scoped to.
    pub network: NetworkId,
    /// The service types this node provides (none for a light client).
    pub services: ServiceSet,
    /// `(type, minimum)` connected peers this node needs.
    pub required_roles: Vec<(ServiceType, usize)>,
    /// A light client: queries the DHT, never answers, provides nothing.
    pub light: bool,
    /// Answer Kademlia requests from the start (devnet, where every address is
    /// reachable). Otherwise (public networks) Kademlia serves only while the node has a
    /// confirmed external address (direct or relayed), so a node nobody can reach never
    /// enters others' routing tables.
    pub always_server: bool,
    /// Provider records' lifetime; republished every half of it.
    pub record_ttl: Duration,
    /// Which of the addresses identify gives enter the routing table.
    pub address_policy: AddressPolicy,
}

/// The Kademlia configuration of a DSDN network: protocol `/dsdn/<network>/kad/1.0.0`, no
/// periodic bootstrap (the peer manager decides when to look for peers), manual routing
/// table inserts ([`Discovery::peer_verified`], [`Discovery::peer_identified`]), provider
/// records living `record_ttl` and republished every half of it.
///
/// # Errors
/// The network id does not make a valid protocol name (it always does for a [`NetworkId`]).
pub fn kad_config(
    network: &NetworkId,
    record_ttl: Duration,
) -> Result<kad::Config, libp2p::swarm::InvalidProtocol> {
    let mut cfg = kad::Config::new(StreamProtocol::try_from_owned(
        network.protocol("kad", "1.0.0"),
    )?);
    cfg.set_periodic_bootstrap_interval(None);
    // The routing table holds only verified peers that speak this Kademlia protocol
    // (handshake + identify), never a peer merely because it connected.
    cfg.set_kbucket_inserts(kad::BucketInserts::Manual);
    cfg.set_provider_record_ttl(Some(record_ttl));
    cfg.set_provider_publication_interval(Some(record_ttl / 2));
    Ok(cfg)
}

/// The discovery component: [`DiscoveryState`] over `kad::Behaviour`; see the module
/// documentation.
pub type Discovery = Component<DiscoveryState>;

/// The state of role discovery: what this node provides and needs, its lookups and the
/// providers it dialled.
pub struct DiscoveryState {
    cfg: DiscoveryConfig,
    metrics: DiscoveryMetrics,
    local: PeerId,
    /// Lookups in flight, by query, with the providers they returned so far.
    lookups: HashMap<QueryId, (ServiceType, HashSet<PeerId>)>,
    /// When the next lookup of a type may start, and the pause after it.
    next_lookup: HashMap<ServiceType, (Instant, Duration)>,
    /// Providers dialled because of a lookup, with the type they must advertise and when
    /// they were dialled (entries of dials that never verify expire after [`EXPECT_FOR`]).
    expected: HashMap<PeerId, (ServiceType, Instant)>,
    /// When our records were last pushed, and how many times they were.
    provided: Option<Instant>,
    provides: u32,
    /// Connected peers whose handshake verified.
    verified: HashSet<PeerId>,
    /// Connected peers whose identify said they speak our Kademlia protocol, with the
    /// listen addresses they gave (at most [`MAX_IDENTIFY_ADDRS`]).
    identified: HashMap<PeerId, Vec<Multiaddr>>,
}

/// Listen addresses of one identified peer kept for the routing table, at most.
pub const MAX_IDENTIFY_ADDRS: usize = 16;

impl Protocol for DiscoveryState {
    type Inner = kad::Behaviour<kad::store::MemoryStore>;
    type Event = DiscoveryEvent;

    fn on_event(
        &mut self,
        event: InnerEvent<Self>,
        _inner: &mut Inner<Self>,
        out: &mut Outbox<Self>,
    ) {
        self.on_kad(event, out);
    }

    /// A peer's last connection closed: what identify and the handshake told of it is
    /// forgotten (also for peers that never verified, so the maps stay bounded by the
    /// connections).
    fn on_swarm_event(&mut self, event: &FromSwarm<'_>) {
        if let FromSwarm::ConnectionClosed(c) = event {
            if c.remaining_established == 0 {
                self.verified.remove(&c.peer_id);
                self.identified.remove(&c.peer_id);
            }
        }
    }
}

impl Component<DiscoveryState> {
    /// The component of node `local`.
    ///
    /// # Errors
    /// The network id does not make a valid protocol name.
    pub fn discovery(
        local: PeerId,
        cfg: DiscoveryConfig,
        metrics: DiscoveryMetrics,
    ) -> Result<Self, libp2p::swarm::InvalidProtocol> {
        let kad_cfg = kad_config(&cfg.network, cfg.record_ttl)?;
        let mut kad =
            kad::Behaviour::with_config(local, kad::store::MemoryStore::new(local), kad_cfg);
        // A light client queries the DHT but never answers nor enters others' routing tables;
        // on public networks the mode follows the confirmed external addresses.
        kad.set_mode(if cfg.light {
            Some(kad::Mode::Client)
        } else if cfg.always_server {
            Some(kad::Mode::Server)
        } else {
            None
        });
        Ok(Self::new(
            kad,
            DiscoveryState {
                cfg,
                metrics,
                local,
                lookups: HashMap::new(),
                next_lookup: HashMap::new(),
                expected: HashMap::new(),
                provided: None,
                provides: 0,
                verified: HashSet::new(),
                identified: HashMap::new(),
            },
        ))
    }

    /// A peer passed its handshake advertising `services`: checked against the type it was
    /// found providing (`false`: it does not advertise it; it is removed from the routing
    /// table and should be penalised). Otherwise it may enter the routing table, with the
    /// addresses its identify gave, once identify says it speaks our Kademlia protocol; our
    /// records are pushed if it is one of the first peers.
    pub fn peer_verified(&mut self, peer: PeerId, services: ServiceSet, now: Instant) -> bool {
        if let Some((service, _)) = self.state.expected.remove(&peer) {
            if !services.contains(service) {
                tracing::warn!(%peer, %service, advertised = %services, "provider does not advertise the service it provides");
                self.inner.remove_peer(&peer);
                return false;
            }
        }
        self.state.verified.insert(peer);
        self.route(peer);
        self.provide_services(now);
        true
    }

    /// identify told what `peer` listens on and speaks: a verified peer that speaks our
    /// Kademlia protocol enters the routing table with those addresses (identify runs
    /// again on every change, and each answer replaces the last); one that stops speaking
    /// it leaves.
    pub fn peer_identified(
        &mut self,
        peer: PeerId,
        listen_addrs: &[Multiaddr],
        protocols: &[StreamProtocol],
    ) {
        let ours = self.state.cfg.network.protocol("kad", "1.0.0");
        if !protocols.iter().any(|p| p.as_ref() == ours) {
            if self.state.identified.remove(&peer).is_some() {
                self.inner.remove_peer(&peer);
            }
            return;
        }
        let addrs: Vec<Multiaddr> = listen_addrs
            .iter()
            .filter(|a| super::usable_addr(a, self.state.cfg.address_policy))
            .take(MAX_IDENTIFY_ADDRS)
            .cloned()
            .collect();
        self.state.identified.insert(peer, addrs);
        self.route(peer);
    }

    /// Puts `peer` in the routing table when it is both verified and identified as a
    /// Kademlia server.
    fn route(&mut self, peer: PeerId) {
        if !self.state.verified.contains(&peer) {
            return;
        }
        let Some(addrs) = self.state.identified.get(&peer) else {
            return;
        };
        for addr in addrs.clone() {
            self.inner.add_address(&peer, addr);
        }
    }

    /// A peer disconnected: out of the routing table.
    pub fn peer_disconnected(&mut self, peer: &PeerId) {
        self.state.verified.remove(peer);
        self.state.identified.remove(peer);
        self.inner.remove_peer(peer);
    }

    /// Providers of `service` the node dialled after [`DiscoveryEvent::ProvidersFound`]: their
    /// handshake must advertise it.
    pub fn expect(
        &mut self,
        peers: impl IntoIterator<Item = PeerId>,
        service: ServiceType,
        now: Instant,
    ) {
        for peer in peers {
            tracing::info!(%peer, %service, "dialling a provider found in Kademlia");
            self.state.expected.insert(peer, (service, now));
        }
    }

    /// Publishes a provider record for each of our service types (not for light clients or
    /// nodes without services) at each of the first [`EARLY_PROVIDES`] verified peers, at
    /// most every 2 s; after that Kademlia republishes them by itself.
    fn provide_services(&mut self, now: Instant) {
        if self.state.cfg.light || self.state.cfg.services.is_empty() {
            return;
        }
        if self.state.provides >= EARLY_PROVIDES
            || self
                .state
                .provided
                .is_some_and(|t| now.duration_since(t) < REPROVIDE_MIN)
        {
            return;
        }
        self.state.provided = Some(now);
        self.state.provides += 1;
        for service in self.state.cfg.services.iter() {
            let key = service_key(&self.state.cfg.network, service);
            if let Err(e) = self.inner.start_providing(key) {
                tracing::warn!(%service, error = %e, "cannot record a provider");
            }
        }
    }

    /// Compares connected peers (`have(type)`: how many offer it) with the required roles,
    /// exports the deficits and starts provider lookups for the roles that are short (each
    /// also a [`DiscoveryEvent::RoleShort`]).
    pub fn check_roles(&mut self, have: impl Fn(ServiceType) -> usize, now: Instant) {
        // Providers whose dial failed never verify: forget them.
        self.state
            .expected
            .retain(|_, (_, dialled)| now.duration_since(*dialled) < EXPECT_FOR);
        for (service, min) in self.state.cfg.required_roles.clone() {
            let deficit = min.saturating_sub(have(service));
            self.state
                .metrics
                .role_deficit
                .with_label_values(&[service.as_str()])
                .set(deficit as i64);
            if deficit == 0 {
                self.state.next_lookup.remove(&service);
                continue;
            }
            if self.state.lookups.values().any(|(s, _)| *s == service) {
                continue;
            }
            let (at, pause) = self
                .state
                .next_lookup
                .get(&service)
                .copied()
                .unwrap_or((now, LOOKUP_BACKOFF_INITIAL));
            if now < at || self.inner.kbuckets().next().is_none() {
                continue;
            }
            // Peers of that role already in peers.dat (e.g. learned through PEX) first,
            // then a Kademlia lookup for more.
            self.out
                .push_back(DiscoveryEvent::RoleShort { service, deficit });
            let id = self
                .inner
                .get_providers(service_key(&self.state.cfg.network, service));
            tracing::debug!(%service, deficit, "looking up providers");
            self.state
                .metrics
                .lookups
                .with_label_values(&[service.as_str()])
                .inc();
            self.state.lookups.insert(id, (service, HashSet::new()));
            self.state
                .next_lookup
                .insert(service, (now + pause, (pause * 2).min(LOOKUP_BACKOFF_MAX)));
        }
    }

    /// Lookups in flight (for status and tests).
    pub fn lookups_in_flight(&self) -> usize {
        self.state.lookups.len()
    }
}

impl DiscoveryState {
    /// A Kademlia event: the progress of one of our provider lookups becomes
    /// [`DiscoveryEvent::ProvidersFound`]; everything else is Kademlia's own business.
    fn on_kad(&mut self, event: kad::Event, out: &mut Outbox<Self>) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            return;
        };
        let QueryResult::GetProviders(result) = result else {
            return;
        };
        let Some((service, seen)) = self.lookups.get_mut(&id) else {
            return;
        };
        let service = *service;
        // Several peers may return the same provider: each is reported once per lookup.
        let mut found: Vec<PeerId> = match result {
            Ok(GetProvidersOk::FoundProviders { providers, .. }) => providers
                .into_iter()
                .filter(|p| *p != self.local && seen.insert(*p))
                .collect(),
            _ => Vec::new(),
        };
        if step.last {
            self.lookups.remove(&id);
        }
        if found.is_empty() {
            return;
        }
        found.sort();
        self.metrics
            .providers_found
            .with_label_values(&[service.as_str()])
            .inc_by(found.len() as u64);
        out.push_back(DiscoveryEvent::ProvidersFound {
            service,
            providers: found,
        });
    }
}

#[cfg(test)]
mod tests;
