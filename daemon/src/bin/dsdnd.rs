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
//! Every mode but `bootstrap` keeps the DA log in `<data dir>/da-log.redb` and its derived
//! state in `<data dir>/da-state.cbor`. A storage node registers itself with the DA
//! authority (zone, capacity, class `regular`, or `datacenter` with `--dc`).
//!
//! The mode decides what the node advertises, which roles it keeps connected and whether it
//! carries DA events: see [`dsdn_daemon::roles`]. `validator`, `chain` and `ingress` are
//! discovery-only roles (they advertise and connect); `--dc` goes with `storage` only.
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
use clap::{Parser, Subcommand};
use dsdn_daemon::fds::{self, FdBudget, FdMetrics};
use dsdn_daemon::roles::Mode;
use dsdn_daemon::server::{self, ApiState};
use dsdn_daemon::{cookie, key};
use dsdn_p2p::seeds::SeedsConfig;
use dsdn_p2p::workload::WorkloadConfig;
use dsdn_p2p::{Node, NodeConfig};
use dsdn_protocols::da::register::RegisterRequest;
use dsdn_protocols::ServiceType;
use tracing_subscriber::EnvFilter;

/// The DSDN peer-to-peer daemon.
#[derive(Parser, Debug)]
#[command(name = "dsdnd", version, about)]
struct Cli {
    /// What this daemon advertises, which roles it keeps connected and whether it carries
    /// DA events (validator, chain, ingress: discovery only).
    #[arg(long, value_enum, default_value_t = Mode::Storage)]
    mode: Mode,
    /// seeds.toml: network id, DA authority, bootstrap sources and limits.
    #[arg(long, default_value = "seeds.toml")]
    config: PathBuf,
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
    /// Delete the derived DA state (`da-state.cbor`) before starting, so the state is
    /// rebuilt by replaying the log.
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
}

fn init(data_dir: &Path) -> anyhow::Result<()> {
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

/// Interval of the `process_open_fds` count.
const FD_COUNT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Raises the soft `nofile` limit, splits it ([`FdBudget::plan`]) and lowers the P2P
/// limits of `seeds` to fit; logs the budget and each lowered key.
fn plan_descriptors(seeds: &mut SeedsConfig) -> anyhow::Result<Option<FdBudget>> {
    let limit = match fds::raise_nofile_limit() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit: no descriptor budget");
            return Ok(None);
        }
    };
    let (budget, lowered) = FdBudget::plan(limit.soft, &seeds.api, &mut seeds.bootstrap)?;
    tracing::info!(
        nofile = budget.total,
        nofile_before = limit.before,
        nofile_hard = limit.hard,
        files = budget.files,
        api = budget.api,
        p2p = budget.p2p,
        max_inbound_connections = seeds.bootstrap.max_inbound_connections,
        max_outbound_connections = seeds.bootstrap.max_outbound_connections,
        "file descriptor budget"
    );
    for l in &lowered {
        tracing::warn!(
            key = l.key,
            configured = l.from,
            in_effect = l.to,
            nofile = budget.total,
            "P2P connection limit lowered to fit the file descriptor budget (raise the nofile limit to keep it)"
        );
    }
    Ok(Some(budget))
}

