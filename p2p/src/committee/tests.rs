//! The pure service without a network: three members whose requests are delivered by hand,
//! with `now` moved explicitly (timeouts without waiting).

use std::time::{Duration, Instant};

use dsdn_protocols::committee::{GroupKey, Slot};
use libp2p::identity::Keypair;
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::*;
use crate::net::rpc::Reply;

struct Sim {
    nodes: Vec<CommitteeService>,
    peers: Vec<PeerId>,
    /// Members whose requests are never answered (as if unreachable and silent).
    silent: Vec<usize>,
    /// Members whose guard writes are not carried out (held until [`Sim::write_guards`]).
    slow_disk: Vec<usize>,
    /// Guard writes not carried out yet: (member, seq, path, bytes).
    unwritten: Vec<(usize, u64, std::path::PathBuf, Vec<u8>)>,
    /// Inbound requests not answered yet: reply handle → (requester, its tag).
    waiting: std::collections::HashMap<Reply, (usize, u64)>,
    next_reply: u64,
    _dirs: Vec<tempfile::TempDir>,
}

impl Sim {
    fn new(t: u16, n: usize) -> Self {
        let keys: Vec<Keypair> = (0..n).map(|_| Keypair::generate_ed25519()).collect();
        let peers: Vec<PeerId> = keys.iter().map(|k| k.public().to_peer_id()).collect();
        let mut nodes = Vec::new();
        let mut dirs = Vec::new();
        for p in &peers {
            let dir = tempfile::tempdir().unwrap();
            let cfg = CommitteeNodeConfig::new(peers.clone(), t, 1, dir.path().join("c"));
            let m = CommitteeMetrics::new(&prometheus::Registry::new()).unwrap();
            nodes.push(CommitteeService::open(cfg, *p, m).unwrap());
            dirs.push(dir);
        }
        Self {
            nodes,
            peers,
            silent: Vec::new(),
            slow_disk: Vec::new(),
            unwritten: Vec::new(),
            waiting: std::collections::HashMap::new(),
            next_reply: 0,
            _dirs: dirs,
        }
    }

    /// Carries out every queued action (and the actions they cause) until none is left:
    /// requests are delivered, answers returned, guard writes done at once (except on
    /// `slow_disk` members).
    fn deliver(&mut self, now: Instant) {
        loop {
            let mut any = false;
            for from in 0..self.nodes.len() {
                for action in self.nodes[from].take_actions() {
                    any = true;
                    match action {
                        CommitteeAction::Send { tag, peer, request } => {
                            let to = self.peers.iter().position(|p| *p == peer).unwrap();
                            if self.silent.contains(&to) {
                                continue;
                            }
                            let reply = Reply::for_test(self.next_reply);
                            self.next_reply += 1;
                            self.waiting.insert(reply, (from, tag));
                            self.nodes[to].on_request(self.peers[from], request, reply, now);
                        }
                        CommitteeAction::Respond(reply, response) => {
                            let (to, tag) = self.waiting.remove(&reply).unwrap();
                            self.nodes[to].on_response(tag, response, now);
                        }
                        CommitteeAction::PersistGuard { seq, path, bytes } => {
                            if self.slow_disk.contains(&from) {
                                self.unwritten.push((from, seq, path, bytes));
                            } else {
                                files::write_private(&path, &bytes).unwrap();
                                self.nodes[from].on_guard_persisted(seq, Ok(()), now);
                            }
                        }
                    }
                }
            }
            if !any {
                return;
            }
        }
    }

    /// Ends the held guard writes: done when `fail` is `None`, failed with it otherwise.
    fn write_guards(&mut self, fail: Option<&str>, now: Instant) {
        for (node, seq, path, bytes) in std::mem::take(&mut self.unwritten) {
            let result = match fail {
                None => {
                    files::write_private(&path, &bytes).unwrap();
                    Ok(())
                }
                Some(e) => Err(e.to_owned()),
            };
            self.nodes[node].on_guard_persisted(seq, result, now);
        }
        self.deliver(now);
    }

