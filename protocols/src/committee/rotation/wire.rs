//! The rotation's request on `/dsdn/<network>/da-rotation/1.0.0`: [`RotationRequest`].

use serde::{Deserialize, Serialize};

use super::msg::{RotationMsg, MAX_ROTATION_MSG_BYTES};
use crate::committee::types::cbor_wire;
use crate::da::WireEvent;

/// Most events one [`RotationRequest::Forward`] carries (a full blob's worth).
pub const MAX_FORWARD_EVENTS: usize = 1024;

/// Largest encoded [`RotationRequest`], in bytes: a [`RotationMsg`] of at most
/// [`MAX_ROTATION_MSG_BYTES`] plus the envelope; a `Forward` must fit too.
pub const MAX_ROTATION_REQUEST_BYTES: usize = MAX_ROTATION_MSG_BYTES + 64;

/// One request between committee members; the answer is a CBOR `bool` (`true`: taken,
/// `false`: refused, e.g. a non-member, a malformed or refused message).
///
/// CBOR: `{"Msg": <RotationMsg>}` or `{"Forward": [[kind, version, body], …]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationRequest {
    /// A message of the rotation protocol.
    Msg(RotationMsg),
    /// DA events posted to the sender (not yet in a blob) that it asks the proposer it
    /// knows to seal; at most [`MAX_FORWARD_EVENTS`], in their wire form.
    Forward(Vec<WireEvent>),
}

cbor_wire!(RotationRequest, MAX_ROTATION_REQUEST_BYTES);
