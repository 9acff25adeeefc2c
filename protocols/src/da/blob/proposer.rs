//! The proposer of a version-4 blob (issue 13 §6, "which blobs it proposed"): the member's
//! PeerId and its own Ed25519 signature (its libp2p node key) over the blob, so anyone can
//! prove from the log alone which member authored each blob.
//!
//! A PeerId of an Ed25519 node key is the identity multihash of the protobuf-encoded public
//! key: the 38 bytes `00 24 08 01 12 20 ‖ key` (PROTOCOL.md §7.1). Only such PeerIds can
//! propose: the verifier reads the key out of the PeerId, no key directory is needed.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde_bytes::Bytes;

use super::{too_large, DaBlob, DaError, DA_BLOB_VERSION_V4, MAX_BLOB_BYTES};
use crate::codec;
use crate::da::Bytes64;

/// Domain separator of the bytes a proposer signs ([`DaBlob::proposer_signing_bytes`]).
pub const PROPOSER_DOMAIN: &str = "dsdn/da-blob-proposer/v1";

/// The prefix of an Ed25519 PeerId before its 32 key bytes: identity multihash (code 0,
/// length 36), protobuf `PublicKey { Type: Ed25519 (1), Data: 32 bytes }`.
const ED25519_PEER_ID_PREFIX: [u8; 6] = [0x00, 0x24, 0x08, 0x01, 0x12, 0x20];

/// The PeerId bytes (38) of the Ed25519 node key `key`, as libp2p derives them.
pub fn peer_id_bytes(key: &VerifyingKey) -> Vec<u8> {
    let mut bytes = ED25519_PEER_ID_PREFIX.to_vec();
    bytes.extend_from_slice(key.as_bytes());
    bytes
}

/// The Ed25519 public key a PeerId embeds.
///
/// # Errors
/// [`DaError::BadProposer`] when `peer_id` is not the 38-byte PeerId of an Ed25519 key, or
/// the key is not a usable (non-weak) point.
pub fn proposer_key(peer_id: &[u8]) -> Result<VerifyingKey, DaError> {
    let bad = || DaError::BadProposer("not the PeerId of an Ed25519 key".into());
    let key = peer_id
        .strip_prefix(&ED25519_PEER_ID_PREFIX[..])
        .and_then(|k| <[u8; 32]>::try_from(k).ok())
        .ok_or_else(bad)?;
    let key = VerifyingKey::from_bytes(&key).map_err(|_| bad())?;
    if key.is_weak() {
        return Err(bad());
    }
    Ok(key)
}

/// The base58 text of PeerId bytes (as in `committee:<epoch>` records and the config), or
/// hex when they are no PeerId.
pub fn peer_id_text(peer_id: &[u8]) -> String {
    multiaddr::PeerId::from_bytes(peer_id).map_or_else(|_| hex::encode(peer_id), |p| p.to_string())
}

/// Whether the proposer `peer_id` is one of `members` (PeerIds as base58 text, the form of
/// an epoch record).
///
/// # Errors
/// [`DaError::BadProposer`] naming the proposer when it is not listed.
pub fn check_member(peer_id: &[u8], members: &[String]) -> Result<(), DaError> {
    let text = peer_id_text(peer_id);
    if members.contains(&text) {
        return Ok(());
    }
    Err(DaError::BadProposer(format!(
        "{text} is not a member of the blob's committee"
    )))
}

impl DaBlob {
    /// The proposing member's PeerId bytes (version 4), `None` for older versions.
    pub fn proposer(&self) -> Option<&[u8]> {
        (self.version == DA_BLOB_VERSION_V4).then_some(&self.proposer[..])
    }

    /// The bytes the proposer signs with its node key: the CBOR array
    /// `["dsdn/da-blob-proposer/v1", version, network, height, prev_hash: bytes32,
    /// prev_state_root: bytes32, timestamp_ms, [WireEvent...], proposer: bytes]` — the
    /// version-4 signing bytes without `proposer_sig`, under their own domain (a proposer
    /// signature can never pass for a committee signature or the reverse).
    ///
    /// # Errors
    /// [`DaError::Malformed`] when an event or the whole exceeds its size cap.
    pub fn proposer_signing_bytes(&self) -> Result<Vec<u8>, DaError> {
        let wire = self.wire_events()?;
        codec::encode(
            &(
                PROPOSER_DOMAIN,
                self.version,
                &self.network,
                self.height,
                &self.prev_hash,
                &self.prev_state_root,
                self.timestamp_ms,
                &wire,
                Bytes::new(&self.proposer),
            ),
            MAX_BLOB_BYTES,
        )
        .map_err(too_large)
    }

    /// The blob as a version-4 proposal of the member whose node key is `key`: `proposer`
    /// is its PeerId, `proposer_sig` its signature over
    /// [`DaBlob::proposer_signing_bytes`]; the committee signature is reset (zeros).
    ///
    /// # Errors
    /// As [`DaBlob::unsigned`] (the larger encoding may exceed [`MAX_BLOB_BYTES`]).
    pub fn proposed_by(self, key: &SigningKey) -> Result<DaBlob, DaError> {
        let mut blob = DaBlob {
            version: DA_BLOB_VERSION_V4,
            proposer: peer_id_bytes(&key.verifying_key()),
            proposer_sig: Bytes64([0; 64]),
            signature: Bytes64([0; 64]),
            ..self
        };
        blob.proposer_sig = Bytes64(key.sign(&blob.proposer_signing_bytes()?).to_bytes());
        blob.to_bytes()?;
        Ok(blob)
    }

    /// Checks a version-4 blob's `proposer_sig` (`verify_strict`) against the key its
    /// `proposer` embeds; nothing to check before version 4.
    ///
    /// # Errors
    /// [`DaError::BadProposer`]: the proposer is no Ed25519 PeerId or the signature fails;
    /// [`DaError::Malformed`] as [`DaBlob::proposer_signing_bytes`].
    pub fn check_proposer_sig(&self) -> Result<(), DaError> {
        if self.version != DA_BLOB_VERSION_V4 {
            return Ok(());
        }
        let key = proposer_key(&self.proposer)?;
        let msg = self.proposer_signing_bytes()?;
        key.verify_strict(&msg, &Signature::from_bytes(&self.proposer_sig.0))
            .map_err(|_| {
                DaError::BadProposer(format!(
                    "proposer_sig of {} does not verify",
                    peer_id_text(&self.proposer)
                ))
            })
    }
}
