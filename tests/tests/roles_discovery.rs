//! 28.1.C §1–§3, integration scenarios 9 (service type discovery) and 11 (multi-component
//! bootstrap), with real `dsdnd` processes on 127.0.0.x and a real DNS seed server.
//!
//! The contract: `dsdnd --mode bootstrap|storage|coordinator|validator|chain|ingress`
//! advertises its service type in the handshake and in PEX entries; each mode keeps a
//! minimum of connected peers per role (validator → chain 1, coordinator 1, validator 1;
//! storage → coordinator 1, chain 1, storage 2; coordinator → coordinator 2, chain 1,
//! storage 1; chain → chain 2; ingress → coordinator 1, storage 1; bootstrap → none),
//! looking missing roles up in Kademlia (`discovery_lookups_total{service}`,
//! `discovery_providers_found_total{service}`) and exporting
//! `discovery_role_deficit{service}` (required minus connected, 0 when satisfied).

use std::collections::BTreeMap;
use std::time::Duration;

use dsdn_daemon::localnet::{sample_da_events, Node};
use dsdn_integration_tests::roles::{
    agent_da_publish, agent_peers_json, expected_deficit, required_roles, services_of,
    wait_deficit, Launch,
};
use dsdn_integration_tests::{
    connected_ids, eventually, is_connected_to, metric, metric_opt, wait_connected, wait_metric,
    Checks, TestNet, WAIT,
};

/// Time a role-aware node gets to reach its roles (Kademlia lookups back off from 2 s).
const ROLES_WAIT: Duration = Duration::from_secs(45);

