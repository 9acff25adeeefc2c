//! Dialling between real `dsdnd` processes on one host (issue 12 §5), each test in a
//! network namespace of its own (root required) with 198.51.100.2 and 198.51.100.3 on its
//! loopback. The namespace has no route anywhere else and is deleted at the end, also on
//! failure; where it cannot be created the test fails saying why.
//!
//! * Two addresses, one port: a TCP dial that reused the listen port bound
//!   `0.0.0.0:<port>`, the kernel took the destination's own address as the source, the
//!   socket connected to itself and noise failed, so the two never connected.
//! * An `IP:PORT` static peer whose TCP port refuses (an nftables rule in the namespace)
//!   is reached over QUIC.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use dsdn_daemon::localnet::find_dsdnd;

/// A network namespace and the processes started in it; both go away on drop.
struct Netns {
    name: String,
    children: Vec<Child>,
}

impl Netns {
    fn create(name: &str, addrs: &[&str]) -> Result<Self, String> {
        let ns = Self {
            name: name.to_owned(),
            children: Vec::new(),
        };
        ns.ip(&["netns", "add", name])?;
        ns.ip(&["-n", name, "link", "set", "lo", "up"])?;
        for a in addrs {
            ns.ip(&["-n", name, "addr", "add", &format!("{a}/32"), "dev", "lo"])?;
        }
        Ok(ns)
    }

    fn ip(&self, args: &[&str]) -> Result<(), String> {
        let out = Command::new("ip")
            .args(args)
            .output()
            .map_err(|e| format!("cannot run `ip` (iproute2): {e}"))?;
        if out.status.success() {
            Ok(())
        } else {
            Err(format!(
                "`ip {}` failed (network namespaces need root and iproute2): {}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
    }

    /// Starts `bin args…` inside the namespace, its output to `log`.
    fn spawn(&mut self, bin: &Path, args: &[&str], log: &Path) {
        let file = std::fs::File::create(log).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.name])
            .arg(bin)
            .args(args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::from(file.try_clone().unwrap()))
            .stderr(Stdio::from(file))
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// Starts a bootstrap node on `a` and a storage node on `b` whose only static peer is `a`,
/// in `ns`, and waits up to 20 s for the storage node to verify it.
fn storage_reaches_bootstrap(ns: &mut Netns, a: &str, b: &str) {
    let bin: PathBuf = find_dsdnd().expect("dsdnd is built (cargo build --workspace --bins)");
    let dir = tempfile::tempdir().unwrap();
    let seeds = dir.path().join("seeds.toml");
    std::fs::write(
        &seeds,
        format!(
            "[network]\nname = \"devnet\"\n[bootstrap]\ndns_seeds = []\nstatic_peers = [\"{a}\"]\n"
        ),
    )
    .unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_owned();
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let (a_log, b_log) = (dir.path().join("a.log"), dir.path().join("b.log"));
    ns.spawn(
        &bin,
        &[
            "--mode",
            "bootstrap",
            "--config",
            &arg(&seeds),
            "--data-dir",
            &arg(&a_dir),
            "--listen",
            a,
            "--api",
            "127.0.0.1:8645",
        ],
        &a_log,
    );
    ns.spawn(
        &bin,
        &[
            "--mode",
            "storage",
            "--config",
            &arg(&seeds),
            "--data-dir",
            &arg(&b_dir),
            "--listen",
            b,
            "--api",
            "127.0.0.1:8646",
        ],
        &b_log,
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    while !log_has(&b_log, "peer verified") {
        assert!(
            Instant::now() < deadline,
            "{b} never verified {a} within 20 s\n--- b.log\n{}",
            std::fs::read_to_string(&b_log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn log_has(log: &Path, needle: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle))
}

fn namespace(tag: &str) -> Netns {
    let name = format!("dsdn-{tag}-{}", std::process::id());
    Netns::create(&name, &["198.51.100.2", "198.51.100.3"])
        .unwrap_or_else(|e| panic!("cannot create the test's network namespace: {e}"))
}

#[test]
fn two_daemons_on_two_addresses_and_one_port_connect() {
    let mut ns = namespace("sameport");
    storage_reaches_bootstrap(&mut ns, "198.51.100.2:9400", "198.51.100.3:9400");
}

#[test]
fn an_ip_port_static_peer_whose_tcp_refuses_is_reached_over_quic() {
    let mut ns = namespace("quic");
    let rules = "table inet dsdn_test { chain input { type filter hook input priority 0; \
                 tcp dport 9410 reject with tcp reset; }; }";
    let out = Command::new("ip")
        .args(["netns", "exec", &ns.name, "nft", rules])
        .output()
        .unwrap_or_else(|e| panic!("cannot run nft (Debian package nftables): {e}"));
    assert!(
        out.status.success(),
        "nft refused the rule: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    storage_reaches_bootstrap(&mut ns, "198.51.100.2:9410", "198.51.100.3:9410");
}
