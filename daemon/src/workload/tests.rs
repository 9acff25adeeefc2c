//! Tests of the workload runtime, with modules written in WAT.

use std::time::Duration;

use super::*;
use dsdn_protocols::receipt::{sha256, workload_id};
use samples::ALLOC;

/// A bump allocator from address 1024 that grows memory as needed, plus `body` as the
/// definition of `run` and `extra` as further module fields.
fn module(run: &str, extra: &str) -> Vec<u8> {
    let text = format!(
        r#"(module {ALLOC}
  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32))
            (i64.extend_i32_u (local.get $n))))
  {run}
  {extra})"#
    );
    wat::parse_str(&text).unwrap()
}

fn echo() -> Vec<u8> {
    module(
        r#"(func (export "run") (param $p i32) (param $n i32) (result i64)
             (call $pack (local.get $p) (local.get $n)))"#,
        "",
    )
}

/// Adds 1 to every input byte in place, `rounds` times over, and returns it.
fn add_one(rounds: u32) -> Vec<u8> {
    module(
        &format!(
            r#"(func (export "run") (param $p i32) (param $n i32) (result i64)
             (local $i i32) (local $r i32)
             (block $done_r (loop $rounds
               (br_if $done_r (i32.ge_u (local.get $r) (i32.const {rounds})))
               (local.set $i (i32.const 0))
               (block $done (loop $bytes
                 (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
                 (i32.store8 (i32.add (local.get $p) (local.get $i))
                   (i32.add (i32.load8_u (i32.add (local.get $p) (local.get $i))) (i32.const 1)))
                 (local.set $i (i32.add (local.get $i) (i32.const 1)))
                 (br $bytes)))
               (local.set $r (i32.add (local.get $r) (i32.const 1)))
               (br $rounds)))
             (call $pack (local.get $p) (local.get $n)))"#
        ),
        "",
    )
}

fn runtime(f: impl FnOnce(&mut Limits)) -> WorkloadRuntime {
    let mut limits = Limits::DEFAULT;
    f(&mut limits);
    WorkloadRuntime::new(limits).unwrap()
}

#[test]
fn echo_and_transform_give_the_expected_output() {
    let rt = runtime(|_| {});
    let e = rt.run(&echo(), b"hello").unwrap();
    assert_eq!(e.output, b"hello");
    assert_eq!(e.commitment.workload_id, workload_id(&echo()));
    assert_eq!(e.commitment.input_hash, sha256(b"hello"));
    assert_eq!(e.commitment.output_hash, sha256(b"hello"));
    assert_eq!(e.usage.fuel_used, e.commitment.fuel_used);
    assert_eq!(e.usage.memory_peak_bytes, 65536);
    assert!(e.commitment.matches_trace(&e.trace));
    assert!(rt.is_cached(&e.commitment.workload_id));

    let t = rt.run(&add_one(3), b"abc").unwrap();
    assert_eq!(t.output, b"def");
    // The input is changed in place, so the memory after differs from before.
    assert_ne!(
        t.commitment.state_root_before,
        t.commitment.state_root_after
    );
    assert_eq!(rt.run(&echo(), b"").unwrap().output, b"");
}

#[test]
fn large_input_grows_memory() {
    let rt = runtime(|_| {});
    let input = vec![7u8; 300_000];
    let e = rt.run(&add_one(1), &input).unwrap();
    assert!(e.output.iter().all(|&b| b == 8) && e.output.len() == input.len());
    assert!(e.usage.memory_peak_bytes >= 300_000 + 1024);
}

