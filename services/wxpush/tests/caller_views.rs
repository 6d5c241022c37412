//! Issue 17's acceptance on the production topology with callers checked
//! ([`checked`]): a caller granted app A never sees a record (or a
//! template) of app B by any query, live or stored; a record's rendered
//! content reaches only callers with `read_content`; the caller is on
//! every record; `wxpush logs --token` shows what its caller may see.

mod checked;
mod topology;

use checked::{A, B, key_of, send_to, sent_and_logged, start};
use std::collections::HashSet;
use std::time::{Duration, Instant};
use tonic::Code;
use wxpush_proto::v1::template_service_client::TemplateServiceClient;
use wxpush_proto::v1::*;

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
