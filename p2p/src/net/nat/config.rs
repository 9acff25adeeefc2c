//! `[nat]` of seeds.toml: the AutoNAT server, the circuit relay v2 server and its limits,
//! relay reservations and UPnP (issue 12 §2, §4). Operator-given external addresses are
//! `[network] external_addresses`.
//!
//! ```toml
//! [nat]
//! # relay_server = true          # default: on in --mode bootstrap, off elsewhere
//! # upnp = true                  # default: on for mainnet/testnet except --mode bootstrap
//! autonat_server = true
//! max_relay_reservations = 2
//! relay_max_reservations = 128
//! relay_max_circuits = 16
//! relay_max_circuit_secs = 120
//! relay_max_circuit_bytes = 1048576
//! relay_reservation_rate_per_ip = 60
//! relay_circuit_rate_per_ip = 60
//! ```

use std::time::Duration;

use dsdn_bootstrap::config::{whole_secs, KeyErrors, MAX_DURATION_SECS};
use dsdn_protocols::NetworkId;
use libp2p::Multiaddr;
use serde::{Deserialize, Serialize};

use super::{NatConfig, RelayLimits};

/// `[nat]` as configured; [`NatSection::resolve`] turns it into a node's [`NatConfig`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NatSection {
    /// `relay_server`: serve circuit relay v2. `None` (key absent, the default): on in
    /// `--mode bootstrap`, off elsewhere.
    pub relay_server: Option<bool>,
    /// `upnp`: ask the LAN's UPnP IGD gateway for port mappings. `None` (the default): on
    /// for `mainnet` and `testnet` except in `--mode bootstrap` (a bootstrap node has a
    /// public address of its own), off for every other network (a test or private network
    /// sends nothing to the LAN's gateway unless asked).
    pub upnp: Option<bool>,
    /// `autonat_server`: answer other nodes' AutoNAT v2 dial-back requests. Default true.
    pub autonat_server: bool,
    /// `max_relay_reservations`: relays a private node keeps a reservation on (0: never).
    /// 0..=8; default 2.
    pub max_relay_reservations: usize,
    /// `relay_max_reservations`, `relay_max_circuits`, `relay_max_circuit_secs`,
    /// `relay_max_circuit_bytes`, `relay_reservation_rate_per_ip`,
    /// `relay_circuit_rate_per_ip`: the relay server's limits (see [`RelayLimits`]).
    pub relay: RelayLimits,
}

impl Default for NatSection {
    fn default() -> Self {
        Self {
            relay_server: None,
            upnp: None,
            autonat_server: true,
            max_relay_reservations: 2,
            relay: RelayLimits::default(),
        }
    }
}

impl NatSection {
    /// The NAT settings of a node of `network`; `bootstrap_mode`: the daemon runs
    /// `--mode bootstrap`; `external_addresses`: the operator's (`[network]
    /// external_addresses` and `--external-address`).
    pub fn resolve(
        &self,
        network: &NetworkId,
        bootstrap_mode: bool,
        external_addresses: Vec<Multiaddr>,
    ) -> NatConfig {
        let public_net = matches!(network.as_str(), "mainnet" | "testnet");
        NatConfig {
            external_addresses,
            autonat_server: self.autonat_server,
            probe_interval: NatConfig::default().probe_interval,
            relay_server: self
                .relay_server
                .unwrap_or(bootstrap_mode)
                .then_some(self.relay),
            max_relay_reservations: self.max_relay_reservations,
            upnp: self.upnp.unwrap_or(public_net && !bootstrap_mode),
        }
    }
}

/// `[nat]` as written in seeds.toml (its serde schema, both ways).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawNat {
    #[serde(skip_serializing_if = "Option::is_none")]
    relay_server: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    upnp: Option<bool>,
    autonat_server: bool,
    max_relay_reservations: usize,
    relay_max_reservations: usize,
    relay_max_circuits: usize,
    relay_max_circuit_secs: u64,
    relay_max_circuit_bytes: u64,
    relay_reservation_rate_per_ip: u32,
    relay_circuit_rate_per_ip: u32,
}

impl Default for RawNat {
    fn default() -> Self {
        let d = NatSection::default();
        Self {
            relay_server: None,
            upnp: None,
            autonat_server: d.autonat_server,
            max_relay_reservations: d.max_relay_reservations,
            relay_max_reservations: d.relay.max_reservations,
            relay_max_circuits: d.relay.max_circuits,
            relay_max_circuit_secs: d.relay.max_circuit_duration.as_secs(),
            relay_max_circuit_bytes: d.relay.max_circuit_bytes,
            relay_reservation_rate_per_ip: d.relay.reservation_rate_per_ip,
            relay_circuit_rate_per_ip: d.relay.circuit_rate_per_ip,
        }
    }
}

