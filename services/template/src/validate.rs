//! Validation before anything is sent: a template's field mapping against
//! its WeChat template, and (subscribe messages) each rendered value against
//! its type's rule. Violations name the field, the rule and the offending
//! length or character, so a caller fixes everything in one round.

use crate::content::{is_field_name, placeholders};
use crate::rules::check_field;
use wxpush_proto::v1::Template;
use wxpush_server::status::Violation;
use wxpush_wechat::MessageApi;

/// Values WeChat accepts for `miniprogram_state` (empty: formal).
pub const MINIPROGRAM_STATES: &[&str] = &["developer", "trial", "formal"];
/// Values WeChat accepts for `lang` (empty: zh_CN).
pub const LANGS: &[&str] = &["zh_CN", "en_US", "zh_HK", "zh_TW"];

/// One field after variable expansion.
#[derive(Debug, Clone)]
pub struct RenderedField {
    /// The WeChat field name, e.g. `thing2`.
    pub name: String,
    /// The expanded value.
    pub value: String,
    /// The variables its expression uses, for the violation text.
    pub variables: Vec<String>,
    /// False when a variable was missing: its value is then not checked
    /// (the missing variable is the problem reported).
    pub complete: bool,
}

/// Subscribe messages have WeChat's per-type field rules (the kind's API
/// decides; an unknown kind is refused when rendering).
fn is_subscribe(t: &Template) -> bool {
    MessageApi::try_from(t.kind).is_ok_and(MessageApi::is_subscribe)
}

/// The field mapping against the WeChat template `content` (when known):
/// every mapped field must exist there, and a subscribe message must map
/// every field (WeChat rejects one with a field left out).
pub fn check_mapping(t: &Template, content: &str, v: &mut Vec<Violation>) {
    let known = placeholders(content);
    let mut names: Vec<&String> = t.fields.keys().collect();
    names.sort();
    for name in names {
        if !is_field_name(name) {
            v.push(Violation::new(
                format!("template.fields.{name}"),
                "is not a WeChat field name (ASCII letters, digits and `_`)",
            ));
        } else if !known.is_empty() && !known.contains(name) {
            v.push(Violation::new(
                format!("template.fields.{name}"),
                format!(
                    "is not a field of WeChat template {} (its fields: {})",
                    t.template_id,
                    known.join(", ")
                ),
            ));
        }
    }
    if is_subscribe(t) {
        for name in known.iter().filter(|n| !t.fields.contains_key(*n)) {
            v.push(Violation::new(
                format!("template.fields.{name}"),
                format!(
                    "is a field of WeChat template {} but has no expression",
                    t.template_id
                ),
            ));
        }
    }
}

/// Each private field names a field of the template, once.
pub fn check_private_fields(t: &Template, v: &mut Vec<Violation>) {
    let mut seen = std::collections::HashSet::new();
    for (i, name) in t.private_fields.iter().enumerate() {
        let field = format!("template.private_fields[{i}]");
        if !t.fields.contains_key(name) {
            let mut known: Vec<&str> = t.fields.keys().map(String::as_str).collect();
            known.sort_unstable();
            v.push(Violation::new(
                field,
                format!(
                    "{:?} is no field of the template (one of {})",
                    name.chars().take(64).collect::<String>(),
                    known.join(", ")
                ),
            ));
        } else if !seen.insert(name) {
            v.push(Violation::new(field, format!("{name} is listed twice")));
        }
    }
}

/// The jump-target settings of a subscribe message.
pub fn check_target(t: &Template, v: &mut Vec<Violation>) {
    if !is_subscribe(t) {
        return;
    }
    if !t.miniprogram_state.is_empty()
        && !MINIPROGRAM_STATES.contains(&t.miniprogram_state.as_str())
    {
        v.push(Violation::new(
            "template.miniprogram_state",
            format!("must be one of {}", MINIPROGRAM_STATES.join(", ")),
        ));
    }
    if !t.lang.is_empty() && !LANGS.contains(&t.lang.as_str()) {
        v.push(Violation::new(
            "template.lang",
            format!("must be one of {}", LANGS.join(", ")),
        ));
    }
}

/// Rendered values of a subscribe message against their types' rules; one
/// violation per bad field, as `data.{field}`.
pub fn check_values(t: &Template, fields: &[RenderedField], v: &mut Vec<Violation>) {
    if !is_subscribe(t) {
        return;
    }
    for f in fields.iter().filter(|f| f.complete) {
        if let Err(e) = check_field(&f.name, &f.value) {
            // The value itself is not repeated: it may be personal data
            // (a name, a phone number) and errors end up in logs.
            let from = if f.variables.is_empty() {
                "the template's literal text".to_string()
            } else {
                format!("variables: {}", f.variables.join(", "))
            };
            v.push(Violation::new(
                format!("data.{}", f.name),
                format!("{e} (value from {from})"),
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_fields_name_fields_of_the_template_once() {
        let t = Template {
            fields: [("phone".to_string(), "{{phone}}".to_string())].into(),
            private_fields: vec!["phone".into(), "nmae".into(), "phone".into()],
            ..Default::default()
        };
        let mut v = Vec::new();
        check_private_fields(&t, &mut v);
        let found: Vec<(&str, &str)> = v
            .iter()
            .map(|v| (v.field.as_str(), v.description.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "template.private_fields[1]",
                    "\"nmae\" is no field of the template (one of phone)"
                ),
                ("template.private_fields[2]", "phone is listed twice"),
            ]
        );
    }
}
