//! Opening peers.dat: schema and network checks, schema upgrades, and moving unreadable
//! files aside.
//!
//! Spec: 28.1.B §4, 28.1.C §6. The file is a redb database with three tables:
//!
//! * `meta` (`&str → &[u8]`): `schema_version` = [`SCHEMA_VERSION`] as 4 big-endian bytes,
//!   `network_id` = the network id as UTF-8;
//! * `peers` (`&[u8] → &[u8]`): PeerId bytes → record encoded by [`crate::record`];
//! * `anchors` (`u32 → &[u8]`, since schema 2): position → PeerId bytes of a saved anchor.
//!
//! Schema history: 1 = records without netgroups; 2 = records with the netgroup of each
//! address, plus the anchors table. A schema-1 file is upgraded in place in the opening
//! transaction (records rewritten, anchors table created, meta rewritten). A file of a newer
//! schema is refused with [`StoreError::NewerSchema`] and left untouched (a newer build wrote
//! it; it is the operator's call). A file redb refuses (random bytes, truncated, zero-length,
//! failed integrity check, even a panic inside redb), a redb file without our meta table, or
//! one with an unknown older schema version (0) is renamed to `<name>.corrupt-<unix-seconds>`
//! next to it and a fresh store is created. A store of another network is refused and left in
//! place.

use std::fs;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use dsdn_protocols::NetworkId;
use redb::{
    Builder, CommitError, Database, DatabaseError, ReadableDatabase, ReadableTable, StorageError,
    TableDefinition, TableError, TableHandle, TransactionError,
};

use super::txn::{apply, Eviction, Index, IndexEntry, WriteCtx, ANCHORS, PEERS};
use super::{StoreError, MAX_ENTRIES};
use crate::record::{decode_record_versioned, encode_record, RECORD_VERSION};

/// The peers.dat schema this build reads and writes (2: records with netgroups, anchors
/// table). Schema 1 is upgraded in place; a newer schema is refused
/// ([`StoreError::NewerSchema`]).
pub const SCHEMA_VERSION: u32 = 2;

/// The oldest schema this build can upgrade.
const OLDEST_SCHEMA: u32 = 1;

/// meta table: key → value bytes.
pub(super) const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
pub(super) const SCHEMA_KEY: &str = "schema_version";
pub(super) const NETWORK_KEY: &str = "network_id";

/// redb page cache, in bytes (the whole 10 000-entry file is a few MiB).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A successfully opened and checked database.
pub(super) struct Opened {
    pub(super) db: Database,
    pub(super) index: Index,
    /// Records deleted because they failed to decode.
    pub(super) purged: usize,
    /// Number of saved anchors.
    pub(super) anchors: usize,
    /// The schema the file was upgraded from, if it was.
    pub(super) upgraded_from: Option<u32>,
}

/// Why an open attempt failed.
enum Failure {
    /// The file cannot be used as a peers.dat of this build: move it aside.
    Corrupt(String),
    /// Anything else (I/O, lock, network mismatch): report to the caller.
    Fatal(StoreError),
}

fn fatal(e: impl Into<StoreError>) -> Failure {
    Failure::Fatal(e.into())
}

/// Opens `path`, moving it aside once if it is unusable. Returns the store and the path the
/// unusable file was moved to.
pub(super) fn open_or_recover(
    path: &Path,
    network: &NetworkId,
) -> Result<(Opened, Option<PathBuf>), StoreError> {
    let reason = match try_open(path, network) {
        Ok(opened) => return Ok((opened, None)),
        Err(Failure::Fatal(e)) => return Err(e),
        Err(Failure::Corrupt(reason)) => reason,
    };
    let target = move_aside(path, unix_now())?;
    tracing::warn!(
        file = %path.display(),
        moved_to = %target.display(),
        %reason,
        "peers.dat is unusable; moved it aside and starting with an empty peer store"
    );
    match try_open(path, network) {
        Ok(opened) => Ok((opened, Some(target))),
        Err(Failure::Fatal(e)) => Err(e),
        Err(Failure::Corrupt(reason)) => Err(StoreError::Unusable {
            file: path.to_owned(),
            reason,
        }),
    }
}

