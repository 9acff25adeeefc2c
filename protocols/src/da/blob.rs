//! DA blobs: signed, hash-linked batches of events (14A §1 "ordered"), and their errors.
//!
//! Wire form of a blob (at most [`MAX_BLOB_BYTES`]), version 2: the CBOR array
//! `[version: u16, network: text, height: u64, prev_hash: bytes32, prev_state_root: bytes32,
//! timestamp_ms: u64, events: [WireEvent...], signature: bytes64]`. The version is read
//! first, so a blob of an unknown version is refused as [`DaError::UnsupportedVersion`]
//! whatever its shape.
//!
//! Version 1 ([`DA_BLOB_VERSION_V1`], before issue 16 §3) is the same array without
//! `prev_state_root`. It is still decoded and verified, so a log written by an older build
//! stays readable and replayable; this build never seals it, a committee member never signs
//! it ([`DaBlob::from_signing_bytes`] refuses it). Such a blob commits to no state root, so
//! no root check applies to it (and a client cannot take a trusted root from it).
//!
//! Version 3 has the wire form of version 2 and changes only the blob's identity (see
//! [`DA_BLOB_VERSION`]).
//!
//! Version 4 ([`DA_BLOB_VERSION_V4`], issue 13 §6) is what a committee seals: version 3
//! plus `proposer` (the proposing member's PeerId bytes) and `proposer_sig` (its own
//! Ed25519 signature, by its node key, over [`DaBlob::proposer_signing_bytes`]), placed
//! before the committee `signature`: `[4, network, height, prev_hash, prev_state_root,
//! timestamp_ms, events, proposer: bytes, proposer_sig: bytes64, signature: bytes64]`. Both
//! are in the signing bytes, so the committee's signature commits to the author and its
//! signature, and a locked blob re-proposed in a later round keeps them ([`proposer`]).
//! A single-key authority keeps writing version 3 (it has no proposer but itself).
//!
//! The authority signs [`DaBlob::signing_bytes`]; a blob's identity ([`VerifiedBlob::hash`])
//! is `SHA-256(signing_bytes)` from version 3 on, `SHA-256(signing_bytes ‖ signature)` for
//! versions 1 and 2, and blob `h` names the hash
//! of blob `h-1` in `prev_hash` and the state root after blob `h-1` in `prev_state_root`
//! (the root of the empty tree at height 1), the way a Tendermint header carries the
//! AppHash of the previous block.

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use serde_bytes::{ByteBuf, Bytes};

use super::{Bytes32, Bytes64, DaEvent, WireEvent};
use crate::{codec, NetworkId};

mod error;
pub mod proposer;
mod verified;
mod versioned;
pub use error::DaError;
pub use verified::VerifiedBlob;
use versioned::BlobBody;

/// Blob format version this build writes (and accepts, with [`DA_BLOB_VERSION_V2`] and
/// [`DA_BLOB_VERSION_V1`]).
///
/// Version 3 is version 2 with an identity that leaves the signature out:
/// `SHA-256(signing_bytes)`. A committee's FROST signatures are randomized, and a height
/// can be threshold-signed twice over the same bytes (a later round re-proposes the lock of
/// a round whose aggregate was never delivered: issue 13 §1). With the signature in the
/// identity, a node holding the other signature could never accept the next blob
/// (`prev_hash_mismatch`) although the content is the same.
pub const DA_BLOB_VERSION: u16 = 3;

/// Blob format a committee seals (issue 13 §6): version 3 plus the proposing member and its
/// signature (see the module docs and [`proposer`]). Written by committee proposers;
/// accepted from everyone.
pub const DA_BLOB_VERSION_V4: u16 = 4;

/// Version 2 (with `prev_state_root`, identity over the signature too), still accepted for
/// logs written before version 3; never written by this build.
pub const DA_BLOB_VERSION_V2: u16 = 2;

/// The older blob format (no `prev_state_root`), still accepted for logs written before
/// version 2; never written by this build.
pub const DA_BLOB_VERSION_V1: u16 = 1;

/// Most events in one blob (a blob holds 0..=`MAX_EVENTS_PER_BLOB`; an empty blob is a
/// rotation filler).
pub const MAX_EVENTS_PER_BLOB: usize = 1024;

/// Largest encoded blob, in bytes; also the gossip message cap.
pub const MAX_BLOB_BYTES: usize = 256 * 1024;

/// `prev_hash` of the blob at height 1.
pub const GENESIS_PREV_HASH: [u8; 32] = [0; 32];

