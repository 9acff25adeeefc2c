//! Unit tests of the walk through rotation blobs: keys learnt across two rotations, none
//! needed, a base after the first, and sources that lie (a wrong `sealed_at`, a hidden
//! later rotation, proofs against another root).

use dsdn_protocols::da::{Bytes32, Bytes64, CommitteeRotation, DaEvent, DaState};
use ed25519_dalek::SigningKey;

use super::*;
use crate::light::checkpoint_from_newest;

fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

fn key(i: u8) -> SigningKey {
    SigningKey::from_bytes(&[i; 32])
}

fn public(k: &SigningKey) -> [u8; 32] {
    k.verifying_key().to_bytes()
}

/// Epoch `e`'s group key (epoch 0: the genesis authority).
fn epoch_key(e: u64) -> SigningKey {
    key(10 + e as u8)
}

fn rotation(epoch: u64, effective_height: u64) -> DaEvent {
    let k = epoch_key(epoch);
    let r = CommitteeRotation {
        epoch,
        members: vec![format!("m{epoch}")],
        threshold: 1,
        group_key: Bytes32(public(&k)),
        effective_height,
        key_proof: Bytes64([0; 64]),
    }
    .sign_with(&net(), &k)
    .unwrap();
    DaEvent::CommitteeRotated(Box::new(r))
}

fn registration(h: u64) -> DaEvent {
    DaEvent::NodeRegistered {
        node_id: format!("node-{h}"),
        zone: "z".into(),
        capacity_bytes: h,
        class: "regular".into(),
    }
}

/// A log of `n` blobs where `rotations[i] = (sealed_at, effective)` rotates to epoch
/// `i + 1`: the encoded blobs (index `h − 1`) and their signers.
struct Log {
    blobs: Vec<Vec<u8>>,
    signers: Vec<[u8; 32]>,
}

impl Log {
    /// The state after height `h`.
    fn state(&self, h: u64) -> DaState {
        let mut state = DaState::new(net());
        for (bytes, key) in self.blobs[..h as usize].iter().zip(&self.signers) {
            let v = DaBlob::decode_verified(bytes, &net(), key).unwrap();
            state.apply_blob(&v).unwrap();
        }
        state
    }
}

fn log(n: u64, rotations: &[(u64, u64)]) -> Log {
    let mut state = DaState::new(net());
    let mut out = Log {
        blobs: Vec::new(),
        signers: Vec::new(),
    };
    for h in 1..=n {
        let epoch = rotations.iter().filter(|(_, e)| *e <= h).count() as u64;
        let signer = epoch_key(epoch);
        let event = match rotations.iter().position(|(s, _)| *s == h) {
            Some(i) => rotation(i as u64 + 1, rotations[i].1),
            None => registration(h),
        };
        let blob = state.seal_next(&signer, 1000 + h, vec![event]).unwrap();
        out.blobs.push(blob.to_bytes().unwrap());
        let verified = blob.verify(&net(), &public(&signer)).unwrap();
        state.apply_blob(&verified).unwrap();
        out.signers.push(public(&signer));
    }
    out
}

/// A source serving `log` (proofs from the state at the height asked), with lies.
struct Source<'a> {
    log: &'a Log,
    /// Proofs are checked against this root instead of the one asked for (a peer on
    /// another chain).
    other_root: Option<[u8; 32]>,
    /// `committee:latest` answered as this epoch.
    latest_lie: Option<u64>,
    /// Blobs at these heights are served from the height given instead.
    swap: Option<(u64, u64)>,
    asked: Vec<String>,
}

impl<'a> Source<'a> {
    fn honest(log: &'a Log) -> Self {
        Source {
            log,
            other_root: None,
            latest_lie: None,
            swap: None,
            asked: Vec::new(),
        }
    }
}

impl RotationSource for Source<'_> {
    async fn proved(
        &mut self,
        height: u64,
        root: [u8; 32],
        key: &StateKey,
    ) -> Result<Option<StateValue>, String> {
        self.asked.push(format!("prove {key} at {height}"));
        if let (StateKey::CommitteeLatest, Some(e)) = (key, self.latest_lie) {
            return Ok(Some(StateValue::CommitteeLatest { epoch: e }));
        }
        let state = self.log.state(height);
        let proof = state.prove(key).map_err(|e| e.to_string())?;
        let root = self.other_root.unwrap_or(root);
        crate::light::check_proof(key, height, root, &proof)
            .map(|p| p.value)
            .map_err(|e| e.to_string())
    }

    async fn blob(&mut self, height: u64) -> Result<Vec<u8>, String> {
        self.asked.push(format!("blob {height}"));
        let h = match self.swap {
            Some((from, to)) if from == height => to,
            _ => height,
        };
        Ok(self.log.blobs[h as usize - 1].clone())
    }
}

