//! The peer-exchange component (28.1.B §3, 28.1.C §6): `/dsdn/<network>/pex/1.0.0`.
//!
//! * **Asking**: after a verified handshake and then to one random peer every
//!   `pex_interval_secs`, the node asks for peers ([`Component::request`]); our own requests
//!   to one peer are at most one per half interval.
//! * **Answering**: only verified peers, at most one request per peer per interval; at most
//!   1000 entries of peers verified in the last 24 h, never banned ones, never the requester,
//!   and no more than the requester's serve bucket holds (Bitcoin Core's ADDR token bucket:
//!   1000, refilled at 0.1/s). A light client answers with nothing.
//! * **Learning**: received entries pass the per-peer ADDR token bucket (+1000 per request
//!   we sent, +0.1/s up to 1000); the rest are dropped and counted. Learned peers are stored
//!   with source `peer_exchange` (never overwriting verified data) and reported as
//!   [`PexEvent::Discovered`] so the peer manager may dial them. A response over 1000
//!   entries, or one that does not decode, is [`PexEvent::Misbehaved`].
//!
//! This component owns the rate limiters, both token buckets per peer and the set of
//! verified peers it serves (told by the node: [`Component::peer_verified`],
//! [`Component::peer_disconnected`]).

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsdn_peers::ratelimit::AddrTokenBucket;
use dsdn_peers::store::{LearnedPeer, PeerStore};
use dsdn_protocols::pex::{PexError, PexRateLimiter, PexRequest, PexResponse, MAX_PEX_ENTRIES};
use dsdn_protocols::{AddressPolicy, PeerSource, ServiceSet};
use libp2p::request_response::{self, Message, OutboundFailure};
use libp2p::{Multiaddr, PeerId};

use super::component::{Component, Inner, InnerEvent, Outbox, Protocol};
use super::decode_addrs;
use crate::codec::CborCodec;
use crate::metrics::Metrics;
use crate::net::peer_manager::unix_now;

/// What peer exchange tells the rest of the node.
#[derive(Debug)]
pub enum PexEvent {
    /// A peer learned from a PEX response (already stored in peers.dat): the peer manager
    /// may dial it.
    Discovered {
        /// The learned peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
    },
    /// A peer sent a response that breaks the protocol.
    Misbehaved {
        /// The sender.
        peer: PeerId,
        /// `pex_oversized` (over 1000 entries) or `pex_malformed` (undecodable or over the
        /// 2 MiB cap).
        reason: &'static str,
    },
}

/// The PEX protocol's state; see the module documentation.
pub struct PexProtocol {
    store: Arc<PeerStore>,
    metrics: Metrics,
    local: PeerId,
    /// A light client shares no addresses (it only consumes the network).
    serve: bool,
    /// Our own requests: one at verification and one per rotation, never more often than
    /// half the interval.
    out_limit: PexRateLimiter<PeerId>,
    /// Requests from a peer: at most one per interval.
    in_limit: PexRateLimiter<PeerId>,
    /// Per-peer token buckets for addresses received (Bitcoin Core's ADDR processing).
    addr_buckets: HashMap<PeerId, AddrTokenBucket>,
    /// Per-peer token buckets for addresses served.
    serve_buckets: HashMap<PeerId, AddrTokenBucket>,
    /// Peers connected with a verified handshake: the only ones served.
    verified: HashSet<PeerId>,
    /// Which received addresses are kept (the store applies it to what it serves).
    policy: AddressPolicy,
}

impl PexProtocol {
    /// The state of node `local` that stores learned peers in `store`; `interval` is
    /// `pex_interval_secs`; `serve = false` on a light client.
    pub fn new(
        store: Arc<PeerStore>,
        metrics: Metrics,
        local: PeerId,
        interval: Duration,
        serve: bool,
    ) -> Self {
        Self {
            store,
            metrics,
            local,
            serve,
            out_limit: PexRateLimiter::new(interval / 2),
            in_limit: PexRateLimiter::new(interval),
            addr_buckets: HashMap::new(),
            serve_buckets: HashMap::new(),
            verified: HashSet::new(),
            policy: AddressPolicy::PERMISSIVE,
        }
    }

