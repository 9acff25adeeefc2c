//! Client calls of the workload and receipt routes (`POST /v1/workloads`,
//! `GET /v1/receipts/{id}`, `POST /v1/receipts`).

use std::time::Duration;

use dsdn_protocols::receipt::{OptimisticReceipt, ThresholdReceipt};
use dsdn_protocols::workload::WorkloadSubmission;

use super::{ApiClient, ClientError};
use crate::api::{ReceiptResponse, WorkloadResponse};

/// How long `POST /v1/workloads` may take: the coordinator tries up to 3 nodes, each
/// allowed 60 s (module fetch and a 10 s run included), then the committee signs.
pub const WORKLOAD_TIMEOUT: Duration = Duration::from_secs(200);

impl ApiClient {
    /// `POST /v1/workloads`: submits a signed workload and waits (up to
    /// [`WORKLOAD_TIMEOUT`]) for the committee-signed receipt and the output.
    ///
    /// # Errors
    /// Any [`ClientError`]; [`ClientError::Api`] 400 invalid submission, 403 not a
    /// coordinator with a key share, 503 no storage node, 502 no node executed it or the
    /// committee did not sign.
    pub async fn submit_workload(
        &self,
        submission: &WorkloadSubmission,
    ) -> Result<WorkloadResponse, ClientError> {
        self.submit_workload_with(submission, None).await
    }

    /// [`ApiClient::submit_workload`] choosing the answer: `Some(true)` asks for an
    /// optimistic receipt (`?optimistic=true`: answered as soon as the coordinator signed
    /// the node's receipt), `Some(false)` for the threshold receipt, `None` takes the
    /// node's default (`[receipts] optimistic`).
    ///
    /// # Errors
    /// As [`ApiClient::submit_workload`].
    pub async fn submit_workload_with(
        &self,
        submission: &WorkloadSubmission,
        optimistic: Option<bool>,
    ) -> Result<WorkloadResponse, ClientError> {
        let path = match optimistic {
            Some(o) => format!("/v1/workloads?optimistic={o}"),
            None => "/v1/workloads".to_owned(),
        };
        self.post_cbor(&path, submission.to_bytes(), Some(WORKLOAD_TIMEOUT))
            .await
    }

    /// `GET /v1/receipts/{id}` (`id`: 64 hex characters, or a unique prefix of at least 6).
    ///
    /// # Errors
    /// Any [`ClientError`]; [`ClientError::Api`] 404 when the node has no such receipt.
    pub async fn receipt(&self, id: &str) -> Result<ReceiptResponse, ClientError> {
        self.get_json(&format!("/v1/receipts/{id}")).await
    }

    /// `GET /v1/receipts?count=N`: the receipts the node accepted most recently, newest
    /// first.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn receipts(&self, count: usize) -> Result<Vec<ReceiptResponse>, ClientError> {
        self.get_json(&format!("/v1/receipts?count={count}")).await
    }

    /// `POST /v1/receipts`: hands a threshold receipt to the node, which verifies, records
    /// and gossips it.
    ///
    /// # Errors
    /// Any [`ClientError`]; [`ClientError::Api`] 400 when the node refuses it (the reason),
    /// 409 when it has it already.
    pub async fn publish_receipt(
        &self,
        receipt: &ThresholdReceipt,
    ) -> Result<ReceiptResponse, ClientError> {
        self.post_cbor("/v1/receipts", receipt.to_bytes(), None)
            .await
    }

    /// `POST /v1/receipts` with an optimistic receipt: verified against its coordinator's
    /// key (refused on a committee member when the coordinator is no member), kept and
    /// gossiped.
    ///
    /// # Errors
    /// As [`ApiClient::publish_receipt`].
    pub async fn publish_optimistic_receipt(
        &self,
        receipt: &OptimisticReceipt,
    ) -> Result<ReceiptResponse, ClientError> {
        self.post_cbor("/v1/receipts", receipt.to_bytes(), None)
            .await
    }

    /// POSTs CBOR `encoded` to `path` (with `timeout` instead of the client's, if given)
    /// and decodes the JSON answer.
    pub(super) async fn post_cbor<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        encoded: Result<Vec<u8>, dsdn_protocols::codec::CodecError>,
        timeout: Option<Duration>,
    ) -> Result<T, ClientError> {
        let bytes = encoded.map_err(|e| ClientError::BadResponse {
            addr: self.addr(),
            path: path.into(),
            reason: format!("cannot encode the request body: {e}"),
        })?;
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/cbor")
            .body(bytes);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        let body = self.send(path, req).await?;
        self.decode(path, &body)
    }
}
