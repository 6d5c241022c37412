//! A template's private fields (issue 17): WeChat receives their values,
//! the log keeps only a keyed hash of each (equal values hash alike, so
//! records still compare), and a private field that names no field of the
//! template is refused naming it.

mod common;

use common::{Harness, status_to, vars};
use tonic::Code;
use wechat_sandbox::MessageQuery;
use wxpush_proto::v1::*;

#[tokio::test]
async fn private_fields_reach_wechat_and_the_log_keeps_only_their_hash() {
    let h = Harness::start().await;
    let refused = h
        .copy_template("order_status", "order_status_private", |t| {
            t.private_fields = vec!["amount3".into(), "amount9".into()];
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(
        refused
            .message()
            .contains("template.private_fields[1]: \"amount9\" is no field of the template"),
        "{}",
        refused.message()
    );
    h.copy_template("order_status", "order_status_private", |t| {
        t.private_fields = vec!["amount3".into()];
    })
    .await
    .unwrap();

    let send = |amount: &str, order: &str| {
        let mut r = status_to("o_demo_subscriber");
        r.template_key = "order_status_private".into();
        r.variables = vars(&[
            ("order_id", order),
            ("status", "已发货"),
            ("amount", amount),
        ]);
        r
    };
    let first = h.sent(send("128.50", "P-1")).await;
    let same = h.sent(send("128.50", "P-2")).await;
    let other = h.sent(send("99.00", "P-3")).await;

    let amount_of = |json: &str| {
        let v: serde_json::Value = serde_json::from_str(json).unwrap();
        (
            v["amount3"]["value"].as_str().unwrap().to_string(),
            v["character_string1"]["value"]
                .as_str()
                .unwrap()
                .to_string(),
        )
    };
    let mut logged = Vec::new();
    for id in [&first, &same, &other] {
        let r = h
            .find_one(LogFilter {
                message_id: id.clone(),
                ..Default::default()
            })
            .await;
        logged.push(amount_of(&r.data_json));
    }
    for (amount, order) in &logged {
        assert!(
            amount.starts_with("hashed:") && amount.len() == "hashed:".len() + 32,
            "{amount}"
        );
        assert!(!amount.contains("128.50") && !amount.contains("99.00"));
        assert!(order.starts_with("P-"), "the other fields stay: {order}");
    }
    assert_eq!(logged[0].0, logged[1].0, "equal values hash alike");
    assert_ne!(logged[0].0, logged[2].0);

    // WeChat got them in clear.
    let received = h
        .admin
        .messages(&MessageQuery {
            openid: Some("o_demo_subscriber".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    let bodies: Vec<String> = received.iter().map(|m| m.body.to_string()).collect();
    assert!(bodies.iter().any(|b| b.contains("¥128.50")), "{bodies:?}");
    assert!(bodies.iter().any(|b| b.contains("¥99.00")), "{bodies:?}");
}
