//! Workloads and receipts on the network (Tahap 14C.B): the pure parts, and the
//! `WorkloadService` built on them that the event loop feeds and whose
//! `WorkloadAction`s it carries out.
//!
//! ```text
//! NodeHandle::submit_workload ─▶ coordinator (committee member)
//!   ├─ ModuleStore ← module (by SHA-256)
//!   ├─ choose_executors: connected storage nodes, minus the submitter's own node
//!   ├─ /dsdn/<net>/workload/1.0.0 Execute ─▶ storage node
//!   │     storage node: FetchModule ─▶ coordinator; Executor (WASM) on a blocking thread;
//!   │     ReceiptV1 signed with the node key ◀─ Executed{receipt, output}
//!   ├─ committee threshold signature over committee_signing_bytes (Slot::Receipt(id))
//!   └─ ThresholdReceipt ─▶ gossip dsdn/<net>/receipts/1 ─▶ every node verifies (group key,
//!      node signature, commitment consistency, no duplicate) before forwarding; the DA
//!      proposer records it in the DA log (DaEvent::ReceiptRecorded)
//! ```
//!
//! An optimistic submission (issue 13 §5) is answered as soon as the storage node's receipt
//! checks out, with an `OptimisticReceipt` signed by this coordinator's node key and a
//! challenge window ([`ReceiptsConfig`]), gossiped on the same topic; the threshold receipt
//! follows and supersedes it on every node ([`RecentReceipts`] applies the upgrade rule).
//!
//! Execution itself is the daemon's (it owns the WASM runtime): it hands the node an
//! [`Executor`], called on tokio's blocking pool, at most [`WorkloadConfig::max_jobs`] at a
//! time.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::{peer_id_bytes, workload_id, ExecutionCommitment, ResourceUsage};
use dsdn_protocols::workload::{WorkloadRefusal, MAX_MODULE_BYTES};
use dsdn_protocols::{ServiceSet, ServiceType};
use libp2p::PeerId;

use crate::committee::ThresholdSignError;

pub(crate) mod config;
mod metrics;
mod recent;
mod service;
pub use config::ReceiptsConfig;
pub use metrics::WorkloadMetrics;
pub use recent::{HeldReceipt, OptimisticKept, ReceiptStatus, RecentReceipts, ThresholdKept};
pub(crate) use service::{Internal, ReceiptCheck, WorkloadAction, WorkloadService};

/// What an outbound `/dsdn/<network>/workload/1.0.0` request of this node is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkloadTag {
    /// An `Execute` for the submission with this id, sent to this storage node.
    Execute(u64, PeerId),
    /// A `FetchModule` for the job with this id.
    Fetch(u64),
}

/// What an [`Executor`] returns for one run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExecOutput {
    /// The module's output.
    pub output: Vec<u8>,
    /// The execution commitment (Tahap 14C.A §1).
    pub commitment: ExecutionCommitment,
    /// Fuel, peak memory and wall time.
    pub usage: ResourceUsage,
}

/// Runs WASM workloads for the node (implemented by the daemon on its `WorkloadRuntime`).
/// Called on a blocking thread; must be deterministic for the same module and input.
pub trait Executor: Send + Sync + 'static {
    /// Runs `module` on `input`.
    ///
    /// # Errors
    /// A text naming why no receipt can be produced (not WASM, trap, out of fuel, memory or
    /// time, oversized output).
    fn execute(&self, module: &[u8], input: &[u8]) -> Result<ExecOutput, String>;
}

/// A node's part in the workload flow. The default executes nothing (it still answers
/// `FetchModule` for modules it holds, and verifies and forwards receipts).
#[derive(Clone)]
pub struct WorkloadConfig {
    /// The runtime, on nodes that execute workloads (storage nodes); `None` elsewhere.
    pub executor: Option<Arc<dyn Executor>>,
    /// Jobs run at once; further `Execute` requests are refused as busy. Default 2.
    pub max_jobs: usize,
    /// Bytes of modules kept by id (least recently used dropped first). Default 64 MiB.
    pub module_cache_bytes: usize,
    /// How long a coordinator waits for one node's `Execute` answer (module fetch and run
    /// included). Default 60 s.
    pub execute_timeout: Duration,
    /// Nodes a coordinator tries for one submission before giving up. Default 3.
    pub max_attempts: usize,
    /// **Tests only**: this node reports a made-up output with a commitment that matches
    /// it (a lying node, caught by re-execution). Never set it in production.
    pub test_lie_output: bool,
    /// Optimistic receipts: whether submissions get one by default, and their challenge
    /// window (`[receipts]` of seeds.toml). Default: off, 10 minutes.
    pub receipts: ReceiptsConfig,
}

