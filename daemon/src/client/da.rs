//! Client calls of the DA routes (`/v1/da/...`) and of the dispute evidence
//! (`GET /v1/disputes`).

use super::*;

impl ApiClient {
    /// `POST /v1/da/events`: publishes `events` (the node must be the DA authority).
    ///
    /// # Errors
    /// Any [`ClientError`]; a node that is not the DA authority answers with
    /// [`ClientError::Api`].
    pub async fn da_publish(&self, events: &[DaEvent]) -> Result<PublishResponse, ClientError> {
        let path = "/v1/da/events";
        let req = self.http.post(self.url(path)).json(events);
        let body = self.send(path, req).await?;
        self.decode(path, &body)
    }

    /// `GET /v1/da/state`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn da_state(&self) -> Result<DaStateView, ClientError> {
        self.get_json("/v1/da/state").await
    }

    /// `GET /v1/da/proof?key=K[&height=H]`: a DA state key's value (or absence) with its
    /// proof (issue 16 §3); `key` in text form (`node:<id>`, `chunk:<hex>`, …).
    ///
    /// # Errors
    /// Any [`ClientError`]; a bad key is [`ClientError::Api`] 400, a height the node cannot
    /// prove 404.
    pub async fn da_proof(
        &self,
        key: &str,
        height: Option<u64>,
    ) -> Result<crate::api::ProofResponse, ClientError> {
        let mut path = format!("/v1/da/proof?key={}", encode_query(key));
        if let Some(h) = height {
            path.push_str(&format!("&height={h}"));
        }
        self.get_json(&path).await
    }

    /// `GET /v1/disputes`: the coordinator disputes the node found (issue 13 §6).
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn disputes(&self) -> Result<DisputesResponse, ClientError> {
        self.get_json("/v1/disputes").await
    }

    /// `GET /v1/da/evidence`: the fork evidence the node holds (issue 13 §4).
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn da_evidence(&self) -> Result<Vec<ForkEvidenceView>, ClientError> {
        self.get_json("/v1/da/evidence").await
    }

    /// `GET /v1/da/state?wait_height=H&timeout_ms=T`: the state once the log reaches
    /// `height`, or after `timeout` (the server caps it at 60 s; compare `height` of the
    /// answer). The client's own request timeout must exceed `timeout`.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn da_wait_height(
        &self,
        height: u64,
        timeout: Duration,
    ) -> Result<DaStateView, ClientError> {
        let path = format!(
            "/v1/da/state?wait_height={height}&timeout_ms={}",
            timeout.as_millis()
        );
        self.get_json(&path).await
    }

    /// `POST /v1/da/blobs`: submits one CBOR-encoded, signed DA blob.
    ///
    /// # Errors
    /// Any [`ClientError`]; a blob that does not verify is [`ClientError::Api`] 400, one
    /// that breaks the chain 409.
    pub async fn da_submit(&self, blob: &[u8]) -> Result<SubmitResponse, ClientError> {
        self.post_cbor("/v1/da/blobs", Ok(blob.to_vec()), None)
            .await
    }

    /// `GET /v1/da/blobs?from=H&count=N`: up to `count` (at most 64) verified blobs.
    ///
    /// # Errors
    /// Any [`ClientError`].
    pub async fn da_blobs(&self, from: u64, count: u32) -> Result<Vec<BlobInfo>, ClientError> {
        self.get_json(&format!("/v1/da/blobs?from={from}&count={count}"))
            .await
    }
}
