//! Committee epochs on the DA log (issue 13 §3; Tahap 14A.2B.2 "epoch rotation"): the
//! `committee_rotated` event's payload, the rule that admits it into the DA state, and the
//! key history every node verifies blobs against.
//!
//! The DA authority of a network is not one key for ever: `[network] da_authority` in the
//! config is the **genesis** authority, the key of every height until the first recorded
//! rotation takes effect. A [`CommitteeRotation`] sealed in blob `s` by the committee of its
//! time names the next epoch's members, threshold and group key and the height
//! `effective_height` (in `s + 1 ..= s + MAX_ROTATION_LEAD`) from which blobs must be signed
//! by the new group key. The rotation is recorded in the state (keys `committee:<epoch>` and
//! `committee:latest`, see [`super::state::keys`]), so a node replaying the log from height 1
//! learns every key from the log itself: [`KeyHistory::key_for`].
//!
//! Why this is safe: the key of height `h` is a function of the blobs below `h` only (a
//! rotation takes effect strictly after the blob that carries it), so every node that
//! applied the same prefix expects the same key at `h`; a rotation is only accepted from
//! the key in force (it is inside a blob that key signed), and it must carry a signature by
//! the new group key over the rotation itself ([`CommitteeRotation::message`]), so the
//! current committee cannot hand the log to a key nobody holds.

use ed25519_dalek::{Signature, Signer, SigningKey};
use serde::{Deserialize, Serialize};

use super::blob::proposer::check_member;
use super::blob::{authority_key, DaBlob, VerifiedBlob};
use super::event::MAX_TEXT_LEN;
use super::{Bytes32, Bytes64, DaError};
use crate::committee::types::MAX_MEMBERS;
use crate::{codec, NetworkId};

/// Most heights between the blob carrying a rotation and the height it takes effect at:
/// `effective_height` is in `sealed_at + 1 ..= sealed_at + MAX_ROTATION_LEAD`.
pub const MAX_ROTATION_LEAD: u64 = 64;

/// Heights after a rotation took effect during which threshold receipts of the previous
/// epoch's key are still accepted ([`KeyHistory::receipt_keys`]).
pub const RECEIPT_HANDOFF_HEIGHTS: u64 = 64;

/// Largest CBOR body of one `committee_rotated` wire event, in bytes: up to
/// [`MAX_MEMBERS`] (64) member ids of at most [`MAX_TEXT_LEN`] (128) bytes each (130 bytes
/// with their CBOR header), plus about 130 bytes of fixed fields.
pub const MAX_ROTATION_EVENT_BODY_BYTES: usize = MAX_MEMBERS * (MAX_TEXT_LEN + 2) + 256;

/// Domain separator of [`CommitteeRotation::message`].
const ROTATION_DOMAIN: &str = "dsdn/committee-rotated/v1";

/// The payload of a `committee_rotated` DA event: the committee of `epoch` and its group key,
/// in force from `effective_height` on.
///
/// JSON form (inside the event object): `"epoch": u64, "members": ["12D3KooW…", …],
/// "threshold": u16, "group_key": "<64 hex>", "effective_height": u64,
/// "key_proof": "<128 hex>"`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CommitteeRotation {
    /// The new epoch (≥ 1; the first recorded rotation may name any epoch, every later one
    /// the previous recorded epoch + 1).
    pub epoch: u64,
    /// The new committee's PeerIds (base58 text), in proposer order; 1..=[`MAX_MEMBERS`]
    /// distinct ids of 1..=[`MAX_TEXT_LEN`] bytes.
    pub members: Vec<String>,
    /// Shares needed for a signature: `1 ≤ threshold ≤ members.len()` and
    /// `2 · threshold > members.len()` (the locking rule's safety condition).
    pub threshold: u16,
    /// The new committee's FROST group key (an Ed25519 public key).
    pub group_key: Bytes32,
    /// First height whose blob must be signed by `group_key`.
    pub effective_height: u64,
    /// Ed25519 signature by `group_key` over [`CommitteeRotation::message`]: proof that
    /// the new committee holds its key (a FROST threshold signature of the new members).
    pub key_proof: Bytes64,
}

