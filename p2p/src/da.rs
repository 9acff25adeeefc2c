//! DA events over gossipsub: validation of received envelopes and publishing.
//!
//! One topic per network (`dsdn/<network>/da-events/1`) carries [`DaEnvelope`]s. A received
//! envelope is decoded under the size cap, checked with [`DaEnvelope::verify`] (version,
//! network, bounds, publisher == the configured DA authority, signature) and only then
//! accepted for forwarding; anything else is rejected, which makes gossipsub penalise the
//! peer that sent it. Accepted envelopes enter the in-order [`DaLog`].

use dsdn_protocols::da::{DaEnvelope, DaError, DaEvent, DaLog, InsertOutcome};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;
use libp2p::gossipsub::MessageAcceptance;

use crate::metrics::Metrics;

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

/// The DA state of one node.
pub struct DaGossip {
    network: NetworkId,
    authority: Option<[u8; 32]>,
    signer: Option<SigningKey>,
    log: DaLog,
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
            Ok((env, hash)) => self.insert(&env, hash),
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

    fn insert(&mut self, env: &DaEnvelope, hash: [u8; 32]) -> MessageAcceptance {
        let before = self.log.events();
        match self.log.insert(env.seq, hash, env.events.len()) {
            InsertOutcome::Applied(_) | InsertOutcome::Buffered => {
                self.metrics
                    .da_events_accepted
                    .inc_by(self.log.events() - before);
                MessageAcceptance::Accept
            }
            InsertOutcome::Duplicate | InsertOutcome::TooFarAhead => MessageAcceptance::Ignore,
        }
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
            self.insert(env, hash);
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
}
