//! Checks on a `SendRequest` before anything is rendered or sent, each
//! failure naming its field. Limits are documented in the README.

use wxpush_proto::Timestamp;
use wxpush_proto::v1::SendRequest;
use wxpush_server::limits::{
    MAX_APPID_CHARS, MAX_LINK_CHARS, MAX_SEND_AT_AHEAD_SECS, check_variables,
};
use wxpush_server::status::{Violation, check_timestamp, max_chars, no_control, require};

/// Longest openid accepted (WeChat's are 28 characters).
pub const MAX_OPENID_CHARS: usize = 128;
/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// Violations of a sync `Send` request, each naming its field.
pub fn check_send(req: &SendRequest) -> Vec<Violation> {
    let mut v = Vec::new();
    check_template_key(&req.template_key, &mut v);
    require(&mut v, "openid", &req.openid);
    max_chars(&mut v, "openid", &req.openid, MAX_OPENID_CHARS);
    no_control(&mut v, "openid", &req.openid);
    no_control(&mut v, "app_id", &req.app_id);
    max_chars(
        &mut v,
        "idempotency_key",
        &req.idempotency_key,
        MAX_IDEMPOTENCY_KEY_CHARS,
    );
    check_variables("variables", &req.variables, &mut v);
    check_links(req, &mut v);
    v
}

/// A business template key as a request names it: what a stored key may
/// be (none else can match).
pub fn check_template_key(key: &str, v: &mut Vec<Violation>) {
    wxpush_template::spec::check_key("template_key", key, v);
}

/// `SendAsync`: the checks of [`check_send`], with a `send_at` that is a
/// valid time at most [`MAX_SEND_AT_AHEAD_SECS`] ahead.
pub fn check_send_async(
    req: &SendRequest,
    send_at: Option<&Timestamp>,
    now_secs: i64,
) -> Vec<Violation> {
    let mut v = check_send(req);
    check_send_at(send_at, now_secs, &mut v);
    v
}

/// A `send_at` (SendAsync, SendBatch): a valid time at most
/// [`MAX_SEND_AT_AHEAD_SECS`] ahead.
pub fn check_send_at(send_at: Option<&Timestamp>, now_secs: i64, v: &mut Vec<Violation>) {
    if let Some(t) = send_at {
        if let Some(bad) = check_timestamp("send_at", t) {
            v.push(bad);
        } else if t.seconds > now_secs + MAX_SEND_AT_AHEAD_SECS {
            v.push(Violation::new(
                "send_at",
                format!(
                    "is more than {} days ahead",
                    MAX_SEND_AT_AHEAD_SECS / 86_400
                ),
            ));
        }
    }
}

/// `url` (http or https), `page` and the mini program target: bounded, and
/// a URL WeChat will open.
fn check_links(req: &SendRequest, v: &mut Vec<Violation>) {
    max_chars(v, "url", &req.url, MAX_LINK_CHARS);
    let web = ["https://", "http://"]
        .iter()
        .any(|s| req.url.starts_with(s));
    if !req.url.is_empty() && !web {
        v.push(Violation::new("url", "must start with https:// or http://"));
    }
    if req.url.chars().any(char::is_control) {
        v.push(Violation::new("url", "must not contain control characters"));
    }
    max_chars(v, "page", &req.page, MAX_LINK_CHARS);
    if let Some(mp) = &req.miniprogram {
        max_chars(v, "miniprogram.appid", &mp.appid, MAX_APPID_CHARS);
        max_chars(v, "miniprogram.pagepath", &mp.pagepath, MAX_LINK_CHARS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_missing_and_too_long_fields() {
        let req = SendRequest {
            openid: "o".repeat(129),
            ..Default::default()
        };
        let fields: Vec<String> = check_send(&req).into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["template_key", "openid"]);
        let ok = SendRequest {
            template_key: "k".into(),
            openid: "o".into(),
            ..Default::default()
        };
        assert!(check_send(&ok).is_empty());
    }

    /// Issue 19, item 9: links had no length or scheme check.
    #[test]
    fn links_are_bounded_and_must_be_web_urls() {
        let req = SendRequest {
            template_key: "k".into(),
            openid: "o".into(),
            url: "javascript:alert(1)".into(),
            page: "p".repeat(MAX_LINK_CHARS + 1),
            miniprogram: Some(wxpush_proto::v1::MiniProgramTarget {
                appid: "a".repeat(MAX_APPID_CHARS + 1),
                pagepath: String::new(),
            }),
            ..Default::default()
        };
        let fields: Vec<String> = check_send(&req).into_iter().map(|v| v.field).collect();
        assert_eq!(fields, ["url", "page", "miniprogram.appid"]);
    }

    /// Issue 19, item 2: a `send_at` of 9999-12-31 was accepted and parked
    /// for good.
    #[test]
    fn send_at_is_within_the_horizon() {
        let now = 1_800_000_000;
        let req = SendRequest {
            template_key: "k".into(),
            openid: "o".into(),
            ..Default::default()
        };
        let at = |seconds| Some(Timestamp { seconds, nanos: 0 });
        assert!(check_send_async(&req, at(now + 86_400).as_ref(), now).is_empty());
        let far = check_send_async(&req, at(253_402_300_799).as_ref(), now);
        assert_eq!(far[0].field, "send_at");
        assert!(far[0].description.contains("30 days"), "{far:?}");
        assert_eq!(
            check_send_async(&req, at(-1 << 40).as_ref(), now)[0].field,
            "send_at"
        );
    }
}
