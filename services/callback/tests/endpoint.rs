//! The callback endpoint on a real socket, called as WeChat calls it:
//! URL verification, plaintext and safe-mode pushes (sealed by an
//! independent implementation, Python's `cryptography`), WeChat's repeats
//! handed on once, and every refusal — bad signature, unknown app, a
//! tampered ciphertext, a message for another app, a 10 MB body — counted
//! and never handed on. The Redis hand-off on one node and on a cluster.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::sync::Arc;
use wxpush_callback::config::AppKeys;
use wxpush_callback::endpoint::Endpoint;
use wxpush_callback::handoff::{HandedOn, MEMORY_KEEPS, MemoryPushes, PushSink, RedisSink};
use wxpush_callback::metrics::{CallbackMetrics, Outcome};
use wxpush_server::config::Secret;
use wxpush_wechat::push::crypto::{AesKey, signature};
use wxpush_wechat::push::{Push, PushEvent, ReceiptOutcome};

const TOKEN: &str = "callback-token-9f2c";
const KEY: &str = "kWxPEV2UEDyxWpmPdKC3F4dgPDmOvfKX1HGnEUDS1aR";

fn receipt(msg_id: &str, status: &str) -> String {
    format!(
        "<xml><ToUserName><![CDATA[gh_demo]]></ToUserName><FromUserName><![CDATA[o_demo_follower]]></FromUserName>\
         <CreateTime>1764500000</CreateTime><MsgType><![CDATA[event]]></MsgType>\
         <Event><![CDATA[TEMPLATESENDJOBFINISH]]></Event><MsgID>{msg_id}</MsgID>\
         <Status><![CDATA[{status}]]></Status></xml>"
    )
}

/// Runs `tests/wechat_crypto.py` (Python `cryptography`).
fn python(command: &str, app_id: &str, input: &[u8]) -> (bool, Vec<u8>) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/wechat_crypto.py");
    let mut child = Command::new("python3")
        .args([script, command, KEY, app_id])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 (scripts/install-test-tools.sh installs cryptography)");
    use std::io::Write;
    child.stdin.take().unwrap().write_all(input).unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status.success(), out.stdout)
}

struct Wechat {
    base: String,
    sink: Arc<MemoryPushes>,
    http: reqwest::Client,
}

