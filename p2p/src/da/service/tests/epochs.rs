//! Key history in the service (issue 13 §3): a node configured with the genesis authority
//! only follows a committee rotation recorded in the log, over gossip and across a restart.

use dsdn_protocols::da::{Bytes64, CommitteeRotation};

use super::*;

/// The group key of epoch 1 in these tests.
fn next_key() -> SigningKey {
    SigningKey::from_bytes(&[77; 32])
}

fn registration() -> DaEvent {
    DaEvent::NodeRegistered {
        node_id: PeerId::random().to_string(),
        zone: "z".into(),
        capacity_bytes: 1,
        class: "regular".into(),
    }
}

fn rotation(effective_height: u64) -> DaEvent {
    let r = CommitteeRotation {
        epoch: 1,
        members: vec![PeerId::random().to_string()],
        threshold: 1,
        group_key: Bytes32(next_key().verifying_key().to_bytes()),
        effective_height,
        key_proof: Bytes64([0; 64]),
    }
    .sign_with(&net(), &next_key())
    .unwrap();
    DaEvent::CommitteeRotated(Box::new(r))
}

/// Blobs 1..=`n`: genesis key up to 3 (blob 2 rotates to [`next_key`] from height 4), then
/// the new key. Returns the encoded blobs.
fn rotated_log(n: u64) -> Vec<Vec<u8>> {
    rotated_log_and_state(n).0
}

/// As [`rotated_log`], with the state after the last blob (to seal the next one).
fn rotated_log_and_state(n: u64) -> (Vec<Vec<u8>>, dsdn_protocols::da::DaState) {
    let mut state = dsdn_protocols::da::DaState::new(net());
    let mut out = Vec::new();
    for h in 1..=n {
        let (key, event) = match h {
            2 => (auth_key(), rotation(4)),
            1 | 3 => (auth_key(), registration()),
            _ => (next_key(), registration()),
        };
        let blob = state.seal_next(&key, 1000 + h, vec![event]).unwrap();
        let bytes = blob.to_bytes().unwrap();
        let verified = blob
            .verify(&net(), &key.verifying_key().to_bytes())
            .unwrap();
        state.apply_blob(&verified).unwrap();
        out.push(bytes);
    }
    (out, state)
}

#[test]
fn a_node_with_the_genesis_authority_follows_a_rotation_and_keeps_it_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let log = rotated_log(6);
    let (_, at5) = rotated_log_and_state(5);
    let mut o = open(dir.path());
    for bytes in &log[..5] {
        assert_eq!(o.svc.on_gossip(peer(), bytes), MessageAcceptance::Accept);
    }
    assert_eq!(o.svc.state().height(), 5);
    assert_eq!(
        o.svc.current_key(),
        Some(next_key().verifying_key().to_bytes())
    );
    // Height 6 signed by the genesis key after the rotation took effect: refused.
    let stale = at5
        .seal_next(&auth_key(), 2000, vec![registration()])
        .unwrap()
        .to_bytes()
        .unwrap();
    assert_eq!(o.svc.on_gossip(peer(), &stale), MessageAcceptance::Reject);
    drop(o);
    // Reopened with the same (genesis-only) config: the history comes from the log.
    let mut o = open(dir.path());
    assert_eq!(o.svc.state().height(), 5);
    assert_eq!(o.svc.key_for(3), Some(auth()));
    assert_eq!(
        o.svc.key_for(4),
        Some(next_key().verifying_key().to_bytes())
    );
    assert_eq!(o.svc.on_gossip(peer(), &log[5]), MessageAcceptance::Accept);
    assert_eq!(o.svc.state().height(), 6);
}

#[test]
fn a_blob_ahead_signed_by_a_key_not_known_yet_is_ignored_not_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let log = rotated_log(5);
    let mut o = open(dir.path());
    assert_eq!(o.svc.on_gossip(peer(), &log[0]), MessageAcceptance::Accept);
    // Blob 5 is signed by the key blob 2 introduces: unknown at height 1.
    assert_eq!(o.svc.on_gossip(peer(), &log[4]), MessageAcceptance::Ignore);
    for bytes in &log[1..] {
        assert_eq!(o.svc.on_gossip(peer(), bytes), MessageAcceptance::Accept);
    }
    assert_eq!(o.svc.state().height(), 5);
}
