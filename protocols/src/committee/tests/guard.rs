//! Signing-guard tests.

use super::*;
use crate::codec;

fn h(b: u8) -> [u8; 32] {
    [b; 32]
}

#[test]
fn same_message_allowed_different_refused() {
    let mut g = SlotGuard::new();
    let slot = Slot::Receipt([3; 32]);
    g.record(&slot, &h(1)).unwrap();
    g.record(&slot, &h(1)).unwrap();
    assert_eq!(g.record(&slot, &h(2)), Err(GuardError::Equivocation(slot)));
    assert_eq!(g.signed(&slot), Some(h(1)));
    assert_eq!(g.len(), 1);
}

#[test]
fn low_water_mark_prunes_and_refuses() {
    let mut g = SlotGuard::new();
    for height in 1..=10 {
        g.record(&Slot::DaBlob(height), &h(height as u8)).unwrap();
    }
    g.prune_da_below(6);
    assert_eq!(g.len(), 5);
    assert_eq!(g.da_low_water(), 6);
    assert!(matches!(
        g.check(&Slot::DaBlob(3), &h(3)),
        Err(GuardError::BelowLowWater { low_water: 6, .. })
    ));
    g.prune_da_below(2); // never lowered
    assert_eq!(g.da_low_water(), 6);
    g.record(&Slot::DaBlob(6), &h(6)).unwrap();
}

#[test]
fn da_slots_are_bounded_by_raising_the_low_water_mark() {
    let mut g = SlotGuard::new();
    for height in 0..(MAX_GUARD_DA_SLOTS as u64 + 10) {
        g.record(&Slot::DaBlob(height), &h(1)).unwrap();
    }
    assert_eq!(g.len(), MAX_GUARD_DA_SLOTS);
    assert_eq!(g.da_low_water(), 10);
    assert!(g.check(&Slot::DaBlob(9), &h(1)).is_err());
}

#[test]
fn receipts_are_bounded_by_refusing_new_ones() {
    let mut g = SlotGuard::new();
    for i in 0..MAX_GUARD_RECEIPT_SLOTS as u32 {
        let mut id = [0u8; 32];
        id[..4].copy_from_slice(&i.to_be_bytes());
        g.record(&Slot::Receipt(id), &h(1)).unwrap();
    }
    assert_eq!(
        g.record(&Slot::Receipt([0xff; 32]), &h(1)),
        Err(GuardError::Full)
    );
    // Recorded ones are still answered; DA slots are unaffected.
    g.record(&Slot::Receipt([0; 32]), &h(1)).unwrap();
    g.record(&Slot::DaBlob(1), &h(1)).unwrap();
    // A full guard fits its cap.
    for height in 2..(MAX_GUARD_DA_SLOTS as u64 + 1) {
        g.record(&Slot::DaBlob(u64::MAX - height), &h(1)).unwrap();
    }
    let bytes = g.to_bytes().unwrap();
    assert!(bytes.len() <= MAX_GUARD_BYTES, "{}", bytes.len());
    assert_eq!(SlotGuard::from_bytes(&bytes).unwrap(), g);
}

#[test]
fn guard_bytes_round_trip_and_refusals() {
    let mut g = SlotGuard::new();
    g.record(&Slot::DaBlob(7), &h(7)).unwrap();
    g.record(&Slot::Receipt([9; 32]), &h(9)).unwrap();
    g.prune_da_below(5);
    let back = SlotGuard::from_bytes(&g.to_bytes().unwrap()).unwrap();
    assert_eq!(back, g);
    assert_eq!(back.da_low_water(), 5);

    #[derive(serde::Serialize)]
    struct Other {
        version: u16,
    }
    let v2 = codec::encode(&Other { version: 2 }, 64).unwrap();
    assert!(matches!(
        SlotGuard::from_bytes(&v2),
        Err(GuardDecodeError::UnsupportedVersion(2))
    ));

    #[derive(serde::Serialize)]
    struct Wire {
        version: u16,
        da_low_water: u64,
        da: Vec<(u64, serde_bytes::ByteBuf)>,
        receipts: Vec<(serde_bytes::ByteBuf, serde_bytes::ByteBuf)>,
    }
    let below = Wire {
        version: 1,
        da_low_water: 10,
        da: vec![(3, serde_bytes::ByteBuf::from(vec![0; 32]))],
        receipts: vec![],
    };
    let bytes = codec::encode(&below, 1024).unwrap();
    assert!(matches!(
        SlotGuard::from_bytes(&bytes),
        Err(GuardDecodeError::Malformed(_))
    ));
    let short = Wire {
        version: 1,
        da_low_water: 0,
        da: vec![(3, serde_bytes::ByteBuf::from(vec![0; 31]))],
        receipts: vec![],
    };
    let bytes = codec::encode(&short, 1024).unwrap();
    assert!(matches!(
        SlotGuard::from_bytes(&bytes),
        Err(GuardDecodeError::Malformed(_))
    ));
}
