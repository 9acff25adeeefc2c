use super::*;

fn chain() -> DaChain {
    DaChain::new(DaState::new(net()))
}

fn heights(offer: &Offer) -> Vec<u64> {
    match offer {
        Offer::Applied(blobs) => blobs.iter().map(VerifiedBlob::height).collect(),
        other => panic!("expected Applied, got {other:?}"),
    }
}

#[test]
fn applies_in_order_and_reports_duplicates_and_conflicts() {
    let blobs = chain_of(3);
    let mut c = chain();
    assert_eq!(heights(&c.offer(blobs[0].clone())), [1]);
    assert_eq!(c.offer(blobs[0].clone()), Offer::Duplicate);
    assert_eq!(heights(&c.offer(blobs[1].clone())), [2]);
    assert_eq!(c.offer(blobs[0].clone()), Offer::Duplicate, "below the tip");
    assert_eq!(c.offer(blobs[1].clone()), Offer::Duplicate, "the tip");
    let other_tip = signed(2, blobs[0].hash(), 5_000, vec![chunk(9)]);
    assert_eq!(
        c.offer(other_tip),
        Offer::Rejected(ChainError::Conflict { height: 2 })
    );
    assert_eq!((c.height(), c.tip_hash()), (2, blobs[1].hash()));
    assert_eq!(c.last_timestamp_ms(), blobs[1].blob().timestamp_ms);
    assert_eq!(c.state().events(), 2 * chain_events(1).len() as u64);
}

#[test]
fn holds_ahead_and_releases_when_the_gap_fills() {
    let blobs = chain_of(6);
    let mut c = chain();
    assert_eq!(c.gap(), None);
    assert_eq!(c.highest_held(), 0);
    assert_eq!(c.offer(blobs[3].clone()), Offer::Held);
    assert_eq!(c.offer(blobs[2].clone()), Offer::Held);
    assert_eq!(c.offer(blobs[5].clone()), Offer::Held);
    assert_eq!(c.offer(blobs[2].clone()), Offer::Duplicate, "held");
    let conflicting = signed(3, [7; 32], 1, vec![chunk(9)]);
    assert_eq!(
        c.offer(conflicting),
        Offer::Rejected(ChainError::Conflict { height: 3 })
    );
    assert_eq!(c.pending(), 3);
    let bytes: usize = [2, 3, 5].iter().map(|&i| blobs[i].encoded().len()).sum();
    assert_eq!(c.pending_bytes(), bytes);
    assert_eq!(c.gap(), Some((1, 3)));
    assert_eq!(c.highest_held(), 6);
    assert_eq!(heights(&c.offer(blobs[0].clone())), [1]);
    assert_eq!(c.gap(), Some((2, 3)));
    assert_eq!(heights(&c.offer(blobs[1].clone())), [2, 3, 4]);
    assert_eq!(c.gap(), Some((5, 6)));
    assert_eq!(heights(&c.offer(blobs[4].clone())), [5, 6]);
    assert_eq!(
        (c.pending(), c.pending_bytes(), c.gap(), c.highest_held()),
        (0, 0, None, 0)
    );
    assert_eq!(c.tip_hash(), blobs[5].hash());
}

#[test]
fn rejects_blobs_that_break_the_chain_and_keeps_what_it_holds() {
    let blobs = chain_of(3);
    let mut c = chain();
    assert_eq!(c.offer(blobs[2].clone()), Offer::Held);
    let fork = signed(1, [1; 32], 0, vec![chunk(1)]);
    assert_eq!(
        c.offer(fork),
        Offer::Rejected(ChainError::PrevHashMismatch { height: 1 })
    );
    assert_eq!(heights(&c.offer(blobs[0].clone())), [1]);
    let late = signed(2, blobs[0].hash(), 0, vec![chunk(1)]);
    assert_eq!(
        c.offer(late),
        Offer::Rejected(ChainError::TimestampRegression { height: 2 })
    );
    assert_eq!(c.pending(), 1);
    assert_eq!(heights(&c.offer(blobs[1].clone())), [2, 3]);
}

#[test]
fn a_released_blob_that_breaks_the_chain_is_dropped_with_everything_after_it() {
    let blobs = chain_of(2);
    // Held: a height-3 blob that does not follow blobs[1], and 4, 5 after it.
    let bad3 = signed(3, [3; 32], 5_000, vec![chunk(30)]);
    let b4 = signed(4, bad3.hash(), 5_000, vec![chunk(40)]);
    let b5 = signed(5, b4.hash(), 5_000, vec![chunk(50)]);
    let mut c = chain();
    c.offer(blobs[0].clone());
    for b in [&bad3, &b4, &b5] {
        assert_eq!(c.offer(b.clone()), Offer::Held);
    }
    assert_eq!(heights(&c.offer(blobs[1].clone())), [2]);
    assert_eq!(
        (c.height(), c.pending(), c.pending_bytes(), c.gap()),
        (2, 0, 0, None)
    );

    // Same with a timestamp regression in a held blob.
    let back3 = signed(3, blobs[1].hash(), 0, vec![chunk(30)]);
    let b4 = signed(4, back3.hash(), 5_000, vec![chunk(40)]);
    let mut c = chain();
    c.offer(blobs[0].clone());
    c.offer(back3);
    c.offer(b4);
    assert_eq!(heights(&c.offer(blobs[1].clone())), [2]);
    assert_eq!((c.height(), c.pending()), (2, 0));
}

