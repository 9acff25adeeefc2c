//! Bootstrap sources added by the operator at run time, kept across restarts (28.1.C §7).
//!
//! `dsdn-agent peers add IP:PORT|MULTIADDR` and `dsdn-agent peers add-seed DOMAIN` add a
//! static peer or a DNS seed to the running daemon. So that such an addition survives a
//! restart without dsdnd rewriting the operator's seeds.toml, the additions are stored in
//! their own small TOML file, by default `<data dir>/added-peers.toml` ([`ADDED_FILE`]):
//!
//! ```toml
//! # (header comment: written by dsdnd)
//! static_peers = ["203.0.113.50:30303", "/ip4/198.51.100.10/tcp/30303"]
//! dns_seeds = ["seed4.dsdn.network"]
//! ```
//!
//! At start the daemon loads it with [`AddedSources::load`] and appends its entries to the
//! seeds.toml lists with [`AddedSources::merge_into`]. A file that cannot be parsed is moved
//! aside as `<name>.corrupt-<unix-seconds>` and treated as empty, like peers.dat, so a
//! damaged file never stops the node. [`AddedSources::save`] replaces the file atomically.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use crate::config::{BootstrapConfig, DnsSeed, StaticPeer};

/// Most static peers, and separately most DNS seeds, the operator may add (256 each).
pub const MAX_ADDED: usize = 256;

/// Default file name of the additions, relative to the data directory.
pub const ADDED_FILE: &str = "added-peers.toml";

/// Header written at the top of the file by [`AddedSources::save`].
const HEADER: &str = "\
# added-peers.toml: bootstrap sources added at run time with `dsdn-agent peers add` and
# `dsdn-agent peers add-seed` (Tahap 28.1.C section 7). Used in addition to seeds.toml.
#
# Written by dsdnd: changes made here while dsdnd runs are overwritten. Put permanent
# entries in seeds.toml instead. An unreadable file is moved aside as
# <name>.corrupt-<unix-seconds> and the node starts without these additions.
";

/// Which list an [`AddedError::TooMany`] refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AddedKind {
    /// [`AddedSources::static_peers`].
    StaticPeer,
    /// [`AddedSources::dns_seeds`].
    DnsSeed,
}

impl std::fmt::Display for AddedKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AddedKind::StaticPeer => "static peers",
            AddedKind::DnsSeed => "DNS seeds",
        })
    }
}

/// Why the operator additions could not be changed, read or written.
#[derive(Debug, thiserror::Error)]
pub enum AddedError {
    /// The list already holds [`MAX_ADDED`] entries; displayed as
    /// `too many added static peers (at most 256)`.
    #[error("too many added {kind} (at most {max})")]
    TooMany {
        /// The full list.
        kind: AddedKind,
        /// The limit, [`MAX_ADDED`].
        max: usize,
    },
    /// Reading, writing, syncing or renaming `path` failed (a missing file on load is not an
    /// error).
    #[error("{}: {source}", path.display())]
    Io {
        /// The file the operation was about.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// The additions could not be encoded as TOML (not expected: every entry is a string).
    #[error("cannot encode the added peers as TOML: {0}")]
    Encode(String),
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> AddedError + '_ {
    move |source| AddedError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Static peers and DNS seeds added by the operator (28.1.C §7), in the order added, without
/// duplicates, at most [`MAX_ADDED`] of each.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AddedSources {
    /// Peers added with `dsdn-agent peers add` (same syntax as `bootstrap.static_peers`).
    pub static_peers: Vec<StaticPeer>,
    /// Seeds added with `dsdn-agent peers add-seed` (same syntax as `bootstrap.dns_seeds`).
    pub dns_seeds: Vec<DnsSeed>,
}

impl AddedSources {
    /// The default location of the file: `data_dir/added-peers.toml`.
    pub fn default_path(data_dir: &Path) -> PathBuf {
        data_dir.join(ADDED_FILE)
    }

