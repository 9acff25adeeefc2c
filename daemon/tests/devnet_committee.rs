//! `dsdn-agent devnet` end to end with its default shape (Tahap 14A.2B): a 2-of-3
//! coordinator committee runs its DKG, every node restarts with the group key as
//! `da_authority`, and the sample DA events sealed by the committee reach every node.
//! Runs the real binaries cargo built for this package (`dsdn-agent`, which finds `dsdnd`
//! next to itself).

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
        "3 coordinators (a 2-of-3 committee)",
        "1. coordinator-1 12D3KooW",
        "<- DA proposer",
        "phase 1/3: DKG through the control API of coordinator-1",
        "DKG done in",
        "phase 2/3: restarting with da_authority = group key",
        "key shares reloaded after the restart: coordinator-1 ready, coordinator-2 ready, coordinator-3 ready",
        "phase 3/3: DA events through coordinator-1",
        "published 12 DA events",
        "reached on every node",
        "receipts: submitting 3 workloads",
        "on all 7 nodes; verified against the group key; re-executed here: identical commitment",
        "receipts: all 3 recorded in the DA log",
        "committee 2-of-3, epoch 0, group key",
        "DA converged: 7/7 nodes agree",
        "all nodes stopped",
    ] {
        assert!(stdout.contains(want), "missing {want:?} in:\n{stdout}");
    }
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
