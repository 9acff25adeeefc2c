//! The `dsdn-agent` command line: argument parsing, dispatch and error reporting.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use dsdn_daemon::client::{ApiClient, DEFAULT_API_ADDR};
use dsdn_daemon::cookie::{cookie_path, read_cookie};
use dsdn_protocols::ServiceType;

mod commands;
mod committee;
mod dashboard;
mod devnet;
mod peers;
mod proof;
mod table;
mod watch;
mod watch_checkpoint;
mod workload;

/// The daemon's default data directory (`dsdnd --data-dir`), where its cookie is looked
/// for when neither `--data-dir` nor `--cookie` is given.
const DEFAULT_DATA_DIR: &str = "dsdn-data";

/// Operator tool for dsdnd: node status, peers, DA events, and local devnets.
#[derive(Debug, Parser)]
#[command(name = "dsdn-agent", version = dsdn_daemon::build_info::LONG_VERSION)]
struct Cli {
    /// Control API address of the dsdnd to talk to.
    #[arg(
        long,
        global = true,
        value_name = "IP:PORT",
        default_value = DEFAULT_API_ADDR,
        env = "DSDN_API"
    )]
    api: SocketAddr,

    /// The daemon's data directory: the API token is read from DIR/.cookie
    /// [default: dsdn-data]. For `watch`: the light client's own directory (its peers.dat,
    /// for a warm start next time) [default: a temporary one].
    #[arg(long, global = true, value_name = "DIR", conflicts_with = "cookie")]
    data_dir: Option<PathBuf>,

    /// The daemon's cookie file (the API token), e.g. /var/lib/dsdn/.cookie.
    #[arg(long, global = true, value_name = "FILE")]
    cookie: Option<PathBuf>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Show the node's status.
    Status {
        /// Print the status as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Inspect and manage the node's peers and seeds.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// Publish and inspect DA events.
    #[command(subcommand)]
    Da(DaCommand),
    /// Run and inspect the coordinator committee (FROST DKG, threshold signing).
    #[command(subcommand)]
    Committee(CommitteeCommand),
    /// Submit WASM workloads to a coordinator.
    #[command(subcommand)]
    Workload(workload::WorkloadCommand),
    /// Show and verify receipts, threshold-signed or optimistic (re-execution: the start of
    /// a fraud check).
    #[command(subcommand)]
    Receipt(workload::ReceiptCommand),
    /// The coordinator disputes this node found, for the chain to judge: DA forks (two
    /// validly signed blobs at one height), double receipts (two validly signed receipts
    /// of one job) and challenged optimistic receipts (a coordinator's receipt whose job the
    /// committee signed with another commitment).
    Disputes {
        /// Print them as one JSON object (with each dispute's verifiable CBOR as hex).
        #[arg(long)]
        json: bool,
    },
    /// Run a local devnet of real dsdnd processes on loopback (DNS seed server, bootstrap,
    /// a 2-of-3 coordinator committee, storage nodes): run the committee's DKG, restart
    /// every node with the group key as da_authority, publish sample DA events sealed by
    /// the committee and watch it until Ctrl-C.
    Devnet(DevnetArgs),
    /// Serve the live dashboard of running nodes (the page `devnet --dashboard` serves):
    /// topology, DA height and state root over time, propagation of blobs and receipts,
    /// committee. Ctrl-C stops it.
    Dashboard(dashboard::DashboardArgs),
    /// Follow the network's DA events as a light client, without a daemon: bootstrap from
    /// seeds.toml, verify every event against network.da_authority and print each one as it
    /// arrives (one line per event; --json: one JSON object per line). Ctrl-C stops it.
    Watch(watch::WatchArgs),
    #[command(flatten)]
    Docs(dsdn_daemon::cli_docs::DocsCommand),
}

