//! `dsdn-agent devnet` end to end with its default shape (Tahap 14A.2B): a 2-of-3
//! coordinator committee runs its DKG, every node restarts with the group key as
//! `da_authority`, and the sample DA events sealed by the committee reach every node.
//! Runs the real binaries cargo built for this package (`dsdn-agent`, which finds `dsdnd`
//! next to itself). The single-coordinator variant numbers its phases the same way.

use std::process::Command;

#[test]
fn devnet_runs_the_committee_path_to_a_converged_da_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(env!("CARGO_BIN_EXE_dsdn-agent"))
        .args(["devnet", "--duration", "3", "--events", "12", "--dir"])
        .arg(dir.path())
        .env("DSDND_BIN", env!("CARGO_BIN_EXE_dsdnd"))
        .output()
        .expect("run dsdn-agent devnet");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "dsdn-agent devnet failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    for want in [
        "[devnet] phase 1/6: Start — 1 bootstrap, 3 coordinators (a 2-of-3 committee) and 4 storage nodes",
        "1. coordinator-1 12D3KooW",
        "<- DA proposer",
        "[devnet] phase 2/6: DKG — through the control API of coordinator-1",
        "DKG done in",
        "[devnet] phase 3/6: Restart with the group key — da_authority = group key",
        "key shares reloaded after the restart: coordinator-1 ready, coordinator-2 ready, coordinator-3 ready",
        "[devnet] phase 4/6: DA events — 12 sample events through coordinator-1 (the DA proposer)",
        "published 12 DA events",
        "reached on every node",
        "[devnet] phase 5/6: Receipts — submitting 3 workloads",
        "on all 7 nodes; verified against the group key; re-executed here: identical commitment",
        "receipts: all 3 recorded in the DA log",
        "[devnet] phase 6/6: Live table — peers, DA events and state root of every node, for 3 s",
        "committee 2-of-3, epoch 0, group key",
        "DA converged: 7/7 nodes agree",
        "all nodes stopped",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
    // The phases come in order, each once.
    let phases: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[devnet] phase "))
        .map(|l| l.split(':').next().unwrap_or(l))
        .collect();
    assert_eq!(
        phases,
        ["1/6", "2/6", "3/6", "4/6", "5/6", "6/6"],
        "{stdout}"
    );
    // The group key printed after the DKG is the da_authority every node was restarted with.
    let key = stdout
        .lines()
        .find_map(|l| l.split("DKG done in ").nth(1))
        .and_then(|rest| rest.split("group key ").nth(1))
        .map(str::trim)
        .expect("group key line");
    assert_eq!(key.len(), 64, "{key}");
    let seeds = std::fs::read_to_string(dir.path().join("seeds.toml")).expect("seeds.toml");
    assert!(
        seeds.contains(&format!("da_authority = \"{key}\"")),
        "{seeds}"
    );
    assert!(seeds.contains("[committee]"), "{seeds}");
    for member in ["coordinator-1", "coordinator-2", "coordinator-3"] {
        assert!(
            dir.path()
                .join(member)
                .join("committee/key-share-0.cbor")
                .is_file(),
            "{member} has no key share"
        );
    }
}

#[test]
fn devnet_with_one_coordinator_numbers_the_same_phases() {
    let out = Command::new(env!("CARGO_BIN_EXE_dsdn-agent"))
        .args([
            "devnet",
            "--coordinators",
            "1",
            "--duration",
            "1",
            "--events",
            "8",
        ])
        .env("DSDND_BIN", env!("CARGO_BIN_EXE_dsdnd"))
        .output()
        .expect("run dsdn-agent devnet");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "dsdn-agent devnet --coordinators 1 failed ({}):\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let phases: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("[devnet] phase "))
        .collect();
    let want = [
        "1/6: Start — 1 bootstrap, 1 coordinator (the DA authority) and 4 storage nodes in",
        "2/6: DKG — skipped: a single coordinator signs with its own key (the da_authority)",
        "3/6: Restart with the group key — skipped: no committee, no group key",
        "4/6: DA events — 8 sample events through coordinator (the DA authority), which signs each blob with its own key",
        "5/6: Receipts — skipped: a single coordinator has no committee to sign them",
        "6/6: Live table — peers, DA events and state root of every node, for 1 s",
    ];
    assert_eq!(phases.len(), want.len(), "{stdout}");
    for (got, want) in phases.iter().zip(want) {
        assert!(got.starts_with(want), "{got:?} is not {want:?}:\n{stdout}");
    }
    assert!(stdout.contains("DA converged: 5/5 nodes agree"), "{stdout}");
}
