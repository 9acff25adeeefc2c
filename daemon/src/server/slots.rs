//! Admission of control API connections: at most `max_connections` open, at most
//! `max_connections_per_ip` from one source (an IPv4 address, or an IPv6 /64).
//!
//! Beyond a cap a new connection takes the place of an open one (of the same source, for
//! the per-source cap): the oldest that has not yet shown the API token, else the oldest
//! with no request in progress (an idle keep-alive connection, which a client replaces at
//! no cost). The operator's tool, which sends its token at once, always gets in however
//! many token-less connections a client keeps open; a new connection is refused only when
//! every candidate is serving a request that carried the token.
//!
//! The table holds only open connections, so it never holds more than `max_connections`
//! entries (and as many sources).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::Notify;

/// What the table knows of a connection, updated by the connection.
#[derive(Debug, Default)]
pub(crate) struct ConnState {
    /// A request carried the right token.
    authed: AtomicBool,
    /// Requests in a handler.
    in_flight: AtomicUsize,
}

/// Put in each request's extensions: [`crate::server::require_token`] marks the connection
/// as authenticated, which protects it from being replaced by token-less ones.
#[derive(Clone, Debug)]
pub(crate) struct ConnAuth(pub(crate) Arc<ConnState>);

impl ConnAuth {
    /// Records that a request of this connection carried the right token.
    pub(crate) fn mark(&self) {
        self.0.authed.store(true, Ordering::Relaxed);
    }

    /// A request of this connection is in a handler until the guard drops.
    pub(crate) fn request(&self) -> InFlight {
        self.0.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.0.clone())
    }
}

/// See [`ConnAuth::request`].
pub(crate) struct InFlight(Arc<ConnState>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Why a connection was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `max_connections` open, each serving a request with the token.
    GlobalLimit,
    /// `max_connections_per_ip` open from this source, each serving a request with the
    /// token.
    PerIpLimit,
}

impl Refusal {
    /// The `reason` label of `api_connections_rejected_total`.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Refusal::GlobalLimit => "global_limit",
            Refusal::PerIpLimit => "per_ip_limit",
        }
    }
}

struct Entry {
    source: IpAddr,
    state: Arc<ConnState>,
    kill: Arc<Notify>,
}

#[derive(Default)]
struct Table {
    /// Connection ids grow with time: the smallest is the oldest.
    next_id: u64,
    conns: HashMap<u64, Entry>,
    per_source: HashMap<IpAddr, usize>,
}

impl Table {
    fn remove(&mut self, id: u64) -> Option<Entry> {
        let e = self.conns.remove(&id)?;
        if let Some(n) = self.per_source.get_mut(&e.source) {
            *n -= 1;
            if *n == 0 {
                self.per_source.remove(&e.source);
            }
        }
        Some(e)
    }

    /// The connection to replace, of `source` if given: the oldest that has not shown the
    /// token, else the oldest with no request in progress.
    fn victim(&self, source: Option<IpAddr>) -> Option<u64> {
        let candidates = || {
            self.conns
                .iter()
                .filter(move |(_, e)| source.is_none_or(|s| e.source == s))
        };
        candidates()
            .filter(|(_, e)| !e.state.authed.load(Ordering::Relaxed))
            .map(|(id, _)| *id)
            .min()
            .or_else(|| {
                candidates()
                    .filter(|(_, e)| e.state.in_flight.load(Ordering::Relaxed) == 0)
                    .map(|(id, _)| *id)
                    .min()
            })
    }
}

/// The table of open connections.
pub(crate) struct Slots {
    max_total: usize,
    max_per_source: usize,
    table: Mutex<Table>,
}

/// An admitted connection: its place in the table until dropped.
pub(crate) struct Slot {
    slots: Arc<Slots>,
    id: u64,
    /// Its state, for the requests.
    pub(crate) auth: ConnAuth,
    /// Notified when a newer connection took this one's place.
    pub(crate) kill: Arc<Notify>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.slots.lock().remove(self.id);
    }
}

