//! Service discovery through Kademlia (28.1.C §1–§2): every node provides a record for each
//! service type it offers, and a node short of a role it needs looks providers up, dials
//! them and checks their handshake.
//!
//! * Key of a service type: the bytes of `/dsdn/<network>/service/<type>` (see
//!   [`service_key`]); the provider records live [`BootstrapConfig::service_record_ttl`] and
//!   are republished by Kademlia every half of it, so a node that leaves stops being returned within one
//!   record lifetime.
//! * Role deficits: for every `(type, minimum)` of `NodeConfig::required_roles`, the number
//!   of connected peers offering the type is compared with the minimum
//!   (`discovery_role_deficit{service}`); while short, a provider lookup runs, at most one per
//!   type at a time and with a doubling pause between lookups (2 s up to 60 s).
//! * A provider is dialled as a Kademlia-sourced outbound peer; when its handshake does not
//!   advertise the type it provides, it is penalised (banned) and removed from the routing
//!   table.
//!
//! [`BootstrapConfig::service_record_ttl`]: dsdn_bootstrap::config::BootstrapConfig::service_record_ttl

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dsdn_protocols::{NetworkId, ServiceSet, ServiceType};
use libp2p::kad::{self, GetProvidersOk, QueryId, QueryResult, RecordKey};
use libp2p::PeerId;

use super::EventLoop;

/// First pause between two provider lookups of one type while it stays short.
const LOOKUP_BACKOFF_INITIAL: Duration = Duration::from_secs(2);
/// Longest pause between two provider lookups of one type.
const LOOKUP_BACKOFF_MAX: Duration = Duration::from_secs(60);
/// Shortest interval between two re-publications triggered by new peers.
const REPROVIDE_MIN: Duration = Duration::from_secs(2);
/// New peers at which our provider records are pushed again (then Kademlia's own
/// republication takes over).
const EARLY_PROVIDES: u32 = 8;
/// How long a dialled provider is remembered while its handshake is awaited.
const EXPECT_FOR: Duration = Duration::from_secs(60);
/// Providers dialled per lookup answer.
const MAX_DIALS_PER_ANSWER: usize = 4;

/// The Kademlia key under which providers of `service` on `network` are recorded:
/// `/dsdn/<network>/service/<type>`.
pub(crate) fn service_key(network: &NetworkId, service: ServiceType) -> RecordKey {
    RecordKey::new(&format!("/dsdn/{network}/service/{}", service.as_str()))
}

/// Discovery state kept by the event loop.
#[derive(Debug, Default)]
pub(crate) struct Discovery {
    /// Lookups in flight, by query, with the providers they returned so far.
    lookups: HashMap<QueryId, (ServiceType, HashSet<PeerId>)>,
    /// When the next lookup of a type may start, and the pause after it.
    next_lookup: HashMap<ServiceType, (Instant, Duration)>,
    /// Providers dialled because of a lookup, with the type they must advertise and when
    /// they were dialled (entries of dials that never verify expire after
    /// [`EXPECT_FOR`]).
    expected: HashMap<PeerId, (ServiceType, Instant)>,
    /// When our records were last pushed by [`EventLoop::provide_services`].
    provided: Option<Instant>,
    /// How many times they were.
    provides: u32,
}

impl EventLoop {
    /// Publishes a provider record for each of our service types (not for light clients or
    /// nodes without services), at the first verified peers: publishing needs peers in the
    /// routing table to reach anyone, so the records are pushed again at each of the first
    /// [`EARLY_PROVIDES`] new peers (at most every 2 s); after that Kademlia republishes them
    /// every half record lifetime by itself.
    pub(super) fn provide_services(&mut self, now: Instant) {
        if self.cfg.light || self.cfg.services.is_empty() {
            return;
        }
        if self.discovery.provides >= EARLY_PROVIDES
            || self
                .discovery
                .provided
                .is_some_and(|t| now.duration_since(t) < REPROVIDE_MIN)
        {
            return;
        }
        self.discovery.provided = Some(now);
        self.discovery.provides += 1;
        for service in self.cfg.services.iter() {
            let key = service_key(&self.cfg.network, service);
            if let Err(e) = self.swarm.behaviour_mut().kad.start_providing(key) {
                tracing::warn!(%service, error = %e, "cannot record a provider");
            }
        }
    }

