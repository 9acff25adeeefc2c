//! The daemon's file-descriptor budget (issue 14 §1): the control API can never take the
//! descriptors the P2P side needs.
//!
//! At start [`raise_nofile_limit`] raises the soft `RLIMIT_NOFILE` to the hard limit; the
//! resulting soft limit is the budget, which [`FdBudget::plan`] splits three ways:
//!
//! - **files** ([`FILES_RESERVE`]): stdio and the log, the redb files (peers.dat, the DA
//!   log), the DA state and committee files, DNS and UPnP sockets, the runtime's epoll and
//!   event descriptors, the P2P and API listening sockets;
//! - **api**: `[api] max_connections` + 1, a hard cap: the API's accept loop holds one
//!   permit per open connection, plus one for the connection it is judging, and accepts
//!   nothing while none is free ([`crate::server`]);
//! - **p2p**: the rest. The P2P connection limits in effect must fit in it:
//!   `max_inbound_connections + max_outbound_connections +`
//!   [`EXTRA_OUTBOUND`] `+` [`P2P_PENDING_RESERVE`] (connections being dialled or
//!   handshaken, which no limit counts yet). When the configured limits do not fit they
//!   are lowered at start, `max_inbound_connections` first, and the daemon logs a warning
//!   naming the keys; when even one outbound connection does not fit, the daemon refuses to
//!   start.
//!
//! QUIC connections share the UDP socket and relayed circuits ride on existing connections,
//! so only TCP connections count against the P2P share; counting every connection keeps a
//! margin. [`FdMetrics`] exports the split (`dsdn_fd_budget{part}`); the descriptors open
//! are the process collector's `process_open_fds` (Linux).

use dsdn_bootstrap::config::BootstrapConfig;
use dsdn_p2p::net::peer_manager::EXTRA_OUTBOUND;
use dsdn_p2p::seeds::api::ApiSection;
use dsdn_p2p::seeds::SeedsConfig;
use prometheus::{IntGaugeVec, Opts, Registry};

/// Descriptors reserved for everything that is not a connection (files, sockets of the
/// resolver and UPnP, listeners, the runtime's own).
pub const FILES_RESERVE: u64 = 64;

/// Descriptors of the P2P share kept for connections that are being dialled or handshaken
/// (counted by no connection limit yet): the peer manager admits at most
/// `dsdn_p2p::net::peer_manager::MAX_PENDING_INBOUND` (24) inbound ones at once, the rest is
/// for dials in flight.
pub const P2P_PENDING_RESERVE: u64 = 32;

/// Errors of [`FdBudget::plan`].
#[derive(Debug, thiserror::Error)]
pub enum FdError {
    /// The limit cannot hold the reserve for files, the API's cap and one outbound P2P
    /// connection.
    #[error(
        "the open-files limit (nofile) is {limit}, below the {need} descriptors dsdnd needs \
         ({files} for files, {api} for the control API, {p2p} for one P2P connection and \
         pending ones): raise it (ulimit -n, LimitNOFILE=) or lower api.max_connections"
    )]
    TooSmall {
        /// The soft limit, in descriptors.
        limit: u64,
        /// The least that works, in descriptors.
        need: u64,
        /// Of which: files.
        files: u64,
        /// Of which: the API.
        api: u64,
        /// Of which: P2P.
        p2p: u64,
    },
}

