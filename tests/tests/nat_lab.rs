//! The NAT lab (issue 12 §8) with real `dsdnd` processes in network namespaces (root
//! required; see `dsdn_integration_tests::lab`): public hosts on a documentation-address
//! "internet", home routers masquerading private LANs. Where namespaces cannot be created
//! the tests fail saying why.
//!
//! * (f) a node listening on IPv4 and IPv6 is reached by an IPv4-only host over IPv4 and by
//!   an IPv6-only host over IPv6;
//! * two nodes behind two masquerading routers reach a public bootstrap node through their
//!   NATs, which sees them at the routers' public addresses (nftables counters in its
//!   namespace) and stores no IPv6 link-local address of theirs.

use std::net::IpAddr;
use std::time::Duration;

use dsdn_integration_tests::lab::{DaemonSpec, Lab, LabError, Stack};

/// How long a lab waits for connections: generous for 2 loaded cores.
const WAIT: Duration = Duration::from_secs(40);

#[test]
fn a_dual_stack_node_is_reached_over_ipv4_and_over_ipv6() -> Result<(), LabError> {
    let mut lab = Lab::new("dual")?;
    let dual = lab.public_host("dual", Stack::Dual)?;
    let v4 = lab.public_host("v4", Stack::V4)?;
    let v6 = lab.public_host("v6", Stack::V6)?;
    let (Some(dual4), Some(dual6), Some(v4_ip), Some(v6_ip)) =
        (dual.ipv4, dual.ipv6, v4.ipv4, v6.ipv6)
    else {
        return Err(LabError("the lab gave the hosts no addresses".into()));
    };
    let (at4, at6) = (format!("{dual4}:9500"), format!("[{dual6}]:9500"));
    lab.count_sources("dual", &[&v4_ip.to_string(), &v6_ip.to_string()])?;
    lab.spawn(
        "dual",
        "dual",
        DaemonSpec::new("bootstrap").listen(&at4).listen(&at6),
    )?;
    // Each dialler has one family only, and knows the dual-stack node by that family's
    // address only.
    lab.spawn(
        "v4",
        "v4",
        DaemonSpec::new("storage")
            .listen(format!("{v4_ip}:9500"))
            .static_peer(&at4),
    )?;
    lab.spawn(
        "v6",
        "v6",
        DaemonSpec::new("storage")
            .listen(format!("[{v6_ip}]:9500"))
            .static_peer(&at6),
    )?;
    lab.wait_until(
        "the dual-stack node verified both the IPv4 and the IPv6 peer",
        WAIT,
        || (lab.connected("dual", "v4") && lab.connected("dual", "v6")).then_some(()),
    )?;
    for who in ["v4", "v6"] {
        assert!(lab.connected(who, "dual"), "{who} is not connected to dual");
    }
    let status = lab.status("dual")?;
    for want in [
        format!("/ip4/{dual4}/tcp/9500"),
        format!("/ip6/{dual6}/tcp/9500"),
        format!("/ip4/{dual4}/udp/9500/quic-v1"),
        format!("/ip6/{dual6}/udp/9500/quic-v1"),
    ] {
        assert!(
            status.listen_addrs.contains(&want),
            "dual does not list {want}: {:?}",
            status.listen_addrs
        );
    }
    // Each dialler stores the dual node's address of its own family, and no IPv6
    // link-local one (the [::] listen reports them, but no one else can dial them).
    for (who, want) in [
        ("v4", format!("/ip4/{dual4}/tcp/9500")),
        ("v6", format!("/ip6/{dual6}/tcp/9500")),
    ] {
        let dual_id = &lab.daemon("dual")?.peer_id;
        let peers = lab.peers(who)?;
        let rec = peers
            .iter()
            .find(|p| &p.peer_id == dual_id)
            .ok_or_else(|| LabError(format!("{who} has no record of dual")))?;
        assert!(
            rec.addresses.contains(&want),
            "{who}'s record of dual lacks {want}: {:?}",
            rec.addresses
        );
        assert!(
            !rec.addresses.iter().any(|a| a.starts_with("/ip6/fe80")),
            "{who} stored a link-local address of dual: {:?}",
            rec.addresses
        );
    }
    // Which family each dialler used: what the dual node received from each (TCP or QUIC).
    for ip in [IpAddr::V4(v4_ip), IpAddr::V6(v6_ip)] {
        let n = lab.packets_from("dual", &ip.to_string())?;
        assert!(n > 0, "dual received nothing from {ip}");
    }
    Ok(())
}

