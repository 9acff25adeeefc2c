//! Tests of [`LocalNet`]: pure helpers, and the real-daemon smoke test (ignored).

use super::*;
use crate::client::ClientError;
use crate::localnet::{MeshReport, NodeMesh};

#[test]
fn node_ips() {
    assert_eq!(node_ip(0), Ipv4Addr::new(127, 0, 0, 2));
    assert_eq!(node_ip(1), Ipv4Addr::new(127, 0, 0, 3));
    assert_eq!(node_ip(5), Ipv4Addr::new(127, 0, 0, 7));
    assert_eq!(node_ip(MAX_NODES - 1), Ipv4Addr::new(127, 0, 0, 254));
}

#[test]
fn mesh_report_summary() {
    let report = MeshReport {
        nodes: vec![
            NodeMesh {
                name: "bootstrap".into(),
                connected: Some(2),
                missing: vec![],
                error: None,
            },
            NodeMesh {
                name: "storage-1".into(),
                connected: Some(1),
                missing: vec!["coordinator".into()],
                error: None,
            },
            NodeMesh {
                name: "coordinator".into(),
                connected: None,
                missing: vec![],
                error: Some("down".into()),
            },
        ],
    };
    assert!(!report.complete());
    assert_eq!(
        report.to_string(),
        "bootstrap=2 storage-1=1(missing coordinator) coordinator=?(down)"
    );
    let full = MeshReport {
        nodes: vec![report.nodes[0].clone()],
    };
    assert!(full.complete());
}

/// End to end with the real daemon: `cargo build --bins` first, then
/// `cargo test -p dsdn-daemon --lib real_localnet -- --ignored --nocapture`.
#[tokio::test]
#[ignore = "needs the dsdnd binary (cargo build --bins)"]
async fn real_localnet_smoke() {
    let mut net = LocalNet::start_with_progress(LocalNetSpec::default(), |l| println!("{l}"))
        .await
        .expect("start");
    let report = net
        .wait_all_connected(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
    println!("mesh: {report}");

    let ids: Vec<String> = net
        .storage_nodes()
        .map(|n| n.peer_id().to_owned())
        .collect();
    // The storage nodes register themselves; the sample's own registrations are left out.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while net
        .coordinator()
        .client()
        .da_state()
        .await
        .expect("state")
        .nodes
        < ids.len()
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "storage nodes did not register\n{}",
            net.log_tails(20)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let events: Vec<_> = super::super::sample_da_events(&ids, 20 + ids.len())
        .into_iter()
        .filter(|e| !matches!(e, dsdn_protocols::da::DaEvent::NodeRegistered { .. }))
        .collect();
    let resp = net
        .coordinator()
        .client()
        .da_publish(&events)
        .await
        .expect("publish");
    assert_eq!(resp.events, 20);
    let total = net
        .coordinator()
        .client()
        .da_state()
        .await
        .expect("state")
        .events;
    let err = net
        .node("storage-1")
        .expect("node")
        .client()
        .da_publish(&events)
        .await
        .expect_err("not the authority");
    assert!(matches!(err, ClientError::Api { .. }), "{err}");
    let root = net
        .wait_da_converged(total, Duration::from_secs(30))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
    println!("state root {root}");

    let metrics = net
        .node("storage-2")
        .expect("node")
        .client()
        .metrics_text()
        .await
        .expect("metrics");
    let resolves = crate::client::metric_value(&metrics, "bootstrap_dns_resolve_total", &[]);
    assert!(resolves.is_some_and(|v| v >= 1.0), "{metrics}");

    let node = net.node_mut("storage-3").expect("node");
    node.restart().await.expect("restart");
    node.wait_until(Duration::from_secs(60), |s| s.connected_peers >= 1)
        .await
        .expect("reconnects");
    net.add_node("storage-late", NodeMode::Storage)
        .await
        .expect("late joiner");
    net.wait_all_connected(Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
    let stopped = net.stop_all().await.expect("stop");
    assert!(stopped.iter().all(|(_, clean)| *clean), "{stopped:?}");
}

#[test]
fn default_spec_is_a_devnet() {
    let spec = LocalNetSpec::default();
    assert_eq!(spec.storage_nodes, 4);
    assert_eq!(spec.coordinators, 1);
    assert_eq!(spec.pex_interval_secs, 5);
    assert!(spec.dir.is_none());
}
