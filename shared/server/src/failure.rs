//! Errors machines can read: every status a wxpush service answers with
//! carries a `google.rpc.ErrorInfo` whose `reason` is one of [`Reason`]
//! (stable, listed in the README's "Errors" table), in domain
//! [`DOMAIN`], with metadata such as the app id or WeChat errcode. A status
//! that tells the caller to come back later also carries `RetryInfo` and the
//! `grpc-retry-pushback-ms` trailer gRPC clients honour in their retry
//! policy.
//!
//! Services build their statuses with [`Failure`] in the one place each maps
//! its error enum; anything that reaches a caller without an `ErrorInfo`
//! (tonic's own decode errors, an unknown method, a deadline) gets one from
//! the server layer ([`crate::rpc::ServerTraceLayer`]) via [`for_code`].

use crate::status::Violation;
use std::time::Duration;
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// `ErrorInfo.domain` of every wxpush error.
pub const DOMAIN: &str = "wxpush.v1";

/// The trailer gRPC's retry policy reads: how long to wait before retrying.
pub const RETRY_PUSHBACK: &str = "grpc-retry-pushback-ms";

macro_rules! reasons {
    ($($variant:ident => $name:literal: $doc:literal,)*) => {
        /// Why a call failed, as `ErrorInfo.reason`. Stable: callers switch
        /// on these; a new one is added, none is renamed.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Reason {
            $(#[doc = $doc] $variant,)*
        }

        impl Reason {
            /// Every reason, in README order.
            pub const ALL: &[Reason] = &[$(Reason::$variant,)*];

            /// The `ErrorInfo.reason` string (UPPER_SNAKE_CASE).
            pub fn as_str(self) -> &'static str {
                match self { $(Reason::$variant => $name,)* }
            }

            /// What it means (the README's wording).
            pub fn describe(self) -> &'static str {
                match self { $(Reason::$variant => $doc,)* }
            }

            /// The reason named `s`, if it is one of ours.
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($name => Some(Reason::$variant),)* _ => None }
            }
        }
    };
}

reasons! {
    FieldInvalid => "FIELD_INVALID": "A request field is missing, malformed or over a limit; `BadRequest` names each field.",
    Unauthenticated => "UNAUTHENTICATED": "No credentials, or credentials that are refused (expired, another key or audience, an untrusted mesh header, an unknown caller); the message says which.",
    PermissionDenied => "PERMISSION_DENIED": "The caller has no grant for this operation on this app or template; the message names them.",
    AppUnknown => "APP_UNKNOWN": "The app id is not configured in the token service.",
    TemplateNotFound => "TEMPLATE_NOT_FOUND": "No business template has this key.",
    TemplateExists => "TEMPLATE_EXISTS": "A create (`expected_version` 0) found the key taken.",
    VersionConflict => "VERSION_CONFLICT": "The template changed since the caller read it: re-read and retry.",
    MessageNotFound => "MESSAGE_NOT_FOUND": "No message with this id is known (or it outlived its retention).",
    TemplateUnsendable => "TEMPLATE_UNSENDABLE": "The template cannot be sent as configured (e.g. a kind no WeChat API takes).",
    WechatCredentialsRejected => "WECHAT_CREDENTIALS_REJECTED": "WeChat refused the app's appid/secret or IP whitelist; an operator must fix the app.",
    WechatRejected => "WECHAT_REJECTED": "WeChat refused a management call (e.g. listing templates) with an errcode.",
    WechatUnavailable => "WECHAT_UNAVAILABLE": "WeChat could not be reached or was busy, and no cached answer could stand in.",
    BreakerOpen => "BREAKER_OPEN": "WeChat is failing for the app; its circuit breaker is open and nothing was sent.",
    QuotaExhausted => "QUOTA_EXHAUSTED": "WeChat's daily quota for the app (errcode 45009) or the token fetch budget is spent.",
    RateLimited => "RATE_LIMITED": "The app is over its configured send rate.",
    RequestInProgress => "REQUEST_IN_PROGRESS": "Another request with the same idempotency key is still being served.",
    TokenRefreshing => "TOKEN_REFRESHING": "Another replica is fetching the app's token; retry shortly.",
    BackendUnavailable => "BACKEND_UNAVAILABLE": "The service's store (Redis) could not be reached.",
    DataCorrupt => "DATA_CORRUPT": "Stored data could not be decoded.",
    TooManyStreams => "TOO_MANY_STREAMS": "Every TailLogs stream this replica allows is open.",
    UpstreamUnavailable => "UPSTREAM_UNAVAILABLE": "A wxpush service this call needs (template, token) did not answer.",
    UpstreamFailed => "UPSTREAM_FAILED": "A wxpush service this call needs answered with an error it should not have.",
    DeadlineExceeded => "DEADLINE_EXCEEDED": "The caller's deadline passed before the work finished.",
    Cancelled => "CANCELLED": "The call was cancelled.",
    MethodUnknown => "METHOD_UNKNOWN": "No such method on this server.",
    NotFound => "NOT_FOUND": "Something else the request names does not exist (e.g. a health check of an unknown service).",
    RequestMalformed => "REQUEST_MALFORMED": "The request could not be decoded (not protobuf of the method's type, or too large).",
    Overloaded => "OVERLOADED": "The server is at a limit (concurrency, message size); retry later.",
    Internal => "INTERNAL": "A bug or an unexpected state; the server's log has the details.",
}

