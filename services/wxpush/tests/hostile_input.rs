//! Issue 19's hostile-input suite, on the production topology (a private
//! Redis, the sandbox, four service processes): for every RPC a corpus of
//! empty, huge, extreme, unknown, forged and control-character requests.
//! Each answer is a clear error or a bounded result, within its deadline
//! (a hang would surface as the client's own CANCELLED); afterwards no
//! process has exited, and neither any process's RSS nor Redis's memory
//! grew past the stated bound.

mod topology;

use std::time::Duration;
use tonic::{Code, Request};
use topology::Topology;
use wxpush_proto::Timestamp;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;

/// Most a process's RSS may grow over the whole corpus.
const RSS_BOUND: u64 = 64 << 20;
/// Most Redis's memory may grow over the whole corpus.
const REDIS_BOUND: u64 = 16 << 20;
/// Every call's deadline; the server answers within it or says so.
const DEADLINE: Duration = Duration::from_secs(15);

/// Codes a hostile request may get: each names what is wrong with it.
const CLEAR: &[Code] = &[
    Code::InvalidArgument,
    Code::NotFound,
    Code::FailedPrecondition,
    Code::ResourceExhausted,
    Code::OutOfRange,
    Code::Unimplemented,
    Code::AlreadyExists,
    Code::Aborted,
];

fn req<T>(message: T) -> Request<T> {
    let mut r = Request::new(message);
    r.set_timeout(DEADLINE);
    r
}

/// A bounded answer: OK, or an error in [`CLEAR`] with a message and an
/// `ErrorInfo` reason.
fn bounded<T>(what: &str, r: Result<tonic::Response<T>, tonic::Status>) -> Option<T> {
    match r {
        Ok(answer) => Some(answer.into_inner()),
        Err(s) => {
            assert!(
                CLEAR.contains(&s.code()),
                "{what}: {:?} {}",
                s.code(),
                s.message()
            );
            assert!(
                !s.message().is_empty(),
                "{what}: an error without a message"
            );
            // Machines read the reason (README, "Errors"), never the text.
            assert!(
                wxpush_server::failure::reason(&s).is_some(),
                "{what}: {:?} {} carries no ErrorInfo reason",
                s.code(),
                s.message()
            );
            None
        }
    }
}

fn ts(seconds: i64, nanos: i32) -> Option<Timestamp> {
    Some(Timestamp { seconds, nanos })
}

const CONTROL: &str = "\u{0}\u{1b}[2J\r\nforged\u{7f}";

fn huge(n: usize) -> String {
    "x".repeat(n)
}