#[test]
fn same_run_gives_the_same_commitment_on_one_and_on_two_engines() {
    let (a, b) = (runtime(|_| {}), runtime(|_| {}));
    let m = add_one(50);
    let input: Vec<u8> = (0..4000u32).map(|i| i as u8).collect();
    let lim = |l: &mut Limits| l.checkpoint_interval_fuel = 50_000;
    let (c, d) = (runtime(lim), runtime(lim));
    let r1 = a.run(&m, &input).unwrap();
    let r2 = a.run(&m, &input).unwrap();
    let r3 = b.run(&m, &input).unwrap();
    assert_eq!(r1.commitment, r2.commitment);
    assert_eq!(r1.commitment, r3.commitment);
    assert_eq!((&r1.output, &r1.trace), (&r3.output, &r3.trace));
    // With many checkpoints too (timing of the epoch thread must not matter).
    let s1 = c.run(&m, &input).unwrap();
    let s2 = d.run(&m, &input).unwrap();
    let s3 = c.run(&m, &input).unwrap();
    assert!(s1.commitment.checkpoints > 10);
    assert_eq!(s1.trace, s2.trace);
    assert_eq!(s1.commitment, s2.commitment);
    assert_eq!(s1.commitment, s3.commitment);
    // Checkpoints do not perturb the execution itself.
    assert_eq!(s1.commitment.fuel_used, r1.commitment.fuel_used);
    assert_eq!(
        s1.commitment.state_root_after,
        r1.commitment.state_root_after
    );
    assert_ne!(s1.commitment.trace_root, r1.commitment.trace_root);
}

#[test]
fn different_input_changes_hashes_and_trace() {
    let rt = runtime(|l| l.checkpoint_interval_fuel = 10_000);
    let m = add_one(10);
    let x = rt.run(&m, &[1u8; 2000]).unwrap().commitment;
    let y = rt.run(&m, &[2u8; 2000]).unwrap().commitment;
    assert_eq!(x.workload_id, y.workload_id);
    assert_eq!(x.fuel_used, y.fuel_used);
    assert_ne!(x.input_hash, y.input_hash);
    assert_ne!(x.output_hash, y.output_hash);
    assert_ne!(x.state_root_before, y.state_root_before);
    assert_ne!(x.trace_root, y.trace_root);
}

#[test]
fn checkpoints_follow_the_fuel_slice_rule() {
    const I: u64 = 20_000;
    // One loop iteration of add_one costs well under this many fuel units.
    const BLOCK: u64 = 64;
    let rt = runtime(|l| l.checkpoint_interval_fuel = I);
    let e = rt.run(&add_one(40), &[0u8; 10_000]).unwrap();
    let c = &e.commitment;
    assert_eq!(c.checkpoints as usize, e.trace.len());
    assert!(c.matches_trace(&e.trace));
    let last = e.trace.last().unwrap();
    assert_eq!(
        (last.fuel_consumed, last.state_root),
        (c.fuel_used, c.state_root_after)
    );
    // Every slice is at least one interval and overshoots by less than a loop body.
    let fuel: Vec<u64> = e.trace.iter().map(|t| t.fuel_consumed).collect();
    for w in fuel[..fuel.len() - 1].windows(2) {
        assert!(
            w[1] - w[0] >= I && w[1] - w[0] < I + BLOCK,
            "slice {}",
            w[1] - w[0]
        );
    }
    let slices = fuel.len() as u64 - 1;
    assert!(
        slices <= c.fuel_used / I,
        "{slices} slices, {} fuel",
        c.fuel_used
    );
    assert!(
        slices + 1 >= c.fuel_used / (I + BLOCK),
        "{slices} slices, {} fuel",
        c.fuel_used
    );
    // The memory changes between checkpoints.
    assert_ne!(e.trace[0].state_root, e.trace[1].state_root);

    // Without intermediate checkpoints only the final one remains.
    let none = runtime(|l| l.checkpoint_interval_fuel = u64::MAX);
    let f = none.run(&add_one(40), &[0u8; 10_000]).unwrap();
    assert_eq!(f.commitment.checkpoints, 1);
    assert_eq!(f.commitment.fuel_used, c.fuel_used);
}

#[test]
fn infinite_loop_runs_out_of_fuel_or_time() {
    let spin = module(
        r#"(func (export "run") (param $p i32) (param $n i32) (result i64)
             (loop $l (br $l)) (i64.const 0))"#,
        "",
    );
    let rt = runtime(|l| l.fuel = 1_000_000);
    assert_eq!(rt.run(&spin, b"x"), Err(RuntimeError::OutOfFuel));
    let rt = runtime(|l| {
        l.fuel = i64::MAX as u64;
        l.wall_time = Duration::from_millis(200);
    });
    assert_eq!(rt.run(&spin, b"x"), Err(RuntimeError::WallClockLimit));
}

