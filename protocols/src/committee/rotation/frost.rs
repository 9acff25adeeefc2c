//! [`FrostRoundCrypto`]: the rotation's [`RoundCrypto`] with FROST (Ed25519), as the daemon
//! runs it.

use std::collections::BTreeMap;

use frost_ed25519 as frost;
use rand_core_06::OsRng;

use super::msg::{CryptoError, RoundCrypto, SignerCommitment, MAX_COMMITMENT_BYTES};
use crate::committee::types::KeyShareFile;

/// Most `(height, round)` nonce pairs kept at once; committing to one more drops the
/// lowest (a member only signs in its current round, so older nonces are dead anyway).
pub const MAX_ROUND_NONCES: usize = 16;

/// FROST for [`super::HeightConsensus`]: fresh nonces per `(height, round)`, kept in memory
/// only (a restarted member has none and, resuming in `round + 1`, needs none) and consumed
/// by the one share they make.
pub struct FrostRoundCrypto {
    key_share: KeyShareFile,
    nonces: BTreeMap<(u64, u64), frost::round1::SigningNonces>,
}

impl std::fmt::Debug for FrostRoundCrypto {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrostRoundCrypto")
            .field("member", self.key_share.member())
            .field("open_rounds", &self.nonces.keys().collect::<Vec<_>>())
            .finish()
    }
}

impl FrostRoundCrypto {
    /// The scheme of the member holding `key_share`.
    pub fn new(key_share: KeyShareFile) -> Self {
        Self {
            key_share,
            nonces: BTreeMap::new(),
        }
    }

    /// The key share.
    pub fn key_share(&self) -> &KeyShareFile {
        &self.key_share
    }

    /// The FROST signing package of `message` for `signers`.
    fn package(
        &self,
        message: &[u8],
        signers: &[SignerCommitment],
    ) -> Result<(frost::SigningPackage, Vec<frost::Identifier>), CryptoError> {
        let config = self.key_share.config();
        let mut commitments = BTreeMap::new();
        let mut ids = Vec::with_capacity(signers.len());
        for s in signers {
            let id = config
                .identifier(&s.member)
                .ok_or_else(|| CryptoError::Failed(format!("{} is no member", s.member)))?;
            let c =
                frost::round1::SigningCommitments::deserialize(&s.commitment).map_err(|_| {
                    CryptoError::Failed(format!("commitment of {} does not parse", s.member))
                })?;
            commitments.insert(id, c);
            ids.push(id);
        }
        Ok((frost::SigningPackage::new(commitments, message), ids))
    }
}

impl RoundCrypto for FrostRoundCrypto {
    fn commit(&mut self, height: u64, round: u64) -> Result<Vec<u8>, CryptoError> {
        let (nonces, commitments) =
            frost::round1::commit(self.key_share.key_package().signing_share(), &mut OsRng);
        let bytes = commitments
            .serialize()
            .map_err(|e| CryptoError::Failed(e.to_string()))?;
        if bytes.len() > MAX_COMMITMENT_BYTES {
            return Err(CryptoError::Failed("commitment over the cap".into()));
        }
        self.nonces.insert((height, round), nonces);
        while self.nonces.len() > MAX_ROUND_NONCES {
            self.nonces.pop_first();
        }
        Ok(bytes)
    }

    fn sign(
        &mut self,
        height: u64,
        round: u64,
        message: &[u8],
        signers: &[SignerCommitment],
    ) -> Result<Vec<u8>, CryptoError> {
        let (package, _) = self.package(message, signers)?;
        let me = self.key_share.key_package().identifier();
        // Consumed whatever happens next: a nonce signs at most once.
        let nonces = self.nonces.remove(&(height, round)).ok_or_else(|| {
            CryptoError::Failed(format!("no nonces for height {height} round {round}"))
        })?;
        if package.signing_commitments().get(me) != Some(nonces.commitments()) {
            return Err(CryptoError::Failed(
                "the package does not carry our commitment".into(),
            ));
        }
        let share = frost::round2::sign(&package, &nonces, self.key_share.key_package())
            .map_err(|e| CryptoError::Failed(e.to_string()))?;
        Ok(share.serialize())
    }

    fn aggregate(
        &mut self,
        _height: u64,
        _round: u64,
        message: &[u8],
        signers: &[SignerCommitment],
        shares: &[Vec<u8>],
    ) -> Result<Vec<u8>, CryptoError> {
        let (package, ids) = self.package(message, signers)?;
        if shares.len() != ids.len() {
            return Err(CryptoError::Failed("one share per signer".into()));
        }
        let mut map = BTreeMap::new();
        for ((id, share), s) in ids.iter().zip(shares).zip(signers) {
            let share = frost::round2::SignatureShare::deserialize(share)
                .map_err(|_| CryptoError::InvalidShare(s.member.clone()))?;
            map.insert(*id, share);
        }
        let config = self.key_share.config();
        let signature = frost::aggregate(&package, &map, self.key_share.public_key_package())
            .map_err(
                |e| match e.culprits().first().and_then(|id| config.member(id)) {
                    Some(m) => CryptoError::InvalidShare(m.clone()),
                    None => CryptoError::Failed(e.to_string()),
                },
            )?;
        let bytes = signature
            .serialize()
            .map_err(|e| CryptoError::Failed(e.to_string()))?;
        let sig = <[u8; 64]>::try_from(bytes.as_slice())
            .map_err(|_| CryptoError::Failed("signature is not 64 bytes".into()))?;
        if !self.key_share.group_key().verify(message, &sig) {
            return Err(CryptoError::Failed(
                "aggregate signature fails strict Ed25519 verification".into(),
            ));
        }
        Ok(bytes)
    }
}
