//! Tests of the `dsdnd` binary: flags, committee membership, error printing.

use super::*;

#[test]
fn every_mode_parses_and_dc_goes_with_storage_only() {
    for m in Mode::ALL {
        let cli = Cli::try_parse_from(["dsdnd", "--mode", m.as_str()]).expect("parses");
        assert_eq!(cli.mode, m);
    }
    let cli = Cli::try_parse_from(["dsdnd", "--mode", "validator", "--dc"]).expect("parses");
    assert!(cli.mode.check_dc(cli.dc).is_err());
    let cli = Cli::try_parse_from(["dsdnd", "--dc"]).expect("parses");
    assert_eq!(cli.mode, Mode::Storage);
    assert_eq!(cli.mode.services(cli.dc).names(), ["storage", "storage-dc"]);
    assert!(Cli::try_parse_from(["dsdnd", "--mode", "miner"]).is_err());
}

#[test]
fn an_error_prints_each_cause_once() {
    let missing = Path::new("/nonexistent-dsdn/seeds.toml");
    let e = SeedsConfig::load(missing)
        .context("invalid configuration /nonexistent-dsdn/seeds.toml")
        .expect_err("no such file");
    let text = error_text(&e);
    assert_eq!(text.matches("os error 2").count(), 1, "{text}");
    assert!(
        text.starts_with("invalid configuration /nonexistent-dsdn/seeds.toml: cannot read"),
        "{text}"
    );
    let e = anyhow::Error::from(
        key::load_or_create(Path::new("/dev/null/dsdn")).expect_err("not a directory"),
    );
    let text = error_text(&e);
    assert_eq!(text.matches("os error").count(), 1, "{text}");
}

#[test]
fn listen_may_be_given_for_both_families() {
    let cli = parse(&[
        "--listen",
        "198.51.100.7:30303",
        "--listen",
        "[2001:db8::7]:30303",
    ]);
    let want: Vec<SocketAddr> = vec![
        "198.51.100.7:30303".parse().expect("v4"),
        "[2001:db8::7]:30303".parse().expect("v6"),
    ];
    assert_eq!(cli.listen, want);
    assert!(
        parse(&[]).listen.is_empty(),
        "none given: the dual-stack default"
    );
}

#[test]
fn committee_flags_parse() {
    let a = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let b = libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id();
    let members = format!("{a},{b}");
    let cli = Cli::try_parse_from([
        "dsdnd",
        "--mode",
        "coordinator",
        "--committee-members",
        &members,
        "--committee-threshold",
        "2",
        "--committee-epoch",
        "3",
    ])
    .expect("parses");
    assert_eq!(cli.committee_members, [a, b]);
    assert_eq!(
        (cli.committee_threshold, cli.committee_epoch),
        (Some(2), Some(3))
    );
    let cli = Cli::try_parse_from(["dsdnd"]).expect("parses");
    assert!(cli.committee_members.is_empty());
    assert!(Cli::try_parse_from(["dsdnd", "--committee-members", "not-a-peer-id"]).is_err());
}

fn peer() -> libp2p::PeerId {
    libp2p::identity::Keypair::generate_ed25519()
        .public()
        .to_peer_id()
}

fn parse(args: &[&str]) -> Cli {
    let mut all = vec!["dsdnd"];
    all.extend_from_slice(args);
    Cli::try_parse_from(all).expect("parses")
}

