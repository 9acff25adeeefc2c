//! Unit tests of [`DaService`] without a swarm: opening and replay (snapshot, corrupt and
//! mismatching files, blobs that fail re-verification), publishing and sealing, submitted
//! and gossiped blobs, backfill responses and the bounds of served ranges.

use std::path::Path;
use std::time::Duration;

use dsdn_protocols::da::{Bytes32, ChainError, DaState};

use super::*;

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

/// The DA authority of every test.
fn auth_key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn auth() -> [u8; 32] {
    auth_key().verifying_key().to_bytes()
}

/// A node key that is not the authority.
fn other_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn peer() -> PeerId {
    PeerId::random()
}

fn da(f: impl FnOnce(&mut DaConfig)) -> DaConfig {
    let mut cfg = DaConfig {
        batch_interval: Duration::from_millis(10),
        ..DaConfig::default()
    };
    f(&mut cfg);
    cfg
}

struct Opened {
    svc: DaService,
    height: watch::Receiver<u64>,
    metrics: Metrics,
}

fn open_with(
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
fn open(dir: &Path) -> Opened {
    open_with(
        Some(dir),
        other_key(),
        Some(auth()),
        da(|_| {}),
        Instant::now(),
    )
}

/// The authority, keeping its log in `dir`.
fn open_authority(dir: &Path, cfg: DaConfig, now: Instant) -> Opened {
    open_with(Some(dir), auth_key(), Some(auth()), cfg, now)
}

/// A chunk, a node and a replica per blob; `salt` makes different chains.
fn events(height: u64, salt: u8) -> Vec<DaEvent> {
    let mut chunk = [salt; 32];
    chunk[..8].copy_from_slice(&height.to_be_bytes());
    vec![
        DaEvent::ChunkDeclared {
            chunk_id: Bytes32(chunk),
            size_bytes: 100 + height,
            owner: Bytes32([7; 32]),
        },
        DaEvent::NodeRegistered {
            node_id: format!("node-{salt}-{height}"),
            zone: format!("zone-{}", height % 3),
            capacity_bytes: 1 << 30,
            class: "regular".into(),
        },
        DaEvent::ReplicaAdded {
            chunk_id: Bytes32(chunk),
            node_id: format!("node-{salt}-{height}"),
        },
    ]
}

/// `n` blobs signed by the authority (encoded), and the state root after each prefix.
struct Chain {
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
        let mut prev = [0; 32];
        for h in 1..=n {
            let v = DaBlob::sign(&auth_key(), &net(), h, prev, 1000 + h, make(h))
                .unwrap()
                .verify(&net(), &auth())
                .unwrap();
            state.apply_blob(&v).unwrap();
            prev = v.hash();
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
        DaBlob::sign(&auth_key(), &net(), h, [0xEE; 32], b.timestamp_ms, b.events)
            .unwrap()
            .to_bytes()
            .unwrap()
    }
}

fn submit_all(svc: &mut DaService, chain: &Chain, heights: impl IntoIterator<Item = u64>) {
    for h in heights {
        let s = svc.submit(chain.blob(h)).unwrap();
        assert_eq!(s.outcome, "applied", "height {h}");
    }
}

fn rejected(metrics: &Metrics, reason: &str) -> u64 {
    metrics.da_blobs_rejected.with_label_values(&[reason]).get()
}

fn sync_requests(metrics: &Metrics, result: &str) -> u64 {
    metrics.da_sync_requests.with_label_values(&[result]).get()
}

fn snapshot_height(dir: &Path) -> Option<u64> {
    let bytes = store::load_snapshot(&dir.join(DA_STATE_FILE), MAX_SNAPSHOT_BYTES).unwrap()?;
    Some(DaState::from_snapshot(&bytes, &net()).unwrap().height())
}

fn files_starting_with(dir: &Path, prefix: &str) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect()
}

// ---- open and replay ------------------------------------------------------------------

