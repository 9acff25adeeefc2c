//! The `dsdnd` daemon and the `dsdn-agent` operator tool.
//!
//! The library part holds what the binaries and the integration tests share: the control
//! API's JSON shapes ([`api`]) and server ([`server`]), its cookie authentication
//! ([`cookie`]), the node key ([`key`]), an HTTP client for the API ([`client`]), the
//! daemon modes with the roles they advertise and need ([`roles`]) and a launcher for
//! local networks of real `dsdnd` processes ([`localnet`]), the WASM workload runtime
//! ([`workload`]), the checks of the daemon's paths at start ([`preflight`]), the
//! file-descriptor budget ([`fds`]), the version and build metadata ([`build_info`]) and the
//! completions and man pages generated from the command lines ([`cli_docs`]).
#![deny(missing_docs)]
#![warn(unreachable_pub)]

pub mod api;
pub mod build_info;
pub mod cli_docs;
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
