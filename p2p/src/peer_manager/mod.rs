//! The peer manager: a [`NetworkBehaviour`](libp2p::swarm::NetworkBehaviour) that runs the bootstrap fallback chain, asks the
//! swarm to dial, enforces connection limits and keeps peers.dat up to date.
//!
//! It owns no sockets. It decides *whom* to dial (peers.dat → static peers → DNS seeds, then
//! peers learned through PEX), tracks every dial and connection until the handshake verifies
//! or refuses it, and reports outcomes to the pure [`FallbackChain`] (28.1.A §4). The event
//! loop feeds it handshake results ([`PeerManager::on_handshake_ok`],
//! [`PeerManager::on_handshake_failed`]) and PEX discoveries ([`PeerManager::discovered`]).

use std::collections::{HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dsdn_bootstrap::config::{socket_dial_addrs, BootstrapConfig, DnsSeed, StaticPeer};
use dsdn_bootstrap::fallback::{Action, FallbackChain, FallbackConfig, Stage};
use dsdn_bootstrap::resolver::{ResolveError, Resolved, SeedResolver};
use dsdn_peers::store::PeerStore;
use dsdn_protocols::handshake::HandshakeError;
use dsdn_protocols::{PeerSource, ServiceSet};
use futures::future::BoxFuture;
use futures::FutureExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{CloseConnection, ConnectionDenied, ConnectionId, ToSwarm};
use libp2p::{Multiaddr, PeerId};

use crate::handle::ControlError;
use crate::metrics::Metrics;

mod swarm;

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
}

