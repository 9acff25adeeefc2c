//! The `[network]` and `[bootstrap]` sections of seeds.toml (28.1.A §1–§3), and the tools
//! every section of the file is read and written with.
//!
//! ```toml
//! [network]
//! name = "devnet"
//! # da_authority = "<64 hex chars>"
//! # allow_private_addresses = true   # default: true on devnet only
//! [bootstrap]
//! dns_seeds = ["seed1.dsdn.network"]
//! static_peers = ["203.0.113.50:30303", "/ip4/198.51.100.10/tcp/30303"]
//! ```
//!
//! The whole file (these two sections plus `[da]` and `[committee]`, owned by the services
//! that use them) is `dsdn_p2p::seeds::SeedsConfig`, composed from [`RawNetwork`] and
//! [`RawBootstrap`] (the sections as written, one serde schema used both to read and to
//! write) validated by [`validate_sections`]. Every key is optional; missing ones take the
//! defaults documented on [`NetworkConfig`] and [`BootstrapConfig`]. Unknown keys and
//! malformed values are refused with an error naming the key (see [`ConfigError`]);
//! [`parse_toml`] and [`KeyErrors`] give every section the same error shapes.

mod errors;
mod seed;
mod write;

use std::collections::HashSet;
use std::hash::Hash;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dsdn_protocols::{AddressPolicy, NetworkId};
use multiaddr::Multiaddr;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

pub use errors::{ConfigError, KeyError, KeyErrors};
pub use seed::{
    socket_dial_addrs, DnsSeed, DnsSeedError, StaticPeer, StaticPeerError, MAX_DOMAIN_LEN,
    MAX_LABEL_LEN,
};
pub use write::whole_secs;

/// Port of the standard DNS service, used for a `dns_servers` entry written without a port.
pub const DNS_PORT: u16 = 53;

/// Longest accepted duration setting (`*_secs` keys), in seconds: one week.
pub const MAX_DURATION_SECS: u64 = 7 * 24 * 3600;

/// Largest `bootstrap.max_outbound_connections`: 1024 peers. Outbound peers are the ones
/// this node dials and keeps (8 by default, Bitcoin Core keeps 10); far more only multiplies
/// gossip and PEX traffic, and every one is a socket and a file descriptor.
pub const MAX_OUTBOUND_CONNECTIONS: usize = 1024;

/// Largest `bootstrap.max_inbound_connections`: 65 536 connections, the number of ports of
/// one address and far above the open-file limit of a usual process (1024 soft, a few
/// hundred thousand hard); a larger value would only be refused by the kernel (`EMFILE`)
/// instead of by the peer manager.
pub const MAX_INBOUND_CONNECTIONS: usize = 65_536;

/// Largest `bootstrap.max_connections_per_peer`: 16. A well-behaved peer needs one TCP and
/// one QUIC connection per address family, plus a dial race or a relayed circuit now and
/// then: 4 to 6; more is one peer hoarding slots.
pub const MAX_CONNECTIONS_PER_PEER: usize = 16;

/// Largest `bootstrap.min_peers`: [`MAX_OUTBOUND_CONNECTIONS`]; partition recovery
/// could never end if the node needed more peers than it may hold.
pub const MAX_MIN_PEERS: usize = MAX_OUTBOUND_CONNECTIONS;

/// Largest `bootstrap.inbound_per_ip_per_minute`: 1 000 000 (about 16 700 a second, as
/// `nat.relay_*_rate_per_ip`): room for a test network with thousands of nodes behind one
/// loopback address; beyond it the per-IP limiter would refuse nothing.
pub const MAX_INBOUND_PER_IP_PER_MINUTE: u32 = 1_000_000;

