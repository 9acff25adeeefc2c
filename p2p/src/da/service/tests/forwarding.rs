//! A coordinator that does not seal but forwards (issue 13 §1): a follower or a retired
//! member takes posted events into its pool as own events, forwards them like a member,
//! and answers its publishers once a blob holding them is applied and durable here; the
//! members take forwards only from admitted coordinators.

use dsdn_protocols::committee::epoch::EpochSchedule;
use dsdn_protocols::committee::epoch_driver::CurrentCommittee;
use ed25519_dalek::Signer as _;
use tokio::sync::oneshot::error::TryRecvError;

use super::*;
use crate::committee::epochs::SelectionRule;

/// A member whose group key (stood for by the authority key) is the DA authority.
fn member(dir: &Path, now: Instant) -> Opened {
    let mut o = open_with(Some(dir), other_key(), Some(auth()), da(|_| {}), now);
    o.svc.set_committee_key(Some(auth()));
    assert!(o.svc.seals_by_rotation());
    o
}

/// A coordinator outside the committee (not sealing).
fn follower(dir: &Path, now: Instant) -> Opened {
    let o = open_with(Some(dir), other_key(), Some(auth()), da(|_| {}), now);
    assert!(!o.svc.is_authority());
    o
}

/// Seals `height` on `proposer` with the group key and hands the blob to `to`.
fn seal_and_gossip(proposer: &mut DaService, to: &mut DaService, height: u64) -> DaBlob {
    let message = proposer.propose_blob(height).expect("a blob to propose");
    let signature = auth_key().sign(&message).to_bytes();
    proposer
        .on_rotation_sealed(height, &message, &signature)
        .unwrap();
    proposer.flush();
    let blobs = gossiped(&proposer.take_actions());
    assert_eq!(blobs.len(), 1);
    assert_eq!(
        to.on_gossip(PeerId::random(), blobs[0].encoded()),
        MessageAcceptance::Accept
    );
    to.flush();
    DaBlob::from_signing_bytes(&message).unwrap()
}

#[test]
fn a_follower_forwards_posted_events_and_answers_once_they_are_sealed() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let mut proposer = member(d1.path(), t0);
    let mut f = follower(d2.path(), t0);
    // Not forwarding (the old behaviour, and a coordinator the selection does not admit).
    let mut refused = publish(&mut f.svc, vec![chunk_event(1)], t0);
    assert!(matches!(
        refused.try_recv(),
        Ok(Err(PublishError::NotAuthority(_)))
    ));
    f.svc.set_forwarding(true);
    assert!(f.svc.forwards() && !f.svc.is_authority());
    let mut rx = publish(&mut f.svc, vec![chunk_event(1), chunk_event(2)], t0);
    let mut rx_same = publish(&mut f.svc, vec![chunk_event(2)], t0);
    // The same validation as on a member.
    let mut empty = publish(&mut f.svc, Vec::new(), t0);
    assert!(matches!(empty.try_recv(), Ok(Err(PublishError::Empty))));
    // Nothing sealed by the follower, nothing answered yet.
    f.svc.poll(t0 + Duration::from_secs(60));
    assert!(gossiped(&f.svc.take_actions()).is_empty());
    assert_eq!(
        f.svc.view().queued_events,
        2,
        "one entry per distinct event"
    );
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let (_, wire) = f.svc.own_pending(16, 1 << 20);
    assert_eq!(wire.len(), 2);
    // The proposer takes the forward and seals the events; the follower answers its
    // publishers (both waiters of the shared event) once the blob is applied here.
    assert_eq!(proposer.svc.on_forwarded(Some(1), &wire), Ok(2));
    let blob = seal_and_gossip(&mut proposer.svc, &mut f.svc, 1);
    assert_eq!(blob.events, vec![chunk_event(1), chunk_event(2)]);
    assert!(matches!(rx.try_recv(), Ok(Ok(p)) if p.heights == vec![1]));
    assert!(matches!(rx_same.try_recv(), Ok(Ok(p)) if p.heights == vec![1]));
    let (_, left) = f.svc.own_pending(16, 1 << 20);
    assert!(left.is_empty(), "sealed events leave the pool");
    assert_eq!(f.svc.view().queued_events, 0);
}

