//! The DA authority's half of identity-clash detection (issue 14 §4): a blob signed with this
//! node's own authority key that this node did not seal means another process holds the key
//! (a copied data directory). Two authorities sealing with one key fork the log (each answers
//! its publishers, the network keeps one blob per height and the other's acknowledged events
//! are lost), so this node stops sealing at once, fails what waits to be sealed, and says so.
//!
//! Only a single-key authority ([`Sealer::Key`]) checks: a committee's group key is shared by
//! design. What counts as "not sealed here":
//! * a blob at the tip's height with another hash, or below the tip with other bytes than the
//!   stored blob;
//! * a blob beyond the tip once this node has sealed in this run (before its first seal, a
//!   blob beyond the tip may be one it sealed and gossiped just before a crash, whose append
//!   was lost).

use super::committee::Sealer;
use super::*;

impl DaService {
    /// True (and the clash recorded) when `blob`, verified against the authority key, was
    /// not sealed by this node although the key is its own.
    pub(super) fn own_key_conflict(&mut self, blob: &VerifiedBlob) -> bool {
        if !matches!(self.sealer, Sealer::Key(_)) {
            return false;
        }
        let height = blob.height();
        let tip = self.chain.height();
        let what = if height > tip {
            if !self.sealed_this_run {
                return false;
            }
            format!(
                "a DA blob at height {height} signed with this node's authority key arrived, \
                 beyond the tip {tip} this node sealed"
            )
        } else if height == tip {
            if blob.hash() == self.chain.tip_hash() {
                return false;
            }
            format!(
                "a DA blob at height {height} signed with this node's authority key differs \
                 from the one this node sealed"
            )
        } else {
            match self.read_blob(height) {
                Some(ours) if ours != blob.encoded() => format!(
                    "a DA blob at height {height} signed with this node's authority key differs \
                     from the one in this node's log"
                ),
                _ => return false,
            }
        };
        self.on_identity_clash(what);
        true
    }

    /// Stops sealing for good (until a restart): the authority key is in use elsewhere.
    pub(super) fn halt_sealing(&mut self, what: String) {
        self.on_identity_clash(what);
    }

    fn on_identity_clash(&mut self, what: String) {
        if self.identity_clash.is_some() {
            return;
        }
        tracing::error!(
            clash = %what,
            "IDENTITY CLASH: another process seals DA blobs with this node's key (a copied \
             data directory?); this node stops sealing until it is restarted; stop the copy"
        );
        self.metrics
            .identity_clash
            .with_label_values(&["da_authority"])
            .set(1);
        self.identity_clash = Some(what.clone());
        let queued: Vec<Reply> = std::iter::from_fn(|| self.batcher.flush())
            .flatten()
            .map(|q| q.reply)
            .collect();
        self.fail_replies(queued, &format!("sealing halted: identity clash: {what}"));
    }

    /// The clash found, if any: this node no longer seals.
    pub(crate) fn identity_clash(&self) -> Option<&str> {
        self.identity_clash.as_deref()
    }
}
