//! The degraded stores of the node (issue 14 §2) for the status and the metrics.

use std::time::Instant;

use super::EventLoop;
use crate::storage::{StorageIssue, Store};

impl EventLoop {
    /// Every store whose writes fail now: the DA log, peers.dat, the committee files.
    pub(super) fn degraded_stores(&self) -> Vec<StorageIssue> {
        let now = Instant::now();
        let mut out: Vec<StorageIssue> = Vec::new();
        out.extend(self.da.service.storage_issue(now));
        let w = self.store.writer_status();
        if let Some(error) = w.last_error {
            out.push(StorageIssue {
                store: Store::Peers.as_str().to_owned(),
                error,
                degraded_secs: self
                    .peers_degraded_since
                    .map_or(0, |t| now.saturating_duration_since(t).as_secs()),
                failures: w.failures.saturating_sub(self.peers_failures_before),
                // peers.dat's writer thread keeps its own backoff (100 ms to 30 s).
                next_retry_ms: None,
            });
        }
        if let Some(c) = &self.committee {
            out.extend(c.storage_issue(now));
        }
        out
    }

    /// Follows peers.dat's writer (its thread logs the error once and the recovery once):
    /// `storage_degraded{store="peers"}` and `storage_write_errors_total{store="peers"}`.
    pub(super) fn export_peers_health(&mut self, degraded: bool, failures: u64) {
        let label = [Store::Peers.as_str()];
        let errors = self.metrics.storage_write_errors.with_label_values(&label);
        errors.inc_by(failures.saturating_sub(errors.get()));
        self.metrics
            .storage_degraded
            .with_label_values(&label)
            .set(i64::from(degraded));
        match (degraded, self.peers_degraded_since) {
            (true, None) => {
                self.peers_degraded_since = Some(Instant::now());
                self.peers_failures_before = self.peers_last_failures;
            }
            (false, Some(_)) => self.peers_degraded_since = None,
            _ => {}
        }
        self.peers_last_failures = failures;
    }
}
