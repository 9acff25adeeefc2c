//! Serving `/dsdn/<network>/da-proof/1.0.0` (issue 16 §3) and
//! `/dsdn/<network>/da-state/1.0.0` (state sync, issue 16 §5) off the event loop: a
//! [`Worker`] owns the pending inbound requests of one protocol and a worker thread that
//! answers them from redb, so the event loop never reads the disk for them. The event loop
//! only routes: a request goes to [`Worker::submit`], the worker's answers come back
//! through [`Worker::next_done`] and are sent with the reply handle the server kept. The
//! control API's `GET /v1/da/proof` at a durable height goes the same way
//! ([`Worker::submit_local`], sharing the queue with the peers').
//! [`ProofServer`] builds proofs; [`StateServer`] builds state chunks
//! ([`DaStore::state_chunk`], at most `MAX_CHUNK_ENTRIES` entries and about
//! `CHUNK_SOFT_BYTES` bytes each).
//!
//! Proofs are built from the durable state only (the redb tables, through a fresh
//! read-only `StoredState`): a request without a height is answered at the newest durable
//! height, and heights not durable yet are [`ProofResponse::HeightUnavailable`].
//!
//! Caps (each server): at most [`PROOF_QUEUE`] requests queued or being built (more are
//! answered `Busy` at once), at most [`MAX_PENDING_PER_PEER`] of them per peer; requests
//! and responses are size-capped by the codec (`MAX_PROOF_REQUEST_BYTES`,
//! `MAX_PROOF_RESPONSE_BYTES`, `MAX_STATE_REQUEST_BYTES`, `MAX_STATE_RESPONSE_BYTES`).

use std::collections::HashMap;
use std::sync::mpsc::{sync_channel, SyncSender, TrySendError};
use std::sync::Arc;

use dsdn_protocols::da::prove::{ProofRequest, ProofResponse};
use dsdn_protocols::da::state_sync::{StateChunkRequest, StateChunkResponse};
use dsdn_protocols::da::{StateError, StateKey, StateProof};
use libp2p::PeerId;
use tokio::sync::mpsc;

use super::store::{DaStore, StoredState};
use crate::net::rpc::Reply;

/// Most proof requests queued or being built at once.
pub const PROOF_QUEUE: usize = 64;

/// Most pending proof requests of one peer.
pub const MAX_PENDING_PER_PEER: usize = 8;

/// A request handed to the worker.
struct Job<Q> {
    id: u64,
    request: Q,
}

/// A built answer: the job id and the response.
pub(crate) struct Done<A> {
    id: u64,
    response: A,
}

/// The answers a worker's protocol gives without the worker.
pub(crate) trait Refusals {
    /// The queue or the peer's share is full.
    fn busy() -> Self;
    /// The worker thread is gone.
    fn stopped() -> Self;
    /// This node runs no such worker (no DA log on disk).
    fn unserved() -> Self;
}

impl Refusals for ProofResponse {
    fn busy() -> Self {
        ProofResponse::Busy
    }
    fn stopped() -> Self {
        ProofResponse::Failed("the proof worker stopped".into())
    }
    fn unserved() -> Self {
        ProofResponse::Failed("this node serves no proofs".into())
    }
}

impl Refusals for StateChunkResponse {
    fn busy() -> Self {
        StateChunkResponse::Busy
    }
    fn stopped() -> Self {
        StateChunkResponse::Failed("the state-sync worker stopped".into())
    }
    fn unserved() -> Self {
        StateChunkResponse::Failed("this node serves no state sync".into())
    }
}

/// Who waits for a worker's answer.
enum Waiter<A> {
    /// A peer's request: answered on its reply handle through [`Worker::next_done`].
    Peer(PeerId, Reply),
    /// A local caller (the control API): the answer is handed to the closure.
    Local(Box<dyn FnOnce(A) + Send>),
}

/// See the module docs.
///
/// Dropping it closes the queue and joins the thread (after the job in progress, if any),
/// so the thread's handle on the DA log is gone before the node closes the log: a log
/// still held when the process exits is not closed cleanly, and the next start pays
/// redb's recovery pass over the whole file.
pub(crate) struct Worker<Q, A> {
    /// `None` once dropping.
    jobs: Option<SyncSender<Job<Q>>>,
    thread: Option<std::thread::JoinHandle<()>>,
    done: mpsc::Receiver<Done<A>>,
    /// Job id → who waits for it.
    pending: HashMap<u64, Waiter<A>>,
    next_id: u64,
}

/// Serves `/dsdn/<network>/da-proof/1.0.0`.
pub(crate) type ProofServer = Worker<ProofRequest, ProofResponse>;

