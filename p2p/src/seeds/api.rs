//! `[api]` of seeds.toml: the limits of the daemon's HTTP control API (issue 14 §1). The
//! server itself is `dsdn_daemon::server`; the section lives here because this crate
//! composes the whole file.
//!
//! ```toml
//! [api]
//! max_connections = 64
//! max_connections_per_ip = 8
//! header_read_timeout_secs = 5
//! request_timeout_secs = 90
//! idle_timeout_secs = 30
//! ```

use std::time::Duration;

use dsdn_bootstrap::config::{whole_secs, KeyErrors};
use serde::{Deserialize, Serialize};

/// `[api]` as configured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ApiSection {
    /// `max_connections`: control API connections open at once. Each holds one file
    /// descriptor, which the daemon reserves from its budget; beyond it a new connection
    /// takes the place of the oldest one that has not yet shown the API token, else of the
    /// oldest idle one, or is closed when every open one serves a request with the token.
    /// 1..=4096; default 64.
    pub max_connections: usize,
    /// `max_connections_per_ip`: of those, connections from one IP address (same rule
    /// beyond it). 1..=`max_connections`; default 8.
    pub max_connections_per_ip: usize,
    /// `header_read_timeout_secs`: from the first byte of a request to the end of its
    /// head; the connection is closed when it takes longer (a slow-loris client). 1..=300;
    /// default 5 s.
    pub header_read_timeout: Duration,
    /// `request_timeout_secs`: from the end of a request's head to the handler's answer
    /// (reading the body included); beyond it the request is answered 503. Must exceed
    /// the longest wait a route offers (`GET /v1/da/state?wait_height` waits up to 60 s).
    /// 1..=3600; default 90 s.
    pub request_timeout: Duration,
    /// `idle_timeout_secs`: a connection with no request in progress that receives
    /// nothing for this long is closed (a fresh connection too). 1..=3600; default 30 s.
    pub idle_timeout: Duration,
}

impl Default for ApiSection {
    fn default() -> Self {
        Self {
            max_connections: 64,
            max_connections_per_ip: 8,
            header_read_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(90),
            idle_timeout: Duration::from_secs(30),
        }
    }
}

/// `[api]` as written in seeds.toml (its serde schema, both ways).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawApi {
    max_connections: usize,
    max_connections_per_ip: usize,
    header_read_timeout_secs: u64,
    request_timeout_secs: u64,
    idle_timeout_secs: u64,
}

impl Default for RawApi {
    fn default() -> Self {
        let d = ApiSection::default();
        Self {
            max_connections: d.max_connections,
            max_connections_per_ip: d.max_connections_per_ip,
            header_read_timeout_secs: d.header_read_timeout.as_secs(),
            request_timeout_secs: d.request_timeout.as_secs(),
            idle_timeout_secs: d.idle_timeout.as_secs(),
        }
    }
}

impl ApiSection {
    pub(crate) fn to_raw(self) -> Result<RawApi, String> {
        Ok(RawApi {
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            header_read_timeout_secs: whole_secs(
                "api.header_read_timeout_secs",
                self.header_read_timeout,
            )?,
            request_timeout_secs: whole_secs("api.request_timeout_secs", self.request_timeout)?,
            idle_timeout_secs: whole_secs("api.idle_timeout_secs", self.idle_timeout)?,
        })
    }
}

/// Validates `[api]`: `max_connections` 1..=4096, `max_connections_per_ip`
/// 1..=`max_connections`, `header_read_timeout_secs` 1..=300, `request_timeout_secs` and
/// `idle_timeout_secs` 1..=3600.
pub(crate) fn validate(raw: RawApi, errs: &mut KeyErrors) -> ApiSection {
    let max_connections = errs.range("api.max_connections", raw.max_connections, 1, 4096);
    ApiSection {
        max_connections,
        max_connections_per_ip: errs.range(
            "api.max_connections_per_ip",
            raw.max_connections_per_ip,
            1,
            max_connections.max(1),
        ),
        header_read_timeout: Duration::from_secs(errs.range(
            "api.header_read_timeout_secs",
            raw.header_read_timeout_secs,
            1,
            300,
        )),
        request_timeout: Duration::from_secs(errs.range(
            "api.request_timeout_secs",
            raw.request_timeout_secs,
            1,
            3600,
        )),
        idle_timeout: Duration::from_secs(errs.range(
            "api.idle_timeout_secs",
            raw.idle_timeout_secs,
            1,
            3600,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::SeedsConfig;

    #[test]
    fn defaults_overrides_and_bad_values_name_their_keys() {
        assert_eq!(
            SeedsConfig::from_toml_str("").unwrap().api,
            ApiSection::default()
        );
        let text = "[api]\nmax_connections = 10\nmax_connections_per_ip = 10\n\
                    header_read_timeout_secs = 2\nidle_timeout_secs = 7\n";
        let cfg = SeedsConfig::from_toml_str(text).unwrap();
        assert_eq!(cfg.api.max_connections, 10);
        assert_eq!(cfg.api.max_connections_per_ip, 10);
        assert_eq!(cfg.api.header_read_timeout, Duration::from_secs(2));
        assert_eq!(cfg.api.idle_timeout, Duration::from_secs(7));
        assert_eq!(cfg.api.request_timeout, Duration::from_secs(90));
        let again = SeedsConfig::from_toml_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(again, cfg);

        let err = SeedsConfig::from_toml_str(
            "[api]\nmax_connections = 0\nmax_connections_per_ip = 9\nheader_read_timeout_secs = 301\n\
             request_timeout_secs = 0\nidle_timeout_secs = 3601\n",
        )
        .unwrap_err();
        assert_eq!(
            err.keys(),
            [
                "api.max_connections",
                "api.max_connections_per_ip",
                "api.header_read_timeout_secs",
                "api.request_timeout_secs",
                "api.idle_timeout_secs"
            ]
        );
        let err = SeedsConfig::from_toml_str("[api]\nmax_connections = 4\n").unwrap_err();
        assert_eq!(err.keys(), ["api.max_connections_per_ip"], "8 > 4");
        assert!(SeedsConfig::from_toml_str("[api]\nbacklog = 1\n").is_err());
    }
}
