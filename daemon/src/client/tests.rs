//! Unit tests of the API client.

use super::*;

#[test]
fn api_error_bodies() {
    let status = reqwest::StatusCode::FORBIDDEN;
    assert_eq!(
        api_error_message(status, br#"{"error":"this node is not the DA authority"}"#),
        "this node is not the DA authority"
    );
    assert_eq!(api_error_message(status, b"plain\ntext"), "plain text");
    assert_eq!(api_error_message(status, b""), "Forbidden");
    let err = ClientError::Api {
        status: 403,
        message: "this node is not the DA authority".into(),
    };
    assert_eq!(
        err.to_string(),
        "dsdnd answered 403 Forbidden: this node is not the DA authority"
    );
    assert_eq!(status_text(599), "599");
}

#[test]
fn unauthorized_and_segments() {
    let addr: SocketAddr = "127.0.0.1:8645".parse().expect("addr");
    let err = ClientError::Unauthorized {
        addr,
        sent_token: true,
    };
    assert_eq!(
        err.to_string(),
        "the control API at 127.0.0.1:8645 refused the token: pass --data-dir of the daemon or --cookie FILE"
    );
    let err = ClientError::Unauthorized {
        addr,
        sent_token: false,
    };
    assert!(err
        .to_string()
        .contains("refused the request without a token"));
    assert_eq!(encode_segment("12D3KooWabc"), "12D3KooWabc");
    assert_eq!(encode_segment("a/b c%"), "a%2Fb%20c%25");
}

#[test]
fn cookie_file_is_read_per_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join(".cookie");
    let client = ApiClient::new("127.0.0.1:1".parse().expect("addr")).with_cookie_file(&path);
    assert_eq!(client.token(), None);
    std::fs::write(&path, "abc\n").expect("write");
    assert_eq!(client.token().as_deref(), Some("abc"));
    std::fs::write(&path, "def").expect("write");
    assert_eq!(client.token().as_deref(), Some("def"));
    assert_eq!(client.with_token("x").token().as_deref(), Some("x"));
}

#[tokio::test]
async fn unreachable_daemon_is_one_clear_line() {
    // Bind then drop a listener so the port is (almost certainly) closed.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    };
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let err = ApiClient::with_timeout(addr, Duration::from_secs(2))
        .status()
        .await
        .expect_err("nothing listens");
    assert!(matches!(err, ClientError::Unreachable { .. }), "{err:?}");
    let msg = err.to_string();
    assert_eq!(
        msg,
        format!("cannot reach dsdnd at {addr}: connection refused — is the daemon running?")
    );
}
