//! Reachability, relay and hole-punching times in the NAT lab (issue 12 §9).
//!
//! Runs the traversal scenario of `dsdn_integration_tests::lab::traversal` (network
//! namespaces: root, iproute2 and nftables needed) `--runs N` times (default 5) and prints,
//! as the median (min–max) over the runs, milliseconds from each daemon's start to:
//! confirmed reachability of the public nodes, the private verdict of the NATed nodes, their
//! first accepted relay reservation, and their first relayed connection upgraded to a direct
//! one by DCUtR (each read from the daemons' own status milestones).
//!
//! Run: `cargo build --release --bins && target/release/dsdn-bench-natlab [--runs N]` (the
//! bench finds `dsdnd` next to itself, or takes `DSDND_BIN`).

use anyhow::{bail, Context};
use dsdn_integration_tests::lab::traversal::{milestone, Traversal};

fn median_line(name: &str, mut v: Vec<u64>) -> String {
    v.sort_unstable();
    match (v.first(), v.last()) {
        (Some(lo), Some(hi)) => format!(
            "{name:<44} median {:>6} ms   ({lo}–{hi} ms, {} values)",
            v[v.len() / 2],
            v.len()
        ),
        _ => format!("{name:<44} no value"),
    }
}

fn main() -> anyhow::Result<()> {
    let mut runs = 5usize;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--runs" => runs = it.next().context("--runs N")?.parse()?,
            other => bail!("unknown argument {other:?} (--runs N)"),
        }
    }
    let (mut public, mut private, mut reserved, mut direct) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let t = Traversal::start(&format!("bench{run}")).map_err(|e| anyhow::anyhow!("{e}"))?;
        let step = |r: Result<_, dsdn_integration_tests::lab::LabError>| {
            r.map_err(|e| anyhow::anyhow!("run {run}: {e}"))
        };
        for name in ["boot", "coord"] {
            let st = step(t.wait_reachability(name, "public"))?;
            public.extend(milestone(&st, "reachability_known_ms"));
        }
        for name in ["s1", "s2"] {
            let st = step(t.wait_reachability(name, "private"))?;
            private.extend(milestone(&st, "reachability_known_ms"));
            let st = step(t.wait_relayed(name))?;
            reserved.extend(milestone(&st, "first_reservation_ms"));
            let st = step(t.wait_direct_upgrade(name))?;
            direct.extend(milestone(&st, "first_direct_upgrade_ms"));
        }
        eprintln!("run {} of {runs} done", run + 1);
    }
    println!("NAT lab, {runs} runs (ms from each daemon's start):");
    println!("{}", median_line("public nodes: confirmed public", public));
    println!("{}", median_line("NATed nodes: found private", private));
    println!(
        "{}",
        median_line("NATed nodes: relay reservation accepted", reserved)
    );
    println!(
        "{}",
        median_line("NATed nodes: direct connection by DCUtR", direct)
    );
    Ok(())
}
