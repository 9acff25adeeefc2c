//! Prometheus metrics of the peer-to-peer layer (28.1.C §8).
//!
//! Names are exactly the spec's (`bootstrap_dns_resolve_total`,
//! `bootstrap_dns_resolve_success`, …): the `prometheus` crate is used because it keeps a
//! counter's name as given instead of appending `_total`.

use prometheus::{
    Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

/// All metrics of a node, registered in one [`Registry`].
#[derive(Clone)]
pub struct Metrics {
    registry: Registry,
    /// `bootstrap_dns_resolve_total`: DNS seed resolutions attempted.
    pub dns_resolve_total: IntCounter,
    /// `bootstrap_dns_resolve_success`: DNS seed resolutions that returned at least one IP.
    pub dns_resolve_success: IntCounter,
    /// `bootstrap_dns_resolve_latency_ms`: time per DNS seed resolution, in milliseconds.
    pub dns_resolve_latency_ms: Histogram,
    /// `p2p_ping_rtt_ms`: round trips of libp2p pings (histogram, milliseconds).
    pub ping_rtt_ms: Histogram,
    /// Reachability, AutoNAT, relay and DCUtR metrics (`p2p_reachability{state}`, …).
    pub nat: crate::net::nat::NatMetrics,
    /// `bootstrap_peer_connect_total`: outbound connection attempts.
    pub peer_connect_total: IntCounter,
    /// `bootstrap_peer_connect_success`: outbound attempts that ended in a verified handshake.
    pub peer_connect_success: IntCounter,
    /// `bootstrap_peer_handshake_failure{reason}`: refused or failed handshakes.
    pub handshake_failure: IntCounterVec,
    /// `bootstrap_peers_dat_size`: entries in peers.dat.
    pub peers_dat_size: IntGauge,
    /// `bootstrap_active_peers`: peers connected with a verified handshake.
    pub active_peers: IntGauge,
    /// `bootstrap_pex_requests_total{direction="sent"|"received"}`: PEX requests.
    pub pex_requests_total: IntCounterVec,
    /// `bootstrap_fallback_triggered`: moves from one bootstrap source to the next.
    pub fallback_triggered: IntCounter,
    /// `bootstrap_isolated`: 1 while every bootstrap source failed and no peer is connected.
    pub isolated: IntGauge,
    /// `bootstrap_partitioned`: 1 while fewer than `min_peers` peers are connected
    /// (28.1.C §4).
    pub partitioned: IntGauge,
    /// `bootstrap_partition_recovery_total`: partition-recovery sweeps run.
    pub partition_recovery: IntCounter,
    /// `bootstrap_eclipse_warning`: 1 while every outbound peer came from one source
    /// (28.1.C §6).
    pub eclipse_warning: IntGauge,
    /// `bootstrap_active_peers_by_type{service}`: connected peers offering each service type.
    pub active_peers_by_type: IntGaugeVec,
    /// `bootstrap_feeler_connections_total`: feeler dials (28.1.B §6 rotation).
    pub feelers: IntCounter,
    /// `bootstrap_address_tests_total{outcome}`: address tests of inbound peers' announced
    /// addresses (`dialled`, `succeeded`, `failed`).
    pub address_tests: IntCounterVec,
    /// `bootstrap_inbound_rate_limited_total`: inbound attempts refused by the per-IP limit.
    pub inbound_rate_limited: IntCounter,
    /// `bootstrap_connections_denied_total{reason}`: connections refused (`banned`, `pending_limit`,
    /// `rate_limited`, `inbound_limit`, `outbound_limit`, `per_peer`).
    pub connections_denied: IntCounterVec,
    /// `bootstrap_misbehaving_total{reason}`: offences charged to peers' reputations, by
    /// reason (each one lowers the reputation; only some lead to a ban).
    pub misbehaving: IntCounterVec,
    /// `node_identity_clash{kind}`: 1 once another process was seen running with this
    /// node's key (`peer_id`: its PeerId on the network; `da_authority`: a blob signed with
    /// its authority key that it did not seal), else 0 (issue 14 §4).
    pub identity_clash: IntGaugeVec,
    /// `bootstrap_peer_bans_total{reason}`: peers banned because their reputation fell past
    /// the ban threshold, by the reason of the last offence.
    pub bans: IntCounterVec,
    /// `bootstrap_pex_addrs_received_total`: addresses received in PEX responses.
    pub pex_addrs_received: IntCounter,
    /// `bootstrap_pex_addrs_rate_limited_total`: received PEX addresses dropped by the
    /// per-peer token bucket.
    pub pex_addrs_rate_limited: IntCounter,
    /// `bootstrap_peers_dat_corrupt_total`: corrupt peers.dat files moved aside.
    pub peers_dat_corrupt: IntCounter,
    /// `bootstrap_peers_dat_unwritten`: address-book entries changed in memory and not yet
    /// written to peers.dat by the background writer (every entry while a whole-table
    /// rewrite is pending).
    pub peers_dat_unwritten: IntGauge,
    /// `bootstrap_peers_dat_commits_total`: group commits of the peers.dat writer.
    pub peers_dat_commits: IntCounter,
    /// `bootstrap_peers_dat_write_failures_total`: failed peers.dat commits (retried).
    pub peers_dat_write_failures: IntCounter,
    /// `bootstrap_peers_dat_write_degraded`: 1 while peers.dat commits fail (the address
    /// book works from memory; the file lags behind).
    pub peers_dat_write_degraded: IntGauge,
    /// `bootstrap_peers_dat_entries_by_source{source}`: peers.dat entries by source.
    pub peers_dat_by_source: IntGaugeVec,
    /// `bootstrap_peers_dat_entries_by_netgroup{netgroup}`: peers.dat entries of the 16
    /// largest netgroups, the rest summed under `netgroup="other"` (bounded cardinality).
    pub peers_dat_by_netgroup: IntGaugeVec,
    /// `bootstrap_peers_dat_netgroups`: distinct netgroups in peers.dat.
    pub peers_dat_netgroups: IntGauge,
    /// `bootstrap_peers_dat_tried`: entries contacted successfully at least once.
    pub peers_dat_tried: IntGauge,
    /// `bootstrap_peers_dat_suspicious`: entries with 10 or more consecutive failures.
    pub peers_dat_suspicious: IntGauge,
    /// `bootstrap_peers_dat_banned`: entries banned now.
    pub peers_dat_banned: IntGauge,
    /// `discovery_lookups_total{service}`: Kademlia provider lookups started for a role
    /// this node is short of (28.1.C §1–§2).
    pub discovery_lookups: IntCounterVec,
    /// `discovery_providers_found_total{service}`: distinct providers returned by those
    /// lookups (each counted once per lookup).
    pub providers_found: IntCounterVec,
    /// `discovery_role_deficit{service}`: required minimum minus connected peers of a
    /// role (0 when satisfied).
    pub role_deficit: IntGaugeVec,
    /// `da_events_accepted_total`: DA events accepted and applied in order.
    pub da_events_accepted: IntCounter,
    /// `da_blobs_rejected_total{reason}`: DA blobs refused (gossip, sync or submission): a
    /// [`dsdn_protocols::da::DaError::reason`] or a
    /// [`dsdn_protocols::da::ChainError::reason`].
    pub da_blobs_rejected: IntCounterVec,
    /// `da_blobs_applied_total`: DA blobs applied to the log, in height order.
    pub da_blobs_applied: IntCounter,
    /// `da_blobs_published_total`: blobs this node sealed and signed as the DA authority.
    pub da_blobs_published: IntCounter,
    /// `da_height`: height of the last applied blob (0 for an empty log).
    pub da_height: IntGauge,
    /// `da_target_height`: the highest tip any peer reported (backfill target).
    pub da_target_height: IntGauge,
    /// `da_pending_blobs`: verified blobs held until the gap before them fills.
    pub da_pending_blobs: IntGauge,
    /// `da_sync_requests_total{result}`: backfill requests by outcome (`ok`, `failed`,
    /// `stalled`, `invalid`).
    pub da_sync_requests: IntCounterVec,
    /// `da_sync_blobs_received_total`: blobs received in backfill responses.
    pub da_sync_blobs_received: IntCounter,
    /// `da_sync_blobs_served_total`: blobs sent to peers in backfill responses.
    pub da_sync_blobs_served: IntCounter,
    /// `da_store_corrupt_total`: corrupt DA log files moved aside, unreadable DA state cleared.
    pub da_store_corrupt: IntCounter,
    /// `da_log_commits_total`: append transactions the DA log writer committed (one per
    /// group of blobs; fewer than the blobs when they arrive faster than the disk).
    pub da_log_commits: IntCounter,
    /// `da_log_unwritten_blobs`: DA blobs applied but not yet durable in the log.
    pub da_log_unwritten: IntGauge,
    /// `da_log_write_errors_total`: failed appends to the DA log (each one rebuilds the
    /// state from the disk and re-fetches the lost heights).
    pub da_log_write_errors: IntCounter,
    /// `da_registrations_total{result}`: storage-node registration requests answered by
    /// this coordinator (`published`, `known`, `refused`).
    pub da_registrations: IntCounterVec,
    /// `da_notices_dropped_total`: applied-blob notices not delivered to a DA subscriber
    /// (`NodeHandle::subscribe_da`, the light client) because its queue was full.
    pub da_notices_dropped: IntCounter,
    /// `storage_degraded{store}`: 1 while writes to the store (`da_log`, `peers`,
    /// `committee`) fail and are retried, 0 otherwise (issue 14 §2).
    pub storage_degraded: IntGaugeVec,
    /// `storage_write_errors_total{store}`: failed writes to the store (every retry that
    /// fails counts).
    pub storage_write_errors: IntCounterVec,
}

impl Metrics {
    /// Creates and registers every metric.
    ///
    /// # Errors
    /// Only if two metrics were given the same name (a programming error).
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new();
        let counter = |name: &str, help: &str| -> Result<IntCounter, prometheus::Error> {
            let c = IntCounter::new(name, help)?;
            registry.register(Box::new(c.clone()))?;
            Ok(c)
        };
        let gauge = |name: &str, help: &str| -> Result<IntGauge, prometheus::Error> {
            let g = IntGauge::new(name, help)?;
            registry.register(Box::new(g.clone()))?;
            Ok(g)
        };
        let counter_vec =
            |name: &str, help: &str, label: &str| -> Result<IntCounterVec, prometheus::Error> {
                let c = IntCounterVec::new(Opts::new(name, help), &[label])?;
                registry.register(Box::new(c.clone()))?;
                Ok(c)
            };
        let gauge_vec =
            |name: &str, help: &str, label: &str| -> Result<IntGaugeVec, prometheus::Error> {
                let g = IntGaugeVec::new(Opts::new(name, help), &[label])?;
                registry.register(Box::new(g.clone()))?;
                Ok(g)
            };
        let histogram =
            |name: &str, help: &str, buckets: Vec<f64>| -> Result<Histogram, prometheus::Error> {
                let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets))?;
                registry.register(Box::new(h.clone()))?;
                Ok(h)
            };
        let dns_resolve_latency_ms = histogram(
            "bootstrap_dns_resolve_latency_ms",
            "Latency of DNS seed resolutions, in milliseconds.",
            vec![
                1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0, 10000.0,
            ],
        )?;
        let ping_rtt_ms = histogram(
            "p2p_ping_rtt_ms",
            "Round-trip time of libp2p pings on connections, in milliseconds.",
            vec![
                0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0,
            ],
        )?;
        let nat = crate::net::nat::NatMetrics {
            reachability: gauge_vec(
                "p2p_reachability",
                "1 for the node's reachability as AutoNAT found it (public, private, unknown), 0 for the others.",
                "state",
            )?,
            external_addresses: gauge(
                "p2p_external_addresses",
                "Confirmed external addresses (AutoNAT, UPnP, operator-given, relayed).",
            )?,
            external_address: gauge_vec(
                "p2p_external_address",
                "1 for each confirmed external address of this node (label address).",
                "address",
            )?,
            relay_reservations: gauge(
                "p2p_relay_reservations",
                "Relays holding an accepted circuit relay v2 reservation of this node.",
            )?,
            autonat_probes: counter_vec(
                "p2p_autonat_probes_total",
                "AutoNAT v2 tests of this node's addresses, by result (reachable, unreachable).",
                "result",
            )?,
            dcutr: counter_vec(
                "p2p_dcutr_total",
                "DCUtR hole punches over relayed connections, by result (ok, failed).",
                "result",
            )?,
            relay_circuits: gauge(
                "p2p_relay_circuits",
                "Circuits this node relays now (circuit relay v2 server).",
            )?,
        };
        for r in ["reachable", "unreachable"] {
            nat.autonat_probes.with_label_values(&[r]);
        }
        for r in ["ok", "failed"] {
            nat.dcutr.with_label_values(&[r]);
        }
        let m = Metrics {
            nat,
            ping_rtt_ms,
            dns_resolve_total: counter(
                "bootstrap_dns_resolve_total",
                "DNS seed resolutions attempted.",
            )?,
            dns_resolve_success: counter(
                "bootstrap_dns_resolve_success",
                "DNS seed resolutions that returned at least one address.",
            )?,
            dns_resolve_latency_ms,
            peer_connect_total: counter(
                "bootstrap_peer_connect_total",
                "Outbound peer connection attempts.",
            )?,
            peer_connect_success: counter(
                "bootstrap_peer_connect_success",
                "Outbound connection attempts that ended in a verified handshake.",
            )?,
            handshake_failure: counter_vec(
                "bootstrap_peer_handshake_failure",
                "Failed or refused handshakes, by reason.",
                "reason",
            )?,
            peers_dat_size: gauge("bootstrap_peers_dat_size", "Entries in peers.dat.")?,
            active_peers: gauge(
                "bootstrap_active_peers",
                "Peers connected with a verified handshake.",
            )?,
            pex_requests_total: counter_vec(
                "bootstrap_pex_requests_total",
                "PEX requests sent and received.",
                "direction",
            )?,
            fallback_triggered: counter(
                "bootstrap_fallback_triggered",
                "Moves from one bootstrap source to the next because a source yielded no peer.",
            )?,
            isolated: gauge(
                "bootstrap_isolated",
                "1 while every bootstrap source failed and no peer is connected.",
            )?,
            partitioned: gauge(
                "bootstrap_partitioned",
                "1 while fewer than min_peers peers are connected (partition recovery runs).",
            )?,
            partition_recovery: counter(
                "bootstrap_partition_recovery_total",
                "Partition-recovery sweeps run (every DNS seed, static and cached peer).",
            )?,
            eclipse_warning: gauge(
                "bootstrap_eclipse_warning",
                "1 while every outbound peer came from a single source.",
            )?,
            active_peers_by_type: gauge_vec(
                "bootstrap_active_peers_by_type",
                "Connected peers offering each service type.",
                "service",
            )?,
            feelers: counter(
                "bootstrap_feeler_connections_total",
                "Feeler connections dialled to test cached peers.",
            )?,
            address_tests: counter_vec(
                "bootstrap_address_tests_total",
                "Address tests of inbound peers' announced addresses, by outcome.",
                "outcome",
            )?,
            inbound_rate_limited: counter(
                "bootstrap_inbound_rate_limited_total",
                "Inbound connection attempts refused by the per-IP rate limit.",
            )?,
            connections_denied: counter_vec(
                "bootstrap_connections_denied_total",
                "Connections refused by admission control, by reason.",
                "reason",
            )?,
            misbehaving: counter_vec(
                "bootstrap_misbehaving_total",
                "Offences charged to peers' reputations, by reason.",
                "reason",
            )?,
            identity_clash: {
                let g = gauge_vec(
                    "node_identity_clash",
                    "1 once another process was seen running with this node's key, by kind.",
                    "kind",
                )?;
                for kind in ["peer_id", "da_authority"] {
                    g.with_label_values(&[kind]).set(0);
                }
                g
            },
            bans: counter_vec(
                "bootstrap_peer_bans_total",
                "Peers banned when their reputation fell past the ban threshold, by reason.",
                "reason",
            )?,
            pex_addrs_received: counter(
                "bootstrap_pex_addrs_received_total",
                "Addresses received in PEX responses.",
            )?,
            pex_addrs_rate_limited: counter(
                "bootstrap_pex_addrs_rate_limited_total",
                "Received PEX addresses dropped by the per-peer token bucket.",
            )?,
            peers_dat_corrupt: counter(
                "bootstrap_peers_dat_corrupt_total",
                "Corrupt peers.dat files moved aside and rebuilt.",
            )?,
            peers_dat_unwritten: gauge(
                "bootstrap_peers_dat_unwritten",
                "Address-book entries changed in memory and not yet written to peers.dat.",
            )?,
            peers_dat_commits: counter(
                "bootstrap_peers_dat_commits_total",
                "Group commits of the peers.dat writer.",
            )?,
            peers_dat_write_failures: counter(
                "bootstrap_peers_dat_write_failures_total",
                "Failed peers.dat commits (the changes stay in memory and are retried).",
            )?,
            peers_dat_write_degraded: gauge(
                "bootstrap_peers_dat_write_degraded",
                "1 while peers.dat commits fail (the file lags behind memory).",
            )?,
            peers_dat_by_source: gauge_vec(
                "bootstrap_peers_dat_entries_by_source",
                "peers.dat entries by the source they were learned from.",
                "source",
            )?,
            peers_dat_by_netgroup: gauge_vec(
                "bootstrap_peers_dat_entries_by_netgroup",
                "peers.dat entries of the 16 largest netgroups (the rest under \"other\").",
                "netgroup",
            )?,
            peers_dat_netgroups: gauge(
                "bootstrap_peers_dat_netgroups",
                "Distinct netgroups in peers.dat.",
            )?,
            peers_dat_tried: gauge(
                "bootstrap_peers_dat_tried",
                "peers.dat entries contacted successfully at least once.",
            )?,
            peers_dat_suspicious: gauge(
                "bootstrap_peers_dat_suspicious",
                "peers.dat entries with 10 or more consecutive failures.",
            )?,
            peers_dat_banned: gauge(
                "bootstrap_peers_dat_banned",
                "peers.dat entries banned now.",
            )?,
            discovery_lookups: counter_vec(
                "discovery_lookups_total",
                "Kademlia provider lookups started for a role this node is short of.",
                "service",
            )?,
            providers_found: counter_vec(
                "discovery_providers_found_total",
                "Distinct providers returned by Kademlia provider lookups (once per lookup).",
                "service",
            )?,
            role_deficit: gauge_vec(
                "discovery_role_deficit",
                "Required minimum minus connected peers of a role (0 when satisfied).",
                "service",
            )?,
            da_events_accepted: counter(
                "da_events_accepted_total",
                "DA events accepted and applied in order.",
            )?,
            da_blobs_rejected: counter_vec(
                "da_blobs_rejected_total",
                "DA blobs refused (gossip, sync or submission), by reason.",
                "reason",
            )?,
            da_blobs_applied: counter(
                "da_blobs_applied_total",
                "DA blobs applied to the log, in height order.",
            )?,
            da_blobs_published: counter(
                "da_blobs_published_total",
                "DA blobs sealed and signed by this node as the DA authority.",
            )?,
            da_height: gauge("da_height", "Height of the last applied DA blob.")?,
            da_target_height: gauge(
                "da_target_height",
                "Highest DA log tip reported by any peer.",
            )?,
            da_pending_blobs: gauge(
                "da_pending_blobs",
                "Verified DA blobs held until the gap before them fills.",
            )?,
            da_sync_requests: counter_vec(
                "da_sync_requests_total",
                "DA backfill requests sent, by outcome.",
                "result",
            )?,
            da_sync_blobs_received: counter(
                "da_sync_blobs_received_total",
                "DA blobs received in backfill responses.",
            )?,
            da_sync_blobs_served: counter(
                "da_sync_blobs_served_total",
                "DA blobs sent to peers in backfill responses.",
            )?,
            da_store_corrupt: counter(
                "da_store_corrupt_total",
                "Corrupt DA log files moved aside, unreadable DA state cleared.",
            )?,
            da_log_commits: counter(
                "da_log_commits_total",
                "Append transactions committed by the DA log writer.",
            )?,
            da_log_unwritten: gauge(
                "da_log_unwritten_blobs",
                "DA blobs applied but not yet durable in the log.",
            )?,
            da_log_write_errors: counter(
                "da_log_write_errors_total",
                "Failed appends to the DA log.",
            )?,
            da_registrations: counter_vec(
                "da_registrations_total",
                "Storage-node registration requests answered, by result.",
                "result",
            )?,
            da_notices_dropped: counter(
                "da_notices_dropped_total",
                "Applied DA blobs not delivered to a subscriber whose queue was full.",
            )?,
            storage_degraded: gauge_vec(
                "storage_degraded",
                "1 while writes to the store fail and are retried (da_log, peers, committee).",
                "store",
            )?,
            storage_write_errors: counter_vec(
                "storage_write_errors_total",
                "Failed writes to the store (da_log, peers, committee).",
                "store",
            )?,
            registry,
        };
        // Make the labelled series visible at zero before the first event (issue 15 §5:
        // alerts and dashboards see 0, not "no data").
        for reason in dsdn_protocols::handshake::HandshakeError::REASONS {
            m.handshake_failure.with_label_values(&[reason]);
        }
        for reason in [
            "banned",
            "rate_limited",
            "pending_limit",
            "inbound_limit",
            "outbound_limit",
            "per_peer",
            "relayed_limit",
        ] {
            m.connections_denied.with_label_values(&[reason]);
        }
        for reason in crate::net::peer_manager::OFFENCES {
            m.misbehaving.with_label_values(&[reason]);
            m.bans.with_label_values(&[reason]);
        }
        for outcome in ["dialled", "succeeded", "failed"] {
            m.address_tests.with_label_values(&[outcome]);
        }
        for kind in ["peer_id", "da_authority"] {
            m.identity_clash.with_label_values(&[kind]);
        }
        for service in dsdn_protocols::ServiceType::ALL {
            m.discovery_lookups.with_label_values(&[service.as_str()]);
            m.providers_found.with_label_values(&[service.as_str()]);
        }
        for result in ["reachable", "unreachable"] {
            m.nat.autonat_probes.with_label_values(&[result]);
        }
        for result in ["ok", "failed"] {
            m.nat.dcutr.with_label_values(&[result]);
        }
        // Process metrics (RSS, CPU seconds, open and maximum descriptors, threads, start
        // time), read from /proc at each scrape.
        #[cfg(target_os = "linux")]
        m.registry.register(Box::new(
            prometheus::process_collector::ProcessCollector::for_self(),
        ))?;
        for dir in ["sent", "received"] {
            m.pex_requests_total.with_label_values(&[dir]);
        }
        for service in dsdn_protocols::ServiceType::ALL {
            m.active_peers_by_type
                .with_label_values(&[service.as_str()]);
        }
        for result in ["ok", "failed", "stalled", "invalid"] {
            m.da_sync_requests.with_label_values(&[result]);
        }
        for result in ["published", "known", "refused"] {
            m.da_registrations.with_label_values(&[result]);
        }
        for source in dsdn_protocols::PeerSource::ALL {
            m.peers_dat_by_source.with_label_values(&[source.as_str()]);
        }
        for store in crate::storage::Store::ALL {
            m.storage_degraded.with_label_values(&[store.as_str()]);
            m.storage_write_errors.with_label_values(&[store.as_str()]);
        }
        Ok(m)
    }

    /// The discovery component's metrics (shared handles of this registry's families).
    pub fn discovery(&self) -> crate::net::discovery::DiscoveryMetrics {
        crate::net::discovery::DiscoveryMetrics {
            lookups: self.discovery_lookups.clone(),
            providers_found: self.providers_found.clone(),
            role_deficit: self.role_deficit.clone(),
        }
    }

    /// The registry, for callers that add metrics of their own.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric.
    pub fn encode(&self) -> String {
        TextEncoder::new()
            .encode_to_string(&self.registry.gather())
            .unwrap_or_else(|e| format!("# error encoding metrics: {e}\n"))
    }
}

#[cfg(test)]
mod tests;
