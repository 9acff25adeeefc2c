//! Writing a `seeds.toml` for local networks.

use std::net::SocketAddr;
use std::path::Path;

use serde::Serialize;

use super::LocalNetError;

/// Everything a `seeds.toml` holds. [`ConfigSpec::default`] is a devnet config with no
/// bootstrap source; fill the fields (or use the `with_*` methods) and call
/// [`ConfigSpec::write`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigSpec {
    /// `[network] name`.
    pub network: String,
    /// `[network] da_authority`: the DA authority's public key (64 hex): a coordinator's
    /// node key, or a committee's group key; `None` = no DA authority.
    pub da_authority: Option<String>,
    /// `[bootstrap] dns_seeds`: DNS seed names.
    pub dns_seeds: Vec<String>,
    /// `[bootstrap] static_peers`: `IP:PORT` or multiaddrs.
    pub static_peers: Vec<String>,
    /// `[bootstrap] peers_file`, relative to the data directory.
    pub peers_file: String,
    /// `[bootstrap] dns_servers`: `IP:PORT` name servers; empty = system resolver.
    pub dns_servers: Vec<String>,
    /// `[bootstrap] default_port`: the port DNS seed addresses are dialled at.
    pub default_port: u16,
    /// `[bootstrap] max_outbound_connections`.
    pub max_outbound_connections: u32,
    /// `[bootstrap] max_inbound_connections`.
    pub max_inbound_connections: u32,
    /// `[bootstrap] dns_resolve_timeout_secs`.
    pub dns_resolve_timeout_secs: u64,
    /// `[bootstrap] peer_connect_timeout_secs`.
    pub peer_connect_timeout_secs: u64,
    /// `[bootstrap] pex_interval_secs`.
    pub pex_interval_secs: u64,
    /// `[bootstrap] retry_interval_secs`.
    pub retry_interval_secs: u64,
    /// `[bootstrap] min_peers`: below this many connected peers the node is partitioned.
    pub min_peers: u32,
    /// `[bootstrap] max_connections_per_peer`.
    pub max_connections_per_peer: u32,
    /// `[bootstrap] inbound_per_ip_per_minute`.
    pub inbound_per_ip_per_minute: u32,
    /// `[bootstrap] dns_refresh_interval_secs`.
    pub dns_refresh_interval_secs: u64,
    /// `[bootstrap] feeler_interval_secs`.
    pub feeler_interval_secs: u64,
    /// `[bootstrap] recovery_backoff_max_secs`.
    pub recovery_backoff_max_secs: u64,
    /// `[bootstrap] ban_duration_secs`.
    pub ban_duration_secs: u64,
    /// `[da]`: batching, backfill and snapshot settings.
    pub da: DaSpec,
    /// `[committee]` (Tahap 14A.2B): written only when set.
    pub committee: Option<CommitteeSpec>,
}

/// `[committee]` of a [`ConfigSpec`]: the coordinator committee (read by coordinators
/// only; see `dsdn_bootstrap::config::CommitteeConfig`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitteeSpec {
    /// `members`: PeerIds (base58), in FROST order; the first is the DA proposer.
    pub members: Vec<String>,
    /// `threshold`: shares a signature needs (2 ≤ t ≤ members).
    pub threshold: u16,
    /// `epoch`: the committee epoch.
    pub epoch: u64,
}

/// `[da]` of a [`ConfigSpec`]; defaults are the daemon's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaSpec {
    /// `batch_max_bytes`.
    pub batch_max_bytes: usize,
    /// `batch_max_events`.
    pub batch_max_events: usize,
    /// `batch_interval_ms`.
    pub batch_interval_ms: u64,
    /// `sync_chunk_blobs`.
    pub sync_chunk_blobs: u32,
    /// `sync_request_timeout_secs`.
    pub sync_request_timeout_secs: u64,
    /// `snapshot_interval_blobs`.
    pub snapshot_interval_blobs: u64,
    /// `publish_grace_secs`.
    pub publish_grace_secs: u64,
}

