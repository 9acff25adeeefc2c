//! The peer manager: a [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour) that decides
//! whom the node dials and whom it accepts, and keeps peers.dat up to date.
//!
//! It owns no sockets: it asks the swarm to dial ([`ToSwarm::Dial`]) and to close
//! connections, and it tells the event loop what happened ([`PeerManagerEvent`]). Its pure
//! parts live elsewhere and are driven here with `now`:
//!
//! * the bootstrap [`FallbackChain`] (28.1.A §4): anchors and peers.dat → static peers →
//!   DNS seeds, retried with backoff (`dialing.rs`);
//! * [`PartitionRecovery`] (28.1.C §4): below `min_peers`, sweep every DNS seed, static and
//!   cached peer with exponential backoff (`maintenance.rs`);
//! * the [`RotationSchedule`] (28.1.B §6): a random DNS seed every 30 min, PEX to a random
//!   peer every 15 min, two feeler connections to cached peers every hour (`maintenance.rs`);
//! * outbound selection with netgroup and source diversity and the eclipse warning
//!   (28.1.C §6, [`dsdn_peers::select`]);
//! * admission control (28.1.C §6): bans, per-IP inbound rate limit, inbound, outbound and
//!   per-peer connection limits (`swarm.rs`).
//!
//! The event loop feeds it handshake results ([`PeerManager::on_handshake_ok`],
//! [`PeerManager::on_handshake_failed`]), PEX discoveries ([`PeerManager::discovered`]) and
//! misbehaviour ([`PeerManager::penalize`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dsdn_bootstrap::added::AddedSources;
use dsdn_bootstrap::config::BootstrapConfig;
use dsdn_bootstrap::fallback::{FallbackChain, FallbackConfig, Stage};
use dsdn_bootstrap::recovery::{PartitionRecovery, RecoveryConfig};
use dsdn_bootstrap::resolver::{ResolveError, Resolved, SeedResolver};
use dsdn_bootstrap::rotation::{RotationConfig, RotationSchedule};
use dsdn_peers::ratelimit::InboundRateLimiter;
use dsdn_peers::store::PeerStore;
use dsdn_peers::{NetGroup, PeerRecord};
use dsdn_protocols::{AddressPolicy, PeerSource, ServiceSet};
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::{ConnectionId, ToSwarm};
use libp2p::{Multiaddr, PeerId};

use crate::metrics::Metrics;

pub use address_test::{ADDRESS_TEST_GAP, ADDRESS_TEST_PER_PEER, ADDRESS_TEST_QUEUE};
pub use errors::{BannedPeer, LimitExceeded};
pub use misbehaviour::{banned_majority_warning, offence, Offence, OFFENCES};
pub use swarm::MAX_PENDING_INBOUND;

pub mod added;
mod address_test;
mod control;
mod dialing;
mod errors;
mod maintenance;
mod misbehaviour;
mod swarm;
mod verify;

/// Outbound connections allowed beyond `max_outbound_connections`: two feelers, one
/// diversity dial and one connection opened by Kademlia or gossipsub.
pub const EXTRA_OUTBOUND: usize = 4;

/// First delay between partition-recovery sweeps (doubling up to
/// `recovery_backoff_max_secs`).
pub(crate) const RECOVERY_BACKOFF_INITIAL: Duration = Duration::from_secs(1);

/// What the peer manager tells the event loop.
#[derive(Debug, Clone)]
pub enum PeerManagerEvent {
    /// An outbound connection is up: send our handshake on it.
    SendHandshake {
        /// The remote peer.
        peer: PeerId,
        /// The new connection.
        connection: ConnectionId,
    },
    /// A peer passed the handshake and is now a connected peer.
    PeerVerified {
        /// The peer.
        peer: PeerId,
        /// Its advertised listen addresses.
        listen_addrs: Vec<Multiaddr>,
        /// Its advertised service types.
        services: ServiceSet,
        /// True when we dialled it.
        outbound: bool,
    },
    /// The last connection to a verified peer closed.
    PeerDisconnected {
        /// The peer.
        peer: PeerId,
    },
    /// Rotation (28.1.B §6): ask this connected peer for addresses.
    RequestPex {
        /// A random verified peer.
        peer: PeerId,
    },
}

