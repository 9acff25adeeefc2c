//! Helpers shared by the swarm-level tests.
#![allow(dead_code)]

use std::net::SocketAddr;

use dsdn_protocols::NetworkId;

/// The network every test node runs on.
pub fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

/// A free loopback port on `ip` (TCP; QUIC binds the same number on UDP).
pub fn free_addr(ip: &str) -> SocketAddr {
    let l = std::net::TcpListener::bind((ip, 0)).unwrap();
    let a = l.local_addr().unwrap();
    drop(l);
    a
}
