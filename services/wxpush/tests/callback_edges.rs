//! WeChat's pushes at the edges, in `wxpush dev` and on the five-process
//! production topology: what no one but WeChat can send is refused, and a
//! receipt that arrives before its message is SENT is applied when it is.

mod common;
mod topology;

use common::{Harness, logged_as, sent_via, shipped_to};
use std::time::{Duration, Instant};
use topology::Topology;
use wxpush_proto::v1::delivery_service_client::DeliveryServiceClient;
use wxpush_proto::v1::log_query_service_client::LogQueryServiceClient;
use wxpush_proto::v1::*;

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
    let h = Harness::start_with_callbacks().await;
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
    let h = Harness::start_with_callbacks().await;
    let base = format!("http://{}/wechat/callback", h.suite.callbacks_addr.unwrap());
    let mut logs = h.logs();
    a_receipt_before_its_sent_is_applied(
        &base,
        &h.suite.callback_apps,
        async || h.sent(shipped_to("o_demo_follower")).await,
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
        async || sent_via(&mut delivery.clone(), shipped_to("o_demo_follower")).await,
        &mut logs,
    )
    .await;
}
