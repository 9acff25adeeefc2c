//! Unit tests of the node handle's types.

use super::*;

#[test]
fn stats_rate() {
    let v = PeerStatsView {
        success_count: 3,
        failure_count: 1,
        ..PeerStatsView::default()
    };
    assert_eq!(v.with_success_rate().success_rate, Some(0.75));
    assert_eq!(
        PeerStatsView::default().with_success_rate().success_rate,
        None
    );
}

#[test]
fn da_state_json_has_hex_hashes_and_reads_back() {
    let st = DaStateView {
        height: 3,
        tip_hash: [0xab; 32],
        events: 4,
        ignored_events: 0,
        state_root: [0x01; 32],
        nodes: 1,
        chunks: 2,
        replicas: 3,
        zones: 1,
        receipts: 5,
        pending: 0,
        target_height: 3,
        rejected: 0,
        synced: true,
        is_authority: false,
        queued_events: 0,
        durable_height: 3,
        degraded: None,
        committee_epoch: None,
        authority_key: None,
    };
    let json = serde_json::to_value(&st).unwrap();
    assert_eq!(json["tip_hash"], "ab".repeat(32));
    assert_eq!(json["state_root"], "01".repeat(32));
    let back: DaStateView = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(back, st);
    // Older daemons send neither `receipts` nor `durable_height`: read as 0.
    let mut old = json;
    let obj = old.as_object_mut().unwrap();
    obj.remove("receipts");
    obj.remove("durable_height");
    let back: DaStateView = serde_json::from_value(old).unwrap();
    assert_eq!((back.receipts, back.durable_height), (0, 0));
}
