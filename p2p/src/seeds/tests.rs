use std::path::{Path, PathBuf};
use std::time::Duration;

use dsdn_bootstrap::config::{DnsSeed, MAX_DURATION_SECS};
use dsdn_bootstrap::StaticPeer;

use super::*;

pub(super) fn err(text: &str) -> ConfigError {
    match SeedsConfig::from_toml_str(text) {
        Ok(cfg) => panic!("accepted {text:?}: {cfg:?}"),
        Err(e) => e,
    }
}

#[test]
fn empty_file_gives_defaults() {
    let cfg = SeedsConfig::from_toml_str("").unwrap();
    assert_eq!(cfg, SeedsConfig::default());
    assert_eq!(cfg.network.name.as_str(), "devnet");
    assert_eq!(cfg.network.da_authority, None);
    let b = &cfg.bootstrap;
    assert!(b.dns_seeds.is_empty() && b.static_peers.is_empty() && b.dns_servers.is_empty());
    assert_eq!(b.peers_file, PathBuf::from("peers.dat"));
    assert_eq!(b.default_port, 30303);
    assert_eq!(b.max_outbound_connections, 8);
    assert_eq!(b.max_inbound_connections, 125);
    assert_eq!(b.dns_resolve_timeout, Duration::from_secs(10));
    assert_eq!(b.peer_connect_timeout, Duration::from_secs(5));
    assert_eq!(b.pex_interval, Duration::from_secs(900));
    assert_eq!(b.retry_interval, Duration::from_secs(30));
    assert_eq!(b.min_peers, 3);
    assert_eq!(b.max_connections_per_peer, 2);
    assert_eq!(b.inbound_per_ip_per_minute, 10);
    assert_eq!(b.dns_refresh_interval, Duration::from_secs(1800));
    assert_eq!(b.feeler_interval, Duration::from_secs(3600));
    assert_eq!(b.recovery_backoff_max, Duration::from_secs(300));
    assert_eq!(b.ban_duration, Duration::from_secs(86_400));
    // A section with some keys keeps the defaults of the others.
    let cfg = SeedsConfig::from_toml_str("[bootstrap]\ndefault_port = 4000\n").unwrap();
    assert_eq!(cfg.bootstrap.default_port, 4000);
    assert_eq!(cfg.bootstrap.max_outbound_connections, 8);
    assert_eq!(cfg.network, NetworkConfig::default());
}

#[test]
fn shipped_seeds_toml_parses_to_the_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds.toml");
    let cfg = SeedsConfig::load(&path).unwrap();
    assert_eq!(cfg, SeedsConfig::default());
    // The keys added for peer management are written out in the shipped file (not just
    // defaulted by omission), and each written value is the default.
    let text = std::fs::read_to_string(&path).unwrap();
    let d = BootstrapConfig::default();
    for (key, value) in [
        ("min_peers", d.min_peers.to_string()),
        (
            "max_connections_per_peer",
            d.max_connections_per_peer.to_string(),
        ),
        (
            "inbound_per_ip_per_minute",
            d.inbound_per_ip_per_minute.to_string(),
        ),
        (
            "dns_refresh_interval_secs",
            d.dns_refresh_interval.as_secs().to_string(),
        ),
        (
            "feeler_interval_secs",
            d.feeler_interval.as_secs().to_string(),
        ),
        (
            "recovery_backoff_max_secs",
            d.recovery_backoff_max.as_secs().to_string(),
        ),
        ("ban_duration_secs", d.ban_duration.as_secs().to_string()),
        (
            "batch_max_bytes",
            DaConfig::default().batch_max_bytes.to_string(),
        ),
        (
            "batch_interval_ms",
            DaConfig::default().batch_interval.as_millis().to_string(),
        ),
        (
            "publish_grace_secs",
            DaConfig::default().publish_grace.as_secs().to_string(),
        ),
    ] {
        let line = format!("\n{key} = {value}\n");
        assert!(text.contains(&line), "seeds.toml lacks {line:?}");
    }
}