#[test]
fn a_reopened_log_replays_to_the_same_state() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(20);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=20);
    let before = o.svc.view();
    assert_eq!((before.height, before.state_root), (20, chain.root(20)));
    assert_eq!(*o.height.borrow(), 20);
    assert_eq!(before.events, 60);
    assert_eq!((before.nodes, before.chunks, before.replicas), (20, 20, 20));
    drop(o);

    let o = open(dir.path());
    let after = o.svc.view();
    assert_eq!(after.height, 20);
    assert_eq!(after.tip_hash, chain.hash(20));
    assert_eq!(after.state_root, before.state_root);
    assert_eq!(after.events, before.events);
    assert_eq!(*o.height.borrow(), 20);
    assert_eq!(o.metrics.da_height.get(), 20);
    assert_eq!(o.metrics.da_events_accepted.get(), 60);
    // The snapshot interval (1000) was not reached: the state came from the log alone.
    assert_eq!(snapshot_height(dir.path()), None);
}

#[test]
fn snapshots_are_written_every_interval_and_on_save() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(12);
    let cfg = da(|c| c.snapshot_interval_blobs = 5);
    let mut o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        cfg.clone(),
        Instant::now(),
    );
    submit_all(&mut o.svc, &chain, 1..=4);
    assert_eq!(snapshot_height(dir.path()), None);
    submit_all(&mut o.svc, &chain, 5..=7);
    assert_eq!(snapshot_height(dir.path()), Some(5));
    submit_all(&mut o.svc, &chain, 8..=10);
    assert_eq!(snapshot_height(dir.path()), Some(10));
    submit_all(&mut o.svc, &chain, 11..=12);
    assert_eq!(snapshot_height(dir.path()), Some(10));
    o.svc.save_snapshot();
    assert_eq!(snapshot_height(dir.path()), Some(12));
    drop(o);

    let o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        cfg,
        Instant::now(),
    );
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (12, chain.root(12)));
}

/// Rewrites stored blob `height` of the (closed) log in `dir` with `bytes`.
fn tamper(dir: &Path, chain: &Chain, height: u64, bytes: &[u8]) {
    let st = DaStore::open(&dir.join(DA_LOG_FILE), &net()).unwrap().store;
    let tip = st.tip();
    st.truncate_from(height).unwrap();
    let mut rows: Vec<(u64, &[u8])> = vec![(height, bytes)];
    rows.extend((height + 1..=tip).map(|h| (h, chain.blob(h))));
    st.append(&rows).unwrap();
}

#[test]
fn a_matching_snapshot_is_used_and_a_bad_stored_blob_truncates_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(10);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=7);
    o.svc.save_snapshot();
    submit_all(&mut o.svc, &chain, 8..=10);
    drop(o);
    // Blob 3, below the snapshot, no longer verifies.
    tamper(dir.path(), &chain, 3, &chain.forged(3));

    // The snapshot matches the log at height 7: only 8..=10 are re-verified.
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (10, chain.root(10)));
    drop(o);

    // Without the snapshot the whole log is replayed: it stops at blob 3 and the log is
    // truncated there.
    std::fs::remove_file(dir.path().join(DA_STATE_FILE)).unwrap();
    let o = open(dir.path());
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (2, chain.root(2)));
    assert_eq!(o.svc.blobs(1, 64).len(), 2);
    drop(o);
    let st = DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
        .unwrap()
        .store;
    assert_eq!(st.tip(), 2, "the blobs from the bad one on were removed");
}

#[test]
fn a_stored_blob_stored_at_the_wrong_height_truncates_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(6);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=6);
    drop(o);
    // A validly signed blob, but of height 5, stored at height 4.
    tamper(dir.path(), &chain, 4, chain.blob(5));
    let o = open(dir.path());
    assert_eq!(o.svc.view().height, 3);
    assert_eq!(o.svc.blobs(1, 64).len(), 3);
}

#[test]
fn a_log_of_another_authority_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(5);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=5);
    drop(o);
    let stranger = SigningKey::from_bytes(&[77; 32]).verifying_key().to_bytes();
    let o = open_with(
        Some(dir.path()),
        other_key(),
        Some(stranger),
        da(|_| {}),
        Instant::now(),
    );
    assert_eq!(o.svc.view().height, 0);
    assert!(o.svc.blobs(1, 64).is_empty());
    drop(o);
    // Truncated for good: the rightful authority finds an empty log too.
    let o = open(dir.path());
    assert_eq!(o.svc.view().height, 0);
}

