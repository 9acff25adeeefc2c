//! DNS seed resolution (28.1.A deliverable 3, 28.1.B §1): an async, timeout-bounded,
//! error-tolerant A + AAAA lookup of one [`DnsSeed`].
//!
//! ```text
//! seed1.dsdn.network -> A + AAAA -> [203.0.113.50, 2001:db8::1, ...] -> dedup -> shuffle
//! ```
//!
//! Caching is disabled (seed answers must be fresh on every bootstrap run) and every lookup
//! is bounded by the configured timeout: one retry at most inside the resolver, and a
//! `tokio::time::timeout` around the whole call.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::net::NetError;
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use hickory_resolver::TokioResolver;
use rand::seq::SliceRandom;

use crate::config::DnsSeed;

/// Shortest per-query timeout handed to the resolver.
const MIN_QUERY_TIMEOUT: Duration = Duration::from_millis(50);

/// Why a DNS seed yielded no address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolveError {
    /// The name does not exist (NXDOMAIN) or has neither A nor AAAA records.
    #[error("no A or AAAA records")]
    NoRecords,
    /// No answer within the resolve timeout.
    #[error("timed out")]
    Timeout,
    /// Any other failure (server failure, refused, network error), with its description.
    #[error("lookup failed: {0}")]
    Failed(String),
}

/// The resolver could not be built (e.g. no usable system resolver configuration).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot set up the DNS resolver: {0}")]
pub struct ResolverInitError(pub String);

/// The addresses of one DNS seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// IPv4 and IPv6 addresses, without duplicates, in random order; never empty.
    pub ips: Vec<IpAddr>,
    /// Wall time of the lookup (for `bootstrap_dns_resolve_latency_ms`).
    pub elapsed: Duration,
}

/// Resolves DNS seeds to IP addresses. Cheap to clone (clones share connections).
#[derive(Clone)]
pub struct SeedResolver {
    resolver: TokioResolver,
    timeout: Duration,
}

impl std::fmt::Debug for SeedResolver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SeedResolver")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl SeedResolver {
    /// A resolver asking `name_servers` (each over UDP, falling back to TCP for truncated
    /// answers) or, when the list is empty, the name servers of the system configuration
    /// (`/etc/resolv.conf`; the hosts file is honoured too). `timeout` bounds each
    /// [`SeedResolver::resolve`] call (`bootstrap.dns_resolve_timeout_secs`).
    ///
    /// # Errors
    /// [`ResolverInitError`] when the system configuration cannot be read or the resolver
    /// cannot be built.
    pub fn new(name_servers: &[SocketAddr], timeout: Duration) -> Result<Self, ResolverInitError> {
        let provider = TokioRuntimeProvider::default();
        let mut builder = if name_servers.is_empty() {
            TokioResolver::builder(provider).map_err(|e| ResolverInitError(e.to_string()))?
        } else {
            let servers = name_servers
                .iter()
                .map(|addr| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = addr.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = addr.port();
                    NameServerConfig::new(addr.ip(), true, vec![udp, tcp])
                })
                .collect();
            let mut builder = TokioResolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                provider,
            );
            builder.options_mut().use_hosts_file = ResolveHosts::Never;
            builder
        };
        tune(builder.options_mut(), timeout);
        let resolver = builder
            .build()
            .map_err(|e| ResolverInitError(e.to_string()))?;
        Ok(Self { resolver, timeout })
    }

    /// The bound on one [`SeedResolver::resolve`] call.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Looks up the A and AAAA records of `seed` concurrently and returns the addresses,
    /// de-duplicated and shuffled. One family failing is fine when the other answers.
    ///
    /// # Errors
    /// When no address results: [`ResolveError::NoRecords`] if both lookups found nothing,
    /// [`ResolveError::Timeout`] if the call hit the timeout or a lookup timed out, otherwise
    /// [`ResolveError::Failed`].
    pub async fn resolve(&self, seed: &DnsSeed) -> Result<Resolved, ResolveError> {
        let start = Instant::now();
        // A fully qualified name: no search-domain expansion.
        let name = Name::from_ascii(format!("{}.", seed.as_str()))
            .map_err(|e| ResolveError::Failed(format!("invalid name {seed}: {e}")))?;
        let lookups = async {
            tokio::join!(
                self.lookup(name.clone(), RecordType::A),
                self.lookup(name.clone(), RecordType::AAAA)
            )
        };
        let (v4, v6) = tokio::time::timeout(self.timeout, lookups)
            .await
            .map_err(|_| ResolveError::Timeout)?;
        let elapsed = start.elapsed();

        let mut seen = HashSet::new();
        let mut ips: Vec<IpAddr> = v4
            .iter()
            .chain(v6.iter())
            .flatten()
            .copied()
            .filter(|ip| seen.insert(*ip))
            .collect();
        if ips.is_empty() {
            let err = combine(v4.err(), v6.err());
            tracing::debug!(%seed, error = %err, "DNS seed resolved to nothing");
            return Err(err);
        }
        ips.shuffle(&mut rand::rng());
        tracing::debug!(%seed, count = ips.len(), ?elapsed, "DNS seed resolved");
        Ok(Resolved { ips, elapsed })
    }

    /// The addresses of one record type.
    async fn lookup(&self, name: Name, rtype: RecordType) -> Result<Vec<IpAddr>, ResolveError> {
        let lookup = self.resolver.lookup(name, rtype).await.map_err(classify)?;
        let ips: Vec<IpAddr> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::A(a) => Some(IpAddr::V4(a.0)),
                RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                _ => None,
            })
            .collect();
        if ips.is_empty() {
            return Err(ResolveError::NoRecords);
        }
        Ok(ips)
    }
}

