//! The node's composed [`Behaviour`]: one component per protocol, each present or not
//! according to the node's configuration (light client, DA subscription, DA log on disk,
//! committee membership).

use std::sync::Arc;
use std::time::Duration;

use dsdn_peers::store::PeerStore;
use libp2p::gossipsub::{self, MessageAuthenticity};
use libp2p::request_response::ProtocolSupport;
use libp2p::{identify, ping};

use super::StartError;
use crate::config::NodeConfig;
use crate::metrics::Metrics;
use crate::net::behaviour::{
    committee_behaviour, da_evidence_behaviour, da_proof_behaviour, da_register_behaviour,
    da_rotation_behaviour, da_state_behaviour, da_sync_behaviour, gossipsub_config,
    handshake_behaviour, pex_behaviour, workload_behaviour, Behaviour,
};
use crate::net::component::Component;
use crate::net::discovery::{Discovery, DiscoveryConfig};
use crate::net::handshake::HandshakeProtocol;
use crate::net::nat::Nat;
use crate::net::peer_manager::PeerManager;
use crate::net::pex::PexProtocol;
use crate::net::rpc::Rpc;

/// The behaviour of the node `cfg` describes, keyed by `key`, around its peer `manager`.
///
/// # Errors
/// [`StartError::Swarm`] when a component cannot be built (e.g. an invalid protocol name).
pub(super) fn build_behaviour(
    cfg: &NodeConfig,
    key: &libp2p::identity::Keypair,
    manager: PeerManager,
    store: Arc<PeerStore>,
    metrics: Metrics,
    relay_client: libp2p::relay::client::Behaviour,
) -> Result<Behaviour, StartError> {
    let net = &cfg.network;
    let local = key.public().to_peer_id();
    let handshake = Component::new(
        handshake_behaviour(cfg.bootstrap.peer_connect_timeout),
        HandshakeProtocol::new(
            net.clone(),
            local,
            cfg.services,
            !cfg.light,
            cfg.address_policy.allow_private,
        )
        .with_address_policy(cfg.address_policy),
    );
    let pex = Component::new(
        pex_behaviour(net, Duration::from_secs(30))
            .map_err(|e| StartError::Swarm(e.to_string()))?,
        PexProtocol::new(
            store,
            metrics.clone(),
            local,
            cfg.bootstrap.pex_interval,
            !cfg.light,
        )
        .with_address_policy(cfg.address_policy),
    );
    let gossip_cfg = gossipsub_config(net).map_err(StartError::Swarm)?;
    let gossipsub = if cfg.subscribe_da {
        Some(
            gossipsub::Behaviour::new(MessageAuthenticity::Signed(key.clone()), gossip_cfg)
                .map_err(|e| StartError::Swarm(e.to_string()))?,
        )
    } else {
        None
    };
    let peer_id = key.public().to_peer_id();
    let discovery = Discovery::discovery(
        peer_id,
        DiscoveryConfig {
            network: net.clone(),
            services: cfg.services,
            required_roles: cfg.required_roles.clone(),
            light: cfg.light,
            always_server: cfg.address_policy.allow_private,
            record_ttl: cfg.bootstrap.service_record_ttl,
            address_policy: cfg.address_policy,
        },
        metrics.discovery(),
    )
    .map_err(|e| StartError::Swarm(e.to_string()))?;
    let swarm_err = |e: libp2p::swarm::InvalidProtocol| StartError::Swarm(e.to_string());
    let da_sync = if cfg.subscribe_da {
        let support = if cfg.light {
            ProtocolSupport::Outbound
        } else {
            ProtocolSupport::Full
        };
        Some(Component::new(
            da_sync_behaviour(net, cfg.da.sync_request_timeout, support).map_err(swarm_err)?,
            Rpc::default(),
        ))
    } else {
        None
    };
    let da_proof = if cfg.subscribe_da {
        let support = if cfg.light || cfg.da_dir.is_none() {
            ProtocolSupport::Outbound
        } else {
            ProtocolSupport::Full
        };
        Some(Component::new(
            da_proof_behaviour(net, cfg.da.sync_request_timeout, support).map_err(swarm_err)?,
            Rpc::default(),
        ))
    } else {
        None
    };
    let da_state = if cfg.subscribe_da && !cfg.light {
        let support = if cfg.da_dir.is_none() {
            ProtocolSupport::Outbound
        } else {
            ProtocolSupport::Full
        };
        Some(Component::new(
            da_state_behaviour(net, cfg.da.sync_request_timeout, support).map_err(swarm_err)?,
            Rpc::default(),
        ))
    } else {
        None
    };
    let da_register = if cfg.subscribe_da && !cfg.light {
        Some(Component::new(
            da_register_behaviour(net).map_err(swarm_err)?,
            Rpc::default(),
        ))
    } else {
        None
    };
    let da_evidence = if cfg.subscribe_da {
        Some(Component::new(
            da_evidence_behaviour(net).map_err(swarm_err)?,
            Rpc::default(),
        ))
    } else {
        None
    };
    let committee = match &cfg.committee {
        Some(c) => Some(Component::new(
            committee_behaviour(net, c.phase_timeout).map_err(swarm_err)?,
            Rpc::default(),
        )),
        None => None,
    };
    let da_rotation = match &cfg.committee {
        Some(c) => Some(Component::new(
            da_rotation_behaviour(net, c.round_timeout).map_err(swarm_err)?,
            Rpc::default(),
        )),
        None => None,
    };
    let workload = if cfg.subscribe_da && !cfg.light {
        Some(Component::new(
            workload_behaviour(net, cfg.workload.execute_timeout).map_err(swarm_err)?,
            Rpc::default(),
        ))
    } else {
        None
    };
    Ok(Behaviour {
        committee: committee.into(),
        da_rotation: da_rotation.into(),
        workload: workload.into(),
        peer_manager: manager,
        handshake,
        pex,
        gossipsub: gossipsub.into(),
        discovery,
        // On networks that advertise confirmed addresses only, identify hides the listen
        // addresses (the confirmed external ones remain).
        identify: identify::Behaviour::new(
            identify::Config::new(format!("/dsdn/{net}/1.0.0"), key.public())
                .with_agent_version(cfg.agent_version.clone())
                .with_push_listen_addr_updates(true)
                .with_hide_listen_addrs(!cfg.address_policy.allow_private),
        ),
        nat: Nat::nat(
            local,
            &cfg.nat,
            relay_client,
            cfg.light,
            std::time::Instant::now(),
            metrics.nat.clone(),
            cfg.address_policy,
        ),
        ping: ping::Behaviour::new(ping::Config::new()),
        da_sync: da_sync.into(),
        da_proof: da_proof.into(),
        da_state: da_state.into(),
        da_register: da_register.into(),
        da_evidence: da_evidence.into(),
    })
}
