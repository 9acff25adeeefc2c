//! Dialling: the fallback chain's actions (28.1.A §4), DNS answers, and the bookkeeping of
//! dials and unverified connections.

use std::net::SocketAddr;
use std::time::Instant;

use dsdn_bootstrap::config::{socket_dial_addrs, DnsSeed, StaticPeer};
use dsdn_bootstrap::fallback::Action;
use dsdn_bootstrap::resolver::{ResolveError, Resolved};
use dsdn_peers::select::OutboundView;
use dsdn_peers::{NetGroup, PeerRecord};
use dsdn_protocols::handshake::HandshakeError;
use dsdn_protocols::{PeerSource, ServiceType};
use futures::FutureExt;
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::{DialOpts, PeerCondition};
use libp2p::swarm::{CloseConnection, ConnectionDenied, ConnectionId, ToSwarm};
use libp2p::{Multiaddr, PeerId};

use super::{unix_now, ActionState, BannedPeer, Dial, DialKind, DnsPurpose, PeerManager};

fn is_tcp(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::Tcp(_)))
}

/// The addresses a known peer is dialled on: its TCP addresses when it advertised any,
/// otherwise all of them (QUIC).
///
/// Dialling a peer's QUIC and TCP addresses at once (libp2p dials up to 8 concurrently)
/// delayed the connection by about 50 ms on loopback: `dsdn-bench` warm start 60 ms with
/// both, 13.5 ms with TCP alone, ten-node convergence 0.40–0.45 s → 0.29 s. TCP refusals are
/// immediate, and a peer with no TCP address is still reached over QUIC.
pub(super) fn preferred_dial_addrs(addrs: Vec<Multiaddr>) -> Vec<Multiaddr> {
    if addrs.iter().any(is_tcp) {
        addrs.into_iter().filter(is_tcp).collect()
    } else {
        addrs
    }
}

/// A dial of `addr` without a PeerId, from a new local port.
fn address_dial(addr: Multiaddr) -> DialOpts {
    DialOpts::unknown_peer_id()
        .address(addr)
        .allocate_new_port()
        .build()
}

/// Every dial of the peer manager takes a new local port (`PortUse::New`): a TCP dial that
/// reuses the listen port binds `0.0.0.0:<port>`, and to a peer on another address of this
/// host listening on the same port the kernel then picks the destination's own address as
/// the source, so the socket connects to itself and noise fails (found in a network
/// namespace with two addresses; loopback's `src 127.0.0.1` hides it). Reusing the port only
/// matters for hole punching, which dials for itself.
impl PeerManager {
    /// Queues a dial and returns whether one was queued.
    pub(super) fn dial(
        &mut self,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        source: PeerSource,
        kind: DialKind,
        in_action: bool,
    ) -> bool {
        self.dial_id(peer, addrs, source, kind, in_action).is_some()
    }

    /// As [`PeerManager::dial`], returning the dial's connection id when it was started.
    fn dial_id(
        &mut self,
        peer: Option<PeerId>,
        addrs: Vec<Multiaddr>,
        source: PeerSource,
        kind: DialKind,
        in_action: bool,
    ) -> Option<ConnectionId> {
        let addrs: Vec<Multiaddr> = addrs.into_iter().filter(|a| !self.is_self(a)).collect();
        if addrs.is_empty() || peer == Some(self.local_peer_id) {
            return None;
        }
        let netgroup = addrs.first().and_then(NetGroup::of_addr);
        let mut fallback = None;
        let opts = match peer {
            Some(peer) => DialOpts::peer_id(peer)
                .addresses(preferred_dial_addrs(addrs))
                .condition(PeerCondition::DisconnectedAndNotDialing)
                .allocate_new_port()
                .build(),
            None => {
                // Without a PeerId libp2p dials one address: TCP first, whose refusals are
                // immediate, then (`fallback`) the QUIC address when the TCP dial fails.
                let addr = addrs
                    .iter()
                    .find(|a| is_tcp(a))
                    .unwrap_or(&addrs[0])
                    .clone();
                if self.is_known_socket(&addr) {
                    return None;
                }
                fallback = addrs.iter().find(|a| !is_tcp(a)).cloned();
                address_dial(addr)
            }
        };
        let id = opts.connection_id();
        self.dials.insert(
            id,
            Dial {
                source,
                peer,
                kind,
                in_action,
                netgroup,
                started: Instant::now(),
                fallback,
            },
        );
        self.metrics.peer_connect_total.inc();
        if kind == DialKind::Feeler {
            self.metrics.feelers.inc();
        }
        self.events.push_back(ToSwarm::Dial { opts });
        Some(id)
    }

