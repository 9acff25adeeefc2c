use super::*;

fn peer(s: &str) -> StaticPeer {
    StaticPeer::parse(s).unwrap()
}

fn seed(s: &str) -> DnsSeed {
    DnsSeed::new(s).unwrap()
}

fn sample() -> AddedSources {
    AddedSources {
        static_peers: vec![
            peer("203.0.113.50:30303"),
            peer("[2001:db8::1]:4000"),
            peer("/ip4/198.51.100.10/tcp/30303/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA"),
        ],
        dns_seeds: vec![seed("seed4.dsdn.network"), seed("seed5.example")],
    }
}

/// Names of the entries of `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn missing_file_is_empty() {
    let dir = tempfile::tempdir().unwrap();
    let path = AddedSources::default_path(dir.path());
    assert_eq!(path, dir.path().join("added-peers.toml"));
    let (sources, aside) = AddedSources::load(&path).unwrap();
    assert!(sources.is_empty());
    assert_eq!(aside, None);
    assert!(names(dir.path()).is_empty(), "load created a file");
}

#[test]
fn round_trip_with_header_and_no_temp_file_left() {
    let dir = tempfile::tempdir().unwrap();
    let path = AddedSources::default_path(dir.path());
    let sources = sample();
    sources.save(&path).unwrap();
    assert_eq!(names(dir.path()), ["added-peers.toml"]);

    let text = fs::read_to_string(&path).unwrap();
    assert!(text.starts_with("# added-peers.toml"), "{text}");
    assert!(text.contains("Written by dsdnd"), "{text}");
    assert!(text.contains("\"seed4.dsdn.network\""), "{text}");
    assert!(text.contains("\"[2001:db8::1]:4000\""), "{text}");

    let (loaded, aside) = AddedSources::load(&path).unwrap();
    assert_eq!(aside, None);
    assert_eq!(loaded, sources);

    // Saving again replaces the file; saving empty additions round-trips too.
    let empty = AddedSources::default();
    empty.save(&path).unwrap();
    assert_eq!(AddedSources::load(&path).unwrap(), (empty, None));
    assert_eq!(names(dir.path()), ["added-peers.toml"]);
}

#[test]
fn hand_written_file_loads_and_drops_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("added-peers.toml");
    fs::write(
        &path,
        "dns_seeds = [\"Seed4.DSDN.network.\", \"seed4.dsdn.network\"]\n\
         static_peers = [\"1.2.3.4:5\", \"1.2.3.4:5\"]\n",
    )
    .unwrap();
    let (loaded, aside) = AddedSources::load(&path).unwrap();
    assert_eq!(aside, None);
    assert_eq!(loaded.dns_seeds, [seed("seed4.dsdn.network")]);
    assert_eq!(loaded.static_peers, [peer("1.2.3.4:5")]);
    // Only one of the two keys.
    fs::write(&path, "static_peers = [\"1.2.3.4:5\"]\n").unwrap();
    let (loaded, _) = AddedSources::load(&path).unwrap();
    assert_eq!(loaded.static_peers.len(), 1);
    assert!(loaded.dns_seeds.is_empty());
}

#[test]
fn unusable_file_is_moved_aside_and_treated_as_empty() {
    let too_many = format!(
        "dns_seeds = [{}]\n",
        (0..=MAX_ADDED)
            .map(|i| format!("\"s{i}.example\""))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let cases: [&[u8]; 7] = [
        b"static_peers = [\"1.2.3.4:5\"",  // not TOML
        b"static_peers = [\"1.2.3.4\"]\n", // invalid peer (no port)
        b"dns_seeds = [\"bad_seed\"]\n",   // invalid seed
        b"peers = [\"1.2.3.4:5\"]\n",      // unknown key
        b"static_peers = \"1.2.3.4:5\"\n", // wrong type
        b"\xff\xfe garbage",               // not UTF-8
        too_many.as_bytes(),               // over the limit
    ];
    for contents in cases {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("added-peers.toml");
        fs::write(&path, contents).unwrap();
        let before = unix_now();
        let (loaded, aside) = AddedSources::load(&path).unwrap();
        let shown = String::from_utf8_lossy(contents);
        assert!(loaded.is_empty(), "{shown}");
        let aside = aside.unwrap_or_else(|| panic!("not moved aside: {shown}"));
        assert!(!path.exists(), "{shown}");
        assert_eq!(fs::read(&aside).unwrap(), contents, "contents kept");
        let name = aside.file_name().unwrap().to_string_lossy().into_owned();
        let secs: u64 = name
            .strip_prefix("added-peers.toml.corrupt-")
            .unwrap_or_else(|| panic!("{name}"))
            .parse()
            .unwrap();
        assert!(secs >= before && secs <= unix_now(), "{name}");
        // The node can save over the now-missing file.
        sample().save(&path).unwrap();
        assert_eq!(AddedSources::load(&path).unwrap(), (sample(), None));
    }
}

/// Issue 14 §6: the newest [`KEEP_CORRUPT`] copies stay, the copy just made always among
/// them; other names are left alone.
#[test]
fn move_aside_keeps_the_newest_three_copies() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("added-peers.toml");
    fs::write(dir.path().join("added-peers.toml.corrupt-old"), "mine").unwrap();
    for now in [5, 5, 7, 3, 9] {
        fs::write(&path, format!("{now}")).unwrap();
        let aside = move_aside(&path, now).unwrap();
        assert!(aside.exists(), "the copy just made stays");
    }
    let mut names: Vec<String> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "added-peers.toml.corrupt-5.1",
            "added-peers.toml.corrupt-7",
            "added-peers.toml.corrupt-9",
            "added-peers.toml.corrupt-old",
        ]
    );
    assert_eq!(KEEP_CORRUPT, 3);
}

