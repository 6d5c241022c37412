//! Issue acceptance for the token service: replicas on one real Redis, the
//! WeChat sandbox counting every fetch.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::time::{Duration, Instant};
use tonic::Code;
use wechat_sandbox::TokenRules;
use wxpush_proto::v1::*;
use wxpush_testkit::RedisServer;
use wxpush_token::TokenMode;

fn get() -> GetAccessTokenRequest {
    GetAccessTokenRequest { app_id: APP.into() }
}

fn invalidate(bad: &str) -> InvalidateAccessTokenRequest {
    InvalidateAccessTokenRequest {
        app_id: APP.into(),
        bad_token: bad.into(),
    }
}

/// Long-lived tokens, forced refreshes allowed back to back.
fn long_rules() -> TokenRules {
    TokenRules {
        force_refresh_min_interval_secs: 0,
        force_refresh_daily_limit: 1_000,
        ..Default::default()
    }
}

async fn sleep_until(t: Instant) {
    tokio::time::sleep_until(t.into()).await;
}

async fn three_replicas_fetch_once_per_expiry_and_callers_never_wait(redis_url: &str) {
    common::logs();
    // Tokens live 6 s; WeChat renews a stable token in its last 3.5 s; the
    // replicas refresh when less than 3 s is left.
    let (sb, admin) = sandbox(TokenRules {
        expires_in_secs: 6,
        stable_renew_window_secs: 4,
        ..long_rules()
    })
    .await;
    let replicas = Replica::several(3, redis_url, &sb.api_url()).await;
    let first = replicas[0].token().await;
    let t0 = Instant::now();
    wechat_sandbox::install_crypto_provider();
    let http = reqwest::Client::new();
    let mut seen = BTreeSet::from([first.access_token.clone()]);

    for cycle in 1..=2u64 {
        // Start just before the margin is reached and spread 1 000 calls over
        // the moment the refresh happens.
        let refresh_at = t0 + Duration::from_secs(3 * cycle);
        sleep_until(refresh_at - Duration::from_millis(500)).await;
        let calls = (0..1000).map(|i| {
            let mut client = replicas[i % 3].client.clone();
            async move {
                tokio::time::sleep(Duration::from_millis((i % 100) as u64 * 14)).await;
                client.get_access_token(get()).await
            }
        });
        let results = futures_util::future::join_all(calls).await;
        let mut this_cycle = BTreeSet::new();
        for r in results {
            this_cycle.insert(
                r.expect("every call gets a token")
                    .into_inner()
                    .access_token,
            );
        }
        // Each token handed out works at WeChat (checked while it is young).
        for token in &this_cycle {
            assert!(
                sandbox_accepts(&http, &sb.api_url(), token).await,
                "a handed-out token was rejected"
            );
        }
        seen.extend(this_cycle);
        sleep_until(refresh_at + Duration::from_millis(1300)).await;
        let counters = admin.counters().await.unwrap();
        assert_eq!(
            counters.token_fetches.get(APP).copied(),
            Some(1 + cycle),
            "exactly one fetch per expiry after cycle {cycle}: {counters:?}"
        );
        assert_eq!(
            counters.new_tokens_issued.get(APP).copied(),
            Some(1 + cycle)
        );
    }
    assert_eq!(seen.len(), 3, "the calls straddled both refreshes");
    let mut secrets: Vec<String> = seen.into_iter().collect();
    secrets.push(SECRET.into());
    assert_not_logged(&secrets);
}

