//! Storage-node and coordinator registration: protocol `/dsdn/<network>/da-register/1.0.0`.
//!
//! A storage node asks the DA publisher to record it in the DA log with a
//! [`RegisterRequest`]; the publisher answers with a [`RegisterResponse`] naming the
//! blob height that carries its `NodeRegistered` event, or a refusal. The node id is the
//! requester's authenticated libp2p PeerId, so it is not part of the request.
//!
//! A coordinator registers the same way with the class [`COORDINATOR_CLASS`] (issue 13 §3:
//! the registry the next committees are selected from): the publisher records a
//! `CoordinatorRegistered` event instead, and the zone and capacity are not recorded. A
//! publisher of an older build refuses that class ([`RegisterError::UnknownClass`]), so it
//! never records a coordinator as a storage node.
//!
//! Spec: Tahap 14A §1 (`NodeRegistered`), issue 5 §4 (registration of storage nodes).
//! Both messages are CBOR through [`crate::codec`], at most [`MAX_REGISTER_BYTES`] each.

use serde::{Deserialize, Serialize};

use crate::codec;

/// Largest encoded [`RegisterRequest`] or [`RegisterResponse`], in bytes.
pub const MAX_REGISTER_BYTES: usize = 1024;

/// Longest zone or class, in bytes (the `NodeRegistered` text bound; minimum 1).
pub const MAX_REGISTER_TEXT_LEN: usize = 128;

/// Longest refusal reason, in bytes.
pub const MAX_REFUSAL_REASON_LEN: usize = 256;

/// The node classes a registration may name (as in `NodeRegistered.class`).
pub const NODE_CLASSES: [&str; 2] = ["regular", "datacenter"];

/// The class of a coordinator's registration (a `CoordinatorRegistered` event, not a
/// `NodeRegistered` one).
pub const COORDINATOR_CLASS: &str = "coordinator";

/// Why a registration message is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegisterError {
    /// The zone is empty or longer than [`MAX_REGISTER_TEXT_LEN`] bytes (its length).
    #[error("zone must be 1..={MAX_REGISTER_TEXT_LEN} bytes, got {0}")]
    ZoneLength(usize),
    /// The class is empty or longer than [`MAX_REGISTER_TEXT_LEN`] bytes (its length).
    #[error("class must be 1..={MAX_REGISTER_TEXT_LEN} bytes, got {0}")]
    ClassLength(usize),
    /// The class is not one of [`NODE_CLASSES`] nor [`COORDINATOR_CLASS`].
    #[error("class must be \"regular\", \"datacenter\" or \"coordinator\", got {0:?}")]
    UnknownClass(String),
    /// A refusal reason longer than [`MAX_REFUSAL_REASON_LEN`] bytes (its length).
    #[error("refusal reason of {0} bytes (max {MAX_REFUSAL_REASON_LEN})")]
    ReasonTooLong(usize),
    /// Not decodable or encodable within [`MAX_REGISTER_BYTES`] (the codec's message).
    #[error("malformed registration message: {0}")]
    Malformed(String),
}

/// "Record me in the DA log as a storage node."
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The node's zone, 1..=[`MAX_REGISTER_TEXT_LEN`] bytes.
    pub zone: String,
    /// Storage the node offers, in bytes.
    pub capacity_bytes: u64,
    /// `"regular"` or `"datacenter"` (a storage node), or [`COORDINATOR_CLASS`].
    pub class: String,
}

impl RegisterRequest {
    /// Checks the same bounds as a `NodeRegistered` event: zone and class
    /// 1..=[`MAX_REGISTER_TEXT_LEN`] bytes, class one of [`NODE_CLASSES`] or
    /// [`COORDINATOR_CLASS`].
    ///
    /// # Errors
    /// [`RegisterError::ZoneLength`], [`RegisterError::ClassLength`] or
    /// [`RegisterError::UnknownClass`].
    pub fn validate(&self) -> Result<(), RegisterError> {
        if self.zone.is_empty() || self.zone.len() > MAX_REGISTER_TEXT_LEN {
            return Err(RegisterError::ZoneLength(self.zone.len()));
        }
        if self.class.is_empty() || self.class.len() > MAX_REGISTER_TEXT_LEN {
            return Err(RegisterError::ClassLength(self.class.len()));
        }
        if !NODE_CLASSES.contains(&self.class.as_str()) && !self.is_coordinator() {
            return Err(RegisterError::UnknownClass(self.class.clone()));
        }
        Ok(())
    }

