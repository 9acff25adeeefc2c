//! `dsdn-agent watch --config seeds.toml [--json] [--data-dir DIR] [--count N]`: follow the
//! network's DA events as a light client (issue "Light clients").
//!
//! Runs a [`LightClient`] in this process (no daemon, no API token): it bootstraps from
//! seeds.toml's fallback chain (peers.dat of `--data-dir`, static peers, DNS seeds), does not
//! listen and is never advertised, verifies every DA blob against `network.da_authority`
//! and its hash chain, backfills the blobs published before it joined from its peers, and
//! prints each event as its blob is applied, in height order from height 1:
//!
//! ```text
//! height 3 event 2/6 chunk_declared chunk=ab12cd34… size=4096 owner=0707…
//! ```
//!
//! With `--json`, one object per event and line:
//! `{"height":3,"event_index":2,"event_count":6,"blob_hash":"<hex>","state_root":"<hex>","event":{…}}`
//! (`event` in the DA event JSON form, `state_root` the DA state root after the blob).
//! Connection news goes to stderr; stdout carries only events. Ctrl-C stops it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Args;
use dsdn_p2p::seeds::SeedsConfig;
use dsdn_p2p::{DaNotice, LightClient, LightConfig, NodeHandle};
use dsdn_protocols::da::DaEvent;
use libp2p::PeerId;
use serde::Serialize;

/// How often connection changes are looked for (reported on stderr).
const PEER_POLL: Duration = Duration::from_secs(1);

/// Options of `dsdn-agent watch` (the light client's data directory is the global
/// `--data-dir`).
#[derive(Debug, Args)]
pub(crate) struct WatchArgs {
    /// seeds.toml: the network, its DA authority and the bootstrap sources.
    #[arg(long, value_name = "FILE")]
    pub(crate) config: PathBuf,
    /// Print one JSON object per event and line.
    #[arg(long)]
    pub(crate) json: bool,
    /// Exit after this many DA blobs (default: run until Ctrl-C; with --prove: 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) count: Option<u64>,
    /// Once --count blobs were printed, prove KEY (repeatable: `node:<id>`, `chunk:<hex>`,
    /// `replicas:<hex>`, `zone:<name>`, `receipt:<hex>`) at the light client's height: the
    /// proof is fetched from a full node over /dsdn/<net>/da-proof/1.0.0 and verified
    /// against the state root the light client computed itself; one line per key
    /// (`proved …` / `NOT PROVED …`, or JSON with --json), then exit (1 if any fails).
    /// With --from-checkpoint the root is the newest one the client trusts (the last
    /// verified blob committed to it).
    #[arg(long, value_name = "KEY")]
    pub(crate) prove: Vec<String>,
    /// Start from a checkpoint and stay light (issue 16 §4).
    #[command(flatten)]
    pub(crate) checkpoint: super::watch_checkpoint::CheckpointArgs,
}

/// One `--prove` answer with `--json`.
#[derive(Serialize)]
struct ProvedLine {
    key: String,
    /// `present`, `absent` or `invalid`.
    verdict: &'static str,
    height: Option<u64>,
    /// The light client's own state root the proof was checked against (64 hex).
    root: Option<String>,
    value: Option<serde_json::Value>,
    error: Option<String>,
}

/// One `--json` line.
#[derive(Serialize)]
struct JsonLine<'a> {
    height: u64,
    /// 1-based position of the event in its blob.
    event_index: usize,
    event_count: usize,
    blob_hash: String,
    state_root: String,
    event: &'a DaEvent,
}

