//! [`Registrar`]: a storage node's registration with the DA authority (issue 5 §2), and a
//! coordinator's in the coordinator registry (issue 13 §3: class `coordinator`, a
//! `CoordinatorRegistered` event; registered once it is in the replayed registry).
//!
//! A storage node registers itself: it sends a [`RegisterRequest`] (zone, capacity, class)
//! over `/dsdn/<network>/da-register/1.0.0` to a connected coordinator — the DA authority's
//! PeerId first, since it is derived from the `da_authority` key — and the coordinator
//! publishes the `NodeRegistered` event. The node counts as registered only once that
//! event is in its *own* replayed state with the same zone, capacity and class; until then
//! it asks again every [`RETRY`] (another coordinator after a refusal or failure).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use dsdn_protocols::da::register::{RegisterRequest, RegisterResponse};
use dsdn_protocols::da::DaState;
use libp2p::PeerId;
use serde::Serialize;

/// Interval between two registration attempts while the node is not registered.
pub(crate) const RETRY: Duration = Duration::from_secs(10);

/// How long a coordinator that refused or failed is skipped the first time (other
/// coordinators are asked meanwhile; with a single coordinator this is the retry interval
/// after a first refusal, e.g. of a coordinator whose DA service was still starting). Each
/// further refusal or failure of the same coordinator doubles it, up to [`REFUSED_MAX`].
const REFUSED_BASE: Duration = Duration::from_secs(2);

/// The longest a refusing coordinator is skipped; a coordinator that has not refused for
/// this long after its last skip ended starts again from [`REFUSED_BASE`].
const REFUSED_MAX: Duration = Duration::from_secs(30);

/// A coordinator being skipped: until when, and after how many refusals or failures in a
/// row (its strikes; the skip is `REFUSED_BASE · 2^(strikes − 1)`, at most `REFUSED_MAX`).
#[derive(Debug, Clone, Copy)]
struct Skip {
    until: Instant,
    strikes: u32,
}

/// How long a coordinator with `strikes` refusals or failures in a row is skipped.
fn skip_for(strikes: u32) -> Duration {
    let doublings = strikes.saturating_sub(1).min(16);
    REFUSED_BASE
        .saturating_mul(1u32 << doublings)
        .min(REFUSED_MAX)
}

/// A registration in flight is forgotten after this long (the response never came).
const IN_FLIGHT_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a storage node's registration stands (`GET /v1/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum RegistrationView {
    /// Not in the replayed state yet.
    Pending {
        /// Requests sent so far.
        attempts: u32,
        /// The last refusal or failure, if any.
        last_error: Option<String>,
    },
    /// The replayed state holds this node with the requested zone, capacity and class.
    Registered {
        /// Height of the blob that registered it.
        height: u64,
    },
}

/// The client side of registration; a pure state machine taking `now`.
#[derive(Debug)]
pub(crate) struct Registrar {
    request: RegisterRequest,
    node_id: String,
    authority_peer: Option<PeerId>,
    next_attempt: Option<Instant>,
    in_flight: Option<(PeerId, Instant)>,
    skipped: HashMap<PeerId, Skip>,
    attempts: u32,
    last_error: Option<String>,
    registered_at: Option<u64>,
}

impl Registrar {
    /// `node_id` is the node's own PeerId; `authority_peer` the PeerId of the DA authority
    /// key, if it is an Ed25519 key.
    pub(crate) fn new(
        request: RegisterRequest,
        node_id: PeerId,
        authority_peer: Option<PeerId>,
    ) -> Self {
        Self {
            request,
            node_id: node_id.to_base58(),
            authority_peer,
            next_attempt: None,
            in_flight: None,
            skipped: HashMap::new(),
            attempts: 0,
            last_error: None,
            registered_at: None,
        }
    }

    /// Re-checks the replayed state; call after blobs were applied.
    pub(crate) fn observe(&mut self, state: &DaState) {
        if self.request.is_coordinator() {
            // A coordinator (issue 13 §3): in the registry, whatever the zone and capacity.
            self.registered_at = state.coordinator(&self.node_id).ok().flatten();
            return;
        }
        let record = state.node(&self.node_id).ok().flatten();
        self.registered_at = record.and_then(|r| {
            (r.zone == self.request.zone
                && r.capacity_bytes == self.request.capacity_bytes
                && r.class == self.request.class)
                .then_some(r.registered_at)
        });
    }

