//! Unit tests of [`DaService`] without a swarm: opening and replay (the stored state, its
//! rebuild, blobs that fail re-verification, proofs), publishing and sealing, submitted
//! and gossiped blobs, backfill responses and the bounds of served ranges.

use std::path::Path;
use std::time::Duration;

use dsdn_protocols::da::{empty_root, Bytes32, ChainError, DaState};

use super::*;

mod backfill;
mod committee;
mod degraded;
mod epochs;
mod forks;
mod forwarding;
mod open;
mod proposer;
mod publishing;
mod selection;
mod state_sync;
mod submitted;
mod writer;

pub(super) fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

/// The DA authority of every test.
pub(super) fn auth_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

pub(super) fn auth() -> [u8; 32] {
    auth_key().verifying_key().to_bytes()
}

/// A node key that is not the authority.
pub(super) fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

/// The libp2p PeerId of the node key `key`.
pub(super) fn peer_of(key: &SigningKey) -> PeerId {
    libp2p::identity::Keypair::ed25519_from_bytes(key.to_bytes())
        .unwrap()
        .public()
        .to_peer_id()
}

pub(super) fn peer() -> PeerId {
    PeerId::random()
}

/// `da.proof_history_heights` of the test services: small, so that tests see pruning.
pub(super) const TEST_HISTORY: u64 = 8;

pub(super) fn da(f: impl FnOnce(&mut DaConfig)) -> DaConfig {
    let mut cfg = DaConfig {
        batch_interval: Duration::from_millis(10),
        proof_history_heights: TEST_HISTORY,
        ..DaConfig::default()
    };
    f(&mut cfg);
    cfg
}

pub(super) struct Opened {
    svc: DaService,
    height: watch::Receiver<u64>,
    metrics: Metrics,
}

pub(super) fn open_with(
    dir: Option<&Path>,
    key: SigningKey,
    authority: Option<[u8; 32]>,
    cfg: DaConfig,
    now: Instant,
) -> Opened {
    let metrics = Metrics::new().unwrap();
    let (svc, height) = DaService::open(
        DaServiceConfig {
            network: net(),
            authority,
            key,
            dir: dir.map(Path::to_path_buf),
            da: cfg,
        },
        metrics.clone(),
        now,
    )
    .unwrap();
    Opened {
        svc,
        height,
        metrics,
    }
}

/// A node (not the authority) keeping its log in `dir`.
pub(super) fn open(dir: &Path) -> Opened {
    open_with(
        Some(dir),
        other_key(),
        Some(auth()),
        da(|_| {}),
        Instant::now(),
    )
}

/// The authority, keeping its log in `dir`.
pub(super) fn open_authority(dir: &Path, cfg: DaConfig, now: Instant) -> Opened {
    open_with(Some(dir), auth_key(), Some(auth()), cfg, now)
}

/// A chunk, a node and a replica per blob; `salt` makes different chains.
/// A PeerId (base58) made from `seed`: a valid `node_id` for DA events.
pub(super) fn test_node_id(seed: &[u8]) -> String {
    let mut secret = [0x5a; 32];
    for (s, b) in secret.iter_mut().zip(seed) {
        *s ^= b;
    }
    libp2p::identity::Keypair::ed25519_from_bytes(secret)
        .expect("32 bytes")
        .public()
        .to_peer_id()
        .to_base58()
}

pub(super) fn events(height: u64, salt: u8) -> Vec<DaEvent> {
    let mut chunk = [salt; 32];
    chunk[..8].copy_from_slice(&height.to_be_bytes());
    let node_id = test_node_id(&chunk[..9]);
    vec![
        DaEvent::ChunkDeclared {
            chunk_id: Bytes32(chunk),
            size_bytes: 100 + height,
            owner: Bytes32([7; 32]),
        },
        DaEvent::NodeRegistered {
            node_id: node_id.clone(),
            zone: format!("zone-{}", height % 3),
            capacity_bytes: 1 << 30,
            class: "regular".into(),
        },
        DaEvent::ReplicaAdded {
            chunk_id: Bytes32(chunk),
            node_id,
        },
    ]
}

/// `n` blobs signed by the authority (encoded), and the state root after each prefix.
pub(super) struct Chain {
    encoded: Vec<Vec<u8>>,
    hashes: Vec<[u8; 32]>,
    roots: Vec<[u8; 32]>,
}

impl Chain {
    fn build(n: u64, make: impl Fn(u64) -> Vec<DaEvent>) -> Chain {
        let mut state = DaState::new(net());
        let mut c = Chain {
            encoded: Vec::new(),
            hashes: Vec::new(),
            roots: Vec::new(),
        };
        for h in 1..=n {
            let v = state
                .seal_next(&auth_key(), 1000 + h, make(h))
                .unwrap()
                .verify(&net(), &auth())
                .unwrap();
            state.apply_blob(&v).unwrap();
            let prev = v.hash();
            c.hashes.push(prev);
            c.encoded.push(v.encoded().to_vec());
            c.roots.push(state.state_root());
        }
        c
    }

    fn new(n: u64) -> Chain {
        Chain::build(n, |h| events(h, 0))
    }

    fn blob(&self, h: u64) -> &[u8] {
        &self.encoded[h as usize - 1]
    }

