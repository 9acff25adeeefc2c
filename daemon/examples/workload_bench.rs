//! Benchmarks of the WASM workload runtime (issue 6): the overhead of the execution-trace
//! checkpoints (spec target: under 10 %), plain execution time, and compile time.
//!
//! Two compute-heavy modules written in WAT:
//! - `mix`: a hash-like mixing loop over a 1 MiB input, several rounds, writing its running
//!   state back into the input each round so memory keeps changing (1.1 MiB of memory);
//! - `matmul`: `C = A × B` for 160×160 `f64` matrices, repeated, each round feeding `C`
//!   back as `A` (about 0.6 MiB of memory, float-heavy, NaN canonicalisation on).
//!
//! For each module it prints the median wall time of several runs of:
//! - `plain`: a bare wasmtime engine (no fuel, no epochs, synchronous call) — what the
//!   module costs without any metering;
//! - `metered`: the [`WorkloadRuntime`] without intermediate checkpoints
//!   (`checkpoint_interval_fuel = u64::MAX`; fuel, epochs and the final checkpoint only);
//! - the runtime with checkpoints every N fuel units, and the overhead of each N against
//!   `metered` (the spec's comparison: the same module with and without the trace).
//!
//! It also prints the compile time of each module (uncached: a fresh runtime; cached: the
//! module's second `compile` on the same runtime).
//!
//! Usage: `cargo run --release -p dsdn-daemon --example workload_bench [RUNS]`
//! (default 7 runs). The machine should be otherwise idle for stable figures.

use std::time::{Duration, Instant};

use dsdn_daemon::workload::{Limits, WorkloadRuntime};

/// The bump allocator shared by both modules.
const ALLOC: &str = r#"
  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))
  (func (export "alloc") (param $len i32) (result i32)
    (local $p i32) (local $need i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (local.get $len)))
    (local.set $need (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (drop (memory.grow
        (i32.add (i32.div_u (local.get $need) (i32.const 65536)) (i32.const 1))))))
    (local.get $p))"#;

/// `run` mixes every byte into a 64-bit state (multiply–xorshift), `rounds` times, storing
/// the low byte of the state back into the input so each round reads different data; the
/// output is the final 8-byte state.
fn mix_module(rounds: u32) -> Vec<u8> {
    parse(&format!(
        r#"(module {ALLOC}
  (func (export "run") (param $p i32) (param $n i32) (result i64)
    (local $i i32) (local $r i32) (local $h i64) (local $a i32)
    (local.set $h (i64.const 0xcbf29ce484222325))
    (block $done_r (loop $rounds
      (br_if $done_r (i32.ge_u (local.get $r) (i32.const {rounds})))
      (local.set $i (i32.const 0))
      (block $done (loop $bytes
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $a (i32.add (local.get $p) (local.get $i)))
        (local.set $h (i64.mul
          (i64.xor (local.get $h) (i64.load8_u (local.get $a)))
          (i64.const 0x100000001b3)))
        (local.set $h (i64.xor (local.get $h) (i64.shr_u (local.get $h) (i64.const 29))))
        (i64.store8 (local.get $a) (local.get $h))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rounds)))
    (i64.store (i32.const 0) (local.get $h))
    (i64.const 8)))"#
    ))
}

/// Matrix side of `matmul`.
const N: u32 = 160;

