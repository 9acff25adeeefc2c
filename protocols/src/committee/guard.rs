//! Signing slots and the member's equivocation guard.
//!
//! A member never signs two different messages for the same [`Slot`]. [`SlotGuard`] records,
//! for every slot the member signed, the SHA-256 of the message; it allows the same message
//! again (a retried round) and refuses any other. The daemon persists the guard
//! ([`SlotGuard::to_bytes`]) after [`super::Signer::sign`] returns and **before** it releases
//! the share, so the record survives restarts.
//!
//! Bounds: at most [`MAX_GUARD_DA_SLOTS`] DA heights and [`MAX_GUARD_RECEIPT_SLOTS`]
//! receipts. DA heights below a low-water mark are forgotten *and refused*: the daemon raises
//! the mark with [`SlotGuard::prune_da_below`] as blobs become final, and when more than
//! [`MAX_GUARD_DA_SLOTS`] heights are recorded the lowest are pruned the same way. Receipt ids
//! have no order, so none is ever forgotten: once [`MAX_GUARD_RECEIPT_SLOTS`] receipts are
//! recorded, new receipt slots are refused ([`GuardError::Full`]) until the committee moves
//! to a new epoch (a new key share comes with a new, empty guard). Refusing is always safe;
//! forgetting a slot and signing it again would not be.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::codec::{self, CodecError};

/// Most DA heights a guard records (the lowest are pruned beyond this).
pub const MAX_GUARD_DA_SLOTS: usize = 4096;

/// Most receipt slots a guard records (new receipt slots are refused beyond this).
pub const MAX_GUARD_RECEIPT_SLOTS: usize = 16_384;

/// Largest encoded guard, in bytes (a full guard is about 1.4 MiB).
pub const MAX_GUARD_BYTES: usize = 2 * 1024 * 1024;

/// Guard format version this build writes and accepts.
pub const GUARD_VERSION: u16 = 1;

/// What a threshold signature is for: at most one message is ever signed per slot.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Slot {
    /// The DA blob at this height.
    DaBlob(u64),
    /// The receipt with this id.
    Receipt(#[serde(with = "serde_bytes")] [u8; 32]),
}

impl fmt::Debug for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Slot::DaBlob(h) => write!(f, "da-blob/{h}"),
            Slot::Receipt(id) => write!(f, "receipt/{}", hex::encode(id)),
        }
    }
}

/// Why the guard refuses a slot.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError {
    /// A different message was already signed for this slot.
    #[error("equivocation: a different message was already signed for {0}")]
    Equivocation(Slot),
    /// The DA height is below the low-water mark (forgotten, so refused).
    #[error("{slot} is below the low-water mark {low_water}")]
    BelowLowWater {
        /// The slot.
        slot: Slot,
        /// The lowest DA height still accepted.
        low_water: u64,
    },
    /// The guard holds [`MAX_GUARD_RECEIPT_SLOTS`] receipts and refuses new ones.
    #[error("the signing guard is full ({MAX_GUARD_RECEIPT_SLOTS} receipts)")]
    Full,
}

/// The record of every slot a member signed (see the module documentation).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SlotGuard {
    da_low_water: u64,
    da: BTreeMap<u64, [u8; 32]>,
    receipts: BTreeMap<[u8; 32], [u8; 32]>,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u16,
}

#[derive(Serialize, Deserialize)]
struct GuardWire {
    version: u16,
    da_low_water: u64,
    da: Vec<(u64, serde_bytes::ByteBuf)>,
    receipts: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
}

