#![allow(dead_code)]

//! The production topology (a private Redis, the sandbox, four service
//! processes) with callers checked: bearer JWTs (HS256, from a file),
//! grants from a grants file written from [`GRANTS`], the suite's own hops
//! presenting their own tokens (`auth.call_as.token_file`); a token per
//! caller, and requests as any of them.

use crate::topology::Topology;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tonic::Request;
use tonic::transport::Channel;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::*;

pub const ISSUER: &str = "https://sso.wxpush.test";
pub const AUDIENCE: &str = "wxpush";
pub const A: &str = "wx_demo_oa";
pub const B: &str = "wx_demo_mp";
pub const APPS: [&str; 2] = [A, B];

/// One configured caller: its name is also its JWT `sub`.
pub struct Grant {
    pub name: &'static str,
    pub apps: &'static [&'static str],
    pub templates: &'static [&'static str],
    pub operations: &'static [&'static str],
}

pub const GRANTS: &[Grant] = &[
    Grant {
        name: "orders",
        apps: &[A],
        templates: &["order_*"],
        operations: &["send", "read_logs"],
    },
    Grant {
        name: "support",
        apps: &[A],
        templates: &[],
        operations: &["read_logs", "read_content"],
    },
    Grant {
        name: "ops",
        apps: &["*"],
        templates: &[],
        operations: &[
            "send",
            "read_logs",
            "read_content",
            "manage_templates",
            "replay",
        ],
    },
    Grant {
        name: "both",
        apps: &[A, B],
        templates: &[],
        operations: &["read_logs"],
    },
    // The suite's own hops.
    Grant {
        name: "wxpush-delivery",
        apps: &["*"],
        templates: &[],
        operations: &["token"],
    },
    Grant {
        name: "wxpush-template",
        apps: &["*"],
        templates: &[],
        operations: &["token"],
    },
];

