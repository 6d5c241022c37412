//! WeChat's pushes to an app's callback URL (`wechat-api.md`, "Server
//! push"), as WeChat sends them: a `TEMPLATESENDJOBFINISH` receipt after
//! each template message (its `Status` from the user's [`UserReceipt`]), a
//! `subscribe_msg_sent_event` after each subscribe message, and the
//! subscription pop-up and change events an admin call triggers; in
//! plaintext, compatible or safe mode, XML or (Mini Programs) JSON, signed
//! with the app's `Token`; sent again up to 3 times when the answer is not
//! `success` (or empty) within 5 s.
//!
//! Every push and what became of it is kept for the admin API.

use rand::Rng;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use wxpush_wechat::push::crypto::{AesKey, signature};

/// WeChat waits this long for an answer.
pub const ANSWER_WITHIN: Duration = Duration::from_secs(5);
/// Tries after the first when the answer is not `success`.
pub const RETRIES: u32 = 3;

/// An app's callback URL and how WeChat talks to it.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CallbackConfig {
    /// The server URL set in the console, e.g.
    /// `https://push.example.com/wechat/callback/wx123`.
    pub url: String,
    /// The `Token` set in the console (signs every push).
    pub token: String,
    /// The 43-character `EncodingAESKey` (compatible and safe modes).
    pub encoding_aes_key: String,
    pub mode: PushMode,
    pub format: PushFormat,
    /// `ToUserName`: the account's original id (default `gh_` + appid).
    pub original_id: String,
    /// How long after a send its receipt is pushed.
    pub delay_ms: u64,
}

/// Plaintext, compatible (both forms) or safe (encrypted) mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PushMode {
    #[default]
    Plaintext,
    Compatible,
    Safe,
}

/// XML, or JSON (Mini Programs only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PushFormat {
    #[default]
    Xml,
    Json,
}

/// What a template message to this user ends as (its receipt's `Status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum UserReceipt {
    /// `success`.
    #[default]
    Success,
    /// `failed:user block`: the user refused the account's messages.
    UserBlock,
    /// `failed: system failed`.
    SystemFailed,
}

impl UserReceipt {
    /// The receipt's `Status` text.
    pub fn status(self) -> &'static str {
        match self {
            UserReceipt::Success => "success",
            UserReceipt::UserBlock => "failed:user block",
            UserReceipt::SystemFailed => "failed: system failed",
        }
    }
}

impl CallbackConfig {
    /// Refuses what WeChat's console would.
    pub fn validate(&self, appid: &str, mini_program: bool) -> Result<(), String> {
        if !self.url.starts_with("http://") && !self.url.starts_with("https://") {
            return Err(format!("app {appid}: callback.url must be an http(s) URL"));
        }
        if self.token.len() < 3 || self.token.len() > 32 {
            return Err(format!(
                "app {appid}: callback.token must be 3 to 32 characters"
            ));
        }
        if self.mode != PushMode::Plaintext
            && AesKey::from_encoding_aes_key(&self.encoding_aes_key).is_err()
        {
            return Err(format!(
                "app {appid}: callback.encoding_aes_key must be 43 base64 characters in {:?} mode",
                self.mode
            ));
        }
        if self.format == PushFormat::Json && !mini_program {
            return Err(format!(
                "app {appid}: callback.format json is for mini programs only"
            ));
        }
        Ok(())
    }

    fn account(&self, appid: &str) -> String {
        if self.original_id.is_empty() {
            format!("gh_{appid}")
        } else {
            self.original_id.clone()
        }
    }
}

