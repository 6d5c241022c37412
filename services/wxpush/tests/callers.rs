//! Issue 17's acceptance on the production topology (a private Redis, the
//! sandbox, four service processes) with callers checked: bearer JWTs
//! (HS256, from a file), grants from a grants file, the suite's own hops
//! presenting their own tokens (`auth.call_as.token_file`).
//!
//! - Every cell of callers × operations × apps is allowed or refused as the
//!   grants say, with the right code (the expectation computed from the
//!   same grant table the grants file is written from).
//! - A caller granted app A never sees a record of app B, by any query.
//! - A record's rendered content reaches only callers with `read_content`.

mod topology;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use topology::Topology;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;

const ISSUER: &str = "https://sso.wxpush.test";
const AUDIENCE: &str = "wxpush";
const A: &str = "wx_demo_oa";
const B: &str = "wx_demo_mp";
const APPS: [&str; 2] = [A, B];

/// One configured caller: its name is also its JWT `sub`.
struct Grant {
    name: &'static str,
    apps: &'static [&'static str],
    templates: &'static [&'static str],
    operations: &'static [&'static str],
}

const GRANTS: &[Grant] = &[
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

fn grants_yaml() -> String {
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

/// The oracle: what the grant table says a caller may do.
fn expected(caller: &str, op: &str, app: &str, key: &str) -> Code {
    let Some(g) = GRANTS.iter().find(|g| g.name == caller) else {
        return Code::Unauthenticated;
    };
    let glob = |p: &str| match p.strip_suffix('*') {
        Some(prefix) => key.starts_with(prefix),
        None => p == key,
    };
    let allowed = g.operations.contains(&op)
        && g.apps.iter().any(|a| *a == "*" || *a == app)
        && (op != "send" || g.templates.is_empty() || g.templates.iter().any(|p| glob(p)));
    if allowed {
        Code::Ok
    } else {
        Code::PermissionDenied
    }
}

fn mint(secret: &[u8], sub: &str) -> String {
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
struct Checked {
    t: Topology,
    tokens: HashMap<&'static str, String>,
}

async fn start() -> Checked {
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
    fn req<T>(&self, caller: &str, message: T) -> Request<T> {
        let mut r = Request::new(message);
        r.set_timeout(Duration::from_secs(15));
        if let Some(token) = self.tokens.get(caller) {
            r.metadata_mut()
                .insert("authorization", format!("Bearer {token}").parse().unwrap());
        }
        r
    }

    async fn delivery(&self) -> DeliveryServiceClient<Channel> {
        DeliveryServiceClient::new(self.t.channel("delivery").await)
    }

    async fn logs(&self) -> LogQueryServiceClient<Channel> {
        LogQueryServiceClient::new(self.t.channel("logquery").await)
    }

    /// One cell: `caller` does `op` on `app`; the code it got.
    async fn attempt(&self, caller: &str, op: &str, app: &str) -> (Code, String) {
        let code = |r: Result<(), Status>| match r {
            Ok(()) => (Code::Ok, String::new()),
            Err(s) => (s.code(), s.message().to_string()),
        };
        match op {
            "send" => code(
                self.delivery()
                    .await
                    .send(self.req(caller, send_to(app, "T-cell")))
                    .await
                    .map(drop),
            ),
            "read_logs" => code(
                self.logs()
                    .await
                    .query_logs(self.req(
                        caller,
                        QueryLogsRequest {
                            filter: Some(LogFilter {
                                app_id: app.into(),
                                ..Default::default()
                            }),
                            page_size: 5,
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop),
            ),
            "manage_templates" => {
                let mut templates = TemplateServiceClient::new(self.t.channel("template").await);
                let mut copy = templates
                    .get_template(self.req(
                        "ops",
                        GetTemplateRequest {
                            key: key_of(app).into(),
                            ..Default::default()
                        },
                    ))
                    .await
                    .unwrap()
                    .into_inner()
                    .template
                    .unwrap();
                copy.key = format!("cell_{}_{}", caller.replace('-', "_"), app);
                copy.version = 0;
                code(
                    templates
                        .upsert_template(self.req(
                            caller,
                            UpsertTemplateRequest {
                                template: Some(copy),
                                expected_version: 0,
                            },
                        ))
                        .await
                        .map(drop),
                )
            }
            "replay" => code(
                self.delivery()
                    .await
                    .list_dead_letters(self.req(
                        caller,
                        ListDeadLettersRequest {
                            filter: Some(DeadLetterFilter {
                                app_id: app.into(),
                                ..Default::default()
                            }),
                            ..Default::default()
                        },
                    ))
                    .await
                    .map(drop),
            ),
            "token" => code(
                TokenServiceClient::new(self.t.channel("token").await)
                    .get_access_token(
                        self.req(caller, GetAccessTokenRequest { app_id: app.into() }),
                    )
                    .await
                    .map(drop),
            ),
            other => panic!("no operation {other}"),
        }
    }

    /// Every record of `app` the log holds, as `ops` (every app) sees them.
    async fn records(&self, caller: &str, filter: LogFilter, page_size: u32) -> Vec<LogRecord> {
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

fn key_of(app: &str) -> &'static str {
    if app == A {
        "order_shipped"
    } else {
        "order_status"
    }
}

fn send_to(app: &str, order: &str) -> SendRequest {
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

const OPERATIONS: [&str; 5] = ["send", "read_logs", "manage_templates", "replay", "token"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_caller_operation_and_app_is_allowed_or_refused_as_the_grants_say() {
    let c = start().await;
    let callers: Vec<&str> = GRANTS
        .iter()
        .map(|g| g.name)
        .chain(["stranger", "forged", "nobody"])
        .collect();
    let mut wrong = Vec::new();
    let mut cells = 0;
    for caller in &callers {
        for op in OPERATIONS {
            for app in APPS {
                let want = expected(caller, op, app, key_of(app));
                let (got, message) = c.attempt(caller, op, app).await;
                cells += 1;
                if got != want {
                    wrong.push(format!(
                        "{caller} {op} {app}: {got:?} ({message}), want {want:?}"
                    ));
                }
                // A refusal says who and what, never a token.
                if got == Code::PermissionDenied {
                    assert!(
                        message.contains(caller) && message.contains(op),
                        "{caller} {op} {app}: {message}"
                    );
                }
                assert!(!message.contains("eyJ"), "a token in {message}");
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{} of {cells} cells wrong:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    assert_eq!(cells, callers.len() * OPERATIONS.len() * APPS.len());
}

/// Sends `n` messages to each app as `ops` and waits until the log has
/// them all; their ids by app.
async fn sent_and_logged(c: &Checked, n: usize) -> BTreeMap<&'static str, Vec<String>> {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_of_app_a_never_sees_a_record_of_app_b_and_content_needs_read_content() {
    let c = start().await;
    // Tailing before anything is sent: the live log narrowed to A, masked.
    let mut tail = c
        .logs()
        .await
        .tail_logs(c.req("orders", TailLogsRequest::default()))
        .await
        .unwrap()
        .into_inner();
    let ids = sent_and_logged(&c, 6).await;
    let b_ids: HashSet<&String> = ids[B].iter().collect();
    // Every A record comes; then a second more, and still nothing of B.
    let mut tailed = HashSet::new();
    let until = Instant::now() + Duration::from_secs(10);
    let mut more = None;
    loop {
        let at = more.unwrap_or(until);
        let Ok(event) = tokio::time::timeout_at(at.into(), tail.message()).await else {
            assert!(more.is_some(), "the tail showed {tailed:?} of A's records");
            break;
        };
        let event = event.unwrap().expect("the tail stays open");
        if let Some(tail_logs_response::Event::Record(r)) = event.event {
            assert_eq!(r.app_id, A, "orders tailed {r:?}");
            assert!(
                !r.data_json.contains("PII-"),
                "tailed in clear: {}",
                r.data_json
            );
            tailed.insert(r.message_id);
        }
        if more.is_none() && tailed.len() == ids[A].len() {
            more = Some(Instant::now() + Duration::from_secs(1));
        }
    }
    let want: HashSet<String> = ids[A].iter().cloned().collect();
    assert_eq!(tailed, want);
    drop(tail);
    let all = c.records("ops", LogFilter::default(), 500).await;
    let of_a: Vec<&LogRecord> = all.iter().filter(|r| r.app_id == A).collect();
    let b_record = all.iter().find(|r| r.app_id == B).unwrap();
    let now = jsonwebtoken::get_current_timestamp() as i64;

    for caller in ["orders", "support"] {
        // Unfiltered: narrowed to A, every record of A there.
        let seen = c.records(caller, LogFilter::default(), 4).await;
        assert_eq!(seen.len(), of_a.len(), "{caller}");
        assert!(
            seen.iter().all(|r| r.app_id == A),
            "{caller} saw another app"
        );
        // Every other way to name a record of B finds nothing.
        for filter in [
            LogFilter {
                message_id: b_record.message_id.clone(),
                ..Default::default()
            },
            LogFilter {
                trace_id: b_record.trace_id.clone(),
                ..Default::default()
            },
            LogFilter {
                openid: b_record.openid.clone(),
                ..Default::default()
            },
            LogFilter {
                template_key: b_record.template_key.clone(),
                ..Default::default()
            },
        ] {
            let found = c.records(caller, filter.clone(), 50).await;
            assert!(found.is_empty(), "{caller} found {found:?} with {filter:?}");
        }
        let named = c
            .logs()
            .await
            .query_logs(c.req(
                caller,
                QueryLogsRequest {
                    filter: Some(LogFilter {
                        app_id: B.into(),
                        ..Default::default()
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(named.code(), Code::PermissionDenied);
        let history = c
            .logs()
            .await
            .get_message_history(c.req(
                caller,
                GetMessageHistoryRequest {
                    message_id: b_record.message_id.clone(),
                },
            ))
            .await
            .unwrap_err();
        assert_eq!(history.code(), Code::NotFound, "{caller}");
        // Stats count A's records only.
        let stats = c
            .logs()
            .await
            .get_stats(c.req(
                caller,
                GetStatsRequest {
                    group_by: StatsGroupBy::Status.into(),
                    time_range: Some(TimeRange {
                        start: Some(wxpush_proto::Timestamp {
                            seconds: now - 3600,
                            nanos: 0,
                        }),
                        end: Some(wxpush_proto::Timestamp {
                            seconds: now + 3600,
                            nanos: 0,
                        }),
                    }),
                    ..Default::default()
                },
            ))
            .await
            .unwrap()
            .into_inner();
        let counted: u64 = stats
            .series
            .iter()
            .flat_map(|s| &s.points)
            .map(|p| p.count)
            .sum();
        assert_eq!(counted, of_a.len() as u64, "{caller} stats");
    }
    // Nor B's templates: unknown to it, and left out of its lists.
    let mut templates = TemplateServiceClient::new(c.t.channel("template").await);
    let unknown = templates
        .get_template(c.req(
            "orders",
            GetTemplateRequest {
                key: key_of(B).into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    let listed = templates
        .list_templates(c.req("orders", ListTemplatesRequest::default()))
        .await
        .unwrap()
        .into_inner()
        .templates;
    assert!(
        !listed.is_empty() && listed.iter().all(|t| t.app_id == A),
        "{listed:?}"
    );
    let named = templates
        .list_templates(c.req(
            "orders",
            ListTemplatesRequest {
                app_id: B.into(),
                ..Default::default()
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(named.code(), Code::PermissionDenied);

    // A's sender cannot look up B's message in delivery either.
    let status = c
        .delivery()
        .await
        .get_message(c.req(
            "orders",
            GetMessageRequest {
                message_id: ids[B][0].clone(),
            },
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // A caller of both apps by name: the per-app pages merge into the same
    // records in the same order as an every-app caller's, page by page.
    let both = c.records("both", LogFilter::default(), 3).await;
    let ids_of = |rs: &[LogRecord]| rs.iter().map(|r| r.message_id.clone()).collect::<Vec<_>>();
    assert_eq!(ids_of(&both), ids_of(&all));
    assert!(both.iter().any(|r| b_ids.contains(&r.message_id)));

    // The caller on the record, filterable: ops sent those; what orders
    // sends, now or through the queue, is its own.
    assert!(all.iter().all(|r| r.caller == "ops"), "{all:?}");
    let now_sent = c
        .delivery()
        .await
        .send(c.req("orders", send_to(A, "by-orders")))
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap()
        .message_id;
    let queued = c
        .delivery()
        .await
        .send_async(c.req(
            "orders",
            SendAsyncRequest {
                template_key: "order_shipped".into(),
                openid: "o_demo_follower".into(),
                variables: send_to(A, "by-orders-queued").variables,
                ..Default::default()
            },
        ))
        .await
        .unwrap()
        .into_inner()
        .message_id;
    let by_orders = LogFilter {
        caller: "orders".into(),
        ..Default::default()
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut found: Vec<String> = c
            .records("ops", by_orders.clone(), 50)
            .await
            .into_iter()
            .map(|r| r.message_id)
            .collect();
        found.sort();
        let mut want = vec![now_sent.clone(), queued.clone()];
        want.sort();
        if found == want {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "by orders: {found:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // `wxpush logs --token` shows what its caller may see; without a
    // token the call is refused and says so.
    let port =
        c.t.processes
            .iter()
            .find(|p| p.name == "logquery")
            .unwrap()
            .grpc;
    let cli = |token: Option<String>| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wxpush"));
        cmd.args(["logs", "--json", "--limit", "100", "--addr"])
            .arg(format!("http://127.0.0.1:{port}"))
            .env_remove("WXPUSH_TOKEN");
        if let Some(t) = token {
            cmd.env("WXPUSH_TOKEN", t);
        }
        cmd.output().unwrap()
    };
    let shown = cli(Some(c.tokens["orders"].clone()));
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(shown.status.success(), "{shown:?}");
    assert!(
        text.contains(&ids[A][0]) && !text.contains(&ids[B][0]),
        "{text}"
    );
    assert!(text.contains("masked:") && !text.contains("PII-"), "{text}");
    let refused = cli(None);
    assert_eq!(refused.status.code(), Some(4));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("Unauthenticated: no credentials"),
        "{refused:?}"
    );

    // Content: in clear with read_content, masked without.
    let ops_sent = LogFilter {
        caller: "ops".into(),
        ..Default::default()
    };
    let clear = c.records("support", ops_sent.clone(), 500).await;
    let masked = c.records("orders", ops_sent, 500).await;
    assert!(
        clear.iter().all(|r| r.data_json.contains("PII-")),
        "support lacks content"
    );
    for r in &masked {
        assert!(!r.data_json.contains("PII-"), "orders read {}", r.data_json);
        assert!(r.data_json.contains("masked:"), "{}", r.data_json);
    }
    // The same value masks alike: records compare without being read.
    let carrier = |r: &LogRecord| {
        let v: serde_json::Value = serde_json::from_str(&r.data_json).unwrap();
        v["thing3"]["value"].as_str().unwrap().to_string()
    };
    assert_eq!(carrier(&masked[0]), carrier(&masked[1]));
    assert!(carrier(&masked[0]).starts_with("masked:4:"));
}
