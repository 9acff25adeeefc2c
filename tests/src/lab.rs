//! The NAT lab (issue 12 §8): Linux network namespaces that stand for hosts on the internet,
//! home routers that masquerade a private LAN, and hosts behind them, with real `dsdnd`
//! processes inside. Root, iproute2 (`ip`, `ss`) and nftables (`nft`) are needed; where a
//! namespace cannot be created [`Lab`] returns an error saying why, and the test fails (it
//! is never skipped).
//!
//! Topology, built on demand:
//!
//! * the **internet**: a namespace `<prefix>-inet` holding the bridge `br0`; nothing else
//!   is in it, and no interface of the host's own (root) namespace is connected to it, so
//!   nothing the lab does reaches a real network;
//! * **public hosts** ([`Lab::public_host`]): a namespace with `eth0` on the bridge, an
//!   IPv4 address in 198.51.100.0/24 (`198.51.100.10`, `.11`, …) and/or an IPv6 one in
//!   2001:db8::/64 (`2001:db8::10`, `::11`, …), as [`Stack`] says;
//! * **home routers** ([`Lab::router`]): a namespace with a public `eth0`
//!   (`198.51.100.101`, `.102`, …) and a LAN bridge `lan0` holding `10.<n>.0.1/24`, IPv4
//!   forwarding on, and an nftables table `lab_nat` masquerading what leaves by `eth0`;
//! * **NATed hosts** ([`Lab::nat_host`]): a namespace with `eth0` on a router's LAN,
//!   `10.<n>.0.10`, `.11`, … and a default route to the router;
//! * **bare namespaces** ([`Lab::namespace`]): a namespace with a few addresses on its
//!   loopback and no link anywhere (several daemons on one "host").
//!
//! [`Lab::spawn`] starts `dsdnd` in a host (see [`daemon`]); [`Lab::peers`],
//! [`Lab::status`] and [`Lab::agent`] ask its control API through `dsdn-agent`, run in the
//! same namespace; [`Lab::wait_until`] polls a condition. Dropping the [`Lab`] kills every
//! process and deletes every namespace, also when the test panics (then it first prints
//! the end of each daemon's log).
//!
//! ```no_run
//! use dsdn_integration_tests::lab::{DaemonSpec, Lab, Stack};
//! # fn main() -> Result<(), dsdn_integration_tests::lab::LabError> {
//! let mut lab = Lab::new("nat")?;
//! let boot = lab.public_host("boot", Stack::V4)?;
//! lab.router("r1")?;
//! lab.nat_host("r1", "a")?;
//! let listen = format!("{}:9000", boot.ipv4.expect("v4"));
//! lab.spawn("boot", "boot", DaemonSpec::new("bootstrap").listen(&listen))?;
//! lab.spawn("a", "a", DaemonSpec::new("storage").static_peer(&listen))?;
//! lab.wait_until("a connects", std::time::Duration::from_secs(20), || {
//!     let peers = lab.peers("a").ok()?;
//!     peers.iter().any(|p| p.connected).then_some(())
//! })?;
//! # Ok(())
//! # }
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::Path;
use std::process::{Child, Command};

pub mod daemon;
pub mod traversal;

pub use daemon::{Daemon, DaemonSpec};

/// Why a lab operation failed; `Debug` prints the message as is (multi-line, with logs),
/// so that `?` in a test returning `Result<(), LabError>` and `expect` read well.
pub struct LabError(pub String);

impl fmt::Display for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for LabError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LabError {}

impl From<String> for LabError {
    fn from(s: String) -> Self {
        LabError(s)
    }
}

/// Result of lab operations.
pub type LabResult<T> = Result<T, LabError>;

/// Which address families a public host gets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// IPv4 only (198.51.100.0/24).
    V4,
    /// IPv6 only (2001:db8::/64).
    V6,
    /// Both.
    Dual,
}