#[test]
fn the_hold_is_bounded_by_height_count_and_bytes() {
    let blobs = chain_of(12);
    let mut c = chain();
    let far = signed(MAX_PENDING_BLOBS as u64, [0; 32], 0, vec![chunk(1)]);
    assert_eq!(c.offer(far), Offer::Held);
    let too_far = signed(1 + MAX_PENDING_BLOBS as u64, [0; 32], 0, vec![chunk(1)]);
    assert_eq!(c.offer(too_far), Offer::TooFarAhead);

    let mut c = DaChain::with_limits(DaState::new(net()), 4, usize::MAX);
    assert_eq!(
        c.offer(blobs[5].clone()),
        Offer::TooFarAhead,
        "tip + 6 > tip + 4"
    );
    for b in &blobs[1..4] {
        assert_eq!(c.offer(b.clone()), Offer::Held);
    }
    assert_eq!(heights(&c.offer(blobs[0].clone())), [1, 2, 3, 4]);

    let size = blobs[6].encoded().len();
    let mut c = DaChain::with_limits(DaState::new(net()), 100, 2 * size + 10);
    assert_eq!(c.offer(blobs[6].clone()), Offer::Held);
    assert_eq!(c.offer(blobs[7].clone()), Offer::Held);
    assert_eq!(c.offer(blobs[8].clone()), Offer::TooFarAhead, "bytes full");
    assert!(c.pending_bytes() <= 2 * size + 10);
}

#[test]
fn resumes_from_a_store() {
    let blobs = chain_of(8);
    let mut c = chain();
    let mut first = chain();
    for b in &blobs[..5] {
        c.offer(b.clone());
        first.offer(b.clone());
    }
    let store = first.into_state().into_store();
    let mut resumed = DaChain::new(DaState::with_store(net(), store));
    assert_eq!(resumed.last_timestamp_ms(), c.last_timestamp_ms());
    assert_eq!(resumed.offer(blobs[4].clone()), Offer::Duplicate);
    for b in &blobs[5..] {
        c.offer(b.clone());
        resumed.offer(b.clone());
    }
    assert_eq!(resumed.state(), c.state());
    assert_eq!(resumed.into_state().state_root(), c.state().state_root());
}

#[test]
fn chain_error_reasons() {
    assert_eq!(
        ChainError::PrevHashMismatch { height: 1 }.reason(),
        "prev_hash_mismatch"
    );
    assert_eq!(
        ChainError::TimestampRegression { height: 1 }.reason(),
        "timestamp_regression"
    );
    assert_eq!(ChainError::Conflict { height: 1 }.reason(), "conflict");
}

/// Regression (the `committee_auto_rotation` fallback run of 2026-12-06, height 43): the
/// round-0 proposer aggregated a blob and died before gossiping it; a member had released a
/// share for it (its lock), so the round-1 proposer re-proposed the same signing bytes and
/// the committee signed them again. FROST signatures are randomized: the dead proposer's
/// log held the blob under signature A, the network's under signature B. With the
/// signature in the blob identity (version 2), the next blob, which links to B, was refused
/// by the restarted proposer (`prev_hash_mismatch`) for good. From version 3 on both
/// signatures give one identity: the next blob extends either copy, and the other copy is
/// a duplicate, not a conflict.
#[test]
fn a_height_signed_twice_over_the_same_bytes_links_either_way() {
    use crate::committee::tests::{config, rng, run_dkg, sign_with, signers};
    use crate::committee::Slot;
    let outputs = run_dkg(&config(2, 3, 0), 43);
    let group = outputs[0].group_key.0;
    let mut s = signers(&outputs);
    let mut r = rng(43);
    let mut frost_sign = |who: &[usize], blob: DaBlob| {
        let msg = blob.signing_bytes().unwrap();
        let sig = sign_with(&mut s, who, Slot::DaBlob(blob.height), &msg, &mut r).unwrap();
        blob.with_signature(sig).verify(&net(), &group).unwrap()
    };
    let state = DaState::new(net());
    let unsigned = |s: &DaState, events: Vec<DaEvent>| {
        DaBlob::unsigned(
            &net(),
            s.height() + 1,
            s.tip_hash(),
            s.state_root(),
            1_000,
            events,
        )
        .unwrap()
    };
    let first = unsigned(&state, chain_events(1));
    // Round 0: the proposer (member 2) with member 0; round 1: members 0 and 1.
    let round0 = frost_sign(&[2, 0], first.clone());
    let round1 = frost_sign(&[0, 1], first);
    assert_ne!(round0.blob().signature, round1.blob().signature);
    assert_eq!(round0.hash(), round1.hash(), "one identity for one content");

    // The network extends the round-1 copy.
    let mut network = DaChain::new(DaState::new(net()));
    assert_eq!(heights(&network.offer(round1.clone())), [1]);
    let next = frost_sign(&[1, 2], unsigned(network.state(), chain_events(2)));
    assert_eq!(heights(&network.offer(next.clone())), [2]);

    // The round-0 proposer holds the round-0 copy and takes the network's next blob.
    let mut dead = DaChain::new(DaState::new(net()));
    assert_eq!(heights(&dead.offer(round0)), [1]);
    assert_eq!(dead.offer(round1), Offer::Duplicate, "the other copy");
    assert_eq!(heights(&dead.offer(next)), [2]);
    assert_eq!(dead.tip_hash(), network.tip_hash());
    assert_eq!(dead.state().state_root(), network.state().state_root());
}