/// `[network]`: which network the node belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// `name`: the network id (`mainnet`, `testnet`, `devnet` or a private network's name).
    /// Default `devnet`.
    pub name: NetworkId,
    /// `da_authority`: the Ed25519 public key (32 bytes, written as 64 hex characters) whose
    /// signature makes a DA event valid. `None` (the default, key absent) means this node
    /// accepts no DA events and cannot publish any.
    pub da_authority: Option<[u8; 32]>,
    /// `external_addresses`: multiaddrs this node is reachable on from the internet
    /// (`/ip4/203.0.113.7/tcp/30303`), as the operator knows them: advertised without an
    /// AutoNAT test, beside `dsdnd --external-address`. Default none. Each must start with
    /// an IP or DNS host followed by `/tcp/<port>` or `/udp/<port>`.
    pub external_addresses: Vec<Multiaddr>,
    /// `allow_private_addresses`: whether loopback, private (RFC 1918, CGNAT), link-local
    /// and other non-public addresses are stored, advertised and shared. `None` (the key
    /// absent) takes the network's default: true for `devnet`, false for `mainnet`,
    /// `testnet` and any other name ([`NetworkConfig::allow_private_addresses`]).
    pub allow_private_addresses: Option<bool>,
}

impl Default for NetworkConfig {
    fn default() -> Self {
        Self {
            name: default_network(),
            da_authority: None,
            external_addresses: Vec::new(),
            allow_private_addresses: None,
        }
    }
}

impl NetworkConfig {
    /// `allow_private_addresses` as set, or the network's default (true for `devnet` only).
    pub fn allow_private_addresses(&self) -> bool {
        self.allow_private_addresses
            .unwrap_or_else(|| AddressPolicy::default_allow_private(&self.name))
    }

    /// The address policy of this network (see [`AddressPolicy`]).
    pub fn address_policy(&self) -> AddressPolicy {
        AddressPolicy::new(self.allow_private_addresses())
    }
}

fn default_network() -> NetworkId {
    // "devnet" satisfies every NetworkId rule; the fallback arm is unreachable in practice.
    NetworkId::new("devnet").unwrap_or_else(|e| unreachable!("{e}"))
}

/// `[bootstrap]`: where to find the first peers and connection limits (28.1.A §3).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BootstrapConfig {
    /// `dns_seeds`: domain names resolved (A and AAAA) to bootstrap nodes listening on
    /// `default_port`. Default empty; `mainnet` requires at least one. Duplicates removed.
    pub dns_seeds: Vec<DnsSeed>,
    /// `static_peers`: `IP:PORT` or multiaddr entry points. Default empty. Duplicates removed.
    pub static_peers: Vec<StaticPeer>,
    /// `peers_file`: the peer cache, relative to the data directory unless absolute
    /// (see [`BootstrapConfig::peers_path`]). Default `peers.dat`.
    pub peers_file: PathBuf,
    /// `dns_servers`: name servers (`IP:PORT`, or `IP` for port 53) used to resolve the DNS
    /// seeds over UDP and TCP. Default empty: the system resolver configuration.
    pub dns_servers: Vec<SocketAddr>,
    /// `default_port`: the P2P port assumed for addresses resolved from DNS seeds, and the
    /// default listen port. Default 30303.
    pub default_port: u16,
    /// `max_outbound_connections`: outbound peers the node wants,
    /// 1..=[`MAX_OUTBOUND_CONNECTIONS`]. Default 8.
    pub max_outbound_connections: usize,
    /// `max_inbound_connections`: inbound peers accepted (0 = none),
    /// 0..=[`MAX_INBOUND_CONNECTIONS`]. Default 125.
    pub max_inbound_connections: usize,
    /// `dns_resolve_timeout_secs`: limit for resolving one DNS seed (A and AAAA together).
    /// Default 10 s.
    pub dns_resolve_timeout: Duration,
    /// `peer_connect_timeout_secs`: limit for one dial plus handshake. Default 5 s.
    pub peer_connect_timeout: Duration,
    /// `pex_interval_secs`: minimum interval between PEX requests to, or from, one peer.
    /// Default 900 s.
    pub pex_interval: Duration,
    /// `retry_interval_secs`: how often bootstrap is retried while the node has fewer peers
    /// than it wants. Default 30 s.
    pub retry_interval: Duration,
    /// `min_peers`: below this many connected peers the node considers itself partitioned
    /// and runs partition recovery (every DNS seed, every cached and static peer, with
    /// exponential backoff; 28.1.C §4). 1..=[`MAX_MIN_PEERS`]. Default 3.
    pub min_peers: usize,
    /// `max_connections_per_peer`: simultaneous connections accepted to or from one PeerId
    /// (1..=[`MAX_CONNECTIONS_PER_PEER`]). Default 2 (one TCP and one QUIC).
    pub max_connections_per_peer: usize,
    /// `inbound_per_ip_per_minute`: inbound connection attempts accepted from one IP address
    /// per minute; more are refused before any handshake (28.1.C §6).
    /// 1..=[`MAX_INBOUND_PER_IP_PER_MINUTE`]. Default 10.
    pub inbound_per_ip_per_minute: u32,
    /// `dns_refresh_interval_secs`: one random DNS seed is resolved this often to learn new
    /// peers, even while connected (28.1.B §6). Default 1800 s.
    pub dns_refresh_interval: Duration,
    /// `feeler_interval_secs`: this often two random cached peers that are not connected
    /// are tried (feeler connections, 28.1.B §6). Default 3600 s.
    pub feeler_interval: Duration,
    /// `recovery_backoff_max_secs`: cap of the doubling delay between partition-recovery
    /// sweeps while the node stays below `min_peers`. Default 300 s.
    pub recovery_backoff_max: Duration,
    /// `ban_duration_secs`: how long a misbehaving peer is banned, and the default of
    /// `dsdn-agent peers ban`. Default 86400 s (24 h).
    pub ban_duration: Duration,
    /// `service_record_ttl_secs`: lifetime of the Kademlia provider record a node publishes
    /// for each of its service types (28.1.C §2); republished every half of it, so a node
    /// that leaves stops being returned within one lifetime. Default 3600 s.
    pub service_record_ttl: Duration,
}

