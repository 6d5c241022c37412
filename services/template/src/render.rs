//! Rendering: business variables into the exact WeChat request body and a
//! preview of what the user will read.
//!
//! Field expressions are literal text with `{{variable}}` references, e.g.
//! `"{{amount}}元"`. Every problem is reported at once, one violation per
//! missing variable or bad input, so a caller fixes them in one round.

use crate::error::TemplateError;
use crate::validate::{RenderedField, check_mapping, check_target, check_values};
use serde_json::{Map, Value, json};
use std::collections::{BTreeSet, HashMap};
use wxpush_proto::v1::{MiniProgramTarget, Template};
use wxpush_server::status::Violation;
use wxpush_wechat::MessageApi;

pub use crate::content::placeholders;

pub use wxpush_server::limits::{MAX_VARIABLE_NAME_CHARS, MAX_VARIABLE_VALUE_CHARS, MAX_VARIABLES};

/// What a caller adds to a template for one message.
#[derive(Debug, Clone)]
pub struct RenderInput<'a> {
    pub variables: &'a HashMap<String, String>,
    pub openid: &'a str,
    pub client_msg_id: &'a str,
    pub url: &'a str,
    pub miniprogram: Option<&'a MiniProgramTarget>,
    pub page: &'a str,
}

impl<'a> RenderInput<'a> {
    /// Only variables: no recipient, no overrides (previews, validation).
    pub fn new(variables: &'a HashMap<String, String>) -> Self {
        Self {
            variables,
            openid: "",
            client_msg_id: "",
            url: "",
            miniprogram: None,
            page: "",
        }
    }
}

/// A rendered message.
#[derive(Debug, Clone)]
pub struct Rendered {
    /// The JSON body to POST (the token goes in the URL).
    pub body_json: String,
    /// The `data` object alone, for the delivery log.
    pub data_json: String,
    pub preview: String,
    pub api_path: &'static str,
}

/// Expands `{{variable}}` references; collects the names that are missing
/// and, in `used`, every name referenced.
fn expand_tracked(
    expr: &str,
    vars: &HashMap<String, String>,
    missing: &mut BTreeSet<String>,
    used: &mut Vec<String>,
) -> String {
    let mut out = String::with_capacity(expr.len());
    let mut rest = expr;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let Some(end) = after.find("}}") else {
            out.push_str(&rest[start..]);
            return out;
        };
        let name = after[..end].trim();
        if !used.iter().any(|u| u == name) {
            used.push(name.to_string());
        }
        match vars.get(name) {
            Some(v) => out.push_str(v),
            None => {
                missing.insert(name.to_string());
            }
        }
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    out
}

/// Expands `{{variable}}` references; collects the names that are missing.
fn expand(expr: &str, vars: &HashMap<String, String>, missing: &mut BTreeSet<String>) -> String {
    expand_tracked(expr, vars, missing, &mut Vec::new())
}

fn check_variables(vars: &HashMap<String, String>, v: &mut Vec<Violation>) {
    wxpush_server::limits::check_variables("variables", vars, v);
}

