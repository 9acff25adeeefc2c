//! Opening the DA log file on top of [`dsdn_peers::redb_file`] (shared with peers.dat): the
//! network and schema checks, the blobs table and its heights.

use std::path::Path;

use dsdn_peers::redb_file::{self, FileFault, MetaRefusal, OpenFailure, META};
use dsdn_protocols::NetworkId;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableHandle};

use super::{io_at, restore, state, DaStoreError, BLOBS, SCHEMA_VERSION};

/// Why an open attempt failed.
pub(super) type Failure = OpenFailure<DaStoreError>;

impl From<FileFault> for DaStoreError {
    fn from(f: FileFault) -> Self {
        match f {
            FileFault::AlreadyOpen { file } => {
                DaStoreError::Db(format!("{}: the DA log is already open", file.display()))
            }
            FileFault::Io { file, source } => DaStoreError::Io(io_at(&file, source)),
            FileFault::Db(e) => DaStoreError::Db(e.to_string()),
            FileFault::Unusable { file, reason } => DaStoreError::Db(format!(
                "{}: unusable even after moving the old file aside: {reason}",
                file.display()
            )),
        }
    }
}

/// The error for a log another build or network wrote; the file is left untouched.
fn refusal(path: &Path, network: &NetworkId) -> impl FnOnce(MetaRefusal) -> DaStoreError {
    let file = path.to_owned();
    let expected = network.clone();
    move |r| match r {
        MetaRefusal::NewerSchema(found) => DaStoreError::NewerSchema {
            file,
            found,
            supported: SCHEMA_VERSION,
        },
        MetaRefusal::WrongNetwork(found) => DaStoreError::WrongNetwork {
            file,
            expected,
            found,
        },
    }
}

/// Opens `path` once with a page cache of `cache_bytes`: the database, its tip, its state
/// height and its base.
pub(super) fn try_open(
    path: &Path,
    network: &NetworkId,
    cache_bytes: usize,
) -> Result<(Database, (u64, u64, u64)), Failure> {
    redb_file::open_db_trusting_clean(
        path,
        "DA log",
        cache_bytes,
        (SCHEMA_VERSION, network),
        refusal(path, network),
        |db| check_meta(db, path, network),
    )
}

/// Checks (or, for a new file, writes) the meta table, creates the blobs table if absent,
/// checks that the heights are `1..=N` and returns N, all in one write transaction, which
/// is only committed when the file is ours. The state tables ([`state`]) are cleared (and
/// rebuilt from the blobs by the caller) when their header does not decode or claims a
/// height above the log's tip. A state-synced log ([`restore`]) is emptied when a restore
/// was interrupted or its state is gone or below its base. Returns (tip, state height,
/// base).
fn check_meta(db: &Database, path: &Path, network: &NetworkId) -> Result<(u64, u64, u64), Failure> {
    let classify = |e: redb::Error| Failure::classify(e, path);
    let txn = db.begin_write().map_err(|e| classify(e.into()))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| classify(e.into()))?
        .map(|h| h.name().to_owned())
        .collect();
    if let Some(other) = names.iter().find(|n| {
        n.as_str() != META.name()
            && n.as_str() != BLOBS.name()
            && n.as_str() != restore::LOG_BASE.name()
            && !state::is_state_table(n)
    }) {
        return Err(Failure::Corrupt(format!("not a DA log: table {other:?}")));
    }
    if names.iter().any(|n| n == META.name()) {
        let found = {
            let meta = txn.open_table(META).map_err(|e| classify(e.into()))?;
            // Schema 1 (before the state tables) is upgraded in place: the state is
            // rebuilt from its blobs at start.
            let bounds = (1, SCHEMA_VERSION);
            redb_file::check_meta(&meta, path, bounds, network, refusal(path, network))?
        };
        if found < SCHEMA_VERSION {
            redb_file::write_meta(&txn, path, SCHEMA_VERSION, network)?;
            // Schema 2 had no preimages, schema 3 keyed tree nodes by borsh `NodeKey`
            // (version little-endian first) and kept the preimages in a table of their
            // own: the state is rebuilt from the blobs (a state-synced log, which cannot
            // be, is emptied below: its state is then below its base).
            state::clear(&txn).map_err(|e| Failure::Corrupt(e.to_string()))?;
        }
    } else if names.is_empty() {
        redb_file::write_meta(&txn, path, SCHEMA_VERSION, network)?;
    } else {
        return Err(Failure::Corrupt(format!(
            "not a DA log: tables {names:?} but no meta table"
        )));
    }
    let corrupt = |e: DaStoreError| Failure::Corrupt(e.to_string());
    let (base_header, restoring) = restore::read_base(&txn).map_err(corrupt)?;
    if restoring {
        tracing::warn!(
            file = %path.display(),
            "a DA state restore was interrupted: the log is emptied, the restore starts again"
        );
        restore::wipe(&txn).map_err(corrupt)?;
    }
    let base = if restoring {
        0
    } else {
        base_header.map_or(0, |h| h.height)
    };
    let tip = {
        // Created here if absent, so reads can always open it.
        let table = txn.open_table(BLOBS).map_err(|e| classify(e.into()))?;
        let len = table.len().map_err(|e| classify(e.into()))?;
        let first = table.first().map_err(|e| classify(e.into()))?;
        let last = table.last().map_err(|e| classify(e.into()))?;
        let first = first.map(|(k, _)| k.value());
        let tip = last.map(|(k, _)| k.value()).unwrap_or(base);
        if len != tip.saturating_sub(base) || (len > 0 && first != Some(base + 1)) {
            return Err(Failure::Corrupt(format!(
                "blob heights are not {}..={tip} ({len} blobs stored)",
                base + 1
            )));
        }
        tip
    };
    let state_tip = match state::stored_height(&txn) {
        Ok(h) if base > 0 && h < base => {
            tracing::error!(
                file = %path.display(),
                base,
                state = h,
                "the DA log was restored from a checkpoint but its state is gone: the log is \
                 emptied (sync again)"
            );
            restore::wipe(&txn).map_err(corrupt)?;
            txn.commit().map_err(|e| classify(e.into()))?;
            return Ok((0, 0, 0));
        }
        Ok(h) if h <= tip => h,
        other => {
            tracing::error!(
                file = %path.display(),
                state = ?other,
                log_tip = tip,
                "the DA state tables are corrupt or ahead of the log: cleared, rebuilt from the log"
            );
            if base > 0 {
                // A state-synced log cannot be rebuilt from its blobs.
                restore::wipe(&txn).map_err(corrupt)?;
                txn.commit().map_err(|e| classify(e.into()))?;
                return Ok((0, 0, 0));
            }
            state::clear(&txn).map_err(|e| Failure::Corrupt(e.to_string()))?;
            0
        }
    };
    txn.commit().map_err(|e| classify(e.into()))?;
    Ok((tip, state_tip, base))
}