fn malformed(e: impl std::fmt::Display) -> DaError {
    DaError::Malformed(format!("committee_rotated event: {e}"))
}

impl CommitteeRotation {
    /// The bytes the new group key signs: the CBOR array `["dsdn/committee-rotated/v1",
    /// network, epoch, members, threshold, group_key: bytes32, effective_height]`.
    ///
    /// # Errors
    /// [`DaError::Malformed`] when the encoding would exceed
    /// [`MAX_ROTATION_EVENT_BODY_BYTES`] (members far beyond their bounds).
    pub fn message(&self, network: &NetworkId) -> Result<Vec<u8>, DaError> {
        codec::encode(
            &(
                ROTATION_DOMAIN,
                network.as_str(),
                self.epoch,
                &self.members,
                self.threshold,
                &self.group_key,
                self.effective_height,
            ),
            MAX_ROTATION_EVENT_BODY_BYTES,
        )
        .map_err(malformed)
    }

    /// Signs the rotation with the new group's key as one Ed25519 key (a single-key
    /// authority, or tests); a committee produces the same signature with FROST.
    ///
    /// # Errors
    /// As [`CommitteeRotation::message`].
    pub fn sign_with(mut self, network: &NetworkId, key: &SigningKey) -> Result<Self, DaError> {
        self.key_proof = Bytes64(key.sign(&self.message(network)?).to_bytes());
        Ok(self)
    }

    /// Checks the bounds: epoch ≥ 1, members 1..=[`MAX_MEMBERS`] distinct texts of
    /// 1..=[`MAX_TEXT_LEN`] bytes, threshold as documented on the field, effective height
    /// ≥ 2 (height 1 is always the genesis authority's).
    ///
    /// # Errors
    /// [`DaError::Malformed`] naming the field.
    pub fn validate(&self) -> Result<(), DaError> {
        if self.epoch == 0 {
            return Err(malformed("field epoch must be at least 1"));
        }
        let n = self.members.len();
        if n == 0 || n > MAX_MEMBERS {
            return Err(malformed(format_args!(
                "field members must hold 1-{MAX_MEMBERS} ids"
            )));
        }
        let mut seen = std::collections::BTreeSet::new();
        for m in &self.members {
            if m.is_empty() || m.len() > MAX_TEXT_LEN {
                return Err(malformed(format_args!(
                    "field members: ids must be 1-{MAX_TEXT_LEN} bytes"
                )));
            }
            if !seen.insert(m) {
                return Err(malformed(format_args!("field members: {m} twice")));
            }
        }
        let t = usize::from(self.threshold);
        if t == 0 || t > n || 2 * t <= n {
            return Err(malformed(format_args!(
                "field threshold {t} of {n} members (need 2t > n, t ≤ n)"
            )));
        }
        if self.effective_height < 2 {
            return Err(malformed("field effective_height must be at least 2"));
        }
        Ok(())
    }

    /// Checks that `key_proof` is a valid (`verify_strict`) signature by `group_key` over
    /// [`CommitteeRotation::message`], and that `group_key` is a usable key.
    pub fn key_proof_valid(&self, network: &NetworkId) -> bool {
        let Ok(key) = authority_key(&self.group_key.0) else {
            return false;
        };
        let Ok(msg) = self.message(network) else {
            return false;
        };
        key.verify_strict(&msg, &Signature::from_bytes(&self.key_proof.0))
            .is_ok()
    }
}

/// One recorded epoch of the key history: a [`CommitteeRotation`] as applied, plus the
/// height of the blob that carried it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// The epoch.
    pub epoch: u64,
    /// Its committee, in proposer order.
    pub members: Vec<String>,
    /// Its threshold.
    pub threshold: u16,
    /// Its group key.
    pub group_key: Bytes32,
    /// First height signed by `group_key`.
    pub effective_height: u64,
    /// Height of the blob that carried the rotation (< `effective_height`).
    pub sealed_at: u64,
}

