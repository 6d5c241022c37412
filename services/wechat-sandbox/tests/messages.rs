//! Template and subscribe sending over real HTTP: dedup, recipient checks, consents, field rules.

mod common;

use common::*;
use serde_json::json;
use wechat_sandbox::{MessageQuery, demo_config};

#[tokio::test]
async fn client_msg_id_dedup_returns_same_msgid_and_records_once() {
    let env = start().await;
    let token = env.token(OA, OA_SECRET).await;
    let mut body = oa_message("o_demo_follower");
    body["client_msg_id"] = json!("wxpush-msg-1");
    let first = env.send_template(&token, &body).await;
    assert_eq!(first["errcode"], 0);
    assert_eq!(first["errmsg"], "ok");
    let msgid = first["msgid"].as_u64().unwrap();
    let again = env.send_template(&token, &body).await;
    assert_eq!(again["msgid"].as_u64(), Some(msgid));
    // Another recipient with the same client_msg_id is a different message.
    let mut other = body.clone();
    other["touser"] = json!("o_demo_follower2");
    let other_id = env.send_template(&token, &other).await["msgid"]
        .as_u64()
        .unwrap();
    assert!(other_id > msgid);

    let q = MessageQuery {
        client_msg_id: Some("wxpush-msg-1".into()),
        openid: Some("o_demo_follower".into()),
        appid: None,
    };
    let recorded = env.admin.messages(&q).await.unwrap();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].msgid, msgid);
    assert_eq!(recorded[0].api, "template");
    assert_eq!(recorded[0].template_id, OA_TEMPLATE);
    assert_eq!(recorded[0].body["data"]["thing3"]["value"], "顺丰速运");
    assert_eq!(env.admin.counters().await.unwrap().messages_sent, 2);

    // After the dedup window the same id is a new message.
    env.admin.advance_clock(601).await.unwrap();
    let token = env.token(OA, OA_SECRET).await;
    let later = env.send_template(&token, &body).await["msgid"]
        .as_u64()
        .unwrap();
    assert!(later > other_id);
    assert_eq!(env.admin.messages(&q).await.unwrap().len(), 2);
}