impl Default for BootstrapConfig {
    fn default() -> Self {
        Self {
            dns_seeds: Vec::new(),
            static_peers: Vec::new(),
            peers_file: PathBuf::from("peers.dat"),
            dns_servers: Vec::new(),
            default_port: 30303,
            max_outbound_connections: 8,
            max_inbound_connections: 125,
            dns_resolve_timeout: Duration::from_secs(10),
            peer_connect_timeout: Duration::from_secs(5),
            pex_interval: Duration::from_secs(900),
            retry_interval: Duration::from_secs(30),
            min_peers: 3,
            max_connections_per_peer: 2,
            inbound_per_ip_per_minute: 10,
            dns_refresh_interval: Duration::from_secs(1800),
            feeler_interval: Duration::from_secs(3600),
            recovery_backoff_max: Duration::from_secs(300),
            ban_duration: Duration::from_secs(86_400),
            service_record_ttl: Duration::from_secs(3600),
        }
    }
}

impl BootstrapConfig {
    /// The peer cache path: `peers_file` joined to `data_dir` (an absolute `peers_file` is
    /// returned unchanged).
    pub fn peers_path(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.peers_file)
    }
}

/// `[network]` as written in seeds.toml (its serde schema, both ways); validated into a
/// [`NetworkConfig`] by [`validate_sections`], written from one by
/// [`NetworkConfig::to_raw`]. Default: `name = "devnet"`, no `da_authority`, no
/// `allow_private_addresses` (the network's default).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawNetwork {
    name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    da_authority: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    external_addresses: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    allow_private_addresses: Option<bool>,
}

impl Default for RawNetwork {
    fn default() -> Self {
        Self {
            name: "devnet".to_owned(),
            da_authority: None,
            external_addresses: Vec::new(),
            allow_private_addresses: None,
        }
    }
}

