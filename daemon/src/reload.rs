//! SIGHUP (issue 14 §5): reopen the log file and reload what can change without a restart.
//!
//! What a reload applies: `[log] level`; in `[bootstrap]` the connection limits
//! (`max_outbound_connections`, `max_inbound_connections`, `max_connections_per_peer`),
//! `inbound_per_ip_per_minute`, `ban_duration_secs`, and added `static_peers` and
//! `dns_seeds` (dialled or resolved at once). What it refuses: a file that does not
//! validate, or one that changes the network id or the DA authority (nothing is applied; the
//! daemon keeps running on the old configuration). Anything else that changed is named in a
//! warning as needing a restart. Every change is logged, one line each.

use std::path::{Path, PathBuf};

use dsdn_p2p::seeds::SeedsConfig;
use dsdn_p2p::NodeHandle;

use crate::fds::FdBudget;
use crate::logging::Log;

/// Why `new` cannot replace `old` while running, if it cannot.
pub fn refusal(old: &SeedsConfig, new: &SeedsConfig) -> Option<String> {
    if old.network.name != new.network.name {
        return Some(format!(
            "network.name changed ({} -> {}): the network id needs a restart with a data \
             directory of that network",
            old.network.name, new.network.name
        ));
    }
    if old.network.da_authority != new.network.da_authority {
        return Some(
            "network.da_authority changed: the DA authority needs a restart (bans that \
             rested on the old one are lifted then)"
                .to_owned(),
        );
    }
    None
}

/// The sections of `new` that differ from `old` in ways a reload does not apply.
pub fn needs_restart(old: &SeedsConfig, new: &SeedsConfig) -> Vec<&'static str> {
    let mut out = Vec::new();
    if old.network != new.network {
        out.push("[network]");
    }
    let mut applied = old.bootstrap.clone();
    applied.max_outbound_connections = new.bootstrap.max_outbound_connections;
    applied.max_inbound_connections = new.bootstrap.max_inbound_connections;
    applied.max_connections_per_peer = new.bootstrap.max_connections_per_peer;
    applied.inbound_per_ip_per_minute = new.bootstrap.inbound_per_ip_per_minute;
    applied.ban_duration = new.bootstrap.ban_duration;
    applied.static_peers = new.bootstrap.static_peers.clone();
    applied.dns_seeds = new.bootstrap.dns_seeds.clone();
    if applied != new.bootstrap {
        out.push("[bootstrap] (other than limits, ban_duration_secs, static_peers, dns_seeds)");
    }
    if old.da != new.da {
        out.push("[da]");
    }
    if old.committee != new.committee {
        out.push("[committee]");
    }
    if old.receipts != new.receipts {
        out.push("[receipts]");
    }
    if old.nat != new.nat {
        out.push("[nat]");
    }
    if old.api != new.api {
        out.push("[api]");
    }
    out
}

/// One SIGHUP: reopens the log file, re-reads `path` and applies what it can to `node` and
/// `log`; `current` becomes the applied configuration. The new connection limits are fitted
/// to the descriptor `budget` of the start as they were then ([`FdBudget::plan`]). Never
/// fails: problems are logged.
pub async fn reload(
    path: &Path,
    current: &mut SeedsConfig,
    node: &NodeHandle,
    log: &Log,
    budget: Option<FdBudget>,
) {
    log.reopen();
    tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
    let mut new = match SeedsConfig::load(path) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, config = %path.display(), "reload refused: invalid configuration; still running on the previous one");
            return;
        }
    };
    if let Some(why) = refusal(current, &new) {
        tracing::error!(reason = %why, "reload refused; still running on the previous configuration");
        return;
    }
    if let Some(b) = budget {
        // The API keeps its running limits (a change needs a restart).
        match FdBudget::plan(b.total, &current.api, &mut new.bootstrap) {
            Ok((_, lowered)) => {
                for l in &lowered {
                    l.warn(b.total);
                }
            }
            Err(e) => {
                tracing::error!(error = %e, "reload refused; still running on the previous configuration");
                return;
            }
        }
    }
    let level = match new.log.level.as_deref().map(crate::logging::parse_filter) {
        Some(Err(e)) => {
            tracing::error!(error = %e, "reload refused; still running on the previous configuration");
            return;
        }
        _ => new.log.level.as_deref(),
    };
    let mut changes = Vec::new();
    match log.set_level(level) {
        Ok(c) => changes.extend(c),
        Err(e) => tracing::error!(error = %e, "cannot change the log level"),
    }
    match node.reload_bootstrap(new.bootstrap.clone()).await {
        Ok(c) => changes.extend(c),
        Err(_) => return,
    }
    for c in &changes {
        tracing::info!(change = %c, "configuration reloaded");
    }
    let restart = needs_restart(current, &new);
    if !restart.is_empty() {
        tracing::warn!(sections = %restart.join(", "), "changed in the configuration but applied only at the next start");
    }
    tracing::info!(changes = changes.len(), "reload done");
    // Sections needing a restart keep their running values.
    let mut applied = new;
    if !restart.is_empty() {
        applied.da = current.da.clone();
        applied.committee = current.committee.clone();
        applied.nat = current.nat.clone();
        applied.network = current.network.clone();
        applied.api = current.api;
    }
    *current = applied;
}

/// Reloads on every SIGHUP until aborted (issue 14 §5): re-reads `path`, or with no
/// configuration file (started on the defaults) only reopens the log file.
pub async fn on_hangup(
    path: Option<PathBuf>,
    mut current: SeedsConfig,
    node: NodeHandle,
    log: Log,
    budget: Option<FdBudget>,
) {
    let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot install the SIGHUP handler");
            return;
        }
    };
    while hup.recv().await.is_some() {
        match &path {
            Some(path) => {
                reload(path, &mut current, &node, &log, budget).await;
            }
            None => {
                log.reopen();
                tracing::info!("SIGHUP: no configuration file to reload (started on the defaults)");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> SeedsConfig {
        SeedsConfig::from_toml_str(text).unwrap()
    }

    #[test]
    fn the_network_and_the_authority_cannot_change() {
        let a = cfg("[network]\nname = \"devnet\"\n");
        let b = cfg("[network]\nname = \"testnet\"\n");
        assert!(refusal(&a, &b).unwrap().contains("network.name"));
        let c = cfg(&format!(
            "[network]\nname = \"devnet\"\nda_authority = \"{}\"\n",
            "58".to_owned() + &"66".repeat(31)
        ));
        assert!(refusal(&a, &c).unwrap().contains("da_authority"));
        let d = cfg("[network]\nname = \"devnet\"\n[bootstrap]\nmax_inbound_connections = 10\n");
        assert_eq!(refusal(&a, &d), None);
        assert!(needs_restart(&a, &d).is_empty());
        let e = cfg("[network]\nname = \"devnet\"\n[bootstrap]\ndefault_port = 4000\n");
        assert_eq!(needs_restart(&a, &e).len(), 1);
    }
}
