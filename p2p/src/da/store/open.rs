//! Opening the DA log file: the read-only network and schema check, the meta table, and the
//! classification of redb errors into "corrupt, move aside" and "report to the caller".

use std::fs;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use dsdn_protocols::NetworkId;
use redb::{
    Builder, CommitError, Database, DatabaseError, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, StorageError, TableError, TableHandle, TransactionError,
};

use super::{
    io_at, DaStoreError, BLOBS, CACHE_BYTES, META, NETWORK_KEY, SCHEMA_KEY, SCHEMA_VERSION,
};

/// Why an open attempt failed.
pub(super) enum Failure {
    /// The file cannot be used as a DA log of this build: move it aside.
    Corrupt(String),
    /// Anything else (I/O, lock, network or schema mismatch): report to the caller.
    Fatal(DaStoreError),
}

macro_rules! failure_from {
    ($($t:ty),*) => {$(
        impl From<$t> for Failure {
            fn from(e: $t) -> Self {
                Failure::Fatal(e.into())
            }
        }
    )*};
}
failure_from!(
    redb::DatabaseError,
    redb::TransactionError,
    redb::TableError,
    redb::StorageError,
    redb::CommitError
);

/// Opens `path` once: the database and its tip.
pub(super) fn try_open(path: &Path, network: &NetworkId) -> Result<(Database, u64), Failure> {
    let io_err = |e: io::Error| Failure::Fatal(DaStoreError::Io(io_at(path, e)));
    if path.file_name().is_none() {
        let e = io::Error::new(io::ErrorKind::InvalidInput, "DA log path has no file name");
        return Err(io_err(e));
    }
    let exists = match fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let e = io::Error::new(io::ErrorKind::InvalidInput, "DA log path is a directory");
            return Err(io_err(e));
        }
        Ok(m) if m.len() == 0 => return Err(Failure::Corrupt("zero-length file".into())),
        Ok(_) => true,
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(io_err(e)),
    };
    // redb may panic on files corrupted outside redb: such a file is treated as corrupt too.
    // Every value touched inside is dropped during unwinding.
    let attempt = catch_unwind(AssertUnwindSafe(|| -> Result<(Database, u64), Failure> {
        if exists {
            if let Some(refused) = precheck(path, network) {
                return Err(Failure::Fatal(refused));
            }
        }
        let mut builder = Builder::new();
        builder
            .set_check_integrity_on_open(true)
            .set_cache_size(CACHE_BYTES);
        let db = if exists {
            builder.open(path)
        } else {
            builder.create(path)
        }
        .map_err(|e| classify_db(e, path))?;
        let tip = check_meta(&db, path, network)?;
        Ok((db, tip))
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

/// Refuses a file of a newer schema or another network, read through a read-only redb
/// handle so that such a file is not modified at all (opening it for writing may rewrite
/// redb's header). `None` if it cannot be read that way (e.g. it needs crash recovery): the
/// normal open then decides, and still refuses both in its (uncommitted) transaction.
fn precheck(path: &Path, network: &NetworkId) -> Option<DaStoreError> {
    let db = Builder::new().open_read_only(path).ok()?;
    let txn = db.begin_read().ok()?;
    let meta = txn.open_table(META).ok()?;
    let version = read_version(meta.get(SCHEMA_KEY).ok()?.as_ref().map(|v| v.value()))?;
    if version > SCHEMA_VERSION {
        return Some(newer(path, version));
    }
    let found = read_network(meta.get(NETWORK_KEY).ok()?.as_ref().map(|v| v.value()))?;
    (&found != network).then(|| wrong_network(path, network, found))
}

fn read_version(raw: Option<&[u8]>) -> Option<u32> {
    raw.and_then(|v| <[u8; 4]>::try_from(v).ok())
        .map(u32::from_be_bytes)
}

fn read_network(raw: Option<&[u8]>) -> Option<NetworkId> {
    raw.and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|s| NetworkId::new(s).ok())
}

fn newer(path: &Path, found: u32) -> DaStoreError {
    DaStoreError::NewerSchema {
        file: path.to_owned(),
        found,
        supported: SCHEMA_VERSION,
    }
}

fn wrong_network(path: &Path, expected: &NetworkId, found: NetworkId) -> DaStoreError {
    DaStoreError::WrongNetwork {
        file: path.to_owned(),
        expected: expected.clone(),
        found,
    }
}

/// Checks (or, for a new file, writes) the meta table, creates the blobs table if absent,
/// checks that the heights are `1..=N` and returns N, all in one write transaction, which
/// is only committed when the file is ours.
fn check_meta(db: &Database, path: &Path, network: &NetworkId) -> Result<u64, Failure> {
    let txn = db.begin_write().map_err(|e| classify_txn(e, path))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| classify_storage(e, path))?
        .map(|h| h.name().to_owned())
        .collect();
    if let Some(other) = names
        .iter()
        .find(|n| n.as_str() != META.name() && n.as_str() != BLOBS.name())
    {
        return Err(Failure::Corrupt(format!("not a DA log: table {other:?}")));
    }
    if names.iter().any(|n| n == META.name()) {
        let meta = txn.open_table(META).map_err(|e| classify_table(e, path))?;
        let raw = meta
            .get(SCHEMA_KEY)
            .map_err(|e| classify_storage(e, path))?;
        let version = read_version(raw.as_ref().map(|v| v.value()))
            .ok_or_else(|| Failure::Corrupt("missing or malformed schema version".into()))?;
        if version > SCHEMA_VERSION {
            return Err(Failure::Fatal(newer(path, version)));
        }
        if version < SCHEMA_VERSION {
            return Err(Failure::Corrupt(format!(
                "unknown schema version {version}, this build reads {SCHEMA_VERSION}"
            )));
        }
        let raw = meta
            .get(NETWORK_KEY)
            .map_err(|e| classify_storage(e, path))?;
        let found = read_network(raw.as_ref().map(|v| v.value()))
            .ok_or_else(|| Failure::Corrupt("missing or malformed network id".into()))?;
        if &found != network {
            return Err(Failure::Fatal(wrong_network(path, network, found)));
        }
    } else if names.is_empty() {
        let mut meta = txn.open_table(META).map_err(|e| classify_table(e, path))?;
        meta.insert(SCHEMA_KEY, SCHEMA_VERSION.to_be_bytes().as_slice())
            .map_err(|e| classify_storage(e, path))?;
        meta.insert(NETWORK_KEY, network.as_str().as_bytes())
            .map_err(|e| classify_storage(e, path))?;
    } else {
        return Err(Failure::Corrupt(format!(
            "not a DA log: tables {names:?} but no meta table"
        )));
    }
    let tip = {
        // Created here if absent, so reads can always open it.
        let table = txn.open_table(BLOBS).map_err(|e| classify_table(e, path))?;
        let len = table.len().map_err(|e| classify_storage(e, path))?;
        let first = table.first().map_err(|e| classify_storage(e, path))?;
        let last = table.last().map_err(|e| classify_storage(e, path))?;
        let first = first.map(|(k, _)| k.value());
        let tip = last.map(|(k, _)| k.value()).unwrap_or(0);
        if len != tip || (len > 0 && first != Some(1)) {
            return Err(Failure::Corrupt(format!(
                "blob heights are not 1..={tip} ({len} blobs stored)"
            )));
        }
        tip
    };
    txn.commit().map_err(|e| classify_commit(e, path))?;
    Ok(tip)
}

fn classify_db(e: DatabaseError, path: &Path) -> Failure {
    match e {
        DatabaseError::DatabaseAlreadyOpen | DatabaseError::LockProtocolMismatch => Failure::Fatal(
            DaStoreError::Db(format!("{}: the DA log is already open", path.display())),
        ),
        DatabaseError::UpgradeRequired(v) => {
            Failure::Corrupt(format!("old redb file format {v} needs an upgrade"))
        }
        DatabaseError::RepairAborted => Failure::Corrupt("redb repair aborted".into()),
        DatabaseError::Storage(s) => classify_storage(s, path),
        other => other.into(),
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
        StorageError::Io(source) => Failure::Fatal(DaStoreError::Io(io_at(path, source))),
        other => other.into(),
    }
}

fn classify_table(e: TableError, path: &Path) -> Failure {
    match e {
        TableError::Storage(s) => classify_storage(s, path),
        e @ (TableError::TableTypeMismatch { .. }
        | TableError::TableIsMultimap(_)
        | TableError::TypeDefinitionChanged { .. }) => Failure::Corrupt(e.to_string()),
        other => other.into(),
    }
}

fn classify_txn(e: TransactionError, path: &Path) -> Failure {
    match e {
        TransactionError::Storage(s) => classify_storage(s, path),
        other => other.into(),
    }
}

fn classify_commit(e: CommitError, path: &Path) -> Failure {
    match e {
        CommitError::Storage(s) => classify_storage(s, path),
        other => other.into(),
    }
}
