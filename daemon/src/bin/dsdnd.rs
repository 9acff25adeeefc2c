//! `dsdnd`: the DSDN peer-to-peer daemon.
//!
//! ```text
//! dsdnd init --data-dir DIR
//! dsdnd --mode bootstrap|storage|coordinator|validator|chain|ingress [--dc] \
//!       --config FILE --data-dir DIR [--listen IP:PORT]... --api IP:PORT \
//!       [--zone ZONE --capacity-bytes N] [--reindex-da]
//!       [--committee-members P1,P2,.. --committee-threshold T --committee-epoch E]
//! ```
//!
//! A coordinator is a committee member when `--committee-members` or the `[committee]`
//! section of seeds.toml names members; each of members, threshold and epoch comes from its
//! flag when given, else from seeds.toml, else its default (threshold 2, epoch 0). Other
//! modes ignore `[committee]`.
//!
//! Every mode but `bootstrap` keeps the DA log and its derived state (maps and authenticated
//! tree) in `<data dir>/da-log.redb`. A storage node registers itself with the DA
//! authority (zone, capacity, class `regular`, or `datacenter` with `--dc`); a coordinator
//! of a committee network registers in the coordinator registry (class `coordinator`).
//!
//! The mode decides what the node advertises, which roles it keeps connected and whether it
//! carries DA events: see [`dsdn_daemon::roles`]. `validator`, `chain` and `ingress` are
//! discovery-only roles (they advertise and connect); `--dc` goes with `storage` only.
//!
//! Before anything else the data directory and the peer cache are checked
//! ([`dsdn_daemon::preflight`]): a data directory that is a file, or a `peers_file` that
//! cannot be written, stops the daemon with a message naming the path and what is wrong.
//! Errors are printed with each cause once (`error: a: b: c`).
//!
//! While it runs, `<data dir>/.cookie` (mode 0600) holds the token the control API demands
//! (`Authorization: Bearer <token>`); it is rewritten at each start and removed on a clean
//! shutdown.
//!
//! At start the soft `nofile` limit is raised to the hard one and split between files, the
//! control API and P2P connections (see [`dsdn_daemon::fds`]); P2P limits that do not fit
//! are lowered, with a warning naming the keys.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use dsdn_daemon::fds::{self, FdMetrics};
use dsdn_daemon::logging::{Log, LogFormat};
use dsdn_daemon::roles::Mode;
use dsdn_daemon::server::{self, ApiState};
use dsdn_daemon::{cli_docs, cookie, key, preflight};
use dsdn_p2p::seeds::SeedsConfig;
use dsdn_p2p::workload::WorkloadConfig;
use dsdn_p2p::{Node, NodeConfig};
use dsdn_protocols::da::register::RegisterRequest;
use dsdn_protocols::ServiceType;

