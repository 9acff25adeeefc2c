//! `[da]` of seeds.toml: batching and sync settings of the DA event log (issue 5,
//! Tahap 14A), owned by the DA service; the whole file is [`crate::seeds::SeedsConfig`].

use std::time::Duration;

use dsdn_bootstrap::config::{whole_secs, KeyErrors, MAX_DURATION_SECS};
use serde::{Deserialize, Serialize};

/// Largest accepted `da.batch_max_bytes`: the blob cap (256 KiB) minus room for the blob's
/// own fields and signature.
pub const MAX_BATCH_BYTES: usize = 256 * 1024 - 4096;

/// Largest accepted `da.batch_max_events` (the most events one blob may carry).
pub const MAX_BATCH_EVENTS: usize = 1024;

/// Largest accepted `da.sync_chunk_blobs` (the most blobs one sync response carries).
pub const MAX_SYNC_CHUNK: u32 = 64;

/// Default of `da.proof_history_heights` (see [`DaConfig::proof_history_heights`]).
pub const DEFAULT_PROOF_HISTORY_HEIGHTS: u64 = 1024;

/// Largest accepted `da.proof_history_heights`.
pub const MAX_PROOF_HISTORY_HEIGHTS: u64 = 10_000_000;

/// Default of `da.rebuild_cache_mib` (see [`DaConfig::rebuild_cache_mib`]).
pub const DEFAULT_REBUILD_CACHE_MIB: usize = 1024;

/// Accepted `da.rebuild_cache_mib`: from the serving cache's 32 MiB to 64 GiB.
pub const REBUILD_CACHE_MIB_RANGE: (usize, usize) = (32, 65_536);

/// `[da]`: how a coordinator batches DA events into blobs and how every node stores and
/// backfills the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DaConfig {
    /// `batch_max_bytes`: a blob is sealed as soon as the events waiting for it encode to at
    /// least this many bytes. 1024..=[`MAX_BATCH_BYTES`]; default 65,536.
    pub batch_max_bytes: usize,
    /// `batch_max_events`: a blob is sealed as soon as this many events wait.
    /// 1..=[`MAX_BATCH_EVENTS`]; default 256.
    pub batch_max_events: usize,
    /// `batch_interval_ms`: the longest an event waits for its blob, in milliseconds.
    /// 1..=60,000; default 100.
    pub batch_interval: Duration,
    /// `sync_chunk_blobs`: blobs asked for in one backfill request.
    /// 1..=[`MAX_SYNC_CHUNK`]; default 64.
    pub sync_chunk_blobs: u32,
    /// `sync_request_timeout_secs`: a backfill request unanswered for this long counts as a
    /// stall; the range is asked of another peer. Default 10.
    pub sync_request_timeout: Duration,
    /// `publish_grace_secs`: after a start, the DA authority seals nothing until a peer has
    /// told it the log's tip (so it never forks its own log after losing its data directory)
    /// or this long has passed with no DA peer answering. Default 5.
    pub publish_grace: Duration,
    /// `proof_history_heights`: how many of the latest heights keep their whole state tree
    /// on disk, so that `GET /v1/da/proof?height=H` and the proof protocol answer for them
    /// (issue 16 §3); older heights keep their state root only and answer "not available".
    /// 1..=[`MAX_PROOF_HISTORY_HEIGHTS`]; default [`DEFAULT_PROOF_HISTORY_HEIGHTS`] (1,024).
    ///
    /// Why 1,024: a light client proves values at a height it has just verified, so it
    /// needs seconds to minutes of history; 1,024 heights are at least 100 s of a log
    /// sealing a blob every 100 ms (the fastest default rate) and hours of a quiet one.
    /// Each kept height costs the tree nodes its blob rewrote, about 2 to 3 internal nodes
    /// of ~0.7 KiB per changed key (≈ 0.5 MiB for a default blob of 256 events, ≈ 2 MiB
    /// for a full one of 1,024), so 1,024 heights cost ≈ 0.5 to 2 GiB of disk on a busy
    /// log; lower it to save disk, raise it to serve older proofs.
    pub proof_history_heights: u64,
    /// `rebuild_cache_mib`: redb's page cache, in MiB, while a start replays many stored
    /// blobs into the state (a first start on a copied log, `--reindex-da`, a schema
    /// upgrade, a state found corrupt; issue 16 §6), like Bitcoin Core's `-dbcache` during
    /// its initial block download. The cache grows only as pages are read and is released
    /// when the replay ends (the node then serves with 32 MiB). With the serving cache a
    /// rebuild of 10 million events thrashes: every random insert into the state's
    /// key-ordered tables reads its pages again. [`REBUILD_CACHE_MIB_RANGE`];
    /// default [`DEFAULT_REBUILD_CACHE_MIB`] (1,024).
    pub rebuild_cache_mib: usize,
    /// `state_sync`: how a full node whose DA log is empty gets the DA state (issue 16 §5,
    /// PROTOCOL.md §5.3b). Default [`StateSyncMode::Off`].
    pub state_sync: StateSyncMode,
}

