//! `wxpush dev --config`: the user's apps (secret from a file), templates
//! and settings, against a WeChat that is not the embedded sandbox (a
//! second sandbox stands in for the real API); a typo refused by its path.

mod common;

use common::{Harness, shipped_to};
use wechat_sandbox::{AdminClient, MessageQuery, Sandbox};
use wxpush::SuiteOptions;
use wxpush::dev_config::DevConfig;
use wxpush_proto::v1::DeliveryStatus;

#[tokio::test]
async fn a_config_sends_through_another_wechat_with_its_settings() {
    let any = "127.0.0.1:0".parse().unwrap();
    let wechat = Sandbox::start(wechat_sandbox::demo_config(), any, any)
        .await
        .unwrap();
    let dir = std::env::temp_dir().join(format!("wxpush-dev-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("secret"), "demo-oa-secret-7f3a9c\n").unwrap();
    let templates = concat!(env!("CARGO_MANIFEST_DIR"), "/dev/templates.yaml");
    let config = dir.join("dev.yaml");
    std::fs::write(
        &config,
        format!(
            "sandbox:\n  enabled: false\n\
             wechat:\n  base_url: {}\n\
             apps:\n  - app_id: wx_demo_oa\n    kind: official_account\n    secret_file: {}\n\
             templates_file: {templates}\n\
             delivery:\n  rate_limit:\n    per_second: 0.1\n    burst: 1\n",
            wechat.api_url(),
            dir.join("secret").display()
        ),
    )
    .unwrap();
    let opts = DevConfig::load(&config)
        .unwrap()
        .apply(SuiteOptions::demo_on_free_ports())
        .unwrap();
    assert!(opts.sandbox.is_none());
    let h = Harness::start_without_sandbox(opts).await;
    let r = h.send(shipped_to("o_demo_follower")).await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    let received = AdminClient::new(wechat.admin_url())
        .messages(&MessageQuery::default())
        .await
        .unwrap();
    assert_eq!(received.len(), 1, "sent through the configured WeChat");
    assert_eq!(
        received[0].client_msg_id.as_deref(),
        Some(r.message_id.as_str())
    );
    // The configured rate limit (one per 10 s) holds the next one back.
    let refused = h
        .delivery()
        .send(shipped_to("o_demo_follower2"))
        .await
        .unwrap_err();
    assert!(refused.message().contains("rate limit"), "{refused:?}");
    h.suite.shutdown().await;
    wechat.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_typo_is_refused_naming_the_key() {
    let dir = std::env::temp_dir().join(format!("wxpush-dev-typo-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("dev.yaml");
    std::fs::write(&config, "delivery:\n  rate_limt:\n    per_second: 5\n").unwrap();
    let e = DevConfig::load(&config).unwrap_err().to_string();
    assert!(e.contains("delivery.rate_limt"), "{e}");
    std::fs::write(&config, "sandbox:\n  enabled: false\n").unwrap();
    let e = DevConfig::load(&config)
        .unwrap()
        .apply(SuiteOptions::demo_on_free_ports())
        .unwrap_err()
        .to_string();
    assert!(e.contains("apps"), "{e}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_shipped_example_for_a_test_account_loads() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/dev/own-account.yaml");
    let opts = DevConfig::load(std::path::Path::new(example))
        .unwrap()
        .apply(SuiteOptions::demo_on_free_ports())
        .unwrap();
    assert!(opts.sandbox.is_none());
    assert_eq!(opts.wechat.base_url, "https://api.weixin.qq.com");
    assert_eq!(opts.templates.len(), 1);
    assert_eq!(opts.templates[0].key, "my_first");
    assert_eq!(opts.delivery.rate_limit.per_second, 5.0);
}
