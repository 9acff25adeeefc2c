//! Submitted and gossiped blobs, notices.

use super::*;

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

    let far = DaBlob::sign(
        &auth_key(),
        &net(),
        2000,
        [1; 32],
        [1; 32],
        5000,
        events(2000, 0),
    )
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

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

    /// Arbitrary bytes, and a valid blob with one byte changed, submitted or gossiped, never
    /// panic and are never stored (nothing is applied, held or written to the log).
    #[test]
    fn arbitrary_and_mutated_bytes_are_never_stored(
        data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..1024),
        at in proptest::prelude::any::<proptest::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let chain = Chain::new(1);
        let mut mutated = chain.blob(1).to_vec();
        let i = at.index(mutated.len());
        mutated[i] ^= flip;
        let mut o = open(dir.path());
        for bytes in [&data[..], &mutated[..]] {
            let _ = o.svc.submit(bytes);
            let _ = o.svc.on_gossip(peer(), bytes);
        }
        let v = o.svc.view();
        // A flipped byte may only leave the blob valid if it did not change it at all.
        proptest::prop_assert!(v.height == 0 || v.tip_hash == chain.hash(1));
        proptest::prop_assert_eq!(v.pending, 0);
        drop(o);
        let again = open(dir.path());
        proptest::prop_assert_eq!(again.svc.view().height, v.height);
    }
}
