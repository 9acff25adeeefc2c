//! The WASM workload runtime (issue 6, item 1): runs a module on an input under fuel, memory
//! and wall-clock limits and returns the output with an [`ExecutionCommitment`] that is the
//! same on every machine for the same module, input and [`Limits`].
//!
//! Spec: `dsdn-roadmap.md` Tahap 7 (WASM on wasmtime, time and memory limits), 14C.B §1
//! (the runtime captures input/output hashes and state roots, same input → same
//! commitment), Tahap 18 (metering, `StateCheckpoint`) and 18.8 §1 (merkleized trace).
//!
//! # Module ABI
//!
//! A workload is a core WebAssembly module (no component model) that:
//! - **imports nothing** — any import is refused with [`RuntimeError::ForbiddenImport`]: no
//!   clock, randomness, host I/O or WASI exists, so the input is the only thing a run sees;
//! - exports `memory`: its one 32-bit, non-shared linear memory;
//! - exports `alloc: (len: i32) -> i32`: returns the address of `len` writable bytes in
//!   `memory`. The runtime calls it exactly once, with the input length (possibly 0), and
//!   copies the input there;
//! - exports `run: (input_ptr: i32, input_len: i32) -> i64`: the entry point, called once
//!   with the address from `alloc` and the input length. It returns the output's location
//!   packed as `(output_ptr << 32) | output_len`, both read as unsigned 32-bit numbers; the
//!   `output_len` bytes at `output_ptr` of `memory` are the output.
//!
//! An export missing or of another type is [`RuntimeError::MissingExport`]; an `alloc` result
//! or `run` result pointing outside `memory` is [`RuntimeError::BadAlloc`] or
//! [`RuntimeError::BadOutput`]. A `start` function, if any, runs during instantiation.
//!
//! # Determinism
//!
//! The engine is configured so that a run is a function of (module, input, limits): NaN
//! canonicalisation on (every float NaN result has the canonical bit pattern), relaxed SIMD
//! and threads off, one memory of 32-bit addresses (no memory64, no multi-memory), fuel
//! metering on. Wall-clock time only ever *aborts* a run ([`RuntimeError::WallClockLimit`]);
//! it never changes a result or a checkpoint position.
//!
//! Not covered: the recursion depth at which a module traps with a stack overflow depends
//! on native frame sizes (wasmtime's 512 KiB wasm stack), so it can differ between
//! wasmtime versions or CPU architectures, as can fuel costs between wasmtime versions.
//! Parties comparing commitments must run the same wasmtime version (41.0.x) and, for
//! workloads that recurse deeply, the same architecture.
//!
//! # Fuel and checkpoints
//!
//! Wasmtime charges about one fuel unit per instruction (`nop`, `drop`, `block`, `loop` are
//! free); [`Limits::fuel`] covers instantiation, `alloc` and `run` together. During `run`
//! the trace is cut into *slices*: a slice ends at the first fuel check (a function entry
//! or a loop header) at which at least [`Limits::checkpoint_interval_fuel`] units were
//! consumed since the slice began, so every slice is at least one interval long and
//! exceeds it by less than the fuel of one straight-line stretch of code. At each slice end
//! the runtime records a [`Checkpoint`] (fuel consumed since the start, SHA-256 of linear
//! memory). After `run` returns it records one **final** checkpoint (the total fuel and
//! `state_root_after`). Hence
//! `checkpoints = slices + 1 <= floor(fuel_in_run / interval) + 1`, with equality whenever
//! the run's loops are short compared with the interval and no more than one slice's
//! worth of overshoot accumulates (the tests check the slice bounds exactly).
//! `trace_root` is the merkle root ([`dsdn_protocols::receipt::merkle`]) of the checkpoint
//! hashes. Slices are driven by wasmtime's fuel-based async yields (positions depend on
//! fuel only); the memory is hashed at the epoch check that wasmtime places right after
//! each fuel check, triggered by the runtime itself.
//!
//! # Errors
//!
//! Every failure is a [`RuntimeError`]; only a successful [`WorkloadRuntime::run`] returns
//! an [`Execution`], so no commitment exists for a failed run.

mod cache;
mod exec;
mod executor;
mod runtime;
pub mod samples;
#[cfg(test)]
mod tests;

use std::time::Duration;

pub use dsdn_protocols::receipt::{Checkpoint, ExecutionCommitment, ResourceUsage};
pub use executor::{RuntimeExecutor, NETWORK_LIMITS};
pub use runtime::WorkloadRuntime;

/// Number of compiled modules kept in a runtime's cache (least recently used evicted).
pub const MODULE_CACHE_ENTRIES: usize = 64;

/// Total size of the compiled images (`Module::image_range`) kept in a runtime's cache, in
/// bytes: 256 MiB (least recently used evicted; the newest module is always kept).
pub const MODULE_CACHE_BYTES: usize = 256 << 20;