    /// Dials a provider found in Kademlia (28.1.C §2) by PeerId alone: the addresses come
    /// from Kademlia (routing table and the running lookup). It is an outbound peer of source
    /// `kademlia` and is dialled even when the outbound slots are full, since it fills a
    /// required role. Returns false for ourselves, a peer connected or being dialled, or a
    /// banned one.
    pub(crate) fn dial_provider(&mut self, peer: PeerId) -> bool {
        if self.busy_peers().contains(&peer)
            || self.store.is_banned(&peer, unix_now()).unwrap_or(false)
        {
            return false;
        }
        let opts = DialOpts::peer_id(peer)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .allocate_new_port()
            .build();
        self.dials.insert(
            opts.connection_id(),
            Dial {
                source: PeerSource::Kademlia,
                peer: Some(peer),
                kind: DialKind::Outbound,
                in_action: false,
                netgroup: None,
                started: Instant::now(),
                fallback: None,
            },
        );
        self.metrics.peer_connect_total.inc();
        self.events.push_back(ToSwarm::Dial { opts });
        true
    }

    /// An address-only TCP dial failed: `quic`, the same peer's QUIC address, is dialled
    /// in its place (same source, kind and fallback-chain action, no further fallback).
    /// Dials `quic` after the TCP dial `failed` of the same peer failed.
    pub(super) fn dial_fallback(&mut self, failed: ConnectionId, dial: Dial, quic: Multiaddr) {
        tracing::debug!(addr = %quic, "TCP dial failed: trying QUIC");
        let opts = address_dial(quic);
        self.added_peers.dial_replaced(failed, opts.connection_id());
        self.dials.insert(opts.connection_id(), dial);
        self.events.push_back(ToSwarm::Dial { opts });
    }

    /// Dials up to `max` of `providers` (found in Kademlia) as in `dial_provider`:
    /// the ones dialled, in order.
    pub fn dial_providers(&mut self, providers: &[PeerId], max: usize) -> Vec<PeerId> {
        let mut dialled = Vec::new();
        for peer in providers {
            if dialled.len() == max {
                break;
            }
            if self.dial_provider(*peer) {
                dialled.push(*peer);
            }
        }
        dialled
    }

    /// Role-aware top-up (28.1.C §1): dials up to `count` of the best cached peers that
    /// advertise `service` and are not connected, even when the outbound slots are full, so a
    /// required role reaches its minimum before the rest is filled by score and diversity.
    /// Returns how many were dialled.
    pub(crate) fn dial_role(&mut self, service: ServiceType, count: usize) -> usize {
        let candidates = self
            .store
            .dial_candidates(unix_now(), &self.busy_peers(), usize::MAX)
            .unwrap_or_default();
        let mut dialled = 0;
        for rec in candidates
            .iter()
            .filter(|r| r.services.contains(service) && !r.is_suspicious())
        {
            if dialled == count {
                break;
            }
            if self.dial_record(rec, DialKind::Outbound, false) {
                tracing::info!(peer = %rec.peer_id, %service, "dialling a cached peer for a required role");
                dialled += 1;
            }
        }
        dialled
    }

