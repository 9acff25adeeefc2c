//! Committee types: members, the committee configuration, the group key and the key-share
//! file a member keeps in its data directory.

use std::fmt;

use frost_ed25519 as frost;
use serde::{Deserialize, Serialize};

use crate::codec::{self, CodecError};

/// Fewest members of a committee (and smallest threshold).
pub const MIN_MEMBERS: usize = 2;

/// Most members of a committee.
pub const MAX_MEMBERS: usize = 64;

/// Longest member id in bytes (a libp2p PeerId is 38 bytes for an Ed25519 identity key).
pub const MAX_MEMBER_ID_BYTES: usize = 64;

/// Key-share file format version this build writes and accepts.
pub const KEY_SHARE_FILE_VERSION: u16 = 1;

/// Largest encoded [`KeyShareFile`] accepted, in bytes (64 members of 64-byte ids and their
/// verifying shares need about 9 KiB).
pub const MAX_KEY_SHARE_FILE_BYTES: usize = 32 * 1024;

/// Implements `to_bytes`/`from_bytes` through [`crate::codec`] with a cap for a wire type.
macro_rules! cbor_wire {
    ($ty:ty, $cap:expr) => {
        impl $ty {
            /// Encodes as CBOR, refusing encodings over the type's cap.
            ///
            /// # Errors
            /// [`crate::codec::CodecError::TooLarge`] over the cap.
            pub fn to_bytes(&self) -> Result<Vec<u8>, crate::codec::CodecError> {
                crate::codec::encode(self, $cap)
            }

            /// Decodes from CBOR, refusing input over the type's cap before decoding.
            ///
            /// # Errors
            /// [`crate::codec::CodecError`] for oversized or malformed input.
            pub fn from_bytes(bytes: &[u8]) -> Result<Self, crate::codec::CodecError> {
                crate::codec::decode(bytes, $cap)
            }
        }
    };
}
pub(crate) use cbor_wire;

/// Why a committee configuration (or a member id) is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A member id is empty or longer than [`MAX_MEMBER_ID_BYTES`].
    #[error("member id of {0} bytes (must be 1..={MAX_MEMBER_ID_BYTES})")]
    BadMemberId(usize),
    /// Fewer than [`MIN_MEMBERS`] or more than [`MAX_MEMBERS`] members.
    #[error("committee of {0} members (must be {MIN_MEMBERS}..={MAX_MEMBERS})")]
    BadSize(usize),
    /// The threshold is below 2 or above the number of members.
    #[error("threshold {threshold} for {members} members (must be 2..=members)")]
    BadThreshold {
        /// The threshold.
        threshold: u16,
        /// The number of members.
        members: usize,
    },
    /// A member is listed twice.
    #[error("member {0} is listed twice")]
    Duplicate(MemberId),
    /// The member is not in the committee.
    #[error("{0} is not a member of the committee")]
    NotAMember(MemberId),
}

/// A committee member: its libp2p PeerId, as bytes (1..=[`MAX_MEMBER_ID_BYTES`]).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct MemberId(#[serde(with = "serde_bytes")] Vec<u8>);

impl MemberId {
    /// A member id from PeerId bytes.
    ///
    /// # Errors
    /// [`ConfigError::BadMemberId`] when empty or longer than [`MAX_MEMBER_ID_BYTES`].
    pub fn new(bytes: impl Into<Vec<u8>>) -> Result<Self, ConfigError> {
        let bytes = bytes.into();
        if bytes.is_empty() || bytes.len() > MAX_MEMBER_ID_BYTES {
            return Err(ConfigError::BadMemberId(bytes.len()));
        }
        Ok(Self(bytes))
    }

    /// The PeerId bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn is_valid(&self) -> bool {
        !self.0.is_empty() && self.0.len() <= MAX_MEMBER_ID_BYTES
    }
}

impl fmt::Debug for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MemberId({self})")
    }
}

impl fmt::Display for MemberId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(&self.0))
    }
}

/// A committee: its epoch, threshold `t` and ordered members.
///
/// The order of `members` defines each member's FROST identifier (position + 1), so every
/// member must hold the same list in the same order.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitteeConfig {
    /// The committee epoch; a new DKG (and a new group key) for every epoch.
    pub epoch: u64,
    /// Signatures need shares from `threshold` members (2 ≤ t ≤ n).
    pub threshold: u16,
    /// The members, in identifier order (2 ≤ n ≤ [`MAX_MEMBERS`], no duplicates).
    pub members: Vec<MemberId>,
}

