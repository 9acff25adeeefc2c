//! The event loop's one-second housekeeping: the peer gauges, the discovery role check,
//! the DA and identity polls, and the address-book health gauges (28.1.C §8).

use std::time::Instant;

use dsdn_protocols::{PeerSource, ServiceType};

use super::EventLoop;
use crate::net::peer_manager::unix_now;

/// Netgroups exported one by one in `bootstrap_peers_dat_entries_by_netgroup`.
const TOP_NETGROUPS: usize = 16;

impl EventLoop {
    /// Once a second: gauges, the discovery role check, the DA and identity polls.
    pub(super) fn housekeeping(&mut self) {
        self.metrics.peers_dat_size.set(self.store.len() as i64);
        let connected = self.swarm.behaviour().peer_manager.connected();
        self.metrics.active_peers.set(connected.len() as i64);
        for service in ServiceType::ALL {
            let n = connected
                .values()
                .filter(|p| p.services.contains(service))
                .count();
            self.metrics
                .active_peers_by_type
                .with_label_values(&[service.as_str()])
                .set(n as i64);
        }
        let b = self.swarm.behaviour_mut();
        let pm = &b.peer_manager;
        b.discovery.check_roles(
            |service| {
                pm.connected()
                    .values()
                    .filter(|p| p.services.contains(service))
                    .count()
            },
            Instant::now(),
        );
        self.da_poll();
        self.identity_poll();
        // The store's in-memory index makes this one pass over at most 10,000 entries
        // (about 2 ms for a full peers.dat, see peers_bench).
        self.export_store_stats();
    }

    /// Exports the address-book health gauges (28.1.C §8) from the store's in-memory index.
    fn export_store_stats(&mut self) {
        let st = self.store.stats(unix_now());
        let w = self.store.writer_status();
        let m = &self.metrics;
        let unwritten = if w.rewrite_pending {
            st.entries
        } else {
            w.unwritten
        };
        m.peers_dat_unwritten.set(unwritten as i64);
        m.peers_dat_commits
            .inc_by(w.commits.saturating_sub(m.peers_dat_commits.get()));
        m.peers_dat_write_failures
            .inc_by(w.failures.saturating_sub(m.peers_dat_write_failures.get()));
        m.peers_dat_write_degraded
            .set(i64::from(w.last_error.is_some()));
        self.export_peers_health(w.last_error.is_some(), w.failures);
        let m = &self.metrics;
        for source in PeerSource::ALL {
            let n = st.by_source.get(&source).copied().unwrap_or(0);
            m.peers_dat_by_source
                .with_label_values(&[source.as_str()])
                .set(n as i64);
        }
        let mut groups: Vec<(String, usize)> = st
            .by_netgroup
            .iter()
            .map(|(g, n)| (g.to_string(), *n))
            .collect();
        groups.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        m.peers_dat_by_netgroup.reset();
        let other: usize = groups.iter().skip(TOP_NETGROUPS).map(|(_, n)| n).sum();
        for (g, n) in groups.iter().take(TOP_NETGROUPS) {
            m.peers_dat_by_netgroup
                .with_label_values(&[g])
                .set(*n as i64);
        }
        if other > 0 {
            m.peers_dat_by_netgroup
                .with_label_values(&["other"])
                .set(other as i64);
        }
        m.peers_dat_netgroups.set(st.by_netgroup.len() as i64);
        m.peers_dat_tried.set(st.tried as i64);
        m.peers_dat_suspicious.set(st.suspicious as i64);
        m.peers_dat_banned.set(st.banned as i64);
    }
}
