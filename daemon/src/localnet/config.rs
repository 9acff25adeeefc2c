//! Writing a `seeds.toml` for local networks: a [`SeedsConfig`] (the daemon's own config
//! types) serialised with `toml::to_string`, so the launcher and the daemon share one schema.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dsdn_bootstrap::config::{DnsSeed, NetworkConfig, StaticPeer};
use dsdn_p2p::committee::CommitteeConfig;
use dsdn_p2p::da::DaConfig;
use dsdn_p2p::seeds::SeedsConfig;
use dsdn_protocols::NetworkId;
use libp2p::PeerId;

use super::LocalNetError;

/// A `seeds.toml` to write: [`ConfigSpec::seeds`] is the daemon's [`SeedsConfig`], written by
/// [`ConfigSpec::to_toml`] / [`ConfigSpec::write`]. [`ConfigSpec::default`] is a devnet
/// config with no bootstrap source (the daemon's defaults). The `with_*` setters take the
/// strings a test has at hand; one that does not parse is kept and reported by
/// [`ConfigSpec::to_toml`] (as [`LocalNetError::Invalid`]) instead of panicking.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigSpec {
    /// The configuration written.
    pub seeds: SeedsConfig,
    /// Setter arguments that did not parse, each as `key: message`.
    invalid: Vec<String>,
}

fn u32_to_usize(n: u32) -> usize {
    usize::try_from(n).unwrap_or(usize::MAX)
}

impl ConfigSpec {
    fn parsed<T, E: std::fmt::Display>(&mut self, key: &str, value: Result<T, E>) -> Option<T> {
        value
            .map_err(|e| self.invalid.push(format!("{key}: {e}")))
            .ok()
    }

    /// Sets `[network] name` (`mainnet`, `testnet`, `devnet` or a private network's name).
    pub fn with_network(mut self, name: impl AsRef<str>) -> Self {
        if let Some(id) = self.parsed("network.name", NetworkId::new(name.as_ref())) {
            self.seeds.network.name = id;
        }
        self
    }

    /// Sets `[network] allow_private_addresses` (default: true on `devnet` only).
    pub fn with_allow_private_addresses(mut self, allow: bool) -> Self {
        self.seeds.network.allow_private_addresses = Some(allow);
        self
    }

    /// Sets `[network] da_authority`: the DA authority's public key (64 hex): a
    /// coordinator's node key, or a committee's group key.
    pub fn with_da_authority(mut self, key_hex: impl AsRef<str>) -> Self {
        let key = NetworkConfig::parse_da_authority(key_hex.as_ref());
        if let Some(key) = self.parsed("network.da_authority", key) {
            self.seeds.network.da_authority = Some(key);
        }
        self
    }

    /// `[network] da_authority` as 64 hex characters; `None` when unset.
    pub fn da_authority_hex(&self) -> Option<String> {
        self.seeds.network.da_authority.map(hex::encode)
    }

    /// Adds a DNS seed name.
    pub fn with_dns_seed(mut self, name: impl AsRef<str>) -> Self {
        if let Some(seed) = self.parsed("bootstrap.dns_seeds", DnsSeed::new(name.as_ref())) {
            self.seeds.bootstrap.dns_seeds.push(seed);
        }
        self
    }

    /// Adds a static peer (`IP:PORT` or a multiaddr).
    pub fn with_static_peer(mut self, peer: impl AsRef<str>) -> Self {
        let parsed = StaticPeer::parse(peer.as_ref());
        if let Some(peer) = self.parsed("bootstrap.static_peers", parsed) {
            self.seeds.bootstrap.static_peers.push(peer);
        }
        self
    }

    /// Removes the static peer written as `peer` (`IP:PORT` or a multiaddr), if present.
    pub fn without_static_peer(mut self, peer: impl AsRef<str>) -> Self {
        if let Ok(peer) = StaticPeer::parse(peer.as_ref()) {
            self.seeds.bootstrap.static_peers.retain(|p| *p != peer);
        }
        self
    }

    /// Adds a name server to resolve DNS seeds with.
    pub fn with_dns_server(mut self, addr: SocketAddr) -> Self {
        self.seeds.bootstrap.dns_servers.push(addr);
        self
    }

    /// Sets the port DNS seed addresses are dialled at.
    pub fn with_default_port(mut self, port: u16) -> Self {
        self.seeds.bootstrap.default_port = port;
        self
    }

    /// Sets the PEX and bootstrap retry intervals, in seconds.
    pub fn with_intervals(mut self, pex_interval_secs: u64, retry_interval_secs: u64) -> Self {
        self.seeds.bootstrap.pex_interval = Duration::from_secs(pex_interval_secs);
        self.seeds.bootstrap.retry_interval = Duration::from_secs(retry_interval_secs);
        self
    }

