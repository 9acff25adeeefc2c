//! Publishing on the DA authority: posted events, registrations, submitted blobs and the
//! sealing of batches into signed blobs (issue 5 §2).

use super::*;

impl DaService {
    /// The unsigned blob of `events` this node would seal at `height` on its chain: the
    /// tip's hash and state root, timestamped now (never before the tip's timestamp).
    ///
    /// # Errors
    /// As [`DaBlob::unsigned`].
    pub(super) fn next_unsigned(
        &self,
        height: u64,
        events: Vec<DaEvent>,
    ) -> Result<DaBlob, dsdn_protocols::da::DaError> {
        DaBlob::unsigned(
            &self.network,
            height,
            self.chain.tip_hash(),
            self.chain.state_root(),
            unix_ms().max(self.chain.last_timestamp_ms()),
            events,
        )
    }

    /// A blob handed to the node directly (signed elsewhere, e.g. by the coordinator
    /// committee). Applied or held like a gossiped one, then gossiped.
    ///
    /// # Errors
    /// [`SubmitError`] when it does not verify, breaks the chain or is too far ahead.
    pub(crate) fn submit(&mut self, bytes: &[u8]) -> Result<Submitted, SubmitError> {
        if self.keys.is_none() {
            return Err(SubmitError::NoAuthority);
        }
        let blob = self.verify_blob(bytes).map_err(|e| {
            self.reject(e.reason(), &e);
            SubmitError::Invalid(e)
        })?;
        let height = blob.height();
        if height == self.chain.height() + 1 && !self.accepting() {
            return Err(SubmitError::LogBusy { height });
        }
        let encoded = blob.encoded().to_vec();
        let outcome = match self.offer(blob) {
            Offer::Applied(_) => "applied",
            Offer::Held => "held",
            Offer::Duplicate => "duplicate",
            Offer::TooFarAhead => {
                return Err(SubmitError::TooFarAhead {
                    height,
                    local: self.chain.height(),
                })
            }
            Offer::Rejected(e) => {
                self.reject(e.reason(), &e);
                return Err(SubmitError::Chain(e));
            }
        };
        if outcome != "duplicate" {
            self.actions.push(DaAction::Gossip(encoded));
        }
        Ok(Submitted { height, outcome })
    }

    /// `POST /v1/da/blobs`: [`DaService::submit`], with `tx` answered once an applied blob
    /// is durable in the log (at once for any other outcome or without a log on disk).
    pub(crate) fn submit_reply(
        &mut self,
        bytes: &[u8],
        tx: oneshot::Sender<Result<Submitted, SubmitError>>,
    ) {
        match self.submit(bytes) {
            Ok(s) if s.outcome == "applied" => {
                self.when_durable(s.height, vec![Reply::Submit(tx, s)]);
            }
            other => {
                let _ = tx.send(other);
            }
        }
    }

    /// Queues `events` for sealing; `tx` is answered once all of them are in blobs.
    pub(crate) fn publish(
        &mut self,
        events: Vec<DaEvent>,
        tx: oneshot::Sender<Result<Published, PublishError>>,
        now: Instant,
    ) {
        if let Err(e) = self.check_publish(&events) {
            let _ = tx.send(Err(e));
            return;
        }
        let id = self.next_publish;
        self.next_publish += 1;
        self.waiters.insert(
            id,
            PublishWaiter {
                tx,
                events: events.len(),
                remaining: events.len(),
                heights: BTreeSet::new(),
            },
        );
        for event in events {
            // check_publish made room for every event.
            let _ = self.queue_event(event, Reply::Publish(id), now);
        }
    }

    fn check_publish(&self, events: &[DaEvent]) -> Result<(), PublishError> {
        if !self.takes_events() {
            return Err(PublishError::NotAuthority(self.network.to_string()));
        }
        if let Some(clash) = &self.identity_clash {
            return Err(PublishError::Halted(format!("identity clash: {clash}")));
        }
        if events.is_empty() {
            return Err(PublishError::Empty);
        }
        for (index, event) in events.iter().enumerate() {
            if let DaEvent::CoordinatorRegistered { .. } = event {
                // Its node id must be the requester's authenticated PeerId (da-register).
                let error = dsdn_protocols::da::DaError::Malformed(
                    "coordinator_registered event: only the registration protocol records a coordinator"
                        .into(),
                );
                return Err(PublishError::Invalid { index, error });
            }
            event
                .validate_for_sealing()
                .and_then(|()| event.to_wire().map(drop))
                .map_err(|error| PublishError::Invalid { index, error })?;
        }
        let queued = self.queued_events();
        if queued + events.len() > MAX_QUEUED_EVENTS {
            return Err(PublishError::QueueFull { queued });
        }
        Ok(())
    }

