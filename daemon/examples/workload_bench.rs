//! Benchmarks of the WASM workload runtime (issue 6): the execution overhead of the
//! trace checkpoints against the same module run without them (spec target: under 10 %),
//! what fuel metering itself costs, and compile time.
//!
//! Two compute-heavy modules written in WAT:
//! - `mix`: a hash-like mixing loop over a 1 MiB input, several rounds, writing its running
//!   state back into the input each round so memory keeps changing (1.1 MiB of memory);
//! - `matmul`: `C = A × B` for 160×160 `f64` matrices, repeated, each round feeding `C`
//!   back as `A` (about 0.6 MiB of memory, float-heavy, NaN canonicalisation on).
//!
//! Configurations measured for each module:
//! - `without checkpoints` — **the baseline of the overhead figure**: a [`WorkloadRuntime`]
//!   with [`Limits::DEFAULT`] except `checkpoint_interval_fuel = u64::MAX` (no intermediate
//!   checkpoint). Same engine configuration, same async call path on the same executor,
//!   same fuel metering, epoch checks, wall-clock and memory limits and the same final
//!   checkpoint: everything a node must run anyway;
//! - `checkpoints every N fuel`: the same runtime with `checkpoint_interval_fuel = N`, for
//!   the default interval and smaller ones (so the cost of one checkpoint is visible);
//! - for information only, bare wasmtime engines with a synchronous call: no metering at
//!   all, fuel only, fuel and epoch checks. The difference between them and the baseline is
//!   the price of the limits (fuel metering above all), not of the checkpoints.
//!
//! Every sample builds a fresh engine (or runtime), compiles the module, runs it once
//! untimed and times the second run. The speed of fuel-metered code varies between
//! instances for the same work (the `mix` loop: 50 to 110 ms of CPU time; bare, unmetered
//! code hardly varies), so one engine per configuration would turn that luck into a fixed
//! bias; fresh engines make it noise that the median of many rounds absorbs. Use more
//! rounds (e.g. 31) when the A/A check is not within a few per cent. The timed runs are *interleaved*: each round takes one sample of every
//! configuration, in turn (after one untimed round), so drift of the machine's load or
//! clock speed affects all configurations alike; the figure of a configuration is the
//! median of its rounds, in thread CPU time (a run executes entirely on the calling thread,
//! so other processes on a shared machine do not stretch it; wall time is printed
//! alongside). The baseline is measured twice, as an A/A check of the noise. With
//! `--sequential` all samples of one configuration are taken before the next
//! configuration's, as the earlier figures were: its wall times show how whatever else ran
//! during one configuration's block was charged to it alone.
//!
//! Usage: `cargo build --release -p dsdn-daemon --example workload_bench &&
//! $CARGO_TARGET_DIR/release/examples/workload_bench [RUNS] [--sequential] [--raw]`
//! (default 9 rounds; `--raw` also prints every sample, in order, on stderr). Wall times are only meaningful on an otherwise idle machine.

use std::time::{Duration, Instant};

use dsdn_daemon::workload::samples::ALLOC;
use dsdn_daemon::workload::{Execution, Limits, WorkloadRuntime};
use dsdn_protocols::receipt::state_root;
use wasmtime::{Config, Engine, Instance, Module, Store};

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
    wat::parse_str(text).expect("benchmark module must parse")
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// `t` relative to `base`, in percent.
fn pct(t: Duration, base: Duration) -> f64 {
    (t.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0
}

/// `1000000000` → `1e9`, `30000000` → `3e7`.
fn sci(n: u64) -> String {
    if n == u64::MAX {
        return "none".into();
    }
    let e = n.checked_ilog10().unwrap_or(0);
    let m = n / 10u64.pow(e);
    if m * 10u64.pow(e) == n {
        format!("{m}e{e}")
    } else {
        n.to_string()
    }
}

/// A runtime with the default limits and checkpoints every `interval` fuel units
/// (`u64::MAX`: none but the final one).
fn runtime(interval: u64) -> WorkloadRuntime {
    WorkloadRuntime::new(Limits {
        checkpoint_interval_fuel: interval,
        ..Limits::DEFAULT
    })
    .expect("runtime with the default limits")
}

/// What a bare engine meters.
#[derive(Clone, Copy)]
enum Bare {
    /// Nothing: no fuel, no epochs.
    Nothing,
    /// Fuel only.
    Fuel,
    /// Fuel and epoch checks (the epoch never advances: no ticker thread).
    FuelAndEpochs,
}

/// One run on a bare engine: a new store, instantiate, `alloc`, copy the input, call `run`
/// synchronously. Returns the `run` result.
fn bare_run(engine: &Engine, module: &Module, input: &[u8], kind: Bare) -> i64 {
    let mut store = Store::new(engine, ());
    if !matches!(kind, Bare::Nothing) {
        store
            .set_fuel(Limits::DEFAULT.fuel)
            .expect("fuel is configured");
    }
    if matches!(kind, Bare::FuelAndEpochs) {
        store.set_epoch_deadline(1 << 40);
    }
    let instance = Instance::new(&mut store, module, &[]).expect("instantiate");
    let memory = instance
        .get_memory(&mut store, "memory")
        .expect("memory export");
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut store, "alloc")
        .expect("alloc export");
    let run = instance
        .get_typed_func::<(i32, i32), i64>(&mut store, "run")
        .expect("run export");
    let len = i32::try_from(input.len()).expect("input fits in i32");
    let ptr = alloc.call(&mut store, len).expect("alloc call") as usize;
    memory.data_mut(&mut store)[ptr..ptr + input.len()].copy_from_slice(input);
    run.call(&mut store, (ptr as i32, len)).expect("run call")
}

