//! The automatic epoch rotation of the coordinator committee, as a pure driver (issue 13
//! §3; Tahap 14A.2B.2 "epoch rotation smooth without service disruption"): it takes `now`
//! and a view of the DA log, and tells its caller what to do — start the next committee's
//! DKG, sign the rotation with the new key, propose the `committee_rotated` event, switch
//! to the new key share at `effective_height`, or stop sealing.
//!
//! One handoff, per [`EpochSchedule`] window (the last `handoff_ms` of each schedule epoch):
//! ```text
//! sealing ──window opens, anchor usable──▶ handoff: next = select_committee(candidates,
//!                           seed = derive_epoch_seed(epoch + 1, anchor hash, committee hash))
//!         ──initiator──▶ StartDkg{epoch + 1, next}            (phase dkg, ≤ dkg_timeout)
//!         ◀─on_dkg(group key)── SignKeyProof{rotation}        (FROST of the NEW shares)
//!         ◀─on_key_proof(sig)── Propose{rotation}             (the CURRENT committee seals it)
//!         ── rotation seen in the log (view.latest) ──▶ switching
//!         ── tip + 1 ≥ effective_height ──▶ Switch{epoch + 1} (a member of the next committee)
//!                                            Retire{epoch}    (a member leaving it)
//! any failure or the window closing first ──▶ fallback: the current committee keeps sealing
//!                                             in its epoch; the next window retries
//! ```
//! The log is the authority: whatever this node's own progress, a rotation recorded in the
//! view moves the driver to `switching` (a member that crashed mid-handoff, or one that
//! took no part, follows the others). The initiator of the DKG and of the key proof is
//! [`initiator`] (the first next member that is also a current one, so that it can put the
//! event in the current committee's pool; else the first next member).
//!
//! Every state change is reported as [`EpochAction::Persist`] with the
//! [`EpochDriverRecord`] to write (off the event loop); [`EpochDriver::resume`] continues
//! from it after a restart: a DKG interrupted by the crash is run again while its window
//! lasts (or taken as done when the key share of the next epoch is on disk), a signed
//! rotation is proposed again.

use serde::{Deserialize, Serialize};

use super::epoch::{derive_epoch_seed, select_committee, EpochSchedule, SeedAnchor};
use crate::da::epochs::{CommitteeRotation, EpochRecord, MAX_ROTATION_LEAD};
use crate::da::{Bytes32, Bytes64};
use crate::NetworkId;

/// Default heights between the blob the rotation is expected in and its `effective_height`
/// (the rotation must be sealed before it, see [`crate::da::epochs::admit_rotation`]).
pub const DEFAULT_SWITCH_LEAD: u64 = 8;

/// The driver's settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochDriverConfig {
    /// This node's PeerId (base58 text, as in the DA state).
    pub me: String,
    /// The network (the key proof signs it).
    pub network: NetworkId,
    /// Epoch length and handoff window.
    pub schedule: EpochSchedule,
    /// Most milliseconds a DKG may take (bounded by the window's end).
    pub dkg_timeout_ms: u64,
    /// `effective_height = tip + switch_lead` at key-proof time (1..=[`MAX_ROTATION_LEAD`]).
    pub switch_lead: u64,
}

/// The committee in force (the current epoch of the log, or the genesis committee).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CurrentCommittee {
    /// Its epoch.
    pub epoch: u64,
    /// Its members in proposer order.
    pub members: Vec<String>,
    /// Its threshold.
    pub threshold: u16,
}

/// What the driver reads of the DA log at each tick.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogView {
    /// The applied tip height (0: empty log).
    pub tip: u64,
    /// The blob the seed of this handoff window's selection is pinned to
    /// ([`super::epoch::find_anchor`], [`super::epoch::usable_anchor`]); `None` while it is
    /// not usable yet (the driver waits to select).
    pub anchor: Option<SeedAnchor>,
    /// The last recorded rotation, if any.
    pub latest: Option<EpochRecord>,
    /// The committee sealing now.
    pub current: CurrentCommittee,
    /// Hash of `current` ([`crate::receipt::committee_hash`]).
    pub current_hash: [u8; 32],
    /// The candidates of the selection: the coordinators registered in the DA state as of
    /// `anchor` ([`super::epoch::selection_candidates`]).
    pub candidates: Vec<String>,
}

