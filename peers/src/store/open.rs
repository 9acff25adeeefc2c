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
//! address, plus the anchors table; 3 = the same content in the compact v3 record layout
//! (see [`crate::record`]). A schema-1 or schema-2 file is upgraded in place in the opening
//! transaction (records rewritten in the v3 layout, anchors table created if absent, meta
//! rewritten). A file of a newer
//! schema is refused with [`StoreError::NewerSchema`] and left untouched (a newer build wrote
//! it; it is the operator's call). A file redb refuses (random bytes, truncated, zero-length,
//! failed integrity check, even a panic inside redb), a redb file without our meta table, or
//! one with an unknown older schema version (0) is renamed to `<name>.corrupt-<unix-seconds>`
//! next to it and a fresh store is created. A store of another network is refused and left in
//! place.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use dsdn_protocols::NetworkId;
use libp2p_identity::PeerId;
use redb::{Database, ReadableTable, ReadableTableMetadata, TableHandle};

use super::txn::{apply, Eviction, Index, IndexEntry, WriteCtx, ANCHORS, PEERS};
use super::{StoreError, MAX_ANCHORS, MAX_ENTRIES};
use crate::record::{decode_record_versioned, encode_record, RECORD_VERSION};

/// The peers.dat schema this build reads and writes (4: compact v4 records with netgroups and
/// the cause of a ban, anchors table). Schemas 1 to 3 are upgraded in place; a newer schema
/// is refused ([`StoreError::NewerSchema`]).
pub const SCHEMA_VERSION: u32 = 4;

/// The oldest schema this build can upgrade.
const OLDEST_SCHEMA: u32 = 1;

use crate::redb_file::{self, FileFault, MetaRefusal, OpenFailure, META};

/// redb page cache, in bytes (the whole 10 000-entry file is a few MiB).
const CACHE_BYTES: usize = 16 * 1024 * 1024;

/// A successfully opened and checked database.
pub(super) struct Opened {
    pub(super) db: Database,
    pub(super) index: Index,
    /// Records deleted because they failed to decode.
    pub(super) purged: usize,
    /// The saved anchors, in order (distinct, at most [`super::MAX_ANCHORS`]; entries that
    /// are not PeerIds are skipped).
    pub(super) anchors: Vec<PeerId>,
    /// The schema the file was upgraded from, if it was.
    pub(super) upgraded_from: Option<u32>,
}

type Failure = OpenFailure<StoreError>;

fn fatal(e: impl Into<StoreError>) -> Failure {
    Failure::Fatal(e.into())
}

fn classify(e: impl Into<redb::Error>, path: &Path) -> Failure {
    OpenFailure::classify(e, path)
}

/// The error for a file another build or network wrote; the file is left untouched.
fn refusal(path: &Path, network: &NetworkId) -> impl FnOnce(MetaRefusal) -> StoreError {
    let file = path.to_owned();
    let expected = network.clone();
    move |r| match r {
        MetaRefusal::NewerSchema(found) => StoreError::NewerSchema {
            file,
            found,
            supported: SCHEMA_VERSION,
        },
        MetaRefusal::WrongNetwork(found) => StoreError::NetworkMismatch {
            file,
            expected,
            found,
        },
    }
}

impl From<FileFault> for StoreError {
    fn from(f: FileFault) -> Self {
        match f {
            FileFault::AlreadyOpen { file } => StoreError::AlreadyOpen { file },
            FileFault::Io { file, source } => StoreError::Io { file, source },
            FileFault::Db(e) => StoreError::Database(e),
            FileFault::Unusable { file, reason } => StoreError::Unusable { file, reason },
        }
    }
}

/// Opens `path`, moving it aside once if it is unusable. Returns the store and the path the
/// unusable file was moved to.
pub(super) fn open_or_recover(
    path: &Path,
    network: &NetworkId,
) -> Result<(Opened, Option<PathBuf>), StoreError> {
    redb_file::open_or_recover(path, "peers.dat", || {
        let (db, loaded) = redb_file::open_db(
            path,
            "peers.dat",
            CACHE_BYTES,
            (SCHEMA_VERSION, network),
            refusal(path, network),
            |db| check_and_load(db, path, network),
        )?;
        Ok(Opened {
            db,
            index: loaded.index,
            purged: loaded.purged,
            anchors: loaded.anchors,
            upgraded_from: loaded.upgraded_from,
        })
    })
}

