//! Why the peer manager refuses a connection (28.1.C §6).

use libp2p::PeerId;

#[cfg(doc)]
use super::EXTRA_OUTBOUND;

/// A connection refused because the peer is banned.
#[derive(Debug, thiserror::Error)]
#[error("peer {0} is banned")]
pub struct BannedPeer(pub PeerId);

/// A connection refused by a limit of 28.1.C §6.
#[derive(Debug, thiserror::Error)]
pub enum LimitExceeded {
    /// `max_inbound_connections` inbound connections are open.
    #[error("inbound connection limit of {0} reached")]
    Inbound(usize),
    /// `max_outbound_connections` plus [`EXTRA_OUTBOUND`] outbound connections are open.
    #[error("outbound connection limit of {0} reached")]
    Outbound(usize),
    /// `max_connections_per_peer` connections with this peer are open.
    #[error("{0} connections with this peer already")]
    PerPeer(usize),
    /// This many relayed connections are open.
    #[error("relayed connection limit ({0}) reached")]
    Relayed(usize),
    /// This many inbound connections are still in their security handshake.
    #[error("{0} inbound connections are still in their handshake")]
    PendingInbound(usize),
    /// More than `inbound_per_ip_per_minute` attempts from this IP in the last minute.
    #[error("too many connection attempts from {0} in the last minute")]
    RateLimited(std::net::IpAddr),
}
