//! Access token rules over real HTTP: expiry, grace after refresh, stable tokens, limits.

mod common;

use common::*;
use serde_json::json;
use wechat_sandbox::demo_config;

/// errcode of a template send with `token` (0 = accepted).
async fn probe(env: &Env, token: &str) -> i64 {
    errcode(
        &env.send_template(token, &oa_message("o_demo_follower"))
            .await,
    )
}

#[tokio::test]
async fn token_expires_after_expires_in() {
    let env = start().await;
    let v = env.fetch_token(OA, OA_SECRET).await;
    assert_eq!(v["expires_in"], 7200);
    let token = v["access_token"].as_str().unwrap().to_string();
    assert!(token.len() >= 64);
    assert!(
        token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
    );
    assert_eq!(probe(&env, &token).await, 0);
    env.admin.advance_clock(7199).await.unwrap();
    assert_eq!(probe(&env, &token).await, 0);
    env.admin.advance_clock(1).await.unwrap();
    assert_eq!(probe(&env, &token).await, 42001);
    env.sandbox.shutdown().await;
}

#[tokio::test]
async fn refresh_invalidates_previous_token_after_grace() {
    let env = start().await;
    let old = env.token(OA, OA_SECRET).await;
    let new = env.token(OA, OA_SECRET).await;
    assert_ne!(old, new);
    assert_eq!(probe(&env, &old).await, 0, "old token works within grace");
    env.admin.advance_clock(299).await.unwrap();
    assert_eq!(probe(&env, &old).await, 0);
    env.admin.advance_clock(2).await.unwrap();
    assert_eq!(probe(&env, &old).await, 40001, "old token dead after grace");
    assert_eq!(probe(&env, &new).await, 0);
    let counters = env.admin.counters().await.unwrap();
    assert_eq!(counters.token_fetches[OA], 2);
    assert_eq!(counters.new_tokens_issued[OA], 2);
    let issued = env.admin.issued_tokens().await.unwrap();
    assert_eq!(issued, vec![old, new]);
}

#[tokio::test]
async fn token_fetch_and_check_errors() {
    let env = start().await;
    let e = |v: serde_json::Value| errcode(&v);
    assert_eq!(
        e(env
            .get(&format!(
                "/cgi-bin/token?grant_type=password&appid={OA}&secret={OA_SECRET}"
            ))
            .await),
        40002
    );
    assert_eq!(e(env.fetch_token("wx_nope", OA_SECRET).await), 40013);
    assert_eq!(e(env.fetch_token(OA, "wrong").await), 40125);
    let missing = env
        .post(
            "/cgi-bin/message/template/send",
            &oa_message("o_demo_follower"),
        )
        .await;
    assert_eq!(e(missing), 41001);
    assert_eq!(probe(&env, "not-a-token").await, 40001);
    // A token only works for the app that owns it: an OA token on the mini program API is 48001,
    // and the owning app's users are the only ones known.
    let mp = env.token(MP, MP_SECRET).await;
    assert_eq!(
        e(env.send_template(&mp, &oa_message("o_demo_follower")).await),
        48001
    );
    assert!(
        !env.admin
            .counters()
            .await
            .unwrap()
            .token_fetches
            .contains_key(OA)
    );
}

#[tokio::test]
async fn stable_token_normal_mode_and_renewal_window() {
    let env = start().await;
    let a = env.stable(OA, OA_SECRET, false).await;
    let t = a["access_token"].as_str().unwrap().to_string();
    assert_eq!(a["expires_in"], 7200);
    env.admin.advance_clock(1000).await.unwrap();
    let b = env.stable(OA, OA_SECRET, false).await;
    assert_eq!(b["access_token"], t.as_str(), "same token in normal mode");
    assert_eq!(b["expires_in"], 6200);
    // A /cgi-bin/token fetch does not touch the stable token.
    let plain = env.token(OA, OA_SECRET).await;
    env.token(OA, OA_SECRET).await;
    env.admin.advance_clock(5899).await.unwrap(); // 6899 s old: 301 s left, outside the window
    assert_eq!(
        env.stable(OA, OA_SECRET, false).await["access_token"],
        t.as_str()
    );
    env.admin.advance_clock(2).await.unwrap(); // 299 s left: inside the renewal window
    let renewed = env.stable(OA, OA_SECRET, false).await;
    let t2 = renewed["access_token"].as_str().unwrap().to_string();
    assert_ne!(t2, t);
    assert_eq!(renewed["expires_in"], 7200);
    assert_eq!(
        probe(&env, &t).await,
        0,
        "old stable token valid until its own expiry"
    );
    assert_eq!(
        probe(&env, &plain).await,
        40001,
        "replaced plain token is gone"
    );
    env.admin.advance_clock(300).await.unwrap();
    assert_eq!(probe(&env, &t).await, 42001);
    assert_eq!(probe(&env, &t2).await, 0);
    let c = env.admin.counters().await.unwrap();
    assert_eq!(c.token_fetches[OA], 6);
    assert_eq!(c.new_tokens_issued[OA], 4);
}