impl Wechat {
    /// The endpoint for `wx_cb_demo` (safe mode) and `wx_cb_plain`
    /// (plaintext, no key) on a free port.
    async fn start() -> Self {
        let sink = MemoryPushes::new(MEMORY_KEEPS);
        let keys = AppKeys {
            token: Secret::new(TOKEN),
            aes: Some(AesKey::from_encoding_aes_key(KEY).unwrap()),
        };
        let plain = AppKeys {
            token: Secret::new(TOKEN),
            aes: None,
        };
        let endpoint = Arc::new(Endpoint {
            apps: HashMap::from([
                ("wx_cb_demo".to_string(), keys),
                ("wx_cb_plain".to_string(), plain),
            ]),
            sink: sink.clone(),
            max_body_bytes: wxpush_callback::config::MAX_BODY_BYTES,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}/wechat/callback", listener.local_addr().unwrap());
        tokio::spawn(wxpush_callback::serve(
            endpoint,
            listener,
            std::future::pending(),
        ));
        // reqwest is built without a TLS provider of its own (plain HTTP here).
        let _ = rustls::crypto::ring::default_provider().install_default();
        Self {
            base,
            sink,
            http: reqwest::Client::new(),
        }
    }

    /// POSTs `body` for `app`, signed with `token` (and in safe mode the
    /// `Encrypt` value signed too); status and body.
    async fn push(
        &self,
        app: &str,
        token: &str,
        body: &str,
        encrypt: Option<&str>,
    ) -> (u16, String) {
        let (timestamp, nonce) = ("1764500001", "84217");
        let mut query = vec![
            ("signature", signature(&[token, timestamp, nonce])),
            ("timestamp", timestamp.into()),
            ("nonce", nonce.into()),
        ];
        if let Some(e) = encrypt {
            query.push(("encrypt_type", "aes".into()));
            query.push(("msg_signature", signature(&[token, timestamp, nonce, e])));
        }
        let r = self
            .http
            .post(format!("{}/{app}", self.base))
            .query(&query)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    fn receipts(&self) -> Vec<(String, ReceiptOutcome)> {
        self.sink
            .records()
            .into_iter()
            .filter_map(|r| match r.push.event {
                PushEvent::TemplateReceipt { msg_id, outcome } => Some((msg_id, outcome)),
                _ => None,
            })
            .collect()
    }
}

fn count(outcome: Outcome) -> u64 {
    let m = CallbackMetrics::global();
    m.get("wx_cb_demo", outcome) + m.get("wx_cb_plain", outcome)
}

#[tokio::test]
async fn url_verification_answers_the_echostr_only_to_a_good_signature() {
    let w = Wechat::start().await;
    let get = |sig: String| {
        w.http
            .get(format!("{}/wx_cb_demo", w.base))
            .query(&[
                ("signature", sig.as_str()),
                ("timestamp", "1"),
                ("nonce", "2"),
                ("echostr", "e-123"),
            ])
            .send()
    };
    let ok = get(signature(&[TOKEN, "1", "2"])).await.unwrap();
    assert_eq!(
        (ok.status().as_u16(), ok.text().await.unwrap()),
        (200, "e-123".into())
    );
    let bad = get(signature(&["other-token", "1", "2"])).await.unwrap();
    assert_eq!(bad.status().as_u16(), 403);
    assert!(!bad.text().await.unwrap().contains("e-123"));
}

#[tokio::test]
async fn a_plaintext_receipt_is_handed_on_once_however_often_wechat_sends_it() {
    let w = Wechat::start().await;
    let repeated_before = count(Outcome::Repeated);
    for _ in 0..3 {
        let answer = w
            .push(
                "wx_cb_plain",
                TOKEN,
                &receipt("2001", "failed:user block"),
                None,
            )
            .await;
        assert_eq!(answer, (200, "success".into()));
    }
    assert_eq!(
        w.receipts(),
        [("2001".to_string(), ReceiptOutcome::Blocked)]
    );
    assert!(count(Outcome::Repeated) >= repeated_before + 2);
}

#[tokio::test]
async fn a_safe_mode_push_sealed_by_another_implementation_is_opened() {
    let w = Wechat::start().await;
    let (ok, sealed) = python(
        "encrypt",
        "wx_cb_demo",
        receipt("3001", "success").as_bytes(),
    );
    assert!(ok, "python encrypt");
    let sealed = String::from_utf8(sealed).unwrap();
    let body = format!(
        "<xml><ToUserName>gh_demo</ToUserName><Encrypt><![CDATA[{sealed}]]></Encrypt></xml>"
    );
    assert_eq!(
        w.push("wx_cb_demo", TOKEN, &body, Some(&sealed)).await,
        (200, "success".into())
    );
    assert_eq!(
        w.receipts(),
        [("3001".to_string(), ReceiptOutcome::Delivered)]
    );

    // And the reverse: what the service seals, Python opens.
    let ours = AesKey::from_encoding_aes_key(KEY).unwrap().encrypt(
        b"<xml>ok</xml>",
        "wx_cb_demo",
        [9; 16],
    );
    assert_eq!(
        python("decrypt", "wx_cb_demo", ours.as_bytes()),
        (true, b"<xml>ok</xml>".to_vec())
    );
    assert!(
        !python("decrypt", "wx_other", ours.as_bytes()).0,
        "the appid inside is checked"
    );
}

#[tokio::test]
async fn forged_tampered_foreign_and_oversized_pushes_are_refused_and_counted() {
    let w = Wechat::start().await;
    let body = receipt("4001", "success");
    let before: Vec<u64> = Outcome::ALL.iter().map(|o| count(*o)).collect();

    assert_eq!(
        w.push("wx_cb_demo", "not-the-token", &body, None).await.0,
        403
    );
    assert_eq!(w.push("wx_nobody", TOKEN, &body, None).await.0, 404);

    let (_, sealed) = python("encrypt", "wx_cb_demo", body.as_bytes());
    let mut tampered = String::from_utf8(sealed).unwrap().into_bytes();
    tampered[40] = if tampered[40] == b'A' { b'B' } else { b'A' };
    let tampered = String::from_utf8(tampered).unwrap();
    let envelope = |e: &str| format!("<xml><Encrypt><![CDATA[{e}]]></Encrypt></xml>");
    assert_eq!(
        w.push("wx_cb_demo", TOKEN, &envelope(&tampered), Some(&tampered))
            .await
            .0,
        400
    );

    let (_, foreign) = python("encrypt", "wx_other", body.as_bytes());
    let foreign = String::from_utf8(foreign).unwrap();
    let answer = w
        .push("wx_cb_demo", TOKEN, &envelope(&foreign), Some(&foreign))
        .await;
    assert_eq!(answer, (400, "other_app".into()));

    let (_, sealed) = python("encrypt", "wx_cb_demo", body.as_bytes());
    let sealed = String::from_utf8(sealed).unwrap();
    let forged = w
        .push(
            "wx_cb_demo",
            TOKEN,
            &envelope(&sealed),
            Some("another value"),
        )
        .await;
    assert_eq!(forged.0, 403, "msg_signature must cover the Encrypt value");

    let huge = "x".repeat(10 * 1024 * 1024);
    assert_eq!(w.push("wx_cb_demo", TOKEN, &huge, None).await.0, 413);
    assert_eq!(w.push("wx_cb_plain", TOKEN, "not xml", None).await.0, 400);

    assert!(w.sink.records().is_empty(), "nothing refused was handed on");
    let grew: Vec<&str> = Outcome::ALL
        .iter()
        .zip(&before)
        .filter(|(o, b)| count(**o) > **b)
        .map(|(o, _)| o.reason())
        .collect();
    for reason in [
        "bad_signature",
        "undecryptable",
        "other_app",
        "too_large",
        "unreadable",
    ] {
        assert!(grew.contains(&reason), "{reason} counted: {grew:?}");
    }
    assert!(CallbackMetrics::global().get("", Outcome::UnknownApp) >= 1);
}

async fn hands_on_once(url: &str) {
    let sink = RedisSink::open(url, "t:").unwrap();
    let push = Push::parse(receipt("5001", "success").as_bytes()).unwrap();
    let record = HandedOn::new("wx_cb_demo", b"raw", push, 1);
    assert!(sink.hand_on(&record).await.unwrap(), "first time");
    assert!(!sink.hand_on(&record).await.unwrap(), "a repeat");
    let mut conn = wxpush_redis::connect(url, wxpush_redis::Timeouts::Commands).unwrap();
    let len: u64 = redis::cmd("XLEN")
        .arg(wxpush_events::callbacks::stream_key("t:"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(len, 1);
}

#[tokio::test]
async fn the_redis_hand_off_keeps_each_push_once_on_a_node_and_a_cluster() {
    let node = wxpush_testkit::RedisServer::start();
    hands_on_once(&node.url()).await;
    let cluster = wxpush_testkit::RedisCluster::start();
    hands_on_once(&cluster.url()).await;
}

#[tokio::test]
async fn an_app_with_a_key_takes_no_unsigned_plaintext_body() {
    let w = Wechat::start().await;
    // A valid URL signature (as a leaked URL would carry) with a plaintext
    // body: refused, since nothing signs the body.
    let answer = w
        .push("wx_cb_demo", TOKEN, &receipt("6001", "success"), None)
        .await;
    assert_eq!(answer, (403, "bad_signature".into()));
    assert!(w.sink.records().is_empty());
}
