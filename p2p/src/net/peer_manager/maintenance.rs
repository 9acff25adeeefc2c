//! Long-running upkeep: partition recovery (28.1.C §4), rotation and refresh (28.1.B §6),
//! and the eclipse warning with its diversity dial (28.1.C §6).

use std::time::Instant;

use dsdn_bootstrap::recovery::RecoveryEvent;
use dsdn_bootstrap::rotation::{Rotation, FEELERS_PER_ROUND};
use dsdn_protocols::PeerSource;
use libp2p::swarm::ToSwarm;
use libp2p::PeerId;
use rand::seq::IndexedRandom;

use super::{unix_now, DialKind, DnsPurpose, PeerManager, PeerManagerEvent};

impl PeerManager {
    /// Runs partition detection and recovery: below `min_peers` connected peers, a sweep
    /// resolves every DNS seed and dials every static peer and the best cached peers; the
    /// sweeps back off exponentially while the node stays below; above, the state resets.
    /// The partition *alarm* (CRITICAL log, `bootstrap_partitioned`, `status.partitioned`)
    /// is raised only while the node also has fewer peers than it could reach (issue 15 §7,
    /// [`dsdn_bootstrap::recovery::PartitionRecovery::alarm`]): a network smaller than
    /// `min_peers` only makes the node look for more.
    pub(super) fn drive_recovery(&mut self, now: Instant) {
        let connected = self.verified.len();
        let reachable = self.store.tried_unbanned(unix_now()).max(connected);
        self.recovery.set_reachable(reachable);
        if let Some(deadline) = self.sweep_deadline {
            // A sweep is settled at its deadline, or as soon as enough peers are connected.
            if now < deadline && connected < self.cfg.min_peers {
                self.report_partition(connected, reachable);
                return;
            }
            self.sweep_deadline = None;
            self.recovery.on_sweep_done(now, connected);
            if self.recovery.alarm(connected) && self.partition_alarm {
                tracing::error!(
                    connected,
                    reachable,
                    min_peers = self.cfg.min_peers,
                    failed_sweeps = self.recovery.consecutive_failed_sweeps(),
                    "CRITICAL: network partition persists after a recovery sweep; retrying with \
                     exponential backoff"
                );
            }
        }
        match self.recovery.poll(now, connected) {
            Some(RecoveryEvent::Sweep { attempt }) => {
                if attempt <= 1 && !self.recovery.alarm(connected) {
                    tracing::info!(
                        connected,
                        min_peers = self.cfg.min_peers,
                        "fewer connected peers than min_peers, but connected to every peer this \
                         node reached before: resolving every DNS seed and asking for more"
                    );
                }
                self.sweep(now);
            }
            Some(RecoveryEvent::Recovered { sweeps, since }) => {
                tracing::info!(
                    connected,
                    sweeps,
                    after_secs = now.duration_since(since).as_secs(),
                    "min_peers reached again"
                );
            }
            None => {}
        }
        self.report_partition(connected, reachable);
    }

    /// Raises or clears the partition alarm (one log line at each change) and exports it.
    fn report_partition(&mut self, connected: usize, reachable: usize) {
        let alarm = self.recovery.alarm(connected);
        if alarm && !self.partition_alarm {
            tracing::error!(
                connected,
                reachable,
                min_peers = self.cfg.min_peers,
                "CRITICAL: network partition suspected: fewer connected peers than min_peers \
                 and than the peers this node reached before; resolving every DNS seed and \
                 retrying every cached and static peer"
            );
        } else if !alarm && self.partition_alarm {
            tracing::info!(connected, "partition recovered");
        }
        self.partition_alarm = alarm;
        self.metrics.partitioned.set(i64::from(alarm));
    }

    /// One recovery sweep: every DNS seed, every static peer, the best cached peers.
    pub(super) fn sweep(&mut self, now: Instant) {
        self.metrics.partition_recovery.inc();
        self.contact_every_seed();
        let slots = self.free_outbound_slots();
        for rec in self.outbound_candidates(slots) {
            self.dial_record(&rec, DialKind::Outbound, false);
        }
        self.sweep_deadline =
            Some(now + self.cfg.dns_resolve_timeout + self.cfg.peer_connect_timeout * 2);
    }

    /// Resolves every DNS seed (their addresses dialled as outbound peers while slots are
    /// free) and dials every static peer.
    pub(super) fn contact_every_seed(&mut self) {
        for seed in self.cfg.dns_seeds.clone() {
            self.resolve(seed, DnsPurpose::Sweep);
        }
        for peer in self.cfg.static_peers.clone() {
            self.dial_static(&peer, false);
        }
    }

    /// Runs the periodic refresh of 28.1.B §6.
    pub(super) fn drive_rotation(&mut self, now: Instant) {
        for r in self.rotation.poll(now) {
            match r {
                Rotation::ResolveRandomSeed => {
                    let seed = self.cfg.dns_seeds.choose(&mut rand::rng()).cloned();
                    if let Some(seed) = seed {
                        self.resolve(seed, DnsPurpose::Refresh);
                    }
                }
                Rotation::PexRandomPeer => {
                    let peers: Vec<PeerId> = self
                        .verified
                        .iter()
                        .filter(|(_, p)| !p.feeler)
                        .map(|(id, _)| *id)
                        .collect();
                    if let Some(peer) = peers.choose(&mut rand::rng()) {
                        self.events.push_back(ToSwarm::GenerateEvent(
                            PeerManagerEvent::RequestPex { peer: *peer },
                        ));
                    }
                }
                Rotation::Feelers => {
                    let exclude = self.busy_peers();
                    let feelers = self
                        .store
                        .feeler_candidates(unix_now(), &exclude, FEELERS_PER_ROUND)
                        .unwrap_or_default();
                    tracing::debug!(count = feelers.len(), "feeler connections");
                    for rec in feelers {
                        self.dial_record(&rec, DialKind::Feeler, false);
                    }
                    self.offer_retests(unix_now(), now);
                }
            }
        }
    }

    /// The eclipse warning (28.1.C §6): logged once when every outbound peer came from one
    /// source, exported as `bootstrap_eclipse_warning`; while it holds, one extra outbound
    /// slot is open and, every `retry_interval`, the best cached peer of another source is
    /// dialled into it.
    pub(super) fn check_diversity(&mut self, now: Instant) {
        let single = self.single_source();
        if single && !self.eclipse_warned {
            let source = self
                .verified
                .values()
                .find(|p| p.outbound && !p.feeler)
                .map_or("unknown", |p| p.source.as_str());
            tracing::warn!(
                source,
                outbound = self.outbound_verified(),
                "eclipse warning: every outbound peer came from one source; looking for peers \
                 of another source"
            );
        } else if !single && self.eclipse_warned {
            tracing::info!("outbound peers come from more than one source again");
        }
        self.eclipse_warned = single;
        self.metrics.eclipse_warning.set(i64::from(single));
        if !single || now < self.next_diversity_dial {
            return;
        }
        self.next_diversity_dial = now + self.cfg.retry_interval;
        let current: Option<PeerSource> = self
            .verified
            .values()
            .find(|p| p.outbound && !p.feeler)
            .map(|p| p.source);
        let slots = self.free_outbound_slots();
        if let Some(rec) = self
            .outbound_candidates(slots)
            .into_iter()
            .find(|r| Some(r.source) != current)
        {
            tracing::info!(peer = %rec.peer_id, source = rec.source.as_str(), "diversity dial");
            self.dial_record(&rec, DialKind::Outbound, false);
        }
    }
}
