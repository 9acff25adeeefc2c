//! Tests of the DA log: one submodule per module, plus property tests.

use ed25519_dalek::SigningKey;

use super::*;
use crate::NetworkId;

mod blob;
mod blob_v4;
mod chain;
mod epochs;
mod event;
mod evidence;
mod props;
mod receipt;
mod registry;
mod state;
mod tree;

pub(super) fn key(n: u8) -> SigningKey {
    SigningKey::from_bytes(&[n; 32])
}

/// The DA authority of the tests.
pub(super) fn authority() -> SigningKey {
    key(1)
}

pub(super) fn auth() -> [u8; 32] {
    authority().verifying_key().to_bytes()
}

pub(super) fn net() -> NetworkId {
    NetworkId::new("devnet").unwrap()
}

pub(super) fn other_net() -> NetworkId {
    NetworkId::new("testnet").unwrap()
}

pub(super) fn node(id: &str, zone: &str) -> DaEvent {
    DaEvent::NodeRegistered {
        node_id: id.into(),
        zone: zone.into(),
        capacity_bytes: 1 << 40,
        class: "regular".into(),
    }
}

/// Owner key of chunk `n` in the tests.
pub(super) fn owner(n: u8) -> SigningKey {
    key(100u8.wrapping_add(n))
}

pub(super) fn chunk(n: u8) -> DaEvent {
    DaEvent::ChunkDeclared {
        chunk_id: Bytes32([n; 32]),
        size_bytes: 4096,
        owner: Bytes32(owner(n).verifying_key().to_bytes()),
    }
}

pub(super) fn add(n: u8, node_id: &str) -> DaEvent {
    DaEvent::ReplicaAdded {
        chunk_id: Bytes32([n; 32]),
        node_id: node_id.into(),
    }
}

pub(super) fn remove(n: u8, node_id: &str) -> DaEvent {
    DaEvent::ReplicaRemoved {
        chunk_id: Bytes32([n; 32]),
        node_id: node_id.into(),
    }
}

pub(super) fn delete(n: u8) -> DaEvent {
    DaEvent::delete_requested(&owner(n), &net(), Bytes32([n; 32]))
}

/// One event of every kind, all applicable in this order on an empty state.
pub(super) fn sample_events() -> Vec<DaEvent> {
    vec![
        node("12D3KooWnode", "id-jkt-1"),
        chunk(1),
        add(1, "12D3KooWnode"),
        remove(1, "12D3KooWnode"),
        delete(1),
    ]
}

/// A verified blob signed by the test authority, committing to the empty state's root
/// (right at height 1; for chains see [`chain_of`] and [`signed_root`]).
pub(super) fn signed(height: u64, prev: [u8; 32], ts: u64, events: Vec<DaEvent>) -> VerifiedBlob {
    signed_root(height, prev, empty_root(), ts, events)
}

/// A verified blob signed by the test authority committing to `root`.
pub(super) fn signed_root(
    height: u64,
    prev: [u8; 32],
    root: [u8; 32],
    ts: u64,
    events: Vec<DaEvent>,
) -> VerifiedBlob {
    DaBlob::sign(&authority(), &net(), height, prev, root, ts, events)
        .unwrap()
        .verify(&net(), &auth())
        .unwrap()
}

/// The next blob of `s` (right height, hash and root) signed by the test authority.
pub(super) fn next_of(s: &DaState, ts: u64, events: Vec<DaEvent>) -> VerifiedBlob {
    s.seal_next(&authority(), ts, events)
        .unwrap()
        .verify(&net(), &auth())
        .unwrap()
}

/// The events of blob `h` of [`chain_of`]: a mix of every kind, some of them no-ops.
pub(super) fn chain_events(h: u64) -> Vec<DaEvent> {
    let n = (h % 251) as u8;
    let node_id = format!("node-{}", h % 7);
    let zone = format!("zone-{}", h % 3);
    vec![
        node(&node_id, &zone),
        chunk(n),
        add(n, &node_id),
        add(n.wrapping_sub(1), &format!("node-{}", (h + 3) % 7)),
        remove(n.wrapping_sub(2), &node_id),
        delete(n.wrapping_sub(3)),
        chunk(n.wrapping_sub(5)),
    ]
}

/// A valid chain of `len` verified blobs from genesis, timestamps non-decreasing.
pub(super) fn chain_of(len: u64) -> Vec<VerifiedBlob> {
    let mut state = DaState::new(net());
    let mut out = Vec::new();
    for h in 1..=len {
        let blob = next_of(&state, 1_000 + h / 2, chain_events(h));
        state.apply_blob(&blob).unwrap();
        out.push(blob);
    }
    out
}