/// The next committee of a handoff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextCommittee {
    /// Its epoch (current + 1).
    pub epoch: u64,
    /// Its members, in proposer order.
    pub members: Vec<String>,
    /// Its threshold: the smallest majority, `n / 2 + 1`.
    pub threshold: u16,
}

/// Where the driver is (what `committee status` shows as `phase`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// Outside a window, or this window's work is done: the current committee seals.
    Sealing,
    /// The window is open; the next committee is selected; waiting for its DKG to start
    /// (or for the initiator's rotation, on a node with nothing to do).
    Handoff {
        /// The next committee.
        next: NextCommittee,
    },
    /// The next committee's DKG runs since `started_ms`.
    Dkg {
        /// The next committee.
        next: NextCommittee,
        /// UNIX ms the DKG started (or this node learnt it started).
        started_ms: u64,
    },
    /// The initiator has the new group key and asked for the key proof.
    KeyProof {
        /// The rotation being signed (zero `key_proof`).
        rotation: CommitteeRotation,
    },
    /// The signed rotation was handed to the current committee's proposer.
    Proposed {
        /// The rotation.
        rotation: CommitteeRotation,
    },
    /// The rotation is in the log; waiting for `effective_height`.
    Switching {
        /// The recorded epoch.
        record: EpochRecord,
    },
    /// This window failed: the current committee stays until the next window.
    Fallback {
        /// Why.
        reason: String,
    },
}

impl Step {
    /// The phase name of the status: `sealing`, `handoff`, `dkg`, `switching` or `fallback`
    /// (`KeyProof` and `Proposed` show as `handoff`).
    pub fn phase(&self) -> &'static str {
        match self {
            Step::Sealing => "sealing",
            Step::Handoff { .. } | Step::KeyProof { .. } | Step::Proposed { .. } => "handoff",
            Step::Dkg { .. } => "dkg",
            Step::Switching { .. } => "switching",
            Step::Fallback { .. } => "fallback",
        }
    }
}

/// What the driver persists (`committee/epoch-driver.cbor`): enough to resume mid-handoff.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochDriverRecord {
    /// The window the step belongs to (its schedule epoch's `ends_ms`).
    pub window_ends_ms: u64,
    /// The step.
    pub step: Step,
    /// Rotations this node saw take effect.
    pub rotations: u64,
    /// The epoch whose committee this node seals with (or follows, when not `member`).
    pub acting_epoch: u64,
    /// True while this node is a member of the committee of `acting_epoch`.
    pub member: bool,
    /// Windows that ended in fallback.
    pub failures: u64,
}

/// What the caller must do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EpochAction {
    /// Run the DKG of `next` over the network (the committee service, with the next
    /// members; members of `next` who are not current members take part too).
    StartDkg(NextCommittee),
    /// FROST-sign `rotation.message(network)` with the NEW committee's shares and report
    /// with [`EpochDriver::on_key_proof`].
    SignKeyProof(CommitteeRotation),
    /// Queue the signed rotation as an internal DA event (the current proposer seals it;
    /// publishers cannot submit it).
    Propose(CommitteeRotation),
    /// From height `from_height` on, seal with the key share of `epoch` (this node is a
    /// member of the new committee).
    Switch {
        /// The new epoch.
        epoch: u64,
        /// Its effective height.
        from_height: u64,
    },
    /// Stop sealing: this node is not a member of the committee of `epoch`.
    Retire {
        /// The new epoch.
        epoch: u64,
    },
    /// Write this record (off the event loop).
    Persist(EpochDriverRecord),
    /// A DKG took `millis` (for the `committee_dkg_seconds` histogram).
    DkgTook {
        /// Milliseconds from start to group key.
        millis: u64,
    },
}

/// What `committee status` shows of the epochs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EpochStatus {
    /// The epoch of the committee in force.
    pub epoch: u64,
    /// [`Step::phase`].
    pub phase: &'static str,
    /// UNIX ms the next schedule epoch starts.
    pub next_epoch_start_ms: u64,
    /// UNIX ms the next handoff window opens (the current one when open).
    pub handoff_opens_ms: u64,
    /// The fallback reason, when in fallback.
    pub fallback_reason: Option<String>,
    /// Rotations seen take effect.
    pub rotations: u64,
    /// Windows that failed.
    pub failures: u64,
}

