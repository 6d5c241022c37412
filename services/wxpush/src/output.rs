//! How results look on a terminal (one line per fact) and as `--json`: the
//! API's own messages in the protobuf JSON mapping (field names as in the
//! `.proto`, enums by name, RFC 3339 times, 64-bit integers as strings), the
//! same shape grpcurl and every protobuf library read and write.

use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use std::sync::OnceLock;
use wxpush_proto::Timestamp;
use wxpush_proto::v1::{
    AppBreaker, BreakerState, DeadLetter, DeliveryResult, DeliveryStatus, LogRecord,
    TemplateConsent, TokenStatus,
};

/// The API's descriptors (the set gRPC reflection serves).
fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(wxpush_proto::FILE_DESCRIPTOR_SET)
            .expect("the compiled-in descriptor set decodes")
    })
}

/// A response message in the protobuf JSON mapping, every field shown
/// (defaults too, so a script reads `"errcode": "0"`, not a missing key).
pub fn json<M: prost::Message + prost::Name>(message: &M) -> String {
    let descriptor = pool()
        .get_message_by_name(&M::full_name())
        .expect("every wxpush message is in the descriptor set");
    let dynamic = DynamicMessage::decode(descriptor, message.encode_to_vec().as_slice())
        .expect("a message decodes as its own type");
    let options = SerializeOptions::new()
        .use_proto_field_name(true)
        .skip_default_fields(false);
    let mut out = serde_json::Serializer::new(Vec::new());
    dynamic
        .serialize_with_options(&mut out, &options)
        .expect("serialising to memory cannot fail");
    String::from_utf8(out.into_inner()).expect("serde_json writes UTF-8")
}

/// A status number as its short name (`SENT`).
pub fn status_name(status: i32) -> &'static str {
    DeliveryStatus::try_from(status)
        .map(|s| s.as_str_name().trim_start_matches("DELIVERY_STATUS_"))
        .unwrap_or("UNKNOWN")
}

/// RFC 3339 in UTC, or empty.
pub fn time(t: Option<&Timestamp>) -> String {
    t.and_then(|t| chrono::DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Millis, true))
        .unwrap_or_default()
}

/// A string from the server as it may reach a terminal: control characters
/// (ESC, CR, LF...) escaped, so a value such as an openid cannot move the
/// cursor, clear the screen or forge a line. (JSON output escapes them.)
fn shown(s: &str) -> wxpush_telemetry::Escaped<'_> {
    wxpush_telemetry::Escaped(s)
}

/// A delivery result for people.
pub fn result_text(r: &DeliveryResult) -> String {
    let mut out = format!(
        "status:       {}\nmessage_id:   {}\ntrace_id:     {}\n",
        status_name(r.status),
        shown(&r.message_id),
        shown(&r.trace_id)
    );
    if !r.wechat_msgid.is_empty() {
        out += &format!("wechat_msgid: {}\n", shown(&r.wechat_msgid));
    }
    if r.errcode != 0 {
        out += &format!(
            "errcode:      {}\nerrmsg:       {}\n",
            r.errcode,
            shown(&r.errmsg)
        );
    }
    out += &format!("attempts:     {}", r.attempts);
    out
}

/// A log record as one line for people.
pub fn record_line(r: &LogRecord) -> String {
    let mut line = format!(
        "{}  {:<7} {}  {}  {}  openid={}  trace_id={}",
        time(r.accepted_at.as_ref()),
        status_name(r.status),
        shown(&r.message_id),
        shown(&r.app_id),
        shown(&r.template_key),
        shown(&r.openid),
        shown(&r.trace_id)
    );
    if !r.caller.is_empty() {
        line += &format!("  caller={}", shown(&r.caller));
    }
    if r.errcode != 0 {
        line += &format!("  errcode={} errmsg={:?}", r.errcode, r.errmsg);
    }
    line
}

/// An app's token status as one line for people.
pub fn token_status_line(t: &TokenStatus) -> String {
    let mut line = format!(
        "{}  mode={}  token={}  expires_at={}  last_refresh={}  fetches_today={}",
        shown(&t.app_id),
        shown(&t.token_mode),
        if t.has_token { "yes" } else { "no" },
        time(t.expires_at.as_ref()),
        time(t.last_refresh_at.as_ref()),
        t.refreshes_today
    );
    if !t.last_error.is_empty() {
        line += &format!("  last_error={:?}", t.last_error);
    }
    line
}

