//! The token-free metrics and health listener (issue 15 §5) of a real `dsdnd`: `/metrics`
//! without a token, `/health` not ready while alone and ready once a peer connects,
//! `/health/live`, and nothing else served there.

use std::time::Duration;

use dsdn_daemon::localnet::NodeMode;
use dsdn_integration_tests::{eventually, TestNet, WAIT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_and_health_without_token_on_their_own_listener() -> anyhow::Result<()> {
    let mut net = TestNet::new("metrics-listener").await?;
    let cfg = net.config();
    // Port + 2 on the node's IP: the P2P port and the API (port + 1) are taken.
    let listen = format!("127.0.0.40:{}", net.port() + 2);
    net.spawn_with_args(
        "a",
        NodeMode::Bootstrap,
        40,
        &cfg,
        &["--metrics-listen", &listen],
    )
    .await?;
    let http = reqwest::Client::builder().no_proxy().build()?;
    let get = |path: &str| {
        let url = format!("http://{listen}{path}");
        let http = http.clone();
        async move {
            let r = http.get(url).send().await?;
            let code = r.status().as_u16();
            anyhow::Ok((code, r.text().await?))
        }
    };
    let (code, text) = get("/metrics").await?;
    assert_eq!(code, 200, "{text}");
    for name in ["bootstrap_active_peers ", "process_resident_memory_bytes "] {
        assert!(text.contains(name), "{name} missing");
    }
    // Alone: live, not ready.
    let (code, body) = get("/health").await?;
    assert_eq!(code, 503, "{body}");
    let h: serde_json::Value = serde_json::from_str(&body)?;
    assert_eq!(
        (h["live"].as_bool(), h["ready"].as_bool()),
        (Some(true), Some(false))
    );
    assert!(body.contains("no peer connected"), "{body}");
    assert_eq!(get("/health/live").await?.0, 200);
    // The control API's routes are not served here.
    assert_eq!(get("/v1/status").await?.0, 404);

    // A peer connects: ready.
    let cfg_b = cfg.clone().with_static_peer(net.addr(40));
    net.spawn("b", NodeMode::Storage, 41, &cfg_b).await?;
    eventually(WAIT, "a ready", || async {
        let (code, _) = get("/health").await.ok()?;
        (code == 200).then_some(())
    })
    .await?;
    // The token API serves /health too, behind its token.
    let api = net.node("a").api_addr();
    let code = http
        .get(format!("http://{api}/health"))
        .timeout(Duration::from_secs(5))
        .send()
        .await?
        .status()
        .as_u16();
    assert_eq!(code, 401);
    net.pass();
    Ok(())
}