/// Scenario 9: a bootstrap node B; a coordinator C, a chain node X and six storage nodes
/// (decoys) that join through B; then a validator V whose *only* source is B (static
/// peer), with 3 outbound slots and no inbound ones, so it cannot be dialled and must pick
/// C and X among the eight peers B knows (Kademlia's own query connections, capped by the
/// peer manager, may add some). It must end up connected to both C and X, its coordinator
/// and chain deficits at 0, and `dsdn-agent peers list --type coordinator --json` must
/// show C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s09_validator_discovers_coordinator_and_chain() -> anyhow::Result<()> {
    const SEED: &str = "s9.dsdn.test";
    let mut net = TestNet::new("s09-service-discovery").await?;
    net.set_dns(SEED, &[11]);
    let via_seed = net.config().with_dns_seed(SEED);
    let mut launches = vec![
        Launch::new("bootstrap", "bootstrap", 11, net.config()),
        Launch::new("coordinator", "coordinator", 12, via_seed.clone()),
        Launch::new("chain", "chain", 13, via_seed.clone()),
    ];
    for i in 0..6u8 {
        launches.push(Launch::new(
            format!("storage-{i}"),
            "storage",
            21 + i,
            via_seed.clone(),
        ));
    }
    net.spawn_all(&launches).await?;
    // B knows everyone before V asks it.
    wait_connected(net.node("bootstrap"), 8, WAIT).await?;

    let v_cfg = net
        .config()
        .with_static_peer(net.addr(11))
        .with_connection_limits(3, 0);
    net.spawn_mode("validator", "validator", 30, &v_cfg).await?;
    let (b, c, x, v) = (
        net.node("bootstrap"),
        net.node("coordinator"),
        net.node("chain"),
        net.node("validator"),
    );
    // Honest setup: V's config names neither C nor X.
    let v_text = std::fs::read_to_string(net.config_path("validator"))?;
    assert!(
        !v_text.contains(&net.addr(12))
            && !v_text.contains(&net.addr(13))
            && !v_text.contains(SEED),
        "validator config leaks the coordinator/chain: {v_text}"
    );
    let mut checks = Checks::new();
    // The handshake and PEX carry the service types: B lists C and X with theirs.
    let b_peers = b.client().peers().await?;
    for (who, service) in [(c, "coordinator"), (x, "chain")] {
        let e = b_peers.iter().find(|p| p.peer_id == who.peer_id());
        checks.ensure(
            e.is_some_and(|p| p.services == vec![service.to_owned()]),
            format!(
                "bootstrap lists {} with services {:?}, want [{service}]",
                who.name(),
                e.map(|p| &p.services)
            ),
        );
    }
    checks.check(
        "validator /v1/status advertises [validator]",
        async {
            let st = v.client().status().await?;
            anyhow::ensure!(
                st.mode == "validator" && st.services == vec!["validator".to_owned()],
                "mode {} services {:?}",
                st.mode,
                st.services
            );
            Ok(())
        }
        .await,
    );

    // V finds C and X.
    let found = eventually(
        ROLES_WAIT,
        "the validator to connect to the coordinator and the chain node",
        || async { (is_connected_to(v, c).await && is_connected_to(v, x).await).then_some(()) },
    )
    .await;
    if found.is_err() {
        let ids = connected_ids(v).await;
        let names: Vec<&str> = net
            .nodes()
            .into_iter()
            .filter(|n| ids.iter().any(|id| id == n.peer_id()))
            .map(Node::name)
            .collect();
        eprintln!("s09: validator connected to {names:?}");
    }
    checks.check("validator connected to coordinator and chain", found);
    for service in ["coordinator", "chain"] {
        checks.check(
            &format!("validator bootstrap_active_peers_by_type{{{service}}} >= 1"),
            wait_metric(
                v,
                "bootstrap_active_peers_by_type",
                &[("service", service)],
                Duration::from_secs(5),
                |n| n >= 1.0,
            )
            .await,
        );
        checks.check(
            &format!("validator role deficit {service} back to 0"),
            wait_deficit(v, service, 0, Duration::from_secs(10)).await,
        );
        // A role PEX already supplied needs no lookup; a lookup that ran in a network
        // holding a provider must find it.
        let lookups = metric(v, "discovery_lookups_total", &[("service", service)]).await;
        let found = metric(
            v,
            "discovery_providers_found_total",
            &[("service", service)],
        )
        .await;
        eprintln!("s09: validator {service}: {lookups} lookup(s), {found} provider(s) found");
        checks.ensure(
            lookups == 0.0 || found >= 1.0,
            format!(
                "validator ran {lookups} Kademlia lookup(s) for {service} and found no provider"
            ),
        );
    }
    // The network has no other validator: that deficit stays, and is reported as such.
    checks.check(
        "validator role deficit validator stays 1 (no other validator in the network)",
        wait_deficit(v, "validator", 1, Duration::from_secs(5)).await,
    );
    // ... and keeps being looked up (it is the one role nothing else can supply).
    checks.check(
        "validator keeps looking up validators (discovery_lookups_total{validator} >= 1)",
        wait_metric(
            v,
            "discovery_lookups_total",
            &[("service", "validator")],
            Duration::from_secs(10),
            |n| n >= 1.0,
        )
        .await,
    );
    let sources: Vec<String> = v
        .client()
        .peers()
        .await?
        .into_iter()
        .filter(|p| p.connected)
        .map(|p| {
            format!(
                "{}:{}:{}",
                p.services.join("+"),
                p.source,
                p.direction.as_deref().unwrap_or("?")
            )
        })
        .collect();
    eprintln!("s09: validator's connected peers (service:source:direction): {sources:?}");
    // V accepts no inbound connection: it dialled C and X itself.
    let v_peers = v.client().peers().await?;
    for who in [c, x] {
        let dir = v_peers
            .iter()
            .find(|p| p.peer_id == who.peer_id() && p.connected)
            .and_then(|p| p.direction.clone());
        checks.ensure(
            dir.as_deref() == Some("outbound"),
            format!(
                "validator's connection to {} is {dir:?}, want outbound",
                who.name()
            ),
        );
    }

    // The real agent: `peers list --type coordinator|chain --json`.
    for (who, service) in [(c, "coordinator"), (x, "chain")] {
        let list = checks.check(
            &format!("dsdn-agent peers list --type {service} --json"),
            agent_peers_json(v, Some(service)).await,
        );
        if let Some(list) = list {
            let entry = list
                .iter()
                .find(|p| p["peer_id"].as_str() == Some(who.peer_id()));
            checks.ensure(
                entry.is_some_and(|e| e["connected"].as_bool() == Some(true)),
                format!(
                    "`peers list --type {service}` does not show {} connected: {list:?}",
                    who.name()
                ),
            );
            checks.ensure(
                !list.is_empty()
                    && list
                        .iter()
                        .all(|p| services_of(p).iter().any(|s| s == service)),
                format!("`peers list --type {service}` lists peers without {service}: {list:?}"),
            );
        }
    }
    // The minimums are kept, not a passing state: still connected a few seconds later.
    tokio::time::sleep(Duration::from_secs(3)).await;
    checks.ensure(
        is_connected_to(v, c).await && is_connected_to(v, x).await,
        "the validator lost the coordinator or the chain node again",
    );
    checks.finish()?;
    net.pass();
    Ok(())
}

