//! `dsdn-agent devnet`: a local network of real dsdnd processes, watched live.
//!
//! Its six [`Phase`]s, with a committee (the default: `--coordinators 3 --threshold 2`,
//! Tahap 14A.2B):
//!
//! 1. **Start**: seed server, bootstrap, coordinator-1..n configured as a t-of-n committee
//!    in seeds.toml `[committee]` (no `da_authority` yet), storage nodes; wait until they
//!    find each other.
//! 2. **DKG** through coordinator-1's control API.
//! 3. **Restart with the group key**: `da_authority` = group key in seeds.toml, every node
//!    restarted with its data directory; wait for the mesh and the key shares.
//! 4. **DA events**: sample events published through coordinator-1 (the DA proposer; the
//!    committee threshold-signs each blob); wait until every node reached the DA height.
//! 5. **Receipts**: [`receipts::produce_receipts`] (sample workloads → receipts, verified
//!    and re-executed).
//! 6. **Live table** until Ctrl-C/SIGTERM or `--duration`; then every process is stopped
//!    (SIGTERM, then SIGKILL).
//!
//! With `--coordinators 1`: one coordinator whose own key is the `da_authority`; phases 2,
//! 3 and 5 are announced as skipped. `--dashboard` serves the live page
//! ([`super::dashboard`]) from phase 1 on, `--record` writes its timeline.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::{find_dsdnd, sample_da_events, LocalNet, LocalNetSpec};
use dsdn_protocols::da::DaEvent;
use tokio::sync::watch;

use super::dashboard::{Dashboard, PhaseLine, Target};
use super::{print_out, DevnetArgs};

mod committee;
mod live;
mod receipts;

use live::watch_table;

/// How long to wait for every node to be connected to every other before going on anyway.
const MESH_TIMEOUT: Duration = Duration::from_secs(60);

/// Pause after the nodes are connected and before publishing, so gossip meshes can form
/// (gossipsub grafts peers on its heartbeat, about once a second).
const GOSSIP_SETTLE: Duration = Duration::from_secs(3);

/// The devnet's phases, numbered and named the same in its output and in the README:
/// `[devnet] phase 2/6: DKG — …`. With `--coordinators 1` the DKG and the restart are
/// announced as skipped, so the numbers stay the same.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Phase {
    /// Keys, config, every node started, waiting until they are connected.
    Start = 1,
    /// The committee's FROST DKG.
    Dkg,
    /// `da_authority` = the group key, every node restarted.
    Restart,
    /// Sample DA events published and spread.
    DaEvents,
    /// Sample workloads and their receipts.
    Receipts,
    /// The live table.
    LiveTable,
}

impl Phase {
    /// How many phases there are.
    pub(super) const COUNT: u8 = 6;

    /// The phase's name, as the README lists it.
    pub(super) fn name(self) -> &'static str {
        match self {
            Phase::Start => "Start",
            Phase::Dkg => "DKG",
            Phase::Restart => "Restart with the group key",
            Phase::DaEvents => "DA events",
            Phase::Receipts => "Receipts",
            Phase::LiveTable => "Live table",
        }
    }

    /// `phase 2/6: DKG`.
    pub(super) fn title(self) -> String {
        format!("phase {}/{}: {}", self as u8, Self::COUNT, self.name())
    }
}

/// Where the devnet reports its phases: its output, and the dashboard's header if one runs.
#[derive(Clone, Default)]
pub(super) struct Progress {
    line: Option<PhaseLine>,
}

impl Progress {
    /// Prints `[devnet] phase N/6: NAME — detail` and shows the phase on the dashboard.
    pub(super) fn phase(&self, phase: Phase, detail: &str) {
        say(&format!("{} — {detail}", phase.title()));
        if let Some(line) = &self.line {
            line.set(&phase.title());
        }
    }

    /// Shows `text` on the dashboard only (after the phases: stopping, stopped).
    fn status(&self, text: &str) {
        if let Some(line) = &self.line {
            line.set(text);
        }
    }
}

