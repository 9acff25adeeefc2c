//! DA follower throughput: builds a valid chain of signed blobs (every event kind, real owner
//! signatures on deletions), then on one thread measures `DaBlob::decode_verified` +
//! `DaChain::offer` per blob and prints blobs/s, events/s and the final state root.
//!
//! `cargo run --release -p dsdn-protocols --example da_bench -- [--blobs N] [--events-per-blob M]`
//! (defaults: 2000 blobs of 64 events).

use std::error::Error;
use std::time::{Duration, Instant};

use dsdn_protocols::da::{Bytes32, DaBlob, DaChain, DaEvent, DaState, Offer, MAX_EVENTS_PER_BLOB};
use dsdn_protocols::NetworkId;
use ed25519_dalek::SigningKey;

/// Deterministic xorshift64 for choosing targets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

struct Chunk {
    id: Bytes32,
    owner: usize,
    replicas: Vec<usize>,
}

/// Produces events that are all applicable, in order, to the state they build.
struct Generator {
    rng: Rng,
    network: NetworkId,
    owners: Vec<SigningKey>,
    nodes: usize,
    next_chunk: u64,
    chunks: Vec<Chunk>,
    step: usize,
}

const NODE_POOL: usize = 500;

impl Generator {
    fn node_id(n: usize) -> String {
        format!("12D3KooWbenchnode{n:06}")
    }

    fn event(&mut self) -> DaEvent {
        // Mix per 8 events: 1 registration, 2 declarations, 3 additions, 1 removal,
        // 1 deletion; a step without a target falls back to a declaration.
        self.step += 1;
        match self.step % 8 {
            0 => self.register(),
            3..=5 => self.add().unwrap_or_else(|| self.declare()),
            6 => self.remove().unwrap_or_else(|| self.declare()),
            7 => self.delete().unwrap_or_else(|| self.declare()),
            _ => self.declare(),
        }
    }

    fn register(&mut self) -> DaEvent {
        let n = if self.nodes < NODE_POOL {
            self.nodes += 1;
            self.nodes - 1
        } else {
            self.rng.below(self.nodes)
        };
        DaEvent::NodeRegistered {
            node_id: Self::node_id(n),
            zone: format!("id-zone-{}", self.rng.below(8)),
            capacity_bytes: 1 << 40,
            class: if n % 5 == 0 { "datacenter" } else { "regular" }.into(),
        }
    }

    fn declare(&mut self) -> DaEvent {
        self.next_chunk += 1;
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&self.next_chunk.to_be_bytes());
        id[8..16].copy_from_slice(&self.rng.next().to_be_bytes());
        let owner = self.rng.below(self.owners.len());
        self.chunks.push(Chunk {
            id: Bytes32(id),
            owner,
            replicas: Vec::new(),
        });
        DaEvent::ChunkDeclared {
            chunk_id: Bytes32(id),
            size_bytes: 1 << 20,
            owner: Bytes32(self.owners[owner].verifying_key().to_bytes()),
        }
    }

    fn add(&mut self) -> Option<DaEvent> {
        if self.chunks.is_empty() || self.nodes == 0 {
            return None;
        }
        let c = self.rng.below(self.chunks.len());
        let node = self.rng.below(self.nodes);
        let chunk = &mut self.chunks[c];
        if chunk.replicas.contains(&node) {
            return None;
        }
        chunk.replicas.push(node);
        Some(DaEvent::ReplicaAdded {
            chunk_id: chunk.id,
            node_id: Self::node_id(node),
        })
    }

    fn remove(&mut self) -> Option<DaEvent> {
        let c = self.rng.below(self.chunks.len());
        let chunk = self.chunks.get_mut(c)?;
        let node = chunk.replicas.pop()?;
        Some(DaEvent::ReplicaRemoved {
            chunk_id: chunk.id,
            node_id: Self::node_id(node),
        })
    }

    fn delete(&mut self) -> Option<DaEvent> {
        if self.chunks.is_empty() {
            return None;
        }
        let c = self.rng.below(self.chunks.len());
        let chunk = self.chunks.swap_remove(c);
        let owner = &self.owners[chunk.owner];
        Some(DaEvent::delete_requested(owner, &self.network, chunk.id))
    }
}

fn parse_args() -> Result<(usize, usize), Box<dyn Error>> {
    let (mut blobs, mut events) = (2000usize, 64usize);
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--blobs" => blobs = value.parse()?,
            "--events-per-blob" => events = value.parse()?,
            other => return Err(format!("unknown flag {other}").into()),
        }
    }
    if blobs == 0 || events == 0 || events > MAX_EVENTS_PER_BLOB {
        return Err(
            format!("need --blobs ≥ 1 and --events-per-blob 1-{MAX_EVENTS_PER_BLOB}").into(),
        );
    }
    Ok((blobs, events))
}

fn main() -> Result<(), Box<dyn Error>> {
    let (blob_count, per_blob) = parse_args()?;
    let network = NetworkId::new("devnet")?;
    let authority = SigningKey::from_bytes(&[1; 32]);
    let auth = authority.verifying_key().to_bytes();
    let mut generator = Generator {
        rng: Rng(0x9e37_79b9_7f4a_7c15),
        network: network.clone(),
        owners: (0..16u8)
            .map(|i| SigningKey::from_bytes(&[100 + i; 32]))
            .collect(),
        nodes: 0,
        next_chunk: 0,
        chunks: Vec::new(),
        step: 0,
    };

    let started = Instant::now();
    let mut encoded = Vec::with_capacity(blob_count);
    // Blobs commit to the state root before them: the builder applies them too.
    let mut builder = DaState::new(network.clone());
    for h in 1..=blob_count as u64 {
        let events: Vec<DaEvent> = (0..per_blob).map(|_| generator.event()).collect();
        let blob = builder.seal_next(&authority, 1_700_000_000_000 + h, events)?;
        let bytes = blob.to_bytes()?;
        builder.apply_blob(&blob.verify(&network, &auth)?)?;
        encoded.push(bytes);
    }
    let total_bytes: usize = encoded.iter().map(Vec::len).sum();
    println!(
        "built {blob_count} blobs × {per_blob} events ({:.1} MiB encoded, avg {} B/blob) in {:.2?}",
        total_bytes as f64 / (1024.0 * 1024.0),
        total_bytes / blob_count,
        started.elapsed()
    );

    let mut chain = DaChain::new(DaState::new(network.clone()));
    let mut decode = Duration::ZERO;
    let started = Instant::now();
    for bytes in &encoded {
        let t = Instant::now();
        let blob = DaBlob::decode_verified(bytes, &network, &auth)?;
        decode += t.elapsed();
        match chain.offer(blob) {
            Offer::Applied(_) => {}
            other => return Err(format!("blob not applied: {other:?}").into()),
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let state = chain.state();
    println!(
        "decode_verified + offer: {blob_count} blobs in {secs:.3} s — {:.0} blobs/s, {:.0} events/s",
        blob_count as f64 / secs,
        state.events() as f64 / secs
    );
    println!(
        "  of which decode_verified {:.3} s, offer (apply, incl. owner signature checks) {:.3} s",
        decode.as_secs_f64(),
        secs - decode.as_secs_f64()
    );
    println!(
        "height {} · events {} (ignored {}) · nodes {} · chunks {} · replicated chunks {} · zones {}",
        state.height(),
        state.events(),
        state.ignored_events(),
        state.header().nodes,
        state.header().chunks,
        state.header().replicas,
        state.header().zones
    );
    println!("state root {}", hex::encode(state.state_root()));
    Ok(())
}
