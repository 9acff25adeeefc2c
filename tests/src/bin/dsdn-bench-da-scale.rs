//! The DA state at network scale (issue 16 §6): one log, grown through the sizes asked for,
//! measured with a real `dsdnd` full node at each size.
//!
//! For each size (default 1, 10 and 100 million events):
//! 1. the generator ([`dsdn_integration_tests::scale::LogGenerator`]) appends signed blobs
//!    to the full node's `da-log.redb` until the log holds that many events (a storage
//!    network: 5 % registrations of up to 100,000 nodes, 48 % chunks, 48 % replicas);
//! 2. everything the node derived from the log is deleted (its files, and its state inside
//!    `da-log.redb` with `--reindex-da`), and `dsdnd` (storage mode, no
//!    peers, the generator's key as DA authority) is started: it rebuilds its state from the
//!    log. **Apply rate** = events / the process's CPU seconds until it answers at the tip;
//! 3. **bytes on disk per event**: the data directory's size / events;
//! 4. **`da state` latency**: `--samples` sequential `GET /v1/da/state`, median and p99;
//!    **proof latency** the same for `GET /v1/da/proof?key=chunk:…` of chunks spread over
//!    the whole log, when the node serves proofs;
//! 5. **RSS** once it answers; then it is stopped and started again: **restart time** is
//!    process start to answering at the tip with its stored state;
//! 6. **state sync** of a new full node ([`dsdn_integration_tests::scale::state_sync`]):
//!    the state at `tip − 1` restored from the node's log into a new log through the
//!    serving and verifying code, in chunks of 4,096 entries, without the network (the
//!    daemon does not drive a state sync yet).
//! 7. **light-client join from a checkpoint** (issue 16 §4): while the node runs at the
//!    tip, `dsdn-agent watch --from-checkpoint --checkpoint <tip - 1>` (checkpoint read from
//!    the tip blob's `prev_hash`/`prev_state_root`) is started with the node as its static
//!    peer: time from process start to its first verified blob after the checkpoint
//!    (`joined`), and its RSS then ([`dsdn_integration_tests::scale::light`]).
//!
//! Before each size it checks the disk (the bytes per event seen so far × the events to add,
//! with 20 % to spare) and the memory (the RSS seen so far, scaled, against `MemAvailable`);
//! it stops at the first size that does not fit and says so. At the end it prints a table
//! and draws the figures against the log size (`--plot`, SVG).
//!
//! Run: `cargo build --release --bins && target/release/dsdn-bench-da-scale
//! [--sizes 1000000,10000000,100000000] [--samples 200] [--dir DIR] [--plot docs/da-scale.svg]
//! [--keep]` (`--keep` leaves the generated directory in DIR, e.g. for profiling a restart).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_daemon::localnet::{Node, NodeSpec};
use dsdn_integration_tests::bench::{memory_kib, mib};
use dsdn_integration_tests::scale::fixture::{self, FullNodeSetup, NETWORK};
use dsdn_integration_tests::scale::light;
use dsdn_integration_tests::scale::plot::{self, ScalePoint};
use dsdn_integration_tests::scale::{chunk_id, dir_bytes, free_bytes, mem_available, LogGenerator};
use dsdn_integration_tests::{fmt_ms, percentile, unix_now};
use dsdn_protocols::NetworkId;

/// The full node's loopback address.
const IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 61);

/// Longest wait for the node to answer at the tip (a rebuild of 100 million events).
const READY: Duration = Duration::from_secs(3 * 3600);

/// Files of the data directory that are not derived from the log: kept between runs.
const PRIMARY: [&str; 3] = [dsdn_p2p::da::store::DA_LOG_FILE, "node.key", "seeds.toml"];

/// Value of flag `name` (`--name VALUE`).
/// The usage line (`--help`, and an unknown argument).
const USAGE: &str = "usage: dsdn-bench-da-scale [--sizes 1000000,10000000,100000000] \
[--samples 200] [--dir DIR] [--plot docs/da-scale.svg] [--keep]\n   or: dsdn-bench-da-scale \
--state-sync LOG [--dir DIR] (only the state sync of an existing devnet da-log.redb, e.g. \
one left by --keep)\n   or: dsdn-bench-da-scale --measure DIR [--samples N] (every figure but the \
rebuild's, on a directory left by --keep)";

