//! Handling of unusable files in the data directory, shared by peers.dat and the DA log.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// Renames `path` to `<name>.corrupt-<now>` in the same directory (with `.1`, `.2`, …
/// appended if that name is taken, so an earlier copy is never overwritten) and returns the
/// new path. `now` is UNIX seconds. Used for a corrupt peers.dat, DA log or DA state
/// snapshot: the file is kept for inspection and a fresh one is built.
///
/// # Errors
/// The rename's I/O error, its message naming the file; `InvalidInput` if `path` has no
/// file name.
pub fn move_aside_at(path: &Path, now: u64) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let base = format!("{}.corrupt-{now}", name.to_string_lossy());
    let mut target = path.with_file_name(&base);
    let mut n = 1u32;
    while fs::symlink_metadata(&target).is_ok() {
        target = path.with_file_name(format!("{base}.{n}"));
        n += 1;
    }
    fs::rename(path, &target)
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
    Ok(target)
}