    /// True for a coordinator's registration (class [`COORDINATOR_CLASS`]).
    pub fn is_coordinator(&self) -> bool {
        self.class == COORDINATOR_CLASS
    }

    /// Validates, then encodes as CBOR (at most [`MAX_REGISTER_BYTES`]).
    ///
    /// # Errors
    /// Any [`RegisterRequest::validate`] error; [`RegisterError::Malformed`] from the codec.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RegisterError> {
        self.validate()?;
        codec::encode(self, MAX_REGISTER_BYTES).map_err(|e| RegisterError::Malformed(e.to_string()))
    }

    /// Decodes (cap [`MAX_REGISTER_BYTES`] checked first), then validates.
    ///
    /// # Errors
    /// [`RegisterError::Malformed`] for oversize or undecodable input; any
    /// [`RegisterRequest::validate`] error.
    pub fn from_bytes(bytes: &[u8]) -> Result<RegisterRequest, RegisterError> {
        let req: RegisterRequest = codec::decode(bytes, MAX_REGISTER_BYTES)
            .map_err(|e| RegisterError::Malformed(e.to_string()))?;
        req.validate()?;
        Ok(req)
    }
}

/// The publisher's answer to a [`RegisterRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterResponse {
    /// The `NodeRegistered` event was sealed into the blob at `height`.
    Registered {
        /// Height of the DA blob carrying the event (≥ 1).
        height: u64,
    },
    /// Not registered; `reason` says why (at most [`MAX_REFUSAL_REASON_LEN`] bytes).
    Refused {
        /// Human-readable reason, at most [`MAX_REFUSAL_REASON_LEN`] bytes.
        reason: String,
    },
}

impl RegisterResponse {
    /// A refusal whose reason is `reason` cut to at most [`MAX_REFUSAL_REASON_LEN`] bytes
    /// (at a character boundary), so it always validates.
    pub fn refused(reason: &str) -> RegisterResponse {
        let mut end = reason.len().min(MAX_REFUSAL_REASON_LEN);
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        RegisterResponse::Refused {
            reason: reason[..end].to_owned(),
        }
    }

    /// Checks the refusal reason length.
    ///
    /// # Errors
    /// [`RegisterError::ReasonTooLong`] when a refusal reason exceeds
    /// [`MAX_REFUSAL_REASON_LEN`] bytes.
    pub fn validate(&self) -> Result<(), RegisterError> {
        match self {
            RegisterResponse::Refused { reason } if reason.len() > MAX_REFUSAL_REASON_LEN => {
                Err(RegisterError::ReasonTooLong(reason.len()))
            }
            _ => Ok(()),
        }
    }

    /// Validates, then encodes as CBOR (at most [`MAX_REGISTER_BYTES`]).
    ///
    /// # Errors
    /// [`RegisterError::ReasonTooLong`]; [`RegisterError::Malformed`] from the codec.
    pub fn to_bytes(&self) -> Result<Vec<u8>, RegisterError> {
        self.validate()?;
        codec::encode(self, MAX_REGISTER_BYTES).map_err(|e| RegisterError::Malformed(e.to_string()))
    }

