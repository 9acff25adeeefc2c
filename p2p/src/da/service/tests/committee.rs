//! Sealing through the committee: the proposal, the members' checks, the aggregate
//! signature. The committee's group signature is a plain Ed25519 signature, so the
//! authority key of these tests stands for the group key.

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

fn proposals(actions: &[DaAction]) -> Vec<(u64, Vec<u8>)> {
    actions
        .iter()
        .filter_map(|a| match a {
            DaAction::ThresholdSign { height, message } => Some((*height, message.clone())),
            _ => None,
        })
        .collect()
}

fn now_ms() -> u64 {
    unix_ms()
}

#[test]
fn a_member_seals_through_the_committee_and_others_check_the_proposal() {
    let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let t0 = Instant::now();
    let after_grace = t0 + Duration::from_secs(60);
    let mut proposer = member(d1.path(), t0);
    let other = member(d2.path(), t0);
    let mut rx = publish(&mut proposer.svc, vec![chunk_event(1), chunk_event(2)], t0);
    proposer.svc.poll(after_grace);
    let actions = proposer.svc.take_actions();
    let sent = proposals(&actions);
    assert_eq!(sent.len(), 1, "{actions:?}");
    assert!(
        gossiped(&actions).is_empty(),
        "nothing is gossiped before it is signed"
    );
    let (height, message) = sent[0].clone();
    assert_eq!(height, 1);
    // Members (the proposer included) agree to sign it; wrong slots and bytes are refused.
    proposer.svc.check_proposal(1, &message, now_ms()).unwrap();
    other.svc.check_proposal(1, &message, now_ms()).unwrap();
    assert!(other.svc.check_proposal(2, &message, now_ms()).is_err());
    assert!(other
        .svc
        .check_proposal(1, &message[1..], now_ms())
        .is_err());
    // While it waits, nothing else is sealed.
    let mut rx2 = publish(&mut proposer.svc, vec![chunk_event(3)], after_grace);
    proposer.svc.poll(after_grace + Duration::from_secs(1));
    assert!(proposals(&proposer.svc.take_actions()).is_empty());
    // An answer for another height is ignored; the aggregate signature completes the blob.
    let signature = auth_key().sign(&message).to_bytes();
    proposer.svc.on_threshold_signature(2, Ok(signature));
    assert_eq!(proposer.svc.view().height, 0);
    proposer.svc.on_threshold_signature(1, Ok(signature));
    assert_eq!(proposer.svc.view().height, 1);
    proposer.svc.flush();
    let blobs = gossiped(&proposer.svc.take_actions());
    assert_eq!(blobs.len(), 1);
    assert!(matches!(rx.try_recv(), Ok(Ok(p)) if p.heights == vec![1]));
    // The other member now checks the next proposal against blob 1.
    let stale = other.svc.check_proposal(2, &message, now_ms());
    assert!(stale.is_err(), "a height-1 blob offered for slot 2");
    proposer.svc.poll(after_grace + Duration::from_secs(2));
    let (h2, m2) = proposals(&proposer.svc.take_actions())[0].clone();
    assert_eq!(h2, 2);
    assert!(
        other.svc.check_proposal(2, &m2, now_ms()).is_err(),
        "a member that is behind refuses"
    );
    proposer
        .svc
        .on_threshold_signature(2, Err("2 of 3 members did not answer".into()));
    assert!(
        matches!(rx2.try_recv(), Ok(Err(PublishError::Seal(e))) if e.contains("did not answer"))
    );
    assert_eq!(proposer.svc.view().height, 1);
}

#[test]
fn a_forged_aggregate_or_a_proposal_that_breaks_the_chain_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let t0 = Instant::now();
    let mut m = member(dir.path(), t0);
    let mut rx = publish(&mut m.svc, vec![chunk_event(1)], t0);
    m.svc.poll(t0 + Duration::from_secs(60));
    let (height, message) = proposals(&m.svc.take_actions())[0].clone();
    // Signed by someone other than the group.
    let forged = other_key().sign(&message).to_bytes();
    m.svc.on_threshold_signature(height, Ok(forged));
    assert_eq!(m.svc.view().height, 0);
    assert!(
        matches!(rx.try_recv(), Ok(Err(PublishError::Seal(e))) if e.contains("does not verify"))
    );
    // Proposals that do not extend the tip, are dated wrongly, or are of another network.
    let unsigned = |prev: [u8; 32], ts: u64, network: &NetworkId| {
        DaBlob::unsigned(network, 1, prev, ts, vec![chunk_event(9)])
            .unwrap()
            .signing_bytes()
            .unwrap()
    };
    let now = now_ms();
    m.svc
        .check_proposal(1, &unsigned([0; 32], now, &net()), now)
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
        DaBlob::unsigned(&net(), 1, [0; 32], now_ms(), vec![event])
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