    /// Dials a cached peer (anchor or peers.dat entry) as a full outbound peer.
    pub(super) fn dial_record(
        &mut self,
        rec: &PeerRecord,
        kind: DialKind,
        in_action: bool,
    ) -> bool {
        self.dial(
            Some(rec.peer_id),
            rec.addrs.clone(),
            rec.source,
            kind,
            in_action,
        )
    }

    /// Dials a static peer as a full outbound peer.
    /// Dials a static peer as a full outbound peer (an added one's dial is tracked for
    /// `peers added`).
    pub(super) fn dial_static(&mut self, peer: &StaticPeer, in_action: bool) -> bool {
        tracing::debug!(%peer, "dialling static peer");
        let id = self.dial_id(
            static_peer_id(peer),
            peer.dial_addrs(),
            PeerSource::StaticConfig,
            DialKind::Outbound,
            in_action,
        );
        if let Some(id) = id {
            self.added_peers.dial_started(peer, id);
        }
        id.is_some()
    }

    /// Starts resolving `seed` for `purpose`.
    pub(super) fn resolve(&mut self, seed: DnsSeed, purpose: DnsPurpose) {
        tracing::info!(%seed, ?purpose, "resolving DNS seed");
        self.metrics.dns_resolve_total.inc();
        let resolver = self.resolver.clone();
        self.dns
            .push(async move { (purpose, resolver.resolve(&seed).await) }.boxed());
    }

