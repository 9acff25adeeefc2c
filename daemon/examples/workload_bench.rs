//! Overhead of the execution-trace checkpoints (issue 6; spec target: under 10 %).
//!
//! Runs a compute-heavy module — a hash-like mixing loop over a 1 MiB input, several
//! rounds, writing its running state back into the input each round so memory keeps
//! changing — with checkpoints every N fuel units and without intermediate checkpoints
//! (`checkpoint_interval_fuel = u64::MAX`), and prints the median wall time of several runs
//! and the overhead in percent for each N.
//!
//! Usage: `cargo run --release -p dsdn-daemon --example workload_bench [RUNS] [ROUNDS]`
//! (defaults: 7 runs, 24 rounds).
//!
//! The cost of a checkpoint is one SHA-256 pass over linear memory (about 1.1 MiB here), so
//! the overhead grows with memory size and shrinks with the interval; the default interval
//! of `Limits::DEFAULT` is chosen from this benchmark.

use std::time::{Duration, Instant};

use dsdn_daemon::workload::{Limits, WorkloadRuntime};

/// `run` mixes every byte into a 64-bit state (multiply–xorshift), `rounds` times, storing
/// the low byte of the state back into the input so each round reads different data; the
/// output is the final 8-byte state.
fn bench_module(rounds: u32) -> Vec<u8> {
    let text = format!(
        r#"(module
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
    (local.get $p))
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
    );
    match wat::parse_str(&text) {
        Ok(m) => m,
        Err(e) => panic!("benchmark module: {e}"),
    }
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn measure(interval: u64, module: &[u8], input: &[u8], runs: usize) -> (Duration, u64, u64) {
    let limits = Limits {
        checkpoint_interval_fuel: interval,
        wall_time: Duration::from_secs(600),
        ..Limits::DEFAULT
    };
    let rt = match WorkloadRuntime::new(limits) {
        Ok(rt) => rt,
        Err(e) => panic!("runtime: {e}"),
    };
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

fn main() {
    let mut args = std::env::args().skip(1);
    let runs: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(7);
    let rounds: u32 = args.next().and_then(|a| a.parse().ok()).unwrap_or(24);
    let module = bench_module(rounds);
    let input: Vec<u8> = (0..1u32 << 20)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();

    let (base, fuel, _) = measure(u64::MAX, &module, &input, runs);
    println!(
        "module: {rounds} rounds over 1 MiB, {fuel} fuel; median of {runs} runs; \
         no intermediate checkpoints: {:.1} ms",
        base.as_secs_f64() * 1e3
    );
    println!(
        "{:>14} {:>12} {:>10} {:>10}",
        "interval", "checkpoints", "ms", "overhead"
    );
    let default = Limits::DEFAULT.checkpoint_interval_fuel;
    let mut intervals = vec![
        1_000_000u64,
        10_000_000,
        100_000_000,
        300_000_000,
        1_000_000_000,
    ];
    if !intervals.contains(&default) {
        intervals.push(default);
        intervals.sort();
    }
    for interval in intervals {
        let (t, f, n) = measure(interval, &module, &input, runs);
        assert_eq!(f, fuel, "checkpoints must not change fuel use");
        let overhead = (t.as_secs_f64() / base.as_secs_f64() - 1.0) * 100.0;
        let mark = if interval == default {
            "  (default)"
        } else {
            ""
        };
        println!(
            "{interval:>14} {n:>12} {:>10.1} {overhead:>9.1}%{mark}",
            t.as_secs_f64() * 1e3
        );
    }
}
