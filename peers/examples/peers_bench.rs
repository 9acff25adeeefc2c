//! Benchmark of the peer store, as the 28.1 issue asks: loading and scoring a full
//! 10,000-entry peers.dat, and the store's write cost per connection event.
//!
//! Run with `cargo run --release -p dsdn-peers --example peers_bench`. Builds a realistic
//! full store in a temporary directory (public IPv4 addresses across ~2,500 /16 netgroups,
//! mixed sources and services, successes and failures), then prints one table of timings.
//! The calls change the in-memory address book only; the background writer commits them in
//! groups with redb's default durability (an fsync per commit), so the flush figure and the
//! commit count depend on the disk.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use dsdn_peers::{score, BanCause, LearnedPeer, OutboundView, PeerStore, MAX_ENTRIES};
use dsdn_protocols::{NetworkId, PeerSource, ServiceSet};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

const NOW: u64 = 1_700_000_000;

/// A deterministic pseudo-random sequence (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A public IPv4 address (first octet 11..=99 but not 10, second octet random).
fn public_addr(rng: &mut Rng) -> Multiaddr {
    let a = 11 + rng.below(89) as u8;
    let b = rng.below(28) as u8 * 9;
    let c = rng.below(256) as u8;
    let d = 1 + rng.below(254) as u8;
    let port = 30_000 + rng.below(1000) as u16;
    format!("/ip4/{a}.{b}.{c}.{d}/tcp/{port}")
        .parse()
        .expect("valid multiaddr")
}

/// A PeerId shaped like an Ed25519 one (identity multihash of a 36-byte protobuf public key),
/// with random key bytes.
fn peer_id(rng: &mut Rng) -> PeerId {
    let mut bytes = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    for _ in 0..4 {
        bytes.extend_from_slice(&rng.next().to_be_bytes());
    }
    PeerId::from_bytes(&bytes).expect("valid identity multihash")
}

fn learned(rng: &mut Rng, n: usize) -> Vec<LearnedPeer> {
    (0..n)
        .map(|_| {
            let addrs = (0..1 + rng.below(3)).map(|_| public_addr(rng)).collect();
            LearnedPeer {
                peer_id: peer_id(rng),
                addrs,
                services: ServiceSet::from_bits(1 << rng.below(7)),
            }
        })
        .collect()
}