#[test]
fn committee_from_the_file_when_no_flag_is_given() {
    let (a, b, c) = (peer(), peer(), peer());
    let text =
        format!("[committee]\nmembers = [\"{a}\", \"{b}\", \"{c}\"]\nthreshold = 3\nepoch = 5\n");
    let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
    let m = committee_membership(&parse(&["--mode", "coordinator"]), &file)
        .expect("ok")
        .expect("a member");
    assert_eq!(
        m,
        Membership {
            members: vec![a, b, c],
            threshold: 3,
            epoch: 5
        }
    );
    // File defaults: threshold 2, epoch 0.
    let text = format!("[committee]\nmembers = [\"{a}\", \"{b}\"]\n");
    let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
    let m = committee_membership(&parse(&["--mode", "coordinator"]), &file)
        .expect("ok")
        .expect("a member");
    assert_eq!((m.threshold, m.epoch), (2, 0));
    // No members anywhere: no committee.
    let none = SeedsConfig::default().committee;
    assert_eq!(
        committee_membership(&parse(&["--mode", "coordinator"]), &none).expect("ok"),
        None
    );
}

#[test]
fn committee_flags_win_over_the_file_key_by_key() {
    let (a, b, c, d) = (peer(), peer(), peer(), peer());
    let text =
        format!("[committee]\nmembers = [\"{a}\", \"{b}\", \"{c}\"]\nthreshold = 3\nepoch = 5\n");
    let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
    let members = format!("{d},{a}");
    let all = parse(&[
        "--mode",
        "coordinator",
        "--committee-members",
        &members,
        "--committee-threshold",
        "2",
        "--committee-epoch",
        "9",
    ]);
    let m = committee_membership(&all, &file)
        .expect("ok")
        .expect("member");
    assert_eq!((m.members, m.threshold, m.epoch), (vec![d, a], 2, 9));
    // Only the epoch flag: members and threshold from the file.
    let epoch_only = parse(&["--mode", "coordinator", "--committee-epoch", "1"]);
    let m = committee_membership(&epoch_only, &file)
        .expect("ok")
        .expect("member");
    assert_eq!((m.members, m.threshold, m.epoch), (vec![a, b, c], 3, 1));
    // Only the members flag: threshold and epoch from the file.
    let members_only = parse(&["--mode", "coordinator", "--committee-members", &members]);
    let m = committee_membership(&members_only, &file)
        .expect("ok")
        .expect("member");
    assert_eq!((m.members, m.threshold, m.epoch), (vec![d, a], 3, 5));
    // A threshold flag without members anywhere is an error.
    let lone = parse(&["--mode", "coordinator", "--committee-threshold", "2"]);
    assert!(committee_membership(&lone, &SeedsConfig::default().committee).is_err());
}

#[test]
fn non_coordinators_ignore_the_section_but_refuse_the_flags() {
    let (a, b) = (peer(), peer());
    let text = format!("[committee]\nmembers = [\"{a}\", \"{b}\"]\n");
    let file = SeedsConfig::from_toml_str(&text).expect("config").committee;
    for mode in ["storage", "bootstrap", "validator"] {
        assert_eq!(
            committee_membership(&parse(&["--mode", mode]), &file).expect("ok"),
            None,
            "{mode}"
        );
    }
    let members = format!("{a},{b}");
    let cli = parse(&["--mode", "storage", "--committee-members", &members]);
    assert!(committee_membership(&cli, &file).is_err());
}

#[test]
fn version_names_the_commit_and_profile() {
    let version = Cli::command().render_version();
    let expected = format!(
        "dsdnd {} (git {}, {})",
        dsdn_daemon::build_info::VERSION,
        dsdn_daemon::build_info::COMMIT,
        dsdn_daemon::build_info::PROFILE
    );
    assert_eq!(version.trim_end(), expected);
    assert!(!dsdn_daemon::build_info::COMMIT.is_empty());
}

#[test]
fn completions_and_man_pages_name_every_subcommand() {
    let cmd = Cli::command();
    assert_eq!(
        dsdn_daemon::cli_docs::subcommand_paths(&cmd),
        ["init", "completions"]
    );
    let problems = dsdn_daemon::cli_docs::check_documents(&cmd);
    assert!(problems.is_empty(), "{problems:#?}");
    assert!(Cli::try_parse_from(["dsdnd", "completions", "bash"]).is_ok());
    assert!(Cli::try_parse_from(["dsdnd", "completions", "tcsh"]).is_err());
}
