//! Prometheus metrics of workloads and receipts, registered in the node's registry.

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, Opts, Registry};

/// The workload and receipt metrics.
#[derive(Clone)]
pub struct WorkloadMetrics {
    /// `workload_executions_total{result}`: `Execute` requests this node answered, by
    /// outcome (`ok`, `failed`, `busy`, `self_dealing`, `not_executing`,
    /// `module_unavailable`, `malformed`).
    pub executions: IntCounterVec,
    /// `workload_execution_ms`: wall time of one execution on this node, in milliseconds.
    pub execution_ms: Histogram,
    /// `workload_submissions_total{result}`: submissions this coordinator handled, by outcome
    /// (`ok`, `invalid`, `not_committee`, `no_executor`, `failed`, `signing`, `busy`).
    pub submissions: IntCounterVec,
    /// `receipts_total{result}`: receipts seen (gossip, submissions, the API), by outcome:
    /// threshold receipts `accepted` (and among them `upgraded`: superseding an optimistic
    /// receipt held), optimistic receipts `optimistic` (kept), `superseded` (their
    /// threshold receipt was held), `expired` (arrived after their deadline); both kinds
    /// `duplicate`, `invalid`, `unverifiable` (no group key known).
    pub receipts: IntCounterVec,
    /// `workload_module_cache_bytes`: bytes of modules kept by id.
    pub module_cache_bytes: IntGauge,
    /// `receipt_disputes_total`: double receipts found (two validly signed receipts of one
    /// job, issue 13 §6) and optimistic receipts contradicted by their job's threshold
    /// receipt (issue 13 §5).
    pub disputes: IntCounter,
}

impl WorkloadMetrics {
    /// Creates the metrics and registers them in `registry`.
    ///
    /// # Errors
    /// A name registered twice (a programming error).
    pub fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let executions = IntCounterVec::new(
            Opts::new(
                "workload_executions_total",
                "Execute requests answered by this node, by outcome.",
            ),
            &["result"],
        )?;
        let execution_ms = Histogram::with_opts(
            HistogramOpts::new(
                "workload_execution_ms",
                "Wall time of one workload execution on this node, in milliseconds.",
            )
            .buckets(vec![
                1.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0, 5000.0, 10000.0,
            ]),
        )?;
        let submissions = IntCounterVec::new(
            Opts::new(
                "workload_submissions_total",
                "Workload submissions handled by this coordinator, by outcome.",
            ),
            &["result"],
        )?;
        let receipts = IntCounterVec::new(
            Opts::new(
                "receipts_total",
                "Threshold and optimistic receipts seen, by outcome.",
            ),
            &["result"],
        )?;
        let module_cache_bytes = IntGauge::new(
            "workload_module_cache_bytes",
            "Bytes of WASM modules kept by id.",
        )?;
        registry.register(Box::new(executions.clone()))?;
        registry.register(Box::new(execution_ms.clone()))?;
        registry.register(Box::new(submissions.clone()))?;
        registry.register(Box::new(receipts.clone()))?;
        let disputes = IntCounter::new(
            "receipt_disputes_total",
            "Receipt disputes found: double receipts and challenged optimistic receipts.",
        )?;
        registry.register(Box::new(module_cache_bytes.clone()))?;
        registry.register(Box::new(disputes.clone()))?;
        Ok(WorkloadMetrics {
            executions,
            execution_ms,
            submissions,
            receipts,
            module_cache_bytes,
            disputes,
        })
    }
}
