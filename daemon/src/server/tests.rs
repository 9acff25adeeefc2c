//! The router served on 127.0.0.1:0 in front of a real (isolated) node.

use std::net::SocketAddr;

use dsdn_p2p::{Node, NodeConfig};
use dsdn_protocols::{NetworkId, ServiceSet, ServiceType};
use libp2p::identity::Keypair;

use super::*;
use crate::api::{AddedResponse, BanResponse, PeerStatsView, ResetResponse, UnbanResponse};
use crate::client::{ApiClient, ClientError};

pub(crate) const TOKEN: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

/// A served API; the node and server stop when it is dropped (the runtime ends).
pub(crate) struct Served {
    pub(crate) addr: SocketAddr,
    http: reqwest::Client,
    pub(crate) metrics: Metrics,
    _dir: tempfile::TempDir,
}

impl Served {
    async fn start() -> Served {
        Self::start_with(ApiSection::default()).await
    }

    /// A node that keeps the DA log and is the network's DA authority.
    async fn start_authority() -> Served {
        Self::start_full(true, ApiSection::default()).await
    }

    /// Serves through [`listen::serve_listener`] with `limits`.
    pub(crate) async fn start_with(limits: ApiSection) -> Served {
        Self::start_full(false, limits).await
    }

    /// With `da_authority`, the node keeps the DA log and is the network's DA authority;
    /// served with `limits`.
    async fn start_full(da_authority: bool, limits: ApiSection) -> Served {
        let dir = tempfile::tempdir().expect("tempdir");
        let key = Keypair::generate_ed25519();
        let own = crate::key::public_key_bytes(&key);
        let mut cfg = NodeConfig {
            services: ServiceSet::from_types([ServiceType::Storage]),
            da_dir: da_authority.then(|| dir.path().to_path_buf()),
            da_authority: if da_authority { own } else { None },
            listen: vec!["127.0.0.1:0".parse().expect("addr")],
            agent_version: "dsdnd/test".to_owned(),
            mode: "storage".to_owned(),
            ..NodeConfig::new(
                key,
                NetworkId::new("devnet").expect("network id"),
                dir.path(),
            )
        };
        cfg.bootstrap.ban_duration = std::time::Duration::from_secs(3600);
        let node = Node::start(cfg).expect("node");
        let state = ApiState {
            node: node.handle.clone(),
            metrics: node.metrics.clone(),
            mode: "storage".to_owned(),
            network: "devnet".to_owned(),
            services: vec!["storage".to_owned()],
            agent_version: "dsdnd/test".to_owned(),
            token: TOKEN.into(),
        };
        let metrics = node.metrics.clone();
        let api_metrics = ApiMetrics::register(metrics.registry()).expect("metrics");
        tokio::spawn(node.event_loop.run());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(listen::serve_listener(
            listener,
            router(state),
            limits,
            api_metrics,
            std::future::pending(),
        ));
        let http = reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client");
        Served {
            addr,
            http,
            metrics,
            _dir: dir,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn client(&self) -> ApiClient {
        ApiClient::new(self.addr).with_token(TOKEN)
    }

    /// Sends with the right token; status and body as JSON (`Null` when not JSON).
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = self.http.request(method, self.url(path)).bearer_auth(TOKEN);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let bytes = resp.bytes().await.expect("body");
        (
            status,
            serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null),
        )
    }
}

#[tokio::test]
async fn every_route_needs_the_token() {
    let s = Served::start().await;
    for path in ["/v1/status", "/metrics", "/v1/peers", "/v1/no-such-thing"] {
        let cases: [(Option<&str>, &str); 4] = [
            (None, "missing API token"),
            (Some("Bearer nope"), "wrong API token"),
            (Some(&format!("Bearer {TOKEN}x")), "wrong API token"),
            (Some(&format!("Basic {TOKEN}")), "missing API token"),
        ];
        for (auth, expected) in cases {
            let mut req = s.http.get(s.url(path));
            if let Some(a) = auth {
                req = req.header(header::AUTHORIZATION, a);
            }
            let resp = req.send().await.expect("send");
            assert_eq!(resp.status().as_u16(), 401, "{path} {auth:?}");
            let www = resp
                .headers()
                .get(header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned();
            assert!(www.starts_with("Bearer"), "{www}");
            let err: ApiError = resp.json().await.expect("ApiError body");
            assert!(err.error.starts_with(expected), "{path}: {}", err.error);
        }
    }
    for path in ["/v1/status", "/metrics"] {
        let resp = s
            .http
            .get(s.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200, "{path}");
    }
    let (status, _) = s
        .call(reqwest::Method::GET, "/v1/no-such-thing", None)
        .await;
    assert_eq!(status, 404);

    // The client sends the token, and reports a refused one clearly.
    let st = s.client().status().await.expect("status");
    assert_eq!(st.mode, "storage");
    assert!(s.client().metrics_text().await.is_ok());
    let err = ApiClient::new(s.addr)
        .with_token("wrong")
        .status()
        .await
        .expect_err("wrong token");
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
    assert!(
        err.to_string()
            .contains("pass --data-dir of the daemon or --cookie FILE"),
        "{err}"
    );
    let err = ApiClient::new(s.addr).status().await.expect_err("no token");
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err:?}");
}

