//! WeChat's receipts end to end on the memory backends (`wxpush dev`'s
//! wiring): the sandbox pushes each message's receipt to the suite's
//! callback endpoint over HTTP (the official account in plaintext XML, the
//! Mini Program in safe mode with JSON), and the log gives the message its
//! final status: DELIVERED, BLOCKED or UNDELIVERED.

mod common;

use common::{Harness, shipped_to, status_to};
use std::time::{Duration, Instant};
use wxpush::SuiteOptions;
use wxpush_callback::metrics::{CallbackMetrics, Outcome};
use wxpush_logquery::metrics::LogQueryMetrics;
use wxpush_proto::v1::*;

async fn start() -> Harness {
    let mut opts = SuiteOptions::demo_on_free_ports();
    opts.callbacks_listen = Some("127.0.0.1:0".parse().unwrap());
    Harness::start_with(opts).await
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

async fn sent(h: &Harness, req: SendRequest) -> String {
    let r = h.send(req).await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    r.message_id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_ends_as_its_receipt_says() {
    let h = start().await;
    let delivered = sent(&h, shipped_to("o_demo_follower")).await;
    let blocked = sent(&h, shipped_to("o_demo_blocker")).await;
    let undelivered = sent(&h, shipped_to("o_demo_unreachable")).await;
    let subscribe = sent(&h, status_to("o_demo_subscriber")).await;

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
    let pushes = h.admin.pushes().await.unwrap();
    assert_eq!(pushes.len(), 4, "{pushes:?}");
    assert!(
        pushes.iter().all(|p| p.answered && p.attempts == 1),
        "{pushes:?}"
    );
    h.suite.shutdown().await;
}

#[tokio::test]
async fn the_same_receipt_pushed_three_times_changes_nothing() {
    let h = start().await;
    let id = sent(&h, shipped_to("o_demo_follower")).await;
    let first = logged_as(&mut h.logs(), &id, DeliveryStatus::Delivered).await;
    let receipt = h
        .admin
        .pushes()
        .await
        .unwrap()
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

mod topology;

use topology::Topology;
use wechat_sandbox::AdminClient;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;

/// The record of `message_id` in the log at `logs` once its status is
/// `want` (30 s at most: the production log ingests in batches).
async fn logged_as(
    logs: &mut LogQueryServiceClient<tonic::transport::Channel>,
    message_id: &str,
    want: DeliveryStatus,
) -> LogRecord {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let page = logs
            .query_logs(QueryLogsRequest {
                filter: Some(LogFilter {
                    message_id: message_id.into(),
                    ..Default::default()
                }),
                page_size: 1,
                page_token: String::new(),
            })
            .await
            .unwrap()
            .into_inner();
        let last = page.records.into_iter().next();
        if let Some(r) = &last
            && r.status == want as i32
        {
            return last.unwrap();
        }
        assert!(
            Instant::now() < deadline,
            "{message_id} is {:?} in the log, not {want:?}",
            last.map(|r| r.status)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
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
    let mut send = async |req: SendRequest| {
        let r = delivery
            .send(req)
            .await
            .unwrap()
            .into_inner()
            .result
            .unwrap();
        assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
        r.message_id
    };
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

/// What no one but WeChat can send is refused before anything is handed
/// on: a forged signature (403), a ciphertext changed in transit whose
/// signature was made to match (400, it does not decrypt), a 10 MB body
/// (413, unread). `base`: `.../wechat/callback`.
async fn hostile_pushes_are_refused(base: &str, apps: &[wxpush_callback::config::CallbackApp]) {
    use wxpush_wechat::push::crypto::{AesKey, signature};
    let http = reqwest::Client::new();
    let token = |app: &str| {
        apps.iter()
            .find(|a| a.app_id == app)
            .and_then(|a| a.token.as_ref())
            .unwrap()
            .expose()
            .to_string()
    };
    let post = async |app: &str, query: Vec<(&str, String)>, body: String| {
        let r = http
            .post(format!("{base}/{app}"))
            .query(&query)
            .body(body)
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    };
    let receipt = "<xml><ToUserName>gh</ToUserName><FromUserName>o_demo_follower</FromUserName>\
        <CreateTime>1</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event>\
        <MsgID>2000000001</MsgID><Status>failed:user block</Status></xml>";
    let signed = |token: &str| {
        let (ts, nonce) = ("1700000000".to_string(), "123456".to_string());
        let sig = signature(&[token, &ts, &nonce]);
        (ts, nonce, sig)
    };
    // A forged signature.
    let (ts, nonce, _) = signed(&token("wx_demo_oa"));
    let forged = vec![
        ("signature", "0".repeat(40)),
        ("timestamp", ts),
        ("nonce", nonce),
    ];
    assert_eq!(
        post("wx_demo_oa", forged, receipt.into()).await,
        (403, "bad_signature".into())
    );
    // 10 MB, correctly signed.
    let (ts, nonce, sig) = signed(&token("wx_demo_oa"));
    let query = vec![("signature", sig), ("timestamp", ts), ("nonce", nonce)];
    let huge = format!("<xml>{}</xml>", "x".repeat(10 * 1024 * 1024));
    // Answered 413 unread; the answer may close the connection while the
    // body is still being written, which the client sees as a broken pipe.
    match http
        .post(format!("{base}/wx_demo_oa"))
        .query(&query)
        .body(huge)
        .send()
        .await
    {
        Ok(r) => assert_eq!(r.status().as_u16(), 413),
        Err(e) => assert!(e.is_request(), "{e:?}"),
    }
    // Safe mode: a ciphertext changed in transit. Its msg_signature no
    // longer holds (403); made to match by someone who knows the Token but
    // not the key, it does not open as a push (400: undecryptable, or the
    // garbled plaintext unreadable).
    let mp = apps.iter().find(|a| a.app_id == "wx_demo_mp").unwrap();
    let key = AesKey::from_encoding_aes_key(mp.aes_key.as_ref().unwrap().expose()).unwrap();
    let original = key.encrypt(receipt.as_bytes(), "wx_demo_mp", [7; 16]);
    let mut tampered = original.clone().into_bytes();
    tampered[30] = if tampered[30] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let token_mp = token("wx_demo_mp");
    let safe = |encrypt_signed: &str, encrypt_sent: &str| {
        let (ts, nonce, sig) = signed(&token_mp);
        let msg_signature = signature(&[&token_mp, &ts, &nonce, encrypt_signed]);
        let query = vec![
            ("signature", sig),
            ("timestamp", ts),
            ("nonce", nonce),
            ("encrypt_type", "aes".to_string()),
            ("msg_signature", msg_signature),
        ];
        let body = serde_json::json!({"ToUserName": "gh", "Encrypt": encrypt_sent}).to_string();
        (query, body)
    };
    let (query, body) = safe(&original, &tampered);
    assert_eq!(
        post("wx_demo_mp", query, body).await,
        (403, "bad_signature".into())
    );
    let (query, body) = safe(&tampered, &tampered);
    let (status, reason) = post("wx_demo_mp", query, body).await;
    assert_eq!(status, 400, "{reason}");
    assert!(
        ["undecryptable", "unreadable", "other_app"].contains(&reason.as_str()),
        "{reason}"
    );
    // The original, as WeChat sent it, is taken.
    let (query, body) = safe(&original, &original);
    assert_eq!(
        post("wx_demo_mp", query, body).await,
        (200, "success".into())
    );
}

#[tokio::test]
async fn hostile_pushes_are_refused_in_wxpush_dev() {
    let h = start().await;
    let base = format!("http://{}/wechat/callback", h.suite.callbacks_addr.unwrap());
    hostile_pushes_are_refused(&base, &h.suite.callback_apps).await;
    h.suite.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_pushes_are_refused_on_the_production_backends() {
    let t = Topology::start_with_callbacks().await;
    let (base, apps) = t.callbacks.as_ref().unwrap();
    hostile_pushes_are_refused(base, apps).await;
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

/// A receipt for the msgid the sandbox will give the next message (its
/// first: 2000000001), pushed as WeChat would (plaintext, signed) before
/// that message is sent: it waits, and is applied once the message is
/// SENT. Its CreateTime is an hour ahead, so the sandbox's own receipt for
/// the message (made now) is older and changes nothing: the record's time
/// shows which receipt it holds.
async fn a_receipt_before_its_sent_is_applied(
    base: &str,
    apps: &[wxpush_callback::config::CallbackApp],
    send: impl AsyncFnOnce() -> String,
    logs: &mut LogQueryServiceClient<tonic::transport::Channel>,
) {
    use wxpush_wechat::push::crypto::signature;
    let token = apps
        .iter()
        .find(|a| a.app_id == "wx_demo_oa")
        .and_then(|a| a.token.as_ref())
        .unwrap()
        .expose()
        .to_string();
    let ahead = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        + 3600;
    let body = format!(
        "<xml><ToUserName>gh_wx_demo_oa</ToUserName><FromUserName>o_demo_follower</FromUserName>\
         <CreateTime>{ahead}</CreateTime><MsgType>event</MsgType><Event>TEMPLATESENDJOBFINISH</Event>\
         <MsgID>2000000001</MsgID><Status>success</Status></xml>"
    );
    let (ts, nonce) = ("1700000000", "42");
    let answer = reqwest::Client::new()
        .post(format!("{base}/wx_demo_oa"))
        .query(&[
            ("signature", signature(&[&token, ts, nonce]).as_str()),
            ("timestamp", ts),
            ("nonce", nonce),
        ])
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let id = send().await;
    // The sandbox's own receipt may be applied first; the early one is
    // read again when the log's reader is next idle, and wins (newer).
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = logged_as(logs, &id, DeliveryStatus::Delivered).await;
        assert_eq!(r.wechat_msgid, "2000000001");
        if r.updated_at.map(|t| t.seconds) == Some(ahead) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the early receipt was not applied: {r:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn in_wxpush_dev_a_receipt_before_its_sent_is_applied() {
    let h = start().await;
    let base = format!("http://{}/wechat/callback", h.suite.callbacks_addr.unwrap());
    let mut logs = h.logs();
    a_receipt_before_its_sent_is_applied(
        &base,
        &h.suite.callback_apps,
        async || sent(&h, shipped_to("o_demo_follower")).await,
        &mut logs,
    )
    .await;
    h.suite.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_the_production_backends_a_receipt_before_its_sent_is_applied() {
    let t = Topology::start_with_callbacks().await;
    let (base, apps) = t.callbacks.as_ref().unwrap();
    let mut logs = LogQueryServiceClient::new(t.channel("logquery").await);
    let delivery = DeliveryServiceClient::new(t.channel("delivery").await);
    a_receipt_before_its_sent_is_applied(
        base,
        apps,
        async || {
            let r = delivery
                .clone()
                .send(shipped_to("o_demo_follower"))
                .await
                .unwrap()
                .into_inner()
                .result
                .unwrap();
            assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
            r.message_id
        },
        &mut logs,
    )
    .await;
}