/// One failed call, ready to become a `tonic::Status` with its details.
#[derive(Debug, Clone)]
pub struct Failure {
    code: Code,
    reason: Reason,
    message: String,
    metadata: Vec<(&'static str, String)>,
    retry_after: Option<Duration>,
    violations: Vec<Violation>,
}

impl Failure {
    pub fn new(code: Code, reason: Reason, message: impl Into<String>) -> Self {
        Self {
            code,
            reason,
            message: message.into(),
            metadata: Vec::new(),
            retry_after: None,
            violations: Vec::new(),
        }
    }

    /// INVALID_ARGUMENT / FIELD_INVALID whose message lists every violation
    /// and whose `BadRequest` names each field.
    pub fn invalid(violations: &[Violation]) -> Self {
        let message = violations
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; ");
        Self {
            violations: violations.to_vec(),
            ..Self::new(Code::InvalidArgument, Reason::FieldInvalid, message)
        }
    }

    /// Adds `key: value` to the `ErrorInfo` metadata (app_id, errcode...).
    pub fn with(mut self, key: &'static str, value: impl ToString) -> Self {
        self.metadata.push((key, value.to_string()));
        self
    }

    /// Tells the caller when to try again (`RetryInfo` and the pushback
    /// trailer).
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    pub fn code(&self) -> Code {
        self.code
    }

    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The field violations (INVALID_ARGUMENT only).
    pub fn violations(&self) -> &[Violation] {
        &self.violations
    }

    /// As a `google.rpc.Status` message, for an error inside a response
    /// (a batch item's).
    pub fn into_rpc_status(self) -> tonic_types::pb::Status {
        use prost::Message;
        let status = Status::from(self);
        tonic_types::pb::Status::decode(status.details()).unwrap_or_else(|_| {
            tonic_types::pb::Status {
                code: status.code() as i32,
                message: status.message().to_string(),
                details: Vec::new(),
            }
        })
    }
}

/// Longest message or violation description a status carries, in
/// characters: an error quoting a caller's 100 KB key must not become a
/// header the caller's client refuses (and drops the connection for).
pub const MAX_MESSAGE_CHARS: usize = 1024;
/// Longest `ErrorInfo` metadata value, in characters.
pub const MAX_METADATA_CHARS: usize = 256;
/// Most field violations one status names.
pub const MAX_VIOLATIONS: usize = 100;

/// `s` cut at `max` characters, marked with `…` when cut.
fn capped(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &s[..at]),
        None => s.to_string(),
    }
}

impl From<Failure> for Status {
    fn from(f: Failure) -> Self {
        let mut details = ErrorDetails::new();
        details.set_error_info(
            f.reason.as_str(),
            DOMAIN,
            f.metadata
                .iter()
                .map(|(k, v)| (k.to_string(), capped(v, MAX_METADATA_CHARS)))
                .collect::<std::collections::HashMap<_, _>>(),
        );
        if let Some(delay) = f.retry_after {
            details.set_retry_info(Some(delay));
        }
        if !f.violations.is_empty() {
            details.set_bad_request(
                f.violations
                    .iter()
                    .take(MAX_VIOLATIONS)
                    .map(|v| {
                        FieldViolation::new(
                            capped(&v.field, MAX_MESSAGE_CHARS),
                            capped(&v.description, MAX_MESSAGE_CHARS),
                        )
                    })
                    .collect::<Vec<_>>(),
            );
        }
        let message = capped(&f.message, MAX_MESSAGE_CHARS);
        let mut status = Status::with_error_details(f.code, message, details);
        if let Some(delay) = f.retry_after
            && let Ok(v) = MetadataValue::try_from(delay.as_millis().to_string())
        {
            status.metadata_mut().insert(RETRY_PUSHBACK, v);
        }
        status
    }
}

