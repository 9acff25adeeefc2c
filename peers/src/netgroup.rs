//! Netgroups: which addresses count as "the same network" for outbound diversity
//! (Bitcoin Core's `CNetAddr::GetGroup`, 28.1.C §6 eclipse protection).
//!
//! | address                                   | netgroup            | example           |
//! |-------------------------------------------|---------------------|-------------------|
//! | public IPv4                               | its /16             | `ipv4:203.0`      |
//! | public IPv6                               | its /32             | `ipv6:2001:db8`   |
//! | IPv4-mapped / -compatible IPv6            | as the IPv4 address | `ipv4:203.0`      |
//! | 6to4 IPv6 (`2002:V4V4:V4V4::/48`)          | as the IPv4 address | `ipv4:203.0`      |
//! | loopback, private, link-local, CGNAT, ULA | the whole address   | `local:127.0.0.2` |
//! | `/dns`, `/dns4`, `/dns6` name             | the lowercase name  | `dns:seed.example`|
//!
//! Local addresses are grouped per address, not lumped together as Bitcoin Core does, so
//! that a devnet on `127.0.0.2`, `127.0.0.3`, … or a LAN still gets several outbound peers;
//! such addresses never appear on a public network, where they are unroutable anyway.
//!
//! Both families share one space of groups (28.1.C §6 across IPv4 and IPv6): an IPv4 /16
//! and an IPv6 /32 are each one group, and an IPv6 address that embeds an IPv4 one (mapped,
//! compatible, 6to4) is in the IPv4 address's group, so one IPv4 /16 cannot take a second
//! outbound slot through its IPv6 forms. A dual-stack peer is grouped by its first
//! address ([`crate::record::PeerRecord::netgroup`]).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use multiaddr::{Multiaddr, Protocol};

/// The netgroup of an address; see the [module documentation](self) for the rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum NetGroup {
    /// A public IPv4 /16 (its first two octets).
    Ipv4([u8; 2]),
    /// A public IPv6 /32 (its first two segments).
    Ipv6([u16; 2]),
    /// A loopback, private, link-local, shared (CGNAT) or unique-local address: one group
    /// per address.
    Local(IpAddr),
    /// A DNS name (lowercase), for `/dns*` multiaddrs.
    Dns(String),
}

impl NetGroup {
    /// The netgroup of an IP address.
    pub fn of_ip(ip: IpAddr) -> NetGroup {
        match ip {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) if is_local_v6(&v6) => NetGroup::Local(IpAddr::V6(v6)),
            IpAddr::V6(v6) => match embedded_v4(&v6) {
                Some(v4) => Self::of_v4(v4),
                None => {
                    let s = v6.segments();
                    NetGroup::Ipv6([s[0], s[1]])
                }
            },
        }
    }

    fn of_v4(v4: Ipv4Addr) -> NetGroup {
        if is_local_v4(&v4) {
            NetGroup::Local(IpAddr::V4(v4))
        } else {
            let o = v4.octets();
            NetGroup::Ipv4([o[0], o[1]])
        }
    }

    /// The netgroup of a multiaddr: that of its first `/ip4`, `/ip6` or `/dns*` component;
    /// `None` for other addresses (e.g. `/memory`).
    pub fn of_addr(addr: &Multiaddr) -> Option<NetGroup> {
        addr.iter().find_map(|p| match p {
            Protocol::Ip4(ip) => Some(Self::of_ip(IpAddr::V4(ip))),
            Protocol::Ip6(ip) => Some(Self::of_ip(IpAddr::V6(ip))),
            Protocol::Dns(n) | Protocol::Dns4(n) | Protocol::Dns6(n) | Protocol::Dnsaddr(n) => {
                Some(NetGroup::Dns(n.to_ascii_lowercase()))
            }
            _ => None,
        })
    }

    /// True for [`NetGroup::Local`].
    pub fn is_local(&self) -> bool {
        matches!(self, NetGroup::Local(_))
    }
}

/// [`NetGroup::of_addr`] as a free function (handy in iterator chains).
pub fn netgroup_of(addr: &Multiaddr) -> Option<NetGroup> {
    NetGroup::of_addr(addr)
}

fn is_local_v4(ip: &Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        // 100.64.0.0/10, shared address space (carrier-grade NAT).
        || (o[0] == 100 && (o[1] & 0xc0) == 64)
}

/// The IPv4 address an IPv6 one carries: IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible
/// (`::a.b.c.d`, deprecated) or 6to4 (`2002:aabb:ccdd::/48`).
fn embedded_v4(ip: &Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    if s[0] == 0x2002 {
        let [a, b] = s[1].to_be_bytes();
        let [c, d] = s[2].to_be_bytes();
        return Some(Ipv4Addr::new(a, b, c, d));
    }
    // `to_ipv4` is mapped or compatible; `::` and `::1` are local and never get here.
    ip.to_ipv4()
}

