//! Swarm-level tests of the coordinator committee (issue 6 §2–3): FROST DKG and threshold
//! signing over `/dsdn/<net>/committee/1.0.0` between real nodes on loopback, each with its
//! own data directory. The only misbehaviour injected is the test-only
//! `CommitteeNodeConfig::test_corrupt_shares` flag and a raw non-member swarm.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use dsdn_bootstrap::config::StaticPeer;
use dsdn_p2p::committee::files::{guard_path, key_share_path};
use dsdn_p2p::committee::{
    CommitteeNodeConfig, CommitteeState, CommitteeStatus, DkgRunError, ThresholdSignError,
};
use dsdn_p2p::net::behaviour::{committee_behaviour, CommitteeBehaviour};
use dsdn_p2p::{Metrics, Node, NodeConfig, NodeHandle};
use dsdn_protocols::committee::{CommitteeRequest, CommitteeResponse, GroupKey, Refusal, Slot};
use dsdn_protocols::{ServiceSet, ServiceType};
use futures::StreamExt;
use libp2p::identity::Keypair;
use libp2p::request_response::{self, Message};
use libp2p::swarm::SwarmEvent;
use libp2p::{PeerId, Swarm};

mod common;
use common::{
    blob_events, free_addr, is_connected, metric, net, quick_bootstrap, quick_da, tcp_swarm,
    wait_until,
};

/// One committee member: its identity, address and data directory survive restarts.
struct Member {
    key: Keypair,
    peer: PeerId,
    listen: SocketAddr,
    dir: tempfile::TempDir,
    corrupt: bool,
    node: Option<(NodeHandle, Metrics)>,
}

/// A committee of in-process nodes.
struct Committee {
    members: Vec<Member>,
    threshold: u16,
    epoch: u64,
    /// `da_authority` of the members; when set they also keep the DA log.
    da_authority: Option<[u8; 32]>,
}

impl Committee {
    fn new(t: u16, n: usize) -> Self {
        let members = (0..n)
            .map(|_| {
                let key = Keypair::generate_ed25519();
                Member {
                    peer: key.public().to_peer_id(),
                    key,
                    listen: free_addr("127.0.0.1"),
                    dir: tempfile::tempdir().unwrap(),
                    corrupt: false,
                    node: None,
                }
            })
            .collect();
        Self {
            members,
            threshold: t,
            epoch: 1,
            da_authority: None,
        }
    }

    fn peers(&self) -> Vec<PeerId> {
        self.members.iter().map(|m| m.peer).collect()
    }

    fn committee_dir(&self, i: usize) -> PathBuf {
        self.members[i].dir.path().join("committee")
    }

    fn handle(&self, i: usize) -> &NodeHandle {
        &self.members[i].node.as_ref().expect("member is down").0
    }

    fn metric(&self, i: usize, sample: &str) -> f64 {
        metric(
            &self.members[i].node.as_ref().expect("member is down").1,
            sample,
        )
    }