/// Domain separator of the signed bytes.
const SIGNING_DOMAIN: &str = "dsdn/da-blob/v1";

/// A batch of DA events at one height of the DA log (fields public; nothing is checked until
/// [`DaBlob::verify`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaBlob {
    /// Format version: [`DA_BLOB_VERSION`], or [`DA_BLOB_VERSION_V1`] for a blob of an older
    /// log.
    pub version: u16,
    /// The network id the blob belongs to.
    pub network: String,
    /// Position in the log, ≥ 1.
    pub height: u64,
    /// Hash of the blob at `height - 1`; [`GENESIS_PREV_HASH`] (zeros) at height 1.
    pub prev_hash: Bytes32,
    /// The state root after applying blob `height - 1` (the empty tree's root,
    /// [`super::state::empty_root`], at height 1). Zeros in a version-1 blob, whose bytes do
    /// not carry it.
    pub prev_state_root: Bytes32,
    /// When the authority sealed the blob, UNIX milliseconds; never decreases along the log.
    pub timestamp_ms: u64,
    /// The events, in order (0..=[`MAX_EVENTS_PER_BLOB`]; none in a rotation filler).
    pub events: Vec<DaEvent>,
    /// The proposing member's PeerId bytes (an Ed25519 PeerId, 38 bytes) in a version-4
    /// blob; empty before version 4.
    pub proposer: Vec<u8>,
    /// The proposer's Ed25519 signature (its node key) over
    /// [`DaBlob::proposer_signing_bytes`] in a version-4 blob; zeros before version 4.
    pub proposer_sig: Bytes64,
    /// Ed25519 signature by the DA authority over [`DaBlob::signing_bytes`] (zeros when
    /// unsigned).
    pub signature: Bytes64,
}

pub(crate) fn too_large(e: codec::CodecError) -> DaError {
    DaError::Malformed(format!("blob: {e}"))
}

fn check_fields(height: u64, events: &[DaEvent]) -> Result<(), DaError> {
    if height == 0 {
        return Err(DaError::Malformed("blob heights start at 1".into()));
    }
    // An empty blob is a filler: the committee seals it only to reach a recorded
    // rotation's `effective_height` on an idle log (issue 13 §3; members check that rule
    // before co-signing, `DaService::check_proposal`).
    if events.len() > MAX_EVENTS_PER_BLOB {
        return Err(DaError::Malformed(format!(
            "blob of {} events (expected 0-{MAX_EVENTS_PER_BLOB})",
            events.len()
        )));
    }
    events.iter().try_for_each(DaEvent::validate)
}

impl DaBlob {
    /// An unsigned blob (zero signature, version [`DA_BLOB_VERSION`]), e.g. for an external
    /// signer; add the signature with [`DaBlob::with_signature`]. `prev_state_root` is the
    /// sealer's state root after blob `height - 1`.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when `height` is 0, `events` is longer than
    /// [`MAX_EVENTS_PER_BLOB`], an event fails [`DaEvent::validate`], or the encoded blob
    /// would exceed [`MAX_BLOB_BYTES`].
    pub fn unsigned(
        network: &NetworkId,
        height: u64,
        prev_hash: [u8; 32],
        prev_state_root: [u8; 32],
        timestamp_ms: u64,
        events: Vec<DaEvent>,
    ) -> Result<DaBlob, DaError> {
        check_fields(height, &events)?;
        let blob = DaBlob {
            version: DA_BLOB_VERSION,
            network: network.to_string(),
            height,
            prev_hash: Bytes32(prev_hash),
            prev_state_root: Bytes32(prev_state_root),
            timestamp_ms,
            events,
            proposer: Vec::new(),
            proposer_sig: Bytes64([0; 64]),
            signature: Bytes64([0; 64]),
        };
        blob.to_bytes()?;
        Ok(blob)
    }

    pub(crate) fn wire_events(&self) -> Result<Vec<WireEvent>, DaError> {
        self.events.iter().map(DaEvent::to_wire).collect()
    }

