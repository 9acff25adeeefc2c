//! The DSDN libp2p swarm: transports, the handshake, peer exchange, DA gossip, Kademlia and
//! the event loop.
//!
//! ```text
//!             NodeHandle (clone) ──Command──▶ EventLoop ──▶ Swarm<Behaviour>
//!                                              │              ├─ peer_manager (fallback chain, dials, limits)
//!                                              │              ├─ handshake    /dsdn/handshake/1.0.0        (net::handshake)
//!                                              │              ├─ pex          /dsdn/<net>/pex/1.0.0        (net::pex)
//!                                              │              ├─ gossipsub    /dsdn/<net>/meshsub/1.1.0
//!                                              │              ├─ kad          /dsdn/<net>/kad/1.0.0
//!                                              │              ├─ da_sync      /dsdn/<net>/da-sync/1.0.0    (net::rpc)
//!                                              │              ├─ da_register  /dsdn/<net>/da-register/1.0.0 (net::rpc)
//!                                              │              ├─ committee    /dsdn/<net>/committee/1.0.0  (net::rpc)
//!                                              │              └─ workload     /dsdn/<net>/workload/1.0.0   (net::rpc)
//!                                              ├─ DaService (verify, DaChain, backfill, sealing; log writer thread)
//!                                              ├─ CommitteeService (FROST DKG, threshold signing, key share)
//!                                              └─ workloads and receipts
//! ```
//!
//! Each request/response protocol is a [`net::component::Component`] that owns its state
//! and outstanding requests and emits one typed event; the event loop only routes those
//! events to the peer manager and the services. The address book ([`dsdn_peers::PeerStore`])
//! is in memory and written to peers.dat by a background thread; the DA log by its own
//! writer thread: the event loop does no disk write on the peer or blob paths.
//!
//! Start a node with [`Node::start`], spawn its [`EventLoop::run`], and talk to it through
//! the [`NodeHandle`].
//!
//! # Light client
//!
//! A program that only wants to follow the network embeds a [`LightClient`]: it bootstraps
//! through the same fallback chain (peers.dat, static peers, DNS seeds), does not listen, is
//! never advertised, verifies every DA blob against the network's DA authority and
//! yields each applied blob as a [`DaNotice`] (see [`light`]):
//!
//! ```no_run
//! use dsdn_p2p::seeds::SeedsConfig;
//! use dsdn_p2p::{LightClient, LightConfig};
//!
//! #[tokio::main]
//! async fn main() -> Result<(), Box<dyn std::error::Error>> {
//!     let seeds = SeedsConfig::load("seeds.toml")?;
//!     let mut config = LightConfig::from_seeds(&seeds);
//!     config.data_dir = Some("light-data".into()); // optional: warm start next time
//!     let mut client = LightClient::start(config)?;
//!     while let Some(notice) = client.next().await {
//!         for event in &notice.events {
//!             println!("height {} {} root {}", notice.height, event.kind(), hex::encode(notice.state_root));
//!         }
//!     }
//!     Ok(())
//! }
//! ```
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod behaviour;
pub mod codec;
pub mod committee;
pub mod config;
pub mod da;
pub mod event_loop;
pub mod handle;
pub mod light;
pub mod metrics;
pub mod net;
pub mod node;
pub mod peer_manager;
pub mod seeds;
pub mod workload;

pub use config::NodeConfig;
pub use da::DaNotice;
pub use event_loop::EventLoop;
pub use handle::NodeHandle;
pub use light::{LightClient, LightConfig};
pub use metrics::Metrics;
pub use node::Node;
