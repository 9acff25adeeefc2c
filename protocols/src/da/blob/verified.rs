//! A blob that passed [`super::DaBlob::verify`]: [`VerifiedBlob`].

use super::{DaBlob, DA_BLOB_VERSION_V1};

/// A blob whose version, network, bounds and signature were checked; only
/// [`DaBlob::verify`] makes one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedBlob {
    pub(super) blob: DaBlob,
    pub(super) hash: [u8; 32],
    pub(super) encoded: Vec<u8>,
    pub(super) signer: [u8; 32],
}

impl VerifiedBlob {
    /// The authority key the signature was verified against.
    pub fn signer(&self) -> [u8; 32] {
        self.signer
    }

    /// The blob.
    pub fn blob(&self) -> &DaBlob {
        &self.blob
    }

    /// Its height (≥ 1).
    pub fn height(&self) -> u64 {
        self.blob.height
    }

    /// Hash of the blob it follows (zeros at height 1).
    pub fn prev_hash(&self) -> [u8; 32] {
        self.blob.prev_hash.0
    }

    /// The state root after the blob it follows, as the blob commits to it; `None` for a
    /// version-1 blob, which commits to none.
    pub fn prev_state_root(&self) -> Option<[u8; 32]> {
        (self.blob.version != DA_BLOB_VERSION_V1).then_some(self.blob.prev_state_root.0)
    }

    /// Its identity: `SHA-256(signing_bytes)` (versions 3 and 4), `SHA-256(signing_bytes ‖
    /// signature)` (versions 1 and 2). Two threshold signatures over the same bytes give
    /// one identity from version 3 on.
    pub fn hash(&self) -> [u8; 32] {
        self.hash
    }

    /// The canonical wire form ([`DaBlob::to_bytes`]) to store and serve.
    pub fn encoded(&self) -> &[u8] {
        &self.encoded
    }

    /// The blob, giving up the verification record.
    pub fn into_blob(self) -> DaBlob {
        self.blob
    }

    /// The proposing member's PeerId bytes of a version-4 blob (its `proposer_sig` was
    /// verified by [`DaBlob::verify`]); `None` before version 4.
    pub fn proposer(&self) -> Option<&[u8]> {
        self.blob.proposer()
    }
}
