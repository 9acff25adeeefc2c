//! Opening a redb file of the data directory, shared by peers.dat and the DA log.
//!
//! Both files are redb databases with a `meta` table (`&str → &[u8]`) holding
//! [`SCHEMA_KEY`] (the schema version, 4 big-endian bytes) and [`NETWORK_KEY`] (the network
//! id, UTF-8). This module does what both need before their own tables are read:
//!
//! * [`open_db`]: the path checks (no file name, a directory, a zero-length file), a
//!   read-only look at the meta table of an existing file ([`peek_meta`]) so that a file of
//!   another network or a newer schema is refused without being touched, the open with
//!   redb's integrity check, and a panic inside redb caught and treated as corruption;
//! * [`OpenFailure::classify`]: redb's errors sorted into "corrupt: move the file aside" and
//!   "report to the caller" ([`FileFault`]);
//! * [`check_meta`] / [`write_meta`]: the meta table inside the opening write transaction;
//! * [`open_or_recover`]: one retry after moving an unusable file aside
//!   ([`crate::files::move_aside_at`]).
//!
//! Spec: 28.1.C §6 ("a corrupt file is moved aside, reported, and rebuilt").

use std::fs;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use dsdn_protocols::NetworkId;
use redb::{
    Builder, Database, ReadableDatabase, ReadableTable, Table, TableDefinition, WriteTransaction,
};

/// The meta table: key → value bytes.
pub const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Meta key of the schema version (`u32`, 4 big-endian bytes).
pub const SCHEMA_KEY: &str = "schema_version";
/// Meta key of the network id (UTF-8).
pub const NETWORK_KEY: &str = "network_id";

/// A problem that is not corruption, for the caller to wrap in its own error type.
#[derive(Debug)]
pub enum FileFault {
    /// The file is open in another process or handle (redb's lock).
    AlreadyOpen {
        /// The database path.
        file: PathBuf,
    },
    /// A file-system operation failed (permissions, a directory in the way, the rename when
    /// moving a file aside, …).
    Io {
        /// The database path.
        file: PathBuf,
        /// The original error.
        source: io::Error,
    },
    /// Any other redb error.
    Db(redb::Error),
    /// Even a fresh file was unusable after the old one was moved aside.
    Unusable {
        /// The database path.
        file: PathBuf,
        /// Why the fresh file is unusable.
        reason: String,
    },
}

/// Why an attempt to open a file failed.
#[derive(Debug)]
pub enum OpenFailure<E> {
    /// The file cannot be used by this build (unreadable, failed integrity check, foreign
    /// tables, malformed meta): move it aside and start afresh. The reason is for the log.
    Corrupt(String),
    /// Anything else (I/O, lock, network or schema mismatch): report it and leave the file.
    Fatal(E),
}

impl<E: From<FileFault>> OpenFailure<E> {
    /// A fatal [`FileFault`].
    pub fn fault(fault: FileFault) -> Self {
        OpenFailure::Fatal(fault.into())
    }

    /// Sorts a redb error met while opening `path`: corruption (a corrupted page, a short or
    /// invalid read, an old file format, an aborted repair, a table of another type) is
    /// [`OpenFailure::Corrupt`]; the lock held elsewhere, other I/O errors and the rest are
    /// [`OpenFailure::Fatal`].
    pub fn classify(e: impl Into<redb::Error>, path: &Path) -> Self {
        use redb::Error as R;
        let file = path.to_owned();
        match e.into() {
            R::DatabaseAlreadyOpen | R::LockProtocolMismatch => {
                Self::fault(FileFault::AlreadyOpen { file })
            }
            R::UpgradeRequired(v) => {
                OpenFailure::Corrupt(format!("old redb file format {v} needs an upgrade"))
            }
            R::RepairAborted => OpenFailure::Corrupt("redb repair aborted".into()),
            R::Corrupted(m) => OpenFailure::Corrupt(m),
            R::Io(io)
                if matches!(
                    io.kind(),
                    io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
                ) =>
            {
                OpenFailure::Corrupt(io.to_string())
            }
            R::Io(source) => Self::fault(FileFault::Io { file, source }),
            e @ (R::TableTypeMismatch { .. }
            | R::TableIsMultimap(_)
            | R::TypeDefinitionChanged { .. }) => OpenFailure::Corrupt(e.to_string()),
            other => Self::fault(FileFault::Db(other)),
        }
    }
}

/// What a file's meta table says that the caller must refuse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MetaRefusal {
    /// Written by a newer build: schema version above the caller's.
    NewerSchema(u32),
    /// The file belongs to another network.
    WrongNetwork(NetworkId),
}

