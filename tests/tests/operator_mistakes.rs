//! Operator mistakes the real `dsdnd` refuses at start (issue 14 §6): a data directory that
//! is a file, a `peers_file` that cannot be written, a connection limit beyond its bound.
//! Each run must exit with status 1 at once, before opening any socket, and print one
//! `error:` line naming the path (or key) and what is wrong, each cause once.
//!
//! We run as root, so "unwritable" is produced in ways root respects: a `peers_file` under
//! a regular file, a directory where the file should be, and a read-only tmpfs mounted in
//! a private mount namespace (`unshare -m`; that test is skipped, saying so, on a host
//! that cannot make one).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Runs `dsdnd` with `args` (plus a loopback listen address and API on port 0) and returns
/// its exit code and stderr; fails if it is still running after 30 s.
fn run_dsdnd(args: &[&str]) -> (Option<i32>, String) {
    let bin = dsdn_daemon::localnet::find_dsdnd().expect("dsdnd built");
    let mut child = Command::new(bin)
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn dsdnd");
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "dsdnd {args:?} still runs after 30 s:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let out = child.wait_with_output().expect("output");
    let _ = status;
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn write_config(dir: &Path, text: &str) -> String {
    let path = dir.join("seeds.toml");
    std::fs::write(&path, text).expect("write seeds.toml");
    path.to_str().expect("utf-8").to_owned()
}

/// The last line of `stderr`, which must be the one `error:` line.
fn error_line(stderr: &str) -> &str {
    let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(errors.len(), 1, "want one error line:\n{stderr}");
    errors[0]
}

#[test]
fn a_data_directory_that_is_a_file_is_refused_and_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = write_config(tmp.path(), "");
    let file = tmp.path().join("data");
    std::fs::write(&file, "not a directory").expect("write");
    let data = file.to_str().expect("utf-8");

    let (code, stderr) = run_dsdnd(&["--config", &config, "--data-dir", data]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("error: data directory {data} is not a directory (it is a file)")
    );
    assert_eq!(
        std::fs::read_to_string(&file).expect("read"),
        "not a directory",
        "the file is left alone"
    );

    // `dsdnd init` says the same.
    let bin = dsdn_daemon::localnet::find_dsdnd().expect("dsdnd built");
    let out = Command::new(bin)
        .args(["init", "--data-dir", data])
        .output()
        .expect("run dsdnd init");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        error_line(&stderr),
        format!("error: data directory {data} is not a directory (it is a file)")
    );
}

#[test]
fn an_unwritable_peers_file_is_refused_and_named() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let data = data.to_str().expect("utf-8");

    // Under a regular file: no one, root included, can create it.
    let file = tmp.path().join("file");
    std::fs::write(&file, "x").expect("write");
    let peers = file.join("peers.dat");
    let config = write_config(
        tmp.path(),
        &format!(
            "[bootstrap]\npeers_file = {:?}\n",
            peers.to_str().expect("utf-8")
        ),
    );
    let (code, stderr) = run_dsdnd(&["--config", &config, "--data-dir", data]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: peers_file {} cannot be used: {} is a file, not a directory",
            peers.display(),
            file.display()
        )
    );

    // A directory where the file should be.
    let config = write_config(tmp.path(), "[bootstrap]\npeers_file = \"peers.dat\"\n");
    std::fs::create_dir_all(Path::new(data).join("peers.dat")).expect("mkdir");
    let (code, stderr) = run_dsdnd(&["--config", &config, "--data-dir", data]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!("error: peers_file {data}/peers.dat is a directory, not a file")
    );
}

#[test]
fn a_connection_limit_beyond_its_bound_is_refused_with_key_value_and_bound() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let data = tmp.path().join("data");
    let config = write_config(
        tmp.path(),
        "[bootstrap]\nmax_inbound_connections = 9223372036854775807\n",
    );
    let (code, stderr) = run_dsdnd(&[
        "--config",
        &config,
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: invalid configuration {config}: bootstrap.max_inbound_connections: must be \
             between 0 and 65536, got 9223372036854775807"
        )
    );
    assert!(
        !data.exists(),
        "nothing is created for a refused configuration"
    );
}

#[test]
fn a_missing_config_prints_the_os_reason_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let config = tmp.path().join("missing.toml");
    let config = config.to_str().expect("utf-8");
    let data = tmp.path().join("data");
    let (code, stderr) = run_dsdnd(&[
        "--config",
        config,
        "--data-dir",
        data.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: invalid configuration {config}: cannot read {config}: No such file or \
             directory (os error 2)"
        )
    );
}

/// Runs `dsdnd` in a private mount namespace where `ro_dir` is a read-only tmpfs (nothing
/// leaks out: the mount goes with the process). `None` when this host cannot do that
/// (no `unshare`, or no privilege to make mount namespaces).
fn run_dsdnd_with_read_only(ro_dir: &Path, args: &[&str]) -> Option<(Option<i32>, String)> {
    let bin = dsdn_daemon::localnet::find_dsdnd().expect("dsdnd built");
    let probe = Command::new("unshare").args(["-m", "true"]).output().ok()?;
    if !probe.status.success() {
        return None;
    }
    let script = r#"mount -t tmpfs -o ro tmpfs "$0" && exec "$@""#;
    let out = Command::new("unshare")
        .args(["-m", "sh", "-c", script])
        .arg(ro_dir)
        .arg(bin)
        .args(args)
        .args(["--listen", "127.0.0.1:0", "--api", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .output()
        .expect("run unshare");
    Some((
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    ))
}

/// A read-only file system refuses root too: the data directory and the peer cache on one
/// are named with the OS reason.
#[test]
fn a_read_only_data_directory_or_peers_file_is_refused_with_the_os_reason() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let ro = tmp.path().join("ro");
    std::fs::create_dir(&ro).expect("mkdir");
    let ro_str = ro.to_str().expect("utf-8");
    let config = write_config(tmp.path(), "");
    let Some((code, stderr)) =
        run_dsdnd_with_read_only(&ro, &["--config", &config, "--data-dir", ro_str])
    else {
        eprintln!("skipped: this host cannot make a private mount namespace");
        return;
    };
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: data directory {ro_str} is not writable: Read-only file system (os error 30)"
        )
    );

    let peers = ro.join("peers.dat");
    let config = write_config(
        tmp.path(),
        &format!(
            "[bootstrap]\npeers_file = {:?}\n",
            peers.to_str().expect("utf-8")
        ),
    );
    let data = tmp.path().join("data");
    let (code, stderr) = run_dsdnd_with_read_only(
        &ro,
        &[
            "--config",
            &config,
            "--data-dir",
            data.to_str().expect("utf-8"),
        ],
    )
    .expect("worked above");
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        error_line(&stderr),
        format!(
            "error: peers_file {} is not writable: Read-only file system (os error 30)",
            peers.display()
        )
    );
}
