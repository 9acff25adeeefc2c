//! Writes the light client's code order, `daemon/light-client.order` (issue 16 §4: a light
//! client within 20 MiB; see [`dsdn_integration_tests::scale::order`]).
//!
//! It generates a small DA log (20,000 events), serves it with a real `dsdnd` full node,
//! and runs the light client (`dsdn-agent watch --from-checkpoint`) under valgrind's
//! callgrind three times: from a given checkpoint until it joined (what the scale benchmark
//! measures), from an older checkpoint printing one blob and proving a chunk (`--count 1
//! --prove`), and from the newest signed blob. A fourth run joins a `dsdn-agent devnet`
//! (DNS seed, eight peers, a committee's group key) from its newest blob and follows three
//! blobs published after it joined. The functions of `dsdn-agent` that ran in any of them
//! are written, by address, as the order file that `daemon/build.rs` gives lld
//! (`--symbol-ordering-file`) when it links `dsdn-agent` in a release build.
//!
//! Run it on the binary the order is for, built by the README's command:
//! `cargo build --release --bins && target/release/dsdn-light-order`, then build again
//! (only `dsdn-agent` is relinked). `--check` only prints how many of the order's names the
//! binary defines. Needs valgrind (`apt-get install valgrind`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context;
use dsdn_integration_tests::scale::fixture::{self, FullNodeSetup, NETWORK};
use dsdn_integration_tests::scale::order;
use dsdn_integration_tests::scale::{chunk_id, light, LogGenerator};
use dsdn_integration_tests::unix_now;
use dsdn_protocols::NetworkId;

/// Events of the generated log (20 blobs).
const EVENTS: u64 = 20_000;

/// The full node's loopback address.
const IP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(127, 0, 0, 62);

/// Longest wait for one profiled light client (valgrind runs it ~50 times slower).
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a profiled client keeps following after it joined, before Ctrl-C: long enough
/// for its periodic work (peer maintenance, PEX, Kademlia, DNS seeds) to run.
const AFTER_JOIN: Duration = Duration::from_secs(25);

const USAGE: &str = "usage: dsdn-light-order [--agent target/release/dsdn-agent] [--out \
daemon/light-client.order] [--keep]\n   or: dsdn-light-order --check [--agent BIN] (how many \
names of the order the binary defines)";

fn flag(name: &str) -> Option<String> {
    std::env::args().skip_while(|a| a != name).nth(1)
}

fn has(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// Refuses unknown arguments.
fn check_args() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--agent" | "--out" => {
                anyhow::ensure!(args.next().is_some(), "{a} needs a value\n{USAGE}");
            }
            "--check" | "--keep" => {}
            "--help" | "-h" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => anyhow::bail!("unknown argument {other:?}\n{USAGE}"),
        }
    }
    Ok(())
}

/// How a profiled light client ends.
enum End {
    /// Ctrl-C [`AFTER_JOIN`] after its `joined` line; with a publisher, after it published
    /// [`PUBLISHED`] new blobs in that time, which reach the client by gossip.
    AfterJoin(Option<Publisher>),
    /// It exits by itself (`--count`, `--prove`).
    Exits,
}

/// New DA events published while a profiled client follows the devnet.
const PUBLISHED: u64 = 3;

/// Publishes DA events through a devnet's DA proposer (`dsdn-agent da publish`).
struct Publisher {
    agent: PathBuf,
    /// The proposer's control API.
    api: String,
    /// The proposer's data directory (its API cookie).
    data_dir: PathBuf,
    /// Where the events file is written.
    file: PathBuf,
}

impl Publisher {
    /// Publishes one `chunk_declared` event (chunk `n`).
    fn publish(&self, n: u64) -> anyhow::Result<()> {
        let event = serde_json::json!([{
            "type": "chunk_declared",
            "chunk_id": hex::encode(chunk_id(1_000_000 + n)),
            "size_bytes": 4096,
            "owner": hex::encode([7u8; 32]),
        }]);
        std::fs::write(&self.file, event.to_string())?;
        let out = std::process::Command::new(&self.agent)
            .arg("--api")
            .arg(&self.api)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["da", "publish", "--file"])
            .arg(&self.file)
            .output()
            .context("run dsdn-agent da publish")?;
        anyhow::ensure!(
            out.status.success(),
            "da publish failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Ok(())
    }
}

/// Sends Ctrl-C to process `pid` (`kill -INT`).
fn interrupt(pid: u32) -> std::io::Result<()> {
    std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status()
        .map(|_| ())
}

/// A running `dsdn-agent devnet`. Dropped without [`Devnet::stop`] (an error on the way),
/// it still gets Ctrl-C, so that it stops its nodes: a SIGKILL would leave them running.
struct Devnet {
    child: tokio::process::Child,
}

