//! The NAT traversal scenario of issue 12 §8 (a)–(e), shared by the lab test
//! (`tests/tests/nat_traversal.rs`) and the benchmark `dsdn-bench-natlab`:
//!
//! ```text
//!   boot 198.51.100.10 (bootstrap, relay)    coord 198.51.100.11 (coordinator, DA authority)
//!            │                                        │
//!   ═════════╧══════════ internet bridge 198.51.100.0/24 ═╤═══════════════╤═══
//!                                                 r1 .101 (NAT)    r2 .102 (NAT)
//!                                                       │                 │
//!                                                 s1 10.1.0.10      s2 10.2.0.10
//!                                                 (storage)         (storage)
//! ```
//!
//! Network `natlab`, which does not allow private addresses (the default of every network
//! but devnet): nodes advertise only confirmed addresses. Both routers' firewalls also drop
//! what their LAN sends to the coordinator (an egress rule, as some networks have): the
//! storage nodes cannot dial it, so the coordinator, which needs a storage peer, has to
//! find them (Kademlia provider records carry their relayed addresses) and dial them through
//! the relay. Between the two storage nodes nothing is blocked: their relayed connection is
//! upgraded to a direct one by DCUtR.

use std::net::Ipv4Addr;
use std::time::Duration;

use dsdn_daemon::api::StatusResponse;
use dsdn_daemon::localnet::ConfigSpec;

use super::{DaemonSpec, Lab, LabError, LabResult, Stack};

/// The lab network's id.
pub const NETWORK: &str = "natlab";
/// The P2P port of every node of the scenario.
pub const P2P_PORT: u16 = 9700;
/// How long each step may take on two loaded cores.
pub const STEP: Duration = Duration::from_secs(60);

/// The scenario's lab and its addresses.
pub struct Traversal {
    /// The lab (dropping it stops the daemons and deletes the namespaces).
    pub lab: Lab,
    /// The bootstrap node's public address.
    pub boot_ip: Ipv4Addr,
    /// The coordinator's public address.
    pub coord_ip: Ipv4Addr,
    /// The two routers' public addresses.
    pub router_ips: [Ipv4Addr; 2],
}

fn ipv4(ip: Option<Ipv4Addr>, what: &str) -> LabResult<Ipv4Addr> {
    ip.ok_or_else(|| LabError(format!("the lab gave {what} no IPv4 address")))
}

impl Traversal {
    /// Builds the topology and starts the four daemons (daemons `boot`, `coord`, `s1`,
    /// `s2` on hosts of the same names); does not wait for anything.
    ///
    /// # Errors
    /// The namespaces, links, rules or processes cannot be created.
    pub fn start(tag: &str) -> LabResult<Traversal> {
        let mut lab = Lab::new(tag)?;
        let boot_ip = ipv4(lab.public_host("boot", Stack::V4)?.ipv4, "boot")?;
        let coord_ip = ipv4(lab.public_host("coord", Stack::V4)?.ipv4, "coord")?;
        let r1 = ipv4(lab.router("r1")?.ipv4, "r1")?;
        let r2 = ipv4(lab.router("r2")?.ipv4, "r2")?;
        lab.nat_host("r1", "s1")?;
        lab.nat_host("r2", "s2")?;
        for r in ["r1", "r2"] {
            lab.nft(
                r,
                &format!(
                    "table ip lab_egress {{ chain forward {{ type filter hook forward \
                     priority filter; policy accept; ip daddr {coord_ip} drop; }}; }}"
                ),
            )?;
        }
        let (_, authority) = lab.init_key("coord")?;
        let boot_at = format!("{boot_ip}:{P2P_PORT}");
        let base = ConfigSpec::default()
            .with_network(NETWORK)
            .fast()
            .with_da_authority(&authority);
        lab.spawn(
            "boot",
            "boot",
            DaemonSpec::new("bootstrap")
                .listen(&boot_at)
                .config(base.clone()),
        )?;
        lab.spawn(
            "coord",
            "coord",
            DaemonSpec::new("coordinator")
                .listen(format!("{coord_ip}:{P2P_PORT}"))
                .config(base.clone().with_static_peer(&boot_at)),
        )?;
        let nat = base
            .with_static_peer(&boot_at)
            .with_connection_limits(1, 125);
        for s in ["s1", "s2"] {
            lab.spawn(
                s,
                s,
                DaemonSpec::new("storage")
                    .listen(format!("0.0.0.0:{P2P_PORT}"))
                    .config(nat.clone()),
            )?;
        }
        Ok(Traversal {
            lab,
            boot_ip,
            coord_ip,
            router_ips: [r1, r2],
        })
    }

    /// Waits until daemon `name`'s reachability is `want` (`public`, `private`); its
    /// status then.
    ///
    /// # Errors
    /// [`STEP`] passed.
    pub fn wait_reachability(&self, name: &str, want: &str) -> LabResult<StatusResponse> {
        self.lab.wait_until(&format!("{name} is {want}"), STEP, || {
            self.lab
                .status(name)
                .ok()
                .filter(|s| s.reachability == want)
        })
    }

    /// Waits until daemon `name` holds an accepted relay reservation and advertises a
    /// relayed address; its status then.
    ///
    /// # Errors
    /// [`STEP`] passed.
    pub fn wait_relayed(&self, name: &str) -> LabResult<StatusResponse> {
        self.lab
            .wait_until(&format!("{name} reserved a relay slot"), STEP, || {
                self.lab.status(name).ok().filter(|s| {
                    relays(s).next().is_some()
                        && s.external_addrs.iter().any(|a| a.contains("/p2p-circuit"))
                })
            })
    }

    /// Waits until daemon `name` upgraded a relayed connection with DCUtR; its status
    /// then.
    ///
    /// # Errors
    /// [`STEP`] passed.
    pub fn wait_direct_upgrade(&self, name: &str) -> LabResult<StatusResponse> {
        self.lab.wait_until(
            &format!("{name} upgraded a connection with DCUtR"),
            STEP,
            || {
                self.lab
                    .status(name)
                    .ok()
                    .filter(|s| milestone(s, "first_direct_upgrade_ms").is_some())
            },
        )
    }
}

/// The relays holding a reservation of the node, from its status.
pub fn relays(s: &StatusResponse) -> impl Iterator<Item = &str> {
    s.nat
        .as_ref()
        .and_then(|n| n["relays"].as_array())
        .into_iter()
        .flatten()
        .filter_map(|v| v.as_str())
}

/// A NAT milestone of the node's status (`reachability_known_ms`, `first_reservation_ms`,
/// `first_direct_upgrade_ms`), in milliseconds since its start.
pub fn milestone(s: &StatusResponse, name: &str) -> Option<u64> {
    s.nat.as_ref()?["milestones"][name].as_u64()
}

/// A NAT counter of the node's status (`probes_ok`, `dcutr_ok`, `circuits_relayed`, …).
pub fn counter(s: &StatusResponse, name: &str) -> u64 {
    s.nat
        .as_ref()
        .and_then(|n| n["counters"][name].as_u64())
        .unwrap_or(0)
}