async fn a_hundred_invalidations_refresh_once_and_a_stale_report_refreshes_nothing(
    redis_url: &str,
) {
    common::logs();
    let (sb, admin) = sandbox(long_rules()).await;
    let replicas = Replica::several(3, redis_url, &sb.api_url()).await;
    let bad = replicas[1].token().await.access_token;
    for r in &replicas {
        assert_eq!(
            r.client
                .clone()
                .get_access_token(get())
                .await
                .unwrap()
                .into_inner()
                .access_token,
            bad
        );
    }
    let issued_before = admin.counters().await.unwrap().new_tokens_issued[APP];

    let calls = (0..100).map(|i| {
        let mut client = replicas[i % 3].client.clone();
        let bad = bad.clone();
        async move { client.invalidate_access_token(invalidate(&bad)).await }
    });
    let fresh: BTreeSet<String> = futures_util::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.expect("invalidation answers").into_inner().access_token)
        .collect();
    assert_eq!(fresh.len(), 1, "every caller got the same new token");
    let new = fresh.into_iter().next().unwrap();
    assert_ne!(new, bad);
    assert_eq!(
        admin.counters().await.unwrap().new_tokens_issued[APP],
        issued_before + 1
    );

    // A late report about the old token: no refresh, the current token back.
    let late = replicas[2]
        .client
        .clone()
        .invalidate_access_token(invalidate(&bad))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(late.access_token, new);
    assert_eq!(
        admin.counters().await.unwrap().new_tokens_issued[APP],
        issued_before + 1
    );
    assert_not_logged(&[bad, new, SECRET.into()]);
}

async fn the_daily_budget_stops_fetches_before_they_reach_wechat(redis_url: &str) {
    common::logs();
    let (sb, admin) = sandbox(long_rules()).await;
    let settings = wxpush_token::RefreshSettings {
        daily_fetch_budget: 3,
        ..fast_settings()
    };
    let replica = Replica::start(redis_url, &sb.api_url(), app(TokenMode::Token), settings).await;
    let mut client = replica.client.clone();
    let mut token = client
        .get_access_token(get())
        .await
        .unwrap()
        .into_inner()
        .access_token;
    for _ in 0..2 {
        token = client
            .invalidate_access_token(invalidate(&token))
            .await
            .unwrap()
            .into_inner()
            .access_token;
    }
    assert_eq!(admin.counters().await.unwrap().token_fetches[APP], 3);
    let err = client
        .invalidate_access_token(invalidate(&token))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("budget of 3"), "{}", err.message());
    assert!(wxpush_server::status::retry_delay(&err).is_some());
    assert_eq!(
        admin.counters().await.unwrap().token_fetches[APP],
        3,
        "no fetch past the budget"
    );
    let registry = wxpush_metrics::SharedRegistry::new();
    registry.register_with(|r| replica.cache.metrics().register(r));
    let metrics = registry.encode();
    for line in [
        r#"wxpush_token_fetches_total{app_id="wx_token_test",result="ok"} 3"#,
        r#"wxpush_token_fetches_total{app_id="wx_token_test",result="budget_exhausted"} 1"#,
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
    assert!(metrics.contains("wxpush_token_expires_at_seconds{app_id=\"wx_token_test\"}"));
    let status = client
        .get_token_status(GetTokenStatusRequest { app_id: APP.into() })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert_eq!(status.refreshes_today, 3);
    assert_eq!(status.token_mode, "token");
}