    fn root(&self, h: u64) -> [u8; 32] {
        self.roots[h as usize - 1]
    }

    fn hash(&self, h: u64) -> [u8; 32] {
        self.hashes[h as usize - 1]
    }

    /// Blob `h` signed by a key that is not the authority.
    fn forged(&self, h: u64) -> Vec<u8> {
        let b = DaBlob::from_bytes(self.blob(h)).unwrap();
        DaBlob::sign(
            &other_key(),
            &net(),
            h,
            b.prev_hash.0,
            b.prev_state_root.0,
            b.timestamp_ms,
            b.events,
        )
        .unwrap()
        .to_bytes()
        .unwrap()
    }

    /// Blob `h` validly signed but linked to a wrong predecessor.
    fn unlinked(&self, h: u64) -> Vec<u8> {
        let b = DaBlob::from_bytes(self.blob(h)).unwrap();
        DaBlob::sign(
            &auth_key(),
            &net(),
            h,
            [0xEE; 32],
            b.prev_state_root.0,
            b.timestamp_ms,
            b.events,
        )
        .unwrap()
        .to_bytes()
        .unwrap()
    }
}

/// Submits `heights` (each must apply), then waits until the writer made them durable.
pub(super) fn submit_all(
    svc: &mut DaService,
    chain: &Chain,
    heights: impl IntoIterator<Item = u64>,
) {
    for h in heights {
        let s = svc.submit(chain.blob(h)).unwrap();
        assert_eq!(s.outcome, "applied", "height {h}");
    }
    // The log is written by the writer thread: wait until it is durable.
    svc.flush();
}

/// Answers the confirmation requests among the service's actions as peers that hold the
/// service's own blobs would (issue 13 §4); returns the other actions, in order.
pub(super) fn confirm_own(svc: &mut DaService, now: Instant) -> Vec<DaAction> {
    let mut rest = Vec::new();
    for action in svc.take_actions() {
        match action {
            DaAction::Confirm(peer, request) => {
                let blobs = svc
                    .read_blob(request.from)
                    .into_iter()
                    .map(serde_bytes::ByteBuf::from)
                    .collect();
                let response = SyncResponse {
                    tip: svc.view().height,
                    blobs,
                };
                svc.on_confirm_response(peer, &request, Some(response), now);
            }
            other => rest.push(other),
        }
    }
    rest
}

pub(super) fn rejected(metrics: &Metrics, reason: &str) -> u64 {
    metrics.da_blobs_rejected.with_label_values(&[reason]).get()
}

pub(super) fn sync_requests(metrics: &Metrics, result: &str) -> u64 {
    metrics.da_sync_requests.with_label_values(&[result]).get()
}

/// Rewrites stored blob `height` of the (closed) log in `dir` with `bytes`.
pub(super) fn tamper(dir: &Path, chain: &Chain, height: u64, bytes: &[u8]) {
    let st = DaStore::open(&dir.join(DA_LOG_FILE), &net()).unwrap().store;
    let tip = st.tip();
    st.truncate_from(height).unwrap();
    let mut rows: Vec<(u64, &[u8])> = vec![(height, bytes)];
    rows.extend((height + 1..=tip).map(|h| (h, chain.blob(h))));
    st.append(&rows).unwrap();
}

pub(super) fn chunk_event(i: u64) -> DaEvent {
    let mut chunk = [1u8; 32];
    chunk[..8].copy_from_slice(&i.to_be_bytes());
    DaEvent::ChunkDeclared {
        chunk_id: Bytes32(chunk),
        size_bytes: i,
        owner: Bytes32([2; 32]),
    }
}

pub(super) fn publish(
    svc: &mut DaService,
    events: Vec<DaEvent>,
    now: Instant,
) -> oneshot::Receiver<Result<Published, PublishError>> {
    let (tx, rx) = oneshot::channel();
    svc.publish(events, tx, now);
    rx
}

pub(super) fn gossiped(actions: &[DaAction]) -> Vec<VerifiedBlob> {
    actions
        .iter()
        .filter_map(|a| match a {
            DaAction::Gossip(bytes) => {
                Some(DaBlob::decode_verified(bytes, &net(), &auth()).unwrap())
            }
            _ => None,
        })
        .collect()
}

/// Polls at `now`, returns the sync requests the service asks to send.
pub(super) fn sync_actions(svc: &mut DaService, now: Instant) -> Vec<(PeerId, SyncRequest)> {
    svc.poll(now);
    svc.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            DaAction::Sync(p, r) => Some((p, r)),
            _ => None,
        })
        .collect()
}

pub(super) fn response(
    chain: &Chain,
    tip: u64,
    heights: impl IntoIterator<Item = u64>,
) -> SyncResponse {
    SyncResponse {
        tip,
        blobs: heights
            .into_iter()
            .map(|h| serde_bytes::ByteBuf::from(chain.blob(h).to_vec()))
            .collect(),
    }
}

pub(super) fn penalized(actions: &[DaAction]) -> Vec<PeerId> {
    actions
        .iter()
        .filter_map(|a| match a {
            DaAction::Penalize(p, "da_invalid_blob") => Some(*p),
            _ => None,
        })
        .collect()
}
