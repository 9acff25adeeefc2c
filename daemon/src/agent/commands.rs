//! `status`, `da publish`, `da state`, `da blobs` and `da submit` (the `peers` commands are
//! in `peers.rs`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context};
use dsdn_daemon::api::{BlobInfo, DaStateView, PublishResponse, StatusResponse};
use dsdn_daemon::client::ApiClient;
use dsdn_protocols::da::DaEvent;

use super::print_out;
use super::table::{format_duration, render_kv, render_table, short_hex, yes_no};

/// `dsdn-agent status [--json]`.
pub(crate) async fn status(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let status = client.status().await?;
    if json {
        return print_out(&to_json(&status)?);
    }
    print_out(&status_table(&status))
}

/// `dsdn-agent da publish --file EVENTS.json`.
pub(crate) async fn da_publish(client: &ApiClient, file: &Path) -> anyhow::Result<()> {
    let events = read_events(file)?;
    let resp = client.da_publish(&events).await?;
    print_out(&publish_summary(&events, &resp, &client.addr().to_string()))
}

/// `dsdn-agent da state [--json]`.
pub(crate) async fn da_state(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let state = client.da_state().await?;
    if json {
        return print_out(&to_json(&state)?);
    }
    print_out(&da_state_table(&state))
}

/// `dsdn-agent da blobs --from H [--count N] [--json]`: blobs of the node's log, verified.
pub(crate) async fn da_blobs(
    client: &ApiClient,
    from: u64,
    count: u32,
    json: bool,
) -> anyhow::Result<()> {
    let blobs = client.da_blobs(from, count).await?;
    if json {
        return print_out(&to_json(&blobs)?);
    }
    print_out(&blobs_table(&blobs))
}

/// `dsdn-agent da evidence [--json]`: the fork evidence the node holds.
pub(crate) async fn da_evidence(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let evidence = client.da_evidence().await?;
    if json {
        return print_out(&to_json(&evidence)?);
    }
    if evidence.is_empty() {
        return print_out(
            "no fork evidence: the DA log has one blob per height as far as this node saw\n",
        );
    }
    let rows: Vec<Vec<String>> = evidence
        .iter()
        .map(|e| {
            vec![
                e.height.to_string(),
                short_hex(&e.applied_hash),
                short_hex(&e.conflicting_hash),
                super::table::format_unix_utc(e.detected_at_ms / 1000),
            ]
        })
        .collect();
    let mut out = render_table(&["HEIGHT", "APPLIED", "CONFLICTING", "SEEN (UTC)"], &rows);
    out.push_str(&format!(
        "{} fork evidence entr{}: the DA authority key signed two blobs at one height (--json: the verifiable evidence)\n",
        evidence.len(),
        if evidence.len() == 1 { "y" } else { "ies" }
    ));
    print_out(&out)
}

/// `dsdn-agent disputes [--json]`: DA forks, double receipts and challenged optimistic
/// receipts the node found.
pub(crate) async fn disputes(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let d = client.disputes().await?;
    if json {
        return print_out(&to_json(&d)?);
    }
    if d.da_forks.is_empty()
        && d.double_receipts.is_empty()
        && d.optimistic_conflicts.is_empty()
        && d.unauthorized_signers.is_empty()
        && d.invalid_signatures.is_empty()
    {
        return print_out(
            "no disputes: no DA fork, double receipt, challenged optimistic receipt, unauthorized signer or invalid signature seen by this node\n",
        );
    }
    let mut rows: Vec<Vec<String>> = d
        .da_forks
        .iter()
        .map(|e| {
            vec![
                "da_fork".to_owned(),
                format!("height {}", e.height),
                format!(
                    "{} / {}",
                    short_hex(&e.applied_hash),
                    short_hex(&e.conflicting_hash)
                ),
            ]
        })
        .collect();
    rows.extend(d.double_receipts.iter().map(|r| {
        vec![
            "double_receipt".to_owned(),
            format!("job {}", short_hex(&r.job)),
            format!(
                "{} / {}",
                short_hex(&r.receipt_a.receipt_id),
                short_hex(&r.receipt_b.receipt_id)
            ),
        ]
    }));
    rows.extend(d.optimistic_conflicts.iter().map(|c| {
        vec![
            "optimistic_conflict".to_owned(),
            format!("job {}", short_hex(&c.job)),
            format!(
                "{} / {}",
                short_hex(&c.optimistic.receipt_hash),
                short_hex(&c.threshold.receipt_hash)
            ),
        ]
    }));
    for (kind, list) in [
        ("unauthorized_signer", &d.unauthorized_signers),
        ("invalid_signature", &d.invalid_signatures),
    ] {
        rows.extend(list.iter().map(|e| {
            vec![
                kind.to_owned(),
                format!("{} receipt {}", e.kind, short_hex(&e.receipt_id)),
                format!("signer {}", short_hex(&e.signer)),
            ]
        }));
    }
    let mut out = render_table(&["KIND", "WHERE", "A / B"], &rows);
    out.push_str("--json gives each dispute's evidence as CBOR (hex), verifiable on its own\n");
    print_out(&out)
}

