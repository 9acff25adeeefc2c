//! The `dsdnd` daemon and the `dsdn-agent` operator tool.
//!
//! The library part holds what the binaries and the integration tests share: the control
//! API's JSON shapes ([`api`]) and server ([`server`]), its cookie authentication
//! ([`cookie`]), the node key ([`key`]), an HTTP client for the API ([`client`]), the
//! daemon modes with the roles they advertise and need ([`roles`]) and a launcher for
//! local networks of real `dsdnd` processes ([`localnet`]), the WASM workload runtime
//! ([`workload`]), the checks of the daemon's paths at start ([`preflight`]) and the
//! file-descriptor budget ([`fds`]).
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod api;
pub mod client;
pub mod cookie;
pub mod fds;
pub mod key;
pub mod localnet;
pub mod logging;
pub mod preflight;
pub mod reload;
pub mod roles;
pub mod server;
pub mod workload;
