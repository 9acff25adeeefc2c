//! Tests of the devnet table and summary.

use super::live::*;
use super::*;
use dsdn_daemon::localnet::NodeMode;

fn row(name: &str, mode: NodeMode, da: Option<(u64, &str)>) -> NodeRow {
    NodeRow {
        name: name.to_owned(),
        mode,
        ip: "127.0.0.2".to_owned(),
        peer_id: format!("12D3KooW{name}xxxxxxxxxxxx"),
        exited: false,
        peers: Some(5),
        da: da.map(|(e, r)| (e, r.to_owned())),
    }
}

#[test]
fn agreement_follows_the_coordinator() {
    let a = "aa".repeat(32);
    let b = "bb".repeat(32);
    let rows = vec![
        row("bootstrap", NodeMode::Bootstrap, None),
        row("coordinator", NodeMode::Coordinator, Some((20, a.as_str()))),
        row("storage-1", NodeMode::Storage, Some((20, a.as_str()))),
    ];
    assert!(converged(&rows, 20));
    assert!(!converged(&rows, 21));
    assert_eq!(
        summary_line(&rows, 20),
        "DA converged: 2/2 nodes agree on root aaaaaaaaaaaa, 2/2 hold all 20 events"
    );

    let mut split = rows.clone();
    split[2].da = Some((12, b.clone()));
    assert!(!converged(&split, 20));
    let table = render_devnet(&split, 20);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("NODE"), "{table}");
    assert!(lines[0].ends_with("AGREE"), "{table}");
    assert!(lines[3].starts_with("storage-1"), "{table}");
    assert!(lines[3].ends_with("bbbbbbbbbbbb  no"), "{table}");
    assert!(lines[2].ends_with("aaaaaaaaaaaa  yes"), "{table}");
    assert!(lines[1].ends_with("n/a        n/a           -"), "{table}");
    assert!(lines[4].starts_with("DA not converged: 1/2"), "{table}");
}

#[test]
fn down_and_exited_nodes() {
    let a = "aa".repeat(32);
    let mut rows = vec![
        row("coordinator", NodeMode::Coordinator, Some((5, a.as_str()))),
        row("storage-1", NodeMode::Storage, None),
        row("storage-2", NodeMode::Storage, None),
    ];
    rows[1].peers = None;
    rows[2].exited = true;
    rows[2].peers = None;
    let table = render_devnet(&rows, 5);
    assert!(table.contains(" down "), "{table}");
    assert!(table.contains(" exited "), "{table}");
    assert!(!converged(&rows, 5));
    // Without the coordinator, the majority root is the reference.
    let b = "bb".repeat(32);
    let rows = vec![
        row("storage-1", NodeMode::Storage, Some((5, b.as_str()))),
        row("storage-2", NodeMode::Storage, Some((5, b.as_str()))),
        row("storage-3", NodeMode::Storage, Some((5, a.as_str()))),
    ];
    assert_eq!(reference_root(&rows), Some(b.as_str()));
    assert_eq!(reference_root(&[]), None);
    assert_eq!(summary_line(&[], 1), "DA: no node answered");
}

#[test]
fn kinds_in_order_of_appearance() {
    let events = sample_da_events(&["n1".to_owned(), "n2".to_owned()], 12);
    assert_eq!(
        kind_counts(&events),
        "2 node_registered, 2 chunk_declared, 4 replica_added, 2 replica_removed, 2 delete_requested"
    );
}

#[test]
fn phases_are_numbered_as_in_the_readme() {
    let phases = [
        Phase::Start,
        Phase::Dkg,
        Phase::Restart,
        Phase::DaEvents,
        Phase::Receipts,
        Phase::LiveTable,
    ];
    assert_eq!(phases.len(), usize::from(Phase::COUNT));
    assert_eq!(Phase::Dkg.title(), "phase 2/6: DKG");
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md"))
        .expect("README.md");
    let section = readme
        .split("What `devnet` does")
        .nth(1)
        .expect("the README's devnet section");
    let listed: Vec<&str> = section
        .lines()
        .take_while(|l| !l.starts_with('#'))
        .filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit()) && l.contains(". **"))
        .collect();
    assert_eq!(listed.len(), phases.len(), "{listed:#?}");
    for (line, phase) in listed.iter().zip(phases) {
        let want = format!("{}. **{}.**", phase as u8, phase.name());
        assert!(
            line.starts_with(&want),
            "README: {line:?}, devnet prints {want:?}"
        );
    }
}