/// Runs the light client until `--count` blobs were printed, stdout closed or Ctrl-C.
pub(crate) async fn run(args: &WatchArgs, data_dir: Option<&Path>) -> anyhow::Result<()> {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_writer(std::io::stderr)
            .try_init();
    }
    let path = args.config.display();
    let seeds =
        SeedsConfig::load(&args.config).with_context(|| format!("invalid configuration {path}"))?;
    let Some(authority) = seeds.network.da_authority else {
        bail!("{path}: network.da_authority is not set: without it no DA event can be verified");
    };
    let (dns, statics) = (
        seeds.bootstrap.dns_seeds.len(),
        seeds.bootstrap.static_peers.len(),
    );
    if dns + statics == 0
        && data_dir.is_none()
        && args.checkpoint.trust_peer.is_none()
        && seeds.light.trust_peer.is_none()
    {
        bail!("{path}: no bootstrap.dns_seeds and no bootstrap.static_peers: the light client has nowhere to start (or pass the --data-dir of an earlier watch)");
    }
    let mut cfg = LightConfig::from_seeds(&seeds);
    cfg.data_dir = data_dir.map(Path::to_path_buf);
    cfg.checkpoint = args.checkpoint.source(&seeds.light, &mut cfg.bootstrap)?;
    let statics = cfg.bootstrap.static_peers.len();
    let started = std::time::Instant::now();
    let mut client = LightClient::start(cfg).context("cannot start the light client")?;
    eprintln!(
        "watch: light client {} on network {}, DA authority {}; bootstrapping from {dns} DNS seed(s), {statics} static peer(s){}",
        client.peer_id(),
        seeds.network.name,
        hex::encode(authority),
        match data_dir {
            Some(d) => format!(" and {}", d.join("peers.dat").display()),
            None => String::new(),
        }
    );
    let keys = args
        .prove
        .iter()
        .map(|k| dsdn_protocols::da::StateKey::parse(k).with_context(|| format!("--prove {k}")))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut result = follow(&mut client, args, started).await;
    if result.is_ok() && !keys.is_empty() {
        result = prove_keys(&client, &keys, args.json).await;
    }
    if let Some(status) = client.follow_status() {
        eprintln!("{}", super::watch_checkpoint::summary(&status));
    }
    client.shutdown().await;
    result
}

/// `--prove`: proves each key through the light client and prints the verdicts.
async fn prove_keys(
    client: &LightClient,
    keys: &[dsdn_protocols::da::StateKey],
    json: bool,
) -> anyhow::Result<()> {
    let mut failed = 0;
    for key in keys {
        let proved = client.prove(key).await;
        let line = ProvedLine {
            key: key.to_string(),
            verdict: match &proved {
                Ok(p) if p.value.is_some() => "present",
                Ok(_) => "absent",
                Err(_) => "invalid",
            },
            height: proved.as_ref().ok().map(|p| p.height),
            root: proved.as_ref().ok().map(|p| hex::encode(p.root)),
            value: match &proved {
                Ok(p) => p.value.as_ref().and_then(|v| serde_json::to_value(v).ok()),
                Err(_) => None,
            },
            error: proved.as_ref().err().map(ToString::to_string),
        };
        let text = if json {
            format!("{}\n", serde_json::to_string(&line)?)
        } else {
            match &proved {
                Ok(p) => format!(
                    "proved {key} at height {} against the light client's root {}: {}\n",
                    p.height,
                    hex::encode(p.root),
                    match &p.value {
                        Some(v) => serde_json::to_string(v)?,
                        None => "absent".to_owned(),
                    }
                ),
                Err(e) => format!("NOT PROVED {key}: {e}\n"),
            }
        };
        failed += usize::from(proved.is_err());
        if !print_lines(&text)? {
            break;
        }
    }
    if failed > 0 {
        bail!("{failed} key(s) could not be proved");
    }
    Ok(())
}

