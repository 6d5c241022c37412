//! The sandbox pushes to an app's callback URL as WeChat does: a receipt
//! after each template message, with the user's outcome, sent again when
//! the answer is not `success`; a pop-up answer on an admin call.

mod common;

use common::*;
use serde_json::json;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use wechat_sandbox::{Answer, AnswerEvent, CallbackConfig, UserReceipt, demo_config};
use wxpush_wechat::push::crypto::signature;
use wxpush_wechat::push::{Push, PushEvent, ReceiptOutcome};

/// A callback URL that answers `fail` (HTTP 500) to its first `failures`
/// calls, then `success`; it keeps every call's query and body.
async fn callback_server(failures: u32) -> (String, Arc<Mutex<Vec<(String, String)>>>) {
    let calls = Arc::new(AtomicU32::new(0));
    let seen: Arc<Mutex<Vec<(String, String)>>> = Arc::default();
    let (c, s) = (calls.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/cb",
        axum::routing::post(move |q: axum::extract::RawQuery, body: String| {
            let (c, s) = (c.clone(), s.clone());
            async move {
                s.lock().unwrap().push((q.0.unwrap_or_default(), body));
                if c.fetch_add(1, Ordering::SeqCst) < failures {
                    (axum::http::StatusCode::INTERNAL_SERVER_ERROR, "fail")
                } else {
                    (axum::http::StatusCode::OK, "success")
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/cb"), seen)
}

async fn pushes_settle(env: &Env, n: usize) -> Vec<wechat_sandbox::PushRecord> {
    for _ in 0..100 {
        let pushes = env.admin.pushes().await.unwrap();
        if pushes.len() >= n {
            return pushes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("fewer than {n} pushes within 5 s")
}

#[tokio::test]
async fn a_receipt_follows_a_send_and_is_sent_again_until_answered_success() {
    let (url, seen) = callback_server(2).await;
    let mut config = demo_config();
    config.apps[0].callback = Some(CallbackConfig {
        url,
        token: "tok123".into(),
        ..Default::default()
    });
    assert_eq!(
        config.apps[0].user("o_demo_blocker").unwrap().receipt,
        UserReceipt::UserBlock
    );
    let env = start_with(config).await;
    let token = env.token(OA, OA_SECRET).await;
    let sent = env
        .post(
            &format!("/cgi-bin/message/template/send?access_token={token}"),
            &json!({"touser": "o_demo_blocker", "template_id": OA_TEMPLATE, "data": {}}),
        )
        .await;
    assert_eq!(sent["errcode"], 0, "{sent}");
    let pushes = pushes_settle(&env, 1).await;
    assert_eq!(pushes[0].attempts, 3, "{pushes:?}");
    assert!(pushes[0].answered);
    assert_eq!(pushes[0].msgid, sent["msgid"].as_u64());
    // Each call is the same push, signed with the app's Token.
    let calls = seen.lock().unwrap().clone();
    assert_eq!(calls.len(), 3);
    assert!(calls.iter().all(|c| c == &calls[0]));
    let (query, body) = &calls[0];
    // Digits, hex and the openid: nothing percent-encoded.
    let q: std::collections::HashMap<&str, &str> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .collect();
    assert_eq!(
        q["signature"],
        signature(&["tok123", q["timestamp"], q["nonce"]])
    );
    let push = Push::parse(body.as_bytes()).unwrap();
    assert_eq!(push.openid, "o_demo_blocker");
    assert_eq!(
        push.event,
        PushEvent::TemplateReceipt {
            msg_id: sent["msgid"].to_string(),
            outcome: ReceiptOutcome::Blocked
        }
    );
}

#[tokio::test]
async fn a_pop_up_answer_changes_the_consents_and_is_pushed() {
    let (url, seen) = callback_server(0).await;
    let mut config = demo_config();
    config.apps[1].callback = Some(CallbackConfig {
        url,
        token: "tok123".into(),
        ..Default::default()
    });
    let env = start_with(config).await;
    let send = async |env: &Env| {
        let token = env.token(MP, MP_SECRET).await;
        let body = json!({"touser": "o_demo_no_consent", "template_id": MP_TEMPLATE,
            "data": {"character_string1": {"value": "SF1"}, "thing2": {"value": "已发货"},
                     "amount3": {"value": "¥1.00"}}});
        env.post(
            &format!("/cgi-bin/message/subscribe/send?access_token={token}"),
            &body,
        )
        .await["errcode"]
            .as_i64()
            .unwrap()
    };
    assert_eq!(send(&env).await, 43101);
    let record = env
        .admin
        .answer_subscription(&Answer {
            appid: MP.into(),
            openid: "o_demo_no_consent".into(),
            template_id: MP_TEMPLATE.into(),
            status: "accept".into(),
            event: AnswerEvent::Popup,
        })
        .await
        .unwrap()
        .expect("pushed");
    assert!(record.answered && record.attempts == 1);
    let push = Push::parse(seen.lock().unwrap()[0].1.as_bytes()).unwrap();
    match push.event {
        PushEvent::SubscribePopup { items } => {
            assert_eq!(items[0].template_id, MP_TEMPLATE);
            assert_eq!(items[0].status, "accept");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(send(&env).await, 0, "one accept, one message");
    assert_eq!(send(&env).await, 43101);
    let bad = env
        .admin
        .answer_subscription(&Answer {
            appid: MP.into(),
            openid: "o_demo_no_consent".into(),
            template_id: MP_TEMPLATE.into(),
            status: "maybe".into(),
            event: AnswerEvent::Popup,
        })
        .await;
    assert!(bad.unwrap_err().to_string().contains("accept or reject"));
}