impl CommitteeConfig {
    /// Checks the bounds: 2 ≤ t ≤ n ≤ [`MAX_MEMBERS`], member ids well formed, no duplicates.
    ///
    /// # Errors
    /// The first [`ConfigError`] found.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let n = self.members.len();
        if !(MIN_MEMBERS..=MAX_MEMBERS).contains(&n) {
            return Err(ConfigError::BadSize(n));
        }
        if usize::from(self.threshold) < MIN_MEMBERS || usize::from(self.threshold) > n {
            return Err(ConfigError::BadThreshold {
                threshold: self.threshold,
                members: n,
            });
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.members {
            if !m.is_valid() {
                return Err(ConfigError::BadMemberId(m.0.len()));
            }
            if !seen.insert(m) {
                return Err(ConfigError::Duplicate(m.clone()));
            }
        }
        Ok(())
    }

    /// The number of members `n`.
    pub fn size(&self) -> u16 {
        // validate() bounds n by MAX_MEMBERS; saturate for unvalidated configs.
        u16::try_from(self.members.len()).unwrap_or(u16::MAX)
    }

    /// True when `member` is in the committee.
    pub fn contains(&self, member: &MemberId) -> bool {
        self.members.contains(member)
    }

    /// The FROST identifier of `member` (its position + 1), if it is a member.
    pub(crate) fn identifier(&self, member: &MemberId) -> Option<frost::Identifier> {
        let pos = self.members.iter().position(|m| m == member)?;
        let n = u16::try_from(pos + 1).ok()?;
        frost::Identifier::try_from(n).ok()
    }

    /// The member holding FROST identifier `id`.
    pub(crate) fn member(&self, id: &frost::Identifier) -> Option<&MemberId> {
        self.members
            .iter()
            .enumerate()
            .find(|(i, _)| {
                u16::try_from(i + 1)
                    .ok()
                    .and_then(|n| frost::Identifier::try_from(n).ok())
                    .as_ref()
                    == Some(id)
            })
            .map(|(_, m)| m)
    }
}

/// The group's Ed25519 public key: what a threshold signature verifies against, and the
/// value that becomes the network's `da_authority`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct GroupKey(#[serde(with = "serde_bytes")] pub [u8; 32]);

impl GroupKey {
    /// Verifies a 64-byte signature over `message` with plain Ed25519
    /// (`ed25519_dalek::VerifyingKey::verify_strict`), as any node does.
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        ed25519_dalek::VerifyingKey::from_bytes(&self.0).is_ok_and(|k| {
            k.verify_strict(message, &ed25519_dalek::Signature::from_bytes(signature))
                .is_ok()
        })
    }

    /// Lower-case hex, as written in seeds.toml.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub(crate) fn from_frost(key: &frost::VerifyingKey) -> Option<Self> {
        let bytes = key.serialize().ok()?;
        <[u8; 32]>::try_from(bytes.as_slice()).ok().map(Self)
    }
}

impl fmt::Debug for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GroupKey({})", self.to_hex())
    }
}

