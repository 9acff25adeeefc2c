//! Answering a publisher only once its blob is the network's (issue 13 §4).
//!
//! A sealer that answered "published in blob N" as soon as blob N was durable in its own log
//! would lie when another process seals with the same key: the network keeps one blob per
//! height, and the other's events are lost. So the answer to everyone who waits for a blob
//! this node sealed (publishers, registrations, submitted blobs) waits until a majority of
//! up to [`CONFIRM_PEERS`] connected DA peers report, over the backfill protocol, that they
//! hold this node's blob at N. A peer that is behind is asked again every
//! [`CONFIRM_RETRY`]. A peer holding another validly signed blob at N is fork evidence
//! ([`super::fork`]): the waiters are told the events were not published. A node without
//! DA peers answers at once: nobody can hold another blob for it.
//!
//! When the majority has not answered within [`CONFIRM_TIMEOUT`], the waiters are answered
//! if at least one peer holds the blob and no peer holds another; with no confirmation at
//! all they get an error that says the blob is in this node's log but unconfirmed.
//! Entries: one per sealed blob with waiters, each with at most [`CONFIRM_PEERS`] peers.

use super::*;

/// DA peers asked to confirm a sealed blob.
pub const CONFIRM_PEERS: usize = 3;

/// Pause before asking again a peer that did not hold the blob yet.
pub const CONFIRM_RETRY: Duration = Duration::from_millis(50);

/// How long the waiters of one blob wait for the confirmations.
pub const CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Where one asked peer stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ask {
    /// A request is in flight.
    Asked,
    /// It did not hold the blob yet: ask again at this time.
    RetryAt(Instant),
    /// It holds this node's blob.
    Confirmed,
    /// It failed, disconnected, or answered something unusable.
    Gone,
}

/// The waiters of one sealed blob and the peers asked about it.
#[derive(Debug)]
pub(crate) struct Confirming {
    height: u64,
    hash: [u8; 32],
    replies: Vec<Reply>,
    /// Set at the first [`DaService::settle_confirmations`] (the service's clock).
    deadline: Option<Instant>,
    peers: Vec<(PeerId, Ask)>,
}

impl Confirming {
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
        let hash = match height.cmp(&self.chain.height()) {
            std::cmp::Ordering::Equal => self.chain.tip_hash(),
            _ => match self.forks_hash_at(height) {
                Some(h) => h,
                None => {
                    self.answer_confirmed(height, replies);
                    return;
                }
            },
        };
        let mut peers: Vec<PeerId> = self.planner.peers().cloned().collect();
        if peers.is_empty() {
            self.answer_confirmed(height, replies);
            return;
        }
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
        self.confirming.push(Confirming {
            height,
            hash,
            replies,
            deadline: None,
            peers: peers.into_iter().map(|p| (p, Ask::Asked)).collect(),
        });
    }

    fn forks_hash_at(&self, height: u64) -> Option<[u8; 32]> {
        self.chain.held(height).map(|b| b.hash()).or_else(|| {
            self.read_blob(height)
                .and_then(|b| DaBlob::from_bytes(&b).ok())
                .and_then(|b| b.hash().ok())
        })
    }

    /// A peer's answer to a confirmation request for `request.from`.
    pub(crate) fn on_confirm_response(
        &mut self,
        peer: PeerId,
        request: &SyncRequest,
        response: Option<SyncResponse>,
        now: Instant,
    ) {
        let height = request.from;
        let Some(i) = self.confirming.iter().position(|c| c.height == height) else {
            return;
        };
        let blob = response
            .and_then(|r| r.validated(request).ok())
            .map(|r| r.blobs.into_iter().next());
        let authority = self.authority;
        let ask = match blob {
            None => Ask::Gone,
            Some(None) => Ask::RetryAt(now + CONFIRM_RETRY),
            Some(Some(bytes)) => match authority
                .and_then(|a| DaBlob::decode_verified(&bytes, &self.network, &a).ok())
            {
                Some(b) if b.height() == height && b.hash() == self.confirming[i].hash => {
                    Ask::Confirmed
                }
                Some(b) if b.height() == height => {
                    // Another validly signed blob at our height: fork evidence; the
                    // waiters are failed by `confirm_failed_at`.
                    self.check_fork(&b);
                    Ask::Gone
                }
                _ => Ask::Gone,
            },
        };
        if let Some(c) = self.confirming.iter_mut().find(|c| c.height == height) {
            if let Some(entry) = c.peers.iter_mut().find(|(p, _)| *p == peer) {
                entry.1 = ask;
            }
        }
        self.settle_confirmations(now);
    }

    /// A DA peer left: it confirms nothing more.
    pub(super) fn confirm_peer_gone(&mut self, peer: &PeerId) {
        for c in &mut self.confirming {
            for (p, a) in &mut c.peers {
                if p == peer && *a != Ask::Confirmed {
                    *a = Ask::Gone;
                }
            }
        }
    }

    /// Fork evidence at `height`: its waiters are told their events were not published.
    pub(super) fn confirm_failed_at(&mut self, height: u64) {
        let failed: Vec<Confirming> = self
            .confirming
            .extract_if(.., |c| c.height == height)
            .collect();
        for c in failed {
            self.fail_replies(
                c.replies,
                &format!("NOT published: another validly signed blob holds height {height} (the DA log forked; dsdn-agent da evidence)"),
            );
        }
    }

    /// Re-asks peers that were behind, answers what is confirmed or timed out.
    pub(super) fn settle_confirmations(&mut self, now: Instant) {
        let mut resend = Vec::new();
        for c in &mut self.confirming {
            c.deadline.get_or_insert(now + CONFIRM_TIMEOUT);
            for (p, a) in &mut c.peers {
                if let Ask::RetryAt(t) = *a {
                    if t <= now {
                        *a = Ask::Asked;
                        resend.push((
                            *p,
                            SyncRequest {
                                from: c.height,
                                count: 1,
                            },
                        ));
                    }
                }
            }
        }
        for (peer, request) in resend {
            self.actions.push(DaAction::Confirm(peer, request));
        }
        let done: Vec<Confirming> = self
            .confirming
            .extract_if(.., |c| {
                c.confirmed() >= c.needed()
                    || c.all_answered()
                    || c.deadline.is_some_and(|d| d <= now)
            })
            .collect();
        for c in done {
            if c.confirmed() >= 1 {
                if c.confirmed() < c.needed() {
                    tracing::warn!(
                        height = c.height,
                        confirmed = c.confirmed(),
                        asked = c.peers.len(),
                        "DA blob confirmed by fewer peers than a majority of those asked; answering"
                    );
                }
                self.answer_confirmed(c.height, c.replies);
            } else {
                let height = c.height;
                self.fail_replies(
                    c.replies,
                    &format!("blob {height} is in this node's log but no DA peer confirmed holding it within {CONFIRM_TIMEOUT:?}; check `dsdn-agent da blobs --from {height}` on another node"),
                );
            }
        }
    }

    /// The next confirmation retry or deadline (`now` for an entry not settled yet).
    pub(super) fn confirm_deadline(&self, now: Instant) -> Option<Instant> {
        self.confirming
            .iter()
            .flat_map(|c| {
                c.peers
                    .iter()
                    .filter_map(|(_, a)| match a {
                        Ask::RetryAt(t) => Some(*t),
                        _ => None,
                    })
                    .chain(std::iter::once(c.deadline.unwrap_or(now)))
            })
            .min()
    }
}
