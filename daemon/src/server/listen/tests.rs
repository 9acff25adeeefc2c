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

/// Sends, on `s`, an authenticated request whose handler waits for a body that never
/// comes (in progress until `request_timeout`); gives the server 300 ms to reach the
/// handler.
async fn make_busy(s: &mut TcpStream) {
    s.write_all(
        format!(
            "POST /v1/da/events HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {TOKEN}\r\n\
             content-length: 1000\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .expect("write");
    tokio::time::sleep(Duration::from_millis(300)).await;
}

/// A connection from `127.0.0.<from>` serving an authenticated request.
async fn busy(to: SocketAddr, from: u8) -> TcpStream {
    let mut s = connect(to, from).await;
    make_busy(&mut s).await;
    s
}

/// Refused at accept: a 503, then closed.
async fn assert_refused(to: SocketAddr, from: u8) {
    let mut s = connect(to, from).await;
    let (head, _) = read_head(&mut s, Duration::from_secs(2)).await;
    assert!(head.starts_with("HTTP/1.1 503"), "from .{from}: {head:?}");
    assert!(closed_within(&mut s, Duration::from_secs(2))
        .await
        .is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caps_replace_token_less_then_idle_connections_then_refuse() {
    // Partial heads and requests must outlive the test's steps.
    let s = Served::start_with(ApiSection {
        header_read_timeout: Duration::from_secs(10),
        request_timeout: Duration::from_secs(10),
        ..limits()
    })
    .await;
    // Per IP (2): two requests with the token in progress from .2; a third is refused.
    let _b1 = busy(s.addr, 2).await;
    let _b2 = busy(s.addr, 2).await;
    assert_refused(s.addr, 2).await;
    assert_eq!(
        metric(&s, "api_connections_rejected_total", "per_ip_limit"),
        1.0
    );

    // From .3, an idle connection with the token, then a token-less one: the operator's
    // request takes the place of the token-less one, though it is the newer.
    let mut x = authed(s.addr, 3).await;
    let mut p = partial(s.addr, 3).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut y = authed(s.addr, 3).await;
    assert!(
        closed_within(&mut p, Duration::from_secs(2))
            .await
            .is_some(),
        "the token-less connection was not closed"
    );
    assert!(
        closed_within(&mut x, Duration::from_millis(300))
            .await
            .is_none(),
        "the connection with the token was closed"
    );

    // Global (4): b1, b2, x, y. No token-less connection left: .4 takes the place of the
    // oldest idle one, x.
    let mut z = authed(s.addr, 4).await;
    assert!(
        closed_within(&mut x, Duration::from_secs(2))
            .await
            .is_some(),
        "the idle connection was not closed"
    );
    assert_eq!(metric(&s, "api_connections_closed_total", "replaced"), 2.0);

    // Once y and z serve requests too, .5 is refused.
    make_busy(&mut y).await;
    make_busy(&mut z).await;
    assert_refused(s.addr, 5).await;
    assert_eq!(
        metric(&s, "api_connections_rejected_total", "global_limit"),
        1.0
    );
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