/// CPU time used by the calling thread so far, where the platform offers it. The whole
/// execution (wasm, hashing, the executor) runs on the calling thread, so this is the work
/// done, whatever other processes take of the machine; `None` elsewhere.
#[cfg(unix)]
fn thread_cpu() -> Option<Duration> {
    use nix::time::{clock_gettime, ClockId};
    clock_gettime(ClockId::CLOCK_THREAD_CPUTIME_ID)
        .ok()
        .map(Duration::from)
}

#[cfg(not(unix))]
fn thread_cpu() -> Option<Duration> {
    None
}

/// Wall time and thread CPU time of one run.
#[derive(Clone, Copy)]
struct Sample {
    wall: Duration,
    cpu: Option<Duration>,
}

/// Times `f`.
fn timed(f: impl FnOnce()) -> Sample {
    let (c, t) = (thread_cpu(), Instant::now());
    f();
    let wall = t.elapsed();
    let cpu = match (c, thread_cpu()) {
        (Some(a), Some(b)) => Some(b.saturating_sub(a)),
        _ => None,
    };
    Sample { wall, cpu }
}

/// A configuration under measurement: `run` executes the module once and returns the time
/// it took.
struct Subject<'a> {
    run: Box<dyn FnMut() -> Sample + 'a>,
    times: Vec<Sample>,
}

impl<'a> Subject<'a> {
    /// A bare engine metering `kind`. Each sample builds a fresh engine, compiles, runs once
    /// untimed and times the second run.
    fn bare(module: &'a [u8], input: &'a [u8], kind: Bare) -> Self {
        let mut config = Config::new();
        config
            .cranelift_nan_canonicalization(true)
            .wasm_backtrace(false);
        match kind {
            Bare::Nothing => {}
            Bare::Fuel => {
                config.consume_fuel(true);
            }
            Bare::FuelAndEpochs => {
                config.consume_fuel(true).epoch_interruption(true);
            }
        }
        Subject {
            run: Box::new(move || {
                let engine = Engine::new(&config).expect("bare engine");
                let module = Module::new(&engine, module).expect("compile on the bare engine");
                let warm = bare_run(&engine, &module, input, kind);
                let mut out = 0;
                let t = timed(|| out = bare_run(&engine, &module, input, kind));
                assert_eq!(out, warm, "a bare run changed its result");
                t
            }),
            times: Vec::new(),
        }
    }

    /// The runtime at `interval`; also returns a first execution. Each sample builds a fresh
    /// runtime (engine and compiled module), runs once untimed and times the second run,
    /// checking both commitments.
    fn runtime(module: &'a [u8], input: &'a [u8], interval: u64) -> (Self, Execution) {
        let first = runtime(interval).run(module, input).expect("first run");
        let commitment = first.commitment;
        let run = Box::new(move || {
            let rt = runtime(interval);
            let check = |e: &Result<Execution, _>| {
                let same = matches!(e, Ok(e) if e.commitment == commitment);
                assert!(same, "a run changed its commitment: {e:?}");
            };
            check(&rt.run(module, input));
            let mut e = None;
            let t = timed(|| e = Some(rt.run(module, input)));
            if let Some(e) = &e {
                check(e);
            }
            t
        });
        (
            Subject {
                run,
                times: Vec::new(),
            },
            first,
        )
    }

