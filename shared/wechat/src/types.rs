//! Request and response shapes of the WeChat APIs wxpush calls.

use serde::{Deserialize, Serialize};

/// Which message API a rendered body goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageApi {
    /// Official Account template message.
    Template,
    /// Mini Program subscribe message.
    Subscribe,
}

/// A message kind no WeChat API is known for: never sent anywhere.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("message kind {0} has no WeChat API")]
pub struct UnknownKind(pub i32);

impl TryFrom<i32> for MessageApi {
    type Error = UnknownKind;

    /// The API for a `wxpush.v1.MessageKind` (the one place that maps
    /// them): adding a kind means adding it here and to [`Self::path`].
    fn try_from(kind: i32) -> Result<Self, UnknownKind> {
        use wxpush_proto::v1::MessageKind;
        match MessageKind::try_from(kind) {
            Ok(MessageKind::Template) => Ok(MessageApi::Template),
            Ok(MessageKind::Subscribe) => Ok(MessageApi::Subscribe),
            _ => Err(UnknownKind(kind)),
        }
    }
}

impl MessageApi {
    /// Whether the message goes to a Mini Program user (subscribe
    /// messages: one-time consent, `page`/`miniprogram_state` fields, the
    /// subscribe field rules) rather than an Official Account follower.
    pub fn is_subscribe(self) -> bool {
        self == MessageApi::Subscribe
    }

    /// The API path under the base URL.
    pub fn path(self) -> &'static str {
        match self {
            MessageApi::Template => "/cgi-bin/message/template/send",
            MessageApi::Subscribe => "/cgi-bin/message/subscribe/send",
        }
    }
    /// Short name for logs and metric labels.
    ///
    /// (The proto kind for each API is [`TryFrom<i32>`]'s inverse.)
    pub fn name(self) -> &'static str {
        match self {
            MessageApi::Template => "template_send",
            MessageApi::Subscribe => "subscribe_send",
        }
    }
}

/// A token WeChat issued. Never log `access_token`.
#[derive(Clone, Deserialize)]
pub struct TokenGrant {
    pub access_token: String,
    pub expires_in: u64,
}

impl std::fmt::Debug for TokenGrant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGrant")
            .field("access_token", &"REDACTED")
            .field("expires_in", &self.expires_in)
            .finish()
    }
}

/// WeChat's answer to a successful message send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendReceipt {
    /// WeChat's message id, as a string (it is a number, sometimes beyond i64).
    pub msgid: String,
}

/// One template of an Official Account (`get_all_private_template`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct PrivateTemplate {
    pub template_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub primary_industry: String,
    #[serde(default)]
    pub deputy_industry: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub example: String,
}

/// One subscribe-message template of a Mini Program (`newtmpl/gettemplate`).
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct SubscribeTemplate {
    #[serde(rename = "priTmplId")]
    pub pri_tmpl_id: String,
    #[serde(default)]
    pub title: String,
    #[serde(default)]
    pub content: String,
    #[serde(default)]
    pub example: String,
    /// 2 one-time, 3 long-term.
    #[serde(default, rename = "type")]
    pub template_type: u32,
}

/// Why a WeChat call did not succeed. Display never contains a token or a
/// secret: transport errors are stripped of their URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WechatError {
    /// WeChat answered with a non-zero errcode.
    #[error("wechat errcode {errcode}: {errmsg}")]
    Api { errcode: i64, errmsg: String },
    /// HTTP status other than 200 (5xx in outages).
    #[error("wechat answered HTTP {0}")]
    HttpStatus(u16),
    /// Connection refused or reset, DNS, TLS.
    #[error("cannot reach wechat: {0}")]
    Transport(String),
    /// No answer within the client timeout.
    #[error("wechat did not answer within the timeout")]
    Timeout,
    /// A 200 whose body was not the JSON we expect.
    #[error("unexpected wechat response: {0}")]
    Decode(String),
}

impl WechatError {
    /// The errcode to record: WeChat's own, or -1 (system busy, transient)
    /// for transport failures, timeouts and HTTP 5xx, which WeChat never
    /// numbers itself.
    pub fn errcode(&self) -> i64 {
        match self {
            WechatError::Api { errcode, .. } => *errcode,
            _ => -1,
        }
    }

    /// The message to record next to the errcode.
    pub fn errmsg(&self) -> String {
        match self {
            WechatError::Api { errmsg, .. } => errmsg.clone(),
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_proto::v1::MessageKind;

    #[test]
    fn every_kind_maps_to_its_api_and_an_unknown_one_to_none() {
        let template = MessageApi::try_from(MessageKind::Template as i32).unwrap();
        assert_eq!(template.path(), "/cgi-bin/message/template/send");
        let subscribe = MessageApi::try_from(MessageKind::Subscribe as i32).unwrap();
        assert_eq!(subscribe.path(), "/cgi-bin/message/subscribe/send");
        assert!(subscribe.is_subscribe() && !template.is_subscribe());
        assert_eq!(
            MessageApi::try_from(MessageKind::Unspecified as i32),
            Err(UnknownKind(0))
        );
        assert_eq!(MessageApi::try_from(99), Err(UnknownKind(99)));
    }
}