    /// A storage node asks to be registered (coordinator side).
    pub(crate) fn on_register(
        &mut self,
        peer: PeerId,
        request: RegisterRequest,
        channel: RegisterReply,
        now: Instant,
    ) {
        let refuse = |reason: String| RegisterResponse::Refused { reason };
        // Not gated on this node's side of the handshake: the requester verified us first
        // and the protocol id is network-scoped; the PeerId is authenticated by noise.
        let answer = if !self.register_limiter.allow(&peer, now) {
            Some(refuse("too many registration requests".into()))
        } else if !self.is_authority() {
            Some(refuse(
                "this coordinator is not the DA authority of the network".into(),
            ))
        } else if self.identity_clash.is_some() {
            Some(refuse(
                "this coordinator stopped sealing (identity clash); try another".into(),
            ))
        } else if let Err(e) = request.validate() {
            Some(refuse(e.to_string()))
        } else if request.is_coordinator()
            && self
                .selection
                .as_ref()
                .is_some_and(|rule| !rule.admits(&peer.to_base58()))
        {
            // Issue 13 §3: only admitted coordinators (genesis members, `[committee]
            // candidates`) enter the registry; others would never be selected anyway.
            Some(refuse(
                "this coordinator is not admitted to the committee selection (neither a genesis member nor one of [committee] candidates)".into(),
            ))
        } else {
            let node_id = peer.to_base58();
            let known = if request.is_coordinator() {
                // A coordinator (issue 13 §3): its first registration height stays.
                self.chain.state().coordinator(&node_id).ok().flatten()
            } else {
                self.chain
                    .state()
                    .node(&node_id)
                    .ok()
                    .flatten()
                    .filter(|r| {
                        r.zone == request.zone
                            && r.capacity_bytes == request.capacity_bytes
                            && r.class == request.class
                    })
                    .map(|r| r.registered_at)
            };
            match known {
                Some(height) => {
                    self.metrics
                        .da_registrations
                        .with_label_values(&["known"])
                        .inc();
                    // Told only once the blob holding the registration is durable here.
                    self.when_durable(height, vec![Reply::Known(channel)]);
                    return;
                }
                None => {
                    let event = if request.is_coordinator() {
                        DaEvent::CoordinatorRegistered { node_id }
                    } else {
                        DaEvent::NodeRegistered {
                            node_id,
                            zone: request.zone,
                            capacity_bytes: request.capacity_bytes,
                            class: request.class,
                        }
                    };
                    match self.queue_event(event, Reply::Register(channel), now) {
                        Ok(()) => {
                            tracing::info!(%peer, "registration queued");
                            return;
                        }
                        Err(reply) => {
                            if let Reply::Register(channel) = reply {
                                self.metrics
                                    .da_registrations
                                    .with_label_values(&["refused"])
                                    .inc();
                                self.actions.push(DaAction::Respond(
                                    channel,
                                    refuse("the coordinator's queue is full; retry later".into()),
                                ));
                            }
                            return;
                        }
                    }
                }
            }
        };
        if let Some(answer) = answer {
            if matches!(answer, RegisterResponse::Refused { .. }) {
                self.metrics
                    .da_registrations
                    .with_label_values(&["refused"])
                    .inc();
            }
            self.actions.push(DaAction::Respond(channel, answer));
        }
    }

    /// True when the authority may seal: it holds no out-of-order blob, no peer reported a
    /// higher tip, a peer told it the tip (or the start grace passed), and the log takes new
    /// heights ([`DaService::accepting`]).
    fn may_seal(&self, now: Instant) -> bool {
        self.is_authority()
            && self.identity_clash.is_none()
            && self.accepting()
            && self.chain.pending() == 0
            && self.planner.target() <= self.chain.height()
            && (self.planner.probes_answered() > 0
                || now.duration_since(self.started) >= self.cfg.publish_grace)
    }

    /// Timers: backfill requests and stalls, sealing of batches (authority), the end of the
    /// backoff after a failed append. No new backfill request goes out while the log does
    /// not take new heights.
    pub(crate) fn poll(&mut self, now: Instant) {
        self.retry_due(now);
        self.settle_confirmations(now);
        let stalls = self.planner.stalls();
        let actions = if self.accepting() {
            self.planner.poll(now)
        } else {
            Vec::new()
        };
        self.metrics
            .da_sync_requests
            .with_label_values(&["stalled"])
            .inc_by(self.planner.stalls() - stalls);
        for action in actions {
            match action {
                SyncAction::Request { peer, request } => {
                    self.actions.push(DaAction::Sync(peer, request));
                }
            }
        }
        self.metrics
            .da_target_height
            .set(self.planner.target() as i64);
        while self.may_seal(now) {
            let Some(batch) = self.batcher.poll(now) else {
                break;
            };
            self.seal(batch);
        }
    }

    /// When [`DaService::poll`] next has something to do.
    /// A batch counts only while the node may seal: during the start grace the housekeeping
    /// tick polls again within a second.
    pub(crate) fn next_deadline(&self, now: Instant) -> Option<Instant> {
        let batch = if self.may_seal(now) {
            self.batcher.next_deadline()
        } else {
            None
        };
        // While the log takes no new heights the planner waits: the writer's reports or
        // the end of the backoff wake the loop.
        let planner = if self.accepting() {
            self.planner.next_deadline()
        } else {
            None
        };
        [batch, planner, self.retry_at(), self.confirm_deadline(now)]
            .into_iter()
            .flatten()
            .min()
    }

