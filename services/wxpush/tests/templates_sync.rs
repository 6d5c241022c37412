//! The template service end to end in the demo suite: SyncTemplates pulls
//! the sandbox's templates with a token from the token service (over gRPC),
//! RenderTemplate bodies are accepted by the sandbox as posted, and bad
//! input is refused naming each field.

mod common;

use common::{Harness, vars};
use tonic::Code;
use wechat_sandbox::MessageQuery;
use wxpush_proto::v1::token_service_client::TokenServiceClient;
use wxpush_proto::v1::*;
use wxpush_server::status::field_violations;
use wxpush_wechat::{ClientSettings, MessageApi, WechatClient};

async fn sync(h: &Harness, app_id: &str, kind: AppKind) -> SyncTemplatesResponse {
    h.templates()
        .sync_templates(SyncTemplatesRequest {
            app_id: app_id.into(),
            kind: kind as i32,
        })
        .await
        .expect("SyncTemplates")
        .into_inner()
}

#[tokio::test]
async fn sync_finds_the_sandbox_templates_and_their_fields() {
    let h = Harness::start().await;
    // Kind inferred from the registry (order_shipped is a template message).
    let oa = sync(&h, "wx_demo_oa", AppKind::Unspecified).await;
    assert_eq!(oa.added, ["OA_ORDER_SHIPPED_k3J9"]);
    assert!(oa.changed.is_empty() && oa.removed.is_empty() && oa.flagged_keys.is_empty());
    assert_eq!(oa.templates.len(), 1);
    assert_eq!(oa.templates[0].title, "订单发货提醒");
    assert_eq!(
        oa.templates[0].fields,
        ["character_string1", "time2", "thing3"]
    );

    let mp = sync(&h, "wx_demo_mp", AppKind::MiniProgram).await;
    assert_eq!(mp.added, ["MP_ORDER_STATUS_p8Qx"]);
    assert_eq!(
        mp.templates[0].fields,
        ["character_string1", "thing2", "amount3"]
    );

    // The business template now carries WeChat's content.
    let t = h.template("order_status").await;
    assert_eq!(
        t.wechat_content,
        "订单号:{{character_string1.DATA}}\n状态:{{thing2.DATA}}\n金额:{{amount3.DATA}}"
    );
    assert!(!t.wechat_template_missing);

    // A second sync finds nothing new.
    let again = sync(&h, "wx_demo_oa", AppKind::OfficialAccount).await;
    assert!(again.added.is_empty() && again.changed.is_empty() && again.removed.is_empty());

    // A kind that cannot be inferred must be given.
    let e = h
        .templates()
        .sync_templates(SyncTemplatesRequest {
            app_id: "wx_unknown".into(),
            kind: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&e)[0].field, "kind");
    h.suite.shutdown().await;
}

#[tokio::test]
async fn a_business_template_whose_wechat_template_vanished_is_flagged_not_deleted() {
    let h = Harness::start().await;
    let orphan = Template {
        key: "orphan".into(),
        app_id: "wx_demo_oa".into(),
        kind: MessageKind::Template as i32,
        template_id: "OA_DELETED_AT_WECHAT".into(),
        fields: [("keyword1".to_string(), "{{x}}".to_string())].into(),
        ..Default::default()
    };
    h.templates()
        .upsert_template(UpsertTemplateRequest {
            template: Some(orphan),
            expected_version: 0,
        })
        .await
        .unwrap();
    let r = sync(&h, "wx_demo_oa", AppKind::OfficialAccount).await;
    assert_eq!(r.flagged_keys, ["orphan"]);
    let t = h.template("orphan").await;
    assert!(t.wechat_template_missing);
    assert_eq!(t.version, 2);
    h.suite.shutdown().await;
}

async fn post_rendered(h: &Harness, req: RenderTemplateRequest, api: MessageApi) -> String {
    let r = h
        .templates()
        .render_template(req)
        .await
        .expect("RenderTemplate")
        .into_inner();
    assert_eq!(r.api_path, api.path());
    let token = TokenServiceClient::new(h.channel.clone())
        .get_access_token(GetAccessTokenRequest {
            app_id: r.app_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .access_token;
    let wechat = WechatClient::new(&ClientSettings {
        base_url: h.suite.sandbox.as_ref().unwrap().api_url(),
        ..Default::default()
    })
    .unwrap();
    let receipt = wechat
        .send_message(api, &token, &r.body_json, None)
        .await
        .expect("the sandbox accepts the rendered body");
    assert!(!receipt.msgid.is_empty());
    r.preview
}

#[tokio::test]
async fn rendered_bodies_are_accepted_by_the_sandbox_after_a_sync() {
    let h = Harness::start().await;
    sync(&h, "wx_demo_oa", AppKind::OfficialAccount).await;
    sync(&h, "wx_demo_mp", AppKind::MiniProgram).await;

    let preview = post_rendered(
        &h,
        RenderTemplateRequest {
            key: "order_shipped".into(),
            variables: vars(&[
                ("order_id", "SF1234567"),
                ("ship_time", "2026-11-23 10:00"),
                ("carrier", "顺丰速运"),
            ]),
            openid: "o_demo_follower".into(),
            client_msg_id: "tmpl-e2e-1".into(),
            ..Default::default()
        },
        MessageApi::Template,
    )
    .await;
    assert_eq!(
        preview,
        "订单编号:SF1234567\n发货时间:2026-11-23 10:00\n物流公司:顺丰速运"
    );
    let got = h
        .admin
        .messages(&MessageQuery {
            client_msg_id: Some("tmpl-e2e-1".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["data"]["time2"]["value"], "2026-11-23 10:00");

    post_rendered(
        &h,
        RenderTemplateRequest {
            key: "order_status".into(),
            variables: vars(&[
                ("order_id", "SF1234567"),
                ("status", &"已".repeat(20)),
                ("amount", "99.00"),
            ]),
            openid: "o_demo_subscriber".into(),
            ..Default::default()
        },
        MessageApi::Subscribe,
    )
    .await;
    let got = h
        .admin
        .messages(&MessageQuery {
            openid: Some("o_demo_subscriber".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["data"]["amount3"]["value"], "¥99.00");
    h.suite.shutdown().await;
}

#[tokio::test]
async fn bad_input_is_refused_naming_each_field() {
    let h = Harness::start().await;
    sync(&h, "wx_demo_mp", AppKind::MiniProgram).await;
    let e = h
        .templates()
        .render_template(RenderTemplateRequest {
            key: "order_status".into(),
            variables: vars(&[("order_id", "SF1"), ("status", &"已".repeat(21))]),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let v = field_violations(&e);
    let fields: Vec<&str> = v.iter().map(|v| v.field.as_str()).collect();
    assert_eq!(fields, ["data.thing2", "variables.amount"], "{v:?}");
    assert!(v[0].description.contains("`thing` rule"), "{v:?}");
    assert!(
        v[0].description.contains("21 characters, at most 20"),
        "{v:?}"
    );

    // After the sync the registry knows WeChat's real fields: a field the
    // WeChat template does not have is refused when written.
    let mut t = h.template("order_status").await;
    t.fields.insert("thing9".into(), "{{note}}".into());
    let version = t.version;
    let e = h
        .templates()
        .upsert_template(UpsertTemplateRequest {
            template: Some(t),
            expected_version: version,
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    let v = field_violations(&e);
    assert_eq!(v.len(), 1, "{v:?}");
    assert_eq!(v[0].field, "template.fields.thing9");
    assert!(v[0].description.contains("MP_ORDER_STATUS_p8Qx"), "{v:?}");
    h.suite.shutdown().await;
}
