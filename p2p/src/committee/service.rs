//! `CommitteeService`: the member's state (key share, signer, DKG run, open signing
//! rounds), inbound request dispatch and outbound request bookkeeping. The DKG and signing
//! steps are in `dkg.rs` and `signing.rs`.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use dsdn_protocols::committee::{
    CommitteeConfig, CommitteeRequest, CommitteeResponse, KeyShareFile, MemberId, Refusal, Signer,
    SlotGuard, MAX_GUARD_BYTES, MAX_KEY_SHARE_FILE_BYTES,
};
use libp2p::PeerId;

use super::dkg::DkgRun;
use super::files::{ensure_dir, guard_path, key_share_path, read_capped};
use super::guard::{HeldFor, HeldShare};
use super::signing::ProposerRound;
use super::{
    member_id, CommitteeMetrics, CommitteeNodeConfig, CommitteeState, CommitteeStatus,
    MAX_REQUESTS_PER_PEER_PER_SEC,
};
use crate::net::rpc::Reply;

/// What the committee service asks of the network and the disk; the event loop carries
/// the actions out in order ([`CommitteeService::take_actions`]).
#[derive(Debug)]
pub(crate) enum CommitteeAction {
    /// Send `request` to `peer`; its answer comes back through
    /// [`CommitteeService::on_response`] or [`CommitteeService::on_failure`] with `tag`.
    Send {
        /// The service's id of the request.
        tag: u64,
        /// The member to send it to.
        peer: PeerId,
        /// The request.
        request: CommitteeRequest,
    },
    /// Answer an inbound request.
    Respond(Reply, CommitteeResponse),
    /// Make the signing guard durable: `bytes` is the whole guard (CBOR) after its change
    /// number `seq`, to be written atomically to `path`. The result comes back through
    /// [`CommitteeService::on_guard_persisted`]; a writer may skip to the newest request,
    /// since it holds every earlier change. Shares signed under change `seq` are withheld
    /// until then.
    PersistGuard {
        /// The guard change this write makes durable (and every earlier one).
        seq: u64,
        /// `slot-guard-<epoch>.cbor` in the committee directory.
        path: PathBuf,
        /// The guard's bytes.
        bytes: Vec<u8>,
    },
}

/// What an outstanding request belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Purpose {
    /// A DKG message (retried until acknowledged or the ceremony ends).
    Dkg,
    /// A request of the proposer round with this id.
    Round(u64),
}

pub(super) struct Pending {
    pub(super) peer: PeerId,
    pub(super) purpose: Purpose,
    /// Kept for DKG requests (they are re-sent on failure).
    pub(super) request: Option<CommitteeRequest>,
}

/// Delay before a failed DKG request is sent again.
pub(super) const DKG_RETRY: Duration = Duration::from_millis(300);

/// The committee protocol of one member (see the module documentation of
/// [`crate::committee`]).
pub(crate) struct CommitteeService {
    pub(super) cfg: CommitteeNodeConfig,
    pub(super) config: CommitteeConfig,
    pub(super) me: PeerId,
    pub(super) my_id: MemberId,
    pub(super) signer: Option<Signer>,
    pub(super) state: CommitteeState,
    pub(super) dkg: Option<DkgRun>,
    pub(super) rounds: BTreeMap<u64, ProposerRound>,
    pub(super) next_tag: u64,
    pub(super) actions: Vec<CommitteeAction>,
    /// Shares signed but withheld until the guard change they made is durable.
    pub(super) held: Vec<HeldShare>,
    /// The number of the newest guard change (0: none since start).
    pub(super) guard_seq: u64,
    pub(super) pending: HashMap<u64, Pending>,
    /// DKG requests to send again at the given instant.
    pub(super) retries: Vec<(Instant, PeerId, CommitteeRequest)>,
    rate: HashMap<PeerId, (Instant, u32)>,
    pub(super) metrics: CommitteeMetrics,
    /// Degraded while the signing guard cannot be written: nothing is signed until a
    /// retried write succeeds (issue 14 §2).
    pub(super) health: crate::storage::Health,
    /// True on a coordinator that is not a member of this committee (issue 13 §3): it holds
    /// no share, signs nothing and refuses every request; its epoch rotation follows the log
    /// and may select it into a later committee.
    pub(super) follower: bool,
}

/// The first request tag of the service of `epoch`: the epoch's low 24 bits above bit 40
/// (see [`tag_epoch`]).
pub(crate) fn tag_base(epoch: u64) -> u64 {
    (epoch & 0xFF_FFFF) << 40
}

/// The epoch bits of a request tag ([`tag_base`]).
pub(crate) fn tag_epoch(tag: u64) -> u64 {
    tag >> 40
}