    /// Decodes (cap [`MAX_REGISTER_BYTES`] checked first), then validates.
    ///
    /// # Errors
    /// [`RegisterError::Malformed`] for oversize or undecodable input;
    /// [`RegisterError::ReasonTooLong`].
    pub fn from_bytes(bytes: &[u8]) -> Result<RegisterResponse, RegisterError> {
        let resp: RegisterResponse = codec::decode(bytes, MAX_REGISTER_BYTES)
            .map_err(|e| RegisterError::Malformed(e.to_string()))?;
        resp.validate()?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn req(zone: &str, class: &str) -> RegisterRequest {
        RegisterRequest {
            zone: zone.into(),
            capacity_bytes: 1 << 40,
            class: class.into(),
        }
    }

    #[test]
    fn validation_bounds() {
        assert_eq!(req("eu-1", "regular").validate(), Ok(()));
        assert_eq!(req("eu-1", "datacenter").validate(), Ok(()));
        assert_eq!(req("eu-1", COORDINATOR_CLASS).validate(), Ok(()));
        assert!(req("eu-1", COORDINATOR_CLASS).is_coordinator());
        assert!(!req("eu-1", "regular").is_coordinator());
        assert_eq!(req(&"z".repeat(128), "regular").validate(), Ok(()));
        assert_eq!(
            req("", "regular").validate(),
            Err(RegisterError::ZoneLength(0))
        );
        assert_eq!(
            req(&"z".repeat(129), "regular").validate(),
            Err(RegisterError::ZoneLength(129))
        );
        assert_eq!(req("z", "").validate(), Err(RegisterError::ClassLength(0)));
        assert_eq!(
            req("z", &"c".repeat(129)).validate(),
            Err(RegisterError::ClassLength(129))
        );
        assert_eq!(
            req("z", "Regular").validate(),
            Err(RegisterError::UnknownClass("Regular".into()))
        );
    }

    #[test]
    fn invalid_requests_are_neither_encoded_nor_decoded() {
        let bad = req("z", "archive");
        assert!(bad.to_bytes().is_err());
        let bytes = codec::encode(&bad, MAX_REGISTER_BYTES).unwrap();
        assert_eq!(
            RegisterRequest::from_bytes(&bytes),
            Err(RegisterError::UnknownClass("archive".into()))
        );
        assert!(matches!(
            RegisterRequest::from_bytes(&[0u8; MAX_REGISTER_BYTES + 1]),
            Err(RegisterError::Malformed(_))
        ));
        assert!(matches!(
            RegisterRequest::from_bytes(b"\xff"),
            Err(RegisterError::Malformed(_))
        ));
    }

    #[test]
    fn responses_round_trip_and_bound_the_reason() {
        for r in [
            RegisterResponse::Registered { height: u64::MAX },
            RegisterResponse::refused("publisher queue full"),
            RegisterResponse::refused(&"x".repeat(256)),
        ] {
            let bytes = r.to_bytes().unwrap();
            assert!(bytes.len() <= MAX_REGISTER_BYTES);
            assert_eq!(RegisterResponse::from_bytes(&bytes).unwrap(), r);
        }
        let long = RegisterResponse::Refused {
            reason: "x".repeat(257),
        };
        assert_eq!(long.validate(), Err(RegisterError::ReasonTooLong(257)));
        assert!(long.to_bytes().is_err());
        let bytes = codec::encode(&long, MAX_REGISTER_BYTES).unwrap();
        assert_eq!(
            RegisterResponse::from_bytes(&bytes),
            Err(RegisterError::ReasonTooLong(257))
        );
        // Cut at a character boundary: 'é' is 2 bytes, 200 of them are 400 bytes.
        let RegisterResponse::Refused { reason } = RegisterResponse::refused(&"é".repeat(200))
        else {
            unreachable!()
        };
        assert_eq!(reason.len(), 256);
    }

    proptest! {
        #[test]
        fn valid_requests_round_trip_within_the_cap(
            zone in "\\PC{1,128}",
            capacity_bytes in any::<u64>(),
            datacenter in any::<bool>(),
        ) {
            // Cut to 128 bytes at a character boundary so the zone is always valid.
            let mut end = zone.len().min(MAX_REGISTER_TEXT_LEN);
            while !zone.is_char_boundary(end) { end -= 1; }
            prop_assume!(end > 0);
            let r = RegisterRequest {
                zone: zone[..end].to_owned(),
                capacity_bytes,
                class: NODE_CLASSES[usize::from(datacenter)].to_owned(),
            };
            let bytes = r.to_bytes().unwrap();
            prop_assert!(bytes.len() <= MAX_REGISTER_BYTES);
            prop_assert_eq!(RegisterRequest::from_bytes(&bytes).unwrap(), r);
        }

        #[test]
        fn largest_messages_fit_the_cap(zone_len in 1usize..=128, class_len in 1usize..=128, reason_len in 0usize..=256) {
            // Even unvalidated maximal text encodes within the cap.
            let r = req(&"\u{7f}".repeat(zone_len), &"c".repeat(class_len));
            prop_assert!(codec::encode(&r, MAX_REGISTER_BYTES).is_ok());
            let resp = RegisterResponse::refused(&"\u{10FFFF}".repeat(reason_len));
            prop_assert!(resp.to_bytes().is_ok());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1100)) {
            if let Ok(r) = RegisterRequest::from_bytes(&bytes) {
                prop_assert!(r.validate().is_ok());
            }
            if let Ok(r) = RegisterResponse::from_bytes(&bytes) {
                prop_assert!(r.validate().is_ok());
            }
        }
    }
}
