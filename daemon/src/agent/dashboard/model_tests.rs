//! Tests of the dashboard's bookkeeping.

use super::*;

fn da(height: u64, root: u8) -> DaStateView {
    serde_json::from_value(serde_json::json!({
        "height": height, "tip_hash": "00".repeat(32), "events": height * 2,
        "ignored_events": 0, "state_root": format!("{root:02x}").repeat(32), "nodes": 0,
        "chunks": 0, "replicas": 0, "zones": 0, "receipts": 0, "pending": 0,
        "target_height": height, "rejected": 0, "synced": true, "is_authority": false,
        "queued_events": 0
    }))
    .expect("DaStateView")
}

fn status(peer_id: &str, mode: &str) -> StatusResponse {
    serde_json::from_value(serde_json::json!({
        "peer_id": peer_id, "mode": mode, "network": "devnet", "services": [mode],
        "connected_peers": 1, "known_peers": 1, "listen_addrs": [], "protocol_version": "1.0",
        "agent_version": "dsdnd/0", "uptime_secs": 1, "bootstrap_stage": "idle",
        "isolated": false, "da_authority": null, "is_da_authority": false
    }))
    .expect("StatusResponse")
}

fn peer(peer_id: &str, connected: bool, relayed: Option<bool>) -> PeerInfo {
    let connection = relayed.map(|r| {
        serde_json::json!({"remote_addr": "/ip4/127.0.0.9/tcp/1", "relayed": r, "age_secs": 1,
            "rtt_ms": 0.5, "bytes_in": 1, "bytes_out": 1, "connections": 1})
    });
    serde_json::from_value(serde_json::json!({
        "peer_id": peer_id, "addresses": [], "services": [], "source": "inbound",
        "connected": connected, "direction": null, "last_seen": null, "last_success": null,
        "success_count": 0, "failure_count": 0, "score": 0, "connection": connection
    }))
    .expect("PeerInfo")
}

fn receipt(id: &str, executor: &str) -> SeenReceipt {
    SeenReceipt {
        id: id.to_owned(),
        executor: executor.to_owned(),
        executed_at_ms: 10_500,
    }
}

fn three() -> Board {
    let mut b = Board::new("devnet", 10_000);
    for (i, (name, mode)) in [
        ("boot", "bootstrap"),
        ("c1", "coordinator"),
        ("s1", "storage"),
    ]
    .into_iter()
    .enumerate()
    {
        assert_eq!(b.add_node(name, "127.0.0.1:1", None), i);
        b.observe_status(i, &status(&format!("P{name}"), mode));
    }
    b
}

#[test]
fn heights_are_first_seen_when_a_node_passes_them() {
    let mut b = three();
    b.observe_da(1, 100, &da(0, 1));
    b.observe_da(2, 110, &da(0, 1));
    b.observe_da(1, 350, &da(2, 2));
    b.observe_da(2, 600, &da(1, 3));
    b.observe_da(2, 850, &da(2, 2));
    let t = b.timeline(900);
    assert_eq!(t.heights.len(), 2);
    assert_eq!(t.heights[0].height, 1);
    assert_eq!(t.heights[0].spread.first_ms, 350);
    assert_eq!(t.heights[0].spread.seen_ms["c1"], 350);
    assert_eq!(t.heights[0].spread.seen_ms["s1"], 600);
    assert_eq!(t.heights[1].spread.seen_ms["s1"], 850);
    // A node's first answer: only heights others were seen with count, at that time.
    b.add_node("s2", "127.0.0.1:2", None);
    b.observe_da(3, 1000, &da(2, 2));
    let t = b.timeline(1000);
    assert_eq!(t.heights[1].spread.seen_ms["s2"], 1000);
    assert_eq!(t.heights.len(), 2);
    // A stale answer (overtaken by a newer one) is dropped; after a failure it counts.
    b.observe_da(2, 1100, &da(1, 3));
    assert_eq!(b.snapshot(1100).nodes[2].height, Some(2));
    b.observe_error(2, "restarting");
    b.observe_da(2, 1200, &da(1, 3));
    assert_eq!(b.snapshot(1200).nodes[2].height, Some(1));
    let mut late = three();
    late.observe_da(1, 5, &da(7, 1));
    assert!(late.timeline(5).heights.is_empty());
    // Samples: on change, else once a second; root shortened.
    assert_eq!(
        t.samples["s1"].iter().map(|s| s.height).collect::<Vec<_>>(),
        vec![0, 1, 2]
    );
    assert_eq!(t.samples["s1"][2].root, "02".repeat(8));
}

