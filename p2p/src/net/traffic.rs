//! Bytes in and out per peer (issue 15 §6: `dsdn-agent peers list`).
//!
//! libp2p counts bandwidth per transport stack only (`libp2p-metrics`' `BandwidthTransport`),
//! so the node wraps every established connection's muxer ([`CountingMuxer`], the same shape
//! as `libp2p-metrics`' `Muxer`) with counters of its own, registered by PeerId in a
//! [`PeerTraffic`] table. The counters belong to the connection: they live as long as it
//! does and the table only holds weak references, so a closed connection's bytes drop out
//! of the peer's totals and nothing grows with the number of peers ever seen.

use std::collections::HashMap;
use std::io::{self, IoSlice, IoSliceMut};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{ready, Context, Poll};

use futures::{AsyncRead, AsyncWrite};
use libp2p::core::muxing::{StreamMuxer, StreamMuxerBox, StreamMuxerEvent, SubstreamBox};
use libp2p::PeerId;

/// The table prunes connections that closed once it holds more peers than this.
const PRUNE_ABOVE: usize = 1024;

/// Byte counters of one connection.
#[derive(Debug, Default)]
struct Counters {
    /// Bytes read from the peer.
    inbound: AtomicU64,
    /// Bytes written to the peer.
    outbound: AtomicU64,
}

/// Bytes exchanged with one peer over its open connections.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Traffic {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// Per-peer byte counters of the open connections, shared by the transport (which counts)
/// and the event loop (which reads). Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct PeerTraffic {
    inner: Arc<Mutex<HashMap<PeerId, Vec<Weak<Counters>>>>>,
}

impl PeerTraffic {
    /// A new, empty table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wraps a newly established connection's muxer so its substreams count into `peer`'s
    /// totals.
    pub fn wrap(&self, peer: PeerId, muxer: StreamMuxerBox) -> StreamMuxerBox {
        let counters = Arc::new(Counters::default());
        if let Ok(mut map) = self.inner.lock() {
            if map.len() > PRUNE_ABOVE {
                map.retain(|_, conns| {
                    conns.retain(|c| c.strong_count() > 0);
                    !conns.is_empty()
                });
            }
            let conns = map.entry(peer).or_default();
            conns.retain(|c| c.strong_count() > 0);
            conns.push(Arc::downgrade(&counters));
        }
        StreamMuxerBox::new(CountingMuxer {
            inner: muxer,
            counters,
        })
    }

    /// Bytes exchanged with `peer` over its open connections; zero for a peer without one.
    pub fn get(&self, peer: &PeerId) -> Traffic {
        let Ok(map) = self.inner.lock() else {
            return Traffic::default();
        };
        map.get(peer)
            .into_iter()
            .flatten()
            .filter_map(Weak::upgrade)
            .fold(Traffic::default(), |t, c| Traffic {
                bytes_in: t.bytes_in.saturating_add(c.inbound.load(Ordering::Relaxed)),
                bytes_out: t
                    .bytes_out
                    .saturating_add(c.outbound.load(Ordering::Relaxed)),
            })
    }
}

/// A muxer whose substreams count the bytes they carry.
struct CountingMuxer {
    inner: StreamMuxerBox,
    counters: Arc<Counters>,
}

impl StreamMuxer for CountingMuxer {
    type Substream = CountingStream;
    type Error = io::Error;

    fn poll_inbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let inner = ready!(Pin::new(&mut self.inner).poll_inbound(cx))?;
        Poll::Ready(Ok(CountingStream {
            inner,
            counters: self.counters.clone(),
        }))
    }

    fn poll_outbound(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<Self::Substream, Self::Error>> {
        let inner = ready!(Pin::new(&mut self.inner).poll_outbound(cx))?;
        Poll::Ready(Ok(CountingStream {
            inner,
            counters: self.counters.clone(),
        }))
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }

    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
        Pin::new(&mut self.inner).poll(cx)
    }
}

/// A substream that counts the bytes read and written into its connection's counters.
struct CountingStream {
    inner: SubstreamBox,
    counters: Arc<Counters>,
}

fn add(counter: &AtomicU64, n: usize) {
    counter.fetch_add(u64::try_from(n).unwrap_or(u64::MAX), Ordering::Relaxed);
}

impl AsyncRead for CountingStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut [u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_read(cx, buf))?;
        add(&self.counters.inbound, n);
        Poll::Ready(Ok(n))
    }

    fn poll_read_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &mut [IoSliceMut<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_read_vectored(cx, bufs))?;
        add(&self.counters.inbound, n);
        Poll::Ready(Ok(n))
    }
}

impl AsyncWrite for CountingStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        add(&self.counters.outbound, n);
        Poll::Ready(Ok(n))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let n = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        add(&self.counters.outbound, n);
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_close(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_connections_drop_out_and_the_table_stays_bounded() {
        let t = PeerTraffic::new();
        let p = PeerId::random();
        let c = Arc::new(Counters::default());
        c.inbound.store(10, Ordering::Relaxed);
        c.outbound.store(3, Ordering::Relaxed);
        t.inner
            .lock()
            .expect("lock")
            .insert(p, vec![Arc::downgrade(&c)]);
        assert_eq!(
            t.get(&p),
            Traffic {
                bytes_in: 10,
                bytes_out: 3
            }
        );
        drop(c);
        assert_eq!(t.get(&p), Traffic::default());
        // Many peers whose connections closed are pruned on the next registration.
        for _ in 0..PRUNE_ABOVE + 10 {
            t.inner
                .lock()
                .expect("lock")
                .insert(PeerId::random(), vec![Weak::new()]);
        }
        let muxer = StreamMuxerBox::new(Dummy);
        let _live = t.wrap(p, muxer);
        assert_eq!(t.inner.lock().expect("lock").len(), 1);
    }

    /// A muxer that never yields anything (the test only registers it).
    struct Dummy;

    impl StreamMuxer for Dummy {
        type Substream = SubstreamBox;
        type Error = io::Error;
        fn poll_inbound(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            Poll::Pending
        }
        fn poll_outbound(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<Self::Substream, Self::Error>> {
            Poll::Pending
        }
        fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
            Poll::Ready(Ok(()))
        }
        fn poll(
            self: Pin<&mut Self>,
            _: &mut Context<'_>,
        ) -> Poll<Result<StreamMuxerEvent, Self::Error>> {
            Poll::Pending
        }
    }
}
