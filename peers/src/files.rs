//! Files of the data directory: moving an unusable one aside (peers.dat, the DA log and
//! snapshot, the committee's key material), atomic writes and size-capped reads (the DA
//! snapshot, the committee's key share and slot guard).

use std::fs;
use std::io::{self, Read, Write};
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

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically: `<path>.tmp` is written and fsynced, renamed over
/// `path`, and the directory fsynced (Unix), so that a crash leaves the old file or the new
/// one, never a mix. With `private` the file gets mode 0600 (Unix; key material). Used for
/// the DA state snapshot and the committee's key share and slot guard.
///
/// # Errors
/// The failing step's I/O error, naming the file; the temporary file is removed (best
/// effort). `InvalidInput` if `path` has no file name.
pub fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut opts = fs::OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp)?;
        // An existing temporary file keeps its mode on open.
        #[cfg(unix)]
        if private {
            use std::os::unix::fs::PermissionsExt;
            file.set_permissions(fs::Permissions::from_mode(0o600))?;
        }
        file.write_all(bytes)?;
        file.sync_all()
    })();
    if let Err(e) = written.and_then(|()| fs::rename(&tmp, path)) {
        let _ = fs::remove_file(&tmp);
        return Err(at(path, e));
    }
    #[cfg(unix)]
    {
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| at(dir, e))?;
    }
    Ok(())
}

/// Reads `path` whole: `None` if it does not exist.
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] if the file is larger than `cap` bytes (checked on its
/// length first; at most `cap + 1` bytes are ever read); any other I/O error, naming the
/// file.
pub fn read_capped(path: &Path, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let file = match fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(path, e)),
    };
    let too_big = || {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: larger than {cap} bytes", path.display()),
        )
    };
    let len = file.metadata().map_err(|e| at(path, e))?.len();
    if usize::try_from(len).map_or(true, |len| len > cap) {
        return Err(too_big());
    }
    let limit = u64::try_from(cap).unwrap_or(u64::MAX).saturating_add(1);
    let mut bytes = Vec::with_capacity(usize::try_from(len).unwrap_or(0));
    file.take(limit)
        .read_to_end(&mut bytes)
        .map_err(|e| at(path, e))?;
    if bytes.len() > cap {
        return Err(too_big());
    }
    Ok(Some(bytes))
}
