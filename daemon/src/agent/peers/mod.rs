//! `dsdn-agent peers …` (roadmap 28.1.C §7): list, add, add-seed, stats, reset, ban, unban.

use std::collections::BTreeMap;

use dsdn_daemon::api::{
    AddedPeerInfo, BanResponse, PeerInfo, PeerStatsView, ResetResponse, UnbanResponse, MAX_BAN_SECS,
};
use dsdn_daemon::client::ApiClient;
use dsdn_protocols::ServiceType;

use super::commands::{join_or_dash, to_json};
use super::print_out;
use super::table::{
    format_bytes, format_duration, format_unix_utc, render_kv, render_table, render_table_fit,
    short_id, yes_no, TABLE_WIDTH,
};

/// Netgroups listed by name in `peers stats`; the rest are summed as `others`.
const TOP_NETGROUPS: usize = 10;

/// `dsdn-agent peers list [--type SERVICE] [--wide] [--json]`: the table, then one line on
/// the added peers when there are any.
pub(crate) async fn list(
    client: &ApiClient,
    json: bool,
    wide: bool,
    service: Option<ServiceType>,
) -> anyhow::Result<()> {
    let peers = client.peers_of_type(service.map(|t| t.as_str())).await?;
    if json {
        return print_out(&to_json(&peers)?);
    }
    let mut out = peers_table(&peers, wide);
    let added = client.added_peers().await?;
    if !added.is_empty() {
        let connected = added.iter().filter(|a| a.state == "connected").count();
        out.push_str(&format!(
            "{} added peer{}, {connected} connected (dsdn-agent peers added)\n",
            added.len(),
            if added.len() == 1 { "" } else { "s" }
        ));
    }
    print_out(&out)
}

/// `dsdn-agent peers added [--json]`.
pub(crate) async fn added(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let added = client.added_peers().await?;
    if json {
        return print_out(&to_json(&added)?);
    }
    print_out(&added_table(&added))
}

