//! DA events over gossipsub: validation of received envelopes and publishing.
//!
//! One topic per network (`dsdn/<network>/da-events/1`) carries [`DaEnvelope`]s. A received
//! envelope is decoded under the size cap, checked with [`DaEnvelope::verify`] (version,
//! network, bounds, publisher == the configured DA authority, signature) and only then
//! accepted for forwarding; anything else is rejected, which makes gossipsub penalise the
//! peer that sent it. Accepted envelopes enter the in-order [`DaLog`].
//!
//! Every envelope the log *applies* (its own publications included) becomes a [`DaNotice`],
//! in sequence order, which the event loop hands to the subscribers of
//! [`crate::NodeHandle::subscribe_da`] (the light client's feed).

use std::collections::BTreeMap;

use dsdn_protocols::da::{DaEnvelope, DaError, DaEvent, DaLog, InsertOutcome};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;
use libp2p::gossipsub::MessageAcceptance;
use prometheus::IntCounter;
use serde::{Serialize, Serializer};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;

use crate::metrics::Metrics;

/// Capacity of one DA subscriber's channel, in notices (envelopes).
pub const DA_NOTICE_QUEUE: usize = 1024;

/// Most simultaneous DA subscribers of one node.
pub const MAX_DA_SUBSCRIBERS: usize = 16;

/// One DA envelope as applied by this node, in sequence order (14A §1 events).
///
/// JSON form (`serde_json`): `{"seq": 3, "publisher": "<64 hex>", "events": [<DaEvent>…],
/// "state_root": "<64 hex>"}`, each event in the [`DaEvent`] JSON form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DaNotice {
    /// The envelope's sequence number (1, 2, 3, …). Consecutive notices of one subscriber
    /// have consecutive numbers unless the subscriber fell more than [`DA_NOTICE_QUEUE`]
    /// notices behind (the dropped ones are counted in `da_notices_dropped_total`).
    pub seq: u64,
    /// The publisher's Ed25519 public key: always the network's DA authority, since only
    /// verified envelopes are applied.
    #[serde(serialize_with = "hex32")]
    pub publisher: [u8; 32],
    /// The envelope's events, in order (1 to 256).
    pub events: Vec<DaEvent>,
    /// The [`DaLog`] state root right after this envelope was applied.
    #[serde(serialize_with = "hex32")]
    pub state_root: [u8; 32],
}

fn hex32<S: Serializer>(bytes: &[u8; 32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&hex::encode(bytes))
}

/// Refused [`crate::NodeHandle::subscribe_da`]: [`MAX_DA_SUBSCRIBERS`] are subscribed.
#[derive(Debug, Clone, thiserror::Error)]
#[error("too many DA subscribers (max {MAX_DA_SUBSCRIBERS})")]
pub struct TooManySubscribers;

/// The bounded senders of the DA subscribers, owned by the event loop.
///
/// Sending never blocks: a notice for a subscriber whose channel is full is dropped (and
/// counted in `da_notices_dropped_total`); a closed subscriber is removed.
pub(crate) struct DaSubscribers {
    senders: Vec<mpsc::Sender<DaNotice>>,
    dropped: IntCounter,
}

impl DaSubscribers {
    pub(crate) fn new(metrics: &Metrics) -> Self {
        Self {
            senders: Vec::new(),
            dropped: metrics.da_notices_dropped.clone(),
        }
    }

    /// A new subscriber's receiver.
    pub(crate) fn subscribe(&mut self) -> Result<mpsc::Receiver<DaNotice>, TooManySubscribers> {
        self.senders.retain(|tx| !tx.is_closed());
        if self.senders.len() >= MAX_DA_SUBSCRIBERS {
            return Err(TooManySubscribers);
        }
        let (tx, rx) = mpsc::channel(DA_NOTICE_QUEUE);
        self.senders.push(tx);
        Ok(rx)
    }