impl Default for DaSpec {
    fn default() -> Self {
        let d = dsdn_bootstrap::config::DaConfig::default();
        Self {
            batch_max_bytes: d.batch_max_bytes,
            batch_max_events: d.batch_max_events,
            batch_interval_ms: d.batch_interval.as_millis() as u64,
            sync_chunk_blobs: d.sync_chunk_blobs,
            sync_request_timeout_secs: d.sync_request_timeout.as_secs(),
            snapshot_interval_blobs: d.snapshot_interval_blobs,
            publish_grace_secs: d.publish_grace.as_secs(),
        }
    }
}

impl Default for ConfigSpec {
    fn default() -> Self {
        Self {
            network: "devnet".to_owned(),
            da_authority: None,
            dns_seeds: Vec::new(),
            static_peers: Vec::new(),
            peers_file: "peers.dat".to_owned(),
            dns_servers: Vec::new(),
            default_port: 30303,
            max_outbound_connections: 8,
            max_inbound_connections: 125,
            dns_resolve_timeout_secs: 10,
            peer_connect_timeout_secs: 5,
            pex_interval_secs: 900,
            retry_interval_secs: 30,
            min_peers: 3,
            max_connections_per_peer: 2,
            inbound_per_ip_per_minute: 10,
            dns_refresh_interval_secs: 1800,
            feeler_interval_secs: 3600,
            recovery_backoff_max_secs: 300,
            ban_duration_secs: 86_400,
            da: DaSpec::default(),
            committee: None,
        }
    }
}

#[derive(Serialize)]
struct File<'a> {
    network: NetworkSection<'a>,
    bootstrap: BootstrapSection<'a>,
    da: &'a DaSpec,
    #[serde(skip_serializing_if = "Option::is_none")]
    committee: Option<&'a CommitteeSpec>,
}

#[derive(Serialize)]
struct NetworkSection<'a> {
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    da_authority: Option<&'a str>,
}

#[derive(Serialize)]
struct BootstrapSection<'a> {
    dns_seeds: &'a [String],
    static_peers: &'a [String],
    peers_file: &'a str,
    dns_servers: &'a [String],
    default_port: u16,
    max_outbound_connections: u32,
    max_inbound_connections: u32,
    dns_resolve_timeout_secs: u64,
    peer_connect_timeout_secs: u64,
    pex_interval_secs: u64,
    retry_interval_secs: u64,
    min_peers: u32,
    max_connections_per_peer: u32,
    inbound_per_ip_per_minute: u32,
    dns_refresh_interval_secs: u64,
    feeler_interval_secs: u64,
    recovery_backoff_max_secs: u64,
    ban_duration_secs: u64,
}

impl ConfigSpec {
    /// Sets the network name.
    pub fn with_network(mut self, name: impl Into<String>) -> Self {
        self.network = name.into();
        self
    }

    /// Sets the DA authority public key (64 hex).
    pub fn with_da_authority(mut self, key_hex: impl Into<String>) -> Self {
        self.da_authority = Some(key_hex.into());
        self
    }

    /// Adds a DNS seed name.
    pub fn with_dns_seed(mut self, name: impl Into<String>) -> Self {
        self.dns_seeds.push(name.into());
        self
    }

    /// Adds a static peer (`IP:PORT` or a multiaddr).
    pub fn with_static_peer(mut self, peer: impl Into<String>) -> Self {
        self.static_peers.push(peer.into());
        self
    }

    /// Adds a name server to resolve DNS seeds with.
    pub fn with_dns_server(mut self, addr: SocketAddr) -> Self {
        self.dns_servers.push(addr.to_string());
        self
    }

    /// Sets the port DNS seed addresses are dialled at.
    pub fn with_default_port(mut self, port: u16) -> Self {
        self.default_port = port;
        self
    }

    /// Sets the PEX and bootstrap retry intervals.
    pub fn with_intervals(mut self, pex_interval_secs: u64, retry_interval_secs: u64) -> Self {
        self.pex_interval_secs = pex_interval_secs;
        self.retry_interval_secs = retry_interval_secs;
        self
    }