#[derive(Debug, Subcommand)]
enum PeersCommand {
    /// List every known peer (peers.dat and connected).
    List {
        /// Print a JSON array of peers.
        #[arg(long)]
        json: bool,
        /// Only peers advertising this service type (bootstrap, storage, storage-dc,
        /// coordinator, validator, chain, ingress).
        #[arg(long = "type", value_name = "SERVICE", value_parser = parse_service_type)]
        service: Option<ServiceType>,
        /// Also show address, source, netgroup, handshakes (ok/failed), agent version and
        /// protocols (wider than 80 columns).
        #[arg(long)]
        wide: bool,
    },
    /// Add a static peer (kept in the daemon's data directory), dial it now and keep it
    /// connected (re-dialled after a failure, 30 s doubling up to 10 min).
    Add {
        /// IP:PORT, [IPv6]:PORT or a multiaddr such as /ip4/203.0.113.50/tcp/30303.
        #[arg(value_name = "IP:PORT|MULTIADDR")]
        addr: String,
    },
    /// Remove a static peer added with `peers add` (it is no longer dialled; an open
    /// connection stays until it closes).
    Remove {
        /// The address as given to `peers add` (as `peers added` lists it).
        #[arg(value_name = "IP:PORT|MULTIADDR")]
        addr: String,
    },
    /// The peers added with `peers add` and their state: connected, dialing or waiting,
    /// the next retry and the last error.
    Added {
        /// Print a JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Add a DNS seed (kept in the daemon's data directory) and resolve it now.
    AddSeed {
        /// The seed's domain name, e.g. seed4.dsdn.network.
        #[arg(value_name = "DOMAIN")]
        domain: String,
    },
    /// The bans in force: peer, until when (UTC) and why.
    Bans {
        /// Print them as a JSON array (the `peers list` entries of banned peers).
        #[arg(long)]
        json: bool,
    },
    /// Address-book and connection statistics (peers.dat health, eclipse and partition
    /// warnings).
    Stats {
        /// Print the statistics as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Force a re-bootstrap: clear peers.dat, drop every connection and start again from
    /// the DNS seeds and static peers. Asks no confirmation.
    Reset,
    /// Ban a peer: disconnect it and refuse it until the ban ends.
    Ban {
        /// The peer's id (base58, 12D3Koo…), a unique prefix of it, or the short form
        /// `peers list` prints (12D3…abcdefgh).
        #[arg(value_name = "PEER", value_parser = peers::parse_peer_id)]
        peer: String,
        /// Ban length: 90s, 30m, 12h, 7d, 2w or plain seconds (at most 365d)
        /// [default: the daemon's ban_duration_secs].
        #[arg(long = "for", value_name = "DURATION", value_parser = peers::parse_ban_duration)]
        duration: Option<u64>,
    },
    /// Lift a peer's ban, or every ban with --all.
    Unban {
        /// The peer's id (base58, 12D3Koo…), a unique prefix of it, or the short form
        /// `peers list` prints (12D3…abcdefgh).
        #[arg(
            value_name = "PEER",
            value_parser = peers::parse_peer_id,
            required_unless_present = "all",
            conflicts_with = "all"
        )]
        peer: Option<String>,
        /// Lift every ban (e.g. after fixing a configuration error that made honest peers
        /// look bad).
        #[arg(long)]
        all: bool,
    },
}