    /// This state keeping only the received addresses `policy` admits (the default,
    /// [`AddressPolicy::PERMISSIVE`], drops unspecified ones only).
    pub fn with_address_policy(mut self, policy: AddressPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The answer to `req` from `peer` at `now`.
    fn answer(&mut self, peer: PeerId, req: &PexRequest, now: Instant) -> PexResponse {
        if !self.serve {
            return PexResponse::default();
        }
        if !self.verified.contains(&peer) || !self.in_limit.allow(&peer, now) {
            tracing::debug!(%peer, "PEX request refused (unverified or too frequent)");
            return PexResponse::default();
        }
        let bucket = self
            .serve_buckets
            .entry(peer)
            .or_insert_with(|| AddrTokenBucket::full(now));
        // Tokens pay for the addresses actually sent, not for the ones asked for.
        let available = bucket.tokens(now).floor() as usize;
        let limit = usize::from(req.max_entries)
            .min(MAX_PEX_ENTRIES)
            .min(available);
        let records = self
            .store
            .pex_entries(unix_now(), &peer, req.services, limit)
            .unwrap_or_default();
        bucket.take(records.len(), now);
        PexResponse {
            entries: records
                .iter()
                .filter(|r| !r.addrs.is_empty())
                .map(|r| r.to_pex_entry())
                .collect(),
        }
    }

    /// Checks, rate-limits, stores and reports the entries of a response from `from`.
    fn learn(&mut self, from: PeerId, response: PexResponse, now: Instant, out: &mut Outbox<Self>) {
        let mut entries = match response.validated() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "invalid PEX response");
                let PexError::TooManyEntries(_) = e;
                out.push_back(PexEvent::Misbehaved {
                    peer: from,
                    reason: "pex_oversized",
                });
                return;
            }
        };
        let received = entries.len();
        let allowed = self
            .addr_buckets
            .entry(from)
            .or_insert_with(|| AddrTokenBucket::new(now))
            .take(received, now);
        entries.truncate(allowed);
        self.metrics.pex_addrs_received.inc_by(received as u64);
        if allowed < received {
            self.metrics
                .pex_addrs_rate_limited
                .inc_by((received - allowed) as u64);
            tracing::debug!(peer = %from, received, allowed, "PEX addresses rate-limited");
        }
        let learned: Vec<LearnedPeer> = entries
            .iter()
            .filter_map(|e| {
                let peer_id = PeerId::from_bytes(&e.node_id).ok()?;
                let addrs = decode_addrs(&e.addrs, self.policy);
                (peer_id != self.local && !addrs.is_empty()).then_some(LearnedPeer {
                    peer_id,
                    addrs,
                    services: e.services,
                })
            })
            .collect();
        let inserted = self
            .store
            .learn_many(&learned, PeerSource::PeerExchange, unix_now())
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "cannot store PEX entries");
                0
            });
        tracing::debug!(peer = %from, inserted, "PEX response");
        out.extend(learned.into_iter().map(|p| PexEvent::Discovered {
            peer: p.peer_id,
            addrs: p.addrs,
        }));
    }
}

impl Protocol for PexProtocol {
    type Inner = request_response::Behaviour<CborCodec<PexRequest, PexResponse>>;
    type Event = PexEvent;

    fn on_event(
        &mut self,
        event: InnerEvent<Self>,
        inner: &mut Inner<Self>,
        out: &mut Outbox<Self>,
    ) {
        let now = Instant::now();
        match event {
            request_response::Event::Message {
                peer,
                message:
                    Message::Request {
                        request, channel, ..
                    },
                ..
            } => {
                self.metrics
                    .pex_requests_total
                    .with_label_values(&["received"])
                    .inc();
                let response = self.answer(peer, &request, now);
                let _ = inner.send_response(channel, response);
            }
            request_response::Event::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => self.learn(peer, response, now, out),
            request_response::Event::OutboundFailure {
                peer,
                error: OutboundFailure::Io(e),
                ..
            } if e.kind() == std::io::ErrorKind::InvalidData => {
                // Larger than the 2 MiB cap or not a PEX response at all.
                tracing::warn!(%peer, error = %e, "undecodable PEX response");
                out.push_back(PexEvent::Misbehaved {
                    peer,
                    reason: "pex_malformed",
                });
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "PEX request failed");
            }
            request_response::Event::InboundFailure { .. }
            | request_response::Event::ResponseSent { .. } => {}
        }
    }
}

impl Component<PexProtocol> {
    /// Asks `peer` for addresses, unless we asked it less than half an interval ago.
    pub fn request(&mut self, peer: PeerId) {
        let now = Instant::now();
        let state = &mut self.state;
        if !state.out_limit.allow(&peer, now) {
            return;
        }
        state
            .metrics
            .pex_requests_total
            .with_label_values(&["sent"])
            .inc();
        state
            .addr_buckets
            .entry(peer)
            .or_insert_with(|| AddrTokenBucket::new(now))
            .on_request_sent();
        let req = PexRequest {
            max_entries: MAX_PEX_ENTRIES as u16,
            services: ServiceSet::EMPTY,
        };
        self.inner.send_request(&peer, req);
    }

    /// `peer` passed the handshake: it may be served.
    pub fn peer_verified(&mut self, peer: PeerId) {
        self.state.verified.insert(peer);
    }

    /// The last connection to `peer` closed: its limits and buckets are forgotten.
    pub fn peer_disconnected(&mut self, peer: &PeerId) {
        let state = &mut self.state;
        state.verified.remove(peer);
        state.out_limit.forget(peer);
        state.in_limit.forget(peer);
        state.addr_buckets.remove(peer);
        state.serve_buckets.remove(peer);
    }
}