async fn follow(
    client: &mut LightClient,
    args: &WatchArgs,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    let mut peers = PeerLog {
        light: client.follow_status().is_some(),
        ..PeerLog::default()
    };
    let mut progress = super::watch_checkpoint::FollowLog::new(started);
    // The follower's status as it changes: `joined` is printed when it happens, not at the
    // next peer poll (up to a second later).
    let mut follow = client.follow_watch();
    let mut poll = tokio::time::interval(PEER_POLL);
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut envelopes = 0u64;
    loop {
        tokio::select! {
            notice = client.next() => {
                let Some(notice) = notice else {
                    if let Some(error) = client.follow_status().and_then(|s| s.error) {
                        bail!("{error}");
                    }
                    bail!("the light client stopped");
                };
                progress.update(client);
                if !print_lines(&notice_lines(&notice, args.json)?)? {
                    return Ok(());
                }
                envelopes += 1;
                let count = args.count.or((!args.prove.is_empty()).then_some(1));
                if count.is_some_and(|n| envelopes >= n) {
                    return Ok(());
                }
            }
            changed = async {
                match follow.as_mut() {
                    Some(rx) => rx.changed().await,
                    None => std::future::pending().await,
                }
            } => {
                if changed.is_err() {
                    follow = None;
                }
                progress.update(client);
            }
            _ = poll.tick() => {
                peers.update(client.handle()).await;
                progress.update(client);
            }
            res = &mut ctrl_c => {
                res.context("cannot listen for Ctrl-C")?;
                eprintln!("watch: interrupted after {envelopes} envelope(s)");
                return Ok(());
            }
        }
    }
}

/// Writes and flushes `text`; `false` when stdout is closed (`watch | head`).
fn print_lines(text: &str) -> anyhow::Result<bool> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(anyhow::Error::new(e).context("cannot write to stdout")),
    }
}

/// The lines of one blob, each ending in `\n`.
pub(crate) fn notice_lines(n: &DaNotice, json: bool) -> anyhow::Result<String> {
    let count = n.events.len();
    let mut out = String::new();
    for (i, event) in n.events.iter().enumerate() {
        if json {
            let line = JsonLine {
                height: n.height,
                event_index: i + 1,
                event_count: count,
                blob_hash: hex::encode(n.hash),
                state_root: hex::encode(n.state_root),
                event,
            };
            out.push_str(&serde_json::to_string(&line).context("cannot encode JSON")?);
        } else {
            out.push_str(&format!(
                "height {} event {}/{count} {} {}",
                n.height,
                i + 1,
                event.kind(),
                fields(event)
            ));
        }
        out.push('\n');
    }
    Ok(out)
}

/// `key=value` fields of an event; hashes shortened to 8 hex digits and `…`.
fn fields(event: &DaEvent) -> String {
    let short = |b: &[u8]| format!("{}…", hex::encode(&b[..b.len().min(4)]));
    match event {
        DaEvent::NodeRegistered {
            node_id,
            zone,
            capacity_bytes,
            class,
        } => format!(
            "node={} zone={} capacity={capacity_bytes} class={}",
            text(node_id),
            text(zone),
            text(class)
        ),
        DaEvent::ChunkDeclared {
            chunk_id,
            size_bytes,
            owner,
        } => format!(
            "chunk={} size={size_bytes} owner={}",
            short(&chunk_id.0),
            short(&owner.0)
        ),
        DaEvent::ReplicaAdded { chunk_id, node_id }
        | DaEvent::ReplicaRemoved { chunk_id, node_id } => {
            format!("chunk={} node={}", short(&chunk_id.0), text(node_id))
        }
        DaEvent::DeleteRequested { chunk_id, .. } => format!("chunk={}", short(&chunk_id.0)),
        DaEvent::CoordinatorRegistered { node_id } => format!("coordinator={}", text(node_id)),
        DaEvent::ReceiptRecorded { receipt } => format!(
            "receipt={} workload={} node={}",
            short(&receipt.receipt_id().0),
            short(&receipt.receipt.workload_id.0),
            short(&receipt.receipt.node_key.0)
        ),
        DaEvent::CommitteeRotated(r) => format!(
            "epoch={} members={} threshold={} group_key={} effective_height={}",
            r.epoch,
            r.members.len(),
            r.threshold,
            short(&r.group_key.0),
            r.effective_height
        ),
    }
}

/// Network-supplied text with control characters and spaces escaped, so one event stays one
/// line of `key=value` fields.
fn text(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_default().to_string()
            } else if c.is_whitespace() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// Reports connection changes of the light client on stderr.
