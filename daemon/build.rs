//! Records the git commit and the build profile for `--version` and the `dsdn_build_info`
//! metric (issue 15 §4): `DSDN_GIT_COMMIT` (short hash, `unknown` without git or outside a
//! repository; a `DSDN_GIT_COMMIT` environment variable overrides it, for builds from a
//! source tarball) and `DSDN_BUILD_PROFILE` (Cargo's `PROFILE`: `debug` or `release`).
//!
//! It also hands lld the light client's code order, `light-client.order`, when it links a
//! release `dsdn-agent` (issue 16 §4; see [`code_order`]).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Output of `git <args>` run in this crate's directory, trimmed; `None` on any failure.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    if !out.status.success() {
        return None;
    }
    let text = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (!text.is_empty()).then_some(text)
}

/// Asks Cargo to rerun this script when `path` changes (only if it exists: a missing path
/// would make Cargo rerun it on every build).
fn watch(path: &Path) {
    if path.exists() {
        println!("cargo:rerun-if-changed={}", path.display());
    }
}

/// The light client's code order (issue 16 §4: a light client within 20 MiB).
///
/// `light-client.order` lists, by mangled name, the functions `dsdn-agent watch
/// --from-checkpoint` runs (written by `dsdn-light-order` from callgrind profiles). Linked
/// next to each other, they fill under 5 MiB of `.text` instead of being spread over 32 MiB,
/// where the kernel's 64 KiB fault-around made 16.5 MiB of code resident. Only the order of
/// functions in the file changes, never what runs; names the binary does not define (the
/// order was written for another Cargo.lock or toolchain) are skipped without a warning.
///
/// Given to `dsdn-agent` only, in release builds for `x86_64-unknown-linux-gnu`, where rustc
/// (≥ 1.90, the workspace's rust-version) links with its own lld. Skipped when RUSTFLAGS
/// choose another linker (`-fuse-ld`, `linker-features`, `linker-flavor`) or
/// `DSDN_NO_CODE_ORDER` is set.
fn code_order() {
    let order = Path::new(env!("CARGO_MANIFEST_DIR")).join("light-client.order");
    println!("cargo:rerun-if-changed={}", order.display());
    println!("cargo:rerun-if-env-changed=DSDN_NO_CODE_ORDER");
    let var = |name: &str| std::env::var(name).unwrap_or_default();
    let flags = var("CARGO_ENCODED_RUSTFLAGS");
    let other_linker = ["fuse-ld", "linker-features", "linker-flavor"]
        .iter()
        .any(|f| flags.contains(f));
    if !var("DSDN_NO_CODE_ORDER").is_empty()
        || var("PROFILE") != "release"
        || var("TARGET") != "x86_64-unknown-linux-gnu"
        || other_linker
        || !order.exists()
    {
        return;
    }
    println!(
        "cargo:rustc-link-arg-bin=dsdn-agent=-Wl,--symbol-ordering-file={}",
        order.display()
    );
    println!("cargo:rustc-link-arg-bin=dsdn-agent=-Wl,--no-warn-symbol-ordering");
}

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    code_order();
    println!("cargo:rerun-if-env-changed=DSDN_GIT_COMMIT");
    let commit = match std::env::var("DSDN_GIT_COMMIT") {
        Ok(c) if !c.trim().is_empty() => c.trim().to_owned(),
        _ => {
            // HEAD lives in the worktree's git dir (`.git` may be a file pointing elsewhere),
            // the branch it points to in the common dir (loose, or in packed-refs).
            if let Some(dir) = git(&["rev-parse", "--git-dir"]).map(PathBuf::from) {
                watch(&dir.join("HEAD"));
                let common = git(&["rev-parse", "--git-common-dir"]).map_or(dir, PathBuf::from);
                if let Some(head_ref) = git(&["symbolic-ref", "-q", "HEAD"]) {
                    watch(&common.join(head_ref));
                }
                watch(&common.join("packed-refs"));
            }
            git(&["rev-parse", "--short=9", "HEAD"]).unwrap_or_else(|| "unknown".to_owned())
        }
    };
    let profile = std::env::var("PROFILE").unwrap_or_else(|_| "unknown".to_owned());
    println!("cargo:rustc-env=DSDN_GIT_COMMIT={commit}");
    println!("cargo:rustc-env=DSDN_BUILD_PROFILE={profile}");
}
