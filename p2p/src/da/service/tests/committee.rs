//! Sealing through the committee: the members' pools, the proposal, the members' checks,
//! the aggregate signature. The committee's group signature is a plain Ed25519 signature, so the
//! authority key of these tests stands for the group key.

use dsdn_protocols::da::WireEvent;
use ed25519_dalek::Signer as _;

use super::*;

/// A committee member (its own key is not the authority) whose group key is the authority.
fn member(dir: &Path, now: Instant) -> Opened {
    let mut o = open_with(Some(dir), other_key(), Some(auth()), da(|_| {}), now);
    assert!(!o.svc.is_authority());
    o.svc.set_committee_key(Some(auth()));
    assert!(o.svc.is_authority());
    o
}

fn now_ms() -> u64 {
    unix_ms()
}

#[test]
fn members_pool_events_the_proposer_seals_them_and_every_waiter_is_answered() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let mut proposer = member(d1.path(), t0);
    let mut other = member(d2.path(), t0);
    assert!(proposer.svc.seals_by_rotation());
    // Events posted to any member wait in its pool; nothing is sealed by the batcher.
    let mut rx = publish(&mut proposer.svc, vec![chunk_event(1)], t0);
    let mut rx_other = publish(&mut other.svc, vec![chunk_event(2)], t0);
    proposer.svc.poll(t0 + Duration::from_secs(60));
    assert!(gossiped(&proposer.svc.take_actions()).is_empty());
    assert!(proposer.svc.has_pending() && other.svc.has_pending());
    assert_eq!(proposer.svc.view().queued_events, 1);
    // The other member forwards its own events; the proposer includes them after its own.
    let (_, wire) = other.svc.own_pending(16, 1 << 20);
    assert_eq!(wire.len(), 1);
    assert_eq!(proposer.svc.on_forwarded(Some(1), &wire), Ok(1));
    assert_eq!(
        proposer.svc.on_forwarded(Some(1), &wire),
        Ok(0),
        "deduplicated"
    );
    assert!(proposer
        .svc
        .on_forwarded(Some(1), &[WireEvent(250, 1, vec![1].into())])
        .is_err());
    assert!(
        proposer.svc.propose_blob(2).is_none(),
        "only the next height"
    );
    let message = proposer.svc.propose_blob(1).expect("a blob");
    let blob = DaBlob::from_signing_bytes(&message).unwrap();
    assert_eq!(blob.events, vec![chunk_event(1), chunk_event(2)]);
    other.svc.check_proposal(1, &message, now_ms()).unwrap();
    assert!(other.svc.check_proposal(2, &message, now_ms()).is_err());
    // Proposing takes nothing out: a proposer that dies loses nothing.
    assert_eq!(proposer.svc.view().queued_events, 2);
    // A forged aggregate is refused; the group's signature seals the blob.
    let forged = other_key().sign(&message).to_bytes();
    assert!(proposer
        .svc
        .on_rotation_sealed(1, &message, &forged)
        .is_err());
    assert_eq!(proposer.svc.view().height, 0);
    let signature = auth_key().sign(&message).to_bytes();
    proposer
        .svc
        .on_rotation_sealed(1, &message, &signature)
        .unwrap();
    assert_eq!(proposer.svc.view().height, 1);
    assert!(!proposer.svc.has_pending(), "applied events leave the pool");
    proposer.svc.flush();
    let blobs = gossiped(&proposer.svc.take_actions());
    assert_eq!(blobs.len(), 1);
    assert!(matches!(rx.try_recv(), Ok(Ok(p)) if p.heights == vec![1]));
    // The other member applies the gossiped blob: its own waiter is answered.
    assert_eq!(
        other.svc.on_gossip(PeerId::random(), blobs[0].encoded()),
        MessageAcceptance::Accept
    );
    other.svc.flush();
    assert!(!other.svc.has_pending());
    assert!(matches!(rx_other.try_recv(), Ok(Ok(p)) if p.heights == vec![1]));
    // A late forward of sealed events (sent while its member decided height 1, before it
    // applied the blob) is dropped: nothing is sealed twice. So is one of an older member
    // that does not say its height.
    assert_eq!(
        proposer.svc.on_forwarded(Some(1), &wire),
        Ok(0),
        "already sealed"
    );
    assert_eq!(
        proposer.svc.on_forwarded(None, &wire),
        Ok(0),
        "already sealed"
    );
    assert!(!proposer.svc.has_pending());
    assert!(proposer.svc.propose_blob(2).is_none());
    // The same event posted again to the other member after it applied blob 1 is a new
    // publication: forwarded at height 2, it is taken and sealed again.
    let mut rx_again = publish(&mut other.svc, vec![chunk_event(2)], t0);
    let (_, again) = other.svc.own_pending(16, 1 << 20);
    assert_eq!(again, wire);
    assert_eq!(proposer.svc.on_forwarded(Some(2), &again), Ok(1));
    let message2 = proposer
        .svc
        .propose_blob(2)
        .expect("a blob re-sealing the event");
    let blob2 = DaBlob::from_signing_bytes(&message2).unwrap();
    assert_eq!(blob2.events, vec![chunk_event(2)]);
    let signature2 = auth_key().sign(&message2).to_bytes();
    proposer
        .svc
        .on_rotation_sealed(2, &message2, &signature2)
        .unwrap();
    proposer.svc.flush();
    let blobs2 = gossiped(&proposer.svc.take_actions());
    assert_eq!(
        other.svc.on_gossip(PeerId::random(), blobs2[0].encoded()),
        MessageAcceptance::Accept
    );
    other.svc.flush();
    assert!(matches!(rx_again.try_recv(), Ok(Ok(p)) if p.heights == vec![2]));
    // Sealed again at 2: a forward of a member still deciding 2 is late again.
    assert_eq!(proposer.svc.on_forwarded(Some(2), &wire), Ok(0));
    // Sealed again (a later round may re-seal the same blob): ignored.
    proposer
        .svc
        .on_rotation_sealed(1, &message, &signature)
        .unwrap();
    assert_eq!(proposer.svc.view().height, 2);
}