impl Devnet {
    /// A devnet (DNS seed, bootstrap node, a 2-of-3 committee whose group key is the DA
    /// authority, four storage nodes) in `dir`, once it shows its live table.
    async fn start(agent: &Path, dir: &Path) -> anyhow::Result<Devnet> {
        let log = dir.with_extension("log");
        let child = tokio::process::Command::new(agent)
            .arg("devnet")
            .arg("--dir")
            .arg(dir)
            .args(["--duration", "900", "--rust-log", "warn"])
            .stdin(Stdio::null())
            .stdout(Stdio::from(std::fs::File::create(&log)?))
            .stderr(Stdio::from(std::fs::File::create(
                log.with_extension("stderr"),
            )?))
            .spawn()
            .context("run dsdn-agent devnet")?;
        let net = Devnet { child };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("phase 6/6") {
                return Ok(net);
            }
            anyhow::ensure!(
                started.elapsed() < RUN_TIMEOUT,
                "the devnet did not come up within {RUN_TIMEOUT:?}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Ctrl-C, which stops its nodes; waits for it to exit.
    async fn stop(mut self) -> anyhow::Result<()> {
        if let Some(pid) = self.child.id() {
            interrupt(pid)?;
        }
        tokio::time::timeout(Duration::from_secs(60), self.child.wait())
            .await
            .context("the devnet did not stop")??;
        Ok(())
    }
}

impl Drop for Devnet {
    fn drop(&mut self) {
        // Still running (not stopped): Ctrl-C without waiting.
        if let (Ok(None), Some(pid)) = (self.child.try_wait(), self.child.id()) {
            let _ = interrupt(pid);
        }
    }
}

/// The `--api` of the last start of the node logging to `log` (a localnet `dsdnd.log`).
fn api_of(log: &Path) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(log).with_context(|| format!("read {}", log.display()))?;
    text.lines()
        .rfind(|l| l.starts_with("==== localnet: start"))
        .and_then(|l| l.split_whitespace().skip_while(|w| *w != "--api").nth(1))
        .map(str::to_owned)
        .with_context(|| format!("no --api in {}", log.display()))
}

/// Runs `dsdn-agent watch --config CONFIG ARGS` under callgrind, writing the profile to
/// `profile`.
async fn profile_run(
    agent: &Path,
    config: &Path,
    args: &[String],
    end: End,
    profile: &Path,
) -> anyhow::Result<()> {
    let stderr_path = profile.with_extension("stderr");
    let stderr = std::fs::File::create(&stderr_path)?;
    let mut child = tokio::process::Command::new("valgrind")
        .arg("--tool=callgrind")
        .arg("--dump-instr=yes")
        .arg(format!("--callgrind-out-file={}", profile.display()))
        .arg(agent)
        .arg("watch")
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(stderr))
        .kill_on_drop(true)
        .spawn()
        .context("cannot run valgrind (apt-get install valgrind)")?;
    let pid = child.id().context("valgrind exited at once")?;
    let started = Instant::now();
    let text = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    if let End::AfterJoin(publisher) = end {
        while !text().contains("watch: joined in") {
            anyhow::ensure!(
                started.elapsed() < RUN_TIMEOUT,
                "the light client did not join within {RUN_TIMEOUT:?}: {}",
                text()
            );
            if let Some(status) = child.try_wait()? {
                anyhow::bail!(
                    "the light client exited ({status}) before joining: {}",
                    text()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        match publisher {
            Some(p) => {
                for n in 0..PUBLISHED {
                    p.publish(n)?;
                    tokio::time::sleep(AFTER_JOIN / PUBLISHED as u32).await;
                }
            }
            None => tokio::time::sleep(AFTER_JOIN).await,
        }
        // Ctrl-C: the client stops cleanly, and callgrind writes the profile at its exit.
        interrupt(pid).context("kill -INT")?;
    }
    let status = tokio::time::timeout(RUN_TIMEOUT, child.wait())
        .await
        .with_context(|| format!("the light client did not exit: {}", text()))??;
    anyhow::ensure!(
        status.success(),
        "the light client failed ({status}): {}",
        text()
    );
    Ok(())
}

/// Profile run `name` (see [`profile_run`]) into `dir/callgrind.NAME`: the instruction
/// addresses of the agent's binary that ran.
///
/// # Errors
/// When the run fails or its profile names no instruction of the binary.
async fn profile(
    name: &str,
    dir: &Path,
    agent: &Path,
    config: &Path,
    args: &[String],
    end: End,
) -> anyhow::Result<BTreeSet<u64>> {
    let agent_name = agent
        .file_name()
        .context("--agent names no file")?
        .to_string_lossy()
        .into_owned();
    let path = dir.join(format!("callgrind.{name}"));
    let t = Instant::now();
    profile_run(agent, config, args, end, &path)
        .await
        .with_context(|| format!("profile run {name:?}"))?;
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
    let a = order::executed_addresses(&text, &agent_name)?;
    eprintln!(
        "[order] {name}: {} instructions of {agent_name} ran ({:.1} s under valgrind)",
        a.len(),
        t.elapsed().as_secs_f64()
    );
    anyhow::ensure!(
        !a.is_empty(),
        "the profile {name:?} names no instruction of {agent_name}"
    );
    Ok(a)
}

/// `--check`: how many of the order's names `agent` defines.
fn check(agent: &Path) {
    println!("{}", order::coverage_line(agent));
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    check_args()?;
    let agent = flag("--agent").map_or_else(dsdn_integration_tests::roles::agent_bin, |a| {
        Ok(PathBuf::from(a))
    })?;
    if has("--check") {
        check(&agent);
        return Ok(());
    }
    let out = flag("--out").map_or_else(order::order_file, PathBuf::from);
    let dir = tempfile::Builder::new()
        .prefix("dsdn-light-order-")
        .tempdir()
        .context("create a temporary directory")?;
    let network = NetworkId::new(NETWORK).map_err(|e| anyhow::anyhow!("{e}"))?;
    let key = ed25519_dalek::SigningKey::from_bytes(&[0x17; 32]);
    let mut generator = LogGenerator::new(key, network, unix_now() * 1000 - 86_400_000);
    let (setup, _lease) = FullNodeSetup::new(dir.path(), IP, &generator.authority_hex())?;
    std::fs::create_dir_all(&setup.data)?;
    dsdn_daemon::localnet::init_node(&setup.data)?;
    let log = setup.data.join(dsdn_p2p::da::store::DA_LOG_FILE);
    generator.grow_to(&log, EVENTS, |_| {})?;
    let tip = generator.height();
    let (mut node, _, _) = fixture::start_at_tip(&setup.spec, tip, RUN_TIMEOUT).await?;
    let client = node.client();
    let joined_at_tip = light::checkpoint_before(&client, tip).await?;
    let older = light::checkpoint_before(&client, tip - 1).await?;
    let s = |v: &[&str]| v.iter().map(|a| (*a).to_owned()).collect::<Vec<String>>();
    let chunk = format!("chunk:{}", hex::encode(chunk_id(1)));
    let runs: [(&str, Vec<String>, End); 3] = [
        (
            "checkpoint",
            s(&["--from-checkpoint", "--checkpoint", &joined_at_tip]),
            End::AfterJoin(None),
        ),
        (
            "prove",
            s(&[
                "--from-checkpoint",
                "--checkpoint",
                &older,
                "--count",
                "1",
                "--prove",
                &chunk,
            ]),
            End::Exits,
        ),
        ("newest", s(&["--from-checkpoint"]), End::AfterJoin(None)),
    ];
    let mut addresses = BTreeSet::new();
    for (name, args, end) in runs {
        let a = profile(name, dir.path(), &agent, &setup.light_config, &args, end).await?;
        addresses.extend(a);
    }
    node.stop().await?;
    // A network like a real one: a DNS seed, eight peers, blobs signed by a committee's
    // group key, new blobs by gossip.
    let net_dir = dir.path().join("devnet");
    let net = Devnet::start(&agent, &net_dir).await?;
    let publisher = Publisher {
        agent: agent.clone(),
        api: api_of(&net_dir.join("coordinator-1").join("dsdnd.log"))?,
        data_dir: net_dir.join("coordinator-1"),
        file: dir.path().join("events.json"),
    };
    let run = profile(
        "devnet",
        dir.path(),
        &agent,
        &net_dir.join("seeds.toml"),
        &s(&["--from-checkpoint"]),
        End::AfterJoin(Some(publisher)),
    )
    .await;
    net.stop().await?;
    addresses.extend(run?);
    let symbols = order::text_symbols(&agent)?;
    // Local symbols of one name may sit at several addresses: each name once.
    let mut named = std::collections::HashSet::new();
    let functions: Vec<_> = order::executed_functions(&symbols, &addresses)
        .into_iter()
        .filter(|f| named.insert(f.name.as_str()))
        .collect();
    let bytes: u64 = functions.iter().map(|f| f.size).sum();
    let pages: BTreeSet<u64> = addresses.iter().map(|a| a >> 12).collect();
    let rustc = std::process::Command::new("rustc")
        .arg("-V")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .unwrap_or_default();
    let mut text = format!(
        "# The functions dsdn-agent runs as a light client (`watch --from-checkpoint`: join\n\
         # through one peer or a devnet, printed and gossiped blobs, a proof), in address order: lld's --symbol-ordering-file for the\n\
         # release dsdn-agent (daemon/build.rs), so that they share as few 64 KiB pages as\n\
         # possible. Written by `target/release/dsdn-light-order` from callgrind profiles of\n\
         # the binary `cargo build --release --bins` built ({}); the names carry Rust's\n\
         # symbol hashes, so regenerate it after a change of Cargo.lock or of the toolchain.\n\
         # {} functions, {:.2} MiB of code.\n",
        rustc.trim(),
        functions.len(),
        bytes as f64 / (1024.0 * 1024.0)
    );
    for f in &functions {
        text.push_str(&f.name);
        text.push('\n');
    }
    std::fs::write(&out, text).with_context(|| format!("write {}", out.display()))?;
    println!(
        "{}: {} functions ({:.2} MiB of code, {} pages of 4 KiB ran) of {}",
        out.display(),
        functions.len(),
        bytes as f64 / (1024.0 * 1024.0),
        pages.len(),
        agent.display()
    );
    if has("--keep") {
        println!("kept: {}", dir.keep().display());
    }
    Ok(())
}