/// The soft and hard `RLIMIT_NOFILE` after [`raise_nofile_limit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NofileLimit {
    /// The soft limit before, in descriptors.
    pub before: u64,
    /// The soft limit now: the budget, in descriptors.
    pub soft: u64,
    /// The hard limit, in descriptors (`u64::MAX`: unlimited).
    pub hard: u64,
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit (to 1,048,576 when the hard limit is
/// unlimited).
///
/// # Errors
/// The message of the failed `getrlimit`/`setrlimit` call; the limit is then unchanged.
#[cfg(unix)]
pub fn raise_nofile_limit() -> Result<NofileLimit, String> {
    use nix::sys::resource::{getrlimit, setrlimit, Resource, RLIM_INFINITY};
    let (soft, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(NOFILE): {e}"))?;
    let target = if hard == RLIM_INFINITY {
        soft.max(1 << 20)
    } else {
        hard
    };
    if target > soft {
        setrlimit(Resource::RLIMIT_NOFILE, target, hard)
            .map_err(|e| format!("setrlimit(NOFILE, {target}, {hard}): {e}"))?;
    }
    let (now, hard) =
        getrlimit(Resource::RLIMIT_NOFILE).map_err(|e| format!("getrlimit(NOFILE): {e}"))?;
    let unlimited = |v: u64| if v == RLIM_INFINITY { u64::MAX } else { v };
    Ok(NofileLimit {
        before: unlimited(soft),
        soft: unlimited(now),
        hard: unlimited(hard),
    })
}

/// Without `RLIMIT_NOFILE`: always an error.
///
/// # Errors
/// Always.
#[cfg(not(unix))]
pub fn raise_nofile_limit() -> Result<NofileLimit, String> {
    Err("no RLIMIT_NOFILE on this platform".to_owned())
}

/// A P2P limit lowered to fit the budget.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Lowered {
    /// The seeds.toml key, e.g. `bootstrap.max_inbound_connections`.
    pub key: &'static str,
    /// The configured value.
    pub from: usize,
    /// The value in effect.
    pub to: usize,
}

impl Lowered {
    /// Logs the lowering (a warning naming the key) for a budget of `nofile` descriptors.
    pub fn warn(&self, nofile: u64) {
        tracing::warn!(
            key = self.key,
            configured = self.from,
            in_effect = self.to,
            nofile,
            "P2P connection limit lowered to fit the file descriptor budget (raise the nofile limit to keep it)"
        );
    }
}

/// The split of the descriptor budget, in descriptors.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FdBudget {
    /// The soft `nofile` limit.
    pub total: u64,
    /// Reserved for files and sockets that are not connections ([`FILES_RESERVE`]).
    pub files: u64,
    /// The control API's hard cap (`max_connections` + 1).
    pub api: u64,
    /// The rest, for P2P connections.
    pub p2p: u64,
}

impl FdBudget {
    /// Splits `limit` (the soft `nofile` limit) and lowers `bootstrap`'s
    /// `max_inbound_connections`, then `max_outbound_connections`, until the P2P limits fit
    /// the P2P share. Returns the split and what was lowered.
    ///
    /// # Errors
    /// [`FdError::TooSmall`] when not even one outbound connection fits.
    pub fn plan(
        limit: u64,
        api: &ApiSection,
        bootstrap: &mut BootstrapConfig,
    ) -> Result<(FdBudget, Vec<Lowered>), FdError> {
        let api_fds = api.max_connections as u64 + 1;
        let fixed_p2p = EXTRA_OUTBOUND as u64 + P2P_PENDING_RESERVE;
        let need = FILES_RESERVE + api_fds + fixed_p2p + 1;
        if limit < need {
            return Err(FdError::TooSmall {
                limit,
                need,
                files: FILES_RESERVE,
                api: api_fds,
                p2p: fixed_p2p + 1,
            });
        }
        let budget = FdBudget {
            total: limit,
            files: FILES_RESERVE,
            api: api_fds,
            p2p: limit - FILES_RESERVE - api_fds,
        };
        // Connections the P2P share can hold beyond the fixed part.
        let room = usize::try_from(budget.p2p - fixed_p2p).unwrap_or(usize::MAX);
        let mut lowered = Vec::new();
        let outbound = bootstrap.max_outbound_connections.min(room);
        let inbound = bootstrap.max_inbound_connections.min(room - outbound);
        if inbound != bootstrap.max_inbound_connections {
            lowered.push(Lowered {
                key: "bootstrap.max_inbound_connections",
                from: bootstrap.max_inbound_connections,
                to: inbound,
            });
            bootstrap.max_inbound_connections = inbound;
        }
        if outbound != bootstrap.max_outbound_connections {
            lowered.push(Lowered {
                key: "bootstrap.max_outbound_connections",
                from: bootstrap.max_outbound_connections,
                to: outbound,
            });
            bootstrap.max_outbound_connections = outbound;
        }
        Ok((budget, lowered))
    }
}

/// Descriptors this process has open (entries of `/proc/self/fd`, less the one reading
/// it); `None` where there is no such directory.
pub fn open_fds() -> Option<u64> {
    let n = std::fs::read_dir("/proc/self/fd").ok()?.count() as u64;
    Some(n.saturating_sub(1))
}

/// `dsdn_fd_budget{part="total"|"files"|"api"|"p2p"}`; the descriptors open are the
/// process collector's `process_open_fds` (read at each scrape, beside
/// `process_max_fds`, `process_resident_memory_bytes` and `process_cpu_seconds_total`).
#[derive(Clone)]
pub struct FdMetrics {
    /// The budget's split.
    pub parts: IntGaugeVec,
}