/// `da.state_sync`: `"off"` (replay every blob from height 1) or `"auto"` (a full node
/// whose DA log is empty restores the state at a checkpoint from a full-node peer, then
/// follows the log from the checkpoint + 1).
///
/// **What `auto` trusts**: the checkpoint is taken from the newest blob of a connected full
/// node, accepted only if it is signed by the genesis authority (`[network] da_authority`);
/// the state is then verified chunk by chunk against the root that blob commits to, so a
/// peer can neither forge nor hold back an entry. As for a light client's `newest`
/// checkpoint, this assumes the authority key signs one chain only (weak subjectivity:
/// a leaked old key could sign a false newest blob). A log whose authority rotated to a
/// committee key since genesis, no full-node peer within 30 s, or three failed attempts
/// fall back to the replay from height 1 (`off`), logged.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StateSyncMode {
    /// Replay from height 1 (the default).
    #[default]
    Off,
    /// State sync from a checkpoint when the log is empty.
    Auto,
}

impl Default for DaConfig {
    fn default() -> Self {
        Self {
            batch_max_bytes: 65_536,
            batch_max_events: 256,
            batch_interval: Duration::from_millis(100),
            sync_chunk_blobs: 64,
            sync_request_timeout: Duration::from_secs(10),
            publish_grace: Duration::from_secs(5),
            proof_history_heights: DEFAULT_PROOF_HISTORY_HEIGHTS,
            rebuild_cache_mib: DEFAULT_REBUILD_CACHE_MIB,
            state_sync: StateSyncMode::Off,
        }
    }
}

/// `[da]` as written (the section's serde schema, both ways).
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawDa {
    batch_max_bytes: usize,
    batch_max_events: usize,
    batch_interval_ms: u64,
    sync_chunk_blobs: u32,
    sync_request_timeout_secs: u64,
    publish_grace_secs: u64,
    proof_history_heights: u64,
    rebuild_cache_mib: usize,
    state_sync: StateSyncMode,
    /// Obsolete since the state moved into `da-log.redb` (issue 16): accepted so that an
    /// older seeds.toml still loads, ignored with a warning, never written.
    #[serde(skip_serializing)]
    snapshot_interval_blobs: Option<u64>,
}

impl Default for RawDa {
    fn default() -> Self {
        let d = DaConfig::default();
        Self {
            batch_max_bytes: d.batch_max_bytes,
            batch_max_events: d.batch_max_events,
            batch_interval_ms: d.batch_interval.as_millis() as u64,
            sync_chunk_blobs: d.sync_chunk_blobs,
            sync_request_timeout_secs: d.sync_request_timeout.as_secs(),
            publish_grace_secs: d.publish_grace.as_secs(),
            proof_history_heights: d.proof_history_heights,
            rebuild_cache_mib: d.rebuild_cache_mib,
            state_sync: d.state_sync,
            snapshot_interval_blobs: None,
        }
    }
}

dsdn_bootstrap::serialize_as_raw!(DaConfig);

impl DaConfig {
    pub(crate) fn to_raw(&self) -> Result<RawDa, String> {
        let ms = self.batch_interval.as_millis();
        if !self.batch_interval.subsec_nanos().is_multiple_of(1_000_000) {
            return Err(format!(
                "da.batch_interval_ms: {:?} is not a whole number of milliseconds",
                self.batch_interval
            ));
        }
        let batch_interval_ms = u64::try_from(ms)
            .map_err(|_| format!("da.batch_interval_ms: {ms} ms is out of range"))?;
        Ok(RawDa {
            batch_max_bytes: self.batch_max_bytes,
            batch_max_events: self.batch_max_events,
            batch_interval_ms,
            sync_chunk_blobs: self.sync_chunk_blobs,
            sync_request_timeout_secs: whole_secs(
                "da.sync_request_timeout_secs",
                self.sync_request_timeout,
            )?,
            publish_grace_secs: whole_secs("da.publish_grace_secs", self.publish_grace)?,
            proof_history_heights: self.proof_history_heights,
            rebuild_cache_mib: self.rebuild_cache_mib,
            state_sync: self.state_sync,
            snapshot_interval_blobs: None,
        })
    }
}