#[test]
fn a_snapshot_that_does_not_match_the_log_is_ignored() {
    // The log was deleted: the snapshot (height 7) is ahead of the empty log.
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(7);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=7);
    o.svc.save_snapshot();
    drop(o);
    std::fs::remove_file(dir.path().join(DA_LOG_FILE)).unwrap();
    let mut o = open(dir.path());
    let v = o.svc.view();
    assert_eq!(v.height, 0);
    assert_eq!(v.state_root, DaState::new(net()).state_root());
    assert_eq!(
        o.metrics.da_store_corrupt.get(),
        0,
        "a stale snapshot is not corrupt"
    );
    // The log starts again from height 1.
    submit_all(&mut o.svc, &chain, 1..=2);
    assert_eq!(o.svc.view().state_root, chain.root(2));
    drop(o);

    // Another chain's snapshot at a height the log has: ignored, the log is replayed.
    let other = Chain::build(5, |h| events(h, 9));
    let dir_x = tempfile::tempdir().unwrap();
    let mut x = open(dir_x.path());
    submit_all(&mut x.svc, &other, 1..=5);
    x.svc.save_snapshot();
    drop(x);
    let dir_y = tempfile::tempdir().unwrap();
    let mut y = open(dir_y.path());
    submit_all(&mut y.svc, &chain, 1..=7);
    drop(y);
    std::fs::copy(
        dir_x.path().join(DA_STATE_FILE),
        dir_y.path().join(DA_STATE_FILE),
    )
    .unwrap();
    let y = open(dir_y.path());
    let v = y.svc.view();
    assert_eq!((v.height, v.state_root), (7, chain.root(7)));
    assert_ne!(v.state_root, other.root(5));
}

#[test]
fn a_corrupt_snapshot_is_moved_aside_and_the_log_replayed() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(4);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=4);
    drop(o);
    std::fs::write(dir.path().join(DA_STATE_FILE), b"\xff\x00 not a snapshot").unwrap();
    let o = open(dir.path());
    assert_eq!(o.metrics.da_store_corrupt.get(), 1);
    let v = o.svc.view();
    assert_eq!((v.height, v.state_root), (4, chain.root(4)));
    assert!(!dir.path().join(DA_STATE_FILE).exists());
    let aside = files_starting_with(dir.path(), &format!("{DA_STATE_FILE}.corrupt-"));
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(
        std::fs::read(&aside[0]).unwrap(),
        b"\xff\x00 not a snapshot"
    );
}

#[test]
fn without_a_data_directory_the_log_is_in_memory() {
    let chain = Chain::new(3);
    let mut o = open_with(None, other_key(), Some(auth()), da(|_| {}), Instant::now());
    submit_all(&mut o.svc, &chain, 1..=3);
    assert_eq!(o.svc.view().state_root, chain.root(3));
    // Nothing to serve or read back, but the tip is still told.
    assert!(o.svc.blobs(1, 64).is_empty());
    let r = o.svc.serve_sync(&SyncRequest { from: 1, count: 64 });
    assert_eq!((r.tip, r.blobs.len()), (3, 0));
    o.svc.save_snapshot();
}

// ---- publishing -----------------------------------------------------------------------

fn chunk_event(i: u64) -> DaEvent {
    let mut chunk = [1u8; 32];
    chunk[..8].copy_from_slice(&i.to_be_bytes());
    DaEvent::ChunkDeclared {
        chunk_id: Bytes32(chunk),
        size_bytes: i,
        owner: Bytes32([2; 32]),
    }
}

fn publish(
    svc: &mut DaService,
    events: Vec<DaEvent>,
    now: Instant,
) -> oneshot::Receiver<Result<Published, PublishError>> {
    let (tx, rx) = oneshot::channel();
    svc.publish(events, tx, now);
    rx
}