fn breaker_state(state: i32) -> String {
    BreakerState::try_from(state)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("BREAKER_STATE_")
                .to_string()
        })
        .unwrap_or_else(|_| "UNKNOWN".into())
}

/// One app's circuit breaker as a line for people.
pub fn breaker_line(b: &AppBreaker) -> String {
    let mut line = format!(
        "{}  {}  consecutive_failures={}",
        shown(&b.app_id),
        breaker_state(b.state),
        b.recent_failures
    );
    if b.next_probe_at.is_some() {
        line += &format!("  next_probe_at={}", time(b.next_probe_at.as_ref()));
    }
    line
}

/// One template's consent as a line for people.
pub fn consent_line(c: &TemplateConsent) -> String {
    format!(
        "{}  accepts_left={}  {}  updated_at={}",
        shown(&c.template_id),
        c.accepts_left,
        if c.rejected { "rejected" } else { "accepted" },
        time(c.updated_at.as_ref())
    )
}

/// A dead letter as a line for people.
pub fn dead_letter_line(d: &DeadLetter) -> String {
    format!(
        "{}  {}  {}  {}  openid={}  errcode={} errmsg={:?}  attempts={}  trace_id={}",
        time(d.dead_at.as_ref()),
        shown(&d.message_id),
        shown(&d.app_id),
        shown(&d.template_key),
        shown(&d.openid),
        d.errcode,
        d.errmsg,
        d.attempts,
        shown(&d.trace_id)
    )
}

/// A gRPC error for people: code, message and each field violation.
pub fn status_text(s: &tonic::Status) -> String {
    let mut out = format!("error: {:?}: {}", s.code(), shown(s.message()));
    for v in wxpush_server::status::field_violations(s) {
        out += &format!("\n  {}: {}", shown(&v.field), shown(&v.description));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_times() {
        assert_eq!(status_name(DeliveryStatus::Sent as i32), "SENT");
        assert_eq!(status_name(99), "UNKNOWN");
        assert_eq!(
            time(Some(&Timestamp {
                seconds: 0,
                nanos: 0
            })),
            "1970-01-01T00:00:00.000Z"
        );
        let r = DeliveryResult {
            status: DeliveryStatus::Failed as i32,
            errcode: 43004,
            errmsg: "require subscribe".into(),
            ..Default::default()
        };
        assert!(result_text(&r).contains("errcode:      43004"));
        let message = wxpush_proto::v1::SendResponse { result: Some(r) };
        let v: serde_json::Value = serde_json::from_str(&json(&message)).unwrap();
        assert_eq!(v["result"]["status"], "DELIVERY_STATUS_FAILED");
        assert_eq!(v["result"]["errcode"], "43004");
        assert_eq!(
            v["result"]["wechat_msgid"], "",
            "defaults are shown, by proto name"
        );
    }

    /// Issue 19, item 4: an openid, errmsg or app id carrying ESC / CR / LF
    /// was printed raw by `wxpush logs` and the other text lines.
    #[test]
    fn text_lines_escape_control_characters() {
        let evil = "o_1\u{1b}]0;pwned\u{7}\r\nfake line";
        let r = LogRecord {
            openid: evil.into(),
            app_id: evil.into(),
            errcode: 1,
            errmsg: evil.into(),
            ..Default::default()
        };
        let d = DeadLetter {
            openid: evil.into(),
            ..Default::default()
        };
        let result = DeliveryResult {
            errcode: 1,
            errmsg: evil.into(),
            ..Default::default()
        };
        let status = tonic::Status::invalid_argument(evil);
        for text in [
            record_line(&r),
            dead_letter_line(&d),
            result_text(&result),
            status_text(&status),
        ] {
            assert!(
                !text.chars().any(|c| c.is_control() && c != '\n'),
                "{text:?}"
            );
            assert!(text.contains(r"\u{1b}"), "{text:?}");
            assert!(!text.contains("\nfake line"), "{text:?}");
        }
    }
}