/// One host of the lab: a network namespace and its addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Host {
    /// The name the test gave.
    pub name: String,
    /// The network namespace (`ip netns exec <ns> …`).
    pub ns: String,
    /// Its IPv4 address (public, private behind a router, or the first loopback one).
    pub ipv4: Option<Ipv4Addr>,
    /// Its IPv6 address, if any.
    pub ipv6: Option<Ipv6Addr>,
    /// For a router: its LAN number `n` (LAN 10.n.0.0/24); for a NATed host: its router's.
    pub lan: Option<u8>,
}

/// A NAT lab: namespaces, processes and a temporary directory, all removed on drop.
pub struct Lab {
    prefix: String,
    dir: tempfile::TempDir,
    /// Created namespaces, in creation order (deleted in reverse).
    namespaces: Vec<String>,
    hosts: BTreeMap<String, Host>,
    daemons: BTreeMap<String, Daemon>,
    children: Vec<Child>,
    internet: bool,
    next_public: u8,
    next_router: u8,
    next_link: u32,
    lan_hosts: BTreeMap<u8, u8>,
}

/// Runs `program args…`; its stdout, or an error quoting stderr.
pub(crate) fn run(program: &str, args: &[&str]) -> LabResult<String> {
    let out = Command::new(program).args(args).output().map_err(|e| {
        LabError(format!(
            "cannot run `{program}` ({e}): the NAT lab needs root, iproute2 and nftables"
        ))
    })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(LabError(format!(
            "`{program} {}` failed (network namespaces need root, iproute2 and nftables): {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

impl Lab {
    /// An empty lab whose namespaces are named `dsdn-<tag>-<pid>-<host>`; `tag` must be
    /// unique among the tests of one test binary (they run in parallel).
    ///
    /// # Errors
    /// The temporary directory cannot be created.
    pub fn new(tag: &str) -> LabResult<Lab> {
        let dir = tempfile::Builder::new()
            .prefix(&format!("dsdn-lab-{tag}-"))
            .tempdir()
            .map_err(|e| LabError(format!("cannot create the lab's directory: {e}")))?;
        Ok(Lab {
            prefix: format!("dsdn-{tag}-{}", std::process::id()),
            dir,
            namespaces: Vec::new(),
            hosts: BTreeMap::new(),
            daemons: BTreeMap::new(),
            children: Vec::new(),
            internet: false,
            next_public: 10,
            next_router: 1,
            next_link: 0,
            lan_hosts: BTreeMap::new(),
        })
    }

    /// The lab's temporary directory (data directories, configs, logs).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The host called `name`.
    ///
    /// # Errors
    /// No such host.
    pub fn host(&self, name: &str) -> LabResult<&Host> {
        self.hosts
            .get(name)
            .ok_or_else(|| LabError(format!("the lab has no host {name}")))
    }

    /// Runs `ip args…`.
    ///
    /// # Errors
    /// `ip` cannot be run or fails.
    pub fn ip(&self, args: &[&str]) -> LabResult<String> {
        run("ip", args)
    }

    /// Runs `args…` inside `host`'s namespace (`ip netns exec`); its stdout.
    ///
    /// # Errors
    /// No such host, or the command cannot be run or fails.
    pub fn exec(&self, host: &str, args: &[&str]) -> LabResult<String> {
        let ns = self.host(host)?.ns.clone();
        let mut all = vec!["netns", "exec", ns.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Loads an nftables ruleset (`nft -f -` syntax, given as one argument) in `host`.
    ///
    /// # Errors
    /// As [`Lab::exec`].
    pub fn nft(&self, host: &str, ruleset: &str) -> LabResult<()> {
        self.exec(host, &["nft", ruleset]).map(|_| ())
    }

    fn add_ns(&mut self, short: &str) -> LabResult<String> {
        let ns = format!("{}-{short}", self.prefix);
        // A namespace left by an earlier run killed with this pid: start afresh.
        let _ = run("ip", &["netns", "del", &ns]);
        run("ip", &["netns", "add", &ns]).map_err(|e| {
            LabError(format!(
                "cannot create the network namespace {ns} for the NAT lab: {e}"
            ))
        })?;
        self.namespaces.push(ns.clone());
        self.ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    fn add_host(&mut self, host: Host) -> LabResult<Host> {
        if self.hosts.contains_key(&host.name) {
            return Err(LabError(format!(
                "the lab has a host {} already",
                host.name
            )));
        }
        self.hosts.insert(host.name.clone(), host.clone());
        Ok(host)
    }

    /// A namespace with `addrs` on its loopback (no link to anything): several daemons on
    /// one machine with several addresses. IPv4 addresses get /32, IPv6 ones /128.
    ///
    /// # Errors
    /// The namespace cannot be created (not root, no iproute2), or the name is taken.
    pub fn namespace(&mut self, name: &str, addrs: &[std::net::IpAddr]) -> LabResult<Host> {
        let ns = self.add_ns(name)?;
        for a in addrs {
            let cidr = match a {
                std::net::IpAddr::V4(v4) => format!("{v4}/32"),
                std::net::IpAddr::V6(v6) => format!("{v6}/128"),
            };
            self.ip(&["-n", &ns, "addr", "add", &cidr, "dev", "lo", "nodad"])?;
        }
        self.add_host(Host {
            name: name.to_owned(),
            ns,
            ipv4: addrs.iter().find_map(|a| match a {
                std::net::IpAddr::V4(v4) => Some(*v4),
                std::net::IpAddr::V6(_) => None,
            }),
            ipv6: addrs.iter().find_map(|a| match a {
                std::net::IpAddr::V6(v6) => Some(*v6),
                std::net::IpAddr::V4(_) => None,
            }),
            lan: None,
        })
    }

    /// The internet namespace, created on first use: the bridge `br0`, without address.
    fn internet(&mut self) -> LabResult<String> {
        let ns = format!("{}-inet", self.prefix);
        if !self.internet {
            self.add_ns("inet")?;
            self.internet = true;
            // No multicast snooping: IPv6 neighbour discovery is simply flooded.
            self.ip(&[
                "-n",
                &ns,
                "link",
                "add",
                "br0",
                "type",
                "bridge",
                "mcast_snooping",
                "0",
            ])?;
            self.ip(&["-n", &ns, "link", "set", "br0", "up"])?;
        }
        Ok(ns)
    }

    /// A veth pair: `<bridge side>` in `outer` attached to `bridge`, `eth0` in `inner`.
    fn plug(&mut self, outer: &str, bridge: &str, inner: &str) -> LabResult<()> {
        let side = format!("v{}", self.next_link);
        self.next_link += 1;
        self.ip(&[
            "-n", outer, "link", "add", &side, "type", "veth", "peer", "name", "eth0", "netns",
            inner,
        ])?;
        self.ip(&["-n", outer, "link", "set", &side, "master", bridge])?;
        self.ip(&["-n", outer, "link", "set", &side, "up"])?;
        self.ip(&["-n", inner, "link", "set", "eth0", "up"])?;
        Ok(())
    }

    /// A public host on the internet bridge with the next free address(es) of
    /// 198.51.100.10-99 / 2001:db8::10-99 (same last number in both).
    ///
    /// # Errors
    /// A namespace or link cannot be created, the name is taken, or the range is used up.
    pub fn public_host(&mut self, name: &str, stack: Stack) -> LabResult<Host> {
        let n = self.next_public;
        if n > 99 {
            return Err(LabError("no public address left in the lab".into()));
        }
        self.next_public += 1;
        let inet = self.internet()?;
        let ns = self.add_ns(name)?;
        self.plug(&inet, "br0", &ns)?;
        let ipv4 = (stack != Stack::V6).then(|| Ipv4Addr::new(198, 51, 100, n));
        let ipv6 =
            (stack != Stack::V4).then(|| Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, n.into()));
        if let Some(a) = ipv4 {
            self.ip(&["-n", &ns, "addr", "add", &format!("{a}/24"), "dev", "eth0"])?;
        }
        if let Some(a) = ipv6 {
            let cidr = format!("{a}/64");
            self.ip(&["-n", &ns, "addr", "add", &cidr, "dev", "eth0", "nodad"])?;
        }
        self.add_host(Host {
            name: name.to_owned(),
            ns,
            ipv4,
            ipv6,
            lan: None,
        })
    }

    /// A home router: public `eth0` on the internet bridge (198.51.100.101, .102, …), the
    /// LAN bridge `lan0` with 10.n.0.1/24 (n = 1, 2, … in creation order), IPv4 forwarding,
    /// nftables masquerade of everything leaving by `eth0`, and a firewall dropping what
    /// arrives on `eth0` outside connections the LAN opened.
    ///
    /// # Errors
    /// A namespace, link or rule cannot be created, or the name is taken.
    pub fn router(&mut self, name: &str) -> LabResult<Host> {
        let n = self.next_router;
        if n > 99 {
            return Err(LabError("no router address left in the lab".into()));
        }
        self.next_router += 1;
        let inet = self.internet()?;
        let ns = self.add_ns(name)?;
        self.plug(&inet, "br0", &ns)?;
        let public = Ipv4Addr::new(198, 51, 100, 100 + n);
        self.ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{public}/24"),
            "dev",
            "eth0",
        ])?;
        self.ip(&["-n", &ns, "link", "add", "lan0", "type", "bridge"])?;
        self.ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.{n}.0.1/24"),
            "dev",
            "lan0",
        ])?;
        self.ip(&["-n", &ns, "link", "set", "lan0", "up"])?;
        let host = self.add_host(Host {
            name: name.to_owned(),
            ns,
            ipv4: Some(public),
            ipv6: None,
            lan: Some(n),
        })?;
        self.exec(name, &["sysctl", "-q", "-w", "net.ipv4.ip_forward=1"])?;
        self.nft(
            name,
            "table ip lab_nat { chain postrouting { type nat hook postrouting priority srcnat; \
             policy accept; oifname \"eth0\" masquerade; }; }",
        )?;
        // A home router's firewall: what arrives from the internet is dropped (not
        // refused with a reset) unless it belongs to a connection the LAN opened, so a hole
        // punch whose first packet arrives before the other side's works as it does on
        // real NATs.
        self.nft(
            name,
            "table inet lab_fw { \
             chain input { type filter hook input priority filter; policy accept; \
             iifname \"eth0\" ct state established,related accept; iifname \"eth0\" drop; }; \
             chain forward { type filter hook forward priority filter; policy accept; \
             iifname \"eth0\" ct state established,related accept; iifname \"eth0\" drop; }; }",
        )?;
        Ok(host)
    }

    /// A host behind `router`: `eth0` on its LAN with the next 10.n.0.10+ address and a
    /// default route through the router (so it reaches the internet masqueraded).
    ///
    /// # Errors
    /// No such router, a namespace or link cannot be created, or the name is taken.
    pub fn nat_host(&mut self, router: &str, name: &str) -> LabResult<Host> {
        let r = self.host(router)?.clone();
        let lan = r
            .lan
            .ok_or_else(|| LabError(format!("{router} is not a router")))?;
        let count = self.lan_hosts.entry(lan).or_insert(0);
        let m = 10 + *count;
        *count += 1;
        let ns = self.add_ns(name)?;
        self.plug(&r.ns, "lan0", &ns)?;
        let addr = Ipv4Addr::new(10, lan, 0, m);
        self.ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        let gw = format!("10.{lan}.0.1");
        self.ip(&["-n", &ns, "route", "add", "default", "via", &gw])?;
        self.add_host(Host {
            name: name.to_owned(),
            ns,
            ipv4: Some(addr),
            ipv6: None,
            lan: Some(lan),
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.log_dump(40));
        }
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}