fn try_open(path: &Path, network: &NetworkId) -> Result<Opened, Failure> {
    let io_err = |source: io::Error| {
        Failure::Fatal(StoreError::Io {
            file: path.to_owned(),
            source,
        })
    };
    if path.file_name().is_none() {
        return Err(io_err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "peers.dat path has no file name",
        )));
    }
    let exists = match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            return Err(io_err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "peers.dat path is a directory",
            )))
        }
        Ok(m) if m.len() == 0 => return Err(Failure::Corrupt("zero-length file".into())),
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(e)),
    };
    // redb may panic (debug assertions) on files corrupted outside redb: such a file is
    // treated as corrupt too. Every value touched inside is dropped during unwinding.
    let attempt = catch_unwind(AssertUnwindSafe(|| -> Result<Opened, Failure> {
        let mut builder = Builder::new();
        builder
            .set_check_integrity_on_open(true)
            .set_cache_size(CACHE_BYTES);
        if exists {
            if let Some(found) = newer_schema(path) {
                return Err(Failure::Fatal(StoreError::NewerSchema {
                    file: path.to_owned(),
                    found,
                    supported: SCHEMA_VERSION,
                }));
            }
        }
        let db = if exists {
            builder.open(path)
        } else {
            builder.create(path)
        }
        .map_err(|e| classify_db(e, path))?;
        let loaded = check_and_load(&db, path, network)?;
        Ok(Opened {
            db,
            index: loaded.index,
            purged: loaded.purged,
            anchors: loaded.anchors,
            upgraded_from: loaded.upgraded_from,
        })
    }));
    match attempt {
        Ok(result) => result,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            Err(Failure::Corrupt(format!("redb panicked: {msg}")))
        }
    }
}

/// The schema version of an existing file if it is newer than [`SCHEMA_VERSION`], read
/// through a read-only redb handle so that such a file is not modified at all (opening it for
/// writing may rewrite redb's header). `None` if it cannot be read that way (e.g. it needs
/// crash recovery): the normal open then decides, and still refuses a newer schema.
fn newer_schema(path: &Path) -> Option<u32> {
    let db = Builder::new().open_read_only(path).ok()?;
    let txn = db.begin_read().ok()?;
    let meta = txn.open_table(META).ok()?;
    let raw = meta.get(SCHEMA_KEY).ok()??;
    let version = u32::from_be_bytes(<[u8; 4]>::try_from(raw.value()).ok()?);
    (version > SCHEMA_VERSION).then_some(version)
}

/// What [`check_and_load`] found.
struct Loaded {
    index: Index,
    purged: usize,
    anchors: usize,
    upgraded_from: Option<u32>,
}

/// Checks (or, for a new file, writes) the meta table, upgrades an older schema, loads the
/// index and deletes records that fail to decode, all in one write transaction.
fn check_and_load(db: &Database, path: &Path, network: &NetworkId) -> Result<Loaded, Failure> {
    let txn = db.begin_write().map_err(|e| classify_txn(e, path))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| classify_storage(e, path))?
        .map(|h| h.name().to_owned())
        .collect();
    let mut upgraded_from = None;
    if names.iter().any(|n| n == META.name()) {
        let mut meta = txn.open_table(META).map_err(|e| classify_table(e, path))?;
        let version = meta
            .get(SCHEMA_KEY)
            .map_err(|e| classify_storage(e, path))?;
        let version = version
            .and_then(|v| <[u8; 4]>::try_from(v.value()).ok())
            .map(u32::from_be_bytes)
            .ok_or_else(|| Failure::Corrupt("missing or malformed schema version".into()))?;
        if version > SCHEMA_VERSION {
            return Err(Failure::Fatal(StoreError::NewerSchema {
                file: path.to_owned(),
                found: version,
                supported: SCHEMA_VERSION,
            }));
        }
        if version < OLDEST_SCHEMA {
            return Err(Failure::Corrupt(format!(
                "unknown schema version {version}, this build reads {OLDEST_SCHEMA} to \
                 {SCHEMA_VERSION}"
            )));
        }
        let found = meta
            .get(NETWORK_KEY)
            .map_err(|e| classify_storage(e, path))?;
        let found = found
            .and_then(|v| std::str::from_utf8(v.value()).ok().map(NetworkId::new))
            .and_then(Result::ok)
            .ok_or_else(|| Failure::Corrupt("missing or malformed network id".into()))?;
        if &found != network {
            return Err(Failure::Fatal(StoreError::NetworkMismatch {
                file: path.to_owned(),
                expected: network.clone(),
                found,
            }));
        }
        if version < SCHEMA_VERSION {
            meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())
                .map_err(|e| classify_storage(e, path))?;
            upgraded_from = Some(version);
        }
    } else if names.is_empty() {
        let mut meta = txn.open_table(META).map_err(|e| classify_table(e, path))?;
        meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())
            .map_err(|e| classify_storage(e, path))?;
        meta.insert(NETWORK_KEY, network.as_str().as_bytes())
            .map_err(|e| classify_storage(e, path))?;
    } else {
        return Err(Failure::Corrupt(format!(
            "not a peers.dat: tables {names:?} but no meta table"
        )));
    }

    let anchors = {
        // Created here if absent (new or schema-1 file), so reads can always open it.
        let table = txn
            .open_table(ANCHORS)
            .map_err(|e| classify_table(e, path))?;
        let n = redb::ReadableTableMetadata::len(&table).map_err(|e| classify_storage(e, path))?;
        usize::try_from(n).unwrap_or(usize::MAX)
    };

    let mut index = Index::new();
    let mut purged = 0;
    let overlay = {
        let mut table = txn.open_table(PEERS).map_err(|e| classify_table(e, path))?;
        let mut bad: Vec<Vec<u8>> = Vec::new();
        // Records of an older layout, rewritten in the current one (schema upgrade).
        let mut old: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for item in table.iter().map_err(|e| classify_storage(e, path))? {
            let (k, v) = item.map_err(|e| classify_storage(e, path))?;
            match decode_record_versioned(k.value(), v.value(), network) {
                Ok((r, version)) => {
                    if version != RECORD_VERSION {
                        let bytes = encode_record(&r).map_err(fatal)?;
                        old.push((k.value().to_vec(), bytes));
                    }
                    index.insert(r.peer_id, IndexEntry::from(&r));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "deleting undecodable peers.dat record");
                    bad.push(k.value().to_vec());
                }
            }
        }
        for key in &bad {
            table
                .remove(key.as_slice())
                .map_err(|e| classify_storage(e, path))?;
            purged += 1;
        }
        for (key, bytes) in &old {
            table
                .insert(key.as_slice(), bytes.as_slice())
                .map_err(|e| classify_storage(e, path))?;
        }
        // A file written with a larger capacity is trimmed to ours.
        let mut ctx = WriteCtx::new(table, &index, network);
        let now = unix_now();
        while ctx.len() > MAX_ENTRIES {
            if ctx
                .evict(Eviction::Any, now)
                .map_err(Failure::Fatal)?
                .is_none()
            {
                break;
            }
        }
        ctx.into_overlay()
    };
    txn.commit().map_err(|e| classify_commit(e, path))?;
    apply(&mut index, overlay);
    if let Some(from) = upgraded_from {
        tracing::info!(
            file = %path.display(),
            from,
            to = SCHEMA_VERSION,
            "upgraded peers.dat schema in place"
        );
    }
    Ok(Loaded {
        index,
        purged,
        anchors,
        upgraded_from,
    })
}

