//! What a DA backfill request of this node is for.

use dsdn_protocols::da::sync::SyncRequest;
use dsdn_protocols::da::DaBlob;
use tokio::sync::oneshot;

use crate::handle::RangeError;

/// The tag of an outbound `/dsdn/<network>/da-sync/1.0.0` request: what its response is
/// for.
#[derive(Debug)]
pub enum SyncTag {
    /// A range the backfill planner asked for; the response goes to the DA service.
    Backfill(SyncRequest),
    /// A sealed blob's confirmation: the peer's blob at `from` (see
    /// `DaService::on_confirm_response`).
    Confirm(SyncRequest),
    /// A range asked for by a caller of [`crate::NodeHandle::da_range`]: the response is
    /// verified and the blobs (or the error) are sent on the channel.
    Range(
        SyncRequest,
        oneshot::Sender<Result<Vec<DaBlob>, RangeError>>,
    ),
    /// A request of a light client that stays light ([`crate::NodeHandle::da_sync_raw`]):
    /// the response goes unverified, with the peer that answered, to the channel (the
    /// caller verifies it; issue 16 §4).
    Raw(oneshot::Sender<Result<(libp2p::PeerId, dsdn_protocols::da::sync::SyncResponse), String>>),
}
