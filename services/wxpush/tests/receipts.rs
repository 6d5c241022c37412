//! WeChat's receipts end to end on the memory backends (`wxpush dev`'s
//! wiring): the sandbox pushes each message's receipt to the suite's
//! callback endpoint over HTTP (the official account in plaintext XML, the
//! Mini Program in safe mode with JSON), and the log gives the message its
//! final status: DELIVERED, BLOCKED or UNDELIVERED.

mod common;
mod topology;

use common::{Harness, logged_as, sent_via, shipped_to, status_to};
use std::time::{Duration, Instant};
use topology::Topology;
use wechat_sandbox::AdminClient;
use wxpush_callback::metrics::{CallbackMetrics, Outcome};
use wxpush_logquery::metrics::LogQueryMetrics;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::*;

/// The sandbox's pushes once there are `n` (it records one when its
/// answer is back, which may be a moment after the log applied it).
async fn pushed(h: &Harness, n: usize) -> Vec<wechat_sandbox::PushRecord> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let pushes = h.admin.pushes().await.unwrap();
        if pushes.len() >= n || Instant::now() > deadline {
            return pushes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `GetMessage` once the status is `want` (10 s at most).
async fn live_becomes(
    delivery: &DeliveryServiceClient<tonic::transport::Channel>,
    message_id: &str,
    want: DeliveryStatus,
) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = delivery
            .clone()
            .get_message(GetMessageRequest {
                message_id: message_id.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap();
        if r.status == want as i32 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "GetMessage says {} for {message_id}, not {want:?}",
            r.status
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_ends_as_its_receipt_says() {
    let h = Harness::start_with_callbacks().await;
    let delivered = h.sent(shipped_to("o_demo_follower")).await;
    let blocked = h.sent(shipped_to("o_demo_blocker")).await;
    let undelivered = h.sent(shipped_to("o_demo_unreachable")).await;
    let subscribe = h.sent(status_to("o_demo_subscriber")).await;

    let r = logged_as(&mut h.logs(), &delivered, DeliveryStatus::Delivered).await;
    assert!(!r.wechat_msgid.is_empty());
    let (sent_at, at) = (r.sent_at.unwrap(), r.updated_at.unwrap());
    assert!(
        at.seconds >= sent_at.seconds,
        "the receipt's time is after SENT"
    );
    assert_eq!(
        r.history.last().map(|a| a.status),
        Some(DeliveryStatus::Sent as i32),
        "a receipt is no attempt"
    );
    logged_as(&mut h.logs(), &blocked, DeliveryStatus::Blocked).await;
    logged_as(&mut h.logs(), &undelivered, DeliveryStatus::Undelivered).await;
    // GetMessage (delivery's live status) shows them too.
    for (id, want) in [
        (&delivered, DeliveryStatus::Delivered),
        (&blocked, DeliveryStatus::Blocked),
        (&undelivered, DeliveryStatus::Undelivered),
        (&subscribe, DeliveryStatus::Delivered),
    ] {
        live_becomes(&h.delivery(), id, want).await;
    }
    // The Mini Program's sent event, pushed in safe mode as JSON.
    logged_as(&mut h.logs(), &subscribe, DeliveryStatus::Delivered).await;

    // QueryLogs filters by a final status.
    let page = h
        .logs()
        .query_logs(QueryLogsRequest {
            filter: Some(LogFilter {
                status: DeliveryStatus::Blocked as i32,
                ..Default::default()
            }),
            page_size: 10,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let ids: Vec<_> = page.records.iter().map(|r| r.message_id.as_str()).collect();
    assert_eq!(ids, [blocked.as_str()]);
    // GetStats groups by them.
    let by_status = stats_by_status(&mut h.logs()).await;
    assert_eq!(by_status.get("BLOCKED"), Some(&1), "{by_status:?}");
    assert_eq!(by_status.get("UNDELIVERED"), Some(&1), "{by_status:?}");
    assert_eq!(by_status.get("DELIVERED"), Some(&2), "{by_status:?}");
    // So does `wxpush logs`, which shows it.
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.args(["logs", "--status", "blocked", "--addr", &h.suite.grpc_url()]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains(&blocked) && shown.contains("BLOCKED") && !shown.contains(&delivered),
        "{shown}"
    );

    // Counted by final status (this test is the only one with a blocker).
    assert_eq!(
        LogQueryMetrics::global().receipts_so_far("wx_demo_oa", "order_shipped", "blocked"),
        1
    );
    // Every push was answered `success` at the first call.
    let pushes = pushed(&h, 4).await;
    assert_eq!(pushes.len(), 4, "{pushes:?}");
    assert!(
        pushes.iter().all(|p| p.answered && p.attempts == 1),
        "{pushes:?}"
    );
    h.suite.shutdown().await;
}

#[tokio::test]
async fn the_same_receipt_pushed_three_times_changes_nothing() {
    let h = Harness::start_with_callbacks().await;
    let id = h.sent(shipped_to("o_demo_follower")).await;
    let first = logged_as(&mut h.logs(), &id, DeliveryStatus::Delivered).await;
    let receipt = pushed(&h, 1)
        .await
        .into_iter()
        .find(|p| p.event == "TEMPLATESENDJOBFINISH")
        .expect("the receipt was pushed");
    for _ in 0..2 {
        let again = h.admin.repeat_push(receipt.id).await.unwrap();
        assert!(again.answered, "a repeat is answered success: {again:?}");
    }
    // Answered, and handed on once: the record stays as the first receipt
    // left it (read after the log had time to apply anything).
    assert_eq!(
        CallbackMetrics::global().get("wx_demo_oa", Outcome::Repeated),
        2,
        "both repeats were recognised"
    );
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let after = logged_as(&mut h.logs(), &id, DeliveryStatus::Delivered).await;
    assert_eq!(after, first);
    h.suite.shutdown().await;
}

/// On the production backends (five processes: the log on PostgreSQL, the
/// hot path and the callback stream on Redis): the same final statuses, a
/// receipt pushed three times changes nothing, a pop-up answer reaches the
/// consent ledger, and a receipt pushed while the log is down is applied
/// when it is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_production_backends_receipts_give_the_final_status() {
    let mut t = Topology::start_with_callbacks().await;
    let mut delivery = DeliveryServiceClient::new(t.channel("delivery").await);
    let mut delivery_client = delivery.clone();
    let mut send = async |req: SendRequest| sent_via(&mut delivery, req).await;
    let delivered = send(shipped_to("o_demo_follower")).await;
    let blocked = send(shipped_to("o_demo_blocker")).await;
    let undelivered = send(shipped_to("o_demo_unreachable")).await;
    let subscribe = send(status_to("o_demo_subscriber")).await;
    let mut logs = LogQueryServiceClient::new(t.channel("logquery").await);
    let first = logged_as(&mut logs, &delivered, DeliveryStatus::Delivered).await;
    logged_as(&mut logs, &blocked, DeliveryStatus::Blocked).await;
    logged_as(&mut logs, &undelivered, DeliveryStatus::Undelivered).await;
    logged_as(&mut logs, &subscribe, DeliveryStatus::Delivered).await;
    live_becomes(&delivery_client, &blocked, DeliveryStatus::Blocked).await;
    let by_status = stats_by_status(&mut logs).await;
    assert_eq!(
        (
            by_status.get("BLOCKED"),
            by_status.get("UNDELIVERED"),
            by_status.get("DELIVERED")
        ),
        (Some(&1), Some(&1), Some(&2)),
        "{by_status:?}"
    );
    live_becomes(&delivery_client, &subscribe, DeliveryStatus::Delivered).await;

    let admin = AdminClient::new(t.sandbox.admin_url());
    let receipt = admin
        .pushes()
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.event == "TEMPLATESENDJOBFINISH" && p.answered && p.openid == "o_demo_follower")
        .expect("the follower's receipt was pushed and answered");
    for _ in 0..2 {
        assert!(admin.repeat_push(receipt.id).await.unwrap().answered);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        logged_as(&mut logs, &delivered, DeliveryStatus::Delivered).await,
        first,
        "repeats changed the record"
    );

    // A pop-up answer reaches delivery's consent ledger over the same
    // callback stream (its own consumer group).
    let answered = admin
        .answer_subscription(&wechat_sandbox::Answer {
            appid: "wx_demo_mp".into(),
            openid: "o_demo_subscriber".into(),
            template_id: "MP_ORDER_STATUS_p8Qx".into(),
            status: "accept".into(),
            event: wechat_sandbox::AnswerEvent::Popup,
        })
        .await
        .unwrap()
        .expect("pushed");
    assert!(answered.answered);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let consents = delivery_client
            .get_consent(GetConsentRequest {
                app_id: "wx_demo_mp".into(),
                openid: "o_demo_subscriber".into(),
            })
            .await
            .unwrap()
            .into_inner()
            .consents;
        if consents.first().map(|c| c.accepts_left) == Some(1) {
            break;
        }
        assert!(Instant::now() < deadline, "consent is {consents:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The log is down while a message is sent and its receipt pushed: both
    // wait in their streams, and the receipt is applied whichever is read
    // first.
    t.kill("logquery");
    let late = send(shipped_to("o_demo_follower2")).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while !admin
        .pushes()
        .await
        .unwrap()
        .iter()
        .any(|p| p.openid == "o_demo_follower2" && p.answered)
    {
        assert!(Instant::now() < deadline, "the receipt was not pushed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    t.start_again("logquery").await;
    let mut logs = LogQueryServiceClient::new(t.channel("logquery").await);
    logged_as(&mut logs, &late, DeliveryStatus::Delivered).await;
}

/// Counts per final status of the last hour (`GetStats`, grouped by status).
async fn stats_by_status(
    logs: &mut LogQueryServiceClient<tonic::transport::Channel>,
) -> std::collections::HashMap<String, u64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let at = |seconds| Some(wxpush_proto::Timestamp { seconds, nanos: 0 });
    let stats = logs
        .get_stats(GetStatsRequest {
            time_range: Some(TimeRange {
                start: at(now - 3600),
                end: at(now + 3600),
            }),
            bucket_seconds: 7200,
            group_by: StatsGroupBy::Status as i32,
            filter: None,
        })
        .await
        .unwrap()
        .into_inner();
    stats
        .series
        .into_iter()
        .map(|s| (s.group, s.points.iter().map(|p| p.count).sum()))
        .collect()
}