/// `peers added` as a table: address, state, PeerId, next retry, last error (folded).
pub(crate) fn added_table(added: &[AddedPeerInfo]) -> String {
    if added.is_empty() {
        return "no peers added (dsdn-agent peers add IP:PORT|MULTIADDR)\n".to_owned();
    }
    let rows: Vec<Vec<String>> = added
        .iter()
        .map(|a| {
            vec![
                a.addr.clone(),
                a.state.clone(),
                a.peer_id
                    .as_deref()
                    .map_or_else(|| "-".to_owned(), short_id),
                a.next_retry_secs
                    .map_or_else(|| "-".to_owned(), |s| format!("in {}", format_duration(s))),
                a.last_error.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    render_table_fit(
        &["ADDRESS", "STATE", "PEER ID", "RETRY", "LAST ERROR"],
        &rows,
        TABLE_WIDTH,
        &[4],
    )
}

/// `dsdn-agent peers remove IP:PORT|MULTIADDR`.
pub(crate) async fn remove(client: &ApiClient, addr: &str) -> anyhow::Result<()> {
    let resp = client.remove_peer(addr).await?;
    print_out(&format!(
        "removed static peer {} (no longer dialled; an open connection stays until it closes or `peers ban`)\n",
        resp.removed
    ))
}

/// `dsdn-agent peers add IP:PORT|MULTIADDR`.
pub(crate) async fn add(client: &ApiClient, addr: &str) -> anyhow::Result<()> {
    let resp = client.add_peer(addr).await?;
    print_out(&format!(
        "added static peer {} (kept in the daemon's data directory; dialling it now)\n",
        resp.added
    ))
}

/// `dsdn-agent peers add-seed DOMAIN`.
pub(crate) async fn add_seed(client: &ApiClient, domain: &str) -> anyhow::Result<()> {
    let resp = client.add_seed(domain).await?;
    print_out(&format!(
        "added DNS seed {} (kept in the daemon's data directory; resolving it now)\n",
        resp.added
    ))
}

/// `dsdn-agent peers stats [--json]`.
pub(crate) async fn stats(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let stats = client.peer_stats().await?;
    if json {
        return print_out(&to_json(&stats)?);
    }
    print_out(&stats_summary(&stats))
}

/// `dsdn-agent peers bans [--json]`.
pub(crate) async fn bans(client: &ApiClient, json: bool) -> anyhow::Result<()> {
    let banned: Vec<PeerInfo> = client
        .peers()
        .await?
        .into_iter()
        .filter(|p| p.banned_until.is_some())
        .collect();
    if json {
        return print_out(&super::commands::to_json(&banned)?);
    }
    print_out(&bans_table(&banned))
}

/// `peers bans` as a table (80 columns: short ids, UTC expiry, reason).
pub(crate) fn bans_table(banned: &[PeerInfo]) -> String {
    if banned.is_empty() {
        return "no bans in force\n".to_owned();
    }
    let rows: Vec<Vec<String>> = banned
        .iter()
        .map(|p| {
            vec![
                short_id(&p.peer_id),
                format_unix_utc(p.banned_until.unwrap_or(0)),
                p.ban_reason.clone().unwrap_or_else(|| "-".to_owned()),
            ]
        })
        .collect();
    render_table(&["PEER", "BANNED UNTIL (UTC)", "REASON"], &rows)
}

/// `dsdn-agent peers reset`.
pub(crate) async fn reset(client: &ApiClient) -> anyhow::Result<()> {
    let resp = client.reset_peers().await?;
    print_out(&reset_summary(&resp))
}

/// `dsdn-agent peers ban PEER [--for DURATION]`.
pub(crate) async fn ban(client: &ApiClient, peer: &str, secs: Option<u64>) -> anyhow::Result<()> {
    let peer = resolve_peer(client, peer).await?;
    let resp = client.ban(&peer, secs).await?;
    print_out(&ban_summary(&resp))
}

/// `dsdn-agent peers unban --all`.
pub(crate) async fn unban_all(client: &ApiClient) -> anyhow::Result<()> {
    let resp = client.unban_all().await?;
    print_out(&format!("lifted {} ban(s)\n", resp.unbanned))
}

/// `dsdn-agent peers unban PEER`.
pub(crate) async fn unban(client: &ApiClient, peer: &str) -> anyhow::Result<()> {
    let peer = resolve_peer(client, peer).await?;
    let resp = client.unban(&peer).await?;
    print_out(&unban_summary(&resp))
}

/// Parses a ban length: `90s`, `30m`, `12h`, `7d`, `2w` or plain seconds (`3600`);
/// 1 second ..= [`MAX_BAN_SECS`] (365 days). Returns seconds.
///
/// # Errors
/// A one-line message naming the accepted forms.
pub(crate) fn parse_ban_duration(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit_secs: u64 = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 7 * 86_400,
        _ => 0,
    };
    let bad = || format!("invalid duration {s:?}: expected e.g. 90s, 30m, 12h, 7d, 2w or seconds");
    if digits.is_empty() || unit_secs == 0 {
        return Err(bad());
    }
    let n: u64 = digits.parse().map_err(|_| bad())?;
    let secs = n.saturating_mul(unit_secs);
    if secs == 0 || secs > MAX_BAN_SECS {
        return Err(format!(
            "invalid duration {s:?}: must be between 1 second and 365 days"
        ));
    }
    Ok(secs)
}

/// Checks a PeerId argument before anything is sent.
pub(crate) fn parse_peer_id(s: &str) -> Result<String, String> {
    let s = s.trim();
    if s.is_empty() {
        return Err("empty peer id".to_owned());
    }
    Ok(s.to_owned())
}

/// Whether `id` (a full PeerId) is what `given` names: `given` itself, a prefix of it, or
/// the shortened form the tables print (`12D3…abcdefgh`, or with `...`).
fn names(given: &str, id: &str) -> bool {
    if id.starts_with(given) {
        return true;
    }
    let split = given.split_once('…').or_else(|| given.split_once("..."));
    match split {
        Some((head, tail)) => {
            id.len() >= head.len() + tail.len() && id.starts_with(head) && id.ends_with(tail)
        }
        None => false,
    }
}

/// The one PeerId `given` names (bitcoin-cli style, issue 15 §6): a full PeerId as is; else
/// a unique prefix or the shortened form the tables print, among the peers this node knows.
///
/// # Errors
/// When no known peer matches, or several do (naming them).
pub(crate) async fn resolve_peer(client: &ApiClient, given: &str) -> anyhow::Result<String> {
    if let Ok(p) = given.parse::<libp2p::PeerId>() {
        return Ok(p.to_string());
    }
    let known = client.peers().await?;
    pick_peer(given, known.iter().map(|p| p.peer_id.as_str()))
}

/// [`resolve_peer`] over the ids `known`.
fn pick_peer<'a>(given: &str, known: impl Iterator<Item = &'a str>) -> anyhow::Result<String> {
    let mut matches: Vec<&str> = known.filter(|id| names(given, id)).collect();
    matches.sort_unstable();
    matches.dedup();
    match matches.as_slice() {
        [one] => Ok((*one).to_owned()),
        [] => anyhow::bail!(
            "{given:?} is not a peer id, nor the prefix or short form of a peer this node knows"
        ),
        many => anyhow::bail!(
            "{given:?} names {} known peers: {}; give more characters",
            many.len(),
            many.iter().take(5).copied().collect::<Vec<_>>().join(", ")
        ),
    }
}

/// The first address, with `(+N)` when there are more; `-` without any.
fn first_address(addrs: &[String]) -> String {
    match addrs {
        [] => "-".to_owned(),
        [one] => one.clone(),
        [first, rest @ ..] => format!("{first} (+{})", rest.len()),
    }
}

/// `relayed,suspicious,banned`, or `-`.
fn flags(p: &PeerInfo) -> String {
    let mut f = Vec::new();
    if p.connection.as_ref().is_some_and(|c| c.relayed) {
        f.push("relayed");
    }
    if p.suspicious {
        f.push("suspicious");
    }
    if p.banned_until.is_some() {
        f.push("banned");
    }
    if f.is_empty() {
        "-".to_owned()
    } else {
        f.join(",")
    }
}

/// A round trip for tables: `0.4ms`, `12ms`, `1.2s`; `-` when unknown.
fn format_rtt(ms: Option<f64>) -> String {
    match ms {
        None => "-".to_owned(),
        Some(ms) if ms < 10.0 => format!("{ms:.1}ms"),
        Some(ms) if ms < 1000.0 => format!("{ms:.0}ms"),
        Some(ms) => format!("{:.1}s", ms / 1000.0),
    }
}

/// The `peers list` table: connected peers first, then by score (highest first), then by
/// id; a count line at the end. It fits [`TABLE_WIDTH`] columns (SERVICES folds); `wide`
/// adds the address, source, netgroup, handshake counts, agent version and protocols.
pub(crate) fn peers_table(peers: &[PeerInfo], wide: bool) -> String {
    if peers.is_empty() {
        return "no known peers\n".to_owned();
    }
    let mut sorted: Vec<&PeerInfo> = peers.iter().collect();
    sorted.sort_by(|a, b| {
        b.connected
            .cmp(&a.connected)
            .then(b.score.cmp(&a.score))
            .then(a.peer_id.cmp(&b.peer_id))
    });
    let dash = || "-".to_owned();
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|p| {
            let dir = match (p.connected, p.direction.as_deref()) {
                (true, Some("inbound")) => "in".to_owned(),
                (true, Some("outbound")) => "out".to_owned(),
                (true, _) => "yes".to_owned(),
                (false, _) => dash(),
            };
            let c = p.connection.as_ref();
            let mut row = vec![
                short_id(&p.peer_id),
                dir,
                join_or_dash(&p.services).replace(", ", ","),
                c.map_or_else(dash, |c| format_duration(c.age_secs)),
                format_rtt(c.and_then(|c| c.rtt_ms)),
                c.map_or_else(dash, |c| format_bytes(c.bytes_in)),
                c.map_or_else(dash, |c| format_bytes(c.bytes_out)),
                p.score.to_string(),
                flags(p),
            ];
            if wide {
                row.extend([
                    c.map_or_else(|| first_address(&p.addresses), |c| c.remote_addr.clone()),
                    p.source.clone(),
                    p.netgroup.clone().unwrap_or_else(dash),
                    format!("{}/{}", p.success_count, p.failure_count),
                    c.and_then(|c| c.agent_version.clone()).unwrap_or_else(dash),
                    c.map_or_else(dash, |c| join_or_dash(&c.protocols).replace(", ", ",")),
                ]);
            }
            row
        })
        .collect();
    let mut headers = vec![
        "PEER ID", "DIR", "SERVICES", "AGE", "RTT", "RECV", "SENT", "SCORE", "FLAGS",
    ];
    let mut out = if wide {
        headers.extend([
            "ADDRESS",
            "SOURCE",
            "NETGROUP",
            "OK/FAIL",
            "AGENT",
            "PROTOCOLS",
        ]);
        render_table(&headers, &rows)
    } else {
        render_table_fit(&headers, &rows, TABLE_WIDTH, &[2, 8])
    };
    let connected = peers.iter().filter(|p| p.connected).count();
    let suspicious = peers.iter().filter(|p| p.suspicious).count();
    let banned = peers.iter().filter(|p| p.banned_until.is_some()).count();
    out.push_str(&format!(
        "{} peer{}, {connected} connected, {suspicious} suspicious, {banned} banned\n",
        peers.len(),
        if peers.len() == 1 { "" } else { "s" }
    ));
    out
}