fn gossiped(actions: &[DaAction]) -> Vec<VerifiedBlob> {
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

#[test]
fn publish_refusals() {
    let dir = tempfile::tempdir().unwrap();
    let mut o = open(dir.path());
    let mut rx = publish(&mut o.svc, vec![chunk_event(1)], Instant::now());
    assert!(matches!(rx.try_recv(), Ok(Err(PublishError::NotAuthority(n))) if n == "devnet"));
    assert!(!o.svc.is_authority());

    let dir = tempfile::tempdir().unwrap();
    let now = Instant::now();
    let mut a = open_authority(dir.path(), da(|_| {}), now);
    assert!(a.svc.is_authority());
    let mut rx = publish(&mut a.svc, vec![], now);
    assert!(matches!(rx.try_recv(), Ok(Err(PublishError::Empty))));
    let bad = DaEvent::NodeRegistered {
        node_id: "n".into(),
        zone: "z".into(),
        capacity_bytes: 1,
        class: "mainframe".into(),
    };
    let mut rx = publish(&mut a.svc, vec![chunk_event(1), bad], now);
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(PublishError::Invalid { index: 1, .. }))
    ));
    assert_eq!(
        a.svc.view().queued_events,
        0,
        "a refused request queues nothing"
    );

    // The queue holds MAX_QUEUED_EVENTS events; one more is refused.
    let all: Vec<DaEvent> = (0..MAX_QUEUED_EVENTS as u64).map(chunk_event).collect();
    let mut rx_full = publish(&mut a.svc, all, now);
    assert!(rx_full.try_recv().is_err(), "queued, not answered yet");
    assert_eq!(a.svc.view().queued_events, MAX_QUEUED_EVENTS);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], now);
    assert!(matches!(
        rx.try_recv(),
        Ok(Err(PublishError::QueueFull { queued })) if queued == MAX_QUEUED_EVENTS
    ));
}

#[test]
fn sealing_waits_for_the_publish_grace_when_no_peer_answered() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let grace = Duration::from_secs(5);
    let mut a = open_authority(dir.path(), da(|c| c.publish_grace = grace), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1), chunk_event(2)], t0);
    a.svc.poll(t0 + Duration::from_secs(1));
    assert_eq!(a.svc.view().height, 0, "sealed during the start grace");
    assert!(rx.try_recv().is_err());
    assert!(gossiped(&a.svc.take_actions()).is_empty());
    // During the grace the batch sets no deadline (the housekeeping tick polls again).
    assert_eq!(a.svc.next_deadline(t0 + Duration::from_secs(1)), None);

    a.svc.poll(t0 + grace);
    let published = rx.try_recv().unwrap().unwrap();
    assert_eq!((published.events, published.heights), (2, vec![1]));
    let blobs = gossiped(&a.svc.take_actions());
    assert_eq!(blobs.len(), 1);
    assert_eq!(blobs[0].height(), 1);
    assert_eq!(blobs[0].blob().events, vec![chunk_event(1), chunk_event(2)]);
    let v = a.svc.view();
    assert_eq!((v.height, v.tip_hash, v.chunks), (1, blobs[0].hash(), 2));
    assert_eq!(*a.height.borrow(), 1);
    assert_eq!(a.metrics.da_blobs_published.get(), 1);
    // Sealed blobs are stored like any other.
    assert_eq!(a.svc.blobs(1, 1)[0], *blobs[0].blob());
}

/// Polls at `now`, returns the sync requests the service asks to send.
fn sync_actions(svc: &mut DaService, now: Instant) -> Vec<(PeerId, SyncRequest)> {
    svc.poll(now);
    svc.take_actions()
        .into_iter()
        .filter_map(|a| match a {
            DaAction::Sync(p, r) => Some((p, r)),
            _ => None,
        })
        .collect()
}

fn response(chain: &Chain, tip: u64, heights: impl IntoIterator<Item = u64>) -> SyncResponse {
    SyncResponse {
        tip,
        blobs: heights
            .into_iter()
            .map(|h| serde_bytes::ByteBuf::from(chain.blob(h).to_vec()))
            .collect(),
    }
}

#[test]
fn an_answered_probe_lets_the_authority_seal_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(
        dir.path(),
        da(|c| c.publish_grace = Duration::from_secs(60)),
        t0,
    );
    let p = peer();
    a.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut a.svc, t0);
    assert_eq!(probes, vec![(p, SyncRequest { from: 1, count: 64 })]);
    a.svc
        .on_sync_response(p, &probes[0].1, SyncResponse::default(), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    a.svc.poll(t0 + Duration::from_millis(10));
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![1]);
}

