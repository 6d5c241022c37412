//! Template and subscribe message sending: validation, client_msg_id dedup, consent
//! consumption, and the record of every delivered message that tests query.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::config::{AppConfig, AppKind, SandboxConfig};
use crate::errcode::WxError;
use crate::rules;

/// A message the sandbox accepted, as the admin API reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReceivedMessage {
    /// The app that sent it.
    pub appid: String,
    /// `"template"` or `"subscribe"`.
    pub api: String,
    /// The recipient.
    pub openid: String,
    /// The template used.
    pub template_id: String,
    /// The caller's idempotency key, if any.
    pub client_msg_id: Option<String>,
    /// The msgid answered to the caller.
    pub msgid: u64,
    /// The full request body.
    pub body: Value,
    /// When it arrived, in sandbox-clock milliseconds since the epoch.
    pub received_at_ms: u64,
}

/// A filter on recorded messages; `None` fields match everything.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct MessageQuery {
    /// Only messages with this client_msg_id.
    pub client_msg_id: Option<String>,
    /// Only messages to this openid.
    pub openid: Option<String>,
    /// Only messages from this app.
    pub appid: Option<String>,
}

impl MessageQuery {
    /// Whether a message passes the filter.
    pub fn matches(&self, m: &ReceivedMessage) -> bool {
        let ok = |f: &Option<String>, v: Option<&str>| f.as_deref().is_none_or(|f| Some(f) == v);
        ok(&self.client_msg_id, m.client_msg_id.as_deref())
            && ok(&self.openid, Some(&m.openid))
            && ok(&self.appid, Some(&m.appid))
    }
}

/// Which send API a request came through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SendApi {
    /// `/cgi-bin/message/template/send` (official accounts).
    Template,
    /// `/cgi-bin/message/subscribe/send` (mini programs).
    Subscribe,
}

/// Delivered messages, dedup keys and the consents users have left.
#[derive(Debug)]
pub struct MessageStore {
    /// The newest `keep` messages (the counters count them all).
    messages: std::collections::VecDeque<ReceivedMessage>,
    keep: usize,
    /// (appid, openid, client_msg_id) → (msgid, first seen ms).
    dedup: HashMap<(String, String, String), (u64, u64)>,
    /// (appid, openid, template_id) → one-time consents left.
    consents: HashMap<(String, String, String), u32>,
    next_msgid: u64,
}

impl MessageStore {
    /// A store with the consents of `config`; msgids continue from `first_msgid`.
    pub fn new(config: &SandboxConfig, first_msgid: u64) -> Self {
        let mut consents = HashMap::new();
        for app in &config.apps {
            for user in &app.users {
                for (tpl, n) in &user.subscriptions {
                    consents.insert((app.appid.clone(), user.openid.clone(), tpl.clone()), *n);
                }
            }
        }
        Self {
            messages: Default::default(),
            keep: config.keep_messages.max(1),
            dedup: HashMap::new(),
            consents,
            next_msgid: first_msgid,
        }
    }

    /// The next msgid this store would hand out (kept across resets so msgids stay unique).
    pub fn next_msgid(&self) -> u64 {
        self.next_msgid
    }

    /// A user's answer to a subscription pop-up (or a later change): an
    /// accept of a one-time template allows one more message, a reject none.
    pub fn answer(
        &mut self,
        appid: &str,
        openid: &str,
        template_id: &str,
        accept: bool,
        one_time: bool,
    ) {
        let left = self
            .consents
            .entry((appid.into(), openid.into(), template_id.into()))
            .or_default();
        match (accept, one_time) {
            (true, true) => *left = left.saturating_add(1),
            (true, false) => {}
            (false, _) => *left = 0,
        }
    }

    /// Recorded messages matching `q`, oldest first.
    pub fn query(&self, q: &MessageQuery) -> Vec<ReceivedMessage> {
        self.messages
            .iter()
            .filter(|m| q.matches(m))
            .cloned()
            .collect()
    }

