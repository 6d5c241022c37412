//! The walking skeleton end to end: the demo suite and its sandbox on free
//! loopback ports, driven over real gRPC; WeChat reached over real HTTP.

mod common;

use common::{Harness, shipped_to, status_to};
use tonic::Code;
use wechat_sandbox::MessageQuery;
use wxpush_proto::v1::*;
use wxpush_server::status::field_violations;

#[tokio::test]
async fn a_message_to_a_follower_is_sent_and_logged() {
    let h = Harness::start().await;
    let r = h.send(shipped_to("o_demo_follower")).await;
    assert_eq!(r.status, DeliveryStatus::Sent as i32, "{r:?}");
    assert_eq!(r.errcode, 0);
    assert!(!r.wechat_msgid.is_empty());
    assert_eq!(r.attempts, 1);
    assert_eq!(r.trace_id.len(), 32);

    // WeChat (the sandbox) got exactly this message, with our id as client_msg_id.
    let got = h
        .admin
        .messages(&MessageQuery {
            client_msg_id: Some(r.message_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].openid, "o_demo_follower");
    assert_eq!(got[0].template_id, "OA_ORDER_SHIPPED_k3J9");
    assert_eq!(got[0].msgid.to_string(), r.wechat_msgid);
    assert_eq!(got[0].body["data"]["thing3"]["value"], "顺丰速运");
    assert_eq!(got[0].body["url"], "https://example.com/orders/SF1234567");

    // The log finds it by message id, by openid and by trace id.
    let by_id = h
        .find_one(LogFilter {
            message_id: r.message_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_id.status, DeliveryStatus::Sent as i32);
    assert_eq!(by_id.wechat_msgid, r.wechat_msgid);
    assert_eq!(by_id.trace_id, r.trace_id);
    assert_eq!(by_id.template_id, "OA_ORDER_SHIPPED_k3J9");
    assert_eq!(by_id.history.len(), 1);
    let by_openid = h
        .find_one(LogFilter {
            openid: "o_demo_follower".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_openid.message_id, r.message_id);
    let by_trace = h
        .find_one(LogFilter {
            trace_id: r.trace_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_trace.message_id, r.message_id);
    h.suite.shutdown().await;
}

#[tokio::test]
async fn a_non_follower_gets_failed_43004_as_a_result_not_an_error() {
    let h = Harness::start().await;
    let r = h.send(shipped_to("o_demo_unfollowed")).await;
    assert_eq!(r.status, DeliveryStatus::Failed as i32, "{r:?}");
    assert_eq!(r.errcode, 43004);
    assert!(r.wechat_msgid.is_empty());
    let rec = h
        .find_one(LogFilter {
            openid: "o_demo_unfollowed".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(rec.message_id, r.message_id);
    assert_eq!(rec.status, DeliveryStatus::Failed as i32);
    assert_eq!(rec.errcode, 43004);
    let by_trace = h
        .find_one(LogFilter {
            trace_id: r.trace_id.clone(),
            ..Default::default()
        })
        .await;
    assert_eq!(by_trace.message_id, r.message_id);
    let by_status = h
        .find_one(LogFilter {
            status: DeliveryStatus::Failed as i32,
            errcode: Some(43004),
            ..Default::default()
        })
        .await;
    assert_eq!(by_status.message_id, r.message_id);
    h.suite.shutdown().await;
}

#[tokio::test]
async fn subscribe_messages_go_through_the_mini_program_api() {
    let h = Harness::start().await;
    let ok = h.send(status_to("o_demo_subscriber")).await;
    assert_eq!(ok.status, DeliveryStatus::Sent as i32, "{ok:?}");
    let got = h
        .admin
        .messages(&MessageQuery {
            openid: Some("o_demo_subscriber".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].api, "subscribe");
    assert_eq!(got[0].body["page"], "pages/order/detail?id=SF1234567");
    assert_eq!(got[0].body["data"]["amount3"]["value"], "¥128.50");

    let refused = h.send(status_to("o_demo_no_consent")).await;
    assert_eq!(refused.status, DeliveryStatus::Failed as i32);
    assert_eq!(refused.errcode, 43101);
    h.suite.shutdown().await;
}

#[tokio::test]
async fn bad_requests_get_clear_errors_naming_the_field() {
    let h = Harness::start().await;
    let mut d = h.delivery();

    let unknown = d
        .send(SendRequest {
            template_key: "no_such_template".into(),
            ..shipped_to("o_demo_follower")
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    assert!(unknown.message().contains("no_such_template"));

    let no_openid = d.send(shipped_to("")).await.unwrap_err();
    assert_eq!(no_openid.code(), Code::InvalidArgument);
    let fields: Vec<String> = field_violations(&no_openid)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["openid"]);

    let mut missing_var = shipped_to("o_demo_follower");
    missing_var.variables.remove("carrier");
    let err = d.send(missing_var).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let fields: Vec<String> = field_violations(&err)
        .into_iter()
        .map(|v| v.field)
        .collect();
    assert_eq!(fields, ["variables.carrier"]);

    let wrong_app = d
        .send(SendRequest {
            app_id: "wx_demo_mp".into(),
            ..shipped_to("o_demo_follower")
        })
        .await
        .unwrap_err();
    assert_eq!(wrong_app.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&wrong_app)[0].field, "app_id");

    let bad_page = h
        .logs()
        .query_logs(QueryLogsRequest {
            page_token: "not-a-token".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad_page.code(), Code::InvalidArgument);
    assert_eq!(field_violations(&bad_page)[0].field, "page_token");

    // Nothing was sent for any of them.
    assert_eq!(h.admin.counters().await.unwrap().messages_sent, 0);
    h.suite.shutdown().await;
}

#[tokio::test]
async fn an_incoming_traceparent_is_continued() {
    let h = Harness::start().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut req = tonic::Request::new(shipped_to("o_demo_follower2"));
    req.metadata_mut().insert(
        "traceparent",
        format!("00-{trace_id}-00f067aa0ba902b7-01")
            .parse()
            .unwrap(),
    );
    let r = h
        .delivery()
        .send(req)
        .await
        .unwrap()
        .into_inner()
        .result
        .unwrap();
    assert_eq!(r.trace_id, trace_id);
    let rec = h
        .find_one(LogFilter {
            trace_id: trace_id.into(),
            ..Default::default()
        })
        .await;
    assert_eq!(rec.message_id, r.message_id);
    h.suite.shutdown().await;
}

#[tokio::test]
async fn every_service_reports_serving_on_grpc_health() {
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;
    let h = Harness::start().await;
    let mut health = HealthClient::new(h.channel.clone());
    for service in [
        "wxpush.v1.TokenService",
        "wxpush.v1.TemplateService",
        "wxpush.v1.DeliveryService",
        "wxpush.v1.LogQueryService",
        "",
    ] {
        let resp = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(resp.status, 1, "{service} is not SERVING");
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "wxpush.v1.Nope".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    h.suite.shutdown().await;
}
