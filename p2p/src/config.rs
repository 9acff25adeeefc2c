//! Configuration of a node's peer-to-peer layer.

use std::net::SocketAddr;
use std::path::PathBuf;

use dsdn_bootstrap::config::BootstrapConfig;
use dsdn_protocols::{NetworkId, ServiceSet, ServiceType};
use libp2p::identity::Keypair;

/// Everything [`crate::Node::start`] needs.
///
/// The daemon builds it from seeds.toml (`dsdn_bootstrap::config::SeedsConfig`), the
/// command line and the node key in the data directory.
#[derive(Clone)]
pub struct NodeConfig {
    /// The node's Ed25519 identity; its PeerId is the node id.
    pub keypair: Keypair,
    /// The network id; every protocol id but the handshake's carries it.
    pub network: NetworkId,
    /// The Ed25519 public key whose signature makes a DA envelope valid (`None`: this node
    /// accepts no DA events).
    pub da_authority: Option<[u8; 32]>,
    /// Service types advertised in the handshake and in PEX entries.
    pub services: ServiceSet,
    /// Whether to subscribe to the DA events topic (dedicated bootstrap nodes do not).
    pub subscribe_da: bool,
    /// One `IP:PORT` served by both QUIC (UDP) and TCP.
    pub listen: SocketAddr,
    /// Bootstrap sources, limits and timeouts from seeds.toml.
    pub bootstrap: BootstrapConfig,
    /// Absolute path of peers.dat.
    pub peers_file: PathBuf,
    /// Where `peers add` / `peers add-seed` additions are kept
    /// (`<data dir>/added-peers.toml`); read at start, rewritten on each addition.
    pub added_file: PathBuf,
    /// Reported in the status, e.g. `dsdnd/0.1.0`.
    pub agent_version: String,
    /// The daemon's mode (`bootstrap`, `storage`, `coordinator`, `validator`, `chain`,
    /// `ingress`, `light`), for status output.
    pub mode: String,
    /// Roles this node needs connected, with a minimum count each (28.1.C §1: a validator
    /// needs chain and coordinator peers, …). The peer manager looks missing ones up in
    /// Kademlia and keeps these minimums before filling the rest by score and diversity.
    pub required_roles: Vec<(ServiceType, usize)>,
    /// A light client: does not listen, runs Kademlia in client mode, answers no PEX
    /// request and is never advertised (its handshake carries no listen address).
    pub light: bool,
}
