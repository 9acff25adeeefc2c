//! Deterministic sample DA events for devnets, tests and benchmarks.

use dsdn_protocols::da::{Bytes32, DaEvent};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;

/// Zones the sample nodes are spread over.
const ZONES: [&str; 3] = ["id-jkt-1", "id-sby-1", "sg-sin-1"];

/// Events per sample chunk: declared, two replicas added, one removed, delete requested.
const EVENTS_PER_CHUNK: usize = 5;

/// Node id used when no storage node ids are given: a valid PeerId (events naming no
/// PeerId are refused for sealing) of no running node.
const PLACEHOLDER_NODE: &str = "12D3KooWBwoKmnBmkaAa6DTB2KLpitECR9ay8qydC3wUwdrdQLS1";

/// A deterministic, valid ([`DaEvent::validate_for_sealing`]) sequence of DA events covering every
/// variant:
///
/// 1. one `NodeRegistered` per id of `storage_node_ids` (zones `id-jkt-1`, `id-sby-1`,
///    `sg-sin-1` in turn; every third node of class `datacenter`, the others `regular`);
/// 2. then, per sample chunk *i*: `ChunkDeclared`, `ReplicaAdded` on node *i* and on node
///    *i + 1* (one only when there is a single node), `ReplicaRemoved` from node *i*,
///    `DeleteRequested` (with a real Ed25519 signature by the chunk's owner over
///    [`DaEvent::delete_message`] for `devnet`), until `count` events are reached.
///
/// Returns `max(count, ids + 5)` events so every variant appears at least once. With no ids,
/// the placeholder node id `devnet-node-0` is used.
pub fn sample_da_events(storage_node_ids: &[String], count: usize) -> Vec<DaEvent> {
    sample_da_events_for(&devnet(), storage_node_ids, count)
}

fn devnet() -> NetworkId {
    NetworkId::new("devnet").unwrap_or_else(|e| unreachable!("{e}"))
}

/// As [`sample_da_events`], with the `DeleteRequested` signatures made for `network` (the
/// owner signs [`DaEvent::delete_message`], which names the network).
pub(crate) fn sample_da_events_for(
    network: &NetworkId,
    storage_node_ids: &[String],
    count: usize,
) -> Vec<DaEvent> {
    let placeholder = [PLACEHOLDER_NODE.to_owned()];
    let ids: &[String] = if storage_node_ids.is_empty() {
        &placeholder
    } else {
        storage_node_ids
    };
    let total = count.max(ids.len() + EVENTS_PER_CHUNK);
    let mut events: Vec<DaEvent> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| DaEvent::NodeRegistered {
            node_id: id.clone(),
            zone: ZONES[i % ZONES.len()].to_owned(),
            capacity_bytes: (i as u64 + 1) * 512 * (1 << 30),
            class: if i % 3 == 2 { "datacenter" } else { "regular" }.to_owned(),
        })
        .collect();
    let owner = SigningKey::from_bytes(&[0x42; 32]);
    let owner_pub = Bytes32(owner.verifying_key().to_bytes());
    let mut chunk = 0usize;
    while events.len() < total {
        let chunk_id = Bytes32(sample_chunk_id(chunk as u64));
        let first = ids[chunk % ids.len()].clone();
        let second = ids[(chunk + 1) % ids.len()].clone();
        let mut group = vec![
            DaEvent::ChunkDeclared {
                chunk_id,
                size_bytes: 1 << (16 + chunk % 8),
                owner: owner_pub,
            },
            DaEvent::ReplicaAdded {
                chunk_id,
                node_id: first.clone(),
            },
        ];
        if second != first {
            group.push(DaEvent::ReplicaAdded {
                chunk_id,
                node_id: second,
            });
        }
        group.push(DaEvent::ReplicaRemoved {
            chunk_id,
            node_id: first,
        });
        group.push(DaEvent::delete_requested(&owner, network, chunk_id));
        let room = total - events.len();
        events.extend(group.into_iter().take(room));
        chunk += 1;
    }
    events
}