/// Wall-clock tick of the epoch thread: the granularity of [`Limits::wall_time`].
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Limits of one run. The defaults are [`Limits::DEFAULT`].
///
/// `fuel`, `memory_bytes` and `checkpoint_interval_fuel` take part in the result (a run
/// near a limit may succeed under one setting and fail under another; checkpoint positions
/// depend on the interval), so every party comparing commitments must use the same values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Fuel units for instantiation, `alloc` and `run` together (about one per executed
    /// instruction). Default 10 000 000 000. At most `i64::MAX`.
    pub fuel: u64,
    /// Largest size linear memory may reach, in bytes (memories grow in 64 KiB pages).
    /// Default 64 MiB.
    pub memory_bytes: usize,
    /// Wall-clock budget of instantiation and execution (not compilation). Checked every
    /// [`EPOCH_TICK`] at function entries and loop headers. Default 10 s.
    pub wall_time: Duration,
    /// Fuel units between trace checkpoints; `u64::MAX` disables the intermediate ones (the
    /// final checkpoint is always taken). Default 1 000 000 000 (about 0.1 to 0.2 s of
    /// compute). A checkpoint costs one SHA-256 pass over linear memory (about 1 ms per MiB
    /// with SHA-NI), so the overhead is about `memory_MiB × 1 ms / slice duration`, i.e.
    /// ~1 % per MiB of memory at this default. `examples/workload_bench.rs` (release,
    /// median thread CPU time of 31 interleaved rounds, a fresh engine per sample) measured
    /// against the same runtime without intermediate checkpoints: a 0.6 MiB f64 matrix
    /// multiply +0.7 % at 10^9, +3.8 % at 10^8, +34 % at 10^7 (A/A check +0.4 %); a 1.1 MiB
    /// hash loop -4.2 % at 10^9 (no intermediate checkpoint: the same work, so this is
    /// noise — its fuel-metered loop varies from 50 to 110 ms between instances, A/A
    /// -2.1 %), +4.6 % at 10^8, +108 % at 10^7. Per checkpoint that is 0.7 and 1.1 ms, the
    /// SHA-256 time of those memories. Fuel metering and epoch checks themselves, which the
    /// limits need, cost +44 % over a bare engine on both modules and are not part of that
    /// overhead. The default stays under 10 % up to about 8 MiB of memory; larger memories
    /// need a larger interval (or incremental hashing of dirty pages, not implemented).
    pub checkpoint_interval_fuel: u64,
    /// Largest module accepted, in bytes. Default 8 MiB.
    pub max_module_bytes: usize,
    /// Largest input accepted, in bytes. Default 16 MiB.
    pub max_input_bytes: usize,
    /// Largest output accepted, in bytes. Default 16 MiB.
    pub max_output_bytes: usize,
}

impl Limits {
    /// The default limits (values documented on each field).
    pub const DEFAULT: Limits = Limits {
        fuel: 10_000_000_000,
        memory_bytes: 64 << 20,
        wall_time: Duration::from_secs(10),
        checkpoint_interval_fuel: 1_000_000_000,
        max_module_bytes: 8 << 20,
        max_input_bytes: 16 << 20,
        max_output_bytes: 16 << 20,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Limits::DEFAULT
    }
}

/// A successful run: the output and what the node commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Execution {
    /// The output bytes (`output_len` bytes at `output_ptr`, see the module ABI).
    pub output: Vec<u8>,
    /// The deterministic commitment to this run.
    pub commitment: ExecutionCommitment,
    /// Resources used (`wall_time_ms` is not deterministic).
    pub usage: ResourceUsage,
    /// The checkpoints under `commitment.trace_root`, in order, the final one last
    /// (`commitment.checkpoints` entries).
    pub trace: Vec<Checkpoint>,
}

/// Why a run (or building a runtime) failed. No commitment is produced for any of them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RuntimeError {
    /// The [`Limits`] are unusable (zero fuel or interval, fuel above `i64::MAX`).
    #[error("invalid limits: {0}")]
    BadLimits(&'static str),
    /// Wasmtime refused the engine configuration.
    #[error("engine configuration: {0}")]
    Engine(String),
    /// The bytes are not a valid WebAssembly module (or use a disabled proposal), or the
    /// module is larger than [`Limits::max_module_bytes`].
    #[error("invalid module: {0}")]
    InvalidModule(String),
    /// The module imports something; workloads may import nothing.
    #[error("module imports {module}::{name}; workloads may not import anything")]
    ForbiddenImport {
        /// Import module name.
        module: String,
        /// Import field name.
        name: String,
    },
    /// A required export (`memory`, `alloc`, `run`) is missing or has the wrong type.
    #[error("missing or mistyped export `{0}`")]
    MissingExport(&'static str),
    /// The input is longer than [`Limits::max_input_bytes`].
    #[error("input of {len} bytes exceeds {max}")]
    InputTooLarge {
        /// Input length, bytes.
        len: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// `alloc` returned a range outside linear memory.
    #[error("alloc returned {ptr:#x} for {len} bytes, outside memory")]
    BadAlloc {
        /// The address returned.
        ptr: u32,
        /// The length asked for.
        len: usize,
    },
    /// The module trapped (unreachable, out-of-bounds access, stack overflow, …).
    #[error("trap: {0}")]
    Trap(String),
    /// [`Limits::fuel`] was used up.
    #[error("out of fuel")]
    OutOfFuel,
    /// Linear memory (or a table) would exceed [`Limits::memory_bytes`].
    #[error("memory limit exceeded")]
    MemoryLimit,
    /// [`Limits::wall_time`] elapsed.
    #[error("wall-clock limit exceeded")]
    WallClockLimit,
    /// The output is longer than [`Limits::max_output_bytes`].
    #[error("output of {len} bytes exceeds {max}")]
    OutputTooLarge {
        /// Output length, bytes.
        len: usize,
        /// The limit, bytes.
        max: usize,
    },
    /// `run` returned an output range outside linear memory.
    #[error("output range {ptr:#x}+{len} is outside memory")]
    BadOutput {
        /// The output address.
        ptr: u32,
        /// The output length, bytes.
        len: u32,
    },
}
