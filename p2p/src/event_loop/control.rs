//! The peer-management commands of the control API (28.1.C §7): stats, add, add-seed,
//! reset, ban, unban.

use std::collections::BTreeMap;
use std::time::Duration;

use dsdn_bootstrap::config::{DnsSeed, StaticPeer};
use libp2p::PeerId;

use super::EventLoop;
use crate::handle::{ControlError, PeerStatsView, ResetReport};
use crate::net::peer_manager::unix_now;

fn store_err(e: impl std::fmt::Display) -> ControlError {
    ControlError::Store(e.to_string())
}

fn bump(map: &mut BTreeMap<String, usize>, key: impl Into<String>) {
    *map.entry(key.into()).or_default() += 1;
}

impl EventLoop {
    pub(super) fn peer_stats(&self) -> PeerStatsView {
        let st = self.store.stats(unix_now());
        let mut v = PeerStatsView {
            entries: st.entries,
            by_source: st
                .by_source
                .iter()
                .map(|(k, n)| (k.as_str().to_owned(), *n))
                .collect(),
            by_service: st
                .by_service
                .iter()
                .map(|(k, n)| (k.as_str().to_owned(), *n))
                .collect(),
            by_netgroup: st
                .by_netgroup
                .iter()
                .map(|(k, n)| (k.to_string(), *n))
                .collect(),
            tried: st.tried,
            suspicious: st.suspicious,
            banned: st.banned,
            success_count: st.success_count,
            failure_count: st.failure_count,
            ..PeerStatsView::default()
        };
        let pm = &self.swarm.behaviour().peer_manager;
        for p in pm.connected().values() {
            v.connected += 1;
            if p.outbound {
                v.outbound += 1;
            } else {
                v.inbound += 1;
            }
            for name in p.services.names() {
                bump(&mut v.connected_by_service, name);
            }
            bump(&mut v.connected_by_source, p.source.as_str());
        }
        v.single_source = pm.single_source();
        v.partitioned = pm.is_partitioned();
        v.static_peers = pm.static_peers().iter().map(ToString::to_string).collect();
        v.dns_seeds = pm.dns_seeds().iter().map(ToString::to_string).collect();
        v.with_success_rate()
    }

    pub(super) fn add_peer(&mut self, peer: StaticPeer) -> Result<(), ControlError> {
        self.swarm
            .behaviour_mut()
            .peer_manager
            .add_static_peer(peer)
    }

    pub(super) fn add_seed(&mut self, seed: DnsSeed) -> Result<(), ControlError> {
        self.swarm.behaviour_mut().peer_manager.add_dns_seed(seed)
    }

    pub(super) fn reset_peers(&mut self) -> Result<ResetReport, ControlError> {
        let removed = self.store.len();
        self.store.clear().map_err(store_err)?;
        let peers: Vec<PeerId> = self.swarm.connected_peers().copied().collect();
        let disconnected = peers.len();
        for p in peers {
            let _ = self.swarm.disconnect_peer_id(p);
        }
        self.swarm.behaviour_mut().peer_manager.rebootstrap();
        tracing::warn!(
            removed,
            disconnected,
            "peers.dat reset by the operator; bootstrapping again from the seeds"
        );
        Ok(ResetReport {
            removed,
            disconnected,
        })
    }

    pub(super) fn ban(
        &mut self,
        peer: PeerId,
        duration: Option<Duration>,
    ) -> Result<u64, ControlError> {
        if peer == *self.swarm.local_peer_id() {
            return Err(ControlError::OwnPeer);
        }
        let duration =
            duration.unwrap_or_else(|| self.swarm.behaviour().peer_manager.ban_duration());
        let now = unix_now();
        let until = now.saturating_add(duration.as_secs().max(1));
        self.store
            .ban(
                &peer,
                until,
                now,
                dsdn_peers::BanCause::new("operator", None),
            )
            .map_err(store_err)?;
        let _ = self.swarm.disconnect_peer_id(peer);
        tracing::warn!(%peer, until, "peer banned by the operator");
        Ok(until)
    }

    pub(super) fn unban(&mut self, peer: PeerId) -> Result<bool, ControlError> {
        let had = self.store.unban(&peer).map_err(store_err)?;
        self.swarm.behaviour_mut().peer_manager.forgive(Some(peer));
        if had {
            tracing::info!(%peer, "ban lifted by the operator");
        }
        Ok(had)
    }

    pub(super) fn unban_all(&mut self) -> Result<usize, ControlError> {
        let n = self.store.unban_all().map_err(store_err)?;
        self.swarm.behaviour_mut().peer_manager.forgive(None);
        tracing::info!(lifted = n, "every ban lifted by the operator");
        if n > 0 {
            // The peers just trusted again may be what an isolated node lacked.
            self.swarm.behaviour_mut().peer_manager.rebootstrap();
        }
        Ok(n)
    }
}