/// Why guard bytes are refused.
#[derive(Debug, thiserror::Error)]
pub enum GuardDecodeError {
    /// Oversized or not CBOR of the right shape.
    #[error("signing guard: {0}")]
    Codec(#[from] CodecError),
    /// Another format version.
    #[error("unsupported signing guard version {0} (this build reads {GUARD_VERSION})")]
    UnsupportedVersion(u16),
    /// Out of bounds, a hash not of 32 bytes, or a DA height below the low-water mark.
    #[error("malformed signing guard: {0}")]
    Malformed(&'static str),
}

/// SHA-256 of a message, as recorded by the guard.
pub fn message_hash(message: &[u8]) -> [u8; 32] {
    Sha256::digest(message).into()
}

impl SlotGuard {
    /// An empty guard.
    pub fn new() -> Self {
        Self::default()
    }

    /// The lowest DA height still accepted.
    pub fn da_low_water(&self) -> u64 {
        self.da_low_water
    }

    /// Number of recorded slots (DA heights and receipts).
    pub fn len(&self) -> usize {
        self.da.len() + self.receipts.len()
    }

    /// True when nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The hash recorded for `slot`, if signed.
    pub fn signed(&self, slot: &Slot) -> Option<[u8; 32]> {
        match slot {
            Slot::DaBlob(h) => self.da.get(h).copied(),
            Slot::Receipt(id) => self.receipts.get(id).copied(),
        }
    }

    /// Checks that signing the message with hash `hash` for `slot` is allowed (never signed,
    /// or signed with the same message). Records nothing.
    ///
    /// # Errors
    /// [`GuardError`] when refused.
    pub fn check(&self, slot: &Slot, hash: &[u8; 32]) -> Result<(), GuardError> {
        match self.signed(slot) {
            Some(h) if h == *hash => return Ok(()),
            Some(_) => return Err(GuardError::Equivocation(*slot)),
            None => {}
        }
        match slot {
            Slot::DaBlob(h) if *h < self.da_low_water => Err(GuardError::BelowLowWater {
                slot: *slot,
                low_water: self.da_low_water,
            }),
            Slot::Receipt(_) if self.receipts.len() >= MAX_GUARD_RECEIPT_SLOTS => {
                Err(GuardError::Full)
            }
            _ => Ok(()),
        }
    }

    /// Checks (as [`SlotGuard::check`]) and records that the message with hash `hash` is
    /// signed for `slot`. Recording more than [`MAX_GUARD_DA_SLOTS`] DA heights raises the
    /// low-water mark past the lowest.
    ///
    /// # Errors
    /// [`GuardError`] when refused; nothing is recorded then.
    pub fn record(&mut self, slot: &Slot, hash: &[u8; 32]) -> Result<(), GuardError> {
        self.check(slot, hash)?;
        match slot {
            Slot::DaBlob(h) => {
                self.da.insert(*h, *hash);
                while self.da.len() > MAX_GUARD_DA_SLOTS {
                    if let Some((lowest, _)) = self.da.pop_first() {
                        self.da_low_water = self.da_low_water.max(lowest.saturating_add(1));
                    }
                }
            }
            Slot::Receipt(id) => {
                self.receipts.insert(*id, *hash);
            }
        }
        Ok(())
    }

    /// Forgets, and from now on refuses, every DA height below `height` (no-op if `height` is
    /// not above the current mark).
    pub fn prune_da_below(&mut self, height: u64) {
        if height > self.da_low_water {
            self.da_low_water = height;
            self.da = self.da.split_off(&height);
        }
    }

    /// Encodes the guard (at most [`MAX_GUARD_BYTES`]).
    ///
    /// # Errors
    /// [`CodecError`] only if the bounds were broken (cannot happen through this API).
    pub fn to_bytes(&self) -> Result<Vec<u8>, CodecError> {
        let wire = GuardWire {
            version: GUARD_VERSION,
            da_low_water: self.da_low_water,
            da: self
                .da
                .iter()
                .map(|(h, m)| (*h, serde_bytes::ByteBuf::from(m.to_vec())))
                .collect(),
            receipts: self
                .receipts
                .iter()
                .map(|(id, m)| {
                    (
                        serde_bytes::ByteBuf::from(id.to_vec()),
                        serde_bytes::ByteBuf::from(m.to_vec()),
                    )
                })
                .collect(),
        };
        codec::encode(&wire, MAX_GUARD_BYTES)
    }

    /// Decodes a guard written by [`SlotGuard::to_bytes`], checking its bounds.
    ///
    /// # Errors
    /// [`GuardDecodeError`] for oversized, malformed or out-of-bounds input, or another version.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, GuardDecodeError> {
        let VersionOnly { version } = codec::decode(bytes, MAX_GUARD_BYTES)?;
        if version != GUARD_VERSION {
            return Err(GuardDecodeError::UnsupportedVersion(version));
        }
        let wire: GuardWire = codec::decode(bytes, MAX_GUARD_BYTES)?;
        if wire.da.len() > MAX_GUARD_DA_SLOTS || wire.receipts.len() > MAX_GUARD_RECEIPT_SLOTS {
            return Err(GuardDecodeError::Malformed("too many slots"));
        }
        let hash = |b: &serde_bytes::ByteBuf| {
            <[u8; 32]>::try_from(b.as_slice())
                .map_err(|_| GuardDecodeError::Malformed("hash is not 32 bytes"))
        };
        let mut guard = SlotGuard {
            da_low_water: wire.da_low_water,
            ..SlotGuard::default()
        };
        for (h, m) in &wire.da {
            if *h < wire.da_low_water {
                return Err(GuardDecodeError::Malformed(
                    "DA height below the low-water mark",
                ));
            }
            if guard.da.insert(*h, hash(m)?).is_some() {
                return Err(GuardDecodeError::Malformed("DA height recorded twice"));
            }
        }
        for (id, m) in &wire.receipts {
            if guard.receipts.insert(hash(id)?, hash(m)?).is_some() {
                return Err(GuardDecodeError::Malformed("receipt recorded twice"));
            }
        }
        Ok(guard)
    }
}
