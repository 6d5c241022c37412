//! Our subscribe-field rules against the sandbox's independent imitation of
//! WeChat: for each type, values at and just past its limits are rendered by
//! the template service and posted to the sandbox. Whenever we accept, the
//! sandbox must answer errcode 0; whenever we refuse, the sandbox must answer
//! 47003 naming the same field. Also: the sandbox's template lists, pulled
//! through the WeChat client, parse into the fields the sandbox checks.

use std::collections::HashMap;
use wechat_sandbox::{Sandbox, SandboxConfig};
use wxpush_proto::v1::{MessageKind, Template};
use wxpush_server::config::Secret;
use wxpush_template::error::TemplateError;
use wxpush_template::render::{RenderInput, render};
use wxpush_template::sync::parse;
use wxpush_wechat::{ClientSettings, MessageApi, WechatClient, WechatError};

const TYPES: &[&str] = &[
    "thing",
    "number",
    "letter",
    "symbol",
    "character_string",
    "time",
    "date",
    "amount",
    "phone_number",
    "car_number",
    "name",
    "phrase",
];

/// One long-term (type 3: no consent needed) template per field type.
fn sandbox_config() -> SandboxConfig {
    let mut yaml = String::from(
        "apps:\n  - appid: wx_rules_mp\n    secret: rules-secret\n    kind: mini_program\n    users:\n      - openid: o_rules\n    templates:\n",
    );
    for ty in TYPES {
        yaml.push_str(&format!(
            "      - template_id: T_{ty}\n        title: {ty}\n        type: 3\n        content: \"值:{{{{{ty}1.DATA}}}}\"\n"
        ));
    }
    SandboxConfig::from_yaml_str(&yaml).expect("valid sandbox config")
}

fn template_for(ty: &str) -> Template {
    Template {
        key: format!("rules_{ty}"),
        app_id: "wx_rules_mp".into(),
        kind: MessageKind::Subscribe as i32,
        template_id: format!("T_{ty}"),
        fields: [(format!("{ty}1"), "{{v}}".to_string())].into(),
        wechat_content: format!("值:{{{{{ty}1.DATA}}}}"),
        ..Default::default()
    }
}

/// (type, value, whether WeChat's rule accepts it): each type at its limits.
fn cases() -> Vec<(&'static str, String, bool)> {
    let r = |s: &str, n: usize| s.repeat(n);
    vec![
        ("thing", r("中", 20), true),
        ("thing", r("中", 21), false),
        ("thing", r("a", 20), true),
        ("thing", String::new(), false),
        ("number", r("9", 32), true),
        ("number", r("9", 33), false),
        ("number", "3.14".into(), true),
        ("number", "3.1.4".into(), false),
        ("letter", r("a", 32), true),
        ("letter", r("a", 33), false),
        ("letter", "ab1".into(), false),
        ("symbol", r("%", 5), true),
        ("symbol", r("%", 6), false),
        ("symbol", "%a".into(), false),
        ("character_string", r("A1-", 10) + "xy", true),
        ("character_string", r("A", 33), false),
        ("character_string", "单号1".into(), false),
        ("time", "15:01".into(), true),
        ("time", "2019年10月1日 15:01".into(), true),
        ("time", "24:00".into(), false),
        ("time", "tomorrow".into(), false),
        ("date", "2019年10月1日".into(), true),
        ("date", "2019-10-01 15:01".into(), true),
        ("date", "2019-02-30".into(), false),
        ("amount", "¥1234567890.99".into(), true),
        ("amount", "¥12345678901".into(), false),
        ("amount", "99.5元".into(), true),
        ("amount", "九十九元".into(), false),
        ("phone_number", "+86-1380000000000".into(), true),
        ("phone_number", "+86-13800000000000".into(), false),
        ("phone_number", "138 0000".into(), false),
        ("car_number", "粤B123456".into(), true),
        ("car_number", "粤B1234567".into(), false),
        ("car_number", "粤中12345".into(), false),
        ("name", r("张", 10), true),
        ("name", r("张", 11), false),
        ("name", r("J", 20), true),
        ("name", r("J", 21), false),
        ("name", "张三x".into(), false),
        ("phrase", r("发", 5), true),
        ("phrase", r("发", 6), false),
        ("phrase", "ok".into(), false),
    ]
}

