//! DSDN wire types, the CBOR codec, signatures and pure protocol state machines.
//!
//! This crate performs no I/O. Everything that crosses the network or is written to disk
//! is defined here, is encoded with [`codec`] (the only place that touches `serde_cbor`)
//! and carries an explicit size cap that is enforced *before* decoding.
//!
//! Spec: `dsdn-roadmap.md`, Tahap 28.1.B §2–§3 (handshake, PEX), 28.1.C §2 (service types)
//! Tahap 14A §1 (DA events) and 14A.2B.1 (the coordinator committee: FROST DKG and threshold
//! signing), 14C.A/B, 18 and 18.8 §1 (execution commitments of WASM workloads and their
//! merkleized trace).
#![deny(missing_docs)]
#![forbid(unsafe_code)]

pub mod addr;
pub mod codec;
pub mod committee;
pub mod da;
pub mod handshake;
pub mod network;
pub mod pex;
pub mod receipt;
pub mod service;
pub mod workload;

pub use addr::AddressPolicy;
pub use network::{NetworkId, NetworkIdError, PeerSource, ProtocolVersion, PROTOCOL_VERSION};
pub use service::{ServiceSet, ServiceType, UnknownServiceType};
