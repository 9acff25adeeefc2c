//! Writing seeds.toml: the `[network]` and `[bootstrap]` config types back to their
//! schema ([`RawNetwork`], [`RawBootstrap`]), and `serialize_as_raw!`, which gives every
//! section type its `impl Serialize` through that schema.

use std::time::Duration;

use super::{parse_authority, BootstrapConfig, NetworkConfig, RawBootstrap, RawNetwork};

/// `impl Serialize` for a config section through its `to_raw(&self) -> Result<Raw, String>`
/// (the section's seeds.toml schema); a value the file cannot express is a serialisation
/// error naming the key.
#[macro_export]
macro_rules! serialize_as_raw {
    ($($ty:ty),*) => {$(
        impl serde::Serialize for $ty {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                serde::Serialize::serialize(
                    &self.to_raw().map_err(<S::Error as serde::ser::Error>::custom)?,
                    s,
                )
            }
        }
    )*};
}

crate::serialize_as_raw!(NetworkConfig, BootstrapConfig);

/// `duration` as whole seconds for the `*_secs` key `key` (the dotted key, named in the
/// error); an error when it has a fractional part (the file could not express it).
///
/// # Errors
/// `key: <duration> is not a whole number of seconds`.
pub fn whole_secs(key: &str, duration: Duration) -> Result<u64, String> {
    if duration.subsec_nanos() != 0 {
        return Err(format!(
            "{key}: {duration:?} is not a whole number of seconds"
        ));
    }
    Ok(duration.as_secs())
}

impl NetworkConfig {
    /// This section as written in seeds.toml.
    ///
    /// # Errors
    /// Never for this section (the signature matches the other sections').
    pub fn to_raw(&self) -> Result<RawNetwork, String> {
        Ok(RawNetwork {
            name: self.name.as_str().to_owned(),
            da_authority: self.da_authority.map(hex::encode),
            external_addresses: self
                .external_addresses
                .iter()
                .map(ToString::to_string)
                .collect(),
            allow_private_addresses: self.allow_private_addresses,
        })
    }

    /// Parses a `da_authority` value: an Ed25519 public key written as 64 hex characters.
    ///
    /// # Errors
    /// The message `network.da_authority` is reported with (not hex, or not 32 bytes).
    pub fn parse_da_authority(hex_key: &str) -> Result<[u8; 32], String> {
        parse_authority(hex_key)
    }
}

impl BootstrapConfig {
    /// This section as written in seeds.toml.
    ///
    /// # Errors
    /// A duration that is not a whole number of seconds, naming its key.
    pub fn to_raw(&self) -> Result<RawBootstrap, String> {
        let secs = |key: &str, d: Duration| whole_secs(&format!("bootstrap.{key}"), d);
        Ok(RawBootstrap {
            dns_seeds: self.dns_seeds.iter().map(ToString::to_string).collect(),
            static_peers: self.static_peers.iter().map(ToString::to_string).collect(),
            peers_file: self.peers_file.clone(),
            dns_servers: self.dns_servers.iter().map(ToString::to_string).collect(),
            default_port: self.default_port,
            max_outbound_connections: self.max_outbound_connections,
            max_inbound_connections: self.max_inbound_connections,
            dns_resolve_timeout_secs: secs("dns_resolve_timeout_secs", self.dns_resolve_timeout)?,
            peer_connect_timeout_secs: secs(
                "peer_connect_timeout_secs",
                self.peer_connect_timeout,
            )?,
            pex_interval_secs: secs("pex_interval_secs", self.pex_interval)?,
            retry_interval_secs: secs("retry_interval_secs", self.retry_interval)?,
            min_peers: self.min_peers,
            max_connections_per_peer: self.max_connections_per_peer,
            inbound_per_ip_per_minute: self.inbound_per_ip_per_minute,
            dns_refresh_interval_secs: secs(
                "dns_refresh_interval_secs",
                self.dns_refresh_interval,
            )?,
            feeler_interval_secs: secs("feeler_interval_secs", self.feeler_interval)?,
            recovery_backoff_max_secs: secs(
                "recovery_backoff_max_secs",
                self.recovery_backoff_max,
            )?,
            ban_duration_secs: secs("ban_duration_secs", self.ban_duration)?,
            service_record_ttl_secs: secs("service_record_ttl_secs", self.service_record_ttl)?,
        })
    }
}
