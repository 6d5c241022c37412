//! When the sandbox pushes to an app's callback URL: after each message it
//! recorded (a template message's receipt, a subscribe message's sent
//! event), and when an admin call answers a user's subscription pop-up or
//! changes the setting later. How a push looks and travels: [`crate::push`].

use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::AppKind;
use crate::messages::SendApi;
use crate::push::{CallbackConfig, KeptPush, Message, PushRecord, Sealed, Value, deliver, seal};
use crate::state::{AppState, PUSHES_KEPT};

/// A message the sandbox just recorded.
#[derive(Debug, Clone)]
pub struct Sent {
    pub api: SendApi,
    pub appid: String,
    pub openid: String,
    pub template_id: String,
    pub msgid: u64,
}

/// Pushes the outcome of `sent` after the app's `delay_ms`, in the
/// background, when the app has a callback URL.
pub fn after_send(state: &Arc<AppState>, sent: Sent) {
    let Some(app) = state.config.app(&sent.appid) else {
        return;
    };
    let Some(cfg) = app.callback.clone() else {
        return;
    };
    let receipt = app
        .user(&sent.openid)
        .map(|u| u.receipt)
        .unwrap_or_default();
    let msgid = sent.msgid.to_string();
    let message = match sent.api {
        SendApi::Template => Message {
            openid: sent.openid,
            event: "TEMPLATESENDJOBFINISH",
            fields: vec![
                ("MsgID", Value::Text(msgid)),
                ("Status", Value::Text(receipt.status().into())),
            ],
        },
        SendApi::Subscribe => {
            let (code, status) = match receipt.status() {
                "success" => (0, "success"),
                other => (-1, other),
            };
            Message {
                openid: sent.openid,
                event: "subscribe_msg_sent_event",
                fields: vec![(
                    "SubscribeMsgSentEvent",
                    Value::List(vec![vec![
                        ("TemplateId", Value::Text(sent.template_id)),
                        ("MsgID", Value::Text(msgid)),
                        ("ErrorCode", Value::Number(code)),
                        ("ErrorStatus", Value::Text(status.into())),
                    ]]),
                )],
            }
        }
    };
    let state = state.clone();
    let appid = sent.appid;
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(cfg.delay_ms)).await;
        push(&state, &appid, &cfg, message, Some(sent.msgid)).await;
    });
}

/// Sends one push and keeps what became of it.
async fn push(
    state: &AppState,
    appid: &str,
    cfg: &CallbackConfig,
    message: Message,
    msgid: Option<u64>,
) -> PushRecord {
    let sealed = seal(cfg, appid, &message, (state.clock.now_ms() / 1000) as i64);
    let record = PushRecord {
        id: 0,
        appid: appid.to_string(),
        openid: message.openid,
        event: message.event.to_string(),
        msgid,
        attempts: 0,
        answered: false,
        last_answer: String::new(),
    };
    send_kept(state, record, &cfg.url, sealed).await
}

/// Makes the same request again (what WeChat does when it was not
/// answered in time), as a push of its own; `None`: no push `id` kept.
pub async fn repeat(state: &AppState, id: u64) -> Option<PushRecord> {
    let kept = state
        .lock()
        .pushes
        .iter()
        .find(|k| k.record.id == id)
        .cloned()?;
    Some(send_kept(state, kept.record, &kept.url, kept.sealed).await)
}

/// Delivers `sealed` and keeps it with `record` (a new id, the outcome).
async fn send_kept(
    state: &AppState,
    mut record: PushRecord,
    url: &str,
    sealed: Sealed,
) -> PushRecord {
    let (attempts, answered, last_answer) = deliver(&state.http, url, &sealed).await;
    if !answered {
        tracing::warn!(appid = %record.appid, event = %record.event, last_answer = %last_answer, "push not answered success");
    }
    let mut inner = state.lock();
    record.id = inner.next_push;
    inner.next_push += 1;
    record.attempts = attempts;
    record.answered = answered;
    record.last_answer = last_answer;
    if inner.pushes.len() == PUSHES_KEPT {
        inner.pushes.pop_front();
    }
    inner.pushes.push_back(KeptPush {
        record: record.clone(),
        url: url.to_string(),
        sealed,
    });
    record
}

/// A user's answer to a Mini Program's subscription pop-up, or a later
/// change of the setting (the admin API's `POST /admin/subscriptions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub appid: String,
    pub openid: String,
    pub template_id: String,
    /// `accept` or `reject`.
    pub status: String,
    /// `popup` (default) or `change`.
    #[serde(default)]
    pub event: AnswerEvent,
}

/// Which event an [`Answer`] is pushed as.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum AnswerEvent {
    #[default]
    Popup,
    Change,
}

/// Applies `a` to the user's consents (an `accept` of a one-time template
/// allows one more message, a `reject` none) and pushes it when the app has
/// a callback URL; the push's record, or `None` without one.
pub async fn answer(state: &Arc<AppState>, a: Answer) -> Result<Option<PushRecord>, String> {
    let app = state
        .config
        .app(&a.appid)
        .ok_or_else(|| format!("unknown appid {}", a.appid))?;
    if app.kind != AppKind::MiniProgram {
        return Err(format!("{} is not a mini program", a.appid));
    }
    let template = app
        .template(&a.template_id)
        .ok_or_else(|| format!("unknown template_id {}", a.template_id))?;
    if app.user(&a.openid).is_none() {
        return Err(format!("unknown openid {}", a.openid));
    }
    let accept = match a.status.as_str() {
        "accept" => true,
        "reject" => false,
        other => return Err(format!("status must be accept or reject, not {other:?}")),
    };
    state.lock().messages.answer(
        &a.appid,
        &a.openid,
        &a.template_id,
        accept,
        template.template_type != 3,
    );
    let Some(cfg) = app.callback.clone() else {
        return Ok(None);
    };
    let (event, list) = match a.event {
        AnswerEvent::Popup => ("subscribe_msg_popup_event", "SubscribeMsgPopupEvent"),
        AnswerEvent::Change => ("subscribe_msg_change_event", "SubscribeMsgChangeEvent"),
    };
    let mut item = vec![
        ("TemplateId", Value::Text(a.template_id.clone())),
        ("SubscribeStatusString", Value::Text(a.status.clone())),
    ];
    if a.event == AnswerEvent::Popup {
        item.push(("PopupScene", Value::Number(0)));
    }
    let message = Message {
        openid: a.openid.clone(),
        event,
        fields: vec![(list, Value::List(vec![item]))],
    };
    Ok(Some(push(state, &a.appid, &cfg, message, None).await))
}
