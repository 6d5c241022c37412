//! The consent ledger end to end (`wxpush dev`'s wiring): the sandbox
//! pushes a Mini Program user's pop-up answer to the suite's callback
//! endpoint (safe mode, JSON), delivery's ledger counts it, `GetConsent`
//! reads it, and a template with `consent: enforce` refuses a message to a
//! user with nothing left, without calling WeChat.

mod common;

use common::{Harness, status_to};
use std::time::{Duration, Instant};
use wechat_sandbox::{Answer, AnswerEvent};
use wxpush_delivery::consent::ConsentMetrics;
use wxpush_proto::v1::*;

const SUBSCRIBE_PATH: &str = "/cgi-bin/message/subscribe/send";
const APP: &str = "wx_demo_mp";
const TEMPLATE_ID: &str = "MP_ORDER_STATUS_p8Qx";

/// `order_status` again as `key`, with `consent`.
async fn template_with(h: &Harness, key: &str, consent: ConsentMode) {
    h.copy_template("order_status", key, |t| t.consent = consent as i32)
        .await
        .unwrap();
}

async fn consent(h: &Harness, openid: &str) -> Vec<TemplateConsent> {
    h.delivery()
        .get_consent(GetConsentRequest {
            app_id: APP.into(),
            openid: openid.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .consents
}

/// Waits until the ledger holds `left` accepts for the user (pushes are
/// read asynchronously).
async fn accepts_become(h: &Harness, openid: &str, left: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = consent(h, openid).await;
        if now.first().map(|c| c.accepts_left) == Some(left) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "consent is {now:?}, not {left} left"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn subscribe_calls(h: &Harness) -> u64 {
    let counters = h.admin.counters().await.unwrap();
    counters.api_calls.get(SUBSCRIBE_PATH).copied().unwrap_or(0)
}

/// The user answers; a second apart from any earlier answer (two identical
/// pushes in one second are one push by WeChat's dedup rule, FromUserName +
/// CreateTime: the sandbox's clock moves on).
async fn answer(h: &Harness, openid: &str, status: &str, event: AnswerEvent) {
    h.admin.advance_clock(1).await.unwrap();
    let pushed = h
        .admin
        .answer_subscription(&Answer {
            appid: APP.into(),
            openid: openid.into(),
            template_id: TEMPLATE_ID.into(),
            status: status.into(),
            event,
        })
        .await
        .unwrap()
        .expect("the app has a callback URL");
    assert!(pushed.answered, "{pushed:?}");
}

/// `wxpush <args> --addr <suite>` as a process: its stdout (exit 0).
async fn wxpush(h: &Harness, args: &[&str]) -> String {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_wxpush"));
    cmd.args(args).args(["--addr", &h.suite.grpc_url()]);
    let out = tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enforce_refuses_without_consent_and_one_accept_lets_one_message_out() {
    let h = Harness::start_with_callbacks().await;
    template_with(&h, "order_status_enforced", ConsentMode::Enforce).await;
    let mut req = status_to("o_demo_subscriber");
    req.template_key = "order_status_enforced".into();

    // The ledger knows nothing of this user yet: refused here.
    let calls = subscribe_calls(&h).await;
    let r = h.send(req.clone()).await;
    assert_eq!(r.status, DeliveryStatus::Failed as i32, "{r:?}");
    assert_eq!(r.errcode, 43101);
    assert!(r.errmsg.contains("consent"), "{}", r.errmsg);
    assert_eq!(subscribe_calls(&h).await, calls, "WeChat was called");

    // The user accepts the pop-up: one message goes out, the next is refused.
    answer(&h, "o_demo_subscriber", "accept", AnswerEvent::Popup).await;
    accepts_become(&h, "o_demo_subscriber", 1).await;
    let shown = wxpush(
        &h,
        &["consent", "--app", APP, "--openid", "o_demo_subscriber"],
    )
    .await;
    assert!(
        shown.contains(TEMPLATE_ID) && shown.contains("accepts_left=1"),
        "{shown}"
    );
    let r = h.send(req.clone()).await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    assert_eq!(subscribe_calls(&h).await, calls + 1);
    accepts_become(&h, "o_demo_subscriber", 0).await;
    let r = h.send(req.clone()).await;
    assert_eq!(r.status, DeliveryStatus::Failed as i32, "{r:?}");
    assert_eq!(subscribe_calls(&h).await, calls + 1, "WeChat was called");
    assert_eq!(
        ConsentMetrics::global().refusals(APP, "order_status_enforced"),
        2
    );

    // Two accepts, then the user turns it off in the settings: nothing left.
    answer(&h, "o_demo_subscriber", "accept", AnswerEvent::Popup).await;
    answer(&h, "o_demo_subscriber", "accept", AnswerEvent::Popup).await;
    accepts_become(&h, "o_demo_subscriber", 2).await;
    answer(&h, "o_demo_subscriber", "reject", AnswerEvent::Change).await;
    accepts_become(&h, "o_demo_subscriber", 0).await;
    assert!(consent(&h, "o_demo_subscriber").await[0].rejected);
    let r = h.send(req).await;
    assert_eq!(r.status, DeliveryStatus::Failed as i32, "{r:?}");
    h.suite.shutdown().await;
}

#[tokio::test]
async fn observe_records_consent_and_lets_wechat_decide() {
    let h = Harness::start_with_callbacks().await;
    // No consent known, but observe: WeChat is asked (the sandbox user has
    // consents of its own), and the send spends nothing it never had.
    let calls = subscribe_calls(&h).await;
    let r = h.send(status_to("o_demo_subscriber")).await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    assert_eq!(subscribe_calls(&h).await, calls + 1);
    // A user without consent at WeChat: WeChat's own 43101.
    let r = h.send(status_to("o_demo_no_consent")).await;
    assert_eq!(
        (r.status, r.errcode),
        (DeliveryStatus::Failed as i32, 43101)
    );
    assert!(
        !r.errmsg.contains("wxpush"),
        "WeChat's answer: {}",
        r.errmsg
    );
    // The user accepts the pop-up (at WeChat too): counted, and spent by
    // the next send.
    answer(&h, "o_demo_no_consent", "accept", AnswerEvent::Popup).await;
    accepts_become(&h, "o_demo_no_consent", 1).await;
    let r = h.send(status_to("o_demo_no_consent")).await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    accepts_become(&h, "o_demo_no_consent", 0).await;
    assert_eq!(ConsentMetrics::global().refusals(APP, "order_status"), 0);
    h.suite.shutdown().await;
}

/// Only a subscribe message touches the consent ledger. Every SENT
/// template message used to spend a Redis round trip after WeChat's answer
/// on a "take" that could only find nothing (issue 12's Redis commands per
/// message). On a fresh Redis the take script is known to Redis only once
/// a send ran it.
#[tokio::test]
async fn only_subscribe_messages_spend_from_the_consent_ledger() {
    use wxpush_server::config::{BackendKind, BackendSettings};
    let redis = wxpush_testkit::RedisServer::start();
    let mut opts = wxpush::SuiteOptions::demo_on_free_ports();
    opts.delivery.backend = BackendSettings {
        kind: BackendKind::Redis,
        redis_url: redis.url(),
        key_prefix: "wxpush:".into(),
        ..Default::default()
    };
    let h = Harness::start_with(opts).await;
    let conn = wxpush_redis::connect(&redis.url(), wxpush_redis::Timeouts::Commands).unwrap();
    let take = wxpush_delivery::consent::redis::take_script_sha();
    let take_ran = || {
        let (mut conn, take) = (conn.clone(), take.clone());
        async move {
            let known: Vec<bool> = ::redis::cmd("SCRIPT")
                .arg("EXISTS")
                .arg(&take)
                .query_async(&mut conn)
                .await
                .unwrap();
            known[0]
        }
    };
    for _ in 0..3 {
        h.sent(common::shipped_to("o_demo_follower")).await;
    }
    assert!(!take_ran().await, "a template message spent a consent");
    h.sent(status_to("o_demo_subscriber")).await;
    assert!(take_ran().await, "a subscribe message spends one");
    h.suite.shutdown().await;
}