/// `[bootstrap]` as written in seeds.toml (its serde schema, both ways): the keys of
/// [`BootstrapConfig`], durations as whole `*_secs`; validated by [`validate_sections`],
/// written by [`BootstrapConfig::to_raw`]. Default: [`BootstrapConfig::default`].
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawBootstrap {
    dns_seeds: Vec<String>,
    static_peers: Vec<String>,
    peers_file: PathBuf,
    dns_servers: Vec<String>,
    default_port: u16,
    max_outbound_connections: usize,
    max_inbound_connections: usize,
    dns_resolve_timeout_secs: u64,
    peer_connect_timeout_secs: u64,
    pex_interval_secs: u64,
    retry_interval_secs: u64,
    min_peers: usize,
    max_connections_per_peer: usize,
    inbound_per_ip_per_minute: u32,
    dns_refresh_interval_secs: u64,
    feeler_interval_secs: u64,
    recovery_backoff_max_secs: u64,
    ban_duration_secs: u64,
    service_record_ttl_secs: u64,
}

impl Default for RawBootstrap {
    fn default() -> Self {
        let d = BootstrapConfig::default();
        Self {
            dns_seeds: Vec::new(),
            static_peers: Vec::new(),
            peers_file: d.peers_file,
            dns_servers: Vec::new(),
            default_port: d.default_port,
            max_outbound_connections: d.max_outbound_connections,
            max_inbound_connections: d.max_inbound_connections,
            dns_resolve_timeout_secs: d.dns_resolve_timeout.as_secs(),
            peer_connect_timeout_secs: d.peer_connect_timeout.as_secs(),
            pex_interval_secs: d.pex_interval.as_secs(),
            retry_interval_secs: d.retry_interval.as_secs(),
            min_peers: d.min_peers,
            max_connections_per_peer: d.max_connections_per_peer,
            inbound_per_ip_per_minute: d.inbound_per_ip_per_minute,
            dns_refresh_interval_secs: d.dns_refresh_interval.as_secs(),
            feeler_interval_secs: d.feeler_interval.as_secs(),
            recovery_backoff_max_secs: d.recovery_backoff_max.as_secs(),
            ban_duration_secs: d.ban_duration.as_secs(),
            service_record_ttl_secs: d.service_record_ttl.as_secs(),
        }
    }
}

/// Reads the text of a config file.
///
/// # Errors
/// [`ConfigError::Io`] naming `path`.
pub fn read_file(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
        path: path.to_owned(),
        source,
    })
}

/// Parses TOML `text` into `T` (a file schema of `Raw*` sections), naming the key of any
/// error.
///
/// # Errors
/// [`ConfigError::Syntax`] (not TOML), [`ConfigError::UnknownKey`] (`unknown key
/// bootstrap.foo`) or [`ConfigError::Invalid`] with one entry for a value of the wrong type
/// (`bootstrap.default_port: invalid type: string "x", expected u16`).
pub fn parse_toml<T: DeserializeOwned>(text: &str) -> Result<T, ConfigError> {
    let de = toml::Deserializer::parse(text)
        .map_err(|e| ConfigError::Syntax(e.to_string().trim_end().to_owned()))?;
    serde_path_to_error::deserialize(de).map_err(type_error)
}

/// Turns a deserialisation error into an error naming its key.
fn type_error(err: serde_path_to_error::Error<toml::de::Error>) -> ConfigError {
    let path = err.path().to_string();
    let inner = err.into_inner();
    let message = inner.message().to_owned();
    // serde's `deny_unknown_fields` message is "unknown field `foo`, expected one of ...";
    // serde_path_to_error already put the unknown key at the end of the path.
    if message.starts_with("unknown field `") {
        return ConfigError::UnknownKey { key: path };
    }
    if path == "." || path.is_empty() {
        return ConfigError::Syntax(inner.to_string().trim_end().to_owned());
    }
    ConfigError::Invalid(vec![KeyError { key: path, message }])
}

fn dedup<T: Clone + Eq + Hash>(items: Vec<T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|item| seen.insert(item.clone()))
        .collect()
}

