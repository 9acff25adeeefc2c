//! Fixed-size byte strings that are hex in JSON and raw bytes in CBOR.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

macro_rules! fixed_bytes {
    ($name:ident, $n:expr, $doc:expr) => {
        #[doc = $doc]
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub [u8; $n]);

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), hex::encode(self.0))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&hex::encode(self.0))
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&hex::encode(self.0))
                } else {
                    s.serialize_bytes(&self.0)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                struct V;
                impl<'de> Visitor<'de> for V {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        write!(f, "{} bytes, or {} hex characters", $n, 2 * $n)
                    }
                    fn visit_str<E: de::Error>(self, v: &str) -> Result<$name, E> {
                        let mut out = [0u8; $n];
                        hex::decode_to_slice(v, &mut out).map_err(|_| {
                            E::custom(format!("expected {} hex characters", 2 * $n))
                        })?;
                        Ok($name(out))
                    }
                    fn visit_bytes<E: de::Error>(self, v: &[u8]) -> Result<$name, E> {
                        <[u8; $n]>::try_from(v)
                            .map($name)
                            .map_err(|_| E::invalid_length(v.len(), &self))
                    }
                }
                if d.is_human_readable() {
                    d.deserialize_str(V)
                } else {
                    d.deserialize_bytes(V)
                }
            }
        }
    };
}

fixed_bytes!(Bytes32, 32, "32 bytes (hashes, Ed25519 public keys).");
fixed_bytes!(Bytes64, 64, "64 bytes (Ed25519 signatures).");
