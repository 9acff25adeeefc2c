//! Issue 14 §1: a client without the API token cannot starve the daemon. A node runs with
//! `nofile` = 1024 (soft and hard); the test opens 2000 connections to its control API from
//! eight source addresses, each sending part of a request head and nothing more, holds
//! them, and keeps opening more while it checks that `dsdn-agent status` (the real binary)
//! answers, that a new peer daemon connects to the node, and that the node never ran out
//! of descriptors.
//!
//! Before issue 14 the same run left the node with no descriptor: the operator's status
//! timed out and the P2P listener logged `Too many open files`.

use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{
    agent, eventually, is_connected_to, log_matches, log_offset, metric, metric_opt, Checks,
    TestNet, WAIT,
};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::task::JoinSet;

/// The node's open-files limit.
const NOFILE: u64 = 1024;
/// Partial requests opened at once.
const PARTIAL: usize = 2000;
/// Attack sources: `127.0.1.1` … `127.0.1.8`.
const SOURCES: u8 = 8;
/// Connections being opened at once.
const CONCURRENCY: usize = 200;

const PARTIAL_HEAD: &[u8] = b"GET /v1/status HTTP/1.1\r\nhost: dsdn\r\nx-never-ends: ";

fn source(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, 1 + (i % usize::from(SOURCES)) as u8)
}

/// One partial request from `from`; `None` when the connection cannot be made in 3 s.
async fn partial(api: SocketAddr, from: Ipv4Addr) -> Option<TcpStream> {
    let sock = TcpSocket::new_v4().ok()?;
    sock.bind(SocketAddr::new(IpAddr::V4(from), 0)).ok()?;
    let mut s = tokio::time::timeout(Duration::from_secs(3), sock.connect(api))
        .await
        .ok()?
        .ok()?;
    // The server may have closed it already: the connection still counts as opened.
    let _ = s.write_all(PARTIAL_HEAD).await;
    Some(s)
}

/// Opens `n` partial requests, [`CONCURRENCY`] at a time, starting at source `first`.
async fn open_partial(api: SocketAddr, n: usize, first: usize) -> Vec<TcpStream> {
    let mut held = Vec::with_capacity(n);
    let mut tasks = JoinSet::new();
    for i in 0..n {
        if tasks.len() >= CONCURRENCY {
            if let Some(Ok(Some(s))) = tasks.join_next().await {
                held.push(s);
            }
        }
        tasks.spawn(partial(api, source(first + i)));
    }
    while let Some(r) = tasks.join_next().await {
        if let Ok(Some(s)) = r {
            held.push(s);
        }
    }
    held
}

/// Keeps opening partial requests (50 every 250 ms, the last [`PARTIAL`] held) until
/// `stop`; returns how many it opened and those it holds.
async fn keep_flooding(api: SocketAddr, stop: Arc<AtomicBool>) -> (usize, VecDeque<TcpStream>) {
    let mut held = VecDeque::new();
    let mut opened = 0;
    while !stop.load(Ordering::Relaxed) {
        for s in open_partial(api, 50, opened).await {
            held.push_back(s);
            opened += 1;
        }
        while held.len() > PARTIAL {
            held.pop_front();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    (opened, held)
}

/// Descriptors process `pid` has open.
fn open_fds(pid: u32) -> Option<usize> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count())
}