    /// Reads the additions from `path`.
    ///
    /// Returns the additions and, when the file was unusable, where it was moved. A missing
    /// file gives empty additions. A file that is not UTF-8 TOML of this shape (unknown keys,
    /// an invalid static peer or DNS seed, more than [`MAX_ADDED`] entries in a list) is
    /// renamed to `<name>.corrupt-<unix-seconds>` (`.1`, `.2`, … appended if that name is
    /// taken), logged at warn level with the reason, and empty additions are returned with
    /// the new path. Duplicate entries in a valid file are dropped silently.
    ///
    /// # Errors
    /// [`AddedError::Io`] when the file exists but cannot be read (permissions, a directory),
    /// or when an unusable file cannot be moved aside.
    pub fn load(path: &Path) -> Result<(AddedSources, Option<PathBuf>), AddedError> {
        let bytes = match fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Ok((AddedSources::default(), None))
            }
            Err(e) => return Err(io_err(path)(e)),
        };
        match Self::parse(bytes) {
            Ok(sources) => Ok((sources, None)),
            Err(reason) => {
                let aside = move_aside(path, unix_now()).map_err(io_err(path))?;
                tracing::warn!(
                    path = %path.display(),
                    moved_to = %aside.display(),
                    %reason,
                    "added peers file is unusable: moved aside, starting without these additions"
                );
                Ok((AddedSources::default(), Some(aside)))
            }
        }
    }

    /// Parses and checks the file contents; the error is a human-readable reason.
    fn parse(bytes: Vec<u8>) -> Result<AddedSources, String> {
        let text = String::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
        let raw: AddedSources =
            toml::from_str(&text).map_err(|e| e.to_string().trim_end().to_owned())?;
        let mut sources = AddedSources::default();
        if raw.static_peers.len() > MAX_ADDED || raw.dns_seeds.len() > MAX_ADDED {
            return Err(format!(
                "more than {MAX_ADDED} entries in a list ({} static peers, {} DNS seeds)",
                raw.static_peers.len(),
                raw.dns_seeds.len()
            ));
        }
        for peer in raw.static_peers {
            push_new(&mut sources.static_peers, peer);
        }
        for seed in raw.dns_seeds {
            push_new(&mut sources.dns_seeds, seed);
        }
        Ok(sources)
    }

    /// Writes the additions to `path` atomically: the TOML text, with a header comment
    /// saying the file is written by dsdnd, goes to `<name>.tmp` next to it, which is synced
    /// to disk and renamed over `path`; the directory is then synced (best effort). A crash
    /// leaves either the old or the new file, never a partial one. The directory must exist.
    ///
    /// # Errors
    /// [`AddedError::Io`] naming the file that could not be written, synced or renamed;
    /// [`AddedError::Encode`] if TOML encoding fails.
    pub fn save(&self, path: &Path) -> Result<(), AddedError> {
        let body = toml::to_string(self).map_err(|e| AddedError::Encode(e.to_string()))?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| ADDED_FILE.to_owned());
        let tmp = path.with_file_name(format!("{name}.tmp"));
        let write = |tmp: &Path| -> io::Result<()> {
            let mut file = File::create(tmp)?;
            file.write_all(HEADER.as_bytes())?;
            file.write_all(b"\n")?;
            file.write_all(body.as_bytes())?;
            file.sync_all()
        };
        if let Err(e) = write(&tmp) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(&tmp)(e));
        }
        if let Err(e) = fs::rename(&tmp, path) {
            let _ = fs::remove_file(&tmp);
            return Err(io_err(path)(e));
        }
        sync_dir(path);
        Ok(())
    }

    /// Adds a static peer. Returns `Ok(true)` if it was added, `Ok(false)` if it was already
    /// in the list (the list is unchanged, even when full).
    ///
    /// # Errors
    /// [`AddedError::TooMany`] when [`MAX_ADDED`] static peers are already added.
    pub fn add_static(&mut self, peer: StaticPeer) -> Result<bool, AddedError> {
        add(&mut self.static_peers, peer, AddedKind::StaticPeer)
    }

    /// Adds a DNS seed. Returns `Ok(true)` if it was added, `Ok(false)` if it was already in
    /// the list (the list is unchanged, even when full).
    ///
    /// # Errors
    /// [`AddedError::TooMany`] when [`MAX_ADDED`] DNS seeds are already added.
    pub fn add_seed(&mut self, seed: DnsSeed) -> Result<bool, AddedError> {
        add(&mut self.dns_seeds, seed, AddedKind::DnsSeed)
    }

    /// Removes a static peer added before; false when it was not in the list.
    pub fn remove_static(&mut self, peer: &StaticPeer) -> bool {
        let before = self.static_peers.len();
        self.static_peers.retain(|p| p != peer);
        self.static_peers.len() != before
    }

    /// Appends to `cfg.static_peers` and `cfg.dns_seeds` the additions not already listed
    /// there, in the order added, after the seeds.toml entries (so indices of existing
    /// entries, e.g. in a [`crate::FallbackChain`], stay valid). Returns how many entries
    /// were appended in total.
    pub fn merge_into(&self, cfg: &mut BootstrapConfig) -> usize {
        let before = cfg.static_peers.len() + cfg.dns_seeds.len();
        for peer in &self.static_peers {
            push_new(&mut cfg.static_peers, peer.clone());
        }
        for seed in &self.dns_seeds {
            push_new(&mut cfg.dns_seeds, seed.clone());
        }
        cfg.static_peers.len() + cfg.dns_seeds.len() - before
    }

    /// True when nothing was added.
    pub fn is_empty(&self) -> bool {
        self.static_peers.is_empty() && self.dns_seeds.is_empty()
    }
}

