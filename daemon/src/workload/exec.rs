//! One execution: the store, the memory limiter, the checkpoint callback and the
//! single-threaded executor that drives wasmtime's async calls.
//!
//! How checkpoints are placed: during `run` the store yields (the call's future returns
//! `Pending`) each time a fuel slice of `checkpoint_interval_fuel` units is used up — at a
//! fuel check, i.e. a function entry or loop header, so the position depends on fuel only.
//! The executor then marks a checkpoint as due and advances the engine epoch; when the
//! future is polled again, wasm resumes right at that point and the epoch check that
//! wasmtime emits immediately after every fuel check calls [`on_epoch`], which — holding
//! the store — hashes linear memory and records the fuel consumed so far. Ticks of the
//! runtime's epoch thread also reach [`on_epoch`], but with no checkpoint due they only
//! check the wall-clock deadline.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::{sha256, state_root, trace_root, Checkpoint};
use wasmtime::{
    Engine, Instance, Memory, Module, ResourceLimiter, Store, StoreContextMut, Trap, UpdateDeadline,
};

use super::{Execution, ExecutionCommitment, Limits, ResourceUsage, RuntimeError};

/// Most elements a table may grow to (tables hold function references; 8 bytes each).
const MAX_TABLE_ELEMENTS: usize = 100_000;

/// Per-run state kept in the store.
struct RunData {
    limiter: Limiter,
    /// The module's memory, once instantiated.
    memory: Option<Memory>,
    /// Set by the executor when the store yielded at the end of a fuel slice.
    checkpoint_due: Arc<AtomicBool>,
    /// Intermediate checkpoints recorded so far.
    trace: Vec<Checkpoint>,
    /// Fuel the store started with.
    fuel_start: u64,
    deadline: Instant,
    wall_clock_hit: bool,
}

/// Refuses memories above the limit and oversized tables by trapping (so a module cannot
/// carry on after a refused `memory.grow`).
struct Limiter {
    max_memory: usize,
    hit: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.max_memory {
            self.hit = true;
            anyhow::bail!("memory of {desired} bytes exceeds the limit");
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > MAX_TABLE_ELEMENTS {
            self.hit = true;
            anyhow::bail!("table of {desired} elements exceeds the limit");
        }
        Ok(true)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }
}

/// The epoch callback: takes a due checkpoint, then enforces the wall-clock deadline.
fn on_epoch(mut ctx: StoreContextMut<'_, RunData>) -> wasmtime::Result<UpdateDeadline> {
    if ctx.data().checkpoint_due.swap(false, Ordering::Relaxed) {
        if let Some(memory) = ctx.data().memory {
            let root = state_root(memory.data(&ctx));
            let fuel_consumed = ctx.data().fuel_start.saturating_sub(ctx.get_fuel()?);
            ctx.data_mut().trace.push(Checkpoint {
                fuel_consumed,
                state_root: root,
            });
        }
    }
    if Instant::now() >= ctx.data().deadline {
        ctx.data_mut().wall_clock_hit = true;
        return Ok(UpdateDeadline::Interrupt);
    }
    Ok(UpdateDeadline::Continue(1))
}

/// Polls `fut` to completion on this thread. Every `Pending` is a fuel-slice yield: mark a
/// checkpoint due and advance the epoch so the callback runs as soon as wasm resumes.
fn drive<F: Future>(engine: &Engine, due: &AtomicBool, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return out;
        }
        due.store(true, Ordering::Relaxed);
        engine.increment_epoch();
    }
}

/// A failure inside the async phases: a wasmtime error (classified afterwards, when the
/// store's flags can be read) or an ABI error.
enum Failure {
    Wasm(wasmtime::Error),
    Abi(RuntimeError),
}

impl From<wasmtime::Error> for Failure {
    fn from(e: wasmtime::Error) -> Self {
        Failure::Wasm(e)
    }
}

impl From<RuntimeError> for Failure {
    fn from(e: RuntimeError) -> Self {
        Failure::Abi(e)
    }
}

/// What the async phases produce.
struct Finished {
    output: Vec<u8>,
    state_root_before: Bytes32,
    state_root_after: Bytes32,
    memory_bytes: usize,
}

