//! Diversity-aware outbound peer selection (28.1.C §6, eclipse protection). Pure functions
//! of the candidates, the current outbound peers and `now` (UNIX seconds).
//!
//! Rules of [`select_outbound`], applied in order:
//!
//! 1. a candidate banned at `now` or without any address is never chosen (nor twice the same
//!    PeerId);
//! 2. best first by [`dial_order`] (highest score, most recent success, suspicious last);
//! 3. **one outbound peer per netgroup** (Bitcoin Core's rule against an attacker holding many
//!    addresses of one /16): a candidate whose primary netgroup ([`PeerRecord::netgroup`]) is
//!    already among the outbound peers ([`OutboundView::netgroups`]) or already chosen is
//!    skipped; a candidate without a netgroup is allowed;
//! 4. **source diversity** (28.1.C §6 "connect to peers from several sources"): if the
//!    outbound peers' sources plus the chosen ones would all be one single source (see
//!    [`single_source`]) while an eligible candidate of another source exists, the best such
//!    candidate replaces the last (worst) chosen peer — or, if rule 3 forbids that, the worst
//!    chosen peer whose netgroup it may take. (Adding it instead is never possible: when
//!    fewer than `slots` peers were chosen, every unchosen candidate is barred by rule 3.)

use std::collections::HashSet;

use dsdn_protocols::PeerSource;
use libp2p_identity::PeerId;

use crate::netgroup::NetGroup;
use crate::record::PeerRecord;
use crate::score::Standing;

#[cfg(doc)]
use crate::score::dial_order;

/// The node's current outbound peers (connected or being dialled), as
/// [`select_outbound`] needs them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct OutboundView {
    /// The primary netgroup of each outbound peer (see [`PeerRecord::netgroup`]).
    pub netgroups: HashSet<NetGroup>,
    /// The source of each outbound peer, one entry per peer.
    pub sources: Vec<PeerSource>,
}

/// True iff `sources` has at least two entries and all are equal: the outbound peers all
/// came from one single source, the eclipse risk 28.1.C §6 (integration scenario 10) asks
/// the node to warn about and to diversify away from.
pub fn single_source(sources: &[PeerSource]) -> bool {
    match sources.split_first() {
        Some((first, rest)) => !rest.is_empty() && rest.iter().all(|s| s == first),
        None => false,
    }
}

/// Chooses at most `slots` peers to dial from `candidates` at `now` (UNIX seconds), given the
/// current outbound peers `view`; best first, by the rules of the [module
/// documentation](self). The order of `candidates` does not matter.
///
/// Never returns a peer banned at `now`, without addresses, twice the same peer, or two
/// peers of one primary netgroup (nor one of a netgroup in `view.netgroups`).
pub fn select_outbound(
    candidates: &[PeerRecord],
    view: &OutboundView,
    slots: usize,
    now: u64,
) -> Vec<PeerRecord> {
    let groups: Vec<Option<NetGroup>> = candidates.iter().map(PeerRecord::netgroup).collect();
    let views: Vec<Candidate<'_>> = candidates
        .iter()
        .zip(&groups)
        .map(|(r, g)| Candidate {
            peer_id: r.peer_id,
            standing: Standing::from(r),
            source: r.source,
            netgroup: g.as_ref(),
            dialable: !r.addrs.is_empty(),
        })
        .collect();
    select(&views, view, slots, now)
        .into_iter()
        .filter_map(|i| candidates.get(i).cloned())
        .collect()
}

/// What the selection looks at of one candidate (built from a record or from the store's
/// in-memory index).
#[derive(Clone, Debug)]
pub(crate) struct Candidate<'a> {
    pub(crate) peer_id: PeerId,
    pub(crate) standing: Standing,
    pub(crate) source: PeerSource,
    /// The primary netgroup.
    pub(crate) netgroup: Option<&'a NetGroup>,
    /// At least one address.
    pub(crate) dialable: bool,
}

/// [`select_outbound`] on candidate views: the indices (into `cands`) of the chosen ones, in
/// order.
pub(crate) fn select(
    cands: &[Candidate<'_>],
    view: &OutboundView,
    slots: usize,
    now: u64,
) -> Vec<usize> {
    let mut eligible: Vec<usize> = (0..cands.len())
        .filter(|&i| cands[i].dialable && !cands[i].standing.is_banned(now))
        .collect();
    eligible.sort_by(|&a, &b| {
        let (a, b) = (&cands[a], &cands[b]);
        a.standing
            .rank(&b.standing, now)
            .then_with(|| a.peer_id.cmp(&b.peer_id))
    });
    // The same PeerId twice: keep its best-ranked entry.
    let mut seen = HashSet::new();
    eligible.retain(|&i| seen.insert(cands[i].peer_id));

    // A netgroup is free if no outbound peer and none of `chosen` holds it.
    let free = |i: usize, chosen: &[usize]| match cands[i].netgroup {
        None => true,
        Some(g) => {
            !view.netgroups.contains(g) && chosen.iter().all(|&c| cands[c].netgroup != Some(g))
        }
    };

    let mut chosen: Vec<usize> = Vec::with_capacity(slots.min(eligible.len()));
    for &i in &eligible {
        if chosen.len() == slots {
            break;
        }
        if free(i, &chosen) {
            chosen.push(i);
        }
    }

    let combined: Vec<PeerSource> = view
        .sources
        .iter()
        .copied()
        .chain(chosen.iter().map(|&i| cands[i].source))
        .collect();
    if !single_source(&combined) {
        return chosen;
    }
    let only = combined[0];
    // Greedy filled every free slot, so another source can only come in by replacing a
    // chosen peer: the worst one whose removal lets the best other-source candidate in.
    for pos in (0..chosen.len()).rev() {
        let mut rest = chosen.clone();
        rest.remove(pos);
        let replacement = eligible
            .iter()
            .copied()
            .find(|&i| cands[i].source != only && free(i, &rest));
        if let Some(i) = replacement {
            rest.push(i);
            return rest;
        }
    }
    chosen
}

#[cfg(test)]
#[path = "select_tests.rs"]
mod tests;