/// Resolver options for seed lookups: no caching, bounded retries.
fn tune(opts: &mut ResolverOpts, timeout: Duration) {
    // Two tries (one retry) must fit in the overall timeout.
    opts.timeout = (timeout / 2).max(MIN_QUERY_TIMEOUT);
    opts.attempts = 1;
    opts.cache_size = 0;
    opts.positive_max_ttl = Some(Duration::ZERO);
    opts.negative_max_ttl = Some(Duration::ZERO);
    opts.try_tcp_on_error = true;
    opts.preserve_intermediates = true;
}

fn classify(err: NetError) -> ResolveError {
    if err.is_no_records_found() {
        return ResolveError::NoRecords;
    }
    match err {
        NetError::Timeout => ResolveError::Timeout,
        NetError::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => ResolveError::Timeout,
        other => ResolveError::Failed(other.to_string()),
    }
}

/// The error of a lookup in which neither family produced an address.
fn combine(v4: Option<ResolveError>, v6: Option<ResolveError>) -> ResolveError {
    use ResolveError::{Failed, NoRecords, Timeout};
    match (v4, v6) {
        (Some(Failed(a)), Some(Failed(b))) if a == b => Failed(a),
        (Some(Failed(a)), Some(Failed(b))) => Failed(format!("A: {a}; AAAA: {b}")),
        (Some(Failed(a)), _) | (_, Some(Failed(a))) => Failed(a),
        (Some(Timeout), _) | (_, Some(Timeout)) => Timeout,
        _ => NoRecords,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_combination() {
        use ResolveError::*;
        assert_eq!(combine(Some(NoRecords), Some(NoRecords)), NoRecords);
        assert_eq!(combine(Some(NoRecords), Some(Timeout)), Timeout);
        assert_eq!(
            combine(Some(Failed("x".into())), Some(NoRecords)),
            Failed("x".into())
        );
        assert_eq!(
            combine(Some(Failed("x".into())), Some(Failed("y".into()))),
            Failed("A: x; AAAA: y".into())
        );
        assert_eq!(combine(None, None), NoRecords);
    }
}