/// `a 3, b 2, c 2`: largest first, ties by name; `-` when empty.
fn counts(map: &BTreeMap<String, usize>) -> String {
    top_counts(map, usize::MAX)
}

/// As [`counts`], the first `top` named and the rest summed as
/// `others N (in M netgroups)` (used for netgroups).
fn top_counts(map: &BTreeMap<String, usize>, top: usize) -> String {
    if map.is_empty() {
        return "-".to_owned();
    }
    let mut items: Vec<(&String, &usize)> = map.iter().collect();
    items.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut parts: Vec<String> = items
        .iter()
        .take(top)
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    let rest = &items[top.min(items.len())..];
    if !rest.is_empty() {
        let sum: usize = rest.iter().map(|(_, n)| **n).sum();
        parts.push(format!(
            "others {sum} (in {} netgroup{})",
            rest.len(),
            if rest.len() == 1 { "" } else { "s" }
        ));
    }
    parts.join(", ")
}

/// `87.5% (350 ok, 50 failed)`, or `n/a (no attempts yet)`.
fn rate_text(s: &PeerStatsView) -> String {
    match s.success_rate {
        Some(r) => format!(
            "{:.1}% ({} ok, {} failed)",
            r * 100.0,
            s.success_count,
            s.failure_count
        ),
        None => "n/a (no attempts yet)".to_owned(),
    }
}