    /// Adds several DNS seed names, in order.
    pub fn with_dns_seeds<I, S>(self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        names.into_iter().fold(self, Self::with_dns_seed)
    }

    /// Adds several static peers, in order.
    pub fn with_static_peers<I, S>(self, peers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        peers.into_iter().fold(self, Self::with_static_peer)
    }

    /// Sets `peers_file` (relative to the data directory unless absolute).
    pub fn with_peers_file(mut self, file: impl Into<PathBuf>) -> Self {
        self.seeds.bootstrap.peers_file = file.into();
        self
    }

    /// Sets `max_outbound_connections` and `max_inbound_connections`.
    pub fn with_connection_limits(mut self, max_outbound: u32, max_inbound: u32) -> Self {
        self.seeds.bootstrap.max_outbound_connections = u32_to_usize(max_outbound);
        self.seeds.bootstrap.max_inbound_connections = u32_to_usize(max_inbound);
        self
    }

    /// Sets `dns_resolve_timeout_secs` and `peer_connect_timeout_secs`, in seconds.
    pub fn with_timeouts(mut self, dns_resolve_secs: u64, peer_connect_secs: u64) -> Self {
        self.seeds.bootstrap.dns_resolve_timeout = Duration::from_secs(dns_resolve_secs);
        self.seeds.bootstrap.peer_connect_timeout = Duration::from_secs(peer_connect_secs);
        self
    }

    /// Sets `min_peers` (the partition threshold).
    pub fn with_min_peers(mut self, min_peers: u32) -> Self {
        self.seeds.bootstrap.min_peers = u32_to_usize(min_peers);
        self
    }

    /// Sets `max_connections_per_peer`.
    pub fn with_max_connections_per_peer(mut self, n: u32) -> Self {
        self.seeds.bootstrap.max_connections_per_peer = u32_to_usize(n);
        self
    }

    /// Sets `inbound_per_ip_per_minute`.
    pub fn with_inbound_per_ip_per_minute(mut self, n: u32) -> Self {
        self.seeds.bootstrap.inbound_per_ip_per_minute = n;
        self
    }

    /// Sets `dns_refresh_interval_secs` and `feeler_interval_secs`, in seconds.
    pub fn with_refresh_intervals(mut self, dns_refresh_secs: u64, feeler_secs: u64) -> Self {
        self.seeds.bootstrap.dns_refresh_interval = Duration::from_secs(dns_refresh_secs);
        self.seeds.bootstrap.feeler_interval = Duration::from_secs(feeler_secs);
        self
    }

    /// Sets `recovery_backoff_max_secs`, in seconds.
    pub fn with_recovery_backoff_max(mut self, secs: u64) -> Self {
        self.seeds.bootstrap.recovery_backoff_max = Duration::from_secs(secs);
        self
    }

    /// Sets `ban_duration_secs`, in seconds.
    pub fn with_ban_duration(mut self, secs: u64) -> Self {
        self.seeds.bootstrap.ban_duration = Duration::from_secs(secs);
        self
    }

    /// `[committee]`: members (base58 PeerIds, in the order that fixes the DA proposer rotation), threshold,
    /// epoch.
    pub fn with_committee(mut self, members: Vec<String>, threshold: u16, epoch: u64) -> Self {
        let mut ids = Vec::with_capacity(members.len());
        for (i, m) in members.iter().enumerate() {
            let key = format!("committee.members[{i}]");
            if let Some(id) = self.parsed(&key, m.parse::<PeerId>()) {
                ids.push(id);
            }
        }
        self.seeds.committee = CommitteeConfig {
            members: ids,
            threshold,
            epoch,
            ..CommitteeConfig::default()
        };
        self
    }

    /// `[da]` settings.
    pub fn with_da(mut self, da: DaConfig) -> Self {
        self.seeds.da = da;
        self
    }

    /// Short timings for tests on loopback: retry every second, 2 s dial and DNS timeouts,
    /// PEX every 2 s, partition-recovery backoff capped at 2 s, and DNS refresh / feeler
    /// connections rare enough (1 h) not to disturb counters. Everything else unchanged.
    pub fn fast(mut self) -> Self {
        let b = &mut self.seeds.bootstrap;
        b.retry_interval = Duration::from_secs(1);
        b.pex_interval = Duration::from_secs(2);
        b.dns_resolve_timeout = Duration::from_secs(2);
        b.peer_connect_timeout = Duration::from_secs(2);
        b.recovery_backoff_max = Duration::from_secs(2);
        b.dns_refresh_interval = Duration::from_secs(3600);
        b.feeler_interval = Duration::from_secs(3600);
        self
    }