#[test]
fn nodes_behind_two_nats_reach_a_public_bootstrap_node_through_masquerade() -> Result<(), LabError>
{
    let mut lab = Lab::new("nat")?;
    let boot = lab.public_host("boot", Stack::V4)?;
    let r1 = lab.router("r1")?;
    let r2 = lab.router("r2")?;
    let a = lab.nat_host("r1", "a")?;
    lab.nat_host("r2", "b")?;
    let (Some(boot_ip), Some(r1_ip), Some(r2_ip), Some(a_ip)) =
        (boot.ipv4, r1.ipv4, r2.ipv4, a.ipv4)
    else {
        return Err(LabError("the lab gave the hosts no addresses".into()));
    };
    let boot_at = format!("{boot_ip}:9600");
    lab.count_sources(
        "boot",
        &["10.0.0.0/8", &r1_ip.to_string(), &r2_ip.to_string()],
    )?;
    lab.spawn(
        "boot",
        "boot",
        DaemonSpec::new("bootstrap").listen(&boot_at),
    )?;
    // No --listen: the NATed nodes listen on the default 0.0.0.0 and [::] at default_port.
    lab.spawn("a", "a", DaemonSpec::new("storage").static_peer(&boot_at))?;
    lab.spawn("b", "b", DaemonSpec::new("storage").static_peer(&boot_at))?;
    lab.wait_until("both NATed nodes verified the bootstrap node", WAIT, || {
        (lab.connected("a", "boot") && lab.connected("b", "boot")).then_some(())
    })?;
    lab.wait_until("the bootstrap node verified both NATed nodes", WAIT, || {
        (lab.connected("boot", "a") && lab.connected("boot", "b")).then_some(())
    })?;
    // Masquerade: the bootstrap node hears from the routers' public addresses, never from
    // a 10.x one (TCP or QUIC).
    lab.wait_until("packets from both routers", WAIT, || {
        let r1 = lab.packets_from("boot", &r1_ip.to_string()).ok()?;
        let r2 = lab.packets_from("boot", &r2_ip.to_string()).ok()?;
        (r1 > 0 && r2 > 0).then_some(())
    })?;
    let private = lab.packets_from("boot", "10.0.0.0/8")?;
    assert_eq!(
        private, 0,
        "boot received {private} packets from 10.0.0.0/8"
    );
    // And the established TCP connections it holds come from the routers only.
    let remotes = lab.tcp_remotes("boot", 9600)?;
    assert!(
        remotes
            .iter()
            .all(|r| *r == IpAddr::V4(r1_ip) || *r == IpAddr::V4(r2_ip)),
        "the bootstrap node has connections from {remotes:?}, not only from the routers"
    );
    // The NATed nodes' [::] listen reports their link-local IPv6 addresses: the bootstrap
    // node keeps none of them (a multiaddr has no zone: no one else could dial them).
    for p in lab.peers("boot")? {
        assert!(
            !p.addresses.iter().any(|a| a.starts_with("/ip6/fe80")),
            "boot stored a link-local address of {}: {:?}",
            p.peer_id,
            p.addresses
        );
    }
    // The default listen is dual stack: 0.0.0.0 gives the LAN address, [::] the IPv6
    // loopback (the only IPv6 address of a NATed host).
    let port = dsdn_bootstrap::config::BootstrapConfig::default().default_port;
    let listen = lab.status("a")?.listen_addrs;
    for want in [
        format!("/ip4/{a_ip}/tcp/{port}"),
        format!("/ip6/::1/tcp/{port}"),
    ] {
        assert!(listen.contains(&want), "a does not list {want}: {listen:?}");
    }
    Ok(())
}