/// Why the committee service could not be built.
#[derive(Debug, thiserror::Error)]
pub enum CommitteeStartError {
    /// The configuration is invalid or this node is not a member.
    #[error("committee configuration: {0}")]
    Config(String),
    /// The committee directory cannot be created.
    #[error("committee directory: {0}")]
    Dir(#[from] std::io::Error),
    /// The guard writer thread cannot be started.
    #[error("committee guard writer: {0}")]
    Writer(std::io::Error),
}

impl CommitteeService {
    /// Builds the service for `me`, loading the key share and guard of the configured epoch
    /// from the committee directory. An unusable key share or guard file is moved aside
    /// (`<name>.corrupt-<unix-seconds>`), logged and reported in the state; it is never
    /// trusted (a corrupt guard means this node does not sign in this epoch).
    pub(crate) fn open(
        cfg: CommitteeNodeConfig,
        me: PeerId,
        metrics: CommitteeMetrics,
    ) -> Result<Self, CommitteeStartError> {
        let members = cfg
            .members
            .iter()
            .map(member_id)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| CommitteeStartError::Config(e.to_string()))?;
        let config = CommitteeConfig {
            epoch: cfg.epoch,
            threshold: cfg.threshold,
            members,
        };
        config
            .validate()
            .map_err(|e| CommitteeStartError::Config(e.to_string()))?;
        let my_id = member_id(&me).map_err(|e| CommitteeStartError::Config(e.to_string()))?;
        // A coordinator outside the committee runs as a follower (no share, no signing).
        let follower = !config.contains(&my_id);
        ensure_dir(&cfg.dir)?;
        let cfg_epoch = cfg.epoch;
        let mut service = Self {
            cfg,
            config,
            me,
            my_id,
            signer: None,
            state: if follower {
                CommitteeState::Following
            } else {
                CommitteeState::NoShare
            },
            dkg: None,
            rounds: BTreeMap::new(),
            // Tags carry the epoch in their high bits: the responses of the next epoch's
            // service during a handoff are routed to it (`event_loop/epochs.rs`).
            next_tag: tag_base(cfg_epoch),
            actions: Vec::new(),
            held: Vec::new(),
            guard_seq: 0,
            pending: HashMap::new(),
            retries: Vec::new(),
            rate: HashMap::new(),
            metrics,
            health: crate::storage::Health::new(),
            follower,
        };
        if follower {
            tracing::info!(%me, epoch = cfg_epoch, "not a member of the committee in force: following it");
        } else {
            service.load();
        }
        Ok(service)
    }

    fn load(&mut self) {
        let epoch = self.config.epoch;
        let key_path = key_share_path(&self.cfg.dir, epoch);
        let key = match read_capped(&key_path, MAX_KEY_SHARE_FILE_BYTES) {
            Ok(None) => return,
            Ok(Some(bytes)) => KeyShareFile::from_bytes(&bytes)
                .map_err(|e| e.to_string())
                .and_then(|k| {
                    if *k.config() != self.config || *k.member() != self.my_id {
                        Err("it is for another committee or member".to_string())
                    } else {
                        Ok(k)
                    }
                }),
            Err(e) => Err(e.to_string()),
        };
        let key = match key {
            Ok(k) => k,
            Err(reason) => {
                self.unusable(key_path, "key share", &reason);
                return;
            }
        };
        let guard_file = guard_path(&self.cfg.dir, epoch);
        let guard = match read_capped(&guard_file, MAX_GUARD_BYTES) {
            Ok(None) => Ok(SlotGuard::new()),
            Ok(Some(bytes)) => SlotGuard::from_bytes(&bytes).map_err(|e| e.to_string()),
            Err(e) => Err(e.to_string()),
        };
        match guard {
            Ok(guard) => {
                tracing::info!(epoch, group_key = %key.group_key(), slots = guard.len(), "committee key share loaded");
                self.signer = Some(Signer::new(key, guard));
                self.state = CommitteeState::Ready;
            }
            Err(reason) => self.unusable(guard_file, "signing guard", &reason),
        }
    }

