//! Sample workloads for the devnet, the tests and the benchmarks. [`ALLOC`] is the module
//! ABI's bump allocator (with the one memory); [`fnv_wat`] is FNV-1a (64-bit) of the input,
//! computed `rounds` times over (each round hashes the input and the previous hash),
//! returned as 8 little-endian bytes. They follow the module ABI of [`super`] and import
//! nothing.

/// The ABI's `memory` export (one page to start) and a bump allocator `alloc(len) -> ptr`
/// that grows the memory as needed, heap from address 1024 (WebAssembly text, to splice
/// into a `(module …)`).
pub const ALLOC: &str = r#"
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

/// The sample module's WebAssembly text for `rounds` rounds (at least 1).
pub fn fnv_wat(rounds: u32) -> String {
    let rounds = rounds.max(1);
    format!(
        r#"(module {ALLOC}
  (func (export "run") (param $p i32) (param $n i32) (result i64)
    (local $h i64) (local $i i32) (local $r i32)
    (local.set $h (i64.const 0xcbf29ce484222325))
    (block $done_r (loop $rounds
      (br_if $done_r (i32.ge_u (local.get $r) (i32.const {rounds})))
      (local.set $i (i32.const 0))
      (block $done (loop $bytes
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $h (i64.mul
          (i64.xor (local.get $h) (i64.load8_u (i32.add (local.get $p) (local.get $i))))
          (i64.const 0x100000001b3)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $bytes)))
      (local.set $r (i32.add (local.get $r) (i32.const 1)))
      (br $rounds)))
    (i64.store (i32.const 0) (local.get $h))
    (i64.const 8)))"#
    )
}

/// The sample module's binary for `rounds` rounds.
///
/// # Errors
/// The text does not assemble (cannot happen for this fixed text).
pub fn fnv_module(rounds: u32) -> Result<Vec<u8>, wat::Error> {
    wat::parse_str(fnv_wat(rounds))
}

/// What the sample module outputs for `input` after `rounds` rounds (for checking).
pub fn fnv_expected(input: &[u8], rounds: u32) -> [u8; 8] {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for _ in 0..rounds.max(1) {
        for b in input {
            h = (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3);
        }
    }
    h.to_le_bytes()
}
