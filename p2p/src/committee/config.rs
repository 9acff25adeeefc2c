//! `[committee]` of seeds.toml: the coordinator committee this coordinator belongs to
//! (Tahap 14A.2B.1: FROST DKG and threshold signing of DA blobs), owned by the committee
//! service; the whole file is [`crate::seeds::SeedsConfig`].
//!
//! ```toml
//! [committee]
//! members = ["12D3KooW…", "12D3KooW…", "12D3KooW…"]
//! threshold = 2
//! epoch = 0
//! round_timeout_ms = 1000
//! epoch_secs = 21600
//! handoff_secs = 900
//! candidates = ["12D3KooW…"]
//! ```
//!
//! Only `dsdnd --mode coordinator` reads it, and only when its `--committee-*` flags are
//! absent (flags win, key by key). Every other mode ignores it: non-members only need
//! `network.da_authority` set to the committee's group key.

use dsdn_bootstrap::config::KeyErrors;
use dsdn_protocols::committee::types::{MAX_MEMBERS, MIN_MEMBERS};
use libp2p::identity::PeerId;
use serde::{Deserialize, Serialize};

/// Default `committee.threshold`: 2 (the smallest threshold FROST allows).
pub const DEFAULT_COMMITTEE_THRESHOLD: u16 = 2;

/// Default `committee.epoch`: 0 (the first epoch).
pub const DEFAULT_COMMITTEE_EPOCH: u64 = 0;

/// Default `committee.round_timeout_ms`: 1000 ms (the DA proposer rotation's round-0
/// timeout; round r waits `base · 2^min(r, 6)`).
pub const DEFAULT_ROUND_TIMEOUT_MS: u64 = 1000;

/// Default `committee.epoch_secs`: 21600 s (6 h, issue 13 §3 / Tahap 14A.2B.2 "rotation
/// every 6 h").
pub const DEFAULT_EPOCH_SECS: u64 = 21_600;

/// Default `committee.handoff_secs`: 900 s (15 min, the handoff window at the end of each
/// epoch).
pub const DEFAULT_HANDOFF_SECS: u64 = 900;

/// The most `committee.candidates` a configuration may name.
pub const MAX_CANDIDATES: usize = 1024;

/// `[committee]`: the coordinator committee (14A.2B.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitteeConfig {
    /// `members`: the members' PeerIds (base58, `12D3KooW…`), in the same order on every
    /// member; the order fixes the DA proposer of each height and round
    /// (`members[(height + round) mod n]`). Default empty: no committee. When not empty: 2..=64 distinct PeerIds.
    pub members: Vec<PeerId>,
    /// `threshold`: signatures need shares of this many members
    /// (2 ≤ threshold ≤ `members.len()` when members are given). Default
    /// [`DEFAULT_COMMITTEE_THRESHOLD`].
    pub threshold: u16,
    /// `epoch`: the committee epoch; one DKG and one group key per epoch (the key share is
    /// `<data dir>/committee/key-share-<epoch>.cbor`). Default [`DEFAULT_COMMITTEE_EPOCH`].
    pub epoch: u64,
    /// `round_timeout_ms`: how long a DA height may stay unsealed in round 0 of the
    /// proposer rotation (while events wait) before the members move to the next round
    /// and its proposer; round r waits `base · 2^min(r, 6)`. Default
    /// [`DEFAULT_ROUND_TIMEOUT_MS`]; at least 1.
    pub round_timeout: std::time::Duration,
    /// `epoch_secs`: the length of a committee epoch (the automatic rotation's period; the
    /// epochs are aligned on multiples of it since the UNIX epoch, so every member agrees
    /// on them without a shared start time). Default [`DEFAULT_EPOCH_SECS`]; at least 2 and
    /// above `handoff_secs`. Used only when the committee seals DA blobs by rotation (its
    /// group key is the DA authority).
    pub epoch_length: std::time::Duration,
    /// `handoff_secs`: the handoff window at the end of each epoch, during which the next
    /// committee is selected and runs its DKG and both keys are valid for receipts.
    /// Default [`DEFAULT_HANDOFF_SECS`]; at least 1 and below `epoch_secs`.
    pub handoff: std::time::Duration,
    /// `candidates`: coordinators besides `members` that may be selected into a later
    /// committee (issue 13 §3) once registered in the DA state (class `coordinator`): the
    /// admission list of the selection while stake is not on the chain (the seam,
    /// PROTOCOL §7.6a). The same list on every coordinator: the members check each
    /// rotation's selection against it, so a member with another list refuses the others'
    /// rotations (the committee then stays in its epoch). Registrations of coordinators
    /// outside `members` and this list are refused, and such coordinators are never
    /// selected, so PeerIds made up by the thousand capture nothing. Default empty: the
    /// committee is re-keyed among the genesis members at each rotation. At most
    /// [`MAX_CANDIDATES`] distinct PeerIds.
    pub candidates: Vec<PeerId>,
}