    fn dkg(&mut self, now: Instant) -> GroupKey {
        let (tx, mut rx) = oneshot::channel();
        self.nodes[0].start_dkg(tx, now);
        self.deliver(now);
        let st = rx.try_recv().unwrap().unwrap();
        assert_eq!(st.state, CommitteeState::Ready);
        for n in &self.nodes {
            assert_eq!(n.status().group_key, st.group_key);
        }
        let key: [u8; 32] = hex::decode(st.group_key.unwrap())
            .unwrap()
            .try_into()
            .unwrap();
        GroupKey(key)
    }

    fn sign(
        &mut self,
        proposer: usize,
        slot: Slot,
        msg: &[u8],
        now: Instant,
    ) -> oneshot::Receiver<Result<GroupSignature, ThresholdSignError>> {
        let (tx, rx) = oneshot::channel();
        self.nodes[proposer].start_sign(slot, msg.to_vec(), tx, now);
        self.deliver(now);
        rx
    }
}

#[test]
fn dkg_and_signing_without_a_network() {
    let now = Instant::now();
    let mut sim = Sim::new(2, 3);
    let key = sim.dkg(now);
    let mut rx = sim.sign(1, Slot::DaBlob(1), b"one", now);
    let sig = rx.try_recv().unwrap().unwrap();
    assert!(key.verify(b"one", &sig.signature));
    assert_eq!(sig.signers.len(), 2);
    // Another message for the same slot: the proposer refuses itself.
    let mut rx = sim.sign(1, Slot::DaBlob(1), b"two", now);
    assert!(matches!(
        rx.try_recv().unwrap(),
        Err(ThresholdSignError::Equivocation { .. })
    ));
}