/// The most descriptors `pid` had open, sampled every 50 ms until `stop`.
async fn peak_fds(pid: u32, stop: Arc<AtomicBool>) -> usize {
    let mut peak = 0;
    while !stop.load(Ordering::Relaxed) {
        peak = peak.max(open_fds(pid).unwrap_or(0));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    peak
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_requests_leave_status_and_new_peers_working() -> anyhow::Result<()> {
    let mut net = TestNet::new("api-abuse").await?;
    net.spawn_with_nofile("node", NodeMode::Bootstrap, 41, &net.config(), NOFILE)
        .await?;
    let mut checks = Checks::new();
    let (api, offset) = {
        let node = net.node("node");
        (node.api_addr(), log_offset(node))
    };
    let budget = metric_opt(net.node("node"), "dsdn_fd_budget", &[("part", "total")]).await;
    checks.ensure(
        budget == Some(NOFILE as f64),
        format!("dsdn_fd_budget{{part=total}} is {budget:?}, the limit is {NOFILE}"),
    );

    let stop = Arc::new(AtomicBool::new(false));
    let pid = net.node("node").pid().unwrap_or(0);
    let peak = tokio::spawn(peak_fds(pid, stop.clone()));

    // The attack: 2000 partial requests, held.
    let start = Instant::now();
    let held = open_partial(api, PARTIAL, 0).await;
    eprintln!(
        "[api-abuse] {} of {PARTIAL} partial requests opened in {:.1} s",
        held.len(),
        start.elapsed().as_secs_f64()
    );
    // A connect the kernel cannot queue (its accept queue full while the node is busy)
    // times out after 3 s; most get through (1900-2000 in runs on 2 loaded cores).
    checks.ensure(
        held.len() >= PARTIAL / 2,
        format!("only {} of {PARTIAL} connections opened", held.len()),
    );
    // And more, all along the checks.
    let flood = tokio::spawn(keep_flooding(api, stop.clone()));

    // The operator's status answers.
    let t = Instant::now();
    let status = agent(net.node("node"), &["status"]).await;
    let status_latency = t.elapsed();
    eprintln!(
        "[api-abuse] dsdn-agent status under attack: {:.0} ms",
        status_latency.as_secs_f64() * 1000.0
    );
    if let Some(out) = checks.check(
        "dsdn-agent status under attack",
        status.and_then(|r| r.success("status")),
    ) {
        checks.ensure(out.contains("peer"), format!("status output: {out}"));
    }
    checks.ensure(
        status_latency < Duration::from_secs(5),
        format!("dsdn-agent status took {status_latency:?}"),
    );

    // A new peer connects.
    let cfg = net.config().with_static_peer(net.addr(41));
    net.spawn("newcomer", NodeMode::Storage, 42, &cfg).await?;
    let (node, newcomer) = (net.node("node"), net.node("newcomer"));
    checks.check(
        "the newcomer connects to the attacked node",
        eventually(WAIT, "node to list the newcomer as connected", || async {
            is_connected_to(node, newcomer).await.then_some(())
        })
        .await,
    );

    // Status again, five times while the flood goes on.
    let mut latencies = Vec::new();
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        let t = Instant::now();
        let r = agent(node, &["status"]).await;
        latencies.push(t.elapsed());
        checks.check(
            &format!("dsdn-agent status #{} during the flood", i + 2),
            r.and_then(|r| r.success("status")),
        );
    }
    eprintln!("[api-abuse] dsdn-agent status during the flood: {latencies:?}");
    checks.ensure(
        latencies.iter().all(|l| *l < Duration::from_secs(5)),
        format!("slow status: {latencies:?}"),
    );

    stop.store(true, Ordering::Relaxed);
    let (more, held_more) = flood.await.unwrap_or_default();
    let peak = peak.await.unwrap_or(0);
    eprintln!(
        "[api-abuse] {more} more partial requests opened during the checks; the node had at most {peak} descriptors open"
    );
    checks.ensure(
        peak > 0 && (peak as u64) < NOFILE * 9 / 10,
        format!("the node peaked at {peak} open descriptors (limit {NOFILE})"),
    );

    // The API held at most its share; the node never ran out.
    let open_api = metric(node, "api_connections", &[]).await;
    checks.ensure(
        open_api <= 65.0,
        format!("api_connections {open_api} > max_connections + 1"),
    );
    let replaced = metric(
        node,
        "api_connections_closed_total",
        &[("reason", "replaced")],
    )
    .await;
    checks.ensure(
        replaced >= 1000.0,
        format!("only {replaced} token-less connections replaced"),
    );
    // Counted every 10 s by the node: present, and below the limit.
    let open_fds = metric_opt(node, "process_open_fds", &[]).await;
    checks.ensure(
        open_fds.is_some_and(|n| n > 0.0 && n < NOFILE as f64),
        format!("process_open_fds {open_fds:?}"),
    );
    let exhausted = log_matches(node, offset, None, "too many open files");
    checks.ensure(
        exhausted.is_empty(),
        format!("the node ran out of descriptors:\n{}", exhausted.join("\n")),
    );
    // Logged as counts, not per connection: the first at once, then every 10 s at most.
    let pressure = log_matches(node, offset, Some("WARN"), "connection pressure").len();
    let allowed = 2 + (start.elapsed().as_secs() / 10) as usize;
    checks.ensure(
        (1..=allowed).contains(&pressure),
        format!(
            "{pressure} connection-pressure log lines in {:?}",
            start.elapsed()
        ),
    );
    let mut timed_out = Vec::new();
    for reason in ["idle_timeout", "header_timeout", "request_timeout"] {
        let n = metric(node, "api_connections_closed_total", &[("reason", reason)]).await;
        timed_out.push(format!("{reason} {n}"));
    }
    eprintln!(
        "[api-abuse] api_connections {open_api}, replaced {replaced}, {}, process_open_fds {open_fds:?}",
        timed_out.join(", ")
    );
    drop((held, held_more));
    checks.finish()?;
    net.pass();
    Ok(())
}