/// Refuses an argument that is no flag of this benchmark (so that a typo prints the usage
/// instead of starting the default 100-million-event run); `--help` prints it and exits.
///
/// # Errors
/// The first unknown argument, with the usage.
fn check_args() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--sizes" | "--samples" | "--dir" | "--plot" | "--state-sync" | "--measure" => {
                anyhow::ensure!(args.next().is_some(), "{a} needs a value\n{USAGE}");
            }
            "--keep" => {}
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(())
}

fn flag(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn sizes() -> anyhow::Result<Vec<u64>> {
    let text = flag("--sizes").unwrap_or_else(|| "1000000,10000000,100000000".into());
    let mut v = text
        .split(',')
        .map(|s| s.trim().replace('_', "").parse::<u64>())
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("--sizes {text}: comma-separated event counts"))?;
    v.sort_unstable();
    v.dedup();
    anyhow::ensure!(
        v.first().is_some_and(|&s| s > 0),
        "--sizes: give positive sizes"
    );
    Ok(v)
}

/// Deletes what the node derived from the log (its state, snapshots, evidence…).
fn delete_derived(data: &Path) -> anyhow::Result<()> {
    for entry in std::fs::read_dir(data)? {
        let entry = entry?;
        let name = entry.file_name();
        if PRIMARY.iter().any(|p| name == *p) || name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if entry.metadata()?.is_dir() {
            std::fs::remove_dir_all(&path)?;
        } else {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Starts the node and waits (up to [`READY`]) until it answers at `height`.
async fn start_at_tip(spec: &NodeSpec, height: u64) -> anyhow::Result<(Node, Duration, f64)> {
    fixture::start_at_tip(spec, height, READY).await
}

/// Bytes the process `pid` made the kernel read from and write to the disk so far
/// (`read_bytes`, `write_bytes` of `/proc/PID/io`; page-cache hits are not counted).
fn disk_io(pid: u32) -> anyhow::Result<(u64, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/io"))?;
    let field = |name: &str| -> anyhow::Result<u64> {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .with_context(|| format!("no {name} in /proc/{pid}/io"))?
            .trim()
            .parse()
            .with_context(|| format!("malformed {name} in /proc/{pid}/io"))
    };
    Ok((field("read_bytes:")?, field("write_bytes:")?))
}

/// Longest time spent on one latency series: it stops early (after at least
/// [`MIN_SAMPLES`]) when calls are slow, as `da state` is when it recomputes the root.
const LATENCY_BUDGET: Duration = Duration::from_secs(60);

/// Fewest calls of a latency series.
const MIN_SAMPLES: usize = 10;

/// Median and p99 of up to `samples` sequential calls of `call` (fewer once
/// [`LATENCY_BUDGET`] is spent, at least [`MIN_SAMPLES`]), in milliseconds.
async fn latency<F, Fut>(samples: usize, mut call: F) -> anyhow::Result<(f64, f64)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<()>>,
{
    let mut v = Vec::with_capacity(samples);
    let started = Instant::now();
    for i in 0..samples {
        if i >= MIN_SAMPLES && started.elapsed() > LATENCY_BUDGET {
            eprintln!("[scale] latency: {i} samples within {LATENCY_BUDGET:?}");
            break;
        }
        let t = Instant::now();
        call().await?;
        v.push(t.elapsed());
    }
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Ok((ms(percentile(&v, 50.0)), ms(percentile(&v, 99.0))))
}

struct Run {
    dir: PathBuf,
    data: PathBuf,
    spec: NodeSpec,
    samples: usize,
    /// seeds.toml of the light client: the full node as its static peer.
    light_config: PathBuf,
}

impl Run {
    /// The run in `dir` (the node's data directory is `dir/full`): writes its seeds.toml
    /// (the network, a reserved port, `authority` as DA authority) and the light client's.
    /// Keep the lease while the node runs.
    fn new(
        dir: &Path,
        authority: &str,
        samples: usize,
    ) -> anyhow::Result<(Run, dsdn_daemon::localnet::PortLease)> {
        let (setup, lease) = FullNodeSetup::new(dir, IP, authority)?;
        let run = Run {
            dir: dir.to_path_buf(),
            data: setup.data,
            spec: setup.spec,
            samples,
            light_config: setup.light_config,
        };
        Ok((run, lease))
    }

    /// Measures the node on the log as it is now (`events` events, tip `height`).
    async fn measure(&self, events: u64, height: u64, chunks: u64) -> anyhow::Result<ScalePoint> {
        delete_derived(&self.data)?;
        eprintln!("[scale] {events} events: rebuilding the state from the log…");
        // The state of the previous size lives in the log's file: `--reindex-da` deletes it,
        // so every size is rebuilt from height 1.
        let mut reindex = self.spec.clone();
        reindex.extra_args.push("--reindex-da".to_owned());
        let (node, rebuild, cpu) = start_at_tip(&reindex, height).await?;
        let apply = events as f64 / cpu.max(1e-3);
        let io = node.pid().map(disk_io).transpose()?;
        let peak = node
            .pid()
            .map(memory_kib)
            .transpose()?
            .map(|(_, hwm)| mib(hwm));
        eprintln!(
            "[scale] rebuilt in {:.1} s wall, {cpu:.1} s CPU: {apply:.0} events/CPU-s, peak RSS \
             {} MiB (the rebuild's page cache, `[da] rebuild_cache_mib`); {}",
            rebuild.as_secs_f64(),
            peak.map_or("n/a".to_owned(), |m| format!("{m:.0}")),
            io.map_or("disk I/O unknown".to_owned(), |(r, w)| format!(
                "the process read {:.0} B and wrote {:.0} B per event from/to the disk",
                r as f64 / events as f64,
                w as f64 / events as f64
            ))
        );
        self.measure_serving(node, (events, height, chunks), apply)
            .await
    }

    /// Everything but the rebuild, with `node` answering at the tip `height`; `apply` is
    /// the rebuild's rate (NaN when not measured).
    async fn measure_serving(
        &self,
        mut node: Node,
        (events, height, chunks): (u64, u64, u64),
        apply: f64,
    ) -> anyhow::Result<ScalePoint> {
        let client = node.client();
        let state_ms = latency(self.samples, || async {
            client.da_state().await?;
            Ok(())
        })
        .await?;
        // Proofs of chunks spread over the whole log (a multiplicative walk over 1..=chunks).
        let chunks = chunks.max(1);
        let key = |i: u64| {
            let n = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) % chunks + 1;
            format!("/v1/da/proof?key=chunk:{}", hex::encode(chunk_id(n)))
        };
        let proof_ms = match client.get_raw(&key(0)).await {
            Ok(_) => {
                let mut i = 0u64;
                Some(
                    latency(self.samples, || {
                        i += 1;
                        let path = key(i);
                        let client = &client;
                        async move {
                            client.get_raw(&path).await?;
                            Ok(())
                        }
                    })
                    .await?,
                )
            }
            Err(e) => {
                eprintln!("[scale] proofs not measured: {e}");
                None
            }
        };
        let pid = node.pid().context("the node exited")?;
        let (rss_kib, _) = memory_kib(pid)?;
        let light = match light::checkpoint_before(&client, height).await {
            Ok(cp) => light::join(&self.light_config, &cp, &self.dir).await,
            Err(e) => Err(e),
        };
        let light = match light {
            Ok((secs, rss)) => {
                let order = dsdn_integration_tests::roles::agent_bin()
                    .map(|agent| dsdn_integration_tests::scale::order::coverage_line(&agent))
                    .unwrap_or_else(|e| format!("code order: unknown ({e:#})"));
                eprintln!(
                    "[scale] light client joined from a checkpoint in {secs:.2} s, RSS {rss:.1} \
                     MiB ({order})"
                );
                Some((secs, rss))
            }
            Err(e) => {
                eprintln!("[scale] light client not measured: {e:#}");
                None
            }
        };
        node.stop().await?;
        let bytes = dir_bytes(&self.data)?;
        let (mut node, restart, _) = start_at_tip(&self.spec, height).await?;
        node.stop().await?;
        let synced = self.dir.join("state-sync.redb");
        let sync = dsdn_integration_tests::scale::state_sync(
            &self.data.join(dsdn_p2p::da::store::DA_LOG_FILE),
            &synced,
            &NetworkId::new(NETWORK).map_err(|e| anyhow::anyhow!("{e}"))?,
        )?;
        std::fs::remove_file(&synced).with_context(|| format!("remove {}", synced.display()))?;
        eprintln!(
            "[scale] state sync {:.2} s ({} entries in {} chunks)",
            sync.elapsed.as_secs_f64(),
            sync.entries,
            sync.chunks
        );
        eprintln!(
            "[scale] restart {:.2} s; RSS {:.0} MiB; {:.1} bytes/event",
            restart.as_secs_f64(),
            mib(rss_kib),
            bytes as f64 / events as f64
        );
        Ok(ScalePoint {
            events,
            apply_per_core_sec: apply,
            bytes_per_event: bytes as f64 / events as f64,
            rss_mib: mib(rss_kib),
            state_ms,
            proof_ms,
            restart_secs: restart.as_secs_f64(),
            light,
            state_sync_secs: Some(sync.elapsed.as_secs_f64()),
        })
    }
}

/// Whether `next` events fit on the disk and in memory, judged by `last`; the reason if not.
fn fits(dir: &Path, last: &ScalePoint, next: u64) -> anyhow::Result<Option<String>> {
    let added = (next - last.events) as f64;
    let disk_needed = added * last.bytes_per_event * 1.2;
    let free = free_bytes(dir)? as f64;
    if disk_needed > free {
        return Ok(Some(format!(
            "{next} events need about {:.1} GB more on disk ({:.0} bytes/event), {:.1} GB are free",
            disk_needed / 1e9,
            last.bytes_per_event,
            free / 1e9
        )));
    }
    let rss = last.rss_mib * 1024.0 * 1024.0 * next as f64 / last.events as f64;
    let available = mem_available()? as f64;
    if last.rss_mib > 200.0 && rss > 0.8 * available {
        return Ok(Some(format!(
            "a full node would need about {:.1} GB of memory at {next} events \
             (RSS grows with the log), {:.1} GB are available",
            rss / 1e9,
            available / 1e9
        )));
    }
    Ok(None)
}

fn print_table(points: &[ScalePoint]) {
    let na = || "n/a".to_owned();
    println!(
        "{:>12} {:>14} {:>10} {:>9} {:>18} {:>18} {:>10} {:>14} {:>10}",
        "events",
        "apply ev/CPU-s",
        "bytes/ev",
        "RSS MiB",
        "da state med/p99",
        "proof med/p99",
        "restart s",
        "light join/RSS",
        "sync s"
    );
    for p in points {
        let ms = |(a, b): (f64, f64)| {
            format!(
                "{}/{}",
                fmt_ms(Duration::from_secs_f64(a / 1e3)),
                fmt_ms(Duration::from_secs_f64(b / 1e3))
            )
        };
        println!(
            "{:>12} {:>14.0} {:>10.1} {:>9.1} {:>18} {:>18} {:>10.2} {:>14} {:>10}",
            p.events,
            p.apply_per_core_sec,
            p.bytes_per_event,
            p.rss_mib,
            ms(p.state_ms),
            p.proof_ms.map(ms).unwrap_or_else(na),
            p.restart_secs,
            p.light
                .map(|(s, m)| format!("{s:.2}s/{m:.0}MiB"))
                .unwrap_or_else(na),
            p.state_sync_secs
                .map(|s| format!("{s:.2}"))
                .unwrap_or_else(na),
        );
    }
}

/// `--measure DIR`: every figure but the rebuild's on a directory kept by `--keep` (or
/// the same layout: `DIR/full` with `da-log.redb` and `node.key`, state at the tip), e.g.
/// again after a change of the serving code; prints the table, draws nothing.
async fn measure_kept(dir: &Path, authority: &str, samples: usize) -> anyhow::Result<()> {
    let log = dir.join("full").join(dsdn_p2p::da::store::DA_LOG_FILE);
    let network = NetworkId::new(NETWORK).map_err(|e| anyhow::anyhow!("{e}"))?;
    let height = dsdn_p2p::da::store::DaStore::open(&log, &network)
        .with_context(|| format!("open {}", log.display()))?
        .store
        .tip();
    let (run, _lease) = Run::new(dir, authority, samples)?;
    eprintln!(
        "[scale] {}: height {height}, starting the node…",
        dir.display()
    );
    let (node, started, _) = start_at_tip(&run.spec, height).await?;
    let st = node.client().da_state().await?;
    eprintln!(
        "[scale] at the tip in {:.2} s: {} events, {} chunks",
        started.as_secs_f64(),
        st.events,
        st.chunks
    );
    let point = run
        .measure_serving(node, (st.events, height, st.chunks as u64), f64::NAN)
        .await?;
    print_table(&[point]);
    Ok(())
}

/// `--state-sync LOG`: the state sync of the log's state at its tip − 1 into a new log in
/// `--dir` (removed afterwards), timed as in a full run.
fn state_sync_only(log: &Path) -> anyhow::Result<()> {
    let base = flag("--dir").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::Builder::new()
        .prefix("dsdn-state-sync-")
        .tempdir_in(&base)
        .with_context(|| format!("create a directory in {}", base.display()))?;
    let network = NetworkId::new(NETWORK).map_err(|e| anyhow::anyhow!("{e}"))?;
    let sync =
        dsdn_integration_tests::scale::state_sync(log, &dir.path().join("synced.redb"), &network)?;
    println!(
        "state sync {:.2} s ({} entries in {} chunks, state at height {})",
        sync.elapsed.as_secs_f64(),
        sync.entries,
        sync.chunks,
        sync.height
    );
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    check_args()?;
    if let Some(log) = flag("--state-sync") {
        return state_sync_only(Path::new(&log));
    }
    let sizes = sizes()?;
    let samples: usize = flag("--samples").map_or(Ok(200), |s| s.parse())?;
    let plot_path = PathBuf::from(flag("--plot").unwrap_or_else(|| "docs/da-scale.svg".into()));
    let network = NetworkId::new(NETWORK).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x16; 32]);
    let mut generator = LogGenerator::new(key, network, unix_now() * 1000 - 86_400_000);
    if let Some(kept) = flag("--measure") {
        return measure_kept(Path::new(&kept), &generator.authority_hex(), samples).await;
    }
    let base = flag("--dir").map_or_else(std::env::temp_dir, PathBuf::from);
    let dir = tempfile::Builder::new()
        .prefix("dsdn-da-scale-")
        .tempdir_in(&base)
        .with_context(|| format!("create a directory in {}", base.display()))?;
    let data = dir.path().join("full");
    std::fs::create_dir_all(&data)?;
    let (run, lease) = Run::new(dir.path(), &generator.authority_hex(), samples)?;
    // `dsdnd init` before the log is written: the node key lives beside it.
    dsdn_daemon::localnet::init_node(&data)?;
    let log = data.join(dsdn_p2p::da::store::DA_LOG_FILE);
    let mut points: Vec<ScalePoint> = Vec::new();
    let mut stopped = None;
    for &size in &sizes {
        if let Some(last) = points.last() {
            if let Some(reason) = fits(&run.dir, last, size)? {
                stopped = Some(reason);
                break;
            }
        }
        let t = Instant::now();
        let mut shown = Instant::now();
        generator.grow_to(&log, size, |events| {
            if shown.elapsed() > Duration::from_secs(10) {
                eprintln!("[scale] generating: {events} of {size} events");
                shown = Instant::now();
            }
        })?;
        eprintln!(
            "[scale] generated {size} events ({} blobs) in {:.1} s",
            generator.height(),
            t.elapsed().as_secs_f64()
        );
        if Some(&size) == sizes.last() {
            // Its state is as large as the node's log: free the disk for the state sync.
            generator.drop_state();
        }
        match run
            .measure(generator.events(), generator.height(), generator.chunks())
            .await
        {
            Ok(point) => points.push(point),
            Err(e) => {
                stopped = Some(format!("{size} events: {e:#}"));
                break;
            }
        }
    }
    print_table(&points);
    if let Some(reason) = &stopped {
        println!("stopped: {reason}");
    }
    if !points.is_empty() {
        if let Some(parent) = plot_path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)?;
        }
        plot::draw(&points, &plot_path)?;
        println!("plot: {}", plot_path.display());
    }
    if std::env::args().any(|a| a == "--keep") {
        println!("kept: {}", dir.keep().display());
    }
    drop(lease);
    Ok(())
}