#[test]
fn memory_beyond_the_limit_never_yields_a_commitment() {
    let rt = runtime(|l| l.memory_bytes = 4 << 20);
    let grow = module(
        r#"(func (export "run") (param $p i32) (param $n i32) (result i64)
             (drop (memory.grow (i32.const 100))) (i64.const 0))"#,
        "",
    );
    assert_eq!(rt.run(&grow, b""), Err(RuntimeError::MemoryLimit));
    // A module whose initial memory is already too large.
    let big = wat::parse_str(
        r#"(module (memory (export "memory") 100)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "run") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert_eq!(rt.run(&big, b""), Err(RuntimeError::MemoryLimit));
    // An input that does not fit: alloc's memory.grow is refused.
    assert_eq!(
        rt.run(&echo(), &vec![0u8; 5 << 20]),
        Err(RuntimeError::MemoryLimit)
    );
}

#[test]
fn imports_garbage_and_bad_abi_are_refused() {
    let rt = runtime(|_| {});
    let imp = wat::parse_str(
        r#"(module (import "env" "clock" (func (result i64)))
             (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "run") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        rt.run(&imp, b""),
        Err(RuntimeError::ForbiddenImport {
            module: "env".into(),
            name: "clock".into()
        })
    );
    assert!(matches!(
        rt.run(b"\0asm garbage", b""),
        Err(RuntimeError::InvalidModule(_))
    ));
    assert!(matches!(
        rt.run(&[0xff; 64], b""),
        Err(RuntimeError::InvalidModule(_))
    ));
    // Text is not accepted: the runtime takes binary modules only.
    assert!(matches!(
        rt.run(b"(module)", b""),
        Err(RuntimeError::InvalidModule(_))
    ));
    let no_alloc = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "run") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        rt.run(&no_alloc, b""),
        Err(RuntimeError::MissingExport("alloc"))
    );
    let bad_run = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "run") (param i32 i32) (result i32) (i32.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        rt.run(&bad_run, b""),
        Err(RuntimeError::MissingExport("run"))
    );
    let no_mem = wat::parse_str(
        r#"(module (memory 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "run") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        rt.run(&no_mem, b""),
        Err(RuntimeError::MissingExport("memory"))
    );
    assert!(!rt.is_cached(&workload_id(&no_mem)));
}

#[test]
fn traps_bad_ranges_and_size_limits_are_typed_errors() {
    let rt = runtime(|l| {
        l.max_input_bytes = 100;
        l.max_output_bytes = 10;
    });
    let trap = module(
        r#"(func (export "run") (param $p i32) (param $n i32) (result i64) unreachable)"#,
        "",
    );
    assert!(matches!(rt.run(&trap, b""), Err(RuntimeError::Trap(_))));
    assert!(matches!(
        rt.run(&echo(), &[0; 101]),
        Err(RuntimeError::InputTooLarge { len: 101, max: 100 })
    ));
    assert!(matches!(
        rt.run(&echo(), &[0; 11]),
        Err(RuntimeError::OutputTooLarge { len: 11, max: 10 })
    ));
    let out_of_range = module(
        r#"(func (export "run") (param $p i32) (param $n i32) (result i64)
             (call $pack (i32.const 65530) (i32.const 10)))"#,
        "",
    );
    assert_eq!(
        rt.run(&out_of_range, b""),
        Err(RuntimeError::BadOutput {
            ptr: 65530,
            len: 10
        })
    );
    let bad_alloc = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 65535))
             (func (export "run") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert_eq!(
        rt.run(&bad_alloc, b"ab"),
        Err(RuntimeError::BadAlloc { ptr: 65535, len: 2 })
    );
    assert!(matches!(
        WorkloadRuntime::new(Limits {
            fuel: 0,
            ..Limits::DEFAULT
        }),
        Err(RuntimeError::BadLimits(_))
    ));
    assert!(matches!(
        WorkloadRuntime::new(Limits {
            checkpoint_interval_fuel: 0,
            ..Limits::DEFAULT
        }),
        Err(RuntimeError::BadLimits(_))
    ));
}