#[test]
fn everything_is_bounded() {
    let mut b = three();
    b.observe_da(1, 0, &da(0, 1));
    for i in 1..=(HISTORY_CAP as u64 + 50) {
        b.observe_da(1, i * 1000, &da(i * 3, 1));
    }
    let t = b.timeline(0);
    assert_eq!(t.samples["c1"].len(), HISTORY_CAP);
    assert_eq!(t.heights.len(), HEIGHTS_CAP);
    let top = (HISTORY_CAP as u64 + 50) * 3;
    assert_eq!(t.heights.last().map(|h| h.height), Some(top));
    // A jump from 0 to a huge height records only the newest heights.
    let mut j = three();
    j.observe_da(1, 0, &da(0, 1));
    j.observe_da(1, 1, &da(1_000_000, 1));
    assert_eq!(j.timeline(1).heights.len(), HEIGHTS_CAP);

    b.observe_receipts(1, 0, &[]);
    for i in 0..(RECEIPTS_CAP + 5) {
        b.observe_receipts(1, i as u64, &[receipt(&format!("r{i}"), "Ps1")]);
    }
    let t = b.timeline(0);
    assert_eq!(t.receipts.len(), RECEIPTS_CAP);
    assert_eq!(t.receipts[0].id, "r5");

    let mut many = three();
    let peers: Vec<PeerInfo> = (0..EXTERNAL_CAP + 10)
        .map(|i| peer(&format!("X{i}"), true, None))
        .collect();
    many.observe_da(0, 0, &da(0, 0));
    many.observe_peers(0, &peers);
    let s = many.snapshot(0);
    assert_eq!(s.external.len(), EXTERNAL_CAP);
    assert_eq!(s.edges.len(), EXTERNAL_CAP);
}

#[test]
fn receipts_spread_from_the_first_node_listing_them() {
    let mut b = three();
    b.observe_receipts(1, 100, &[receipt("old", "Ps1")]);
    b.observe_receipts(2, 100, &[]);
    b.observe_receipts(1, 400, &[receipt("r1", "Ps1"), receipt("old", "Ps1")]);
    b.observe_receipts(2, 700, &[receipt("r1", "Ps1")]);
    b.observe_receipts(2, 900, &[receipt("r1", "Ps1")]);
    let t = b.timeline(1000);
    assert!(b.active(1000, 3000), "a receipt spread at 700");
    assert!(!b.active(3700, 3000));
    assert_eq!(t.receipts.len(), 1, "{:?}", t.receipts);
    let r = &t.receipts[0];
    assert_eq!(r.executor, "s1");
    assert_eq!(r.executed_ms, 500);
    assert_eq!(r.spread.first_ms, 400);
    assert_eq!(r.spread.seen_ms["s1"], 700);
    let json = serde_json::to_value(&t).expect("json");
    assert_eq!(json["receipts"][0]["seen_ms"]["c1"], 400);
}

#[test]
fn edges_once_each_relayed_when_either_end_says_so() {
    let mut b = three();
    for i in 0..3 {
        b.observe_da(i, 0, &da(0, 0));
    }
    b.observe_peers(0, &[peer("Pc1", true, None), peer("Ps1", false, None)]);
    b.observe_peers(
        1,
        &[peer("Pboot", true, None), peer("Ps1", true, Some(false))],
    );
    b.observe_peers(2, &[peer("Pc1", true, Some(true)), peer("Pzz", true, None)]);
    let s = b.snapshot(0);
    let pairs: Vec<(&str, &str, bool)> = s
        .edges
        .iter()
        .map(|e| (e.a.as_str(), e.b.as_str(), e.relayed))
        .collect();
    assert_eq!(
        pairs,
        vec![
            ("Pzz", "s1", false),
            ("boot", "c1", false),
            ("c1", "s1", true)
        ]
    );
    assert_eq!(
        s.external,
        vec![External {
            peer_id: "Pzz".into()
        }]
    );
    // A node that stops answering loses its edges.
    b.observe_error(2, "connection refused");
    let s = b.snapshot(0);
    assert_eq!(s.edges.len(), 2, "{:?}", s.edges);
    assert!(!s.nodes[2].up);
    assert_eq!(s.nodes[2].error.as_deref(), Some("connection refused"));
}

#[test]
fn committee_marks_the_proposer_and_da_agreement() {
    let mut b = three();
    b.observe_da(1, 0, &da(3, 9));
    b.observe_da(2, 0, &da(3, 9));
    b.observe_da(0, 0, &da(0, 0));
    let st = CommitteeStatusResponse {
        me: "Pc1".into(),
        members: vec!["Pc1".into(), "Pother".into()],
        threshold: 2,
        epoch: 0,
        group_key: Some("ab".repeat(32)),
        state: "ready".into(),
        rotation: Some(dsdn_daemon::api::RotationStatusView {
            state: "idle".into(),
            height: 4,
            round: 0,
            proposer: Some("Pc1".into()),
            proposing: true,
            lock: None,
            timeout_in_ms: 0,
            waiting_for: Vec::new(),
            detail: None,
        }),
        epochs: None,
    };
    b.observe_committee(1, Some(st));
    let s = b.snapshot(0);
    let c = s.committee.expect("committee");
    assert_eq!(c.members[0].name.as_deref(), Some("c1"));
    assert!(c.members[0].proposer);
    assert_eq!(c.members[0].state.as_deref(), Some("ready"));
    assert_eq!(c.members[1].name, None);
    assert!(!c.members[1].proposer);
    assert_eq!(s.da.max_height, 3);
    assert_eq!(s.da.agree, 2);
    assert_eq!(s.da.total, 2, "bootstrap nodes carry no DA");
    assert_eq!(s.da.reference_root, Some("09".repeat(32)));
}
