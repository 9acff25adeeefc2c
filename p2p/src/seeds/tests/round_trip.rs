//! seeds.toml serialisation round trips, external addresses and the private-address
//! policy.

use std::path::{Path, PathBuf};
use std::time::Duration;

use dsdn_bootstrap::config::DnsSeed;
use dsdn_bootstrap::StaticPeer;
use dsdn_protocols::NetworkId;

use super::super::*;
use super::err;

/// `toml::to_string` then [`SeedsConfig::from_toml_str`] gives back `cfg`.
fn round_trip(cfg: &SeedsConfig) -> String {
    let text = toml::to_string(cfg).unwrap_or_else(|e| panic!("{e}: {cfg:?}"));
    let back = SeedsConfig::from_toml_str(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(&back, cfg, "{text}");
    text
}

#[test]
fn shipped_seeds_toml_reserialises_to_an_equal_value() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../seeds.toml");
    let cfg = SeedsConfig::load(&path).unwrap();
    let text = round_trip(&cfg);
    // Unset optional parts are left out, every other key is written.
    assert!(!text.contains("da_authority"), "{text}");
    assert!(!text.contains("[committee]"), "{text}");
    assert!(text.contains("service_record_ttl_secs = 3600"), "{text}");
    assert!(text.contains("batch_interval_ms = 100"), "{text}");
    assert_eq!(round_trip(&SeedsConfig::default()), text);
}

#[test]
fn every_field_round_trips() {
    let members: Vec<libp2p::identity::PeerId> = (0..3)
        .map(|i| {
            libp2p::identity::Keypair::ed25519_from_bytes([i + 1; 32])
                .unwrap()
                .public()
                .to_peer_id()
        })
        .collect();
    let cfg = SeedsConfig {
        network: NetworkConfig {
            name: NetworkId::new("mainnet").unwrap(),
            da_authority: Some({
                let mut k = [0x66; 32];
                k[0] = 0x58;
                k
            }),
            external_addresses: vec!["/ip4/203.0.113.7/tcp/4001".parse().unwrap()],
            allow_private_addresses: Some(true),
        },
        bootstrap: BootstrapConfig {
            dns_seeds: vec![DnsSeed::new("seed1.dsdn.network").unwrap()],
            static_peers: vec![
                StaticPeer::parse("203.0.113.50:30303").unwrap(),
                StaticPeer::parse("[2001:db8::1]:30303").unwrap(),
                StaticPeer::parse("/ip4/198.51.100.10/tcp/4001").unwrap(),
            ],
            peers_file: PathBuf::from("/var/lib/dsdn/peers.dat"),
            dns_servers: vec!["9.9.9.9:53".parse().unwrap(), "[::1]:5353".parse().unwrap()],
            default_port: 4001,
            max_outbound_connections: 4,
            max_inbound_connections: 0,
            dns_resolve_timeout: Duration::from_secs(2),
            peer_connect_timeout: Duration::from_secs(3),
            pex_interval: Duration::from_secs(60),
            retry_interval: Duration::from_secs(7),
            min_peers: 5,
            max_connections_per_peer: 1,
            inbound_per_ip_per_minute: 99,
            dns_refresh_interval: Duration::from_secs(11),
            feeler_interval: Duration::from_secs(12),
            recovery_backoff_max: Duration::from_secs(13),
            ban_duration: Duration::from_secs(14),
            service_record_ttl: Duration::from_secs(15),
        },
        da: DaConfig {
            batch_max_bytes: 2048,
            batch_max_events: 3,
            batch_interval: Duration::from_millis(7),
            sync_chunk_blobs: 8,
            sync_request_timeout: Duration::from_secs(9),
            publish_grace: Duration::from_secs(11),
            proof_history_heights: 16,
            rebuild_cache_mib: 48,
            state_sync: crate::da::StateSyncMode::Auto,
        },
        committee: CommitteeConfig {
            members,
            threshold: 3,
            epoch: 4,
            round_timeout: Duration::from_millis(12),
            epoch_length: Duration::from_secs(60),
            handoff: Duration::from_secs(13),
            candidates: vec![libp2p::PeerId::random(), libp2p::PeerId::random()],
        },
        receipts: crate::workload::ReceiptsConfig {
            optimistic: true,
            challenge_window: Duration::from_secs(17),
        },
        nat: crate::net::nat::config::NatSection {
            relay_server: Some(true),
            upnp: Some(false),
            autonat_server: false,
            max_relay_reservations: 5,
            relay: crate::net::nat::RelayLimits {
                max_reservations: 6,
                max_circuits: 7,
                max_circuit_duration: Duration::from_secs(8),
                max_circuit_bytes: 9000,
                ..crate::net::nat::RelayLimits::default()
            },
        },
        log: LogSection {
            level: Some("info,dsdn_p2p=debug".into()),
        },
        api: super::api::ApiSection {
            max_connections: 16,
            max_connections_per_ip: 3,
            header_read_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(9),
        },
        light: super::light::LightSection {
            checkpoint: Some(crate::light::Checkpoint {
                height: 42,
                blob_hash: [0xab; 32],
                state_root: [0x01; 32],
            }),
            trust_peer: Some(
                format!(
                    "/ip4/203.0.113.50/tcp/30303/p2p/{}",
                    libp2p::PeerId::random()
                )
                .parse()
                .unwrap(),
            ),
        },
    };
    let text = round_trip(&cfg);
    assert!(text.contains("[committee]"), "{text}");
    assert!(text.contains("[light]"), "{text}");
    // A committee section holding only a threshold is still written.
    let mut partial = SeedsConfig::default();
    partial.committee.threshold = 3;
    round_trip(&partial);
}