/// The source a per-source cap counts: the IPv4 address (an IPv4-mapped IPv6 address
/// included), or the /64 of an IPv6 address (one host's share of a subnet).
pub(crate) fn source_of(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

impl Slots {
    /// A table for `max_total` connections, `max_per_source` of one source (both at least
    /// one).
    pub(crate) fn new(max_total: usize, max_per_source: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total: max_total.max(1),
            max_per_source: max_per_source.max(1),
            table: Mutex::new(Table::default()),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Connections in the table.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().conns.len()
    }

    /// Admits a connection from `ip`; `Ok((slot, true))` when it took the place of an
    /// older connection (which is told to close through its [`Slot::kill`]).
    ///
    /// # Errors
    /// The cap that refused it.
    pub(crate) fn admit(self: &Arc<Self>, ip: IpAddr) -> Result<(Slot, bool), Refusal> {
        let source = source_of(ip);
        let mut t = self.lock();
        let mut replaced = false;
        if t.per_source.get(&source).copied().unwrap_or(0) >= self.max_per_source {
            let id = t.victim(Some(source)).ok_or(Refusal::PerIpLimit)?;
            if let Some(e) = t.remove(id) {
                e.kill.notify_one();
                replaced = true;
            }
        } else if t.conns.len() >= self.max_total {
            let id = t.victim(None).ok_or(Refusal::GlobalLimit)?;
            if let Some(e) = t.remove(id) {
                e.kill.notify_one();
                replaced = true;
            }
        }
        let id = t.next_id;
        t.next_id += 1;
        let state = Arc::new(ConnState::default());
        let kill = Arc::new(Notify::new());
        t.conns.insert(
            id,
            Entry {
                source,
                state: state.clone(),
                kill: kill.clone(),
            },
        );
        *t.per_source.entry(source).or_insert(0) += 1;
        drop(t);
        Ok((
            Slot {
                slots: self.clone(),
                id,
                auth: ConnAuth(state),
                kill,
            },
            replaced,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn caps_replace_token_less_then_idle_connections_then_refuse() {
        let slots = Slots::new(3, 2);
        let (a1, r) = slots.admit(ip("10.0.0.1")).expect("a1");
        assert!(!r);
        let (a2, _) = slots.admit(ip("10.0.0.1")).expect("a2");
        a1.auth.mark();
        // Per source: a3 takes the place of a2 (without token), not the older a1.
        let (a3, r) = slots.admit(ip("10.0.0.1")).expect("a3");
        assert!(r, "replaced");
        assert_eq!(slots.len(), 2);
        // a2's drop afterwards removes nothing else.
        drop(a2);
        assert_eq!(slots.len(), 2);
        // Both with the token: the idle one of them (a1) gives way.
        a3.auth.mark();
        let _busy3 = a3.auth.request();
        let (a4, r) = slots.admit(ip("10.0.0.1")).expect("a4");
        assert!(r);
        a4.auth.mark();
        let busy4 = a4.auth.request();
        assert_eq!(
            slots.admit(ip("10.0.0.1")).err(),
            Some(Refusal::PerIpLimit),
            "both serve a request with the token"
        );
        drop(busy4);
        let (a5, r) = slots.admit(ip("10.0.0.1")).expect("a4 idle again");
        assert!(r);
        a5.auth.mark();
        let _busy5 = a5.auth.request();
        // Global: b1 fills the table, b2 replaces b1 (the only one without token).
        let (b1, _) = slots.admit(ip("10.0.0.2")).expect("b1");
        let (b2, r) = slots.admit(ip("10.0.0.3")).expect("b2");
        assert!(r);
        b2.auth.mark();
        let busy_b2 = b2.auth.request();
        assert_eq!(
            slots.admit(ip("10.0.0.4")).err(),
            Some(Refusal::GlobalLimit)
        );
        drop((b1, busy_b2, b2, a1));
        assert_eq!(slots.len(), 2);
        assert!(slots.admit(ip("10.0.0.4")).is_ok());
    }

    #[test]
    fn ipv6_counts_per_64_and_mapped_ipv4_as_ipv4() {
        assert_eq!(source_of(ip("2001:db8:1:2:3:4:5:6")), ip("2001:db8:1:2::"));
        assert_eq!(source_of(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        let slots = Slots::new(10, 1);
        let (_a, _) = slots.admit(ip("2001:db8::1")).expect("a");
        let (_b, r) = slots.admit(ip("2001:db8::2")).expect("b");
        assert!(r, "same /64: replaced");
    }
}
