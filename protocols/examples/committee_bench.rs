//! Committee benchmark: FROST DKG wall time (all members in one process, every message
//! encoded and decoded) for 3-of-4 and 5-of-7, and threshold-signing time (commit + sign +
//! aggregate + verify, messages encoded and decoded, one thread) for 2-of-3, 3-of-4 and 5-of-7.
//! Prints the median and the 99th percentile of N runs.
//!
//! `cargo run --release -p dsdn-protocols --example committee_bench -- [--runs N]`
//! (default 50 runs for the DKG, 20×N signing rounds).

use std::collections::VecDeque;
use std::error::Error;
use std::time::{Duration, Instant};

use dsdn_protocols::committee::{
    CommitmentMsg, CommitteeConfig, DkgMessage, DkgOutput, DkgSession, GroupKey, MemberId, OsRng,
    SignatureShareMsg, Signer, SigningPackageMsg, SigningRound, Slot, SlotGuard,
};

fn member(i: usize) -> Result<MemberId, Box<dyn Error>> {
    let mut b = vec![0x00, 0x24, 0x08, 0x01, 0x12, 0x20];
    b.extend_from_slice(&[i as u8; 32]);
    Ok(MemberId::new(b)?)
}

fn config(t: u16, n: usize) -> Result<CommitteeConfig, Box<dyn Error>> {
    Ok(CommitteeConfig {
        epoch: 1,
        threshold: t,
        members: (0..n).map(member).collect::<Result<_, _>>()?,
    })
}

fn dkg(config: &CommitteeConfig) -> Result<Vec<DkgOutput>, Box<dyn Error>> {
    let n = config.members.len();
    let mut sessions = Vec::new();
    let mut queue: VecDeque<(usize, usize, Vec<u8>)> = VecDeque::new();
    for i in 0..n {
        let (s, r1) = DkgSession::new(config.clone(), config.members[i].clone(), &mut OsRng)?;
        sessions.push(s);
        let bytes = DkgMessage::Round1(r1).to_bytes()?;
        for j in (0..n).filter(|j| *j != i) {
            queue.push_back((i, j, bytes.clone()));
        }
    }
    let mut outputs = vec![None; n];
    while let Some((from, to, bytes)) = queue.pop_front() {
        match DkgMessage::from_bytes(&bytes)? {
            DkgMessage::Round1(m) => {
                if let Some(r2) = sessions[to].on_round1(&config.members[from], &m)? {
                    for (dest, m2) in r2 {
                        let j = config.members.iter().position(|x| *x == dest).ok_or("?")?;
                        queue.push_back((to, j, DkgMessage::Round2(m2).to_bytes()?));
                    }
                }
            }
            DkgMessage::Round2(m) => {
                if let Some(out) = sessions[to].on_round2(&config.members[from], &m)? {
                    outputs[to] = Some(out);
                }
            }
        }
    }
    outputs
        .into_iter()
        .map(|o| o.ok_or_else(|| "a member did not finish".into()))
        .collect()
}

fn sign(
    signers: &mut [Signer],
    slot: Slot,
    message: &[u8],
    key: GroupKey,
) -> Result<(), Box<dyn Error>> {
    let mut round = SigningRound::new(signers[0].key_share(), slot, message.to_vec())?;
    let t = usize::from(signers[0].key_share().config().threshold);
    for s in signers.iter_mut().take(t) {
        let c = CommitmentMsg::from_bytes(&s.commit(slot, &mut OsRng)?.to_bytes()?)?;
        round.on_commitment(&s.key_share().member().clone(), &c)?;
    }
    let package = round.signing_package().ok_or("no package")?.to_bytes()?;
    for s in signers.iter_mut().take(t) {
        let share = s.sign(slot, &SigningPackageMsg::from_bytes(&package)?)?;
        let share = SignatureShareMsg::from_bytes(&share.to_bytes()?)?;
        round.on_share(&s.key_share().member().clone(), &share)?;
    }
    let sig = round.aggregate()?;
    if !key.verify(message, &sig) {
        return Err("signature does not verify".into());
    }
    Ok(())
}

