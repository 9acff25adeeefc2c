//! Operator mistakes the real `dsdnd` refuses at start (issue 14 §6): a data directory that
//! is a file, a `peers_file` that cannot be written, a connection limit beyond its bound.
//! Each run must exit with status 1 at once, before opening any socket, and print one
//! `error:` line naming the path (or key) and what is wrong, each cause once.
//!
//! We run as root, so "unwritable" is produced in ways root respects: a `peers_file` under
//! a regular file, and a directory where the file should be.

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