/// Serves `/dsdn/<network>/da-state/1.0.0` (state sync).
pub(crate) type StateServer = Worker<StateChunkRequest, StateChunkResponse>;

impl ProofServer {
    /// Starts the proof worker thread over `store` (the node's DA log with its state).
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn start(store: Arc<DaStore>) -> std::io::Result<ProofServer> {
        Worker::spawn("da-proofs", store, prove)
    }
}

impl StateServer {
    /// Starts the state-sync worker thread over `store`.
    ///
    /// # Errors
    /// The thread cannot be spawned.
    pub(crate) fn start(store: Arc<DaStore>) -> std::io::Result<StateServer> {
        Worker::spawn("da-state-sync", store, |s, r| s.state_chunk(r))
    }
}

impl<Q: Send + 'static, A: Refusals + Send + 'static> Worker<Q, A> {
    /// Starts a worker thread named `name` answering with `answer` over `store`.
    fn spawn(
        name: &str,
        store: Arc<DaStore>,
        answer: fn(&Arc<DaStore>, &Q) -> A,
    ) -> std::io::Result<Worker<Q, A>> {
        let (jobs, rx) = sync_channel::<Job<Q>>(PROOF_QUEUE);
        let (tx, done) = mpsc::channel(PROOF_QUEUE);
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    let response = answer(&store, &job.request);
                    if tx
                        .blocking_send(Done {
                            id: job.id,
                            response,
                        })
                        .is_err()
                    {
                        break;
                    }
                }
            })?;
        Ok(Worker {
            jobs: Some(jobs),
            thread: Some(thread),
            done,
            pending: HashMap::new(),
            next_id: 0,
        })
    }

    /// Takes `peer`'s request: queued for the worker (answered later through
    /// [`Worker::next_done`]), or answered at once (returned) when the queue or the
    /// peer's share is full or the worker is gone.
    pub(crate) fn submit(&mut self, peer: PeerId, request: Q, reply: Reply) -> Option<(Reply, A)> {
        let of_peer = self
            .pending
            .values()
            .filter(|w| matches!(w, Waiter::Peer(p, _) if *p == peer))
            .count();
        if of_peer >= MAX_PENDING_PER_PEER || self.pending.len() >= PROOF_QUEUE {
            return Some((reply, A::busy()));
        }
        match self.enqueue(request, Waiter::Peer(peer, reply)) {
            Ok(()) => None,
            Err((Waiter::Peer(_, reply), refusal)) => Some((reply, refusal)),
            Err((Waiter::Local(_), _)) => None,
        }
    }

    /// [`Worker::submit`] on `server`, or the refusal of a node that runs no such worker.
    pub(crate) fn offer(
        server: Option<&mut Worker<Q, A>>,
        peer: PeerId,
        request: Q,
        reply: Reply,
    ) -> Option<(Reply, A)> {
        match server {
            Some(s) => s.submit(peer, request, reply),
            None => Some((reply, A::unserved())),
        }
    }

    /// Takes a local request (the control API's): `answer` gets the worker's answer, or
    /// at once the refusal when the queue is full ([`PROOF_QUEUE`], shared with the
    /// peers') or the worker is gone.
    pub(crate) fn submit_local(&mut self, request: Q, answer: Box<dyn FnOnce(A) + Send>) {
        if self.pending.len() >= PROOF_QUEUE {
            answer(A::busy());
            return;
        }
        if let Err((Waiter::Local(answer), refusal)) = self.enqueue(request, Waiter::Local(answer))
        {
            answer(refusal);
        }
    }

    /// Queues `request` for the worker with its waiter; gives both back with the refusal
    /// when the queue is full or the worker is gone.
    fn enqueue(&mut self, request: Q, waiter: Waiter<A>) -> Result<(), (Waiter<A>, A)> {
        let id = self.next_id;
        self.next_id += 1;
        let Some(jobs) = &self.jobs else {
            return Err((waiter, A::stopped()));
        };
        match jobs.try_send(Job { id, request }) {
            Ok(()) => {
                self.pending.insert(id, waiter);
                Ok(())
            }
            Err(TrySendError::Full(_)) => Err((waiter, A::busy())),
            Err(TrySendError::Disconnected(_)) => Err((waiter, A::stopped())),
        }
    }

    /// The next built answer for a peer with the reply handle to send it on (local
    /// callers' answers are handed over on the way); pending forever when there is no
    /// server (for `tokio::select!`).
    pub(crate) async fn next_done(server: &mut Option<Worker<Q, A>>) -> Option<(Reply, A)> {
        let Some(s) = server.as_mut() else {
            return std::future::pending().await;
        };
        loop {
            let done = s.done.recv().await?;
            match s.pending.remove(&done.id) {
                Some(Waiter::Peer(_, reply)) => return Some((reply, done.response)),
                Some(Waiter::Local(answer)) => answer(done.response),
                None => {}
            }
        }
    }
}