/// `run` treats its input as two `N×N` f64 matrices A and B (row-major), computes
/// `C = A × B` into the heap after them, copies C over A, `rounds` times, and returns C.
fn matmul_module(rounds: u32) -> Vec<u8> {
    let bytes = N * N * 8;
    parse(&format!(
        r#"(module {ALLOC}
  (func (export "run") (param $p i32) (param $n i32) (result i64)
    (local $a i32) (local $b i32) (local $c i32) (local $r i32)
    (local $i i32) (local $j i32) (local $k i32) (local $s f64)
    (local.set $a (local.get $p))
    (local.set $b (i32.add (local.get $p) (i32.const {bytes})))
    (local.set $c (call $alloc_c))
    (block $done_r (loop $rounds
      (br_if $done_r (i32.ge_u (local.get $r) (i32.const {rounds})))
      (local.set $i (i32.const 0))
      (block $di (loop $li
        (br_if $di (i32.ge_u (local.get $i) (i32.const {N})))
        (local.set $j (i32.const 0))
        (block $dj (loop $lj
          (br_if $dj (i32.ge_u (local.get $j) (i32.const {N})))
          (local.set $s (f64.const 0))
          (local.set $k (i32.const 0))
          (block $dk (loop $lk
            (br_if $dk (i32.ge_u (local.get $k) (i32.const {N})))
            (local.set $s (f64.add (local.get $s) (f64.mul
              (f64.load (i32.add (local.get $a)
                (i32.shl (i32.add (i32.mul (local.get $i) (i32.const {N})) (local.get $k))
                         (i32.const 3))))
              (f64.load (i32.add (local.get $b)
                (i32.shl (i32.add (i32.mul (local.get $k) (i32.const {N})) (local.get $j))
                         (i32.const 3)))))))
            (local.set $k (i32.add (local.get $k) (i32.const 1)))
            (br $lk)))
          (f64.store (i32.add (local.get $c)
              (i32.shl (i32.add (i32.mul (local.get $i) (i32.const {N})) (local.get $j))
                       (i32.const 3)))
            (f64.mul (local.get $s) (f64.const 0.01)))
          (local.set $j (i32.add (local.get $j) (i32.const 1)))
          (br $lj)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $li)))
      (memory.copy (local.get $a) (local.get $c) (i32.const {bytes}))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rounds)))
    (i64.or (i64.shl (i64.extend_i32_u (local.get $c)) (i64.const 32))
            (i64.const {bytes})))
  (func $alloc_c (result i32)
    (local $p i32) (local $need i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.const {bytes})))
    (local.set $need (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (drop (memory.grow
        (i32.add (i32.div_u (local.get $need) (i32.const 65536)) (i32.const 1))))))
    (local.get $p)))"#
    ))
}

fn parse(text: &str) -> Vec<u8> {
    match wat::parse_str(text) {
        Ok(m) => m,
        Err(e) => panic!("benchmark module: {e}"),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn runtime(interval: u64) -> WorkloadRuntime {
    let limits = Limits {
        checkpoint_interval_fuel: interval,
        fuel: i64::MAX as u64,
        wall_time: Duration::from_secs(600),
        ..Limits::DEFAULT
    };
    match WorkloadRuntime::new(limits) {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    }
}

/// Median time of `runs` runs at `interval`, with the fuel used and the checkpoint count.
fn measure(interval: u64, module: &[u8], input: &[u8], runs: usize) -> (Duration, u64, u64) {
    let rt = runtime(interval);
    // Warm-up: compiles and caches the module.
    let first = match rt.run(module, input) {
        Ok(e) => e,
        Err(e) => panic!("run: {e}"),
    };
    let times = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let e = rt.run(module, input);
            let d = t.elapsed();
            assert!(matches!(e, Ok(ref e) if e.commitment == first.commitment));
            d
        })
        .collect();
    (
        median(times),
        first.commitment.fuel_used,
        first.commitment.checkpoints,
    )
}

