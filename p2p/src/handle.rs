//! The cloneable handle through which the daemon talks to the event loop.
//!
//! Every request is a [`Command`] on a bounded channel with a oneshot reply, as in
//! rust-libp2p's `file-sharing` example.

use std::time::Duration;

use dsdn_protocols::da::DaEvent;
use dsdn_protocols::{PeerSource, ServiceSet};
use libp2p::{Multiaddr, PeerId};
use tokio::sync::{mpsc, oneshot};

use crate::da::PublishError;

/// Capacity of the command channel.
pub const COMMAND_QUEUE: usize = 64;

/// A node's status.
#[derive(Debug, Clone)]
pub struct NodeStatus {
    /// Our PeerId.
    pub peer_id: PeerId,
    /// Our listen addresses.
    pub listen_addrs: Vec<Multiaddr>,
    /// Verified connected peers.
    pub connected_peers: usize,
    /// Entries in peers.dat.
    pub known_peers: usize,
    /// The fallback chain's stage.
    pub bootstrap_stage: String,
    /// True when every source failed and no peer is connected.
    pub isolated: bool,
    /// Whether this node's key is the DA authority.
    pub is_da_authority: bool,
    /// The configured DA authority.
    pub da_authority: Option<[u8; 32]>,
    /// Time since the event loop started.
    pub uptime: Duration,
}

/// One known peer (peers.dat ∪ connected).
#[derive(Debug, Clone)]
pub struct PeerView {
    /// The peer.
    pub peer_id: PeerId,
    /// Its addresses.
    pub addrs: Vec<Multiaddr>,
    /// Its service types.
    pub services: ServiceSet,
    /// Where we first learned of it.
    pub source: PeerSource,
    /// `Some(true)` outbound, `Some(false)` inbound, `None` not connected.
    pub connected_outbound: Option<bool>,
    /// UNIX seconds of the last contact.
    pub last_seen: Option<u64>,
    /// UNIX seconds of the last verified handshake.
    pub last_success: Option<u64>,
    /// Successful handshakes.
    pub success_count: u32,
    /// Failed attempts.
    pub failure_count: u32,
    /// The 28.1.B §5 score now.
    pub score: i64,
}

/// The DA state of a node.
#[derive(Debug, Clone)]
pub struct DaStateView {
    /// Events applied.
    pub events: u64,
    /// Sequence number of the last applied envelope.
    pub applied_seq: u64,
    /// Envelopes waiting for a gap to fill.
    pub pending: usize,
    /// Envelopes rejected.
    pub rejected: u64,
    /// The running state root.
    pub state_root: [u8; 32],
}

/// What a publish did.
#[derive(Debug, Clone)]
pub struct Published {
    /// Events published.
    pub events: usize,
    /// Sequence numbers of the envelopes, in order.
    pub seqs: Vec<u64>,
}

/// A request to the event loop.
#[derive(Debug)]
pub enum Command {
    /// Report the node's status.
    Status(oneshot::Sender<NodeStatus>),
    /// List known peers.
    Peers(oneshot::Sender<Vec<PeerView>>),
    /// Sign and gossip DA events (DA authority only).
    PublishDa(
        Vec<DaEvent>,
        oneshot::Sender<Result<Published, PublishError>>,
    ),
    /// Report the DA state.
    DaState(oneshot::Sender<DaStateView>),
}

/// The event loop stopped; no more requests can be served.
#[derive(Debug, thiserror::Error)]
#[error("the network event loop has stopped")]
pub struct Stopped;

/// A cloneable handle to a running node.
#[derive(Debug, Clone)]
pub struct NodeHandle {
    tx: mpsc::Sender<Command>,
}

impl NodeHandle {
    pub(crate) fn new(tx: mpsc::Sender<Command>) -> Self {
        Self { tx }
    }

    async fn ask<T>(&self, make: impl FnOnce(oneshot::Sender<T>) -> Command) -> Result<T, Stopped> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| Stopped)?;
        rx.await.map_err(|_| Stopped)
    }

    /// The node's status.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn status(&self) -> Result<NodeStatus, Stopped> {
        self.ask(Command::Status).await
    }

    /// Every known peer.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn peers(&self) -> Result<Vec<PeerView>, Stopped> {
        self.ask(Command::Peers).await
    }

    /// Signs and gossips `events`.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended; the inner [`PublishError`] when the node
    /// may not publish or gossip refused.
    pub async fn publish_da(
        &self,
        events: Vec<DaEvent>,
    ) -> Result<Result<Published, PublishError>, Stopped> {
        self.ask(|tx| Command::PublishDa(events, tx)).await
    }

    /// The DA state.
    ///
    /// # Errors
    /// [`Stopped`] when the event loop has ended.
    pub async fn da_state(&self) -> Result<DaStateView, Stopped> {
        self.ask(Command::DaState).await
    }
}