    /// The seeds.toml text: `toml::to_string` of [`ConfigSpec::seeds`].
    ///
    /// # Errors
    /// [`LocalNetError::Invalid`] naming the keys of setter arguments that did not parse,
    /// or a value the file cannot express (a sub-second `*_secs` duration).
    pub fn to_toml(&self) -> Result<String, LocalNetError> {
        if !self.invalid.is_empty() {
            return Err(LocalNetError::Invalid(format!(
                "invalid seeds.toml settings: {}",
                self.invalid.join("; ")
            )));
        }
        toml::to_string(&self.seeds)
            .map_err(|e| LocalNetError::Invalid(format!("cannot encode seeds.toml: {e}")))
    }

    /// Writes the seeds.toml to `path` (creating its parent directory).
    ///
    /// # Errors
    /// As [`ConfigSpec::to_toml`]; [`LocalNetError::Io`] naming the path.
    pub fn write(&self, path: &Path) -> Result<(), LocalNetError> {
        let text = self.to_toml()?;
        if let Some(parent) = path.parent() {
            if !parent.as_os_str().is_empty() {
                std::fs::create_dir_all(parent).map_err(|e| {
                    LocalNetError::io(format!("cannot create {}", parent.display()), e)
                })?;
            }
        }
        std::fs::write(path, text)
            .map_err(|e| LocalNetError::io(format!("cannot write {}", path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_every_key() {
        let spec = ConfigSpec::default()
            .with_network("testnet")
            .with_da_authority("5866666666666666666666666666666666666666666666666666666666666666")
            .with_dns_seed("seed.devnet.dsdn")
            .with_static_peer("127.0.0.9:4000")
            .with_dns_server("127.0.0.1:5353".parse().expect("addr"))
            .with_default_port(31000)
            .with_intervals(5, 6);
        let text = spec.to_toml().expect("toml");
        let v: toml::Table = text.parse().expect("parses back");
        let net = v["network"].as_table().expect("network");
        assert_eq!(net["name"].as_str(), Some("testnet"));
        assert_eq!(
            net["da_authority"].as_str(),
            Some(
                "5866666666666666666666666666666666666666666666666666666666666666"
                    .to_owned()
                    .as_str()
            )
        );
        let b = v["bootstrap"].as_table().expect("bootstrap");
        for key in [
            "dns_seeds",
            "static_peers",
            "peers_file",
            "dns_servers",
            "default_port",
            "max_outbound_connections",
            "max_inbound_connections",
            "dns_resolve_timeout_secs",
            "peer_connect_timeout_secs",
            "pex_interval_secs",
            "retry_interval_secs",
            "min_peers",
            "max_connections_per_peer",
            "inbound_per_ip_per_minute",
            "dns_refresh_interval_secs",
            "feeler_interval_secs",
            "recovery_backoff_max_secs",
            "ban_duration_secs",
        ] {
            assert!(b.contains_key(key), "missing {key} in\n{text}");
        }
        assert_eq!(b["dns_servers"].as_array().map(|a| a.len()), Some(1));
        assert_eq!(b["dns_servers"][0].as_str(), Some("127.0.0.1:5353"));
        assert_eq!(b["default_port"].as_integer(), Some(31000));
        assert_eq!(b["pex_interval_secs"].as_integer(), Some(5));
        assert_eq!(b["retry_interval_secs"].as_integer(), Some(6));
    }

    #[test]
    fn every_setter_is_written_and_accepted_by_the_daemon_parser() {
        let spec = ConfigSpec::default()
            .with_dns_seeds(["a.dsdn.test", "b.dsdn.test", "c.dsdn.test"])
            .with_static_peers(["127.0.0.9:4000", "/ip4/127.0.0.10/tcp/4000"])
            .with_peers_file("cache.dat")
            .with_connection_limits(4, 20)
            .with_timeouts(3, 4)
            .with_min_peers(5)
            .with_max_connections_per_peer(1)
            .with_inbound_per_ip_per_minute(7)
            .with_refresh_intervals(11, 12)
            .with_recovery_backoff_max(13)
            .with_ban_duration(14)
            .fast();
        let text = spec.to_toml().expect("toml");
        let cfg = dsdn_p2p::seeds::SeedsConfig::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let b = cfg.bootstrap;
        assert_eq!(b.dns_seeds.len(), 3);
        assert_eq!(b.static_peers.len(), 2);
        assert_eq!(b.peers_file, std::path::PathBuf::from("cache.dat"));
        assert_eq!(
            (b.max_outbound_connections, b.max_inbound_connections),
            (4, 20)
        );
        assert_eq!(b.min_peers, 5);
        assert_eq!(b.max_connections_per_peer, 1);
        assert_eq!(b.inbound_per_ip_per_minute, 7);
        assert_eq!(b.ban_duration.as_secs(), 14);
        // fast() overrides the timings it names, after the setters.
        assert_eq!(b.retry_interval.as_secs(), 1);
        assert_eq!(b.peer_connect_timeout.as_secs(), 2);
        assert_eq!(b.dns_resolve_timeout.as_secs(), 2);
        assert_eq!(b.recovery_backoff_max.as_secs(), 2);
        assert_eq!(b.dns_refresh_interval.as_secs(), 3600);
        assert_eq!(b.feeler_interval.as_secs(), 3600);
    }

    #[test]
    fn defaults_match_the_daemon_defaults() {
        let text = ConfigSpec::default().to_toml().expect("toml");
        let parsed = dsdn_p2p::seeds::SeedsConfig::from_toml_str(&text).expect("parses");
        let d = dsdn_bootstrap::config::BootstrapConfig::default();
        assert_eq!(parsed.bootstrap, d, "{text}");
        assert_eq!(parsed.da, DaConfig::default(), "{text}");
        let fast = ConfigSpec::default()
            .with_da(DaConfig {
                batch_interval: Duration::from_millis(7),
                sync_request_timeout: Duration::from_secs(2),
                ..DaConfig::default()
            })
            .to_toml()
            .expect("toml");
        let parsed = dsdn_p2p::seeds::SeedsConfig::from_toml_str(&fast).expect("parses");
        assert_eq!(parsed.da.batch_interval.as_millis(), 7);
        assert_eq!(parsed.da.sync_request_timeout.as_secs(), 2);
    }

    #[test]
    fn no_authority_key_when_unset_and_empty_lists_written() {
        let text = ConfigSpec::default().to_toml().expect("toml");
        assert!(!text.contains("da_authority"), "{text}");
        assert!(text.contains("static_peers = []"), "{text}");
    }

    /// `n` random PeerIds as strings.
    fn random_peer_ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|_| {
                libp2p::identity::Keypair::generate_ed25519()
                    .public()
                    .to_peer_id()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn committee_section_is_written_and_parsed_back() {
        let ids = random_peer_ids(3);
        let text = ConfigSpec::default()
            .with_committee(ids.clone(), 2, 4)
            .to_toml()
            .expect("toml");
        let cfg = dsdn_p2p::seeds::SeedsConfig::from_toml_str(&text)
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        let members: Vec<String> = cfg
            .committee
            .members
            .iter()
            .map(|p| p.to_string())
            .collect();
        assert_eq!(members, ids);
        assert_eq!((cfg.committee.threshold, cfg.committee.epoch), (2, 4));
        assert_eq!(cfg.network.da_authority, None);
        let plain = ConfigSpec::default().to_toml().expect("toml");
        assert!(!plain.contains("[committee]"), "{plain}");
    }

    #[test]
    fn a_launcher_config_reads_back_equal_through_the_daemon_loader() {
        let ids = random_peer_ids(3);
        let spec = ConfigSpec::default()
            .with_network("testnet")
            .with_da_authority("cd".repeat(32))
            .with_dns_seeds(["a.dsdn.test", "b.dsdn.test"])
            .with_static_peers(["127.0.0.9:4000", "/ip4/127.0.0.10/tcp/4000"])
            .with_dns_server("127.0.0.1:5353".parse().expect("addr"))
            .with_default_port(31000)
            .with_peers_file("cache.dat")
            .with_connection_limits(4, 20)
            .with_min_peers(2)
            .with_inbound_per_ip_per_minute(1000)
            .with_committee(ids, 2, 3)
            .with_da(DaConfig {
                batch_interval: Duration::from_millis(7),
                ..DaConfig::default()
            })
            .fast();
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seeds.toml");
        spec.write(&path).expect("write");
        let loaded = SeedsConfig::load(&path).expect("the daemon's loader accepts it");
        assert_eq!(loaded, spec.seeds);
        assert_eq!(spec.da_authority_hex(), Some("cd".repeat(32)));
        let without = spec.without_static_peer("127.0.0.9:4000");
        assert_eq!(without.seeds.bootstrap.static_peers.len(), 1);
    }

    #[test]
    fn unparsable_setter_arguments_are_reported_by_name() {
        let spec = ConfigSpec::default()
            .with_network("Not A Network")
            .with_static_peer("nowhere")
            .with_da_authority("abc");
        let err = spec.to_toml().expect_err("invalid").to_string();
        for key in [
            "network.name",
            "bootstrap.static_peers",
            "network.da_authority",
        ] {
            assert!(err.contains(key), "{key} missing from {err}");
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("seeds.toml");
        assert!(spec.write(&path).is_err());
        assert!(!path.exists());
    }

    #[test]
    fn write_creates_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/seeds.toml");
        ConfigSpec::default().write(&path).expect("write");
        assert!(std::fs::read_to_string(&path)
            .expect("read")
            .contains("[bootstrap]"));
    }
}
