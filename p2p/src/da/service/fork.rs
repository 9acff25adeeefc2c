//! Fork evidence (issue 13 §4): a node that meets a validly signed DA blob that differs from
//! the one it applied (or holds) at the same height keeps its own, stores both as
//! [`ForkEvidence`], raises the alarm (an error log line, `da_fork_evidence`, a `status`
//! warning) and serves the evidence (`GET /v1/da/evidence`). Only the holder of the
//! authority key can sign a blob, so two at one height mean the key is used by two sealers
//! (a copied coordinator data directory, or a committee member cloned with its key share).
//!
//! The conflicting blob is forwarded on gossip (`Accept`): the relaying peer did nothing
//! wrong, and every node should see the evidence. A node that seals (a single-key
//! authority or a committee proposer) stops sealing at once, failing what waits.
//!
//! Where the comparison comes from: the tip's hash and the hashes of the last
//! [`RECENT_HASHES`] applied heights in memory, the blobs held ahead of the tip, and for the
//! evidence itself the node's own blob read from its log (the last [`RECENT_BLOBS`] applied
//! blobs are kept in memory for a node without a log on disk). Older heights are not
//! compared. Evidence is bounded: at most [`MAX_FORK_EVIDENCE`] entries, one per
//! (height, conflicting blob), each persisted once as
//! `<da dir>/fork-evidence/<height>-<hash>.cbor` off the event loop and loaded (verified)
//! at start.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use dsdn_protocols::da::evidence::ForkEvidence;
use prometheus::{IntCounter, IntGauge, Opts, Registry};

use super::*;

/// Most fork evidence entries a node keeps (the oldest are dropped beyond it).
pub const MAX_FORK_EVIDENCE: usize = 32;

/// Applied heights whose hashes are kept for the comparison.
pub(crate) const RECENT_HASHES: usize = 4096;

/// Applied blobs kept in memory as evidence material for a node without a log on disk.
pub(crate) const RECENT_BLOBS: usize = 4;

/// Least time between two pieces of evidence checked from one peer.
pub(crate) const EVIDENCE_PER_PEER_INTERVAL: Duration = Duration::from_millis(100);

/// The evidence directory inside the DA directory.
pub(crate) const EVIDENCE_DIR: &str = "fork-evidence";

/// One piece of fork evidence as `GET /v1/da/evidence` lists it (hashes and blobs hex).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForkEvidenceView {
    /// The height both blobs claim.
    pub height: u64,
    /// Hash of the blob this node applied (or held) there.
    pub applied_hash: String,
    /// Hash of the conflicting blob.
    pub conflicting_hash: String,
    /// When this node saw it, UNIX milliseconds.
    pub detected_at_ms: u64,
    /// The [`ForkEvidence`] CBOR, hex: both encoded blobs, verifiable by anyone with
    /// [`ForkEvidence::verify`] against the network id and DA authority.
    pub evidence_cbor: String,
}

/// The fork metrics, registered in the node's registry.
#[derive(Clone)]
pub(crate) struct ForkMetrics {
    /// `da_fork_evidence`: fork evidence entries held (non-zero: the DA log forked).
    evidence: IntGauge,
    /// `da_forks_detected_total`: conflicting blobs met.
    detected: IntCounter,
}

impl ForkMetrics {
    pub(crate) fn new(registry: &Registry) -> Result<Self, prometheus::Error> {
        let evidence = IntGauge::with_opts(Opts::new(
            "da_fork_evidence",
            "Fork evidence entries held: pairs of validly signed DA blobs at one height \
             (non-zero means the DA authority key signs for two sealers).",
        ))?;
        let detected = IntCounter::with_opts(Opts::new(
            "da_forks_detected_total",
            "Validly signed DA blobs met that conflict with the applied one at their height.",
        ))?;
        registry.register(Box::new(evidence.clone()))?;
        registry.register(Box::new(detected.clone()))?;
        Ok(Self { evidence, detected })
    }
}

