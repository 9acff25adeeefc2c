//! Dialling between real `dsdnd` processes on one host (issue 12 §5), each test in a
//! network namespace of its own (root required; see `dsdn_integration_tests::lab`) with
//! 198.51.100.2 and 198.51.100.3 on its loopback. The namespace has no route anywhere else
//! and is deleted at the end, also on failure; where it cannot be created the test fails
//! saying why.
//!
//! * Two addresses, one port: a TCP dial that reused the listen port bound
//!   `0.0.0.0:<port>`, the kernel took the destination's own address as the source, the
//!   socket connected to itself and noise failed, so the two never connected.
//! * An `IP:PORT` static peer whose TCP port refuses (an nftables rule in the namespace)
//!   is reached over QUIC.

use std::time::Duration;

use dsdn_integration_tests::lab::{DaemonSpec, Lab, LabError};

/// A lab with one namespace, `host`, holding 198.51.100.2 and 198.51.100.3.
fn one_host(tag: &str) -> Result<Lab, LabError> {
    let mut lab = Lab::new(tag)?;
    let addrs = ["198.51.100.2", "198.51.100.3"].map(|a| a.parse().expect("IP"));
    lab.namespace("host", &addrs)?;
    Ok(lab)
}

/// Starts a bootstrap node on `a` and a storage node on `b` whose only static peer is `a`,
/// both in `host`, and waits up to 20 s for the storage node to verify it.
fn storage_reaches_bootstrap(lab: &mut Lab, a: &str, b: &str) -> Result<(), LabError> {
    lab.spawn("host", "a", DaemonSpec::new("bootstrap").listen(a))?;
    lab.spawn(
        "host",
        "b",
        DaemonSpec::new("storage").listen(b).static_peer(a),
    )?;
    lab.wait_until(
        &format!("{b} verifies {a}"),
        Duration::from_secs(20),
        || lab.log_has("b", "peer verified").then_some(()),
    )
}

#[test]
fn two_daemons_on_two_addresses_and_one_port_connect() -> Result<(), LabError> {
    let mut lab = one_host("sameport")?;
    storage_reaches_bootstrap(&mut lab, "198.51.100.2:9400", "198.51.100.3:9400")
}

#[test]
fn an_ip_port_static_peer_whose_tcp_refuses_is_reached_over_quic() -> Result<(), LabError> {
    let mut lab = one_host("quic")?;
    lab.nft(
        "host",
        "table inet dsdn_test { chain input { type filter hook input priority 0; \
         tcp dport 9410 reject with tcp reset; }; }",
    )?;
    storage_reaches_bootstrap(&mut lab, "198.51.100.2:9410", "198.51.100.3:9410")
}
