//! The DSDN libp2p swarm and the node's services on it.
//!
//! Two layers, one event loop between them (issue 11):
//!
//! * **The network layer** ([`net`]): the composed [`net::behaviour::Behaviour`] (one
//!   [`net::component::Component`] per protocol, each owning its state and its outstanding
//!   requests or queries and emitting one typed event), the [`net::peer_manager`]
//!   (fallback chain, admission, dials, limits, peers.dat bookkeeping) and the read-only
//!   peer view services use. Transports are built in [`node`].
//! * **The services** — [`da`] (the DA log: verify, order, apply, backfill, seal, register;
//!   its log writer thread), [`committee`] (FROST DKG and threshold signing; its guard
//!   writer thread) and [`workload`] (executions, receipts) — are pure drivers: they take
//!   `now`, own their state, never touch the swarm, and queue actions (send a request,
//!   answer one, gossip, report a verdict, penalise a peer, persist) that the event loop
//!   carries out. Each is unit-tested without a swarm.
//! * **The [`EventLoop`]** routes swarm events, commands from the [`NodeHandle`] and the
//!   writers' reports to the components and services, and carries out their actions.
//!
//! ```text
//!  NodeHandle (clone) ──Command──▶ EventLoop ──▶ Swarm<Behaviour>                  (net)
//!                                  │              ├─ peer_manager  fallback chain, admission, dials, limits
//!                                  │              ├─ handshake     /dsdn/handshake/1.0.0          (net::handshake)
//!                                  │              ├─ pex           /dsdn/<net>/pex/1.0.0          (net::pex)
//!                                  │              ├─ gossipsub     /dsdn/<net>/meshsub/1.1.0
//!                                  │              ├─ discovery     /dsdn/<net>/kad/1.0.0          (net::discovery)
//!                                  │              ├─ identify      /ipfs/id/1.0.0
//!                                  │              ├─ ping          /ipfs/ping/1.0.0
//!                                  │              ├─ da_sync       /dsdn/<net>/da-sync/1.0.0      (net::rpc)
//!                                  │              ├─ da_register   /dsdn/<net>/da-register/1.0.0  (net::rpc)
//!                                  │              ├─ committee     /dsdn/<net>/committee/1.0.0    (net::rpc)
//!                                  │              └─ workload      /dsdn/<net>/workload/1.0.0     (net::rpc)
//!                                  ├─ DaService ──DaAction──▶        (da;        LogWriter thread: da-log.redb)
//!                                  ├─ CommitteeService ──CommitteeAction──▶ (committee; GuardWriter thread)
//!                                  └─ WorkloadService ──WorkloadAction──▶   (workload; executions on the blocking pool)
//! ```
//!
//! The address book ([`dsdn_peers::PeerStore`]) is in memory and written to peers.dat by
//! a background thread, the DA log and the committee's signing guard by their own writer
//! threads: the event loop does no disk write on the peer, blob or signing paths.
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
pub mod seeds;
pub mod storage;
pub mod workload;

pub use config::NodeConfig;
pub use da::DaNotice;
pub use event_loop::EventLoop;
pub use handle::NodeHandle;
pub use light::{LightClient, LightConfig};
pub use metrics::Metrics;
pub use node::Node;
