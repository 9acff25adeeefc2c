//! The two kinds of bootstrap entry points of seeds.toml: DNS seeds and static peers.
//!
//! Spec: 28.1.A §1 (Seed DNS Config) and §2 (Static IP Registry).

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use multiaddr::{Multiaddr, Protocol};
use serde::{Deserialize, Serialize};

/// Longest accepted domain name, in characters (RFC 1035 §2.3.4, without the trailing dot).
pub const MAX_DOMAIN_LEN: usize = 253;

/// Longest accepted label (the part between two dots), in characters (RFC 1035 §2.3.4).
pub const MAX_LABEL_LEN: usize = 63;

/// A DNS seed: a domain name whose A/AAAA records list bootstrap nodes (28.1.A §1),
/// e.g. `seed1.dsdn.network`.
///
/// Validation follows the RFC 1035 preferred name syntax as relaxed by RFC 1123 §2.1 (a label
/// may start with a digit): 1–253 characters, labels of 1–63 characters made of `a-z`, `0-9`
/// and `-`, neither starting nor ending with `-`. The name is normalised to lowercase and one
/// trailing dot is dropped. A single label (`localhost`, a docker service name) is accepted;
/// a name whose last label is all digits is refused, so an IPv4 address written here is
/// reported instead of being looked up (IP addresses belong in `static_peers`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DnsSeed(String);

/// Why a string is not a valid [`DnsSeed`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid DNS seed {name:?}: {reason}")]
pub struct DnsSeedError {
    /// The rejected input, as given.
    pub name: String,
    /// What rule it breaks.
    pub reason: &'static str,
}

impl DnsSeed {
    /// Validates and normalises a domain name (see the type documentation for the rules).
    ///
    /// # Errors
    /// [`DnsSeedError`] naming the broken rule.
    pub fn new(name: &str) -> Result<Self, DnsSeedError> {
        let fail = |reason| DnsSeedError {
            name: name.to_owned(),
            reason,
        };
        let lower = name.trim_end_matches('.').to_ascii_lowercase();
        if name.len() > lower.len() + 1 {
            return Err(fail("more than one trailing dot"));
        }
        if lower.is_empty() {
            return Err(fail("empty name"));
        }
        if lower.len() > MAX_DOMAIN_LEN {
            return Err(fail("longer than 253 characters"));
        }
        for label in lower.split('.') {
            if label.is_empty() {
                return Err(fail("empty label (two dots in a row or a leading dot)"));
            }
            if label.len() > MAX_LABEL_LEN {
                return Err(fail("label longer than 63 characters"));
            }
            if !label
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            {
                return Err(fail("labels may only hold letters, digits and '-'"));
            }
            if label.starts_with('-') || label.ends_with('-') {
                return Err(fail("a label may not start or end with '-'"));
            }
        }
        let last = lower.rsplit('.').next().unwrap_or_default();
        if last.bytes().all(|b| b.is_ascii_digit()) {
            return Err(fail(
                "the last label is all digits (an IP address belongs in static_peers)",
            ));
        }
        Ok(Self(lower))
    }

