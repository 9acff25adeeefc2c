//! The committee's files in its directory: `key-share-<epoch>.cbor` (the member's FROST key
//! share) and `slot-guard-<epoch>.cbor` (the equivocation guard), both written atomically
//! (temporary file, fsync, rename, directory fsync) with mode 0600.

use std::fs;
use std::io;
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

/// Writes `bytes` to `path` atomically with mode 0600
/// ([`dsdn_peers::files::write_atomic`]): a crash leaves the old file or the new one.
///
/// # Errors
/// The failing step's I/O error, naming the file.
pub fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    dsdn_peers::files::write_atomic(path, bytes, true)
}

pub use dsdn_peers::files::read_capped;

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