/// A verified, connected peer as the manager sees it.
#[derive(Debug, Clone)]
pub struct ConnectedPeer {
    /// True when the first verified connection was outbound.
    pub outbound: bool,
    /// True for a feeler connection that will be closed (it does not use an outbound slot).
    pub feeler: bool,
    /// Advertised service types.
    pub services: ServiceSet,
    /// Advertised listen addresses.
    pub listen_addrs: Vec<Multiaddr>,
    /// Where we learned of it (`inbound` for peers that dialled us).
    pub source: PeerSource,
    /// The netgroup of the connection's remote address.
    pub netgroup: Option<NetGroup>,
    /// When the handshake verified.
    pub since: Instant,
}

/// What the handshake told us about a peer, as passed to [`PeerManager::on_handshake_ok`].
#[derive(Debug, Clone)]
pub struct VerifiedInfo {
    /// Advertised listen addresses (already decoded and filtered).
    pub listen_addrs: Vec<Multiaddr>,
    /// Advertised service types.
    pub services: ServiceSet,
}

/// Why a dial was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DialKind {
    /// A full outbound peer (bootstrap, recovery, PEX discovery, operator addition).
    Outbound,
    /// A feeler (28.1.B §6): tests an address; kept only if an outbound slot is free.
    Feeler,
    /// An address test of an inbound peer's announced address (`address_test.rs`).
    AddressTest,
}

#[derive(Debug)]
struct Dial {
    source: PeerSource,
    peer: Option<PeerId>,
    kind: DialKind,
    /// The fallback-chain action this dial belongs to, if any.
    in_action: bool,
    netgroup: Option<NetGroup>,
    started: Instant,
    /// For an address-only TCP dial: the QUIC address of the same peer, dialled if this
    /// dial fails.
    fallback: Option<Multiaddr>,
}

#[derive(Debug)]
struct Conn {
    peer: PeerId,
    outbound: bool,
    source: PeerSource,
    kind: DialKind,
    in_action: bool,
    opened: Instant,
    verified: bool,
    remote: Multiaddr,
    /// Through a circuit relay (either direction).
    relayed: bool,
    /// Dialled by this peer manager (not by Kademlia, gossipsub or a DCUtR hole punch).
    ours: bool,
}

#[derive(Debug)]
struct ActionState {
    /// Generation, so a late DNS answer of an earlier action is not counted.
    id: u64,
    open: usize,
    produced: usize,
    deadline: Instant,
}

/// Why a DNS seed is being resolved.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DnsPurpose {
    /// A fallback-chain stage (the action's generation).
    Chain(u64),
    /// A partition-recovery sweep: dial every address.
    Sweep,
    /// The 30-minute refresh: dial new addresses as feelers.
    Refresh,
}

type DnsFuture = BoxFuture<'static, (DnsPurpose, Result<Resolved, ResolveError>)>;

/// See the module documentation.
pub struct PeerManager {
    local_peer_id: PeerId,
    cfg: BootstrapConfig,
    store: Arc<PeerStore>,
    resolver: Arc<SeedResolver>,
    metrics: Metrics,
    chain: FallbackChain,
    recovery: PartitionRecovery,
    rotation: RotationSchedule,
    inbound_limiter: InboundRateLimiter,
    added: AddedSources,
    added_file: PathBuf,
    /// The state of the operator's added peers, re-dialled with a backoff.
    added_peers: added::AddedPeers,
    /// Anchors of the last clean shutdown, dialled before any other cached peer.
    anchors: Vec<PeerRecord>,
    action: Option<ActionState>,
    action_ids: u64,
    /// When the current recovery sweep is considered settled.
    sweep_deadline: Option<Instant>,
    dns: FuturesUnordered<DnsFuture>,
    dials: HashMap<ConnectionId, Dial>,
    conns: HashMap<ConnectionId, Conn>,
    /// Inbound connections accepted by the transport whose handshake (noise, yamux) has not
    /// finished (at most [`MAX_PENDING_INBOUND`]).
    pending_inbound: HashSet<ConnectionId>,
    verified: HashMap<PeerId, ConnectedPeer>,
    listen_sockets: HashSet<SocketAddr>,
    events: VecDeque<ToSwarm<PeerManagerEvent, Infallible>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    last_fallbacks: u64,
    eclipse_warned: bool,
    /// Earliest time of the next diversity dial while the eclipse warning holds.
    next_diversity_dial: Instant,
    /// The network's address policy (`[network] allow_private_addresses`).
    address_policy: AddressPolicy,
    /// Queued address tests of inbound peers' announced addresses.
    address_tests: address_test::AddressTests,
    /// Graduated reputation of misbehaving peers (in memory; bans persist).
    reputations: dsdn_peers::Reputations,
    /// Fingerprint of the configuration offences may depend on (see [`misbehaviour`]).
    config_fingerprint: u64,
    /// The partition alarm is raised (see `maintenance.rs`).
    partition_alarm: bool,
}

