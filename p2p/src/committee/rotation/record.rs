//! The member's rotation record on disk: `<committee dir>/rotation-record-<epoch>.cbor`
//! ([`MemberRecord`], written by the record writer thread, tmp + fsync + rename + directory
//! fsync), and what a start makes of it.

use std::path::{Path, PathBuf};

use dsdn_protocols::committee::rotation::{MemberRecord, MAX_MEMBER_RECORD_BYTES};

use crate::committee::files::read_capped;

/// `<dir>/rotation-record-<epoch>.cbor`.
pub fn record_path(dir: &Path, epoch: u64) -> PathBuf {
    dir.join(format!("rotation-record-{epoch}.cbor"))
}

/// What was found on disk at start.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No record: the member never took part (or every height it did is sealed).
    Fresh,
    /// The record last persisted.
    Record(MemberRecord),
    /// The file did not read or decode: moved aside to `moved_to` (when the rename worked).
    /// The member may have held a lock it no longer knows, so it abstains until a height
    /// sealed after it caught up (see `DaRotation`).
    Corrupt {
        /// Why the file was refused.
        error: String,
        /// Where it went (`<file>.corrupt-<unix seconds>`), if the rename worked.
        moved_to: Option<PathBuf>,
    },
}

/// Reads the record at `path`; a corrupt one is renamed to `<path>.corrupt-<unix>`.
pub(crate) fn load(path: &Path) -> Loaded {
    let error = match read_capped(path, MAX_MEMBER_RECORD_BYTES) {
        Ok(None) => return Loaded::Fresh,
        Ok(Some(bytes)) => match MemberRecord::from_bytes(&bytes) {
            Ok(r) => return Loaded::Record(r),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    };
    let unix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut aside = path.as_os_str().to_owned();
    aside.push(format!(".corrupt-{unix}"));
    let aside = PathBuf::from(aside);
    let moved_to = std::fs::rename(path, &aside).ok().map(|()| aside);
    Loaded::Corrupt { error, moved_to }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_record_and_corrupt_file_moved_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = record_path(dir.path(), 3);
        assert!(matches!(load(&path), Loaded::Fresh));
        let r = MemberRecord::new(5);
        std::fs::write(&path, r.to_bytes().unwrap()).unwrap();
        assert!(matches!(load(&path), Loaded::Record(x) if x == r));
        std::fs::write(&path, b"not cbor").unwrap();
        match load(&path) {
            Loaded::Corrupt {
                moved_to: Some(p), ..
            } => {
                assert!(p.exists());
                assert!(!path.exists());
            }
            other => panic!("{other:?}"),
        }
    }
}