/// Renames `path` to `<name>.corrupt-<now>` (with `.1`, `.2`, … appended if taken).
pub(super) fn move_aside(path: &Path, now: u64) -> Result<PathBuf, StoreError> {
    crate::files::move_aside_at(path, now).map_err(|source| StoreError::Io {
        file: path.to_owned(),
        source,
    })
}

/// Seconds since the UNIX epoch (0 if the clock is before 1970).
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn classify_db(e: DatabaseError, path: &Path) -> Failure {
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => {
            Failure::Fatal(StoreError::AlreadyOpen {
                file: path.to_owned(),
            })
        }
        DatabaseError::UpgradeRequired(v) => {
            Failure::Corrupt(format!("old redb file format {v} needs an upgrade"))
        }
        DatabaseError::RepairAborted => Failure::Corrupt("redb repair aborted".into()),
        DatabaseError::Storage(s) => classify_storage(s, path),
        other => fatal(other),
    }
}

fn classify_storage(e: StorageError, path: &Path) -> Failure {
    match e {
        StorageError::Corrupted(m) => Failure::Corrupt(m),
        StorageError::Io(io)
            if matches!(
                io.kind(),
                io::ErrorKind::UnexpectedEof | io::ErrorKind::InvalidData
            ) =>
        {
            Failure::Corrupt(io.to_string())
        }
        StorageError::Io(source) => Failure::Fatal(StoreError::Io {
            file: path.to_owned(),
            source,
        }),
        other => fatal(other),
    }
}

fn classify_table(e: TableError, path: &Path) -> Failure {
    match e {
        TableError::Storage(s) => classify_storage(s, path),
        e @ (TableError::TableTypeMismatch { .. }
        | TableError::TableIsMultimap(_)
        | TableError::TypeDefinitionChanged { .. }) => Failure::Corrupt(e.to_string()),
        other => fatal(other),
    }
}

fn classify_txn(e: TransactionError, path: &Path) -> Failure {
    match e {
        TransactionError::Storage(s) => classify_storage(s, path),
        other => fatal(other),
    }
}

fn classify_commit(e: CommitError, path: &Path) -> Failure {
    match e {
        CommitError::Storage(s) => classify_storage(s, path),
        other => fatal(other),
    }
}
