//! Unit tests of the checkpoint follower: forward only from a checkpoint, wrong checkpoints
//! refused, committee rotations after the checkpoint followed, the newest-blob source.

use dsdn_protocols::da::{Bytes32, Bytes64, CommitteeRotation, DaEvent, DaState, EpochRecord};
use ed25519_dalek::SigningKey;

use super::*;

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

fn genesis_key() -> SigningKey {
    SigningKey::from_bytes(&[5; 32])
}

fn epoch_key() -> SigningKey {
    SigningKey::from_bytes(&[77; 32])
}

fn registration(h: u64) -> DaEvent {
    DaEvent::NodeRegistered {
        node_id: format!("node-{h}"),
        zone: "z".into(),
        capacity_bytes: h,
        class: "regular".into(),
    }
}

fn rotation(effective_height: u64) -> DaEvent {
    let r = CommitteeRotation {
        epoch: 1,
        members: vec!["m".into()],
        threshold: 1,
        group_key: Bytes32(epoch_key().verifying_key().to_bytes()),
        effective_height,
        key_proof: Bytes64([0; 64]),
    }
    .sign_with(&net(), &epoch_key())
    .unwrap();
    DaEvent::CommitteeRotated(Box::new(r))
}

/// A log of `n` blobs; with `rotate = Some((s, e))` blob `s` rotates to [`epoch_key`] from
/// height `e`. Returns the encoded blobs (index `h - 1`), the checkpoint of every height
/// (index `h`, 0 = genesis) and each blob's signer (to rebuild the state at a height).
struct Log {
    blobs: Vec<Vec<u8>>,
    checkpoints: Vec<Checkpoint>,
    signers: Vec<[u8; 32]>,
}

impl Log {
    /// The state after height `h`.
    fn state(&self, h: usize) -> DaState {
        let mut state = DaState::new(net());
        for (bytes, key) in self.blobs[..h].iter().zip(&self.signers) {
            let v = DaBlob::decode_verified(bytes, &net(), key).unwrap();
            state.apply_blob(&v).unwrap();
        }
        state
    }
}

fn log(n: u64, rotate: Option<(u64, u64)>) -> Log {
    let mut state = DaState::new(net());
    let mut out = Log {
        blobs: Vec::new(),
        checkpoints: vec![Checkpoint::genesis()],
        signers: Vec::new(),
    };
    for h in 1..=n {
        let key = match rotate {
            Some((_, e)) if h >= e => epoch_key(),
            _ => genesis_key(),
        };
        let event = match rotate {
            Some((s, e)) if s == h => rotation(e),
            _ => registration(h),
        };
        let blob = state.seal_next(&key, 1000 + h, vec![event]).unwrap();
        out.blobs.push(blob.to_bytes().unwrap());
        let verified = blob
            .verify(&net(), &key.verifying_key().to_bytes())
            .unwrap();
        state.apply_blob(&verified).unwrap();
        out.checkpoints.push(Checkpoint {
            height: h,
            blob_hash: verified.hash(),
            state_root: state.state_root(),
        });
        out.signers.push(key.verifying_key().to_bytes());
    }
    out
}

fn genesis_keys() -> EpochKeys {
    EpochKeys::genesis(genesis_key().verifying_key().to_bytes())
}

#[test]
fn it_follows_forward_from_a_checkpoint_and_trusts_the_root_one_blob_behind() {
    let log = log(8, None);
    let mut f = Follower::new(net(), log.checkpoints[3], genesis_keys());
    assert_eq!(f.trusted().header, log.checkpoints[3]);
    // Nothing below or at the checkpoint is taken, nor a blob ahead of tip + 1.
    for h in [1, 2, 3, 5] {
        assert!(matches!(
            f.offer(&log.blobs[h - 1]),
            Err(FollowError::NotNext { expected: 4, .. })
        ));
    }
    for h in 4..=8u64 {
        let v = f.offer(&log.blobs[h as usize - 1]).unwrap();
        assert_eq!(v.height(), h);
        assert_eq!(f.tip(), h);
        // Blob h commits to the root after h - 1: the full state's root there.
        assert_eq!(f.trusted().header, log.checkpoints[h as usize - 1]);
        assert_eq!(f.trusted().tip, h);
    }
    assert_eq!(f.taken(), 5);
    // A duplicate is not the next height.
    assert!(matches!(
        f.offer(&log.blobs[7]),
        Err(FollowError::NotNext { .. })
    ));
}

#[test]
fn a_checkpoint_with_a_wrong_hash_or_root_is_refused_by_the_first_signed_blob() {
    let log = log(5, None);
    let good = log.checkpoints[2];
    let bad_root = Checkpoint {
        state_root: [9; 32],
        ..good
    };
    let mut f = Follower::new(net(), bad_root, genesis_keys());
    let e = f.offer(&log.blobs[2]).unwrap_err();
    assert!(e.refutes_checkpoint(), "{e}");
    assert!(e.to_string().contains("state root"), "{e}");
    assert_eq!(f.tip(), 2, "nothing taken");
    let bad_hash = Checkpoint {
        blob_hash: [9; 32],
        ..good
    };
    let e = Follower::new(net(), bad_hash, genesis_keys())
        .offer(&log.blobs[2])
        .unwrap_err();
    assert!(
        e.refutes_checkpoint() && e.to_string().contains("blob hash"),
        "{e}"
    );
    // The right one is taken.
    assert!(Follower::new(net(), good, genesis_keys())
        .offer(&log.blobs[2])
        .is_ok());
}

