//! The restore worker: a state restored in many chunks (the next fetched while the last is
//! written) equals the source's at the checkpoint; a tampered chunk fails the attempt, and
//! after the abort the next attempt restores the log.

use std::path::Path;

use dsdn_protocols::da::{DaBlob, DaEvent};
use ed25519_dalek::SigningKey;

use super::*;
use crate::da::store::OfflineState;

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

/// A log of `blobs` blobs of 3 registrations each at `path`.
fn source(path: &Path, blobs: u64) {
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut s = OfflineState::open(path, &net()).unwrap();
    for h in 1..=blobs {
        let events = (0..3)
            .map(|i| DaEvent::NodeRegistered {
                node_id: format!("n{h}-{i}"),
                zone: format!("z{}", h % 3),
                capacity_bytes: h,
                class: "regular".into(),
            })
            .collect();
        let b = s
            .state()
            .seal_next(&key, h, events)
            .unwrap()
            .verify(&net(), &key.verifying_key().to_bytes())
            .unwrap();
        s.apply(&b).unwrap();
    }
    s.flush().unwrap();
}

fn open(path: &Path) -> Arc<DaStore> {
    Arc::new(DaStore::open(path, &net()).unwrap().store)
}

/// Runs the worker against `source`'s chunks of `per` entries, the third one tampered with
/// when `tamper`; the outcome and the chunks sent.
fn run(
    source: &Arc<DaStore>,
    target: &Arc<DaStore>,
    cp: StateHeader,
    per: u32,
    tamper: bool,
) -> (Result<u64, String>, usize) {
    let (chunk_tx, chunk_rx) = mpsc::channel(1);
    let (step_tx, mut step_rx) = mpsc::channel(1);
    let t = Arc::clone(target);
    let worker =
        std::thread::spawn(move || restorer(&t, cp, (chunk_rx, &step_tx), None, (per, 64 << 20)));
    let mut sent = 0;
    let outcome = loop {
        match step_rx.blocking_recv() {
            Some(Step::Next(request)) => {
                let StateChunkResponse::Chunk(mut chunk) = source.state_chunk(&request) else {
                    panic!("no chunk for {request:?}");
                };
                if tamper && sent == 2 {
                    chunk.entries.swap(0, 1);
                }
                sent += 1;
                chunk_tx.blocking_send(chunk).unwrap();
            }
            Some(Step::Done(entries)) => break Ok(entries),
            Some(Step::Failed(e)) => break Err(e),
            None => break Err("the worker stopped".into()),
        }
    };
    drop((chunk_tx, step_rx));
    worker.join().unwrap();
    (outcome, sent)
}

#[test]
fn the_worker_restores_in_many_chunks_and_a_tampered_chunk_fails_the_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let (a_path, b_path) = (dir.path().join("a.redb"), dir.path().join("b.redb"));
    source(&a_path, 30);
    let a = open(&a_path);
    let next = DaBlob::from_bytes(&a.get(30).unwrap().unwrap()).unwrap();
    let cp = StateHeader {
        height: 29,
        tip_hash: next.prev_hash,
        root: next.prev_state_root,
        ..StateHeader::genesis()
    };
    let b = open(&b_path);
    let (outcome, _) = run(&a, &b, cp, 7, true);
    let e = outcome.unwrap_err();
    assert!(e.contains("refused"), "{e}");
    b.restore_abort().unwrap();
    assert_eq!((b.base(), b.tip(), b.state_tip()), (0, 0, 0));
    let (outcome, sent) = run(&a, &b, cp, 7, false);
    let entries = outcome.unwrap();
    assert!(sent > 5, "{sent} chunks");
    assert!(entries > 30, "{entries} entries");
    assert_eq!((b.base(), b.tip(), b.state_tip()), (29, 29, 29));
    assert_eq!(b.state_root_at(29).unwrap(), Some(cp.root.0));
    let header = b.state_header().unwrap().unwrap();
    let source_header = a.state_header().unwrap().unwrap();
    assert_eq!(
        header.nodes,
        source_header.nodes - 3,
        "30th blob: 3 nodes more"
    );
}
