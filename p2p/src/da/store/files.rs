//! The DA state snapshot file and moving unusable files aside.

use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

#[cfg(doc)]
use super::{DaStore, DA_STATE_FILE};

/// Writes `bytes` to `path` atomically: to `<path>.tmp` first, fsynced, renamed over
/// `path`, and the directory fsynced (Unix), so that a crash leaves either the old or the
/// new file. Used for the DA state snapshot ([`DA_STATE_FILE`]).
///
/// # Errors
/// The I/O error of the failing step (the message names the file); the temporary file is
/// removed on failure (best effort).
pub fn save_snapshot(path: &Path, bytes: &[u8]) -> io::Result<()> {
    dsdn_peers::files::write_atomic(path, bytes, false)
}

/// Reads the snapshot file at `path`: `None` if it does not exist.
///
/// # Errors
/// An error of kind [`io::ErrorKind::InvalidData`] if the file is larger than `cap` bytes
/// (nothing beyond `cap + 1` bytes is read); any other I/O error (the message names the
/// file).
pub fn load_snapshot(path: &Path, cap: usize) -> io::Result<Option<Vec<u8>>> {
    dsdn_peers::files::read_capped(path, cap)
}

/// Renames `path` to `<name>.corrupt-<unix-seconds>` in the same directory (with `.1`,
/// `.2`, … appended if that name is taken) and returns the new path. Used for an unusable
/// log (by [`DaStore::open`]) or snapshot.
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