    /// Adds several DNS seed names, in order.
    pub fn with_dns_seeds<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.dns_seeds.extend(names.into_iter().map(Into::into));
        self
    }

    /// Adds several static peers, in order.
    pub fn with_static_peers<I, S>(mut self, peers: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.static_peers.extend(peers.into_iter().map(Into::into));
        self
    }

    /// Sets `peers_file` (relative to the data directory unless absolute).
    pub fn with_peers_file(mut self, file: impl Into<String>) -> Self {
        self.peers_file = file.into();
        self
    }

    /// Sets `max_outbound_connections` and `max_inbound_connections`.
    pub fn with_connection_limits(mut self, max_outbound: u32, max_inbound: u32) -> Self {
        self.max_outbound_connections = max_outbound;
        self.max_inbound_connections = max_inbound;
        self
    }

    /// Sets `dns_resolve_timeout_secs` and `peer_connect_timeout_secs`.
    pub fn with_timeouts(mut self, dns_resolve_secs: u64, peer_connect_secs: u64) -> Self {
        self.dns_resolve_timeout_secs = dns_resolve_secs;
        self.peer_connect_timeout_secs = peer_connect_secs;
        self
    }

    /// Sets `min_peers` (the partition threshold).
    pub fn with_min_peers(mut self, min_peers: u32) -> Self {
        self.min_peers = min_peers;
        self
    }

    /// Sets `max_connections_per_peer`.
    pub fn with_max_connections_per_peer(mut self, n: u32) -> Self {
        self.max_connections_per_peer = n;
        self
    }

    /// Sets `inbound_per_ip_per_minute`.
    pub fn with_inbound_per_ip_per_minute(mut self, n: u32) -> Self {
        self.inbound_per_ip_per_minute = n;
        self
    }

    /// Sets `dns_refresh_interval_secs` and `feeler_interval_secs`.
    pub fn with_refresh_intervals(mut self, dns_refresh_secs: u64, feeler_secs: u64) -> Self {
        self.dns_refresh_interval_secs = dns_refresh_secs;
        self.feeler_interval_secs = feeler_secs;
        self
    }

    /// Sets `recovery_backoff_max_secs`.
    pub fn with_recovery_backoff_max(mut self, secs: u64) -> Self {
        self.recovery_backoff_max_secs = secs;
        self
    }

    /// Sets `ban_duration_secs`.
    pub fn with_ban_duration(mut self, secs: u64) -> Self {
        self.ban_duration_secs = secs;
        self
    }

    /// `[committee]`: members (PeerIds, the first is the DA proposer), threshold, epoch.
    pub fn with_committee(mut self, members: Vec<String>, threshold: u16, epoch: u64) -> Self {
        self.committee = Some(CommitteeSpec {
            members,
            threshold,
            epoch,
        });
        self
    }

    /// `[da]` settings.
    pub fn with_da(mut self, da: DaSpec) -> Self {
        self.da = da;
        self
    }

    /// Short timings for tests on loopback: retry every second, 2 s dial and DNS timeouts,
    /// PEX every 2 s, partition-recovery backoff capped at 2 s, and DNS refresh / feeler
    /// connections rare enough (1 h) not to disturb counters. Everything else unchanged.
    pub fn fast(mut self) -> Self {
        self.retry_interval_secs = 1;
        self.pex_interval_secs = 2;
        self.dns_resolve_timeout_secs = 2;
        self.peer_connect_timeout_secs = 2;
        self.recovery_backoff_max_secs = 2;
        self.dns_refresh_interval_secs = 3600;
        self.feeler_interval_secs = 3600;
        self
    }

    /// The seeds.toml text.
    ///
    /// # Errors
    /// [`LocalNetError::Invalid`] when TOML encoding fails (it does not for any value of
    /// these field types, but the encoder's API is fallible).
    pub fn to_toml(&self) -> Result<String, LocalNetError> {
        let file = File {
            network: NetworkSection {
                name: &self.network,
                da_authority: self.da_authority.as_deref(),
            },
            bootstrap: BootstrapSection {
                dns_seeds: &self.dns_seeds,
                static_peers: &self.static_peers,
                peers_file: &self.peers_file,
                dns_servers: &self.dns_servers,
                default_port: self.default_port,
                max_outbound_connections: self.max_outbound_connections,
                max_inbound_connections: self.max_inbound_connections,
                dns_resolve_timeout_secs: self.dns_resolve_timeout_secs,
                peer_connect_timeout_secs: self.peer_connect_timeout_secs,
                pex_interval_secs: self.pex_interval_secs,
                retry_interval_secs: self.retry_interval_secs,
                min_peers: self.min_peers,
                max_connections_per_peer: self.max_connections_per_peer,
                inbound_per_ip_per_minute: self.inbound_per_ip_per_minute,
                dns_refresh_interval_secs: self.dns_refresh_interval_secs,
                feeler_interval_secs: self.feeler_interval_secs,
                recovery_backoff_max_secs: self.recovery_backoff_max_secs,
                ban_duration_secs: self.ban_duration_secs,
            },
            da: &self.da,
            committee: self.committee.as_ref(),
        };
        toml::to_string(&file)
            .map_err(|e| LocalNetError::Invalid(format!("cannot encode seeds.toml: {e}")))
    }

    /// Writes the seeds.toml to `path` (creating its parent directory).
    ///
    /// # Errors
    /// [`LocalNetError::Io`] naming the path.
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
            .with_da_authority("ab".repeat(32))
            .with_dns_seed("seed.devnet.dsdn")
            .with_static_peer("127.0.0.9:4000")
            .with_dns_server("127.0.0.1:5353".parse().expect("addr"))
            .with_default_port(31000)
            .with_intervals(5, 6);
        let text = spec.to_toml().expect("toml");
        let v: toml::Table = text.parse().expect("parses back");
        let net = v["network"].as_table().expect("network");
        assert_eq!(net["name"].as_str(), Some("testnet"));
        assert_eq!(net["da_authority"].as_str(), Some("ab".repeat(32).as_str()));
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
        let cfg = dsdn_bootstrap::config::SeedsConfig::from_toml_str(&text)
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
        let parsed = dsdn_bootstrap::config::SeedsConfig::from_toml_str(&text).expect("parses");
        let d = dsdn_bootstrap::config::BootstrapConfig::default();
        assert_eq!(parsed.bootstrap, d, "{text}");
        assert_eq!(
            parsed.da,
            dsdn_bootstrap::config::DaConfig::default(),
            "{text}"
        );
        let fast = ConfigSpec::default()
            .with_da(DaSpec {
                batch_interval_ms: 7,
                sync_request_timeout_secs: 2,
                ..DaSpec::default()
            })
            .to_toml()
            .expect("toml");
        let parsed = dsdn_bootstrap::config::SeedsConfig::from_toml_str(&fast).expect("parses");
        assert_eq!(parsed.da.batch_interval.as_millis(), 7);
        assert_eq!(parsed.da.sync_request_timeout.as_secs(), 2);
    }

    #[test]
    fn no_authority_key_when_unset_and_empty_lists_written() {
        let text = ConfigSpec::default().to_toml().expect("toml");
        assert!(!text.contains("da_authority"), "{text}");
        assert!(text.contains("static_peers = []"), "{text}");
    }

    #[test]
    fn committee_section_is_written_and_parsed_back() {
        let ids: Vec<String> = (0..3)
            .map(|_| {
                libp2p::identity::Keypair::generate_ed25519()
                    .public()
                    .to_peer_id()
                    .to_string()
            })
            .collect();
        let text = ConfigSpec::default()
            .with_committee(ids.clone(), 2, 4)
            .to_toml()
            .expect("toml");
        let cfg = dsdn_bootstrap::config::SeedsConfig::from_toml_str(&text)
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
    fn write_creates_parent() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a/b/seeds.toml");
        ConfigSpec::default().write(&path).expect("write");
        assert!(std::fs::read_to_string(&path)
            .expect("read")
            .contains("[bootstrap]"));
    }
}