/// The DSDN peer-to-peer daemon.
#[derive(Parser, Debug)]
#[command(name = "dsdnd", version = dsdn_daemon::build_info::LONG_VERSION)]
struct Cli {
    /// What this daemon advertises, which roles it keeps connected and whether it carries
    /// DA events (validator, chain, ingress: discovery only).
    #[arg(long, value_enum, default_value_t = Mode::Storage)]
    mode: Mode,
    /// seeds.toml: network id, DA authority, bootstrap sources and limits.
    ///
    /// Without this flag `./seeds.toml` is read when it exists; otherwise the daemon runs
    /// on the documented defaults (network `devnet`, no seeds: peers come from `dsdn-agent
    /// peers add`), and says so. A file named with this flag must exist.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Data directory: node key, peers.dat, DA log and state, control cookie.
    #[arg(long, global = true, default_value = "dsdn-data")]
    data_dir: PathBuf,
    /// A public address this node is reachable on (repeatable), e.g.
    /// `/ip4/203.0.113.7/tcp/30303`: advertised without an AutoNAT test, beside
    /// `[network] external_addresses`.
    #[arg(long = "external-address", value_name = "MULTIADDR")]
    external_addresses: Vec<libp2p::Multiaddr>,
    /// An IP:PORT (IPv4 or IPv6, e.g. `[2001:db8::1]:30303`) served by both QUIC (UDP)
    /// and TCP; repeat it to listen on several, e.g. one IPv4 and one IPv6 address
    /// [default: 0.0.0.0:<default_port> and [::]:<default_port>, the latter skipped with a
    /// warning on a host without IPv6].
    #[arg(long, value_name = "IP:PORT")]
    listen: Vec<SocketAddr>,
    /// Append log lines to this file (no colour codes) instead of stderr; SIGHUP reopens
    /// it, for logrotate. The level is `RUST_LOG` when set, else seeds.toml's `[log] level`,
    /// else `info`.
    #[arg(long, global = true, value_name = "PATH")]
    log_file: Option<PathBuf>,
    /// The log filter, e.g. `debug` or `info,dsdn_p2p=debug`; wins over `RUST_LOG` and
    /// seeds.toml's `[log] level` (which a SIGHUP then does not change).
    #[arg(long, global = true, value_name = "FILTER")]
    log_level: Option<String>,
    /// `text` (human lines) or `json` (one object per line, for log shippers).
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Also serve `/metrics`, `/health` and `/health/live` **without token** on this
    /// address, for Prometheus and health probes on a private interface (at most 8
    /// connections).
    #[arg(long, value_name = "IP:PORT")]
    metrics_listen: Option<SocketAddr>,
    /// Address of the HTTP/JSON control API.
    #[arg(long, default_value = "127.0.0.1:8645")]
    api: SocketAddr,
    /// With `--mode storage`: a data-centre storage node (advertises storage and storage-dc).
    #[arg(long)]
    dc: bool,
    /// With `--mode storage`: the placement zone this node registers in (1-128 bytes).
    #[arg(long, default_value = "default")]
    zone: String,
    /// With `--mode storage`: the capacity this node offers, in bytes.
    #[arg(long, default_value_t = 1 << 40)]
    capacity_bytes: u64,
    /// Delete the derived DA state (the state tables of `da-log.redb`) before starting, so
    /// the state and its roots are rebuilt by replaying the log.
    #[arg(long)]
    reindex_da: bool,
    /// With `--mode coordinator`: the coordinator committee's members, as comma-separated
    /// PeerIds in the same order on every member (this node among them). Makes this node a
    /// committee member: it speaks `/dsdn/<network>/committee/1.0.0` and keeps its key share
    /// in `<data dir>/committee/` [default: `committee.members` of seeds.toml].
    #[arg(long, value_delimiter = ',', value_name = "PEER_ID,...")]
    committee_members: Vec<libp2p::PeerId>,
    /// For a committee member: the signing threshold t (2 ≤ t ≤ members)
    /// [default: `committee.threshold` of seeds.toml, else 2].
    #[arg(long, value_name = "T")]
    committee_threshold: Option<u16>,
    /// For a committee member: the committee epoch (a new DKG and group key per epoch)
    /// [default: `committee.epoch` of seeds.toml, else 0].
    #[arg(long, value_name = "E")]
    committee_epoch: Option<u64>,
    /// **Tests only** (hidden): with `--mode storage`, report a made-up output for every
    /// workload, with a commitment that matches it (a lying node, for the fraud-check
    /// tests). Never use it on a real network.
    #[arg(long, hide = true)]
    test_lie_output: bool,
    /// **Tests only** (hidden): as a committee member, answer signing packages with a
    /// corrupted signature share (so that the proposer's detection naming this member can
    /// be tested). Never use it on a real network.
    #[arg(long, hide = true)]
    test_corrupt_shares: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create the data directory and node key if missing; print the peer id and public key
    /// as JSON.
    Init,
    #[command(flatten)]
    Docs(cli_docs::DocsCommand),
}

fn init(data_dir: &Path) -> anyhow::Result<()> {
    preflight::check_data_dir(data_dir)?;
    let (kp, _) = key::load_or_create(data_dir)?;
    let public = key::public_key_bytes(&kp).context("node key is not Ed25519")?;
    let out = serde_json::json!({
        "peer_id": kp.public().to_peer_id().to_string(),
        "public_key": hex::encode(public),
    });
    println!("{out}");
    Ok(())
}

/// The committee this node belongs to, as resolved from flags and seeds.toml.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Membership {
    members: Vec<libp2p::PeerId>,
    threshold: u16,
    epoch: u64,
}

