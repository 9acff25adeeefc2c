//! Checks `dsdnd` runs on its paths before anything else touches them (issue 14 §6), so an
//! operator mistake is reported as such, naming the path and what is wrong, instead of
//! surfacing later as an obscure error of the key loader or of redb:
//!
//! - [`check_data_dir`]: the data directory is a directory (or can be created as one) and
//!   can be written (a probe file is created and removed);
//! - [`check_peers_file`]: `peers_file` is not a directory or another non-file, its parent is
//!   an existing directory, and the file (or, when missing, its directory) can be written.
//!
//! Running as root does not skip these checks where it matters: a path under a regular
//! file, a read-only file system and an immutable file (`chattr +i`) refuse root too.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

/// What is wrong with a path the daemon needs; the message names the path and, for an
/// I/O failure, the operating system's reason.
#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    /// `path` exists but is not a directory.
    #[error("{what} {} is not a directory (it is {kind})", path.display())]
    NotADirectory {
        /// `data directory`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What it is instead: `a file`, `a symbolic link`, `a socket`, ….
        kind: &'static str,
    },
    /// `path` is a directory or another non-file where a file is expected.
    #[error("{what} {} is {kind}, not a file", path.display())]
    NotAFile {
        /// `peers_file`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What it is instead: `a directory`, `a socket`, ….
        kind: &'static str,
    },
    /// An ancestor of `path` is not a directory (a file stands where a directory should).
    #[error("{what} {} cannot be used: {} is {kind}, not a directory", path.display(), ancestor.display())]
    AncestorNotADirectory {
        /// `data directory` or `peers_file`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The ancestor that is not a directory.
        ancestor: PathBuf,
        /// What the ancestor is.
        kind: &'static str,
    },
    /// The directory that should hold `path` does not exist (`peers_file` only: the daemon
    /// creates the data directory, not the directories of an absolute `peers_file`).
    #[error("{what} {}: its directory {} does not exist", path.display(), dir.display())]
    MissingDirectory {
        /// `peers_file`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The missing directory.
        dir: PathBuf,
    },
    /// `path` cannot be created or written; `reason` is the OS error.
    #[error("{what} {} is not writable: {reason}", path.display())]
    NotWritable {
        /// `data directory` or `peers_file`.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error, e.g. `Read-only file system (os error 30)`.
        reason: io::Error,
    },
}

const DATA_DIR: &str = "data directory";
const PEERS_FILE: &str = "peers_file";

/// Name of the probe file [`check_data_dir`] creates and removes in the data directory.
const PROBE: &str = ".dsdnd-write-probe";

/// What `meta` describes, in words (`a file`, `a directory`, …).
fn kind_of(meta: &fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_file() {
        "a file"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_fifo() {
        "a named pipe"
    } else if t.is_block_device() || t.is_char_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// The nearest ancestor of `path` that exists but is not a directory, with its kind.
fn non_directory_ancestor(path: &Path) -> Option<(PathBuf, &'static str)> {
    path.ancestors()
        .skip(1)
        .filter(|a| !a.as_os_str().is_empty())
        .find_map(|a| match fs::metadata(a) {
            Ok(m) if !m.is_dir() => Some((a.to_owned(), kind_of(&m))),
            _ => None,
        })
}

/// Checks the data directory `dir`: creates it (and its parents) when missing, then
/// creates and removes a probe file in it.
///
/// # Errors
/// [`PreflightError::NotADirectory`] when `dir` is a file (or another non-directory),
/// [`PreflightError::AncestorNotADirectory`] when a file stands where one of its parent
/// directories should be, [`PreflightError::NotWritable`] when it cannot be created or
/// written (a read-only file system, an immutable directory, no permission).
pub fn check_data_dir(dir: &Path) -> Result<(), PreflightError> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(m) => {
            return Err(PreflightError::NotADirectory {
                what: DATA_DIR,
                path: dir.to_owned(),
                kind: kind_of(&m),
            })
        }
        Err(_) => {
            if let Some((ancestor, kind)) = non_directory_ancestor(dir) {
                return Err(PreflightError::AncestorNotADirectory {
                    what: DATA_DIR,
                    path: dir.to_owned(),
                    ancestor,
                    kind,
                });
            }
            fs::create_dir_all(dir).map_err(|reason| PreflightError::NotWritable {
                what: DATA_DIR,
                path: dir.to_owned(),
                reason,
            })?;
        }
    }
    let probe = dir.join(PROBE);
    let written = fs::write(&probe, b"").and_then(|()| fs::remove_file(&probe));
    written.map_err(|reason| PreflightError::NotWritable {
        what: DATA_DIR,
        path: dir.to_owned(),
        reason,
    })
}

