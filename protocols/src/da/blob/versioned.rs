//! The versioned wire layouts of a DA blob: a CBOR array whose first element is the format
//! version, decoded by the layout of that version (PROTOCOL.md §7.3).

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, IgnoredAny, SeqAccess, Visitor};
use serde_bytes::ByteBuf;

use super::{DA_BLOB_VERSION, DA_BLOB_VERSION_V1, DA_BLOB_VERSION_V2, DA_BLOB_VERSION_V4};
use crate::da::{Bytes32, Bytes64, WireEvent};

/// A blob's CBOR array, decoded in one pass by the layout its first element (a u16 format
/// version) names: the version-specific body, or [`BlobBody::Unknown`] for another version
/// (the rest is skipped unread), so unknown versions are reported as such whatever follows.
pub(super) enum BlobBody {
    /// Version 1 (no `prev_state_root`).
    V1(BlobBodyV1),
    /// Version 2.
    V2(BlobBodyV2),
    /// Version 3 (the layout of version 2).
    V3(BlobBodyV2),
    /// Version 4 (with the proposer).
    V4(BlobBodyV4),
    /// Another version.
    Unknown(u16),
}

/// The next element of a versioned array, or an error naming the missing position.
fn next<'de, A: SeqAccess<'de>, F: Deserialize<'de>>(
    seq: &mut A,
    index: usize,
) -> Result<F, A::Error> {
    seq.next_element()?
        .ok_or_else(|| de::Error::custom(format_args!("array too short: no element {index}")))
}

impl<'de> Deserialize<'de> for BlobBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = BlobBody;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an array starting with a u16 version")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let version: u16 = next(&mut seq, 0)?;
                match version {
                    DA_BLOB_VERSION_V4 => BlobBodyV4::from_seq(&mut seq).map(BlobBody::V4),
                    DA_BLOB_VERSION => BlobBodyV2::from_seq(&mut seq).map(BlobBody::V3),
                    DA_BLOB_VERSION_V2 => BlobBodyV2::from_seq(&mut seq).map(BlobBody::V2),
                    DA_BLOB_VERSION_V1 => BlobBodyV1::from_seq(&mut seq).map(BlobBody::V1),
                    other => {
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        Ok(BlobBody::Unknown(other))
                    }
                }
            }
        }
        d.deserialize_seq(V)
    }
}

/// The version-4 blob after its version element: the fields of version 2 with `proposer`
/// and `proposer_sig` before the signature.
pub(super) struct BlobBodyV4 {
    pub(super) body: BlobBodyV2,
    pub(super) proposer: (Vec<u8>, Bytes64),
}

impl BlobBodyV4 {
    fn from_seq<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Self, A::Error> {
        let network = next(seq, 1)?;
        let height = next(seq, 2)?;
        let prev_hash = next(seq, 3)?;
        let prev_state_root = next(seq, 4)?;
        let timestamp_ms = next(seq, 5)?;
        let events = next(seq, 6)?;
        let proposer: ByteBuf = next(seq, 7)?;
        let proposer_sig = next(seq, 8)?;
        let signature = next(seq, 9)?;
        Ok(BlobBodyV4 {
            body: BlobBodyV2 {
                network,
                height,
                prev_hash,
                prev_state_root,
                timestamp_ms,
                events,
                signature,
            },
            proposer: (proposer.into_vec(), proposer_sig),
        })
    }
}

/// The version-2 and version-3 blob after its version element.
pub(super) struct BlobBodyV2 {
    pub(super) network: String,
    pub(super) height: u64,
    pub(super) prev_hash: Bytes32,
    pub(super) prev_state_root: Bytes32,
    pub(super) timestamp_ms: u64,
    pub(super) events: Vec<WireEvent>,
    pub(super) signature: Bytes64,
}

impl BlobBodyV2 {
    fn from_seq<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Self, A::Error> {
        Ok(BlobBodyV2 {
            network: next(seq, 1)?,
            height: next(seq, 2)?,
            prev_hash: next(seq, 3)?,
            prev_state_root: next(seq, 4)?,
            timestamp_ms: next(seq, 5)?,
            events: next(seq, 6)?,
            signature: next(seq, 7)?,
        })
    }
}

/// The version-1 blob after its version element.
pub(super) struct BlobBodyV1 {
    network: String,
    height: u64,
    prev_hash: Bytes32,
    timestamp_ms: u64,
    events: Vec<WireEvent>,
    signature: Bytes64,
}

impl BlobBodyV1 {
    /// The same fields with a zero `prev_state_root`.
    pub(super) fn into_v2(self) -> BlobBodyV2 {
        BlobBodyV2 {
            network: self.network,
            height: self.height,
            prev_hash: self.prev_hash,
            prev_state_root: Bytes32([0; 32]),
            timestamp_ms: self.timestamp_ms,
            events: self.events,
            signature: self.signature,
        }
    }
}

impl BlobBodyV1 {
    fn from_seq<'de, A: SeqAccess<'de>>(seq: &mut A) -> Result<Self, A::Error> {
        Ok(BlobBodyV1 {
            network: next(seq, 1)?,
            height: next(seq, 2)?,
            prev_hash: next(seq, 3)?,
            timestamp_ms: next(seq, 4)?,
            events: next(seq, 5)?,
            signature: next(seq, 6)?,
        })
    }
}
