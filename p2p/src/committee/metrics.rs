//! Prometheus metrics of the committee, registered in the node's registry.

use dsdn_protocols::committee::epoch_driver::{EpochAction, EpochStatus};
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
    /// `committee_epoch`: the epoch of the committee this node seals with or follows
    /// (issue 13 §3).
    pub epoch: IntGauge,
    /// `committee_rotations_total`: epoch rotations this node saw take effect.
    pub rotations: IntCounter,
    /// `committee_rotation_failures_total`: handoff windows that ended in fallback (the
    /// current committee stayed).
    pub rotation_failures: IntCounter,
    /// `committee_dkg_seconds`: duration of the next committee's DKG in a handoff.
    pub dkg_seconds: Histogram,
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
        let epoch = IntGauge::new(
            "committee_epoch",
            "Epoch of the committee this node seals with or follows.",
        )?;
        let rotations = IntCounter::new(
            "committee_rotations_total",
            "Committee epoch rotations this node saw take effect.",
        )?;
        let rotation_failures = IntCounter::new(
            "committee_rotation_failures_total",
            "Handoff windows that ended without a rotation (the committee stayed).",
        )?;
        let dkg_seconds = Histogram::with_opts(
            HistogramOpts::new(
                "committee_dkg_seconds",
                "Duration of the next committee's DKG during a handoff, in seconds.",
            )
            .buckets(vec![0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0]),
        )?;
        registry.register(Box::new(epoch.clone()))?;
        registry.register(Box::new(rotations.clone()))?;
        registry.register(Box::new(rotation_failures.clone()))?;
        registry.register(Box::new(dkg_seconds.clone()))?;
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
            epoch,
            rotations,
            rotation_failures,
            dkg_seconds,
            storage_degraded: IntGauge::new("storage_degraded", "unregistered")?,
            storage_errors: IntCounter::new("storage_write_errors_total", "unregistered")?,
        })
    }

    /// Exports the epoch rotation driver's `status` and the DKG durations among its
    /// `actions` (the counters follow the driver's persisted totals, so they never go
    /// back after a restart that resumed the record).
    pub fn observe_epochs(&self, status: &EpochStatus, actions: &[EpochAction]) {
        self.epoch
            .set(i64::try_from(status.epoch).unwrap_or(i64::MAX));
        self.rotations
            .inc_by(status.rotations.saturating_sub(self.rotations.get()));
        self.rotation_failures
            .inc_by(status.failures.saturating_sub(self.rotation_failures.get()));
        for a in actions {
            if let EpochAction::DkgTook { millis } = a {
                self.dkg_seconds.observe(*millis as f64 / 1000.0);
            }
        }
    }

    /// Uses the node's `storage_degraded{store="committee"}` and
    /// `storage_write_errors_total{store="committee"}` series (issue 14 §2).
    pub fn with_storage(mut self, degraded: IntGauge, errors: IntCounter) -> Self {
        self.storage_degraded = degraded;
        self.storage_errors = errors;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(epoch: u64, rotations: u64, failures: u64) -> EpochStatus {
        EpochStatus {
            epoch,
            phase: "sealing",
            next_epoch_start_ms: 0,
            handoff_opens_ms: 0,
            fallback_reason: None,
            rotations,
            failures,
        }
    }

    #[test]
    fn epoch_metrics_follow_the_driver() {
        let registry = Registry::new();
        let m = CommitteeMetrics::new(&registry).unwrap();
        m.observe_epochs(&status(0, 0, 1), &[EpochAction::DkgTook { millis: 1_500 }]);
        m.observe_epochs(&status(1, 1, 1), &[]);
        m.observe_epochs(&status(1, 1, 1), &[]);
        assert_eq!(m.epoch.get(), 1);
        assert_eq!((m.rotations.get(), m.rotation_failures.get()), (1, 1));
        assert_eq!(m.dkg_seconds.get_sample_count(), 1);
        assert!((m.dkg_seconds.get_sample_sum() - 1.5).abs() < 1e-9);
        let names: Vec<String> = registry
            .gather()
            .iter()
            .map(|f| f.name().to_owned())
            .collect();
        for n in [
            "committee_epoch",
            "committee_rotations_total",
            "committee_rotation_failures_total",
            "committee_dkg_seconds",
        ] {
            assert!(names.iter().any(|x| x == n), "{n} in {names:?}");
        }
    }
}