/// One held entry: the evidence and the two hashes.
#[derive(Debug, Clone)]
struct Entry {
    evidence: ForkEvidence,
    applied: [u8; 32],
    conflicting: [u8; 32],
}

/// Recent hashes, recent blobs and the evidence held; see the module documentation.
pub(crate) struct ForkWatch {
    /// Evidence requests of one peer: at most one per [`EVIDENCE_PER_PEER_INTERVAL`].
    limiter: PexRateLimiter<PeerId>,
    recent: VecDeque<(u64, [u8; 32])>,
    recent_blobs: VecDeque<(u64, Vec<u8>)>,
    entries: VecDeque<Entry>,
    dir: Option<PathBuf>,
    metrics: Option<ForkMetrics>,
}

impl ForkWatch {
    /// Loads the evidence kept in `da_dir` (if any): each file is decoded and verified
    /// against `network` and the key of its height in `keys`; one that is not valid evidence is moved aside
    /// (`.corrupt`) with a warning.
    pub(crate) fn load(
        da_dir: Option<&Path>,
        network: &NetworkId,
        keys: Option<&dsdn_protocols::da::KeyHistory>,
        metrics: Option<ForkMetrics>,
    ) -> Self {
        let dir = da_dir.map(|d| d.join(EVIDENCE_DIR));
        let mut w = Self {
            limiter: PexRateLimiter::new(EVIDENCE_PER_PEER_INTERVAL),
            recent: VecDeque::new(),
            recent_blobs: VecDeque::new(),
            entries: VecDeque::new(),
            dir: dir.clone(),
            metrics,
        };
        let (Some(dir), Some(keys)) = (dir, keys) else {
            return w;
        };
        let Ok(read) = std::fs::read_dir(&dir) else {
            return w;
        };
        let mut files: Vec<PathBuf> = read
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "cbor"))
            .take(4 * MAX_FORK_EVIDENCE)
            .collect();
        files.sort();
        for path in files {
            let loaded = std::fs::read(&path)
                .map_err(|e| e.to_string())
                .and_then(|b| ForkEvidence::from_bytes(&b).map_err(|e| e.to_string()))
                .and_then(|e| {
                    let key = keys.key_for(e.height);
                    let (a, c) = e.verify(network, &key).map_err(|e| e.to_string())?;
                    Ok((e, a, c))
                });
            match loaded {
                Ok((evidence, applied, conflicting)) => w.push(Entry {
                    evidence,
                    applied,
                    conflicting,
                }),
                Err(error) => {
                    let aside = path.with_extension("cbor.corrupt");
                    let _ = std::fs::rename(&path, &aside);
                    tracing::warn!(path = %path.display(), %error, "fork evidence file is not valid evidence: moved aside");
                }
            }
        }
        if !w.entries.is_empty() {
            tracing::error!(
                entries = w.entries.len(),
                heights = ?w.heights(),
                "DA log FORK evidence kept from an earlier run: the DA authority key signed two different blobs at one height (dsdn-agent da evidence)"
            );
        }
        w.update_metric();
        w
    }

    /// A peer left: its rate-limit entry goes.
    pub(crate) fn peer_gone(&mut self, peer: &PeerId) {
        self.limiter.forget(peer);
    }

    fn push(&mut self, entry: Entry) {
        if self.entries.len() >= MAX_FORK_EVIDENCE {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    fn update_metric(&self) {
        if let Some(m) = &self.metrics {
            m.evidence.set(self.entries.len() as i64);
        }
    }

    /// An applied blob: its hash (and, without a log, its bytes) are remembered.
    pub(crate) fn applied(&mut self, blob: &VerifiedBlob, keep_bytes: bool) {
        if self.recent.len() >= RECENT_HASHES {
            self.recent.pop_front();
        }
        self.recent.push_back((blob.height(), blob.hash()));
        if keep_bytes {
            if self.recent_blobs.len() >= RECENT_BLOBS {
                self.recent_blobs.pop_front();
            }
            self.recent_blobs
                .push_back((blob.height(), blob.encoded().to_vec()));
        }
    }

    /// Forgets what was applied above `height` (the state rolled back to it).
    pub(crate) fn rolled_back(&mut self, height: u64) {
        self.recent.retain(|(h, _)| *h <= height);
        self.recent_blobs.retain(|(h, _)| *h <= height);
    }

    fn hash_at(&self, height: u64) -> Option<[u8; 32]> {
        self.recent
            .iter()
            .rev()
            .find(|(h, _)| *h == height)
            .map(|(_, hash)| *hash)
    }

    fn blob_at(&self, height: u64) -> Option<Vec<u8>> {
        self.recent_blobs
            .iter()
            .find(|(h, _)| *h == height)
            .map(|(_, b)| b.clone())
    }

    /// True when evidence of `height` involving the blob `hash` (either side) is held.
    fn knows(&self, height: u64, hash: &[u8; 32]) -> bool {
        self.entries
            .iter()
            .any(|e| e.evidence.height == height && (e.conflicting == *hash || e.applied == *hash))
    }

    /// True when evidence of exactly this pair (either order) is held.
    fn knows_pair(&self, height: u64, a: &[u8; 32], b: &[u8; 32]) -> bool {
        self.entries.iter().any(|e| {
            e.evidence.height == height
                && ((e.applied == *a && e.conflicting == *b)
                    || (e.applied == *b && e.conflicting == *a))
        })
    }

    /// Heights with evidence, ascending, without repeats.
    pub(crate) fn heights(&self) -> Vec<u64> {
        let mut h: Vec<u64> = self.entries.iter().map(|e| e.evidence.height).collect();
        h.sort_unstable();
        h.dedup();
        h
    }

    /// True when evidence at `height` is held.
    pub(crate) fn forked_at(&self, height: u64) -> bool {
        self.entries.iter().any(|e| e.evidence.height == height)
    }

    /// The evidence held, oldest first.
    pub(crate) fn views(&self) -> Vec<ForkEvidenceView> {
        self.entries
            .iter()
            .map(|e| ForkEvidenceView {
                height: e.evidence.height,
                applied_hash: hex::encode(e.applied),
                conflicting_hash: hex::encode(e.conflicting),
                detected_at_ms: e.evidence.detected_at_ms,
                evidence_cbor: e.evidence.to_bytes().map(hex::encode).unwrap_or_default(),
            })
            .collect()
    }
}

impl DaService {
    /// Compares a verified blob with the one this node applied or holds at its height.
    /// `None`: no conflict (or nothing to compare with). `Some(true)`: a new conflict,
    /// recorded as evidence (see the module documentation); `Some(false)`: one already
    /// recorded.
    pub(super) fn check_fork(&mut self, blob: &VerifiedBlob) -> Option<bool> {
        let height = blob.height();
        let tip = self.chain.height();
        let theirs = blob.hash();
        let ours_hash = if height == tip && tip > 0 {
            self.chain.tip_hash()
        } else if height < tip {
            self.forks.hash_at(height)?
        } else {
            self.chain.held(height)?.hash()
        };
        if ours_hash == theirs {
            return None;
        }
        if self.forks.knows(height, &theirs) {
            return Some(false);
        }
        let ours = match self.chain.held(height) {
            Some(held) if height > tip => Some(held.encoded().to_vec()),
            _ => self
                .read_blob(height)
                .or_else(|| self.forks.blob_at(height)),
        };
        let Some(ours) = ours else {
            tracing::warn!(height, "a conflicting DA blob arrived but this node's own blob at that height is not readable: no evidence kept");
            return Some(false);
        };
        // The same content under another signature (a height sealed again) is no fork.
        let same = self.key_for(height).is_some_and(|a| {
            DaBlob::decode_verified(&ours, &self.network, &a)
                .is_ok_and(|o| dsdn_protocols::da::evidence::same_content(&o, blob))
        });
        if same {
            return Some(false);
        }
        let evidence = ForkEvidence::new(height, ours, blob.encoded().to_vec(), unix_ms());
        self.record_fork(Entry {
            evidence,
            applied: ours_hash,
            conflicting: theirs,
        });
        Some(true)
    }

    /// Evidence a peer handed over: verified against the authority, kept when new (and
    /// handed on to the other DA peers). Returns whether it was new. At most
    /// [`EVIDENCE_PER_PEER_INTERVAL`] apart per peer; others are answered `false` unchecked.
    pub(crate) fn on_evidence(
        &mut self,
        peer: PeerId,
        evidence: ForkEvidence,
        now: Instant,
    ) -> bool {
        let Some(authority) = self.key_for(evidence.height) else {
            return false;
        };
        if !self.forks.limiter.allow(&peer, now) {
            return false;
        }
        let (applied, conflicting) = match evidence.verify(&self.network, &authority) {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(%peer, error = %e, "fork evidence from a peer does not verify");
                self.actions
                    .push(DaAction::Penalize(peer, "da_bad_evidence"));
                return false;
            }
        };
        if self
            .forks
            .knows_pair(evidence.height, &applied, &conflicting)
        {
            return false;
        }
        tracing::warn!(%peer, height = evidence.height, "fork evidence handed over by a peer");
        self.record_fork(Entry {
            evidence,
            applied,
            conflicting,
        });
        true
    }

    /// Keeps `entry` and raises the alarm (see the module documentation).
    fn record_fork(&mut self, entry: Entry) {
        let height = entry.evidence.height;
        tracing::error!(
            height,
            applied = %hex::encode(entry.applied),
            conflicting = %hex::encode(entry.conflicting),
            "DA log FORK: a second validly signed blob at height {height}; the DA authority key signs for two sealers (a copied key?). This node keeps the blob it applied; evidence: dsdn-agent da evidence"
        );
        if let Some(m) = &self.forks.metrics {
            m.detected.inc();
        }
        // Handed to every DA peer, the sender included: two processes that share a PeerId
        // (the very case of a copied key) look like one peer, and the sender may be the
        // other one. Both blobs go on gossip too: a peer that holds either one finds the
        // fork itself, also through a connection that request/response did not pick.
        let peers: Vec<PeerId> = self.planner.peers().cloned().collect();
        for peer in peers {
            self.actions.push(DaAction::PushEvidence(
                peer,
                Box::new(entry.evidence.clone()),
            ));
        }
        self.actions
            .push(DaAction::Gossip(entry.evidence.applied.clone()));
        self.actions
            .push(DaAction::Gossip(entry.evidence.conflicting.clone()));
        if let (Some(dir), Ok(bytes)) = (&self.forks.dir, entry.evidence.to_bytes()) {
            let name = format!(
                "{height:012}-{}.cbor",
                &hex::encode(entry.conflicting)[..16]
            );
            self.actions.push(DaAction::PersistEvidence {
                path: dir.join(name),
                bytes,
            });
        }
        self.forks.push(entry);
        self.forks.update_metric();
        self.confirm_failed_at(height);
        if self.is_authority() {
            self.halt_sealing(format!(
                "a second validly signed DA blob at height {height}: the DA authority key is in use elsewhere"
            ));
        }
    }

    /// The fork evidence held (`GET /v1/da/evidence`).
    pub(crate) fn fork_evidence(&self) -> Vec<ForkEvidenceView> {
        self.forks.views()
    }

    /// The `status` warning while fork evidence is held.
    pub(crate) fn fork_warning(&self) -> Option<String> {
        let heights = self.forks.heights();
        if heights.is_empty() {
            return None;
        }
        Some(format!(
            "DA log FORK at height(s) {heights:?}: two validly signed blobs at one height (the DA authority key signs for two sealers); this node keeps the blob it applied; evidence: dsdn-agent da evidence"
        ))
    }
}