/// Resolves the committee membership: `None` unless this is a coordinator with members
/// from `--committee-members` or `[committee] members`. Each of members, threshold and
/// epoch comes from its flag when given, else from the file (whose defaults are threshold
/// 2, epoch 0). A non-coordinator ignores `[committee]`.
///
/// # Errors
/// A `--committee-*` flag given with a mode other than `coordinator`.
fn committee_membership(
    cli: &Cli,
    file: &dsdn_p2p::committee::CommitteeConfig,
) -> anyhow::Result<Option<Membership>> {
    let flags_given = !cli.committee_members.is_empty()
        || cli.committee_threshold.is_some()
        || cli.committee_epoch.is_some();
    if cli.mode != Mode::Coordinator {
        if flags_given {
            anyhow::bail!("the --committee-* flags need --mode coordinator");
        }
        return Ok(None);
    }
    let members = if cli.committee_members.is_empty() {
        file.members.clone()
    } else {
        cli.committee_members.clone()
    };
    if members.is_empty() {
        if flags_given {
            anyhow::bail!(
                "--committee-threshold and --committee-epoch need members (--committee-members or [committee] members in seeds.toml)"
            );
        }
        return Ok(None);
    }
    Ok(Some(Membership {
        members,
        threshold: cli.committee_threshold.unwrap_or(file.threshold),
        epoch: cli.committee_epoch.unwrap_or(file.epoch),
    }))
}

async fn shutdown_signal() {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install SIGTERM handler");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {},
        _ = term.recv() => {},
    }
    tracing::info!("shutting down");
}