#[tokio::test]
async fn our_verdict_matches_the_sandbox_for_every_type_at_its_limits() {
    let any = "127.0.0.1:0".parse().unwrap();
    let sandbox = Sandbox::start(sandbox_config(), any, any).await.unwrap();
    let wechat = WechatClient::new(&ClientSettings {
        base_url: sandbox.api_url(),
        ..Default::default()
    })
    .unwrap();
    let token = wechat
        .stable_token("wx_rules_mp", &Secret::new("rules-secret"), false)
        .await
        .unwrap()
        .access_token;

    let mut mismatches = Vec::new();
    let mut checked = 0;
    for (ty, value, expected) in cases() {
        let t = template_for(ty);
        let vars = HashMap::from([("v".to_string(), value.clone())]);
        let ours = render(
            &t,
            &RenderInput {
                openid: "o_rules",
                ..RenderInput::new(&vars)
            },
        );
        // Ours against the rule as documented.
        match (&ours, expected) {
            (Ok(_), true) => {}
            (Err(TemplateError::InvalidArgument(v)), false) => {
                assert_eq!(v.len(), 1, "{ty}={value:?}: {v:?}");
                assert_eq!(v[0].field, format!("data.{ty}1"));
                assert!(v[0].description.contains(&format!("`{ty}` rule")), "{v:?}");
            }
            (other, _) => mismatches.push(format!("ours {ty}={value:?}: {other:?}")),
        }
        // The sandbox against ours: post the body we would post (for a
        // refused value, the body we would have built without validation).
        let body = serde_json::json!({
            "touser": "o_rules",
            "template_id": t.template_id,
            "data": { format!("{ty}1"): { "value": value } },
        })
        .to_string();
        if let Ok(r) = &ours {
            let ours_body: serde_json::Value = serde_json::from_str(&r.body_json).unwrap();
            let plain: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(ours_body, plain, "we post exactly this body");
        }
        let theirs = wechat
            .send_message(MessageApi::Subscribe, &token, &body, None)
            .await;
        match (&theirs, ours.is_ok()) {
            (Ok(_), true) => {}
            (
                Err(WechatError::Api {
                    errcode: 47003,
                    errmsg,
                }),
                false,
            ) if errmsg.contains(&format!("data.{ty}1")) => {}
            (other, _) => mismatches.push(format!(
                "sandbox {ty}={value:?}: {other:?}, ours ok={}",
                ours.is_ok()
            )),
        }
        checked += 1;
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(checked, cases().len());
    // Every documented type has a passing and a failing case.
    for ty in TYPES {
        let c = cases();
        assert!(c.iter().any(|(t, _, ok)| t == ty && *ok), "{ty} pass");
        assert!(c.iter().any(|(t, _, ok)| t == ty && !*ok), "{ty} fail");
    }
    sandbox.shutdown().await;
}

#[tokio::test]
async fn the_sandbox_template_lists_parse_into_their_fields() {
    let any = "127.0.0.1:0".parse().unwrap();
    let sandbox = Sandbox::start(wechat_sandbox::demo_config(), any, any)
        .await
        .unwrap();
    let wechat = WechatClient::new(&ClientSettings {
        base_url: sandbox.api_url(),
        ..Default::default()
    })
    .unwrap();
    let oa_token = wechat
        .stable_token("wx_demo_oa", &Secret::new("demo-oa-secret-7f3a9c"), false)
        .await
        .unwrap()
        .access_token;
    let oa: Vec<_> = wechat
        .private_templates(&oa_token)
        .await
        .unwrap()
        .into_iter()
        .map(|t| parse(t.template_id, t.title, t.content))
        .collect();
    assert_eq!(oa.len(), 1);
    assert_eq!(oa[0].template_id, "OA_ORDER_SHIPPED_k3J9");
    assert_eq!(oa[0].fields, ["character_string1", "time2", "thing3"]);

    let mp_token = wechat
        .stable_token("wx_demo_mp", &Secret::new("demo-mp-secret-2b8e41"), false)
        .await
        .unwrap()
        .access_token;
    let mp: Vec<_> = wechat
        .subscribe_templates(&mp_token)
        .await
        .unwrap()
        .into_iter()
        .map(|t| parse(t.pri_tmpl_id, t.title, t.content))
        .collect();
    assert_eq!(mp.len(), 1);
    assert_eq!(mp[0].template_id, "MP_ORDER_STATUS_p8Qx");
    assert_eq!(mp[0].fields, ["character_string1", "thing2", "amount3"]);
    sandbox.shutdown().await;
}