    fn encode_signing(&self, wire: &[WireEvent]) -> Result<Vec<u8>, DaError> {
        let encoded = if self.version == DA_BLOB_VERSION_V1 {
            codec::encode(
                &(
                    SIGNING_DOMAIN,
                    self.version,
                    &self.network,
                    self.height,
                    &self.prev_hash,
                    self.timestamp_ms,
                    wire,
                ),
                MAX_BLOB_BYTES,
            )
        } else if self.version == DA_BLOB_VERSION_V4 {
            codec::encode(
                &(
                    SIGNING_DOMAIN,
                    self.version,
                    &self.network,
                    self.height,
                    &self.prev_hash,
                    &self.prev_state_root,
                    self.timestamp_ms,
                    wire,
                    Bytes::new(&self.proposer),
                    &self.proposer_sig,
                ),
                MAX_BLOB_BYTES,
            )
        } else {
            codec::encode(
                &(
                    SIGNING_DOMAIN,
                    self.version,
                    &self.network,
                    self.height,
                    &self.prev_hash,
                    &self.prev_state_root,
                    self.timestamp_ms,
                    wire,
                ),
                MAX_BLOB_BYTES,
            )
        };
        encoded.map_err(too_large)
    }

    fn encode_blob(&self, wire: &[WireEvent]) -> Result<Vec<u8>, DaError> {
        let encoded = if self.version == DA_BLOB_VERSION_V1 {
            codec::encode(
                &(
                    self.version,
                    &self.network,
                    self.height,
                    &self.prev_hash,
                    self.timestamp_ms,
                    wire,
                    &self.signature,
                ),
                MAX_BLOB_BYTES,
            )
        } else if self.version == DA_BLOB_VERSION_V4 {
            codec::encode(
                &(
                    self.version,
                    &self.network,
                    self.height,
                    &self.prev_hash,
                    &self.prev_state_root,
                    self.timestamp_ms,
                    wire,
                    Bytes::new(&self.proposer),
                    &self.proposer_sig,
                    &self.signature,
                ),
                MAX_BLOB_BYTES,
            )
        } else {
            codec::encode(
                &(
                    self.version,
                    &self.network,
                    self.height,
                    &self.prev_hash,
                    &self.prev_state_root,
                    self.timestamp_ms,
                    wire,
                    &self.signature,
                ),
                MAX_BLOB_BYTES,
            )
        };
        encoded.map_err(too_large)
    }

    /// The bytes the authority signs: the CBOR array `["dsdn/da-blob/v1", version,
    /// network, height, prev_hash: bytes32, prev_state_root: bytes32, timestamp_ms,
    /// [WireEvent...]]` (version 1: without `prev_state_root`; version 4: followed by
    /// `proposer: bytes, proposer_sig: bytes64`).
    ///
    /// # Errors
    /// [`DaError::Malformed`] when an event or the whole exceeds its size cap.
    pub fn signing_bytes(&self) -> Result<Vec<u8>, DaError> {
        self.encode_signing(&self.wire_events()?)
    }

    /// The unsigned blob whose [`DaBlob::signing_bytes`] are `bytes`: what a committee
    /// member is asked to threshold-sign (issue 6 §3) is checked through this. The bytes
    /// must be canonical (re-encoding gives them back) and of version [`DA_BLOB_VERSION_V4`]
    /// or [`DA_BLOB_VERSION`] (a member never signs a version-1 or -2 blob; a version-3
    /// one only as the re-proposal of its own lock, the caller's rule). A version-4
    /// blob's `proposer_sig` is checked ([`DaBlob::check_proposer_sig`]).
    ///
    /// # Errors
    /// [`DaError::Malformed`] for input over [`MAX_BLOB_BYTES`], undecodable or
    /// non-canonical input, another signing domain, or fields [`DaBlob::unsigned`] refuses;
    /// [`DaError::UnsupportedVersion`]; the event errors of [`DaEvent::from_wire`];
    /// [`DaError::BadProposer`].
    pub fn from_signing_bytes(bytes: &[u8]) -> Result<DaBlob, DaError> {
        type Signing = (
            String,
            u16,
            String,
            u64,
            Bytes32,
            Bytes32,
            u64,
            Vec<WireEvent>,
        );
        type SigningV4 = (
            String,
            u16,
            String,
            u64,
            Bytes32,
            Bytes32,
            u64,
            Vec<WireEvent>,
            ByteBuf,
            Bytes64,
        );
        type SigningV1 = (String, u16, String, u64, Bytes32, u64, Vec<WireEvent>);
        let (fields, proposer) = match codec::decode::<SigningV4>(bytes, MAX_BLOB_BYTES) {
            Ok((d, v, n, h, p, r, t, w, proposer, sig)) => {
                ((d, v, n, h, p, r, t, w), Some((proposer.into_vec(), sig)))
            }
            Err(_) => match codec::decode::<Signing>(bytes, MAX_BLOB_BYTES) {
                Ok(fields) => (fields, None),
                Err(e) => {
                    // A version-1 message is named as such.
                    if let Ok(v1) = codec::decode::<SigningV1>(bytes, MAX_BLOB_BYTES) {
                        if v1.0 == SIGNING_DOMAIN {
                            return Err(DaError::UnsupportedVersion(v1.1));
                        }
                    }
                    return Err(too_large(e));
                }
            },
        };
        let (domain, version, network, height, prev_hash, prev_state_root, timestamp_ms, wire) =
            fields;
        if domain != SIGNING_DOMAIN {
            return Err(DaError::Malformed(
                "not the signing bytes of a DA blob".into(),
            ));
        }
        let expected = if proposer.is_some() {
            DA_BLOB_VERSION_V4
        } else {
            DA_BLOB_VERSION
        };
        if version != expected {
            return Err(DaError::UnsupportedVersion(version));
        }
        let network = NetworkId::new(&network)
            .map_err(|e| DaError::Malformed(format!("blob network: {e}")))?;
        let events = wire
            .iter()
            .map(DaEvent::from_wire)
            .collect::<Result<Vec<_>, _>>()?;
        let mut blob = DaBlob::unsigned(
            &network,
            height,
            prev_hash.0,
            prev_state_root.0,
            timestamp_ms,
            events,
        )?;
        if let Some((proposer, proposer_sig)) = proposer {
            blob.version = DA_BLOB_VERSION_V4;
            blob.proposer = proposer;
            blob.proposer_sig = proposer_sig;
        }
        if blob.signing_bytes()? != bytes {
            return Err(DaError::Malformed(
                "non-canonical blob signing bytes".into(),
            ));
        }
        blob.check_proposer_sig()?;
        Ok(blob)
    }

