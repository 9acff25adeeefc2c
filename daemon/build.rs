//! Records the git commit and the build profile for `--version` and the `dsdn_build_info`
//! metric (issue 15 §4): `DSDN_GIT_COMMIT` (short hash, `unknown` without git or outside a
//! repository; a `DSDN_GIT_COMMIT` environment variable overrides it, for builds from a
//! source tarball) and `DSDN_BUILD_PROFILE` (Cargo's `PROFILE`: `debug` or `release`).

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

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
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