#[tokio::test]
async fn stable_token_force_refresh_rules() {
    let mut config = demo_config();
    config.token.force_refresh_daily_limit = 3;
    let env = start_with(config).await;
    // The daily limit counts per Beijing day, and this test moves the clock
    // about 6 minutes: started just before midnight there, the count would
    // reset midway (it once failed so at 15:58 UTC). Start after midnight.
    let of_day = (chrono::Utc::now().timestamp() + 8 * 3600).rem_euclid(86_400);
    if of_day > 86_400 - 900 {
        env.admin
            .advance_clock((86_400 - of_day + 1) as u64)
            .await
            .unwrap();
    }
    let first = env.stable(OA, OA_SECRET, false).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    let forced = env.stable(OA, OA_SECRET, true).await;
    let second = forced["access_token"].as_str().unwrap().to_string();
    assert_ne!(first, second);
    assert_eq!(
        errcode(&env.stable(OA, OA_SECRET, true).await),
        45011,
        "too soon"
    );
    assert_eq!(probe(&env, &first).await, 0, "within grace");
    env.admin.advance_clock(30).await.unwrap();
    let third = env.stable(OA, OA_SECRET, true).await["access_token"]
        .as_str()
        .unwrap()
        .to_string();
    // Normal mode now returns the forced token.
    assert_eq!(
        env.stable(OA, OA_SECRET, false).await["access_token"],
        third.as_str()
    );
    env.admin.advance_clock(271).await.unwrap();
    assert_eq!(probe(&env, &first).await, 40001, "past grace");
    assert_eq!(
        probe(&env, &second).await,
        0,
        "second still within its grace"
    );
    assert_eq!(errcode(&env.stable(OA, OA_SECRET, true).await), 0);
    env.admin.advance_clock(31).await.unwrap();
    assert_eq!(
        errcode(&env.stable(OA, OA_SECRET, true).await),
        45009,
        "daily force limit"
    );
    // Normal mode is not limited by it.
    assert_eq!(errcode(&env.stable(OA, OA_SECRET, false).await), 0);
    env.admin.advance_clock(86_400).await.unwrap();
    assert_eq!(
        errcode(&env.stable(OA, OA_SECRET, true).await),
        0,
        "new Beijing day"
    );
}

#[tokio::test]
async fn daily_token_limit_then_next_day() {
    let mut config = demo_config();
    config.token.daily_token_limit = 3;
    let env = start_with(config).await;
    for _ in 0..3 {
        env.token(OA, OA_SECRET).await;
    }
    let over = env.fetch_token(OA, OA_SECRET).await;
    assert_eq!(errcode(&over), 45009);
    assert!(over.get("access_token").is_none());
    // Other apps have their own quota, stable tokens are not counted.
    env.token(MP, MP_SECRET).await;
    assert_eq!(errcode(&env.stable(OA, OA_SECRET, false).await), 0);
    assert_eq!(env.admin.counters().await.unwrap().token_fetches[OA], 4);
    env.admin.advance_clock(86_400).await.unwrap();
    env.token(OA, OA_SECRET).await;
    let body = json!({"grant_type": "client_credential", "appid": OA});
    assert_eq!(
        errcode(&env.post("/cgi-bin/stable_token", &body).await),
        41004
    );
}