#[test]
fn the_authority_does_not_seal_while_a_peer_reports_a_higher_tip() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(3);
    let t0 = Instant::now();
    let mut a = open_authority(
        dir.path(),
        da(|c| c.publish_grace = Duration::from_secs(1)),
        t0,
    );
    let p = peer();
    a.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut a.svc, t0);
    assert_eq!(probes.len(), 1);
    // The peer has blobs 1..=3 and proves it with the first one (a claimed tip without a
    // delivered blob is not believed).
    a.svc
        .on_sync_response(p, &probes[0].1, response(&chain, 3, 1..=1), t0);
    let mut rx = publish(&mut a.svc, vec![chunk_event(1)], t0);
    let later = t0 + Duration::from_secs(30);
    a.svc.poll(later);
    let v = a.svc.view();
    assert_eq!(v.height, 1, "the authority forked its own log");
    assert_eq!(v.target_height, 3);
    assert!(!v.synced);
    assert!(rx.try_recv().is_err());
    assert!(gossiped(&a.svc.take_actions()).is_empty());

    // Once it has caught up, the queued event is sealed on top of the peer's blobs.
    let req = SyncRequest { from: 2, count: 2 };
    a.svc
        .on_sync_response(p, &req, response(&chain, 3, 2..=3), later);
    assert_eq!(a.svc.view().height, 3);
    a.svc.poll(later);
    assert_eq!(rx.try_recv().unwrap().unwrap().heights, vec![4]);
    let blobs = gossiped(&a.svc.take_actions());
    assert_eq!(blobs.len(), 1);
    assert_eq!(
        (blobs[0].height(), blobs[0].prev_hash()),
        (4, chain.hash(3))
    );
}

#[test]
fn a_publish_spanning_several_blobs_is_answered_with_every_height() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut a = open_authority(
        dir.path(),
        da(|c| {
            c.batch_max_events = 2;
            c.publish_grace = Duration::ZERO;
        }),
        t0,
    );
    let mut rx = publish(&mut a.svc, (0..5).map(chunk_event).collect(), t0);
    // Full batches are sealed at once; the remainder waits for batch_interval.
    a.svc.poll(t0);
    assert_eq!(a.svc.view().height, 2);
    assert!(
        rx.try_recv().is_err(),
        "answered before all events were sealed"
    );
    a.svc.poll(t0 + Duration::from_millis(10));
    let published = rx.try_recv().unwrap().unwrap();
    assert_eq!((published.events, published.heights), (5, vec![1, 2, 3]));
    // Two requests sharing a blob both get its height.
    let t1 = t0 + Duration::from_secs(1);
    let mut rx1 = publish(&mut a.svc, vec![chunk_event(7)], t1);
    let mut rx2 = publish(&mut a.svc, vec![chunk_event(8)], t1);
    a.svc.poll(t1);
    assert_eq!(rx1.try_recv().unwrap().unwrap().heights, vec![4]);
    assert_eq!(rx2.try_recv().unwrap().unwrap().heights, vec![4]);
    let heights: Vec<u64> = gossiped(&a.svc.take_actions())
        .iter()
        .map(VerifiedBlob::height)
        .collect();
    assert_eq!(heights, vec![1, 2, 3, 4]);
    assert_eq!(a.svc.view().queued_events, 0);
}

// ---- submitted and gossiped blobs -----------------------------------------------------

