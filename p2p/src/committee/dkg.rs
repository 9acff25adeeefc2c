//! The DKG over the network: start, round 1 (broadcast), round 2 (direct), transcript
//! confirmations, adoption of the key share.

use std::collections::BTreeMap;
use std::time::Instant;

use dsdn_protocols::committee::{
    CommitteeConfig, CommitteeRequest, CommitteeResponse, DkgError, DkgMessage, DkgOutput,
    DkgSession, GroupKey, OsRng, Refusal, Signer, SlotGuard,
};
use libp2p::PeerId;
use tokio::sync::oneshot;

use super::files::{guard_path, key_share_path, write_private};
use super::service::{CommitteeService, Purpose};
use super::{member_peer, CommitteeState, CommitteeStatus, DkgRunError};

/// The reply channel of `NodeHandle::committee_dkg`.
pub(crate) type DkgReply = oneshot::Sender<Result<CommitteeStatus, DkgRunError>>;

/// A DKG ceremony in progress on this member.
pub(crate) struct DkgRun {
    session: DkgSession,
    pub(super) deadline: Instant,
    output: Option<DkgOutput>,
    /// Confirmations of the other members (at most one each).
    confirms: BTreeMap<PeerId, ([u8; 32], GroupKey)>,
    waiters: Vec<DkgReply>,
}

impl CommitteeService {
    /// `NodeHandle::committee_dkg`: starts a ceremony (telling every member) or joins the
    /// running one; `reply` is answered when this member adopted the key or the run failed.
    pub(crate) fn start_dkg(&mut self, reply: DkgReply, now: Instant) {
        if self.follower {
            let _ = reply.send(Err(DkgRunError::NotConfigured));
            return;
        }
        if self.signer.is_some() {
            let _ = reply.send(Err(DkgRunError::AlreadyHaveKey(self.config.epoch)));
            return;
        }
        if self.dkg.is_none() {
            if let Err(e) = self.begin_dkg(now) {
                let _ = reply.send(Err(DkgRunError::Failed(e)));
                return;
            }
            let start = CommitteeRequest::DkgStart(self.config.clone());
            for peer in self.others() {
                self.send(peer, start.clone(), Purpose::Dkg);
            }
        }
        if let Some(run) = self.dkg.as_mut() {
            run.waiters.push(reply);
        }
    }

    /// Creates the session and broadcasts our round-1 package.
    fn begin_dkg(&mut self, now: Instant) -> Result<(), String> {
        let (session, round1) =
            DkgSession::new(self.config.clone(), self.my_id.clone(), &mut OsRng)
                .map_err(|e| e.to_string())?;
        tracing::info!(
            epoch = self.config.epoch,
            t = self.config.threshold,
            n = self.config.members.len(),
            "committee DKG started"
        );
        self.dkg = Some(DkgRun {
            session,
            deadline: now + self.cfg.dkg_timeout,
            output: None,
            confirms: BTreeMap::new(),
            waiters: Vec::new(),
        });
        self.state = CommitteeState::Dkg { round: 1 };
        let msg = CommitteeRequest::Dkg(DkgMessage::Round1(round1));
        for peer in self.others() {
            self.send(peer, msg.clone(), Purpose::Dkg);
        }
        Ok(())
    }

    /// Starts our side of the ceremony when a member's message arrives first.
    fn join_dkg(&mut self, epoch: u64, now: Instant) -> Result<(), Refusal> {
        if epoch != self.config.epoch {
            return Err(Refusal::WrongCommittee(format!(
                "epoch {epoch}, this committee is at epoch {}",
                self.config.epoch
            )));
        }
        if self.signer.is_some() {
            return Err(Refusal::AlreadyHaveKey);
        }
        if self.dkg.is_none() {
            self.begin_dkg(now)
                .map_err(|e| Refusal::Invalid(Refusal::text(e)))?;
        }
        Ok(())
    }

    pub(super) fn on_dkg_start(
        &mut self,
        _peer: PeerId,
        config: &CommitteeConfig,
        now: Instant,
    ) -> Result<CommitteeResponse, Refusal> {
        if *config != self.config {
            return Err(Refusal::WrongCommittee(
                "the configuration differs from ours".into(),
            ));
        }
        self.join_dkg(config.epoch, now)?;
        Ok(CommitteeResponse::Ack)
    }