/// Current UNIX time in seconds (peers.dat stores wall-clock times).
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The `IP:PORT` of a `/ip4|ip6/…/tcp|udp/…` multiaddr.
pub(crate) fn socket_of(addr: &Multiaddr) -> Option<SocketAddr> {
    let mut ip = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Ip6(a) => ip = Some(std::net::IpAddr::V6(a)),
            Protocol::Tcp(port) | Protocol::Udp(port) => {
                return ip.map(|ip| SocketAddr::new(ip, port));
            }
            _ => {}
        }
    }
    None
}

/// Everything [`PeerManager::new`] needs besides the configuration.
pub struct PeerManagerParts {
    /// The local node's PeerId (never dialled).
    pub local_peer_id: PeerId,
    /// peers.dat.
    pub store: Arc<PeerStore>,
    /// The DNS seed resolver.
    pub resolver: Arc<SeedResolver>,
    /// The node's metrics.
    pub metrics: Metrics,
    /// Operator additions (`peers add`, `peers add-seed`) loaded from `added_file`.
    pub added: AddedSources,
    /// Where additions are saved.
    pub added_file: PathBuf,
    /// The network's address policy (`[network] allow_private_addresses`); peers.dat, the
    /// handshake, PEX and discovery are given the same one.
    pub address_policy: AddressPolicy,
    /// Fingerprint of the node's network id, DA authority and committee
    /// ([`crate::node::config_fingerprint`]), recorded with bans that depend on them.
    pub config_fingerprint: u64,
}

impl PeerManager {
    /// A manager using the bootstrap sources, limits and intervals of `cfg` (plus the
    /// operator additions of `parts.added`). Takes the anchors saved at the last clean
    /// shutdown out of peers.dat; they are dialled first.
    pub fn new(mut cfg: BootstrapConfig, parts: PeerManagerParts) -> Self {
        let now = Instant::now();
        parts.added.merge_into(&mut cfg);
        let mut added_peers = added::AddedPeers::default();
        for p in &parts.added.static_peers {
            added_peers.add(p.clone(), now);
        }
        let chain = FallbackChain::new(
            FallbackConfig {
                static_peers: cfg.static_peers.len(),
                dns_seeds: cfg.dns_seeds.len(),
                retry_interval: cfg.retry_interval,
                backoff_initial: Duration::from_secs(1),
                backoff_max: cfg.retry_interval,
            },
            now,
        );
        let grace = cfg.dns_resolve_timeout + cfg.peer_connect_timeout * 2;
        let recovery = PartitionRecovery::new(
            RecoveryConfig {
                min_peers: cfg.min_peers,
                backoff_initial: RECOVERY_BACKOFF_INITIAL,
                backoff_max: cfg.recovery_backoff_max,
            },
            grace,
            now,
        );
        let rotation = RotationSchedule::new(RotationConfig::from_bootstrap(&cfg), now);
        let anchors = parts.store.take_anchors(unix_now()).unwrap_or_else(|e| {
            tracing::warn!(error = %e, "cannot read the anchors in peers.dat");
            Vec::new()
        });
        if !anchors.is_empty() {
            tracing::info!(
                count = anchors.len(),
                "dialling the anchors of the last shutdown first"
            );
        }
        Self {
            local_peer_id: parts.local_peer_id,
            inbound_limiter: InboundRateLimiter::new(cfg.inbound_per_ip_per_minute),
            cfg,
            store: parts.store,
            resolver: parts.resolver,
            metrics: parts.metrics,
            chain,
            recovery,
            rotation,
            added: parts.added,
            added_file: parts.added_file,
            added_peers,
            anchors,
            action: None,
            action_ids: 0,
            sweep_deadline: None,
            dns: FuturesUnordered::new(),
            dials: HashMap::new(),
            conns: HashMap::new(),
            pending_inbound: HashSet::new(),
            verified: HashMap::new(),
            listen_sockets: HashSet::new(),
            events: VecDeque::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            last_fallbacks: 0,
            eclipse_warned: false,
            next_diversity_dial: now,
            address_policy: parts.address_policy,
            address_tests: address_test::AddressTests::new(now),
            reputations: dsdn_peers::Reputations::new(),
            config_fingerprint: parts.config_fingerprint,
            partition_alarm: false,
        }
    }