    /// The normalised name (lowercase, no trailing dot).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for DnsSeed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for DnsSeed {
    type Err = DnsSeedError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for DnsSeed {
    type Error = DnsSeedError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<DnsSeed> for String {
    fn from(seed: DnsSeed) -> Self {
        seed.0
    }
}

/// A statically configured bootstrap peer (28.1.A §2).
///
/// Written in seeds.toml either as `IP:PORT` (`203.0.113.50:30303`, `[2001:db8::1]:30303`) or
/// as a full multiaddr (`/ip4/203.0.113.50/tcp/30303`, optionally ending in `/p2p/<peer id>`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum StaticPeer {
    /// `IP:PORT`: dialled over QUIC and TCP on that port (see [`socket_dial_addrs`]).
    Socket(SocketAddr),
    /// A multiaddr, dialled as written.
    Multiaddr(Multiaddr),
}

/// Why a string is not a valid [`StaticPeer`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid static peer {input:?}: {reason}")]
pub struct StaticPeerError {
    /// The rejected input, as given.
    pub input: String,
    /// What is wrong with it.
    pub reason: String,
}

impl StaticPeer {
    /// Parses `IP:PORT`, `[IPv6]:PORT` or a multiaddr (anything starting with `/`).
    ///
    /// A multiaddr must start with `/ip4`, `/ip6`, `/dns`, `/dns4` or `/dns6` followed by
    /// `/tcp/<port>` or `/udp/<port>`. Port 0 and the unspecified addresses (`0.0.0.0`, `::`)
    /// are refused.
    ///
    /// # Errors
    /// [`StaticPeerError`] explaining the problem.
    pub fn parse(input: &str) -> Result<Self, StaticPeerError> {
        let fail = |reason: String| StaticPeerError {
            input: input.to_owned(),
            reason,
        };
        let s = input.trim();
        if s.starts_with('/') {
            let addr: Multiaddr = s.parse().map_err(|e| fail(format!("{e}")))?;
            check_multiaddr(&addr).map_err(|r| fail(r.to_owned()))?;
            return Ok(StaticPeer::Multiaddr(addr));
        }
        let addr: SocketAddr = s.parse().map_err(|_| {
            fail(
                "expected IP:PORT, [IPv6]:PORT or a multiaddr such as /ip4/203.0.113.50/tcp/30303"
                    .to_owned(),
            )
        })?;
        check_socket(addr).map_err(|r| fail(r.to_owned()))?;
        Ok(StaticPeer::Socket(addr))
    }

    /// The multiaddrs to dial for this peer: for `IP:PORT`,
    /// `[/ip4|ip6/IP/udp/PORT/quic-v1, /ip4|ip6/IP/tcp/PORT]` (QUIC first); for a multiaddr,
    /// the multiaddr itself.
    pub fn dial_addrs(&self) -> Vec<Multiaddr> {
        match self {
            StaticPeer::Socket(addr) => socket_dial_addrs(*addr),
            StaticPeer::Multiaddr(addr) => vec![addr.clone()],
        }
    }
}

fn check_socket(addr: SocketAddr) -> Result<(), &'static str> {
    if addr.port() == 0 {
        return Err("port 0 is not dialable");
    }
    if addr.ip().is_unspecified() {
        return Err("the unspecified address is not dialable");
    }
    Ok(())
}

fn check_multiaddr(addr: &Multiaddr) -> Result<(), &'static str> {
    let mut iter = addr.iter();
    match iter.next() {
        Some(Protocol::Ip4(ip)) if ip.is_unspecified() => {
            return Err("the unspecified address is not dialable")
        }
        Some(Protocol::Ip6(ip)) if ip.is_unspecified() => {
            return Err("the unspecified address is not dialable")
        }
        Some(
            Protocol::Ip4(_)
            | Protocol::Ip6(_)
            | Protocol::Dns(_)
            | Protocol::Dns4(_)
            | Protocol::Dns6(_),
        ) => {}
        _ => return Err("a multiaddr must start with /ip4, /ip6, /dns, /dns4 or /dns6"),
    }
    match iter.next() {
        Some(Protocol::Tcp(0) | Protocol::Udp(0)) => Err("port 0 is not dialable"),
        Some(Protocol::Tcp(_) | Protocol::Udp(_)) => Ok(()),
        _ => Err("the host must be followed by /tcp/<port> or /udp/<port>"),
    }
}

/// The two multiaddrs to dial a node known only by `IP:PORT` (a static `IP:PORT` peer, or an
/// address resolved from a DNS seed at `default_port`):
/// `[/ip4|ip6/IP/udp/PORT/quic-v1, /ip4|ip6/IP/tcp/PORT]`, QUIC first.
pub fn socket_dial_addrs(addr: SocketAddr) -> Vec<Multiaddr> {
    let host = match addr.ip() {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    };
    let base = Multiaddr::empty().with(host);
    vec![
        base.clone()
            .with(Protocol::Udp(addr.port()))
            .with(Protocol::QuicV1),
        base.with(Protocol::Tcp(addr.port())),
    ]
}

