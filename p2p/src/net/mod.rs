//! The network layer (issue 11): the composed [`behaviour::Behaviour`], the
//! [`peer_manager`] and the protocol components. Each protocol is one
//! [`component::Component`] that owns its state and its outstanding requests and emits one
//! typed event; the event loop only routes those events. The node's services (`da`,
//! `committee`, `workload`) sit above this layer and see it only through their actions and
//! the read-only `PeerView`.
//!
//! * [`handshake`]: `/dsdn/handshake/1.0.0`, the network, version and identity check of
//!   every connection;
//! * [`pex`]: `/dsdn/<network>/pex/1.0.0`, peer exchange;
//! * [`discovery`]: `/dsdn/<network>/kad/1.0.0`, Kademlia and the service-type provider
//!   records and lookups of role discovery;
//! * [`rpc`]: the generic state of the protocols answered by a node service rather than by
//!   the protocol itself: DA backfill and registration (the DA log), the committee
//!   protocol and the workload protocol.

use dsdn_protocols::handshake::{MAX_ADDR_BYTES, MAX_LISTEN_ADDRS};
use libp2p::multiaddr::Protocol as AddrProtocol;
use libp2p::Multiaddr;

pub mod behaviour;
pub mod component;
pub mod discovery;
pub mod handshake;
pub mod nat;
pub mod peer_manager;
pub mod pex;
pub mod rpc;
mod view;

pub(crate) use view::PeerView;

/// Decodes and filters advertised addresses: at most [`MAX_LISTEN_ADDRS`], well-formed,
/// and [`usable_addr`].
pub(crate) fn decode_addrs(raw: &[serde_bytes::ByteBuf]) -> Vec<Multiaddr> {
    raw.iter()
        .take(MAX_LISTEN_ADDRS)
        .filter_map(|b| Multiaddr::try_from(b.to_vec()).ok())
        .filter(usable_addr)
        .collect()
}

/// An advertised address worth keeping: IP-based, not unspecified, and not IPv6
/// link-local (`fe80::/10`: a multiaddr carries no zone, so nobody else can dial it; a
/// dual-stack listen on `[::]` reports one per interface).
pub(crate) fn usable_addr(addr: &Multiaddr) -> bool {
    addr.iter().next().is_some_and(|p| match p {
        AddrProtocol::Ip4(ip) => !ip.is_unspecified(),
        AddrProtocol::Ip6(ip) => !ip.is_unspecified() && (ip.segments()[0] & 0xffc0) != 0xfe80,
        _ => false,
    })
}

/// Encodes at most `max` addresses of at most [`MAX_ADDR_BYTES`] each.
pub(crate) fn encode_addrs(addrs: &[Multiaddr], max: usize) -> Vec<serde_bytes::ByteBuf> {
    addrs
        .iter()
        .map(|a| a.to_vec())
        .filter(|b| b.len() <= MAX_ADDR_BYTES)
        .take(max)
        .map(serde_bytes::ByteBuf::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::usable_addr;

    #[test]
    fn usable_addresses() {
        for (a, ok) in [
            ("/ip4/198.51.100.7/tcp/1", true),
            ("/ip6/2001:db8::7/udp/1/quic-v1", true),
            ("/ip6/::1/tcp/1", true),
            ("/ip4/0.0.0.0/tcp/1", false),
            ("/ip6/::/tcp/1", false),
            ("/ip6/fe80::1/tcp/1", false),
            ("/ip6/febf::1/tcp/1", false),
            ("/ip6/fec0::1/tcp/1", true),
            ("/dns4/seed.example/tcp/1", false),
        ] {
            assert_eq!(usable_addr(&a.parse().unwrap()), ok, "{a}");
        }
    }
}