/// Who starts the DKG of `next` and asks for its key proof: the first member of `next` in
/// proposer order that is also in `current` (the selection carries one over,
/// [`select_committee`]); else, when no current member was a candidate, the first member
/// of `next` (whose rotation no sealing pool takes: that window falls back).
pub fn initiator<'a>(next: &'a [String], current: &[String]) -> Option<&'a String> {
    next.iter()
        .find(|m| current.contains(m))
        .or_else(|| next.first())
}

/// The next committee for `view`: same size as the current one, selected over the
/// candidates with the seed of the anchor's hash; `None` without a usable anchor or with
/// fewer distinct candidates than seats.
pub fn next_committee(view: &LogView) -> Option<NextCommittee> {
    let epoch = view.current.epoch.checked_add(1)?;
    let anchor = view.anchor?;
    let seed = derive_epoch_seed(epoch, &anchor.hash, &view.current_hash);
    let size = view.current.members.len();
    let mut distinct: Vec<&String> = view.candidates.iter().collect();
    distinct.sort();
    distinct.dedup();
    if size == 0 || distinct.len() < size {
        return None;
    }
    let members = select_committee(&view.candidates, &view.current.members, size, &seed);
    let threshold = u16::try_from(members.len() / 2 + 1).ok()?;
    Some(NextCommittee {
        epoch,
        members,
        threshold,
    })
}

/// The epoch rotation driver of one node.
#[derive(Clone, Debug)]
pub struct EpochDriver {
    cfg: EpochDriverConfig,
    record: EpochDriverRecord,
    actions: Vec<EpochAction>,
}

impl EpochDriver {
    /// A driver starting in `sealing`, sealing (or, when `member` is false, following) the
    /// committee of `epoch`.
    pub fn new(cfg: EpochDriverConfig, epoch: u64, member: bool) -> EpochDriver {
        EpochDriver::resume(
            cfg,
            EpochDriverRecord {
                window_ends_ms: 0,
                step: Step::Sealing,
                acting_epoch: epoch,
                member,
                rotations: 0,
                failures: 0,
            },
        )
    }

    /// A driver continuing from `saved` (its record after a restart). A DKG does not
    /// survive a restart (its session is in memory): a `dkg` step goes back to `handoff`,
    /// where the next tick takes the key share of the next epoch if it was written (see
    /// [`EpochDriver::tick`]'s `share_key`) or runs the DKG again while the window lasts.
    pub fn resume(cfg: EpochDriverConfig, mut saved: EpochDriverRecord) -> EpochDriver {
        if let Step::Dkg { next, .. } = &saved.step {
            saved.step = Step::Handoff { next: next.clone() };
        }
        EpochDriver {
            cfg,
            record: saved,
            actions: Vec::new(),
        }
    }

    /// The record (what [`EpochAction::Persist`] last carried).
    pub fn record(&self) -> &EpochDriverRecord {
        &self.record
    }

    /// The queued actions, oldest first.
    pub fn take_actions(&mut self) -> Vec<EpochAction> {
        std::mem::take(&mut self.actions)
    }

    /// The status at `now_ms`.
    pub fn status(&self, now_ms: u64) -> EpochStatus {
        let p = self.cfg.schedule.phase(now_ms);
        EpochStatus {
            epoch: self.record.acting_epoch,
            phase: self.record.step.phase(),
            next_epoch_start_ms: p.ends_ms,
            handoff_opens_ms: p.handoff_opens_ms,
            fallback_reason: match &self.record.step {
                Step::Fallback { reason } => Some(reason.clone()),
                _ => None,
            },
            rotations: self.record.rotations,
            failures: self.record.failures,
        }
    }

    fn set(&mut self, window_ends_ms: u64, step: Step) {
        if self.record.step != step || self.record.window_ends_ms != window_ends_ms {
            self.record.step = step;
            self.record.window_ends_ms = window_ends_ms;
            self.actions.push(EpochAction::Persist(self.record.clone()));
        }
    }

