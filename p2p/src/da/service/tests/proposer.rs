//! Version-4 blobs on a committee member (issue 13 §6): the member proposes under its own
//! PeerId and node key, and a blob whose proposer is outside its epoch is refused.

use ed25519_dalek::Signer;

use super::*;

fn member(dir: &Path, now: Instant) -> Opened {
    let mut o = open_with(Some(dir), other_key(), Some(auth()), da(|_| {}), now);
    o.svc.set_committee_key(Some(auth()));
    o
}

/// A rotation to `group` from height 2 whose committee is `members`.
fn rotation(members: Vec<PeerId>, group: &SigningKey) -> DaEvent {
    let r = dsdn_protocols::da::CommitteeRotation {
        epoch: 1,
        members: members.iter().map(PeerId::to_string).collect(),
        threshold: 2,
        group_key: Bytes32(group.verifying_key().to_bytes()),
        effective_height: 2,
        key_proof: dsdn_protocols::da::Bytes64([0; 64]),
    }
    .sign_with(&net(), group)
    .unwrap();
    DaEvent::CommitteeRotated(Box::new(r))
}

#[test]
fn a_member_proposes_under_its_own_peer_id() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let mut proposer = member(d1.path(), t0);
    let mut other = member(d2.path(), t0);
    let _rx = publish(&mut proposer.svc, vec![chunk_event(1)], t0);
    let message = proposer.svc.propose_blob(1).expect("a blob");
    let blob = DaBlob::from_signing_bytes(&message).unwrap();
    assert_eq!(blob.version, dsdn_protocols::da::DA_BLOB_VERSION_V4);
    // The proposer is the libp2p PeerId of the node key, as the committee lists it.
    let id = PeerId::from_bytes(blob.proposer().unwrap()).unwrap();
    assert_eq!(id, peer_of(&other_key()));
    // A co-signer's checks pass, and the sealed blob keeps its author on every node.
    other.svc.check_proposal(1, &message, unix_ms()).unwrap();
    let signature = auth_key().sign(&message).to_bytes();
    proposer
        .svc
        .on_rotation_sealed(1, &message, &signature)
        .unwrap();
    proposer.svc.flush();
    let blobs = gossiped(&proposer.svc.take_actions());
    assert_eq!(
        other.svc.on_gossip(PeerId::random(), blobs[0].encoded()),
        MessageAcceptance::Accept
    );
    other.svc.flush();
    let stored = other.svc.blobs(1, 1);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].proposer(), blob.proposer());
}

#[test]
fn a_proposer_outside_its_epoch_is_refused() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let group = SigningKey::from_bytes(&[77; 32]);
    let outsider = |dir: &Path| {
        let mut m = member(dir, t0);
        // Blob 1 hands the log to a committee this member is not in.
        m.svc
            .propose_rotation(
                match rotation(vec![PeerId::random(), PeerId::random()], &group) {
                    DaEvent::CommitteeRotated(r) => *r,
                    _ => unreachable!(),
                },
                t0,
            )
            .unwrap();
        let message = m.svc.propose_blob(1).expect("blob 1");
        let signature = auth_key().sign(&message).to_bytes();
        m.svc.on_rotation_sealed(1, &message, &signature).unwrap();
        m.svc.flush();
        m
    };
    let mut m = outsider(d1.path());
    assert_eq!(m.svc.current_key(), Some(group.verifying_key().to_bytes()));
    m.svc
        .set_committee_key(Some(group.verifying_key().to_bytes()));
    let _rx = publish(&mut m.svc, vec![chunk_event(1)], t0);
    let message = m.svc.propose_blob(2).expect("blob 2");
    // Even with the group's signature, a blob proposed by a non-member does not verify.
    let signature = group.sign(&message).to_bytes();
    let e = m
        .svc
        .on_rotation_sealed(2, &message, &signature)
        .unwrap_err();
    assert!(e.contains("not a member"), "{e}");
    // Nor is it accepted from gossip: the rejection reason is `bad_proposer`.
    let blob = DaBlob::from_signing_bytes(&message)
        .unwrap()
        .with_signature(signature);
    let mut o = outsider(d2.path());
    let _ = o.svc.take_actions();
    assert_eq!(
        o.svc.on_gossip(PeerId::random(), &blob.to_bytes().unwrap()),
        MessageAcceptance::Reject
    );
    assert_eq!(o.svc.state().height(), 1);
}