#[test]
fn peer_management_keys_are_parsed() {
    let text = r#"
[bootstrap]
min_peers = 5
max_connections_per_peer = 1
inbound_per_ip_per_minute = 60
dns_refresh_interval_secs = 600
feeler_interval_secs = 120
recovery_backoff_max_secs = 900
ban_duration_secs = 3600
"#;
    let b = SeedsConfig::from_toml_str(text).unwrap().bootstrap;
    assert_eq!(b.min_peers, 5);
    assert_eq!(b.max_connections_per_peer, 1);
    assert_eq!(b.inbound_per_ip_per_minute, 60);
    assert_eq!(b.dns_refresh_interval, Duration::from_secs(600));
    assert_eq!(b.feeler_interval, Duration::from_secs(120));
    assert_eq!(b.recovery_backoff_max, Duration::from_secs(900));
    assert_eq!(b.ban_duration, Duration::from_secs(3600));
    // The other keys keep their defaults.
    let d = BootstrapConfig::default();
    assert_eq!(b.retry_interval, d.retry_interval);
    assert_eq!(b.max_outbound_connections, d.max_outbound_connections);

    // Each key alone, so a key wired to the wrong field is caught: exactly that field
    // differs from the defaults.
    type Set = fn(&mut BootstrapConfig);
    for (key, set) in [
        ("min_peers", (|b| b.min_peers = 4) as Set),
        ("max_connections_per_peer", |b| {
            b.max_connections_per_peer = 4
        }),
        ("inbound_per_ip_per_minute", |b| {
            b.inbound_per_ip_per_minute = 4
        }),
        ("dns_refresh_interval_secs", |b| {
            b.dns_refresh_interval = Duration::from_secs(4)
        }),
        ("feeler_interval_secs", |b| {
            b.feeler_interval = Duration::from_secs(4)
        }),
        ("recovery_backoff_max_secs", |b| {
            b.recovery_backoff_max = Duration::from_secs(4)
        }),
        ("ban_duration_secs", |b| {
            b.ban_duration = Duration::from_secs(4)
        }),
    ] {
        let b = SeedsConfig::from_toml_str(&format!("[bootstrap]\n{key} = 4\n"))
            .unwrap()
            .bootstrap;
        let mut expected = BootstrapConfig::default();
        set(&mut expected);
        assert_ne!(
            expected,
            BootstrapConfig::default(),
            "{key}: 4 is the default"
        );
        assert_eq!(b, expected, "{key}");
    }
}

#[test]
fn peer_management_keys_refuse_zero_and_out_of_range() {
    for key in [
        "min_peers",
        "max_connections_per_peer",
        "inbound_per_ip_per_minute",
    ] {
        let e = err(&format!("[bootstrap]\n{key} = 0\n"));
        assert_eq!(e.keys(), [format!("bootstrap.{key}")], "{e}");
        assert!(
            e.to_string()
                .starts_with(&format!("bootstrap.{key}: must be between 1 and ")),
            "{e}"
        );
    }
    for key in [
        "dns_refresh_interval_secs",
        "feeler_interval_secs",
        "recovery_backoff_max_secs",
        "ban_duration_secs",
    ] {
        for value in [0, MAX_DURATION_SECS + 1] {
            let e = err(&format!("[bootstrap]\n{key} = {value}\n"));
            assert_eq!(e.keys(), [format!("bootstrap.{key}")], "{e}");
            assert_eq!(
                e.to_string(),
                format!(
                    "bootstrap.{key}: must be between 1 and {MAX_DURATION_SECS} seconds, got {value}"
                )
            );
        }
        let ok = format!("[bootstrap]\n{key} = {MAX_DURATION_SECS}\n");
        assert!(SeedsConfig::from_toml_str(&ok).is_ok(), "{ok}");
    }
    // Negative values are type errors naming the key.
    for key in [
        "min_peers",
        "inbound_per_ip_per_minute",
        "feeler_interval_secs",
    ] {
        let e = err(&format!("[bootstrap]\n{key} = -1\n"));
        assert!(matches!(e, ConfigError::Invalid(_)), "{e:?}");
        assert_eq!(e.keys(), [format!("bootstrap.{key}")], "{e}");
    }
    // Several zeros are all reported.
    let e = err("[bootstrap]\nmin_peers = 0\nfeeler_interval_secs = 0\nban_duration_secs = 0\n");
    assert_eq!(
        e.keys(),
        [
            "bootstrap.feeler_interval_secs",
            "bootstrap.ban_duration_secs",
            "bootstrap.min_peers"
        ]
    );
}