#[test]
fn silent_members_time_out_into_below_threshold() {
    let now = Instant::now();
    let mut sim = Sim::new(3, 4);
    sim.dkg(now);
    sim.silent = vec![2, 3];
    let mut rx = sim.sign(0, Slot::DaBlob(9), b"nine", now);
    assert!(rx.try_recv().is_err(), "decided before the deadline");
    let deadline = sim.nodes[0].next_deadline().unwrap();
    assert_eq!(deadline, now + Duration::from_secs(2));
    sim.nodes[0].poll(deadline);
    match rx.try_recv().unwrap() {
        Err(ThresholdSignError::BelowThreshold {
            have,
            need,
            mut missing,
            ..
        }) => {
            assert_eq!((have, need), (2, 3));
            missing.sort();
            let mut expected = vec![sim.peers[2], sim.peers[3]];
            expected.sort();
            assert_eq!(missing, expected);
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(sim.nodes[0].next_deadline(), None);
}

#[test]
fn a_dkg_with_a_silent_member_fails_naming_it() {
    let now = Instant::now();
    let mut sim = Sim::new(2, 3);
    sim.silent = vec![2];
    let (tx, mut rx) = oneshot::channel();
    sim.nodes[0].start_dkg(tx, now);
    sim.deliver(now);
    assert!(rx.try_recv().is_err());
    sim.nodes[0].poll(now + Duration::from_secs(31));
    match rx.try_recv().unwrap() {
        Err(DkgRunError::Failed(reason)) => {
            assert!(reason.contains(&sim.peers[2].to_string()), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        sim.nodes[0].status().state,
        CommitteeState::Failed(_)
    ));
}

#[test]
fn a_node_outside_the_member_list_follows_and_a_bad_config_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let random = || Keypair::generate_ed25519().public().to_peer_id();
    let members: Vec<PeerId> = (0..3).map(|_| random()).collect();
    let cfg = CommitteeNodeConfig::new(members.clone(), 2, 1, dir.path().to_path_buf());
    let m = CommitteeMetrics::new(&prometheus::Registry::new()).unwrap();
    // Issue 13 §3: a coordinator outside the committee runs as a follower.
    let follower = CommitteeService::open(cfg, random(), m).unwrap();
    assert!(follower.is_follower());
    assert_eq!(follower.status().state, CommitteeState::Following);
    let cfg = CommitteeNodeConfig::new(members.clone(), 4, 1, dir.path().to_path_buf());
    let m = CommitteeMetrics::new(&prometheus::Registry::new()).unwrap();
    assert!(CommitteeService::open(cfg, members[0], m).is_err());
}

#[test]
fn a_share_leaves_only_once_its_guard_is_durable() {
    let now = Instant::now();
    let mut sim = Sim::new(2, 3);
    let key = sim.dkg(now);
    // Every member's disk is slow: the commitments flow, the shares are held.
    sim.slow_disk = vec![0, 1, 2];
    let mut rx = sim.sign(0, Slot::DaBlob(4), b"four", now);
    assert!(
        rx.try_recv().is_err(),
        "signed before any guard was durable"
    );
    let held: usize = sim.nodes.iter().map(CommitteeService::held_shares).sum();
    assert_eq!(held, 2, "the proposer's own share and its co-signer's");
    let guard = files::guard_path(sim._dirs[0].path().join("c").as_path(), 1);
    let before = std::fs::read(&guard).unwrap();
    sim.write_guards(None, now);
    assert_ne!(
        std::fs::read(&guard).unwrap(),
        before,
        "the guard was not rewritten"
    );
    let sig = rx.try_recv().unwrap().unwrap();
    assert!(key.verify(b"four", &sig.signature));
    assert_eq!(
        sim.nodes
            .iter()
            .map(CommitteeService::held_shares)
            .sum::<usize>(),
        0
    );
}

#[test]
fn a_failed_guard_write_withholds_the_share() {
    let now = Instant::now();
    let mut sim = Sim::new(2, 3);
    sim.dkg(now);
    sim.slow_disk = vec![0, 1, 2];
    let mut rx = sim.sign(0, Slot::DaBlob(5), b"five", now);
    sim.write_guards(Some("No space left on device"), now);
    match rx.try_recv().unwrap() {
        Err(ThresholdSignError::Refused(reason)) => {
            assert!(reason.contains("No space left on device"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    // The members whose guard failed are degraded: they sign nothing, not even a new slot.
    sim.slow_disk.clear();
    let issue = sim.nodes[0].storage_issue(now).expect("degraded");
    assert_eq!(issue.store, "committee");
    assert!(issue.error.contains("No space left on device"));
    assert_eq!(sim.nodes[0].metrics.storage_degraded.get(), 1);
    let mut rx = sim.sign(0, Slot::DaBlob(6), b"six", now);
    match rx.try_recv().unwrap() {
        Err(ThresholdSignError::Busy(reason)) => {
            assert!(
                reason.contains("signing guard cannot be written"),
                "{reason}"
            )
        }
        other => panic!("signed while degraded: {other:?}"),
    }
    // The guard write is retried after the backoff; once it succeeds the member signs again.
    let later = now + Duration::from_secs(1);
    assert!(sim.nodes[0].next_deadline().is_some_and(|t| t <= later));
    for node in &mut sim.nodes {
        node.poll(later);
    }
    sim.deliver(later);
    assert!(sim.nodes.iter().all(|n| n.storage_issue(later).is_none()));
    assert_eq!(sim.nodes[0].metrics.storage_degraded.get(), 0);
    // The slot stays taken in memory: another message for it is refused at once.
    let mut rx = sim.sign(0, Slot::DaBlob(5), b"other", later);
    assert!(matches!(
        rx.try_recv().unwrap(),
        Err(ThresholdSignError::Equivocation { .. })
    ));
    let mut rx = sim.sign(0, Slot::DaBlob(6), b"six", later);
    assert!(rx.try_recv().unwrap().is_ok());
}