/// Checks the peer cache `path` (`peers_file` joined to the data directory): an existing
/// `path` must be a file that opens for writing (its content is not touched); a missing one
/// needs an existing, writable directory (a probe file is created and removed next to it).
///
/// # Errors
/// [`PreflightError::NotAFile`] (a directory or another non-file at `path`),
/// [`PreflightError::AncestorNotADirectory`] (a file where a parent directory should be),
/// [`PreflightError::MissingDirectory`], or [`PreflightError::NotWritable`] with the OS
/// reason.
pub fn check_peers_file(path: &Path) -> Result<(), PreflightError> {
    let not_writable = |reason| PreflightError::NotWritable {
        what: PEERS_FILE,
        path: path.to_owned(),
        reason,
    };
    match fs::metadata(path) {
        Ok(m) if m.is_file() => {
            return fs::OpenOptions::new()
                .write(true)
                .open(path)
                .map(drop)
                .map_err(not_writable);
        }
        Ok(m) => {
            return Err(PreflightError::NotAFile {
                what: PEERS_FILE,
                path: path.to_owned(),
                kind: kind_of(&m),
            })
        }
        Err(_) => {}
    }
    if let Some((ancestor, kind)) = non_directory_ancestor(path) {
        return Err(PreflightError::AncestorNotADirectory {
            what: PEERS_FILE,
            path: path.to_owned(),
            ancestor,
            kind,
        });
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !dir.is_dir() {
        return Err(PreflightError::MissingDirectory {
            what: PEERS_FILE,
            path: path.to_owned(),
            dir: dir.to_owned(),
        });
    }
    let mut probe_name = path.file_name().unwrap_or_default().to_owned();
    probe_name.push(".write-probe");
    let probe = dir.join(probe_name);
    fs::write(&probe, b"")
        .and_then(|()| fs::remove_file(&probe))
        .map_err(not_writable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_data_directory_that_is_a_file_is_named_as_such() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("data");
        fs::write(&file, "x").unwrap();
        let e = check_data_dir(&file).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "data directory {} is not a directory (it is a file)",
                file.display()
            )
        );
        let below = file.join("node");
        let e = check_data_dir(&below).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "data directory {} cannot be used: {} is a file, not a directory",
                below.display(),
                file.display()
            )
        );
    }

    #[test]
    fn a_missing_data_directory_is_created_and_leaves_no_probe() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("a/b");
        check_data_dir(&dir).unwrap();
        assert!(dir.is_dir());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 0);
        check_data_dir(&dir).unwrap();
    }

    #[test]
    fn peers_file_mistakes_are_named() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("file");
        fs::write(&file, "x").unwrap();

        let under_file = file.join("peers.dat");
        let e = check_peers_file(&under_file).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "peers_file {} cannot be used: {} is a file, not a directory",
                under_file.display(),
                file.display()
            )
        );

        let dir = tmp.path().join("peers.dat");
        fs::create_dir(&dir).unwrap();
        let e = check_peers_file(&dir).unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("peers_file {} is a directory, not a file", dir.display())
        );

        let missing = tmp.path().join("nowhere/peers.dat");
        let e = check_peers_file(&missing).unwrap_err();
        assert!(e.to_string().ends_with("nowhere does not exist"), "{e}");

        // A missing file in a writable directory, and an existing file: fine, untouched.
        let ok = tmp.path().join("ok.dat");
        check_peers_file(&ok).unwrap();
        assert!(!ok.exists());
        fs::write(&ok, "keep").unwrap();
        check_peers_file(&ok).unwrap();
        assert_eq!(fs::read_to_string(&ok).unwrap(), "keep");
        assert_eq!(fs::read_dir(tmp.path()).unwrap().count(), 3);
    }
}
