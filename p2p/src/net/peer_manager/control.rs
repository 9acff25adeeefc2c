//! Operator commands (28.1.C §7): `peers add`, `peers add-seed`, `peers reset`.

use std::time::Instant;

use dsdn_bootstrap::added::{AddedError, AddedSources};
use dsdn_bootstrap::config::{DnsSeed, StaticPeer};

use super::{DnsPurpose, PeerManager};
use crate::handle::ControlError;

fn persist_err(e: AddedError) -> ControlError {
    match e {
        AddedError::TooMany { max, .. } => ControlError::TooMany(max),
        other => ControlError::Persist(other.to_string()),
    }
}

impl PeerManager {
    /// The static peers in use (seeds.toml's, then the operator's additions).
    pub fn static_peers(&self) -> &[dsdn_bootstrap::config::StaticPeer] {
        &self.cfg.static_peers
    }

    /// The ban length in force (`ban_duration_secs`, reloadable).
    pub fn ban_duration(&self) -> std::time::Duration {
        self.cfg.ban_duration
    }

    /// The DNS seeds in use (seeds.toml's, then the operator's additions).
    pub fn dns_seeds(&self) -> &[DnsSeed] {
        &self.cfg.dns_seeds
    }

    /// Adds a static peer: saved to the additions file first (so it survives a restart),
    /// then used by the fallback chain and recovery, and dialled now.
    ///
    /// # Errors
    /// [`ControlError::AlreadyPresent`], [`ControlError::TooMany`], or
    /// [`ControlError::Persist`] when the file cannot be written (nothing changes then).
    pub(crate) fn add_static_peer(&mut self, peer: StaticPeer) -> Result<(), ControlError> {
        if self.cfg.static_peers.contains(&peer) {
            return Err(ControlError::AlreadyPresent(peer.to_string()));
        }
        self.save_addition(&peer, |a| a.add_static(peer.clone()))?;
        self.cfg.static_peers.push(peer.clone());
        self.added_peers.add(peer.clone(), Instant::now());
        self.chain
            .set_sources(self.cfg.static_peers.len(), self.cfg.dns_seeds.len());
        tracing::info!(%peer, file = %self.added_file.display(), "static peer added");
        self.dial_static(&peer, false);
        Ok(())
    }

    /// Removes a peer added with [`PeerManager::add_static_peer`] (`peers remove`): saved to
    /// the additions file first, then no longer used or re-dialled. An open connection to
    /// it stays open (as Bitcoin Core's `addnode remove`; `peers ban` closes one).
    ///
    /// # Errors
    /// [`ControlError::NotAdded`] for a peer that is not an operator addition (seeds.toml's
    /// static peers are edited there), or [`ControlError::Persist`] when the file cannot be
    /// written (nothing changes then).
    pub(crate) fn remove_static_peer(&mut self, peer: &StaticPeer) -> Result<(), ControlError> {
        let mut added = self.added.clone();
        if !added.remove_static(peer) {
            return Err(ControlError::NotAdded(peer.to_string()));
        }
        added.save(&self.added_file).map_err(persist_err)?;
        self.added = added;
        // A seeds.toml entry with the same address stays.
        if let Some(i) = self.cfg.static_peers.iter().rposition(|p| p == peer) {
            self.cfg.static_peers.remove(i);
        }
        self.chain
            .set_sources(self.cfg.static_peers.len(), self.cfg.dns_seeds.len());
        self.added_peers.remove(peer);
        tracing::info!(%peer, file = %self.added_file.display(), "static peer removed");
        Ok(())
    }

    /// The operator's added peers and their state (`peers added`).
    pub fn added_peers(&self) -> Vec<super::added::AddedPeerView> {
        self.added_peers.view(Instant::now())
    }

    /// Adds a DNS seed: saved to the additions file first, then used by the fallback chain,
    /// recovery and refresh, and resolved now (its addresses are tried as feelers: kept when
    /// an outbound slot is free).
    ///
    /// # Errors
    /// As [`PeerManager::add_static_peer`].
    pub(crate) fn add_dns_seed(&mut self, seed: DnsSeed) -> Result<(), ControlError> {
        if self.cfg.dns_seeds.contains(&seed) {
            return Err(ControlError::AlreadyPresent(seed.to_string()));
        }
        self.save_addition(&seed, |a| a.add_seed(seed.clone()))?;
        self.cfg.dns_seeds.push(seed.clone());
        self.chain
            .set_sources(self.cfg.static_peers.len(), self.cfg.dns_seeds.len());
        tracing::info!(%seed, file = %self.added_file.display(), "DNS seed added");
        self.resolve(seed, DnsPurpose::Refresh);
        Ok(())
    }

