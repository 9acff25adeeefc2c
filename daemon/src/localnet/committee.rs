//! The coordinator-committee steps of a [`LocalNet`] (Tahap 14A.2B): run the DKG through a
//! member's control API, make the group key the network's `da_authority`, restart every
//! node with it, and wait for the DA log to reach a height everywhere.

use std::time::{Duration, Instant};

use super::net::{POLL_INTERVAL, POLL_REQUEST_TIMEOUT};
use dsdn_p2p::committee::CommitteeConfig;

use super::{LocalNet, LocalNetError, NodeMode};
use crate::api::CommitteeStatusResponse;

impl LocalNet {
    /// The `[committee]` the coordinators were configured with; `None` for a net with a
    /// single coordinator.
    pub fn committee(&self) -> Option<&CommitteeConfig> {
        Some(&self.config.seeds.committee).filter(|c| c.is_configured())
    }

    /// Runs the committee's FROST DKG through the control API of the first member
    /// (`coordinator-1`): `POST /v1/committee/dkg`, which returns once that
    /// member adopted the group key. Call it once the members are connected.
    ///
    /// # Errors
    /// [`LocalNetError::Invalid`] when the net has no committee, [`LocalNetError::Client`]
    /// when the DKG fails (the API's message names the members that did not take part) and
    /// [`LocalNetError::Invalid`] when the answer carries no group key.
    pub async fn committee_dkg(&self) -> Result<CommitteeStatusResponse, LocalNetError> {
        if self.committee().is_none() {
            return Err(LocalNetError::Invalid(
                "this local net has no coordinator committee".to_owned(),
            ));
        }
        let status = self.coordinator().client().committee_dkg().await?;
        if status.group_key.is_none() {
            return Err(LocalNetError::Invalid(format!(
                "the DKG returned without a group key (state {})",
                status.state
            )));
        }
        Ok(status)
    }

    /// Every coordinator's `GET /v1/committee/status`, in member order.
    ///
    /// # Errors
    /// [`LocalNetError::Client`] for the first member whose API fails (a non-member
    /// answers 404).
    pub async fn committee_statuses(
        &self,
    ) -> Result<Vec<(String, CommitteeStatusResponse)>, LocalNetError> {
        let mut out = Vec::new();
        for node in self.coordinators() {
            let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
            out.push((node.name().to_owned(), client.committee_status().await?));
        }
        Ok(out)
    }