fn parse_name_server(s: &str) -> Result<SocketAddr, String> {
    let s = s.trim();
    let addr = s
        .parse::<SocketAddr>()
        .or_else(|_| s.parse().map(|ip| SocketAddr::new(ip, DNS_PORT)))
        .map_err(|_| format!("invalid name server {s:?}: expected IP:PORT, [IPv6]:PORT or IP"))?;
    if addr.port() == 0 || addr.ip().is_unspecified() {
        return Err(format!(
            "invalid name server {s:?}: port 0 and unspecified addresses are not usable"
        ));
    }
    Ok(addr)
}

fn parse_authority(hex_key: &str) -> Result<[u8; 32], String> {
    let bytes = hex::decode(hex_key.trim()).map_err(|e| {
        format!("expected an Ed25519 public key as 64 hex characters, got {hex_key:?}: {e}")
    })?;
    let key = <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!(
            "expected an Ed25519 public key as 64 hex characters, got {} characters",
            hex_key.trim().len()
        )
    })?;
    // A mistyped key is usually no curve point at all: caught here, not as "no usable
    // authority" on every blob later.
    dsdn_protocols::da::authority_key(&key).map_err(|_| {
        "not a usable Ed25519 public key (not a curve point, or a weak key): check for a \
         mistyped character"
            .to_owned()
    })?;
    Ok(key)
}

