//! Moving unusable files aside.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(doc)]
use super::DaStore;

/// Renames `path` to `<name>.corrupt-<unix-seconds>` in the same directory (with `.1`,
/// `.2`, … appended if that name is taken) and returns the new path. Used for an unusable
/// log (by [`DaStore::open`]).
///
/// # Errors
/// The rename's I/O error (the message names the file); `InvalidInput` if `path` has no
/// file name.
pub fn move_aside(path: &Path) -> io::Result<PathBuf> {
    move_aside_at(path, unix_now())
}

pub(super) use dsdn_peers::files::move_aside_at;

/// Seconds since the UNIX epoch (0 if the clock is before 1970).
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
