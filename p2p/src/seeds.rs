//! seeds.toml, the whole file: `[network]` and `[bootstrap]` (owned by `dsdn_bootstrap`),
//! `[da]` (owned by the DA service, [`crate::da::DaConfig`]), `[committee]` (owned by
//! the committee service, [`crate::committee::CommitteeConfig`]), `[receipts]` (owned by the
//! workload service, [`crate::workload::ReceiptsConfig`]), `[nat]` and `[api]` (the
//! control API's limits, [`api::ApiSection`]), composed here because this crate sees them
//! all (`dsdn-p2p` depends on `dsdn-bootstrap`, not the reverse).
//!
//! ```toml
//! [network]
//! name = "devnet"
//! # da_authority = "<64 hex chars>"
//! [bootstrap]
//! dns_seeds = ["seed1.dsdn.network"]
//! static_peers = ["203.0.113.50:30303", "/ip4/198.51.100.10/tcp/30303"]
//! # [committee]                      # coordinators only (14A.2B)
//! # members = ["12D3KooW…", "12D3KooW…", "12D3KooW…"]
//! # threshold = 2
//! # epoch = 0
//! ```
//!
//! Every section and every key is optional; missing ones take the defaults documented on
//! [`NetworkConfig`], [`BootstrapConfig`], [`DaConfig`], [`CommitteeConfig`],
//! [`ReceiptsConfig`], [`NatSection`], [`api::ApiSection`] and [`light::LightSection`]. Unknown
//! keys and malformed values are refused with an error naming the key (see
//! [`ConfigError`]).
//!
//! One serde schema describes the file both ways: it is read into it and validated
//! ([`SeedsConfig::from_toml_str`]), and [`SeedsConfig`] serialises through it
//! (`toml::to_string(&seeds_config)` writes a seeds.toml that reads back equal; a value the
//! file cannot express, such as a sub-second `*_secs` duration, is a serialisation error).

use std::path::Path;

use dsdn_bootstrap::config::{
    parse_toml, read_file, validate_sections, BootstrapConfig, ConfigError, KeyErrors,
    NetworkConfig, RawBootstrap, RawNetwork,
};
use serde::{Deserialize, Serialize};

use crate::committee::config::RawCommittee;
use crate::committee::CommitteeConfig;
use crate::da::config::RawDa;
use crate::da::DaConfig;
use crate::net::nat::config::{NatSection, RawNat};
use crate::workload::config::RawReceipts;
use crate::workload::ReceiptsConfig;

pub mod api;
pub mod light;

use api::{ApiSection, RawApi};

/// The whole of seeds.toml. Serialises to the seeds.toml text (`toml::to_string`); an
/// unset `[committee]` section and an unset `network.da_authority` are left out.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SeedsConfig {
    /// `[network]`.
    pub network: NetworkConfig,
    /// `[bootstrap]`.
    pub bootstrap: BootstrapConfig,
    /// `[da]`.
    pub da: DaConfig,
    /// `[committee]` (read by coordinators only).
    pub committee: CommitteeConfig,
    /// `[receipts]`: optimistic receipts (read by coordinators).
    pub receipts: ReceiptsConfig,
    /// `[nat]`: AutoNAT, relay and UPnP settings.
    pub nat: NatSection,
    /// `[log]`: the daemon's log settings.
    pub log: LogSection,
    /// `[api]`: the control API's connection limits and timeouts.
    pub api: ApiSection,
    /// `[light]`: the checkpoint of `dsdn-agent watch --from-checkpoint` (issue 16 §4).
    pub light: light::LightSection,
}

/// `[log]` of seeds.toml: read at start and at each SIGHUP (issue 14 §5).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// `level`: a tracing filter such as `info` or `info,dsdn_p2p=debug`, used when the
    /// `RUST_LOG` environment variable is not set [default: unset, meaning `info`]. The
    /// daemon checks its syntax.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub level: Option<String>,
}

impl LogSection {
    fn is_default(&self) -> bool {
        self.level.is_none()
    }
}

/// seeds.toml as written, before semantic validation: the file's one serde schema, read
/// by [`SeedsConfig::from_toml_str`] and written by `impl Serialize for SeedsConfig`.
#[derive(Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawFile {
    network: RawNetwork,
    bootstrap: RawBootstrap,
    da: RawDa,
    #[serde(skip_serializing_if = "RawCommittee::is_default")]
    committee: RawCommittee,
    receipts: RawReceipts,
    nat: RawNat,
    #[serde(skip_serializing_if = "LogSection::is_default")]
    log: LogSection,
    api: RawApi,
    #[serde(skip_serializing_if = "light::RawLight::is_default")]
    light: light::RawLight,
}

dsdn_bootstrap::serialize_as_raw!(SeedsConfig);

impl SeedsConfig {
    fn to_raw(&self) -> Result<RawFile, String> {
        Ok(RawFile {
            network: self.network.to_raw()?,
            bootstrap: self.bootstrap.to_raw()?,
            da: self.da.to_raw()?,
            committee: self.committee.to_raw()?,
            receipts: self.receipts.to_raw()?,
            nat: self.nat.to_raw()?,
            log: self.log.clone(),
            api: self.api.to_raw()?,
            light: self.light.to_raw(),
        })
    }

    /// Reads and validates seeds.toml at `path`.
    ///
    /// # Errors
    /// [`ConfigError::Io`] when the file cannot be read, otherwise as
    /// [`SeedsConfig::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, ConfigError> {
        Self::from_toml_str(&read_file(path.as_ref())?)
    }

    /// Parses and validates the text of seeds.toml.
    ///
    /// Duplicate DNS seeds and static peers are dropped (the first occurrence is kept).
    ///
    /// # Errors
    /// - [`ConfigError::Syntax`]: not TOML.
    /// - [`ConfigError::UnknownKey`]: a key seeds.toml does not define (`unknown key
    ///   bootstrap.foo`).
    /// - [`ConfigError::Invalid`]: a value of the wrong type (`bootstrap.default_port: invalid
    ///   type: string "x", expected u16`), or every value failing validation: the `[da]`
    ///   ranges, `committee.members[i]` (not a PeerId, or a duplicate),
    ///   `committee.members` (not 2..=64 entries) and `committee.threshold` (below 2, or
    ///   above the number of members), `receipts.challenge_window_secs` (1 to 86,400), the
    ///   `[nat]` and `[api]` ranges, then the `[network]`
    ///   and `[bootstrap]` keys listed on [`validate_sections`].
    pub fn from_toml_str(text: &str) -> Result<Self, ConfigError> {
        let raw: RawFile = parse_toml(text)?;
        let mut errs = KeyErrors::default();
        let da = crate::da::config::validate(raw.da, &mut errs);
        let committee = crate::committee::config::validate(raw.committee, &mut errs);
        let receipts = crate::workload::config::validate(raw.receipts, &mut errs);
        let nat = crate::net::nat::config::validate(raw.nat, &mut errs);
        let api = api::validate(raw.api, &mut errs);
        let light = light::validate(raw.light, &mut errs);
        let (network, bootstrap) = validate_sections(raw.network, raw.bootstrap, &mut errs);
        errs.into_result(SeedsConfig {
            network,
            bootstrap,
            da,
            committee,
            receipts,
            nat,
            log: raw.log,
            api,
            light,
        })
    }
}

#[cfg(test)]
mod tests;
