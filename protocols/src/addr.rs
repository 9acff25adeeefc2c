//! Address hygiene (issue 12 §3): which peer addresses a node may store, advertise and
//! share.
//!
//! A network whose config says it is public (`[network] allow_private_addresses = false`,
//! the default on every network but `devnet`) never stores, dials from second-hand
//! information, or shares loopback, private, shared (CGNAT), link-local, unspecified,
//! multicast or broadcast addresses: on the real internet such an address names a different
//! host for every observer, and sharing it makes nodes dial the wrong machine for ever.
//! [`AddressPolicy`] is that rule, pure (no I/O) and the same everywhere it is applied.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use multiaddr::{Multiaddr, Protocol};

use crate::NetworkId;

/// Which addresses are admitted; see the module documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AddressPolicy {
    /// True to admit private, loopback and link-local addresses (a `devnet` on one host or
    /// one LAN); only unspecified addresses are refused then.
    pub allow_private: bool,
}

impl AddressPolicy {
    /// Admits every IP-based address but unspecified ones (`devnet`'s default).
    pub const PERMISSIVE: AddressPolicy = AddressPolicy {
        allow_private: true,
    };

    /// Admits publicly routable addresses only (the default of every network but `devnet`).
    pub const PUBLIC: AddressPolicy = AddressPolicy {
        allow_private: false,
    };

    /// The policy of `allow_private_addresses = allow_private`.
    pub fn new(allow_private: bool) -> Self {
        Self { allow_private }
    }

    /// The default of `[network] allow_private_addresses` for `network`: true for `devnet`
    /// only.
    pub fn default_allow_private(network: &NetworkId) -> bool {
        network.as_str() == "devnet"
    }

    /// The default policy of `network` (see [`AddressPolicy::default_allow_private`]).
    pub fn default_for(network: &NetworkId) -> Self {
        Self::new(Self::default_allow_private(network))
    }

    /// True when `addr` may be stored, dialled from second-hand information and shared.
    ///
    /// The address is judged by its first component, i.e. its transport IP; for a relayed
    /// address (`/ip4/<relay>/…/p2p/<relay>/p2p-circuit/p2p/<peer>`) that is the relay's.
    /// DNS names (`/dns`, `/dns4`, `/dns6`, `/dnsaddr`) are admitted. Anything else (an
    /// empty address, one that starts with `/p2p`, `/p2p-circuit` or `/unix`) is refused.
    pub fn admits(&self, addr: &Multiaddr) -> bool {
        match addr.iter().next() {
            Some(Protocol::Ip4(ip)) => self.admits_ip(IpAddr::V4(ip)),
            Some(Protocol::Ip6(ip)) => self.admits_ip(IpAddr::V6(ip)),
            Some(
                Protocol::Dns(_) | Protocol::Dns4(_) | Protocol::Dns6(_) | Protocol::Dnsaddr(_),
            ) => true,
            _ => false,
        }
    }

    /// True when an address on `ip` may be stored and shared: never an unspecified one;
    /// with `allow_private = false` only a publicly routable one (see [`is_public_ip`]).
    pub fn admits_ip(&self, ip: IpAddr) -> bool {
        if ip.is_unspecified() || as_v4(ip).is_some_and(|v4| v4.is_unspecified()) {
            return false;
        }
        self.allow_private || is_public_ip(ip)
    }

    /// The addresses of `addrs` this policy admits, in order.
    pub fn filter<'a>(&self, addrs: impl IntoIterator<Item = &'a Multiaddr>) -> Vec<Multiaddr> {
        addrs
            .into_iter()
            .filter(|a| self.admits(a))
            .cloned()
            .collect()
    }
}

/// The IPv4 address an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) stands for.
fn as_v4(ip: IpAddr) -> Option<Ipv4Addr> {
    match ip {
        IpAddr::V4(v4) => Some(v4),
        IpAddr::V6(v6) => v6.to_ipv4_mapped(),
    }
}