/// `(node, service, deficit, _)` entries whose `discovery_role_deficit{service}` is not
/// `deficit`, described.
async fn wrong_deficits(want: &[(&Node, &str, usize, usize)]) -> Vec<String> {
    let mut wrong = Vec::new();
    for (n, service, deficit, _) in want {
        let v = metric_opt(n, "discovery_role_deficit", &[("service", service)]).await;
        if v != Some(*deficit as f64) {
            wrong.push(format!(
                "{} ({}): discovery_role_deficit{{service=\"{service}\"}} = {}, want {deficit}",
                n.name(),
                n.mode(),
                v.map_or_else(|| "absent".to_owned(), |v| v.to_string())
            ));
        }
    }
    wrong
}

/// The service type a node of `mode` advertises.
fn service_of(mode: &str) -> &str {
    mode
}

/// Scenario 11: bootstrap, chain ×2, storage ×3, coordinator ×2 (the first is the DA
/// authority), validator ×2 and ingress started at once, every one knowing only one DNS
/// seed (→ the bootstrap node).
///
/// What must hold: every node's required role is satisfied where the network has enough
/// such nodes (`discovery_role_deficit` 0), and where it has too few the deficit is exactly
/// the shortfall (a chain node needs 2 other chain nodes and has 1: deficit 1; a
/// coordinator needs 2 other coordinators and has 1: deficit 1); the DA authority's events
/// reach every non-bootstrap node with equal state roots; the bootstrap node applies none.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s11_multi_component_bootstrap() -> anyhow::Result<()> {
    const SEED: &str = "s11.dsdn.test";
    const EVENTS: usize = 40;
    let mut net = TestNet::new("s11-multi-component").await?;
    net.set_dns(SEED, &[11]);
    let (_, authority) = net.init_identity("coordinator-1")?;
    let cfg = net
        .config()
        .with_dns_seed(SEED)
        .with_da_authority(&authority);
    let layout: [(&str, &str, u8); 11] = [
        ("bootstrap", "bootstrap", 11),
        ("chain-1", "chain", 21),
        ("chain-2", "chain", 22),
        ("storage-1", "storage", 31),
        ("storage-2", "storage", 32),
        ("storage-3", "storage", 33),
        ("coordinator-1", "coordinator", 41),
        ("coordinator-2", "coordinator", 42),
        ("validator-1", "validator", 51),
        ("validator-2", "validator", 52),
        ("ingress", "ingress", 61),
    ];
    let launches: Vec<Launch> = layout
        .iter()
        .map(|(name, mode, last)| Launch::new(*name, mode, *last, cfg.clone()))
        .collect();
    net.spawn_all(&launches).await?;
    let mode_of: BTreeMap<&str, &str> = layout.iter().map(|(n, m, _)| (*n, *m)).collect();
    let count = |service: &str| {
        layout
            .iter()
            .filter(|(_, m, _)| service_of(m) == service)
            .count()
    };
    let mut checks = Checks::new();

    // Every node runs and advertises its mode.
    for n in net.nodes() {
        let mode = mode_of[n.name()];
        let st = n.client().status().await?;
        checks.ensure(
            st.mode == mode && st.services == vec![service_of(mode).to_owned()],
            format!(
                "{}: status mode {} services {:?}, want {mode}",
                n.name(),
                st.mode,
                st.services
            ),
        );
    }

    // Roles: satisfied where the network has enough, exactly short where it has too few.
    let mut want: Vec<(&Node, &str, usize, usize)> = Vec::new(); // node, service, deficit, min connected
    for n in net.nodes() {
        let mode = mode_of[n.name()];
        for (service, min) in required_roles(mode) {
            let others = count(service) - usize::from(service_of(mode) == *service);
            want.push((
                n,
                service,
                expected_deficit(mode, service, others),
                (*min).min(others),
            ));
        }
    }
    let started = std::time::Instant::now();
    let mut wrong = Vec::new();
    while started.elapsed() < ROLES_WAIT {
        wrong = wrong_deficits(&want).await;
        if wrong.is_empty() {
            // Settled, not passing through: the same a second later.
            tokio::time::sleep(Duration::from_secs(1)).await;
            wrong = wrong_deficits(&want).await;
            if wrong.is_empty() {
                break;
            }
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    eprintln!(
        "s11: role deficits {} after {:.1} s",
        if wrong.is_empty() {
            "settled"
        } else {
            "NOT settled"
        },
        started.elapsed().as_secs_f64()
    );
    for w in wrong {
        checks.ensure(false, w);
    }
    for (n, service, _, connected_min) in &want {
        let by_type = metric(n, "bootstrap_active_peers_by_type", &[("service", service)]).await;
        checks.ensure(
            by_type >= *connected_min as f64,
            format!(
                "{}: bootstrap_active_peers_by_type{{{service}}} = {by_type}, want >= {connected_min}",
                n.name()
            ),
        );
    }
    // The bootstrap node needs no role and looks nothing up.
    let b = net.node("bootstrap");
    let text = b.client().metrics_text().await?;
    let lookups: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("discovery_lookups_total{") && !l.trim_end().ends_with(" 0"))
        .collect();
    checks.ensure(
        lookups.is_empty(),
        format!("bootstrap node ran lookups: {lookups:?}"),
    );
    // PEX entries and handshakes carry the service types: every node lists every other
    // node it knows with the right one.
    for n in net.nodes() {
        let peers = n.client().peers().await?;
        for p in &peers {
            if let Some(o) = net.nodes().into_iter().find(|o| o.peer_id() == p.peer_id) {
                let want = vec![service_of(mode_of[o.name()]).to_owned()];
                checks.ensure(
                    p.services == want,
                    format!(
                        "{} lists {} with services {:?}, want {want:?}",
                        n.name(),
                        o.name(),
                        p.services
                    ),
                );
            }
        }
    }

    // DA: the authority publishes through the real agent; every non-bootstrap node applies.
    tokio::time::sleep(Duration::from_secs(2)).await; // gossipsub subscriptions settle
    let coordinator = net.node("coordinator-1");
    let storage_ids: Vec<String> = ["storage-1", "storage-2", "storage-3"]
        .iter()
        .map(|s| net.node(s).peer_id().to_owned())
        .collect();
    // The storage nodes register themselves first (their NodeRegistered events); the
    // sample's own registrations are left out so theirs stay as they asked.
    eventually(WAIT, "the storage nodes to register themselves", || async {
        let st = coordinator.client().da_state().await.ok()?;
        (st.nodes == storage_ids.len()).then_some(())
    })
    .await?;
    let events: Vec<_> = sample_da_events(&storage_ids, EVENTS + storage_ids.len())
        .into_iter()
        .filter(|e| !matches!(e, dsdn_protocols::da::DaEvent::NodeRegistered { .. }))
        .collect();
    assert_eq!(events.len(), EVENTS);
    agent_da_publish(coordinator, &net.dir().join("events"), &events).await?;
    let coord = coordinator.client().da_state().await?;
    let (root, total) = (coord.state_root, coord.events);
    assert_eq!(total, (EVENTS + storage_ids.len()) as u64);
    for n in net.nodes().into_iter().filter(|n| n.name() != "bootstrap") {
        let got = eventually(
            WAIT,
            &format!("{} to apply the {total} DA events", n.name()),
            || async {
                let st = n.client().da_state().await.ok()?;
                (st.events == total).then_some(st)
            },
        )
        .await;
        if let Some(st) = checks.check(&format!("{}: DA events applied", n.name()), got) {
            checks.ensure(
                st.state_root == root,
                format!(
                    "{}: state root {} != coordinator's {}",
                    n.name(),
                    hex::encode(st.state_root),
                    hex::encode(root)
                ),
            );
        }
    }
    let st = b.client().da_state().await?;
    checks.ensure(
        st.events == 0 && st.height == 0,
        format!("bootstrap node applied DA events: {st:?}"),
    );
    checks.ensure(
        metric_opt(b, "da_events_accepted_total", &[])
            .await
            .unwrap_or(0.0)
            == 0.0,
        "bootstrap node counts accepted DA events",
    );
    checks.finish()?;
    net.pass();
    Ok(())
}
