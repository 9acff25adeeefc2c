//! The exposition of [`super::Metrics`]: exact names, families at zero from the start.

use super::*;

#[test]
#[cfg(target_os = "linux")]
fn process_metrics_are_exported() {
    let text = Metrics::new().unwrap().encode();
    for name in [
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
        "process_open_fds",
        "process_max_fds",
    ] {
        assert!(
            text.contains(&format!("\n{name} ")),
            "{name} missing:\n{text}"
        );
    }
}

#[test]
fn exact_names_are_exposed() {
    let m = Metrics::new().unwrap();
    m.dns_resolve_success.inc();
    m.handshake_failure
        .with_label_values(&["network_mismatch"])
        .inc();
    let text = m.encode();
    for name in [
        "bootstrap_dns_resolve_total 0",
        "bootstrap_dns_resolve_success 1",
        "bootstrap_peer_connect_total 0",
        "bootstrap_peer_connect_success 0",
        "bootstrap_peer_handshake_failure{reason=\"network_mismatch\"} 1",
        "bootstrap_peers_dat_size 0",
        "bootstrap_active_peers 0",
        "bootstrap_pex_requests_total{direction=\"sent\"} 0",
        "bootstrap_fallback_triggered 0",
        // Labelled families at zero from the start (issue 15 §5).
        "bootstrap_peer_handshake_failure{reason=\"timeout\"} 0",
        "bootstrap_connections_denied_total{reason=\"pending_limit\"} 0",
        "bootstrap_misbehaving_total{reason=\"da_invalid_blob\"} 0",
        "bootstrap_peer_bans_total{reason=\"pex_oversized\"} 0",
        "p2p_autonat_probes_total{result=\"unreachable\"} 0",
        "node_identity_clash{kind=\"da_authority\"} 0",
        "bootstrap_partitioned 0",
        "bootstrap_partition_recovery_total 0",
        "bootstrap_eclipse_warning 0",
        "bootstrap_active_peers_by_type{service=\"storage-dc\"} 0",
        "bootstrap_inbound_rate_limited_total 0",
        "bootstrap_peers_dat_corrupt_total 0",
        "bootstrap_peers_dat_unwritten 0",
        "bootstrap_peers_dat_commits_total 0",
        "bootstrap_peers_dat_write_failures_total 0",
        "bootstrap_peers_dat_write_degraded 0",
        "bootstrap_peers_dat_entries_by_source{source=\"dns_seed\"} 0",
        "bootstrap_peers_dat_suspicious 0",
        "bootstrap_peers_dat_banned 0",
        "bootstrap_dns_resolve_latency_ms_bucket{le=\"1\"} 0",
        "da_log_commits_total 0",
        "da_log_unwritten_blobs 0",
        "da_log_write_errors_total 0",
        "storage_degraded{store=\"da_log\"} 0",
        "storage_degraded{store=\"peers\"} 0",
        "storage_degraded{store=\"committee\"} 0",
        "storage_write_errors_total{store=\"da_log\"} 0",
        "storage_write_errors_total{store=\"committee\"} 0",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
}
