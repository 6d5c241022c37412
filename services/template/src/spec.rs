//! Templates as operators write them (YAML, e.g. mounted from a ConfigMap),
//! and the checks every stored template passes.
//!
//! ```yaml
//! templates:
//!   - key: order_shipped
//!     app_id: wx_demo_oa
//!     kind: template            # or: subscribe
//!     template_id: OA_ORDER_SHIPPED_k3J9
//!     content: "订单编号:{{character_string1.DATA}}\n发货时间:{{time2.DATA}}"
//!     fields:
//!       character_string1: "{{order_id}}"
//!       time2: "{{ship_time}}"
//!     url: "https://example.com/orders/{{order_id}}"
//! ```

use crate::error::TemplateError;
use crate::validate::{check_mapping, check_private_fields, check_target};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;
use wxpush_proto::v1::{ConsentMode, MessageKind, MiniProgramTarget, QuietHours, Template};
use wxpush_server::status::{Violation, max_chars, require};

/// Longest template key.
pub const MAX_KEY_CHARS: usize = 64;
/// Longest WeChat content a template may carry (WeChat's own are a few
/// hundred characters).
pub const MAX_CONTENT_CHARS: usize = 4096;
/// Most WeChat fields per template, and the longest field expression.
pub const MAX_FIELDS: usize = 64;
pub const MAX_EXPRESSION_CHARS: usize = 1024;

/// The templates file.
#[derive(Debug, Deserialize, Default)]
pub struct TemplatesFile {
    #[serde(default)]
    pub templates: Vec<TemplateSpec>,
}

/// One template in the file.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct TemplateSpec {
    pub key: String,
    pub app_id: String,
    /// `template` (Official Account) or `subscribe` (Mini Program).
    pub kind: String,
    pub template_id: String,
    pub title: String,
    /// The WeChat template content with `{{name.DATA}}` placeholders.
    pub content: String,
    pub fields: BTreeMap<String, String>,
    pub url: String,
    pub miniprogram: Option<MiniProgramSpec>,
    pub page: String,
    pub miniprogram_state: String,
    pub lang: String,
    pub quiet_hours: Option<QuietHoursSpec>,
    /// Subscribe templates: `observe` (default) or `enforce` (delivery
    /// refuses a message to a user without consent, WeChat not called).
    pub consent: String,
    /// WeChat fields whose values the log keeps only as a keyed hash.
    pub private_fields: Vec<String>,
}

/// A template message's mini-program jump target, as written in the file.
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct MiniProgramSpec {
    pub appid: String,
    pub pagepath: String,
}

/// Quiet hours as written in the file (`"22:00"`, `"08:00"`, IANA zone).
#[derive(Debug, Deserialize, Default)]
#[serde(default)]
pub struct QuietHoursSpec {
    pub start: String,
    pub end: String,
    pub time_zone: String,
}

impl TemplateSpec {
    /// The API form of this template (version 0: not stored yet).
    pub fn into_template(self) -> Result<Template, TemplateError> {
        let kind = match self.kind.as_str() {
            "template" => MessageKind::Template,
            "subscribe" => MessageKind::Subscribe,
            other => {
                return Err(TemplateError::InvalidArgument(vec![Violation::new(
                    format!("templates[{}].kind", self.key),
                    format!("must be `template` or `subscribe`, got {other:?}"),
                )]));
            }
        };
        let consent = match self.consent.as_str() {
            "" => ConsentMode::Unspecified,
            "observe" => ConsentMode::Observe,
            "enforce" => ConsentMode::Enforce,
            other => {
                return Err(TemplateError::InvalidArgument(vec![Violation::new(
                    format!("templates[{}].consent", self.key),
                    format!("must be `observe` or `enforce`, got {other:?}"),
                )]));
            }
        };
        Ok(Template {
            key: self.key,
            app_id: self.app_id,
            kind: kind as i32,
            template_id: self.template_id,
            fields: self.fields.into_iter().collect(),
            url: self.url,
            miniprogram: self.miniprogram.map(|m| MiniProgramTarget {
                appid: m.appid,
                pagepath: m.pagepath,
            }),
            page: self.page,
            miniprogram_state: self.miniprogram_state,
            lang: self.lang,
            quiet_hours: self.quiet_hours.map(|q| QuietHours {
                start: q.start,
                end: q.end,
                time_zone: q.time_zone,
            }),
            version: 0,
            wechat_content: self.content,
            title: self.title,
            wechat_template_missing: false,
            updated_at: None,
            consent: consent as i32,
            private_fields: self.private_fields,
        })
    }
}

/// Reads and checks a templates file.
pub fn load_file(path: &Path) -> Result<Vec<Template>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read templates file {}: {e}", path.display()))?;
    parse(&text).map_err(|e| format!("templates file {}: {e}", path.display()))
}

/// Parses and checks templates YAML.
pub fn parse(text: &str) -> Result<Vec<Template>, String> {
    let file: TemplatesFile = serde_yaml_ng::from_str(text).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for spec in file.templates {
        let t = spec.into_template().map_err(describe)?;
        check(&t).map_err(describe)?;
        out.push(t);
    }
    Ok(out)
}

