//! The pending pool of a committee member (issue 13 §1): when the DA authority is the
//! committee's group key every member takes `POST /v1/da/events` and registrations. Its own
//! events wait here, with whoever waits for them, until a blob holding them is applied —
//! whoever proposed it. Events other members forwarded
//! (`/dsdn/<net>/da-rotation/1.0.0` `Forward`) wait here too, without waiters, so that this
//! member includes them when it proposes. Nothing is taken out when a blob is proposed:
//! only an applied blob removes its events, so a proposer that dies costs nothing but time
//! (its members re-forward to the next proposer).
//!
//! A coordinator that runs the committee protocol without sealing (a follower, a retired
//! member; [`DaService::set_forwarding`]) keeps the events posted to it here as own events
//! too, and forwards them like a member (`event_loop/forward.rs`); members take forwards
//! from admitted coordinators only ([`DaService::admits_forwarder`]).
//!
//! Events are identified by the SHA-256 of their wire form (kind, version, body): two
//! identical posted events are one entry with both waiters, answered by one blob.
//! Bounds: own entries with the batcher's [`MAX_QUEUED_EVENTS`], forwarded entries at most
//! [`MAX_QUEUED_EVENTS`] (more are refused; their member forwards again).
//!
//! A forward can arrive after the blob that sealed its events was applied here: its member
//! sent it before applying that blob (members forward again at every round change and
//! timeout, and a split delays everything). The keys of the last [`RECENTLY_SEALED`]
//! sealed events are remembered with the height that sealed them. A forward names the
//! height its member was deciding (`ForwardAt`); an event sealed at that height or above is
//! dropped (its member had not applied the blob: a late forward, which must not seal the
//! event a second time), one sealed below it is taken (its member applied that blob and was
//! posted the same event again). A forward without a height (older members) drops every
//! recently sealed event.

use std::collections::{BTreeMap, HashMap, VecDeque};

use dsdn_protocols::da::blob::proposer::peer_id_text;
use dsdn_protocols::da::WireEvent;
use sha2::{Digest, Sha256};

use super::publish::event_size;
use super::*;

/// An event's identity in the pool: SHA-256 of `kind ‖ version (BE) ‖ body` of its wire form.
pub(super) fn event_key(event: &DaEvent) -> Option<[u8; 32]> {
    let WireEvent(kind, version, body) = event.to_wire().ok()?;
    let mut h = Sha256::new();
    h.update([kind]);
    h.update(version.to_be_bytes());
    h.update(&body);
    Some(h.finalize().into())
}

struct Own {
    key: [u8; 32],
    event: DaEvent,
    replies: Vec<Reply>,
}

/// Keys of sealed events remembered against late forwards (a key twice and a height
/// each: ~2.5 MiB).
pub(crate) const RECENTLY_SEALED: usize = 32_768;

/// The keys of the last [`RECENTLY_SEALED`] sealed events with the height of the newest
/// blob that sealed each, oldest first.
#[derive(Default)]
struct Sealed {
    order: VecDeque<[u8; 32]>,
    heights: HashMap<[u8; 32], u64>,
}

impl Sealed {
    fn insert(&mut self, key: [u8; 32], height: u64) {
        if self.heights.insert(key, height).is_none() {
            self.order.push_back(key);
            while self.order.len() > RECENTLY_SEALED {
                if let Some(old) = self.order.pop_front() {
                    self.heights.remove(&old);
                }
            }
        }
    }

    /// True when a forward sent by a member deciding `height` (`None`: unknown) is late
    /// for this event: the event was sealed at that height or above.
    fn is_late(&self, key: &[u8; 32], height: Option<u64>) -> bool {
        self.heights
            .get(key)
            .is_some_and(|&sealed| height.is_none_or(|h| sealed >= h))
    }
}

/// See the module documentation.
#[derive(Default)]
pub(crate) struct Pool {
    /// This member's events, in arrival order.
    own: Vec<Own>,
    /// Events forwarded by other members: key → (arrival number, event).
    forwarded: BTreeMap<[u8; 32], (u64, DaEvent)>,
    next: u64,
    /// Bumped whenever an own event is added (the rotation forwards again).
    generation: u64,
    /// Keys of recently sealed events: a late forward of one is dropped.
    sealed: Sealed,
}