    /// The request to send now, and to whom, if any. `coordinators` are the connected peers
    /// advertising the coordinator service type.
    pub(crate) fn poll(
        &mut self,
        now: Instant,
        coordinators: &[PeerId],
    ) -> Option<(PeerId, RegisterRequest)> {
        if self.registered_at.is_some() {
            return None;
        }
        if let Some((_, sent)) = self.in_flight {
            if now.duration_since(sent) < IN_FLIGHT_TIMEOUT {
                return None;
            }
            self.in_flight = None;
        }
        if self.next_attempt.is_some_and(|t| now < t) {
            return None;
        }
        // Strikes are forgotten once a skip ended REFUSED_MAX ago (the map holds only the
        // coordinators that refused in the last minute or so).
        self.skipped.retain(|_, s| s.until + REFUSED_MAX > now);
        let skipped = |p: &PeerId| self.skipped.get(p).is_some_and(|s| s.until > now);
        let target = self
            .authority_peer
            .filter(|a| coordinators.contains(a) && !skipped(a))
            .or_else(|| coordinators.iter().find(|p| !skipped(p)).copied())?;
        self.in_flight = Some((target, now));
        self.next_attempt = Some(now + RETRY);
        self.attempts += 1;
        Some((target, self.request.clone()))
    }

    /// The coordinator answered.
    pub(crate) fn on_response(&mut self, peer: PeerId, response: RegisterResponse, now: Instant) {
        if self.in_flight.is_some_and(|(p, _)| p == peer) {
            self.in_flight = None;
        }
        match response {
            RegisterResponse::Registered { height } => {
                tracing::info!(%peer, height, "registration published by the coordinator");
                self.last_error = None;
            }
            RegisterResponse::Refused { reason } => {
                let skip = self.skip(peer, now);
                tracing::warn!(%peer, %reason, retry_in_secs = skip.as_secs(), "registration refused");
                self.last_error = Some(reason);
                // Another coordinator may accept at once.
                self.next_attempt = Some(now);
            }
        }
    }

    /// The request failed (timeout, connection closed, protocol not supported).
    pub(crate) fn on_failure(&mut self, peer: PeerId, error: String, now: Instant) {
        if self.in_flight.is_some_and(|(p, _)| p == peer) {
            self.in_flight = None;
        }
        self.skip(peer, now);
        self.last_error = Some(error);
    }

    /// Skips `peer` after one more refusal or failure; returns for how long.
    fn skip(&mut self, peer: PeerId, now: Instant) -> Duration {
        let strikes = self
            .skipped
            .get(&peer)
            .map_or(0, |s| s.strikes)
            .saturating_add(1);
        let skip = skip_for(strikes);
        self.skipped.insert(
            peer,
            Skip {
                until: now + skip,
                strikes,
            },
        );
        skip
    }

