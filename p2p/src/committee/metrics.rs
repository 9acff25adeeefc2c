//! Prometheus metrics of the committee, registered in the node's registry.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The committee's metrics.
#[derive(Clone)]
pub struct CommitteeMetrics {
    /// `committee_requests_refused_total{reason}`: inbound committee requests refused
    /// (`not_a_member`, `rate_limited`, `equivocation`, `policy`, `other`).
    pub refused: IntCounterVec,
    /// `committee_signatures_total{result}`: threshold signing rounds this node proposed,
    /// by outcome (`ok`, `below_threshold`, `invalid_share`, `equivocation`, `error`).
    pub signatures: IntCounterVec,
    /// `committee_sign_latency_ms`: time from `threshold_sign` to the aggregate signature.
    pub sign_latency_ms: Histogram,
    /// `committee_dkg_total{result}`: DKG ceremonies this node took part in, by outcome
    /// (`ok`, `failed`).
    pub dkg: IntCounterVec,
    /// `storage_degraded{store="committee"}`: 1 while the signing guard cannot be written
    /// (the member signs nothing meanwhile). Unregistered until
    /// [`CommitteeMetrics::with_storage`] hands the node's series.
    pub storage_degraded: IntGauge,
    /// `storage_write_errors_total{store="committee"}`: failed guard writes.
    pub storage_errors: IntCounter,
    /// `da_rotation_height`: the DA height this member's proposer rotation decides.
    pub rotation_height: IntGauge,
    /// `da_rotation_round`: this member's round at that height.
    pub rotation_round: IntGauge,
    /// `da_rotation_rounds_total{outcome}`: rounds this member left, by outcome: `sealed`
    /// (it aggregated the blob as proposer), `timeout` (it moved on by its timer),
    /// `failed` (a round it proposed was abandoned, e.g. an invalid share).
    pub rotation_rounds: IntCounterVec,
}

impl CommitteeMetrics {
    /// Creates the metrics and registers them in `registry`.
    ///
    /// # Errors
    /// A name registered twice (a programming error).
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let refused = IntCounterVec::new(
            Opts::new(
                "committee_requests_refused_total",
                "Inbound committee requests refused, by reason.",
            ),
            &["reason"],
        )?;
        let signatures = IntCounterVec::new(
            Opts::new(
                "committee_signatures_total",
                "Threshold signing rounds proposed by this node, by outcome.",
            ),
            &["result"],
        )?;
        let sign_latency_ms = Histogram::with_opts(
            HistogramOpts::new(
                "committee_sign_latency_ms",
                "Threshold signing latency (proposer side), in milliseconds.",
            )
            .buckets(vec![
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
            ]),
        )?;
        let dkg = IntCounterVec::new(
            Opts::new(
                "committee_dkg_total",
                "DKG ceremonies this node took part in, by outcome.",
            ),
            &["result"],
        )?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(signatures.clone()))?;
        registry.register(Box::new(sign_latency_ms.clone()))?;
        registry.register(Box::new(dkg.clone()))?;
        let rotation_height = IntGauge::new(
            "da_rotation_height",
            "DA height this member's proposer rotation decides.",
        )?;
        let rotation_round = IntGauge::new(
            "da_rotation_round",
            "This member's proposer rotation round at its DA height.",
        )?;
        let rotation_rounds = IntCounterVec::new(
            Opts::new(
                "da_rotation_rounds_total",
                "DA proposer rotation rounds this member left, by outcome.",
            ),
            &["outcome"],
        )?;
        registry.register(Box::new(rotation_height.clone()))?;
        registry.register(Box::new(rotation_round.clone()))?;
        registry.register(Box::new(rotation_rounds.clone()))?;
        for outcome in ["sealed", "timeout", "failed"] {
            rotation_rounds.with_label_values(&[outcome]);
        }
        for reason in ["not_a_member", "rate_limited", "equivocation", "policy"] {
            refused.with_label_values(&[reason]);
        }
        Ok(Self {
            refused,
            signatures,
            sign_latency_ms,
            dkg,
            rotation_height,
            rotation_round,
            rotation_rounds,
            storage_degraded: IntGauge::new("storage_degraded", "unregistered")?,
            storage_errors: IntCounter::new("storage_write_errors_total", "unregistered")?,
        })
    }

    /// Uses the node's `storage_degraded{store="committee"}` and
    /// `storage_write_errors_total{store="committee"}` series (issue 14 §2).
    pub fn with_storage(mut self, degraded: IntGauge, errors: IntCounter) -> Self {
        self.storage_degraded = degraded;
        self.storage_errors = errors;
        self
    }
}