#[test]
fn pending_events_survive_joining_and_leaving_the_committee_and_are_answered_once() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let mut other = member(d1.path(), t0);
    let mut f = follower(d2.path(), t0);
    f.svc.set_forwarding(true);
    let mut rx = publish(&mut f.svc, vec![chunk_event(7)], t0);
    // A blob sealed while it follows (another member's event).
    let mut p = publish(&mut other.svc, vec![chunk_event(6)], t0);
    seal_and_gossip(&mut other.svc, &mut f.svc, 1);
    other.svc.flush();
    assert!(matches!(p.try_recv(), Ok(Ok(p)) if p.heights == vec![1]));
    let late = vec![chunk_event(6).to_wire().unwrap()];
    // Selected: it seals through the committee now; the event is still its own and it
    // proposes it itself (the event loop stops forwarding while the rotation runs).
    f.svc.set_committee_key(Some(auth()));
    f.svc.set_forwarding(false);
    // A late forward (its member was deciding height 1) of the event sealed while it
    // followed is dropped: not sealed twice.
    assert_eq!(f.svc.on_forwarded(Some(1), &late), Ok(0));
    assert!(f.svc.seals_by_rotation() && !f.svc.forwards());
    let (_, wire) = f.svc.own_pending(16, 1 << 20);
    assert_eq!(wire.len(), 1);
    let mut rx_member = publish(&mut f.svc, vec![chunk_event(8)], t0);
    let blob = seal_and_gossip(&mut f.svc, &mut other.svc, 2);
    assert_eq!(blob.events, vec![chunk_event(7), chunk_event(8)]);
    assert!(matches!(rx.try_recv(), Ok(Ok(p)) if p.heights == vec![2]));
    assert!(matches!(rx_member.try_recv(), Ok(Ok(p)) if p.heights == vec![2]));
    // Retired with an event pending: it stays in the pool, is forwarded and is answered
    // when another member's blob holds it (once).
    let mut rx_retired = publish(&mut f.svc, vec![chunk_event(9)], t0);
    f.svc.set_committee_key(None);
    assert!(!f.svc.takes_events(), "not yet told to forward");
    f.svc.set_forwarding(true);
    assert!(f.svc.forwards());
    let (_, wire) = f.svc.own_pending(16, 1 << 20);
    assert_eq!(wire.len(), 1);
    assert_eq!(other.svc.on_forwarded(Some(3), &wire), Ok(1));
    let blob = seal_and_gossip(&mut other.svc, &mut f.svc, 3);
    assert_eq!(blob.events, vec![chunk_event(9)]);
    assert!(matches!(rx_retired.try_recv(), Ok(Ok(p)) if p.heights == vec![3]));
    assert_eq!(f.svc.view().queued_events, 0);
}

#[test]
fn a_forwarder_takes_no_more_than_the_queue_cap() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut f = follower(dir.path(), t0);
    f.svc.set_forwarding(true);
    let batch: Vec<DaEvent> = (0..MAX_QUEUED_EVENTS as u64).map(chunk_event).collect();
    let mut rx = publish(&mut f.svc, batch, t0);
    assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    let mut full = publish(&mut f.svc, vec![chunk_event(u64::MAX)], t0);
    assert!(matches!(
        full.try_recv(),
        Ok(Err(PublishError::QueueFull { .. }))
    ));
}

#[test]
fn members_take_forwards_only_from_admitted_coordinators() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = member(dir.path(), Instant::now());
    let (a, b, c, stranger) = (
        PeerId::random(),
        PeerId::random(),
        PeerId::random(),
        PeerId::random(),
    );
    // No epoch rotation here (no rule): no one outside the members.
    assert!(!m.svc.admits_forwarder(&a));
    m.svc.set_selection_rule(Some(SelectionRule {
        schedule: EpochSchedule {
            start_ms: 0,
            epoch_ms: 10_000,
            handoff_ms: 3_000,
        },
        genesis: CurrentCommittee {
            epoch: 0,
            members: vec![a.to_string(), b.to_string()],
            threshold: 2,
        },
        candidates: vec![c.to_string()],
    }));
    assert!(m.svc.admits_forwarder(&a), "a genesis member");
    assert!(m.svc.admits_forwarder(&c), "a candidate");
    assert!(!m.svc.admits_forwarder(&stranger), "anyone else");
}
