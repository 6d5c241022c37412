//! The WeChat server API as wxpush uses it (see `wechat-api.md`): a typed
//! client on reqwest, the errcode classes the sender acts on, and URL
//! redaction so an access token never reaches a log line, a span or an
//! error; every call is a traced client span and counted (`observe`).
//!
//! [`push`] reads what WeChat pushes back to an app's callback URL:
//! signatures, safe-mode encryption, receipts and subscription events.
//!
//! The base URL is configuration: real WeChat, the sandbox, or any other
//! imitation work unchanged.

mod client;
mod errcode;
mod observe;
pub mod push;
mod redact;
mod types;

pub use client::{ClientSettings, WechatClient, parse_send_answer};
pub use errcode::{ErrClass, classify, until_quota_reset};
pub use observe::WechatMetrics;
pub use redact::redact_url;
pub use types::*;
