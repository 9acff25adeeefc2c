//! Why a blob (or a DA state value or proof) is refused: [`DaError`].

use super::{DA_BLOB_VERSION_V1, DA_BLOB_VERSION_V4};

/// Why a blob (or a DA state value or proof) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DaError {
    /// Not decodable, or a field out of bounds; the text says what.
    #[error("malformed DA data: {0}")]
    Malformed(String),
    /// A blob format version this build does not know.
    #[error(
        "unsupported DA blob version {0} (this build accepts {DA_BLOB_VERSION_V1} to {DA_BLOB_VERSION_V4})"
    )]
    UnsupportedVersion(u16),
    /// A wire event kind this build does not know.
    #[error("unknown DA event kind {0}")]
    UnknownEventKind(u8),
    /// A known event kind at a version this build does not know.
    #[error("unsupported version {version} of DA event {kind}")]
    UnsupportedEventVersion {
        /// The kind's snake_case name.
        kind: &'static str,
        /// The version found.
        version: u16,
    },
    /// Belongs to another network.
    #[error("DA data for network {theirs:?}, this node is on {ours}")]
    WrongNetwork {
        /// Our network.
        ours: String,
        /// The data's network (at most 64 characters of it).
        theirs: String,
    },
    /// The signature does not verify against the network's DA authority.
    #[error("DA blob signature does not verify against the DA authority")]
    BadSignature,
    /// A version-4 blob's `proposer` is not a usable Ed25519 PeerId, its `proposer_sig` does
    /// not verify against it, or it is not a member of the committee of the blob's epoch;
    /// the text says which.
    #[error("DA blob proposer refused: {0}")]
    BadProposer(String),
    /// No (usable) DA authority key: the configured key is not a valid, non-weak Ed25519
    /// point, or none is configured (callers without one report this).
    #[error("no usable DA authority is configured for this network")]
    NoAuthority,
}

impl DaError {
    /// A stable metric label: `malformed`, `unsupported_version`, `unknown_event_kind`,
    /// `unsupported_event_version`, `wrong_network`, `bad_signature`, `bad_proposer`,
    /// `no_authority`.
    pub fn reason(&self) -> &'static str {
        match self {
            DaError::Malformed(_) => "malformed",
            DaError::UnsupportedVersion(_) => "unsupported_version",
            DaError::UnknownEventKind(_) => "unknown_event_kind",
            DaError::UnsupportedEventVersion { .. } => "unsupported_event_version",
            DaError::WrongNetwork { .. } => "wrong_network",
            DaError::BadSignature => "bad_signature",
            DaError::BadProposer(_) => "bad_proposer",
            DaError::NoAuthority => "no_authority",
        }
    }
}