#[tokio::test]
async fn a_redis_outage_serves_the_local_copy_and_recovers() {
    common::logs();
    let mut redis = RedisServer::start();
    let (sb, _admin) = sandbox(long_rules()).await;
    let a = Replica::start(
        &redis.url(),
        &sb.api_url(),
        app(TokenMode::StableToken),
        fast_settings(),
    )
    .await;
    let b = Replica::start(
        &redis.url(),
        &sb.api_url(),
        app(TokenMode::StableToken),
        fast_settings(),
    )
    .await;
    let token = a.token().await.access_token;
    assert_eq!(
        b.client
            .clone()
            .get_access_token(get())
            .await
            .unwrap()
            .into_inner()
            .access_token,
        token
    );

    redis.stop();
    for r in [&a, &b] {
        for _ in 0..20 {
            let got = r
                .client
                .clone()
                .get_access_token(get())
                .await
                .expect("served from the local copy");
            assert_eq!(got.into_inner().access_token, token);
        }
    }

    // Redis comes back empty: the replicas share their copy again, and a
    // refresh by one reaches the other through Redis.
    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let new = loop {
        match a
            .client
            .clone()
            .invalidate_access_token(invalidate(&token))
            .await
        {
            Ok(r) => break r.into_inner().access_token,
            Err(e) if Instant::now() < deadline => {
                assert_eq!(e.code(), Code::Unavailable, "{e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("no recovery after the Redis restart: {e:?}"),
        }
    };
    assert_ne!(new, token);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let got = b.token().await.access_token;
        if got == new {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "replica b never picked up the shared token"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_not_logged(&[token, new, SECRET.into()]);
}

#[tokio::test]
async fn an_expired_copy_during_an_outage_is_unavailable_with_a_clear_message() {
    common::logs();
    let mut redis = RedisServer::start();
    let (sb, _admin) = sandbox(TokenRules {
        expires_in_secs: 3,
        stable_renew_window_secs: 1,
        ..long_rules()
    })
    .await;
    let settings = wxpush_token::RefreshSettings {
        margin_secs: 1,
        ..fast_settings()
    };
    let r = Replica::start(
        &redis.url(),
        &sb.api_url(),
        app(TokenMode::StableToken),
        settings,
    )
    .await;
    let token = r.token().await.access_token;
    redis.stop();
    tokio::time::sleep(Duration::from_millis(3300)).await;
    let err = r.client.clone().get_access_token(get()).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(
        err.message().contains("token backend is unreachable"),
        "{}",
        err.message()
    );
    assert!(!err.message().contains(&token));

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match r.client.clone().get_access_token(get()).await {
            Ok(t) => {
                assert_ne!(t.into_inner().access_token, token);
                break;
            }
            Err(e) => {
                assert!(Instant::now() < deadline, "no recovery: {e:?}");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

#[tokio::test]
async fn transient_fetch_errors_are_retried_with_backoff() {
    common::logs();
    let redis = RedisServer::start();
    let (sb, admin) = sandbox(long_rules()).await;
    admin
        .set_fault(&wechat_sandbox::Fault {
            path: "/cgi-bin/stable_token".into(),
            errcode: Some(-1),
            times: Some(2),
            ..Default::default()
        })
        .await
        .unwrap();
    let r = Replica::start(
        &redis.url(),
        &sb.api_url(),
        app(TokenMode::StableToken),
        fast_settings(),
    )
    .await;
    let token = r
        .client
        .clone()
        .get_access_token(get())
        .await
        .expect("third attempt succeeds");
    assert!(!token.into_inner().access_token.is_empty());
    let counters = admin.counters().await.unwrap();
    assert_eq!(
        counters.api_calls.get("/cgi-bin/stable_token").copied(),
        Some(3),
        "{counters:?}"
    );
    assert_eq!(counters.new_tokens_issued[APP], 1);
}

/// The replicas' shared cases on one Redis and on a three-master Redis
/// Cluster (the token, its lock and the fetch counter are single keys).
macro_rules! on_node_and_cluster {
    ($($case:ident),* $(,)?) => {
        mod on_node {
            $(#[tokio::test]
            async fn $case() {
                let redis = wxpush_testkit::RedisServer::start();
                super::$case(&redis.url()).await;
            })*
        }
        mod on_cluster {
            $(#[tokio::test]
            async fn $case() {
                let cluster = wxpush_testkit::RedisCluster::start();
                super::$case(&cluster.url()).await;
            })*
        }
    };
}

on_node_and_cluster!(
    three_replicas_fetch_once_per_expiry_and_callers_never_wait,
    a_hundred_invalidations_refresh_once_and_a_stale_report_refreshes_nothing,
    the_daily_budget_stops_fetches_before_they_reach_wechat,
);
