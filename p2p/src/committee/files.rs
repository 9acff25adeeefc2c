//! The committee's files in its directory: `key-share-<epoch>.cbor` (the member's FROST key
//! share), `slot-guard-<epoch>.cbor` (the equivocation guard) and `epoch-driver.cbor` (the
//! epoch rotation driver's record, issue 13 §3), all written atomically (temporary file,
//! fsync, rename, directory fsync) with mode 0600.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use dsdn_protocols::committee::epoch_driver::EpochDriverRecord;

/// `<dir>/key-share-<epoch>.cbor`.
pub fn key_share_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("key-share-{epoch}.cbor"))
}

/// `<dir>/slot-guard-<epoch>.cbor`.
pub fn guard_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("slot-guard-{epoch}.cbor"))
}

/// `<dir>/epoch-driver.cbor`: the [`EpochDriverRecord`] of the epoch rotation driver.
pub fn epoch_driver_path(dir: &Path) -> PathBuf {
    dir.join("epoch-driver.cbor")
}

/// Largest `epoch-driver.cbor` read back (a record holds at most one rotation of
/// [`dsdn_protocols::committee::MAX_MEMBERS`] members: a few KiB).
pub const MAX_EPOCH_DRIVER_BYTES: usize = 32 * 1024;

/// Encodes `record` as `epoch-driver.cbor`'s bytes (CBOR), to be written off the event loop
/// with [`write_private`].
///
/// # Errors
/// The codec error (a record over [`MAX_EPOCH_DRIVER_BYTES`]).
pub fn encode_epoch_driver(record: &EpochDriverRecord) -> Result<Vec<u8>, String> {
    dsdn_protocols::codec::encode(record, MAX_EPOCH_DRIVER_BYTES).map_err(|e| e.to_string())
}

/// Reads `<dir>/epoch-driver.cbor`: `Ok(None)` when absent; an unreadable or undecodable
/// file is an error (the caller moves it aside and starts the driver afresh: the log,
/// not the record, is the authority on rotations).
///
/// # Errors
/// The I/O or decoding error, naming the file.
pub fn read_epoch_driver(dir: &Path) -> io::Result<Option<EpochDriverRecord>> {
    let path = epoch_driver_path(dir);
    let Some(bytes) = read_capped(&path, MAX_EPOCH_DRIVER_BYTES)? else {
        return Ok(None);
    };
    dsdn_protocols::codec::decode(&bytes, MAX_EPOCH_DRIVER_BYTES)
        .map(Some)
        .map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: {e}", path.display()),
            )
        })
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

    #[test]
    fn the_epoch_driver_record_round_trips_and_a_corrupt_one_is_an_error() {
        use dsdn_protocols::committee::epoch_driver::Step;
        let dir = tempfile::tempdir().unwrap();
        assert!(read_epoch_driver(dir.path()).unwrap().is_none());
        let record = EpochDriverRecord {
            window_ends_ms: 21_600_000,
            step: Step::Fallback {
                reason: "the DKG of epoch 3 timed out".into(),
            },
            acting_epoch: 2,
            member: true,
            rotations: 2,
            failures: 1,
        };
        let bytes = encode_epoch_driver(&record).unwrap();
        write_private(&epoch_driver_path(dir.path()), &bytes).unwrap();
        assert_eq!(read_epoch_driver(dir.path()).unwrap(), Some(record));
        write_private(&epoch_driver_path(dir.path()), b"\xff\x00garbage").unwrap();
        let e = read_epoch_driver(dir.path()).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("epoch-driver.cbor"), "{e}");
    }
}