    /// The best cached peers for `slots` outbound slots: not connected or being dialled, at
    /// most one per netgroup (none in a netgroup we already have an outbound peer in), and
    /// from a second source when every outbound peer came from one (28.1.C §6).
    pub(super) fn outbound_candidates(&self, slots: usize) -> Vec<PeerRecord> {
        if slots == 0 {
            return Vec::new();
        }
        let mut sources: Vec<PeerSource> = self
            .verified
            .values()
            .filter(|p| p.outbound && !p.feeler)
            .map(|p| p.source)
            .collect();
        sources.extend(
            self.dials
                .values()
                .filter(|d| d.kind == DialKind::Outbound)
                .map(|d| d.source),
        );
        let view = OutboundView {
            netgroups: self.outbound_netgroups(),
            sources,
        };
        self.store
            .outbound_candidates(unix_now(), &self.busy_peers(), &view, slots)
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot read peers.dat");
                Vec::new()
            })
    }

    pub(super) fn start_action(&mut self, action: Action, now: Instant) {
        let deadline = now + self.cfg.peer_connect_timeout * 2 + self.cfg.dns_resolve_timeout;
        self.action_ids += 1;
        self.action = Some(ActionState {
            id: self.action_ids,
            open: 0,
            produced: 0,
            deadline,
        });
        match action {
            Action::DialCached => {
                let anchors = std::mem::take(&mut self.anchors);
                for rec in &anchors {
                    if self.dial_record(rec, DialKind::Outbound, true) {
                        self.bump_open();
                    }
                }
                let candidates = self.outbound_candidates(self.free_outbound_slots());
                tracing::debug!(
                    anchors = anchors.len(),
                    candidates = candidates.len(),
                    "bootstrap: dialling peers.dat"
                );
                for rec in candidates {
                    if self.dial_record(&rec, DialKind::Outbound, true) {
                        self.bump_open();
                    }
                }
            }
            Action::DialStatic(i) => {
                if let Some(peer) = self.cfg.static_peers.get(i).cloned() {
                    if self.dial_static(&peer, true) {
                        self.bump_open();
                    }
                }
            }
            Action::ResolveSeed(i) => {
                if let Some(seed) = self.cfg.dns_seeds.get(i).cloned() {
                    self.resolve(seed, DnsPurpose::Chain(self.action_ids));
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

    pub(super) fn settle_one(&mut self, produced: bool) {
        if let Some(a) = self.action.as_mut() {
            a.open = a.open.saturating_sub(1);
            if produced {
                a.produced += 1;
            }
        }
    }

    pub(super) fn on_dns_result(
        &mut self,
        purpose: DnsPurpose,
        result: Result<Resolved, ResolveError>,
    ) {
        let chain_action = match purpose {
            DnsPurpose::Chain(id) => self.action.as_ref().is_some_and(|a| a.id == id),
            _ => false,
        };
        match result {
            Ok(resolved) => {
                self.metrics.dns_resolve_success.inc();
                self.metrics
                    .dns_resolve_latency_ms
                    .observe(resolved.elapsed.as_secs_f64() * 1000.0);
                tracing::info!(ips = ?resolved.ips, ?purpose, "DNS seed resolved");
                for ip in resolved.ips {
                    let addrs = socket_dial_addrs(SocketAddr::new(ip, self.cfg.default_port));
                    let kind = match purpose {
                        DnsPurpose::Refresh => super::DialKind::Feeler,
                        _ => super::DialKind::Outbound,
                    };
                    if kind == super::DialKind::Outbound
                        && !chain_action
                        && self.free_outbound_slots() == 0
                    {
                        continue;
                    }
                    if self.dial(None, addrs, PeerSource::DnsSeed, kind, chain_action)
                        && chain_action
                    {
                        self.bump_open();
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, ?purpose, "DNS seed failed"),
        }
        if chain_action {
            self.settle_one(false);
        }
    }

    pub(super) fn expire(&mut self, now: Instant) {
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

    pub(super) fn drive_chain(&mut self, now: Instant) {
        self.chain.note_peers(self.verified.len());
        if let Some(a) = &self.action {
            if a.open == 0 || now >= a.deadline {
                let produced = a.produced;
                self.action = None;
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
            tracing::error!(
                "isolated: no bootstrap source reachable (peers.dat, static peers, DNS seeds); \
                 staying up and retrying with backoff"
            );
        } else if !isolated && self.metrics.isolated.get() == 1 {
            tracing::info!("bootstrap source reachable again");
        }
        self.metrics.isolated.set(i64::from(isolated));
    }

    pub(super) fn next_deadline(&self, now: Instant) -> Instant {
        let mut next = now + std::time::Duration::from_secs(1);
        for t in [
            self.chain.next_wakeup(),
            self.recovery.next_wakeup(),
            Some(self.rotation.next_wakeup()),
            self.action.as_ref().map(|a| a.deadline),
            self.sweep_deadline,
            self.address_tests.next_wakeup(),
        ]
        .into_iter()
        .flatten()
        {
            next = next.min(t);
        }
        next.max(now + std::time::Duration::from_millis(10))
    }

    pub(super) fn deny_if_banned(&self, peer: &PeerId) -> Result<(), ConnectionDenied> {
        if self.store.is_banned(peer, unix_now()).unwrap_or(false) {
            self.metrics
                .connections_denied
                .with_label_values(&["banned"])
                .inc();
            return Err(ConnectionDenied::new(BannedPeer(*peer)));
        }
        Ok(())
    }
}

/// The PeerId of a static peer given as a multiaddr ending in `/p2p/<id>`, if any.
pub(super) fn static_peer_id(peer: &StaticPeer) -> Option<PeerId> {
    peer.dial_addrs().iter().find_map(|a| {
        a.iter().find_map(|p| match p {
            Protocol::P2p(id) => Some(id),
            _ => None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    #[test]
    fn a_known_peer_is_dialled_over_tcp_when_it_has_a_tcp_address() {
        let quic = addr("/ip4/198.51.100.1/udp/4001/quic-v1");
        let tcp = addr("/ip4/198.51.100.1/tcp/4001");
        let both = preferred_dial_addrs(vec![quic.clone(), tcp.clone()]);
        assert_eq!(both, std::slice::from_ref(&tcp));
        assert_eq!(preferred_dial_addrs(vec![quic.clone()]), [quic]);
        assert_eq!(preferred_dial_addrs(vec![tcp.clone()]), [tcp]);
    }
}
