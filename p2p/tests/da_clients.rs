//! Swarm-level tests of the DA log's clients (issue 5 §2 and §5): a light client that
//! backfills and verifies ranges, and a storage node that registers itself with the DA
//! authority. Real nodes on loopback.

use std::time::Duration;

use dsdn_p2p::da::RegistrationView;
use dsdn_p2p::handle::RangeError;
use dsdn_p2p::node::signing_key;
use dsdn_p2p::{DaNotice, LightClient, LightConfig};
use dsdn_protocols::da::register::RegisterRequest;
use dsdn_protocols::da::sync::{SyncRequest, SyncResponse};
use dsdn_protocols::da::DaEvent;
use dsdn_protocols::ServiceType;
use libp2p::identity::Keypair;
use libp2p::Multiaddr;

mod common;
use common::{
    authority, chain_break, forged_signature, free_addr, load_chain, net, quick_bootstrap,
    spawn_listening_rogue, start_da_node, test_chain, wait_until, DaNodeSpec, RogueSaw,
};
use dsdn_bootstrap::config::StaticPeer;

fn light_config(peer: StaticPeer) -> LightConfig {
    LightConfig {
        network: net(),
        address_policy: dsdn_protocols::AddressPolicy::PERMISSIVE,
        da_authority: Some(authority()),
        bootstrap: quick_bootstrap(vec![peer]),
        data_dir: None,
        keypair: None,
        checkpoint: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_late_light_client_backfills_every_notice_in_order_and_reads_verified_ranges() {
    const N: u64 = 50;
    let chain = test_chain(N);
    let a = start_da_node(DaNodeSpec::default());
    load_chain(&a.handle, &chain, N).await;

    let mut client = LightClient::start(light_config(a.as_static())).unwrap();
    let mut got: Vec<DaNotice> = Vec::new();
    while (got.len() as u64) < N {
        let n = tokio::time::timeout(Duration::from_secs(20), client.next())
            .await
            .expect("light client: notice not received")
            .expect("light client stopped");
        got.push(n);
    }
    assert_eq!(
        got.iter().map(|n| n.height).collect::<Vec<_>>(),
        (1..=N).collect::<Vec<_>>(),
        "notices for heights 1..=50, in order"
    );
    for n in &got {
        assert_eq!(n.hash, chain.hash(n.height));
        assert_eq!(n.events, chain.blobs[n.height as usize - 1].events);
    }
    assert_eq!(got.last().unwrap().state_root, chain.root);
    let state = client.handle().da_state().await.unwrap();
    assert_eq!((state.height, state.state_root), (N, chain.root));

    // Ranges are asked of the full node and verified.
    let range = client.range(10, 20).await.unwrap().unwrap();
    assert_eq!(range, chain.blobs[9..29].to_vec());
    let capped = client.range(1, 1000).await.unwrap().unwrap();
    assert_eq!(
        capped,
        chain.blobs[..N as usize].to_vec(),
        "at most the tip"
    );
    let beyond = client.range(N + 1, 5).await.unwrap().unwrap();
    assert!(beyond.is_empty());
    assert!(a.metric("da_sync_blobs_served_total") >= (N + 20 + N) as f64);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_light_client_refuses_a_range_that_does_not_verify() {
    const N: u64 = 30;
    let chain = test_chain(N);
    let bad_sig = forged_signature(&chain, 6);
    let broken = chain_break(&chain, 21);
    let blobs: Vec<Vec<u8>> = (1..=N).map(|h| chain.bytes(h)).collect();
    // Honest about its (empty) log during backfill, lies when asked for ranges.
    let answer = Box::new(move |req: &SyncRequest| {
        let serve = |from: u64, bad: u64, forged: &[u8]| SyncResponse {
            tip: N,
            blobs: (from..from + 3)
                .map(|h| {
                    let b = if h == bad {
                        forged.to_vec()
                    } else {
                        blobs[h as usize - 1].clone()
                    };
                    serde_bytes::ByteBuf::from(b)
                })
                .collect(),
        };
        Some(match req.from {
            5 => serve(5, 6, &bad_sig),
            20 => serve(20, 21, &broken),
            // The heights are right, but they are blobs 2..=4 served as 11..=13.
            11 => SyncResponse {
                tip: N,
                blobs: (2..=4)
                    .map(|h| serde_bytes::ByteBuf::from(blobs[h - 1].clone()))
                    .collect(),
            },
            _ => SyncResponse {
                tip: 0,
                blobs: Vec::new(),
            },
        })
    });
    let port = free_addr("127.0.0.1").port();
    let addr: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let mut rogue = spawn_listening_rogue(addr.clone(), answer);
    let client = LightClient::start(light_config(StaticPeer::Multiaddr(addr))).unwrap();
    rogue
        .wait_for(Duration::from_secs(15), |s| matches!(s, RogueSaw::Sync(_)))
        .await
        .expect("the light client never asked the rogue");

    for (from, what) in [
        (5, "bad signature"),
        (20, "broken hash chain"),
        (11, "wrong heights"),
    ] {
        let r = client.range(from, 3).await.unwrap();
        assert!(
            matches!(r, Err(RangeError::Invalid(_))),
            "{what}: a range that does not verify was returned: {r:?}"
        );
    }
    // Nothing of it reached the light client's own log.
    let state = client.handle().da_state().await.unwrap();
    assert_eq!(state.height, 0);
    assert_eq!(state.pending, 0);
    client.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_storage_node_registers_with_the_da_authority() {
    let coord_key = Keypair::generate_ed25519();
    let coord_authority = signing_key(&coord_key).unwrap().verifying_key().to_bytes();
    let coord = start_da_node(DaNodeSpec {
        key: coord_key,
        authority: coord_authority,
        service: ServiceType::Coordinator,
        ..DaNodeSpec::default()
    });
    let request = RegisterRequest {
        zone: "id-jkt-1".into(),
        capacity_bytes: 1 << 40,
        class: "datacenter".into(),
    };
    let storage = start_da_node(DaNodeSpec {
        authority: coord_authority,
        static_peers: vec![coord.as_static()],
        registration: Some(request.clone()),
        ..DaNodeSpec::default()
    });
    assert!(matches!(
        storage.handle.status().await.unwrap().registration,
        Some(RegistrationView::Pending { .. })
    ));
    assert!(coord.handle.status().await.unwrap().registration.is_none());

    wait_until(
        Duration::from_secs(25),
        "storage node registered",
        || async {
            matches!(
                storage.handle.status().await.unwrap().registration,
                Some(RegistrationView::Registered { .. })
            )
        },
    )
    .await;
    let Some(RegistrationView::Registered { height }) =
        storage.handle.status().await.unwrap().registration
    else {
        unreachable!()
    };
    let expected = DaEvent::NodeRegistered {
        node_id: storage.peer_id.to_base58(),
        zone: request.zone,
        capacity_bytes: request.capacity_bytes,
        class: request.class,
    };
    // The event is in both logs, at the height the registrar reports, and both states agree.
    for node in [&coord, &storage] {
        node.handle
            .wait_da_height(height, Duration::from_secs(10))
            .await
            .unwrap();
        let blobs = node.handle.da_range(height, 1).await.unwrap().unwrap();
        assert_eq!(blobs.len(), 1);
        assert!(blobs[0].events.contains(&expected), "{:?}", blobs[0].events);
        assert_eq!(node.handle.da_state().await.unwrap().nodes, 1);
    }
    let (c, s) = (
        coord.handle.da_state().await.unwrap(),
        storage.handle.da_state().await.unwrap(),
    );
    assert_eq!((c.height, c.state_root), (s.height, s.state_root));
    assert!(c.is_authority && !s.is_authority);
    // The storage node sees itself registered in its own log as soon as it applied the
    // blob; the coordinator answers (and counts) once the storage node confirmed holding
    // that blob (issue 13 §4).
    wait_until(
        Duration::from_secs(10),
        "the coordinator answered the registration",
        || async { coord.metric("da_registrations_total{result=\"published\"}") == 1.0 },
    )
    .await;
    assert_eq!(coord.metric("da_blobs_published_total"), 1.0);
}
