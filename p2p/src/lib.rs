//! The DSDN libp2p swarm: transports, the handshake, peer exchange, DA gossip, Kademlia and
//! the event loop.
//!
//! ```text
//!             NodeHandle (clone) ──Command──▶ EventLoop ──▶ Swarm<Behaviour>
//!                                              │              ├─ PeerManager  (fallback chain, dials, limits, peers.dat)
//!                                              │              ├─ handshake    /dsdn/handshake/1.0.0
//!                                              │              ├─ pex          /dsdn/<net>/pex/1.0.0
//!                                              │              ├─ gossipsub    /dsdn/<net>/meshsub/1.1.0
//!                                              │              ├─ kad          /dsdn/<net>/kad/1.0.0
//!                                              │              ├─ da_sync      /dsdn/<net>/da-sync/1.0.0
//!                                              │              ├─ da_register  /dsdn/<net>/da-register/1.0.0
//!                                              │              └─ committee    /dsdn/<net>/committee/1.0.0
//!                                              ├─ DaService (verify, DaChain, da-log.redb, backfill, sealing)
//!                                              └─ CommitteeService (FROST DKG, threshold signing, key share)
//! ```
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
//! use dsdn_bootstrap::config::SeedsConfig;
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
pub mod workload;

pub use config::NodeConfig;
pub use da::DaNotice;
pub use event_loop::EventLoop;
pub use handle::NodeHandle;
pub use light::{LightClient, LightConfig};
pub use metrics::Metrics;
pub use node::Node;