    /// Starts member `i`, dialling every other member (retried until they are up). Retries
    /// while the previous instance still holds the port.
    async fn start(&mut self, i: usize) {
        let m = &self.members[i];
        let statics: Vec<StaticPeer> = self
            .members
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, o)| StaticPeer::Socket(o.listen))
            .collect();
        if self.da_authority.is_some() {
            std::fs::create_dir_all(m.dir.path().join("da")).unwrap();
        }
        let mut committee = CommitteeNodeConfig::new(
            self.peers(),
            self.threshold,
            self.epoch,
            self.committee_dir(i),
        );
        committee.test_corrupt_shares = m.corrupt;
        let cfg = NodeConfig {
            da_authority: self.da_authority,
            services: ServiceSet::from_types([ServiceType::Coordinator]),
            subscribe_da: self.da_authority.is_some(),
            da: quick_da(),
            da_dir: self
                .da_authority
                .map(|_| self.members[i].dir.path().join("da")),
            listen: vec![m.listen],
            bootstrap: quick_bootstrap(statics),
            agent_version: "test".into(),
            mode: "coordinator".into(),
            committee: Some(committee),
            ..NodeConfig::new(m.key.clone(), net(), m.dir.path())
        };
        let end = tokio::time::Instant::now() + Duration::from_secs(10);
        let node = loop {
            match Node::start(cfg.clone()) {
                Ok(node) => break node,
                Err(e) => {
                    assert!(tokio::time::Instant::now() < end, "cannot restart: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        };
        let handle = node.handle.clone();
        let metrics = node.metrics.clone();
        tokio::spawn(node.event_loop.run());
        self.members[i].node = Some((handle, metrics));
    }

    /// Stops member `i` (its event loop ends when the last handle is dropped).
    fn stop(&mut self, i: usize) {
        self.members[i].node = None;
    }

    /// Starts every member and waits until all are connected to each other.
    async fn start_all(&mut self) {
        for i in 0..self.members.len() {
            self.start(i).await;
        }
        self.wait_mesh().await;
    }

    /// Waits until every running member is connected to every other running member.
    async fn wait_mesh(&self) {
        let up: Vec<usize> = (0..self.members.len())
            .filter(|i| self.members[*i].node.is_some())
            .collect();
        for &i in &up {
            for &j in &up {
                if i != j {
                    let (h, p) = (self.handle(i).clone(), self.members[j].peer);
                    wait_until(Duration::from_secs(30), "committee mesh", || {
                        let h = h.clone();
                        async move { is_connected(&h, p).await }
                    })
                    .await;
                }
            }
        }
    }

    async fn status(&self, i: usize) -> CommitteeStatus {
        self.handle(i).committee_status().await.unwrap().unwrap()
    }

    /// Runs the DKG from member 0 and checks every running member adopted the same key.
    async fn dkg(&self) -> GroupKey {
        let st = self.handle(0).committee_dkg().await.expect("DKG failed");
        assert_eq!(st.state, CommitteeState::Ready);
        let hex_key = st.group_key.clone().unwrap();
        for i in 0..self.members.len() {
            if self.members[i].node.is_none() {
                continue;
            }
            // The others adopt once every confirmation reached them.
            let h = self.handle(i).clone();
            wait_until(Duration::from_secs(30), "member ready", || {
                let h = h.clone();
                async move {
                    h.committee_status().await.unwrap().unwrap().state == CommitteeState::Ready
                }
            })
            .await;
            let s = self.status(i).await;
            assert_eq!(s.group_key.as_ref(), Some(&hex_key), "member {i}");
            assert_eq!((s.threshold, s.epoch), (self.threshold, self.epoch));
            assert_eq!(s.members, self.peers());
            let path = key_share_path(&self.committee_dir(i), self.epoch);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{}", path.display());
            }
        }
        let bytes: [u8; 32] = hex::decode(hex_key).unwrap().try_into().unwrap();
        GroupKey(bytes)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dkg_3_of_4_over_the_network_gives_every_member_the_same_group_key() {
    let mut c = Committee::new(3, 4);
    c.start_all().await;
    let key = c.dkg().await;
    // A second ceremony for the same epoch is refused.
    assert_eq!(
        c.handle(2).committee_dkg().await,
        Err(DkgRunError::AlreadyHaveKey(1))
    );
    // And the key signs.
    let sig = c
        .handle(1)
        .threshold_sign(Slot::DaBlob(1), b"blob one".to_vec())
        .await
        .unwrap();
    assert!(key.verify(b"blob one", &sig));
    assert!(!key.verify(b"blob two", &sig));
    assert_eq!(
        c.metric(1, "committee_signatures_total{result=\"ok\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn dkg_5_of_7_over_the_network_gives_every_member_the_same_group_key() {
    let mut c = Committee::new(5, 7);
    c.start_all().await;
    let key = c.dkg().await;
    let sig = c
        .handle(6)
        .threshold_sign(Slot::DaBlob(7), b"blob".to_vec())
        .await
        .unwrap();
    assert!(key.verify(b"blob", &sig));
    // A receipt slot carries a receipt: members refuse to sign anything else under it.
    match c
        .handle(6)
        .threshold_sign(Slot::Receipt([7; 32]), b"not a receipt".to_vec())
        .await
    {
        Err(ThresholdSignError::BelowThreshold { refused, .. }) => {
            assert!(refused.len() >= 2, "{refused:?}");
            assert!(
                refused.iter().all(|(_, r)| r.contains("signing policy")),
                "{refused:?}"
            );
        }
        other => panic!("a non-receipt was signed under a receipt slot: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn signing_3_of_4_works_with_one_member_down_and_names_the_missing_below_threshold() {
    let mut c = Committee::new(3, 4);
    c.start_all().await;
    let key = c.dkg().await;

    c.stop(3);
    let sig = c
        .handle(0)
        .threshold_sign(Slot::DaBlob(10), b"ten".to_vec())
        .await
        .unwrap();
    assert!(key.verify(b"ten", &sig));

    c.stop(2);
    let err = c
        .handle(0)
        .threshold_sign(Slot::DaBlob(11), b"eleven".to_vec())
        .await
        .unwrap_err();
    match err {
        ThresholdSignError::BelowThreshold {
            have,
            need,
            mut missing,
            refused,
        } => {
            assert_eq!((have, need), (2, 3));
            missing.sort();
            let mut expected = vec![c.members[2].peer, c.members[3].peer];
            expected.sort();
            assert_eq!(missing, expected);
            assert!(refused.is_empty(), "{refused:?}");
        }
        other => panic!("expected BelowThreshold, got {other:?}"),
    }
    assert_eq!(
        c.metric(0, "committee_signatures_total{result=\"below_threshold\"}"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_invalid_share_is_detected_and_the_member_named() {
    let mut c = Committee::new(3, 4);
    c.members[2].corrupt = true;
    c.start_all().await;
    c.dkg().await;
    // With member 3 down, the signers are exactly 0, 1 and 2.
    c.stop(3);
    let err = c
        .handle(0)
        .threshold_sign(Slot::DaBlob(5), b"five".to_vec())
        .await
        .unwrap_err();
    assert_eq!(
        err,
        ThresholdSignError::InvalidShare {
            member: c.members[2].peer
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn equivocation_is_refused_also_after_restarts_and_the_key_share_survives() {
    let mut c = Committee::new(3, 4);
    c.start_all().await;
    let key = c.dkg().await;
    let slot = Slot::DaBlob(7);

    // Members 0, 1 and 2 sign message A for the slot.
    c.stop(3);
    let sig = c
        .handle(0)
        .threshold_sign(slot, b"A".to_vec())
        .await
        .unwrap();
    assert!(key.verify(b"A", &sig));
    // The proposer itself refuses B.
    assert_eq!(
        c.handle(0).threshold_sign(slot, b"B".to_vec()).await,
        Err(ThresholdSignError::Equivocation {
            slot,
            members: vec![c.members[0].peer]
        })
    );
    assert!(guard_path(&c.committee_dir(1), 1).exists());

    // Every signer restarts (reloading key share and guard from disk); member 3, which
    // never signed A, proposes B: the three others refuse.
    for i in 0..3 {
        c.stop(i);
    }
    for i in 0..4 {
        c.start(i).await;
    }
    c.wait_mesh().await;
    for i in 0..4 {
        let s = c.status(i).await;
        assert_eq!(s.state, CommitteeState::Ready, "member {i}");
        assert_eq!(s.group_key, Some(key.to_hex()));
    }
    match c.handle(3).threshold_sign(slot, b"B".to_vec()).await {
        Err(ThresholdSignError::Equivocation {
            slot: s,
            mut members,
        }) => {
            assert_eq!(s, slot);
            members.sort();
            let mut expected: Vec<PeerId> = (0..3).map(|i| c.members[i].peer).collect();
            expected.sort();
            // Every member asked answered before the round was decided.
            assert_eq!(members, expected);
        }
        other => panic!("expected an equivocation refusal, got {other:?}"),
    }
    let refusals: f64 = (0..3)
        .map(|i| {
            c.metric(
                i,
                "committee_requests_refused_total{reason=\"equivocation\"}",
            )
        })
        .sum();
    assert_eq!(refusals, 3.0);
    // The same message again is fine, and the restarted key shares still sign.
    let sig = c
        .handle(3)
        .threshold_sign(slot, b"A".to_vec())
        .await
        .unwrap();
    assert!(key.verify(b"A", &sig));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_corrupt_key_share_is_moved_aside_and_not_trusted() {
    let mut c = Committee::new(2, 3);
    c.start_all().await;
    c.dkg().await;
    c.stop(1);
    let path = key_share_path(&c.committee_dir(1), 1);
    std::fs::write(&path, b"not a key share").unwrap();
    c.start(1).await;
    let s = c.status(1).await;
    assert!(
        matches!(&s.state, CommitteeState::Failed(r) if r.contains("moved aside")),
        "{s:?}"
    );
    assert_eq!(s.group_key, None);
    assert!(!path.exists());
    let aside = std::fs::read_dir(c.committee_dir(1))
        .unwrap()
        .filter_map(|e| e.ok())
        .any(|e| e.file_name().to_string_lossy().contains(".corrupt-"));
    assert!(aside);
    assert_eq!(
        c.handle(1)
            .threshold_sign(Slot::DaBlob(1), b"x".to_vec())
            .await,
        Err(ThresholdSignError::NoKeyShare)
    );
}

/// A raw swarm speaking only the committee protocol, with a key that is no member's.
fn outsider() -> Swarm<CommitteeBehaviour> {
    let behaviour = committee_behaviour(&net(), Duration::from_secs(5)).unwrap();
    tcp_swarm(Keypair::generate_ed25519(), behaviour)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_from_a_non_member_are_refused_and_counted() {
    let mut c = Committee::new(2, 3);
    c.start_all().await;
    c.dkg().await;
    let target = c.members[0].peer;
    let mut swarm = outsider();
    swarm
        .dial(dsdn_p2p::node::listen_addrs(c.members[0].listen)[1].clone())
        .unwrap();
    let requests = [
        CommitteeRequest::Commit {
            epoch: 1,
            slot: Slot::DaBlob(1),
            message_hash: [0; 32],
        },
        CommitteeRequest::DkgStart(dsdn_protocols::committee::CommitteeConfig {
            epoch: 2,
            threshold: 2,
            members: Vec::new(),
        }),
    ];
    let mut answers = Vec::new();
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while answers.len() < requests.len() {
        let ev = tokio::time::timeout_at(end, swarm.select_next_some())
            .await
            .expect("no answer from the member");
        match ev {
            SwarmEvent::ConnectionEstablished { peer_id, .. } if peer_id == target => {
                for r in &requests {
                    swarm.behaviour_mut().send_request(&target, r.clone());
                }
            }
            SwarmEvent::Behaviour(request_response::Event::Message {
                message: Message::Response { response, .. },
                ..
            }) => answers.push(response),
            SwarmEvent::Behaviour(request_response::Event::OutboundFailure { error, .. }) => {
                panic!("request failed: {error}")
            }
            _ => {}
        }
    }
    for a in answers {
        assert_eq!(a, CommitteeResponse::Refused(Refusal::NotAMember));
    }
    assert_eq!(
        c.metric(
            0,
            "committee_requests_refused_total{reason=\"not_a_member\"}"
        ),
        2.0
    );
    // The member is unaffected.
    assert_eq!(c.status(0).await.state, CommitteeState::Ready);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn da_blobs_are_sealed_by_the_committee_and_verified_against_the_group_key() {
    let mut c = Committee::new(2, 3);
    c.start_all().await;
    let key = c.dkg().await;
    // The group key becomes the DA authority (the network configuration is rewritten and
    // the members restarted, as an operator would).
    for i in 0..3 {
        c.stop(i);
    }
    c.da_authority = Some(key.0);
    for i in 0..3 {
        c.start(i).await;
    }
    c.wait_mesh().await;

    // Any member takes events (issue 13 §1): they reach the proposer of the round, which
    // need not be the member they were posted to.
    let published = c
        .handle(1)
        .publish_da(blob_events(1))
        .await
        .unwrap()
        .expect("the committee signs blob 1");
    assert_eq!(published.heights, vec![1]);
    for i in 0..3 {
        let h = c
            .handle(i)
            .wait_da_height(1, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(h >= 1, "member {i} got the committee-signed blob");
    }

    // One member of three down: 2-of-3 still signs, and the blob reaches the other member.
    c.stop(2);
    let published = c
        .handle(0)
        .publish_da(blob_events(2))
        .await
        .unwrap()
        .expect("two of three members still sign");
    assert_eq!(published.heights, vec![2]);
    c.handle(1)
        .wait_da_height(2, Duration::from_secs(30))
        .await
        .unwrap();
    let (a, b) = (
        c.handle(0).da_state().await.unwrap(),
        c.handle(1).da_state().await.unwrap(),
    );
    assert_eq!((a.tip_hash, a.state_root), (b.tip_hash, b.state_root));

    // Below the threshold: no blob, the status names the missing member, and the
    // publication waits until the member is back (nothing acknowledged is dropped).
    c.stop(1);
    let handle = c.handle(0).clone();
    let waiting = tokio::spawn(async move { handle.publish_da(blob_events(3)).await });
    let missing = c.members[1].peer;
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let st = c.status(0).await;
        if let Some(Ok(r)) = &st.rotation {
            if r.state == "no_majority" && r.waiting_for.contains(&missing) {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < end,
            "no no_majority status naming {missing}: {:?}",
            st.rotation
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!waiting.is_finished(), "answered without a quorum");
    assert_eq!(c.handle(0).da_state().await.unwrap().height, 2);
    c.start(1).await;
    let published = tokio::time::timeout(Duration::from_secs(60), waiting)
        .await
        .expect("answered once the member is back")
        .unwrap()
        .unwrap()
        .expect("sealed once two of three members sign again");
    assert_eq!(published.heights, vec![3]);
}
