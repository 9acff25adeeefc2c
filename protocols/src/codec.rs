//! The one CBOR codec of the project.
//!
//! `serde_cbor` is unmaintained, so every use of it stays behind this module: callers name a
//! byte cap, and input longer than the cap is refused before the decoder sees a byte. The
//! decoder is additionally run with a recursion limit (serde_cbor's default of 128) and the
//! decoded value must consume the whole input.

use serde::{de::DeserializeOwned, Serialize};

/// Errors of [`encode`] and [`decode`].
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// The input or the encoded output is larger than the cap the caller gave.
    #[error("message of {len} bytes exceeds the cap of {cap} bytes")]
    TooLarge {
        /// Length of the input (decode) or of the encoded value (encode), in bytes.
        len: usize,
        /// The cap, in bytes.
        cap: usize,
    },
    /// The bytes are not a valid CBOR encoding of the expected type.
    #[error("invalid CBOR: {0}")]
    Invalid(String),
}

/// Encodes `value` as CBOR and refuses results larger than `cap` bytes.
///
/// # Errors
/// [`CodecError::TooLarge`] when the encoding exceeds `cap`; [`CodecError::Invalid`] when
/// serialisation fails (only for types serde cannot represent in CBOR).
pub fn encode<T: Serialize>(value: &T, cap: usize) -> Result<Vec<u8>, CodecError> {
    let bytes = serde_cbor::to_vec(value).map_err(|e| CodecError::Invalid(e.to_string()))?;
    if bytes.len() > cap {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            cap,
        });
    }
    Ok(bytes)
}

/// Decodes one CBOR value of type `T` from `bytes`, refusing input longer than `cap` bytes
/// before decoding and trailing bytes after the value.
///
/// # Errors
/// [`CodecError::TooLarge`] when `bytes.len() > cap`; [`CodecError::Invalid`] for malformed
/// CBOR, a value of the wrong shape, or trailing data.
pub fn decode<T: DeserializeOwned>(bytes: &[u8], cap: usize) -> Result<T, CodecError> {
    if bytes.len() > cap {
        return Err(CodecError::TooLarge {
            len: bytes.len(),
            cap,
        });
    }
    serde_cbor::from_slice(bytes).map_err(|e| CodecError::Invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn cap_is_enforced_before_decoding() {
        let bytes = encode(&vec![1u8; 100], 1000).unwrap();
        assert!(matches!(
            decode::<Vec<u8>>(&bytes, 10),
            Err(CodecError::TooLarge { cap: 10, .. })
        ));
        assert!(matches!(
            encode(&vec![1u8; 100], 10),
            Err(CodecError::TooLarge { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut bytes = encode(&42u32, 100).unwrap();
        bytes.push(0);
        assert!(decode::<u32>(&bytes, 100).is_err());
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode::<Vec<String>>(&bytes, 4096);
            let _ = decode::<(u64, Vec<u8>, Option<String>)>(&bytes, 4096);
        }
    }
}
