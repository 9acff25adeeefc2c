//! Prometheus metrics of the peer-to-peer layer (28.1.C §8).
//!
//! Names are exactly the spec's (`bootstrap_dns_resolve_total`,
//! `bootstrap_dns_resolve_success`, …): the `prometheus` crate is used because it keeps a
//! counter's name as given instead of appending `_total`.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder,
};

/// All metrics of a node, registered in one [`Registry`].
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `bootstrap_dns_resolve_total`: DNS seed resolutions attempted.
    pub dns_resolve_total: IntCounter,
    /// `bootstrap_dns_resolve_success`: DNS seed resolutions that returned at least one IP.
    pub dns_resolve_success: IntCounter,
    /// `bootstrap_dns_resolve_latency_ms`: time per DNS seed resolution, in milliseconds.
    pub dns_resolve_latency_ms: Histogram,
    /// `bootstrap_peer_connect_total`: outbound connection attempts.
    pub peer_connect_total: IntCounter,
    /// `bootstrap_peer_connect_success`: outbound attempts that ended in a verified handshake.
    pub peer_connect_success: IntCounter,
    /// `bootstrap_peer_handshake_failure{reason}`: refused or failed handshakes.
    pub handshake_failure: IntCounterVec,
    /// `bootstrap_peers_dat_size`: entries in peers.dat.
    pub peers_dat_size: IntGauge,
    /// `bootstrap_active_peers`: peers connected with a verified handshake.
    pub active_peers: IntGauge,
    /// `bootstrap_pex_requests_total{direction="sent"|"received"}`: PEX requests.
    pub pex_requests_total: IntCounterVec,
    /// `bootstrap_fallback_triggered`: moves from one bootstrap source to the next.
    pub fallback_triggered: IntCounter,
    /// `bootstrap_isolated`: 1 while every bootstrap source failed and no peer is connected.
    pub isolated: IntGauge,
    /// `da_events_accepted_total`: DA events accepted and applied in order.
    pub da_events_accepted: IntCounter,
    /// `da_envelopes_rejected_total{reason}`: DA envelopes refused by validation.
    pub da_envelopes_rejected: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Errors
    /// Only if two metrics were given the same name (a programming error).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter_vec =
            |name: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let dns_resolve_latency_ms = Histogram::with_opts(
            HistogramOpts::new(
                "bootstrap_dns_resolve_latency_ms",
                "Latency of DNS seed resolutions, in milliseconds.",
            )
            .buckets(vec![
                1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
            ]),
        )?;
        registry.register(Box::new(dns_resolve_latency_ms.clone()))?;
        let m = Metrics {
            dns_resolve_total: counter(
                "bootstrap_dns_resolve_total",
                "DNS seed resolutions attempted.",
            )?,
            dns_resolve_success: counter(
                "bootstrap_dns_resolve_success",
                "DNS seed resolutions that returned at least one address.",
            )?,
            dns_resolve_latency_ms,
            peer_connect_total: counter(
                "bootstrap_peer_connect_total",
                "Outbound peer connection attempts.",
            )?,
            peer_connect_success: counter(
                "bootstrap_peer_connect_success",
                "Outbound connection attempts that ended in a verified handshake.",
            )?,
            handshake_failure: counter_vec(
                "bootstrap_peer_handshake_failure",
                "Failed or refused handshakes, by reason.",
                "reason",
            )?,
            peers_dat_size: gauge("bootstrap_peers_dat_size", "Entries in peers.dat.")?,
            active_peers: gauge(
                "bootstrap_active_peers",
                "Peers connected with a verified handshake.",
            )?,
            pex_requests_total: counter_vec(
                "bootstrap_pex_requests_total",
                "PEX requests sent and received.",
                "direction",
            )?,
            fallback_triggered: counter(
                "bootstrap_fallback_triggered",
                "Moves from one bootstrap source to the next because a source yielded no peer.",
            )?,
            isolated: gauge(
                "bootstrap_isolated",
                "1 while every bootstrap source failed and no peer is connected.",
            )?,
            da_events_accepted: counter(
                "da_events_accepted_total",
                "DA events accepted and applied in order.",
            )?,
            da_envelopes_rejected: counter_vec(
                "da_envelopes_rejected_total",
                "DA envelopes refused by validation, by reason.",
                "reason",
            )?,
            registry,
        };
        // Make the labelled series visible at zero before the first event.
        for dir in ["sent", "received"] {
            m.pex_requests_total.with_label_values(&[dir]);
        }
        Ok(m)
    }

    /// The registry, for callers that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_names_are_exposed() {
        let m = Metrics::new().unwrap();
        m.dns_resolve_success.inc();
        m.handshake_failure
            .with_label_values(&["network_mismatch"])
            .inc();
        let text = m.encode();
        for name in [
            "bootstrap_dns_resolve_total 0",
            "bootstrap_dns_resolve_success 1",
            "bootstrap_peer_connect_total 0",
            "bootstrap_peer_connect_success 0",
            "bootstrap_peer_handshake_failure{reason=\"network_mismatch\"} 1",
            "bootstrap_peers_dat_size 0",
            "bootstrap_active_peers 0",
            "bootstrap_pex_requests_total{direction=\"sent\"} 0",
            "bootstrap_fallback_triggered 0",
        ] {
            assert!(text.contains(name), "missing {name} in\n{text}");
        }
    }
}
