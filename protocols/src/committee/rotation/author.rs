//! Who may author a blob a member co-signs (issue 13 §6, "which blobs it proposed"):
//! [`check_author`].
//!
//! A committee blob (version 4, [`crate::da::DA_BLOB_VERSION_V4`]) names its `proposer` and
//! carries that member's own signature over it, which the committee's signature covers.
//! Before releasing a share in round `r` of height `h`, a member checks the author:
//! - the blob is this member's own lock (the same bytes it already signed): a re-proposal,
//!   accepted as it is (this also admits a version-3 lock written by an older build);
//! - otherwise the blob must be version 4, by a member, and that member must be the
//!   proposer of `(h, r)` (a fresh proposal) or of an earlier round `(h, r' < r)` (the
//!   re-proposal of a blob locked in round `r'`, which keeps its author and signature:
//!   same bytes, same lock).
//!
//! The `proposer_sig` itself is checked when the bytes are decoded
//! ([`crate::da::DaBlob::from_signing_bytes`]), so the author named did sign the blob, for
//! this height and parent: a later proposer can neither claim a locked blob (it would
//! need to change `proposer`, which breaks the signature and the lock) nor disown its
//! own, and a member cannot blame another one for a blob it made up. A plain `round`
//! field would not do: a proposer could name a lower round and so another member.

use super::RotationConfig;
use crate::committee::types::MemberId;
use crate::da::blob::proposer::peer_id_text;
use crate::da::DaBlob;

/// Why a member refuses the author of a proposed blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthorError {
    /// The blob names no proposer (before version 4) and is not this member's lock.
    #[error("blob {height} names no proposer (version {version}) and is not this member's lock")]
    NoProposer {
        /// The blob's height.
        height: u64,
        /// Its format version.
        version: u16,
    },
    /// The proposer named is not a member of the committee.
    #[error("blob {height} is proposed by {proposer}, not a member of the committee")]
    NotAMember {
        /// The blob's height.
        height: u64,
        /// The proposer's PeerId (base58).
        proposer: String,
    },
    /// The proposer named proposes no round up to `round` at the height.
    #[error(
        "blob {height} is proposed by {proposer}, who proposes no round up to {round} at that \
         height (a fresh proposal must name the round's proposer)"
    )]
    NotItsRound {
        /// The blob's height.
        height: u64,
        /// The round being signed.
        round: u64,
        /// The proposer's PeerId (base58).
        proposer: String,
    },
}

/// Whether a member whose own lock at this height is `own_lock` (its message, if any) may
/// co-sign `message`, decoded as `blob`, in round `round` of the blob's height (rules in
/// the module docs). A pure function of the committee and the inputs.
///
/// # Errors
/// [`AuthorError`] naming the rule broken.
pub fn check_author(
    config: &RotationConfig,
    round: u64,
    blob: &DaBlob,
    message: &[u8],
    own_lock: Option<&[u8]>,
) -> Result<(), AuthorError> {
    if own_lock == Some(message) {
        return Ok(());
    }
    let height = blob.height;
    let Some(proposer) = blob.proposer() else {
        return Err(AuthorError::NoProposer {
            height,
            version: blob.version,
        });
    };
    let text = || peer_id_text(proposer);
    let Some(index) = MemberId::new(proposer.to_vec())
        .ok()
        .and_then(|m| config.members().iter().position(|x| *x == m))
    else {
        return Err(AuthorError::NotAMember {
            height,
            proposer: text(),
        });
    };
    // The first round at `height` that `index` proposes: (height + r) ≡ index (mod n).
    let n = config.members().len() as u128;
    let first = (index as u128 + n - u128::from(height) % n) % n;
    if first <= u128::from(round) {
        return Ok(());
    }
    Err(AuthorError::NotItsRound {
        height,
        round,
        proposer: text(),
    })
}
