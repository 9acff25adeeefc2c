//! Configuration of a node's peer-to-peer layer.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use dsdn_bootstrap::added::ADDED_FILE;
use dsdn_bootstrap::config::BootstrapConfig;
use dsdn_protocols::da::register::RegisterRequest;
use dsdn_protocols::{AddressPolicy, NetworkId, ServiceSet, ServiceType};
use libp2p::identity::Keypair;

use crate::committee::CommitteeNodeConfig;
use crate::da::DaConfig;

/// Everything [`crate::Node::start`] needs.
///
/// The daemon builds it from seeds.toml ([`crate::seeds::SeedsConfig`]), the
/// command line and the node key in the data directory. Start from [`NodeConfig::new`] and
/// set what differs, `NodeConfig { services, listen, ..NodeConfig::new(key, network, dir) }`,
/// so that a new field with a default touches this file only.
#[derive(Clone)]
pub struct NodeConfig {
    /// The node's Ed25519 identity; its PeerId is the node id.
    pub keypair: Keypair,
    /// The network id; every protocol id but the handshake's carries it.
    pub network: NetworkId,
    /// Which peer addresses are stored, taken from handshakes, PEX and identify, and shared
    /// (`[network] allow_private_addresses`; default [`AddressPolicy::default_for`] the
    /// network: private addresses allowed on `devnet` only). It also decides what this node
    /// advertises: where private addresses are allowed, its listen addresses beside the
    /// confirmed external ones, and Kademlia serves from the start; elsewhere only confirmed
    /// and operator-given addresses (issue 12 §2), and Kademlia serves once one exists.
    pub address_policy: AddressPolicy,
    /// The Ed25519 public key whose signature makes a DA blob valid (`None`: this node
    /// accepts no DA events).
    pub da_authority: Option<[u8; 32]>,
    /// Service types advertised in the handshake and in PEX entries.
    pub services: ServiceSet,
    /// Whether to keep the DA log: subscribe to the DA topic, store and serve the log
    /// (dedicated bootstrap nodes do not).
    pub subscribe_da: bool,
    /// `[da]` of seeds.toml: batching and backfill settings.
    pub da: DaConfig,
    /// Where the DA log and its derived state (`da-log.redb`) live, normally
    /// the data directory. `None`: the log is kept in memory only (light clients).
    pub da_dir: Option<PathBuf>,
    /// A storage node's registration (zone, capacity, class), sent to the DA authority
    /// until the node's `NodeRegistered` event is in its replayed state. `None` for other
    /// roles.
    pub registration: Option<RegisterRequest>,
    /// Reachability and NAT traversal: operator-given external addresses, the AutoNAT
    /// server, the relay server and its limits, relay reservations, UPnP.
    pub nat: crate::net::nat::NatConfig,
    /// The `IP:PORT`s to listen on, IPv4 and IPv6 alike, each served by both QUIC (UDP)
    /// and TCP. `0.0.0.0:P` and `[::]:P` can be given together: libp2p's TCP and QUIC
    /// transports set `IPV6_V6ONLY` on IPv6 sockets, so the two bind side by side.
    pub listen: Vec<SocketAddr>,
    /// When true, an IPv6 entry of [`NodeConfig::listen`] that cannot be bound because the
    /// host has no IPv6 is skipped with a warning instead of failing the start (the
    /// default listen addresses); when false (addresses the operator gave) every entry
    /// must be bound.
    pub listen_ipv6_optional: bool,
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
    /// This node's membership of the coordinator committee (`None`: not a member; the
    /// committee protocol is not spoken).
    pub committee: Option<CommitteeNodeConfig>,
    /// Workload execution and receipts: the executor on storage nodes, caps and timeouts.
    pub workload: crate::workload::WorkloadConfig,
}

/// File name of peers.dat in the data directory.
pub(crate) const PEERS_FILE: &str = "peers.dat";

impl NodeConfig {
    /// A full node of `network` with identity `keypair`, keeping its files in `data_dir`
    /// (`peers.dat`, `added-peers.toml`, the DA log), and everything else at
    /// its default: no DA authority (it accepts no DA event), no service advertised, the DA
    /// log kept (`subscribe_da`), the `[da]` and `[bootstrap]` defaults of seeds.toml,
    /// listening on `0.0.0.0:<default_port>` and `[::]:<default_port>` ([`default_listen`];
    /// the IPv6 one skipped where the host has no IPv6), no registration, no required role,
    /// not a light client, no committee membership, the default workload settings, the
    /// network's default address policy, agent version
    /// `dsdnd/<crate version>` and mode `node` (status output only).
    pub fn new(keypair: Keypair, network: NetworkId, data_dir: &Path) -> Self {
        let bootstrap = BootstrapConfig::default();
        Self {
            keypair,
            address_policy: AddressPolicy::default_for(&network),
            network,
            da_authority: None,
            services: ServiceSet::EMPTY,
            subscribe_da: true,
            da: DaConfig::default(),
            da_dir: Some(data_dir.to_path_buf()),
            registration: None,
            nat: crate::net::nat::NatConfig::default(),
            listen: default_listen(bootstrap.default_port),
            listen_ipv6_optional: true,
            bootstrap,
            peers_file: data_dir.join(PEERS_FILE),
            added_file: data_dir.join(ADDED_FILE),
            agent_version: format!("dsdnd/{}", env!("CARGO_PKG_VERSION")),
            mode: "node".to_owned(),
            required_roles: Vec::new(),
            light: false,
            committee: None,
            workload: crate::workload::WorkloadConfig::default(),
        }
    }
}

/// The default listen addresses: `0.0.0.0:<port>` and `[::]:<port>` (dual stack).
pub fn default_listen(port: u16) -> Vec<SocketAddr> {
    vec![
        SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)),
        SocketAddr::from((Ipv6Addr::UNSPECIFIED, port)),
    ]
}