#[test]
fn nan_results_have_the_same_bits_on_two_engines() {
    // Input: two f64 bit patterns (NaNs with payloads). Output: 8 f64 and 4 f32 results
    // of arithmetic that produces NaN; without canonicalisation their payload and sign
    // depend on the CPU.
    let m = module(
        r#"(func (export "run") (param $p i32) (param $n i32) (result i64)
             (local $a f64) (local $b f64) (local $x f32)
             (local.set $a (f64.load (local.get $p)))
             (local.set $b (f64.load offset=8 (local.get $p)))
             (local.set $x (f32.demote_f64 (local.get $a)))
             (f64.store offset=0 (i32.const 0) (f64.add (local.get $a) (local.get $b)))
             (f64.store offset=8 (i32.const 0) (f64.mul (local.get $b) (f64.const 2)))
             (f64.store offset=16 (i32.const 0) (f64.div (f64.const 0) (f64.const 0)))
             (f64.store offset=24 (i32.const 0) (f64.sqrt (f64.const -1)))
             (f64.store offset=32 (i32.const 0) (f64.sub (local.get $a) (local.get $a)))
             (f64.store offset=40 (i32.const 0) (f64.min (local.get $a) (f64.const 1)))
             (f64.store offset=48 (i32.const 0) (f64.promote_f32 (local.get $x)))
             (f64.store offset=56 (i32.const 0) (f64.neg (f64.add (local.get $b) (f64.const 0))))
             (f32.store offset=64 (i32.const 0) (f32.add (local.get $x) (f32.const 1)))
             (f32.store offset=68 (i32.const 0) (f32.div (f32.const 0) (f32.const 0)))
             (f32.store offset=72 (i32.const 0) (f32.sqrt (f32.const -4)))
             (f32.store offset=76 (i32.const 0) (f32.mul (local.get $x) (local.get $x)))
             (call $pack (i32.const 0) (i32.const 80)))"#,
        "",
    );
    let mut input = 0x7ff4_dead_beef_0001u64.to_le_bytes().to_vec();
    input.extend_from_slice(&0xfff8_0000_1234_5678u64.to_le_bytes());
    let (a, b) = (runtime(|_| {}), runtime(|_| {}));
    let x = a.run(&m, &input).unwrap();
    let y = b.run(&m, &input).unwrap();
    assert_eq!(x.output, y.output);
    assert_eq!(x.commitment, y.commitment);
    for i in 0..8 {
        let v = u64::from_le_bytes(x.output[i * 8..i * 8 + 8].try_into().unwrap());
        // Canonical f64 NaN (f64.neg flips the sign bit of the canonical NaN it receives).
        assert!(
            v & !(1 << 63) == 0x7ff8_0000_0000_0000,
            "f64 result {i}: {v:#x}"
        );
    }
    for i in 0..4 {
        let v = u32::from_le_bytes(x.output[64 + i * 4..68 + i * 4].try_into().unwrap());
        assert_eq!(v, 0x7fc0_0000, "f32 result {i}: {v:#x}");
    }
}

