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
    /// `[network] da_authority`: the coordinator's public key (64 hex), if any.
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
        }
    }
}

#[derive(Serialize)]
struct File<'a> {
    network: NetworkSection<'a>,
    bootstrap: BootstrapSection<'a>,
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
            },
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
    fn no_authority_key_when_unset_and_empty_lists_written() {
        let text = ConfigSpec::default().to_toml().expect("toml");
        assert!(!text.contains("da_authority"), "{text}");
        assert!(text.contains("static_peers = []"), "{text}");
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
