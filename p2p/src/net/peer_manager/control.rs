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
        self.chain
            .set_sources(self.cfg.static_peers.len(), self.cfg.dns_seeds.len());
        tracing::info!(%peer, file = %self.added_file.display(), "static peer added");
        self.dial_static(&peer, false);
        Ok(())
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