#[cfg(test)]
mod tests {
    use dsdn_protocols::pex::PexEntry;
    use dsdn_protocols::NetworkId;
    use libp2p::swarm::ConnectionId;

    use super::*;
    use crate::net::behaviour::pex_behaviour;

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Arc<PeerStore>,
        pex: Component<PexProtocol>,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let net = NetworkId::new("devnet").expect("network id");
        let (store, _) = PeerStore::open(&dir.path().join("peers.dat"), &net).expect("store");
        let store = Arc::new(store);
        let inner = pex_behaviour(&net, Duration::from_secs(5)).expect("protocol name");
        let state = PexProtocol::new(
            store.clone(),
            Metrics::new().expect("metrics"),
            PeerId::random(),
            Duration::from_secs(900),
            true,
        );
        Fixture {
            _dir: dir,
            store,
            pex: Component::new(inner, state),
        }
    }

    fn entry(n: u8) -> PexEntry {
        let addr: Multiaddr = format!("/ip4/127.0.9.{n}/tcp/4001").parse().expect("addr");
        PexEntry {
            node_id: PeerId::random().to_bytes(),
            addrs: vec![serde_bytes::ByteBuf::from(addr.to_vec())],
            services: ServiceSet::EMPTY,
            last_success_unix: 0,
        }
    }

    fn respond(f: &mut Fixture, from: PeerId, entries: Vec<PexEntry>) {
        let c = &mut f.pex;
        let request_id = c.inner.send_request(
            &from,
            PexRequest {
                max_entries: 1000,
                services: ServiceSet::EMPTY,
            },
        );
        let event = request_response::Event::Message {
            peer: from,
            connection_id: ConnectionId::new_unchecked(1),
            message: Message::Response {
                request_id,
                response: PexResponse { entries },
            },
        };
        c.state.on_event(event, &mut c.inner, &mut c.out);
    }

    #[test]
    fn learned_entries_are_stored_and_reported_within_the_token_bucket() {
        let mut f = fixture();
        let from = PeerId::random();
        // We asked once: the bucket holds 1 + 1000 tokens.
        f.pex.request(from);
        respond(&mut f, from, (1..=5).map(entry).collect());
        let discovered = f
            .pex
            .out
            .drain(..)
            .filter(|e| matches!(e, PexEvent::Discovered { .. }))
            .count();
        assert_eq!(discovered, 5);
        assert_eq!(f.store.len(), 5);
        // Unasked, the bucket is nearly empty: one more entry at most is taken.
        let stranger = PeerId::random();
        respond(&mut f, stranger, (10..=20).map(entry).collect());
        assert!(f.pex.out.len() <= 1, "{:?}", f.pex.out);
    }

    #[test]
    fn a_public_network_learns_no_private_address_from_pex() {
        let mut f = fixture();
        f.pex.state.policy = AddressPolicy::PUBLIC;
        let from = PeerId::random();
        f.pex.request(from);
        let public: Multiaddr = "/ip4/198.51.100.4/tcp/4001".parse().expect("addr");
        let mut mixed = entry(1);
        mixed
            .addrs
            .push(serde_bytes::ByteBuf::from(public.to_vec()));
        // entry(2) and entry(3) hold loopback addresses only.
        respond(&mut f, from, vec![mixed, entry(2), entry(3)]);
        let discovered: Vec<Vec<Multiaddr>> = f
            .pex
            .out
            .drain(..)
            .filter_map(|e| match e {
                PexEvent::Discovered { addrs, .. } => Some(addrs),
                PexEvent::Misbehaved { .. } => None,
            })
            .collect();
        assert_eq!(discovered, [vec![public]]);
        assert_eq!(f.store.len(), 1);
    }

    #[test]
    fn an_oversized_response_is_misbehaviour() {
        let mut f = fixture();
        let from = PeerId::random();
        f.pex.request(from);
        respond(
            &mut f,
            from,
            (0..=MAX_PEX_ENTRIES).map(|i| entry(i as u8)).collect(),
        );
        assert!(matches!(
            f.pex.out.pop_front(),
            Some(PexEvent::Misbehaved {
                reason: "pex_oversized",
                ..
            })
        ));
        assert_eq!(f.store.len(), 0);
    }

    #[test]
    fn a_disconnected_peer_is_no_longer_served() {
        let mut f = fixture();
        let peer = PeerId::random();
        f.pex.peer_verified(peer);
        assert!(f.pex.state.verified.contains(&peer));
        f.pex.peer_disconnected(&peer);
        assert!(!f.pex.state.verified.contains(&peer));
        let answer = f.pex.state.answer(
            peer,
            &PexRequest {
                max_entries: 10,
                services: ServiceSet::EMPTY,
            },
            Instant::now(),
        );
        assert!(answer.entries.is_empty());
    }
}
