//! The DA log on a file system that is full (issue 14 §2): every append that returned `Ok`
//! must still be there after the writer's reopen and after a fresh open (a small tmpfs is
//! mounted for the test: needs root, skipped with a message otherwise); and the errors of
//! state commits out of order, which name the state, not a blob.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

/// A tmpfs of `size` mounted on a fresh temporary directory, unmounted when dropped.
struct Tmpfs {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

impl Tmpfs {
    /// `None` when not root or the mount fails (the test is then skipped).
    fn mount(size: &str) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().ok()?;
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            return None;
        }
        let dir = tempfile::tempdir().ok()?;
        let path = dir.path().join("mnt");
        std::fs::create_dir(&path).ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&path)
            .status()
            .ok()?
            .success();
        ok.then_some(Tmpfs { _dir: dir, path })
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes zeros to `path` until not one more byte fits.
fn fill_to_the_brim(path: &Path) {
    let mut f = std::fs::File::create(path).unwrap();
    let mut chunk = 1usize << 20;
    let zeros = vec![0u8; chunk];
    while chunk > 0 {
        match f.write(&zeros[..chunk]) {
            Ok(0) => chunk /= 2,
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(28) => chunk /= 2,
            Err(e) => panic!("filling: {e}"),
        }
    }
}

/// 256 registrations of new nodes for blob `h` (each a new key in the state).
fn events(h: u64) -> Vec<dsdn_protocols::da::DaEvent> {
    (0..256)
        .map(|i| dsdn_protocols::da::DaEvent::NodeRegistered {
            node_id: format!("node-{h}-{i}-with-a-longer-name-for-bigger-keys"),
            zone: format!("zone-{}", i % 7),
            capacity_bytes: h * 1000 + i,
            class: "regular".into(),
        })
        .collect()
}

/// The DA writer's and service's pattern with the state: each blob goes with the state
/// commits not yet stored in one transaction; after a failed append the file is reopened
/// (as the writer does) and the retry appends the kept blob alone (`service/degraded.rs`:
/// its state commit is made when it is applied again), the state following with the next
/// blob. Such a smaller retry can fit in pages the file already holds, so some appends
/// succeed on the full disk: every acknowledged height (and the stored state) must survive
/// every reopen and a fresh open.
#[test]
fn blobs_with_state_acknowledged_on_a_full_disk_survive_reopens() {
    use dsdn_protocols::da::DaState;
    use ed25519_dalek::SigningKey;
    let Some(fs) = Tmpfs::mount("8m") else {
        eprintln!("[full-disk store] skipped: mounting a tmpfs needs root");
        return;
    };
    let path = fs.path.join(DA_LOG_FILE);
    let store = Arc::new(DaStore::open(&path, &net()).unwrap().store);
    let (stored, overlay) = StoredState::open(Arc::clone(&store)).unwrap();
    let mut state = DaState::with_store(net(), Box::new(stored));
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut acked = 0u64;
    let (mut oks, mut fails, mut retried_ok) = (0, 0, 0);
    let mut pending: Vec<Arc<StateCommit>> = Vec::new();
    for h in 1..=80u64 {
        let blob = state
            .seal_next(&key, h, events(h))
            .unwrap()
            .verify(&net(), &key.verifying_key().to_bytes())
            .unwrap();
        state.apply_blob(&blob).unwrap();
        pending.extend(overlay_lock(&overlay).take_outbox());
        let mut stored_it = false;
        for attempt in 0..8 {
            if !store.is_open() && store.reopen().is_err() {
                continue;
            }
            assert!(
                store.tip() >= acked,
                "height {h} attempt {attempt}: tip {} below the acknowledged {acked}",
                store.tip()
            );
            let commits: &[Arc<StateCommit>] = if attempt == 0 { &pending } else { &[] };
            match store.append_with_state(&[(h, blob.encoded())], commits) {
                Ok(()) => {
                    acked = h;
                    oks += 1;
                    retried_ok += u32::from(attempt > 0);
                    stored_it = true;
                    break;
                }
                Err(e) => {
                    if fails == 0 {
                        eprintln!("[full-disk store] first failure at {h}: {e}");
                    }
                    fails += 1;
                    let _ = store.reopen();
                    if store.is_open() {
                        assert!(
                            store.tip() >= acked,
                            "height {h} attempt {attempt}: after the reopen the tip is {}, \
                             but {acked} was acknowledged",
                            store.tip()
                        );
                    }
                }
            }
        }
        if !stored_it {
            break;
        }
        let state_tip = store.state_tip();
        pending.retain(|c| c.header.height > state_tip);
        overlay_lock(&overlay).release(state_tip);
        if h == 3 {
            fill_to_the_brim(&fs.path.join("filler"));
        }
    }
    eprintln!(
        "[full-disk store] {oks} appends ok ({retried_ok} retries), {fails} failed, \
         acknowledged {acked}"
    );
    drop(state);
    let store = Arc::try_unwrap(store).expect("one handle");
    drop(store);
    let store = DaStore::open(&path, &net()).unwrap().store;
    assert!(
        store.tip() >= acked,
        "fresh open: tip {} < {acked}",
        store.tip()
    );
    let blob = store.get(acked).unwrap().expect("the acknowledged blob");
    assert_eq!(
        dsdn_protocols::da::DaBlob::from_bytes(&blob)
            .unwrap()
            .height,
        acked
    );
    // With room again, the state commits not stored yet follow the stored state.
    std::fs::remove_file(fs.path.join("filler")).unwrap();
    pending.retain(|c| c.header.height <= acked);
    store.append_with_state(&[], &pending).unwrap();
    assert_eq!(store.state_tip(), acked);
}

/// A state commit that does not follow the stored state, or lies above the log's tip, is
/// named as such, not as a blob out of order (the two were once one error, and a missing
/// state commit was read as a lost blob).
#[test]
fn a_state_commit_out_of_order_is_not_reported_as_a_blob() {
    use dsdn_protocols::da::DaState;
    use ed25519_dalek::SigningKey;
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(
        DaStore::open(&dir.path().join(DA_LOG_FILE), &net())
            .unwrap()
            .store,
    );
    let (stored, overlay) = StoredState::open(Arc::clone(&store)).unwrap();
    let mut state = DaState::with_store(net(), Box::new(stored));
    let key = SigningKey::from_bytes(&[3; 32]);
    let mut blobs = Vec::new();
    for h in 1..=2u64 {
        let blob = state
            .seal_next(&key, h, events(h))
            .unwrap()
            .verify(&net(), &key.verifying_key().to_bytes())
            .unwrap();
        state.apply_blob(&blob).unwrap();
        blobs.push(blob);
    }
    let commits = overlay_lock(&overlay).take_outbox();
    let rows: Vec<(u64, &[u8])> = blobs.iter().map(|b| (b.height(), b.encoded())).collect();
    let err = store.append_with_state(&rows[..1], &commits).unwrap_err();
    assert!(
        matches!(err, DaStoreError::StateAboveTip { tip: 1, got: 2 }),
        "{err}"
    );
    let err = store.append_with_state(&rows, &commits[1..]).unwrap_err();
    assert!(
        matches!(
            err,
            DaStoreError::StateNotConsecutive {
                expected: 1,
                got: 2
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("state commit"), "{err}");
    assert_eq!((store.tip(), store.state_tip()), (0, 0));
    store.append_with_state(&rows, &commits).unwrap();
    assert_eq!((store.tip(), store.state_tip()), (2, 2));
}
