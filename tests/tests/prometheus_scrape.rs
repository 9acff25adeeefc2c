//! Prometheus-ready metrics (issue 15 §5): a real Prometheus server (Debian package
//! `prometheus`) scrapes a small network of real daemons with their API tokens through
//! `authorization.credentials_file`, and holds `bootstrap_active_peers` of every node; every
//! metric the Grafana dashboard (`docs/grafana/dsdnd.json`) queries is exported by a
//! running daemon.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{eventually, TestNet};

/// Kills the Prometheus server when the test ends, passed or not.
struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The metric names (known prefixes) the dashboard's queries use.
fn dashboard_metrics(path: &Path) -> anyhow::Result<BTreeSet<String>> {
    let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let mut exprs = Vec::new();
    for panel in json["panels"].as_array().into_iter().flatten() {
        for t in panel["targets"].as_array().into_iter().flatten() {
            if let Some(e) = t["expr"].as_str() {
                exprs.push(e.to_owned());
            }
        }
    }
    if let Some(q) = json["templating"]["list"][0]["query"].as_str() {
        exprs.push(q.to_owned());
    }
    const PREFIXES: [&str; 8] = [
        "bootstrap_",
        "p2p_",
        "da_",
        "storage_",
        "node_",
        "process_",
        "api_",
        "dsdn_",
    ];
    let mut names = BTreeSet::new();
    for e in &exprs {
        let mut word = String::new();
        let mut in_string = false;
        for c in e.chars().chain(std::iter::once(' ')) {
            if c == '"' {
                in_string = !in_string;
                word.clear();
                continue;
            }
            if !in_string && (c.is_ascii_alphanumeric() || c == '_') {
                word.push(c);
                continue;
            }
            if PREFIXES.iter().any(|p| word.starts_with(p)) {
                names.insert(std::mem::take(&mut word));
            }
            word.clear();
        }
    }
    anyhow::ensure!(
        names.len() >= 10,
        "too few metrics found in the dashboard: {names:?}"
    );
    Ok(names)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_every_node_and_the_dashboard_queries_exported_metrics(
) -> anyhow::Result<()> {
    let Some(prometheus) = ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        let msg = "no prometheus binary (Debian package `prometheus`; scripts/test.sh installs it as root)";
        // In CI a missing tool is a failure, not a silent skip.
        anyhow::ensure!(std::env::var("CI").as_deref() != Ok("true"), "{msg}");
        eprintln!("SKIPPED: {msg}");
        return Ok(());
    };
    let mut net = TestNet::new("prometheus").await?;
    let cfg = net.config();
    net.spawn("a", NodeMode::Bootstrap, 50, &cfg).await?;
    let cfg_b = cfg.clone().with_static_peer(net.addr(50));
    net.spawn("b", NodeMode::Storage, 51, &cfg_b).await?;

    // Every metric the dashboard queries is exported (at zero if nothing happened yet).
    let dashboard = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/grafana/dsdnd.json");
    let text = net.node("a").client().metrics_text().await?;
    let missing: Vec<String> = dashboard_metrics(&dashboard)?
        .into_iter()
        .filter(|n| !text.contains(&format!("\n# TYPE {n} ")))
        .collect();
    anyhow::ensure!(
        missing.is_empty(),
        "the dashboard queries metrics dsdnd does not export: {missing:?}"
    );

    // A Prometheus server scraping both nodes every second with their tokens.
    let dir = net.dir().join("prometheus");
    std::fs::create_dir_all(&dir)?;
    let mut config = String::from(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n",
    );
    for name in ["a", "b"] {
        config.push_str(&format!(
            "  - job_name: dsdn-{name}\n    authorization:\n      type: Bearer\n      credentials_file: {}\n    static_configs:\n      - targets: ['{}']\n",
            net.data_dir(name).join(".cookie").display(),
            net.node(name).api_addr()
        ));
    }
    std::fs::write(dir.join("prometheus.yml"), &config)?;
    let web = format!("127.0.0.52:{}", net.port());
    let log = std::fs::File::create(dir.join("prometheus.log"))?;
    let _server = Server(
        Command::new(prometheus)
            .arg(format!(
                "--config.file={}",
                dir.join("prometheus.yml").display()
            ))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={web}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()?,
    );
    let http = reqwest::Client::builder().no_proxy().build()?;
    let url = format!("http://{web}/api/v1/query");
    let jobs = eventually(
        Duration::from_secs(60),
        "Prometheus to hold bootstrap_active_peers of both nodes",
        || async {
            let r: serde_json::Value = http
                .get(&url)
                .query(&[("query", "bootstrap_active_peers")])
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let jobs: BTreeSet<String> = r["data"]["result"]
                .as_array()?
                .iter()
                .filter_map(|s| s["metric"]["job"].as_str().map(str::to_owned))
                .collect();
            (jobs.len() == 2).then_some(jobs)
        },
    )
    .await
    .map_err(|e| {
        let log = std::fs::read_to_string(dir.join("prometheus.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(20).collect();
        anyhow::anyhow!(
            "{e}\nprometheus log (last lines, newest first):\n{}",
            tail.join("\n")
        )
    })?;
    assert_eq!(
        jobs,
        ["dsdn-a", "dsdn-b"].into_iter().map(String::from).collect()
    );
    net.pass();
    Ok(())
}