/// (median, p99) of `samples`.
fn percentiles(mut samples: Vec<Duration>) -> (Duration, Duration) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
    (at(0.5), at(0.99))
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("peers.dat");
    let network = NetworkId::new("mainnet")?;
    let mut rng = Rng(0x5eed_1234_abcd_ef01);

    // Build a full store: 10 PEX/DNS/static batches of 1,000, then history for a third.
    let build = Instant::now();
    let ids: Vec<PeerId> = {
        let (store, _) = PeerStore::open(&path, &network)?;
        let mut ids = Vec::with_capacity(MAX_ENTRIES);
        for batch in 0..MAX_ENTRIES / 1000 {
            let source = match batch % 5 {
                0 => PeerSource::DnsSeed,
                1 => PeerSource::StaticConfig,
                2 => PeerSource::Inbound,
                _ => PeerSource::PeerExchange,
            };
            let peers = learned(&mut rng, 1000);
            ids.extend(peers.iter().map(|p| p.peer_id));
            store.learn_many(&peers, source, NOW - 20 * 86_400 + batch as u64)?;
        }
        // Successes and failures in one transaction per event, as the daemon does.
        for (i, id) in ids.iter().enumerate().take(3000) {
            let r = store.get(id)?.ok_or("missing")?;
            let t = NOW - rng.below(10 * 86_400);
            store.record_success(*id, &r.addrs, r.services, r.source, t)?;
            if i % 3 == 0 {
                store.record_failure(id, t + 60)?;
            }
        }
        store.ban(&ids[5000], NOW + 86_400, NOW, BanCause::new("bench", None))?;
        assert_eq!(store.len(), MAX_ENTRIES);
        ids
    };
    let build = build.elapsed();
    let size = std::fs::metadata(&path)?.len();

    // A start: open the file and score every entry; the median of 7 (the store is
    // dropped between two opens, which closes the file).
    let mut opens = Vec::new();
    let mut scores = Vec::new();
    let mut total = 0;
    for _ in 0..7 {
        let t = Instant::now();
        let (store, report) = PeerStore::open(&path, &network)?;
        opens.push(t.elapsed());
        assert_eq!(report.purged_records, 0);
        let t = Instant::now();
        let all = store.all()?;
        total = all.iter().map(|r| score(r, NOW)).sum::<i64>();
        scores.push(t.elapsed());
    }
    let (open, _) = percentiles(opens);
    let (load_score, _) = percentiles(scores);
    let (store, _) = PeerStore::open(&path, &network)?;
    let all = store.all()?;

    let none = HashSet::new();
    let t = Instant::now();
    let mut outbound = Vec::new();
    for _ in 0..10 {
        outbound = store.outbound_candidates(NOW, &none, &OutboundView::default(), 8)?;
    }
    let outbound_time = t.elapsed() / 10;

    let t = Instant::now();
    let mut feelers = Vec::new();
    for _ in 0..10 {
        feelers = store.feeler_candidates(NOW, &none, 2)?;
    }
    let feeler_time = t.elapsed() / 10;

    // A bootstrap node serving a 1,000-entry PEX request (any service), and the role-aware
    // top-up's full dial list and an 8-peer dial list.
    let requester = ids[1];
    let t = Instant::now();
    let mut pex_out = Vec::new();
    for _ in 0..10 {
        pex_out = store.pex_entries(NOW, &requester, ServiceSet::EMPTY, 1000)?;
    }
    let pex_time = t.elapsed() / 10;

    let t = Instant::now();
    let mut dial_all = Vec::new();
    for _ in 0..10 {
        dial_all = store.dial_candidates(NOW, &none, usize::MAX)?;
    }
    let dial_all_time = t.elapsed() / 10;

    let t = Instant::now();
    let mut dial_8 = Vec::new();
    for _ in 0..10 {
        dial_8 = store.dial_candidates(NOW, &none, 8)?;
    }
    let dial_8_time = t.elapsed() / 10;

    let t = Instant::now();
    let mut stats = store.stats(NOW);
    for _ in 0..99 {
        stats = store.stats(NOW);
    }
    let stats_time = t.elapsed() / 100;

    let commits_before = store.writer_status().commits;
    let known = all[0].clone();
    let mut success = Vec::with_capacity(1000);
    let mut failure = Vec::with_capacity(1000);
    for i in 0..1000u64 {
        let t = Instant::now();
        store.record_success(
            known.peer_id,
            &known.addrs,
            known.services,
            known.source,
            NOW + i,
        )?;
        success.push(t.elapsed());
        let victim = &ids[(i as usize * 7) % ids.len()];
        let t = Instant::now();
        store.record_failure(victim, NOW + i)?;
        failure.push(t.elapsed());
    }
    let (s50, s99) = percentiles(success);
    let (f50, f99) = percentiles(failure);

    // A 1,000-entry PEX response into the full store (test-before-evict evictions).
    let pex = learned(&mut rng, 1000);
    let t = Instant::now();
    let inserted = store.learn_many(&pex, PeerSource::PeerExchange, NOW + 2000)?;
    let learn_time = t.elapsed();
    // What the background writer still had to commit of all that (the calls above return
    // before the disk is touched).
    let t = Instant::now();
    store.flush()?;
    let flush_time = t.elapsed();
    let writer = store.writer_status();

    println!(
        "peers_bench: full peers.dat, {} entries (built in {:.1} s)",
        store.len(),
        build.as_secs_f64()
    );
    println!("{:<52} {:>14}", "measure", "value");
    println!(
        "{:<52} {:>14}",
        "file size",
        format!("{:.2} MiB", size as f64 / 1048576.0)
    );
    println!(
        "{:<52} {:>14}",
        "PeerStore::open (load + check + index), median of 7",
        ms(open)
    );
    println!(
        "{:<52} {:>14}",
        format!("all() + score() of {} entries, median of 7", all.len()),
        ms(load_score)
    );
    println!(
        "{:<52} {:>14}",
        format!("outbound_candidates(8 slots) -> {}", outbound.len()),
        ms(outbound_time)
    );
    println!(
        "{:<52} {:>14}",
        format!("feeler_candidates(2) -> {}", feelers.len()),
        ms(feeler_time)
    );
    println!(
        "{:<52} {:>14}",
        format!("pex_entries(1000) -> {}", pex_out.len()),
        ms(pex_time)
    );
    println!(
        "{:<52} {:>14}",
        format!("dial_candidates(usize::MAX) -> {}", dial_all.len()),
        ms(dial_all_time)
    );
    println!(
        "{:<52} {:>14}",
        format!("dial_candidates(8) -> {}", dial_8.len()),
        ms(dial_8_time)
    );
    println!(
        "{:<52} {:>14}",
        format!("stats() ({} netgroups)", stats.by_netgroup.len()),
        ms(stats_time)
    );
    println!(
        "{:<52} {:>14}",
        "record_success, known peer: median",
        ms(s50)
    );
    println!("{:<52} {:>14}", "record_success, known peer: p99", ms(s99));
    println!("{:<52} {:>14}", "record_failure: median", ms(f50));
    println!("{:<52} {:>14}", "record_failure: p99", ms(f99));
    println!(
        "{:<52} {:>14}",
        format!("learn_many(1000-entry PEX response) -> {inserted} in"),
        ms(learn_time)
    );
    println!(
        "{:<52} {:>14}",
        "flush() after the 2,001 calls above",
        ms(flush_time)
    );
    println!(
        "{:<52} {:>14}",
        "writer group commits for those 2,001 calls",
        writer.commits.saturating_sub(commits_before)
    );
    println!(
        "(score checksum {total}, {} tried, {} banned)",
        stats.tried, stats.banned
    );
    Ok(())
}