#[test]
fn a_proposal_that_breaks_the_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut m = member(dir.path(), t0);
    // Proposals that do not extend the tip, are dated wrongly, or are of another network.
    let unsigned = |prev: [u8; 32], ts: u64, network: &NetworkId| {
        DaBlob::unsigned(network, 1, prev, empty_root(), ts, vec![chunk_event(9)])
            .unwrap()
            .signing_bytes()
            .unwrap()
    };
    let now = now_ms();
    m.svc
        .check_proposal(1, &unsigned([0; 32], now, &net()), now)
        .unwrap();
    // An old timestamp is fine (a locked blob is re-proposed as it was).
    m.svc
        .check_proposal(1, &unsigned([0; 32], now - 3_600_000, &net()), now)
        .unwrap();
    assert!(m
        .svc
        .check_proposal(1, &unsigned([1; 32], now, &net()), now)
        .is_err());
    let future = now + MAX_PROPOSAL_FUTURE_MS + 1_000;
    assert!(m
        .svc
        .check_proposal(1, &unsigned([0; 32], future, &net()), now)
        .is_err());
    // A proposal committing to another state root than the member's after height 0.
    let wrong_root = DaBlob::unsigned(&net(), 1, [0; 32], [5; 32], now, vec![chunk_event(9)])
        .unwrap()
        .signing_bytes()
        .unwrap();
    let e = m.svc.check_proposal(1, &wrong_root, now).unwrap_err();
    assert!(e.contains("state root"), "{e}");
    let testnet = NetworkId::new("testnet").unwrap();
    assert!(m
        .svc
        .check_proposal(1, &unsigned([0; 32], now, &testnet), now)
        .is_err());
    // Not a member of the authority's committee: no sealing at all.
    m.svc.set_committee_key(Some([9; 32]));
    assert!(!m.svc.is_authority());
}

/// Issue 14 §6: a member does not co-sign a proposal holding a `node_id` that is no PeerId
/// (a proposer of an older build could propose one; a signed blob is for good).
#[test]
fn a_member_refuses_to_sign_a_node_id_that_is_no_peer_id() {
    let dir = tempfile::tempdir().unwrap();
    let m = member(dir.path(), Instant::now());
    let proposal = |node_id: &str| {
        let event = DaEvent::NodeRegistered {
            node_id: node_id.into(),
            zone: "z".into(),
            capacity_bytes: 1,
            class: "regular".into(),
        };
        DaBlob::unsigned(&net(), 1, [0; 32], empty_root(), now_ms(), vec![event])
            .unwrap()
            .signing_bytes()
            .unwrap()
    };
    m.svc
        .check_proposal(1, &proposal(&test_node_id(b"member")), now_ms())
        .unwrap();
    let refused = m
        .svc
        .check_proposal(1, &proposal("12D3KooWnotreally"), now_ms())
        .unwrap_err();
    assert!(
        refused.contains("event 0") && refused.contains("is not a PeerId"),
        "{refused}"
    );
}

/// The group key of epoch 1 in the rotation tests.
fn next_key() -> SigningKey {
    SigningKey::from_bytes(&[77; 32])
}