fn stats(mut d: Vec<Duration>) -> (Duration, Duration) {
    d.sort();
    let p99 = d[((d.len() * 99).div_ceil(100)).saturating_sub(1)];
    (d[d.len() / 2], p99)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let runs: usize = match args.iter().position(|a| a == "--runs") {
        Some(i) => args.get(i + 1).ok_or("--runs N")?.parse()?,
        None => 50,
    };
    println!("DKG (all members in one process, {runs} runs):");
    for (t, n) in [(2u16, 3usize), (3, 4), (5, 7)] {
        let c = config(t, n)?;
        let mut times = Vec::new();
        for _ in 0..runs {
            let start = Instant::now();
            dkg(&c)?;
            times.push(start.elapsed());
        }
        let (median, p99) = stats(times);
        println!("  {t}-of-{n}: median {:.2} ms, p99 {:.2} ms (whole committee; per member ≈ median/{n})", ms(median), ms(p99));
    }
    println!("Wire sizes (CBOR bytes):");
    for (t, n) in [(2u16, 3usize), (3, 4), (5, 7)] {
        let c = config(t, n)?;
        let (mut s0, r1) = DkgSession::new(c.clone(), c.members[0].clone(), &mut OsRng)?;
        let r1_len = DkgMessage::Round1(r1).to_bytes()?.len();
        let mut r2_len = 0;
        for j in 1..n {
            let (_, other) = DkgSession::new(c.clone(), c.members[j].clone(), &mut OsRng)?;
            if let Some(out) = s0.on_round1(&c.members[j], &other)? {
                r2_len = DkgMessage::Round2(out[0].1.clone()).to_bytes()?.len();
            }
        }
        let outputs = dkg(&c)?;
        let key_file = outputs[0].key_share.to_bytes()?.len();
        let mut signer = Signer::new(outputs[0].key_share.clone(), SlotGuard::new());
        let commitment = signer
            .commit(Slot::DaBlob(1), &mut OsRng)?
            .to_bytes()?
            .len();
        println!("  {t}-of-{n}: DKG round 1 {r1_len}, round 2 {r2_len}, key-share file {key_file}, commitment {commitment}");
    }
    let message = vec![0x5a; 4096];
    println!(
        "Threshold signing of a 4 KiB message (commit + sign + aggregate + verify, {} rounds):",
        runs * 20
    );
    for (t, n) in [(2u16, 3usize), (3, 4), (5, 7)] {
        let c = config(t, n)?;
        let outputs = dkg(&c)?;
        let key = outputs[0].group_key;
        let mut signers: Vec<Signer> = outputs
            .into_iter()
            .map(|o| Signer::new(o.key_share, SlotGuard::new()))
            .collect();
        let mut times = Vec::new();
        for h in 0..(runs * 20) as u64 {
            let start = Instant::now();
            sign(&mut signers, Slot::DaBlob(h), &message, key)?;
            times.push(start.elapsed());
        }
        let (median, p99) = stats(times);
        let slot = Slot::DaBlob(u64::MAX);
        let mut round = SigningRound::new(signers[0].key_share(), slot, message.clone())?;
        for s in signers.iter_mut().take(usize::from(t)) {
            let c = s.commit(slot, &mut OsRng)?;
            round.on_commitment(&s.key_share().member().clone(), &c)?;
        }
        let package = round.signing_package().ok_or("no package")?;
        let share = signers[0].sign(slot, &package)?.to_bytes()?.len();
        println!(
            "  {t}-of-{n}: median {:.3} ms, p99 {:.3} ms (signing package {} bytes, share {share})",
            ms(median),
            ms(p99),
            package.to_bytes()?.len()
        );
    }
    Ok(())
}