    fn fail(&mut self, reason: String) {
        self.record.failures += 1;
        let w = self.record.window_ends_ms;
        self.set(w, Step::Fallback { reason });
    }

    fn am_initiator(&self, next: &NextCommittee, current: &CurrentCommittee) -> bool {
        initiator(&next.members, &current.members) == Some(&self.cfg.me)
    }

    /// Advances at `now_ms` over the log `view`. `share_key(next)`: the group key of the
    /// key share of `next.epoch` on disk when that share is of exactly `next`'s members and
    /// threshold (a DKG of it finished here, possibly before a restart), else `None`.
    pub fn tick(
        &mut self,
        now_ms: u64,
        view: &LogView,
        share_key: impl Fn(&NextCommittee) -> Option<[u8; 32]>,
    ) {
        let p = self.cfg.schedule.phase(now_ms);
        let window = p.ends_ms;
        // The log first: a rotation recorded beyond the acting epoch means switching,
        // whatever this node's own progress.
        if let Some(rec) = &view.latest {
            if rec.epoch > self.record.acting_epoch
                && !matches!(&self.record.step, Step::Switching { record } if record == rec)
            {
                let w = self.record.window_ends_ms;
                self.set(
                    w,
                    Step::Switching {
                        record: rec.clone(),
                    },
                );
            }
        }
        match self.record.step.clone() {
            Step::Switching { record } => {
                if view.tip.saturating_add(1) >= record.effective_height {
                    let joins = record.members.contains(&self.cfg.me);
                    if joins {
                        self.actions.push(EpochAction::Switch {
                            epoch: record.epoch,
                            from_height: record.effective_height,
                        });
                    } else if self.record.member {
                        self.actions.push(EpochAction::Retire {
                            epoch: record.epoch,
                        });
                    }
                    self.record.rotations += 1;
                    self.record.acting_epoch = record.epoch;
                    self.record.member = joins;
                    let w = self.record.window_ends_ms;
                    self.set(w, Step::Sealing);
                }
            }
            _ if !p.in_handoff => {
                // The window closed (or none is open): an unfinished handoff failed.
                match self.record.step.clone() {
                    Step::Sealing | Step::Fallback { .. } => {}
                    Step::Handoff { .. } | Step::Dkg { .. } | Step::KeyProof { .. } => {
                        self.fail("the handoff window closed before the rotation".into())
                    }
                    Step::Proposed { .. } => {
                        self.fail("the rotation was not sealed within the handoff window".into())
                    }
                    Step::Switching { .. } => {}
                }
            }
            _ if self.record.window_ends_ms != window && view.anchor.is_none() => {
                // A new window opens, its seed is not pinned yet: wait.
            }
            _ if self.record.window_ends_ms != window => {
                // A new window opens: select the next committee.
                match next_committee(view) {
                    None => self.set(
                        window,
                        Step::Fallback {
                            reason: "fewer registered coordinators than seats".into(),
                        },
                    ),
                    Some(next) => {
                        self.set(window, Step::Handoff { next: next.clone() });
                        self.step_handoff(now_ms, view, next, &share_key);
                    }
                }
            }
            Step::Handoff { next } => self.step_handoff(now_ms, view, next, &share_key),
            Step::Dkg { next, started_ms } => {
                let deadline = started_ms.saturating_add(self.cfg.dkg_timeout_ms);
                if now_ms >= deadline {
                    self.fail(format!(
                        "the DKG of epoch {} timed out after {} ms",
                        next.epoch, self.cfg.dkg_timeout_ms
                    ));
                }
            }
            Step::Proposed { rotation } => {
                // Sealed too late to be admitted: sign again for a later height.
                if view.tip.saturating_add(1) >= rotation.effective_height {
                    let next = NextCommittee {
                        epoch: rotation.epoch,
                        members: rotation.members,
                        threshold: rotation.threshold,
                    };
                    self.ask_key_proof(view, &next, rotation.group_key);
                }
            }
            Step::Sealing | Step::Fallback { .. } | Step::KeyProof { .. } => {}
        }
    }

