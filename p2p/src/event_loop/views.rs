//! What the event loop reports: `status`, the peer list, and rate-limited logs of
//! listener errors.

use std::time::{Duration, Instant};

use super::*;

/// Least time between two logs of a repeating error.
const LOG_EVERY: Duration = Duration::from_secs(10);

/// Logs a repeating error at most every [`LOG_EVERY`], with the number of repeats left out.
#[derive(Debug, Default)]
pub(super) struct LogLimit {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    /// An occurrence at `now`: `Some(repeats left out since the last log)` when it is to be
    /// logged.
    fn hit(&mut self, now: Instant) -> Option<u64> {
        if self
            .last
            .is_some_and(|t| now.saturating_duration_since(t) < LOG_EVERY)
        {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

impl EventLoop {
    /// A listener error (an `accept` failing, e.g. with `Too many open files`): logged at
    /// most every 10 s, with the count of those left out.
    pub(super) fn on_listener_error(&mut self, error: &std::io::Error) {
        if let Some(suppressed) = self.listener_errors.hit(Instant::now()) {
            tracing::error!(%error, suppressed, "listener error");
        }
    }

    pub(super) fn status(&self) -> NodeStatus {
        let pm = &self.swarm.behaviour().peer_manager;
        let stats = self.store.stats(unix_now());
        let mut warnings = Vec::new();
        warnings.extend(crate::net::peer_manager::banned_majority_warning(
            stats.banned,
            stats.entries,
        ));
        warnings.extend(self.identity_clash_warning());
        warnings.extend(self.authority_warning());
        warnings.extend(self.da.service.fork_warning());
        NodeStatus {
            banned_peers: stats.banned,
            warnings,
            peer_id: *self.swarm.local_peer_id(),
            listen_addrs: self.swarm.listeners().cloned().collect(),
            connected_peers: pm.connected().len(),
            known_peers: self.store.len(),
            bootstrap_stage: pm.stage(),
            isolated: pm.is_isolated(),
            partitioned: pm.is_partitioned(),
            is_da_authority: self.da.service.is_authority(),
            da_authority: self.da.service.authority(),
            registration: self.da.registrar.as_ref().map(Registrar::view),
            nat: self
                .swarm
                .behaviour()
                .nat
                .view(self.swarm.external_addresses().cloned()),
            uptime: self.started.elapsed(),
            degraded_stores: self.degraded_stores(),
        }
    }

    pub(super) fn peer_views(&self) -> Vec<PeerView> {
        let now = unix_now();
        let instant = Instant::now();
        let connected = self.swarm.behaviour().peer_manager.connected();
        let mut out: Vec<PeerView> = self
            .store
            .all()
            .unwrap_or_default()
            .into_iter()
            .map(|r| PeerView {
                connection: self.connections.get(&r.peer_id, instant),
                traffic: self.traffic.get(&r.peer_id),
                peer_id: r.peer_id,
                connected_outbound: connected.get(&r.peer_id).map(|p| p.outbound),
                score: score(&r, now),
                netgroup: r
                    .addrs
                    .first()
                    .and_then(dsdn_peers::netgroup_of)
                    .map(|g| g.to_string()),
                suspicious: r.is_suspicious(),
                banned_until: r.banned_until.filter(|_| r.is_banned(now)),
                ban_reason: r.ban_cause.as_ref().filter(|_| r.is_banned(now)).map(|c| {
                    match c.config {
                        Some(_) => format!("{} [config]", c.reason),
                        None => c.reason.clone(),
                    }
                }),
                addrs: r.addrs,
                services: r.services,
                source: r.source,
                last_seen: Some(r.last_seen),
                last_success: r.last_success,
                success_count: r.success_count,
                failure_count: r.failure_count,
            })
            .collect();
        for (peer, p) in connected {
            if !out.iter().any(|v| v.peer_id == *peer) {
                out.push(PeerView {
                    connection: self.connections.get(peer, instant),
                    traffic: self.traffic.get(peer),
                    peer_id: *peer,
                    addrs: p.listen_addrs.clone(),
                    services: p.services,
                    source: p.source,
                    connected_outbound: Some(p.outbound),
                    last_seen: None,
                    last_success: None,
                    success_count: 0,
                    failure_count: 0,
                    score: 0,
                    netgroup: p
                        .listen_addrs
                        .first()
                        .and_then(dsdn_peers::netgroup_of)
                        .map(|g| g.to_string()),
                    suspicious: false,
                    banned_until: None,
                    ban_reason: None,
                });
            }
        }
        out.sort_by(|a, b| {
            b.connected_outbound
                .is_some()
                .cmp(&a.connected_outbound.is_some())
                .then(b.score.cmp(&a.score))
        });
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeating_error_is_logged_every_ten_seconds_with_its_count() {
        let t = Instant::now();
        let mut l = LogLimit::default();
        assert_eq!(l.hit(t), Some(0));
        for i in 1..100 {
            assert_eq!(l.hit(t + Duration::from_millis(i * 50)), None);
        }
        assert_eq!(l.hit(t + LOG_EVERY), Some(99));
        assert_eq!(l.hit(t + LOG_EVERY * 3), Some(0));
    }
}
