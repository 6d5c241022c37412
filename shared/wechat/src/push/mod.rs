//! What WeChat pushes to an app's callback URL (`../shared/wechat-api.md`,
//! "Server push"): [`crypto`] checks and opens a push, [`Push::parse`]
//! reads its XML or JSON into the events wxpush acts on.

pub mod crypto;

use serde::{Deserialize, Serialize};

/// How a template message ended at the user, from its receipt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReceiptOutcome {
    /// `success`.
    Delivered,
    /// `failed:user block`: the user refused the account's messages.
    Blocked,
    /// `failed: system failed`, or any other failure.
    Undelivered,
}

impl ReceiptOutcome {
    /// The outcome of a receipt's `Status` (`failed:user block` and
    /// `failed: user block` alike).
    pub fn of_status(status: &str) -> Self {
        let compact: String = status.chars().filter(|c| !c.is_whitespace()).collect();
        match compact.to_ascii_lowercase().as_str() {
            "success" => Self::Delivered,
            "failed:userblock" => Self::Blocked,
            _ => Self::Undelivered,
        }
    }
}

/// One item of a subscription event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SubscribeItem {
    pub template_id: String,
    /// `accept` or `reject` (pop-up and change events).
    pub status: String,
    /// The message's msgid (sent events).
    pub msg_id: String,
    /// 0 on success (sent events).
    pub error_code: i64,
}

/// An event wxpush acts on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum PushEvent {
    /// `TEMPLATESENDJOBFINISH`: the outcome of one template message.
    TemplateReceipt {
        msg_id: String,
        outcome: ReceiptOutcome,
    },
    /// `subscribe_msg_popup_event`.
    SubscribePopup { items: Vec<SubscribeItem> },
    /// `subscribe_msg_change_event`.
    SubscribeChange { items: Vec<SubscribeItem> },
    /// `subscribe_msg_sent_event`.
    SubscribeSent { items: Vec<SubscribeItem> },
    /// Anything else (a user's text, menu clicks...): acknowledged, not kept.
    Other { msg_type: String, event: String },
}

/// A push as read: who it is about, when, and what happened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Push {
    /// `ToUserName`: the account's original id (`gh_...`).
    pub account: String,
    /// `FromUserName`: the user's openid.
    pub openid: String,
    /// `CreateTime`, unix seconds.
    pub create_time: i64,
    pub event: PushEvent,
}

/// Why a push body could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    #[error("the body is neither XML nor JSON")]
    Unreadable,
    #[error("the push has no {0}")]
    Missing(&'static str),
}

/// Fields of a push, from XML or JSON, as text.
trait Fields {
    fn field(&self, name: &str) -> Option<String>;
    /// The items of a subscription event's list.
    fn items(&self, list: &str) -> Vec<SubscribeItem>;
}

impl Push {
    /// Reads a plaintext push (XML, or JSON for Mini Programs that chose it).
    pub fn parse(body: &[u8]) -> Result<Self, PushError> {
        let text = std::str::from_utf8(body).map_err(|_| PushError::Unreadable)?;
        if text.trim_start().starts_with('{') {
            let json: serde_json::Value =
                serde_json::from_str(text).map_err(|_| PushError::Unreadable)?;
            Self::from_fields(&json)
        } else {
            let doc = roxmltree::Document::parse(text).map_err(|_| PushError::Unreadable)?;
            Self::from_fields(&doc.root_element())
        }
    }

    /// The `Encrypt` value of a safe-mode body (XML or JSON).
    pub fn encrypted(body: &[u8]) -> Result<String, PushError> {
        let text = std::str::from_utf8(body).map_err(|_| PushError::Unreadable)?;
        let value = if text.trim_start().starts_with('{') {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|_| PushError::Unreadable)?
                .field("Encrypt")
        } else {
            roxmltree::Document::parse(text)
                .map_err(|_| PushError::Unreadable)?
                .root_element()
                .field("Encrypt")
        };
        value.ok_or(PushError::Missing("Encrypt"))
    }

    fn from_fields(f: &impl Fields) -> Result<Self, PushError> {
        let msg_type = f.field("MsgType").ok_or(PushError::Missing("MsgType"))?;
        let event_name = f.field("Event").unwrap_or_default();
        let event = match (msg_type.as_str(), event_name.as_str()) {
            ("event", "TEMPLATESENDJOBFINISH") => PushEvent::TemplateReceipt {
                msg_id: f.field("MsgID").ok_or(PushError::Missing("MsgID"))?,
                outcome: ReceiptOutcome::of_status(
                    &f.field("Status").ok_or(PushError::Missing("Status"))?,
                ),
            },
            ("event", "subscribe_msg_popup_event") => PushEvent::SubscribePopup {
                items: f.items("SubscribeMsgPopupEvent"),
            },
            ("event", "subscribe_msg_change_event") => PushEvent::SubscribeChange {
                items: f.items("SubscribeMsgChangeEvent"),
            },
            ("event", "subscribe_msg_sent_event") => PushEvent::SubscribeSent {
                items: f.items("SubscribeMsgSentEvent"),
            },
            _ => PushEvent::Other {
                msg_type,
                event: event_name,
            },
        };
        Ok(Self {
            account: f.field("ToUserName").unwrap_or_default(),
            openid: f.field("FromUserName").unwrap_or_default(),
            create_time: f
                .field("CreateTime")
                .and_then(|t| t.trim().parse().ok())
                .unwrap_or_default(),
            event,
        })
    }
}

fn item_of(field: impl Fn(&str) -> Option<String>) -> SubscribeItem {
    SubscribeItem {
        template_id: field("TemplateId").unwrap_or_default(),
        status: field("SubscribeStatusString")
            .or_else(|| field("ErrorStatus"))
            .unwrap_or_default(),
        msg_id: field("MsgID").unwrap_or_default(),
        error_code: field("ErrorCode")
            .and_then(|c| c.trim().parse().ok())
            .unwrap_or_default(),
    }
}

impl Fields for roxmltree::Node<'_, '_> {
    fn field(&self, name: &str) -> Option<String> {
        self.children()
            .find(|n| n.has_tag_name(name))
            .map(|n| n.text().unwrap_or_default().trim().to_string())
    }

    /// `<List><List><TemplateId>..</TemplateId>...</List>...</List>`: WeChat
    /// wraps the items in an element named like the list (one item may
    /// also come bare).
    fn items(&self, list: &str) -> Vec<SubscribeItem> {
        let Some(outer) = self.children().find(|n| n.has_tag_name(list)) else {
            return Vec::new();
        };
        let inner: Vec<_> = outer
            .children()
            .filter(|n| n.has_tag_name("List"))
            .collect();
        let nodes = if inner.is_empty() { vec![outer] } else { inner };
        nodes.iter().map(|n| item_of(|f| n.field(f))).collect()
    }
}

impl Fields for serde_json::Value {
    fn field(&self, name: &str) -> Option<String> {
        match self.get(name)? {
            serde_json::Value::String(s) => Some(s.trim().to_string()),
            serde_json::Value::Null => None,
            other => Some(other.to_string()),
        }
    }

    /// `"List": [{...}]` (or one object) under the list's name.
    fn items(&self, list: &str) -> Vec<SubscribeItem> {
        let Some(value) = self.get(list) else {
            return Vec::new();
        };
        let value = value.get("List").unwrap_or(value);
        match value {
            serde_json::Value::Array(items) => {
                items.iter().map(|i| item_of(|f| i.field(f))).collect()
            }
            item @ serde_json::Value::Object(_) => vec![item_of(|f| item.field(f))],
            _ => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests;
