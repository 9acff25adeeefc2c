//! The DA state snapshot file and moving unusable files aside.

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::io_at;
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
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "snapshot path has no file name",
        )
    })?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut file = File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(io_at(path, e));
    }
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_at(dir, e))?;
    }
    Ok(())
}

/// Reads the snapshot file at `path`: `None` if it does not exist.
///
/// # Errors
/// An error of kind [`io::ErrorKind::InvalidData`] if the file is larger than `cap` bytes
/// (nothing beyond `cap + 1` bytes is read); any other I/O error (the message names the
/// file).
pub fn load_snapshot(path: &Path, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_at(path, e)),
    };
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: snapshot larger than {cap} bytes", path.display()),
        )
    };
    let len = file.metadata().map_err(|e| io_at(path, e))?.len();
    if usize::try_from(len).map_or(true, |len| len > cap) {
        return Err(too_big());
    }
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| io_at(path, e))?;
    if bytes.len() > cap {
        return Err(too_big());
    }
    Ok(Some(bytes))
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