/// Median time of `runs` runs on a bare engine: compile once, then per run a new store,
/// instantiate, copy the input, call `run` synchronously (no fuel, no epochs).
fn measure_plain(module: &[u8], input: &[u8], runs: usize) -> Duration {
    use wasmtime::{Config, Engine, Instance, Module, Store};
    let mut config = Config::new();
    config.cranelift_nan_canonicalization(true);
    let engine = Engine::new(&config).unwrap_or_else(|e| panic!("engine: {e}"));
    let module = Module::new(&engine, module).unwrap_or_else(|e| panic!("compile: {e}"));
    let once = || {
        let mut store = Store::new(&engine, ());
        let instance =
            Instance::new(&mut store, &module, &[]).unwrap_or_else(|e| panic!("inst: {e}"));
        let memory = instance
            .get_memory(&mut store, "memory")
            .unwrap_or_else(|| panic!("memory"));
        let alloc = instance
            .get_typed_func::<i32, i32>(&mut store, "alloc")
            .unwrap_or_else(|e| panic!("alloc: {e}"));
        let run = instance
            .get_typed_func::<(i32, i32), i64>(&mut store, "run")
            .unwrap_or_else(|e| panic!("run: {e}"));
        let len = input.len() as i32;
        let ptr = alloc
            .call(&mut store, len)
            .unwrap_or_else(|e| panic!("{e}"));
        memory.data_mut(&mut store)[ptr as usize..ptr as usize + input.len()]
            .copy_from_slice(input);
        run.call(&mut store, (ptr, len))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    once();
    median(
        (0..runs)
            .map(|_| {
                let t = Instant::now();
                once();
                t.elapsed()
            })
            .collect(),
    )
}

/// Median compile time of `module`: on a fresh runtime each time (uncached), and again on
/// the same runtime (cached: a hash and a cache lookup).
fn measure_compile(module: &[u8], runs: usize) -> (Duration, Duration) {
    let mut uncached = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..runs {
        let rt = runtime(u64::MAX);
        let t = Instant::now();
        rt.compile(module)
            .unwrap_or_else(|e| panic!("compile: {e}"));
        uncached.push(t.elapsed());
        let t = Instant::now();
        rt.compile(module)
            .unwrap_or_else(|e| panic!("compile: {e}"));
        cached.push(t.elapsed());
    }
    (median(uncached), median(cached))
}

fn bench(name: &str, module: &[u8], input: &[u8], runs: usize) {
    let (uncached, cached) = measure_compile(module, runs);
    let plain = measure_plain(module, input, runs);
    let (base, fuel, _) = measure(u64::MAX, module, input, runs);
    println!(
        "\n{name}: {} bytes of wasm, {} KiB input, {fuel} fuel; median of {runs} runs",
        module.len(),
        input.len() >> 10
    );
    println!(
        "  compile: uncached {:.2} ms, cached {:.4} ms",
        ms(uncached),
        ms(cached)
    );
    println!(
        "  plain (bare engine, no fuel/epochs): {:.1} ms; metered, final checkpoint only: \
         {:.1} ms ({:+.1} % vs plain)",
        ms(plain),
        ms(base),
        (base.as_secs_f64() / plain.as_secs_f64() - 1.0) * 100.0
    );
    println!(
        "  {:>14} {:>12} {:>10} {:>10}",
        "interval", "checkpoints", "ms", "overhead"
    );
    let default = Limits::DEFAULT.checkpoint_interval_fuel;
    let mut intervals = vec![
        1_000_000u64,
        10_000_000,
        30_000_000,
        100_000_000,
        300_000_000,
        1_000_000_000,
    ];
    if !intervals.contains(&default) {
        intervals.push(default);
        intervals.sort();
    }
    for interval in intervals {
        let (t, f, n) = measure(interval, module, input, runs);
        assert_eq!(f, fuel, "checkpoints must not change fuel use");
        let overhead = (t.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0;
        let mark = if interval == default {
            "  (default)"
        } else {
            ""
        };
        println!(
            "  {interval:>14} {n:>12} {:>10.1} {overhead:>9.1}%{mark}",
            ms(t)
        );
    }
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(7);
    let input: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    bench("mix (24 rounds over 1 MiB)", &mix_module(24), &input, runs);

    let cells = (N * N) as usize;
    let matrices: Vec<u8> = (0..2 * cells)
        .flat_map(|i| (((i * 7919) % 1000) as f64 / 1000.0).to_le_bytes())
        .collect();
    bench(
        "matmul (160x160 f64, 12 rounds)",
        &matmul_module(12),
        &matrices,
        runs,
    );
}