    pub(super) fn on_dkg_message(
        &mut self,
        peer: PeerId,
        msg: &DkgMessage,
        now: Instant,
    ) -> Result<CommitteeResponse, Refusal> {
        let epoch = match msg {
            DkgMessage::Round1(m) => m.epoch,
            DkgMessage::Round2(m) => m.epoch,
        };
        self.join_dkg(epoch, now)?;
        let from = super::member_id(&peer).map_err(|e| Refusal::Invalid(e.to_string()))?;
        let Some(run) = self.dkg.as_mut() else {
            return Err(Refusal::Invalid("no DKG running".into()));
        };
        let result = match msg {
            DkgMessage::Round1(m) => run.session.on_round1(&from, m).map(|out| {
                if let Some(round2) = out {
                    self.state = CommitteeState::Dkg { round: 2 };
                    for (to, m) in round2 {
                        if let Some(to) = member_peer(&to) {
                            self.send(
                                to,
                                CommitteeRequest::Dkg(DkgMessage::Round2(m)),
                                Purpose::Dkg,
                            );
                        }
                    }
                }
            }),
            DkgMessage::Round2(m) => run.session.on_round2(&from, m).map(|_| ()),
        };
        match result {
            // A re-sent message (our acknowledgement was lost) is acknowledged again.
            Ok(()) | Err(DkgError::Duplicate { .. }) => {}
            Err(e @ (DkgError::Culprit { .. } | DkgError::Frost(_))) => {
                self.fail_dkg(e.to_string());
                return Err(Refusal::Invalid(Refusal::text(e)));
            }
            Err(e) => return Err(Refusal::Invalid(Refusal::text(e))),
        }
        self.after_dkg_step(now);
        Ok(CommitteeResponse::Ack)
    }

    /// Once the session finished: confirm our transcript to every member (once), then
    /// adopt when every member confirmed the same.
    fn after_dkg_step(&mut self, _now: Instant) {
        let Some(run) = self.dkg.as_mut() else {
            return;
        };
        if run.output.is_none() {
            if let Some(out) = run.session.output().cloned() {
                let confirm = CommitteeRequest::DkgConfirm {
                    epoch: self.config.epoch,
                    transcript: out.transcript,
                    group_key: out.group_key,
                };
                run.output = Some(out);
                self.state = CommitteeState::Dkg { round: 3 };
                for peer in self.others() {
                    self.send(peer, confirm.clone(), Purpose::Dkg);
                }
            }
        }
        self.try_adopt();
    }

    pub(super) fn on_dkg_confirm(
        &mut self,
        peer: PeerId,
        epoch: u64,
        transcript: [u8; 32],
        group_key: GroupKey,
        now: Instant,
    ) -> Result<CommitteeResponse, Refusal> {
        if epoch != self.config.epoch {
            return Err(Refusal::WrongCommittee(format!("epoch {epoch}")));
        }
        if let Some(signer) = &self.signer {
            // Adopted already (every confirmation arrived): a re-sent one.
            return if signer.key_share().group_key() == group_key {
                Ok(CommitteeResponse::Ack)
            } else {
                Err(Refusal::Invalid("another group key".into()))
            };
        }
        let Some(run) = self.dkg.as_mut() else {
            return Err(Refusal::Invalid("no DKG running".into()));
        };
        run.confirms.insert(peer, (transcript, group_key));
        self.after_dkg_step(now);
        Ok(CommitteeResponse::Ack)
    }