/// Runs `dsdn-agent devnet`.
pub(crate) async fn run(args: DevnetArgs) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    if args.coordinators >= 2 && args.threshold > args.coordinators {
        anyhow::bail!(
            "--threshold {} exceeds --coordinators {}: a t-of-n committee needs 2 <= t <= n",
            args.threshold,
            args.coordinators
        );
    }
    let stop = stop_signal();
    let dsdnd = find_dsdnd()?;
    // The dashboard's address is bound (and the record written) before anything starts.
    let mut dashboard = if args.dashboard.is_some() || args.record.is_some() {
        Some(Dashboard::start("devnet", started, args.dashboard, args.record.clone()).await?)
    } else {
        None
    };
    let progress = Progress {
        line: dashboard.as_ref().map(Dashboard::phase_line),
    };
    if let Some(d) = &dashboard {
        if let Some(addr) = d.local_addr() {
            say(&format!("dashboard: http://{addr}/"));
        }
        if let Some(path) = d.record_path() {
            say(&format!(
                "recording the timeline in {} (every {} s and at the end)",
                path.display(),
                super::dashboard::RECORD_EVERY.as_secs()
            ));
        }
    }
    // Without --dir, use our own temporary directory so the logs can be kept on failure.
    let (tempdir, dir) = match &args.dir {
        Some(dir) => (None, dir.clone()),
        None => {
            let t = tempfile::Builder::new()
                .prefix("dsdn-devnet-")
                .tempdir()
                .context("cannot create a temporary directory")?;
            let path = t.path().to_path_buf();
            (Some(t), path)
        }
    };
    let result = run_in(&args, dsdnd, &dir, stop, &progress, dashboard.as_mut()).await;
    if let Some(d) = dashboard {
        let record = d.record_path().map(Path::to_path_buf);
        d.finish().await?;
        if let Some(path) = record {
            say(&format!("timeline recorded in {}", path.display()));
        }
    }
    match result {
        Ok(code) => Ok(code),
        Err(e) => {
            let logs = match tempdir {
                Some(t) => format!("logs kept in {}", t.keep().display()),
                None => format!("logs in {}", dir.display()),
            };
            let first = dsdn_p2p::node::error_chain(e.as_ref());
            let first = first.lines().next().unwrap_or_default().trim_end();
            Err(anyhow::anyhow!("devnet: {first} ({logs})"))
        }
    }
}

