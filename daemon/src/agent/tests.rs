//! Tests of the command line: parsing, tokens, one-line errors.

use super::*;

#[test]
fn cli_is_consistent() {
    Cli::command().debug_assert();
}

#[test]
fn version_names_the_commit_and_profile() {
    let version = Cli::command().render_version();
    assert_eq!(
        version.trim_end(),
        format!(
            "dsdn-agent {} (git {}, {})",
            dsdn_daemon::build_info::VERSION,
            dsdn_daemon::build_info::COMMIT,
            dsdn_daemon::build_info::PROFILE
        )
    );
}

#[test]
fn completions_and_man_pages_name_every_subcommand() {
    let cmd = Cli::command();
    let paths = dsdn_daemon::cli_docs::subcommand_paths(&cmd);
    for p in [
        "status",
        "peers list",
        "peers add-seed",
        "da blobs",
        "committee dkg",
        "watch",
        "completions",
    ] {
        assert!(paths.iter().any(|q| q == p), "{p} not in {paths:?}");
    }
    assert!(
        !paths.iter().any(|q| q == "man"),
        "man is hidden: {paths:?}"
    );
    let problems = dsdn_daemon::cli_docs::check_documents(&cmd);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn parses_commands() {
    let cli = Cli::try_parse_from(["dsdn-agent", "--api", "127.0.0.2:9000", "status", "--json"])
        .expect("parse");
    assert_eq!(cli.api.to_string(), "127.0.0.2:9000");
    assert!(matches!(cli.command, Command::Status { json: true }));

    let cli = Cli::try_parse_from(["dsdn-agent", "peers", "list", "--type", "storage-dc"])
        .expect("parse");
    assert!(matches!(
        cli.command,
        Command::Peers(PeersCommand::List {
            json: false,
            service: Some(ServiceType::StorageDc),
            wide: false,
        })
    ));
    assert!(Cli::try_parse_from(["dsdn-agent", "peers", "list", "--type", "miner"]).is_err());

    let cli = Cli::try_parse_from(["dsdn-agent", "devnet", "--duration", "5"]).expect("parse");
    match cli.command {
        Command::Devnet(a) => {
            assert_eq!(a.storage, 4);
            assert_eq!(a.events, 20);
            assert_eq!(a.duration, Some(5));
        }
        other => panic!("{other:?}"),
    }
    assert!(Cli::try_parse_from(["dsdn-agent", "devnet", "--storage", "3"]).is_err());

    let cli = Cli::try_parse_from([
        "dsdn-agent",
        "watch",
        "--config",
        "seeds.toml",
        "--json",
        "--data-dir",
        "light",
        "--count",
        "3",
    ])
    .expect("parse");
    assert_eq!(cli.data_dir.as_deref(), Some(Path::new("light")));
    match cli.command {
        Command::Watch(w) => {
            assert_eq!(w.config, Path::new("seeds.toml"));
            assert!(w.json);
            assert_eq!(w.count, Some(3));
        }
        other => panic!("{other:?}"),
    }
    assert!(Cli::try_parse_from(["dsdn-agent", "watch"]).is_err());
    assert!(Cli::try_parse_from(["dsdn-agent", "watch", "--config", "s", "--count", "0"]).is_err());
}

#[test]
fn parses_peer_commands() {
    let peer = "12D3KooWQYhTNQdmr3ArTeUHRYzFg94BKyTkoWBDWez9kSCVe2Xo";
    let parse = |args: &[&str]| {
        let mut all = vec!["dsdn-agent"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all)
    };
    let peers = |args: &[&str]| match parse(args).map(|c| c.command) {
        Ok(Command::Peers(p)) => p,
        other => panic!("{args:?}: {other:?}"),
    };
    assert!(matches!(
        peers(&["peers", "add", "203.0.113.50:30303"]),
        PeersCommand::Add { addr } if addr == "203.0.113.50:30303"
    ));
    assert!(matches!(
        peers(&["peers", "add-seed", "seed4.dsdn.network"]),
        PeersCommand::AddSeed { domain } if domain == "seed4.dsdn.network"
    ));
    assert!(matches!(
        peers(&["peers", "stats", "--json"]),
        PeersCommand::Stats { json: true }
    ));
    assert!(matches!(peers(&["peers", "reset"]), PeersCommand::Reset));
    assert!(matches!(
        peers(&["peers", "ban", peer, "--for", "12h"]),
        PeersCommand::Ban {
            duration: Some(43_200),
            ..
        }
    ));
    assert!(matches!(
        peers(&["peers", "ban", peer]),
        PeersCommand::Ban { duration: None, .. }
    ));
    assert!(matches!(
        peers(&["peers", "unban", peer]),
        PeersCommand::Unban {
            peer: Some(_),
            all: false
        }
    ));
    assert!(matches!(
        peers(&["peers", "unban", "--all"]),
        PeersCommand::Unban {
            peer: None,
            all: true
        }
    ));
    assert!(Cli::try_parse_from(["dsdn-agent", "peers", "unban"]).is_err());
    assert!(Cli::try_parse_from(["dsdn-agent", "peers", "unban", peer, "--all"]).is_err());
    assert!(matches!(
        peers(&["peers", "list", "--type", "chain", "--json"]),
        PeersCommand::List {
            json: true,
            service: Some(ServiceType::Chain),
            wide: false,
        }
    ));
    assert!(matches!(
        peers(&["peers", "list", "--wide"]),
        PeersCommand::List { wide: true, .. }
    ));
    assert!(matches!(
        peers(&["peers", "remove", "127.0.0.1:9"]),
        PeersCommand::Remove { addr } if addr == "127.0.0.1:9"
    ));
    // A prefix or short form is resolved against the known peers when the command runs.
    assert!(parse(&["peers", "ban", "12D3…abcdefgh"]).is_ok());
    assert!(parse(&["peers", "ban", " "]).is_err());
    assert!(parse(&["peers", "ban", peer, "--for", "1y"]).is_err());
    assert!(parse(&["peers", "add"]).is_err());
    assert!(parse(&["peers", "reset", "--yes"]).is_err());

    // Auth flags are global and exclusive.
    let cli = parse(&["peers", "stats", "--data-dir", "/srv/dsdn"]).expect("parse");
    assert_eq!(cli.data_dir.as_deref(), Some(Path::new("/srv/dsdn")));
    let cli = parse(&["--cookie", "/tmp/c", "status"]).expect("parse");
    assert_eq!(cli.cookie.as_deref(), Some(Path::new("/tmp/c")));
    assert!(parse(&["--cookie", "/tmp/c", "--data-dir", "/d", "status"]).is_err());
}

#[test]
fn token_sources() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join(".cookie"), "tok1\n").expect("write");
    let other = dir.path().join("other");
    std::fs::write(&other, "tok2").expect("write");
    assert_eq!(read_token(None, Some(dir.path())).expect("dir"), "tok1");
    assert_eq!(read_token(Some(&other), None).expect("file"), "tok2");

    let missing = dir.path().join("missing");
    let msg = one_line(&read_token(None, Some(&missing)).expect_err("no cookie"));
    assert!(
        msg.starts_with(&format!(
            "cannot read the API cookie {}/.cookie (is dsdnd running with this --data-dir?",
            missing.display()
        )),
        "{msg}"
    );
    let msg = one_line(&read_token(Some(&missing), None).expect_err("no cookie"));
    assert!(msg.contains("is dsdnd running?"), "{msg}");
    std::fs::write(&other, "  \n").expect("write");
    let msg = one_line(&read_token(Some(&other), None).expect_err("empty"));
    assert!(msg.ends_with("the cookie file is empty"), "{msg}");
}

#[test]
fn default_cookie_path_error_names_the_flags() {
    // The test runs in the crate directory, which has no dsdn-data/.cookie.
    if Path::new(DEFAULT_DATA_DIR).join(".cookie").exists() {
        return;
    }
    let msg = one_line(&read_token(None, None).expect_err("no default cookie"));
    assert!(
        msg.starts_with("cannot read the API cookie dsdn-data/.cookie (pass --data-dir DIR of the daemon or --cookie FILE)"),
        "{msg}"
    );
}

#[test]
fn errors_are_one_line() {
    let e = anyhow::anyhow!("node x: exited\n--- log ---\nline").context("devnet failed");
    assert_eq!(one_line(&e), "devnet failed: node x: exited");
    // A cause whose text the error already quotes is printed once.
    let key = dsdn_daemon::key::KeyError::Io {
        path: "/d/node.key".into(),
        source: std::io::Error::from_raw_os_error(2),
    };
    let e = anyhow::Error::new(key).context("cannot load the key");
    assert_eq!(
        one_line(&e),
        "cannot load the key: /d/node.key: No such file or directory (os error 2)"
    );
}
