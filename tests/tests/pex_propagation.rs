//! 28.1.C integration scenario 8 (PEX propagation): ten real `dsdnd` processes, only node
//! 1 knows the DNS seed ("hanya node 1 yang kenal DNS seed"); nodes 2–10 know node 1 only,
//! as their single static peer. After PEX rounds every node knows the other nine (its
//! `/v1/peers`, i.e. peers.dat ∪ connected, lists them, and peers.dat holds nine entries).
//! The time is printed; the spec's bound is 10 minutes, the test allows 60 s with
//! `pex_interval_secs = 2`.

use std::time::{Duration, Instant};

use dsdn_integration_tests::roles::Launch;
use dsdn_integration_tests::{eventually, known_ids, metric, Checks, TestNet, WAIT};

const SEED: &str = "pex.s8.dsdn.test";
const NODES: u8 = 10;
/// Upper bound on the time from the start of the ten processes until every node knows
/// every other one (generous for 2 loaded cores; the spec asks for < 10 min).
const BOUND: Duration = Duration::from_secs(60);

/// `127.0.0.<last>` of node `i` (1-based).
fn last(i: u8) -> u8 {
    10 + i
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s08_pex_propagation_ten_nodes_one_seed() -> anyhow::Result<()> {
    let mut net = TestNet::new("s08-pex").await?;
    // The seed names node 2: node 1 bootstraps through DNS, everyone else through node 1.
    net.set_dns(SEED, &[last(2)]);
    let mut launches = vec![Launch::new(
        "node-1",
        "storage",
        last(1),
        net.config().with_dns_seed(SEED),
    )];
    for i in 2..=NODES {
        launches.push(Launch::new(
            format!("node-{i}"),
            "storage",
            last(i),
            net.config().with_static_peer(net.addr(last(1))),
        ));
    }
    let started = Instant::now();
    net.spawn_all(&launches).await?;
    let all = net.nodes();

    let converged = eventually(BOUND, "every node to know the other nine", || async {
        for n in &all {
            let known = known_ids(n).await;
            if all
                .iter()
                .any(|o| o.peer_id() != n.peer_id() && !known.iter().any(|id| id == o.peer_id()))
            {
                return None;
            }
        }
        Some(started.elapsed())
    })
    .await;
    let took = match converged {
        Ok(t) => t,
        Err(e) => {
            let mut missing = Vec::new();
            for n in &all {
                let known = known_ids(n).await;
                let lacks: Vec<&str> = all
                    .iter()
                    .filter(|o| {
                        o.peer_id() != n.peer_id() && !known.iter().any(|id| id == o.peer_id())
                    })
                    .map(|o| o.name())
                    .collect();
                if !lacks.is_empty() {
                    missing.push(format!("{} lacks {lacks:?}", n.name()));
                }
            }
            anyhow::bail!("{e}: {}", missing.join("; "));
        }
    };
    eprintln!(
        "s08: ten nodes, one DNS seed known by node 1 only: all know each other {:.1} s after start (bound {} s, spec 600 s)",
        took.as_secs_f64(),
        BOUND.as_secs()
    );
    assert!(took < BOUND);

    let mut checks = Checks::new();
    for n in &all {
        // peers.dat itself (not only the connected set) holds the other nine.
        checks.check(
            &format!("{}: peers.dat holds the other nine", n.name()),
            dsdn_integration_tests::wait_metric(n, "bootstrap_peers_dat_size", &[], WAIT, |v| {
                v >= f64::from(NODES - 1)
            })
            .await,
        );
    }
    // Only node 1 used DNS; the others learned the network from node 1 by PEX.
    let node1 = net.node("node-1");
    checks.ensure(
        metric(node1, "bootstrap_dns_resolve_success", &[]).await >= 1.0,
        "node-1 never resolved the DNS seed",
    );
    let mut via_pex_total = 0;
    for n in all.iter().filter(|n| n.name() != "node-1") {
        checks.ensure(
            metric(n, "bootstrap_dns_resolve_total", &[]).await == 0.0,
            format!("{} resolved a DNS seed although it knows none", n.name()),
        );
        checks.ensure(
            metric(n, "bootstrap_pex_requests_total", &[("direction", "sent")]).await >= 1.0,
            format!("{} sent no PEX request", n.name()),
        );
        // Every peer it knows besides node 1 was discovered, not configured: learned from a
        // PEX answer, dialled it after learning it from one (then listed as `inbound`), or
        // found as a Kademlia provider of a role it needs (`kademlia`).
        let peers = n.client().peers().await?;
        let unexpected: Vec<&str> = peers
            .iter()
            .filter(|p| p.peer_id != node1.peer_id())
            .map(|p| p.source.as_str())
            .filter(|s| !["peer_exchange", "inbound", "kademlia"].contains(s))
            .collect();
        checks.ensure(
            unexpected.is_empty(),
            format!(
                "{}: peers from configured sources: {unexpected:?}",
                n.name()
            ),
        );
        via_pex_total += peers.iter().filter(|p| p.source == "peer_exchange").count();
        // Node 2 may hear from node 1 first (node 1 dials the seed's answer, node 2).
        let first_contact = if n.name() == "node-2" {
            &["static_config", "inbound"][..]
        } else {
            &["static_config"][..]
        };
        if let Some(p) = peers.iter().find(|p| p.peer_id == node1.peer_id()) {
            checks.ensure(
                first_contact.contains(&p.source.as_str()),
                format!("{}: node-1 listed with source {}", n.name(), p.source),
            );
        }
    }
    checks.ensure(
        via_pex_total >= 1,
        "no node learned any peer from a PEX answer",
    );
    checks.ensure(
        metric(
            node1,
            "bootstrap_pex_requests_total",
            &[("direction", "received")],
        )
        .await
            >= 1.0,
        "node-1 answered no PEX request",
    );
    checks.finish()?;
    net.pass();
    Ok(())
}
