//! Files of the data directory: moving an unusable one aside (peers.dat, the DA log and
//! snapshot, the committee's key material), atomic writes and size-capped reads (the DA
//! snapshot, the committee's key share and slot guard).

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// Moved-aside copies of one file kept in its directory: the newest [`KEEP_CORRUPT`]
/// `<name>.corrupt-*` files stay (the one just moved aside always among them), older ones
/// are deleted. Three: enough to compare the last failures, bounded however often a file
/// keeps being found corrupt (a failing disk, a crash loop), each copy being as large as
/// the file (a DA log can be gigabytes).
pub const KEEP_CORRUPT: usize = 3;

/// Renames `path` to `<name>.corrupt-<now>` in the same directory (with `.1`, `.2`, …
/// appended if that name is taken, so an earlier copy is never overwritten) and returns the
/// new path. `now` is UNIX seconds. Used for a corrupt peers.dat, DA log or DA state
/// snapshot and the committee's key files: the file is kept for inspection and a fresh one
/// is built. Then older copies beyond the newest [`KEEP_CORRUPT`] are deleted
/// ([`prune_corrupt`]; a failure there is logged, not returned).
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
    match prune_corrupt(path, &target) {
        Ok(removed) if !removed.is_empty() => tracing::info!(
            file = %path.display(),
            removed = removed.len(),
            kept = KEEP_CORRUPT,
            "deleted older moved-aside copies"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(
            file = %path.display(),
            error = %e,
            "cannot delete older moved-aside copies"
        ),
    }
    Ok(target)
}

/// The order of a moved-aside copy named `<name>.corrupt-<secs>` or
/// `<name>.corrupt-<secs>.<n>`: `(secs, n)`, `n` 0 when absent; `None` for any other name
/// (never deleted).
fn corrupt_order(name: &str, prefix: &str) -> Option<(u64, u64)> {
    let rest = name.strip_prefix(prefix)?;
    let (secs, n) = match rest.split_once('.') {
        Some((secs, n)) => (secs, n.parse().ok()?),
        None => (rest, 0),
    };
    Some((secs.parse().ok()?, n))
}

/// Deletes the moved-aside copies of `path` (`<name>.corrupt-<secs>[.<n>]` in its
/// directory) beyond the newest [`KEEP_CORRUPT`], newest by the time and counter in the
/// name (a rename keeps the file's modification time, so that says nothing). `newest`, the
/// copy just made, is always kept, even if the clock went back. Other names are left alone.
/// Returns the deleted paths.
///
/// # Errors
/// Listing the directory or deleting a file failed (the message names it); copies deleted
/// before the failure stay deleted.
pub fn prune_corrupt(path: &Path, newest: &Path) -> io::Result<Vec<PathBuf>> {
    let Some(name) = path.file_name() else {
        return Ok(Vec::new());
    };
    let prefix = format!("{}.corrupt-", name.to_string_lossy());
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut copies = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| at(dir, e))? {
        let entry = entry.map_err(|e| at(dir, e))?;
        let file_name = entry.file_name();
        let Some(order) = file_name.to_str().and_then(|n| corrupt_order(n, &prefix)) else {
            continue;
        };
        let copy = dir.join(&file_name);
        if newest.file_name() != Some(file_name.as_os_str()) {
            copies.push((order, copy));
        }
    }
    copies.sort_by_key(|c| std::cmp::Reverse(c.0));
    let mut removed = Vec::new();
    for (_, copy) in copies.into_iter().skip(KEEP_CORRUPT.saturating_sub(1)) {
        fs::remove_file(&copy).map_err(|e| at(&copy, e))?;
        removed.push(copy);
    }
    Ok(removed)
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically: `<path>.tmp` is written and fsynced, renamed over
/// `path`, and the directory fsynced (Unix), so that a crash leaves the old file or the new
/// one, never a mix. With `private` the file gets mode 0600 (Unix; key material). Used for
/// the committee's key share and slot guard.
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// Issue 14 §6: however often a file is moved aside, the newest three copies stay.
    #[test]
    fn moving_aside_keeps_the_newest_three_copies() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("peers.dat");
        // Unrelated names are never touched.
        fs::write(dir.path().join("peers.dat.corrupt-notes"), "mine").unwrap();
        fs::write(dir.path().join("da-log.redb.corrupt-1"), "other file").unwrap();
        for (i, now) in [100, 100, 100, 250, 90, 1000].into_iter().enumerate() {
            fs::write(&file, format!("copy {i}")).unwrap();
            let target = move_aside_at(&file, now).unwrap();
            assert_eq!(fs::read_to_string(&target).unwrap(), format!("copy {i}"));
        }
        // Made: 100, 100.1, 100.2, 250, 90 (the clock went back: kept while it is the one
        // just made), 1000; the older ones by name went as newer ones came.
        assert_eq!(
            names(dir.path()),
            [
                "da-log.redb.corrupt-1",
                "peers.dat.corrupt-100.2",
                "peers.dat.corrupt-1000",
                "peers.dat.corrupt-250",
                "peers.dat.corrupt-notes",
            ]
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("peers.dat.corrupt-1000")).unwrap(),
            "copy 5"
        );
    }

    #[test]
    fn copies_are_ordered_by_time_then_counter() {
        let p = "f.corrupt-";
        assert_eq!(corrupt_order("f.corrupt-42", p), Some((42, 0)));
        assert_eq!(corrupt_order("f.corrupt-42.3", p), Some((42, 3)));
        assert!(corrupt_order("f.corrupt-42.3", p) > corrupt_order("f.corrupt-42.1", p));
        assert!(corrupt_order("f.corrupt-100", p) > corrupt_order("f.corrupt-99.9", p));
        for other in [
            "f.corrupt-",
            "f.corrupt-x",
            "f.corrupt-1.x",
            "g.corrupt-1",
            "f.tmp",
        ] {
            assert_eq!(corrupt_order(other, p), None, "{other}");
        }
    }
}
