//! Public value types of the store: errors, the open report, learned peers and PEX
//! conversions.

use std::io;
use std::path::PathBuf;

use dsdn_protocols::codec::CodecError;
use dsdn_protocols::pex::PexEntry;
use dsdn_protocols::{NetworkId, ServiceSet};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::record::{sanitize_addrs, PeerRecord};

#[cfg(doc)]
use super::{PeerStore, SCHEMA_VERSION};

/// Errors of [`PeerStore`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The file belongs to another network. It is left untouched: point the node at another
    /// data directory or remove the file deliberately.
    #[error("{}: peers.dat belongs to network {found}, but this node runs on {expected}", file.display())]
    NetworkMismatch {
        /// The peers.dat path.
        file: PathBuf,
        /// The network of this node.
        expected: NetworkId,
        /// The network recorded in the file.
        found: NetworkId,
    },
    /// The file was written by a newer build (its schema version is above
    /// [`SCHEMA_VERSION`]). It is left untouched — neither read, changed nor moved aside — so
    /// that the newer build can still use it: run the newer dsdnd again, or move the file
    /// away deliberately to start this build with an empty peer store.
    #[error(
        "{}: peers.dat has schema version {found}, but this dsdnd only understands schema \
         versions up to {supported} (the file was written by a newer dsdnd). The file was left \
         untouched: run the newer dsdnd, or move the file away to start with an empty peer store",
        file.display()
    )]
    NewerSchema {
        /// The peers.dat path.
        file: PathBuf,
        /// The schema version recorded in the file.
        found: u32,
        /// The newest schema this build reads ([`SCHEMA_VERSION`]).
        supported: u32,
    },
    /// Another [`PeerStore`] (in this or another process) has the file open.
    #[error("{}: peers.dat is already open", file.display())]
    AlreadyOpen {
        /// The peers.dat path.
        file: PathBuf,
    },
    /// A file-system operation on peers.dat failed (missing directory, permissions, the path
    /// is a directory, the rename when moving a corrupt file aside, …).
    #[error("{}: {source}", file.display())]
    Io {
        /// The peers.dat path.
        file: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The file was moved aside as corrupt but the fresh file is unusable too.
    #[error("{}: unusable even after moving the old file aside: {reason}", file.display())]
    Unusable {
        /// The peers.dat path.
        file: PathBuf,
        /// Why the fresh file is unusable.
        reason: String,
    },
    /// redb failed while reading or writing.
    #[error("peers.dat database error: {0}")]
    Database(#[from] redb::Error),
    /// The background writer could not commit the address book to the file (disk full, I/O
    /// error); the changes stay in memory and are retried ([`PeerStore::flush`],
    /// [`PeerStore::writer_status`]). The message is the last commit's error.
    #[error("cannot write peers.dat: {0}")]
    WriteFailed(String),
    /// A record could not be encoded (cannot happen for records built by this store).
    #[error("cannot encode a peers.dat record: {0}")]
    Encode(#[from] CodecError),
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                StoreError::Database(e.into())
            }
        }
    )*};
}
from_redb!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// What [`PeerStore::open`] had to repair.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// Where an unusable peers.dat was moved (`<name>.corrupt-<unix-seconds>` in the same
    /// directory); `None` if the file was usable or absent.
    pub moved_aside: Option<PathBuf>,
    /// Records deleted because they failed to decode.
    pub purged_records: usize,
    /// The older schema version the file was upgraded from in place (to [`SCHEMA_VERSION`]),
    /// if it was.
    pub upgraded_from: Option<u32>,
}

/// A peer learned second-hand, for [`PeerStore::learn_many`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LearnedPeer {
    /// Its identity.
    pub peer_id: PeerId,
    /// Its addresses (sanitised on insert: at most 16, each at most 128 bytes).
    pub addrs: Vec<Multiaddr>,
    /// The services it is said to offer.
    pub services: ServiceSet,
}

impl LearnedPeer {
    /// Converts a received PEX entry; `None` if its PeerId does not parse or none of its
    /// addresses is a valid multiaddr (invalid addresses are dropped).
    pub fn from_pex_entry(e: &PexEntry) -> Option<Self> {
        let peer_id = PeerId::from_bytes(&e.node_id).ok()?;
        let addrs: Vec<Multiaddr> = e
            .addrs
            .iter()
            .filter_map(|a| Multiaddr::try_from(a.to_vec()).ok())
            .collect();
        let addrs = sanitize_addrs(&addrs);
        (!addrs.is_empty()).then_some(Self {
            peer_id,
            addrs,
            services: e.services,
        })
    }
}

impl PeerRecord {
    /// This record as a PEX response entry (`last_success_unix` is 0 if never contacted;
    /// [`PeerStore::pex_entries`] only returns contacted peers).
    pub fn to_pex_entry(&self) -> PexEntry {
        PexEntry {
            node_id: self.peer_id.to_bytes(),
            addrs: self
                .addrs
                .iter()
                .take(dsdn_protocols::pex::MAX_PEX_ADDRS)
                .map(|a| serde_bytes::ByteBuf::from(a.to_vec()))
                .collect(),
            services: self.services,
            last_success_unix: self.last_success.unwrap_or(0),
        }
    }
}