#[test]
fn forged_forked_and_backdated_blobs_are_refused_without_moving_the_tip() {
    let log = log(4, None);
    let mut f = Follower::new(net(), log.checkpoints[1], genesis_keys());
    f.offer(&log.blobs[1]).unwrap();
    // Signed by another key.
    let forged = log
        .state(2)
        .seal_next(&epoch_key(), 2000, vec![registration(99)])
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(matches!(
        f.offer(&forged),
        Err(FollowError::Invalid {
            height: 3,
            error: DaError::BadSignature
        })
    ));
    // Validly signed on another chain (another blob 2 before it).
    let mut other = log.state(1);
    let b2 = other
        .seal_next(&genesis_key(), 1500, vec![registration(50)])
        .unwrap();
    let v2 = b2
        .verify(&net(), &genesis_key().verifying_key().to_bytes())
        .unwrap();
    other.apply_blob(&v2).unwrap();
    let fork3 = other
        .seal_next(&genesis_key(), 1600, vec![registration(51)])
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(matches!(
        f.offer(&fork3),
        Err(FollowError::PrevHash { height: 3 })
    ));
    // Next height, right chain, timestamp before the tip's.
    let back = log
        .state(2)
        .seal_next(&genesis_key(), 1, vec![registration(3)])
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(matches!(
        f.offer(&back),
        Err(FollowError::TimestampRegression { height: 3 })
    ));
    assert_eq!(f.tip(), 2);
    f.offer(&log.blobs[2]).unwrap();
    assert_eq!(f.tip(), 3);
}

#[test]
fn a_rotation_after_the_checkpoint_changes_the_key_from_its_effective_height() {
    // Blob 5 rotates to the epoch key from height 7.
    let log = log(10, Some((5, 7)));
    let mut f = Follower::new(net(), log.checkpoints[3], genesis_keys());
    for h in 4..=6 {
        f.offer(&log.blobs[h - 1]).unwrap();
    }
    assert_eq!(f.keys().key_for(7), epoch_key().verifying_key().to_bytes());
    // Height 7 signed by the genesis key is refused.
    let stale = log
        .state(6)
        .seal_next(&genesis_key(), 5000, vec![registration(7)])
        .unwrap()
        .to_bytes()
        .unwrap();
    assert!(matches!(
        f.offer(&stale),
        Err(FollowError::Invalid {
            error: DaError::BadSignature,
            ..
        })
    ));
    for h in 7..=10 {
        f.offer(&log.blobs[h - 1]).unwrap();
    }
    assert_eq!(f.trusted().header, log.checkpoints[9]);
}

#[test]
fn keys_read_at_a_checkpoint_between_a_rotation_and_its_effect_verify_what_follows() {
    let log = log(10, Some((5, 7)));
    // At checkpoint 5 the rotation is recorded, not in force: what a proof of
    // `committee:latest` and `committee:1` against root(5) gives.
    let epochs = log.state(5).committee_epochs().unwrap();
    assert_eq!(epochs.len(), 1);
    let latest: EpochRecord = epochs[0].clone();
    let keys = EpochKeys::new(genesis_key().verifying_key().to_bytes(), Some(latest));
    let mut f = Follower::new(net(), log.checkpoints[5], keys);
    for h in 6..=10 {
        f.offer(&log.blobs[h - 1]).unwrap();
    }
    // With the genesis key alone the client would refuse height 7.
    let mut blind = Follower::new(net(), log.checkpoints[5], genesis_keys());
    blind.offer(&log.blobs[5]).unwrap();
    assert!(blind.offer(&log.blobs[6]).is_err());
}

#[test]
fn the_newest_blob_gives_a_checkpoint_only_under_the_key_in_force_at_the_base() {
    let plain = log(8, None);
    let cp = checkpoint_from_newest(
        &net(),
        Checkpoint::genesis(),
        &genesis_keys(),
        &plain.blobs[7],
    )
    .unwrap();
    assert_eq!(cp, plain.checkpoints[7]);
    // Not ahead of base + 1: nothing to skip.
    assert!(matches!(
        checkpoint_from_newest(
            &net(),
            plain.checkpoints[7],
            &genesis_keys(),
            &plain.blobs[7]
        ),
        Err(FollowError::NotNext { .. })
    ));
    // After a rotation took effect the genesis key no longer signs: refused (the caller
    // follows forward from the base instead).
    let rotated = log(8, Some((2, 4)));
    assert!(matches!(
        checkpoint_from_newest(
            &net(),
            Checkpoint::genesis(),
            &genesis_keys(),
            &rotated.blobs[7]
        ),
        Err(FollowError::Invalid {
            error: DaError::BadSignature,
            ..
        })
    ));
}

#[test]
fn the_follower_keeps_constant_state_along_the_log() {
    // O(1): the follower's size does not depend on how many blobs it took (no Vec grows;
    // the key state is one record at most).
    let log = log(40, Some((10, 12)));
    let mut f = Follower::new(net(), log.checkpoints[1], genesis_keys());
    let before = format!("{f:?}").len();
    for h in 2..=40 {
        f.offer(&log.blobs[h - 1]).unwrap();
    }
    // The debug form grows by the recorded epoch only (one record), not by 39 blobs.
    let after = format!("{f:?}").len();
    assert!(after < before + 600, "{before} → {after}");
}