/// The reason a status carries, if it carries ours.
pub fn reason(status: &Status) -> Option<Reason> {
    let info = status.get_details_error_info()?;
    (info.domain == DOMAIN)
        .then(|| Reason::parse(&info.reason))
        .flatten()
}

/// What a service answers when a wxpush service it called (`service`:
/// "template", "token") answered `status`: translated to what the caller
/// can act on, not passed through. The upstream's reason stays when it tells
/// the caller something (FIELD_INVALID with its field violations,
/// TEMPLATE_NOT_FOUND, QUOTA_EXHAUSTED...); an unknown app is this caller's
/// precondition (FAILED_PRECONDITION), not a missing resource of its own
/// call; trouble inside the suite is UPSTREAM_UNAVAILABLE / UPSTREAM_FAILED.
/// The upstream's metadata and retry advice are kept, with `service` added.
pub fn upstream(service: &'static str, status: &Status, message: String) -> Failure {
    use Reason::*;
    let kept = reason(status);
    let (code, reason) = match (status.code(), kept) {
        (Code::InvalidArgument, _) => (Code::InvalidArgument, FieldInvalid),
        (_, Some(AppUnknown)) | (Code::NotFound, None) if service == "token" => {
            (Code::FailedPrecondition, AppUnknown)
        }
        (Code::NotFound, Some(r)) => (Code::NotFound, r),
        (Code::FailedPrecondition, Some(r)) => (Code::FailedPrecondition, r),
        (Code::ResourceExhausted, Some(QuotaExhausted)) => {
            (Code::ResourceExhausted, QuotaExhausted)
        }
        (Code::DeadlineExceeded, _) => (Code::DeadlineExceeded, DeadlineExceeded),
        (Code::Unavailable, Some(r @ (WechatUnavailable | TokenRefreshing))) => {
            (Code::Unavailable, r)
        }
        (
            Code::Unavailable
            | Code::Cancelled
            | Code::Aborted
            | Code::ResourceExhausted
            | Code::Unknown,
            _,
        ) => (Code::Unavailable, UpstreamUnavailable),
        _ => (Code::Internal, UpstreamFailed),
    };
    let mut failure = Failure::new(code, reason, message).with("service", service);
    if let Some(info) = status.get_details_error_info() {
        let mut metadata: Vec<_> = info.metadata.into_iter().collect();
        metadata.sort();
        for (k, v) in metadata {
            if let Some(key) = METADATA_KEYS.iter().find(|m| **m == k) {
                failure = failure.with(key, v);
            }
        }
    }
    if code == Code::InvalidArgument {
        failure.violations = crate::status::field_violations(status);
    }
    match crate::status::retry_delay(status) {
        Some(delay) => failure.retry_after(delay),
        None if code == Code::Unavailable => failure.retry_after(Duration::from_secs(1)),
        None => failure,
    }
}

/// The metadata keys wxpush errors carry (an upstream's are kept by name).
pub const METADATA_KEYS: &[&str] = &[
    "app_id",
    "errcode",
    "key",
    "message_id",
    "version",
    "expected_version",
    "service",
    "idempotency_key",
];