/// A rotation to [`next_key`] effective at `eff`, its key proof signed by `prover`.
/// A rotation to [`next_key`] from height `eff`, of a committee holding the test member
/// (node key [`other_key`]) and two others.
fn rotation(eff: u64, prover: &SigningKey) -> DaEvent {
    let members = [peer_of(&other_key()), PeerId::random(), PeerId::random()]
        .iter()
        .map(PeerId::to_string)
        .collect();
    let r = dsdn_protocols::da::CommitteeRotation {
        epoch: 1,
        members,
        threshold: 2,
        group_key: Bytes32(next_key().verifying_key().to_bytes()),
        effective_height: eff,
        key_proof: dsdn_protocols::da::Bytes64([0; 64]),
    }
    .sign_with(&net(), prover)
    .unwrap();
    DaEvent::CommitteeRotated(Box::new(r))
}

fn rotation_of(event: DaEvent) -> dsdn_protocols::da::CommitteeRotation {
    match event {
        DaEvent::CommitteeRotated(r) => *r,
        other => panic!("not a rotation: {other:?}"),
    }
}

/// Issue 13 §3: the epoch rotation driver's internal path. Publishers cannot submit a
/// `committee_rotated` event; the driver queues it in a member's pool, it is forwarded to
/// the proposer, members co-sign it only while the state admits it, and once sealed the
/// key history and the receipts' handoff key follow it.
#[test]
fn a_committee_rotation_is_sealed_through_the_pool_and_checked_by_members() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let mut proposer = member(d1.path(), t0);
    let mut other = member(d2.path(), t0);
    let mut rx = publish(&mut proposer.svc, vec![rotation(3, &next_key())], t0);
    assert!(matches!(rx.try_recv(), Ok(Err(_))), "not publishable");
    let e = other
        .svc
        .propose_rotation(rotation_of(rotation(3, &other_key())), t0)
        .unwrap_err();
    assert!(e.contains("bad_key_proof"), "{e}");
    let e = other
        .svc
        .propose_rotation(rotation_of(rotation(100, &next_key())), t0)
        .unwrap_err();
    assert!(e.contains("bad_effective_height"), "{e}");
    assert!(!other.svc.has_pending());

    other
        .svc
        .propose_rotation(rotation_of(rotation(3, &next_key())), t0)
        .unwrap();
    let (_, wire) = other.svc.own_pending(16, 1 << 20);
    assert_eq!(proposer.svc.on_forwarded(Some(1), &wire), Ok(1));
    let message = proposer.svc.propose_blob(1).expect("a blob");
    other.svc.check_proposal(1, &message, now_ms()).unwrap();
    let signature = auth_key().sign(&message).to_bytes();
    proposer
        .svc
        .on_rotation_sealed(1, &message, &signature)
        .unwrap();
    let new = next_key().verifying_key().to_bytes();
    assert_eq!(proposer.svc.key_for(2), Some(auth()));
    assert_eq!(proposer.svc.key_for(3), Some(new));
    // Both keys for receipts: the new one from now on, the genesis one after the switch.
    assert_eq!(proposer.svc.handoff_receipt_key(), Some(new));
    // Nothing waits, but a filler is due below the effective height.
    assert!(proposer.svc.has_pending());
    // A second rotation before the first took effect is refused by members.
    let st = proposer.svc.state();
    let again = DaBlob::unsigned(
        &net(),
        2,
        st.tip_hash(),
        st.state_root(),
        now_ms(),
        vec![rotation(4, &next_key())],
    )
    .unwrap()
    .signing_bytes()
    .unwrap();
    let e = proposer
        .svc
        .check_proposal(2, &again, now_ms())
        .unwrap_err();
    assert!(e.contains("rotation_pending"), "{e}");
}

/// A rotation whose effective height the log passed leaves the pool (no member would
/// co-sign a blob holding it: it would stall the log).
#[test]
fn a_stale_rotation_leaves_the_pool() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let mut proposer = member(d1.path(), t0);
    let mut other = member(d2.path(), t0);
    other
        .svc
        .propose_rotation(rotation_of(rotation(2, &next_key())), t0)
        .unwrap();
    assert!(other.svc.has_pending());
    let _rx = publish(&mut proposer.svc, vec![chunk_event(1)], t0);
    let message = proposer.svc.propose_blob(1).expect("a blob");
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
    assert!(!other.svc.has_pending(), "the stale rotation was dropped");
    assert_eq!(other.svc.key_for(2), Some(auth()));
}