impl EpochRecord {
    /// The record of `rotation` sealed at height `sealed_at`.
    pub fn of(rotation: &CommitteeRotation, sealed_at: u64) -> EpochRecord {
        EpochRecord {
            epoch: rotation.epoch,
            members: rotation.members.clone(),
            threshold: rotation.threshold,
            group_key: rotation.group_key,
            effective_height: rotation.effective_height,
            sealed_at,
        }
    }
}

/// Whether `rotation`, in the blob at `height`, is admitted after `latest` (the last recorded
/// epoch, `None` before the first rotation). A pure, config-free rule, so every node
/// replaying the log decides alike. `Err` carries the [`super::EventOutcome::Ignored`] label:
/// - `invalid`: [`CommitteeRotation::validate`] fails;
/// - `rotation_pending`: `latest` has not taken effect yet (`height < effective_height`),
///   so the committee sealing this blob is not the one of `latest`;
/// - `epoch_out_of_order`: the epoch is not `latest.epoch + 1`;
/// - `bad_effective_height`: not in `height + 1 ..= height + MAX_ROTATION_LEAD`;
/// - `bad_key_proof`: [`CommitteeRotation::key_proof_valid`] fails.
pub fn admit_rotation(
    latest: Option<&EpochRecord>,
    rotation: &CommitteeRotation,
    network: &NetworkId,
    height: u64,
) -> Result<(), &'static str> {
    if rotation.validate().is_err() {
        return Err("invalid");
    }
    if let Some(latest) = latest {
        if height < latest.effective_height {
            return Err("rotation_pending");
        }
        if Some(rotation.epoch) != latest.epoch.checked_add(1) {
            return Err("epoch_out_of_order");
        }
    }
    if rotation.effective_height <= height
        || rotation.effective_height > height.saturating_add(MAX_ROTATION_LEAD)
    {
        return Err("bad_effective_height");
    }
    if !rotation.key_proof_valid(network) {
        return Err("bad_key_proof");
    }
    Ok(())
}

/// The DA authority key of every height: the genesis authority (config) followed by the
/// epochs recorded in the log, in order. Memory: one [`EpochRecord`] per recorded epoch
/// (a few hundred bytes; 4 epochs a day at the 6 h default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyHistory {
    genesis: [u8; 32],
    epochs: Vec<EpochRecord>,
}

impl KeyHistory {
    /// The history of a log with no rotation yet: `genesis` signs every height.
    pub fn new(genesis: [u8; 32]) -> KeyHistory {
        KeyHistory {
            genesis,
            epochs: Vec::new(),
        }
    }

    /// The history of `genesis` followed by `epochs` (ascending, as [`admit_rotation`]
    /// admitted them; e.g. read from the DA state).
    pub fn with_epochs(genesis: [u8; 32], epochs: Vec<EpochRecord>) -> KeyHistory {
        KeyHistory { genesis, epochs }
    }

    /// Appends an epoch recorded after the last one (ignored when its epoch is not newer:
    /// the history only grows).
    pub fn push(&mut self, record: EpochRecord) {
        if self.epochs.last().is_none_or(|l| record.epoch > l.epoch) {
            self.epochs.push(record);
        }
    }

    /// The genesis authority.
    pub fn genesis(&self) -> [u8; 32] {
        self.genesis
    }

    /// The recorded epochs, oldest first.
    pub fn epochs(&self) -> &[EpochRecord] {
        &self.epochs
    }

    /// The last recorded epoch, if any.
    pub fn latest(&self) -> Option<&EpochRecord> {
        self.epochs.last()
    }

