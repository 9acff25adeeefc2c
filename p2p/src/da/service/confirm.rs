//! Answering a publisher only once its blob is the network's (issue 13 §4).
//!
//! A sealer that answered "published in blob N" as soon as blob N was durable in its own log
//! would lie when another process seals with the same key: the network keeps one blob per
//! height, and the other's events are lost. So the answer to everyone who waits for a blob
//! this node sealed (publishers, registrations, submitted blobs) waits until a majority of
//! up to [`CONFIRM_PEERS`] connected DA peers report, over the backfill protocol, that they
//! hold this node's blob. A peer that is behind, or whose request failed, is asked again
//! every [`CONFIRM_RETRY`]. A peer holding another validly signed blob at that height is
//! fork evidence ([`super::fork`]): the waiters of that height and above are told their
//! events were not published. A node without DA peers answers at once: nobody can hold
//! another blob for it.
//!
//! One probe at a time, for the highest waiting height: a peer applies a blob only on top of
//! the chain it links to, so a peer that holds this node's blob N holds its blobs below N
//! too, and a burst of sealed blobs costs one round of requests, not one per blob. When the
//! majority has not answered within [`CONFIRM_TIMEOUT`], the waiters are answered if at
//! least one peer holds the blob and none holds another; with no confirmation at all they
//! get an error that says the blob is in this node's log but unconfirmed.

use std::collections::BTreeMap;

use super::*;

/// DA peers asked to confirm a sealed blob.
pub const CONFIRM_PEERS: usize = 3;

/// Pause before asking again a peer that did not hold the blob yet (or whose request
/// failed).
pub const CONFIRM_RETRY: Duration = Duration::from_millis(50);

/// How long a probe waits for the confirmations.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Where one asked peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// A request is in flight.
    Asked,
    /// Ask again at this time.
    RetryAt(Instant),
    /// It holds this node's blob.
    Confirmed,
    /// It disconnected.
    Gone,
}

/// The peers asked about the highest waiting height.
#[derive(Debug)]
struct Probe {
    height: u64,
    hash: [u8; 32],
    /// Set at the first [`DaService::settle_confirmations`] (the service's clock).
    deadline: Option<Instant>,
    peers: Vec<(PeerId, Ask)>,
}

impl Probe {
    fn confirmed(&self) -> usize {
        self.peers
            .iter()
            .filter(|(_, a)| *a == Ask::Confirmed)
            .count()
    }

    /// A majority of the peers asked.
    fn needed(&self) -> usize {
        self.peers.len() / 2 + 1
    }

    fn all_answered(&self) -> bool {
        self.peers
            .iter()
            .all(|(_, a)| matches!(a, Ask::Confirmed | Ask::Gone))
    }
}

/// Sealed blobs whose waiters wait for the network's confirmation; see the module
/// documentation. At most one entry per sealed height with waiters, one probe.
#[derive(Debug, Default)]
pub(crate) struct Confirmations {
    waiting: BTreeMap<u64, Vec<Reply>>,
    probe: Option<Probe>,
}

impl DaService {
    /// Answers the waiters of the durable blob at `height` once the network holds it (see
    /// the module documentation).
    pub(super) fn answer_sealed(&mut self, height: u64, replies: Vec<Reply>) {
        if replies.is_empty() {
            return;
        }
        if self.forks.forked_at(height) {
            self.fail_replies(
                replies,
                &format!(
                    "NOT published: the DA log forked at height {height} (dsdn-agent da evidence)"
                ),
            );
            return;
        }
        if self.planner.peers().next().is_none() {
            self.answer_confirmed(height, replies);
            return;
        }
        self.confirming
            .waiting
            .entry(height)
            .or_default()
            .extend(replies);
        if self
            .confirming
            .probe
            .as_ref()
            .is_none_or(|p| p.height < height)
        {
            self.start_probe(height);
        }
    }

    /// Asks up to [`CONFIRM_PEERS`] random DA peers for their blob at `height` (the probe of
    /// an older height is dropped: this one covers it).
    fn start_probe(&mut self, height: u64) {
        let hash = if height == self.chain.height() {
            Some(self.chain.tip_hash())
        } else {
            self.chain.held(height).map(|b| b.hash()).or_else(|| {
                self.read_blob(height)
                    .and_then(|b| DaBlob::from_bytes(&b).ok())
                    .and_then(|b| b.hash().ok())
            })
        };
        let Some(hash) = hash else {
            // Not readable (cannot happen for a durable blob): nothing to compare with.
            self.confirming.probe = None;
            self.answer_up_to(height);
            return;
        };
        let mut peers: Vec<PeerId> = self.planner.peers().cloned().collect();
        use rand::seq::SliceRandom;
        peers.shuffle(&mut rand::rng());
        peers.truncate(CONFIRM_PEERS);
        let request = SyncRequest {
            from: height,
            count: 1,
        };
        for peer in &peers {
            self.actions.push(DaAction::Confirm(*peer, request));
        }
        self.confirming.probe = Some(Probe {
            height,
            hash,
            deadline: None,
            peers: peers.into_iter().map(|p| (p, Ask::Asked)).collect(),
        });
    }