impl<Q, A> Drop for Worker<Q, A> {
    fn drop(&mut self) {
        // The worker ends when the queue closes, or when it cannot hand an answer back.
        self.jobs = None;
        self.done.close();
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("a DA worker thread panicked");
            }
        }
    }
}

/// Builds the answer to `request` from the durable state in `store` (on the worker).
fn prove(store: &Arc<DaStore>, request: &ProofRequest) -> ProofResponse {
    let key = match StateKey::parse(&request.key) {
        Ok(k) => k,
        Err(e) => return ProofResponse::BadKey(e.to_string()),
    };
    match build(store, &key, request.height) {
        Ok(proof) => ProofResponse::Proof(proof),
        Err(StateError::HeightUnavailable {
            height,
            oldest,
            newest,
        }) => ProofResponse::HeightUnavailable {
            height,
            oldest,
            newest,
        },
        Err(e) => ProofResponse::Failed(e.to_string()),
    }
}

/// A worker's answer as the control API's `GET /v1/da/proof` gives it: the proof, or
/// [`StateError::HeightUnavailable`], or [`StateError::Store`] (a busy or stopped worker,
/// a store that cannot be read).
pub(crate) fn api_answer(response: ProofResponse) -> Result<StateProof, StateError> {
    match response {
        ProofResponse::Proof(proof) => Ok(proof),
        ProofResponse::HeightUnavailable {
            height,
            oldest,
            newest,
        } => Err(StateError::HeightUnavailable {
            height,
            oldest,
            newest,
        }),
        ProofResponse::Busy => Err(StateError::Store(
            "the proof worker is busy (64 proofs queued): try again".into(),
        )),
        ProofResponse::BadKey(e) | ProofResponse::Failed(e) => Err(StateError::Store(e)),
    }
}

fn build(
    store: &Arc<DaStore>,
    key: &StateKey,
    height: Option<u64>,
) -> Result<StateProof, StateError> {
    let newest = store.state_tip();
    let oldest = store.state_oldest()?;
    let height = height.unwrap_or(newest);
    let unavailable = StateError::HeightUnavailable {
        height,
        oldest,
        newest,
    };
    if height > newest || height < oldest {
        return Err(unavailable);
    }
    let Some(root) = store.state_root_at(height)? else {
        return Err(unavailable);
    };
    let (reader, _) = StoredState::open(Arc::clone(store))?;
    StateProof::build(&reader, key, height, root)
}

#[cfg(test)]
mod tests {
    use dsdn_protocols::da::{DaEvent, StateKey};
    use dsdn_protocols::NetworkId;
    use ed25519_dalek::SigningKey;

    use super::*;
    use crate::da::store::OfflineState;

    /// A log of 3 blobs with its state, written through the full node's store code.
    fn store(dir: &std::path::Path) -> (Arc<DaStore>, [u8; 32]) {
        let net = NetworkId::new("devnet").unwrap();
        let key = SigningKey::from_bytes(&[3; 32]);
        let path = dir.join("da-log.redb");
        let root = {
            let mut s = OfflineState::open(&path, &net).unwrap();
            for h in 1..=3u64 {
                let b = s
                    .state()
                    .seal_next(
                        &key,
                        h,
                        vec![DaEvent::NodeRegistered {
                            node_id: format!("n{h}"),
                            zone: "z".into(),
                            capacity_bytes: h,
                            class: "regular".into(),
                        }],
                    )
                    .unwrap()
                    .verify(&net, &key.verifying_key().to_bytes())
                    .unwrap();
                s.apply(&b).unwrap();
            }
            s.flush().unwrap();
            s.state().state_root()
        };
        (Arc::new(DaStore::open(&path, &net).unwrap().store), root)
    }

    #[test]
    fn the_worker_proves_durable_heights_and_refuses_the_others() {
        let dir = tempfile::tempdir().unwrap();
        let (store, root) = store(dir.path());
        let ask = |key: &str, height| {
            prove(
                &store,
                &ProofRequest {
                    key: key.into(),
                    height,
                },
            )
        };
        // The newest durable height by default, verifying against the state's root.
        let ProofResponse::Proof(p) = ask("node:n3", None) else {
            panic!("no proof");
        };
        assert_eq!(p.height, 3);
        assert!(p.verify(root).unwrap().1.is_some());
        // An older height: n3 absent there.
        let ProofResponse::Proof(p) = ask("node:n3", Some(2)) else {
            panic!("no proof at 2");
        };
        assert_eq!(
            p.verify(p.root.0).unwrap(),
            (StateKey::Node("n3".into()), None)
        );
        assert!(matches!(
            ask("node:n1", Some(9)),
            ProofResponse::HeightUnavailable {
                height: 9,
                newest: 3,
                ..
            }
        ));
        assert!(matches!(ask("nonsense", None), ProofResponse::BadKey(_)));
    }