/// A value of a push's message.
#[derive(Debug, Clone)]
pub enum Value {
    Text(String),
    Number(i64),
    /// A subscription event's items, under the list's name.
    List(Vec<Vec<(&'static str, Value)>>),
}

/// One push: its event name and fields after the common ones.
#[derive(Debug, Clone)]
pub struct Message {
    pub openid: String,
    pub event: &'static str,
    pub fields: Vec<(&'static str, Value)>,
}

impl Message {
    /// The message in `format` from `account` at `create_time`.
    fn render(&self, format: PushFormat, account: &str, create_time: i64) -> String {
        let mut all = vec![
            ("ToUserName", Value::Text(account.into())),
            ("FromUserName", Value::Text(self.openid.clone())),
            ("CreateTime", Value::Number(create_time)),
            ("MsgType", Value::Text("event".into())),
            ("Event", Value::Text(self.event.into())),
        ];
        all.extend(self.fields.iter().cloned());
        match format {
            PushFormat::Xml => format!("<xml>{}</xml>", xml(&all)),
            PushFormat::Json => json(&all).to_string(),
        }
    }
}

fn xml(fields: &[(&str, Value)]) -> String {
    fields
        .iter()
        .map(|(name, v)| match v {
            Value::Text(t) => format!("<{name}><![CDATA[{t}]]></{name}>"),
            Value::Number(n) => format!("<{name}>{n}</{name}>"),
            Value::List(items) => {
                let items: String = items
                    .iter()
                    .map(|item| format!("<List>{}</List>", xml(item)))
                    .collect();
                format!("<{name}>{items}</{name}>")
            }
        })
        .collect()
}

fn json(fields: &[(&str, Value)]) -> serde_json::Value {
    let map = fields
        .iter()
        .map(|(name, v)| {
            let v = match v {
                Value::Text(t) => serde_json::Value::String(t.clone()),
                Value::Number(n) => serde_json::Value::from(*n),
                Value::List(items) => serde_json::json!({
                    "List": items.iter().map(|i| json(i)).collect::<Vec<_>>()
                }),
            };
            (name.to_string(), v)
        })
        .collect();
    serde_json::Value::Object(map)
}

/// A push ready to send: the URL's query and the body.
#[derive(Debug, Clone)]
pub struct Sealed {
    pub query: Vec<(&'static str, String)>,
    pub body: String,
}

/// Signs (and in compatible or safe mode encrypts) `message` for `appid`.
pub fn seal(cfg: &CallbackConfig, appid: &str, message: &Message, now_secs: i64) -> Sealed {
    let mut rng = rand::rng();
    let timestamp = now_secs.to_string();
    let nonce = rng.random_range(100_000_000u64..10_000_000_000).to_string();
    let account = cfg.account(appid);
    let plain = message.render(cfg.format, &account, now_secs);
    let mut query = vec![
        (
            "signature",
            signature(&[cfg.token.as_str(), &timestamp, &nonce]),
        ),
        ("timestamp", timestamp.clone()),
        ("nonce", nonce.clone()),
        ("openid", message.openid.clone()),
    ];
    if cfg.mode == PushMode::Plaintext {
        return Sealed { query, body: plain };
    }
    let key = AesKey::from_encoding_aes_key(&cfg.encoding_aes_key).expect("validated at start");
    let encrypt = key.encrypt(plain.as_bytes(), appid, rng.random());
    query.push(("encrypt_type", "aes".into()));
    query.push((
        "msg_signature",
        signature(&[cfg.token.as_str(), &timestamp, &nonce, &encrypt]),
    ));
    let body = match (cfg.mode, cfg.format) {
        (PushMode::Compatible, PushFormat::Xml) => plain.replacen(
            "</xml>",
            &format!("<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"),
            1,
        ),
        (PushMode::Compatible, PushFormat::Json) => {
            let mut v: serde_json::Value = serde_json::from_str(&plain).expect("rendered JSON");
            v["Encrypt"] = encrypt.into();
            v.to_string()
        }
        (_, PushFormat::Xml) => format!(
            "<xml><ToUserName><![CDATA[{account}]]></ToUserName><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
        ),
        (_, PushFormat::Json) => {
            serde_json::json!({"ToUserName": account, "Encrypt": encrypt}).to_string()
        }
    };
    Sealed { query, body }
}

/// What became of one push, for the admin API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PushRecord {
    /// Names the push for `POST /admin/pushes/repeat`.
    pub id: u64,
    pub appid: String,
    pub openid: String,
    /// The `Event`.
    pub event: String,
    /// The message it is about (receipts and sent events).
    pub msgid: Option<u64>,
    /// Calls made (1 + retries).
    pub attempts: u32,
    /// Answered `success` (or empty) in time.
    pub answered: bool,
    /// The last answer: `HTTP 200: success`, `timeout`, a connection error.
    pub last_answer: String,
}

/// A push made: its record, and the request to send again on demand.
#[derive(Debug, Clone)]
pub struct KeptPush {
    pub record: PushRecord,
    pub url: String,
    pub sealed: Sealed,
}

/// Posts `sealed` to `url` until answered `success` (or empty) within
/// [`ANSWER_WITHIN`], at most 1 + [`RETRIES`] times; returns the calls made,
/// whether it was answered, and the last answer.
pub async fn deliver(http: &reqwest::Client, url: &str, sealed: &Sealed) -> (u32, bool, String) {
    let mut last = String::new();
    for attempt in 1..=1 + RETRIES {
        let call = http
            .post(url)
            .query(&sealed.query)
            .body(sealed.body.clone())
            .timeout(ANSWER_WITHIN)
            .send();
        match call.await {
            Ok(resp) => {
                let status = resp.status();
                let text = resp.text().await.unwrap_or_default();
                let text = text.trim();
                if status.is_success() && (text.is_empty() || text == "success") {
                    return (attempt, true, format!("HTTP {}: {text}", status.as_u16()));
                }
                last = format!("HTTP {}: {text}", status.as_u16());
            }
            Err(e) if e.is_timeout() => last = "timeout".into(),
            Err(e) => last = format!("connection: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200 * u64::from(attempt))).await;
    }
    (1 + RETRIES, false, last)
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_wechat::push::{Push, PushEvent, ReceiptOutcome};

    fn receipt() -> Message {
        Message {
            openid: "o1".into(),
            event: "TEMPLATESENDJOBFINISH",
            fields: vec![
                ("MsgID", Value::Number(42)),
                (
                    "Status",
                    Value::Text(UserReceipt::UserBlock.status().into()),
                ),
            ],
        }
    }

    fn config(mode: PushMode, format: PushFormat) -> CallbackConfig {
        CallbackConfig {
            url: "http://x/".into(),
            token: "tok".into(),
            encoding_aes_key: "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG".into(),
            mode,
            format,
            ..Default::default()
        }
    }

    #[test]
    fn every_mode_and_format_reads_back_as_the_receipt() {
        for mode in [PushMode::Plaintext, PushMode::Compatible, PushMode::Safe] {
            for format in [PushFormat::Xml, PushFormat::Json] {
                let cfg = config(mode, format);
                let sealed = seal(&cfg, "wx1", &receipt(), 1_700_000_000);
                let q = |k: &str| {
                    sealed
                        .query
                        .iter()
                        .find(|(n, _)| *n == k)
                        .map(|(_, v)| v.clone())
                };
                let (ts, nonce) = (q("timestamp").unwrap(), q("nonce").unwrap());
                assert_eq!(q("signature").unwrap(), signature(&["tok", &ts, &nonce]));
                let message = if mode == PushMode::Plaintext {
                    sealed.body.clone().into_bytes()
                } else {
                    let encrypt = Push::encrypted(sealed.body.as_bytes()).unwrap();
                    assert_eq!(
                        q("msg_signature").unwrap(),
                        signature(&["tok", &ts, &nonce, &encrypt])
                    );
                    let key = AesKey::from_encoding_aes_key(&cfg.encoding_aes_key).unwrap();
                    key.decrypt(&encrypt, "wx1").unwrap()
                };
                let push = Push::parse(&message).unwrap();
                assert_eq!(push.openid, "o1", "{mode:?} {format:?}");
                assert_eq!(push.account, "gh_wx1");
                assert_eq!(
                    push.event,
                    PushEvent::TemplateReceipt {
                        msg_id: "42".into(),
                        outcome: ReceiptOutcome::Blocked
                    }
                );
            }
        }
    }

    #[test]
    fn what_the_console_refuses_is_refused() {
        let mut cfg = config(PushMode::Safe, PushFormat::Xml);
        assert!(cfg.validate("wx", false).is_ok());
        cfg.encoding_aes_key = "short".into();
        assert!(
            cfg.validate("wx", false)
                .unwrap_err()
                .contains("encoding_aes_key")
        );
        let json = config(PushMode::Plaintext, PushFormat::Json);
        assert!(
            json.validate("wx", false)
                .unwrap_err()
                .contains("mini programs")
        );
        assert!(json.validate("wx", true).is_ok());
    }
}