/// Instantiate, `alloc`, copy the input, `run` (with fuel-slice yields on), read the output.
async fn phases(
    store: &mut Store<RunData>,
    module: &Module,
    input: &[u8],
    limits: &Limits,
) -> Result<Finished, Failure> {
    let instance = Instance::new_async(&mut *store, module, &[]).await?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or(RuntimeError::MissingExport("memory"))?;
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut *store, "alloc")
        .map_err(|_| RuntimeError::MissingExport("alloc"))?;
    let run = instance
        .get_typed_func::<(i32, i32), i64>(&mut *store, "run")
        .map_err(|_| RuntimeError::MissingExport("run"))?;
    store.data_mut().memory = Some(memory);

    // `new` checked max_input_bytes <= i32::MAX.
    let len = i32::try_from(input.len()).map_err(|_| RuntimeError::InputTooLarge {
        len: input.len(),
        max: limits.max_input_bytes,
    })?;
    let ptr = alloc.call_async(&mut *store, len).await? as u32;
    let target = (ptr as usize)
        .checked_add(input.len())
        .and_then(|end| memory.data_mut(&mut *store).get_mut(ptr as usize..end))
        .ok_or(RuntimeError::BadAlloc {
            ptr,
            len: input.len(),
        })?;
    target.copy_from_slice(input);
    let state_root_before = state_root(memory.data(&*store));

    // Set even for `u64::MAX` (no intermediate checkpoints), so that a run without
    // checkpoints takes the same path: fuel never exceeds `i64::MAX`, so all of it is
    // injected at once and that interval is never reached.
    store.fuel_async_yield_interval(Some(limits.checkpoint_interval_fuel))?;
    let packed = run.call_async(&mut *store, (ptr as i32, len)).await? as u64;
    store.fuel_async_yield_interval(None)?;

    let (out_ptr, out_len) = ((packed >> 32) as u32, packed as u32);
    if out_len as usize > limits.max_output_bytes {
        return Err(RuntimeError::OutputTooLarge {
            len: out_len as usize,
            max: limits.max_output_bytes,
        }
        .into());
    }
    let bytes = memory.data(&*store);
    let output = (out_ptr as usize)
        .checked_add(out_len as usize)
        .and_then(|end| bytes.get(out_ptr as usize..end))
        .ok_or(RuntimeError::BadOutput {
            ptr: out_ptr,
            len: out_len,
        })?
        .to_vec();
    Ok(Finished {
        output,
        state_root_before,
        state_root_after: state_root(bytes),
        memory_bytes: bytes.len(),
    })
}

/// Maps a wasmtime error to a [`RuntimeError`] using what the store recorded.
fn classify(err: &wasmtime::Error, data: &RunData) -> RuntimeError {
    if data.limiter.hit {
        return RuntimeError::MemoryLimit;
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => RuntimeError::OutOfFuel,
        Some(Trap::Interrupt) => RuntimeError::WallClockLimit,
        _ if data.wall_clock_hit => RuntimeError::WallClockLimit,
        Some(t) => RuntimeError::Trap(t.to_string()),
        None => RuntimeError::Trap(format!("{err:#}")),
    }
}

fn internal(e: wasmtime::Error) -> RuntimeError {
    RuntimeError::Engine(e.to_string())
}

/// Runs an already checked module. See [`super::WorkloadRuntime::run`].
pub(super) fn execute(
    engine: &Engine,
    module: &Module,
    workload_id: Bytes32,
    input: &[u8],
    limits: &Limits,
) -> Result<Execution, RuntimeError> {
    let started = Instant::now();
    let due = Arc::new(AtomicBool::new(false));
    let mut store = Store::new(
        engine,
        RunData {
            limiter: Limiter {
                max_memory: limits.memory_bytes,
                hit: false,
            },
            memory: None,
            checkpoint_due: due.clone(),
            trace: Vec::new(),
            fuel_start: limits.fuel,
            deadline: started + limits.wall_time,
            wall_clock_hit: false,
        },
    );
    store.limiter(|d| &mut d.limiter);
    store.set_fuel(limits.fuel).map_err(internal)?;
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(on_epoch);

    let result = drive(engine, &due, phases(&mut store, module, input, limits));
    let done = match result {
        Ok(done) => done,
        Err(Failure::Abi(e)) => return Err(e),
        Err(Failure::Wasm(e)) => return Err(classify(&e, store.data())),
    };
    let fuel_used = limits
        .fuel
        .saturating_sub(store.get_fuel().map_err(internal)?);
    let mut trace = std::mem::take(&mut store.data_mut().trace);
    trace.push(Checkpoint {
        fuel_consumed: fuel_used,
        state_root: done.state_root_after,
    });
    let commitment = ExecutionCommitment {
        workload_id,
        input_hash: sha256(input),
        output_hash: sha256(&done.output),
        state_root_before: done.state_root_before,
        state_root_after: done.state_root_after,
        trace_root: trace_root(&trace),
        checkpoints: trace.len() as u64,
        fuel_used,
    };
    let usage = ResourceUsage {
        fuel_used,
        memory_peak_bytes: done.memory_bytes as u64,
        wall_time_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
    };
    Ok(Execution {
        output: done.output,
        commitment,
        usage,
        trace,
    })
}
