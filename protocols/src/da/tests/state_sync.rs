//! State sync (issue 16 §5): chunks built from a state restore it exactly (same root, same
//! proofs, and the next blobs give the same roots as on the original), and any change to a
//! chunk (value, key, order, proof, root, a held-back tail) is refused.

use std::collections::HashMap;

use super::*;
use crate::da::state::{MemStore, StateProof};
use crate::da::tests::{chain_events, net, next_of};
use crate::da::DaState;

/// A state after `blobs` blobs of [`chain_events`].
fn state(blobs: u64) -> DaState {
    let mut s = DaState::new(net());
    for h in 1..=blobs {
        let b = next_of(&s, 1_000 + h, chain_events(h));
        s.apply_blob(&b).unwrap();
    }
    s
}

/// Every key of `s` by key hash (the preimage table of a full node).
fn preimages(s: &DaState) -> HashMap<KeyHash, StateKey> {
    s.store()
        .keys_in(
            &StateKey::Node(String::new()),
            &StateKey::CommitteeLatest,
            usize::MAX,
        )
        .unwrap()
        .into_iter()
        .map(|k| (k.key_hash(), k))
        .collect()
}

/// All chunks of `s` at its height, `per` entries each.
fn chunks(s: &DaState, per: u32) -> Vec<StateChunk> {
    let pre = preimages(s);
    let lookup = |kh: &KeyHash| Ok(pre.get(kh).cloned());
    let mut out: Vec<StateChunk> = Vec::new();
    let mut after = None;
    loop {
        let request = StateChunkRequest {
            height: s.height(),
            after,
            max_entries: per,
        };
        let c = build_chunk(s.store(), &lookup, &request, s.state_root(), *s.header()).unwrap();
        assert!(c.entries.len() <= per.max(1) as usize);
        let last = c.last;
        after = c
            .entries
            .last()
            .map(|e| Bytes32(StateKey::from_bytes(&e.key).unwrap().key_hash().0));
        out.push(c);
        if last {
            return out;
        }
    }
}

/// Restores from `chunks`; the first refusal is returned.
fn restore(checkpoint: StateHeader, chunks: &[StateChunk]) -> Result<MemStore, DaError> {
    let mut r = StateRestore::new(checkpoint)?;
    let mut nodes = Vec::new();
    let mut entries = Vec::new();
    for c in chunks {
        let part = r.add(c)?;
        nodes.extend(part.nodes);
        entries.extend(part.entries);
    }
    assert!(r.is_done(), "all chunks added but not done");
    Ok(MemStore::restored(r.header(), nodes, entries))
}

#[test]
fn a_restored_state_has_the_same_root_proofs_and_next_roots() {
    let mut original = state(60);
    let cs = chunks(&original, 7);
    assert!(cs.len() > 5, "{} chunks", cs.len());
    let store = restore(*original.header(), &cs).unwrap();
    let mut synced = DaState::with_store(net(), Box::new(store));
    assert_eq!(synced.header(), original.header());
    assert_eq!(synced.state_root(), original.state_root());
    for key in preimages(&original).values().take(50) {
        let p = synced.prove(key).unwrap();
        assert_eq!(p.verify(original.state_root()).unwrap().0, *key);
        assert_eq!(synced.get(key).unwrap(), original.get(key).unwrap());
    }
    let absent = StateKey::Node("nobody".into());
    let p: StateProof = synced.prove(&absent).unwrap();
    assert_eq!(p.verify(original.state_root()).unwrap().1, None);
    // The same next blobs give the same roots on both.
    for h in 61..=80 {
        let b = next_of(&original, 1_000 + h, chain_events(h));
        original.apply_blob(&b).unwrap();
        synced.apply_blob(&b).unwrap();
        assert_eq!(synced.state_root(), original.state_root(), "height {h}");
        assert_eq!(synced.header(), original.header(), "height {h}");
    }
}