/// `dsdn-agent da submit --file BLOB.cbor`: hands a blob signed elsewhere to the node.
pub(crate) async fn da_submit(client: &ApiClient, file: &Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
    let resp = client.da_submit(&bytes).await?;
    print_out(&format!(
        "blob {} {} by {}\n",
        resp.height,
        resp.outcome,
        client.addr()
    ))
}

/// One line per blob: height, hash, time, proposer (version 4), event count and kinds.
fn blobs_table(blobs: &[BlobInfo]) -> String {
    if blobs.is_empty() {
        return "no blob at that height\n".to_owned();
    }
    let mut out = String::new();
    for b in blobs {
        let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
        for e in &b.events {
            *kinds.entry(e.kind()).or_default() += 1;
        }
        let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
        let by = b
            .proposer
            .as_ref()
            .map_or_else(String::new, |p| format!("  by {p}"));
        out.push_str(&format!(
            "height {}  hash {}…  prev {}…  t={} ms{by}  {} event{}: {}\n",
            b.height,
            &b.hash[..b.hash.len().min(12)],
            &b.prev_hash[..b.prev_hash.len().min(12)],
            b.timestamp_ms,
            b.events.len(),
            if b.events.len() == 1 { "" } else { "s" },
            kinds.join(", ")
        ));
    }
    out
}

/// Pretty JSON and a newline.
pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> anyhow::Result<String> {
    let mut s = serde_json::to_string_pretty(value).context("cannot encode JSON")?;
    s.push('\n');
    Ok(s)
}

fn status_table(s: &StatusResponse) -> String {
    let authority = match (&s.da_authority, s.is_da_authority) {
        (Some(key), true) => format!("{key} (this node)"),
        (Some(key), false) => key.clone(),
        (None, _) => "none".to_owned(),
    };
    let mut out = render_kv(&[
        ("peer id", s.peer_id.clone()),
        ("mode", s.mode.clone()),
        ("network", s.network.clone()),
        ("services", join_or_dash(&s.services)),
        ("connected peers", s.connected_peers.to_string()),
        ("known peers", s.known_peers.to_string()),
        ("listen addrs", join_or_dash(&s.listen_addrs)),
        ("reachability", s.reachability.clone()),
        ("external addrs", join_or_dash(&s.external_addrs)),
        ("relays", relays_text(s.nat.as_ref())),
        ("protocol", s.protocol_version.clone()),
        ("agent", s.agent_version.clone()),
        ("uptime", format_duration(s.uptime_secs)),
        ("bootstrap stage", s.bootstrap_stage.clone()),
        ("isolated", yes_no(s.isolated).to_owned()),
        ("partitioned", yes_no(s.partitioned).to_owned()),
        ("DA authority", authority),
        ("DA height", s.da_height.to_string()),
        ("registration", registration_text(s.registration.as_ref())),
        ("banned peers", s.banned_peers.to_string()),
        ("storage", storage_text(&s.degraded_stores)),
    ]);
    for w in &s.warnings {
        out.push_str(&format!("WARNING: {w}\n"));
    }
    out
}