/// Opens `path` (creating it if absent) with redb's integrity check and `cache_bytes` of
/// page cache, then runs `check` on it; `what` names the file in messages ("peers.dat").
///
/// An existing file is first read through a read-only handle: if its meta table records a
/// schema above `schema` or another network, the file is refused (`refuse`) without being
/// opened for writing (which may rewrite redb's header). A file that cannot be read that way
/// (e.g. it needs crash recovery) is left to the normal open and to `check`. A panic inside
/// redb (possible on files corrupted outside redb) is [`OpenFailure::Corrupt`].
///
/// # Errors
/// [`OpenFailure::Corrupt`] for a zero-length or unreadable file; [`FileFault::Io`] for a
/// path without a file name, a directory or a failed `stat`; `refuse`'s error; what
/// [`OpenFailure::classify`] and `check` return.
pub fn open_db<T, E: From<FileFault>>(
    path: &Path,
    what: &str,
    cache_bytes: usize,
    expected: (u32, &NetworkId),
    refuse: impl FnOnce(MetaRefusal) -> E,
    check: impl FnOnce(&Database) -> Result<T, OpenFailure<E>>,
) -> Result<(Database, T), OpenFailure<E>> {
    open_db_with(path, what, cache_bytes, true, expected, refuse, check)
}

/// [`open_db`] without redb's integrity check of a file that was closed cleanly, for files
/// too large to read whole at every start (the check reads every page: seconds per GB).
/// redb still recovers a file that was not closed cleanly (a crash), which reads the whole
/// file once; a file damaged outside redb (bit flips, truncation by another program) is
/// only found where redb notices it: at the open (a bad header, a short file) or by the
/// caller's `check`.
///
/// # Errors
/// As [`open_db`].
pub fn open_db_trusting_clean<T, E: From<FileFault>>(
    path: &Path,
    what: &str,
    cache_bytes: usize,
    expected: (u32, &NetworkId),
    refuse: impl FnOnce(MetaRefusal) -> E,
    check: impl FnOnce(&Database) -> Result<T, OpenFailure<E>>,
) -> Result<(Database, T), OpenFailure<E>> {
    open_db_with(path, what, cache_bytes, false, expected, refuse, check)
}

fn open_db_with<T, E: From<FileFault>>(
    path: &Path,
    what: &str,
    cache_bytes: usize,
    check_integrity: bool,
    expected: (u32, &NetworkId),
    refuse: impl FnOnce(MetaRefusal) -> E,
    check: impl FnOnce(&Database) -> Result<T, OpenFailure<E>>,
) -> Result<(Database, T), OpenFailure<E>> {
    let io_err = |kind: io::ErrorKind, msg: String| {
        OpenFailure::fault(FileFault::Io {
            file: path.to_owned(),
            source: io::Error::new(kind, msg),
        })
    };
    if path.file_name().is_none() {
        let msg = format!("{what} path has no file name");
        return Err(io_err(io::ErrorKind::InvalidInput, msg));
    }
    let exists = match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let msg = format!("{what} path is a directory");
            return Err(io_err(io::ErrorKind::InvalidInput, msg));
        }
        Ok(m) if m.len() == 0 => return Err(OpenFailure::Corrupt("zero-length file".into())),
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(e.kind(), e.to_string())),
    };
    // Every value touched inside is dropped during unwinding.
    let attempt = catch_unwind(AssertUnwindSafe(|| {
        if exists {
            if let Some(refusal) = peek_meta(path, expected.0, expected.1) {
                return Err(OpenFailure::Fatal(refuse(refusal)));
            }
        }
        let mut builder = Builder::new();
        builder
            .set_check_integrity_on_open(check_integrity)
            .set_cache_size(cache_bytes);
        let db = if exists {
            builder.open(path)
        } else {
            builder.create(path)
        }
        .map_err(|e| OpenFailure::classify(e, path))?;
        let checked = check(&db)?;
        Ok((db, checked))
    }));
    attempt.unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(OpenFailure::Corrupt(format!("redb panicked: {msg}")))
    })
}

/// The refusal a read-only look at `path`'s meta table finds, if any: a schema above
/// `schema` or a network other than `network`. `None` if the file is acceptable or cannot be
/// read that way.
pub fn peek_meta(path: &Path, schema: u32, network: &NetworkId) -> Option<MetaRefusal> {
    let db = Builder::new().open_read_only(path).ok()?;
    let txn = db.begin_read().ok()?;
    let meta = txn.open_table(META).ok()?;
    let version = read_version(meta.get(SCHEMA_KEY).ok()?.as_ref().map(|v| v.value()))?;
    if version > schema {
        return Some(MetaRefusal::NewerSchema(version));
    }
    let found = read_network(meta.get(NETWORK_KEY).ok()?.as_ref().map(|v| v.value()))?;
    (&found != network).then_some(MetaRefusal::WrongNetwork(found))
}