#[test]
fn one_chunk_and_single_entries_restore_too() {
    let original = state(20);
    for per in [0, 1, MAX_CHUNK_ENTRIES, u32::MAX] {
        let cs = chunks(&original, per);
        if per >= MAX_CHUNK_ENTRIES {
            assert_eq!(cs.len(), 1);
        }
        let store = restore(*original.header(), &cs).unwrap();
        assert_eq!(store.header().root, original.header().root);
    }
}

#[test]
fn the_empty_state_restores() {
    let original = DaState::new(net());
    let cs = chunks(&original, 10);
    assert_eq!(cs.len(), 1);
    assert!(cs[0].entries.is_empty() && cs[0].proof.is_none());
    let store = restore(*original.header(), &cs).unwrap();
    let mut synced = DaState::with_store(net(), Box::new(store));
    let b = next_of(&original, 5, chain_events(1));
    synced.apply_blob(&b).unwrap();
    let mut replayed = DaState::new(net());
    replayed.apply_blob(&b).unwrap();
    assert_eq!(synced.state_root(), replayed.state_root());
}

fn refused(checkpoint: StateHeader, cs: &[StateChunk], what: &str) {
    match restore(checkpoint, cs) {
        Err(DaError::Malformed(m)) => assert!(!m.is_empty(), "{what}"),
        Err(e) => panic!("{what}: unexpected error {e}"),
        Ok(_) => panic!("{what}: a tampered chunk was accepted"),
    }
}

#[test]
fn tampered_chunks_are_refused() {
    let original = state(40);
    let cp = *original.header();
    let cs = chunks(&original, 10);
    assert!(cs.len() >= 3);

    // A changed value that still decodes (a zone's count).
    let mut t = cs.clone();
    let (ci, ei) = t
        .iter()
        .enumerate()
        .find_map(|(ci, c)| {
            c.entries
                .iter()
                .position(|e| matches!(StateKey::from_bytes(&e.key), Ok(StateKey::Zone(_))))
                .map(|ei| (ci, ei))
        })
        .unwrap();
    t[ci].entries[ei].value = ByteBuf::from(StateValue::Zone { nodes: 999 }.encode());
    refused(cp, &t, "tampered value");

    // Another key with the same value.
    let mut t = cs.clone();
    let e = &mut t[1].entries[0];
    let key = StateKey::from_bytes(&e.key).unwrap();
    let other = match key {
        StateKey::Node(_) => StateKey::Node("impostor".into()),
        StateKey::Zone(_) => StateKey::Zone("impostor".into()),
        StateKey::Chunk(_) => StateKey::Chunk(Bytes32([7; 32])),
        StateKey::Replicas(_) => StateKey::Replicas(Bytes32([7; 32])),
        k => k,
    };
    e.key = ByteBuf::from(other.to_bytes());
    refused(cp, &t, "tampered key");

    // An entry left out.
    let mut t = cs.clone();
    t[1].entries.remove(3);
    refused(cp, &t, "dropped entry");

    // Two entries swapped.
    let mut t = cs.clone();
    t[1].entries.swap(2, 3);
    refused(cp, &t, "swapped entries");

    // The proof of another chunk.
    let mut t = cs.clone();
    t[1].proof = t[2].proof.clone();
    refused(cp, &t, "wrong proof");

    // A chunk without its proof.
    let mut t = cs.clone();
    t[0].proof = None;
    refused(cp, &t, "no proof");

    // The tail held back: an early chunk claims to be the last.
    let mut t = cs[..2].to_vec();
    t[1].last = true;
    refused(cp, &t, "held-back tail");

    // Another root: the chunk does not claim it, or claims it falsely.
    let mut wrong = cp;
    wrong.root = Bytes32([9; 32]);
    refused(wrong, &cs, "wrong root");
    let mut t = cs.clone();
    for c in &mut t {
        c.root = wrong.root;
    }
    refused(wrong, &t, "chunks claiming a wrong root");

    // Another height.
    let mut t = cs.clone();
    t[0].height += 1;
    refused(cp, &t, "wrong height");

    // An empty chunk that claims to be the whole of a non-empty tree.
    let mut t = cs[..1].to_vec();
    t[0].entries.clear();
    t[0].proof = None;
    refused(cp, &t, "empty chunk");
}