/// `ok`, or each degraded store with its error: `DEGRADED da_log (3 failed writes, 12 s):
/// No space left on device`.
fn storage_text(stores: &[dsdn_daemon::api::StorageIssue]) -> String {
    if stores.is_empty() {
        return "ok".to_owned();
    }
    stores
        .iter()
        .map(|d| {
            format!(
                "DEGRADED {} ({} failed writes, {}): {}",
                d.store,
                d.failures,
                format_duration(d.degraded_secs),
                d.error
            )
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// The relays holding a reservation of ours, `(serving as relay)` on a relay server, or
/// `-`.
fn relays_text(nat: Option<&serde_json::Value>) -> String {
    let Some(nat) = nat else {
        return "-".to_owned();
    };
    let mut parts: Vec<String> = nat["relays"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if nat["relay_server"].as_bool() == Some(true) {
        parts.push("(serving as relay)".to_owned());
    }
    join_or_dash(&parts)
}

/// `registered at height 7`, `pending (2 attempts; last error: …)` or `-`.
fn registration_text(r: Option<&serde_json::Value>) -> String {
    let Some(r) = r else {
        return "-".to_owned();
    };
    match r["state"].as_str() {
        Some("registered") => format!("registered at height {}", r["height"]),
        Some("pending") => match r["last_error"].as_str() {
            Some(e) => format!("pending ({} attempts; last error: {e})", r["attempts"]),
            None => format!("pending ({} attempts)", r["attempts"]),
        },
        _ => r.to_string(),
    }
}

pub(crate) fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}

/// Reads and checks a JSON array of DA events; every error names the file.
fn read_events(file: &Path) -> anyhow::Result<Vec<DaEvent>> {
    let name = file.display();
    let text = std::fs::read_to_string(file).with_context(|| format!("cannot read {name}"))?;
    let events = parse_events(&text).with_context(|| format!("{name}"))?;
    Ok(events)
}

fn parse_events(text: &str) -> anyhow::Result<Vec<DaEvent>> {
    let events: Vec<DaEvent> = serde_json::from_str(text)
        .map_err(|e| anyhow::anyhow!("not a JSON array of DA events: {e}"))?;
    if events.is_empty() {
        bail!("contains no DA events");
    }
    for (i, e) in events.iter().enumerate() {
        e.validate_for_sealing()
            .map_err(|err| anyhow::anyhow!("event #{} is invalid: {err}", i + 1))?;
    }
    Ok(events)
}

fn publish_summary(events: &[DaEvent], resp: &PublishResponse, via: &str) -> String {
    let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
    for e in events {
        *kinds.entry(e.kind()).or_default() += 1;
    }
    let mut out = format!(
        "published {} event{} in {} via {via}\n",
        resp.events,
        if resp.events == 1 { "" } else { "s" },
        blobs_phrase(&resp.heights),
    );
    let pairs: Vec<(&str, String)> = kinds.iter().map(|(k, n)| (*k, n.to_string())).collect();
    for line in render_kv(&pairs).lines() {
        out.push_str("  ");
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// `blob 7`, `3 blobs (heights 4..6)`.
pub fn blobs_phrase(heights: &[u64]) -> String {
    match heights {
        [] => "no blob".to_owned(),
        [h] => format!("blob {h}"),
        [first, .., last] => format!("{} blobs (heights {first}..{last})", heights.len()),
    }
}

fn da_state_table(s: &DaStateView) -> String {
    render_kv(&[
        ("height", s.height.to_string()),
        ("tip hash", hex::encode(s.tip_hash)),
        ("events", s.events.to_string()),
        ("ignored events", s.ignored_events.to_string()),
        ("state root", hex::encode(s.state_root)),
        ("nodes", s.nodes.to_string()),
        ("chunks", s.chunks.to_string()),
        ("replicas", s.replicas.to_string()),
        ("zones", s.zones.to_string()),
        ("receipts", s.receipts.to_string()),
        ("pending", s.pending.to_string()),
        ("target height", s.target_height.to_string()),
        ("synced", s.synced.to_string()),
        ("durable height", s.durable_height.to_string()),
        ("storage", storage_text(s.degraded.as_slice())),
        ("rejected", s.rejected.to_string()),
        (
            "epoch",
            s.committee_epoch
                .map_or_else(|| "genesis".to_owned(), |e| e.to_string()),
        ),
        (
            "authority key",
            s.authority_key.clone().unwrap_or_else(|| "none".to_owned()),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_file_errors_are_precise() {
        let err =
            parse_events("[{\"type\": \"replica_added\", \"chunk_id\": \"00\"}]").expect_err("bad");
        let msg = err.to_string();
        assert!(msg.starts_with("not a JSON array of DA events"), "{msg}");
        assert!(msg.contains("line 1 column"), "{msg}");

        assert!(parse_events("[]")
            .expect_err("empty")
            .to_string()
            .contains("no DA events"));

        let chunk = "ab".repeat(32);
        let empty_node = format!(
            "[{{\"type\": \"replica_added\", \"chunk_id\": \"{chunk}\", \"node_id\": \"\"}}]"
        );
        let msg = parse_events(&empty_node).expect_err("invalid").to_string();
        assert!(msg.starts_with("event #1 is invalid"), "{msg}");

        // A node_id must be a PeerId (issue 14 §6): refused here, before the daemon says 400.
        let fake = format!(
            "[{{\"type\": \"replica_added\", \"chunk_id\": \"{chunk}\", \"node_id\": \"12D3KooWnotreally\"}}]"
        );
        let msg = parse_events(&fake).expect_err("not a PeerId").to_string();
        assert!(
            msg.starts_with("event #1 is invalid") && msg.contains("is not a PeerId"),
            "{msg}"
        );

        let good = format!(
            "[{{\"type\": \"replica_added\", \"chunk_id\": \"{chunk}\", \"node_id\": \"12D3KooWBwoKmnBmkaAa6DTB2KLpitECR9ay8qydC3wUwdrdQLS1\"}}]"
        );
        assert_eq!(parse_events(&good).expect("good").len(), 1);
    }

    #[test]
    fn unreadable_file_names_the_file() {
        let err = read_events(Path::new("/nonexistent/events.json")).expect_err("missing");
        let msg = format!("{err:#}");
        assert!(
            msg.starts_with("cannot read /nonexistent/events.json: "),
            "{msg}"
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("events.json");
        std::fs::write(&path, "{ not json").expect("write");
        let msg = format!("{:#}", read_events(&path).expect_err("bad json"));
        assert!(
            msg.starts_with(&format!("{}: not a JSON array", path.display())),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "{msg}");
    }

    #[test]
    fn publish_summary_lists_kinds() {
        let events = dsdn_daemon::localnet::sample_da_events(&["n1".to_owned()], 6);
        let resp = PublishResponse {
            events: 6,
            heights: vec![1],
        };
        let s = publish_summary(&events, &resp, "127.0.0.1:8645");
        assert!(s.starts_with("published 6 events in blob 1 via 127.0.0.1:8645\n"));
        assert_eq!(blobs_phrase(&[4, 5, 6]), "3 blobs (heights 4..6)");
        assert_eq!(blobs_phrase(&[]), "no blob");
        let counts: Vec<(&str, &str)> = s
            .lines()
            .skip(1)
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?, it.next()?))
            })
            .collect();
        assert_eq!(
            counts,
            [
                ("chunk_declared", "2"),
                ("delete_requested", "1"),
                ("node_registered", "1"),
                ("replica_added", "1"),
                ("replica_removed", "1")
            ],
            "{s}"
        );
    }

    #[test]
    fn status_and_state_tables() {
        let s = StatusResponse {
            peer_id: "12D3KooWx".into(),
            mode: "coordinator".into(),
            network: "devnet".into(),
            services: vec!["coordinator".into()],
            connected_peers: 3,
            known_peers: 4,
            listen_addrs: vec![],
            protocol_version: "1.0".into(),
            agent_version: "dsdnd/0.1.0".into(),
            uptime_secs: 65,
            bootstrap_stage: "idle".into(),
            isolated: false,
            partitioned: false,
            da_authority: Some("ab".repeat(32)),
            is_da_authority: true,
            da_height: 0,
            registration: None,
            reachability: "private".into(),
            external_addrs: vec![],
            nat: Some(serde_json::json!({"relays": ["12D3KooWr"], "relay_server": false})),
            banned_peers: 5,
            warnings: vec!["5 of the 6 known peers are banned".into()],
            degraded_stores: vec![],
        };
        let t = status_table(&s);
        assert!(t.contains("reachability     private\n"), "{t}");
        assert!(t.contains("relays           12D3KooWr\n"), "{t}");
        assert!(t.contains("connected peers  3\n"), "{t}");
        assert!(t.contains("listen addrs     -\n"), "{t}");
        assert!(t.contains("uptime           1m 05s\n"), "{t}");
        assert!(t.contains("(this node)"), "{t}");
        assert!(t.contains("storage          ok\n"), "{t}");
        let full = StatusResponse {
            degraded_stores: vec![dsdn_daemon::api::StorageIssue {
                store: "da_log".into(),
                error: "No space left on device".into(),
                degraded_secs: 12,
                failures: 3,
                next_retry_ms: Some(4000),
            }],
            ..s
        };
        let t = status_table(&full);
        assert!(
            t.contains("DEGRADED da_log (3 failed writes, 12s): No space left on device"),
            "{t}"
        );
        let d = da_state_table(&DaStateView {
            height: 1,
            tip_hash: [0x11; 32],
            events: 20,
            ignored_events: 0,
            state_root: [0; 32],
            nodes: 3,
            chunks: 4,
            replicas: 5,
            zones: 2,
            receipts: 0,
            pending: 0,
            target_height: 1,
            rejected: 0,
            synced: true,
            is_authority: false,
            queued_events: 0,
            durable_height: 1,
            degraded: None,
            committee_epoch: None,
            authority_key: None,
        });
        assert!(d.starts_with("height          1\n"), "{d}");
        assert!(d.contains("events          20\n"), "{d}");
        assert!(d.contains("epoch           genesis\n"), "{d}");
        assert!(d.contains("authority key   none"), "{d}");
    }

    #[test]
    fn blob_lines_and_registration_text() {
        let b = BlobInfo {
            height: 7,
            hash: "ab".repeat(32),
            prev_hash: "cd".repeat(32),
            version: 2,
            prev_state_root: "ef".repeat(32),
            timestamp_ms: 1_700_000_000_123,
            events: dsdn_daemon::localnet::sample_da_events(&["n1".to_owned()], 6),
            signature: "00".repeat(64),
            proposer: None,
            proposer_sig: None,
        };
        let t = blobs_table(std::slice::from_ref(&b));
        assert_eq!(
            t,
            "height 7  hash abababababab…  prev cdcdcdcdcdcd…  t=1700000000123 ms  6 events: \
             2 chunk_declared, 1 delete_requested, 1 node_registered, 1 replica_added, \
             1 replica_removed\n"
        );
        let by = BlobInfo {
            version: 4,
            proposer: Some("12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7".into()),
            proposer_sig: Some("11".repeat(64)),
            events: Vec::new(),
            ..b
        };
        assert_eq!(
            blobs_table(&[by]),
            "height 7  hash abababababab…  prev cdcdcdcdcdcd…  t=1700000000123 ms  by \
             12D3KooWRawPbxPtP1eZaJpumGnyWX2DcUyd3RQnydr3eAto4Az7  0 events: \n"
        );
        assert_eq!(blobs_table(&[]), "no blob at that height\n");
        assert_eq!(registration_text(None), "-");
        let reg = serde_json::json!({"state": "registered", "height": 4});
        assert_eq!(registration_text(Some(&reg)), "registered at height 4");
        let pending =
            serde_json::json!({"state": "pending", "attempts": 2, "last_error": "refused"});
        assert_eq!(
            registration_text(Some(&pending)),
            "pending (2 attempts; last error: refused)"
        );
    }
}