    /// Offers each notice, in order, to every subscriber.
    pub(crate) fn notify(&mut self, notices: Vec<DaNotice>) {
        if self.senders.is_empty() {
            return;
        }
        for notice in notices {
            let dropped = &self.dropped;
            self.senders.retain(|tx| match tx.try_send(notice.clone()) {
                Ok(()) => true,
                Err(mpsc::error::TrySendError::Full(_)) => {
                    dropped.inc();
                    true
                }
                Err(mpsc::error::TrySendError::Closed(_)) => false,
            });
        }
    }
}

/// Events per envelope when the coordinator batches a publish request.
pub const EVENTS_PER_ENVELOPE: usize = 64;

/// Why a publish request is refused.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// This node's key is not the network's DA authority.
    #[error("this node is not the DA authority of network {0}: only the coordinator whose key is da_authority publishes")]
    NotAuthority(String),
    /// This node does not carry DA events (dedicated bootstrap node).
    #[error("this node does not subscribe to DA events")]
    NotSubscribed,
    /// The request was empty.
    #[error("no events to publish")]
    Empty,
    /// An event or envelope is invalid.
    #[error(transparent)]
    Invalid(#[from] DaError),
    /// Gossipsub refused the message (e.g. no peer subscribed yet).
    #[error("gossip publish failed: {0}")]
    Gossip(String),
}

/// A verified envelope waiting in the log: `(envelope hash, publisher, events)`.
type Held = ([u8; 32], [u8; 32], Vec<DaEvent>);

/// The DA state of one node.
pub struct DaGossip {
    network: NetworkId,
    authority: Option<[u8; 32]>,
    signer: Option<SigningKey>,
    log: DaLog,
    /// Hash and events of the envelopes the log holds out of order (mirrors its pending
    /// set, so at most [`dsdn_protocols::da::MAX_PENDING_ENVELOPES`], all verified).
    held: BTreeMap<u64, Held>,
    /// Notices of applied envelopes not yet taken by the event loop.
    applied: Vec<DaNotice>,
    rejected: u64,
    metrics: Metrics,
}

impl DaGossip {
    /// `key` is the node's own Ed25519 key; it signs only if its public key is `authority`.
    pub fn new(
        network: NetworkId,
        authority: Option<[u8; 32]>,
        key: SigningKey,
        metrics: Metrics,
    ) -> Self {
        let signer = (authority == Some(key.verifying_key().to_bytes())).then_some(key);
        Self {
            network,
            authority,
            signer,
            log: DaLog::new(),
            held: BTreeMap::new(),
            applied: Vec::new(),
            rejected: 0,
            metrics,
        }
    }

    /// True when this node may publish.
    pub fn is_authority(&self) -> bool {
        self.signer.is_some()
    }

    /// The in-order log.
    pub fn log(&self) -> &DaLog {
        &self.log
    }

    /// Envelopes rejected so far.
    pub fn rejected(&self) -> u64 {
        self.rejected
    }

    /// The network's DA authority, if configured.
    pub fn authority(&self) -> Option<[u8; 32]> {
        self.authority
    }

    /// Validates a gossiped message and, when valid, inserts it into the log. The answer is
    /// what to report to gossipsub: `Accept` (forward), `Ignore` (a duplicate or too far
    /// ahead: not forwarded, not penalised) or `Reject` (invalid: penalise the sender).
    pub fn on_message(&mut self, data: &[u8]) -> MessageAcceptance {
        let checked = DaEnvelope::from_bytes(data).and_then(|env| {
            env.verify(&self.network, self.authority.as_ref())?;
            let hash = env.hash()?;
            Ok((env, hash))
        });
        match checked {
            Ok((env, hash)) => self.insert(env, hash),
            Err(e) => {
                self.rejected += 1;
                let reason = match &e {
                    DaError::Malformed(_) => "malformed",
                    DaError::UnsupportedVersion(_) => "unsupported_version",
                    DaError::WrongNetwork { .. } => "wrong_network",
                    DaError::NotAuthority(_) => "not_authority",
                    DaError::BadSignature => "bad_signature",
                    DaError::NoAuthority => "no_authority",
                };
                self.metrics
                    .da_envelopes_rejected
                    .with_label_values(&[reason])
                    .inc();
                tracing::warn!(error = %e, "DA envelope rejected");
                MessageAcceptance::Reject
            }
        }
    }