    fn step_handoff(
        &mut self,
        now_ms: u64,
        view: &LogView,
        next: NextCommittee,
        share_key: &impl Fn(&NextCommittee) -> Option<[u8; 32]>,
    ) {
        let w = self.record.window_ends_ms;
        let held = share_key(&next);
        if !self.am_initiator(&next, &view.current) {
            if next.members.contains(&self.cfg.me) && held.is_none() {
                // Taking part: the initiator's DkgStart reaches the committee service.
                self.set(
                    w,
                    Step::Dkg {
                        next,
                        started_ms: now_ms,
                    },
                );
            }
            return;
        }
        match held {
            // Finished before a restart: straight to the key proof.
            Some(key) => self.ask_key_proof(view, &next, Bytes32(key)),
            None => {
                self.actions.push(EpochAction::StartDkg(next.clone()));
                self.set(
                    w,
                    Step::Dkg {
                        next,
                        started_ms: now_ms,
                    },
                );
            }
        }
    }

    fn ask_key_proof(&mut self, view: &LogView, next: &NextCommittee, group_key: Bytes32) {
        let lead = self.cfg.switch_lead.clamp(1, MAX_ROTATION_LEAD);
        let rotation = CommitteeRotation {
            epoch: next.epoch,
            members: next.members.clone(),
            threshold: next.threshold,
            group_key,
            effective_height: view.tip.saturating_add(lead).max(2),
            key_proof: Bytes64([0; 64]),
        };
        self.actions
            .push(EpochAction::SignKeyProof(rotation.clone()));
        let w = self.record.window_ends_ms;
        self.set(w, Step::KeyProof { rotation });
    }

    /// The DKG of `epoch` ended at `now_ms` on this node: the group key, or why not. On
    /// the initiator a success asks for the key proof; elsewhere the node waits for the
    /// rotation in the log. A failure is the window's fallback.
    pub fn on_dkg(
        &mut self,
        now_ms: u64,
        view: &LogView,
        epoch: u64,
        result: Result<[u8; 32], String>,
    ) {
        let next = match &self.record.step {
            Step::Dkg { next, started_ms } if next.epoch == epoch => {
                self.actions.push(EpochAction::DkgTook {
                    millis: now_ms.saturating_sub(*started_ms),
                });
                next.clone()
            }
            Step::Handoff { next } if next.epoch == epoch => next.clone(),
            _ => return,
        };
        match result {
            Err(e) => self.fail(format!("the DKG of epoch {epoch} failed: {e}")),
            Ok(key) if self.am_initiator(&next, &view.current) => {
                self.ask_key_proof(view, &next, Bytes32(key))
            }
            Ok(_) => {
                let w = self.record.window_ends_ms;
                self.set(w, Step::Handoff { next });
            }
        }
    }

    /// The key proof of the rotation of `epoch`: the signature, or why not.
    pub fn on_key_proof(&mut self, epoch: u64, result: Result<[u8; 64], String>) {
        let Step::KeyProof { rotation } = &self.record.step else {
            return;
        };
        if rotation.epoch != epoch {
            return;
        }
        let mut rotation = rotation.clone();
        match result {
            Err(e) => self.fail(format!("the key proof of epoch {epoch} failed: {e}")),
            Ok(sig) => {
                rotation.key_proof = Bytes64(sig);
                if !rotation.key_proof_valid(&self.cfg.network) {
                    self.fail(format!("the key proof of epoch {epoch} does not verify"));
                    return;
                }
                self.actions.push(EpochAction::Propose(rotation.clone()));
                let w = self.record.window_ends_ms;
                self.set(w, Step::Proposed { rotation });
            }
        }
    }
}

/// What a member of the current committee checks before co-signing a blob carrying
/// `rotation` (besides [`crate::da::epochs::admit_rotation`]): its members and threshold
/// are exactly [`next_committee`] of the member's own view.
pub fn rotation_matches_selection(rotation: &CommitteeRotation, view: &LogView) -> bool {
    next_committee(view).is_some_and(|n| {
        n.epoch == rotation.epoch
            && n.members == rotation.members
            && n.threshold == rotation.threshold
    })
}

#[cfg(test)]
#[path = "tests/epoch_driver.rs"]
mod tests;