/// Issue 14 §6: a connection limit far beyond what a host can hold (9.2e18, the largest
/// TOML integer) is refused with an error naming the key, the value and the bound; the
/// bound itself is accepted.
#[test]
fn connection_limits_have_upper_bounds() {
    use dsdn_bootstrap::config::{
        MAX_CONNECTIONS_PER_PEER, MAX_INBOUND_CONNECTIONS, MAX_INBOUND_PER_IP_PER_MINUTE,
        MAX_MIN_PEERS, MAX_OUTBOUND_CONNECTIONS,
    };
    let bounds: [(&str, u64, u64); 5] = [
        (
            "max_outbound_connections",
            1,
            MAX_OUTBOUND_CONNECTIONS as u64,
        ),
        ("max_inbound_connections", 0, MAX_INBOUND_CONNECTIONS as u64),
        (
            "max_connections_per_peer",
            1,
            MAX_CONNECTIONS_PER_PEER as u64,
        ),
        ("min_peers", 1, MAX_MIN_PEERS as u64),
        (
            "inbound_per_ip_per_minute",
            1,
            u64::from(MAX_INBOUND_PER_IP_PER_MINUTE),
        ),
    ];
    assert_eq!(MAX_INBOUND_CONNECTIONS, 65_536);
    assert_eq!(MAX_CONNECTIONS_PER_PEER, 16);
    for (key, min, max) in bounds {
        let ok = format!("[bootstrap]\n{key} = {max}\n");
        assert!(SeedsConfig::from_toml_str(&ok).is_ok(), "{ok}");
        for value in [max + 1, 9_223_372_036_854_775_807] {
            if key == "inbound_per_ip_per_minute" && value > u64::from(u32::MAX) {
                continue; // a u32: a type error naming the key, tested below
            }
            let e = err(&format!("[bootstrap]\n{key} = {value}\n"));
            assert_eq!(e.keys(), [format!("bootstrap.{key}")], "{e}");
            assert_eq!(
                e.to_string(),
                format!("bootstrap.{key}: must be between {min} and {max}, got {value}")
            );
        }
    }
    let e = err("[bootstrap]\ninbound_per_ip_per_minute = 9223372036854775807\n");
    assert_eq!(e.keys(), ["bootstrap.inbound_per_ip_per_minute"], "{e}");
    // Every bound is written in the comment right above its key in the shipped seeds.toml.
    let shipped = include_str!("../../../seeds.toml");
    for (key, _, max) in bounds {
        let comment = shipped
            .lines()
            .rev()
            .skip_while(|l| !l.starts_with(&format!("{key} = ")))
            .skip(1)
            .take_while(|l| l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            comment.contains(&format!("at most {max}")),
            "seeds.toml does not document the bound {max} of {key}: {comment:?}"
        );
    }
}