    /// The blob with `signature` (64 bytes, Ed25519) in place of its current one.
    pub fn with_signature(self, signature: [u8; 64]) -> DaBlob {
        DaBlob {
            signature: Bytes64(signature),
            ..self
        }
    }

    /// Builds a blob and signs it with `key` (the DA authority's key).
    /// [`super::DaState::seal_next`] fills height, `prev_hash` and `prev_state_root` from a
    /// state.
    ///
    /// # Errors
    /// As [`DaBlob::unsigned`].
    pub fn sign(
        key: &SigningKey,
        network: &NetworkId,
        height: u64,
        prev_hash: [u8; 32],
        prev_state_root: [u8; 32],
        timestamp_ms: u64,
        events: Vec<DaEvent>,
    ) -> Result<DaBlob, DaError> {
        let blob = Self::unsigned(
            network,
            height,
            prev_hash,
            prev_state_root,
            timestamp_ms,
            events,
        )?;
        let signature = key.sign(&blob.signing_bytes()?).to_bytes();
        Ok(blob.with_signature(signature))
    }

    /// The wire form (see the module docs), at most [`MAX_BLOB_BYTES`] bytes.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when an event or the whole exceeds its size cap.
    pub fn to_bytes(&self) -> Result<Vec<u8>, DaError> {
        self.encode_blob(&self.wire_events()?)
    }