    /// Adopts the key once our output and every other member's matching confirmation are in.
    fn try_adopt(&mut self) {
        let Some(run) = self.dkg.as_ref() else {
            return;
        };
        let Some(out) = run.output.as_ref() else {
            return;
        };
        let differing: Vec<String> = run
            .confirms
            .iter()
            .filter(|(_, (t, k))| *t != out.transcript || *k != out.group_key)
            .map(|(p, _)| p.to_string())
            .collect();
        if !differing.is_empty() {
            self.fail_dkg(format!(
                "transcript or group key differs at {}",
                differing.join(", ")
            ));
            return;
        }
        if run.confirms.len() + 1 < self.config.members.len() {
            return;
        }
        let key_share = out.key_share.clone();
        let dir = &self.cfg.dir;
        let epoch = self.config.epoch;
        let written = key_share
            .to_bytes()
            .map_err(|e| e.to_string())
            .and_then(|bytes| {
                write_private(&key_share_path(dir, epoch), &bytes).map_err(|e| e.to_string())
            })
            .and_then(|()| {
                // A new key starts with an empty guard (a stale one of the epoch is replaced).
                let guard = SlotGuard::new().to_bytes().map_err(|e| e.to_string())?;
                write_private(&guard_path(dir, epoch), &guard).map_err(|e| e.to_string())
            });
        if let Err(e) = written {
            self.fail_dkg(format!("cannot store the key share: {e}"));
            return;
        }
        tracing::info!(epoch, group_key = %key_share.group_key(), "committee DKG complete: key share stored");
        self.signer = Some(Signer::new(key_share, SlotGuard::new()));
        self.state = CommitteeState::Ready;
        self.metrics.dkg.with_label_values(&["ok"]).inc();
        let status = self.status();
        if let Some(run) = self.dkg.take() {
            for w in run.waiters {
                let _ = w.send(Ok(status.clone()));
            }
        }
        self.retries.clear();
    }

    /// Ends the ceremony with `reason`.
    pub(super) fn fail_dkg(&mut self, reason: String) {
        tracing::warn!(%reason, "committee DKG failed");
        self.state = CommitteeState::Failed(reason.clone());
        self.metrics.dkg.with_label_values(&["failed"]).inc();
        if let Some(run) = self.dkg.take() {
            for w in run.waiters {
                let _ = w.send(Err(DkgRunError::Failed(reason.clone())));
            }
        }
        self.retries.clear();
    }

    /// The answer to one of our DKG requests.
    pub(super) fn on_dkg_response(
        &mut self,
        peer: PeerId,
        request: Option<CommitteeRequest>,
        response: CommitteeResponse,
        now: Instant,
    ) {
        if let CommitteeResponse::Refused(r) = response {
            // Once our session finished, a refusal (e.g. a late re-sent start reaching a
            // member that adopted the key already) changes nothing: confirmations decide.
            let running = self.dkg.as_ref().is_some_and(|run| run.output.is_none());
            if running && !matches!(r, Refusal::Busy(_)) {
                self.fail_dkg(format!("member {peer} refused: {r}"));
            } else if let (Refusal::Busy(_), Some(request), Some(run)) =
                (&r, request, self.dkg.as_ref())
            {
                // Busy: e.g. a member of the next epoch's committee that has not taken the
                // DkgStart yet (issue 13 §3); sent again like a failed request.
                if now + super::service::DKG_RETRY < run.deadline {
                    self.retries
                        .push((now + super::service::DKG_RETRY, peer, request));
                }
            }
        }
    }

    /// Ends a ceremony past its deadline, naming the members it waited for.
    pub(super) fn poll_dkg(&mut self, now: Instant) {
        let Some(run) = self.dkg.as_ref() else {
            return;
        };
        if now < run.deadline {
            return;
        }
        let names = |m: Vec<dsdn_protocols::committee::MemberId>| {
            m.iter()
                .filter_map(member_peer)
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        };
        let r1 = run.session.missing_round1();
        let r2 = run.session.missing_round2();
        let reason = if !r1.is_empty() {
            format!("timed out waiting for round 1 of {}", names(r1))
        } else if !r2.is_empty() {
            format!("timed out waiting for round 2 of {}", names(r2))
        } else {
            let missing: Vec<String> = self
                .others()
                .into_iter()
                .filter(|p| !run.confirms.contains_key(p))
                .map(|p| p.to_string())
                .collect();
            format!(
                "timed out waiting for the confirmations of {}",
                missing.join(", ")
            )
        };
        self.fail_dkg(reason);
    }
}
