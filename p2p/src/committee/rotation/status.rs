//! What `dsdn-agent committee status` shows of a member's DA proposer rotation
//! ([`DaRotation::status`]).

use std::time::Instant;

use libp2p::PeerId;

use super::{peer_of, DaRotation};

/// What `dsdn-agent committee status` shows of the rotation (see [`DaRotation::status`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotationView {
    /// `idle` (nothing waits), `active` (rounds run), `no_majority` (fewer than t members
    /// answer), `abstaining` (corrupt record), `waiting_for_log` (record above the tip) or
    /// `record_write_failed`.
    pub state: String,
    /// The DA height being decided (tip + 1); 0 before the rotation started.
    pub height: u64,
    /// This member's round at that height.
    pub round: u64,
    /// The proposer of `(height, round)`.
    pub proposer: Option<PeerId>,
    /// True when that is this member.
    pub proposing: bool,
    /// This member's lock: its round and the SHA-256 (hex) of the locked blob's signing bytes.
    pub lock: Option<(u64, String)>,
    /// Milliseconds before the round times out (while active).
    pub timeout_in_ms: u64,
    /// The other members that do not answer — not connected, or their last request
    /// failed ([`DaRotation::on_answer`]) — while fewer than t members (this one
    /// included) answer.
    pub waiting_for: Vec<PeerId>,
    /// Why the member abstains or failed, if it does.
    pub detail: Option<String>,
}

impl DaRotation {
    /// The status at `now` (`pending`: the DA pool holds events; `connected`: the peers
    /// this node is connected to — a member not connected, or whose last request failed,
    /// does not answer).
    pub(crate) fn status(&self, now: Instant, pending: bool, connected: &[PeerId]) -> RotationView {
        let mut view = RotationView {
            state: "idle".into(),
            height: 0,
            round: 0,
            proposer: None,
            proposing: false,
            lock: None,
            timeout_in_ms: 0,
            waiting_for: Vec::new(),
            detail: None,
        };
        if let Some(m) = &self.machine {
            let st = m.status(now);
            view.height = st.height;
            view.round = st.round;
            view.proposer = peer_of(&st.proposer);
            view.proposing = st.proposing;
            view.lock = st.lock.map(|(r, h)| (r, hex::encode(h)));
            if self.has_work(pending) {
                view.state = "active".into();
                view.timeout_in_ms = st.timeout_in.as_millis() as u64;
                let silent: Vec<PeerId> = self
                    .config
                    .members()
                    .iter()
                    .filter(|m| **m != self.me)
                    .filter_map(peer_of)
                    .filter(|p| !connected.contains(p) || self.answered.get(p) == Some(&false))
                    .collect();
                let answering = self.config.members().len() - silent.len();
                if answering < self.config.threshold() {
                    view.state = "no_majority".into();
                    view.waiting_for = silent;
                }
            }
        } else if let Some(a) = &self.abstain {
            view.state = "abstaining".into();
            view.detail = Some(match a.until {
                Some(h) => format!("{}; taking part again once height {h} is sealed", a.reason),
                None => format!("{}; waiting for the DA log to sync", a.reason),
            });
        } else if let Some(f) = &self.failed {
            view.state = "failed".into();
            view.detail = Some(f.clone());
        } else if let Some(r) = &self.stored {
            view.state = "waiting_for_log".into();
            view.detail = Some(format!(
                "the rotation record is for height {}: backfilling the DA log first",
                r.height
            ));
        }
        if let Some(e) = &self.write_error {
            view.state = "record_write_failed".into();
            view.detail = Some(e.clone());
        }
        view
    }
}
