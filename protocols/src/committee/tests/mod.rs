//! Tests of the committee: DKG, signing, the guard and property tests. Every message between
//! members goes through its CBOR encoding.

use std::collections::{BTreeMap, VecDeque};

use rand_chacha_03::rand_core::SeedableRng;
use rand_chacha_03::ChaCha20Rng;

use super::*;

mod author;
mod dkg;
mod guard;
mod props;
mod rotation;
mod signing;
mod wire;

pub(crate) fn rng(seed: u64) -> ChaCha20Rng {
    ChaCha20Rng::seed_from_u64(seed)
}

pub(crate) fn member(i: usize) -> MemberId {
    // Shaped like an Ed25519 PeerId: 0x00 0x24 0x08 0x01 0x12 0x20 + 32 bytes.
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    b.extend_from_slice(&[i as u8; 32]);
    MemberId::new(b).unwrap()
}

pub(crate) fn config(t: u16, n: usize, epoch: u64) -> CommitteeConfig {
    CommitteeConfig {
        epoch,
        threshold: t,
        members: (0..n).map(member).collect(),
    }
}

/// Passes a DKG message through its wire encoding.
/// Any slot, for property tests.
pub(super) fn slot() -> impl proptest::strategy::Strategy<Value = Slot> {
    use proptest::prelude::*;
    prop_oneof![
        any::<u64>().prop_map(Slot::DaBlob),
        any::<[u8; 32]>().prop_map(Slot::Receipt),
    ]
}

/// Arbitrary bytes, shorter than `max`, for property tests.
pub(super) fn blob(max: usize) -> impl proptest::strategy::Strategy<Value = Vec<u8>> {
    proptest::collection::vec(proptest::prelude::any::<u8>(), 0..max)
}

pub(super) fn wire(msg: DkgMessage) -> DkgMessage {
    DkgMessage::from_bytes(&msg.to_bytes().unwrap()).unwrap()
}

/// Runs a full DKG with every member in-process; messages are delivered in FIFO order
/// through their CBOR encoding.
pub(crate) fn run_dkg(config: &CommitteeConfig, seed: u64) -> Vec<DkgOutput> {
    let mut rng = rng(seed);
    let mut sessions = Vec::new();
    // (from, to, message)
    let mut queue: VecDeque<(usize, usize, DkgMessage)> = VecDeque::new();
    let n = config.members.len();
    for i in 0..n {
        let (s, r1) = DkgSession::new(config.clone(), config.members[i].clone(), &mut rng).unwrap();
        sessions.push(s);
        for j in (0..n).filter(|j| *j != i) {
            queue.push_back((i, j, DkgMessage::Round1(r1.clone())));
        }
    }
    let mut outputs: BTreeMap<usize, DkgOutput> = BTreeMap::new();
    while let Some((from, to, msg)) = queue.pop_front() {
        let from_id = config.members[from].clone();
        match wire(msg) {
            DkgMessage::Round1(m) => {
                if let Some(r2) = sessions[to].on_round1(&from_id, &m).unwrap() {
                    for (dest, m2) in r2 {
                        let j = config.members.iter().position(|x| *x == dest).unwrap();
                        queue.push_back((to, j, DkgMessage::Round2(m2)));
                    }
                }
            }
            DkgMessage::Round2(m) => {
                if let Some(out) = sessions[to].on_round2(&from_id, &m).unwrap() {
                    outputs.insert(to, out);
                }
            }
        }
    }
    assert_eq!(outputs.len(), n, "every member finished");
    outputs.into_values().collect()
}

/// Signers for every member of a finished DKG.
pub(crate) fn signers(outputs: &[DkgOutput]) -> Vec<Signer> {
    outputs
        .iter()
        .map(|o| Signer::new(o.key_share.clone(), SlotGuard::new()))
        .collect()
}

/// One signing round with the members at `who` (indices), all messages through CBOR.
pub(crate) fn sign_with(
    signers: &mut [Signer],
    who: &[usize],
    slot: Slot,
    message: &[u8],
    rng: &mut ChaCha20Rng,
) -> Result<[u8; 64], SignError> {
    let proposer_share = signers[who[0]].key_share().clone();
    let mut round = SigningRound::new(&proposer_share, slot, message.to_vec())?;
    for &i in who {
        let c = signers[i].commit(slot, rng)?;
        let c = CommitmentMsg::from_bytes(&c.to_bytes().unwrap()).unwrap();
        round.on_commitment(signers[i].key_share().member(), &c)?;
    }
    let Some(package) = round.signing_package() else {
        return round.aggregate();
    };
    let package = SigningPackageMsg::from_bytes(&package.to_bytes().unwrap()).unwrap();
    for m in round.signers() {
        let i = signers
            .iter()
            .position(|s| *s.key_share().member() == m)
            .unwrap();
        let share = signers[i].sign(slot, &package)?;
        let share = SignatureShareMsg::from_bytes(&share.to_bytes().unwrap()).unwrap();
        round.on_share(&m, &share)?;
    }
    round.aggregate()
}
