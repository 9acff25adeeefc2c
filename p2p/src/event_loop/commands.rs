//! The commands of the [`crate::NodeHandle`], each answered on its reply channel or handed
//! to the handler of its service.

use std::time::Instant;

use super::EventLoop;
use crate::da::PublishError;
use crate::handle::Command;

impl EventLoop {
    /// Carries out one command of a [`crate::NodeHandle`].
    pub(super) fn on_command(&mut self, command: Command) {
        match command {
            Command::Status(tx) => {
                let _ = tx.send(self.status());
            }
            Command::Peers(tx) => {
                let _ = tx.send(self.peer_views());
            }
            Command::PublishDa(events, tx) => {
                if self.cfg.subscribe_da {
                    // A member that retired a moment ago takes events as a forwarder.
                    self.forward_sync();
                    self.da.service.publish(events, tx, Instant::now());
                    self.da_poll();
                } else {
                    let _ = tx.send(Err(PublishError::NotSubscribed));
                }
            }
            Command::SubmitBlob(bytes, tx) => {
                if self.cfg.subscribe_da {
                    // Answered once the blob is durable (or at once when it did not apply).
                    self.da.service.submit_reply(&bytes, tx);
                    self.after_da();
                } else {
                    let _ = tx.send(Err(crate::da::SubmitError::NotSubscribed));
                }
            }
            Command::DaState(tx) => {
                let _ = tx.send(self.da.service.view());
            }
            Command::DaProof(key, height, tx) => self.da_proof_local(key, height, tx),
            Command::DaEvidence(tx) => {
                let _ = tx.send(self.da.service.fork_evidence());
            }
            Command::DaRange(from, count, tx) => self.da_range(from, count, tx),
            Command::DaProveRemote(peer, request, tx) => self.da_prove_remote(peer, request, tx),
            Command::DaSyncRaw(peer, request, tx) => self.da_sync_raw(peer, request, tx),
            Command::DaStateRemote(peer, request, tx) => self.da_state_remote(peer, request, tx),
            Command::DaStateSynced(restored) => self.da_state_synced(restored),
            Command::PeerStats(tx) => {
                let _ = tx.send(self.peer_stats());
            }
            Command::RemovePeer(peer, tx) => {
                let pm = &mut self.swarm.behaviour_mut().peer_manager;
                let _ = tx.send(pm.remove_static_peer(&peer));
            }
            Command::AddedPeers(tx) => {
                let _ = tx.send(self.swarm.behaviour().peer_manager.added_peers());
            }
            Command::AddPeer(peer, tx) => {
                let _ = tx.send(self.add_peer(peer));
            }
            Command::AddSeed(seed, tx) => {
                let _ = tx.send(self.add_seed(seed));
            }
            Command::ResetPeers(tx) => {
                let _ = tx.send(self.reset_peers());
            }
            Command::Ban(peer, duration, tx) => {
                let _ = tx.send(self.ban(peer, duration));
            }
            Command::Unban(peer, tx) => {
                let _ = tx.send(self.unban(peer));
            }
            Command::Reload(cfg, tx) => {
                let _ = tx.send(self.swarm.behaviour_mut().peer_manager.reload(&cfg));
            }
            Command::UnbanAll(tx) => {
                let _ = tx.send(self.unban_all());
            }
            Command::SubscribeDa(tx) => {
                let _ = tx.send(self.subscribe_da());
            }
            Command::CommitteeDkg(tx) => self.committee_dkg(tx),
            Command::CommitteeStatus(tx) => {
                let _ = tx.send(self.committee_status());
            }
            Command::ThresholdSign(slot, message, tx) => self.threshold_sign(slot, message, tx),
            Command::SubmitWorkload(submission, optimistic, tx) => {
                self.submit_workload(*submission, optimistic, tx)
            }
            Command::PublishReceipt(receipt, tx) => {
                let _ = tx.send(self.publish_receipt(*receipt));
            }
            Command::Receipt(id, tx) => {
                let _ = tx.send(self.receipt(&id));
            }
            Command::EpochKey(epoch, tx) => {
                let _ = tx.send(self.da.service.epoch_key(epoch));
            }
            Command::Receipts(query, tx) => {
                let _ = tx.send(self.receipts(&query));
            }
            Command::Disputes(tx) => {
                let (unauthorized_signers, invalid_signatures) =
                    self.workload.service.signer_disputes();
                let _ = tx.send(crate::handle::Disputes {
                    da_forks: self.da.service.fork_evidence(),
                    double_receipts: self.workload.service.double_receipts(),
                    optimistic_conflicts: self.workload.service.optimistic_conflicts(),
                    unauthorized_signers,
                    invalid_signatures,
                });
            }
        }
    }
}