impl fmt::Display for GroupKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Why a key-share file is refused.
#[derive(Debug, thiserror::Error)]
pub enum KeyShareError {
    /// Oversized or not CBOR of the right shape.
    #[error("key-share file: {0}")]
    Codec(#[from] CodecError),
    /// A format version this build does not know.
    #[error("unsupported key-share file version {0} (this build reads {KEY_SHARE_FILE_VERSION})")]
    UnsupportedVersion(u16),
    /// The committee configuration in the file is invalid.
    #[error("key-share file: {0}")]
    Config(#[from] ConfigError),
    /// The FROST packages do not parse or do not match the configuration.
    #[error("key-share file is inconsistent: {0}")]
    Inconsistent(&'static str),
}

/// One member's key material after a DKG: its FROST key package (secret signing share), the
/// group's public key package and the committee configuration.
///
/// Stored in the member's data directory (the daemon writes it with mode 0600). Encoded as
/// the CBOR map `{version, config, member, key_package, public_key_package}` (the packages in
/// frost's own serialisation), at most [`MAX_KEY_SHARE_FILE_BYTES`]. The version is read
/// first, so a file of another version is refused as [`KeyShareError::UnsupportedVersion`]
/// whatever its shape. Decoding checks the packages against the configuration.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyShareFile {
    config: CommitteeConfig,
    member: MemberId,
    key_package: frost::keys::KeyPackage,
    public_key_package: frost::keys::PublicKeyPackage,
    group_key: GroupKey,
}

#[derive(Deserialize)]
struct VersionOnly {
    version: u16,
}

#[derive(Serialize, Deserialize)]
struct KeyShareWire {
    version: u16,
    config: CommitteeConfig,
    member: MemberId,
    #[serde(with = "serde_bytes")]
    key_package: Vec<u8>,
    #[serde(with = "serde_bytes")]
    public_key_package: Vec<u8>,
}

impl KeyShareFile {
    /// Assembles and checks a key-share file (used by the DKG).
    pub(crate) fn new(
        config: CommitteeConfig,
        member: MemberId,
        key_package: frost::keys::KeyPackage,
        public_key_package: frost::keys::PublicKeyPackage,
    ) -> Result<Self, KeyShareError> {
        config.validate()?;
        let id = config
            .identifier(&member)
            .ok_or_else(|| ConfigError::NotAMember(member.clone()))?;
        if *key_package.identifier() != id {
            return Err(KeyShareError::Inconsistent(
                "identifier is not the member's",
            ));
        }
        if *key_package.min_signers() != config.threshold
            || public_key_package.min_signers() != Some(config.threshold)
        {
            return Err(KeyShareError::Inconsistent("threshold differs"));
        }
        if key_package.verifying_key() != public_key_package.verifying_key() {
            return Err(KeyShareError::Inconsistent("group keys differ"));
        }
        let shares = public_key_package.verifying_shares();
        if shares.len() != config.members.len()
            || config.members.iter().any(|m| {
                config
                    .identifier(m)
                    .is_none_or(|i| !shares.contains_key(&i))
            })
        {
            return Err(KeyShareError::Inconsistent(
                "verifying shares are not the members'",
            ));
        }
        if shares.get(&id) != Some(key_package.verifying_share()) {
            return Err(KeyShareError::Inconsistent("own verifying share differs"));
        }
        let group_key = GroupKey::from_frost(public_key_package.verifying_key())
            .ok_or(KeyShareError::Inconsistent("group key is not 32 bytes"))?;
        Ok(Self {
            config,
            member,
            key_package,
            public_key_package,
            group_key,
        })
    }

    /// Encodes the file (at most [`MAX_KEY_SHARE_FILE_BYTES`]).
    ///
    /// # Errors
    /// [`KeyShareError::Codec`] if the encoding is over the cap (cannot happen for a
    /// validated committee), [`KeyShareError::Inconsistent`] if frost cannot serialise.
    pub fn to_bytes(&self) -> Result<Vec<u8>, KeyShareError> {
        let wire = KeyShareWire {
            version: KEY_SHARE_FILE_VERSION,
            config: self.config.clone(),
            member: self.member.clone(),
            key_package: self
                .key_package
                .serialize()
                .map_err(|_| KeyShareError::Inconsistent("key package does not serialise"))?,
            public_key_package: self.public_key_package.serialize().map_err(|_| {
                KeyShareError::Inconsistent("public key package does not serialise")
            })?,
        };
        Ok(codec::encode(&wire, MAX_KEY_SHARE_FILE_BYTES)?)
    }

    /// Decodes and checks a file.
    ///
    /// # Errors
    /// [`KeyShareError::UnsupportedVersion`] for another version, otherwise any
    /// [`KeyShareError`] for a malformed or inconsistent file.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, KeyShareError> {
        let VersionOnly { version } = codec::decode(bytes, MAX_KEY_SHARE_FILE_BYTES)?;
        if version != KEY_SHARE_FILE_VERSION {
            return Err(KeyShareError::UnsupportedVersion(version));
        }
        let wire: KeyShareWire = codec::decode(bytes, MAX_KEY_SHARE_FILE_BYTES)?;
        let key_package = frost::keys::KeyPackage::deserialize(&wire.key_package)
            .map_err(|_| KeyShareError::Inconsistent("key package does not parse"))?;
        let public_key_package =
            frost::keys::PublicKeyPackage::deserialize(&wire.public_key_package)
                .map_err(|_| KeyShareError::Inconsistent("public key package does not parse"))?;
        Self::new(wire.config, wire.member, key_package, public_key_package)
    }

    /// The committee configuration.
    pub fn config(&self) -> &CommitteeConfig {
        &self.config
    }

    /// The member this share belongs to.
    pub fn member(&self) -> &MemberId {
        &self.member
    }

    /// The group public key.
    pub fn group_key(&self) -> GroupKey {
        self.group_key
    }

    pub(crate) fn key_package(&self) -> &frost::keys::KeyPackage {
        &self.key_package
    }

    pub(crate) fn public_key_package(&self) -> &frost::keys::PublicKeyPackage {
        &self.public_key_package
    }
}

impl fmt::Debug for KeyShareFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyShareFile")
            .field("config", &self.config)
            .field("member", &self.member)
            .field("group_key", &self.group_key)
            .field("signing_share", &"<redacted>")
            .finish()
    }
}