    #[tokio::test]
    async fn the_server_answers_through_the_event_loop_and_caps_each_peer() {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = store(dir.path());
        let mut server = Some(ProofServer::start(store).unwrap());
        let peer = PeerId::random();
        let request = ProofRequest {
            key: "node:n1".into(),
            height: None,
        };
        let mut busy = 0;
        for n in 0..(MAX_PENDING_PER_PEER as u64 + 3) {
            let s = server.as_mut().unwrap();
            if let Some((_, r)) = s.submit(peer, request.clone(), Reply::for_test(n)) {
                assert!(matches!(r, ProofResponse::Busy));
                busy += 1;
            }
        }
        assert!(busy >= 3, "{busy} busy answers");
        let mut answered = 0;
        while answered + busy < MAX_PENDING_PER_PEER + 3 {
            let (_, r) = ProofServer::next_done(&mut server).await.unwrap();
            assert!(matches!(r, ProofResponse::Proof(_)));
            answered += 1;
        }
        assert_eq!(server.as_ref().unwrap().pending.len(), 0);
    }

    #[tokio::test]
    async fn the_state_server_answers_chunks_through_the_event_loop() {
        let dir = tempfile::tempdir().unwrap();
        let (store, root) = store(dir.path());
        let mut server = Some(StateServer::start(store).unwrap());
        let peer = PeerId::random();
        let ask = |height| StateChunkRequest {
            height,
            after: None,
            max_entries: 2,
        };
        let s = server.as_mut().unwrap();
        assert!(s.submit(peer, ask(3), Reply::for_test(0)).is_none());
        assert!(s.submit(peer, ask(9), Reply::for_test(1)).is_none());
        let mut seen = 0;
        while seen < 2 {
            match StateServer::next_done(&mut server).await.unwrap().1 {
                StateChunkResponse::Chunk(c) => {
                    assert_eq!((c.height, c.root.0, c.entries.len()), (3, root, 2));
                    assert!(!c.last);
                }
                StateChunkResponse::HeightUnavailable { height, newest, .. } => {
                    assert_eq!((height, newest), (9, 3));
                }
                other => panic!("unexpected answer {other:?}"),
            }
            seen += 1;
        }
    }

    #[tokio::test]
    async fn a_local_request_is_answered_beside_the_peers_ones() {
        let dir = tempfile::tempdir().unwrap();
        let (log, root) = store(dir.path());
        let mut server = Some(ProofServer::start(log).unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel();
        let s = server.as_mut().unwrap();
        s.submit_local(
            ProofRequest::new(&StateKey::Node("n2".into()), Some(3)),
            Box::new(move |r| {
                let _ = tx.send(api_answer(r));
            }),
        );
        let peer = PeerId::random();
        let request = ProofRequest {
            key: "node:n1".into(),
            height: None,
        };
        assert!(s.submit(peer, request, Reply::for_test(1)).is_none());
        // The worker answers in order: next_done hands the local answer over on its way to
        // the peer's.
        let (_, r) = ProofServer::next_done(&mut server).await.unwrap();
        assert!(matches!(r, ProofResponse::Proof(_)));
        drop(server);
        let local = rx.await.unwrap().unwrap();
        assert_eq!(local.height, 3);
        assert!(local.verify(root).unwrap().1.is_some());
        // A height above the tip: HeightUnavailable, as the API's 404 wants it.
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dir2 = tempfile::tempdir().unwrap();
        let (store2, _) = store(dir2.path());
        let mut server = Some(ProofServer::start(store2).unwrap());
        server.as_mut().unwrap().submit_local(
            ProofRequest::new(&StateKey::Node("n1".into()), Some(9)),
            Box::new(move |r| {
                let _ = tx.send(api_answer(r));
            }),
        );
        // Nothing for a peer is pending: drive next_done until the local answer is out.
        let _ = tokio::time::timeout(
            std::time::Duration::from_secs(2),
            ProofServer::next_done(&mut server),
        )
        .await;
        assert!(matches!(
            rx.await.unwrap(),
            Err(StateError::HeightUnavailable {
                height: 9,
                newest: 3,
                ..
            })
        ));
    }
}
