//! Checks on a `SendRequest` before anything is rendered or sent, each
//! failure naming its field. Limits are documented in the README.

use wxpush_proto::v1::SendRequest;
use wxpush_server::status::{Violation, max_chars, require};

/// Longest openid accepted (WeChat's are 28 characters).
pub const MAX_OPENID_CHARS: usize = 128;
/// Longest idempotency key accepted.
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 128;

/// Violations of a sync `Send` request, each naming its field.
pub fn check_send(req: &SendRequest) -> Vec<Violation> {
    let mut v = Vec::new();
    require(&mut v, "template_key", &req.template_key);
    require(&mut v, "openid", &req.openid);
    max_chars(&mut v, "openid", &req.openid, MAX_OPENID_CHARS);
    max_chars(
        &mut v,
        "idempotency_key",
        &req.idempotency_key,
        MAX_IDEMPOTENCY_KEY_CHARS,
    );
    if req.send_at.is_some() {
        v.push(Violation::new(
            "send_at",
            "scheduled send is only for SendAsync",
        ));
    }
    v
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
}