/// Validates `[network]` and `[bootstrap]` (as written) into their config types, pushing
/// one error per bad key to `errs`: `network.name` (not a [`NetworkId`]),
/// `network.da_authority` (not 64 hex characters), `network.external_addresses[i]` (not a
/// dialable multiaddr), `bootstrap.dns_seeds[i]`,
/// `bootstrap.static_peers[i]`, `bootstrap.dns_servers[i]`, `bootstrap.peers_file` (empty),
/// `bootstrap.default_port` (0), any `*_secs` key outside 1..=[`MAX_DURATION_SECS`], the
/// connection limits outside their bounds (`must be between {min} and {max}, got
/// {value}`): `bootstrap.max_outbound_connections` 1..=[`MAX_OUTBOUND_CONNECTIONS`],
/// `bootstrap.max_inbound_connections` 0..=[`MAX_INBOUND_CONNECTIONS`],
/// `bootstrap.min_peers` 1..=[`MAX_MIN_PEERS`], `bootstrap.max_connections_per_peer`
/// 1..=[`MAX_CONNECTIONS_PER_PEER`], `bootstrap.inbound_per_ip_per_minute`
/// 1..=[`MAX_INBOUND_PER_IP_PER_MINUTE`]; and `bootstrap.dns_seeds` empty on `mainnet`.
/// Duplicate DNS seeds, static peers and name servers are dropped (the first occurrence is
/// kept). On errors the returned values are placeholders, to be discarded.
pub fn validate_sections(
    network: RawNetwork,
    bootstrap: RawBootstrap,
    errs: &mut KeyErrors,
) -> (NetworkConfig, BootstrapConfig) {
    let name = NetworkId::new(&network.name).unwrap_or_else(|e| {
        errs.push("network.name", e);
        default_network()
    });
    let da_authority = network.da_authority.as_deref().and_then(|k| {
        parse_authority(k)
            .map_err(|e| errs.push("network.da_authority", e))
            .ok()
    });

    let mut external_addresses = Vec::new();
    for (i, s) in network.external_addresses.iter().enumerate() {
        match StaticPeer::parse(s) {
            Ok(StaticPeer::Multiaddr(a)) => external_addresses.push(a),
            Ok(StaticPeer::Socket(_)) => errs.push(
                format!("network.external_addresses[{i}]"),
                "expected a multiaddr such as /ip4/203.0.113.7/tcp/30303",
            ),
            Err(e) => errs.push(format!("network.external_addresses[{i}]"), e.reason),
        }
    }

    let b = bootstrap;
    let mut dns_seeds = Vec::new();
    for (i, s) in b.dns_seeds.iter().enumerate() {
        match DnsSeed::new(s) {
            Ok(seed) => dns_seeds.push(seed),
            Err(e) => errs.push(format!("bootstrap.dns_seeds[{i}]"), e),
        }
    }
    let mut static_peers = Vec::new();
    for (i, s) in b.static_peers.iter().enumerate() {
        match StaticPeer::parse(s) {
            Ok(peer) => static_peers.push(peer),
            Err(e) => errs.push(format!("bootstrap.static_peers[{i}]"), e),
        }
    }
    let mut dns_servers = Vec::new();
    for (i, s) in b.dns_servers.iter().enumerate() {
        match parse_name_server(s) {
            Ok(addr) => dns_servers.push(addr),
            Err(e) => errs.push(format!("bootstrap.dns_servers[{i}]"), e),
        }
    }
    if b.peers_file.as_os_str().is_empty() {
        errs.push("bootstrap.peers_file", "must not be empty");
    }
    if b.default_port == 0 {
        errs.push("bootstrap.default_port", "must not be 0");
    }
    errs.range(
        "bootstrap.max_outbound_connections",
        b.max_outbound_connections,
        1,
        MAX_OUTBOUND_CONNECTIONS,
    );
    errs.range(
        "bootstrap.max_inbound_connections",
        b.max_inbound_connections,
        0,
        MAX_INBOUND_CONNECTIONS,
    );
    let dns_resolve_timeout = errs.secs("dns_resolve_timeout_secs", b.dns_resolve_timeout_secs);
    let peer_connect_timeout = errs.secs("peer_connect_timeout_secs", b.peer_connect_timeout_secs);
    let pex_interval = errs.secs("pex_interval_secs", b.pex_interval_secs);
    let retry_interval = errs.secs("retry_interval_secs", b.retry_interval_secs);
    let dns_refresh_interval = errs.secs("dns_refresh_interval_secs", b.dns_refresh_interval_secs);
    let feeler_interval = errs.secs("feeler_interval_secs", b.feeler_interval_secs);
    let recovery_backoff_max = errs.secs("recovery_backoff_max_secs", b.recovery_backoff_max_secs);
    let ban_duration = errs.secs("ban_duration_secs", b.ban_duration_secs);
    let service_record_ttl = errs.secs("service_record_ttl_secs", b.service_record_ttl_secs);
    errs.range("bootstrap.min_peers", b.min_peers, 1, MAX_MIN_PEERS);
    errs.range(
        "bootstrap.max_connections_per_peer",
        b.max_connections_per_peer,
        1,
        MAX_CONNECTIONS_PER_PEER,
    );
    errs.range(
        "bootstrap.inbound_per_ip_per_minute",
        b.inbound_per_ip_per_minute,
        1,
        MAX_INBOUND_PER_IP_PER_MINUTE,
    );
    if name.is_mainnet() && b.dns_seeds.is_empty() {
        errs.push(
            "bootstrap.dns_seeds",
            "mainnet requires at least one DNS seed",
        );
    }

    (
        NetworkConfig {
            name,
            da_authority,
            external_addresses,
            allow_private_addresses: network.allow_private_addresses,
        },
        BootstrapConfig {
            dns_seeds: dedup(dns_seeds),
            static_peers: dedup(static_peers),
            peers_file: b.peers_file,
            dns_servers: dedup(dns_servers),
            default_port: b.default_port,
            max_outbound_connections: b.max_outbound_connections,
            max_inbound_connections: b.max_inbound_connections,
            dns_resolve_timeout,
            peer_connect_timeout,
            pex_interval,
            retry_interval,
            min_peers: b.min_peers,
            max_connections_per_peer: b.max_connections_per_peer,
            inbound_per_ip_per_minute: b.inbound_per_ip_per_minute,
            dns_refresh_interval,
            feeler_interval,
            recovery_backoff_max,
            ban_duration,
            service_record_ttl,
        },
    )
}
