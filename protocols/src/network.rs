//! Network ids, the protocol version, protocol-id construction and peer sources.
//!
//! Spec: 28.1.B §2 ("network_id harus sama") and 28.1.B §4 (the `source` of a peers.dat entry).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Longest accepted network id, in bytes.
pub const MAX_NETWORK_ID_LEN: usize = 32;

/// The network a node belongs to: `mainnet`, `testnet`, `devnet`, or the name of a private
/// network.
///
/// A valid id is 1–32 bytes of lowercase ASCII letters, digits and `-`, starting with a
/// letter. Every protocol id but the handshake's embeds it (see [`NetworkId::protocol`]), so
/// nodes of different networks never share a DHT or a gossip mesh.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct NetworkId(String);

/// Why a string is not a valid [`NetworkId`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid network id {0:?}: expected 1-32 lowercase letters, digits or '-', starting with a letter")]
pub struct NetworkIdError(pub String);

impl NetworkId {
    /// Validates and wraps a network id.
    ///
    /// # Errors
    /// [`NetworkIdError`] when `name` is empty, longer than [`MAX_NETWORK_ID_LEN`], or has a
    /// character other than `a-z`, `0-9`, `-`, or does not start with a letter.
    pub fn new(name: &str) -> Result<Self, NetworkIdError> {
        let ok = !name.is_empty()
            && name.len() <= MAX_NETWORK_ID_LEN
            && name.as_bytes()[0].is_ascii_lowercase()
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if ok {
            Ok(Self(name.to_owned()))
        } else {
            Err(NetworkIdError(name.to_owned()))
        }
    }

    /// The id as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// True for the production network, which must have at least one DNS seed.
    pub fn is_mainnet(&self) -> bool {
        self.0 == "mainnet"
    }

    /// A network-scoped libp2p protocol id: `/dsdn/<network>/<name>/<version>`,
    /// e.g. `/dsdn/devnet/pex/1.0.0`.
    pub fn protocol(&self, name: &str, version: &str) -> String {
        format!("/dsdn/{}/{}/{}", self.0, name, version)
    }

    /// The gossipsub topic carrying DA events: `dsdn/<network>/da-events/1`.
    pub fn da_topic(&self) -> String {
        format!("dsdn/{}/da-events/1", self.0)
    }

    /// The gossipsub topic of threshold-signed receipts: `dsdn/<network>/receipts/1`.
    pub fn receipts_topic(&self) -> String {
        format!("dsdn/{}/receipts/1", self.0)
    }
}

impl fmt::Display for NetworkId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for NetworkId {
    type Err = NetworkIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for NetworkId {
    type Error = NetworkIdError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(&s)
    }
}

impl From<NetworkId> for String {
    fn from(id: NetworkId) -> Self {
        id.0
    }
}

/// A protocol version `major.minor`. Peers are compatible when their majors are equal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProtocolVersion {
    /// Incompatible changes bump the major version.
    pub major: u16,
    /// Compatible additions bump the minor version.
    pub minor: u16,
}

impl ProtocolVersion {
    /// True when a peer speaking `other` can talk to a peer speaking `self`.
    pub fn is_compatible(&self, other: &ProtocolVersion) -> bool {
        self.major == other.major
    }
}

impl fmt::Display for ProtocolVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.major, self.minor)
    }
}

/// The DSDN peer protocol version this build speaks.
pub const PROTOCOL_VERSION: ProtocolVersion = ProtocolVersion { major: 1, minor: 0 };

/// Where a node first learned of a peer (28.1.B §4 `source`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PeerSource {
    /// Resolved from a DNS seed.
    DnsSeed,
    /// Listed in `static_peers` of seeds.toml (or added by an operator).
    StaticConfig,
    /// Learned from another peer through PEX.
    PeerExchange,
    /// The peer connected to us.
    Inbound,
    /// Found as a provider of a service type in the Kademlia DHT (28.1.C §2).
    Kademlia,
}

impl PeerSource {
    /// All sources, in a fixed order.
    pub const ALL: [PeerSource; 5] = [
        PeerSource::DnsSeed,
        PeerSource::StaticConfig,
        PeerSource::PeerExchange,
        PeerSource::Inbound,
        PeerSource::Kademlia,
    ];

    /// The lowercase name used in JSON, metrics and tables (`dns_seed`, `static_config`,
    /// `peer_exchange`, `inbound`, `kademlia`).
    pub fn as_str(&self) -> &'static str {
        match self {
            PeerSource::DnsSeed => "dns_seed",
            PeerSource::StaticConfig => "static_config",
            PeerSource::PeerExchange => "peer_exchange",
            PeerSource::Inbound => "inbound",
            PeerSource::Kademlia => "kademlia",
        }
    }
}

impl fmt::Display for PeerSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_ids() {
        for ok in ["mainnet", "testnet", "devnet", "my-net-2"] {
            assert!(NetworkId::new(ok).is_ok(), "{ok}");
        }
        for bad in ["", "Mainnet", "2net", "net/x", "a b", &"a".repeat(33)] {
            assert!(NetworkId::new(bad).is_err(), "{bad}");
        }
        let id = NetworkId::new("devnet").unwrap();
        assert_eq!(id.protocol("pex", "1.0.0"), "/dsdn/devnet/pex/1.0.0");
        assert!(NetworkId::new("mainnet").unwrap().is_mainnet());
    }

    #[test]
    fn versions() {
        let v = ProtocolVersion { major: 1, minor: 7 };
        assert!(PROTOCOL_VERSION.is_compatible(&v));
        assert!(!PROTOCOL_VERSION.is_compatible(&ProtocolVersion { major: 2, minor: 0 }));
    }
}