#[test]
fn submit_outcomes() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(3);
    let mut o = open(dir.path());
    let s = o.svc.submit(chain.blob(2)).unwrap();
    assert_eq!((s.height, s.outcome), (2, "held"));
    assert_eq!(
        gossiped(&o.svc.take_actions()).len(),
        1,
        "held blobs are relayed"
    );
    assert_eq!(o.svc.view().pending, 1);
    assert_eq!(o.metrics.da_pending_blobs.get(), 1);
    assert_eq!(o.svc.submit(chain.blob(2)).unwrap().outcome, "duplicate");
    assert!(
        o.svc.take_actions().is_empty(),
        "duplicates are not relayed"
    );

    let s = o.svc.submit(chain.blob(1)).unwrap();
    assert_eq!((s.height, s.outcome), (1, "applied"));
    assert_eq!(gossiped(&o.svc.take_actions()).len(), 1);
    let v = o.svc.view();
    assert_eq!((v.height, v.pending, v.state_root), (2, 0, chain.root(2)));
    assert_eq!(o.metrics.da_pending_blobs.get(), 0);
    assert_eq!(o.svc.submit(chain.blob(1)).unwrap().outcome, "duplicate");

    let far = DaBlob::sign(&auth_key(), &net(), 2000, [1; 32], 5000, events(2000, 0))
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(matches!(
        o.svc.submit(&far),
        Err(SubmitError::TooFarAhead {
            height: 2000,
            local: 2
        })
    ));
    assert!(matches!(
        o.svc.submit(&chain.forged(3)),
        Err(SubmitError::Invalid(DaError::BadSignature))
    ));
    assert!(matches!(
        o.svc.submit(&chain.unlinked(3)),
        Err(SubmitError::Chain(ChainError::PrevHashMismatch {
            height: 3
        }))
    ));
    assert!(matches!(
        o.svc.submit(b"\x01\x02 garbage"),
        Err(SubmitError::Invalid(DaError::Malformed(_)))
    ));
    assert!(
        o.svc.take_actions().is_empty(),
        "refused blobs are not relayed"
    );
    assert_eq!(rejected(&o.metrics, "bad_signature"), 1);
    assert_eq!(rejected(&o.metrics, "prev_hash_mismatch"), 1);
    assert_eq!(rejected(&o.metrics, "malformed"), 1);
    assert_eq!(o.svc.view().rejected, 3);
    // Nothing invalid was stored.
    let v = o.svc.view();
    assert_eq!((v.height, v.pending), (2, 0));
    drop(o);
    let o = open(dir.path());
    assert_eq!(o.svc.view().tip_hash, chain.hash(2));

    // Without an authority nothing verifies.
    let mut n = open_with(None, other_key(), None, da(|_| {}), Instant::now());
    assert!(matches!(
        n.svc.submit(chain.blob(1)),
        Err(SubmitError::NoAuthority)
    ));
}

#[test]
fn gossip_verdicts() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(4);
    let mut o = open(dir.path());
    let p = peer();
    assert_eq!(o.svc.on_gossip(p, chain.blob(1)), MessageAcceptance::Accept);
    assert_eq!(o.svc.on_gossip(p, chain.blob(3)), MessageAcceptance::Accept);
    assert_eq!(o.svc.view().pending, 1);
    assert_eq!(o.svc.on_gossip(p, chain.blob(3)), MessageAcceptance::Ignore);
    assert_eq!(o.svc.on_gossip(p, chain.blob(1)), MessageAcceptance::Ignore);
    assert_eq!(
        o.svc.on_gossip(p, &chain.forged(2)),
        MessageAcceptance::Reject
    );
    assert_eq!(
        o.svc.on_gossip(p, &chain.unlinked(2)),
        MessageAcceptance::Reject
    );
    assert_eq!(o.svc.view().height, 1);
    assert_eq!(o.svc.on_gossip(p, chain.blob(2)), MessageAcceptance::Accept);
    assert_eq!(o.svc.view().height, 3, "the held blob was released");
    // A gossiped blob does not ban its source (gossipsub scores it): no Penalize.
    assert!(!o
        .svc
        .take_actions()
        .iter()
        .any(|a| matches!(a, DaAction::Penalize(..))));
    let mut no_auth = open_with(None, other_key(), None, da(|_| {}), Instant::now());
    assert_eq!(
        no_auth.svc.on_gossip(p, chain.blob(1)),
        MessageAcceptance::Reject
    );
}

#[test]
fn notices_follow_applied_blobs_when_wanted() {
    let chain = Chain::new(3);
    let mut o = open_with(None, other_key(), Some(auth()), da(|_| {}), Instant::now());
    o.svc.submit(chain.blob(1)).unwrap();
    assert!(o.svc.take_notices().is_empty(), "nobody listens");
    o.svc.set_want_notices(true);
    o.svc.submit(chain.blob(3)).unwrap();
    assert!(
        o.svc.take_notices().is_empty(),
        "held blobs are not notified"
    );
    o.svc.submit(chain.blob(2)).unwrap();
    let n = o.svc.take_notices();
    assert_eq!(n.iter().map(|n| n.height).collect::<Vec<_>>(), vec![2, 3]);
    assert_eq!(n[0].prev_hash, chain.hash(1));
    assert_eq!(n[1].hash, chain.hash(3));
    assert!(n.iter().all(|n| n.state_root == chain.root(3)));
}

// ---- backfill -------------------------------------------------------------------------

