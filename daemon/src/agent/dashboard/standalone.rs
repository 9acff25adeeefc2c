//! `dsdn-agent dashboard`: the devnet's dashboard for any set of running nodes, given their
//! control API addresses and cookies.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use dsdn_daemon::client::ApiClient;
use dsdn_daemon::cookie::cookie_path;

use super::{Dashboard, Target, REQUEST_TIMEOUT};

/// Nodes one dashboard watches at most.
pub(crate) const MAX_NODES: usize = 256;

/// Options of `dsdn-agent dashboard`.
#[derive(Debug, Args)]
pub(crate) struct DashboardArgs {
    /// Serve the page on this address. It has no authentication: keep it on loopback or a
    /// private interface.
    #[arg(long, value_name = "IP:PORT", default_value = "127.0.0.1:8650")]
    pub listen: SocketAddr,
    /// A node to watch, `[NAME=]IP:PORT[,COOKIE]`: its control API address (`http://`
    /// allowed) and its cookie file or data directory (default: the --cookie or
    /// --data-dir given to dsdn-agent, else dsdn-data/.cookie). Repeat for every node;
    /// without any, the node of --api.
    #[arg(long = "node", value_name = "[NAME=]IP:PORT[,COOKIE]", value_parser = parse_node)]
    pub nodes: Vec<NodeArg>,
    /// Also write the timeline (per node and per DA height or receipt, when it first had
    /// it; heights and roots over time) as JSON to FILE, every 5 s and at the end.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
}

/// One `--node`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct NodeArg {
    /// Its name on the page (default: the address).
    pub name: Option<String>,
    /// Its control API address.
    pub addr: SocketAddr,
    /// Its cookie file, or its data directory.
    pub cookie: Option<PathBuf>,
}

/// Parses `[NAME=]IP:PORT[,COOKIE]` (`http://IP:PORT` and a trailing `/` allowed).
pub(crate) fn parse_node(s: &str) -> Result<NodeArg, String> {
    let (name, rest) = match s.split_once('=') {
        Some((n, r)) if !n.contains(':') && !n.contains('/') => (Some(n.trim()), r),
        _ => (None, s),
    };
    if name.is_some_and(str::is_empty) {
        return Err("empty NAME before '='".to_owned());
    }
    let (addr, cookie) = match rest.split_once(',') {
        Some((a, c)) if !c.trim().is_empty() => (a, Some(PathBuf::from(c.trim()))),
        Some(_) => return Err("empty COOKIE after ','".to_owned()),
        None => (rest, None),
    };
    let addr = addr.trim();
    let bare = addr.strip_prefix("http://").unwrap_or(addr);
    let bare = bare.strip_suffix('/').unwrap_or(bare);
    let addr: SocketAddr = bare.parse().map_err(|_| {
        format!("{addr:?} is not IP:PORT (e.g. 127.0.0.1:8645 or http://[::1]:8645)")
    })?;
    Ok(NodeArg {
        name: name.map(str::to_owned),
        addr,
        cookie,
    })
}

/// The cookie file of `path`: `path/.cookie` for a directory, else `path`.
fn cookie_file(path: &Path) -> PathBuf {
    if path.is_dir() {
        cookie_path(path)
    } else {
        path.to_path_buf()
    }
}

/// The nodes to watch: `--node`s, else the one of `--api`; each with its cookie file.
///
/// # Errors
/// Too many nodes, or two with the same name.
pub(crate) fn targets(
    args: &DashboardArgs,
    api: SocketAddr,
    default_cookie: &Path,
) -> anyhow::Result<Vec<Target>> {
    let nodes = if args.nodes.is_empty() {
        vec![NodeArg {
            name: None,
            addr: api,
            cookie: None,
        }]
    } else {
        args.nodes.clone()
    };
    anyhow::ensure!(
        nodes.len() <= MAX_NODES,
        "at most {MAX_NODES} nodes per dashboard, got {}",
        nodes.len()
    );
    let mut out: Vec<Target> = Vec::with_capacity(nodes.len());
    for n in nodes {
        let name = n.name.clone().unwrap_or_else(|| n.addr.to_string());
        anyhow::ensure!(
            !out.iter().any(|t| t.name == name),
            "two --node entries are named {name}"
        );
        let cookie = n
            .cookie
            .as_deref()
            .map_or_else(|| default_cookie.to_path_buf(), cookie_file);
        out.push(Target {
            name,
            client: ApiClient::with_timeout(n.addr, REQUEST_TIMEOUT).with_cookie_file(cookie),
            mode: None,
        });
    }
    Ok(out)
}

/// Runs `dsdn-agent dashboard` until Ctrl-C or SIGTERM.
///
/// # Errors
/// Bad `--node`s, the address cannot be bound or the record cannot be written.
pub(crate) async fn run(
    args: DashboardArgs,
    api: SocketAddr,
    default_cookie: &Path,
) -> anyhow::Result<()> {
    let start = Instant::now();
    let targets = targets(&args, api, default_cookie)?;
    let names: Vec<String> = targets.iter().map(|t| t.name.clone()).collect();
    let mut stop = super::super::devnet::stop_signal();
    let mut dashboard = Dashboard::start(
        &format!("{} node(s)", targets.len()),
        start,
        Some(args.listen),
        args.record.clone(),
    )
    .await?;
    dashboard.watch(targets);
    let addr = dashboard
        .local_addr()
        .map_or_else(String::new, |a| a.to_string());
    super::super::print_out(&format!(
        "dashboard: http://{addr}/ watching {} (Ctrl-C to stop)\n",
        names.join(", ")
    ))?;
    let _ = stop.wait_for(|v| *v).await;
    let record = dashboard.record_path().map(Path::to_path_buf);
    dashboard.finish().await?;
    if let Some(path) = record {
        super::super::print_out(&format!("timeline recorded in {}\n", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_arguments() {
        let n = parse_node("c1=http://127.0.0.3:8646/,/srv/c1").expect("parse");
        assert_eq!(n.name.as_deref(), Some("c1"));
        assert_eq!(n.addr.to_string(), "127.0.0.3:8646");
        assert_eq!(n.cookie.as_deref(), Some(Path::new("/srv/c1")));
        let n = parse_node("[::1]:8645").expect("parse");
        assert_eq!(n.name, None);
        assert_eq!(n.cookie, None);
        let n = parse_node("http://127.0.0.1:1").expect("parse");
        assert_eq!(n.addr.port(), 1);
        assert!(parse_node("=127.0.0.1:1").is_err());
        assert!(parse_node("a=127.0.0.1:1,").is_err());
        let e = parse_node("a=localhost").expect_err("no port");
        assert!(e.contains("is not IP:PORT"), "{e}");
    }

    #[test]
    fn targets_default_to_api_and_refuse_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let api: SocketAddr = "127.0.0.1:8645".parse().expect("addr");
        let args = DashboardArgs {
            listen: api,
            nodes: Vec::new(),
            record: None,
        };
        let t = targets(&args, api, Path::new("/x/.cookie")).expect("targets");
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].name, "127.0.0.1:8645");
        let dup = DashboardArgs {
            nodes: vec![
                parse_node("a=127.0.0.1:1").expect("a"),
                parse_node(&format!("a=127.0.0.1:2,{}", dir.path().display())).expect("a"),
            ],
            ..args
        };
        let e = targets(&dup, api, Path::new("/x")).expect_err("duplicate");
        assert_eq!(e.to_string(), "two --node entries are named a");
    }
}