#[tokio::test]
async fn peers_filter_and_additions() {
    let s = Served::start().await;
    let (status, body) = s
        .call(reqwest::Method::GET, "/v1/peers?type=miner", None)
        .await;
    assert_eq!(status, 400);
    let msg = body["error"].as_str().unwrap_or_default();
    assert!(
        msg.contains("storage-dc") && msg.contains("coordinator"),
        "{msg}"
    );
    let (status, body) = s
        .call(reqwest::Method::GET, "/v1/peers?type=storage", None)
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body.is_array());
    assert!(s.client().peers_of_type(Some("chain")).await.is_ok());

    let (status, body) = s
        .call(
            reqwest::Method::POST,
            "/v1/peers",
            Some(serde_json::json!({"addr": "not an address"})),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/v1/peers",
            Some(serde_json::json!({})),
        )
        .await;
    assert_eq!(status, 400);

    let added = s.client().add_peer("127.0.0.1:9").await.expect("add");
    assert_eq!(
        added,
        AddedResponse {
            added: "127.0.0.1:9".to_owned()
        }
    );
    let err = s.client().add_peer("127.0.0.1:9").await.expect_err("again");
    assert!(
        matches!(err, ClientError::Api { status: 409, .. }),
        "{err:?}"
    );

    let (status, _) = s
        .call(
            reqwest::Method::POST,
            "/v1/seeds",
            Some(serde_json::json!({"domain": "-bad-.example"})),
        )
        .await;
    assert_eq!(status, 400);
    let added = s
        .client()
        .add_seed("seed4.example.invalid")
        .await
        .expect("seed");
    assert_eq!(added.added, "seed4.example.invalid");
    let err = s
        .client()
        .add_seed("seed4.example.invalid")
        .await
        .expect_err("again");
    assert!(
        matches!(err, ClientError::Api { status: 409, .. }),
        "{err:?}"
    );

    let stats: PeerStatsView = s.client().peer_stats().await.expect("stats");
    assert!(
        stats.static_peers.iter().any(|p| p == "127.0.0.1:9"),
        "{stats:?}"
    );
    assert!(
        stats.dns_seeds.iter().any(|d| d == "seed4.example.invalid"),
        "{stats:?}"
    );
    let (status, body) = s.call(reqwest::Method::GET, "/v1/peers/stats", None).await;
    assert_eq!(status, 200);
    assert!(body.get("success_rate").is_some(), "{body}");

    let reset: ResetResponse = s.client().reset_peers().await.expect("reset");
    assert_eq!(reset.disconnected, 0);
}

#[tokio::test]
async fn ban_and_unban() {
    let s = Served::start().await;
    let (status, body) = s
        .call(reqwest::Method::POST, "/v1/peers/not-a-peer/ban", None)
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body["error"]
        .as_str()
        .unwrap_or_default()
        .starts_with("invalid peer id"));
    let (status, _) = s
        .call(reqwest::Method::DELETE, "/v1/peers/not-a-peer/ban", None)
        .await;
    assert_eq!(status, 400);

    let peer = Keypair::generate_ed25519()
        .public()
        .to_peer_id()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    // Default duration: the node's ban_duration_secs in force (1 h here).
    let (status, body) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/peers/{peer}/ban"),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let ban: BanResponse = serde_json::from_value(body).expect("BanResponse");
    assert_eq!(ban.duration_secs, 3600);
    assert!(ban.banned_until >= now + 3600 - 5 && ban.banned_until <= now + 3600 + 60);

    let ban = s.client().ban(&peer, Some(90)).await.expect("ban");
    assert_eq!(ban.duration_secs, 90);
    let (status, _) = s
        .call(
            reqwest::Method::POST,
            &format!("/v1/peers/{peer}/ban"),
            Some(serde_json::json!({"duration_secs": 0})),
        )
        .await;
    assert_eq!(status, 400);

    let un: UnbanResponse = s.client().unban(&peer).await.expect("unban");
    assert!(un.unbanned);
    assert!(!s.client().unban(&peer).await.expect("unban again").unbanned);
}

#[tokio::test]
async fn committee_routes_on_a_non_member() {
    let s = Served::start().await;
    let (status, body) = s
        .call(reqwest::Method::GET, "/v1/committee/status", None)
        .await;
    assert_eq!(status, 404, "{body}");
    assert!(body["error"]
        .as_str()
        .is_some_and(|e| e.contains("not a committee member")));
    let (status, _) = s
        .call(reqwest::Method::POST, "/v1/committee/dkg", None)
        .await;
    assert_eq!(status, 403);
    match s.client().committee_status().await {
        Err(ClientError::Api { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
}

/// Issue 14 §6: an event whose `node_id` is not a PeerId is a 400 naming the event and the
/// field; nothing is sealed.
#[tokio::test]
async fn a_node_id_that_is_no_peer_id_is_a_400() {
    let s = Served::start_authority().await;
    let event = serde_json::json!([{
        "type": "node_registered",
        "node_id": "12D3KooWnotreally",
        "zone": "z",
        "capacity_bytes": 1,
        "class": "regular"
    }]);
    let (status, body) = s
        .call(reqwest::Method::POST, "/v1/da/events", Some(event))
        .await;
    assert_eq!(status, 400, "{body}");
    let error = body["error"].as_str().unwrap_or_default();
    assert_eq!(
        error,
        "event 0: malformed DA data: node_registered event: field node_id \"12D3KooWnotreally\" \
         is not a PeerId (base58, 12D3KooW…)"
    );
    let (status, body) = s.call(reqwest::Method::GET, "/v1/da/state", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["height"], 0, "{body}");
}