/// A verified, connected peer as the manager sees it.
#[derive(Debug, Clone)]
pub struct ConnectedPeer {
    /// True when the first verified connection was outbound.
    pub outbound: bool,
    /// Advertised service types.
    pub services: ServiceSet,
    /// Advertised listen addresses.
    pub listen_addrs: Vec<Multiaddr>,
    /// Where we learned of it (`inbound` for peers that dialled us).
    pub source: PeerSource,
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

#[derive(Debug)]
struct Dial {
    source: PeerSource,
    peer: Option<PeerId>,
    in_action: bool,
    started: Instant,
}

#[derive(Debug)]
struct Conn {
    peer: PeerId,
    outbound: bool,
    source: PeerSource,
    in_action: bool,
    opened: Instant,
    verified: bool,
    remote: Multiaddr,
}

#[derive(Debug)]
struct ActionState {
    open: usize,
    produced: usize,
    deadline: Instant,
}

/// See the module documentation.
pub struct PeerManager {
    local_peer_id: PeerId,
    cfg: BootstrapConfig,
    store: Arc<PeerStore>,
    resolver: Arc<SeedResolver>,
    metrics: Metrics,
    chain: FallbackChain,
    action: Option<ActionState>,
    dns: Option<BoxFuture<'static, Result<Resolved, ResolveError>>>,
    dials: HashMap<ConnectionId, Dial>,
    conns: HashMap<ConnectionId, Conn>,
    verified: HashMap<PeerId, ConnectedPeer>,
    listen_sockets: HashSet<SocketAddr>,
    events: VecDeque<ToSwarm<PeerManagerEvent, Infallible>>,
    timer: Pin<Box<tokio::time::Sleep>>,
    last_fallbacks: u64,
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

impl PeerManager {
    /// A manager for `local_peer_id` using the bootstrap sources and limits of `cfg`.
    pub fn new(
        local_peer_id: PeerId,
        cfg: BootstrapConfig,
        store: Arc<PeerStore>,
        resolver: Arc<SeedResolver>,
        metrics: Metrics,
    ) -> Self {
        let now = Instant::now();
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
        Self {
            local_peer_id,
            cfg,
            store,
            resolver,
            metrics,
            chain,
            action: None,
            dns: None,
            dials: HashMap::new(),
            conns: HashMap::new(),
            verified: HashMap::new(),
            listen_sockets: HashSet::new(),
            events: VecDeque::new(),
            timer: Box::pin(tokio::time::sleep(Duration::ZERO)),
            last_fallbacks: 0,
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
    pub fn is_isolated(&self) -> bool {
        self.chain.is_isolated() && self.verified.is_empty()
    }

    /// True when at least two peers are connected and all came from one source (the
    /// 28.1.C §6 eclipse warning).
    pub fn single_source(&self) -> bool {
        let mut sources = self.verified.values().map(|p| p.source);
        match sources.next() {
            Some(first) => self.verified.len() >= 2 && sources.all(|s| s == first),
            None => false,
        }
    }

    /// True while fewer than `min_peers` peers are connected (28.1.C §4).
    pub fn is_partitioned(&self) -> bool {
        self.verified.len() < self.cfg.min_peers
    }

    /// The static peers in use (seeds.toml's, then those added at run time).
    pub fn static_peers(&self) -> &[StaticPeer] {
        &self.cfg.static_peers
    }

    /// The DNS seeds in use (seeds.toml's, then those added at run time).
    pub fn dns_seeds(&self) -> &[DnsSeed] {
        &self.cfg.dns_seeds
    }

    /// Adds a static peer and dials it now.
    ///
    /// # Errors
    /// [`ControlError::AlreadyPresent`] when it is configured already.
    pub fn add_static_peer(&mut self, peer: StaticPeer) -> Result<(), ControlError> {
        if self.cfg.static_peers.contains(&peer) {
            return Err(ControlError::AlreadyPresent(peer.to_string()));
        }
        self.cfg.static_peers.push(peer.clone());
        let peer_id = static_peer_id(&peer);
        self.dial(peer_id, peer.dial_addrs(), PeerSource::StaticConfig, false);
        tracing::info!(%peer, "static peer added");
        Ok(())
    }

    /// Adds a DNS seed and resolves it now.
    ///
    /// # Errors
    /// [`ControlError::AlreadyPresent`] when it is configured already.
    pub fn add_dns_seed(&mut self, seed: DnsSeed) -> Result<(), ControlError> {
        if self.cfg.dns_seeds.contains(&seed) {
            return Err(ControlError::AlreadyPresent(seed.to_string()));
        }
        self.cfg.dns_seeds.push(seed.clone());
        tracing::info!(%seed, "DNS seed added");
        Ok(())
    }

    /// Starts bootstrap again now (after `peers reset`).
    pub fn rebootstrap(&mut self) {
        self.chain.trigger_now(Instant::now());
    }

    fn outbound_verified(&self) -> usize {
        self.verified.values().filter(|p| p.outbound).count()
    }

    fn outbound_in_flight(&self) -> usize {
        self.dials.len()
            + self
                .conns
                .values()
                .filter(|c| c.outbound && !c.verified)
                .count()
    }

    fn free_outbound_slots(&self) -> usize {
        self.cfg
            .max_outbound_connections
            .saturating_sub(self.outbound_verified() + self.outbound_in_flight())
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

    /// Queues a dial and returns whether one was queued.
    fn dial(
        &mut self,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        source: PeerSource,
        in_action: bool,
    ) -> bool {
        let addrs: Vec<Multiaddr> = addrs.into_iter().filter(|a| !self.is_self(a)).collect();
        if addrs.is_empty() || peer == Some(self.local_peer_id) {
            return false;
        }
        let opts = match peer {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(addrs)
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .build(),
            None => {
                // Without a PeerId libp2p dials one address; prefer TCP, whose refusals are
                // immediate, and fall back to the first address.
                let addr = addrs
                    .iter()
                    .find(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
                    .unwrap_or(&addrs[0])
                    .clone();
                if self.is_known_socket(&addr) {
                    return false;
                }
                DialOpts::unknown_peer_id().address(addr).build()
            }
        };
        self.dials.insert(
            opts.connection_id(),
            Dial {
                source,
                peer,
                in_action,
                started: Instant::now(),
            },
        );
        self.metrics.peer_connect_total.inc();
        self.events.push_back(ToSwarm::Dial { opts });
        true
    }

    fn start_action(&mut self, action: Action, now: Instant) {
        let deadline = now + self.cfg.peer_connect_timeout * 2 + self.cfg.dns_resolve_timeout;
        self.action = Some(ActionState {
            open: 0,
            produced: 0,
            deadline,
        });
        match action {
            Action::DialCached => {
                let wanted = self.free_outbound_slots();
                let candidates = self
                    .store
                    .dial_candidates(unix_now(), &self.busy_peers(), wanted)
                    .unwrap_or_else(|e| {
                        tracing::warn!(error = %e, "cannot read peers.dat");
                        Vec::new()
                    });
                tracing::debug!(
                    candidates = candidates.len(),
                    "bootstrap: dialling peers.dat"
                );
                for rec in candidates {
                    if self.dial(Some(rec.peer_id), rec.addrs.clone(), rec.source, true) {
                        self.bump_open();
                    }
                }
            }
            Action::DialStatic(i) => {
                if let Some(peer) = self.cfg.static_peers.get(i).cloned() {
                    tracing::debug!(%peer, "bootstrap: dialling static peer");
                    let peer_id = static_peer_id(&peer);
                    if self.dial(peer_id, peer.dial_addrs(), PeerSource::StaticConfig, true) {
                        self.bump_open();
                    }
                }
            }
            Action::ResolveSeed(i) => {
                if let Some(seed) = self.cfg.dns_seeds.get(i).cloned() {
                    tracing::info!(%seed, "bootstrap: resolving DNS seed");
                    self.metrics.dns_resolve_total.inc();
                    let resolver = self.resolver.clone();
                    self.dns = Some(async move { resolver.resolve(&seed).await }.boxed());
                    self.bump_open();
                }
            }
        }
    }

    fn bump_open(&mut self) {
        if let Some(a) = self.action.as_mut() {
            a.open += 1;
        }
    }

    fn settle_one(&mut self, produced: bool) {
        if let Some(a) = self.action.as_mut() {
            a.open = a.open.saturating_sub(1);
            if produced {
                a.produced += 1;
            }
        }
    }

    fn on_dns_result(&mut self, result: Result<Resolved, ResolveError>) {
        match result {
            Ok(resolved) => {
                self.metrics.dns_resolve_success.inc();
                self.metrics
                    .dns_resolve_latency_ms
                    .observe(resolved.elapsed.as_secs_f64() * 1000.0);
                tracing::info!(ips = ?resolved.ips, "bootstrap: DNS seed resolved");
                for ip in resolved.ips {
                    let addrs = socket_dial_addrs(SocketAddr::new(ip, self.cfg.default_port));
                    if self.dial(None, addrs, PeerSource::DnsSeed, true) {
                        self.bump_open();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "bootstrap: DNS seed failed"),
        }
        self.settle_one(false);
    }

    /// Records a verified handshake on `connection` (called by the event loop).
    pub fn on_handshake_ok(&mut self, peer: PeerId, connection: ConnectionId, info: VerifiedInfo) {
        let Some(conn) = self.conns.get_mut(&connection) else {
            return;
        };
        if conn.verified {
            return;
        }
        conn.verified = true;
        let (outbound, source, in_action) = (conn.outbound, conn.source, conn.in_action);
        let newly = !self.verified.contains_key(&peer);
        if outbound {
            self.metrics.peer_connect_success.inc();
        }
        if in_action {
            self.settle_one(newly);
        }
        if let Err(e) =
            self.store
                .record_success(peer, &info.listen_addrs, info.services, source, unix_now())
        {
            tracing::warn!(error = %e, "cannot write peers.dat");
        }
        if newly {
            self.verified.insert(
                peer,
                ConnectedPeer {
                    outbound,
                    services: info.services,
                    listen_addrs: info.listen_addrs.clone(),
                    source,
                    since: Instant::now(),
                },
            );
            tracing::info!(%peer, outbound, services = %info.services, "peer verified");
            self.events
                .push_back(ToSwarm::GenerateEvent(PeerManagerEvent::PeerVerified {
                    peer,
                    listen_addrs: info.listen_addrs,
                    services: info.services,
                    outbound,
                }));
        }
    }

    /// Records a failed or refused handshake on `connection` and closes it.
    pub fn on_handshake_failed(
        &mut self,
        peer: PeerId,
        connection: ConnectionId,
        error: &HandshakeError,
    ) {
        self.metrics
            .handshake_failure
            .with_label_values(&[error.reason()])
            .inc();
        tracing::warn!(%peer, %error, "handshake failed; disconnecting");
        let mut settle = false;
        if let Some(conn) = self.conns.get_mut(&connection) {
            if !conn.verified && conn.in_action {
                conn.in_action = false;
                settle = true;
            }
            if conn.outbound {
                let _ = self.store.record_failure(&peer, unix_now());
            }
        }
        if settle {
            self.settle_one(false);
        }
        self.events.push_back(ToSwarm::CloseConnection {
            peer_id: peer,
            connection: CloseConnection::One(connection),
        });
    }

    /// A peer learned through PEX (already stored in peers.dat): dial it if an outbound slot
    /// is free. It counts as a good peer only once its handshake verifies.
    pub fn discovered(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) {
        if self.free_outbound_slots() == 0 || self.busy_peers().contains(&peer) {
            return;
        }
        if self.store.is_banned(&peer, unix_now()).unwrap_or(false) {
            return;
        }
        self.dial(Some(peer), addrs, PeerSource::PeerExchange, false);
    }

    fn expire(&mut self, now: Instant) {
        let connect_timeout = self.cfg.peer_connect_timeout;
        // Stop waiting for dials that take too long (libp2p cannot cancel them; a late
        // success is still handshaked, it just no longer holds up the fallback chain).
        let mut late = 0;
        for dial in self.dials.values_mut() {
            if dial.in_action && now.duration_since(dial.started) >= connect_timeout {
                dial.in_action = false;
                late += 1;
            }
        }
        // Close connections whose handshake did not complete in time.
        let mut stale = Vec::new();
        for (id, conn) in self.conns.iter_mut() {
            if !conn.verified && now.duration_since(conn.opened) >= connect_timeout * 2 {
                if conn.in_action {
                    conn.in_action = false;
                    late += 1;
                }
                stale.push((conn.peer, *id));
            }
        }
        for _ in 0..late {
            self.settle_one(false);
        }
        for (peer, id) in stale {
            self.conns.remove(&id);
            self.metrics
                .handshake_failure
                .with_label_values(&[HandshakeError::Timeout.reason()])
                .inc();
            self.events.push_back(ToSwarm::CloseConnection {
                peer_id: peer,
                connection: CloseConnection::One(id),
            });
        }
    }

    fn drive_chain(&mut self, now: Instant) {
        if let Some(a) = &self.action {
            if a.open == 0 || now >= a.deadline {
                let produced = a.produced;
                self.action = None;
                self.dns = None;
                self.chain
                    .on_outcome(now, produced, self.outbound_verified());
            }
        }
        if self.action.is_none() {
            if let Some(action) = self.chain.poll(
                now,
                self.outbound_verified(),
                self.cfg.max_outbound_connections,
            ) {
                self.start_action(action, now);
            }
        }
        let fallbacks = self.chain.fallbacks_triggered();
        if fallbacks > self.last_fallbacks {
            self.metrics
                .fallback_triggered
                .inc_by(fallbacks - self.last_fallbacks);
            self.last_fallbacks = fallbacks;
        }
        let isolated = self.is_isolated();
        if isolated && self.metrics.isolated.get() == 0 {
            tracing::warn!(
                "no bootstrap source reachable (peers.dat, static peers, DNS seeds): \
                 staying up and retrying with backoff"
            );
        } else if !isolated && self.metrics.isolated.get() == 1 {
            tracing::info!("bootstrap source reachable again");
        }
        self.metrics.isolated.set(i64::from(isolated));
    }

    fn next_deadline(&self, now: Instant) -> Instant {
        let mut next = now + Duration::from_secs(1);
        if let Some(t) = self.chain.next_wakeup() {
            next = next.min(t);
        }
        if let Some(a) = &self.action {
            next = next.min(a.deadline);
        }
        next.max(now + Duration::from_millis(10))
    }

    fn deny_if_banned(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.store.is_banned(peer, unix_now()).unwrap_or(false) {
            return Err(ConnectionDenied::new(BannedPeer(*peer)));
        }
        Ok(())
    }
}

fn static_peer_id(peer: &StaticPeer) -> Option<PeerId> {
    peer.dial_addrs().iter().find_map(|a| {
        a.iter().find_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        })
    })
}

/// A connection refused because the peer is banned.
#[derive(Debug, thiserror::Error)]
#[error("peer {0} is banned")]
pub struct BannedPeer(pub PeerId);

/// A connection refused because the inbound limit is reached.
#[derive(Debug, thiserror::Error)]
#[error("inbound connection limit of {0} reached")]
pub struct InboundLimit(pub usize);