async fn run(
    cli: Cli,
    mut seeds: SeedsConfig,
    config_path: Option<PathBuf>,
    log: Log,
) -> anyhow::Result<()> {
    cli.mode.check_dc(cli.dc)?;
    if config_path.is_none() {
        tracing::info!(
            network = %seeds.network.name,
            "no configuration file (no --config, no ./seeds.toml): running on the documented \
             defaults; add peers with `dsdn-agent peers add`"
        );
    }
    // Operator mistakes on paths, named before the key loader or redb meet them.
    preflight::check_data_dir(&cli.data_dir)?;
    let peers_file = seeds.bootstrap.peers_path(&cli.data_dir);
    preflight::check_peers_file(&peers_file)?;
    let budget = fds::plan_for(&mut seeds)?;
    let (keypair, created) = key::load_or_create(&cli.data_dir)?;
    let peer_id = keypair.public().to_peer_id();
    if created {
        tracing::info!(%peer_id, "created a new node key");
    }
    // Addresses the operator gave must all be bound; of the default dual-stack pair the
    // IPv6 one may be missing on a host without IPv6.
    let listen_ipv6_optional = cli.listen.is_empty();
    let listen = if listen_ipv6_optional {
        dsdn_p2p::config::default_listen(seeds.bootstrap.default_port)
    } else {
        cli.listen.clone()
    };
    let listen_list = listen
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let services = cli.mode.services(cli.dc);
    let own_key = key::public_key_bytes(&keypair);
    let agent_version = format!("dsdnd/{}", env!("CARGO_PKG_VERSION"));
    let mut registration = (cli.mode == Mode::Storage).then(|| RegisterRequest {
        zone: cli.zone.clone(),
        capacity_bytes: cli.capacity_bytes,
        class: if cli.dc { "datacenter" } else { "regular" }.to_owned(),
    });
    if let Some(r) = &registration {
        r.validate().context("invalid --zone")?;
    }
    if cli.reindex_da {
        let log = cli.data_dir.join(dsdn_p2p::da::store::DA_LOG_FILE);
        if log.exists() {
            let opened = dsdn_p2p::da::store::DaStore::open(&log, &seeds.network.name)
                .with_context(|| format!("cannot open {}", log.display()))?;
            let height = opened
                .store
                .clear_state()
                .with_context(|| format!("cannot delete the DA state in {}", log.display()))?;
            tracing::info!(path = %log.display(), height, "DA state deleted: it is rebuilt from the log");
        }
    }
    let committee = committee_membership(&cli, &seeds.committee)?.map(|m| {
        tracing::info!(
            members = m.members.len(),
            threshold = m.threshold,
            epoch = m.epoch,
            "coordinator committee member"
        );
        let mut c = dsdn_p2p::committee::CommitteeNodeConfig::new(
            m.members,
            m.threshold,
            m.epoch,
            cli.data_dir.join("committee"),
        );
        c.round_timeout = seeds.committee.round_timeout;
        c.epoch_length = seeds.committee.epoch_length;
        c.handoff = seeds.committee.handoff;
        c.candidates = seeds.committee.candidates.clone();
        c
    });
    // A committee member does not need its own key to be the authority: the members seal
    // by proposer rotation when da_authority is the committee's group key.
    if cli.mode == Mode::Coordinator
        && committee.is_none()
        && seeds.network.da_authority.is_some()
        && seeds.network.da_authority != own_key
    {
        tracing::warn!("this coordinator's key is not the network's da_authority: it will relay but not publish DA events");
    }
    let committee = committee.map(|mut c| {
        c.test_corrupt_shares = cli.test_corrupt_shares;
        c
    });
    if committee.is_some() {
        // A coordinator of a committee network registers in the coordinator registry the
        // next committees are selected from (issue 13 §3); zone and capacity are not
        // recorded.
        registration = Some(RegisterRequest {
            zone: cli.zone.clone(),
            capacity_bytes: 0,
            class: dsdn_protocols::da::register::COORDINATOR_CLASS.to_owned(),
        });
    }
    if cli.test_corrupt_shares {
        tracing::warn!(
            "--test-corrupt-shares: this member sends corrupted signature shares (tests only)"
        );
    }
    // Storage nodes execute workloads (Tahap 14C.B); every node verifies and forwards
    // receipts.
    let executes =
        services.contains(ServiceType::Storage) || services.contains(ServiceType::StorageDc);
    let workload = WorkloadConfig {
        executor: if executes {
            let executor = dsdn_daemon::workload::RuntimeExecutor::new()
                .context("cannot build the WASM runtime")?;
            Some(std::sync::Arc::new(executor) as std::sync::Arc<dyn dsdn_p2p::workload::Executor>)
        } else {
            None
        },
        test_lie_output: cli.test_lie_output,
        receipts: seeds.receipts.clone(),
        ..WorkloadConfig::default()
    };
    if cli.test_lie_output {
        tracing::warn!(
            "--test-lie-output: this node reports made-up workload outputs (tests only)"
        );
    }
    let cfg = NodeConfig {
        da_authority: seeds.network.da_authority,
        address_policy: seeds.network.address_policy(),
        services,
        // A dedicated bootstrap node subscribes to no data topic (28.1.C §3).
        subscribe_da: cli.mode.subscribes_da(),
        da: seeds.da.clone(),
        registration,
        listen,
        listen_ipv6_optional,
        bootstrap: seeds.bootstrap.clone(),
        peers_file,
        agent_version: agent_version.clone(),
        mode: cli.mode.as_str().to_owned(),
        required_roles: cli.mode.required_roles(),
        committee,
        workload,
        nat: seeds.nat.resolve(
            &seeds.network.name,
            cli.mode == Mode::Bootstrap,
            seeds
                .network
                .external_addresses
                .iter()
                .chain(&cli.external_addresses)
                .cloned()
                .collect(),
        ),
        ..NodeConfig::new(keypair, seeds.network.name.clone(), &cli.data_dir)
    };
    let node = Node::start(cfg).context("cannot start the network layer")?;
    if let Some(path) = &node.store_report.moved_aside {
        tracing::warn!(path = %path.display(), "peers.dat was corrupt: moved aside, rebuilding from seeds");
    }
    if node.store_report.purged_records > 0 {
        tracing::warn!(
            records = node.store_report.purged_records,
            "peers.dat had undecodable records: removed"
        );
    }
    tracing::info!(
        %peer_id,
        mode = cli.mode.as_str(),
        network = %seeds.network.name,
        listen = %listen_list,
        services = %services,
        "dsdnd started"
    );
    if cli.mode.is_discovery_only() {
        tracing::info!(
            mode = cli.mode.as_str(),
            "discovery-only role: this daemon advertises the role and keeps the peers it needs; the component itself runs elsewhere"
        );
    }
    let token = cookie::write_cookie(&cli.data_dir).with_context(|| {
        format!(
            "cannot write the control API cookie {}",
            cookie::cookie_path(&cli.data_dir).display()
        )
    })?;
    let state = ApiState {
        node: node.handle.clone(),
        metrics: node.metrics.clone(),
        mode: cli.mode.as_str().to_owned(),
        network: seeds.network.name.to_string(),
        services: services.names().into_iter().map(String::from).collect(),
        agent_version,
        token: token.into(),
    };
    dsdn_daemon::build_info::register(node.metrics.registry())
        .context("cannot register dsdn_build_info")?;
    if let Some(budget) = budget {
        let metrics = FdMetrics::register(node.metrics.registry(), &budget)
            .context("cannot register the descriptor metrics")?;
        tokio::spawn(fds::watch(metrics, budget));
    }
    let event_loop = tokio::spawn(node.event_loop.run());
    let reloader = tokio::spawn(dsdn_daemon::reload::on_hangup(
        config_path.clone(),
        seeds.clone(),
        node.handle.clone(),
        log,
        budget,
    ));
    let metrics_listener = match cli.metrics_listen {
        Some(addr) => {
            let listener = match server::health::bind_metrics(addr).await {
                Ok(l) => l,
                Err(e) => {
                    let _ = cookie::remove_cookie(&cli.data_dir);
                    return Err(
                        anyhow::Error::from(e).context(format!("metrics listener on {addr}"))
                    );
                }
            };
            let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
            let serving = tokio::spawn(server::health::serve_metrics(
                listener,
                state.clone(),
                seeds.api,
                async move {
                    let _ = stop_rx.await;
                },
            ));
            Some((stop_tx, serving, addr))
        }
        None => None,
    };
    let api = cli.api;
    let served = server::serve(api, state, seeds.api, shutdown_signal())
        .await
        .with_context(|| format!("control API on {api}"));
    if let Err(e) = cookie::remove_cookie(&cli.data_dir) {
        tracing::warn!(error = %e, "cannot remove the control API cookie");
    }
    reloader.abort();
    let _ = reloader.await;
    if let Some((stop, serving, addr)) = metrics_listener {
        let _ = stop.send(());
        match serving.await {
            Ok(Err(e)) => tracing::error!(%addr, error = %e, "the metrics listener failed"),
            Err(e) => tracing::error!(%addr, error = %e, "the metrics listener panicked"),
            Ok(Ok(())) => {}
        }
    }
    served?;
    // The API held the last handles; dropping them stops the event loop.
    drop(node.handle);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), event_loop).await;
    Ok(())
}