    /// Applies `add` to a copy of the additions and saves it; the in-memory copy changes
    /// only once the file is written.
    fn save_addition(
        &mut self,
        what: &dyn std::fmt::Display,
        add: impl FnOnce(&mut AddedSources) -> Result<bool, AddedError>,
    ) -> Result<(), ControlError> {
        let mut added = self.added.clone();
        if !add(&mut added).map_err(persist_err)? {
            return Err(ControlError::AlreadyPresent(what.to_string()));
        }
        added.save(&self.added_file).map_err(persist_err)?;
        self.added = added;
        Ok(())
    }

    /// After `peers reset` cleared peers.dat (and the event loop closed every connection):
    /// forget the anchors and bootstrap again from the seeds now: every DNS seed is
    /// resolved and every static peer dialled, and the fallback chain starts a new run.
    pub(crate) fn rebootstrap(&mut self) {
        let now = Instant::now();
        self.anchors.clear();
        self.contact_every_seed();
        self.chain.trigger_now(now);
    }
}

/// What a configuration reload (SIGHUP, issue 14 §5) may change in the peer manager: the
/// `[bootstrap]` section of the re-read seeds.toml.
pub(crate) fn reload_changes(
    old: &dsdn_bootstrap::config::BootstrapConfig,
    new: &dsdn_bootstrap::config::BootstrapConfig,
) -> Vec<String> {
    let mut out = Vec::new();
    let mut cmp = |key: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{key}: {a} -> {b}"));
        }
    };
    cmp(
        "max_outbound_connections",
        old.max_outbound_connections.to_string(),
        new.max_outbound_connections.to_string(),
    );
    cmp(
        "max_inbound_connections",
        old.max_inbound_connections.to_string(),
        new.max_inbound_connections.to_string(),
    );
    cmp(
        "max_connections_per_peer",
        old.max_connections_per_peer.to_string(),
        new.max_connections_per_peer.to_string(),
    );
    cmp(
        "inbound_per_ip_per_minute",
        old.inbound_per_ip_per_minute.to_string(),
        new.inbound_per_ip_per_minute.to_string(),
    );
    cmp(
        "ban_duration_secs",
        old.ban_duration.as_secs().to_string(),
        new.ban_duration.as_secs().to_string(),
    );
    for p in new
        .static_peers
        .iter()
        .filter(|p| !old.static_peers.contains(p))
    {
        out.push(format!("static peer added: {p}"));
    }
    for s in new.dns_seeds.iter().filter(|s| !old.dns_seeds.contains(s)) {
        out.push(format!("DNS seed added: {s}"));
    }
    out
}

impl PeerManager {
    /// Applies the reloadable part of a re-read `[bootstrap]` section (SIGHUP): the
    /// connection limits, `ban_duration_secs`, and static peers and DNS seeds
    /// that were added (dialled or resolved now; not written to the additions file, the
    /// configuration holds them). Entries removed from the file stay in use until the next
    /// start. Returns what changed, one line each.
    pub(crate) fn reload(&mut self, new: &dsdn_bootstrap::config::BootstrapConfig) -> Vec<String> {
        let changes = reload_changes(&self.cfg, new);
        self.cfg.max_outbound_connections = new.max_outbound_connections;
        self.cfg.max_inbound_connections = new.max_inbound_connections;
        self.cfg.max_connections_per_peer = new.max_connections_per_peer;
        self.cfg.ban_duration = new.ban_duration;
        if self.cfg.inbound_per_ip_per_minute != new.inbound_per_ip_per_minute {
            self.cfg.inbound_per_ip_per_minute = new.inbound_per_ip_per_minute;
            self.inbound_limiter =
                dsdn_peers::ratelimit::InboundRateLimiter::new(new.inbound_per_ip_per_minute);
        }
        let peers: Vec<StaticPeer> = new
            .static_peers
            .iter()
            .filter(|p| !self.cfg.static_peers.contains(p))
            .cloned()
            .collect();
        let seeds: Vec<DnsSeed> = new
            .dns_seeds
            .iter()
            .filter(|s| !self.cfg.dns_seeds.contains(s))
            .cloned()
            .collect();
        self.cfg.static_peers.extend(peers.iter().cloned());
        self.cfg.dns_seeds.extend(seeds.iter().cloned());
        self.chain
            .set_sources(self.cfg.static_peers.len(), self.cfg.dns_seeds.len());
        for p in &peers {
            self.dial_static(p, false);
        }
        for s in seeds {
            self.resolve(s, DnsPurpose::Refresh);
        }
        changes
    }
}