    /// Sets `[network] da_authority` of the shared seeds.toml to `key_hex` (64 hex: a node
    /// key or a committee group key) and rewrites the file. Running nodes read it at their
    /// next start (see [`LocalNet::restart_all`]).
    ///
    /// # Errors
    /// [`LocalNetError::Invalid`] when `key_hex` is not 64 hex characters,
    /// [`LocalNetError::Io`] when the file cannot be written.
    pub fn set_da_authority(&mut self, key_hex: &str) -> Result<(), LocalNetError> {
        if key_hex.len() != 64 || !key_hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(LocalNetError::Invalid(format!(
                "a DA authority is 64 hex characters, got {key_hex:?}"
            )));
        }
        let key = dsdn_bootstrap::config::NetworkConfig::parse_da_authority(key_hex)
            .map_err(LocalNetError::Invalid)?;
        self.config.seeds.network.da_authority = Some(key);
        self.config.write(&self.config_path)
    }

    /// Restarts every node with its data directory (node key, peers.dat, DA log, committee
    /// key share) and the current seeds.toml: SIGTERM to all ([`LocalNet::stop_all`]), then
    /// the bootstrap node started and waited for, then every other node started and waited
    /// for. `progress` gets one line per node that is up. Returns each node's name and
    /// whether it had exited by itself on SIGTERM.
    ///
    /// # Errors
    /// As [`LocalNet::stop_all`] and [`super::Node::wait_ready`].
    pub async fn restart_all(
        &mut self,
        mut progress: impl FnMut(&str),
    ) -> Result<Vec<(String, bool)>, LocalNetError> {
        let stopped = self.stop_all().await?;
        for i in 0..self.nodes.len() {
            // Already stopped: restart() only starts the process again.
            self.nodes[i].restart().await?;
            if i == 0 {
                self.wait_node_ready(0, &mut progress).await?;
            }
        }
        for i in 1..self.nodes.len() {
            self.wait_node_ready(i, &mut progress).await?;
        }
        Ok(stopped)
    }

    /// Waits until every node that carries DA events (every node but the dedicated
    /// bootstrap node) reports a DA log height of at least `height` in `GET /v1/da/state`;
    /// returns each such node's name and height.
    ///
    /// # Errors
    /// [`LocalNetError::Timeout`] listing the heights seen last; a dead node as
    /// [`LocalNetError::Node`].
    pub async fn wait_da_height(
        &self,
        height: u64,
        timeout: Duration,
    ) -> Result<Vec<(String, u64)>, LocalNetError> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_alive()?;
            let mut seen = Vec::new();
            let mut all = true;
            for node in self
                .nodes
                .iter()
                .filter(|n| n.mode() != NodeMode::Bootstrap)
            {
                let client = node.client_with_timeout(POLL_REQUEST_TIMEOUT);
                match client.da_state().await {
                    Ok(s) => {
                        all &= s.height >= height;
                        seen.push((node.name().to_owned(), s.height));
                    }
                    Err(_) => {
                        all = false;
                        seen.push((node.name().to_owned(), 0));
                    }
                }
            }
            if all {
                return Ok(seen);
            }
            if Instant::now() >= deadline {
                let last: Vec<String> = seen.iter().map(|(n, h)| format!("{n}={h}")).collect();
                return Err(LocalNetError::Timeout {
                    what: format!(
                        "every node to reach DA height {height}; last: {}",
                        last.join(" ")
                    ),
                    secs: timeout.as_secs(),
                });
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{sample_da_events, LocalNetSpec};
    use super::*;
    use crate::client::ClientError;

    /// The committee devnet path with the real daemon: 3 coordinators as a 2-of-3
    /// committee, DKG over the network, restart with the group key as `da_authority`,
    /// DA events sealed by the committee reach every node. `cargo build --bins` first, then
    /// `cargo test -p dsdn-daemon --lib real_committee -- --ignored --nocapture`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    #[ignore = "needs the dsdnd binary (cargo build --bins)"]
    async fn real_committee_localnet_2_of_3() {
        let spec = LocalNetSpec {
            coordinators: 3,
            committee_threshold: 2,
            ..LocalNetSpec::default()
        };
        let mut net = LocalNet::start_with_progress(spec, |l| println!("{l}"))
            .await
            .expect("start");
        let names: Vec<&str> = net.nodes().iter().map(|n| n.name()).collect();
        assert_eq!(
            &names[..4],
            [
                "bootstrap",
                "coordinator-1",
                "coordinator-2",
                "coordinator-3"
            ]
        );
        let committee = net.committee().expect("a committee").clone();
        let ids: Vec<String> = net.coordinators().map(|n| n.peer_id().to_owned()).collect();
        let members: Vec<String> = committee.members.iter().map(ToString::to_string).collect();
        assert_eq!(members, ids);
        assert_eq!(net.config().seeds.network.da_authority, None);
        // The daemon parses the written [committee] section.
        let written = dsdn_p2p::seeds::SeedsConfig::load(net.config_path()).expect("seeds.toml");
        assert_eq!(written.committee.members.len(), 3);
        assert_eq!(written.committee.threshold, 2);

        net.wait_all_connected(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        let status = net
            .committee_dkg()
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        let key = status.group_key.clone().expect("group key");
        assert_eq!((status.threshold, status.epoch), (2, 0));
        for (name, st) in net.committee_statuses().await.expect("statuses") {
            assert_eq!(st.group_key.as_deref(), Some(key.as_str()), "{name}");
        }
        // A storage node is no member.
        let err = net
            .node("storage-1")
            .expect("node")
            .client()
            .committee_status()
            .await
            .expect_err("not a member");
        assert!(matches!(err, ClientError::Api { status: 404, .. }), "{err}");

        net.set_da_authority(&key).expect("rewrite seeds.toml");
        let stopped = net.restart_all(|l| println!("{l}")).await.expect("restart");
        assert!(stopped.iter().all(|(_, clean)| *clean), "{stopped:?}");
        assert!(net.nodes().iter().all(|n| n.starts() == 2));
        net.wait_all_connected(Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        // The key shares were reloaded from the data directories.
        for (name, st) in net.committee_statuses().await.expect("statuses") {
            assert_eq!(st.group_key.as_deref(), Some(key.as_str()), "{name}");
        }

        let storage: Vec<String> = net
            .storage_nodes()
            .map(|n| n.peer_id().to_owned())
            .collect();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let st = net.coordinator().client().da_state().await.expect("state");
            if st.nodes >= storage.len() {
                assert!(st.is_authority, "every member seals by rotation");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "storage nodes did not register through the committee ({} of {})\n{}",
                st.nodes,
                storage.len(),
                net.log_tails(20)
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let events: Vec<_> = sample_da_events(&storage, 10 + storage.len())
            .into_iter()
            .filter(|e| !matches!(e, dsdn_protocols::da::DaEvent::NodeRegistered { .. }))
            .collect();
        // Every member takes events (proposer rotation): half on each of two members.
        let (first, second) = events.split_at(5);
        let resp = net
            .node("coordinator-2")
            .expect("node")
            .client()
            .da_publish(second)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        assert_eq!(resp.events, second.len());
        let resp = net
            .coordinator()
            .client()
            .da_publish(first)
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        assert_eq!(resp.events, 5);
        let tip = net.coordinator().client().da_state().await.expect("state");
        let heights = net
            .wait_da_height(tip.height, Duration::from_secs(60))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        println!("DA height {} on every node: {heights:?}", tip.height);
        assert_eq!(heights.len(), 3 + storage.len());
        let root = net
            .wait_da_converged(tip.events, Duration::from_secs(30))
            .await
            .unwrap_or_else(|e| panic!("{e}\n{}", net.log_tails(20)));
        assert_eq!(root, hex::encode(tip.state_root));
        let stopped = net.stop_all().await.expect("stop");
        assert!(stopped.iter().all(|(_, clean)| *clean), "{stopped:?}");
    }

    #[tokio::test]
    async fn bad_committee_shapes_are_refused_before_anything_starts() {
        let spec = LocalNetSpec {
            coordinators: 3,
            committee_threshold: 4,
            dsdnd: Some("/nonexistent/dsdnd".into()),
            ..LocalNetSpec::default()
        };
        let err = LocalNet::start(spec).await.expect_err("threshold > n");
        assert!(matches!(err, LocalNetError::Invalid(_)), "{err}");
    }
}