impl Pool {
    /// Own and forwarded events waiting.
    pub(super) fn len(&self) -> usize {
        self.own.len() + self.forwarded.len()
    }

    fn add_own(&mut self, event: DaEvent, reply: Reply) {
        self.generation += 1;
        let Some(key) = event_key(&event) else {
            return;
        };
        if let Some(o) = self.own.iter_mut().find(|o| o.key == key) {
            o.replies.push(reply);
            return;
        }
        self.forwarded.remove(&key);
        self.own.push(Own {
            key,
            event,
            replies: vec![reply],
        });
    }
}

impl DaService {
    /// True when the DA authority is the committee's group key and this member holds a
    /// share: events go to the [`Pool`] and blobs are sealed by the proposer rotation.
    pub(crate) fn seals_by_rotation(&self) -> bool {
        matches!(self.sealer, Sealer::Committee)
    }

    /// Tells the service whether this coordinator forwards posted events to the committee
    /// in force (issue 13 §1): set by the event loop on a coordinator that runs the
    /// committee protocol without sealing (a follower, a retired member) and is admitted to
    /// the selection ([`DaService::admits_forwarder`] of itself), so that the members take
    /// its forwards. Its publishers' events then wait in the pool as own events, are
    /// forwarded like a member's, and are answered once a blob holding them is durable
    /// (and confirmed) here. Ignored while this node seals (it takes events anyway).
    pub(crate) fn set_forwarding(&mut self, forwarding: bool) {
        self.forwarding = forwarding;
    }

    /// True when this node does not seal but forwards posted events to the committee
    /// ([`DaService::set_forwarding`]).
    pub(crate) fn forwards(&self) -> bool {
        self.forwarding && matches!(self.sealer, Sealer::None)
    }

    /// True when `POST /v1/da/events` is taken here: this node seals (its own key, or a
    /// share of the committee in force), or it forwards to the committee.
    pub(super) fn takes_events(&self) -> bool {
        self.is_authority() || self.forwards()
    }

    /// True when `peer` may forward events to this member (PROTOCOL §7.6, `Forward`): a
    /// coordinator the selection rule admits (a genesis member or one of `[committee]
    /// candidates`; every later member is one of them). `false` while this node runs no
    /// epoch rotation (no rule): only the members in force forward then.
    pub(crate) fn admits_forwarder(&self, peer: &PeerId) -> bool {
        self.selection
            .as_ref()
            .is_some_and(|rule| rule.admits(&peer.to_base58()))
    }

    /// Queues an own event: into the pool under rotation or while forwarding, else into
    /// the batcher. `Err` gives the reply back when the batcher or the pool is full.
    pub(super) fn queue_event(
        &mut self,
        event: DaEvent,
        reply: Reply,
        now: Instant,
    ) -> Result<(), Reply> {
        if self.seals_by_rotation() || self.forwards() {
            if self.pool.len() >= MAX_QUEUED_EVENTS {
                return Err(reply);
            }
            self.pool.add_own(event, reply);
            return Ok(());
        }
        let size = event_size(&event);
        self.batcher
            .push(Queued { event, reply }, size, now)
            .map_err(|full| full.0.reply)
    }

    /// Events waiting for a blob (own, forwarded, batched).
    pub(crate) fn queued_events(&self) -> usize {
        self.batcher.len() + self.pool.len()
    }

    /// True when there is something to seal, and so the proposer rotation runs: this
    /// member's pool holds events (own or forwarded), or a filler is due
    /// ([`DaService::filler_due`] for the next height).
    pub(crate) fn has_pending(&self) -> bool {
        self.pool.len() > 0 || self.filler_due(self.chain.height() + 1)
    }

    /// Whether an empty blob (a *filler*) may be sealed at `height`: a rotation recorded
    /// in the log takes effect above it (`height < effective_height`). On an idle log the
    /// committee in force seals fillers up to the rotation's `effective_height`, so that
    /// the new key takes over without waiting for traffic (issue 13 §3); at most
    /// `MAX_ROTATION_LEAD` of them per rotation. The proposer proposes one only when its
    /// pool is empty ([`DaService::propose_blob`]); members co-sign an empty blob only
    /// under this rule ([`DaService::check_proposal`]). A pure function of the applied log.
    pub(crate) fn filler_due(&self, height: u64) -> bool {
        self.keys
            .as_ref()
            .and_then(|k| k.latest())
            .is_some_and(|e| height < e.effective_height)
    }