/// True for a publicly routable address: not loopback, private (RFC 1918), shared (CGNAT,
/// 100.64.0.0/10), link-local, unspecified, "this network" (0.0.0.0/8), multicast,
/// broadcast or reserved (240.0.0.0/4); for IPv6 not loopback, unspecified, unique local
/// (fc00::/7), link-local (fe80::/10), site-local (fec0::/10) or multicast, and an
/// IPv4-mapped address is judged as its IPv4 address. The documentation ranges
/// (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) count as public: test
/// networks use them as the internet.
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    let cgnat = a == 100 && (b & 0xc0) == 64;
    !(ip.is_unspecified()
        || a == 0
        || ip.is_loopback()
        || ip.is_private()
        || cgnat
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    let unique_local = (first & 0xfe00) == 0xfc00;
    let link_local = (first & 0xffc0) == 0xfe80;
    let site_local = (first & 0xffc0) == 0xfec0;
    !(ip.is_unspecified()
        || ip.is_loopback()
        || unique_local
        || link_local
        || site_local
        || ip.is_multicast())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(s: &str) -> Multiaddr {
        s.parse().expect("multiaddr")
    }

    const RELAY: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

    #[test]
    fn a_public_network_refuses_private_loopback_and_link_local_addresses() {
        let p = AddressPolicy::PUBLIC;
        for s in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/127.9.9.9/udp/1/quic-v1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip4/172.16.0.1/tcp/1",
            "/ip4/172.31.255.255/tcp/1",
            "/ip4/192.168.1.1/tcp/1",
            "/ip4/100.64.0.1/tcp/1",
            "/ip4/100.127.255.254/tcp/1",
            "/ip4/169.254.1.1/tcp/1",
            "/ip4/0.0.0.0/tcp/1",
            "/ip4/0.1.2.3/tcp/1",
            "/ip4/224.0.0.1/udp/1",
            "/ip4/255.255.255.255/udp/1",
            "/ip4/240.0.0.1/tcp/1",
            "/ip6/::1/tcp/1",
            "/ip6/::/tcp/1",
            "/ip6/fc00::1/tcp/1",
            "/ip6/fd12:3456::1/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip6/febf::1/tcp/1",
            "/ip6/ff02::1/udp/1",
            "/ip6/::ffff:10.0.0.1/tcp/1",
            "/ip6/::ffff:127.0.0.1/tcp/1",
            "/ip6/::ffff:0.0.0.0/tcp/1",
            "/ip6/::ffff:100.64.0.1/tcp/1",
        ] {
            assert!(!p.admits(&a(s)), "{s} admitted");
        }
    }

    #[test]
    fn a_public_network_admits_public_documentation_and_dns_addresses() {
        let p = AddressPolicy::PUBLIC;
        for s in [
            "/ip4/8.8.8.8/tcp/30303",
            "/ip4/198.51.100.7/tcp/30303",
            "/ip4/203.0.113.50/udp/30303/quic-v1",
            "/ip4/192.0.2.1/tcp/1",
            "/ip4/100.63.255.255/tcp/1",
            "/ip4/100.128.0.1/tcp/1",
            "/ip4/172.32.0.1/tcp/1",
            "/ip4/172.15.0.1/tcp/1",
            "/ip6/2001:db8::1/tcp/1",
            "/ip6/2a00:1450::1/tcp/1",
            "/ip6/::ffff:198.51.100.1/tcp/1",
            "/dns/seed.example.org/tcp/30303",
            "/dns4/seed.example.org/tcp/30303",
            "/dns6/seed.example.org/tcp/30303",
            "/dnsaddr/seed.example.org",
        ] {
            assert!(p.admits(&a(s)), "{s} refused");
        }
    }

    #[test]
    fn a_relayed_address_is_judged_by_the_relay_transport_ip() {
        let p = AddressPolicy::PUBLIC;
        let public = a(&format!(
            "/ip4/198.51.100.1/tcp/4001/p2p/{RELAY}/p2p-circuit/p2p/{RELAY}"
        ));
        let private = a(&format!(
            "/ip4/10.0.0.1/tcp/4001/p2p/{RELAY}/p2p-circuit/p2p/{RELAY}"
        ));
        assert!(p.admits(&public));
        assert!(!p.admits(&private));
        assert!(AddressPolicy::PERMISSIVE.admits(&private));
        // No transport before the circuit: nothing to dial.
        assert!(!p.admits(&a(&format!("/p2p/{RELAY}/p2p-circuit"))));
        assert!(!p.admits(&a("/p2p-circuit")));
        assert!(!p.admits(&Multiaddr::empty()));
    }

    #[test]
    fn a_devnet_refuses_only_unspecified_addresses() {
        let p = AddressPolicy::PERMISSIVE;
        for s in [
            "/ip4/127.0.0.1/tcp/1",
            "/ip4/10.1.2.3/tcp/1",
            "/ip6/fe80::1/tcp/1",
            "/ip4/198.51.100.7/tcp/1",
        ] {
            assert!(p.admits(&a(s)), "{s} refused");
        }
        for s in [
            "/ip4/0.0.0.0/tcp/1",
            "/ip6/::/tcp/1",
            "/ip6/::ffff:0.0.0.0/tcp/1",
        ] {
            assert!(!p.admits(&a(s)), "{s} admitted");
        }
    }

    #[test]
    fn only_devnet_allows_private_addresses_by_default() {
        let net = |n: &str| NetworkId::new(n).expect("network id");
        assert_eq!(
            AddressPolicy::default_for(&net("devnet")),
            AddressPolicy::PERMISSIVE
        );
        for n in ["mainnet", "testnet", "lab", "devnet2"] {
            assert_eq!(AddressPolicy::default_for(&net(n)), AddressPolicy::PUBLIC);
        }
    }

    #[test]
    fn filter_keeps_the_admitted_addresses_in_order() {
        let addrs = [
            a("/ip4/10.0.0.1/tcp/1"),
            a("/ip4/198.51.100.1/tcp/1"),
            a("/ip4/127.0.0.1/tcp/1"),
            a("/ip4/203.0.113.1/tcp/1"),
        ];
        assert_eq!(
            AddressPolicy::PUBLIC.filter(&addrs),
            vec![addrs[1].clone(), addrs[3].clone()]
        );
        assert_eq!(AddressPolicy::PERMISSIVE.filter(&addrs).len(), 4);
    }
}
