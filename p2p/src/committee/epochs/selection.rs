//! The selection of the next committee as the DA log pins it (issue 13 §3): the
//! [`LogView`] the epoch driver selects over, and the check a member co-signing a
//! `committee_rotated` event makes of its members.
//!
//! - **Seed.** `derive_epoch_seed(epoch + 1, anchor hash, hash of the committee in force)`,
//!   the anchor being the last blob dated before the handoff window opened
//!   ([`find_anchor`]). A member selects once a blob dated in the window is applied (the
//!   anchor is then final) or, on an idle log,
//!   [`dsdn_protocols::committee::epoch::ANCHOR_SETTLE_MS`] after the opening.
//! - **Candidates.** The coordinators of the registry (`coordinator:<id>`) registered at
//!   or before the anchor that the network admits ([`admitted_candidates`], selection
//!   rule 2: the genesis members and `[committee] candidates`, [`SelectionRule::admits`]):
//!   every coordinator of a committee network runs the committee protocol and the epoch
//!   driver (a member of the committee in force, or a follower outside it), so every
//!   admitted one can take part in the next DKG. With fewer admitted registered
//!   coordinators than seats the current members are the candidates (the committee is
//!   re-keyed, as before the registry).
//! - **Check.** A member co-signs a blob holding a rotation only if the blob is dated in a
//!   handoff window and the rotation's members and threshold are the selection of that
//!   window over the member's own log below the blob ([`check_rotation`]): a function of
//!   the log, the same on every member.

use std::cell::{Cell, RefCell};

use dsdn_protocols::committee::epoch::{
    admitted_candidates, find_anchor, usable_anchor, AnchorLookup, EpochSchedule, SeedAnchor,
};
use dsdn_protocols::committee::epoch_driver::{
    next_committee, rotation_matches_selection, CurrentCommittee, LogView,
};
use dsdn_protocols::da::CommitteeRotation;

use super::in_force::{config_of, in_force};
use crate::da::DaService;

/// What the selection needs besides the log: the epoch schedule and the genesis committee.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct SelectionRule {
    /// Epoch length and handoff window (`[committee]` of seeds.toml).
    pub(crate) schedule: EpochSchedule,
    /// The committee of the configuration (in force before the first rotation).
    pub(crate) genesis: CurrentCommittee,
    /// `[committee] candidates` (PeerId texts): the coordinators besides the genesis
    /// members that a selection may pick once registered.
    pub(crate) candidates: Vec<String>,
}

/// What a selection remembers between ticks: the last pinned anchor found, `(window
/// opening, anchor)` (a binary search by timestamp is done once per window), and the
/// candidates read for an anchor, `((anchor height, anchor hash, epoch in force),
/// candidates)`: the registry as of a pinned anchor never changes (entries keep their first
/// height), so it is read once per window, not at every tick.
#[derive(Default)]
pub(crate) struct AnchorCache {
    anchor: Cell<Option<(u64, SeedAnchor)>>,
    candidates: RefCell<Option<(CandidatesKey, Vec<String>)>>,
}

/// What the candidates of a selection depend on: the anchor's height and hash, and the
/// epoch in force.
type CandidatesKey = (u64, [u8; 32], u64);

impl SelectionRule {
    /// True when the network admits `id` (a PeerId text) to the selection: a genesis
    /// member or a configured candidate. Registrations of others are refused, and they are
    /// never selected.
    pub(crate) fn admits(&self, id: &str) -> bool {
        self.genesis.members.iter().any(|m| m == id) || self.candidates.iter().any(|c| c == id)
    }

    /// The admitted coordinators: the genesis members, then the candidates.
    fn admitted(&self) -> Vec<String> {
        let mut all = self.genesis.members.clone();
        all.extend(
            self.candidates
                .iter()
                .filter(|c| !all.contains(c))
                .cloned()
                .collect::<Vec<_>>(),
        );
        all
    }

    /// The anchor of the window opening at `opens_ms` over `da`'s applied log, usable at
    /// `now_ms` ([`usable_anchor`]); pinned anchors are remembered in `cache`.
    fn anchor(
        &self,
        da: &DaService,
        opens_ms: u64,
        now_ms: u64,
        cache: &AnchorCache,
    ) -> Option<SeedAnchor> {
        let state = da.state();
        if let Some((opens, a)) = cache.anchor.get() {
            if opens == opens_ms
                && state.height() > a.height
                && state.last_timestamp_ms() >= opens_ms
            {
                return Some(a);
            }
        }
        let lookup = self.lookup(da, opens_ms)?;
        if let AnchorLookup::Pinned(a) = lookup {
            cache.anchor.set(Some((opens_ms, a)));
        }
        usable_anchor(lookup, now_ms, opens_ms)
    }

