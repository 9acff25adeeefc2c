//! The DSDN handshake (28.1.B §2, 28.1.C §2).
//!
//! Right after a connection is established, the dialer sends its [`Handshake`] and the
//! listener answers with its own; each side then runs [`Handshake::check`] against its own
//! view. The handshake's protocol id (`/dsdn/handshake/1.0.0`) deliberately does *not* carry
//! the network id: it is the one place where a node of another network is recognised, told
//! apart, counted by reason and disconnected. Every other protocol id is network-scoped.

use serde::{Deserialize, Serialize};

use crate::{NetworkId, ProtocolVersion, ServiceSet};

/// The handshake's libp2p protocol id (not network-scoped, see the module docs).
pub const HANDSHAKE_PROTOCOL: &str = "/dsdn/handshake/1.0.0";

/// Largest encoded handshake accepted, in bytes.
pub const MAX_HANDSHAKE_BYTES: usize = 4 * 1024;

/// Most listen addresses a handshake may carry.
pub const MAX_LISTEN_ADDRS: usize = 16;

/// Longest single listen address (binary multiaddr), in bytes.
pub const MAX_ADDR_BYTES: usize = 128;

/// What each side of a connection tells the other.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// The sender's protocol version.
    pub protocol_version: ProtocolVersion,
    /// The sender's network id.
    pub network_id: String,
    /// The sender's libp2p PeerId, as bytes (must equal the authenticated connection peer).
    #[serde(with = "serde_bytes")]
    pub node_id: Vec<u8>,
    /// The sender's listen addresses, as binary multiaddrs (at most [`MAX_LISTEN_ADDRS`]).
    pub listen_addrs: Vec<serde_bytes::ByteBuf>,
    /// The service types the sender advertises.
    pub services: ServiceSet,
}

/// Why a handshake is refused. [`HandshakeError::reason`] gives the metric label.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HandshakeError {
    /// The peer belongs to another network.
    #[error("network id mismatch: ours is {ours}, the peer's is {theirs:?}")]
    NetworkMismatch {
        /// Our network id.
        ours: String,
        /// The id the peer sent.
        theirs: String,
    },
    /// The peer's major protocol version differs from ours.
    #[error("incompatible protocol version: ours is {ours}, the peer's is {theirs}")]
    IncompatibleVersion {
        /// Our version.
        ours: ProtocolVersion,
        /// The peer's version.
        theirs: ProtocolVersion,
    },
    /// The node id in the handshake is not the authenticated PeerId of the connection.
    #[error("node id in the handshake does not match the connection's peer id")]
    NodeIdMismatch,
    /// The handshake is malformed (too many or too long addresses, undecodable bytes).
    #[error("malformed handshake: {0}")]
    Malformed(String),
    /// The peer did not answer in time.
    #[error("handshake timed out")]
    Timeout,
    /// The peer does not speak the handshake protocol.
    #[error("peer does not support {HANDSHAKE_PROTOCOL}")]
    UnsupportedProtocol,
    /// The connection failed during the handshake.
    #[error("connection failed during handshake: {0}")]
    Io(String),
}

impl HandshakeError {
    /// Every value [`HandshakeError::reason`] returns.
    pub const REASONS: [&'static str; 7] = [
        "network_mismatch",
        "incompatible_version",
        "node_id_mismatch",
        "malformed",
        "timeout",
        "unsupported_protocol",
        "io",
    ];

    /// The `reason` label of `bootstrap_peer_handshake_failure`: `network_mismatch`,
    /// `incompatible_version`, `node_id_mismatch`, `malformed`, `timeout`,
    /// `unsupported_protocol` or `io`.
    pub fn reason(&self) -> &'static str {
        match self {
            HandshakeError::NetworkMismatch { .. } => "network_mismatch",
            HandshakeError::IncompatibleVersion { .. } => "incompatible_version",
            HandshakeError::NodeIdMismatch => "node_id_mismatch",
            HandshakeError::Malformed(_) => "malformed",
            HandshakeError::Timeout => "timeout",
            HandshakeError::UnsupportedProtocol => "unsupported_protocol",
            HandshakeError::Io(_) => "io",
        }
    }
}

