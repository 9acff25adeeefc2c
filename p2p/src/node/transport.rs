//! The node's transport (TCP, QUIC, relay client; per-connection byte counting; the dial
//! timeout) and its listeners, with the error text reported when a listen address cannot be
//! bound.

use std::net::SocketAddr;
use std::time::Duration;

use libp2p::core::muxing::StreamMuxerBox;
use libp2p::core::transport::timeout::TransportTimeout;
use libp2p::core::upgrade::Version;
use libp2p::core::Transport as _;
use libp2p::multiaddr::Protocol;
use libp2p::{noise, tcp, yamux, Multiaddr, PeerId, Swarm};

use super::StartError;
use crate::net::traffic::PeerTraffic;

/// The QUIC and TCP multiaddrs of one `IP:PORT`.
pub fn listen_addrs(listen: SocketAddr) -> [Multiaddr; 2] {
    let ip = match listen.ip() {
        std::net::IpAddr::V4(a) => Protocol::Ip4(a),
        std::net::IpAddr::V6(a) => Protocol::Ip6(a),
    };
    let base = Multiaddr::empty().with(ip);
    [
        base.clone()
            .with(Protocol::Udp(listen.port()))
            .with(Protocol::QuicV1),
        base.with(Protocol::Tcp(listen.port())),
    ]
}

/// The node's transport: TCP (noise, yamux), QUIC and Circuit Relay v2 client connections,
/// each established connection's muxer counting its bytes into `traffic`, and a dial (connect,
/// noise, yamux) given up after [`connection_timeout`]. The same composition as libp2p's
/// `SwarmBuilder::with_tcp().with_quic().with_relay_client()`, which has no hook for
/// per-connection counters.
pub(super) fn build_transport(
    key: &libp2p::identity::Keypair,
    relay_transport: libp2p::relay::client::Transport,
    traffic: PeerTraffic,
    peer_connect_timeout: Duration,
) -> Result<libp2p::core::transport::Boxed<(PeerId, StreamMuxerBox)>, StartError> {
    let noise = |key: &libp2p::identity::Keypair| {
        noise::Config::new(key).map_err(|e| StartError::Swarm(e.to_string()))
    };
    let tcp = tcp::tokio::Transport::new(tcp::Config::default().nodelay(true))
        .upgrade(Version::V1Lazy)
        .authenticate(noise(key)?)
        .multiplex(yamux::Config::default())
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let quic = libp2p::quic::tokio::Transport::new(libp2p::quic::Config::new(key))
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let relay = relay_transport
        .upgrade(Version::V1Lazy)
        .authenticate(noise(key)?)
        .multiplex(yamux::Config::default())
        .map(|(p, c), _| (p, StreamMuxerBox::new(c)));
    let transport = relay
        .or_transport(tcp.or_transport(quic).map(|either, _| either.into_inner()))
        .map(|either, _| either.into_inner())
        .map(move |(p, c), _| (p, traffic.wrap(p, c)));
    Ok(TransportTimeout::new(transport, connection_timeout(peer_connect_timeout)).boxed())
}

/// The swarm's per-dial timeout: the configured connect timeout, capped at 8 s (see
/// [`super::Node::start`]).
fn connection_timeout(peer_connect_timeout: Duration) -> Duration {
    peer_connect_timeout.min(Duration::from_secs(8))
}

/// Whether this host can open an IPv6 socket at all (false on a kernel without IPv6).
fn host_has_ipv6() -> bool {
    std::net::UdpSocket::bind((std::net::Ipv6Addr::UNSPECIFIED, 0)).is_ok()
}

/// `error` and its causes, each once, joined with `: `. A cause whose text the message
/// before it already holds is left out, and so is an empty message (libp2p's transport
/// errors print nothing of their own and keep the OS reason in their source).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut out = String::new();
    let mut next: Option<&dyn std::error::Error> = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !out.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(&text);
        }
        next = e.source();
    }
    if out.is_empty() {
        out.push_str("unknown error");
    }
    out
}

/// Listens on the QUIC and TCP addresses of every `IP:PORT` of `listen`. With
/// `ipv6_optional`, an IPv6 address that cannot be bound on a host without IPv6 is skipped
/// with a warning; any other failure is [`StartError::Listen`].
pub(super) fn listen_on_all<B: libp2p::swarm::NetworkBehaviour>(
    swarm: &mut Swarm<B>,
    listen: &[SocketAddr],
    ipv6_optional: bool,
) -> Result<(), StartError> {
    for sock in listen {
        for addr in listen_addrs(*sock) {
            if let Err(e) = swarm.listen_on(addr.clone()) {
                if ipv6_optional && sock.is_ipv6() && !host_has_ipv6() {
                    tracing::warn!(%addr, error = %e, "this host has no IPv6: listening on IPv4 only");
                    break;
                }
                return Err(StartError::Listen {
                    addr,
                    reason: error_chain(&e),
                });
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("{msg}")]
    struct E {
        msg: String,
        #[source]
        source: Option<Box<E>>,
    }

    fn e(msg: &str, source: Option<E>) -> E {
        E {
            msg: msg.to_owned(),
            source: source.map(Box::new),
        }
    }

    #[test]
    fn an_error_chain_names_each_cause_once_and_skips_empty_ones() {
        let os = e("Address already in use (os error 98)", None);
        let transport = e("", Some(os));
        let top = e("cannot bind", Some(transport));
        assert_eq!(
            error_chain(&top),
            "cannot bind: Address already in use (os error 98)"
        );
        let repeated = e(
            "open failed: No such file (os error 2)",
            Some(e("No such file (os error 2)", None)),
        );
        assert_eq!(
            error_chain(&repeated),
            "open failed: No such file (os error 2)"
        );
        assert_eq!(error_chain(&e("", None)), "unknown error");
    }
}