    fn lookup(&self, da: &DaService, opens_ms: u64) -> Option<AnchorLookup> {
        let state = da.state();
        find_anchor(
            state.height(),
            state.tip_hash(),
            state.last_timestamp_ms(),
            opens_ms,
            |h| da.blob_stamp(h),
        )
        .map_err(|h| {
            tracing::warn!(height = h, "the seed anchor of the committee selection needs blob {h}, which this node does not hold");
        })
        .ok()
    }

    /// The log as the epoch driver reads it at `now_ms`: the committee in force at the next
    /// height, its hash, the recorded epochs, the anchor of the current (or next) handoff
    /// window and the candidates as of that anchor.
    pub(crate) fn view(&self, da: &DaService, now_ms: u64, cache: &AnchorCache) -> LogView {
        let phase = self.schedule.phase(now_ms);
        let anchor = self.anchor(da, phase.handoff_opens_ms, now_ms, cache);
        self.view_at(da, anchor, Some(cache))
    }

    /// The view over `da`'s log with `anchor`; the candidates of a pinned anchor are taken
    /// from and kept in `cache` when given.
    fn view_at(
        &self,
        da: &DaService,
        anchor: Option<SeedAnchor>,
        cache: Option<&AnchorCache>,
    ) -> LogView {
        let state = da.state();
        let tip = state.height();
        let (latest, record) = state.epochs_at(tip.saturating_add(1)).unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the committee epochs of the DA state");
            (None, None)
        });
        let current = in_force(&self.genesis, record);
        let current_hash = config_of(current.epoch, current.threshold, &current.members)
            .ok()
            .and_then(|c| dsdn_protocols::receipt::committee_hash(&c).ok())
            .map_or([0; 32], |h| h.0);
        let candidates = match anchor {
            Some(a) => {
                let key = (a.height, a.hash, current.epoch);
                let cached = cache.and_then(|c| {
                    c.candidates
                        .borrow()
                        .as_ref()
                        .filter(|(k, _)| *k == key)
                        .map(|(_, v)| v.clone())
                });
                cached.unwrap_or_else(|| {
                    let registry = state.coordinators().unwrap_or_else(|e| {
                        tracing::error!(error = %e, "cannot read the coordinator registry of the DA state");
                        Vec::new()
                    });
                    // Rule 2: every admitted registered coordinator (members and followers
                    // run the committee protocol alike).
                    let candidates =
                        admitted_candidates(&registry, a.height, &current.members, &self.admitted());
                    // Only a pinned anchor is final (an unpinned one may still move).
                    if let Some(c) = cache.filter(|c| c.anchor.get().is_some_and(|(_, p)| p == a)) {
                        *c.candidates.borrow_mut() = Some((key, candidates.clone()));
                    }
                    candidates
                })
            }
            None => current.members.clone(),
        };
        LogView {
            tip,
            anchor,
            latest,
            candidates,
            current,
            current_hash,
        }
    }
}

/// The check of a member asked to co-sign (or to queue) a blob dated `timestamp_ms` that
/// holds `rotation`, over its log below that blob: the blob is dated inside a handoff
/// window, and the rotation's members and threshold are the selection of that window
/// ([`rotation_matches_selection`]; the anchor is final, the blob itself being dated in
/// the window).
///
/// # Errors
/// Why the rotation is not this log's selection (for the proposer's error message).
pub(crate) fn check_rotation(
    rule: &SelectionRule,
    da: &DaService,
    rotation: &CommitteeRotation,
    timestamp_ms: u64,
) -> Result<(), String> {
    let phase = rule.schedule.phase(timestamp_ms);
    if !phase.in_handoff {
        return Err(format!(
            "committee_rotated dated {timestamp_ms} ms, outside a handoff window"
        ));
    }
    let anchor = match rule.lookup(da, phase.handoff_opens_ms) {
        Some(AnchorLookup::Pinned(a) | AnchorLookup::Unpinned(a)) => a,
        None => return Err("the seed anchor's blob is not held here".into()),
    };
    let view = rule.view_at(da, Some(anchor), None);
    if rotation_matches_selection(rotation, &view) {
        return Ok(());
    }
    let selected = next_committee(&view).map(|n| (n.members, n.threshold));
    Err(format!(
        "committee_rotated epoch {} names {:?} (threshold {}); the selection over the \
         registry as of height {} is {selected:?}",
        rotation.epoch, rotation.members, rotation.threshold, anchor.height
    ))
}