/// The configuration: the file named by `--config`, else `./seeds.toml` when it exists,
/// else the defaults (no file; `None` as the path SIGHUP re-reads).
fn load_config(flag: Option<&Path>) -> anyhow::Result<(SeedsConfig, Option<PathBuf>)> {
    let path = match flag {
        Some(p) => p.to_path_buf(),
        None if Path::new(DEFAULT_CONFIG).exists() => PathBuf::from(DEFAULT_CONFIG),
        None => return Ok((SeedsConfig::default(), None)),
    };
    let seeds = SeedsConfig::load(&path)
        .with_context(|| format!("invalid configuration {}", path.display()))?;
    Ok((seeds, Some(path)))
}

/// The configuration file read when `--config` is not given and it exists.
const DEFAULT_CONFIG: &str = "seeds.toml";

/// Reads the configuration, installs the log and runs the daemon.
fn start(cli: Cli) -> anyhow::Result<()> {
    let (seeds, config_path) = load_config(cli.config.as_deref())?;
    let log = Log::init(
        cli.log_level.as_deref(),
        seeds.log.level.as_deref(),
        cli.log_file.as_deref(),
        cli.log_format,
    )?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(cli, seeds, config_path, log))
}

/// `e` and its causes on one line, each cause once: many errors repeat their source's
/// text in their own, which `{:#}` would print twice.
fn error_text(e: &anyhow::Error) -> String {
    dsdn_p2p::node::error_chain(e.as_ref())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Some(Command::Init) => Log::init(
            cli.log_level.as_deref(),
            None,
            cli.log_file.as_deref(),
            cli.log_format,
        )
        .map_err(anyhow::Error::from)
        .and_then(|_| init(&cli.data_dir)),
        Some(Command::Docs(docs)) => docs.run(Cli::command()).map_err(anyhow::Error::from),
        None => start(cli),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
#[path = "dsdnd/tests.rs"]
mod tests;