    /// Median wall time.
    fn wall(&self) -> Duration {
        median(self.times.iter().map(|s| s.wall).collect())
    }

    /// Median thread CPU time, if measured.
    fn cpu(&self) -> Option<Duration> {
        let v: Option<Vec<Duration>> = self.times.iter().map(|s| s.cpu).collect();
        v.map(median)
    }
}

/// Median compile time of `module`: on a fresh runtime each time (uncached), and again on
/// the same runtime (cached: a hash and a cache lookup).
fn measure_compile(module: &[u8], runs: usize) -> (Duration, Duration) {
    let mut uncached = Vec::new();
    let mut cached = Vec::new();
    for _ in 0..runs {
        let rt = runtime(u64::MAX);
        let t = Instant::now();
        rt.compile(module).expect("compile");
        uncached.push(t.elapsed());
        let t = Instant::now();
        rt.compile(module).expect("compile");
        cached.push(t.elapsed());
    }
    (median(uncached), median(cached))
}

/// Checkpoint intervals measured, in fuel units; the default (1e9) first.
const INTERVALS: [u64; 3] = [1_000_000_000, 100_000_000, 10_000_000];

/// Untimed rounds before timing (interleaved mode).
const WARM_UP: usize = 1;

/// Measures every configuration on `module` and prints the table and the summary lines
/// (prefixed with `short`).
fn bench(
    short: &str,
    name: &str,
    module: &[u8],
    input: &[u8],
    runs: usize,
    sequential: bool,
    raw: bool,
) {
    let (uncached, cached) = measure_compile(module, runs);
    let default = Limits::DEFAULT.checkpoint_interval_fuel;
    let mut intervals = INTERVALS.to_vec();
    if !intervals.contains(&default) {
        intervals.insert(0, default);
    }

    // Subjects: 0..3 bare engines, 3 the baseline, 4 the same again (the A/A check), then
    // one per interval.
    let mut subjects = vec![
        Subject::bare(module, input, Bare::Nothing),
        Subject::bare(module, input, Bare::Fuel),
        Subject::bare(module, input, Bare::FuelAndEpochs),
    ];
    let (base, first) = Subject::runtime(module, input, u64::MAX);
    subjects.push(base);
    subjects.push(Subject::runtime(module, input, u64::MAX).0);
    let mut checkpoints = Vec::new();
    for &interval in &intervals {
        let (s, e) = Subject::runtime(module, input, interval);
        assert_eq!(
            e.commitment.fuel_used, first.commitment.fuel_used,
            "checkpoints must not change fuel use"
        );
        assert_eq!(
            e.output, first.output,
            "checkpoints must not change the output"
        );
        checkpoints.push(e.commitment.checkpoints);
        subjects.push(s);
    }

    if sequential {
        for s in &mut subjects {
            for _ in 0..runs {
                let t = (s.run)();
                s.times.push(t);
            }
        }
    } else {
        for _ in 0..WARM_UP {
            for s in &mut subjects {
                (s.run)();
            }
        }
        for _ in 0..runs {
            for s in &mut subjects {
                let t = (s.run)();
                s.times.push(t);
            }
        }
    }

    // What one checkpoint must at least cost: a SHA-256 pass over linear memory.
    let memory = vec![0x5au8; first.usage.memory_peak_bytes as usize];
    let hash = median(
        (0..21)
            .map(|_| {
                let t = Instant::now();
                std::hint::black_box(state_root(std::hint::black_box(&memory)));
                t.elapsed()
            })
            .collect(),
    );

    // The figure compared: thread CPU time where available (the machine may be shared:
    // another process taking the core stretches wall time, not CPU time), else wall time.
    let wall: Vec<Duration> = subjects.iter().map(Subject::wall).collect();
    let cpu: Option<Vec<Duration>> = subjects.iter().map(Subject::cpu).collect();
    let (t, what) = match cpu {
        Some(c) => (c, "thread CPU time"),
        None => (wall.clone(), "wall time"),
    };
    let (bare, fuel, epochs, base) = (t[0], t[1], t[2], t[3]);
    if raw {
        for (i, subject) in subjects.iter().enumerate() {
            let v: Vec<String> = subject
                .times
                .iter()
                .map(|x| format!("{:.1}", ms(x.cpu.unwrap_or(x.wall))))
                .collect();
            eprintln!("  raw {name} #{i}: {}", v.join(" "));
        }
    }
    println!(
        "\n{name}: {} bytes of wasm, {} KiB input, {} KiB memory, {} fuel",
        module.len(),
        input.len() >> 10,
        first.usage.memory_peak_bytes >> 10,
        first.commitment.fuel_used,
    );
    println!(
        "  figures: median {what} of {runs} {}; wall time in brackets",
        if sequential {
            "sequential samples"
        } else {
            "interleaved rounds (after 1 untimed round)"
        }
    );
    println!(
        "  compile: uncached {:.2} ms, cached {:.4} ms",
        ms(uncached),
        ms(cached)
    );
    println!("  information, bare engines (synchronous call, no limits):");
    println!(
        "    no fuel, no epochs      {:>8.1} ms [{:>6.1}]",
        ms(bare),
        ms(wall[0])
    );
    println!(
        "    fuel                    {:>8.1} ms [{:>6.1}]  ({:+.1} % vs no fuel)",
        ms(fuel),
        ms(wall[1]),
        pct(fuel, bare)
    );
    println!(
        "    fuel + epoch checks     {:>8.1} ms [{:>6.1}]  ({:+.1} % vs no fuel)",
        ms(epochs),
        ms(wall[2]),
        pct(epochs, bare)
    );
    println!(
        "  runtime without checkpoints (default limits, interval none; the baseline): \
         {:.1} ms [{:.1}] ({:+.1} % vs bare fuel + epochs, {:+.1} % vs bare no fuel)",
        ms(base),
        ms(wall[3]),
        pct(base, epochs),
        pct(base, bare)
    );
    println!(
        "  A/A check, the baseline measured a second time: {:.1} ms [{:.1}] ({:+.1} %): \
         differences of this size are noise",
        ms(t[4]),
        ms(wall[4]),
        pct(t[4], base)
    );
    println!(
        "  one checkpoint hashes the {} KiB memory: SHA-256 of that much takes {:.2} ms",
        memory.len() >> 10,
        ms(hash)
    );
    println!(
        "  {:>10} {:>12} {:>10} {:>10} {:>10} {:>16}",
        "interval", "checkpoints", "ms", "[wall]", "overhead", "ms / checkpoint"
    );
    for (i, &interval) in intervals.iter().enumerate() {
        let ti = t[5 + i];
        // The final checkpoint is taken in the baseline too.
        let extra = checkpoints[i].saturating_sub(1);
        let per = if extra > 0 {
            format!("{:.2}", (ms(ti) - ms(base)) / extra as f64)
        } else {
            "-".into()
        };
        let mark = if interval == default {
            "  (default)"
        } else {
            ""
        };
        println!(
            "  {:>10} {:>12} {:>10.1} {:>10.1} {:>+9.1}% {per:>16}{mark}",
            sci(interval),
            checkpoints[i],
            ms(ti),
            ms(wall[5 + i]),
            pct(ti, base)
        );
    }
    for (i, &interval) in intervals.iter().enumerate() {
        let ti = t[5 + i];
        let mark = if interval == default {
            " [default]"
        } else {
            ""
        };
        println!(
            "{short}: checkpoints every {} fuel: {:.1} ms, without checkpoints: {:.1} ms, \
             overhead {:+.1} % (target < 10 %; {what}, wall {:+.1} %){mark}",
            sci(interval),
            ms(ti),
            ms(base),
            pct(ti, base),
            pct(wall[5 + i], wall[3]),
        );
    }
}

fn main() {
    let mut runs = 9;
    let mut sequential = false;
    let mut raw = false;
    for arg in std::env::args().skip(1) {
        if arg == "--sequential" {
            sequential = true;
        } else if arg == "--raw" {
            raw = true;
        } else {
            runs = arg
                .parse()
                .expect("usage: workload_bench [RUNS] [--sequential] [--raw]");
        }
    }
    assert!(runs > 0, "RUNS must be positive");
    let input: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    bench(
        "mix",
        "mix (24 rounds over 1 MiB)",
        &mix_module(24),
        &input,
        runs,
        sequential,
        raw,
    );

    let cells = (N * N) as usize;
    let matrices: Vec<u8> = (0..2 * cells)
        .flat_map(|i| (((i * 7919) % 1000) as f64 / 1000.0).to_le_bytes())
        .collect();
    bench(
        "matmul",
        "matmul (160x160 f64, 12 rounds)",
        &matmul_module(12),
        &matrices,
        runs,
        sequential,
        raw,
    );
}
