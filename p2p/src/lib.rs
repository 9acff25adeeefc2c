//! The DSDN libp2p swarm: transports, the handshake, peer exchange, DA gossip, Kademlia and
//! the event loop.
//!
//! ```text
//!             NodeHandle (clone) ──Command──▶ EventLoop ──▶ Swarm<Behaviour>
//!                                              │              ├─ PeerManager  (fallback chain, dials, limits, peers.dat)
//!                                              │              ├─ handshake    /dsdn/handshake/1.0.0
//!                                              │              ├─ pex          /dsdn/<net>/pex/1.0.0
//!                                              │              ├─ gossipsub    /dsdn/<net>/meshsub/1.1.0
//!                                              │              └─ kad          /dsdn/<net>/kad/1.0.0
//!                                              └─ DaGossip (verify + in-order DA log)
//! ```
//!
//! Start a node with [`Node::start`], spawn its [`EventLoop::run`], and talk to it through
//! the [`NodeHandle`].
#![deny(missing_docs)]

pub mod behaviour;
pub mod codec;
pub mod config;
pub mod da;
pub mod event_loop;
pub mod handle;
pub mod metrics;
pub mod node;
pub mod peer_manager;

pub use config::NodeConfig;
pub use event_loop::EventLoop;
pub use handle::NodeHandle;
pub use metrics::Metrics;
pub use node::Node;