/// Renders a template for one recipient, validating it first: the field
/// mapping against the WeChat template, missing variables, and (subscribe
/// messages) every value against its type's rule. All problems at once.
pub fn render(t: &Template, input: &RenderInput<'_>) -> Result<Rendered, TemplateError> {
    let mut violations = Vec::new();
    check_variables(input.variables, &mut violations);
    check_mapping(t, &t.wechat_content, &mut violations);
    check_target(t, &mut violations);
    let mut missing = BTreeSet::new();

    let mut fields: Vec<(&String, &String)> = t.fields.iter().collect();
    fields.sort();
    let mut data = Map::new();
    let mut values = HashMap::new();
    let mut rendered = Vec::new();
    for (name, expr) in fields {
        let mut field_missing = BTreeSet::new();
        let mut used = Vec::new();
        let value = expand_tracked(expr, input.variables, &mut field_missing, &mut used);
        data.insert(name.clone(), json!({ "value": value }));
        values.insert(name.clone(), value.clone());
        rendered.push(RenderedField {
            name: name.clone(),
            value,
            variables: used,
            complete: field_missing.is_empty(),
        });
        missing.extend(field_missing);
    }
    check_values(t, &rendered, &mut violations);

    let mut body = Map::new();
    body.insert("touser".into(), json!(input.openid));
    body.insert("template_id".into(), json!(t.template_id));
    // The one kind → API mapping; a kind without an API is never sent.
    let api = match MessageApi::try_from(t.kind) {
        Ok(api) => api,
        Err(e) => {
            violations.push(Violation::new("template.kind", e.to_string()));
            MessageApi::Template
        }
    };
    match api {
        MessageApi::Subscribe => {
            let page = if input.page.is_empty() {
                &t.page
            } else {
                input.page
            };
            let page = expand(page, input.variables, &mut missing);
            if !page.is_empty() {
                body.insert("page".into(), json!(page));
            }
            if !t.miniprogram_state.is_empty() {
                body.insert("miniprogram_state".into(), json!(t.miniprogram_state));
            }
            if !t.lang.is_empty() {
                body.insert("lang".into(), json!(t.lang));
            }
        }
        MessageApi::Template => {
            let url = if input.url.is_empty() {
                &t.url
            } else {
                input.url
            };
            let url = expand(url, input.variables, &mut missing);
            if !url.is_empty() {
                body.insert("url".into(), json!(url));
            }
            if let Some(mp) = input.miniprogram.or(t.miniprogram.as_ref()) {
                let pagepath = expand(&mp.pagepath, input.variables, &mut missing);
                body.insert(
                    "miniprogram".into(),
                    json!({"appid": mp.appid, "pagepath": pagepath}),
                );
            }
            if !input.client_msg_id.is_empty() {
                body.insert("client_msg_id".into(), json!(input.client_msg_id));
            }
        }
    }
    for name in &missing {
        violations.push(Violation::new(
            format!("variables.{name}"),
            format!("is required by template {}", t.key),
        ));
    }
    if !violations.is_empty() {
        return Err(TemplateError::InvalidArgument(violations));
    }
    let data = Value::Object(data);
    let data_json = data.to_string();
    body.insert("data".into(), data);
    Ok(Rendered {
        body_json: Value::Object(body).to_string(),
        data_json,
        preview: preview(t, &values),
        api_path: api.path(),
    })
}