impl Default for WorkloadConfig {
    fn default() -> Self {
        WorkloadConfig {
            executor: None,
            max_jobs: 2,
            module_cache_bytes: 64 << 20,
            execute_timeout: Duration::from_secs(60),
            max_attempts: 3,
            test_lie_output: false,
            receipts: ReceiptsConfig::default(),
        }
    }
}

impl std::fmt::Debug for WorkloadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkloadConfig")
            .field("executor", &self.executor.is_some())
            .field("max_jobs", &self.max_jobs)
            .field("module_cache_bytes", &self.module_cache_bytes)
            .field("execute_timeout", &self.execute_timeout)
            .field("max_attempts", &self.max_attempts)
            .field("test_lie_output", &self.test_lie_output)
            .field("receipts", &self.receipts)
            .finish()
    }
}

/// What `NodeHandle::submit_workload` returns: the receipt and the output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadResult {
    /// The receipt (already gossiped): threshold-signed by the committee, or, for an
    /// optimistic submission, signed by this coordinator alone (its threshold receipt
    /// follows on gossip and supersedes it).
    pub receipt: HeldReceipt,
    /// The module's output as the executing node returned it.
    pub output: Vec<u8>,
    /// The node that executed it.
    pub node: PeerId,
}

/// Why a submission produced no receipt.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WorkloadError {
    /// The submission is malformed or its signature does not verify.
    #[error("invalid submission: {0}")]
    Invalid(String),
    /// This node is not a committee member holding a key share: submit to a coordinator.
    #[error("this node is not a committee member with a key share (submit to a coordinator)")]
    NotCommittee,
    /// No connected storage node may execute it (none connected, or only the submitter's).
    #[error(
        "no storage node available (connected storage nodes not operated by the submitter: none)"
    )]
    NoExecutor,
    /// Every node tried refused or failed; each with its reason.
    #[error("no node executed the workload: {}", tried_text(.0))]
    Failed(Vec<(PeerId, String)>),
    /// The committee did not sign the receipt.
    #[error("the committee did not sign the receipt: {0}")]
    Signing(ThresholdSignError),
    /// Too many submissions in flight on this node.
    #[error("too many submissions in flight ({0})")]
    Busy(usize),
    /// The event loop has stopped.
    #[error("the node has stopped")]
    Stopped,
}

fn tried_text(tried: &[(PeerId, String)]) -> String {
    tried
        .iter()
        .map(|(p, e)| format!("{p}: {e}"))
        .collect::<Vec<_>>()
        .join("; ")
}

/// The libp2p PeerId of the node whose Ed25519 key is `key` (a submitter's own node).
pub fn peer_of_key(key: &Bytes32) -> Option<PeerId> {
    PeerId::from_bytes(&peer_id_bytes(key)).ok()
}

/// The nodes a coordinator tries for a submission from `submitter`, best first: connected
/// peers advertising [`ServiceType::Storage`] or [`ServiceType::StorageDc`], except the
/// submitter's own node (anti-self-dealing, Tahap 17) and this node; rotated by `turn` so
/// consecutive submissions spread over the nodes; at most `max` of them.
pub fn choose_executors(
    connected: &[(PeerId, ServiceSet)],
    submitter: &Bytes32,
    me: &PeerId,
    turn: usize,
    max: usize,
) -> Vec<PeerId> {
    let own = peer_of_key(submitter);
    let mut nodes: Vec<PeerId> = connected
        .iter()
        .filter(|(p, s)| {
            (s.contains(ServiceType::Storage) || s.contains(ServiceType::StorageDc))
                && Some(*p) != own
                && p != me
        })
        .map(|(p, _)| *p)
        .collect();
    nodes.sort();
    nodes.dedup();
    if !nodes.is_empty() {
        let k = turn % nodes.len();
        nodes.rotate_left(k);
    }
    nodes.truncate(max);
    nodes
}

/// Why a module is not kept.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    /// Larger than [`MAX_MODULE_BYTES`] or than the whole store.
    #[error("module of {0} bytes is too large")]
    TooLarge(usize),
    /// The bytes do not hash to the expected workload id.
    #[error("module bytes do not hash to the workload id")]
    WrongHash,
}