/// The reason for a status made without one (by tonic, tower or hyper), from
/// its code alone.
pub fn for_code(code: Code) -> Reason {
    match code {
        Code::Cancelled => Reason::Cancelled,
        Code::DeadlineExceeded => Reason::DeadlineExceeded,
        Code::Unimplemented => Reason::MethodUnknown,
        Code::NotFound => Reason::NotFound,
        Code::InvalidArgument | Code::OutOfRange => Reason::RequestMalformed,
        Code::ResourceExhausted | Code::Unavailable => Reason::Overloaded,
        Code::Unauthenticated => Reason::Unauthenticated,
        Code::PermissionDenied => Reason::PermissionDenied,
        _ => Reason::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_carries_reason_metadata_and_retry() {
        let s: Status = Failure::new(Code::Unavailable, Reason::BreakerOpen, "open")
            .with("app_id", "wx1")
            .retry_after(Duration::from_millis(1500))
            .into();
        assert_eq!(reason(&s), Some(Reason::BreakerOpen));
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.domain, DOMAIN);
        assert_eq!(info.metadata["app_id"], "wx1");
        assert_eq!(
            crate::status::retry_delay(&s),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(s.metadata().get(RETRY_PUSHBACK).unwrap(), "1500");
    }

    #[test]
    fn a_huge_input_quoted_in_an_error_is_capped() {
        let key = "k".repeat(100_000);
        let s: Status = Failure::new(
            Code::NotFound,
            Reason::TemplateNotFound,
            format!("template {key:?} not found"),
        )
        .with("key", &key)
        .into();
        assert!(s.message().chars().count() <= MAX_MESSAGE_CHARS + 1);
        assert!(
            s.details().len() < 4 * MAX_MESSAGE_CHARS,
            "{} bytes of details",
            s.details().len()
        );
        let info = s.get_details_error_info().unwrap();
        assert!(info.metadata["key"].ends_with('…'));
    }

    #[test]
    fn invalid_keeps_every_violation() {
        let s: Status = Failure::invalid(&[Violation::new("openid", "is required")]).into();
        assert_eq!(s.code(), Code::InvalidArgument);
        assert_eq!(reason(&s), Some(Reason::FieldInvalid));
        assert_eq!(crate::status::field_violations(&s).len(), 1);
    }

    #[test]
    fn upstream_errors_are_translated() {
        let unknown_app: Status = Failure::new(Code::NotFound, Reason::AppUnknown, "unknown")
            .with("app_id", "wx9")
            .into();
        let t = upstream("token", &unknown_app, "token service: unknown".into());
        assert_eq!(
            (t.code(), t.reason()),
            (Code::FailedPrecondition, Reason::AppUnknown)
        );
        let s: Status = t.into();
        let info = s.get_details_error_info().unwrap();
        assert_eq!(info.metadata["app_id"], "wx9");
        assert_eq!(info.metadata["service"], "token");

        let redis_down: Status =
            Failure::new(Code::Unavailable, Reason::BackendUnavailable, "down").into();
        let t = upstream("template", &redis_down, "x".into());
        assert_eq!(
            (t.code(), t.reason()),
            (Code::Unavailable, Reason::UpstreamUnavailable)
        );
        assert!(crate::status::retry_delay(&Status::from(t)).is_some());

        let bad: Status =
            Failure::invalid(&[Violation::new("variables.name", "is required")]).into();
        let t: Status = upstream("template", &bad, "x".into()).into();
        assert_eq!(
            crate::status::field_violations(&t)[0].field,
            "variables.name"
        );

        let odd = upstream("template", &Status::unimplemented("?"), "x".into());
        assert_eq!(
            (odd.code(), odd.reason()),
            (Code::Internal, Reason::UpstreamFailed)
        );
    }

    /// The README's "Errors" table is the list callers code against: it
    /// names every reason, and no other.
    #[test]
    fn the_readme_lists_every_reason() {
        let readme = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../README.md"));
        let table = readme
            .split_once("| reason | code | meaning |")
            .expect("the README's Errors table")
            .1;
        let listed: Vec<&str> = table
            .lines()
            .skip(2)
            .take_while(|l| l.starts_with('|'))
            .filter_map(|l| l.strip_prefix("| `")?.split_once("` |").map(|(r, _)| r))
            .filter(|r| r.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'))
            .collect();
        for r in Reason::ALL {
            assert!(listed.contains(&r.as_str()), "README lacks {}", r.as_str());
        }
        for l in &listed {
            assert!(
                Reason::parse(l).is_some(),
                "README lists {l}, which is no reason"
            );
        }
    }

    #[test]
    fn names_are_unique_and_parse_back() {
        let mut seen = std::collections::HashSet::new();
        for r in Reason::ALL {
            assert!(seen.insert(r.as_str()), "{r:?} twice");
            assert_eq!(Reason::parse(r.as_str()), Some(*r));
            assert!(
                r.as_str()
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b == b'_')
            );
        }
        assert_eq!(reason(&Status::internal("no details")), None);
    }
}