#[test]
fn full_file() {
    // The Ed25519 base point: a usable public key.
    let key = format!("58{}", "66".repeat(31));
    let text = format!(
        r#"
[network]
name = "mainnet"
da_authority = "{key}"
[bootstrap]
dns_seeds = ["Seed1.DSDN.network", "seed2.dsdn.network.", "seed1.dsdn.network"]
static_peers = ["203.0.113.50:30303", "[2001:db8::1]:30303", "/ip4/198.51.100.10/tcp/4001", "203.0.113.50:30303"]
peers_file = "/var/lib/dsdn/peers.dat"
dns_servers = ["127.0.0.1:5353", "9.9.9.9", "[::1]:53"]
default_port = 4001
max_outbound_connections = 4
max_inbound_connections = 0
dns_resolve_timeout_secs = 2
peer_connect_timeout_secs = 3
pex_interval_secs = 60
retry_interval_secs = 7
"#
    );
    let cfg = SeedsConfig::from_toml_str(&text).unwrap();
    assert!(cfg.network.name.is_mainnet());
    let mut want = [0x66; 32];
    want[0] = 0x58;
    assert_eq!(cfg.network.da_authority, Some(want));
    let b = &cfg.bootstrap;
    let seeds: Vec<&str> = b.dns_seeds.iter().map(DnsSeed::as_str).collect();
    assert_eq!(seeds, ["seed1.dsdn.network", "seed2.dsdn.network"]);
    let peers: Vec<String> = b.static_peers.iter().map(ToString::to_string).collect();
    assert_eq!(
        peers,
        [
            "203.0.113.50:30303",
            "[2001:db8::1]:30303",
            "/ip4/198.51.100.10/tcp/4001"
        ]
    );
    let servers: Vec<String> = b.dns_servers.iter().map(ToString::to_string).collect();
    assert_eq!(servers, ["127.0.0.1:5353", "9.9.9.9:53", "[::1]:53"]);
    assert_eq!(
        b.peers_path(Path::new("/data")),
        PathBuf::from("/var/lib/dsdn/peers.dat")
    );
    assert_eq!(b.default_port, 4001);
    assert_eq!(b.max_outbound_connections, 4);
    assert_eq!(b.max_inbound_connections, 0);
    assert_eq!(b.dns_resolve_timeout, Duration::from_secs(2));
    assert_eq!(b.peer_connect_timeout, Duration::from_secs(3));
    assert_eq!(b.pex_interval, Duration::from_secs(60));
    assert_eq!(b.retry_interval, Duration::from_secs(7));
    assert_eq!(
        BootstrapConfig::default().peers_path(Path::new("/data")),
        PathBuf::from("/data/peers.dat")
    );
}

#[test]
fn unknown_keys_are_named() {
    for (text, key) in [
        ("[bootstrap]\nfoo = 1\n", "bootstrap.foo"),
        ("[network]\nid = \"x\"\n", "network.id"),
        ("foo = 1\n", "foo"),
        ("[boostrap]\n", "boostrap"),
        ("[bootstrap.extra]\na = 1\n", "bootstrap.extra"),
    ] {
        let e = err(text);
        assert!(
            matches!(e, ConfigError::UnknownKey { .. }),
            "{text:?}: {e:?}"
        );
        assert_eq!(e.to_string(), format!("unknown key {key}"));
        assert_eq!(e.keys(), [key]);
    }
}

#[test]
fn type_errors_are_named() {
    assert_eq!(
        err("[bootstrap]\ndefault_port = \"x\"\n").to_string(),
        "bootstrap.default_port: invalid type: string \"x\", expected u16"
    );
    for (text, key) in [
        (
            "[bootstrap]\ndefault_port = 70000\n",
            "bootstrap.default_port",
        ),
        (
            "[bootstrap]\nmax_inbound_connections = -1\n",
            "bootstrap.max_inbound_connections",
        ),
        (
            "[bootstrap]\ndns_seeds = \"seed.example\"\n",
            "bootstrap.dns_seeds",
        ),
        (
            "[bootstrap]\nstatic_peers = [\"1.2.3.4:1\", 5]\n",
            "bootstrap.static_peers[1]",
        ),
        ("[network]\nname = 5\n", "network.name"),
        ("network = 5\n", "network"),
        (
            "[bootstrap]\nretry_interval_secs = 1.5\n",
            "bootstrap.retry_interval_secs",
        ),
    ] {
        let e = err(text);
        assert!(matches!(e, ConfigError::Invalid(_)), "{text:?}: {e:?}");
        assert_eq!(e.keys(), [key], "{text:?}: {e}");
        assert!(e.to_string().starts_with(&format!("{key}: ")), "{e}");
    }
}

#[test]
fn syntax_errors() {
    let e = err("[bootstrap\n");
    assert!(matches!(e, ConfigError::Syntax(_)), "{e:?}");
    assert!(e.to_string().contains("line 1"), "{e}");
    assert!(e.keys().is_empty());
}