pub(crate) fn validate(raw: RawDa, errs: &mut KeyErrors) -> DaConfig {
    if let Some(n) = raw.snapshot_interval_blobs {
        tracing::warn!(
            snapshot_interval_blobs = n,
            "da.snapshot_interval_blobs is obsolete and ignored: the DA state is stored with \
             the log (remove the line from seeds.toml)"
        );
    }
    let max_secs = MAX_DURATION_SECS;
    DaConfig {
        batch_max_bytes: errs.range(
            "da.batch_max_bytes",
            raw.batch_max_bytes,
            1024,
            MAX_BATCH_BYTES,
        ),
        batch_max_events: errs.range(
            "da.batch_max_events",
            raw.batch_max_events,
            1,
            MAX_BATCH_EVENTS,
        ),
        batch_interval: Duration::from_millis(errs.range(
            "da.batch_interval_ms",
            raw.batch_interval_ms,
            1,
            60_000,
        )),
        sync_chunk_blobs: errs.range(
            "da.sync_chunk_blobs",
            raw.sync_chunk_blobs,
            1,
            MAX_SYNC_CHUNK,
        ),
        sync_request_timeout: Duration::from_secs(errs.range(
            "da.sync_request_timeout_secs",
            raw.sync_request_timeout_secs,
            1,
            max_secs,
        )),
        publish_grace: Duration::from_secs(errs.range(
            "da.publish_grace_secs",
            raw.publish_grace_secs,
            1,
            max_secs,
        )),
        proof_history_heights: errs.range(
            "da.proof_history_heights",
            raw.proof_history_heights,
            1,
            MAX_PROOF_HISTORY_HEIGHTS,
        ),
        rebuild_cache_mib: errs.range(
            "da.rebuild_cache_mib",
            raw.rebuild_cache_mib,
            REBUILD_CACHE_MIB_RANGE.0,
            REBUILD_CACHE_MIB_RANGE.1,
        ),
        state_sync: raw.state_sync,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::SeedsConfig;

    #[test]
    fn the_obsolete_snapshot_interval_still_loads_and_is_not_written_back() {
        let cfg = SeedsConfig::from_toml_str("[da]\nsnapshot_interval_blobs = 1000\n").unwrap();
        assert_eq!(cfg.da, DaConfig::default());
        let raw = cfg.da.to_raw().unwrap();
        let text = toml::to_string(&raw).unwrap();
        assert!(!text.contains("snapshot"), "{text}");
    }

    #[test]
    fn defaults_and_overrides() {
        let cfg = SeedsConfig::from_toml_str("").unwrap();
        assert_eq!(cfg.da, DaConfig::default());
        let cfg = SeedsConfig::from_toml_str(
            "[da]\nbatch_max_bytes = 2048\nbatch_interval_ms = 5\nsync_chunk_blobs = 8\n\
             proof_history_heights = 16\nrebuild_cache_mib = 64\n",
        )
        .unwrap();
        assert_eq!(cfg.da.proof_history_heights, 16);
        assert_eq!(cfg.da.rebuild_cache_mib, 64);
        assert!(SeedsConfig::from_toml_str("[da]\nrebuild_cache_mib = 16\n").is_err());
        assert_eq!(cfg.da.batch_max_bytes, 2048);
        assert_eq!(cfg.da.batch_interval, Duration::from_millis(5));
        assert_eq!(cfg.da.sync_chunk_blobs, 8);
        assert_eq!(cfg.da.batch_max_events, 256);
        assert_eq!(cfg.da.state_sync, StateSyncMode::Off);
        let cfg = SeedsConfig::from_toml_str("[da]\nstate_sync = \"auto\"\n").unwrap();
        assert_eq!(cfg.da.state_sync, StateSyncMode::Auto);
        let text = toml::to_string(&cfg.da.to_raw().unwrap()).unwrap();
        assert!(text.contains("state_sync = \"auto\""), "{text}");
        assert!(SeedsConfig::from_toml_str("[da]\nstate_sync = \"on\"\n").is_err());
    }

    #[test]
    fn out_of_range_values_name_their_keys() {
        let err = SeedsConfig::from_toml_str(
            "[da]\nbatch_max_bytes = 1\nbatch_max_events = 0\nsync_chunk_blobs = 65\n\
             batch_interval_ms = 0\npublish_grace_secs = 0\nproof_history_heights = 0\n",
        )
        .unwrap_err();
        assert_eq!(
            err.keys(),
            [
                "da.batch_max_bytes",
                "da.batch_max_events",
                "da.batch_interval_ms",
                "da.sync_chunk_blobs",
                "da.publish_grace_secs",
                "da.proof_history_heights"
            ]
        );
        let err = SeedsConfig::from_toml_str("[da]\nfoo = 1\n").unwrap_err();
        assert_eq!(err.keys(), ["da.foo"]);
    }
}