async fn run_in(
    args: &DevnetArgs,
    dsdnd: PathBuf,
    dir: &Path,
    mut stop: watch::Receiver<bool>,
    progress: &Progress,
    mut dashboard: Option<&mut Dashboard>,
) -> anyhow::Result<ExitCode> {
    let coordinators = usize::from(args.coordinators);
    let spec = LocalNetSpec {
        storage_nodes: usize::from(args.storage),
        coordinators,
        committee_threshold: args.threshold,
        dir: Some(dir.to_path_buf()),
        dsdnd: Some(dsdnd),
        rust_log: args.rust_log.clone(),
        ..LocalNetSpec::default()
    };
    let coordinator_phrase = if coordinators == 1 {
        "1 coordinator (the DA authority)".to_owned()
    } else {
        format!(
            "{coordinators} coordinators (a {}-of-{coordinators} committee)",
            args.threshold
        )
    };
    progress.phase(
        Phase::Start,
        &format!(
            "1 bootstrap, {coordinator_phrase} and {} storage nodes in {}; then waiting until all are connected",
            args.storage,
            dir.display()
        ),
    );
    let start = LocalNet::start_with_progress(spec, say);
    let mut net = tokio::select! {
        net = start => net?,
        () = stopped(&mut stop) => {
            say("interrupted while starting; stopping");
            return Ok(ExitCode::SUCCESS);
        }
    };
    if let Some(d) = dashboard.as_deref_mut() {
        d.watch(
            net.nodes()
                .iter()
                .map(|n| Target {
                    name: n.name().to_owned(),
                    client: n.client_with_timeout(super::dashboard::REQUEST_TIMEOUT),
                    mode: Some(n.mode().to_string()),
                })
                .collect(),
        );
    }

    let mut outcome = Outcome::Interrupted;
    let (ready, view) = if net.committee().is_some() {
        let view = committee::bring_up(&mut net, &mut stop, progress).await?;
        (view.is_some(), view)
    } else {
        let ready = wait_mesh(&net, &mut stop).await?;
        if ready {
            progress.phase(
                Phase::Dkg,
                "skipped: a single coordinator signs with its own key (the da_authority)",
            );
            progress.phase(Phase::Restart, "skipped: no committee, no group key");
        }
        (ready, None)
    };
    if ready && pause(GOSSIP_SETTLE, &mut stop).await {
        let how = if view.is_some() {
            "(the DA proposer); each blob is threshold-signed by the committee"
        } else {
            "(the DA authority), which signs each blob with its own key"
        };
        progress.phase(
            Phase::DaEvents,
            &format!(
                "{} sample events through {} {how}",
                args.events,
                net.coordinator().name()
            ),
        );
        let expected = publish(&net, args.events).await?;
        if view.is_some() {
            committee::report_da_height(&net).await?;
        }
        // Workloads, executed by storage nodes, receipts signed by the committee.
        // Each receipt adds a ReceiptRecorded event to the log.
        let expected = expected + receipts::produce_receipts(&net, view.as_ref(), progress).await?;
        let until = match args.duration {
            Some(d) => format!("for {d} s"),
            None => "until Ctrl-C".to_owned(),
        };
        progress.phase(
            Phase::LiveTable,
            &format!("peers, DA events and state root of every node, {until}"),
        );
        let header = dashboard
            .as_deref()
            .and_then(Dashboard::local_addr)
            .map_or_else(String::new, |a| format!(", dashboard http://{a}/"));
        outcome = watch_table(
            &net,
            &mut stop,
            args.duration,
            expected,
            view.as_ref(),
            &header,
        )
        .await?;
    }

    if let Some(d) = dashboard {
        d.stop_polling();
    }
    progress.status("stopping");
    say(&format!(
        "stopping {} nodes (SIGTERM, SIGKILL after 10 s)",
        net.nodes().len()
    ));
    let stopped = net.stop_all().await?;
    progress.status("stopped");
    let killed: Vec<&str> = stopped
        .iter()
        .filter(|(_, clean)| !clean)
        .map(|(name, _)| name.as_str())
        .collect();
    if killed.is_empty() {
        say("all nodes stopped");
    } else {
        say(&format!("had to kill: {}", killed.join(", ")));
    }
    if args.dir.is_some() {
        say(&format!(
            "config, data and logs kept in {} (logs: <node>/dsdnd.log)",
            net.dir().display()
        ));
    }
    match outcome {
        Outcome::Elapsed {
            converged: false,
            summary,
        } => anyhow::bail!(
            "after {} s the nodes' DA state had not converged: {summary}",
            args.duration.unwrap_or(0)
        ),
        _ => Ok(ExitCode::SUCCESS),
    }
}

/// How the live table ended.
enum Outcome {
    /// Ctrl-C or SIGTERM.
    Interrupted,
    /// `--duration` elapsed; whether every node held the published events and one root.
    Elapsed { converged: bool, summary: String },
}

/// Prints one progress line.
pub(super) fn say(line: &str) {
    let _ = print_out(&format!("[devnet] {line}\n"));
}

/// A receiver that turns `true` on the first Ctrl-C (or SIGTERM on Unix).
pub(super) fn stop_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        let _ = tx.send(true);
        // Keep the sender alive so receivers see `true`, not a closed channel.
        std::future::pending::<()>().await;
    });
    rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                r = tokio::signal::ctrl_c() => {
                    if r.is_err() {
                        term.recv().await;
                    }
                }
                _ = term.recv() => {}
            }
            return;
        }
    }
    if tokio::signal::ctrl_c().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Resolves once a stop was requested.