    fn seal(&mut self, batch: Vec<Queued>) {
        let height = self.chain.height() + 1;
        let Some(authority) = self.key_for(height) else {
            return;
        };
        let (events, replies): (Vec<DaEvent>, Vec<Reply>) =
            batch.into_iter().map(|q| (q.event, q.reply)).unzip();
        let unsigned = self.next_unsigned(height, events);
        let sealed = match (&self.sealer, unsigned) {
            // A committee member seals by rotation (`pool`): its batcher stays empty.
            (Sealer::None | Sealer::Committee, _) => return,
            (_, Err(e)) => Err(e),
            (Sealer::Key(signer), Ok(blob)) => blob.signing_bytes().and_then(|msg| {
                let signature = ed25519_dalek::Signer::sign(signer.as_ref(), &msg).to_bytes();
                blob.with_signature(signature)
                    .verify(&self.network, &authority)
            }),
        };
        match sealed {
            Ok(blob) => self.finish_seal(blob, replies),
            Err(e) => {
                tracing::error!(error = %e, "cannot seal a DA blob");
                self.fail_replies(replies, &e.to_string());
            }
        }
    }

    /// Applies a signed blob this node sealed and gossips it at once; its events' waiters
    /// are answered once it is durable in the log ([`DaService::when_durable`]).
    pub(super) fn finish_seal(&mut self, blob: VerifiedBlob, replies: Vec<Reply>) {
        let height = blob.height();
        let encoded = blob.encoded().to_vec();
        let events = blob.blob().events.len();
        match self.offer(blob) {
            Offer::Applied(_) => {}
            other => {
                let e = format!("the local chain refused the sealed blob: {other:?}");
                tracing::error!(error = %e, "cannot seal a DA blob");
                self.fail_replies(replies, &e);
                return;
            }
        }
        self.metrics.da_blobs_published.inc();
        self.sealed_this_run = true;
        tracing::info!(height, events, "DA blob sealed");
        self.actions.push(DaAction::Gossip(encoded));
        self.when_durable(height, replies);
    }

    /// Answers the waiters of the events of the (durable, confirmed) blob at `height`.
    pub(super) fn answer_confirmed(&mut self, height: u64, replies: Vec<Reply>) {
        for reply in replies {
            match reply {
                Reply::Publish(id) => self.publish_sealed(id, height),
                Reply::Known(channel) => self.actions.push(DaAction::Respond(
                    channel,
                    RegisterResponse::Registered { height },
                )),
                Reply::Submit(tx, submitted) => {
                    let _ = tx.send(Ok(submitted));
                }
                Reply::Internal => {}
                Reply::Register(channel) => {
                    self.metrics
                        .da_registrations
                        .with_label_values(&["published"])
                        .inc();
                    self.actions.push(DaAction::Respond(
                        channel,
                        RegisterResponse::Registered { height },
                    ));
                }
            }
        }
    }

    fn publish_sealed(&mut self, id: u64, height: u64) {
        let Some(w) = self.waiters.get_mut(&id) else {
            return;
        };
        w.remaining -= 1;
        w.heights.insert(height);
        if w.remaining == 0 {
            if let Some(w) = self.waiters.remove(&id) {
                let _ = w.tx.send(Ok(Published {
                    events: w.events,
                    heights: w.heights.into_iter().collect(),
                }));
            }
        }
    }

    pub(super) fn fail_replies(&mut self, replies: Vec<Reply>, error: &str) {
        for reply in replies {
            match reply {
                Reply::Publish(id) => {
                    if let Some(w) = self.waiters.remove(&id) {
                        let _ = w.tx.send(Err(PublishError::Seal(error.to_owned())));
                    }
                }
                Reply::Register(channel) => self.actions.push(DaAction::Respond(
                    channel,
                    RegisterResponse::Refused {
                        reason: "sealing failed".into(),
                    },
                )),
                Reply::Known(channel) => self.actions.push(DaAction::Respond(
                    channel,
                    RegisterResponse::Refused {
                        reason: "the coordinator's DA log failed; retry later".into(),
                    },
                )),
                Reply::Submit(tx, submitted) => {
                    let _ = tx.send(Err(SubmitError::NotStored {
                        height: submitted.height,
                        reason: error.to_owned(),
                    }));
                }
                Reply::Internal => {
                    tracing::warn!(
                        error,
                        "an internal DA event (committee rotation) was not sealed"
                    )
                }
            }
        }
    }
}

/// Encoded size of an event (its wire body), for batching by size.
pub(super) fn event_size(event: &DaEvent) -> usize {
    event.to_wire().map_or(256, |w| w.2.len() + 8)
}