    /// Where the registration stands.
    pub(crate) fn view(&self) -> RegistrationView {
        match self.registered_at {
            Some(height) => RegistrationView::Registered { height },
            None => RegistrationView::Pending {
                attempts: self.attempts,
                last_error: self.last_error.clone(),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsdn_protocols::da::{DaChain, DaEvent, Offer};
    use dsdn_protocols::NetworkId;
    use ed25519_dalek::SigningKey;

    fn request() -> RegisterRequest {
        RegisterRequest {
            zone: "id-jkt-1".into(),
            capacity_bytes: 1 << 40,
            class: "regular".into(),
        }
    }

    #[test]
    fn authority_first_then_others_and_done_once_replayed() {
        let me = PeerId::random();
        let (auth, other) = (PeerId::random(), PeerId::random());
        let mut r = Registrar::new(request(), me, Some(auth));
        let t0 = Instant::now();
        assert_eq!(r.poll(t0, &[]), None, "no coordinator connected");
        assert_eq!(r.poll(t0, &[other, auth]).map(|x| x.0), Some(auth));
        assert_eq!(r.poll(t0, &[other, auth]), None, "one in flight");
        r.on_response(
            auth,
            RegisterResponse::Refused {
                reason: "not the authority".into(),
            },
            t0,
        );
        assert_eq!(r.poll(t0, &[other, auth]).map(|x| x.0), Some(other));
        r.on_failure(other, "timeout".into(), t0);
        assert_eq!(
            r.poll(t0 + REFUSED_BASE / 2, &[other, auth]),
            None,
            "both skipped"
        );
        assert!(matches!(
            r.view(),
            RegistrationView::Pending { attempts: 2, .. }
        ));
        let later = t0 + RETRY;
        assert_eq!(r.poll(later, &[other, auth]).map(|x| x.0), Some(auth));

        // The event in the node's own state ends it; different parameters do not.
        let net = NetworkId::new("devnet").unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let auth_key = key.verifying_key().to_bytes();
        let mut chain = DaChain::new(DaState::new(net.clone()));
        let reg = |capacity| DaEvent::NodeRegistered {
            node_id: me.to_base58(),
            zone: "id-jkt-1".into(),
            capacity_bytes: capacity,
            class: "regular".into(),
        };
        let b1 = chain
            .state()
            .seal_next(&key, 1, vec![reg(5)])
            .unwrap()
            .verify(&net, &auth_key)
            .unwrap();
        assert!(matches!(chain.offer(b1), Offer::Applied(_)));
        r.observe(chain.state());
        assert!(matches!(r.view(), RegistrationView::Pending { .. }));
        let b2 = chain
            .state()
            .seal_next(&key, 2, vec![reg(1 << 40)])
            .unwrap()
            .verify(&net, &auth_key)
            .unwrap();
        assert!(matches!(chain.offer(b2), Offer::Applied(_)));
        r.observe(chain.state());
        assert_eq!(r.view(), RegistrationView::Registered { height: 2 });
        assert_eq!(r.poll(later + RETRY, &[auth]), None);
    }

    /// A coordinator refusing again and again is skipped 2, 4, 8, 16, then 30 s; one that
    /// stayed quiet for 30 s after its last skip starts again at 2 s.
    #[test]
    fn refusals_back_off_exponentially_and_are_forgiven() {
        let me = PeerId::random();
        let auth = PeerId::random();
        let mut r = Registrar::new(request(), me, Some(auth));
        let refused = || RegisterResponse::Refused {
            reason: "the DA service is starting".into(),
        };
        let mut now = Instant::now();
        let mut waits = Vec::new();
        assert_eq!(r.poll(now, &[auth]).map(|x| x.0), Some(auth));
        for _ in 0..6 {
            r.on_response(auth, refused(), now);
            // The first poll that asks again, in 100 ms steps.
            let start = now;
            while r.poll(now, &[auth]).is_none() {
                now += Duration::from_millis(100);
                assert!(now - start < Duration::from_secs(60), "never asked again");
            }
            waits.push((now - start).as_secs());
        }
        assert_eq!(waits, vec![2, 4, 8, 16, 30, 30]);
        // Quiet long enough after the last skip: a new refusal costs 2 s again.
        r.on_response(auth, refused(), now);
        now += skip_for(6) + REFUSED_MAX;
        assert!(r.poll(now, &[auth]).is_some());
        r.on_response(auth, refused(), now);
        assert!(r.poll(now + REFUSED_BASE, &[auth]).is_some());
        assert_eq!(skip_for(u32::MAX), REFUSED_MAX);
    }

    #[test]
    fn a_coordinator_is_registered_once_in_the_registry_not_as_a_storage_node() {
        let me = PeerId::random();
        let auth = PeerId::random();
        let mut req = request();
        req.class = dsdn_protocols::da::register::COORDINATOR_CLASS.into();
        let mut r = Registrar::new(req, me, Some(auth));
        let net = NetworkId::new("devnet").unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let auth_key = key.verifying_key().to_bytes();
        let mut chain = DaChain::new(DaState::new(net.clone()));
        // A storage record of the same PeerId does not count.
        let storage = DaEvent::NodeRegistered {
            node_id: me.to_base58(),
            zone: "id-jkt-1".into(),
            capacity_bytes: 1 << 40,
            class: "regular".into(),
        };
        let coordinator = DaEvent::CoordinatorRegistered {
            node_id: me.to_base58(),
        };
        for (i, event) in [storage, coordinator].into_iter().enumerate() {
            let b = chain
                .state()
                .seal_next(&key, i as u64 + 1, vec![event])
                .unwrap()
                .verify(&net, &auth_key)
                .unwrap();
            assert!(matches!(chain.offer(b), Offer::Applied(_)));
            r.observe(chain.state());
            if i == 0 {
                assert!(matches!(r.view(), RegistrationView::Pending { .. }));
                assert!(r.poll(Instant::now(), &[auth]).is_some());
            }
        }
        assert_eq!(r.view(), RegistrationView::Registered { height: 2 });
    }
}
