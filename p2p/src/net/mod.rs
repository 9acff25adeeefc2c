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
use dsdn_protocols::AddressPolicy;
use libp2p::Multiaddr;

pub mod behaviour;
pub mod component;
pub mod connections;
pub mod discovery;
pub mod handshake;
pub mod identity;
pub mod nat;
pub mod peer_manager;
pub mod pex;
pub mod rpc;
pub mod traffic;
mod view;

pub(crate) use view::PeerView;

/// Decodes and filters advertised addresses (a handshake's or a PEX entry's): at most
/// [`MAX_LISTEN_ADDRS`], well-formed, and [`usable_addr`] under `policy`.
pub(crate) fn decode_addrs(raw: &[serde_bytes::ByteBuf], policy: AddressPolicy) -> Vec<Multiaddr> {
    raw.iter()
        .take(MAX_LISTEN_ADDRS)
        .filter_map(|b| Multiaddr::try_from(b.to_vec()).ok())
        .filter(|a| usable_addr(a, policy))
        .collect()
}

/// An advertised address worth keeping: IP-based (DNS names are not taken from peers: a
/// peer announces what it listens on) and admitted by the network's address `policy`
/// (never unspecified; on a public network never loopback, private or link-local).
/// IPv6 link-local (`fe80::/10`) is never kept: a multiaddr carries no zone, so nobody else
/// can dial it (a dual-stack listen on `[::]` reports one per interface).
pub(crate) fn usable_addr(addr: &Multiaddr, policy: AddressPolicy) -> bool {
    use libp2p::multiaddr::Protocol;
    matches!(
        addr.iter().next(),
        Some(Protocol::Ip4(_) | Protocol::Ip6(_))
    ) && !is_ipv6_link_local(addr)
        && policy.admits(addr)
}

/// Whether `addr` starts with an IPv6 link-local address (`fe80::/10`).
fn is_ipv6_link_local(addr: &Multiaddr) -> bool {
    matches!(addr.iter().next(), Some(libp2p::multiaddr::Protocol::Ip6(ip)) if (ip.segments()[0] & 0xffc0) == 0xfe80)
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
            assert_eq!(
                usable_addr(
                    &a.parse().unwrap(),
                    dsdn_protocols::AddressPolicy::PERMISSIVE
                ),
                ok,
                "{a}"
            );
        }
    }
}