#[test]
fn a_chunk_refused_before_its_proof_can_be_replaced_but_not_one_after() {
    let original = state(30);
    let cs = chunks(&original, 10);
    let mut r = StateRestore::new(*original.header()).unwrap();
    r.add(&cs[0]).unwrap();
    let want = r.next_request(10).unwrap();
    assert_eq!(
        want.after,
        cs[0]
            .entries
            .last()
            .map(|e| Bytes32(StateKey::from_bytes(&e.key).unwrap().key_hash().0))
    );
    // Refused before jmt sees it: a key that does not parse.
    let mut bad = cs[1].clone();
    bad.entries[0].key = ByteBuf::from(vec![0xee]);
    assert!(r.add(&bad).is_err());
    for c in &cs[1..] {
        r.add(c).unwrap();
    }
    assert!(r.is_done());
    assert!(r.next_request(10).is_none());
    assert_eq!(r.header(), *original.header());
    // Refused by the proof: the restore is over, even for the good chunk.
    let mut r = StateRestore::new(*original.header()).unwrap();
    r.add(&cs[0]).unwrap();
    let mut bad = cs[1].clone();
    bad.proof = cs[2].proof.clone();
    assert!(r.add(&bad).is_err());
    assert!(r.add(&cs[1]).is_err());
}

#[test]
fn wire_types_round_trip_within_their_caps() {
    let request = StateChunkRequest {
        height: 7,
        after: Some(Bytes32([1; 32])),
        max_entries: MAX_CHUNK_ENTRIES,
    };
    let bytes = request.encode();
    assert!(!bytes.is_empty() && bytes.len() <= MAX_STATE_REQUEST_BYTES);
    assert_eq!(StateChunkRequest::decode(&bytes).unwrap(), request);
    assert!(StateChunkRequest::decode(&vec![0; MAX_STATE_REQUEST_BYTES + 1]).is_err());

    let original = state(10);
    let c = chunks(&original, 50).remove(0);
    let bytes = StateChunkResponse::Chunk(c.clone()).encode().unwrap();
    let StateChunkResponse::Chunk(back) = StateChunkResponse::decode(&bytes).unwrap() else {
        panic!("not a chunk");
    };
    assert_eq!(back.entries, c.entries);
    assert_eq!(back.proof, c.proof);
    assert_eq!(
        (back.height, back.root, back.last),
        (c.height, c.root, c.last)
    );
    for r in [
        StateChunkResponse::Busy,
        StateChunkResponse::Failed("disk".into()),
        StateChunkResponse::HeightUnavailable {
            height: 1,
            oldest: 5,
            newest: 9,
        },
    ] {
        let b = r.encode().unwrap();
        let back = StateChunkResponse::decode(&b).unwrap();
        assert_eq!(format!("{back:?}"), format!("{r:?}"));
    }
    assert!(StateChunkResponse::decode(&vec![0; MAX_STATE_RESPONSE_BYTES + 1]).is_err());
    // A chunk too large to send is refused at encoding.
    let mut huge = c;
    huge.entries = vec![
        ChunkEntry {
            key: ByteBuf::from(vec![1]),
            value: ByteBuf::from(vec![0; 1 << 20]),
        };
        10
    ];
    assert!(StateChunkResponse::Chunk(huge).encode().is_err());
}

#[test]
fn successor_steps_over_carries() {
    assert_eq!(
        successor(&KeyHash([0; 32])),
        Some(KeyHash({
            let mut k = [0; 32];
            k[31] = 1;
            k
        }))
    );
    let mut k = [0; 32];
    k[30] = 1;
    let mut low = [0xff; 32];
    low[..31].copy_from_slice(&[0; 31]);
    assert_eq!(successor(&KeyHash(low)), Some(KeyHash(k)));
    assert_eq!(successor(&KeyHash([0xff; 32])), None);
}
