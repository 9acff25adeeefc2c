//! Unit tests of the epoch rotation's node side.
use super::*;
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