/// 32 pseudo-random but deterministic bytes for sample chunk `i` (splitmix64).
fn sample_chunk_id(i: u64) -> [u8; 32] {
    let mut state = i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xD5D0_0000_0000_0001;
    let mut out = [0u8; 32];
    for word in out.chunks_mut(8) {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        word.copy_from_slice(&z.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use ed25519_dalek::{Signature, Verifier, VerifyingKey};

    use super::*;

    /// `n` PeerIds (events naming anything else are refused for sealing).
    fn ids(n: usize) -> Vec<String> {
        (0..n)
            .map(|i| {
                libp2p::identity::Keypair::ed25519_from_bytes([i as u8 + 1; 32])
                    .expect("32 bytes")
                    .public()
                    .to_peer_id()
                    .to_base58()
            })
            .collect()
    }

    #[test]
    fn valid_complete_and_deterministic() {
        let nodes = ids(4);
        let events = sample_da_events(&nodes, 20);
        assert_eq!(events.len(), 20);
        for e in &events {
            e.validate_for_sealing().expect("valid event");
        }
        let kinds: BTreeSet<&str> = events.iter().map(DaEvent::kind).collect();
        assert_eq!(
            kinds.into_iter().collect::<Vec<_>>(),
            [
                "chunk_declared",
                "delete_requested",
                "node_registered",
                "replica_added",
                "replica_removed"
            ]
        );
        for (i, id) in nodes.iter().enumerate() {
            assert!(matches!(&events[i], DaEvent::NodeRegistered { node_id, .. } if node_id == id));
        }
        assert_eq!(events, sample_da_events(&nodes, 20));
    }

    #[test]
    fn every_variant_even_when_count_is_small() {
        let events = sample_da_events(&ids(6), 1);
        assert_eq!(events.len(), 6 + EVENTS_PER_CHUNK);
        let kinds: BTreeSet<&str> = events.iter().map(DaEvent::kind).collect();
        assert_eq!(kinds.len(), 5);
    }

    #[test]
    fn single_and_no_node() {
        for nodes in [ids(1), Vec::new()] {
            let events = sample_da_events(&nodes, 30);
            assert_eq!(events.len(), 30);
            events
                .iter()
                .for_each(|e| e.validate_for_sealing().expect("valid"));
            let kinds: BTreeSet<&str> = events.iter().map(DaEvent::kind).collect();
            assert_eq!(kinds.len(), 5);
        }
    }

    #[test]
    fn delete_signatures_verify_and_chunks_differ() {
        let events = sample_da_events(&ids(2), 40);
        let mut chunks = BTreeSet::new();
        for e in &events {
            let DaEvent::ChunkDeclared {
                chunk_id, owner, ..
            } = e
            else {
                continue;
            };
            assert!(chunks.insert(chunk_id.0));
            let key = VerifyingKey::from_bytes(&owner.0).expect("key");
            let sig = events.iter().find_map(|d| match d {
                DaEvent::DeleteRequested {
                    chunk_id: c,
                    owner_signature,
                } if c == chunk_id => Some(owner_signature.0),
                _ => None,
            });
            let msg = DaEvent::delete_message(&devnet(), chunk_id);
            if let Some(sig) = sig {
                key.verify(&msg, &Signature::from_bytes(&sig))
                    .expect("owner signature");
            }
        }
        assert!(chunks.len() >= 5);
        // Replayed, every event changes the state: nothing is ignored.
        let authority = SigningKey::from_bytes(&[5; 32]);
        let blob = dsdn_protocols::da::DaBlob::sign(
            &authority,
            &devnet(),
            1,
            [0; 32],
            dsdn_protocols::da::empty_root(),
            1,
            events,
        )
        .expect("sign")
        .verify(&devnet(), &authority.verifying_key().to_bytes())
        .expect("verify");
        let mut state = dsdn_protocols::da::DaState::new(devnet());
        let summary = state.apply_blob(&blob).expect("apply");
        assert_eq!(summary.ignored, 0, "{summary:?}");
    }

    #[test]
    fn json_form_round_trips() {
        let events = sample_da_events(&ids(4), 20);
        let json = serde_json::to_string(&events).expect("json");
        assert!(json.contains("\"type\":\"node_registered\""));
        let back: Vec<DaEvent> = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, events);
    }
}