/// The human summary of `peers stats`.
pub(crate) fn stats_summary(s: &PeerStatsView) -> String {
    let list_or_none = |v: &[String]| {
        if v.is_empty() {
            "none".to_owned()
        } else {
            v.join(", ")
        }
    };
    let mut out = render_kv(&[
        ("peers.dat entries", s.entries.to_string()),
        ("  by source", counts(&s.by_source)),
        ("  by service", counts(&s.by_service)),
        ("  by netgroup", top_counts(&s.by_netgroup, TOP_NETGROUPS)),
        ("  tried", s.tried.to_string()),
        ("  suspicious", s.suspicious.to_string()),
        ("  banned", s.banned.to_string()),
        ("success rate", rate_text(s)),
        (
            "connected",
            format!("{} ({} in, {} out)", s.connected, s.inbound, s.outbound),
        ),
        ("  by service", counts(&s.connected_by_service)),
        ("  by source", counts(&s.connected_by_source)),
        (
            "partitioned",
            if s.partitioned {
                "yes: below min_peers, partition recovery is running".to_owned()
            } else {
                yes_no(false).to_owned()
            },
        ),
        ("static peers", list_or_none(&s.static_peers)),
        ("DNS seeds", list_or_none(&s.dns_seeds)),
    ]);
    if s.single_source && s.connected > 0 {
        let source = s
            .connected_by_source
            .keys()
            .next()
            .map_or("one source", String::as_str);
        out.push_str(&format!(
            "warning: all {} connected peers came from {source}: eclipse risk (28.1.C §6); add static peers or DNS seeds run by others\n",
            s.connected
        ));
    }
    out
}

/// What `peers reset` cleared.
pub(crate) fn reset_summary(r: &ResetResponse) -> String {
    format!(
        "peers.dat cleared: {} entr{} removed, {} connection{} closed; bootstrapping again from the seeds\n",
        r.removed,
        if r.removed == 1 { "y" } else { "ies" },
        r.disconnected,
        if r.disconnected == 1 { "" } else { "s" }
    )
}

/// `banned 12D3… for 1h 00m 00s, until 2024-03-01 12:00:00 UTC`.
pub(crate) fn ban_summary(r: &BanResponse) -> String {
    format!(
        "banned {} for {}, until {}\n",
        r.peer_id,
        format_duration(r.duration_secs),
        format_unix_utc(r.banned_until)
    )
}

/// `lifted the ban on …` or `… was not banned`.
pub(crate) fn unban_summary(r: &UnbanResponse) -> String {
    if r.unbanned {
        format!("lifted the ban on {}\n", r.peer_id)
    } else {
        format!("{} was not banned\n", r.peer_id)
    }
}

#[cfg(test)]
mod tests;