/// Most modules a [`ModuleStore`] holds, whatever their size (bounds the LRU bookkeeping,
/// which is linear in the number of modules).
pub const MAX_STORED_MODULES: usize = 256;

/// Modules by workload id (`SHA-256` of the bytes), at most `capacity` bytes and
/// [`MAX_STORED_MODULES`] modules in all; the least recently used go first.
#[derive(Debug)]
pub struct ModuleStore {
    capacity: usize,
    total: usize,
    modules: HashMap<Bytes32, Arc<Vec<u8>>>,
    order: VecDeque<Bytes32>,
}

impl ModuleStore {
    /// An empty store of at most `capacity` bytes.
    pub fn new(capacity: usize) -> Self {
        ModuleStore {
            capacity,
            total: 0,
            modules: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Keeps `module`, checking it hashes to `expected` when given; returns its id.
    ///
    /// # Errors
    /// [`ModuleError::TooLarge`], [`ModuleError::WrongHash`].
    pub fn insert(
        &mut self,
        module: Vec<u8>,
        expected: Option<&Bytes32>,
    ) -> Result<Bytes32, ModuleError> {
        if module.len() > MAX_MODULE_BYTES || module.len() > self.capacity {
            return Err(ModuleError::TooLarge(module.len()));
        }
        let id = workload_id(&module);
        if expected.is_some_and(|e| *e != id) {
            return Err(ModuleError::WrongHash);
        }
        if self.modules.contains_key(&id) {
            self.touch(&id);
            return Ok(id);
        }
        while self.total + module.len() > self.capacity || self.modules.len() >= MAX_STORED_MODULES
        {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(m) = self.modules.remove(&old) {
                self.total -= m.len();
            }
        }
        self.total += module.len();
        self.modules.insert(id, Arc::new(module));
        self.order.push_back(id);
        Ok(id)
    }

    /// The module with id `id`, marked as recently used.
    pub fn get(&mut self, id: &Bytes32) -> Option<Arc<Vec<u8>>> {
        let m = self.modules.get(id).cloned()?;
        self.touch(id);
        Some(m)
    }

    fn touch(&mut self, id: &Bytes32) {
        if let Some(i) = self.order.iter().position(|x| x == id) {
            self.order.remove(i);
            self.order.push_back(*id);
        }
    }

    /// Bytes held.
    pub fn bytes(&self) -> usize {
        self.total
    }

    /// Modules held.
    pub fn len(&self) -> usize {
        self.modules.len()
    }

    /// True when no module is held.
    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }
}

/// Which receipts [`crate::NodeHandle::receipts`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiptQuery {
    /// Those whose id starts with these hex digits (at most 2 are returned: one means the
    /// prefix is unique); recently accepted ones and those recorded in the DA log.
    Prefix(String),
    /// The `n` accepted most recently, newest first.
    Recent(usize),
}

/// The receipt-id range covered by the hex digits `prefix` (lower and upper bound), `None`
/// when `prefix` is not 1–64 hex digits.
pub fn prefix_range(prefix: &str) -> Option<(Bytes32, Bytes32)> {
    if prefix.is_empty() || prefix.len() > 64 || !prefix.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let (mut lo, mut hi) = ([0u8; 32], [0xffu8; 32]);
    for (i, c) in prefix.bytes().enumerate() {
        let v = (c as char).to_digit(16)? as u8;
        let byte = i / 2;
        if i % 2 == 0 {
            lo[byte] = v << 4;
            hi[byte] = (v << 4) | 0x0f;
        } else {
            lo[byte] |= v;
            hi[byte] = (hi[byte] & 0xf0) | v;
        }
    }
    Some((Bytes32(lo), Bytes32(hi)))
}

/// The refusal a node answers for an `Execute` it cannot take (`None`: it takes it).
pub fn execute_refusal(
    has_executor: bool,
    running: usize,
    max_jobs: usize,
    submitter: &Bytes32,
    my_key: &Bytes32,
) -> Option<WorkloadRefusal> {
    if !has_executor {
        Some(WorkloadRefusal::NotExecuting)
    } else if submitter == my_key {
        Some(WorkloadRefusal::SelfDealing)
    } else if running >= max_jobs {
        Some(WorkloadRefusal::Busy)
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_service;
