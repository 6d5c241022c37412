//! Token-service replicas over real gRPC, sharing a real Redis, against the
//! WeChat sandbox; every log line captured so tests can check for leaks.

#![allow(dead_code)]

use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tonic::transport::Channel;
use wechat_sandbox::{
    AdminClient, AppConfig, AppKind, Sandbox, SandboxConfig, TemplateConfig, TokenRules,
};
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_server::config::{BackendKind, BackendSettings, Secret};
use wxpush_token::{AppSpec, RefreshSettings, TokenCache, TokenGrpc, TokenMode};
use wxpush_wechat::{ClientSettings, WechatClient};

pub const APP: &str = "wx_token_test";
pub const SECRET: &str = "token-test-secret-5c0ffee";

/// Every log line of this test binary.
pub fn logs() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let writer = Capture(buf.clone());
        tracing_subscriber::fmt()
            .with_env_filter("debug")
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        buf
    })
}

#[derive(Clone)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Asserts that no captured log line contains any of `secrets`.
pub fn assert_not_logged(secrets: &[String]) {
    let text = String::from_utf8_lossy(&logs().lock().unwrap()).to_string();
    assert!(
        text.contains("fetched access token"),
        "the log capture saw no token fetch"
    );
    for s in secrets {
        assert!(
            !text.contains(s.as_str()),
            "a token or secret reached the logs"
        );
    }
}

/// A sandbox with one Official Account app and the given token rules.
pub async fn sandbox(rules: TokenRules) -> (Sandbox, AdminClient) {
    let config = SandboxConfig {
        apps: vec![AppConfig {
            appid: APP.into(),
            secret: SECRET.into(),
            kind: AppKind::OfficialAccount,
            templates: vec![TemplateConfig {
                template_id: "T_TEST".into(),
                title: "测试".into(),
                content: "内容:{{thing1.DATA}}".into(),
                ..Default::default()
            }],
            users: Vec::new(),
            callback: None,
        }],
        token: rules,
        ..Default::default()
    };
    let any: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let sb = Sandbox::start(config, any, any)
        .await
        .expect("sandbox starts");
    let admin = AdminClient::new(sb.admin_url());
    (sb, admin)
}

/// Settings that make tests fast: short intervals and waits.
pub fn fast_settings() -> RefreshSettings {
    RefreshSettings {
        margin_secs: 3,
        min_validity_secs: 1,
        check_interval_ms: 100,
        lock_ttl_ms: 5_000,
        lock_wait_ms: 3_000,
        daily_fetch_budget: 100,
        fetch_attempts: 3,
        retry_backoff_ms: 50,
    }
}

pub fn app(mode: TokenMode) -> AppSpec {
    AppSpec {
        app_id: APP.into(),
        secret: Some(Secret::new(SECRET)),
        token_mode: mode,
        ..Default::default()
    }
}

/// One token-service replica serving gRPC on a free port.
pub struct Replica {
    pub client: TokenServiceClient<Channel>,
    pub cache: TokenCache,
    stop: Option<oneshot::Sender<()>>,
    server: JoinHandle<()>,
    refresher: JoinHandle<()>,
}

impl Replica {
    /// `count` replicas of the stable_token app sharing one Redis, with
    /// [`fast_settings`].
    pub async fn several(count: usize, redis_url: &str, wechat_url: &str) -> Vec<Self> {
        let mut replicas = Vec::with_capacity(count);
        for _ in 0..count {
            replicas.push(
                Self::start(
                    redis_url,
                    wechat_url,
                    app(TokenMode::StableToken),
                    fast_settings(),
                )
                .await,
            );
        }
        replicas
    }

    /// The app's token, which this replica must be able to hand out.
    pub async fn token(&self) -> wxpush_proto::v1::GetAccessTokenResponse {
        self.client
            .clone()
            .get_access_token(wxpush_proto::v1::GetAccessTokenRequest { app_id: APP.into() })
            .await
            .expect("GetAccessToken")
            .into_inner()
    }

    pub async fn start(
        redis_url: &str,
        wechat_url: &str,
        app: AppSpec,
        settings: RefreshSettings,
    ) -> Self {
        let backend = BackendSettings {
            kind: BackendKind::Redis,
            redis_url: redis_url.into(),
            key_prefix: "wxpush:".into(),
            ..Default::default()
        };
        let store = wxpush_token::store::connect(&backend)
            .await
            .expect("redis store");
        let wechat = WechatClient::new(&ClientSettings {
            base_url: wechat_url.into(),
            ..Default::default()
        })
        .unwrap();
        let cache = TokenCache::new(&[app], wechat, store, settings).unwrap();
        let refresher = cache.spawn_refresher();
        let listener = wxpush_server::grpc::bind("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (stop, stopped) = oneshot::channel::<()>();
        let routes = tonic::service::Routes::new(TokenGrpc::new(cache.clone()).into_server());
        let server = tokio::spawn(async move {
            let _ = wxpush_server::grpc::serve(
                routes,
                vec!["wxpush.v1.TokenService"],
                wxpush_server::rpc::GateLayer::open(),
                listener,
                async {
                    let _ = stopped.await;
                },
            )
            .await;
        });
        let client = TokenServiceClient::connect(url).await.unwrap();
        Self {
            client,
            cache,
            stop: Some(stop),
            server,
            refresher,
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.refresher.abort();
        self.server.abort();
    }
}

/// Whether the sandbox accepts `token` (an API call with it succeeds).
pub async fn sandbox_accepts(http: &reqwest::Client, api_url: &str, token: &str) -> bool {
    let body: serde_json::Value = http
        .get(format!(
            "{api_url}/cgi-bin/template/get_all_private_template"
        ))
        .query(&[("access_token", token)])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    body.get("errcode").and_then(|c| c.as_i64()).unwrap_or(0) == 0
        && body.get("template_list").is_some()
}