fn is_local_v6(ip: &Ipv6Addr) -> bool {
    let s0 = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        // fc00::/7 unique local, fe80::/10 link-local.
        || (s0 & 0xfe00) == 0xfc00
        || (s0 & 0xffc0) == 0xfe80
}

impl fmt::Display for NetGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NetGroup::Ipv4([a, b]) => write!(f, "ipv4:{a}.{b}"),
            NetGroup::Ipv6([a, b]) => write!(f, "ipv6:{a:x}:{b:x}"),
            NetGroup::Local(ip) => write!(f, "local:{ip}"),
            NetGroup::Dns(name) => write!(f, "dns:{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(s: &str) -> String {
        NetGroup::of_addr(&s.parse().unwrap()).unwrap().to_string()
    }

    #[test]
    fn groups() {
        assert_eq!(g("/ip4/203.0.113.50/tcp/30303"), "ipv4:203.0");
        assert_eq!(g("/ip4/203.0.200.1/udp/1/quic-v1"), "ipv4:203.0");
        assert_eq!(g("/ip4/198.51.100.10/tcp/1"), "ipv4:198.51");
        assert_eq!(g("/ip6/2001:db8:1::10/tcp/1"), "ipv6:2001:db8");
        assert_eq!(g("/ip6/::ffff:203.0.113.9/tcp/1"), "ipv4:203.0");
        assert_eq!(g("/ip4/127.0.0.2/tcp/1"), "local:127.0.0.2");
        assert_eq!(g("/ip4/10.1.2.3/tcp/1"), "local:10.1.2.3");
        assert_eq!(g("/ip4/192.168.1.7/tcp/1"), "local:192.168.1.7");
        assert_eq!(g("/ip4/100.64.0.1/tcp/1"), "local:100.64.0.1");
        assert_eq!(g("/ip4/100.128.0.1/tcp/1"), "ipv4:100.128");
        assert_eq!(g("/ip6/::1/tcp/1"), "local:::1");
        assert_eq!(g("/ip6/fd00::1/tcp/1"), "local:fd00::1");
        assert_eq!(g("/ip6/fe80::1/tcp/1"), "local:fe80::1");
        assert_eq!(g("/dns4/Seed.Example/tcp/1"), "dns:seed.example");
        assert!(NetGroup::of_addr(&"/memory/5".parse().unwrap()).is_none());
    }

    #[test]
    fn ipv6_groups_are_slash_32s_and_embedded_ipv4_joins_its_ipv4_group() {
        assert_eq!(g("/ip6/2001:db8:ffff::1/udp/1/quic-v1"), "ipv6:2001:db8");
        assert_eq!(g("/ip6/2001:db9::1/tcp/1"), "ipv6:2001:db9");
        assert_eq!(g("/ip6/2a00:1450::1/tcp/1"), "ipv6:2a00:1450");
        // Compatible (deprecated) and 6to4 forms of 203.0.113.9.
        assert_eq!(g("/ip6/::203.0.113.9/tcp/1"), "ipv4:203.0");
        assert_eq!(g("/ip6/2002:cb00:7109::1/tcp/1"), "ipv4:203.0");
        // Embedded private IPv4 stays local, per address.
        assert_eq!(g("/ip6/::ffff:10.1.2.3/tcp/1"), "local:10.1.2.3");
        assert_eq!(g("/ip6/2002:0a01:0203::1/tcp/1"), "local:10.1.2.3");
        assert_eq!(g("/ip6/::/tcp/1"), "local:::");
        let v4 = NetGroup::of_ip("32.1.13.184".parse().unwrap());
        let v6 = NetGroup::of_ip("2001:db8::1".parse().unwrap());
        // 2001:0db8 read as IPv4 octets is 32.1.13.184: still two different groups.
        assert_ne!(v4, v6);
        assert!(!v6.is_local());
    }

    #[test]
    fn same_sixteen_same_group() {
        let a = NetGroup::of_ip("203.0.1.1".parse().unwrap());
        let b = NetGroup::of_ip("203.0.254.9".parse().unwrap());
        let c = NetGroup::of_ip("203.1.1.1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(NetGroup::of_ip("127.0.0.1".parse().unwrap()).is_local());
        assert_ne!(
            NetGroup::of_ip("127.0.0.2".parse().unwrap()),
            NetGroup::of_ip("127.0.0.3".parse().unwrap())
        );
    }
}