    /// Moves an unusable file aside and records why in the state.
    fn unusable(&mut self, path: PathBuf, what: &str, reason: &str) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let moved = match dsdn_peers::files::move_aside_at(&path, now) {
            Ok(to) => format!("moved aside to {}", to.display()),
            Err(e) => format!("could not be moved aside: {e}"),
        };
        tracing::error!(path = %path.display(), %reason, %moved, "unusable committee {what} file");
        self.state = CommitteeState::Failed(format!("{what} file unusable ({reason}); {moved}"));
    }

    /// The status for `NodeHandle::committee_status`.
    pub(crate) fn status(&self) -> CommitteeStatus {
        CommitteeStatus {
            me: self.me,
            members: self.cfg.members.clone(),
            threshold: self.config.threshold,
            epoch: self.config.epoch,
            group_key: self
                .signer
                .as_ref()
                .map(|s| s.key_share().group_key().to_hex()),
            state: self.state.clone(),
            rotation: None,
            epochs: None,
        }
    }

    /// The committee epoch of this service.
    pub(crate) fn epoch(&self) -> u64 {
        self.config.epoch
    }

    /// The committee configuration (epoch, threshold, members in identifier order).
    pub(crate) fn committee_config(&self) -> &CommitteeConfig {
        &self.config
    }

    /// True while a DKG runs on this member.
    pub(crate) fn dkg_running(&self) -> bool {
        self.dkg.is_some()
    }

    /// The group key (32 bytes) once this member holds a key share.
    pub(crate) fn group_key(&self) -> Option<[u8; 32]> {
        self.signer.as_ref().map(|s| s.key_share().group_key().0)
    }

    /// What a receipt is signed under once this member holds a key share: the epoch, the
    /// committee hash ([`dsdn_protocols::receipt::committee_hash`]) and the group key.
    pub(crate) fn receipt_context(
        &self,
    ) -> Option<(
        u64,
        dsdn_protocols::da::Bytes32,
        dsdn_protocols::committee::GroupKey,
    )> {
        let group_key = self.signer.as_ref()?.key_share().group_key();
        let hash = dsdn_protocols::receipt::committee_hash(&self.config).ok()?;
        Some((self.config.epoch, hash, group_key))
    }

    /// What the event loop must carry out, in order.
    pub(crate) fn take_actions(&mut self) -> Vec<CommitteeAction> {
        std::mem::take(&mut self.actions)
    }

    /// Queues `request` to `peer` for `purpose`.
    pub(super) fn send(&mut self, peer: PeerId, request: CommitteeRequest, purpose: Purpose) {
        let tag = self.next_tag;
        self.next_tag += 1;
        let keep = (purpose == Purpose::Dkg).then(|| request.clone());
        self.pending.insert(
            tag,
            Pending {
                peer,
                purpose,
                request: keep,
            },
        );
        self.actions
            .push(CommitteeAction::Send { tag, peer, request });
    }

    /// The other members.
    pub(super) fn others(&self) -> Vec<PeerId> {
        self.cfg
            .members
            .iter()
            .filter(|p| **p != self.me)
            .copied()
            .collect()
    }

    /// The earliest timer: a DKG deadline or retry, a signing phase deadline.
    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        let dkg = self.dkg.as_ref().map(|d| d.deadline);
        let retry = self.retries.iter().map(|(t, _, _)| *t).min();
        let rounds = self.rounds.values().map(|r| r.deadline).min();
        [dkg, retry, rounds, self.health.retry_at()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Runs the timers: re-sends due DKG requests, ends timed-out DKGs and signing phases.
    pub(crate) fn poll(&mut self, now: Instant) {
        self.retry_guard(now);
        let (due, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retries)
            .into_iter()
            .partition(|(t, _, _)| *t <= now);
        self.retries = later;
        if self.dkg.is_some() {
            for (_, peer, request) in due {
                self.send(peer, request, Purpose::Dkg);
            }
        }
        self.poll_dkg(now);
        self.poll_rounds(now);
    }

    /// One more request from `peer` this second: false when over the per-peer rate.
    fn allow(&mut self, peer: PeerId, now: Instant) -> bool {
        let entry = self.rate.entry(peer).or_insert((now, 0));
        if now.duration_since(entry.0) >= Duration::from_secs(1) {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
        entry.1 <= MAX_REQUESTS_PER_PEER_PER_SEC
    }

    /// What the DA proposer rotation of this member needs, once it holds a key share:
    /// the share, the committee directory, the base round timeout and the metrics.
    pub(crate) fn rotation_parts(
        &self,
    ) -> Option<(&KeyShareFile, &CommitteeNodeConfig, &CommitteeMetrics)> {
        let signer = self.signer.as_ref()?;
        Some((signer.key_share(), &self.cfg, &self.metrics))
    }

    /// True on a coordinator outside this committee (it follows the committee and signs
    /// nothing in its epoch).
    pub(crate) fn is_follower(&self) -> bool {
        self.follower
    }

    /// The node configuration of this service (directory, timeouts, schedule; members,
    /// threshold and epoch of this committee).
    pub(crate) fn node_config(&self) -> &CommitteeNodeConfig {
        &self.cfg
    }

    /// The metrics of this service.
    pub(crate) fn metrics(&self) -> &CommitteeMetrics {
        &self.metrics
    }

    /// True when `peer` is another member of this committee.
    pub(crate) fn is_member(&self, peer: &PeerId) -> bool {
        *peer != self.me && self.cfg.members.contains(peer)
    }

    /// The answer to a member's request that a check outside the service refused (the DA
    /// blob a signing package signs does not extend this node's log), counted like a
    /// [`super::SignPolicy`] refusal.
    pub(crate) fn refuse_by_policy(&mut self, peer: PeerId, reason: &str, reply: Reply) {
        self.metrics.refused.with_label_values(&["policy"]).inc();
        tracing::info!(%peer, %reason, "refused to sign a proposed DA blob");
        let response = CommitteeResponse::Refused(Refusal::Policy(Refusal::text(reason)));
        self.actions.push(CommitteeAction::Respond(reply, response));
    }

    /// An inbound request from `peer` (authenticated by the transport), answered through
    /// `reply`: at once, or — a signature share — once the guard change it made is durable
    /// ([`CommitteeAction::PersistGuard`]).
    pub(crate) fn on_request(
        &mut self,
        peer: PeerId,
        request: CommitteeRequest,
        reply: Reply,
        now: Instant,
    ) {
        if !self.admit(peer, now) {
            let response = self.refused_admission(peer);
            self.actions.push(CommitteeAction::Respond(reply, response));
            return;
        }
        let result = match request {
            CommitteeRequest::DkgStart(config) => self.on_dkg_start(peer, &config, now),
            CommitteeRequest::Dkg(msg) => self.on_dkg_message(peer, &msg, now),
            CommitteeRequest::DkgConfirm {
                epoch,
                transcript,
                group_key,
            } => self.on_dkg_confirm(peer, epoch, transcript, group_key, now),
            CommitteeRequest::Commit {
                epoch,
                slot,
                message_hash,
            } => self
                .member_commit(epoch, slot, &message_hash)
                .map(CommitteeResponse::Commitment),
            // The share is held until the guard change it made is durable.
            CommitteeRequest::Sign(package) => match self.member_sign(&package) {
                Ok((share, seq)) => return self.hold(seq, share, HeldFor::Member(reply)),
                Err(refusal) => Err(refusal),
            },
        };
        let response = result.unwrap_or_else(|refusal| self.refusal(peer, refusal));
        self.actions.push(CommitteeAction::Respond(reply, response));
    }

    /// Whether `peer` is another member within its request rate (counted when not).
    fn admit(&mut self, peer: PeerId, now: Instant) -> bool {
        !self.follower && self.is_member(&peer) && self.allow(peer, now)
    }

    /// The refusal of a request [`Self::admit`] did not admit.
    fn refused_admission(&mut self, peer: PeerId) -> CommitteeResponse {
        if self.follower || !self.is_member(&peer) {
            self.metrics
                .refused
                .with_label_values(&["not_a_member"])
                .inc();
            tracing::debug!(%peer, "committee request from a non-member refused");
            return CommitteeResponse::Refused(Refusal::NotAMember);
        }
        self.metrics
            .refused
            .with_label_values(&["rate_limited"])
            .inc();
        CommitteeResponse::Refused(Refusal::Busy("too many committee requests".into()))
    }

    /// Counts and logs a refusal to `peer`: the response carrying it.
    pub(super) fn refusal(&mut self, peer: PeerId, refusal: Refusal) -> CommitteeResponse {
        let reason = match refusal {
            Refusal::Equivocation(_) => "equivocation",
            Refusal::Policy(_) => "policy",
            _ => "other",
        };
        self.metrics.refused.with_label_values(&[reason]).inc();
        tracing::debug!(%peer, %refusal, "committee request refused");
        CommitteeResponse::Refused(refusal)
    }

    /// The answer to the request `tag`.
    pub(crate) fn on_response(&mut self, tag: u64, response: CommitteeResponse, now: Instant) {
        let Some(p) = self.pending.remove(&tag) else {
            return;
        };
        match p.purpose {
            Purpose::Dkg => self.on_dkg_response(p.peer, p.request, response, now),
            Purpose::Round(id) => self.on_round_response(id, p.peer, response, now),
        }
    }

    /// The request `tag` failed (unreachable, timed out, connection closed).
    pub(crate) fn on_failure(&mut self, tag: u64, error: &str, now: Instant) {
        let Some(p) = self.pending.remove(&tag) else {
            return;
        };
        tracing::debug!(peer = %p.peer, %error, "committee request failed");
        match p.purpose {
            Purpose::Dkg => {
                if let (Some(request), Some(run)) = (p.request, self.dkg.as_ref()) {
                    if now + DKG_RETRY < run.deadline {
                        self.retries.push((now + DKG_RETRY, p.peer, request));
                    }
                }
            }
            Purpose::Round(id) => self.on_round_failure(id, p.peer, error, now),
        }
    }

    /// A member disconnected: forget its rate window.
    pub(crate) fn peer_disconnected(&mut self, peer: &PeerId) {
        self.rate.remove(peer);
    }
}