    /// Validates and records one send request; returns the msgid to answer and whether a new
    /// message was recorded (false for a client_msg_id repeat inside the dedup window).
    pub fn send(
        &mut self,
        api: SendApi,
        app: &AppConfig,
        raw_body: &[u8],
        now_ms: u64,
        dedup_window_secs: u64,
    ) -> Result<(u64, bool), WxError> {
        let wanted = match api {
            SendApi::Template => AppKind::OfficialAccount,
            SendApi::Subscribe => AppKind::MiniProgram,
        };
        if app.kind != wanted {
            return Err(WxError::code(48001));
        }
        let body: Value = serde_json::from_slice(raw_body).map_err(|_| WxError::code(47001))?;
        if !body.is_object() {
            return Err(WxError::code(47001));
        }
        let str_field = |k: &str| body.get(k).and_then(Value::as_str);
        let template_id = str_field("template_id").unwrap_or_default();
        let template = app.template(template_id).ok_or(WxError::code(40037))?;
        let openid = str_field("touser").unwrap_or_default();
        let user = app.user(openid).ok_or(WxError::code(40003))?;
        let client_msg_id = str_field("client_msg_id").filter(|s| !s.is_empty());

        if let Some(id) = client_msg_id {
            let key = (app.appid.clone(), openid.to_string(), id.to_string());
            if let Some(&(msgid, at)) = self.dedup.get(&key)
                && now_ms < at + dedup_window_secs * 1000
            {
                return Ok((msgid, false));
            }
        }

        let consent_key = (
            app.appid.clone(),
            openid.to_string(),
            template_id.to_string(),
        );
        match api {
            SendApi::Template => {
                if !user.follows {
                    return Err(WxError::code(43004));
                }
                if body.get("data").is_some_and(|d| !d.is_object()) {
                    return Err(WxError::code(47001));
                }
            }
            SendApi::Subscribe => {
                check_subscribe_args(&body, &template.content)?;
                // Long-term templates (type 3) need no consent count: any known user may receive.
                if template.template_type != 3
                    && self.consents.get(&consent_key).copied().unwrap_or(0) == 0
                {
                    return Err(WxError::code(43101));
                }
            }
        }

        if api == SendApi::Subscribe
            && template.template_type != 3
            && let Some(left) = self.consents.get_mut(&consent_key)
        {
            *left -= 1;
        }
        let msgid = self.next_msgid;
        self.next_msgid += 1;
        if let Some(id) = client_msg_id {
            // Keys past their window are forgotten once the map grows, so
            // it holds about what the window holds.
            if self.dedup.len() >= 2 * self.keep {
                let window_ms = dedup_window_secs * 1000;
                self.dedup.retain(|_, (_, at)| now_ms < *at + window_ms);
            }
            self.dedup.insert(
                (app.appid.clone(), openid.to_string(), id.to_string()),
                (msgid, now_ms),
            );
        }
        if self.messages.len() == self.keep {
            self.messages.pop_front();
        }
        self.messages.push_back(ReceivedMessage {
            appid: app.appid.clone(),
            api: match api {
                SendApi::Template => "template",
                SendApi::Subscribe => "subscribe",
            }
            .to_string(),
            openid: openid.to_string(),
            template_id: template_id.to_string(),
            client_msg_id: client_msg_id.map(str::to_string),
            msgid,
            body,
            received_at_ms: now_ms,
        });
        Ok((msgid, true))
    }
}

fn invalid(msg: impl AsRef<str>) -> WxError {
    WxError::new(47003, format!("argument invalid! {}", msg.as_ref()))
}

/// The 47003 checks of a subscribe request: state, lang, and every data field against its rule.
fn check_subscribe_args(body: &Value, content: &str) -> Result<(), WxError> {
    if let Some(state) = body.get("miniprogram_state")
        && !matches!(state.as_str(), Some("developer" | "trial" | "formal"))
    {
        return Err(invalid("miniprogram_state is invalid"));
    }
    if let Some(lang) = body.get("lang")
        && !matches!(lang.as_str(), Some("zh_CN" | "en_US" | "zh_HK" | "zh_TW"))
    {
        return Err(invalid("lang is invalid"));
    }
    let empty = serde_json::Map::new();
    let data = match body.get("data") {
        None => &empty,
        Some(Value::Object(map)) => map,
        Some(_) => return Err(invalid("data is not an object")),
    };
    let fields = rules::placeholders(content);
    for key in data.keys() {
        if !fields.iter().any(|f| f == key) {
            return Err(invalid(format!(
                "data.{key} is not a field of the template"
            )));
        }
    }
    for field in &fields {
        let value = data
            .get(field)
            .ok_or_else(|| invalid(format!("data.{field}.value is missing")))?
            .get("value")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid(format!("data.{field}.value is missing")))?;
        rules::check_field(field, value)
            .map_err(|reason| invalid(format!("data.{field}.value {reason}")))?;
    }
    Ok(())
}