impl Handshake {
    /// Checks a received handshake against our network and version and against the
    /// authenticated peer id of the connection (`connection_peer`, PeerId bytes).
    ///
    /// # Errors
    /// The first [`HandshakeError`] that applies, checked in this order: malformed, network,
    /// version, node id.
    pub fn check(
        &self,
        ours: &NetworkId,
        our_version: ProtocolVersion,
        connection_peer: &[u8],
    ) -> Result<(), HandshakeError> {
        if self.listen_addrs.len() > MAX_LISTEN_ADDRS {
            return Err(HandshakeError::Malformed(format!(
                "{} listen addresses (max {MAX_LISTEN_ADDRS})",
                self.listen_addrs.len()
            )));
        }
        if self.listen_addrs.iter().any(|a| a.len() > MAX_ADDR_BYTES) {
            return Err(HandshakeError::Malformed("listen address too long".into()));
        }
        if self.network_id != ours.as_str() {
            return Err(HandshakeError::NetworkMismatch {
                ours: ours.to_string(),
                theirs: self.network_id.chars().take(64).collect(),
            });
        }
        if !our_version.is_compatible(&self.protocol_version) {
            return Err(HandshakeError::IncompatibleVersion {
                ours: our_version,
                theirs: self.protocol_version,
            });
        }
        if self.node_id != connection_peer {
            return Err(HandshakeError::NodeIdMismatch);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{codec, ServiceType, PROTOCOL_VERSION};
    use proptest::prelude::*;

    fn sample() -> Handshake {
        Handshake {
            protocol_version: PROTOCOL_VERSION,
            network_id: "devnet".into(),
            node_id: vec![7; 38],
            listen_addrs: vec![serde_bytes::ByteBuf::from(vec![4, 127, 0, 0, 1])],
            services: ServiceSet::from_types([ServiceType::Storage]),
        }
    }

    #[test]
    fn check_reasons() {
        let net = NetworkId::new("devnet").unwrap();
        let hs = sample();
        assert_eq!(hs.check(&net, PROTOCOL_VERSION, &[7; 38]), Ok(()));
        let other = NetworkId::new("testnet").unwrap();
        assert_eq!(
            hs.check(&other, PROTOCOL_VERSION, &[7; 38])
                .unwrap_err()
                .reason(),
            "network_mismatch"
        );
        let v2 = ProtocolVersion { major: 2, minor: 0 };
        assert_eq!(
            hs.check(&net, v2, &[7; 38]).unwrap_err().reason(),
            "incompatible_version"
        );
        assert_eq!(
            hs.check(&net, PROTOCOL_VERSION, &[8; 38])
                .unwrap_err()
                .reason(),
            "node_id_mismatch"
        );
        let mut many = sample();
        many.listen_addrs = vec![serde_bytes::ByteBuf::from(vec![0]); MAX_LISTEN_ADDRS + 1];
        assert_eq!(
            many.check(&net, PROTOCOL_VERSION, &[7; 38])
                .unwrap_err()
                .reason(),
            "malformed"
        );
    }

    proptest! {
        #[test]
        fn round_trip_and_size(
            net in "[a-z][a-z0-9-]{0,31}",
            id in proptest::collection::vec(any::<u8>(), 0..64),
            addrs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..MAX_ADDR_BYTES), 0..=MAX_LISTEN_ADDRS),
            bits in any::<u16>(),
            major in any::<u16>(), minor in any::<u16>(),
        ) {
            let hs = Handshake {
                protocol_version: ProtocolVersion { major, minor },
                network_id: net,
                node_id: id,
                listen_addrs: addrs.into_iter().map(serde_bytes::ByteBuf::from).collect(),
                services: ServiceSet::from_bits(bits),
            };
            // The largest legal handshake fits the cap.
            let bytes = codec::encode(&hs, MAX_HANDSHAKE_BYTES).unwrap();
            prop_assert_eq!(codec::decode::<Handshake>(&bytes, MAX_HANDSHAKE_BYTES).unwrap(), hs);
        }
    }
}