#[test]
fn values_the_file_cannot_express_are_serialisation_errors() {
    let mut cfg = SeedsConfig::default();
    cfg.bootstrap.pex_interval = Duration::from_millis(1500);
    let err = toml::to_string(&cfg).unwrap_err().to_string();
    assert!(err.contains("bootstrap.pex_interval_secs"), "{err}");
    let mut cfg = SeedsConfig::default();
    cfg.da.batch_interval = Duration::from_micros(1500);
    let err = toml::to_string(&cfg).unwrap_err().to_string();
    assert!(err.contains("da.batch_interval_ms"), "{err}");
}

#[test]
fn light_checkpoint_and_trusted_peer_are_checked() {
    let err = SeedsConfig::from_toml_str(
        "[light]\ncheckpoint = \"7:ab\"\ntrust_peer = \"/ip4/203.0.113.7/tcp/1\"\n",
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("light.checkpoint") && err.contains("HEIGHT:HASH:ROOT"),
        "{err}"
    );
    assert!(
        err.contains("light.trust_peer") && err.contains("/p2p/"),
        "{err}"
    );
    assert_eq!(SeedsConfig::default().light.trusted_peer_id(), None);
}

#[test]
fn external_addresses_are_multiaddrs() {
    let cfg = SeedsConfig::from_toml_str(
        "[network]\nexternal_addresses = [\"/ip4/203.0.113.7/tcp/30303\"]\n",
    )
    .unwrap();
    assert_eq!(
        cfg.network.external_addresses,
        vec!["/ip4/203.0.113.7/tcp/30303"
            .parse::<libp2p::Multiaddr>()
            .unwrap()]
    );
    let err = SeedsConfig::from_toml_str(
        "[network]\nexternal_addresses = [\"203.0.113.7:30303\", \"/ip4/0.0.0.0/tcp/1\"]\n",
    )
    .unwrap_err();
    assert_eq!(
        err.keys(),
        [
            "network.external_addresses[0]",
            "network.external_addresses[1]"
        ]
    );
}

#[test]
fn allow_private_addresses_defaults_to_true_on_devnet_only() {
    let cfg = SeedsConfig::from_toml_str("").unwrap();
    assert_eq!(cfg.network.allow_private_addresses, None);
    assert!(cfg.network.allow_private_addresses());
    for name in ["mainnet", "testnet", "lab"] {
        let seeds = if name == "mainnet" {
            "[bootstrap]\ndns_seeds = [\"seed.example.org\"]\n"
        } else {
            ""
        };
        let text = format!("[network]\nname = \"{name}\"\n{seeds}");
        let cfg = SeedsConfig::from_toml_str(&text).unwrap();
        assert!(!cfg.network.allow_private_addresses(), "{name}");
        assert!(!cfg.network.address_policy().allow_private, "{name}");
    }
    let cfg = SeedsConfig::from_toml_str(
        "[network]\nname = \"testnet\"\nallow_private_addresses = true\n",
    )
    .unwrap();
    assert!(cfg.network.allow_private_addresses());
    let text = toml::to_string(&cfg).unwrap();
    assert!(text.contains("allow_private_addresses = true"), "{text}");
    assert_eq!(SeedsConfig::from_toml_str(&text).unwrap(), cfg);
    let cfg = SeedsConfig::from_toml_str("[network]\nallow_private_addresses = false\n").unwrap();
    assert!(!cfg.network.allow_private_addresses());
    assert_eq!(
        err("[network]\nallow_private_addresses = \"no\"\n").keys(),
        ["network.allow_private_addresses"]
    );
    // Unset, it is not written.
    let text = toml::to_string(&SeedsConfig::default()).unwrap();
    assert!(!text.contains("allow_private_addresses"), "{text}");
}