fn penalized(actions: &[DaAction]) -> Vec<PeerId> {
    actions
        .iter()
        .filter_map(|a| match a {
            DaAction::Penalize(p, "da_invalid_blob") => Some(*p),
            _ => None,
        })
        .collect()
}

#[test]
fn a_sync_response_is_applied_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(100);
    let t0 = Instant::now();
    let mut o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        da(|c| c.sync_chunk_blobs = 40),
        t0,
    );
    let p = peer();
    o.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut o.svc, t0);
    assert_eq!(probes, vec![(p, SyncRequest { from: 1, count: 40 })]);
    o.svc
        .on_sync_response(p, &probes[0].1, response(&chain, 100, 1..=40), t0);
    assert_eq!(o.svc.view().height, 40);
    assert_eq!(o.svc.view().target_height, 100);
    assert_eq!(sync_requests(&o.metrics, "ok"), 1);
    assert_eq!(o.metrics.da_sync_blobs_received.get(), 40);
    // The rest is asked in chunks.
    let next = sync_actions(&mut o.svc, t0);
    assert_eq!(
        next,
        vec![(
            p,
            SyncRequest {
                from: 41,
                count: 40
            }
        )]
    );
}

#[test]
fn an_invalid_blob_in_a_sync_response_penalises_the_peer_and_is_not_stored() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(8);
    let t0 = Instant::now();
    let mut o = open(dir.path());
    let (p1, p2, p3) = (peer(), peer(), peer());
    let req = SyncRequest { from: 1, count: 5 };

    // Bad signature at height 3: 1 and 2 are kept.
    let mut r = response(&chain, 8, 1..=2);
    r.blobs.push(serde_bytes::ByteBuf::from(chain.forged(3)));
    r.blobs.extend(response(&chain, 8, 4..=5).blobs);
    o.svc.on_sync_response(p1, &req, r, t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p1]);
    assert_eq!(rejected(&o.metrics, "bad_signature"), 1);
    let v = o.svc.view();
    assert_eq!((v.height, v.pending), (2, 0));

    // A blob breaking the chain.
    let req = SyncRequest { from: 3, count: 2 };
    let mut r = response(&chain, 8, []);
    r.blobs.push(serde_bytes::ByteBuf::from(chain.unlinked(3)));
    o.svc.on_sync_response(p2, &req, r, t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p2]);
    assert_eq!(rejected(&o.metrics, "prev_hash_mismatch"), 1);

    // Valid blobs at heights other than the ones asked for.
    o.svc
        .on_sync_response(p3, &req, response(&chain, 8, 4..=5), t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p3]);
    assert_eq!(rejected(&o.metrics, "wrong_height"), 1);

    // More blobs than asked for (fails SyncResponse::validated).
    let p4 = peer();
    o.svc
        .on_sync_response(p4, &req, response(&chain, 8, 3..=5), t0);
    assert_eq!(penalized(&o.svc.take_actions()), vec![p4]);
    assert_eq!(rejected(&o.metrics, "malformed"), 1);

    assert_eq!(sync_requests(&o.metrics, "invalid"), 4);
    assert_eq!(o.svc.view().height, 2);
    assert_eq!(o.svc.blobs(1, 64).len(), 2, "nothing invalid was stored");
    // An honest answer still completes the log.
    let p5 = peer();
    o.svc.on_sync_response(
        p5,
        &SyncRequest { from: 3, count: 6 },
        response(&chain, 8, 3..=8),
        t0,
    );
    assert!(penalized(&o.svc.take_actions()).is_empty());
    assert_eq!(o.svc.view().state_root, chain.root(8));
}