#[test]
fn every_kind_of_import_is_refused() {
    let rt = runtime(|_| {});
    let abi = r#"(func (export "alloc") (param i32) (result i32) (i32.const 0))
                 (func (export "run") (param i32 i32) (result i64) (i64.const 0))"#;
    let imports = [
        (
            "wasi_snapshot_preview1",
            "fd_write",
            r#"(func (param i32 i32 i32 i32) (result i32))"#,
        ),
        (
            "wasi_snapshot_preview1",
            "random_get",
            r#"(func (param i32 i32) (result i32))"#,
        ),
        ("env", "mem", r#"(memory 1)"#),
        ("env", "g", r#"(global i64)"#),
        ("env", "t", r#"(table 1 funcref)"#),
    ];
    for (m, n, ty) in imports {
        // An imported memory serves as the exported one when it is the import.
        let memory = if ty.starts_with("(memory") {
            r#"(export "memory" (memory 0))"#
        } else {
            r#"(memory (export "memory") 1)"#
        };
        let text = format!(r#"(module (import "{m}" "{n}" {ty}) {memory} {abi})"#);
        let bytes = wat::parse_str(&text).unwrap();
        assert_eq!(
            rt.run(&bytes, b""),
            Err(RuntimeError::ForbiddenImport {
                module: m.into(),
                name: n.into()
            }),
            "{text}"
        );
        assert!(!rt.is_cached(&workload_id(&bytes)));
    }
}

#[test]
fn nondeterministic_proposals_are_refused() {
    let rt = runtime(|_| {});
    // Relaxed SIMD (results may differ across CPUs) is disabled.
    let relaxed = wat::parse_str(
        r#"(module (memory (export "memory") 1)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "run") (param i32 i32) (result i64)
               (drop (f32x4.relaxed_madd (v128.const i64x2 0 0) (v128.const i64x2 0 0)
                                         (v128.const i64x2 0 0)))
               (i64.const 0)))"#,
    )
    .unwrap();
    assert!(matches!(
        rt.run(&relaxed, b""),
        Err(RuntimeError::InvalidModule(_))
    ));
    // Shared memory (threads) is not supported.
    let shared = wat::parse_str(
        r#"(module (memory (export "memory") 1 1 shared)
             (func (export "alloc") (param i32) (result i32) (i32.const 0))
             (func (export "run") (param i32 i32) (result i64) (i64.const 0)))"#,
    )
    .unwrap();
    assert!(matches!(
        rt.run(&shared, b""),
        Err(RuntimeError::InvalidModule(_))
    ));
    // Plain SIMD is deterministic (with NaN canonicalisation) and accepted.
    let simd = module(
        r#"(func (export "run") (param $p i32) (param $n i32) (result i64)
             (v128.store (i32.const 0)
               (f32x4.div (v128.const f32x4 0 1 2 3) (v128.const f32x4 0 1 1 1)))
             (call $pack (i32.const 0) (i32.const 16)))"#,
        "",
    );
    let out = rt.run(&simd, b"").unwrap().output;
    assert_eq!(&out[..4], &0x7fc0_0000u32.to_le_bytes());
    assert_eq!(&out[4..8], &1f32.to_le_bytes());
}

#[test]
fn compiled_modules_are_cached_and_the_cache_is_bounded() {
    let rt = runtime(|_| {});
    let first = add_one(0);
    let (id, _) = rt.compile(&first).unwrap();
    assert!(rt.is_cached(&id));
    // The cached module gives the same result as a fresh compile elsewhere.
    let cached = rt.run(&first, b"xyz").unwrap();
    assert_eq!(cached, {
        let mut e = runtime(|_| {}).run(&first, b"xyz").unwrap();
        e.usage.wall_time_ms = cached.usage.wall_time_ms;
        e
    });
    // MODULE_CACHE_ENTRIES other modules push it out.
    for r in 1..=MODULE_CACHE_ENTRIES as u32 {
        rt.compile(&add_one(r)).unwrap();
    }
    assert!(!rt.is_cached(&id));
    assert!(rt.is_cached(&workload_id(&add_one(MODULE_CACHE_ENTRIES as u32))));
}

#[test]
fn the_sample_module_computes_fnv_and_runs_through_the_network_executor() {
    use dsdn_p2p::workload::Executor as _;
    let module = super::samples::fnv_module(3).unwrap();
    let exec = super::RuntimeExecutor::new().unwrap();
    let a = exec.execute(&module, b"dsdn").unwrap();
    assert_eq!(a.output, super::samples::fnv_expected(b"dsdn", 3));
    assert_eq!(a.commitment.workload_id, workload_id(&module));
    // A second, separate engine gives the identical commitment.
    let b = super::RuntimeExecutor::new()
        .unwrap()
        .execute(&module, b"dsdn")
        .unwrap();
    assert_eq!(a.commitment, b.commitment);
    // The network's caps hold.
    let big = vec![0u8; dsdn_protocols::workload::MAX_INPUT_BYTES + 1];
    assert!(exec.execute(&module, &big).is_err());
}