fn genesis() -> EpochKeys {
    EpochKeys::genesis(public(&epoch_key(0)))
}

fn newest(log: &Log) -> DaBlob {
    DaBlob::from_bytes(log.blobs.last().unwrap()).unwrap()
}

fn run<S: RotationSource>(
    s: &mut S,
    base: &EpochKeys,
    blob: &DaBlob,
) -> Result<EpochKeys, WalkError> {
    futures::executor::block_on(keys_at_newest(s, &net(), base, blob))
}

#[test]
fn two_rotations_since_genesis_are_walked_and_the_newest_blob_verifies() {
    let log = log(20, &[(3, 5), (9, 12)]);
    let newest = newest(&log);
    // Under the genesis key alone the newest blob is refused.
    assert!(checkpoint_from_newest(
        &net(),
        Checkpoint::genesis(),
        &genesis(),
        log.blobs.last().unwrap()
    )
    .is_err());
    let mut source = Source::honest(&log);
    let keys = run(&mut source, &genesis(), &newest).unwrap();
    assert_eq!(keys.latest().map(|r| r.epoch), Some(2));
    assert_eq!(keys.key_for(20), public(&epoch_key(2)));
    let cp = checkpoint_from_newest(
        &net(),
        Checkpoint::genesis(),
        &keys,
        log.blobs.last().unwrap(),
    )
    .unwrap();
    assert_eq!(cp.height, 19);
    assert_eq!(cp.state_root, log.state(19).state_root());
    // One proof of the latest epoch, then a record and its blob per epoch: no other blob.
    assert_eq!(
        source.asked,
        [
            "prove committee:latest at 19",
            "prove committee:1 at 19",
            "blob 3",
            "prove committee:2 at 19",
            "blob 9"
        ]
    );
}

#[test]
fn no_rotation_since_the_base_needs_no_walk() {
    let plain = log(6, &[]);
    let mut source = Source::honest(&plain);
    assert_eq!(
        run(&mut source, &genesis(), &newest(&plain)).unwrap(),
        genesis()
    );
    assert_eq!(source.asked, ["prove committee:latest at 5"]);

    // A base whose keys already hold epoch 1 walks epoch 2 only.
    let log = log(20, &[(3, 5), (9, 12)]);
    let mut at_base = genesis();
    let first = DaBlob::from_bytes(&log.blobs[2]).unwrap();
    assert_eq!(at_base.follow(&net(), &first), [1]);
    let mut source = Source::honest(&log);
    let keys = run(&mut source, &at_base, &newest(&log)).unwrap();
    assert_eq!(keys.latest().map(|r| r.epoch), Some(2));
    assert!(
        !source.asked.iter().any(|a| a == "blob 3"),
        "{:?}",
        source.asked
    );
}

#[test]
fn lying_sources_teach_nothing() {
    let log = log(20, &[(3, 5), (9, 12)]);
    let newest = newest(&log);
    // The record points at a blob that carries no rotation (served in its place).
    let mut swapped = Source::honest(&log);
    swapped.swap = Some((9, 10));
    assert!(matches!(
        run(&mut swapped, &genesis(), &newest),
        Err(WalkError::BadRotation {
            epoch: 2,
            height: 9,
            ..
        })
    ));
    // A blob of the later epoch served for the first rotation: not signed by the key in
    // force there.
    let mut early = Source::honest(&log);
    early.swap = Some((3, 14));
    assert!(matches!(
        run(&mut early, &genesis(), &newest),
        Err(WalkError::BadRotation { epoch: 1, .. })
    ));
    // The later rotation hidden: the walk stops at epoch 1, and the newest blob does not
    // verify under what it learnt.
    let mut hiding = Source::honest(&log);
    hiding.latest_lie = Some(1);
    let keys = run(&mut hiding, &genesis(), &newest).unwrap();
    assert_eq!(keys.latest().map(|r| r.epoch), Some(1));
    assert!(checkpoint_from_newest(
        &net(),
        Checkpoint::genesis(),
        &keys,
        log.blobs.last().unwrap()
    )
    .is_err());
    // Proofs that do not verify against the candidate root.
    let mut other = Source::honest(&log);
    other.other_root = Some([7; 32]);
    assert!(matches!(
        run(&mut other, &genesis(), &newest),
        Err(WalkError::Source(_))
    ));
}