#[tokio::test]
async fn template_send_recipient_and_request_errors() {
    let env = start().await;
    let token = env.token(OA, OA_SECRET).await;
    assert_eq!(
        errcode(
            &env.send_template(&token, &oa_message("o_demo_unfollowed"))
                .await
        ),
        43004
    );
    assert_eq!(
        errcode(&env.send_template(&token, &oa_message("o_stranger")).await),
        40003
    );
    let mut bad_tpl = oa_message("o_demo_follower");
    bad_tpl["template_id"] = json!("NOPE");
    assert_eq!(errcode(&env.send_template(&token, &bad_tpl).await), 40037);
    let resp = env
        .http
        .post(format!(
            "{}/cgi-bin/message/template/send?access_token={token}",
            env.api
        ))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let v: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(errcode(&v), 47001);
    // Subscribe API with an official-account token.
    assert_eq!(
        errcode(
            &env.send_subscribe(&token, &mp_message("o_demo_subscriber", "已发货"))
                .await
        ),
        48001
    );
    assert!(
        env.admin
            .messages(&MessageQuery::default())
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(env.admin.counters().await.unwrap().messages_sent, 0);
}

#[tokio::test]
async fn subscribe_consents_are_consumed_then_43101() {
    let mut config = demo_config();
    config.apps[1].users[1]
        .subscriptions
        .insert(MP_TEMPLATE.into(), 2);
    let env = start_with(config).await;
    let token = env.token(MP, MP_SECRET).await;
    for _ in 0..2 {
        let v = env
            .send_subscribe(&token, &mp_message("o_demo_no_consent", "已发货"))
            .await;
        assert_eq!(errcode(&v), 0, "{v}");
    }
    let v = env
        .send_subscribe(&token, &mp_message("o_demo_no_consent", "已发货"))
        .await;
    assert_eq!(errcode(&v), 43101);
    assert_eq!(
        errcode(
            &env.send_subscribe(&token, &mp_message("o_demo_subscriber", "已发货"))
                .await
        ),
        0
    );
    let q = MessageQuery {
        appid: Some(MP.into()),
        ..MessageQuery::default()
    };
    let recorded = env.admin.messages(&q).await.unwrap();
    assert_eq!(recorded.len(), 3);
    assert!(recorded.iter().all(|m| m.api == "subscribe"));
    // Reset restores the configured consents.
    env.admin.reset().await.unwrap();
    let token = env.token(MP, MP_SECRET).await;
    assert_eq!(
        errcode(
            &env.send_subscribe(&token, &mp_message("o_demo_no_consent", "已发货"))
                .await
        ),
        0
    );
}

#[tokio::test]
async fn subscribe_field_rules_47003() {
    let env = start().await;
    let token = env.token(MP, MP_SECRET).await;
    let twenty = "中".repeat(20);
    assert_eq!(
        errcode(
            &env.send_subscribe(&token, &mp_message("o_demo_subscriber", &twenty))
                .await
        ),
        0
    );
    let v = env
        .send_subscribe(
            &token,
            &mp_message("o_demo_subscriber", &format!("{twenty}中")),
        )
        .await;
    assert_eq!(errcode(&v), 47003);
    assert_eq!(
        v["errmsg"],
        "argument invalid! data.thing2.value exceeds 20 characters"
    );

    let mut missing = mp_message("o_demo_subscriber", "ok");
    missing["data"].as_object_mut().unwrap().remove("amount3");
    let v = env.send_subscribe(&token, &missing).await;
    assert_eq!(errcode(&v), 47003);
    assert!(
        v["errmsg"].as_str().unwrap().contains("data.amount3"),
        "{v}"
    );

    let mut extra = mp_message("o_demo_subscriber", "ok");
    extra["data"]["thing9"] = json!({"value": "x"});
    assert_eq!(errcode(&env.send_subscribe(&token, &extra).await), 47003);

    let mut bad_amount = mp_message("o_demo_subscriber", "ok");
    bad_amount["data"]["amount3"] = json!({"value": "ninety"});
    let v = env.send_subscribe(&token, &bad_amount).await;
    assert!(
        v["errmsg"].as_str().unwrap().contains("data.amount3.value"),
        "{v}"
    );

    let mut bad_lang = mp_message("o_demo_subscriber", "ok");
    bad_lang["lang"] = json!("fr_FR");
    assert_eq!(errcode(&env.send_subscribe(&token, &bad_lang).await), 47003);
    let mut bad_state = mp_message("o_demo_subscriber", "ok");
    bad_state["miniprogram_state"] = json!("prod");
    assert_eq!(
        errcode(&env.send_subscribe(&token, &bad_state).await),
        47003
    );
    assert_eq!(env.admin.counters().await.unwrap().messages_sent, 1);
}

#[tokio::test]
async fn template_lists_and_unknown_path() {
    let env = start().await;
    let oa = env.token(OA, OA_SECRET).await;
    let list = env
        .get(&format!(
            "/cgi-bin/template/get_all_private_template?access_token={oa}"
        ))
        .await;
    assert_eq!(list["template_list"][0]["template_id"], OA_TEMPLATE);
    assert_eq!(list["template_list"][0]["title"], "订单发货提醒");
    let mp = env.token(MP, MP_SECRET).await;
    let list = env
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={mp}"))
        .await;
    assert_eq!(list["errcode"], 0);
    assert_eq!(list["data"][0]["priTmplId"], MP_TEMPLATE);
    assert_eq!(list["data"][0]["type"], 2);
    let wrong = env
        .get(&format!("/wxaapi/newtmpl/gettemplate?access_token={oa}"))
        .await;
    assert_eq!(errcode(&wrong), 48001);
    let resp = env
        .http
        .get(format!("{}/cgi-bin/nope", env.api))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn only_the_newest_messages_are_kept_and_every_one_is_counted() {
    let mut config = demo_config();
    config.keep_messages = 3;
    let env = start_with(config).await;
    let token = env.token(OA, OA_SECRET).await;
    for i in 0..5 {
        let sent = env
            .post(
                &format!("/cgi-bin/message/template/send?access_token={token}"),
                &serde_json::json!({"touser": "o_demo_follower", "template_id": OA_TEMPLATE,
                    "client_msg_id": format!("k{i}"), "data": {}}),
            )
            .await;
        assert_eq!(sent["errcode"], 0, "{sent}");
    }
    let kept = env.admin.messages(&Default::default()).await.unwrap();
    let ids: Vec<_> = kept
        .iter()
        .filter_map(|m| m.client_msg_id.clone())
        .collect();
    assert_eq!(ids, ["k2", "k3", "k4"]);
    assert_eq!(env.admin.counters().await.unwrap().messages_sent, 5);
}