/// Opens `path` once more after a failed write (redb refuses every operation on a
/// database that saw an I/O error): the same checks as at start, but nothing is moved
/// aside and what the file holds is not loaded (memory is authoritative).
///
/// # Errors
/// Any failure to open or check the file (e.g. the disk is still full).
pub(super) fn reopen(path: &Path, network: &NetworkId) -> Result<Database, StoreError> {
    let opened = redb_file::open_db(
        path,
        "peers.dat",
        CACHE_BYTES,
        (SCHEMA_VERSION, network),
        refusal(path, network),
        |db| check_and_load(db, path, network),
    );
    match opened {
        Ok((db, _)) => Ok(db),
        Err(OpenFailure::Fatal(e)) => Err(e),
        Err(OpenFailure::Corrupt(reason)) => Err(StoreError::Unusable {
            file: path.to_owned(),
            reason,
        }),
    }
}

/// What [`check_and_load`] found.
struct Loaded {
    index: Index,
    purged: usize,
    anchors: Vec<PeerId>,
    upgraded_from: Option<u32>,
}

/// Checks (or, for a new file, writes) the meta table, upgrades an older schema, loads the
/// index and deletes records that fail to decode, all in one write transaction.
fn check_and_load(db: &Database, path: &Path, network: &NetworkId) -> Result<Loaded, Failure> {
    let txn = db.begin_write().map_err(|e| classify(e, path))?;
    let names: Vec<String> = txn
        .list_tables()
        .map_err(|e| classify(e, path))?
        .map(|h| h.name().to_owned())
        .collect();
    let mut upgraded_from = None;
    if names.iter().any(|n| n == META.name()) {
        let meta = txn.open_table(META).map_err(|e| classify(e, path))?;
        let version = redb_file::check_meta(
            &meta,
            path,
            (OLDEST_SCHEMA, SCHEMA_VERSION),
            network,
            refusal(path, network),
        )?;
        drop(meta);
        if version < SCHEMA_VERSION {
            redb_file::write_meta(&txn, path, SCHEMA_VERSION, network)?;
            upgraded_from = Some(version);
        }
    } else if names.is_empty() {
        redb_file::write_meta(&txn, path, SCHEMA_VERSION, network)?;
    } else {
        return Err(Failure::Corrupt(format!(
            "not a peers.dat: tables {names:?} but no meta table"
        )));
    }

    let anchors = {
        // Created here if absent (new or schema-1 file), so the writer can always open it.
        let table = txn.open_table(ANCHORS).map_err(|e| classify(e, path))?;
        let mut anchors: Vec<PeerId> = Vec::with_capacity(MAX_ANCHORS);
        for item in table.iter().map_err(|e| classify(e, path))? {
            let (_, v) = item.map_err(|e| classify(e, path))?;
            // Garbage (a hand-edited file) is skipped.
            if let Ok(p) = PeerId::from_bytes(v.value()) {
                if anchors.len() < MAX_ANCHORS && !anchors.contains(&p) {
                    anchors.push(p);
                }
            }
        }
        anchors
    };

    let mut index = Index::new();
    let mut purged = 0;
    // Whether this transaction changed anything; if not it is aborted, not committed (no
    // fsync at a plain start).
    let mut changed = upgraded_from.is_some() || names.is_empty();
    let overlay = {
        let mut table = txn.open_table(PEERS).map_err(|e| classify(e, path))?;
        let stored = table.len().map_err(|e| classify(e, path))?;
        index.reserve(
            usize::try_from(stored)
                .unwrap_or(MAX_ENTRIES)
                .min(MAX_ENTRIES),
        );
        let mut bad: Vec<Vec<u8>> = Vec::new();
        // Records of an older layout, rewritten in the current one (schema upgrade).
        let mut old: Vec<(Vec<u8>, Vec<u8>)> = Vec::new();
        for item in table.iter().map_err(|e| classify(e, path))? {
            let (k, v) = item.map_err(|e| classify(e, path))?;
            match decode_record_versioned(k.value(), v.value(), network) {
                Ok((r, version)) => {
                    if version != RECORD_VERSION {
                        let bytes = encode_record(&r).map_err(fatal)?;
                        old.push((k.value().to_vec(), bytes));
                    }
                    index.insert(r.peer_id, IndexEntry::from(r));
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
                .map_err(|e| classify(e, path))?;
            purged += 1;
        }
        for (key, bytes) in &old {
            table
                .insert(key.as_slice(), bytes.as_slice())
                .map_err(|e| classify(e, path))?;
        }
        // A file written with a larger capacity is trimmed to ours.
        let mut ctx = WriteCtx::new(&index);
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
        let overlay = ctx.into_overlay();
        for peer in overlay.keys() {
            table
                .remove(peer.to_bytes().as_slice())
                .map_err(|e| classify(e, path))?;
        }
        changed |= !bad.is_empty() || !old.is_empty() || !overlay.is_empty();
        overlay
    };
    if changed {
        txn.commit().map_err(|e| classify(e, path))?;
    } else {
        txn.abort().map_err(|e| classify(e, path))?;
    }
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

/// Seconds since the UNIX epoch (0 if the clock is before 1970).
pub(super) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
