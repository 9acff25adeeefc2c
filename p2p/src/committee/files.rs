//! The committee's files in its directory: `key-share-<epoch>.cbor` (the member's FROST key
//! share) and `slot-guard-<epoch>.cbor` (the equivocation guard), both written atomically
//! (temporary file, fsync, rename, directory fsync) with mode 0600.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// `<dir>/key-share-<epoch>.cbor`.
pub fn key_share_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("key-share-{epoch}.cbor"))
}

/// `<dir>/slot-guard-<epoch>.cbor`.
pub fn guard_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("slot-guard-{epoch}.cbor"))
}

/// Creates `dir` (and its parents) if missing; the directory itself gets mode 0700 (Unix).
///
/// # Errors
/// The I/O error, naming the directory.
pub fn ensure_dir(dir: &Path) -> io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir).map_err(|e| at(dir, e))
}

fn at(path: &Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// Writes `bytes` to `path` atomically with mode 0600: `<path>.tmp` (created 0600, written,
/// fsynced), renamed over `path`, then the directory fsynced (Unix). A crash leaves the old
/// file or the new one, never a mix.
///
/// # Errors
/// The failing step's I/O error, naming the file; the temporary file is removed (best effort).
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"))?;
    let mut tmp_name = name.to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let written = (|| {
        let mut opts = OpenOptions::new();
        opts.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut file = opts.open(&tmp)?;
        // An existing temporary file keeps its mode on open: force 0600.
        #[cfg(unix)]
        {
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
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| at(dir, e))?;
    }
    Ok(())
}

/// Reads `path`: `None` if it does not exist.
///
/// # Errors
/// [`io::ErrorKind::InvalidData`] if the file is larger than `cap` bytes (at most `cap + 1`
/// bytes are read); any other I/O error, naming the file.
pub fn read_capped(path: &Path, cap: usize) -> io::Result<Option<Vec<u8>>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(at(path, e)),
    };
    let mut bytes = Vec::new();
    file.take(cap as u64 + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| at(path, e))?;
    if bytes.len() > cap {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{}: larger than {cap} bytes", path.display()),
        ));
    }
    Ok(Some(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_files_are_0600_and_replaced_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("committee");
        ensure_dir(&sub).unwrap();
        let p = key_share_path(&sub, 7);
        write_private(&p, b"one").unwrap();
        write_private(&p, b"two").unwrap();
        assert_eq!(read_capped(&p, 10).unwrap().unwrap(), b"two");
        assert!(read_capped(&p, 2).is_err());
        assert!(read_capped(&guard_path(&sub, 7), 10).unwrap().is_none());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
            let mode = fs::metadata(&sub).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
        }
        assert!(!sub.join("key-share-7.cbor.tmp").exists());
    }
}