fn push_new<T: PartialEq>(list: &mut Vec<T>, item: T) -> bool {
    if list.contains(&item) {
        return false;
    }
    list.push(item);
    true
}

fn add<T: PartialEq>(list: &mut Vec<T>, item: T, kind: AddedKind) -> Result<bool, AddedError> {
    if list.contains(&item) {
        return Ok(false);
    }
    if list.len() >= MAX_ADDED {
        return Err(AddedError::TooMany {
            kind,
            max: MAX_ADDED,
        });
    }
    list.push(item);
    Ok(true)
}

/// Moved-aside copies of the additions file kept: the newest 3, as
/// `dsdn_peers::files::KEEP_CORRUPT` for peers.dat, the DA files and the committee's files
/// (this crate does not depend on `dsdn-peers`, so the few lines of pruning are repeated
/// here; a test in `dsdn-p2p` checks that both numbers agree).
pub const KEEP_CORRUPT: usize = 3;

/// Renames `path` to `<name>.corrupt-<now>` (with `.1`, `.2`, … appended if taken), then
/// deletes older copies beyond the newest [`KEEP_CORRUPT`] ([`prune_corrupt`]; a failure
/// there is logged).
fn move_aside(path: &Path, now: u64) -> io::Result<PathBuf> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| ADDED_FILE.to_owned());
    let base = format!("{name}.corrupt-{now}");
    let mut target = path.with_file_name(&base);
    let mut n = 1u32;
    while fs::symlink_metadata(&target).is_ok() {
        target = path.with_file_name(format!("{base}.{n}"));
        n += 1;
    }
    fs::rename(path, &target)?;
    if let Err(e) = prune_corrupt(path, &target) {
        tracing::warn!(path = %path.display(), error = %e, "cannot delete older moved-aside copies");
    }
    Ok(target)
}

/// Deletes the copies `<name>.corrupt-<secs>[.<n>]` of `path` beyond the newest
/// [`KEEP_CORRUPT`] (by the time and counter in the name); `newest`, the copy just made, is
/// always kept. Other names are left alone.
fn prune_corrupt(path: &Path, newest: &Path) -> io::Result<()> {
    let prefix = match path.file_name() {
        Some(n) => format!("{}.corrupt-", n.to_string_lossy()),
        None => return Ok(()),
    };
    let order = |name: &str| -> Option<(u64, u64)> {
        let rest = name.strip_prefix(&prefix)?;
        let (secs, n) = rest.split_once('.').unwrap_or((rest, "0"));
        Some((secs.parse().ok()?, n.parse().ok()?))
    };
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let mut copies = Vec::new();
    for entry in fs::read_dir(dir)? {
        let name = entry?.file_name();
        if let Some(o) = name.to_str().and_then(order) {
            if newest.file_name() != Some(name.as_os_str()) {
                copies.push((o, dir.join(name)));
            }
        }
    }
    copies.sort_by_key(|c| std::cmp::Reverse(c.0));
    for (_, copy) in copies.into_iter().skip(KEEP_CORRUPT.saturating_sub(1)) {
        fs::remove_file(copy)?;
    }
    Ok(())
}

/// Syncs the directory holding `path` so a rename in it is durable. Best effort: some
/// platforms and file systems cannot open or sync a directory.
fn sync_dir(path: &Path) {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if let Err(e) = File::open(dir).and_then(|d| d.sync_all()) {
        tracing::debug!(dir = %dir.display(), error = %e, "could not sync directory");
    }
}

/// Seconds since the UNIX epoch (0 if the clock is before 1970).
fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests;
