//! [`WorkloadRuntime`]: the wasmtime engine, its deterministic configuration, the epoch
//! thread behind the wall-clock limit, and the compiled-module cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use dsdn_protocols::da::Bytes32;
use dsdn_protocols::receipt::workload_id;
use wasmtime::{Config, Engine, ExternType, Module, ValType};

use super::cache::Lru;
use super::exec;
use super::{
    Execution, Limits, RuntimeError, EPOCH_TICK, MODULE_CACHE_BYTES, MODULE_CACHE_ENTRIES,
};

/// Runs WASM workloads under one set of [`Limits`] (see the [module notes](super) for the
/// ABI, determinism and checkpoint rules).
///
/// Owns a wasmtime `Engine`, a background thread that advances the engine's epoch every
/// [`EPOCH_TICK`] (stopped and joined on drop), and a cache of up to
/// [`MODULE_CACHE_ENTRIES`] compiled modules of at most [`MODULE_CACHE_BYTES`] of compiled
/// code together, keyed by workload id. `run` takes `&self` and
/// may be called from several threads at once; each call gets its own store.
pub struct WorkloadRuntime {
    engine: Engine,
    limits: Limits,
    cache: Mutex<Lru<Module>>,
    _ticker: Ticker,
}

/// The epoch thread; stops when dropped.
struct Ticker {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            h.thread().unpark();
            let _ = h.join();
        }
    }
}

/// The engine configuration every party must share for commitments to agree.
fn deterministic_config() -> Config {
    let mut c = Config::new();
    c.async_support(true)
        .consume_fuel(true)
        .epoch_interruption(true)
        .cranelift_nan_canonicalization(true)
        .wasm_relaxed_simd(false)
        .relaxed_simd_deterministic(true)
        .wasm_multi_memory(false)
        .wasm_memory64(false)
        .wasm_backtrace(false);
    c
}

impl WorkloadRuntime {
    /// Builds an engine and starts its epoch thread.
    ///
    /// # Errors
    /// [`RuntimeError::BadLimits`] for zero fuel, fuel above `i64::MAX`, a zero checkpoint
    /// interval or an input limit above `i32::MAX` bytes; [`RuntimeError::Engine`] if
    /// wasmtime refuses the configuration or the thread cannot be spawned.
    pub fn new(limits: Limits) -> Result<Self, RuntimeError> {
        if limits.fuel == 0 || limits.fuel > i64::MAX as u64 {
            return Err(RuntimeError::BadLimits("fuel must be in 1..=i64::MAX"));
        }
        if limits.checkpoint_interval_fuel == 0 {
            return Err(RuntimeError::BadLimits(
                "checkpoint interval must be positive",
            ));
        }
        if limits.max_input_bytes > i32::MAX as usize {
            return Err(RuntimeError::BadLimits(
                "max_input_bytes must fit in an i32",
            ));
        }
        let engine = Engine::new(&deterministic_config())
            .map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let handle = {
            let (engine, stop) = (engine.clone(), stop.clone());
            std::thread::Builder::new()
                .name("wasm-epoch".into())
                .spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(EPOCH_TICK);
                        engine.increment_epoch();
                    }
                })
                .map_err(|e| RuntimeError::Engine(e.to_string()))?
        };
        Ok(WorkloadRuntime {
            engine,
            limits,
            cache: Mutex::new(Lru::new(MODULE_CACHE_ENTRIES, MODULE_CACHE_BYTES)),
            _ticker: Ticker {
                stop,
                handle: Some(handle),
            },
        })
    }

    /// The limits this runtime applies.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Runs `module` on `input` and returns its output, commitment and usage.
    ///
    /// Compiles the module (or takes it from the cache), instantiates it, calls `alloc`,
    /// copies the input, calls `run` and reads the output, recording the trace checkpoints.
    ///
    /// # Errors
    /// [`RuntimeError::InputTooLarge`] before anything else; then any error of
    /// [`WorkloadRuntime::compile`]; then [`RuntimeError::OutOfFuel`],
    /// [`RuntimeError::MemoryLimit`], [`RuntimeError::WallClockLimit`],
    /// [`RuntimeError::Trap`], [`RuntimeError::BadAlloc`], [`RuntimeError::BadOutput`] or
    /// [`RuntimeError::OutputTooLarge`] from the execution.
    pub fn run(&self, module: &[u8], input: &[u8]) -> Result<Execution, RuntimeError> {
        if input.len() > self.limits.max_input_bytes {
            return Err(RuntimeError::InputTooLarge {
                len: input.len(),
                max: self.limits.max_input_bytes,
            });
        }
        let (id, compiled) = self.compile(module)?;
        exec::execute(&self.engine, &compiled, id, input, &self.limits)
    }

    /// Compiles and checks a module (or returns the cached one) and its workload id.
    ///
    /// # Errors
    /// [`RuntimeError::InvalidModule`] for oversized or invalid bytes,
    /// [`RuntimeError::ForbiddenImport`] for any import, [`RuntimeError::MissingExport`]
    /// for an ABI export missing or mistyped. Refused modules are not cached.
    pub fn compile(&self, module: &[u8]) -> Result<(Bytes32, Module), RuntimeError> {
        if module.len() > self.limits.max_module_bytes {
            return Err(RuntimeError::InvalidModule(format!(
                "{} bytes exceeds the limit of {}",
                module.len(),
                self.limits.max_module_bytes
            )));
        }
        let id = workload_id(module);
        if let Some(m) = self.lock_cache().get(&id) {
            return Ok((id, m));
        }
        // Compile outside the lock so other runs are not held up.
        let compiled = Module::new(&self.engine, module)
            .map_err(|e| RuntimeError::InvalidModule(format!("{e:#}")))?;
        check_abi(&compiled)?;
        let range = compiled.image_range();
        let weight = (range.end as usize).saturating_sub(range.start as usize);
        self.lock_cache().insert(id, compiled.clone(), weight);
        Ok((id, compiled))
    }

    /// Whether the module with this workload id is in the cache.
    pub fn is_cached(&self, id: &Bytes32) -> bool {
        self.lock_cache().get(id).is_some()
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, Lru<Module>> {
        // A panic while holding the lock cannot leave the LRU inconsistent.
        self.cache.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Checks the workload ABI: no imports; `memory`, `alloc`, `run` exported with their types.
fn check_abi(module: &Module) -> Result<(), RuntimeError> {
    if let Some(i) = module.imports().next() {
        return Err(RuntimeError::ForbiddenImport {
            module: i.module().to_string(),
            name: i.name().to_string(),
        });
    }
    match module.get_export("memory") {
        Some(ExternType::Memory(m)) if !m.is_64() && !m.is_shared() => {}
        _ => return Err(RuntimeError::MissingExport("memory")),
    }
    check_func(module, "alloc", &[ValType::I32], &[ValType::I32])?;
    check_func(
        module,
        "run",
        &[ValType::I32, ValType::I32],
        &[ValType::I64],
    )
}

fn check_func(
    module: &Module,
    name: &'static str,
    params: &[ValType],
    results: &[ValType],
) -> Result<(), RuntimeError> {
    let same = |got: &mut dyn ExactSizeIterator<Item = ValType>, want: &[ValType]| {
        got.len() == want.len() && got.zip(want).all(|(g, w)| ValType::eq(&g, w))
    };
    match module.get_export(name) {
        Some(ExternType::Func(f))
            if same(&mut f.params(), params) && same(&mut f.results(), results) =>
        {
            Ok(())
        }
        _ => Err(RuntimeError::MissingExport(name)),
    }
}