#[test]
fn move_aside_never_overwrites() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("added-peers.toml");
    fs::write(&path, "a").unwrap();
    let first = move_aside(&path, 42).unwrap();
    fs::write(&path, "b").unwrap();
    let second = move_aside(&path, 42).unwrap();
    assert_eq!(first, dir.path().join("added-peers.toml.corrupt-42"));
    assert_eq!(second, dir.path().join("added-peers.toml.corrupt-42.1"));
    assert_eq!(fs::read_to_string(first).unwrap(), "a");
    assert_eq!(fs::read_to_string(second).unwrap(), "b");
}

#[test]
fn unreadable_path_is_an_error_not_corruption() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be.
    let e = AddedSources::load(dir.path()).unwrap_err();
    assert!(matches!(e, AddedError::Io { .. }), "{e:?}");
    assert!(dir.path().exists());
    // Saving into a missing directory names the temporary file.
    let missing = dir.path().join("no-such-dir").join("added-peers.toml");
    let e = sample().save(&missing).unwrap_err();
    assert!(e.to_string().contains("added-peers.toml.tmp"), "{e}");
}

#[test]
fn add_deduplicates() {
    let mut sources = AddedSources::default();
    assert!(sources.add_static(peer("203.0.113.50:30303")).unwrap());
    assert!(!sources.add_static(peer("203.0.113.50:30303")).unwrap());
    // The same host as a multiaddr is a different entry (it is dialled differently).
    assert!(sources
        .add_static(peer("/ip4/203.0.113.50/tcp/30303"))
        .unwrap());
    assert!(sources.add_seed(seed("seed4.dsdn.network")).unwrap());
    assert!(!sources.add_seed(seed("SEED4.dsdn.network.")).unwrap());
    assert_eq!(sources.static_peers.len(), 2);
    assert_eq!(sources.dns_seeds.len(), 1);
}

#[test]
fn at_most_max_added_of_each() {
    let mut sources = AddedSources::default();
    for i in 0..MAX_ADDED {
        let p = peer(&format!("10.0.{}.{}:30303", i / 200, i % 200 + 1));
        assert!(sources.add_static(p).unwrap(), "{i}");
        assert!(sources.add_seed(seed(&format!("s{i}.example"))).unwrap());
    }
    let e = sources.add_static(peer("10.9.9.9:1")).unwrap_err();
    assert!(
        matches!(
            e,
            AddedError::TooMany {
                kind: AddedKind::StaticPeer,
                max: MAX_ADDED
            }
        ),
        "{e:?}"
    );
    assert_eq!(e.to_string(), "too many added static peers (at most 256)");
    let e = sources.add_seed(seed("one-more.example")).unwrap_err();
    assert_eq!(e.to_string(), "too many added DNS seeds (at most 256)");
    // A duplicate of a present entry is still just "already there".
    assert!(!sources.add_static(peer("10.0.0.1:30303")).unwrap());
    assert_eq!(sources.static_peers.len(), MAX_ADDED);
    assert_eq!(sources.dns_seeds.len(), MAX_ADDED);
    // A full list saves and loads back (the limit is inclusive).
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("added-peers.toml");
    sources.save(&path).unwrap();
    assert_eq!(AddedSources::load(&path).unwrap(), (sources, None));
}

#[test]
fn merge_appends_only_what_seeds_toml_lacks() {
    let mut cfg = BootstrapConfig {
        static_peers: vec![peer("203.0.113.50:30303"), peer("192.0.2.1:1")],
        dns_seeds: vec![seed("seed1.dsdn.network")],
        ..BootstrapConfig::default()
    };
    let mut added = AddedSources::default();
    added.add_static(peer("198.51.100.7:30303")).unwrap();
    added.add_static(peer("203.0.113.50:30303")).unwrap(); // already in seeds.toml
    added.add_static(peer("198.51.100.8:30303")).unwrap();
    added.add_seed(seed("seed1.dsdn.network")).unwrap(); // already in seeds.toml
    added.add_seed(seed("seed4.dsdn.network")).unwrap();

    assert_eq!(added.merge_into(&mut cfg), 3);
    assert_eq!(
        cfg.static_peers,
        [
            peer("203.0.113.50:30303"),
            peer("192.0.2.1:1"),
            peer("198.51.100.7:30303"),
            peer("198.51.100.8:30303"),
        ]
    );
    assert_eq!(
        cfg.dns_seeds,
        [seed("seed1.dsdn.network"), seed("seed4.dsdn.network")]
    );
    // Merging twice changes nothing; other settings are untouched.
    let snapshot = cfg.clone();
    assert_eq!(added.merge_into(&mut cfg), 0);
    assert_eq!(cfg, snapshot);
    assert_eq!(cfg.min_peers, BootstrapConfig::default().min_peers);
    // Empty additions merge to nothing.
    assert_eq!(AddedSources::default().merge_into(&mut cfg), 0);
}
