//! Unit tests of the epoch rotation's node side.
use super::*;
use crate::committee::member_id;
use dsdn_protocols::da::EpochRecord;
use in_force::in_force;

fn record(epoch: u64, effective_height: u64) -> EpochRecord {
    EpochRecord {
        epoch,
        members: vec![format!("m{epoch}")],
        threshold: 1,
        group_key: dsdn_protocols::da::Bytes32([epoch as u8; 32]),
        effective_height,
        sealed_at: effective_height - 2,
    }
}

#[test]
fn the_committee_in_force_follows_the_effective_heights() {
    let genesis = CurrentCommittee {
        epoch: 1,
        members: vec!["g".into()],
        threshold: 2,
    };
    let epochs = vec![record(2, 10), record(3, 20)];
    assert_eq!(in_force(&genesis, &epochs, 9), genesis);
    assert_eq!(in_force(&genesis, &epochs, 10).epoch, 2);
    assert_eq!(in_force(&genesis, &epochs, 19).epoch, 2);
    assert_eq!(in_force(&genesis, &epochs, 20).epoch, 3);
    assert_eq!(in_force(&genesis, &[], 100), genesis);
}

#[test]
fn request_tags_carry_their_epoch() {
    use super::super::service::{tag_base, tag_epoch};
    assert_eq!(tag_epoch(tag_base(7) + 12_345), 7);
    assert_ne!(tag_epoch(tag_base(7)), tag_epoch(tag_base(8)));
}

/// A share is the next committee's only for its exact member order: the same members in
/// another order (a share adopted under an earlier window's seed) must not be reused for a
/// later window's selection, or the rotation would record an order its DKG did not run
/// with and a restarted member could not open its share (the CI failure of stop 26).
#[test]
fn a_held_share_is_next_only_in_the_same_member_order() {
    let peers: Vec<PeerId> = (0..3)
        .map(|_| {
            libp2p::identity::Keypair::generate_ed25519()
                .public()
                .to_peer_id()
        })
        .collect();
    let config = CommitteeConfig {
        epoch: 4,
        threshold: 2,
        members: peers
            .iter()
            .map(|p| member_id(p).expect("member id"))
            .collect(),
    };
    let texts: Vec<String> = peers.iter().map(PeerId::to_string).collect();
    let next = |members: Vec<String>, epoch, threshold| NextCommittee {
        epoch,
        members,
        threshold,
    };
    let key = Some([7; 32]);
    assert_eq!(held_key(&config, key, &next(texts.clone(), 4, 2)), key);
    assert_eq!(held_key(&config, None, &next(texts.clone(), 4, 2)), None);
    let mut reordered = texts.clone();
    reordered.rotate_left(1);
    assert_eq!(held_key(&config, key, &next(reordered, 4, 2)), None);
    assert_eq!(held_key(&config, key, &next(texts.clone(), 5, 2)), None);
    assert_eq!(held_key(&config, key, &next(texts, 4, 3)), None);
}