async fn stopped(stop: &mut watch::Receiver<bool>) {
    if stop.wait_for(|v| *v).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Sleeps `d`; false when interrupted.
async fn pause(d: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    tokio::select! {
        () = tokio::time::sleep(d) => true,
        () = stopped(stop) => false,
    }
}

/// Waits (printing peer counts as they change) until every node is connected to every
/// other, or [`MESH_TIMEOUT`]; false when interrupted.
async fn wait_mesh(net: &LocalNet, stop: &mut watch::Receiver<bool>) -> anyhow::Result<bool> {
    say("waiting for the nodes to find each other (DNS seed -> bootstrap -> peer exchange)");
    let started = Instant::now();
    let mut last = String::new();
    loop {
        net.check_alive()?;
        let report = net.mesh_report().await;
        let line = report.to_string();
        if line != last {
            say(&format!(
                "t+{:>2}s connected peers: {line}",
                started.elapsed().as_secs()
            ));
            last = line;
        }
        if report.complete() {
            say(&format!(
                "all {} nodes are connected to each other after {} s",
                net.nodes().len(),
                started.elapsed().as_secs()
            ));
            return Ok(true);
        }
        if started.elapsed() >= MESH_TIMEOUT {
            say(&format!(
                "warning: not fully connected after {} s; going on",
                MESH_TIMEOUT.as_secs()
            ));
            return Ok(true);
        }
        if !pause(Duration::from_secs(1), stop).await {
            return Ok(false);
        }
    }
}

/// How long the devnet waits for every storage node to register itself.
const REGISTRATION_WAIT: Duration = Duration::from_secs(30);

/// Waits until every storage node registered itself with the coordinator (their
/// `NodeRegistered` events are in the coordinator's log), then publishes `count` sample
/// events about chunks on those nodes through the coordinator (with a committee: the first
/// member, the DA proposer). Returns the number of events
/// every node must end up holding: the coordinator's total after the publication.
async fn publish(net: &LocalNet, count: usize) -> anyhow::Result<u64> {
    let ids: Vec<String> = net
        .storage_nodes()
        .map(|n| n.peer_id().to_owned())
        .collect();
    let coordinator = net.coordinator();
    let deadline = tokio::time::Instant::now() + REGISTRATION_WAIT;
    loop {
        let st = coordinator.client().da_state().await?;
        if st.nodes >= ids.len() {
            say(&format!(
                "{} storage node(s) registered themselves (DA height {})",
                st.nodes, st.height
            ));
            break;
        }
        if tokio::time::Instant::now() > deadline {
            anyhow::bail!(
                "only {} of {} storage nodes registered with the coordinator within {REGISTRATION_WAIT:?}",
                st.nodes,
                ids.len()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The nodes registered themselves: the sample's own NodeRegistered events are left out.
    let events: Vec<DaEvent> = sample_da_events(&ids, count + ids.len())
        .into_iter()
        .filter(|e| !matches!(e, DaEvent::NodeRegistered { .. }))
        .collect();
    let resp = coordinator
        .client()
        .da_publish(&events)
        .await
        .context("publishing sample DA events through the coordinator")?;
    say(&format!(
        "published {} DA events in {} through {} at {}: {}",
        resp.events,
        super::commands::blobs_phrase(&resp.heights),
        coordinator.name(),
        coordinator.api_addr(),
        kind_counts(&events)
    ));
    Ok(coordinator.client().da_state().await?.events)
}

/// `4 node_registered, 4 chunk_declared, …` in order of first appearance.
fn kind_counts(events: &[DaEvent]) -> String {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for e in events {
        match counts.iter_mut().find(|(k, _)| *k == e.kind()) {
            Some((_, n)) => *n += 1,
            None => counts.push((e.kind(), 1)),
        }
    }
    counts
        .iter()
        .map(|(k, n)| format!("{n} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests;