    fn insert(&mut self, env: DaEnvelope, hash: [u8; 32]) -> MessageAcceptance {
        let before = self.log.events();
        let (root_before, seq_before) = (self.log.state_root(), self.log.applied_seq());
        match self.log.insert(env.seq, hash, env.events.len()) {
            outcome @ (InsertOutcome::Applied(_) | InsertOutcome::Buffered) => {
                self.metrics
                    .da_events_accepted
                    .inc_by(self.log.events() - before);
                self.held
                    .insert(env.seq, (hash, env.publisher.0, env.events));
                if matches!(outcome, InsertOutcome::Applied(_)) {
                    self.collect_applied(root_before, seq_before);
                }
                MessageAcceptance::Accept
            }
            InsertOutcome::Duplicate | InsertOutcome::TooFarAhead => MessageAcceptance::Ignore,
        }
    }

    /// Turns the envelopes the log just applied (sequence numbers after `seq_before`) into
    /// notices, recomputing the [`DaLog`] root after each one from `root_before`.
    fn collect_applied(&mut self, mut root: [u8; 32], seq_before: u64) {
        for seq in seq_before + 1..=self.log.applied_seq() {
            let Some((hash, publisher, events)) = self.held.remove(&seq) else {
                tracing::error!(seq, "applied DA envelope missing from the held set");
                continue;
            };
            let mut h = Sha256::new();
            h.update(root);
            h.update(seq.to_be_bytes());
            h.update(hash);
            root = h.finalize().into();
            self.applied.push(DaNotice {
                seq,
                publisher,
                events,
                state_root: root,
            });
        }
        debug_assert_eq!(root, self.log.state_root());
    }

    /// Takes the notices of the envelopes applied since the last call, in sequence order.
    pub fn take_applied(&mut self) -> Vec<DaNotice> {
        std::mem::take(&mut self.applied)
    }

    /// Signs `events` into envelopes of at most [`EVENTS_PER_ENVELOPE`] events with the next
    /// sequence numbers and returns `(seq, encoded envelope)` pairs to gossip. The caller
    /// applies each one locally with [`DaGossip::on_published`] once gossipsub took it.
    ///
    /// # Errors
    /// [`PublishError`] when this node is not the authority, `events` is empty, or an event
    /// is invalid (nothing is signed then).
    pub fn prepare(
        &self,
        events: Vec<DaEvent>,
    ) -> Result<Vec<(DaEnvelope, Vec<u8>)>, PublishError> {
        let signer = self
            .signer
            .as_ref()
            .ok_or_else(|| PublishError::NotAuthority(self.network.to_string()))?;
        if events.is_empty() {
            return Err(PublishError::Empty);
        }
        let mut seq = self.log.applied_seq() + self.log.pending() as u64;
        let mut out = Vec::new();
        for chunk in events.chunks(EVENTS_PER_ENVELOPE) {
            seq += 1;
            let env = DaEnvelope::sign(signer, &self.network, seq, chunk.to_vec())?;
            let bytes = env.to_bytes()?;
            out.push((env, bytes));
        }
        Ok(out)
    }

