use super::*;
use dsdn_daemon::api::ConnectionInfo;

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
    let mut c = peer(
        "12D3KooWcccccccccccccccc",
        &["storage", "storage-dc"],
        true,
        7,
    );
    c.connection = Some(ConnectionInfo {
        remote_addr: "/ip4/198.51.100.9/tcp/4001/p2p/12D3KooWrelay/p2p-circuit".to_owned(),
        relayed: true,
        age_secs: 185,
        rtt_ms: Some(0.42),
        bytes_in: 1536,
        bytes_out: 5 * 1024 * 1024,
        agent_version: Some("dsdnd/0.1.0".to_owned()),
        protocols: vec!["/ipfs/ping/1.0.0".to_owned(), "/meshsub/1.1.0".to_owned()],
        connections: 1,
    });
    let mut b = peer("12D3KooWbbbbbbbbbbbbbbbb", &["bootstrap"], true, 5);
    b.direction = Some("inbound".to_owned());
    let peers = vec![a, b, c];
    let table = peers_table(&peers, false);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].starts_with("PEER ID        DIR  SERVICES"),
        "{table}"
    );
    assert!(lines[0].ends_with("RECV  SENT  SCORE  FLAGS"), "{table}");
    // Connected first, by score; SERVICES and FLAGS fold to fit 80 columns.
    assert!(
        lines[1].starts_with("12D3…cccccccc  out  storage,"),
        "{table}"
    );
    assert!(lines[2].trim() == "storage-dc", "{table}");
    assert!(lines[1].contains(" 3m 05s "), "{table}");
    assert!(lines[1].contains(" 0.4ms "), "{table}");
    assert!(lines[1].contains(" 1.5K  5.0M "), "{table}");
    assert!(lines[1].ends_with(" relayed"), "{table}");
    assert!(lines[3].starts_with("12D3…bbbbbbbb  in "), "{table}");
    assert!(lines[4].ends_with("suspicious,"), "{table}");
    assert!(lines[5].trim() == "banned", "{table}");
    assert_eq!(lines[6], "3 peers, 2 connected, 1 suspicious, 1 banned");
    for line in &lines {
        assert!(line.chars().count() <= TABLE_WIDTH, "{table}");
    }
    // --wide: address (the connection's), source, netgroup, ok/fail, agent, protocols.
    let wide = peers_table(&peers, true);
    let lines: Vec<&str> = wide.lines().collect();
    assert!(
        lines[0].ends_with("OK/FAIL  AGENT        PROTOCOLS"),
        "{wide}"
    );
    assert!(lines[1].contains("/p2p-circuit"), "{wide}");
    assert!(lines[1].contains(" 3/1 "), "{wide}");
    assert!(
        lines[1].ends_with("dsdnd/0.1.0  /ipfs/ping/1.0.0,/meshsub/1.1.0"),
        "{wide}"
    );
    assert!(lines[3].contains("(+1)"), "{wide}");
    assert_eq!(peers_table(&[], false), "no known peers\n");
}

#[test]
fn many_services_fold_within_80_columns() {
    let all = [
        "bootstrap",
        "storage",
        "storage-dc",
        "coordinator",
        "validator",
        "chain",
        "ingress",
    ];
    let mut p = peer("12D3KooWaaaaaaaaaaaaaaaa", &all, true, 10);
    p.connection = Some(ConnectionInfo {
        remote_addr: "/ip4/198.51.100.9/tcp/4001".to_owned(),
        relayed: false,
        age_secs: 3 * 86_400 + 7_000,
        rtt_ms: Some(250.0),
        bytes_in: 3 << 30,
        bytes_out: 900 << 20,
        agent_version: None,
        protocols: Vec::new(),
        connections: 2,
    });
    let table = peers_table(&[p], false);
    for line in table.lines() {
        assert!(line.chars().count() <= TABLE_WIDTH, "{table}");
    }
    assert!(table.lines().count() > 3, "folded: {table}");
    assert!(table.contains("ingress"), "{table}");
}

#[test]
fn the_added_table_shows_state_retry_and_error() {
    assert!(added_table(&[]).starts_with("no peers added"));
    let t = added_table(&[
        AddedPeerInfo {
            addr: "198.51.100.7:4001".to_owned(),
            peer_id: None,
            state: "waiting".to_owned(),
            last_error: Some(
                "Failed to negotiate transport protocol(s): Connection refused (os error 111)"
                    .to_owned(),
            ),
            next_retry_secs: Some(25),
        },
        AddedPeerInfo {
            addr: "127.0.0.2:3000".to_owned(),
            peer_id: Some("12D3KooWbbbbbbbbbbbbbbbb".to_owned()),
            state: "connected".to_owned(),
            last_error: None,
            next_retry_secs: None,
        },
    ]);
    for line in t.lines() {
        assert!(line.chars().count() <= TABLE_WIDTH, "{t}");
    }
    assert!(
        t.lines()
            .nth(1)
            .is_some_and(|l| l.contains("waiting    -              in 25s  Failed")),
        "{t}"
    );
    assert!(t.contains("Connection refused (os"), "{t}");
    assert!(t.contains("connected  12D3…bbbbbbbb"), "{t}");
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