    /// This member's own waiting events in wire form (at most `max_events` whose bodies
    /// add up to at most `max_bytes`, oldest first), and the pool's generation (it changes
    /// whenever an own event is added).
    pub(crate) fn own_pending(&self, max_events: usize, max_bytes: usize) -> (u64, Vec<WireEvent>) {
        let mut bytes = 0;
        let events = self
            .pool
            .own
            .iter()
            .filter_map(|o| o.event.to_wire().ok())
            .take(max_events)
            .take_while(|w| {
                bytes += w.2.len() + 16;
                bytes <= max_bytes
            })
            .collect();
        (self.pool.generation, events)
    }

    /// True when no peer reported a higher tip and no blob is held out of order.
    pub(crate) fn is_synced(&self) -> bool {
        self.chain.pending() == 0 && self.planner.target() <= self.chain.height()
    }

    /// Events another member forwarded while deciding `height` (`None`: an older member
    /// that does not say): checked as for sealing and kept (without waiters) until a blob
    /// holds them; late forwards of sealed events are dropped (module documentation).
    /// Returns how many were new.
    ///
    /// # Errors
    /// Not sealing by rotation, an event that does not decode or would not be sealed.
    pub(crate) fn on_forwarded(
        &mut self,
        height: Option<u64>,
        events: &[WireEvent],
    ) -> Result<usize, String> {
        if !self.seals_by_rotation() {
            return Err("this member does not seal by rotation".into());
        }
        let mut decoded = Vec::with_capacity(events.len());
        for (i, w) in events.iter().enumerate() {
            let event = DaEvent::from_wire(w).map_err(|e| format!("event {i}: {e}"))?;
            self.sealable(&event)
                .map_err(|e| format!("event {i}: {e}"))?;
            decoded.push(event);
        }
        let mut new = 0;
        for event in decoded {
            let Some(key) = event_key(&event) else {
                continue;
            };
            if self.pool.forwarded.contains_key(&key)
                || self.pool.own.iter().any(|o| o.key == key)
                || self.pool.sealed.is_late(&key, height)
            {
                continue;
            }
            if self.pool.forwarded.len() >= MAX_QUEUED_EVENTS {
                break;
            }
            let n = self.pool.next;
            self.pool.next += 1;
            self.pool.forwarded.insert(key, (n, event));
            new += 1;
        }
        Ok(new)
    }

    /// The signing bytes of a new blob for `height` proposed by this member (version 4,
    /// naming this node's PeerId as `proposer` and signed by its node key, issue 13 §6):
    /// its own events
    /// first, then forwarded ones, within the batch limits (`da.batch_max_events`,
    /// `da.batch_max_bytes`); with nothing waiting, an empty blob when a filler is due
    /// ([`DaService::filler_due`]). `None` when nothing waits or this member may not propose
    /// `height` now (it is behind, holds blobs out of order, or its log takes no new
    /// heights).
    pub(crate) fn propose_blob(&self, height: u64) -> Option<Vec<u8>> {
        if height != self.chain.height() + 1
            || !self.accepting()
            || self.chain.pending() > 0
            || self.planner.target() > self.chain.height()
            || self.identity_clash.is_some()
        {
            return None;
        }
        let mut forwarded: Vec<&(u64, DaEvent)> = self.pool.forwarded.values().collect();
        forwarded.sort_by_key(|(n, _)| *n);
        let mut events = Vec::new();
        let mut bytes = 0;
        for event in self
            .pool
            .own
            .iter()
            .map(|o| &o.event)
            .chain(forwarded.into_iter().map(|(_, e)| e))
        {
            let size = event_size(event);
            if events.len() >= self.cfg.batch_max_events
                || (!events.is_empty() && bytes + size > self.cfg.batch_max_bytes)
            {
                break;
            }
            bytes += size;
            events.push(event.clone());
        }
        if events.is_empty() && !self.filler_due(height) {
            return None;
        }
        self.next_unsigned(height, events)
            .and_then(|b| b.proposed_by(&self.node_key))
            .and_then(|b| b.signing_bytes())
            .map_err(|e| tracing::error!(error = %e, "cannot build a DA blob to propose"))
            .ok()
    }