pub fn grants_yaml() -> String {
    let mut y = String::from("callers:\n");
    for g in GRANTS {
        let list = |xs: &[&str]| {
            xs.iter()
                .map(|x| format!("'{x}'"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        y += &format!(
            "  - name: {}\n    subjects: [{}]\n    apps: [{}]\n    templates: [{}]\n    operations: [{}]\n",
            g.name,
            g.name,
            list(g.apps),
            list(g.templates),
            list(g.operations)
        );
    }
    y
}

pub fn mint(secret: &[u8], sub: &str) -> String {
    let now = jsonwebtoken::get_current_timestamp();
    let claims = serde_json::json!({
        "sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + 3600, "nbf": now - 5,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret).unwrap(),
    )
    .unwrap()
}

/// The topology with callers checked, and a token per caller.
pub struct Checked {
    pub t: Topology,
    pub tokens: HashMap<&'static str, String>,
}

pub async fn start() -> Checked {
    let dir = std::env::temp_dir().join(format!("wxpush-callers-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = format!("hs256-test-secret-{}-0123456789abcdef", std::process::id()).into_bytes();
    std::fs::write(dir.join("hs256.key"), &secret).unwrap();
    std::fs::write(dir.join("grants.yaml"), grants_yaml()).unwrap();
    for own in ["wxpush-delivery", "wxpush-template"] {
        std::fs::write(dir.join(format!("{own}.jwt")), mint(&secret, own)).unwrap();
    }
    let path = |f: &str| dir.join(f).display().to_string();
    let mut extra: Vec<(String, String)> = Vec::new();
    for prefix in [
        "WXPUSH_TOKEN",
        "WXPUSH_TEMPLATE",
        "WXPUSH_DELIVERY",
        "WXPUSH_LOGQUERY",
    ] {
        for (k, v) in [
            ("AUTH__MODE", "on".to_string()),
            ("AUTH__JWT__HS256_SECRET_FILE", path("hs256.key")),
            ("AUTH__JWT__ISSUER", ISSUER.into()),
            ("AUTH__JWT__AUDIENCE", AUDIENCE.into()),
            ("AUTH__GRANTS_FILE", path("grants.yaml")),
        ] {
            extra.push((format!("{prefix}__{k}"), v));
        }
    }
    extra.push((
        "WXPUSH_DELIVERY__AUTH__CALL_AS__TOKEN_FILE".into(),
        path("wxpush-delivery.jwt"),
    ));
    extra.push((
        "WXPUSH_TEMPLATE__AUTH__CALL_AS__TOKEN_FILE".into(),
        path("wxpush-template.jwt"),
    ));
    let extra: Vec<(&str, &str)> = extra
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let t = Topology::start_with(wxpush_testkit::RedisServer::start(), &extra).await;
    let mut tokens: HashMap<&'static str, String> = GRANTS
        .iter()
        .map(|g| (g.name, mint(&secret, g.name)))
        .collect();
    // Not callers: a subject nobody configured, and a token of another key.
    tokens.insert("stranger", mint(&secret, "stranger"));
    tokens.insert(
        "forged",
        mint(b"another-key-another-key-another-key!!", "ops"),
    );
    Checked { t, tokens }
}

impl Checked {
    /// A request as `caller` (`nobody`: no credentials).
    pub fn req<T>(&self, caller: &str, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.set_timeout(Duration::from_secs(15));
        if let Some(token) = self.tokens.get(caller) {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        r
    }

    pub async fn delivery(&self) -> DeliveryServiceClient<Channel> {
        DeliveryServiceClient::new(self.t.channel("delivery").await)
    }

    pub async fn logs(&self) -> LogQueryServiceClient<Channel> {
        LogQueryServiceClient::new(self.t.channel("logquery").await)
    }
    /// Every record of `app` the log holds, as `ops` (every app) sees them.
    pub async fn records(&self, caller: &str, filter: LogFilter, page_size: u32) -> Vec<LogRecord> {
        let mut out = Vec::new();
        let mut token = String::new();
        loop {
            let page = self
                .logs()
                .await
                .query_logs(self.req(
                    caller,
                    QueryLogsRequest {
                        filter: Some(filter.clone()),
                        page_size,
                        page_token: token,
                    },
                ))
                .await
                .unwrap()
                .into_inner();
            out.extend(page.records);
            if page.next_page_token.is_empty() {
                return out;
            }
            token = page.next_page_token;
        }
    }
}

pub fn key_of(app: &str) -> &'static str {
    if app == A {
        "order_shipped"
    } else {
        "order_status"
    }
}

pub fn send_to(app: &str, order: &str) -> SendRequest {
    let vars = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    if app == A {
        SendRequest {
            template_key: "order_shipped".into(),
            openid: "o_demo_follower".into(),
            variables: vars(&[
                ("order_id", order),
                ("ship_time", "2026-12-01 10:00"),
                ("carrier", "顺丰速运"),
            ]),
            ..Default::default()
        }
    } else {
        SendRequest {
            template_key: "order_status".into(),
            openid: "o_demo_subscriber".into(),
            variables: vars(&[
                ("order_id", order),
                ("status", "已发货"),
                ("amount", "88.00"),
            ]),
            ..Default::default()
        }
    }
}

/// Sends `n` messages to each app as `ops` and waits until the log has
/// them all; their ids by app.
pub async fn sent_and_logged(c: &Checked, n: usize) -> BTreeMap<&'static str, Vec<String>> {
    let mut ids: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    for app in APPS {
        for i in 0..n {
            let r = c
                .delivery()
                .await
                .send(c.req("ops", send_to(app, &format!("PII-{app}-{i}"))))
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap();
            ids.entry(app).or_default().push(r.message_id);
        }
    }
    let want: HashSet<&String> = ids.values().flatten().collect();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let logged = c.records("ops", LogFilter::default(), 500).await;
        let have: HashSet<&String> = logged.iter().map(|r| &r.message_id).collect();
        if want.is_subset(&have) {
            return ids;
        }
        assert!(Instant::now() < deadline, "the log lacks sent messages");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
