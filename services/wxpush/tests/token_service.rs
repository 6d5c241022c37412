//! The token service over real gRPC against the sandbox: caching, CAS
//! invalidation, and clear errors for unknown apps and wrong secrets.

mod common;

use common::Harness;
use tonic::Code;
use wxpush::SuiteOptions;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;
use wxpush_server::config::Secret;
use wxpush_token::AppSpec;

#[tokio::test]
async fn tokens_are_cached_and_invalidated_only_when_still_current() {
    let h = Harness::start().await;
    let mut tokens = TokenServiceClient::new(h.channel.clone());
    let get = || GetAccessTokenRequest {
        app_id: "wx_demo_oa".into(),
    };

    let first = tokens.get_access_token(get()).await.unwrap().into_inner();
    for _ in 0..20 {
        let again = tokens.get_access_token(get()).await.unwrap().into_inner();
        assert_eq!(again.access_token, first.access_token);
    }
    let counters = h.admin.counters().await.unwrap();
    assert_eq!(
        counters.token_fetches.get("wx_demo_oa"),
        Some(&1),
        "{counters:?}"
    );

    // A report about the current token refreshes it (force, since the stable
    // API keeps returning the same token); the sandbox issues a new one.
    let fresh = tokens
        .invalidate_access_token(InvalidateAccessTokenRequest {
            app_id: "wx_demo_oa".into(),
            bad_token: first.access_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_ne!(fresh.access_token, first.access_token);
    // A late report about the old token changes nothing.
    let same = tokens
        .invalidate_access_token(InvalidateAccessTokenRequest {
            app_id: "wx_demo_oa".into(),
            bad_token: first.access_token.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(same.access_token, fresh.access_token);
    let issued = h.admin.counters().await.unwrap().new_tokens_issued["wx_demo_oa"];
    assert_eq!(issued, 2, "one initial token and one forced refresh");

    let status = tokens
        .get_token_status(GetTokenStatusRequest {
            app_id: "wx_demo_oa".into(),
        })
        .await
        .unwrap()
        .into_inner()
        .status
        .unwrap();
    assert!(status.has_token);
    assert_eq!(status.token_mode, "stable_token");
    assert!(status.refreshes_today >= 2);
    let apps = tokens
        .list_apps(ListAppsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .apps;
    let ids: Vec<&str> = apps.iter().map(|a| a.app_id.as_str()).collect();
    assert_eq!(ids, ["wx_demo_mp", "wx_demo_oa"]);
    h.suite.shutdown().await;
}

#[tokio::test]
async fn unknown_app_and_missing_app_id_are_clear_errors() {
    let h = Harness::start().await;
    let mut tokens = TokenServiceClient::new(h.channel.clone());
    let err = tokens
        .get_access_token(GetAccessTokenRequest {
            app_id: "wx_nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::NotFound);
    assert!(err.message().contains("wx_nope"));
    let err = tokens
        .get_access_token(GetAccessTokenRequest::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(
        wxpush_server::status::field_violations(&err)[0].field,
        "app_id"
    );
    h.suite.shutdown().await;
}

#[tokio::test]
async fn a_wrong_secret_is_failed_precondition_with_the_errcode_and_no_secret() {
    let wrong = "definitely-not-the-secret-9d1e";
    let mut opts = SuiteOptions::demo_on_free_ports();
    opts.apps = vec![AppSpec {
        app_id: "wx_demo_oa".into(),
        secret: Some(Secret::new(wrong)),
        ..Default::default()
    }];
    let h = Harness::start_with(opts).await;
    let mut tokens = TokenServiceClient::new(h.channel.clone());
    let err = tokens
        .get_access_token(GetAccessTokenRequest {
            app_id: "wx_demo_oa".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition, "{err:?}");
    assert!(err.message().contains("40125"), "{}", err.message());
    assert!(!err.message().contains(wrong));

    // A send through delivery reports the same upstream error, also secret-free.
    let send = h
        .delivery()
        .send(common::shipped_to("o_demo_follower"))
        .await
        .unwrap_err();
    assert_eq!(send.code(), Code::FailedPrecondition);
    assert!(
        send.message().starts_with("token service:"),
        "{}",
        send.message()
    );
    assert!(!send.message().contains(wrong));
    h.suite.shutdown().await;
}