    /// The epoch in force at `height`: the last recorded one whose `effective_height` is
    /// ≤ `height` (`None`: the genesis authority's).
    pub fn epoch_at(&self, height: u64) -> Option<&EpochRecord> {
        let i = self
            .epochs
            .partition_point(|e| e.effective_height <= height);
        i.checked_sub(1).map(|i| &self.epochs[i])
    }

    /// The key that must sign the blob at `height`. Final for heights up to the applied
    /// tip + 1; for a height further ahead, a rotation in a blob not applied yet may still
    /// change it.
    pub fn key_for(&self, height: u64) -> [u8; 32] {
        self.epoch_at(height)
            .map_or(self.genesis, |e| e.group_key.0)
    }

    /// The keys whose threshold receipts are valid when the log's next height is
    /// `next_height` (issue 13 §3, "both keys are valid for receipts during the handoff"):
    /// the key in force (`key_for(next_height)`) and, around a rotation, the other one —
    /// the NEW group key from the moment its rotation is recorded until it takes effect
    /// (the next committee holds it as soon as its DKG finished), and the PREVIOUS key for
    /// [`RECEIPT_HANDOFF_HEIGHTS`] heights after the new one took effect (receipts the
    /// leaving committee signed in the handoff are still in flight). A pure function of
    /// the log, so every node accepts the same receipts.
    pub fn receipt_keys(&self, next_height: u64) -> ([u8; 32], Option<[u8; 32]>) {
        let current = self.key_for(next_height);
        let Some(latest) = self.latest() else {
            return (current, None);
        };
        if next_height < latest.effective_height {
            return (current, Some(latest.group_key.0));
        }
        if next_height
            < latest
                .effective_height
                .saturating_add(RECEIPT_HANDOFF_HEIGHTS)
        {
            let previous = self.key_for(latest.effective_height.saturating_sub(1));
            if previous != current {
                return (current, Some(previous));
            }
        }
        (current, None)
    }

    /// The group key of committee epoch `epoch` as the log records it: a recorded epoch's
    /// key; the genesis authority for an epoch before the first recorded one (or any epoch
    /// while none is recorded: the genesis committee's epoch number is configuration, not
    /// log); `None` for an epoch after the last recorded one. What a threshold receipt
    /// naming `epoch` must verify under (e.g. `dsdn-agent receipt verify`), whether its
    /// handoff is over or not.
    pub fn key_of_epoch(&self, epoch: u64) -> Option<[u8; 32]> {
        match self.epochs.first() {
            None => Some(self.genesis),
            Some(first) if epoch < first.epoch => Some(self.genesis),
            Some(_) => self
                .epochs
                .iter()
                .find(|e| e.epoch == epoch)
                .map(|e| e.group_key.0),
        }
    }

    /// Verifies `blob` against the key of its height ([`KeyHistory::key_for`],
    /// [`DaBlob::verify`]) and, for a version-4 blob of a recorded epoch, that its
    /// proposer is one of that epoch's members (issue 13 §6). Under the genesis authority
    /// the log records no member list (the genesis committee is configuration), so only the
    /// proposer's signature is checked there; the members that co-signed checked
    /// membership against their configured committee.
    ///
    /// # Errors
    /// As [`DaBlob::verify`]; [`DaError::BadProposer`] for a proposer outside its epoch.
    pub fn verify_blob(&self, blob: DaBlob, network: &NetworkId) -> Result<VerifiedBlob, DaError> {
        let key = self.key_for(blob.height);
        let verified = blob.verify(network, &key)?;
        if let (Some(proposer), Some(epoch)) =
            (verified.proposer(), self.epoch_at(verified.height()))
        {
            check_member(proposer, &epoch.members)?;
        }
        Ok(verified)
    }

    /// True when `key` is the genesis authority or a recorded group key (e.g. a signer
    /// dispute's key).
    pub fn knows(&self, key: &[u8; 32]) -> bool {
        *key == self.genesis || self.epochs.iter().any(|e| e.group_key.0 == *key)
    }
}
