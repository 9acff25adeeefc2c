//! Bootstrap of the DSDN P2P daemon (Tahap 28.1.A–C): seeds.toml, DNS seed resolution, a
//! small authoritative seed DNS server, the operator's run-time additions, and the pure state
//! machines deciding when to bootstrap, recover from a partition and refresh peers.
//!
//! - [`config`]: the `[network]` and `[bootstrap]` sections of seeds.toml ([`NetworkConfig`],
//!   [`BootstrapConfig`]), DNS seeds and static peers (28.1.A §1–§3); the whole file is
//!   `dsdn_p2p::seeds::SeedsConfig`.
//! - [`resolver`]: [`SeedResolver`], an async, timeout-bounded A/AAAA resolver for DNS seeds
//!   (28.1.A deliverable 3, 28.1.B §1).
//! - `seed_server` (cargo feature `seed-server`, off by default): `SeedServer`, an
//!   in-process authoritative DNS server answering A/AAAA for seed names, for local
//!   networks (`dsdn-agent devnet`) and tests.
//! - [`fallback`]: [`FallbackChain`], the peers.dat → static peers → DNS seeds → retry chain
//!   of 28.1.A §4, as a pure state machine driven by the caller's clock.
//! - [`added`]: [`AddedSources`], static peers and DNS seeds added by the operator at run
//!   time (`dsdn-agent peers add`, `peers add-seed`; 28.1.C §7), kept in
//!   `added-peers.toml` across restarts.
//! - [`recovery`]: [`PartitionRecovery`], partition detection (fewer than `min_peers`
//!   peers) and recovery sweeps with exponential backoff (28.1.C §4), pure like the chain.
//! - [`rotation`]: [`RotationSchedule`], the periodic DNS refresh, PEX and feeler tasks of
//!   28.1.B §6, pure like the chain.
#![deny(missing_docs)]

pub mod added;
pub mod config;
pub mod fallback;
pub mod recovery;
pub mod resolver;
pub mod rotation;
#[cfg(feature = "seed-server")]
pub mod seed_server;

pub use added::{AddedError, AddedKind, AddedSources, ADDED_FILE, MAX_ADDED};
pub use config::{
    socket_dial_addrs, BootstrapConfig, ConfigError, DnsSeed, KeyError, NetworkConfig, StaticPeer,
};
pub use fallback::{Action, FallbackChain, FallbackConfig, Stage};
pub use recovery::{PartitionRecovery, RecoveryConfig, RecoveryEvent};
pub use resolver::{ResolveError, Resolved, ResolverInitError, SeedResolver};
pub use rotation::{Rotation, RotationConfig, RotationSchedule, FEELERS_PER_ROUND};
#[cfg(feature = "seed-server")]
pub use seed_server::SeedServer;