impl NatSection {
    pub(crate) fn to_raw(&self) -> Result<RawNat, String> {
        Ok(RawNat {
            relay_server: self.relay_server,
            upnp: self.upnp,
            autonat_server: self.autonat_server,
            max_relay_reservations: self.max_relay_reservations,
            relay_max_reservations: self.relay.max_reservations,
            relay_max_circuits: self.relay.max_circuits,
            relay_max_circuit_secs: whole_secs(
                "nat.relay_max_circuit_secs",
                self.relay.max_circuit_duration,
            )?,
            relay_max_circuit_bytes: self.relay.max_circuit_bytes,
            relay_reservation_rate_per_ip: self.relay.reservation_rate_per_ip,
            relay_circuit_rate_per_ip: self.relay.circuit_rate_per_ip,
        })
    }
}

/// Validates `[nat]`: `max_relay_reservations` 0..=8, `relay_max_reservations` and
/// `relay_max_circuits` 1..=65,536, `relay_max_circuit_secs` 1..=one week,
/// `relay_max_circuit_bytes` 1 KiB..=1 GiB, `relay_reservation_rate_per_ip` and
/// `relay_circuit_rate_per_ip` 1..=1,000,000.
pub(crate) fn validate(raw: RawNat, errs: &mut KeyErrors) -> NatSection {
    let d = RelayLimits::default();
    NatSection {
        relay_server: raw.relay_server,
        upnp: raw.upnp,
        autonat_server: raw.autonat_server,
        max_relay_reservations: errs.range(
            "nat.max_relay_reservations",
            raw.max_relay_reservations,
            0,
            8,
        ),
        relay: RelayLimits {
            max_reservations: errs.range(
                "nat.relay_max_reservations",
                raw.relay_max_reservations,
                1,
                65_536,
            ),
            max_circuits: errs.range("nat.relay_max_circuits", raw.relay_max_circuits, 1, 65_536),
            max_circuit_duration: Duration::from_secs(errs.range(
                "nat.relay_max_circuit_secs",
                raw.relay_max_circuit_secs,
                1,
                MAX_DURATION_SECS,
            )),
            max_circuit_bytes: errs.range(
                "nat.relay_max_circuit_bytes",
                raw.relay_max_circuit_bytes,
                1024,
                1 << 30,
            ),
            reservation_rate_per_ip: errs.range(
                "nat.relay_reservation_rate_per_ip",
                raw.relay_reservation_rate_per_ip,
                1,
                1_000_000,
            ),
            circuit_rate_per_ip: errs.range(
                "nat.relay_circuit_rate_per_ip",
                raw.relay_circuit_rate_per_ip,
                1,
                1_000_000,
            ),
            ..d
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::SeedsConfig;

    fn net(n: &str) -> NetworkId {
        NetworkId::new(n).unwrap()
    }

    #[test]
    fn defaults_depend_on_mode_and_network() {
        let cfg = SeedsConfig::from_toml_str("").unwrap();
        assert_eq!(cfg.nat, NatSection::default());
        let boot = cfg.nat.resolve(&net("mainnet"), true, vec![]);
        assert!(boot.relay_server.is_some());
        assert!(!boot.upnp);
        let storage = cfg.nat.resolve(&net("mainnet"), false, vec![]);
        assert!(storage.relay_server.is_none());
        assert!(storage.upnp);
        let dev = cfg.nat.resolve(&net("devnet"), false, vec![]);
        assert!(!dev.upnp, "no UPnP traffic on a devnet unless asked");
    }

    #[test]
    fn overrides_read_back_and_bad_values_name_their_keys() {
        let text = "[nat]\nrelay_server = false\nupnp = true\nmax_relay_reservations = 3\n\
                    relay_max_circuit_bytes = 4096\n";
        let cfg = SeedsConfig::from_toml_str(text).unwrap();
        assert_eq!(cfg.nat.relay_server, Some(false));
        assert_eq!(cfg.nat.relay.max_circuit_bytes, 4096);
        assert_eq!(
            cfg.nat.relay.reservation_rate_per_ip, 60,
            "default as libp2p's"
        );
        let again = SeedsConfig::from_toml_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(again, cfg);
        assert!(cfg
            .nat
            .resolve(&net("devnet"), true, vec![])
            .relay_server
            .is_none());

        let err = SeedsConfig::from_toml_str(
            "[nat]\nmax_relay_reservations = 9\nrelay_max_circuits = 0\nrelay_max_circuit_bytes = 1\n\
             relay_circuit_rate_per_ip = 0\n",
        )
        .unwrap_err();
        assert_eq!(
            err.keys(),
            [
                "nat.max_relay_reservations",
                "nat.relay_max_circuits",
                "nat.relay_max_circuit_bytes",
                "nat.relay_circuit_rate_per_ip"
            ]
        );
    }

    #[test]
    fn relay_rate_limits_per_ip_are_read_and_written() {
        let text = "[nat]\nrelay_reservation_rate_per_ip = 800\nrelay_circuit_rate_per_ip = 900\n";
        let cfg = SeedsConfig::from_toml_str(text).unwrap();
        assert_eq!(cfg.nat.relay.reservation_rate_per_ip, 800);
        assert_eq!(cfg.nat.relay.circuit_rate_per_ip, 900);
        let written = toml::to_string(&cfg).unwrap();
        assert!(
            written.contains("relay_circuit_rate_per_ip = 900"),
            "{written}"
        );
        let again = SeedsConfig::from_toml_str(&written).unwrap();
        assert_eq!(again.nat, cfg.nat);
    }
}