    /// Compares connected peers with the required roles, exports the deficits and starts
    /// provider lookups for the roles that are short.
    pub(super) fn check_roles(&mut self, now: Instant) {
        // Providers whose dial failed never verify: forget them.
        self.discovery
            .expected
            .retain(|_, (_, dialled)| now.duration_since(*dialled) < EXPECT_FOR);
        let required = self.cfg.required_roles.clone();
        for (service, min) in required {
            let have = self
                .swarm
                .behaviour()
                .peer_manager
                .connected()
                .values()
                .filter(|p| p.services.contains(service))
                .count();
            let deficit = min.saturating_sub(have);
            self.metrics
                .role_deficit
                .with_label_values(&[service.as_str()])
                .set(deficit as i64);
            if deficit == 0 {
                self.discovery.next_lookup.remove(&service);
                continue;
            }
            if self.discovery.lookups.values().any(|(s, _)| *s == service) {
                continue;
            }
            let (at, pause) = self
                .discovery
                .next_lookup
                .get(&service)
                .copied()
                .unwrap_or((now, LOOKUP_BACKOFF_INITIAL));
            if now < at || self.swarm.behaviour_mut().kad.kbuckets().next().is_none() {
                continue;
            }
            // Peers of that role already in peers.dat (e.g. learned through PEX) first, then
            // a Kademlia lookup for more.
            self.swarm
                .behaviour_mut()
                .peer_manager
                .dial_role(service, deficit);
            let key = service_key(&self.cfg.network, service);
            let id = self.swarm.behaviour_mut().kad.get_providers(key);
            tracing::debug!(%service, deficit, "looking up providers");
            self.metrics
                .discovery_lookups
                .with_label_values(&[service.as_str()])
                .inc();
            self.discovery.lookups.insert(id, (service, HashSet::new()));
            self.discovery
                .next_lookup
                .insert(service, (now + pause, (pause * 2).min(LOOKUP_BACKOFF_MAX)));
        }
    }

    pub(super) fn on_kad(&mut self, event: kad::Event) {
        let kad::Event::OutboundQueryProgressed {
            id, result, step, ..
        } = event
        else {
            return;
        };
        let QueryResult::GetProviders(result) = result else {
            return;
        };
        let Some((service, _)) = self.discovery.lookups.get(&id) else {
            return;
        };
        let service = *service;
        let Ok(GetProvidersOk::FoundProviders { providers, .. }) = result else {
            if step.last {
                self.discovery.lookups.remove(&id);
            }
            return;
        };
        let local = *self.swarm.local_peer_id();
        // Several peers may return the same provider: count and dial each once per lookup.
        let mut found: Vec<PeerId> = match self.discovery.lookups.get_mut(&id) {
            Some((_, seen)) => providers
                .into_iter()
                .filter(|p| *p != local && seen.insert(*p))
                .collect(),
            None => Vec::new(),
        };
        if step.last {
            self.discovery.lookups.remove(&id);
        }
        found.sort();
        self.metrics
            .providers_found
            .with_label_values(&[service.as_str()])
            .inc_by(found.len() as u64);
        let mut dialled = 0;
        for peer in found {
            if dialled == MAX_DIALS_PER_ANSWER {
                break;
            }
            let pm = &mut self.swarm.behaviour_mut().peer_manager;
            if pm.dial_provider(peer) {
                dialled += 1;
                self.discovery
                    .expected
                    .insert(peer, (service, Instant::now()));
                tracing::info!(%peer, %service, "dialling a provider found in Kademlia");
            }
        }
    }

    /// Checks a verified peer against the type it was found providing: a provider that does
    /// not advertise it is penalised and forgotten (returns false then).
    pub(super) fn check_provider(&mut self, peer: PeerId, services: ServiceSet) -> bool {
        let Some((service, _)) = self.discovery.expected.remove(&peer) else {
            return true;
        };
        if services.contains(service) {
            return true;
        }
        tracing::warn!(%peer, %service, advertised = %services, "provider does not advertise the service it provides");
        self.swarm.behaviour_mut().kad.remove_peer(&peer);
        self.swarm
            .behaviour_mut()
            .peer_manager
            .penalize(peer, "provider_mismatch");
        false
    }
}