async fn delivery_corpus(mut d: DeliveryServiceClient<tonic::transport::Channel>) {
    let ok = || SendRequest {
        template_key: "order_shipped".into(),
        openid: "o_demo_follower".into(),
        variables: [("order_id", "1"), ("ship_time", "t"), ("carrier", "c")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    let sends = [
        SendRequest::default(),
        SendRequest {
            openid: huge(1 << 20),
            ..ok()
        },
        SendRequest {
            openid: CONTROL.into(),
            ..ok()
        },
        SendRequest {
            template_key: CONTROL.into(),
            ..ok()
        },
        SendRequest {
            template_key: huge(100_000),
            ..ok()
        },
        SendRequest {
            app_id: CONTROL.into(),
            ..ok()
        },
        SendRequest {
            url: "javascript:alert(1)".into(),
            ..ok()
        },
        SendRequest {
            page: huge(10_000),
            ..ok()
        },
        SendRequest {
            idempotency_key: huge(10_000),
            ..ok()
        },
        SendRequest {
            variables: (0..5000).map(|i| (format!("v{i}"), huge(100))).collect(),
            ..ok()
        },
    ];
    for (i, s) in sends.iter().enumerate() {
        bounded(&format!("Send #{i}"), d.send(req(s.clone())).await);
        let a = SendAsyncRequest::from(s.clone());
        bounded(&format!("SendAsync #{i}"), d.send_async(req(a)).await);
    }
    for send_at in [ts(i64::MAX, -1), ts(i64::MIN, 0)] {
        let a = SendAsyncRequest {
            send_at,
            ..ok().into()
        };
        bounded("SendAsync send_at", d.send_async(req(a)).await);
    }
    for send_at in [ts(253_402_300_799, 0), ts(0, 2_000_000_000)] {
        let a = SendAsyncRequest {
            send_at,
            ..ok().into()
        };
        assert!(bounded("SendAsync send_at", d.send_async(req(a)).await).is_none());
    }
    let batches = [
        SendBatchRequest::default(),
        SendBatchRequest {
            template_key: "order_shipped".into(),
            recipients: (0..1001).map(|_| BatchRecipient::default()).collect(),
            ..Default::default()
        },
        SendBatchRequest {
            template_key: "order_shipped".into(),
            common_variables: (0..75).map(|i| (format!("pad{i}"), huge(1000))).collect(),
            recipients: (0..1000)
                .map(|i| BatchRecipient {
                    openid: format!("o{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        },
        SendBatchRequest {
            template_key: "no_such_template".into(),
            recipients: vec![BatchRecipient {
                openid: CONTROL.into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    ];
    for (i, b) in batches.into_iter().enumerate() {
        bounded(&format!("SendBatch #{i}"), d.send_batch(req(b)).await);
    }
    for id in ["", CONTROL, &huge(100_000)] {
        let r = d
            .get_message(req(GetMessageRequest {
                message_id: id.into(),
            }))
            .await;
        bounded("GetMessage", r);
    }
    let lists = [
        ListDeadLettersRequest {
            page_size: u32::MAX,
            ..Default::default()
        },
        ListDeadLettersRequest {
            page_token: "forged.token".into(),
            ..Default::default()
        },
        ListDeadLettersRequest {
            page_token: "9223372036854775807.x".into(),
            ..Default::default()
        },
        ListDeadLettersRequest {
            filter: Some(DeadLetterFilter {
                errcode: Some(i64::MIN),
                time_range: Some(TimeRange {
                    start: ts(i64::MIN, 0),
                    end: ts(i64::MAX, 0),
                }),
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    for (i, l) in lists.into_iter().enumerate() {
        bounded(
            &format!("ListDeadLetters #{i}"),
            d.list_dead_letters(req(l)).await,
        );
    }
    let replays = [
        ReplayDeadLettersRequest::default(),
        ReplayDeadLettersRequest {
            message_ids: (0..100_000).map(|i| format!("m{i}")).collect(),
            filter: None,
        },
    ];
    for r in replays {
        bounded("ReplayDeadLetters", d.replay_dead_letters(req(r)).await);
    }
    let r = d
        .get_breaker_state(req(GetBreakerStateRequest {
            app_id: huge(100_000),
        }))
        .await;
    bounded("GetBreakerState", r);
}

async fn logquery_corpus(mut l: LogQueryServiceClient<tonic::transport::Channel>) {
    let extreme = Some(TimeRange {
        start: ts(i64::MIN, 0),
        end: ts(i64::MAX, 0),
    });
    let filters = [
        LogFilter::default(),
        LogFilter {
            time_range: extreme,
            ..Default::default()
        },
        LogFilter {
            status: 999,
            ..Default::default()
        },
        LogFilter {
            trace_id: CONTROL.into(),
            ..Default::default()
        },
        LogFilter {
            openid: huge(1 << 20),
            ..Default::default()
        },
        LogFilter {
            app_id: CONTROL.into(),
            template_key: CONTROL.into(),
            ..Default::default()
        },
    ];
    for (i, f) in filters.iter().enumerate() {
        for (page_size, page_token) in [(0, ""), (u32::MAX, ""), (10, "forged"), (10, "djEuOTk5.")]
        {
            let q = QueryLogsRequest {
                filter: Some(f.clone()),
                page_size,
                page_token: page_token.into(),
            };
            if let Some(page) = bounded(&format!("QueryLogs #{i}"), l.query_logs(req(q)).await) {
                assert!(page.records.len() <= 500);
            }
        }
        let tail = l
            .tail_logs(req(TailLogsRequest {
                filter: Some(f.clone()),
            }))
            .await;
        bounded(&format!("TailLogs #{i}"), tail);
    }
    let stats = [
        GetStatsRequest::default(),
        GetStatsRequest {
            time_range: extreme,
            bucket_seconds: 1,
            ..Default::default()
        },
        GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(0, 0),
                end: ts(86_400 * 365, 0),
            }),
            bucket_seconds: u32::MAX,
            group_by: 999,
            ..Default::default()
        },
        GetStatsRequest {
            time_range: Some(TimeRange {
                start: ts(0, 0),
                end: ts(1, 0),
            }),
            filter: Some(LogFilter {
                time_range: extreme,
                ..Default::default()
            }),
            ..Default::default()
        },
    ];
    for (i, s) in stats.into_iter().enumerate() {
        bounded(&format!("GetStats #{i}"), l.get_stats(req(s)).await);
    }
    for id in ["", CONTROL, &huge(100_000)] {
        let r = l
            .get_message_history(req(GetMessageHistoryRequest {
                message_id: id.into(),
            }))
            .await;
        bounded("GetMessageHistory", r);
    }
    // A burst of streams on one connection: at most 100 open, the rest
    // refused, none crashing anything.
    let mut open = Vec::new();
    let mut refused = 0;
    for _ in 0..150 {
        match l.tail_logs(req(TailLogsRequest::default())).await {
            Ok(s) => open.push(s.into_inner()),
            Err(s) => {
                assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
                refused += 1;
            }
        }
    }
    assert!(open.len() <= 100 && refused >= 50, "{} open", open.len());
}

async fn template_corpus(mut t: TemplateServiceClient<tonic::transport::Channel>) {
    let bomb = Template {
        key: "bomb".into(),
        app_id: "wx_demo_oa".into(),
        kind: MessageKind::Template.into(),
        template_id: "T".into(),
        wechat_content: "{".repeat(1 << 20),
        fields: [("a".to_string(), "{{x}}".to_string())].into(),
        ..Default::default()
    };
    let upserts = [
        Template::default(),
        bomb,
        Template {
            key: CONTROL.into(),
            kind: 99,
            ..Default::default()
        },
        Template {
            key: "many".into(),
            app_id: "wx_demo_oa".into(),
            kind: MessageKind::Template.into(),
            template_id: "T".into(),
            fields: (0..10_000).map(|i| (format!("f{i}"), huge(10))).collect(),
            ..Default::default()
        },
    ];
    for (i, u) in upserts.into_iter().enumerate() {
        let r = t
            .upsert_template(req(UpsertTemplateRequest {
                template: Some(u),
                expected_version: u64::MAX,
            }))
            .await;
        bounded(&format!("UpsertTemplate #{i}"), r);
    }
    for key in ["", CONTROL, &huge(100_000)] {
        bounded(
            "GetTemplate",
            t.get_template(req(GetTemplateRequest {
                key: key.into(),
                ..Default::default()
            }))
            .await,
        );
        let r = t
            .delete_template(req(DeleteTemplateRequest {
                key: key.into(),
                expected_version: u64::MAX,
            }))
            .await;
        bounded("DeleteTemplate", r);
        let r = t
            .render_template(req(RenderTemplateRequest {
                key: key.into(),
                openid: CONTROL.into(),
                ..Default::default()
            }))
            .await;
        bounded("RenderTemplate", r);
        let r = t
            .list_templates(req(ListTemplatesRequest {
                app_id: key.into(),
                ..Default::default()
            }))
            .await;
        bounded("ListTemplates", r);
        let r = t
            .sync_templates(req(SyncTemplatesRequest {
                app_id: key.into(),
                kind: 99,
            }))
            .await;
        bounded("SyncTemplates", r);
    }
}

async fn token_corpus(mut t: TokenServiceClient<tonic::transport::Channel>) {
    for app in ["", CONTROL, &huge(100_000), "wx_unknown"] {
        let r = t
            .get_access_token(req(GetAccessTokenRequest { app_id: app.into() }))
            .await;
        bounded("GetAccessToken", r);
        let r = t
            .invalidate_access_token(req(InvalidateAccessTokenRequest {
                app_id: app.into(),
                bad_token: huge(100_000),
            }))
            .await;
        bounded("InvalidateAccessToken", r);
        let r = t
            .get_token_status(req(GetTokenStatusRequest { app_id: app.into() }))
            .await;
        bounded("GetTokenStatus", r);
    }
    bounded(
        "ListApps",
        t.list_apps(req(ListAppsRequest::default())).await,
    );
}

/// Every corpus against `topology`: each process alive, its RSS and the
/// hot path's Redis memory grown by less than their bounds.
async fn every_corpus(topology: &mut Topology) {
    let rss_before: Vec<u64> = topology.processes.iter().map(|p| p.rss()).collect();
    let redis_before = topology.hot_path_memory().await;

    delivery_corpus(DeliveryServiceClient::new(
        topology.channel("delivery").await,
    ))
    .await;
    logquery_corpus(LogQueryServiceClient::new(
        topology.channel("logquery").await,
    ))
    .await;
    template_corpus(TemplateServiceClient::new(
        topology.channel("template").await,
    ))
    .await;
    token_corpus(TokenServiceClient::new(topology.channel("token").await)).await;

    for (p, before) in topology.processes.iter_mut().zip(rss_before) {
        assert!(p.alive(), "{} exited", p.name);
        let after = p.rss();
        assert!(
            after.saturating_sub(before) < RSS_BOUND,
            "{}: RSS {before} -> {after}",
            p.name
        );
    }
    let redis_after = topology.hot_path_memory().await;
    assert!(
        redis_after.saturating_sub(redis_before) < REDIS_BOUND,
        "Redis memory {redis_before} -> {redis_after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_rpc_answers_hostile_input_with_a_bounded_result() {
    let mut topology = Topology::start().await;
    every_corpus(&mut topology).await;
    assert!(topology.redis.ping(), "Redis still answers");
}

/// The same on the production topology at scale: the log on PostgreSQL,
/// the hot path on a three-master Redis Cluster (issue 15: the behaviour
/// suites green on each backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_redis_cluster_every_rpc_answers_hostile_input_with_a_bounded_result() {
    let mut topology = Topology::start_on_cluster(wxpush_testkit::RedisCluster::start()).await;
    every_corpus(&mut topology).await;
}
