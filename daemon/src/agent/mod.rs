//! The `dsdn-agent` command line: argument parsing, dispatch and error reporting.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use dsdn_daemon::client::{ApiClient, DEFAULT_API_ADDR};
use dsdn_protocols::ServiceType;

mod commands;
mod devnet;
mod table;

/// Operator tool for dsdnd: node status, peers, DA events, and local devnets.
#[derive(Debug, Parser)]
#[command(name = "dsdn-agent", version)]
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
    /// Inspect the node's peers.
    #[command(subcommand)]
    Peers(PeersCommand),
    /// Publish and inspect DA events.
    #[command(subcommand)]
    Da(DaCommand),
    /// Run a local devnet of real dsdnd processes on loopback (DNS seed server, bootstrap,
    /// coordinator, storage nodes), publish sample DA events and watch it until Ctrl-C.
    Devnet(DevnetArgs),
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
    /// Show the node's DA state (events applied, state root).
    State {
        /// Print the state as one JSON object.
        #[arg(long)]
        json: bool,
    },
}

/// Options of `dsdn-agent devnet`.
#[derive(Debug, Args)]
pub(crate) struct DevnetArgs {
    /// Number of storage nodes.
    #[arg(long, value_name = "N", default_value_t = 4, value_parser = clap::value_parser!(u16).range(4..=250))]
    storage: u16,
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
    let client = ApiClient::new(cli.api);
    match cli.command {
        Command::Status { json } => commands::status(&client, json).await?,
        Command::Peers(PeersCommand::List { json, service }) => {
            commands::peers_list(&client, json, service).await?
        }
        Command::Da(DaCommand::Publish { file }) => commands::da_publish(&client, &file).await?,
        Command::Da(DaCommand::State { json }) => commands::da_state(&client, json).await?,
        Command::Devnet(args) => return devnet::run(args).await,
    }
    Ok(ExitCode::SUCCESS)
}

/// The error and its causes on one line (`a: b: c`), cut at the first line break (some
/// errors quote log tails on the following lines).
fn one_line(e: &anyhow::Error) -> String {
    let full = format!("{e:#}");
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
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn parses_commands() {
        let cli =
            Cli::try_parse_from(["dsdn-agent", "--api", "127.0.0.2:9000", "status", "--json"])
                .expect("parse");
        assert_eq!(cli.api.to_string(), "127.0.0.2:9000");
        assert!(matches!(cli.command, Command::Status { json: true }));

        let cli = Cli::try_parse_from(["dsdn-agent", "peers", "list", "--type", "storage-dc"])
            .expect("parse");
        assert!(matches!(
            cli.command,
            Command::Peers(PeersCommand::List {
                json: false,
                service: Some(ServiceType::StorageDc)
            })
        ));
        assert!(Cli::try_parse_from(["dsdn-agent", "peers", "list", "--type", "miner"]).is_err());

        let cli = Cli::try_parse_from(["dsdn-agent", "devnet", "--duration", "5"]).expect("parse");
        match cli.command {
            Command::Devnet(a) => {
                assert_eq!(a.storage, 4);
                assert_eq!(a.events, 20);
                assert_eq!(a.duration, Some(5));
            }
            other => panic!("{other:?}"),
        }
        assert!(Cli::try_parse_from(["dsdn-agent", "devnet", "--storage", "3"]).is_err());
    }

    #[test]
    fn errors_are_one_line() {
        let e = anyhow::anyhow!("node x: exited\n--- log ---\nline").context("devnet failed");
        assert_eq!(one_line(&e), "devnet failed: node x: exited");
    }
}
