//! The NAT lab's traversal scenario (issue 12 §8 a–e; topology in
//! `dsdn_integration_tests::lab::traversal`): real `dsdnd` processes in network namespaces
//! (root required; where namespaces cannot be created the test fails saying why), a public
//! bootstrap node and coordinator, two storage nodes behind two masquerading routers whose
//! firewalls drop unsolicited packets.
//!
//! (a) the public nodes are confirmed public by AutoNAT and advertise only their public
//!     addresses; (b) each NATed node learns it is private, reserves a relay slot on the
//!     bootstrap node, and the coordinator reaches it through the relay (the routers drop
//!     what their LANs send to the coordinator, so the coordinator dialled them, and the
//!     only way in is the relay); (c) the two
//!     NATed nodes end with a direct connection through DCUtR (a TCP connection between the
//!     routers' public addresses); (d) the DA events of both storage registrations reach
//!     both NATed nodes with the coordinator's state root; (e) no private or loopback
//!     address is in the public nodes' address books (peers.dat and connected peers), which
//!     are all their PEX answers are made of.

use dsdn_daemon::api::DaStateView;
use dsdn_integration_tests::da::DaTip;
use dsdn_integration_tests::lab::traversal::{counter, relays, Traversal, P2P_PORT, STEP};
use dsdn_integration_tests::lab::{Lab, LabError};
use dsdn_protocols::AddressPolicy;

fn da_tip(lab: &Lab, name: &str) -> Option<DaTip> {
    let out = lab.agent(name, &["da", "state", "--json"]).ok()?;
    let st: DaStateView = serde_json::from_str(&out).ok()?;
    Some(DaTip::of(&st))
}

fn public(addr: &str) -> bool {
    addr.parse().is_ok_and(|a| AddressPolicy::PUBLIC.admits(&a))
}

#[test]
fn nodes_behind_nats_are_relayed_hole_punched_and_in_sync() -> Result<(), LabError> {
    let t = Traversal::start("trav")?;
    let lab = &t.lab;
    let id = |n: &str| lab.daemon(n).map(|d| d.peer_id.clone());
    let (boot_id, coord_id, s1_id, s2_id) = (id("boot")?, id("coord")?, id("s1")?, id("s2")?);

    // (a) Confirmed public, and only public addresses confirmed.
    for (name, ip) in [("boot", t.boot_ip), ("coord", t.coord_ip)] {
        let st = t.wait_reachability(name, "public")?;
        assert!(
            st.external_addrs
                .iter()
                .all(|a| a.contains(&format!("/ip4/{ip}/"))),
            "{name} confirmed addresses other than its own public one: {:?}",
            st.external_addrs
        );
    }

    // (b) Private, a slot on the bootstrap node's relay, reached through it.
    for name in ["s1", "s2"] {
        t.wait_reachability(name, "private")?;
        let st = t.wait_relayed(name)?;
        assert_eq!(
            relays(&st).collect::<Vec<_>>(),
            [boot_id.as_str()],
            "{name} holds its reservation elsewhere"
        );
        assert!(
            st.external_addrs.iter().all(|a| a.starts_with(&format!(
                "/ip4/{}/tcp/{P2P_PORT}/p2p/{boot_id}/p2p-circuit",
                t.boot_ip
            ))),
            "{name} advertises more than its relayed address: {:?}",
            st.external_addrs
        );
    }
    for (s, s_id) in [("s1", &s1_id), ("s2", &s2_id)] {
        lab.wait_until(
            &format!("the coordinator dialled {s} through the relay"),
            STEP,
            || {
                let peers = lab.peers("coord").ok()?;
                peers
                    .iter()
                    .any(|p| {
                        &p.peer_id == s_id
                            && p.connected
                            && p.direction.as_deref() == Some("outbound")
                            && p.addresses.iter().any(|a| a.contains("/p2p-circuit"))
                            // `peers list` shows the connection (issue 15 §6).
                            && p.connection.is_some()
                    })
                    .then_some(())
            },
        )?;
    }
    let boot = lab.status("boot")?;
    assert!(
        counter(&boot, "circuits_relayed") >= 2,
        "the bootstrap node relayed no circuit: {:?}",
        boot.nat
    );

    // (c) s1 and s2 end with a direct connection: DCUtR succeeded on both, and a TCP
    // connection joins the two routers' public addresses.
    for name in ["s1", "s2"] {
        t.wait_direct_upgrade(name)?;
    }
    lab.wait_until("s1 and s2 are connected", STEP, || {
        (lab.connected("s1", "s2") && lab.connected("s2", "s1")).then_some(())
    })?;
    // `peers list` says the connection is direct now, not relayed (issue 15 §6).
    lab.wait_until("s1 lists its connection to s2 as direct", STEP, || {
        let peers = lab.peers("s1").ok()?;
        let c = peers
            .iter()
            .find(|p| p.peer_id == s2_id)?
            .connection
            .clone()?;
        (!c.relayed && !c.remote_addr.contains("/p2p-circuit")).then_some(())
    })?;
    let [r1, r2] = t.router_ips;
    let direct = lab.wait_until("a direct TCP connection between the NATs", STEP, || {
        let out = lab
            .exec("s1", &["ss", "-Htn", "state", "established"])
            .ok()?;
        out.lines()
            .any(|l| l.contains(&format!("{r2}:{P2P_PORT}")))
            .then_some(out)
    })?;
    assert!(
        !direct.contains(&r1.to_string()),
        "s1 sees its own router's address: {direct}"
    );

    // (d) The DA log (both registrations) reaches both NATed nodes with the coordinator's
    // state root.
    let tip = lab.wait_until("both registrations sealed", STEP, || {
        da_tip(lab, "coord").filter(|t| t.events >= 2)
    })?;
    for name in ["s1", "s2"] {
        lab.wait_until(
            &format!("{name} has the coordinator's DA tip"),
            STEP,
            || {
                let coord = da_tip(lab, "coord")?;
                (da_tip(lab, name)? == coord && coord.height >= tip.height).then_some(())
            },
        )?;
    }

    // (e) No private or loopback address in the public nodes' address books.
    for name in ["boot", "coord"] {
        for p in lab.peers(name)? {
            let private: Vec<&String> = p.addresses.iter().filter(|a| !public(a)).collect();
            assert!(
                private.is_empty(),
                "{name} keeps non-public addresses of {}: {private:?}",
                p.peer_id
            );
        }
    }
    // The NATed nodes are known to the public ones only by relayed addresses.
    for p in lab.peers("coord")? {
        if p.peer_id == s1_id || p.peer_id == s2_id {
            assert!(
                p.addresses.iter().all(|a| a.contains("/p2p-circuit")),
                "coord stores a direct address of a NATed node: {:?}",
                p.addresses
            );
        }
    }
    // And the coordinator is a peer of theirs, inbound through the relay.
    for s in ["s1", "s2"] {
        let c = lab
            .peers(s)?
            .into_iter()
            .find(|p| p.peer_id == coord_id)
            .ok_or_else(|| LabError(format!("{s} does not know the coordinator")))?;
        assert!(c.connected, "{s} lost the coordinator");
        assert_eq!(
            c.direction.as_deref(),
            Some("inbound"),
            "{s} dialled the coordinator"
        );
    }
    Ok(())
}