    /// Decodes a blob received from the network or read from disk. Checks the size cap
    /// before decoding, then the blob version, then each event's kind and version. Does not
    /// check the signature or bounds (see [`DaBlob::verify`]).
    ///
    /// # Errors
    /// [`DaError::Malformed`] for input over [`MAX_BLOB_BYTES`] or undecodable input;
    /// [`DaError::UnsupportedVersion`]; [`DaError::UnknownEventKind`];
    /// [`DaError::UnsupportedEventVersion`].
    pub fn from_bytes(bytes: &[u8]) -> Result<DaBlob, DaError> {
        let (version, body, proposer) =
            match codec::decode::<BlobBody>(bytes, MAX_BLOB_BYTES).map_err(too_large)? {
                BlobBody::V4(v4) => (DA_BLOB_VERSION_V4, v4.body, Some(v4.proposer)),
                BlobBody::V3(v3) => (DA_BLOB_VERSION, v3, None),
                BlobBody::V2(v2) => (DA_BLOB_VERSION_V2, v2, None),
                BlobBody::V1(v1) => (DA_BLOB_VERSION_V1, v1.into_v2(), None),
                BlobBody::Unknown(v) => return Err(DaError::UnsupportedVersion(v)),
            };
        let events = body
            .events
            .iter()
            .map(DaEvent::from_wire)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DaBlob {
            version,
            network: body.network,
            height: body.height,
            prev_hash: body.prev_hash,
            prev_state_root: body.prev_state_root,
            timestamp_ms: body.timestamp_ms,
            events,
            proposer: proposer.as_ref().map_or_else(Vec::new, |(p, _)| p.clone()),
            proposer_sig: proposer.map_or(Bytes64([0; 64]), |(_, s)| s),
            signature: body.signature,
        })
    }

    /// Checks everything a node must check before storing, applying or forwarding the
    /// blob: version (1 to [`DA_BLOB_VERSION_V4`]), network, height ≥ 1, event count and
    /// [`DaEvent::validate`], the Ed25519 signature (`verify_strict`) against `authority` (a
    /// 32-byte public key) and, for version 4, the proposer's signature
    /// ([`DaBlob::check_proposer_sig`]). Whether the proposer is a member of the blob's
    /// committee depends on the epoch: [`crate::da::KeyHistory::verify_blob`].
    /// Returns the blob with its hash and canonical encoding.
    ///
    /// # Errors
    /// The first applicable of [`DaError::UnsupportedVersion`], [`DaError::WrongNetwork`],
    /// [`DaError::Malformed`], [`DaError::NoAuthority`] (`authority` is not a usable key),
    /// [`DaError::BadSignature`], [`DaError::BadProposer`].
    pub fn verify(
        self,
        network: &NetworkId,
        authority: &[u8; 32],
    ) -> Result<VerifiedBlob, DaError> {
        if !matches!(
            self.version,
            DA_BLOB_VERSION_V4 | DA_BLOB_VERSION | DA_BLOB_VERSION_V2 | DA_BLOB_VERSION_V1
        ) {
            return Err(DaError::UnsupportedVersion(self.version));
        }
        if self.network != network.as_str() {
            return Err(DaError::WrongNetwork {
                ours: network.to_string(),
                theirs: self.network.chars().take(64).collect(),
            });
        }
        check_fields(self.height, &self.events)?;
        let key = authority_key(authority)?;
        let wire = self.wire_events()?;
        let msg = self.encode_signing(&wire)?;
        let signature = Signature::from_bytes(&self.signature.0);
        key.verify_strict(&msg, &signature)
            .map_err(|_| DaError::BadSignature)?;
        self.check_proposer_sig()?;
        let hash = hash_signed(self.version, msg, &self.signature.0);
        let encoded = self.encode_blob(&wire)?;
        Ok(VerifiedBlob {
            blob: self,
            hash,
            encoded,
            signer: *authority,
        })
    }

    /// The blob's hash, as [`VerifiedBlob::hash`] — for
    /// display of blobs that were verified before; it checks nothing.
    ///
    /// # Errors
    /// As [`DaBlob::signing_bytes`].
    pub fn hash(&self) -> Result<[u8; 32], DaError> {
        Ok(hash_signed(
            self.version,
            self.signing_bytes()?,
            &self.signature.0,
        ))
    }

    /// [`DaBlob::from_bytes`] then [`DaBlob::verify`].
    ///
    /// # Errors
    /// As those two.
    pub fn decode_verified(
        bytes: &[u8],
        network: &NetworkId,
        authority: &[u8; 32],
    ) -> Result<VerifiedBlob, DaError> {
        Self::from_bytes(bytes)?.verify(network, authority)
    }
}

/// The DA authority's key from its 32 bytes.
///
/// # Errors
/// [`DaError::NoAuthority`] when the bytes are not a point of Ed25519 or are a weak
/// (small-order) key: no signature could verify against it, so it cannot be the authority.
pub fn authority_key(bytes: &[u8; 32]) -> Result<VerifyingKey, DaError> {
    let key = VerifyingKey::from_bytes(bytes).map_err(|_| DaError::NoAuthority)?;
    if key.is_weak() {
        return Err(DaError::NoAuthority);
    }
    Ok(key)
}

/// The identity of a blob of `version` in the hash chain: SHA-256(signing bytes) from
/// version 3 on (for version 4 they include `proposer` and `proposer_sig`), SHA-256(signing bytes ‖ signature) before (see [`DA_BLOB_VERSION`]).
fn hash_signed(version: u16, mut msg: Vec<u8>, signature: &[u8; 64]) -> [u8; 32] {
    if version < DA_BLOB_VERSION {
        msg.extend_from_slice(signature);
    }
    Sha256::digest(&msg).into()
}
