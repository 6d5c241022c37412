//! Fault injection over real HTTP: errcodes for N calls, probability, latency, 5xx, refused connections.

mod common;

use std::time::{Duration, Instant};

use common::*;
use wechat_sandbox::{Fault, Outage};

const SEND: &str = "/cgi-bin/message/template/send";

#[tokio::test]
async fn errcode_for_exactly_n_calls() {
    let env = start().await;
    let token = env.token(OA, OA_SECRET).await;
    let fault = Fault {
        path: SEND.into(),
        errcode: Some(-1),
        times: Some(3),
        ..Fault::default()
    };
    env.admin.set_fault(&fault).await.unwrap();
    for _ in 0..3 {
        let v = env
            .send_template(&token, &oa_message("o_demo_follower"))
            .await;
        assert_eq!(errcode(&v), -1);
        assert_eq!(v["errmsg"], "system error");
    }
    assert_eq!(
        errcode(
            &env.send_template(&token, &oa_message("o_demo_follower"))
                .await
        ),
        0
    );
    // Other paths were never affected.
    env.token(OA, OA_SECRET).await;
    let c = env.admin.counters().await.unwrap();
    assert_eq!(c.api_calls[SEND], 4, "faulted calls are counted too");
    assert_eq!(c.messages_sent, 1);
}

#[tokio::test]
async fn probability_one_always_applies_until_cleared() {
    let env = start().await;
    let fault = Fault {
        path: "*".into(),
        errcode: Some(45009),
        errmsg: Some("custom quota".into()),
        probability: Some(1.0),
        ..Fault::default()
    };
    env.admin.set_fault(&fault).await.unwrap();
    for _ in 0..5 {
        let v = env.fetch_token(OA, OA_SECRET).await;
        assert_eq!(errcode(&v), 45009);
        assert_eq!(v["errmsg"], "custom quota");
    }
    env.admin.clear_faults().await.unwrap();
    assert_eq!(errcode(&env.fetch_token(OA, OA_SECRET).await), 0);
}

#[tokio::test]
async fn latency_delays_the_answer() {
    let env = start().await;
    env.admin
        .set_fault(&Fault {
            path: "/cgi-bin/token".into(),
            latency_ms: 300,
            ..Fault::default()
        })
        .await
        .unwrap();
    let started = Instant::now();
    let v = env.fetch_token(OA, OA_SECRET).await;
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert!(
        v["access_token"].is_string(),
        "latency alone does not change the answer"
    );
}

#[tokio::test]
async fn http5xx_outage_answers_that_status() {
    let env = start().await;
    let fault = Fault {
        path: SEND.into(),
        outage: Some(Outage::Http5xx { status: 503 }),
        times: Some(1),
        ..Fault::default()
    };
    env.admin.set_fault(&fault).await.unwrap();
    let url = format!("{}{SEND}?access_token=x", env.api);
    let resp = env.http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 503);
    let resp = env.http.post(&url).body("{}").send().await.unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn refuse_outage_breaks_connections_until_cleared() {
    let env = start().await;
    let url = format!(
        "{}/cgi-bin/token?grant_type=client_credential&appid={OA}&secret={OA_SECRET}",
        env.api
    );
    // A pooled keep-alive connection exists before the outage.
    assert_eq!(env.http.get(&url).send().await.unwrap().status(), 200);
    env.admin
        .set_fault(&Fault {
            outage: Some(Outage::Refuse),
            ..Fault::default()
        })
        .await
        .unwrap();
    let pooled = env.http.get(&url).send().await;
    assert!(pooled.is_err(), "pooled client must fail during the outage");
    let fresh = reqwest::Client::new().get(&url).send().await.unwrap_err();
    assert!(fresh.is_connect(), "new connections are refused: {fresh:?}");

    env.admin.clear_faults().await.unwrap();
    let v: serde_json::Value = env
        .http
        .get(&url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(v["access_token"].is_string());
    // Reset also ends a refuse outage.
    env.admin
        .set_fault(&Fault {
            outage: Some(Outage::Refuse),
            ..Fault::default()
        })
        .await
        .unwrap();
    assert!(env.http.get(&url).send().await.is_err());
    env.admin.reset().await.unwrap();
    assert_eq!(env.http.get(&url).send().await.unwrap().status(), 200);
    env.sandbox.shutdown().await;
    assert!(
        reqwest::Client::new().get(&url).send().await.is_err(),
        "shut down"
    );
}

#[tokio::test]
async fn admin_rejects_bad_input_with_400() {
    let env = start().await;
    let admin = env.sandbox.admin_url();
    let post =
        |path: &str, body: &'static str| env.http.post(format!("{admin}{path}")).body(body).send();
    let resp = post("/admin/faults", "{nope").await.unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("invalid JSON"));
    assert_eq!(
        post("/admin/faults", r#"{"probability":1.5}"#)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post("/admin/faults", r#"{"outage":{"http5xx":{"status":200}}}"#)
            .await
            .unwrap()
            .status(),
        400
    );
    assert_eq!(
        post("/admin/clock/advance", r#"{"secs":-1}"#)
            .await
            .unwrap()
            .status(),
        400
    );
    assert!(
        env.admin
            .set_fault(&Fault {
                path: "relative".into(),
                ..Fault::default()
            })
            .await
            .is_err()
    );
}
