//! Peer exchange (28.1.B §3, 28.1.C §6): requests, answers served from a per-peer token
//! bucket, and responses checked, rate-limited and learned.

use std::time::Instant;

use dsdn_peers::ratelimit::AddrTokenBucket;
use dsdn_peers::store::LearnedPeer;
use dsdn_protocols::pex::{PexError, PexRequest, PexResponse, MAX_PEX_ENTRIES};
use dsdn_protocols::{PeerSource, ServiceSet};
use libp2p::request_response::{self, Message, OutboundFailure};
use libp2p::PeerId;

use super::{decode_addrs, EventLoop};
use crate::peer_manager::unix_now;

impl EventLoop {
    pub(super) fn request_pex(&mut self, peer: PeerId) {
        if !self.pex_out.allow(&peer, Instant::now()) {
            return;
        }
        self.metrics
            .pex_requests_total
            .with_label_values(&["sent"])
            .inc();
        self.addr_buckets
            .entry(peer)
            .or_insert_with(|| AddrTokenBucket::new(Instant::now()))
            .on_request_sent();
        let req = PexRequest {
            max_entries: MAX_PEX_ENTRIES as u16,
            services: ServiceSet::EMPTY,
        };
        self.swarm.behaviour_mut().pex.send_request(&peer, req);
    }

    fn pex_answer(&mut self, peer: PeerId, req: &PexRequest) -> PexResponse {
        if self.cfg.light {
            // A light client shares no addresses (it only consumes the network).
            return PexResponse::default();
        }
        if !self.swarm.behaviour().peer_manager.is_verified(&peer)
            || !self.pex_in.allow(&peer, Instant::now())
        {
            tracing::debug!(%peer, "PEX request refused (unverified or too frequent)");
            return PexResponse::default();
        }
        let now = Instant::now();
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

    pub(super) fn on_pex(&mut self, event: request_response::Event<PexRequest, PexResponse>) {
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
                let resp = self.pex_answer(peer, &request);
                let _ = self.swarm.behaviour_mut().pex.send_response(channel, resp);
            }
            request_response::Event::Message {
                peer,
                message: Message::Response { response, .. },
                ..
            } => self.on_pex_response(peer, response),
            request_response::Event::OutboundFailure {
                peer,
                error: OutboundFailure::Io(e),
                ..
            } if e.kind() == std::io::ErrorKind::InvalidData => {
                // Larger than the 2 MiB cap or not a PEX response at all.
                tracing::warn!(%peer, error = %e, "undecodable PEX response");
                self.swarm
                    .behaviour_mut()
                    .peer_manager
                    .penalize(peer, "pex_malformed");
            }
            request_response::Event::OutboundFailure { peer, error, .. } => {
                tracing::debug!(%peer, %error, "PEX request failed");
            }
            _ => {}
        }
    }

    fn on_pex_response(&mut self, from: PeerId, response: PexResponse) {
        let mut entries = match response.validated() {
            Ok(entries) => entries,
            Err(e) => {
                tracing::warn!(peer = %from, error = %e, "invalid PEX response");
                let PexError::TooManyEntries(_) = e;
                self.swarm
                    .behaviour_mut()
                    .peer_manager
                    .penalize(from, "pex_oversized");
                return;
            }
        };
        let now = Instant::now();
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
        let local = *self.swarm.local_peer_id();
        let learned: Vec<LearnedPeer> = entries
            .iter()
            .filter_map(|e| {
                let peer_id = PeerId::from_bytes(&e.node_id).ok()?;
                let addrs = decode_addrs(&e.addrs);
                (peer_id != local && !addrs.is_empty()).then_some(LearnedPeer {
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
                tracing::warn!(error = %e, "cannot write peers.dat");
                0
            });
        for p in learned {
            self.swarm
                .behaviour_mut()
                .peer_manager
                .discovered(p.peer_id, p.addrs);
        }
        tracing::debug!(peer = %from, inserted, "PEX response");
    }
}