impl Default for CommitteeConfig {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            threshold: DEFAULT_COMMITTEE_THRESHOLD,
            epoch: DEFAULT_COMMITTEE_EPOCH,
            round_timeout: std::time::Duration::from_millis(DEFAULT_ROUND_TIMEOUT_MS),
            epoch_length: std::time::Duration::from_secs(DEFAULT_EPOCH_SECS),
            handoff: std::time::Duration::from_secs(DEFAULT_HANDOFF_SECS),
            candidates: Vec::new(),
        }
    }
}

impl CommitteeConfig {
    /// True when `members` names a committee (the section configures one).
    pub fn is_configured(&self) -> bool {
        !self.members.is_empty()
    }
}

/// `[committee]` as written (the section's serde schema, both ways).
#[derive(Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub(crate) struct RawCommittee {
    members: Vec<String>,
    threshold: u16,
    epoch: u64,
    round_timeout_ms: u64,
    epoch_secs: u64,
    handoff_secs: u64,
    candidates: Vec<String>,
}

impl Default for RawCommittee {
    fn default() -> Self {
        Self {
            members: Vec::new(),
            threshold: DEFAULT_COMMITTEE_THRESHOLD,
            epoch: DEFAULT_COMMITTEE_EPOCH,
            round_timeout_ms: DEFAULT_ROUND_TIMEOUT_MS,
            epoch_secs: DEFAULT_EPOCH_SECS,
            handoff_secs: DEFAULT_HANDOFF_SECS,
            candidates: Vec::new(),
        }
    }
}