    /// A peer's answer to a confirmation request for `request.from` (`None`: the request
    /// failed).
    pub(crate) fn on_confirm_response(
        &mut self,
        peer: PeerId,
        request: &SyncRequest,
        response: Option<SyncResponse>,
        now: Instant,
    ) {
        let height = request.from;
        let blob = response
            .and_then(|r| r.validated(request).ok())
            .map(|r| r.blobs.into_iter().next());
        // The key of the blob's own height: after a committee rotation the genesis
        // authority no longer signs (issue 13 §3).
        let verified = match (&blob, self.key_for(height)) {
            (Some(Some(bytes)), Some(a)) => DaBlob::decode_verified(bytes, &self.network, &a)
                .ok()
                .filter(|b| b.height() == height),
            _ => None,
        };
        let Some(probe) = self
            .confirming
            .probe
            .as_mut()
            .filter(|p| p.height == height)
        else {
            // An answer about an older probe: only a conflict matters now.
            if let Some(b) = verified {
                self.check_fork(&b);
            }
            return;
        };
        let ask = match verified {
            Some(b) if b.hash() == probe.hash => Ask::Confirmed,
            Some(b) => {
                // Another validly signed blob at our height: fork evidence, which fails the
                // waiters of this height and above (`confirm_failed_at`).
                self.check_fork(&b);
                return;
            }
            // Behind, a failed request, or an unusable answer: asked again.
            None => Ask::RetryAt(now + CONFIRM_RETRY),
        };
        if let Some(entry) = probe.peers.iter_mut().find(|(p, _)| *p == peer) {
            if entry.1 != Ask::Gone {
                entry.1 = ask;
            }
        }
        self.settle_confirmations(now);
    }

    /// A DA peer left: it confirms nothing more.
    pub(super) fn confirm_peer_gone(&mut self, peer: &PeerId) {
        if let Some(probe) = self.confirming.probe.as_mut() {
            for (p, a) in &mut probe.peers {
                if p == peer && *a != Ask::Confirmed {
                    *a = Ask::Gone;
                }
            }
        }
    }

    /// Fork evidence at `height`: the waiters of that height and above (their blobs chain on
    /// this node's blob there) are told their events were not published; lower heights are
    /// probed again.
    pub(super) fn confirm_failed_at(&mut self, height: u64) {
        let failed = self.confirming.waiting.split_off(&height);
        for (h, replies) in failed {
            self.fail_replies(
                replies,
                &format!("NOT published: another validly signed blob holds height {height} (the DA log forked; dsdn-agent da evidence), so blob {h} is not the network's"),
            );
        }
        if self
            .confirming
            .probe
            .as_ref()
            .is_some_and(|p| p.height >= height)
        {
            self.confirming.probe = None;
            if let Some(&lower) = self.confirming.waiting.keys().next_back() {
                self.start_probe(lower);
            }
        }
    }

    /// Answers the waiters of every height up to `height`.
    fn answer_up_to(&mut self, height: u64) {
        let above = self.confirming.waiting.split_off(&(height + 1));
        let done = std::mem::replace(&mut self.confirming.waiting, above);
        for (h, replies) in done {
            self.answer_confirmed(h, replies);
        }
    }

    /// Re-asks peers whose retry is due; answers (or fails) the waiters once the probe is
    /// settled.
    pub(super) fn settle_confirmations(&mut self, now: Instant) {
        let Some(probe) = self.confirming.probe.as_mut() else {
            return;
        };
        let deadline = *probe.deadline.get_or_insert(now + CONFIRM_TIMEOUT);
        let request = SyncRequest {
            from: probe.height,
            count: 1,
        };
        let mut resend = Vec::new();
        for (p, a) in &mut probe.peers {
            if let Ask::RetryAt(t) = *a {
                if t <= now && now < deadline {
                    *a = Ask::Asked;
                    resend.push(*p);
                }
            }
        }
        let settled =
            probe.confirmed() >= probe.needed() || probe.all_answered() || deadline <= now;
        let (height, confirmed, needed, asked) = (
            probe.height,
            probe.confirmed(),
            probe.needed(),
            probe.peers.len(),
        );
        for peer in resend {
            self.actions.push(DaAction::Confirm(peer, request));
        }
        if !settled {
            return;
        }
        self.confirming.probe = None;
        if confirmed >= 1 {
            if confirmed < needed {
                tracing::warn!(
                    height,
                    confirmed,
                    asked,
                    "DA blob confirmed by fewer peers than a majority of those asked; answering"
                );
            }
            self.answer_up_to(height);
        } else {
            let above = self.confirming.waiting.split_off(&(height + 1));
            let done = std::mem::replace(&mut self.confirming.waiting, above);
            for (_, replies) in done {
                self.fail_replies(
                    replies,
                    &format!("blob {height} is in this node's log but no DA peer confirmed holding it within {CONFIRM_TIMEOUT:?}; check `dsdn-agent da blobs --from {height}` on another node"),
                );
            }
        }
    }

    /// The next confirmation retry or deadline (`now` for a probe not settled yet).
    pub(super) fn confirm_deadline(&self, now: Instant) -> Option<Instant> {
        let probe = self.confirming.probe.as_ref()?;
        probe
            .peers
            .iter()
            .filter_map(|(_, a)| match a {
                Ask::RetryAt(t) => Some(*t),
                _ => None,
            })
            .chain(std::iter::once(probe.deadline.unwrap_or(now)))
            .min()
    }
}