/// Issue 13 §3: after a rotation takes effect, a publisher's confirmation checks the peers'
/// blob against the key of its height (it checked against the genesis authority, so every
/// publication after a rotation failed once the confirmation timed out).
#[test]
fn publishers_are_confirmed_under_the_key_of_the_epoch_in_force() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut m = open_with(
        Some(dir.path()),
        other_key(),
        Some(auth()),
        da(|c| c.publish_grace = Duration::ZERO),
        t0,
    );
    m.svc.set_committee_key(Some(auth()));
    let p = PeerId::random();
    m.svc.peer_connected(p, t0);
    let probes = sync_actions(&mut m.svc, t0);
    m.svc
        .on_sync_response(p, &probes[0].1, SyncResponse::default(), t0);
    // Blob 1 carries the rotation to `next_key` from height 3; blob 2 is the genesis key's.
    m.svc
        .propose_rotation(rotation_of(rotation(3, &next_key())), t0)
        .unwrap();
    let seal = |svc: &mut DaService, height: u64, key: &SigningKey| {
        let message = svc.propose_blob(height).expect("a blob");
        let signature = key.sign(&message).to_bytes();
        svc.on_rotation_sealed(height, &message, &signature)
            .unwrap();
        svc.flush();
        confirm_own(svc, t0)
    };
    seal(&mut m.svc, 1, &auth_key());
    let mut rx = publish(&mut m.svc, vec![chunk_event(1)], t0);
    seal(&mut m.svc, 2, &auth_key());
    assert!(matches!(rx.try_recv(), Ok(Ok(r)) if r.heights == vec![2]));
    // Height 3 is the new key's: the member seals with its new share.
    let new = next_key().verifying_key().to_bytes();
    assert_eq!(m.svc.current_key(), Some(new));
    m.svc.set_committee_key(Some(new));
    assert!(m.svc.is_authority());
    let mut rx = publish(&mut m.svc, vec![chunk_event(2)], t0);
    seal(&mut m.svc, 3, &next_key());
    assert!(
        matches!(rx.try_recv(), Ok(Ok(r)) if r.heights == vec![3]),
        "the peer's blob 3 (new key) confirms the publication"
    );
}

/// Issue 13 §3: on an idle log the committee in force seals empty blobs (fillers) up to a
/// recorded rotation's effective height, so the new key takes over without traffic;
/// members co-sign an empty blob only below a pending rotation's effective height.
#[test]
fn an_idle_log_is_filled_up_to_the_effective_height() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let mut proposer = member(d1.path(), t0);
    let mut other = member(d2.path(), t0);
    // No rotation recorded: nothing to seal, an empty blob is neither proposed nor signed.
    assert!(!proposer.svc.has_pending());
    assert_eq!(proposer.svc.propose_blob(1), None);
    let empty = |svc: &DaService, height: u64| {
        let st = svc.state();
        DaBlob::unsigned(
            &net(),
            height,
            st.tip_hash(),
            st.state_root(),
            now_ms(),
            vec![],
        )
        .unwrap()
        .signing_bytes()
        .unwrap()
    };
    let e = other
        .svc
        .check_proposal(1, &empty(&other.svc, 1), now_ms())
        .unwrap_err();
    assert!(e.contains("empty"), "{e}");
    // Blob 1 records the rotation, effective at 4: fillers 2 and 3, then nothing.
    proposer
        .svc
        .propose_rotation(rotation_of(rotation(4, &next_key())), t0)
        .unwrap();
    let seal = |p: &mut DaService, o: &mut DaService, height: u64| -> usize {
        let message = p.propose_blob(height).expect("a blob");
        o.check_proposal(height, &message, now_ms()).unwrap();
        let signature = auth_key().sign(&message).to_bytes();
        p.on_rotation_sealed(height, &message, &signature).unwrap();
        p.flush();
        let blobs = gossiped(&p.take_actions());
        assert_eq!(
            o.on_gossip(PeerId::random(), blobs[0].encoded()),
            MessageAcceptance::Accept
        );
        DaBlob::from_signing_bytes(&message).unwrap().events.len()
    };
    assert_eq!(seal(&mut proposer.svc, &mut other.svc, 1), 1);
    for height in [2, 3] {
        assert!(proposer.svc.has_pending(), "a filler is due at {height}");
        assert_eq!(seal(&mut proposer.svc, &mut other.svc, height), 0);
    }
    assert_eq!(other.svc.state().height(), 3);
    let new = next_key().verifying_key().to_bytes();
    assert_eq!(
        proposer.svc.current_key(),
        Some(new),
        "the new key is in force"
    );
    assert!(
        !proposer.svc.has_pending(),
        "no filler at the effective height"
    );
    assert_eq!(proposer.svc.propose_blob(4), None);
    let e = other
        .svc
        .check_proposal(4, &empty(&other.svc, 4), now_ms())
        .unwrap_err();
    assert!(e.contains("empty"), "{e}");
}