#[test]
fn semantic_errors_are_named() {
    for (text, key, needle) in [
        (
            "[network]\nname = \"Main Net\"\n",
            "network.name",
            "invalid network id",
        ),
        (
            "[network]\nda_authority = \"abcd\"\n",
            "network.da_authority",
            "64 hex",
        ),
        (
            "[network]\nda_authority = \"zz\"\n",
            "network.da_authority",
            "64 hex",
        ),
        (
            // 64 hex characters, but no Ed25519 public key (a mistyped authority).
            "[network]\nda_authority = \"abababababababababababababababababababababababababababababababab\"\n",
            "network.da_authority",
            "not a usable Ed25519 public key",
        ),
        (
            "[bootstrap]\ndns_seeds = [\"ok.example\", \"a.example\", \"bad_seed\"]\n",
            "bootstrap.dns_seeds[2]",
            "invalid DNS seed \"bad_seed\"",
        ),
        (
            "[bootstrap]\nstatic_peers = [\"1.2.3.4\"]\n",
            "bootstrap.static_peers[0]",
            "invalid static peer \"1.2.3.4\"",
        ),
        (
            "[bootstrap]\ndns_servers = [\"resolver.example\"]\n",
            "bootstrap.dns_servers[0]",
            "invalid name server",
        ),
        (
            "[bootstrap]\ndefault_port = 0\n",
            "bootstrap.default_port",
            "0",
        ),
        (
            "[bootstrap]\nmax_outbound_connections = 0\n",
            "bootstrap.max_outbound_connections",
            "must be between 1 and 1024, got 0",
        ),
        (
            "[bootstrap]\npeers_file = \"\"\n",
            "bootstrap.peers_file",
            "empty",
        ),
        (
            "[bootstrap]\ndns_resolve_timeout_secs = 0\n",
            "bootstrap.dns_resolve_timeout_secs",
            "between 1",
        ),
        (
            "[bootstrap]\npeer_connect_timeout_secs = 0\n",
            "bootstrap.peer_connect_timeout_secs",
            "between 1",
        ),
        (
            "[bootstrap]\npex_interval_secs = 0\n",
            "bootstrap.pex_interval_secs",
            "between 1",
        ),
        (
            "[bootstrap]\nretry_interval_secs = 99999999999\n",
            "bootstrap.retry_interval_secs",
            "between 1",
        ),
        (
            "[network]\nname = \"mainnet\"\n",
            "bootstrap.dns_seeds",
            "mainnet requires at least one DNS seed",
        ),
    ] {
        let e = err(text);
        assert_eq!(e.keys(), [key], "{text:?}: {e}");
        let shown = e.to_string();
        assert!(shown.starts_with(&format!("{key}: ")), "{shown}");
        assert!(shown.contains(needle), "{shown:?} lacks {needle:?}");
    }
}

#[test]
fn every_semantic_error_is_reported() {
    let e = err(
        "[network]\nname = \"x y\"\n[bootstrap]\ndns_seeds = [\"-a\", \"ok.example\", \"b..c\"]\ndefault_port = 0\n",
    );
    assert_eq!(
        e.keys(),
        [
            "network.name",
            "bootstrap.dns_seeds[0]",
            "bootstrap.dns_seeds[2]",
            "bootstrap.default_port"
        ]
    );
    assert_eq!(e.to_string().matches("; ").count(), 3, "{e}");
}

#[test]
fn empty_lists_are_valid_off_mainnet() {
    for name in ["devnet", "testnet", "my-private-net"] {
        let text = format!(
            "[network]\nname = \"{name}\"\n[bootstrap]\ndns_seeds = []\nstatic_peers = []\n"
        );
        let cfg = SeedsConfig::from_toml_str(&text).unwrap();
        assert_eq!(cfg.network.name.as_str(), name);
    }
    let ok = "[network]\nname = \"mainnet\"\n[bootstrap]\ndns_seeds = [\"seed1.dsdn.network\"]\n";
    assert!(SeedsConfig::from_toml_str(ok).is_ok());
}

#[test]
fn load_reports_missing_file_and_reads_a_real_one() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.toml");
    let e = SeedsConfig::load(&missing).unwrap_err();
    assert!(matches!(e, ConfigError::Io { .. }));
    assert!(e.to_string().contains("nope.toml"), "{e}");

    let path = dir.path().join("seeds.toml");
    std::fs::write(&path, "[bootstrap]\nstatic_peers = [\"127.0.0.1:4000\"]\n").unwrap();
    let cfg = SeedsConfig::load(&path).unwrap();
    assert_eq!(
        cfg.bootstrap.static_peers,
        [StaticPeer::Socket("127.0.0.1:4000".parse().unwrap())]
    );
}

mod round_trip;
