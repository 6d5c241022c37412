//! Every log line the suite writes while it fetches tokens, sends, fails and
//! invalidates is captured (at TRACE, every crate) and searched for each
//! access token the sandbox ever issued and each app secret.

mod common;

use common::{Harness, shipped_to, status_to};
use std::io::Write;
use std::sync::{Arc, Mutex};
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn no_token_or_secret_reaches_a_log_line() {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .with_env_filter("trace")
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let h = Harness::start().await;
    let mut delivery = h.delivery();
    delivery.send(shipped_to("o_demo_follower")).await.unwrap();
    delivery
        .send(shipped_to("o_demo_unfollowed"))
        .await
        .unwrap();
    delivery.send(status_to("o_demo_subscriber")).await.unwrap();
    let mut tokens = TokenServiceClient::new(h.channel.clone());
    let t = tokens
        .get_access_token(GetAccessTokenRequest {
            app_id: "wx_demo_oa".into(),
        })
        .await
        .unwrap()
        .into_inner();
    tokens
        .invalidate_access_token(InvalidateAccessTokenRequest {
            app_id: "wx_demo_oa".into(),
            bad_token: t.access_token,
        })
        .await
        .unwrap();
    // A send after the invalidation uses the refreshed token.
    delivery.send(shipped_to("o_demo_follower2")).await.unwrap();

    let issued = h.admin.issued_tokens().await.unwrap();
    assert!(
        issued.len() >= 3,
        "expected several tokens, got {}",
        issued.len()
    );
    let secrets: Vec<String> = wechat_sandbox::demo_config()
        .apps
        .into_iter()
        .map(|a| a.secret)
        .collect();
    h.suite.shutdown().await;

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    // The capture really saw the suite at work, so an empty search proves something.
    assert!(
        logs.contains("delivery attempt"),
        "capture missed the delivery logs"
    );
    assert!(
        logs.contains("fetched access token"),
        "capture missed the token logs"
    );
    assert!(
        logs.contains("access_token=REDACTED"),
        "the WeChat call URL is logged redacted"
    );
    for token in &issued {
        assert!(
            !logs.contains(token.as_str()),
            "an access token leaked into the logs"
        );
    }
    for secret in &secrets {
        assert!(
            !logs.contains(secret.as_str()),
            "an app secret leaked into the logs"
        );
    }
}