#[test]
fn a_stalled_request_is_counted_and_moved_to_another_peer() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let timeout = Duration::from_secs(2);
    let mut o = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        da(|c| c.sync_request_timeout = timeout),
        t0,
    );
    let (slow, fast) = (peer(), peer());
    o.svc.peer_connected(slow, t0);
    let first = sync_actions(&mut o.svc, t0);
    assert_eq!(first, vec![(slow, SyncRequest { from: 1, count: 64 })]);
    o.svc.peer_connected(fast, t0);
    let second = sync_actions(&mut o.svc, t0);
    assert_eq!(
        second,
        vec![(
            fast,
            SyncRequest {
                from: 65,
                count: 64
            }
        )]
    );
    // The fast peer answers; its blobs are held behind the slow peer's range.
    let chain = Chain::new(100);
    o.svc
        .on_sync_response(fast, &second[0].1, response(&chain, 100, 65..=100), t0);
    assert_eq!(o.svc.view().pending, 36);
    assert!(
        sync_actions(&mut o.svc, t0).is_empty(),
        "nothing else to ask"
    );
    assert_eq!(sync_requests(&o.metrics, "stalled"), 0);
    let later = sync_actions(&mut o.svc, t0 + timeout);
    assert_eq!(sync_requests(&o.metrics, "stalled"), 1);
    assert_eq!(later, vec![(fast, SyncRequest { from: 1, count: 64 })]);
    o.svc.on_sync_response(
        fast,
        &later[0].1,
        response(&chain, 100, 1..=64),
        t0 + timeout,
    );
    let v = o.svc.view();
    assert_eq!((v.height, v.pending, v.synced), (100, 0, true));
    assert_eq!(v.state_root, chain.root(100));
    // A failed request (the stream broke) is counted apart.
    o.svc
        .on_sync_failure(slow, &SyncRequest { from: 1, count: 64 }, t0 + timeout);
    assert_eq!(sync_requests(&o.metrics, "failed"), 1);
}

// ---- serving ranges -------------------------------------------------------------------

#[test]
fn served_ranges_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let chain = Chain::new(100);
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=100);
    let serve = |from, count| o.svc.serve_sync(&SyncRequest { from, count });

    let r = serve(1, 1000);
    assert_eq!((r.tip, r.blobs.len()), (100, MAX_SYNC_BLOBS as usize));
    assert!(r
        .blobs
        .iter()
        .zip(&chain.encoded)
        .all(|(a, b)| a.as_ref() == b.as_slice()));
    let r = serve(90, 64);
    assert_eq!(r.blobs.len(), 11);
    assert_eq!(r.blobs[0].as_ref(), chain.blob(90));
    for (from, count) in [(101, 5), (u64::MAX, 64), (0, 5), (1, 0)] {
        let r = serve(from, count);
        assert_eq!(
            (r.tip, r.blobs.len()),
            (100, 0),
            "from {from} count {count}"
        );
    }
    assert_eq!(o.metrics.da_sync_blobs_served.get(), 64 + 11);
}

#[test]
fn served_ranges_stay_under_the_response_cap() {
    // Blobs of about 200 KB: 24 of them exceed the 4 MiB response payload.
    let big = |h: u64| -> Vec<DaEvent> {
        (0..640)
            .map(|i| DaEvent::NodeRegistered {
                node_id: format!("{h:08}-{i:04}-{}", "n".repeat(110)),
                zone: "z".repeat(128),
                capacity_bytes: u64::MAX,
                class: "datacenter".into(),
            })
            .collect()
    };
    let chain = Chain::build(24, big);
    let total: usize = chain.encoded.iter().map(Vec::len).sum();
    assert!(total > MAX_SYNC_PAYLOAD_BYTES, "{total}");
    let dir = tempfile::tempdir().unwrap();
    let mut o = open(dir.path());
    submit_all(&mut o.svc, &chain, 1..=24);
    let req = SyncRequest { from: 1, count: 64 };
    let r = o.svc.serve_sync(&req);
    let bytes: usize = r.blobs.iter().map(|b| b.len()).sum();
    assert!(
        !r.blobs.is_empty() && r.blobs.len() < 24,
        "{}",
        r.blobs.len()
    );
    assert!(bytes <= MAX_SYNC_PAYLOAD_BYTES, "{bytes}");
    // The next blob would not have fitted, and the whole answer encodes under the cap.
    assert!(bytes + chain.blob(r.blobs.len() as u64 + 1).len() > MAX_SYNC_PAYLOAD_BYTES);
    assert!(r.to_bytes().is_ok());
    let n = r.blobs.len();
    let r = r.validated(&req).unwrap();
    assert_eq!(r.blobs.len(), n);
    // A requester applies it.
    let dir2 = tempfile::tempdir().unwrap();
    let mut j = open(dir2.path());
    j.svc.on_sync_response(peer(), &req, r, Instant::now());
    assert_eq!(j.svc.view().height, n as u64);
    assert_eq!(j.svc.view().state_root, chain.root(n as u64));
}
