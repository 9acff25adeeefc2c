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
/// CBOR: `{"Msg": <RotationMsg>}`, `{"ForwardAt": {"height": u64, "events": [[kind,
/// version, body], …]}}` or (older senders) `{"Forward": [[kind, version, body], …]}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum RotationRequest {
    /// A message of the rotation protocol.
    Msg(RotationMsg),
    /// DA events posted to the sender (not yet in a blob) that it asks the proposer it
    /// knows to seal; at most [`MAX_FORWARD_EVENTS`], in their wire form. Sent by older
    /// members; the receiver treats it as [`RotationRequest::ForwardAt`] of an unknown
    /// height (an event it sealed recently is taken for a late forward and dropped).
    Forward(Vec<WireEvent>),
    /// As [`RotationRequest::Forward`], with the height the sender was deciding when it
    /// sent them (its tip + 1). The receiver drops an event it sealed at `height` or above
    /// (the sender had not applied that blob yet: a late forward) and takes one it sealed
    /// below it (the sender applied that blob and was posted the same event again).
    ForwardAt {
        /// The sender's tip + 1 when it sent the events.
        height: u64,
        /// At most [`MAX_FORWARD_EVENTS`] events, in their wire form.
        events: Vec<WireEvent>,
    },
}

cbor_wire!(RotationRequest, MAX_ROTATION_REQUEST_BYTES);