#[derive(Debug, Subcommand)]
enum CommitteeCommand {
    /// Start the DKG of the configured committee (t-of-n, epoch) on this member and wait
    /// until it adopted the group key; prints the committee status.
    Dkg {
        /// Print the status as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show the committee: members, threshold, epoch, group key and this node's state.
    Status {
        /// Print the status as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Subcommand)]
enum DaCommand {
    /// Publish the DA events of a JSON file (the node must be the DA authority).
    Publish {
        /// A JSON array of DA events, e.g.
        /// `[{"type": "replica_added", "chunk_id": "<64 hex>", "node_id": "12D3Koo..."}]`.
        #[arg(long, value_name = "EVENTS.json")]
        file: PathBuf,
    },
    /// Show the node's DA log and the state replayed from it (height, events, state root,
    /// registry sizes, backfill progress).
    State {
        /// Print the state as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Show blobs of the node's DA log (a light client fetches them from a peer).
    Blobs {
        /// First height.
        #[arg(long, value_name = "H", default_value_t = 1)]
        from: u64,
        /// How many (at most 64).
        #[arg(long, value_name = "N", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=64))]
        count: u32,
        /// Print the blobs as a JSON array (events in their JSON form).
        #[arg(long)]
        json: bool,
    },
    /// Fork evidence the node holds: pairs of validly signed blobs at one height (the DA
    /// authority key signs for two sealers), verifiable by anyone with the network id and
    /// the authority key.
    Evidence {
        /// Print a JSON array (with each evidence's CBOR as hex).
        #[arg(long)]
        json: bool,
    },
    /// Fetch a DA state key's value (or absence) with its proof from the node and verify
    /// it locally (issue 16 §3). Exits with status 1 when the proof does not verify.
    Proof {
        /// The key: `node:<id>`, `chunk:<64 hex>`, `replicas:<64 hex>` (the nodes holding a
        /// chunk), `zone:<name>` (its node count) or `receipt:<64 hex>`.
        key: String,
        /// The height to prove at (default: the node's current height).
        #[arg(long, value_name = "H")]
        height: Option<u64>,
        /// A trusted state root (64 hex) to verify against, e.g. from another node or a
        /// checkpoint; by default the root the node reports for that height.
        #[arg(long, value_name = "HEX")]
        root: Option<String>,
        /// Print the verdict as one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Hand the node a blob signed elsewhere (e.g. by the coordinator committee): one
    /// CBOR-encoded DA blob. The node verifies, applies or holds, and gossips it.
    Submit {
        /// The CBOR-encoded blob.
        #[arg(long, value_name = "BLOB.cbor")]
        file: PathBuf,
    },
}

/// Options of `dsdn-agent devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Number of storage nodes.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(4..=250))]
    storage: u16,
    /// Number of coordinators. 2 or more form a committee (members coordinator-1..N, the
    /// order fixes the DA proposer rotation) whose DKG group key becomes the da_authority; 1: a single
    /// coordinator whose own key is the da_authority (no DKG).
    #[arg(long, value_name = "N", default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=64))]
    coordinators: u16,
    /// With 2 or more coordinators: the committee's signing threshold t (2 ≤ t ≤ N and
    /// 2t > N: the DA proposer rotation needs a majority).
    #[arg(long, value_name = "T", default_value_t = 2, value_parser = clap::value_parser!(u16).range(2..=64))]
    threshold: u16,
    /// Keep config, data and logs in this directory instead of a temporary one.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// Number of sample DA events to publish through the coordinator (at least one per
    /// storage node plus one of each other kind).
    #[arg(long, value_name = "N", default_value_t = 20)]
    events: usize,
    /// Watch for this many seconds after publishing, then stop everything and exit
    /// (non-zero if the nodes' DA state did not converge). Default: until Ctrl-C.
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// RUST_LOG of the daemons.
    #[arg(long, value_name = "FILTER", default_value = "info")]
    rust_log: String,
    /// Serve the live dashboard on IP:PORT from the start (port 0: a free port; the URL is
    /// printed). No authentication: keep it on loopback or a private interface.
    #[arg(long, value_name = "IP:PORT")]
    dashboard: Option<SocketAddr>,
    /// Write the timeline (per node and per DA height or receipt, when it first had it, in
    /// ms since the devnet started; heights and state roots over time) as JSON to FILE,
    /// every 5 s and at the end.
    #[arg(long, value_name = "FILE")]
    record: Option<PathBuf>,
}

fn parse_service_type(s: &str) -> Result<ServiceType, String> {
    s.parse::<ServiceType>().map_err(|e| e.to_string())
}

/// Runs the command line; prints `error: …` (one line) and fails on any error.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    // Every command but devnet and watch talks to one daemon, with its token.
    let watch_dir = cli.data_dir.clone();
    let default_cookie = match (&cli.cookie, &cli.data_dir) {
        (Some(file), _) => file.clone(),
        (None, Some(dir)) => cookie_path(dir),
        (None, None) => cookie_path(Path::new(DEFAULT_DATA_DIR)),
    };
    let (api, cookie, data_dir) = (cli.api, cli.cookie, cli.data_dir);
    let client = move || -> anyhow::Result<ApiClient> {
        let token = read_token(cookie.as_deref(), data_dir.as_deref())?;
        Ok(ApiClient::new(api).with_token(token))
    };
    match cli.command {
        Command::Docs(docs) => docs.run(Cli::command())?,
        Command::Devnet(args) => return devnet::run(args).await,
        Command::Dashboard(args) => dashboard::run_standalone(args, api, &default_cookie).await?,
        Command::Watch(args) => watch::run(&args, watch_dir.as_deref()).await?,
        Command::Status { json } => commands::status(&client()?, json).await?,
        Command::Peers(cmd) => {
            let client = client()?;
            match cmd {
                PeersCommand::List {
                    json,
                    service,
                    wide,
                } => peers::list(&client, json, wide, service).await?,
                PeersCommand::Add { addr } => peers::add(&client, &addr).await?,
                PeersCommand::Remove { addr } => peers::remove(&client, &addr).await?,
                PeersCommand::Added { json } => peers::added(&client, json).await?,
                PeersCommand::AddSeed { domain } => peers::add_seed(&client, &domain).await?,
                PeersCommand::Stats { json } => peers::stats(&client, json).await?,
                PeersCommand::Bans { json } => peers::bans(&client, json).await?,
                PeersCommand::Reset => peers::reset(&client).await?,
                PeersCommand::Ban { peer, duration } => {
                    peers::ban(&client, &peer, duration).await?
                }
                PeersCommand::Unban {
                    peer: Some(peer), ..
                } => peers::unban(&client, &peer).await?,
                PeersCommand::Unban { peer: None, .. } => peers::unban_all(&client).await?,
            }
        }
        Command::Da(DaCommand::Publish { file }) => commands::da_publish(&client()?, &file).await?,
        Command::Da(DaCommand::State { json }) => commands::da_state(&client()?, json).await?,
        Command::Da(DaCommand::Blobs { from, count, json }) => {
            commands::da_blobs(&client()?, from, count, json).await?
        }
        Command::Da(DaCommand::Proof {
            key,
            height,
            root,
            json,
        }) => proof::da_proof(&client()?, &key, height, root.as_deref(), json).await?,
        Command::Da(DaCommand::Submit { file }) => commands::da_submit(&client()?, &file).await?,
        Command::Da(DaCommand::Evidence { json }) => {
            commands::da_evidence(&client()?, json).await?;
        }
        Command::Committee(CommitteeCommand::Dkg { json }) => {
            let status = client()?.committee_dkg().await?;
            committee::committee_status(&status, json)?
        }
        Command::Committee(CommitteeCommand::Status { json }) => {
            let status = client()?.committee_status().await?;
            committee::committee_status(&status, json)?
        }
        Command::Workload(cmd) => return workload::workload(&client()?, cmd).await,
        Command::Receipt(cmd) => return workload::receipt(&client()?, cmd).await,
        Command::Disputes { json } => commands::disputes(&client()?, json).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// The API token: from `--cookie FILE`, else `DIR/.cookie` of `--data-dir DIR`, else
/// `dsdn-data/.cookie`. Every error says which file was tried and what to pass instead.
fn read_token(cookie: Option<&Path>, data_dir: Option<&Path>) -> anyhow::Result<String> {
    let (path, how) = match (cookie, data_dir) {
        (Some(file), _) => (file.to_path_buf(), "--cookie"),
        (None, Some(dir)) => (cookie_path(dir), "--data-dir"),
        (None, None) => (cookie_path(Path::new(DEFAULT_DATA_DIR)), "default"),
    };
    read_cookie(&path).with_context(|| {
        let hint = match how {
            "--cookie" => "is dsdnd running? it writes the cookie at start",
            "--data-dir" => "is dsdnd running with this --data-dir? it writes the cookie at start",
            _ => "pass --data-dir DIR of the daemon or --cookie FILE",
        };
        format!("cannot read the API cookie {} ({hint})", path.display())
    })
}

/// The error and its causes on one line (`a: b: c`, each cause once), cut at the first line
/// break (some errors quote log tails on the following lines).
fn one_line(e: &anyhow::Error) -> String {
    let full = dsdn_p2p::node::error_chain(e.as_ref());
    let first = full.lines().next().unwrap_or_default().trim_end();
    first.to_owned()
}

/// Writes `text` to stdout; a closed pipe (`dsdn-agent peers list | head`) is not an error.
pub(crate) fn print_out(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(anyhow::Error::new(e).context("cannot write to stdout"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests;
