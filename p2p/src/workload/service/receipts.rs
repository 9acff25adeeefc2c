//! Receipts in [`WorkloadService`]: verification against the group key, duplicate
//! rejection, recent receipts, the DA log record, gossip and its verdicts.

use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::{ReceiptError, ThresholdReceipt};
use libp2p::gossipsub::{MessageAcceptance, MessageId};
use libp2p::PeerId;

use super::{ReceiptCheck, WorkloadAction, WorkloadService};

impl WorkloadService {
    /// Verifies a receipt against `check.group_key` and records it (dedup, recent
    /// receipts, [`WorkloadAction::RecordReceipt`] when `check.record`). `source`: the
    /// gossip peer, if any (only for logs).
    ///
    /// # Errors
    /// [`ReceiptError::WrongGroupKey`] without a group key, [`ReceiptError::Duplicate`]
    /// for a receipt accepted already, else why it does not verify.
    pub(super) fn accept_receipt(
        &mut self,
        receipt: &ThresholdReceipt,
        source: Option<PeerId>,
        check: ReceiptCheck,
    ) -> Result<(), ReceiptError> {
        let Some(group_key) = check.group_key else {
            self.count_receipt("unverifiable");
            return Err(ReceiptError::WrongGroupKey);
        };
        // Verified before the duplicate check, so that a forgery of a known job is refused
        // as invalid (and its sender blamed), not ignored as a duplicate.
        let checked = receipt
            .verify(&group_key)
            .and_then(|()| self.dedup.insert(receipt.receipt_id()));
        match checked {
            Ok(()) => {
                self.count_receipt("accepted");
                self.check_double_receipt(receipt);
                self.recent.insert(receipt.clone());
                if check.record {
                    self.push(WorkloadAction::RecordReceipt(Box::new(receipt.clone())));
                }
                Ok(())
            }
            Err(e @ ReceiptError::Duplicate(_)) => {
                self.count_receipt("duplicate");
                Err(e)
            }
            Err(e) => {
                self.count_receipt("invalid");
                if let Some(peer) = source {
                    tracing::warn!(%peer, error = %e, "invalid receipt refused");
                }
                Err(e)
            }
        }
    }

    /// Counts a receipt seen under `receipts_total{result}`.
    fn count_receipt(&self, result: &str) {
        self.metrics.receipts.with_label_values(&[result]).inc();
    }

    /// Queues the gossip of `receipt` (nothing if it does not encode).
    pub(super) fn gossip_receipt(&mut self, receipt: &ThresholdReceipt) {
        if let Ok(bytes) = receipt.to_bytes() {
            self.push(WorkloadAction::Gossip(bytes));
        }
    }

    /// A gossipsub message `id` on the receipts topic from `source`: the verdict
    /// ([`WorkloadAction::Verdict`]) forwards it only once verified and new; a duplicate is
    /// ignored, an undecodable or invalid one rejected, and without a group key it is
    /// ignored (this node cannot judge: neither forward nor blame).
    pub(crate) fn on_receipt_gossip(
        &mut self,
        source: PeerId,
        id: MessageId,
        data: &[u8],
        check: ReceiptCheck,
    ) {
        let verdict = match ThresholdReceipt::from_bytes(data) {
            Err(_) => {
                self.count_receipt("invalid");
                MessageAcceptance::Reject
            }
            Ok(receipt) => match self.accept_receipt(&receipt, Some(source), check) {
                Ok(()) => MessageAcceptance::Accept,
                Err(ReceiptError::Duplicate(_)) => MessageAcceptance::Ignore,
                Err(_) if check.group_key.is_none() => MessageAcceptance::Ignore,
                Err(_) => MessageAcceptance::Reject,
            },
        };
        self.push(WorkloadAction::Verdict(id, source, verdict));
    }

    /// `NodeHandle::publish_receipt`: verify, record and gossip a receipt handed in by an
    /// operator or client.
    ///
    /// # Errors
    /// As [`WorkloadService::accept_receipt`]; nothing is gossiped then.
    pub(crate) fn publish_receipt(
        &mut self,
        receipt: ThresholdReceipt,
        check: ReceiptCheck,
    ) -> Result<(), ReceiptError> {
        self.accept_receipt(&receipt, None, check)?;
        self.gossip_receipt(&receipt);
        Ok(())
    }

    /// The receipts this node accepted recently, newest first.
    pub(crate) fn recent_receipts(&self) -> impl Iterator<Item = &ThresholdReceipt> {
        self.recent.newest()
    }

    /// A receipt this node accepted recently (the DA log holds the older ones).
    pub(crate) fn recent_receipt(&self, id: &Bytes32) -> Option<ThresholdReceipt> {
        self.recent.get(id).cloned()
    }
}
