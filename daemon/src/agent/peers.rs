//! `dsdn-agent peers …` (roadmap 28.1.C §7): list, add, add-seed, stats, reset, ban, unban.

use std::collections::BTreeMap;

use dsdn_daemon::api::{
    BanResponse, PeerInfo, PeerStatsView, ResetResponse, UnbanResponse, MAX_BAN_SECS,
};
use dsdn_daemon::client::ApiClient;
use dsdn_protocols::ServiceType;

use super::commands::{join_or_dash, to_json};
use super::print_out;
use super::table::{format_duration, format_unix_utc, render_kv, render_table, short_id, yes_no};

/// Netgroups listed by name in `peers stats`; the rest are summed as `others`.
const TOP_NETGROUPS: usize = 10;

/// `dsdn-agent peers list [--type SERVICE] [--json]`.
pub(crate) async fn list(
    client: &ApiClient,
    json: bool,
    service: Option<ServiceType>,
) -> anyhow::Result<()> {
    let peers = client.peers_of_type(service.map(|t| t.as_str())).await?;
    if json {
        return print_out(&to_json(&peers)?);
    }
    print_out(&peers_table(&peers))
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

/// `suspicious,banned`, or `-`.
fn flags(p: &PeerInfo) -> String {
    let mut f = Vec::new();
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

/// The `peers list` table: connected peers first, then by score (highest first), then by
/// id; a count line at the end.
pub(crate) fn peers_table(peers: &[PeerInfo]) -> String {
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
    let rows: Vec<Vec<String>> = sorted
        .iter()
        .map(|p| {
            let connected = match (p.connected, &p.direction) {
                (true, Some(d)) => format!("yes ({d})"),
                (true, None) => "yes".to_owned(),
                (false, _) => "no".to_owned(),
            };
            vec![
                short_id(&p.peer_id),
                first_address(&p.addresses),
                join_or_dash(&p.services).replace(", ", ","),
                p.source.clone(),
                p.netgroup.clone().unwrap_or_else(|| "-".to_owned()),
                connected,
                p.score.to_string(),
                format!("{}/{}", p.success_count, p.failure_count),
                flags(p),
            ]
        })
        .collect();
    let connected = peers.iter().filter(|p| p.connected).count();
    let suspicious = peers.iter().filter(|p| p.suspicious).count();
    let banned = peers.iter().filter(|p| p.banned_until.is_some()).count();
    let mut out = render_table(
        &[
            "PEER ID",
            "ADDRESS",
            "SERVICES",
            "SOURCE",
            "NETGROUP",
            "CONNECTED",
            "SCORE",
            "OK/FAIL",
            "FLAGS",
        ],
        &rows,
    );
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
mod tests {
    use super::*;

    fn peer(id: &str, services: &[&str], connected: bool, score: i64) -> PeerInfo {
        PeerInfo {
            peer_id: id.to_owned(),
            addresses: vec![format!("/ip4/127.0.0.2/tcp/3000/p2p/{id}")],
            services: services.iter().map(|s| (*s).to_owned()).collect(),
            source: "dns_seed".to_owned(),
            connected,
            direction: connected.then(|| "outbound".to_owned()),
            last_seen: None,
            last_success: None,
            success_count: 3,
            failure_count: 1,
            score,
            netgroup: Some("local:127.0.0.2".to_owned()),
            suspicious: false,
            banned_until: None,
            ban_reason: None,
            connection: None,
            added: None,
        }
    }

    #[test]
    fn the_bans_table_names_expiry_and_reason() {
        assert_eq!(bans_table(&[]), "no bans in force\n");
        let mut a = peer(
            "12D3KooWaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            &["storage"],
            false,
            1,
        );
        a.banned_until = Some(1_709_294_400);
        a.ban_reason = Some("da_invalid_blob [config]".into());
        let t = bans_table(&[a]);
        assert!(t.contains("12D3…aaaaaaaa"), "{t}");
        assert!(t.contains("2024-03-01 12:00:00"), "{t}");
        assert!(t.contains("da_invalid_blob [config]"), "{t}");
        assert!(t.lines().all(|l| l.chars().count() <= 80), "{t}");
    }

    #[test]
    fn peers_table_columns_and_order() {
        let mut a = peer("12D3KooWaaaaaaaaaaaaaaaa", &["storage"], false, 10);
        a.suspicious = true;
        a.banned_until = Some(1_700_000_000);
        a.addresses
            .push("/ip4/127.0.0.2/udp/3000/quic-v1".to_owned());
        let peers = vec![
            a,
            peer("12D3KooWbbbbbbbbbbbbbbbb", &["bootstrap"], true, 5),
            peer(
                "12D3KooWcccccccccccccccc",
                &["storage", "storage-dc"],
                true,
                7,
            ),
        ];
        let table = peers_table(&peers);
        let lines: Vec<&str> = table.lines().collect();
        assert!(lines[0].starts_with("PEER ID"), "{table}");
        assert!(lines[0].ends_with("OK/FAIL  FLAGS"), "{table}");
        // Connected first, by score.
        assert!(lines[1].starts_with("12D3…cccccccc"), "{table}");
        assert!(lines[1].contains("storage,storage-dc"), "{table}");
        assert!(lines[1].contains("local:127.0.0.2"), "{table}");
        assert!(lines[1].contains("yes (outbound)"), "{table}");
        assert!(lines[1].contains(" 3/1 "), "{table}");
        assert!(lines[1].ends_with(" -"), "{table}");
        assert!(lines[2].starts_with("12D3…bbbbbbbb"), "{table}");
        assert!(lines[3].contains(" no "), "{table}");
        assert!(lines[3].contains("(+1)"), "{table}");
        assert!(lines[3].ends_with("suspicious,banned"), "{table}");
        assert_eq!(lines[4], "3 peers, 2 connected, 1 suspicious, 1 banned");
        assert_eq!(peers_table(&[]), "no known peers\n");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_ban_duration("90s"), Ok(90));
        assert_eq!(parse_ban_duration("90"), Ok(90));
        assert_eq!(parse_ban_duration("30m"), Ok(1800));
        assert_eq!(parse_ban_duration("12h"), Ok(43_200));
        assert_eq!(parse_ban_duration(" 7d "), Ok(604_800));
        assert_eq!(parse_ban_duration("2w"), Ok(1_209_600));
        assert_eq!(parse_ban_duration("365d"), Ok(MAX_BAN_SECS));
        for bad in [
            "",
            "d",
            "0",
            "0s",
            "366d",
            "1y",
            "1.5h",
            "-5",
            "5 m x",
            "99999999999999999999w",
        ] {
            assert!(parse_ban_duration(bad).is_err(), "{bad:?}");
        }
        assert!(parse_ban_duration("1y")
            .unwrap_err()
            .contains("expected e.g. 90s, 30m"));
    }

    #[test]
    fn peer_ids() {
        let id = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
        assert_eq!(parse_peer_id(id).as_deref(), Ok(id));
        assert!(parse_peer_id(" ").is_err());
    }

    #[test]
    fn peers_are_named_by_prefix_or_short_form() {
        let a = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
        let b = "12D3KooWQYzzzzdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xp";
        let known = || [a, b].into_iter();
        assert_eq!(pick_peer("12D3KooWQYh", known()).unwrap(), a);
        // The form `peers list` prints.
        assert_eq!(pick_peer(&short_id(a), known()).unwrap(), a);
        assert_eq!(pick_peer("12D3...CVe2Xp", known()).unwrap(), b);
        let e = pick_peer("12D3KooWQY", known()).unwrap_err().to_string();
        assert!(e.contains("names 2 known peers"), "{e}");
        let e = pick_peer("nope", known()).unwrap_err().to_string();
        assert!(e.contains("not a peer id"), "{e}");
    }

    fn stats() -> PeerStatsView {
        let map = |pairs: &[(&str, usize)]| -> BTreeMap<String, usize> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect()
        };
        let netgroups: Vec<(String, usize)> = (0..13)
            .map(|i| (format!("ipv4:10.{i:02}"), 20 - i))
            .collect();
        PeerStatsView {
            entries: 120,
            by_source: map(&[("dns_seed", 40), ("peer_exchange", 70), ("inbound", 10)]),
            by_service: map(&[("storage", 100), ("bootstrap", 3)]),
            by_netgroup: netgroups.into_iter().collect(),
            tried: 45,
            suspicious: 2,
            banned: 1,
            success_count: 350,
            failure_count: 50,
            success_rate: Some(0.875),
            connected: 8,
            outbound: 6,
            inbound: 2,
            connected_by_service: map(&[("storage", 6), ("bootstrap", 2)]),
            connected_by_source: map(&[("dns_seed", 8)]),
            single_source: true,
            partitioned: false,
            static_peers: vec![],
            dns_seeds: vec!["seed1.dsdn.network".to_owned()],
        }
    }

    #[test]
    fn stats_summary_lines() {
        let text = stats_summary(&stats());
        let line = |key: &str| -> String {
            text.lines()
                .find(|l| l.starts_with(key))
                .unwrap_or_else(|| panic!("no {key:?} in\n{text}"))
                .to_owned()
        };
        assert!(line("peers.dat entries").ends_with(" 120"), "{text}");
        assert!(
            line("  by source").ends_with("peer_exchange 70, dns_seed 40, inbound 10"),
            "{text}"
        );
        let ng = line("  by netgroup");
        assert!(ng.contains("ipv4:10.00 20, ipv4:10.01 19"), "{ng}");
        assert!(
            ng.contains("ipv4:10.09 11, others 27 (in 3 netgroups)"),
            "{ng}"
        );
        assert!(!ng.contains("ipv4:10.10"), "{ng}");
        assert!(
            line("success rate").ends_with("87.5% (350 ok, 50 failed)"),
            "{text}"
        );
        assert!(line("connected").ends_with("8 (2 in, 6 out)"), "{text}");
        assert!(line("partitioned").ends_with(" no"), "{text}");
        assert!(line("static peers").ends_with(" none"), "{text}");
        assert!(line("DNS seeds").ends_with(" seed1.dsdn.network"), "{text}");
        assert!(
            line("warning:").starts_with("warning: all 8 connected peers came from dns_seed"),
            "{text}"
        );

        let mut calm = stats();
        calm.single_source = false;
        calm.partitioned = true;
        calm.success_rate = None;
        let text = stats_summary(&calm);
        assert!(!text.contains("warning"), "{text}");
        assert!(text.contains("partition recovery is running"), "{text}");
        assert!(text.contains("n/a (no attempts yet)"), "{text}");
    }

    #[test]
    fn one_line_summaries() {
        assert_eq!(
            reset_summary(&ResetResponse {
                removed: 1,
                disconnected: 3
            }),
            "peers.dat cleared: 1 entry removed, 3 connections closed; bootstrapping again from the seeds\n"
        );
        assert_eq!(
            ban_summary(&BanResponse {
                peer_id: "12D3KooWx".into(),
                duration_secs: 3600,
                banned_until: 1_709_294_400,
            }),
            "banned 12D3KooWx for 1h 00m 00s, until 2024-03-01 12:00:00 UTC\n"
        );
        let mut un = UnbanResponse {
            peer_id: "12D3KooWx".into(),
            unbanned: true,
        };
        assert_eq!(unban_summary(&un), "lifted the ban on 12D3KooWx\n");
        un.unbanned = false;
        assert_eq!(unban_summary(&un), "12D3KooWx was not banned\n");
    }
}