/// Checks an existing meta table inside the opening transaction and returns the schema
/// version it records, which is within `oldest..=schema`.
///
/// # Errors
/// [`OpenFailure::Corrupt`] for a missing or malformed version or network id, or a version
/// below `oldest`; `refuse`'s error for a newer schema or another network.
pub fn check_meta<E: From<FileFault>>(
    meta: &Table<&str, &[u8]>,
    path: &Path,
    (oldest, schema): (u32, u32),
    network: &NetworkId,
    refuse: impl FnOnce(MetaRefusal) -> E,
) -> Result<u32, OpenFailure<E>> {
    let raw = meta
        .get(SCHEMA_KEY)
        .map_err(|e| OpenFailure::classify(e, path))?;
    let version = read_version(raw.as_ref().map(|v| v.value()))
        .ok_or_else(|| OpenFailure::Corrupt("missing or malformed schema version".into()))?;
    if version > schema {
        return Err(OpenFailure::Fatal(refuse(MetaRefusal::NewerSchema(
            version,
        ))));
    }
    if version < oldest {
        return Err(OpenFailure::Corrupt(format!(
            "unknown schema version {version}, this build reads {oldest} to {schema}"
        )));
    }
    let raw = meta
        .get(NETWORK_KEY)
        .map_err(|e| OpenFailure::classify(e, path))?;
    let found = read_network(raw.as_ref().map(|v| v.value()))
        .ok_or_else(|| OpenFailure::Corrupt("missing or malformed network id".into()))?;
    if &found != network {
        return Err(OpenFailure::Fatal(refuse(MetaRefusal::WrongNetwork(found))));
    }
    Ok(version)
}

/// Writes the meta table of a new file (or rewrites the version after an upgrade).
///
/// # Errors
/// What [`OpenFailure::classify`] makes of redb's error.
pub fn write_meta<E: From<FileFault>>(
    txn: &WriteTransaction,
    path: &Path,
    schema: u32,
    network: &NetworkId,
) -> Result<(), OpenFailure<E>> {
    let classify = |e: redb::Error| OpenFailure::classify(e, path);
    let mut meta = txn.open_table(META).map_err(|e| classify(e.into()))?;
    meta.insert(SCHEMA_KEY, schema.to_be_bytes().as_slice())
        .map_err(|e| classify(e.into()))?;
    meta.insert(NETWORK_KEY, network.as_str().as_bytes())
        .map_err(|e| classify(e.into()))?;
    Ok(())
}

/// Opens `path` with `try_open`; if the file is unusable ([`OpenFailure::Corrupt`]), moves it
/// aside as `<name>.corrupt-<unix-seconds>`, logs a warning naming `what` and the reason, and
/// tries once more on a fresh file. Returns the opened value and where the old file went.
///
/// # Errors
/// `try_open`'s fatal error; [`FileFault::Io`] if the move fails; [`FileFault::Unusable`] if
/// even the fresh file is unusable.
pub fn open_or_recover<T, E: From<FileFault>>(
    path: &Path,
    what: &str,
    mut try_open: impl FnMut() -> Result<T, OpenFailure<E>>,
) -> Result<(T, Option<PathBuf>), E> {
    let reason = match try_open() {
        Ok(opened) => return Ok((opened, None)),
        Err(OpenFailure::Fatal(e)) => return Err(e),
        Err(OpenFailure::Corrupt(reason)) => reason,
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let target = crate::files::move_aside_at(path, now).map_err(|source| FileFault::Io {
        file: path.to_owned(),
        source,
    })?;
    tracing::warn!(
        file = %path.display(),
        moved_to = %target.display(),
        %reason,
        "{what} is unusable; moved it aside and starting afresh"
    );
    match try_open() {
        Ok(opened) => Ok((opened, Some(target))),
        Err(OpenFailure::Fatal(e)) => Err(e),
        Err(OpenFailure::Corrupt(reason)) => Err(FileFault::Unusable {
            file: path.to_owned(),
            reason,
        }
        .into()),
    }
}

fn read_version(raw: Option<&[u8]>) -> Option<u32> {
    raw.and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(u32::from_be_bytes)
}

fn read_network(raw: Option<&[u8]>) -> Option<NetworkId> {
    raw.and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| NetworkId::new(s).ok())
}