    /// Verified, connected peers.
    pub fn connected(&self) -> &HashMap<PeerId, ConnectedPeer> {
        &self.verified
    }

    /// True when `peer` is connected with a verified handshake.
    pub fn is_verified(&self, peer: &PeerId) -> bool {
        self.verified.contains_key(peer)
    }

    /// A human-readable name of the fallback chain's stage.
    pub fn stage(&self) -> String {
        match self.chain.stage() {
            Stage::Idle => "idle".to_owned(),
            Stage::PeersDat => "peers.dat".to_owned(),
            Stage::Static(i) => format!("static[{i}]"),
            Stage::DnsSeed(i) => format!("dns_seed[{i}]"),
            Stage::Backoff { .. } => "backoff".to_owned(),
        }
    }

    /// True when every bootstrap source failed and no peer is connected.
    pub(crate) fn is_isolated(&self) -> bool {
        self.chain.is_isolated() && self.verified.is_empty()
    }

    /// True while the partition alarm holds (28.1.C §4, issue 15 §7; `maintenance.rs`).
    pub(crate) fn is_partitioned(&self) -> bool {
        self.recovery.alarm(self.verified.len())
    }

    /// True when at least two outbound peers are connected and all came from one source
    /// (the 28.1.C §6 eclipse warning).
    pub fn single_source(&self) -> bool {
        let sources: Vec<PeerSource> = self
            .verified
            .values()
            .filter(|p| p.outbound && !p.feeler)
            .map(|p| p.source)
            .collect();
        dsdn_peers::select::single_source(&sources)
    }

    /// The peers to remember as anchors at a clean shutdown: the verified full outbound
    /// peers, longest-connected first.
    pub(crate) fn anchor_peers(&self) -> Vec<PeerId> {
        let mut v: Vec<(&PeerId, &ConnectedPeer)> = self
            .verified
            .iter()
            .filter(|(_, p)| p.outbound && !p.feeler)
            .collect();
        v.sort_by_key(|(_, p)| p.since);
        v.into_iter().map(|(id, _)| *id).collect()
    }

    fn outbound_verified(&self) -> usize {
        self.verified
            .values()
            .filter(|p| p.outbound && !p.feeler)
            .count()
    }

    fn outbound_in_flight(&self) -> usize {
        self.dials
            .values()
            .filter(|d| d.kind == DialKind::Outbound)
            .count()
            + self
                .conns
                .values()
                .filter(|c| c.outbound && !c.verified && c.kind == DialKind::Outbound)
                .count()
    }

    /// Outbound slots left: `max_outbound_connections` minus verified and in-flight
    /// outbound peers, plus one diversity slot while every outbound peer came from a single
    /// source (28.1.C §6: the node is made to diversify).
    fn free_outbound_slots(&self) -> usize {
        let used = self.outbound_verified() + self.outbound_in_flight();
        let max = self.cfg.max_outbound_connections + usize::from(self.single_source());
        max.saturating_sub(used)
    }

    /// Netgroups of the verified and in-flight outbound peers.
    fn outbound_netgroups(&self) -> HashSet<NetGroup> {
        let mut set: HashSet<NetGroup> = self
            .verified
            .values()
            .filter(|p| p.outbound && !p.feeler)
            .filter_map(|p| p.netgroup.clone())
            .collect();
        set.extend(
            self.dials
                .values()
                .filter(|d| d.kind == DialKind::Outbound)
                .filter_map(|d| d.netgroup.clone()),
        );
        set
    }

    fn is_self(&self, addr: &Multiaddr) -> bool {
        socket_of(addr).is_some_and(|s| self.listen_sockets.contains(&s))
    }

    /// True when `addr` is the socket of a peer we are connected to or dialling already.
    fn is_known_socket(&self, addr: &Multiaddr) -> bool {
        let Some(sock) = socket_of(addr) else {
            return false;
        };
        self.conns
            .values()
            .any(|c| socket_of(&c.remote) == Some(sock))
            || self
                .verified
                .values()
                .any(|p| p.listen_addrs.iter().any(|a| socket_of(a) == Some(sock)))
    }

    fn busy_peers(&self) -> HashSet<PeerId> {
        let mut set: HashSet<PeerId> = self.verified.keys().copied().collect();
        set.extend(self.conns.values().map(|c| c.peer));
        set.extend(self.dials.values().filter_map(|d| d.peer));
        set.insert(self.local_peer_id);
        set
    }
}