fn describe(e: TemplateError) -> String {
    match e {
        TemplateError::InvalidArgument(v) => v
            .iter()
            .map(|v| format!("{}: {}", v.field, v.description))
            .collect::<Vec<_>>()
            .join("; "),
        other => other.to_string(),
    }
}

/// A business template key: 1 to [`MAX_KEY_CHARS`] of a-z, 0-9, `_`, `.`
/// and `-`. A key that breaks it names no template (and one with a NUL
/// could not even be looked up in PostgreSQL).
pub fn check_key(field: &str, key: &str, v: &mut Vec<Violation>) {
    require(v, field, key);
    max_chars(v, field, key, MAX_KEY_CHARS);
    if !key
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c))
    {
        v.push(Violation::new(
            field,
            "may contain only a-z, 0-9, `_`, `.` and `-`",
        ));
    }
}

/// Whether `key` could be a stored template's ([`check_key`]).
pub fn is_key(key: &str) -> bool {
    let mut v = Vec::new();
    check_key("key", key, &mut v);
    v.is_empty()
}

/// The checks every stored template passes; field paths are relative to
/// `template.` as in `UpsertTemplateRequest`. Includes the field mapping
/// against the WeChat content when it is known, so a typo in a field name is
/// refused when the template is written, not when the first message fails.
pub fn check(t: &Template) -> Result<(), TemplateError> {
    let mut v = Vec::new();
    check_key("template.key", &t.key, &mut v);
    require(&mut v, "template.app_id", &t.app_id);
    require(&mut v, "template.template_id", &t.template_id);
    match MessageKind::try_from(t.kind) {
        Ok(MessageKind::Template | MessageKind::Subscribe) => {}
        _ => v.push(Violation::new(
            "template.kind",
            "must be TEMPLATE or SUBSCRIBE",
        )),
    }
    if t.fields.is_empty() {
        v.push(Violation::new(
            "template.fields",
            "at least one WeChat field is required",
        ));
    }
    max_chars(
        &mut v,
        "template.wechat_content",
        &t.wechat_content,
        MAX_CONTENT_CHARS,
    );
    if t.fields.len() > MAX_FIELDS {
        v.push(Violation::new(
            "template.fields",
            format!("{} fields, at most {MAX_FIELDS} allowed", t.fields.len()),
        ));
    }
    for (name, expr) in &t.fields {
        max_chars(
            &mut v,
            &format!("template.fields.{name}"),
            expr,
            MAX_EXPRESSION_CHARS,
        );
    }
    if v.is_empty() {
        check_mapping(t, &t.wechat_content, &mut v);
    }
    check_target(t, &mut v);
    check_private_fields(t, &mut v);
    match ConsentMode::try_from(t.consent) {
        Ok(ConsentMode::Enforce) if t.kind != MessageKind::Subscribe as i32 => {
            v.push(Violation::new(
                "template.consent",
                "ENFORCE is for subscribe templates only (a template message needs no consent)",
            ));
        }
        Ok(_) => {}
        Err(_) => v.push(Violation::new(
            "template.consent",
            "must be CONSENT_MODE_OBSERVE or CONSENT_MODE_ENFORCE",
        )),
    }
    if v.is_empty() {
        Ok(())
    } else {
        Err(TemplateError::InvalidArgument(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_file_and_rejects_a_bad_kind() {
        let ok = parse(
            "templates:\n  - key: a\n    app_id: wx1\n    kind: subscribe\n    template_id: T\n    fields: {thing1: \"{{x}}\"}\n",
        )
        .unwrap();
        assert_eq!(ok[0].kind, MessageKind::Subscribe as i32);
        let err =
            parse("templates:\n  - key: a\n    app_id: wx1\n    kind: sms\n    template_id: T\n")
                .unwrap_err();
        assert!(err.contains("templates[a].kind"), "{err}");
    }

    #[test]
    fn check_names_every_bad_field() {
        let t = Template {
            key: "Bad Key".into(),
            kind: MessageKind::Template as i32,
            ..Default::default()
        };
        let TemplateError::InvalidArgument(v) = check(&t).unwrap_err() else {
            panic!("expected InvalidArgument")
        };
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "template.key",
                "template.app_id",
                "template.template_id",
                "template.fields"
            ]
        );
    }

    /// Issue 19, item 3: a 320 KB content of braces was stored and every
    /// render parsed it again; content, field count and expressions are
    /// bounded at write.
    #[test]
    fn oversized_content_and_fields_are_refused_at_write() {
        let t = Template {
            key: "big".into(),
            app_id: "wx1".into(),
            template_id: "T".into(),
            kind: MessageKind::Template as i32,
            wechat_content: "{".repeat(320 * 1024),
            fields: (0..=MAX_FIELDS)
                .map(|i| (format!("f{i}"), "x".repeat(MAX_EXPRESSION_CHARS + 1)))
                .collect(),
            ..Default::default()
        };
        let TemplateError::InvalidArgument(v) = check(&t).unwrap_err() else {
            panic!("expected InvalidArgument")
        };
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert!(fields.contains(&"template.wechat_content"), "{fields:?}");
        assert!(fields.contains(&"template.fields"), "{fields:?}");
        assert!(fields.contains(&"template.fields.f0"), "{fields:?}");
    }
}