    /// The rotation sealed `message` (a blob's signing bytes) at `height` with the group
    /// `signature`: applied and gossiped like any sealed blob (its events' waiters, on
    /// every member, are answered when it applies). Ignored when the height is applied
    /// already.
    ///
    /// # Errors
    /// The bytes are no blob of this network at `height`, or the signature does not verify.
    pub(crate) fn on_rotation_sealed(
        &mut self,
        height: u64,
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), String> {
        if height != self.chain.height() + 1 {
            return Ok(());
        }
        let keys = self.keys.as_ref().ok_or("no DA authority")?;
        let signature =
            <[u8; 64]>::try_from(signature).map_err(|_| "a signature is 64 bytes".to_owned())?;
        let blob = DaBlob::from_signing_bytes(message).map_err(|e| e.to_string())?;
        if blob.height != height {
            return Err(format!("blob {} sealed for height {height}", blob.height));
        }
        let blob = keys
            .verify_blob(blob.with_signature(signature), &self.network)
            .map_err(|e| format!("the sealed blob does not verify: {e}"))?;
        tracing::info!(
            height,
            hash = %hex::encode(blob.hash()),
            events = blob.blob().events.len(),
            proposer = %blob.proposer().map_or_else(|| "-".to_owned(), peer_id_text),
            "DA blob sealed by the committee"
        );
        self.finish_seal(blob, Vec::new());
        Ok(())
    }

    /// A member is at `height` (it sent a rotation message of that height): the log is
    /// behind it, so backfill asks it.
    pub(crate) fn peer_ahead(&mut self, peer: &PeerId, height: u64) {
        self.planner.observe_tip(peer, height.saturating_sub(1));
    }

    /// Applied blobs take their events out of the pool; the waiters of own events are
    /// answered once the blob is durable and confirmed ([`DaService::when_durable`]).
    pub(super) fn pool_applied(&mut self, applied: &[VerifiedBlob]) {
        // A forwarder remembers sealed events too: selected into the committee, it drops
        // late forwards of events sealed while it followed.
        let remember = self.seals_by_rotation() || self.forwards();
        if !remember && self.pool.len() == 0 {
            return;
        }
        for b in applied {
            let mut replies = Vec::new();
            for event in &b.blob().events {
                let Some(key) = event_key(event) else {
                    continue;
                };
                if remember {
                    self.pool.sealed.insert(key, b.height());
                }
                self.pool.forwarded.remove(&key);
                if let Some(i) = self.pool.own.iter().position(|o| o.key == key) {
                    replies.append(&mut self.pool.own.remove(i).replies);
                }
            }
            if !replies.is_empty() {
                self.when_durable(b.height(), replies);
            }
        }
        self.drop_stale_rotations();
    }

    /// A `committee_rotated` event the state no longer admits at the next height (its
    /// effective height passed, or its epoch was recorded) leaves the pool: no member would
    /// co-sign a blob holding it, so it would stall the log. The epoch rotation driver
    /// signs a new one if its window lasts (issue 13 §3).
    fn drop_stale_rotations(&mut self) {
        let stale = |svc: &DaService, e: &DaEvent| {
            matches!(e, DaEvent::CommitteeRotated(_)) && svc.sealable(e).is_err()
        };
        let own: Vec<bool> = self
            .pool
            .own
            .iter()
            .map(|o| stale(self, &o.event))
            .collect();
        let fwd: Vec<[u8; 32]> = self
            .pool
            .forwarded
            .iter()
            .filter(|(_, (_, e))| stale(self, e))
            .map(|(k, _)| *k)
            .collect();
        let mut i = 0;
        self.pool.own.retain(|_| {
            i += 1;
            !own[i - 1]
        });
        for k in fwd {
            self.pool.forwarded.remove(&k);
        }
    }
}
