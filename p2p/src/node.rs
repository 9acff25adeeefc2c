//! Building the swarm and starting a node.
//!
//! [`Node::start`] opens peers.dat and the DA log, builds the swarm (its transport and
//! listeners in `transport`, its composed behaviour in `behaviour`) and the services, and
//! returns the event loop to run.

mod behaviour;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use dsdn_bootstrap::added::AddedSources;
use dsdn_bootstrap::resolver::SeedResolver;
use dsdn_peers::store::{OpenReport, PeerStore};
use libp2p::gossipsub::IdentTopic;
use libp2p::{Multiaddr, Swarm};
use tokio::sync::mpsc;

use crate::config::NodeConfig;
use crate::da::{DaService, DaServiceConfig, Registrar};
use crate::event_loop::EventLoop;
use crate::handle::{NodeHandle, COMMAND_QUEUE};
use crate::metrics::Metrics;
use crate::net::behaviour::Behaviour;
use crate::net::peer_manager::{PeerManager, PeerManagerParts};
use crate::net::traffic::PeerTraffic;

/// Why a node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// peers.dat could not be opened (e.g. it belongs to another network).
    #[error("peers.dat: {0}")]
    PeerStore(#[from] dsdn_peers::store::StoreError),
    /// The DNS resolver could not be configured.
    #[error("DNS resolver: {0}")]
    Resolver(String),
    /// The transport or a behaviour could not be built.
    #[error("swarm: {0}")]
    Swarm(String),
    /// The listen address could not be bound; `reason` is the whole cause chain, down to
    /// the OS error (e.g. `Address already in use (os error 98)`).
    #[error("cannot listen on {addr}: {reason}")]
    Listen {
        /// The address.
        addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// The operator additions file could not be read.
    #[error("{0}")]
    Added(String),
    /// The metrics registry refused a metric.
    #[error("metrics: {0}")]
    Metrics(#[from] prometheus::Error),
    /// The light client's data directory (or its temporary one) could not be created.
    #[error("data directory {}: {source}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// [`crate::LightClient::start`] was called outside a tokio runtime.
    #[error("no tokio runtime: start the light client from within one")]
    NoRuntime,
    /// The DA log could not be opened (another network's, a newer schema, or I/O).
    #[error("DA log: {0}")]
    DaStore(#[from] crate::da::store::DaStoreError),
    /// The committee configuration is invalid, this node is not a member, or the committee
    /// directory cannot be created.
    #[error("committee: {0}")]
    Committee(#[from] crate::committee::CommitteeStartError),
}

/// A started node: the handle for requests, the event loop to spawn, and what happened
/// while opening peers.dat.
pub struct Node {
    /// Cloneable handle.
    pub handle: NodeHandle,
    /// The event loop; run it with `tokio::spawn(event_loop.run())`.
    pub event_loop: EventLoop,
    /// The node's metrics (also served by the daemon at `/metrics`).
    pub metrics: Metrics,
    /// Whether a corrupt peers.dat was moved aside.
    pub store_report: OpenReport,
}

pub use transport::{error_chain, listen_addrs};

/// Fingerprint of the parts of `cfg` that decide whether a peer's message counts as
/// misbehaviour: the network id, the DA authority and the committee (members, threshold,
/// epoch). A ban that rests on them records it ([`dsdn_peers::BanCause::config`]) and is
/// lifted when the node starts with another fingerprint (issue 14 §3). The first 8 bytes of
/// a SHA-256 over a length-prefixed encoding, big-endian.
pub fn config_fingerprint(cfg: &NodeConfig) -> u64 {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    let mut field = |bytes: &[u8]| {
        h.update((bytes.len() as u64).to_be_bytes());
        h.update(bytes);
    };
    field(cfg.network.as_str().as_bytes());
    field(cfg.da_authority.as_ref().map_or(&[][..], |a| &a[..]));
    if let Some(c) = &cfg.committee {
        for m in &c.members {
            field(&m.to_bytes());
        }
        field(&c.threshold.to_be_bytes());
        field(&c.epoch.to_be_bytes());
    }
    let d = h.finalize();
    let mut out = [0u8; 8];
    out.copy_from_slice(&d[..8]);
    u64::from_be_bytes(out)
}

/// Lifts the bans that rested on another configuration and warns when most known peers are
/// banned (issue 14 §3).
fn check_bans(store: &PeerStore, fingerprint: u64) {
    match store.lift_config_bans(fingerprint) {
        Ok(0) => {}
        Ok(n) => tracing::info!(
            lifted = n,
            "lifted the bans that rested on a previous configuration (DA authority, committee \
             or network id changed)"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot lift the bans of a previous configuration"),
    }
    let st = store.stats(crate::net::peer_manager::unix_now());
    if let Some(w) = crate::net::peer_manager::banned_majority_warning(st.banned, st.entries) {
        tracing::warn!("{w}");
    }
}

impl Node {
    /// Opens peers.dat, builds the swarm, starts listening and returns the node, ready to
    /// be run.
    ///
    /// # Errors
    /// [`StartError`] when peers.dat belongs to another network, the resolver or swarm
    /// cannot be built, or the listen address cannot be bound.
    pub fn start(cfg: NodeConfig) -> Result<Node, StartError> {
        let metrics = Metrics::new()?;
        let (store, store_report) = PeerStore::open(&cfg.peers_file, &cfg.network)?;
        let store = store.with_address_policy(cfg.address_policy);
        if store_report.moved_aside.is_some() {
            metrics.peers_dat_corrupt.inc();
        }
        let fingerprint = config_fingerprint(&cfg);
        check_bans(&store, fingerprint);
        let store = Arc::new(store);
        let (added, added_moved) =
            AddedSources::load(&cfg.added_file).map_err(|e| StartError::Added(e.to_string()))?;
        if let Some(path) = added_moved {
            tracing::warn!(path = %path.display(), "the operator additions file was corrupt: moved aside");
        }
        let resolver = SeedResolver::new(
            &cfg.bootstrap.dns_servers,
            cfg.bootstrap.dns_resolve_timeout,
        )
        .map_err(|e| StartError::Resolver(e.to_string()))?;
        let key = cfg.keypair.clone();
        let manager = PeerManager::new(
            cfg.bootstrap.clone(),
            PeerManagerParts {
                local_peer_id: key.public().to_peer_id(),
                store: store.clone(),
                resolver: Arc::new(resolver),
                metrics: metrics.clone(),
                added,
                added_file: cfg.added_file.clone(),
                address_policy: cfg.address_policy,
                config_fingerprint: fingerprint,
            },
        );
        let traffic = PeerTraffic::new();
        let (relay_transport, relay_client) = libp2p::relay::client::new(key.public().to_peer_id());
        let behaviour = behaviour::build_behaviour(
            &cfg,
            &key,
            manager,
            store.clone(),
            metrics.clone(),
            relay_client,
        )?;
        let transport = transport::build_transport(
            &key,
            relay_transport,
            traffic.clone(),
            cfg.bootstrap.peer_connect_timeout,
        )?;
        let mut swarm: Swarm<Behaviour> = Swarm::new(
            transport,
            behaviour,
            key.public().to_peer_id(),
            libp2p::swarm::Config::with_tokio_executor()
                .with_idle_connection_timeout(Duration::from_secs(24 * 3600)),
        );
        // A light client does not listen (`cfg.listen` is unused): it only dials out.
        if !cfg.light {
            transport::listen_on_all(&mut swarm, &cfg.listen, cfg.listen_ipv6_optional)?;
        }
        // Operator-given external addresses are confirmed without a test.
        for addr in &cfg.nat.external_addresses {
            swarm.add_external_address(addr.clone());
        }
        let topic = IdentTopic::new(cfg.network.da_topic());
        let receipts_topic = IdentTopic::new(cfg.network.receipts_topic());
        if let Some(gossipsub) = swarm.behaviour_mut().gossipsub.as_mut() {
            gossipsub
                .subscribe(&topic)
                .map_err(|e| StartError::Swarm(e.to_string()))?;
            // Light clients follow the DA log only.
            if !cfg.light {
                gossipsub
                    .subscribe(&receipts_topic)
                    .map_err(|e| StartError::Swarm(e.to_string()))?;
            }
        }
        let (mut da, da_height) = DaService::open(
            DaServiceConfig {
                network: cfg.network.clone(),
                authority: cfg.da_authority,
                key: signing_key(&key)?,
                dir: cfg.da_dir.clone().filter(|_| cfg.subscribe_da),
                da: cfg.da.clone(),
            },
            metrics.clone(),
            std::time::Instant::now(),
        )?;
        let registrar = cfg.registration.clone().map(|request| {
            let authority_peer = cfg.da_authority.and_then(|a| {
                libp2p::identity::ed25519::PublicKey::try_from_bytes(&a)
                    .ok()
                    .map(|k| libp2p::identity::PublicKey::from(k).to_peer_id())
            });
            let mut r = Registrar::new(request, key.public().to_peer_id(), authority_peer);
            r.observe(da.state());
            r
        });
        let committee = match cfg.committee.clone() {
            Some(c) => {
                let store = [crate::storage::Store::Committee.as_str()];
                let m = crate::committee::CommitteeMetrics::new(metrics.registry())?.with_storage(
                    metrics.storage_degraded.with_label_values(&store),
                    metrics.storage_write_errors.with_label_values(&store),
                );
                let service =
                    crate::committee::CommitteeService::open(c, key.public().to_peer_id(), m)?;
                // The DA proposer rotation is safe only with a majority threshold.
                if let Some((share, _, _)) = service.rotation_parts() {
                    if Some(share.group_key().0) == cfg.da_authority {
                        dsdn_protocols::committee::rotation::RotationConfig::new(
                            share.config(),
                            std::time::Duration::from_secs(1),
                        )
                        .map_err(|e| {
                            crate::committee::CommitteeStartError::Config(format!(
                                "the group key is the DA authority, but {e}: two sets of t \
                                 members could each seal a blob at one height"
                            ))
                        })?;
                    }
                }
                Some(crate::event_loop::CommitteeLoop::new(service)?)
            }
            None => None,
        };
        let workload = crate::event_loop::WorkloadLoop::new(
            crate::workload::WorkloadService::new(
                cfg.workload.clone(),
                crate::workload::WorkloadMetrics::new(metrics.registry())?,
                signing_key(&key)?,
                key.public().to_peer_id(),
                cfg.network.as_str().to_owned(),
            )
            .with_committee(cfg.committee.as_ref().and_then(|c| {
                // The committee as a member knows it: optimistic receipts of non-members are
                // refused as `UnauthorizedSigner` evidence.
                let members = c
                    .members
                    .iter()
                    .map(|p| crate::committee::member_id(p).ok())
                    .collect::<Option<Vec<_>>>()?;
                Some(dsdn_protocols::committee::CommitteeConfig {
                    epoch: c.epoch,
                    threshold: c.threshold,
                    members,
                })
            })),
            receipts_topic,
        );
        let (tx, rx) = mpsc::channel(COMMAND_QUEUE);
        let handle = NodeHandle::new(tx, da_height);
        // Issue 16 §5: a new full node with `da.state_sync = "auto"` restores the state.
        crate::da::state_sync_driver::start(
            &mut da,
            (cfg.da.state_sync, cfg.da.rebuild_cache_mib),
            cfg.network.clone(),
            handle.clone(),
            &metrics,
        );
        let event_loop = EventLoop::new(
            swarm,
            rx,
            store,
            metrics.clone(),
            crate::event_loop::DaParts {
                service: da,
                registrar,
                topic,
            },
            crate::event_loop::Services {
                committee,
                workload,
                traffic,
            },
            cfg,
        );
        Ok(Node {
            handle,
            event_loop,
            metrics,
            store_report,
        })
    }
}

/// The ed25519-dalek signing key of a libp2p Ed25519 keypair (same secret).
///
/// # Errors
/// [`StartError::Swarm`] when the keypair is not Ed25519.
pub fn signing_key(
    key: &libp2p::identity::Keypair,
) -> Result<ed25519_dalek::SigningKey, StartError> {
    let ed = key
        .clone()
        .try_into_ed25519()
        .map_err(|_| StartError::Swarm("the node key must be Ed25519".into()))?;
    let secret = ed.secret();
    let bytes: [u8; 32] = secret
        .as_ref()
        .try_into()
        .map_err(|_| StartError::Swarm("bad Ed25519 secret".into()))?;
    Ok(ed25519_dalek::SigningKey::from_bytes(&bytes))
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    #[tokio::test]
    async fn a_port_in_use_is_reported_with_the_os_reason() {
        let taken = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let dir = tempfile::tempdir().unwrap();
        let cfg = NodeConfig {
            listen: vec![SocketAddr::from(([127, 0, 0, 1], port))],
            listen_ipv6_optional: false,
            ..NodeConfig::new(
                libp2p::identity::Keypair::generate_ed25519(),
                dsdn_protocols::NetworkId::new("devnet").unwrap(),
                dir.path(),
            )
        };
        let err = match Node::start(cfg) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("listening on a taken UDP port succeeded"),
        };
        assert!(err.contains("cannot listen on"), "{err}");
        assert!(err.contains("os error"), "no OS reason in: {err}");
        assert!(!err.ends_with(": "), "{err}");
    }
}
