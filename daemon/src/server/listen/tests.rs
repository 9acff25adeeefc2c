//! The connection limits and timeouts, with raw TCP clients against a served node.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use crate::client::metric_value;
use crate::server::tests::{Served, TOKEN};
use crate::server::ApiSection;

fn limits() -> ApiSection {
    ApiSection {
        max_connections: 4,
        max_connections_per_ip: 2,
        header_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(10),
    }
}

/// A connection to `to` from `127.0.0.<from>`.
async fn connect(to: SocketAddr, from: u8) -> TcpStream {
    let sock = TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::new(IpAddr::from([127, 0, 0, from]), 0))
        .expect("bind");
    sock.connect(to).await.expect("connect")
}

/// Reads until the end of a response head, EOF, an error or `within`; returns what was
/// read (empty when the server closed without answering) and whether the connection was
/// closed.
async fn read_head(stream: &mut TcpStream, within: Duration) -> (String, bool) {
    let deadline = tokio::time::Instant::now() + within;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return (String::from_utf8_lossy(&got).into_owned(), false),
            Ok(Ok(0)) | Ok(Err(_)) => return (String::from_utf8_lossy(&got).into_owned(), true),
            Ok(Ok(n)) => {
                got.extend_from_slice(&buf[..n]);
                if got.windows(4).any(|w| w == b"\r\n\r\n") {
                    return (String::from_utf8_lossy(&got).into_owned(), false);
                }
            }
        }
    }
}

/// Waits until the server closes `stream` (EOF or reset), reading and discarding; the
/// time it took, `None` after `within`.
async fn closed_within(stream: &mut TcpStream, within: Duration) -> Option<Duration> {
    let start = Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(
            within.saturating_sub(start.elapsed()),
            stream.read(&mut buf),
        )
        .await
        {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(start.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// A connection from `127.0.0.<from>` that has made one authenticated request (answered
/// 200) and stays open.
async fn authed(to: SocketAddr, from: u8) -> TcpStream {
    let mut s = connect(to, from).await;
    s.write_all(
        format!("GET /v1/status HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\r\n")
            .as_bytes(),
    )
    .await
    .expect("write");
    let (head, _) = read_head(&mut s, Duration::from_secs(5)).await;
    assert!(head.starts_with("HTTP/1.1 200"), "from .{from}: {head:?}");
    s
}

/// A connection from `127.0.0.<from>` that sent part of a request head, without token.
async fn partial(to: SocketAddr, from: u8) -> TcpStream {
    let mut s = connect(to, from).await;
    s.write_all(b"GET /v1/status HTTP/1.1\r\nhost: x\r\n")
        .await
        .expect("write");
    s
}

fn metric(s: &Served, name: &str, reason: &str) -> f64 {
    metric_value(&s.metrics.encode(), name, &[("reason", reason)]).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_loris_is_closed_after_the_header_read_timeout() {
    let s = Served::start_with(limits()).await;
    let mut conn = partial(s.addr, 1).await;
    let start = Instant::now();
    // One header line every 200 ms: bytes keep arriving, the head never ends.
    let closed = loop {
        if conn.write_all(b"x-slow: 1\r\n").await.is_err() {
            break start.elapsed();
        }
        if let Some(d) = closed_within(&mut conn, Duration::from_millis(200)).await {
            break start.elapsed().max(d);
        }
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "still open after 8 s"
        );
    };
    assert!(
        closed >= Duration::from_millis(800) && closed < Duration::from_secs(3),
        "closed after {closed:?}, header_read_timeout is 1 s"
    );
    assert_eq!(
        metric(&s, "api_connections_closed_total", "header_timeout"),
        1.0
    );

    // A connection that sends nothing is closed after idle_timeout.
    let s = Served::start_with(ApiSection {
        idle_timeout: Duration::from_secs(1),
        ..limits()
    })
    .await;
    let mut conn = connect(s.addr, 1).await;
    let took = closed_within(&mut conn, Duration::from_secs(5))
        .await
        .expect("closed");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    assert_eq!(
        metric(&s, "api_connections_closed_total", "idle_timeout"),
        1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_replace_connections_without_token_then_refuse() {
    // Partial heads must outlive the test's steps.
    let s = Served::start_with(ApiSection {
        header_read_timeout: Duration::from_secs(10),
        ..limits()
    })
    .await;
    // Per IP (2): two authenticated connections from .2 hold it; a third is refused.
    let _a1 = authed(s.addr, 2).await;
    let _a2 = authed(s.addr, 2).await;
    let mut refused = connect(s.addr, 2).await;
    let (head, _) = read_head(&mut refused, Duration::from_secs(2)).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head:?}");
    assert!(closed_within(&mut refused, Duration::from_secs(2))
        .await
        .is_some());
    assert_eq!(
        metric(&s, "api_connections_rejected_total", "per_ip_limit"),
        1.0
    );

    // Two token-less connections from .3: the operator's request from .3 takes the
    // place of the older one, which is closed.
    let mut p1 = partial(s.addr, 3).await;
    let _p2 = partial(s.addr, 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let _b1 = authed(s.addr, 3).await;
    assert!(
        closed_within(&mut p1, Duration::from_secs(2))
            .await
            .is_some(),
        "the oldest token-less connection was not closed"
    );

    // Global (4): .2 ×2, .3 ×2 (p2, b1). .4's request replaces p2; then all four have
    // shown the token and .5 is refused.
    let _c1 = authed(s.addr, 4).await;
    let mut refused = connect(s.addr, 5).await;
    let (head, _) = read_head(&mut refused, Duration::from_secs(2)).await;
    assert!(head.starts_with("HTTP/1.1 503"), "{head:?}");
    assert_eq!(
        metric(&s, "api_connections_rejected_total", "global_limit"),
        1.0
    );
    assert_eq!(metric(&s, "api_connections_closed_total", "replaced"), 2.0);
    let open = metric_value(&s.metrics.encode(), "api_connections", &[]);
    assert_eq!(open, Some(4.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_without_token_is_refused_before_its_body_is_read() {
    let s = Served::start_with(limits()).await;
    let head = |auth: &str, len: u64| {
        format!(
            "POST /v1/da/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {len}\r\n{auth}\r\n"
        )
    };
    for (auth, len) in [
        (String::new(), 100_000_000),
        (String::new(), 1000),
        ("authorization: Bearer nope\r\n".to_owned(), 1000),
    ] {
        let mut conn = connect(s.addr, 6).await;
        conn.write_all(head(&auth, len).as_bytes())
            .await
            .expect("write");
        let start = Instant::now();
        let (resp, _) = read_head(&mut conn, Duration::from_secs(1)).await;
        assert!(
            resp.starts_with("HTTP/1.1 401"),
            "{auth:?} {len}: {resp:?} after {:?}",
            start.elapsed()
        );
    }
    // With the token the handler reads the body, which never comes: no answer until
    // request_timeout (2 s), then 503.
    let mut conn = connect(s.addr, 7).await;
    let auth = format!("authorization: Bearer {TOKEN}\r\n");
    conn.write_all(head(&auth, 1000).as_bytes())
        .await
        .expect("write");
    let (resp, _) = read_head(&mut conn, Duration::from_secs(1)).await;
    assert!(resp.is_empty(), "answered before the body: {resp:?}");
    let (resp, _) = read_head(&mut conn, Duration::from_secs(3)).await;
    assert!(resp.starts_with("HTTP/1.1 503"), "{resp:?}");
    assert_eq!(
        metric(&s, "api_connections_closed_total", "request_timeout"),
        1.0
    );
}