impl RawCommittee {
    /// True for the section's defaults (no members, default threshold and epoch): such a
    /// section is not written.
    pub(crate) fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

dsdn_bootstrap::serialize_as_raw!(CommitteeConfig);

impl CommitteeConfig {
    pub(crate) fn to_raw(&self) -> Result<RawCommittee, String> {
        Ok(RawCommittee {
            members: self.members.iter().map(ToString::to_string).collect(),
            threshold: self.threshold,
            epoch: self.epoch,
            round_timeout_ms: self.round_timeout.as_millis() as u64,
            epoch_secs: self.epoch_length.as_secs(),
            handoff_secs: self.handoff.as_secs(),
            candidates: self.candidates.iter().map(ToString::to_string).collect(),
        })
    }
}

/// Validates `[committee]`, pushing one error per bad key: `committee.members[i]` (not a
/// PeerId, or a duplicate of an earlier entry), `committee.members` (more than
/// [`MAX_MEMBERS`] or fewer than [`MIN_MEMBERS`]), `committee.threshold` (below 2, or above
/// the number of members), `committee.epoch_secs` (below 2), `committee.handoff_secs` (0,
/// or not below `epoch_secs`), `committee.candidates[i]` (not a PeerId, or a duplicate),
/// `committee.candidates` (more than [`MAX_CANDIDATES`]).
pub(crate) fn validate(raw: RawCommittee, errs: &mut KeyErrors) -> CommitteeConfig {
    let mut members: Vec<PeerId> = Vec::with_capacity(raw.members.len());
    for (i, s) in raw.members.iter().enumerate() {
        match s.trim().parse::<PeerId>() {
            Ok(p) if members.contains(&p) => {
                errs.push(
                    format!("committee.members[{i}]"),
                    format!("duplicate member {p}"),
                );
            }
            Ok(p) => members.push(p),
            Err(e) => errs.push(
                format!("committee.members[{i}]"),
                format!("invalid PeerId {s:?}: {e}"),
            ),
        }
    }
    let n = raw.members.len();
    if n > MAX_MEMBERS || (n > 0 && n < MIN_MEMBERS) {
        errs.push(
            "committee.members",
            format!("a committee has {MIN_MEMBERS} to {MAX_MEMBERS} members, got {n}"),
        );
    }
    if usize::from(raw.threshold) < MIN_MEMBERS {
        errs.push(
            "committee.threshold",
            format!("must be at least {MIN_MEMBERS}, got {}", raw.threshold),
        );
    } else if n > 0 && usize::from(raw.threshold) > n {
        errs.push(
            "committee.threshold",
            format!(
                "must not exceed the number of members ({n}), got {}",
                raw.threshold
            ),
        );
    }
    if raw.round_timeout_ms == 0 {
        errs.push("committee.round_timeout_ms", "must be at least 1");
    }
    if raw.epoch_secs < 2 {
        errs.push(
            "committee.epoch_secs",
            format!("must be at least 2, got {}", raw.epoch_secs),
        );
    }
    if raw.handoff_secs == 0 {
        errs.push("committee.handoff_secs", "must be at least 1");
    } else if raw.epoch_secs >= 2 && raw.handoff_secs >= raw.epoch_secs {
        errs.push(
            "committee.handoff_secs",
            format!(
                "must be below epoch_secs ({}), got {}",
                raw.epoch_secs, raw.handoff_secs
            ),
        );
    }
    let mut candidates: Vec<PeerId> = Vec::with_capacity(raw.candidates.len().min(MAX_CANDIDATES));
    if raw.candidates.len() > MAX_CANDIDATES {
        errs.push(
            "committee.candidates",
            format!(
                "at most {MAX_CANDIDATES} candidates, got {}",
                raw.candidates.len()
            ),
        );
    }
    for (i, s) in raw.candidates.iter().enumerate().take(MAX_CANDIDATES) {
        match s.trim().parse::<PeerId>() {
            Ok(p) if candidates.contains(&p) => errs.push(
                format!("committee.candidates[{i}]"),
                format!("duplicate candidate {p}"),
            ),
            Ok(p) => candidates.push(p),
            Err(e) => errs.push(
                format!("committee.candidates[{i}]"),
                format!("invalid PeerId {s:?}: {e}"),
            ),
        }
    }
    CommitteeConfig {
        candidates,
        members,
        threshold: raw.threshold,
        epoch: raw.epoch,
        round_timeout: std::time::Duration::from_millis(raw.round_timeout_ms.max(1)),
        epoch_length: std::time::Duration::from_secs(raw.epoch_secs.max(2)),
        handoff: std::time::Duration::from_secs(
            raw.handoff_secs.clamp(1, raw.epoch_secs.max(2) - 1),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::seeds::SeedsConfig;

    fn ids(n: usize) -> Vec<PeerId> {
        (0..n)
            .map(|_| {
                let secret: [u8; 32] = rand::random();
                libp2p::identity::Keypair::ed25519_from_bytes(secret)
                    .unwrap()
                    .public()
                    .to_peer_id()
            })
            .collect()
    }

    fn section(members: &[String], rest: &str) -> String {
        let list: Vec<String> = members.iter().map(|m| format!("{m:?}")).collect();
        format!("[committee]\nmembers = [{}]\n{rest}", list.join(", "))
    }

    #[test]
    fn absent_section_means_no_committee() {
        let cfg = SeedsConfig::from_toml_str("").unwrap();
        assert_eq!(cfg.committee, CommitteeConfig::default());
        assert!(!cfg.committee.is_configured());
        assert_eq!((cfg.committee.threshold, cfg.committee.epoch), (2, 0));
        // Threshold and epoch alone are accepted (the members may come from flags).
        let cfg = SeedsConfig::from_toml_str("[committee]\nthreshold = 3\nepoch = 4\n").unwrap();
        assert_eq!((cfg.committee.threshold, cfg.committee.epoch), (3, 4));
    }

    #[test]
    fn members_threshold_and_epoch_parse_in_order() {
        let m = ids(3);
        let strs: Vec<String> = m.iter().map(ToString::to_string).collect();
        let cfg =
            SeedsConfig::from_toml_str(&section(&strs, "threshold = 2\nepoch = 7\n")).unwrap();
        assert_eq!(cfg.committee.members, m);
        assert_eq!((cfg.committee.threshold, cfg.committee.epoch), (2, 7));
        assert!(cfg.committee.is_configured());
        // Defaults for the keys left out.
        let cfg = SeedsConfig::from_toml_str(&section(&strs, "")).unwrap();
        assert_eq!((cfg.committee.threshold, cfg.committee.epoch), (2, 0));
    }

    #[test]
    fn candidates_parse_and_bad_ones_are_named() {
        let m: Vec<String> = ids(3).iter().map(ToString::to_string).collect();
        let c = ids(2);
        let list = format!(
            "candidates = [{:?}, {:?}]\n",
            c[0].to_string(),
            c[1].to_string()
        );
        let cfg = SeedsConfig::from_toml_str(&section(&m, &list)).unwrap();
        assert_eq!(cfg.committee.candidates, c);
        // Written back as read.
        let again = SeedsConfig::from_toml_str(&toml::to_string(&cfg).unwrap()).unwrap();
        assert_eq!(again.committee.candidates, c);
        assert!(SeedsConfig::from_toml_str(&section(&m, ""))
            .unwrap()
            .committee
            .candidates
            .is_empty());
        let bad = format!(
            "candidates = [{:?}, \"nope\", {:?}]\n",
            c[0].to_string(),
            c[0].to_string()
        );
        let err = SeedsConfig::from_toml_str(&section(&m, &bad)).unwrap_err();
        assert_eq!(
            err.keys(),
            ["committee.candidates[1]", "committee.candidates[2]"],
            "{err}"
        );
        let many: Vec<String> = (0..=MAX_CANDIDATES).map(|i| format!("\"x{i}\"")).collect();
        let err = SeedsConfig::from_toml_str(&section(
            &m,
            &format!("candidates = [{}]\n", many.join(", ")),
        ))
        .unwrap_err();
        assert!(err.keys().contains(&"committee.candidates"), "{err}");
    }

    #[test]
    fn every_bad_value_is_named_by_its_key() {
        let m = ids(2);
        let strs = vec![
            m[0].to_string(),
            "not-a-peer-id".to_owned(),
            m[1].to_string(),
            m[0].to_string(),
        ];
        let err = SeedsConfig::from_toml_str(&section(&strs, "threshold = 5\n")).unwrap_err();
        assert_eq!(
            err.keys(),
            [
                "committee.members[1]",
                "committee.members[3]",
                "committee.threshold"
            ],
            "{err}"
        );
        let text = err.to_string();
        assert!(text.contains("duplicate member"), "{text}");
        assert!(
            text.contains("must not exceed the number of members (4)"),
            "{text}"
        );

        let strs: Vec<String> = ids(3).iter().map(ToString::to_string).collect();
        let err = SeedsConfig::from_toml_str(&section(&strs, "threshold = 1\n")).unwrap_err();
        assert_eq!(err.keys(), ["committee.threshold"]);
        let err = SeedsConfig::from_toml_str("[committee]\nthreshold = 0\n").unwrap_err();
        assert_eq!(err.keys(), ["committee.threshold"]);

        let one = vec![ids(1)[0].to_string()];
        let err = SeedsConfig::from_toml_str(&section(&one, "")).unwrap_err();
        assert_eq!(
            err.keys(),
            ["committee.members", "committee.threshold"],
            "{err}"
        );

        let err = SeedsConfig::from_toml_str("[committee]\nmembers = \"x\"\n").unwrap_err();
        assert_eq!(err.keys(), ["committee.members"]);
        let err = SeedsConfig::from_toml_str("[committee]\nepoch = -1\n").unwrap_err();
        assert_eq!(err.keys(), ["committee.epoch"]);
        let err = SeedsConfig::from_toml_str("[committee]\nproposer = 1\n").unwrap_err();
        assert_eq!(err.keys(), ["committee.proposer"]);
    }

    #[test]
    fn epoch_and_handoff_defaults_and_validation() {
        let cfg = SeedsConfig::from_toml_str("").unwrap();
        assert_eq!(cfg.committee.epoch_length.as_secs(), 21_600);
        assert_eq!(cfg.committee.handoff.as_secs(), 900);
        // Seconds-long epochs, as the tests use them.
        let cfg =
            SeedsConfig::from_toml_str("[committee]\nepoch_secs = 6\nhandoff_secs = 3\n").unwrap();
        assert_eq!(
            (
                cfg.committee.epoch_length.as_secs(),
                cfg.committee.handoff.as_secs()
            ),
            (6, 3)
        );
        for (text, key) in [
            (
                "epoch_secs = 1\nhandoff_secs = 0\n",
                vec!["committee.epoch_secs", "committee.handoff_secs"],
            ),
            (
                "epoch_secs = 10\nhandoff_secs = 10\n",
                vec!["committee.handoff_secs"],
            ),
            (
                "epoch_secs = 10\nhandoff_secs = 11\n",
                vec!["committee.handoff_secs"],
            ),
            ("handoff_secs = 21600\n", vec!["committee.handoff_secs"]),
            ("epoch_secs = 0\n", vec!["committee.epoch_secs"]),
        ] {
            let err = SeedsConfig::from_toml_str(&format!("[committee]\n{text}")).unwrap_err();
            assert_eq!(err.keys(), key, "{text}: {err}");
        }
        let err = SeedsConfig::from_toml_str("[committee]\nepoch_secs = 10\nhandoff_secs = 10\n")
            .unwrap_err();
        assert!(
            err.to_string().contains("must be below epoch_secs (10)"),
            "{err}"
        );
    }
}