    /// Applies an envelope this node published itself.
    pub fn on_published(&mut self, env: &DaEnvelope) {
        if let Ok(hash) = env.hash() {
            self.insert(env.clone(), hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsdn_protocols::da::Bytes32;

    fn event(i: u8) -> DaEvent {
        DaEvent::ReplicaAdded {
            chunk_id: Bytes32([i; 32]),
            node_id: format!("node-{i}"),
        }
    }

    #[test]
    fn authority_publishes_and_others_verify() {
        let net = NetworkId::new("devnet").unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        let auth = key.verifying_key().to_bytes();
        let metrics = Metrics::new().unwrap();
        let mut coord = DaGossip::new(net.clone(), Some(auth), key, metrics.clone());
        assert!(coord.is_authority());
        let envs = coord.prepare((0..100).map(event).collect()).unwrap();
        assert_eq!(envs.len(), 2);
        for (env, _) in &envs {
            coord.on_published(env);
        }
        let mut node = DaGossip::new(
            net.clone(),
            Some(auth),
            SigningKey::from_bytes(&[1; 32]),
            metrics.clone(),
        );
        assert!(!node.is_authority());
        assert!(matches!(
            node.prepare(vec![event(1)]),
            Err(PublishError::NotAuthority(_))
        ));
        // Delivered out of order: same root in the end.
        assert_eq!(node.on_message(&envs[1].1), MessageAcceptance::Accept);
        assert_eq!(node.log().events(), 0);
        assert_eq!(node.on_message(&envs[0].1), MessageAcceptance::Accept);
        assert_eq!(node.on_message(&envs[0].1), MessageAcceptance::Ignore);
        assert_eq!(node.log().events(), 100);
        assert_eq!(node.log().state_root(), coord.log().state_root());

        // A rogue coordinator with another key is rejected.
        let rogue_key = SigningKey::from_bytes(&[7; 32]);
        let rogue_auth = rogue_key.verifying_key().to_bytes();
        let rogue = DaGossip::new(net, Some(rogue_auth), rogue_key, metrics);
        let forged = rogue.prepare(vec![event(1)]).unwrap();
        assert_eq!(node.on_message(&forged[0].1), MessageAcceptance::Reject);
        assert_eq!(node.on_message(b"garbage"), MessageAcceptance::Reject);
        assert_eq!(node.rejected(), 2);
        assert_eq!(node.log().events(), 100);
    }

    #[test]
    fn applied_envelopes_become_notices_in_order() {
        let net = NetworkId::new("devnet").unwrap();
        let key = SigningKey::from_bytes(&[9; 32]);
        let auth = key.verifying_key().to_bytes();
        let metrics = Metrics::new().unwrap();
        let mut coord = DaGossip::new(net.clone(), Some(auth), key, metrics.clone());
        let envs = coord
            .prepare((0..200).map(|i| event(i as u8)).collect())
            .unwrap();
        assert_eq!(envs.len(), 4);
        for (env, _) in &envs {
            coord.on_published(env);
        }
        let own = coord.take_applied();
        assert_eq!(own.iter().map(|n| n.seq).collect::<Vec<_>>(), [1, 2, 3, 4]);
        assert_eq!(own[3].state_root, coord.log().state_root());

        let mut node = DaGossip::new(net, Some(auth), SigningKey::from_bytes(&[1; 32]), metrics);
        // 3 and 2 wait for 1; 1 releases all three; 4 follows; a duplicate adds nothing.
        node.on_message(&envs[2].1);
        node.on_message(&envs[1].1);
        assert!(node.take_applied().is_empty());
        node.on_message(&envs[0].1);
        node.on_message(&envs[3].1);
        node.on_message(&envs[3].1);
        let got = node.take_applied();
        assert_eq!(got, own, "same notices, same roots, in order");
        assert_eq!(got[1].events, envs[1].0.events);
        assert_eq!(got[0].publisher, auth);
        assert!(node.take_applied().is_empty());
        let mut subs = DaSubscribers::new(&Metrics::new().unwrap());
        let mut rx = subs.subscribe().unwrap();
        let closed = subs.subscribe().unwrap();
        drop(closed);
        subs.notify(got.clone());
        assert_eq!(subs.senders.len(), 1, "the closed subscriber is removed");
        assert_eq!(rx.try_recv().unwrap().seq, 1);
        for _ in 0..DA_NOTICE_QUEUE {
            subs.notify(vec![got[0].clone()]);
        }
        assert_eq!(
            subs.dropped.get(),
            3,
            "a full subscriber loses notices, never blocks"
        );
    }
}