#[derive(Default)]
struct PeerLog {
    connected: Vec<PeerId>,
    isolated: bool,
    catching_up: bool,
    /// From a checkpoint: no DA state to report catching up with.
    light: bool,
}

impl PeerLog {
    async fn update(&mut self, handle: &NodeHandle) {
        let (Ok(peers), Ok(status)) = (handle.peers().await, handle.status().await) else {
            return;
        };
        let now: Vec<PeerId> = peers
            .iter()
            .filter(|p| p.connected_outbound.is_some())
            .map(|p| p.peer_id)
            .collect();
        for p in peers.iter().filter(|p| p.connected_outbound.is_some()) {
            if !self.connected.contains(&p.peer_id) {
                let addr = p.addrs.first().map(ToString::to_string).unwrap_or_default();
                eprintln!(
                    "watch: connected to {} {addr} ({}, found via {}; {} peer(s))",
                    p.peer_id,
                    p.services,
                    p.source.as_str(),
                    now.len()
                );
            }
        }
        for p in &self.connected {
            if !now.contains(p) {
                eprintln!("watch: disconnected from {p} ({} peer(s))", now.len());
            }
        }
        if status.isolated && !self.isolated {
            eprintln!(
                "watch: no bootstrap source answered yet (stage {}); retrying",
                status.bootstrap_stage
            );
        }
        self.isolated = status.isolated;
        self.connected = now;
        if self.light {
            return;
        }
        if let Ok(da) = handle.da_state().await {
            let behind = da.target_height > da.height;
            if behind && !self.catching_up {
                eprintln!(
                    "watch: catching up: height {} of {} (backfilling from peers)",
                    da.height, da.target_height
                );
            } else if !behind && self.catching_up {
                eprintln!("watch: caught up at height {}", da.height);
            }
            self.catching_up = behind;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dsdn_protocols::da::{Bytes32, Bytes64};

    fn notice() -> DaNotice {
        DaNotice {
            height: 3,
            hash: [0xab; 32],
            prev_hash: [0xcd; 32],
            timestamp_ms: 1_700_000_000_000,
            state_root: [0x01; 32],
            events: vec![
                DaEvent::ChunkDeclared {
                    chunk_id: Bytes32([0xab; 32]),
                    size_bytes: 4096,
                    owner: Bytes32([7; 32]),
                },
                DaEvent::ReplicaAdded {
                    chunk_id: Bytes32([0x12; 32]),
                    node_id: "evil\nnode x".into(),
                },
                DaEvent::DeleteRequested {
                    chunk_id: Bytes32([0; 32]),
                    owner_signature: Bytes64([1; 64]),
                },
            ],
        }
    }

    #[test]
    fn human_lines() {
        let text = notice_lines(&notice(), false).expect("lines");
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines,
            [
                "height 3 event 1/3 chunk_declared chunk=abababab… size=4096 owner=07070707…",
                "height 3 event 2/3 replica_added chunk=12121212… node=evil\\nnode\\u{20}x",
                "height 3 event 3/3 delete_requested chunk=00000000…",
            ]
        );
    }

    #[test]
    fn json_lines() {
        let text = notice_lines(&notice(), true).expect("lines");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
            .collect();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0]["height"], 3);
        assert_eq!(lines[0]["event_index"], 1);
        assert_eq!(lines[0]["event_count"], 3);
        assert_eq!(lines[0]["blob_hash"], "ab".repeat(32));
        assert_eq!(lines[0]["state_root"], "01".repeat(32));
        assert_eq!(lines[0]["event"]["type"], "chunk_declared");
        assert_eq!(lines[0]["event"]["chunk_id"], "ab".repeat(32));
        let back: DaEvent = serde_json::from_value(lines[1]["event"].clone()).expect("event");
        assert_eq!(back, notice().events[1]);
        assert!(
            text.starts_with("{\"height\":3,\"event_index\":1,"),
            "{text}"
        );
    }
}