/// Keeps `process_open_fds` current and warns (at most every 10 s) when 90 % of the
/// budget is in use.
async fn watch_descriptors(metrics: FdMetrics, budget: FdBudget) {
    let mut tick = tokio::time::interval(FD_COUNT_INTERVAL);
    loop {
        tick.tick().await;
        let Some(open) = metrics.update() else { return };
        if open.saturating_mul(10) >= budget.total.saturating_mul(9) {
            tracing::warn!(
                open,
                nofile = budget.total,
                "file descriptors nearly exhausted"
            );
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    cli.mode.check_dc(cli.dc)?;
    let mut seeds = SeedsConfig::load(&cli.config)
        .with_context(|| format!("invalid configuration {}", cli.config.display()))?;
    let budget = plan_descriptors(&mut seeds)?;
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
    let peers_file = seeds.bootstrap.peers_path(&cli.data_dir);
    let services = cli.mode.services(cli.dc);
    let own_key = key::public_key_bytes(&keypair);
    let agent_version = format!("dsdnd/{}", env!("CARGO_PKG_VERSION"));
    let registration = (cli.mode == Mode::Storage).then(|| RegisterRequest {
        zone: cli.zone.clone(),
        capacity_bytes: cli.capacity_bytes,
        class: if cli.dc { "datacenter" } else { "regular" }.to_owned(),
    });
    if let Some(r) = &registration {
        r.validate().context("invalid --zone")?;
    }
    if cli.reindex_da {
        let state = cli.data_dir.join(dsdn_p2p::da::store::DA_STATE_FILE);
        match std::fs::remove_file(&state) {
            Ok(()) => {
                tracing::info!(path = %state.display(), "DA state deleted: it is rebuilt from the log")
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot delete {}", state.display())),
        }
    }
    let committee = committee_membership(&cli, &seeds.committee)?.map(|m| {
        tracing::info!(
            members = m.members.len(),
            threshold = m.threshold,
            epoch = m.epoch,
            proposer = m.members.first() == Some(&peer_id),
            "coordinator committee member"
        );
        dsdn_p2p::committee::CommitteeNodeConfig::new(
            m.members,
            m.threshold,
            m.epoch,
            cli.data_dir.join("committee"),
        )
    });
    // A committee member does not need its own key to be the authority: the DA proposer
    // seals through the committee when da_authority is the committee's group key.
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
        ban_duration: seeds.bootstrap.ban_duration,
    };
    if let Some(budget) = budget {
        let metrics = FdMetrics::register(node.metrics.registry(), &budget)
            .context("cannot register the descriptor metrics")?;
        tokio::spawn(watch_descriptors(metrics, budget));
    }
    let event_loop = tokio::spawn(node.event_loop.run());
    let api = cli.api;
    let served = server::serve(api, state, seeds.api, shutdown_signal())
        .await
        .with_context(|| format!("control API on {api}"));
    if let Err(e) = cookie::remove_cookie(&cli.data_dir) {
        tracing::warn!(error = %e, "cannot remove the control API cookie");
    }
    served?;
    // The API held the last handles; dropping them stops the event loop.
    drop(node.handle);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), event_loop).await;
    Ok(())
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let result = match cli.command {
        Some(Command::Init) => init(&cli.data_dir),
        None => match tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(run(cli)),
            Err(e) => Err(e.into()),
        },
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_mode_parses_and_dc_goes_with_storage_only() {
        for m in Mode::ALL {
            let cli = Cli::try_parse_from(["dsdnd", "--mode", m.as_str()]).expect("parses");
            assert_eq!(cli.mode, m);
        }
        let cli = Cli::try_parse_from(["dsdnd", "--mode", "validator", "--dc"]).expect("parses");
        assert!(cli.mode.check_dc(cli.dc).is_err());
        let cli = Cli::try_parse_from(["dsdnd", "--dc"]).expect("parses");
        assert_eq!(cli.mode, Mode::Storage);
        assert_eq!(cli.mode.services(cli.dc).names(), ["storage", "storage-dc"]);
        assert!(Cli::try_parse_from(["dsdnd", "--mode", "miner"]).is_err());
    }

    #[test]
    fn listen_may_be_given_for_both_families() {
        let cli = parse(&[
            "--listen",
            "198.51.100.7:30303",
            "--listen",
            "[2001:db8::7]:30303",
        ]);
        let want: Vec<SocketAddr> = vec![
            "198.51.100.7:30303".parse().expect("v4"),
            "[2001:db8::7]:30303".parse().expect("v6"),
        ];
        assert_eq!(cli.listen, want);
        assert!(
            parse(&[]).listen.is_empty(),
            "none given: the dual-stack default"
        );
    }

    #[test]
    fn committee_flags_parse() {
        let a = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let b = libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id();
        let members = format!("{a},{b}");
        let cli = Cli::try_parse_from([
            "dsdnd",
            "--mode",
            "coordinator",
            "--committee-members",
            &members,
            "--committee-threshold",
            "2",
            "--committee-epoch",
            "3",
        ])
        .expect("parses");
        assert_eq!(cli.committee_members, [a, b]);
        assert_eq!(
            (cli.committee_threshold, cli.committee_epoch),
            (Some(2), Some(3))
        );
        let cli = Cli::try_parse_from(["dsdnd"]).expect("parses");
        assert!(cli.committee_members.is_empty());
        assert!(Cli::try_parse_from(["dsdnd", "--committee-members", "not-a-peer-id"]).is_err());
    }

    fn peer() -> libp2p::PeerId {
        libp2p::identity::Keypair::generate_ed25519()
            .public()
            .to_peer_id()
    }

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["dsdnd"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).expect("parses")
    }

    #[test]
    fn committee_from_the_file_when_no_flag_is_given() {
        let (a, b, c) = (peer(), peer(), peer());
        let text = format!(
            "[committee]\nmembers = [\"{a}\", \"{b}\", \"{c}\"]\nthreshold = 3\nepoch = 5\n"
        );
        let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
        let m = committee_membership(&parse(&["--mode", "coordinator"]), &file)
            .expect("ok")
            .expect("a member");
        assert_eq!(
            m,
            Membership {
                members: vec![a, b, c],
                threshold: 3,
                epoch: 5
            }
        );
        // File defaults: threshold 2, epoch 0.
        let text = format!("[committee]\nmembers = [\"{a}\", \"{b}\"]\n");
        let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
        let m = committee_membership(&parse(&["--mode", "coordinator"]), &file)
            .expect("ok")
            .expect("a member");
        assert_eq!((m.threshold, m.epoch), (2, 0));
        // No members anywhere: no committee.
        let none = SeedsConfig::default().committee;
        assert_eq!(
            committee_membership(&parse(&["--mode", "coordinator"]), &none).expect("ok"),
            None
        );
    }

    #[test]
    fn committee_flags_win_over_the_file_key_by_key() {
        let (a, b, c, d) = (peer(), peer(), peer(), peer());
        let text = format!(
            "[committee]\nmembers = [\"{a}\", \"{b}\", \"{c}\"]\nthreshold = 3\nepoch = 5\n"
        );
        let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
        let members = format!("{d},{a}");
        let all = parse(&[
            "--mode",
            "coordinator",
            "--committee-members",
            &members,
            "--committee-threshold",
            "2",
            "--committee-epoch",
            "9",
        ]);
        let m = committee_membership(&all, &file)
            .expect("ok")
            .expect("member");
        assert_eq!((m.members, m.threshold, m.epoch), (vec![d, a], 2, 9));
        // Only the epoch flag: members and threshold from the file.
        let epoch_only = parse(&["--mode", "coordinator", "--committee-epoch", "1"]);
        let m = committee_membership(&epoch_only, &file)
            .expect("ok")
            .expect("member");
        assert_eq!((m.members, m.threshold, m.epoch), (vec![a, b, c], 3, 1));
        // Only the members flag: threshold and epoch from the file.
        let members_only = parse(&["--mode", "coordinator", "--committee-members", &members]);
        let m = committee_membership(&members_only, &file)
            .expect("ok")
            .expect("member");
        assert_eq!((m.members, m.threshold, m.epoch), (vec![d, a], 3, 5));
        // A threshold flag without members anywhere is an error.
        let lone = parse(&["--mode", "coordinator", "--committee-threshold", "2"]);
        assert!(committee_membership(&lone, &SeedsConfig::default().committee).is_err());
    }

    #[test]
    fn non_coordinators_ignore_the_section_but_refuse_the_flags() {
        let (a, b) = (peer(), peer());
        let text = format!("[committee]\nmembers = [\"{a}\", \"{b}\"]\n");
        let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
        for mode in ["storage", "bootstrap", "validator"] {
            assert_eq!(
                committee_membership(&parse(&["--mode", mode]), &file).expect("ok"),
                None,
                "{mode}"
            );
        }
        let members = format!("{a},{b}");
        let cli = parse(&["--mode", "storage", "--committee-members", &members]);
        assert!(committee_membership(&cli, &file).is_err());
    }
}