/// The WeChat content with its placeholders filled, or `field: value`
/// lines when the content is not known.
fn preview(t: &Template, values: &HashMap<String, String>) -> String {
    if t.wechat_content.is_empty() {
        let mut names: Vec<&String> = values.keys().collect();
        names.sort();
        return names
            .into_iter()
            .map(|n| format!("{n}: {}", values[n]))
            .collect::<Vec<_>>()
            .join("\n");
    }
    let mut out = t.wechat_content.clone();
    for (name, value) in values {
        out = out.replace(&format!("{{{{{name}.DATA}}}}"), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use wxpush_proto::v1::MessageKind;

    fn shipped() -> Template {
        Template {
            key: "order_shipped".into(),
            app_id: "wx1".into(),
            kind: MessageKind::Template as i32,
            template_id: "T1".into(),
            fields: [
                ("character_string1".to_string(), "{{order_id}}".to_string()),
                ("thing3".to_string(), "{{ carrier }}快递".to_string()),
            ]
            .into(),
            url: "https://e.com/o/{{order_id}}".into(),
            wechat_content: "单号:{{character_string1.DATA}}\n物流:{{thing3.DATA}}".into(),
            ..Default::default()
        }
    }

    #[test]
    fn renders_body_and_preview() {
        let vars: HashMap<String, String> = [("order_id", "SF1"), ("carrier", "顺丰")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into();
        let r = render(
            &shipped(),
            &RenderInput {
                openid: "o1",
                client_msg_id: "m1",
                ..RenderInput::new(&vars)
            },
        )
        .unwrap();
        let body: Value = serde_json::from_str(&r.body_json).unwrap();
        assert_eq!(body["touser"], "o1");
        assert_eq!(body["client_msg_id"], "m1");
        assert_eq!(body["url"], "https://e.com/o/SF1");
        assert_eq!(body["data"]["thing3"]["value"], "顺丰快递");
        assert_eq!(r.preview, "单号:SF1\n物流:顺丰快递");
        assert_eq!(r.api_path, "/cgi-bin/message/template/send");
    }

    #[test]
    fn reports_each_missing_variable_by_name() {
        let vars = HashMap::new();
        let err = render(&shipped(), &RenderInput::new(&vars)).unwrap_err();
        let TemplateError::InvalidArgument(v) = err else {
            panic!()
        };
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["variables.carrier", "variables.order_id"]);
    }

    fn status() -> Template {
        Template {
            key: "order_status".into(),
            app_id: "wx_mp".into(),
            kind: MessageKind::Subscribe as i32,
            template_id: "S1".into(),
            fields: [
                ("character_string1".to_string(), "{{order_id}}".to_string()),
                ("thing2".to_string(), "{{status}}".to_string()),
                ("amount3".to_string(), "¥{{amount}}".to_string()),
            ]
            .into(),
            wechat_content: "{{character_string1.DATA}}{{thing2.DATA}}{{amount3.DATA}}".into(),
            ..Default::default()
        }
    }

    fn violations(t: &Template, pairs: &[(&str, &str)]) -> Vec<Violation> {
        let vars: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        match render(t, &RenderInput::new(&vars)) {
            Err(TemplateError::InvalidArgument(v)) => v,
            other => panic!("expected InvalidArgument, got {other:?}"),
        }
    }

    #[test]
    fn subscribe_values_are_checked_by_type_counting_characters() {
        let vars = |status: &str| {
            [("order_id", "SF1"), ("status", status), ("amount", "9.5")]
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .into_iter()
                .collect::<HashMap<_, _>>()
        };
        let ok = vars(&"已".repeat(20));
        assert!(render(&status(), &RenderInput::new(&ok)).is_ok());
        let v = violations(
            &status(),
            &[
                ("order_id", "单号"),
                ("status", &"已".repeat(21)),
                ("amount", "x"),
            ],
        );
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["data.amount3", "data.character_string1", "data.thing2"]
        );
        assert!(v[2].description.contains("`thing` rule"), "{v:?}");
        assert!(
            v[2].description.contains("21 characters, at most 20"),
            "{v:?}"
        );
        assert!(v[2].description.contains("variables: status"), "{v:?}");
        assert!(v[1].description.contains("'单'"), "{v:?}");
    }

    #[test]
    fn a_missing_variable_is_named_and_its_field_not_type_checked() {
        let v = violations(&status(), &[("order_id", "SF1"), ("amount", "1")]);
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["variables.status"]);
    }

    #[test]
    fn unknown_and_unmapped_fields_are_named() {
        let mut t = status();
        t.fields.insert("bogus9".into(), "{{order_id}}".into());
        t.fields.remove("amount3");
        let v = violations(&t, &[("order_id", "SF1"), ("status", "ok")]);
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(
            fields,
            ["template.fields.bogus9", "template.fields.amount3"]
        );
        assert!(
            v[0].description
                .contains("not a field of WeChat template S1")
        );
        assert!(v[1].description.contains("has no expression"));
        // A template message may leave a field out (WeChat shows it empty),
        // but may not invent one.
        let mut tm = shipped();
        tm.fields.remove("thing3");
        tm.fields.insert("keyword9".into(), "x".into());
        let v = violations(&tm, &[("order_id", "SF1")]);
        let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
        assert_eq!(fields, ["template.fields.keyword9"]);
    }

    #[test]
    fn a_kind_without_a_wechat_api_is_never_rendered_for_sending() {
        let t = Template {
            kind: 7,
            ..shipped()
        };
        let v = violations(
            &t,
            &[("order_id", "1"), ("ship_time", "t"), ("carrier", "c")],
        );
        assert!(v.iter().any(|v| v.field == "template.kind"), "{v:?}");
    }
}