impl fmt::Display for StaticPeer {
    /// `IP:PORT` (`[IPv6]:PORT`) or the multiaddr, as accepted by [`StaticPeer::parse`].
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StaticPeer::Socket(addr) => write!(f, "{addr}"),
            StaticPeer::Multiaddr(addr) => write!(f, "{addr}"),
        }
    }
}

impl FromStr for StaticPeer {
    type Err = StaticPeerError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for StaticPeer {
    type Error = StaticPeerError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl From<StaticPeer> for String {
    fn from(peer: StaticPeer) -> Self {
        peer.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_seeds() {
        for (input, norm) in [
            ("seed1.dsdn.network", "seed1.dsdn.network"),
            ("Seed1.DSDN.Network.", "seed1.dsdn.network"),
            ("localhost", "localhost"),
            ("1seed.example", "1seed.example"),
            ("a-b.c-d.e", "a-b.c-d.e"),
        ] {
            assert_eq!(DnsSeed::new(input).unwrap().as_str(), norm, "{input}");
        }
        let long_label = format!("{}.com", "a".repeat(64));
        let ok_label = format!("{}.com", "a".repeat(63));
        let long_name = vec!["abcdefghi"; 26].join("."); // 26*10-1 = 259 chars
        assert!(DnsSeed::new(&ok_label).is_ok());
        for bad in [
            "",
            ".",
            "a..b",
            ".a.b",
            "a.b..",
            "-a.b",
            "a-.b",
            "a_b.c",
            "a b.c",
            "1.2.3.4",
            "seed.dsdn.network:53",
            "https://seed.x",
            long_label.as_str(),
            long_name.as_str(),
        ] {
            assert!(DnsSeed::new(bad).is_err(), "{bad:?} accepted");
        }
        assert_eq!(
            DnsSeed::new("a_b.c").unwrap_err().to_string(),
            "invalid DNS seed \"a_b.c\": labels may only hold letters, digits and '-'"
        );
    }

    #[test]
    fn static_peers_and_dial_addrs() {
        let p = StaticPeer::parse("203.0.113.50:30303").unwrap();
        assert_eq!(p.to_string(), "203.0.113.50:30303");
        let addrs: Vec<String> = p.dial_addrs().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            addrs,
            [
                "/ip4/203.0.113.50/udp/30303/quic-v1",
                "/ip4/203.0.113.50/tcp/30303"
            ]
        );

        let p6 = StaticPeer::parse("[2001:db8::1]:4000").unwrap();
        assert_eq!(p6.to_string(), "[2001:db8::1]:4000");
        let addrs: Vec<String> = p6.dial_addrs().iter().map(|a| a.to_string()).collect();
        assert_eq!(
            addrs,
            [
                "/ip6/2001:db8::1/udp/4000/quic-v1",
                "/ip6/2001:db8::1/tcp/4000"
            ]
        );

        let m = "/ip4/1.2.3.4/tcp/30303/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";
        let pm = StaticPeer::parse(m).unwrap();
        assert_eq!(pm.to_string(), m);
        assert_eq!(pm.dial_addrs().len(), 1);
        assert_eq!(pm.dial_addrs()[0].to_string(), m);
        assert!(StaticPeer::parse("/dns4/seed.example/udp/1/quic-v1").is_ok());

        for bad in [
            "",
            "1.2.3.4",
            "1.2.3.4:0",
            "0.0.0.0:30303",
            "[::]:30303",
            "2001:db8::1:30303",
            "seed.example:30303",
            "1.2.3.4:70000",
            "/ip4/1.2.3.4",
            "/ip4/1.2.3.4/tcp/0",
            "/ip4/0.0.0.0/tcp/1",
            "/tcp/1",
            "/ip4/1.2.3.4/tcp/x",
            "/garbage",
        ] {
            assert!(StaticPeer::parse(bad).is_err(), "{bad:?} accepted");
        }
    }
}