impl FdMetrics {
    /// Registers both families in `registry` and sets the budget.
    ///
    /// # Errors
    /// When a family is registered already.
    pub fn register(registry: &Registry, budget: &FdBudget) -> Result<Self, prometheus::Error> {
        let parts = IntGaugeVec::new(
            Opts::new(
                "dsdn_fd_budget",
                "File descriptors of the nofile limit, by part: total, files, api, p2p",
            ),
            &["part"],
        )?;
        registry.register(Box::new(parts.clone()))?;
        for (part, n) in [
            ("total", budget.total),
            ("files", budget.files),
            ("api", budget.api),
            ("p2p", budget.p2p),
        ] {
            parts
                .with_label_values(&[part])
                .set(i64::try_from(n).unwrap_or(i64::MAX));
        }
        Ok(Self { parts })
    }

    /// Counts the open descriptors (for the near-exhaustion warning).
    pub fn update(&self) -> Option<u64> {
        open_fds()
    }
}

/// Interval of the descriptor count behind the near-exhaustion warning.
pub const FD_COUNT_INTERVAL: std::time::Duration = std::time::Duration::from_secs(10);

/// Raises the soft `nofile` limit, splits it ([`FdBudget::plan`]) and lowers the P2P
/// limits of `seeds` to fit; logs the budget and each lowered key.
///
/// # Errors
/// [`FdError::TooSmall`] when not even one outbound connection fits.
pub fn plan_for(seeds: &mut SeedsConfig) -> Result<Option<FdBudget>, FdError> {
    let limit = match raise_nofile_limit() {
        Ok(l) => l,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read or raise the open-files limit: no descriptor budget");
            return Ok(None);
        }
    };
    let (budget, lowered) = FdBudget::plan(limit.soft, &seeds.api, &mut seeds.bootstrap)?;
    tracing::info!(
        nofile = budget.total,
        nofile_before = limit.before,
        nofile_hard = limit.hard,
        files = budget.files,
        api = budget.api,
        p2p = budget.p2p,
        max_inbound_connections = seeds.bootstrap.max_inbound_connections,
        max_outbound_connections = seeds.bootstrap.max_outbound_connections,
        "file descriptor budget"
    );
    for l in &lowered {
        l.warn(budget.total);
    }
    Ok(Some(budget))
}

/// Counts the open descriptors every 10 s and warns when 90 % of the
/// budget is in use.
pub async fn watch(metrics: FdMetrics, budget: FdBudget) {
    let mut tick = tokio::time::interval(FD_COUNT_INTERVAL);
    loop {
        tick.tick().await;
        let Some(open) = metrics.update() else { return };
        if open.saturating_mul(10) >= budget.total.saturating_mul(9) {
            tracing::warn!(
                open,
                nofile = budget.total,
                "file descriptors nearly exhausted"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_p2p_limits_are_lowered_to_fit_and_named() {
        let api = ApiSection::default();
        let mut b = BootstrapConfig::default();
        let (budget, lowered) = FdBudget::plan(1024, &api, &mut b).expect("fits");
        assert_eq!(
            (budget.files, budget.api, budget.p2p),
            (64, 65, 1024 - 64 - 65)
        );
        assert!(lowered.is_empty(), "the defaults fit 1024: {lowered:?}");
        assert_eq!(b, BootstrapConfig::default());

        // 256: p2p share 127, fixed 36, room 91 = 8 outbound + 83 inbound.
        let (budget, lowered) = FdBudget::plan(256, &api, &mut b).expect("fits");
        assert_eq!(budget.p2p, 127);
        assert_eq!(
            lowered,
            [Lowered {
                key: "bootstrap.max_inbound_connections",
                from: 125,
                to: 83
            }]
        );
        assert_eq!(
            (b.max_inbound_connections, b.max_outbound_connections),
            (83, 8)
        );
        let total = FILES_RESERVE
            + budget.api
            + (b.max_inbound_connections + b.max_outbound_connections + EXTRA_OUTBOUND) as u64
            + P2P_PENDING_RESERVE;
        assert!(total <= 256, "{total}");

        // The least that works: one outbound connection, no inbound.
        let need = FILES_RESERVE + 65 + EXTRA_OUTBOUND as u64 + P2P_PENDING_RESERVE + 1;
        let mut b = BootstrapConfig::default();
        let (_, lowered) = FdBudget::plan(need, &api, &mut b).expect("fits");
        assert_eq!(lowered.len(), 2);
        assert_eq!(
            (b.max_inbound_connections, b.max_outbound_connections),
            (0, 1)
        );
        let err = FdBudget::plan(need - 1, &api, &mut BootstrapConfig::default()).unwrap_err();
        assert!(err.to_string().contains("api.max_connections"), "{err}");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn open_fds_counts_something() {
        assert!(open_fds().is_some_and(|n| n >= 3), "stdio at least");
    }
}
